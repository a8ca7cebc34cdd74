//! The forwarding core of KitsuLAN's selective forwarding unit (docs/calls.md, "Voice channels
//! through the SFU"): [`room`] decides who hears whom and rewrites each forwarded packet into the
//! listener's stream; [`rtp`] reads and writes just enough of RTP for that. Neither does I/O or
//! reads a payload (end-to-end encrypted frames are opaque here), so both are tested with
//! packets made in the tests, and the WebRTC transport around them is a separate layer.

pub mod feedback;
pub mod node;
pub mod room;
pub mod rtp;

#[cfg(test)]
mod tests;
