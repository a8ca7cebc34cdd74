//! Security regressions, each written as the attack: a stranger, a thief holding a copied
//! token, a flood from one account. Every test runs the real `kitsulan` binary and asserts
//! both that the attack now fails and that the legitimate use still works. The threat model
//! and every limit are in docs/security.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

// Points 1-3 of the hardening issue: account takeover, refresh-token reuse, password guessing.
#[path = "security/takeover.rs"]
mod takeover;
// Points 4-5: one-time key draining, to-device inbox flooding.
#[path = "security/keys.rs"]
mod keys;
// Points 6 and 8: the blob store and the TURN relay.
#[path = "security/storage_relay.rs"]
mod storage_relay;
// Point 7: consent before contact (message requests, blocking, caps).
#[path = "security/consent.rs"]
mod consent;
// A sign-in flood against the password-hashing pool (memory and starvation).
#[path = "security/hashing.rs"]
mod hashing;
// Points 9-12: web app headers, data at rest, clear errors, smaller leaks.
#[path = "security/hardening.rs"]
mod hardening;
