//! The account key (one Ed25519 key per person) and the device certificates it signs.
//!
//! A person's first device creates the [`AccountKey`]; its public half goes to the server and
//! to everyone who talks to that person. Each device of the person gets a
//! [`DeviceCertificate`]: the account key's signature over a canonical, versioned, fixed-length
//! encoding binding the account id, the device id, the device's Ed25519 and Curve25519 keys and
//! the creation time (`FORMAT.md`, "Device certificate v1"):
//!
//! ```text
//! off len field
//!   0  16 magic "KITSULAN-DEVCERT" (domain separation)
//!  16   1 version = 1
//!  17  16 account id (UUID bytes)
//!  33  16 device id (UUID bytes)
//!  49  32 account key (Ed25519 public key that signs)
//!  81  32 device Ed25519 key
//! 113  32 device Curve25519 identity key
//! 145   8 created at, Unix seconds, big-endian u64
//! 153  64 Ed25519 signature by the account key over bytes 0..153
//! ```
//!
//! [`verify_device_certificate`] needs only public keys: the server calls it on upload, and
//! clients call it before trusting a device of someone else.
//!
//! # Security
//!
//! A certificate proves "the holder of this account key vouched for this device", nothing more.
//! Verifiers must pin the account key they first saw for a person (or verified by SAS) and show
//! a warning when it changes; [`Error::CertificateAccountKeyMismatch`] is that signal. The
//! encoding is fixed-length with no optional fields, so one certificate has exactly one byte
//! string and the signature cannot be moved onto a different reading of the same bytes.

use rand_core::CryptoRng;
use vodozemac::Ed25519SecretKey;
use zeroize::Zeroizing;

use crate::encoding::{Reader, b64, ed25519_key, signature};
use crate::pickle::{self, Kind, PickleKey};
use crate::{Error, Result};

/// The domain-separation prefix every certificate starts with.
pub const CERTIFICATE_MAGIC: &[u8; 16] = b"KITSULAN-DEVCERT";
/// The certificate version this build writes and reads.
pub const CERTIFICATE_VERSION: u8 = 1;
/// Length of the signed part of a v1 certificate.
pub const CERTIFICATE_BODY_LEN: usize = 153;
/// Length of a whole v1 certificate (body and signature).
pub const CERTIFICATE_LEN: usize = CERTIFICATE_BODY_LEN + 64;

/// A person's account key: the Ed25519 key that signs their devices' certificates.
///
/// Created once on the first device, then handed to each newly linked device inside the
/// pairing channel. Zeroized on drop; `Debug` shows only the public key.
pub struct AccountKey {
    secret: Ed25519SecretKey,
}

impl AccountKey {
    /// A new random account key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *seed);
        Self::from_secret_bytes(&seed)
    }

    /// Restores the key from its 32-byte secret seed (as sent over the pairing channel).
    pub fn from_secret_bytes(seed: &[u8; 32]) -> Self {
        Self { secret: Ed25519SecretKey::from_slice(seed) }
    }

    /// The 32-byte secret seed, for the pairing channel only.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut boxed = self.secret.to_bytes();
        let out = Zeroizing::new(*boxed);
        zeroize::Zeroize::zeroize(&mut *boxed);
        out
    }

    /// The public key (what the server stores and verifiers pin).
    pub fn public_key(&self) -> [u8; 32] {
        *self.secret.public_key().as_bytes()
    }

    /// The public key as unpadded base64.
    pub fn public_key_base64(&self) -> String {
        b64(&self.public_key())
    }

    /// Signs a certificate for a device of this account.
    pub fn certify(&self, fields: &CertificateFields) -> DeviceCertificate {
        let mut body = encode_body(fields, &self.public_key());
        let signature = self.secret.sign(&body).to_bytes();
        let cert = DeviceCertificate { fields: *fields, account_key: self.public_key(), signature };
        body.clear();
        cert
    }

    /// Pickles the account key under `pickle_key` (the sealed envelope of [`crate::pickle`]).
    pub fn pickle<R: CryptoRng + ?Sized>(&self, pickle_key: &PickleKey, rng: &mut R) -> String {
        pickle::seal(Kind::AccountKey, pickle_key, &*self.to_secret_bytes(), rng)
    }

    /// Restores an account key from [`AccountKey::pickle`].
    pub fn from_pickle(pickle: &str, pickle_key: &PickleKey) -> Result<Self> {
        let body = pickle::open(Kind::AccountKey, pickle_key, pickle)?;
        let seed: &[u8; 32] = body.as_slice().try_into().map_err(|_| Error::MalformedPickle)?;
        Ok(Self::from_secret_bytes(seed))
    }
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKey")
            .field("public_key", &self.public_key_base64())
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// What a device certificate binds together (everything but the signer and the signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateFields {
    /// The person's account id (UUIDv7 bytes).
    pub account_id: [u8; 16],
    /// The device id (UUIDv7 bytes).
    pub device_id: [u8; 16],
    /// The device's Ed25519 signing key.
    pub device_ed25519: [u8; 32],
    /// The device's Curve25519 identity key.
    pub device_curve25519: [u8; 32],
    /// When the certificate was made, Unix seconds.
    pub created_at: u64,
}

/// A signed device certificate (decoded; see the module docs for the byte layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCertificate {
    /// The bound fields.
    pub fields: CertificateFields,
    /// The account key that signed it.
    pub account_key: [u8; 32],
    /// The Ed25519 signature over the body.
    pub signature: [u8; 64],
}

fn encode_body(fields: &CertificateFields, account_key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CERTIFICATE_LEN);
    out.extend_from_slice(CERTIFICATE_MAGIC);
    out.push(CERTIFICATE_VERSION);
    out.extend_from_slice(&fields.account_id);
    out.extend_from_slice(&fields.device_id);
    out.extend_from_slice(account_key);
    out.extend_from_slice(&fields.device_ed25519);
    out.extend_from_slice(&fields.device_curve25519);
    out.extend_from_slice(&fields.created_at.to_be_bytes());
    out
}

impl DeviceCertificate {
    /// The canonical encoding (217 bytes for v1).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = encode_body(&self.fields, &self.account_key);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes a certificate without checking its signature; see
    /// [`verify_device_certificate`] for the check everyone should use.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, Error::MalformedCertificate);
        if r.take(16)? != CERTIFICATE_MAGIC {
            return Err(Error::MalformedCertificate);
        }
        let version = r.u8()?;
        if version != CERTIFICATE_VERSION {
            return Err(Error::UnsupportedCertificateVersion(version));
        }
        let fields_account_id = r.array()?;
        let device_id = r.array()?;
        let account_key = r.array()?;
        let device_ed25519 = r.array()?;
        let device_curve25519 = r.array()?;
        let created_at = r.u64()?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            fields: CertificateFields {
                account_id: fields_account_id,
                device_id,
                device_ed25519,
                device_curve25519,
                created_at,
            },
            account_key,
            signature,
        })
    }

    /// Checks that `trusted_account_key` signed this certificate.
    pub fn verify(&self, trusted_account_key: &[u8]) -> Result<()> {
        if trusted_account_key != self.account_key {
            return Err(Error::CertificateAccountKeyMismatch);
        }
        let key = ed25519_key(trusted_account_key)?;
        // The device key must itself be a valid point, or the certificate binds nothing usable.
        ed25519_key(&self.fields.device_ed25519)?;
        let sig = signature(&self.signature)?;
        let body = encode_body(&self.fields, &self.account_key);
        key.verify(&body, &sig).map_err(|_| Error::CertificateSignature)
    }
}

/// Checks that `bytes` is an Ed25519 public key (32 bytes, a valid curve point): what a server
/// checks before it accepts an account key. Public keys only.
pub fn validate_account_key(bytes: &[u8]) -> Result<()> {
    crate::encoding::ed25519_key(bytes).map(|_| ())
}

/// Decodes `bytes` as a device certificate and checks that `trusted_account_key` (the
/// person's pinned account key, 32 bytes) signed it. Public keys only: the server uses this.
pub fn verify_device_certificate(bytes: &[u8], trusted_account_key: &[u8]) -> Result<DeviceCertificate> {
    let cert = DeviceCertificate::decode(bytes)?;
    cert.verify(trusted_account_key)?;
    Ok(cert)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn fields() -> CertificateFields {
        CertificateFields {
            account_id: [0x11; 16],
            device_id: [0x22; 16],
            device_ed25519: *Ed25519SecretKey::from_slice(&[7; 32]).public_key().as_bytes(),
            device_curve25519: [0x33; 32],
            created_at: 1_760_000_000,
        }
    }

    #[test]
    fn sign_encode_decode_verify() {
        let key = AccountKey::from_secret_bytes(&[5; 32]);
        let cert = key.certify(&fields());
        let bytes = cert.to_bytes();
        assert_eq!(bytes.len(), CERTIFICATE_LEN);
        let back = verify_device_certificate(&bytes, &key.public_key()).unwrap();
        assert_eq!(back, cert);
        assert_eq!(back.fields, fields());
    }

    #[test]
    fn refuses_wrong_account_key() {
        let key = AccountKey::from_secret_bytes(&[5; 32]);
        let other = AccountKey::from_secret_bytes(&[6; 32]);
        let bytes = key.certify(&fields()).to_bytes();
        assert_eq!(
            verify_device_certificate(&bytes, &other.public_key()).unwrap_err(),
            Error::CertificateAccountKeyMismatch
        );
    }

    #[test]
    fn refuses_a_certificate_signed_by_someone_else_claiming_our_key() {
        // An attacker signs with their key but writes the victim's account key into the body.
        let victim = AccountKey::from_secret_bytes(&[5; 32]);
        let attacker = AccountKey::from_secret_bytes(&[6; 32]);
        let mut cert = attacker.certify(&fields());
        cert.account_key = victim.public_key();
        assert_eq!(
            verify_device_certificate(&cert.to_bytes(), &victim.public_key()).unwrap_err(),
            Error::CertificateSignature
        );
    }

    #[test]
    fn refuses_every_tampered_byte() {
        let key = AccountKey::from_secret_bytes(&[5; 32]);
        let bytes = key.certify(&fields()).to_bytes();
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            let err = verify_device_certificate(&t, &key.public_key()).unwrap_err();
            let expected = match i {
                0..16 => Error::MalformedCertificate,
                16 => Error::UnsupportedCertificateVersion(0),
                49..81 => Error::CertificateAccountKeyMismatch,
                _ => Error::CertificateSignature,
            };
            // A flipped bit in the device Ed25519 key may also make it an invalid point.
            if (81..113).contains(&i) && err == Error::InvalidPublicKey("Ed25519") {
                continue;
            }
            assert_eq!(err, expected, "byte {i}");
        }
    }

    #[test]
    fn refuses_truncated_and_extended_input() {
        let key = AccountKey::from_secret_bytes(&[5; 32]);
        let bytes = key.certify(&fields()).to_bytes();
        for len in [0, 16, 17, CERTIFICATE_BODY_LEN, CERTIFICATE_LEN - 1] {
            assert_eq!(
                verify_device_certificate(&bytes[..len], &key.public_key()).unwrap_err(),
                Error::MalformedCertificate,
                "len {len}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            verify_device_certificate(&long, &key.public_key()).unwrap_err(),
            Error::MalformedCertificate
        );
    }

    #[test]
    fn account_key_pickles_and_transfers() {
        use chacha20::ChaCha20Rng;
        use rand_core::SeedableRng as _;
        let mut rng = ChaCha20Rng::from_seed([3; 32]);
        let key = AccountKey::generate(&mut rng);
        let pk = PickleKey::from_bytes([8; 32]);
        let pickled = key.pickle(&pk, &mut rng);
        assert_eq!(AccountKey::from_pickle(&pickled, &pk).unwrap().public_key(), key.public_key());
        assert_eq!(
            AccountKey::from_pickle(&pickled, &PickleKey::from_bytes([9; 32])).unwrap_err(),
            Error::PickleDecryption
        );
        let moved = AccountKey::from_secret_bytes(&key.to_secret_bytes());
        assert_eq!(moved.public_key(), key.public_key());
        let debug = format!("{key:?}");
        assert!(debug.contains("[redacted]"));
        assert!(!debug.contains(&b64(&*key.to_secret_bytes())));
    }
}
