//! Test helpers shared by several KitsuLAN crates: real services started for one test and
//! stopped when it is done. Nothing here talks KitsuLAN's API, so the store and relay tests use
//! it without compiling a client.
//!
//! - [`postgres`]: a fresh PostgreSQL database per test (the store conformance suite, the
//!   e2e tests on PostgreSQL).
//! - [`coturn`]: coturn's `turnserver` and `turnutils_uclient`, free UDP ports, a STUN probe
//!   (the relay tests of `kitsulan-turn`, the call tests).
//! - [`pebble`]: Debian's pebble ACME test CA with its DNS server (the ACME tests).
//! - [`smtp`]: a real SMTP server catching the mail the server under test sends.

pub mod coturn;
pub mod pebble;
pub mod postgres;
pub mod smtp;

pub use smtp::{Mail, SmtpSink};
