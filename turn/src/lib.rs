//! TURN for KitsuLAN calls.
//!
//! This crate is intentionally empty for now. It will hold coturn-compatible REST credentials
//! and the embedded TURN relay that Lite runs by default; see `ARCHITECTURE.md` §8. Nothing in
//! KitsuLAN depends on it yet.

#![deny(missing_docs)]
