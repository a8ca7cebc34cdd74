//! Attachment encryption: a random key per file, AES-256-CTR over the file in streaming
//! chunks, and the SHA-256 of the ciphertext.
//!
//! [`AttachmentEncryptor`] and [`AttachmentDecryptor`] take the file chunk by chunk (any chunk
//! sizes), so a 200 MB file never sits in memory. The sender uploads the ciphertext and puts
//! the [`AttachmentSecrets`] (key, IV, ciphertext hash) into the E2EE message; the receiver
//! downloads, decrypts, and [`AttachmentDecryptor::finish`] checks the hash.
//!
//! The IV is 8 random bytes followed by 8 zero bytes, used as a 128-bit big-endian counter:
//! the low half counts blocks from zero and never carries into the random half for any file
//! under 2^64 blocks, which also makes it WebCrypto `AES-CTR` with `length: 64` (Matrix's
//! attachment scheme). `FORMAT.md` ("Attachment") has the reference encoding.
//!
//! # Why CTR and not GCM
//!
//! A single GCM tag over a whole file cannot be checked before the whole file is processed
//! either, and chunked AEAD would be a format of our own. CTR plus a SHA-256 of the ciphertext
//! carried inside the authenticated E2EE message gives the same integrity with a standard,
//! streamable, WebCrypto-compatible construction.
//!
//! # Security
//!
//! The decryptor releases plaintext before the hash is known to match. Write it to a
//! temporary place and use it (show, save, open) only after [`AttachmentDecryptor::finish`]
//! returns `Ok`; on error, delete it. Never reuse a key: every file gets a fresh random key.

use aes::Aes256;
use ctr::cipher::{KeyIvInit as _, StreamCipher as _};
use rand_core::CryptoRng;
use sha2::{Digest as _, Sha256};
use subtle_free::ct_eq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::encoding::Reader;
use crate::{Error, Result};

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// Version byte of the encoded [`AttachmentSecrets`].
pub const ATTACHMENT_SECRETS_VERSION: u8 = 1;
/// Length of the encoded [`AttachmentSecrets`].
pub const ATTACHMENT_SECRETS_LEN: usize = 1 + 32 + 16 + 32;

/// What the receiver needs to decrypt and check an attachment. Secret: it travels only inside
/// E2EE messages. `Debug` shows only the hash.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct AttachmentSecrets {
    /// The AES-256 key.
    pub key: [u8; 32],
    /// The initial counter block (8 random bytes, 8 zero bytes).
    pub iv: [u8; 16],
    /// SHA-256 of the whole ciphertext.
    pub sha256: [u8; 32],
}

impl AttachmentSecrets {
    /// `version (1) | key (32) | iv (16) | sha256 (32)`.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(ATTACHMENT_SECRETS_LEN));
        out.push(ATTACHMENT_SECRETS_VERSION);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.iv);
        out.extend_from_slice(&self.sha256);
        out
    }

    /// Parses [`AttachmentSecrets::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, Error::MalformedAttachmentReference);
        if r.u8()? != ATTACHMENT_SECRETS_VERSION {
            return Err(Error::MalformedAttachmentReference);
        }
        let secrets = Self { key: r.array()?, iv: r.array()?, sha256: r.array()? };
        r.finish()?;
        Ok(secrets)
    }
}

impl std::fmt::Debug for AttachmentSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentSecrets")
            .field("key", &"[redacted]")
            .field("iv", &"[redacted]")
            .field("sha256", &crate::encoding::b64(&self.sha256))
            .finish()
    }
}

/// Encrypts one file, chunk by chunk.
pub struct AttachmentEncryptor {
    cipher: Aes256Ctr,
    hasher: Sha256,
    key: [u8; 32],
    iv: [u8; 16],
    len: u64,
}

impl AttachmentEncryptor {
    /// Starts a file with a fresh random key and IV.
    pub fn new<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let mut iv = [0u8; 16];
        rng.fill_bytes(&mut iv[..8]);
        let cipher = Aes256Ctr::new(&key.into(), &iv.into());
        Self { cipher, hasher: Sha256::new(), key, iv, len: 0 }
    }

    /// Encrypts the next chunk in place.
    pub fn update_in_place(&mut self, chunk: &mut [u8]) {
        self.cipher.apply_keystream(chunk);
        self.hasher.update(&*chunk);
        self.len += chunk.len() as u64;
    }

    /// Encrypts the next chunk into a new buffer.
    pub fn update(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = chunk.to_vec();
        self.update_in_place(&mut out);
        out
    }

    /// Bytes encrypted so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been encrypted yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finishes the file: the key, IV and ciphertext hash to put into the message.
    pub fn finish(mut self) -> AttachmentSecrets {
        let sha256 = std::mem::take(&mut self.hasher).finalize().into();
        AttachmentSecrets { key: self.key, iv: self.iv, sha256 }
    }
}

impl Drop for AttachmentEncryptor {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for AttachmentEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentEncryptor").field("len", &self.len).finish_non_exhaustive()
    }
}

/// Decrypts one file, chunk by chunk, and checks its hash at the end (see the module's
/// `# Security` note).
pub struct AttachmentDecryptor {
    cipher: Aes256Ctr,
    hasher: Sha256,
    expected: [u8; 32],
    len: u64,
}

impl AttachmentDecryptor {
    /// Starts decrypting with the secrets from the message.
    pub fn new(secrets: &AttachmentSecrets) -> Self {
        Self {
            cipher: Aes256Ctr::new(&secrets.key.into(), &secrets.iv.into()),
            hasher: Sha256::new(),
            expected: secrets.sha256,
            len: 0,
        }
    }

    /// Decrypts the next chunk in place.
    pub fn update_in_place(&mut self, chunk: &mut [u8]) {
        self.hasher.update(&*chunk);
        self.cipher.apply_keystream(chunk);
        self.len += chunk.len() as u64;
    }

    /// Decrypts the next chunk into a new buffer.
    pub fn update(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = chunk.to_vec();
        self.update_in_place(&mut out);
        out
    }

    /// Bytes decrypted so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been decrypted yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks the ciphertext hash; only after `Ok` may the plaintext be used.
    pub fn finish(self) -> Result<()> {
        let actual: [u8; 32] = self.hasher.finalize().into();
        if ct_eq(&actual, &self.expected) { Ok(()) } else { Err(Error::AttachmentHashMismatch) }
    }
}

impl std::fmt::Debug for AttachmentDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentDecryptor").field("len", &self.len).finish_non_exhaustive()
    }
}

/// Constant-time comparison without another dependency (the hash is not secret, but this
/// keeps the habit).
mod subtle_free {
    pub(super) fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    use super::*;

    fn encrypt_all(data: &[u8], chunk: usize, rng: &mut ChaCha20Rng) -> (Vec<u8>, AttachmentSecrets) {
        let mut enc = AttachmentEncryptor::new(rng);
        let mut out = Vec::new();
        for c in data.chunks(chunk.max(1)) {
            out.extend(enc.update(c));
        }
        assert_eq!(enc.len(), data.len() as u64);
        (out, enc.finish())
    }

    #[test]
    fn round_trip_with_any_chunking() {
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (ct, secrets) = encrypt_all(&data, 1000, &mut rng);
        assert_ne!(ct, data);
        assert_eq!(&secrets.iv[8..], &[0; 8]);
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&ct)), secrets.sha256);
        for chunk in [1, 15, 16, 17, 4096, 20_000] {
            let mut dec = AttachmentDecryptor::new(&secrets);
            let mut pt = Vec::new();
            for c in ct.chunks(chunk) {
                pt.extend(dec.update(c));
            }
            dec.finish().unwrap();
            assert_eq!(pt, data, "chunk {chunk}");
        }
    }

    #[test]
    fn tampering_and_wrong_hash_are_detected() {
        let mut rng = ChaCha20Rng::from_seed([2; 32]);
        let (mut ct, secrets) = encrypt_all(b"a photo", 3, &mut rng);
        ct[2] ^= 1;
        let mut dec = AttachmentDecryptor::new(&secrets);
        dec.update(&ct);
        assert_eq!(dec.finish().unwrap_err(), Error::AttachmentHashMismatch);
        // Truncation too.
        ct[2] ^= 1;
        let mut dec = AttachmentDecryptor::new(&secrets);
        dec.update(&ct[..ct.len() - 1]);
        assert_eq!(dec.finish().unwrap_err(), Error::AttachmentHashMismatch);
    }

    #[test]
    fn secrets_encoding() {
        let mut rng = ChaCha20Rng::from_seed([3; 32]);
        let (_, secrets) = encrypt_all(b"", 1, &mut rng);
        let bytes = secrets.to_bytes();
        assert_eq!(bytes.len(), ATTACHMENT_SECRETS_LEN);
        assert_eq!(AttachmentSecrets::from_bytes(&bytes).unwrap(), secrets);
        assert_eq!(
            AttachmentSecrets::from_bytes(&bytes[1..]).unwrap_err(),
            Error::MalformedAttachmentReference
        );
        let debug = format!("{secrets:?}");
        assert!(debug.contains("[redacted]"));
    }
}
