//! KitsuLAN's black-box tests run the real `kitsulan` binary and talk to it through the client
//! SDK (`kitsulan-client`); they are one test binary, `tests/e2e/`. This library holds only
//! what the tests need beyond the SDK:
//!
//! - [`call_peer`]: a device in a call with a real WebRTC peer connection (relay-only ICE). It
//!   is the only user of the `webrtc` crate, kept here so the load generator does not build it.

pub mod call_peer;
