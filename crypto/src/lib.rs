//! Device-side end-to-end encryption for KitsuLAN.
//!
//! This crate is intentionally empty for now. It will wrap vodozemac (Olm, Megolm, SAS, ECIES
//! device linking, pickling) and build both natively and for WebAssembly; see
//! `ARCHITECTURE.md` §4. Nothing in KitsuLAN depends on it yet.

#![deny(missing_docs)]
