//! Device-side end-to-end encryption for KitsuLAN.
//!
//! This crate owns every piece of cryptography a KitsuLAN client runs, as a small, documented
//! API over [vodozemac](https://docs.rs/vodozemac) (the audited Matrix implementation of Olm,
//! Megolm, SAS and ECIES) plus the formats KitsuLAN defines itself (see `crypto/FORMAT.md`):
//!
//! | module | owns |
//! |---|---|
//! | [`device`] | a device's Olm account: identity keys, signed one-time and fallback keys |
//! | [`certificate`] | the per-person account key and the device certificates it signs |
//! | [`olm`] | one-to-one Olm sessions (to-device messages such as Megolm key shares) |
//! | [`megolm`] | group sessions for conversation messages, with replay rejection |
//! | [`sas`] | short authentication strings: emoji or decimals, commitments, MACs of keys |
//! | [`verification`] | verifying another person: the SAS messages and state machine over to-device messages |
//! | [`pairing`] | the ECIES channel that links a new device to an existing one (QR or PIN) |
//! | [`attachment`] | streaming AES-256-CTR file encryption with a SHA-256 of the ciphertext |
//! | [`backup`] | key backup: the backup key and recovery key, auth data, encrypted identity and session entries; Argon2id passphrase blobs |
//! | [`pickle`] | the 32-byte pickle key and the encrypted-at-rest form of stateful objects |
//! | [`error`] | the one [`Error`] enum, each variant with a stable code for the browser |
//! | [`client`] | the client protocol of one device as a sans-IO state machine ([`client::Machine`]) |
//! | [`content`] | what a message says: the typed Content (protobuf) in a message's plaintext, legacy plaintexts |
//!
//! It runs natively (tests, Rust clients, the load generator, and the server, which calls only
//! the public-key verification functions [`verify_device_certificate`],
//! [`verify_one_time_key`] and [`verify_fallback_key`]) and as WebAssembly in the PWA (the
//! `wasm` feature on `wasm32`, built by `crypto/build-wasm.sh`). The crate knows nothing about
//! the server, its ids or its transport: ids are plain 16-byte UUIDs, messages are bytes.
//!
//! # Randomness
//!
//! Our own code draws randomness from a caller-supplied [`rand_core::CryptoRng`], so tests can
//! seed it and record vectors; production code passes [`OsRng::new()`]. vodozemac draws its own
//! keys from the operating system (browser: `crypto.getRandomValues`) and cannot be seeded.
//!
//! # Security
//!
//! Secrets live in types that zeroize on drop and whose `Debug` prints `[redacted]`. Every
//! decoder of untrusted bytes has a fuzz target in `crypto/fuzz`. Signature checks depend only
//! on public keys, and nothing here ever needs a private key that belongs to someone else.

#![deny(missing_docs)]

pub mod attachment;
pub mod backup;
pub mod certificate;
pub mod client;
pub mod content;
pub mod device;
pub mod error;
pub mod linking;
pub mod megolm;
pub mod olm;
pub mod pairing;
pub mod pickle;
pub mod sas;
pub mod sframe;
pub mod verification;
#[cfg(all(target_arch = "wasm32", feature = "wasm"))]
pub mod wasm;

mod encoding;

/// Entry points for the fuzz targets in `crypto/fuzz` only (compiled under cargo-fuzz's
/// `--cfg fuzzing`): they reach decoders that normally sit behind authenticated encryption.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz_hooks {
    use crate::pickle::{self, Kind};
    use crate::{OsRng, PickleKey};

    /// Seals `body` as an inbound-group-session pickle and restores it (the body parser).
    pub fn inbound_group_session_body(body: &[u8]) {
        let key = PickleKey::from_bytes([7; 32]);
        let sealed = pickle::seal(Kind::InboundGroupSession, &key, body, &mut OsRng::new());
        let _ = crate::megolm::InboundGroupSession::from_pickle(&sealed, &key);
    }

    /// Seals `body` as an account-key pickle and restores it.
    pub fn account_key_body(body: &[u8]) {
        let key = PickleKey::from_bytes([7; 32]);
        let sealed = pickle::seal(Kind::AccountKey, &key, body, &mut OsRng::new());
        let _ = crate::AccountKey::from_pickle(&sealed, &key);
    }

    /// Seals `body` as a backup-key pickle and restores it.
    pub fn backup_key_body(body: &[u8]) {
        let key = PickleKey::from_bytes([7; 32]);
        let sealed = pickle::seal(Kind::BackupKey, &key, body, &mut OsRng::new());
        let _ = crate::backup::BackupKey::from_pickle(&sealed, &key);
    }

    /// Encrypts `body` as the plaintext of a key-backup session entry and decrypts it (the
    /// body parser and the session import). The claimed session id is the base64 of the last
    /// 32 bytes, so a body whose exported key carries that signing key is accepted.
    pub fn backup_session_body(key: &crate::backup::BackupKey, body: &[u8]) {
        let session_id = crate::encoding::b64(body.get(body.len().saturating_sub(32)..).unwrap_or_default());
        let blob = key.encrypt_session_body(&[1; 16], &session_id, body, &mut OsRng::new());
        if let Ok(restored) = key.decrypt_session(&[1; 16], &session_id, &blob) {
            assert_eq!(restored.session.session_id(), session_id);
        }
    }
}

pub use certificate::{AccountKey, DeviceCertificate, validate_account_key, verify_device_certificate};
pub use device::{
    DeviceAccount, SignedFallbackKey, SignedOneTimeKey, verify_fallback_key, verify_one_time_key,
};
pub use error::Error;
pub use pickle::PickleKey;

/// The result type of every fallible function in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The operating system's random number generator (the browser's `crypto.getRandomValues` on
/// wasm32), as an infallible [`rand_core::CryptoRng`] to pass where this crate asks for one.
///
/// # Panics
///
/// Only if the operating system cannot supply randomness at all, which no caller can recover
/// from (vodozemac behaves the same way).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRng(());

impl OsRng {
    /// A handle to the OS random number generator.
    pub const fn new() -> Self {
        Self(())
    }
}

impl rand_core::TryRng for OsRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        fill_os(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        fill_os(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        fill_os(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for OsRng {}

#[allow(clippy::panic)]
fn fill_os(dst: &mut [u8]) {
    if let Err(e) = getrandom::fill(dst) {
        // No randomness means no safe keys; continuing would be worse than stopping.
        panic!("the operating system RNG failed: {e}");
    }
}
