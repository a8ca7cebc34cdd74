//! A device's Olm account: its identity keys and its signed one-time and fallback keys.
//!
//! [`DeviceAccount`] wraps vodozemac's `Account`: a Curve25519 identity key, an Ed25519 signing
//! key, one-time keys and a fallback key. Each one-time and fallback key is uploaded with the
//! device's Ed25519 signature over a canonical, domain-separated payload (`FORMAT.md`,
//! "One-time and fallback key signatures"):
//!
//! ```text
//! one-time key:  "kitsulan/otk/v1"      || key id (u64, big-endian) || Curve25519 key (32)
//! fallback key:  "kitsulan/fallback/v1" || key id (u64, big-endian) || Curve25519 key (32)
//! ```
//!
//! The two prefixes differ so that a fallback key (handed out many times) can never be passed
//! off as a one-time key (handed out once), and vice versa. [`verify_one_time_key`] and
//! [`verify_fallback_key`] need only the device's public Ed25519 key: the server checks every
//! upload, and a client checks a claimed key again before building an Olm session on it.

use vodozemac::olm::{Account, SessionConfig};
use vodozemac::{Curve25519PublicKey, KeyId};

use crate::certificate::CertificateFields;
use crate::encoding::{b64, curve25519_key, ed25519_key, signature, unb64};
use crate::olm::{OlmSession, decode_message};
use crate::pickle::{self, PickleKey};
use crate::{Error, Result};

/// Domain prefix of a one-time key signature payload.
pub const OTK_DOMAIN: &[u8] = b"kitsulan/otk/v1";
/// Domain prefix of a fallback key signature payload.
pub const FALLBACK_DOMAIN: &[u8] = b"kitsulan/fallback/v1";

/// The exact bytes the device signs for a one-time key.
pub fn one_time_key_payload(key_id: u64, key: &[u8; 32]) -> Vec<u8> {
    payload(OTK_DOMAIN, key_id, key)
}

/// The exact bytes the device signs for a fallback key.
pub fn fallback_key_payload(key_id: u64, key: &[u8; 32]) -> Vec<u8> {
    payload(FALLBACK_DOMAIN, key_id, key)
}

fn payload(domain: &[u8], key_id: u64, key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(domain.len() + 8 + 32);
    out.extend_from_slice(domain);
    out.extend_from_slice(&key_id.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// A one-time key with the device's signature, as uploaded to and claimed from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedOneTimeKey {
    /// The device-local key id (vodozemac's counter).
    pub key_id: u64,
    /// The Curve25519 public key.
    pub public_key: [u8; 32],
    /// Ed25519 signature by the device key over [`one_time_key_payload`].
    pub signature: [u8; 64],
}

/// A fallback key with the device's signature; used when the device has no one-time key left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedFallbackKey {
    /// The device-local key id.
    pub key_id: u64,
    /// The Curve25519 public key.
    pub public_key: [u8; 32],
    /// Ed25519 signature by the device key over [`fallback_key_payload`].
    pub signature: [u8; 64],
}

/// Checks a one-time key's signature against the device's Ed25519 key (32 bytes).
pub fn verify_one_time_key(device_ed25519: &[u8], key: &SignedOneTimeKey) -> Result<()> {
    let device = ed25519_key(device_ed25519)?;
    let sig = signature(&key.signature)?;
    device
        .verify(&one_time_key_payload(key.key_id, &key.public_key), &sig)
        .map_err(|_| Error::OneTimeKeySignature)
}

/// Checks a fallback key's signature against the device's Ed25519 key (32 bytes).
pub fn verify_fallback_key(device_ed25519: &[u8], key: &SignedFallbackKey) -> Result<()> {
    let device = ed25519_key(device_ed25519)?;
    let sig = signature(&key.signature)?;
    device
        .verify(&fallback_key_payload(key.key_id, &key.public_key), &sig)
        .map_err(|_| Error::FallbackKeySignature)
}

/// A key claimed from the server to start an Olm session with: one-time, or the fallback key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimedKey {
    /// A one-time key (the normal case).
    OneTime(SignedOneTimeKey),
    /// The device's fallback key (its one-time keys ran out).
    Fallback(SignedFallbackKey),
}

fn key_id_u64(id: KeyId) -> u64 {
    // vodozemac exposes the counter only as base64 of its big-endian bytes.
    let bytes = unb64(&id.to_base64()).unwrap_or_default();
    bytes.as_slice().try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX)
}

/// A device's Olm account. Holds private keys; `Debug` shows only the public ones.
pub struct DeviceAccount {
    inner: Account,
}

impl DeviceAccount {
    /// Creates a device with new random identity keys (from the OS RNG, inside vodozemac).
    pub fn new() -> Self {
        Self { inner: Account::new() }
    }

    /// The device's Ed25519 signing key.
    pub fn ed25519_key(&self) -> [u8; 32] {
        *self.inner.ed25519_key().as_bytes()
    }

    /// The device's Curve25519 identity key.
    pub fn curve25519_key(&self) -> [u8; 32] {
        self.inner.curve25519_key().to_bytes()
    }

    /// The Ed25519 key as unpadded base64.
    pub fn ed25519_key_base64(&self) -> String {
        self.inner.ed25519_key().to_base64()
    }

    /// The Curve25519 key as unpadded base64.
    pub fn curve25519_key_base64(&self) -> String {
        self.inner.curve25519_key().to_base64()
    }

    /// The fields for this device's certificate, for the account key to sign.
    pub fn certificate_fields(
        &self,
        account_id: [u8; 16],
        device_id: [u8; 16],
        created_at: u64,
    ) -> CertificateFields {
        CertificateFields {
            account_id,
            device_id,
            device_ed25519: self.ed25519_key(),
            device_curve25519: self.curve25519_key(),
            created_at,
        }
    }

    /// Signs arbitrary bytes with the device's Ed25519 key.
    ///
    /// # Security
    ///
    /// Callers must prefix their own domain string, as the key and certificate payloads here
    /// do, so a signature made for one purpose is never valid for another.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.inner.sign(message).to_bytes()
    }

    /// How many one-time keys the server should hold for this device at most.
    pub fn max_one_time_keys(&self) -> usize {
        self.inner.max_number_of_one_time_keys()
    }

    /// Generates `count` new one-time keys and returns every unpublished one-time key, signed.
    /// Upload them, then call [`DeviceAccount::mark_keys_as_published`].
    pub fn generate_one_time_keys(&mut self, count: usize) -> Vec<SignedOneTimeKey> {
        self.inner.generate_one_time_keys(count);
        self.unpublished_one_time_keys()
    }

    /// The one-time keys not yet marked published, signed, ordered by key id.
    pub fn unpublished_one_time_keys(&self) -> Vec<SignedOneTimeKey> {
        let mut keys: Vec<SignedOneTimeKey> = self
            .inner
            .one_time_keys()
            .into_iter()
            .map(|(id, key)| {
                let key_id = key_id_u64(id);
                let public_key = key.to_bytes();
                let signature = self.sign(&one_time_key_payload(key_id, &public_key));
                SignedOneTimeKey { key_id, public_key, signature }
            })
            .collect();
        keys.sort_by_key(|k| k.key_id);
        keys
    }

    /// Generates a new fallback key (the previous one stays usable until the next rotation)
    /// and returns it signed.
    pub fn generate_fallback_key(&mut self) -> Option<SignedFallbackKey> {
        self.inner.generate_fallback_key();
        self.unpublished_fallback_key()
    }

    /// The current fallback key if it is not yet published, signed.
    pub fn unpublished_fallback_key(&self) -> Option<SignedFallbackKey> {
        self.inner.fallback_key().into_iter().next().map(|(id, key)| {
            let key_id = key_id_u64(id);
            let public_key = key.to_bytes();
            let signature = self.sign(&fallback_key_payload(key_id, &public_key));
            SignedFallbackKey { key_id, public_key, signature }
        })
    }

    /// Marks every current one-time and fallback key as uploaded.
    pub fn mark_keys_as_published(&mut self) {
        self.inner.mark_keys_as_published();
    }

    /// Starts an Olm session to another device from a key claimed from the server.
    ///
    /// The claimed key's signature is checked against `their_ed25519` first.
    ///
    /// # Security
    ///
    /// `their_ed25519` and `their_curve25519` must come from a device certificate the caller
    /// verified with [`crate::verify_device_certificate`] against the person's pinned account
    /// key; otherwise the server could substitute its own device.
    pub fn create_outbound_session(
        &self,
        their_ed25519: &[u8],
        their_curve25519: &[u8],
        claimed: &ClaimedKey,
    ) -> Result<OlmSession> {
        let public_key = match claimed {
            ClaimedKey::OneTime(k) => {
                verify_one_time_key(their_ed25519, k)?;
                k.public_key
            }
            ClaimedKey::Fallback(k) => {
                verify_fallback_key(their_ed25519, k)?;
                k.public_key
            }
        };
        let identity = curve25519_key(their_curve25519)?;
        let one_time = Curve25519PublicKey::from_bytes(public_key);
        self.inner
            .create_outbound_session(SessionConfig::version_1(), identity, one_time)
            .map(OlmSession::from_inner)
            .map_err(|_| Error::OlmSessionCreation)
    }

    /// Creates the inbound session from the first message another device sent us (a pre-key
    /// message) and returns it with the decrypted plaintext. The used one-time key is removed.
    pub fn create_inbound_session(
        &mut self,
        their_curve25519: &[u8],
        message: &[u8],
    ) -> Result<(OlmSession, Vec<u8>)> {
        let identity = curve25519_key(their_curve25519)?;
        let vodozemac::olm::OlmMessage::PreKey(pre_key) = decode_message(message)? else {
            return Err(Error::NotPreKeyMessage);
        };
        match self.inner.create_inbound_session(SessionConfig::version_1(), identity, &pre_key) {
            Ok(result) => Ok((OlmSession::from_inner(result.session), result.plaintext)),
            Err(vodozemac::olm::SessionCreationError::MissingOneTimeKey(_)) => Err(Error::UnknownOneTimeKey),
            Err(vodozemac::olm::SessionCreationError::Decryption(_)) => Err(Error::OlmDecryption),
            Err(_) => Err(Error::OlmSessionCreation),
        }
    }

    /// Pickles the account (vodozemac's encrypted pickle) under `pickle_key`.
    pub fn pickle(&self, pickle_key: &PickleKey) -> String {
        self.inner.pickle().encrypt(pickle_key.as_bytes())
    }

    /// Restores an account from [`DeviceAccount::pickle`].
    pub fn from_pickle(pickle: &str, pickle_key: &PickleKey) -> Result<Self> {
        let p = vodozemac::olm::AccountPickle::from_encrypted(pickle, pickle_key.as_bytes())
            .map_err(pickle::from_vodozemac)?;
        Ok(Self { inner: Account::from_pickle(p) })
    }
}

impl Default for DeviceAccount {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for DeviceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAccount")
            .field("ed25519", &self.ed25519_key_base64())
            .field("curve25519", &self.curve25519_key_base64())
            .field("secrets", &"[redacted]")
            .finish()
    }
}

impl SignedOneTimeKey {
    /// The public key as unpadded base64.
    pub fn public_key_base64(&self) -> String {
        b64(&self.public_key)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn one_time_keys_are_signed_and_verifiable() {
        let mut device = DeviceAccount::new();
        let keys = device.generate_one_time_keys(5);
        assert_eq!(keys.len(), 5);
        let ids: Vec<u64> = keys.iter().map(|k| k.key_id).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4]);
        for k in &keys {
            verify_one_time_key(&device.ed25519_key(), k).unwrap();
        }
        device.mark_keys_as_published();
        assert!(device.unpublished_one_time_keys().is_empty());
        assert_eq!(device.generate_one_time_keys(2).len(), 2);
    }

    #[test]
    fn bad_signatures_are_refused() {
        let mut device = DeviceAccount::new();
        let other = DeviceAccount::new();
        let key = device.generate_one_time_keys(1)[0];
        assert_eq!(verify_one_time_key(&other.ed25519_key(), &key).unwrap_err(), Error::OneTimeKeySignature);
        let mut tampered = key;
        tampered.public_key[0] ^= 1;
        assert_eq!(
            verify_one_time_key(&device.ed25519_key(), &tampered).unwrap_err(),
            Error::OneTimeKeySignature
        );
        let mut renumbered = key;
        renumbered.key_id += 1;
        assert_eq!(
            verify_one_time_key(&device.ed25519_key(), &renumbered).unwrap_err(),
            Error::OneTimeKeySignature
        );
        assert_eq!(verify_one_time_key(&[1; 3], &key).unwrap_err(), Error::InvalidPublicKey("Ed25519"));
    }

    #[test]
    fn fallback_and_one_time_signatures_do_not_cross() {
        let mut device = DeviceAccount::new();
        let fallback = device.generate_fallback_key().unwrap();
        verify_fallback_key(&device.ed25519_key(), &fallback).unwrap();
        let as_otk = SignedOneTimeKey {
            key_id: fallback.key_id,
            public_key: fallback.public_key,
            signature: fallback.signature,
        };
        assert_eq!(
            verify_one_time_key(&device.ed25519_key(), &as_otk).unwrap_err(),
            Error::OneTimeKeySignature
        );
        let otk = device.generate_one_time_keys(1)[0];
        let as_fallback =
            SignedFallbackKey { key_id: otk.key_id, public_key: otk.public_key, signature: otk.signature };
        assert_eq!(
            verify_fallback_key(&device.ed25519_key(), &as_fallback).unwrap_err(),
            Error::FallbackKeySignature
        );
        device.mark_keys_as_published();
        assert!(device.unpublished_fallback_key().is_none());
    }

    #[test]
    fn pickle_round_trip_and_wrong_key() {
        let device = DeviceAccount::new();
        let key = PickleKey::from_bytes([4; 32]);
        let pickled = device.pickle(&key);
        let back = DeviceAccount::from_pickle(&pickled, &key).unwrap();
        assert_eq!(back.ed25519_key(), device.ed25519_key());
        assert_eq!(back.curve25519_key(), device.curve25519_key());
        assert_eq!(
            DeviceAccount::from_pickle(&pickled, &PickleKey::from_bytes([5; 32])).unwrap_err(),
            Error::PickleDecryption
        );
        assert_eq!(DeviceAccount::from_pickle("@@@", &key).unwrap_err(), Error::MalformedPickle);
        assert!(format!("{device:?}").contains("[redacted]"));
    }
}
