//! Key backup: a 32-byte backup key derived from a passphrase with Argon2id, and authenticated
//! encryption (ChaCha20-Poly1305) of backup blobs under it.
//!
//! The client encrypts its room keys into a blob; the server stores the blob and never sees
//! the passphrase or the key. The blob carries everything needed to re-derive the key from the
//! passphrase alone (`FORMAT.md`, "Backup blob v1"):
//!
//! ```text
//! "KLBK" | version=1 | kdf=1 (Argon2id v1.3) | m KiB (u32) | t (u32) | p (u32) | salt[16]
//!        | nonce[12] | ChaCha20-Poly1305 ciphertext+tag      (AAD = every byte before it)
//! ```
//!
//! The Argon2id parameters live in one place, [`KdfParams::DEFAULT`] (64 MiB, 3 passes,
//! 1 lane: above OWASP's minimum of 19 MiB / 2 / 1, and RFC 9106's second recommendation
//! adapted to a single-threaded browser). A linked device receives the derived
//! [`BackupKey`] (key, salt and parameters, [`BackupKey::to_bytes`]) over the pairing channel,
//! so it never needs the passphrase.
//!
//! # Security
//!
//! Blobs come from the server, so their parameters are untrusted: [`decrypt_with_passphrase`]
//! refuses parameters below [`KdfParams::MIN`] (a downgrade) or above [`KdfParams::MAX`] (a
//! memory-exhaustion attack on the browser). The header is authenticated as AAD, and a changed
//! salt or parameter also changes the derived key, so any tampering fails decryption.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit as _};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::encoding::Reader;
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"KLBK";
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
/// Length of the blob header (the AAD).
pub const HEADER_LEN: usize = 4 + 1 + 1 + 12 + 16 + 12;
const KEY_TRANSFER_VERSION: u8 = 1;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Zeroize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// What new backups use.
    pub const DEFAULT: Self = Self { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 };
    /// The weakest parameters accepted from a blob (OWASP's minimum for Argon2id).
    pub const MIN: Self = Self { m_cost_kib: 19 * 1024, t_cost: 2, p_cost: 1 };
    /// The most expensive parameters accepted from a blob.
    pub const MAX: Self = Self { m_cost_kib: 1024 * 1024, t_cost: 10, p_cost: 8 };

    fn check(&self) -> Result<()> {
        let ok = (Self::MIN.m_cost_kib..=Self::MAX.m_cost_kib).contains(&self.m_cost_kib)
            && (Self::MIN.t_cost..=Self::MAX.t_cost).contains(&self.t_cost)
            && (Self::MIN.p_cost..=Self::MAX.p_cost).contains(&self.p_cost);
        if ok { Ok(()) } else { Err(Error::BackupParamsOutOfRange) }
    }
}

/// The key backups are encrypted under, with the salt and parameters it was derived with.
/// Zeroized on drop; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BackupKey {
    key: [u8; 32],
    salt: [u8; 16],
    params: KdfParams,
}

impl BackupKey {
    /// Derives the key from a passphrase with a new random salt and [`KdfParams::DEFAULT`].
    pub fn from_new_passphrase<R: CryptoRng + ?Sized>(passphrase: &[u8], rng: &mut R) -> Result<Self> {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        Self::derive(passphrase, salt, KdfParams::DEFAULT)
    }

    /// Derives the key from a passphrase, salt and parameters (checked against the accepted
    /// range).
    pub fn derive(passphrase: &[u8], salt: [u8; 16], params: KdfParams) -> Result<Self> {
        params.check()?;
        let argon_params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
            .map_err(|_| Error::KeyDerivation)?;
        let mut key = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
            .hash_password_into(passphrase, &salt, &mut key)
            .map_err(|_| Error::KeyDerivation)?;
        Ok(Self { key, salt, params })
    }

    /// The salt (stored in every blob's header).
    pub const fn salt(&self) -> [u8; 16] {
        self.salt
    }

    /// The Argon2id parameters the key was derived with.
    pub const fn params(&self) -> KdfParams {
        self.params
    }

    /// For the pairing channel: `version=1 | key[32] | salt[16] | m | t | p` (u32 BE each).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(61));
        out.push(KEY_TRANSFER_VERSION);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.salt);
        for v in [self.params.m_cost_kib, self.params.t_cost, self.params.p_cost] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// Parses [`BackupKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, Error::MalformedBackup);
        if r.u8()? != KEY_TRANSFER_VERSION {
            return Err(Error::MalformedBackup);
        }
        let key = r.array()?;
        let salt = r.array()?;
        let params = KdfParams { m_cost_kib: r.u32()?, t_cost: r.u32()?, p_cost: r.u32()? };
        r.finish()?;
        params.check()?;
        Ok(Self { key, salt, params })
    }

    /// Encrypts a backup blob with a random nonce.
    pub fn encrypt<R: CryptoRng + ?Sized>(&self, plaintext: &[u8], rng: &mut R) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let mut blob = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        blob.extend_from_slice(MAGIC);
        blob.push(VERSION);
        blob.push(KDF_ARGON2ID);
        for v in [self.params.m_cost_kib, self.params.t_cost, self.params.p_cost] {
            blob.extend_from_slice(&v.to_be_bytes());
        }
        blob.extend_from_slice(&self.salt);
        blob.extend_from_slice(&nonce);
        let sealed = ChaCha20Poly1305::new(&self.key.into())
            .encrypt(&nonce.into(), Payload { msg: plaintext, aad: &blob })
            // Fails only for messages over 256 GiB.
            .unwrap_or_default();
        blob.extend_from_slice(&sealed);
        blob
    }

    /// Decrypts a blob made under this key.
    pub fn decrypt(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let header = BackupHeader::parse(blob)?;
        let (aad, sealed) = blob.split_at(HEADER_LEN);
        ChaCha20Poly1305::new(&self.key.into())
            .decrypt(&header.nonce.into(), Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| Error::BackupDecryption)
    }
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupKey").field("key", &"[redacted]").field("params", &self.params).finish()
    }
}

/// The parsed, unauthenticated header of a backup blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupHeader {
    /// Argon2id parameters.
    pub params: KdfParams,
    /// Argon2id salt.
    pub salt: [u8; 16],
    /// AEAD nonce.
    pub nonce: [u8; 12],
}

impl BackupHeader {
    /// Parses the header of a blob (magic, version and KDF id checked; not authenticated).
    pub fn parse(blob: &[u8]) -> Result<Self> {
        let mut r = Reader::new(blob, Error::MalformedBackup);
        if r.take(4)? != MAGIC || r.u8()? != VERSION || r.u8()? != KDF_ARGON2ID {
            return Err(Error::MalformedBackup);
        }
        let params = KdfParams { m_cost_kib: r.u32()?, t_cost: r.u32()?, p_cost: r.u32()? };
        let salt = r.array()?;
        let nonce = r.array()?;
        if r.rest().len() < 16 {
            return Err(Error::MalformedBackup);
        }
        Ok(Self { params, salt, nonce })
    }
}

/// Re-derives the key from the passphrase and the blob's own salt and parameters, and
/// decrypts the blob. Returns the key too, so the caller can keep using it.
pub fn decrypt_with_passphrase(passphrase: &[u8], blob: &[u8]) -> Result<(BackupKey, Zeroizing<Vec<u8>>)> {
    let header = BackupHeader::parse(blob)?;
    let key = BackupKey::derive(passphrase, header.salt, header.params)?;
    let plaintext = key.decrypt(blob)?;
    Ok((key, plaintext))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    use super::*;

    #[test]
    fn round_trip_wrong_passphrase_and_tampering() {
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let key = BackupKey::derive(b"correct horse", [7; 16], KdfParams::MIN).unwrap();
        let blob = key.encrypt(b"room keys", &mut rng);
        assert_eq!(&*key.decrypt(&blob).unwrap(), b"room keys");
        let (again, pt) = decrypt_with_passphrase(b"correct horse", &blob).unwrap();
        assert_eq!(&*pt, b"room keys");
        assert_eq!(again.to_bytes(), key.to_bytes());
        assert_eq!(decrypt_with_passphrase(b"wrong horse", &blob).unwrap_err(), Error::BackupDecryption);

        for i in [0, 4, 5, 30, HEADER_LEN - 1, HEADER_LEN, blob.len() - 1] {
            let mut t = blob.clone();
            t[i] ^= 1;
            let err = key.decrypt(&t).unwrap_err();
            let expected = if i < 6 { Error::MalformedBackup } else { Error::BackupDecryption };
            assert_eq!(err, expected, "byte {i}");
        }
        assert_eq!(key.decrypt(&blob[..HEADER_LEN + 15]).unwrap_err(), Error::MalformedBackup);
    }

    #[test]
    fn parameters_out_of_range_are_refused() {
        let weak = KdfParams { m_cost_kib: 1024, ..KdfParams::MIN };
        assert_eq!(BackupKey::derive(b"p", [0; 16], weak).unwrap_err(), Error::BackupParamsOutOfRange);
        let huge = KdfParams { m_cost_kib: 4 * 1024 * 1024, ..KdfParams::MIN };
        assert_eq!(BackupKey::derive(b"p", [0; 16], huge).unwrap_err(), Error::BackupParamsOutOfRange);
        // A blob whose header asks for huge memory is refused before any work.
        let mut rng = ChaCha20Rng::from_seed([2; 32]);
        let key = BackupKey::derive(b"p", [0; 16], KdfParams::MIN).unwrap();
        let mut blob = key.encrypt(b"x", &mut rng);
        blob[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decrypt_with_passphrase(b"p", &blob).unwrap_err(), Error::BackupParamsOutOfRange);
    }

    #[test]
    fn key_transfer_encoding() {
        let key = BackupKey::derive(b"p", [3; 16], KdfParams::MIN).unwrap();
        let bytes = key.to_bytes();
        let back = BackupKey::from_bytes(&bytes).unwrap();
        assert_eq!(back.salt(), [3; 16]);
        assert_eq!(back.params(), KdfParams::MIN);
        assert_eq!(BackupKey::from_bytes(&bytes[..20]).unwrap_err(), Error::MalformedBackup);
        assert!(format!("{key:?}").contains("[redacted]"));
    }
}
