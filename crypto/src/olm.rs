//! One-to-one Olm sessions between two devices (to-device messages: Megolm key shares,
//! pairing and signaling payloads).
//!
//! Sessions are created by [`crate::DeviceAccount::create_outbound_session`] (from a claimed,
//! signature-checked one-time key) and [`crate::DeviceAccount::create_inbound_session`] (from
//! the first message received). An Olm message travels as bytes (`FORMAT.md`, "Olm message"):
//!
//! ```text
//! type (1 byte: 0 = pre-key, 1 = normal) || vodozemac/libolm message bytes
//! ```
//!
//! The sender keeps sending pre-key messages until it has decrypted a reply; the receiver
//! tries its existing sessions with that peer before creating a new inbound one.

use vodozemac::olm::{OlmMessage, Session};

use crate::pickle::{self, PickleKey};
use crate::{Error, Result};

/// Message type byte of a pre-key message.
pub const PRE_KEY_MESSAGE: u8 = 0;
/// Message type byte of a normal message.
pub const NORMAL_MESSAGE: u8 = 1;

/// Parses the wire form of an Olm message.
pub(crate) fn decode_message(bytes: &[u8]) -> Result<OlmMessage> {
    let (&kind, body) = bytes.split_first().ok_or(Error::MalformedOlmMessage)?;
    if kind > NORMAL_MESSAGE {
        return Err(Error::MalformedOlmMessage);
    }
    OlmMessage::from_parts(usize::from(kind), body).map_err(|_| Error::MalformedOlmMessage)
}

fn encode_message(message: &OlmMessage) -> Vec<u8> {
    let (kind, body) = message.to_parts();
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(if kind == 0 { PRE_KEY_MESSAGE } else { NORMAL_MESSAGE });
    out.extend_from_slice(&body);
    out
}

/// Whether `message` is an Olm pre-key message (so it may start a new inbound session).
pub fn is_pre_key_message(message: &[u8]) -> bool {
    matches!(decode_message(message), Ok(OlmMessage::PreKey(_)))
}

/// An Olm session with one other device. Holds ratchet secrets; `Debug` shows only its id.
pub struct OlmSession {
    inner: Session,
}

impl OlmSession {
    pub(crate) fn from_inner(inner: Session) -> Self {
        Self { inner }
    }

    /// The session id (unpadded base64), the same on both sides.
    pub fn session_id(&self) -> String {
        self.inner.session_id()
    }

    /// Whether this session has decrypted a message from the other side (after which it sends
    /// normal messages instead of pre-key messages).
    pub fn has_received_message(&self) -> bool {
        self.inner.has_received_message()
    }

    /// Whether a pre-key message was created by the other side of this very session (so it
    /// should be decrypted here rather than start a new inbound session).
    pub fn matches_pre_key_message(&self, message: &[u8]) -> bool {
        match decode_message(message) {
            Ok(OlmMessage::PreKey(m)) => m.session_keys() == self.inner.session_keys(),
            _ => false,
        }
    }

    /// Encrypts `plaintext` into an Olm message (wire form above).
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let message = self.inner.encrypt(plaintext).map_err(|_| Error::OlmEncryption)?;
        Ok(encode_message(&message))
    }

    /// Decrypts an Olm message of this session.
    pub fn decrypt(&mut self, message: &[u8]) -> Result<Vec<u8>> {
        let message = decode_message(message)?;
        self.inner.decrypt(&message).map_err(|_| Error::OlmDecryption)
    }

    /// Pickles the session (vodozemac's encrypted pickle) under `pickle_key`.
    pub fn pickle(&self, pickle_key: &PickleKey) -> String {
        self.inner.pickle().encrypt(pickle_key.as_bytes())
    }

    /// Restores a session from [`OlmSession::pickle`].
    pub fn from_pickle(pickle: &str, pickle_key: &PickleKey) -> Result<Self> {
        let p = vodozemac::olm::SessionPickle::from_encrypted(pickle, pickle_key.as_bytes())
            .map_err(pickle::from_vodozemac)?;
        Ok(Self { inner: Session::from_pickle(p) })
    }
}

impl std::fmt::Debug for OlmSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OlmSession")
            .field("session_id", &self.session_id())
            .field("secrets", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::DeviceAccount;
    use crate::device::ClaimedKey;

    fn pair() -> (DeviceAccount, DeviceAccount, OlmSession, OlmSession) {
        let alice = DeviceAccount::new();
        let mut bob = DeviceAccount::new();
        let otk = bob.generate_one_time_keys(1)[0];
        bob.mark_keys_as_published();
        let mut out = alice
            .create_outbound_session(&bob.ed25519_key(), &bob.curve25519_key(), &ClaimedKey::OneTime(otk))
            .unwrap();
        let first = out.encrypt(b"hello bob").unwrap();
        assert!(is_pre_key_message(&first));
        let (inbound, plaintext) = bob.create_inbound_session(&alice.curve25519_key(), &first).unwrap();
        assert_eq!(plaintext, b"hello bob");
        assert_eq!(inbound.session_id(), out.session_id());
        (alice, bob, out, inbound)
    }

    #[test]
    fn both_directions() {
        let (_alice, _bob, mut a, mut b) = pair();
        let reply = b.encrypt(b"hi alice").unwrap();
        assert_eq!(reply[0], NORMAL_MESSAGE);
        assert_eq!(a.decrypt(&reply).unwrap(), b"hi alice");
        assert!(a.has_received_message());
        let next = a.encrypt(b"second").unwrap();
        assert!(!is_pre_key_message(&next));
        assert_eq!(b.decrypt(&next).unwrap(), b"second");
    }

    #[test]
    fn refuses_bad_otk_signature_before_creating_a_session() {
        let alice = DeviceAccount::new();
        let mut bob = DeviceAccount::new();
        let mallory = DeviceAccount::new();
        let mut otk = bob.generate_one_time_keys(1)[0];
        otk.signature = mallory.sign(&crate::device::one_time_key_payload(otk.key_id, &otk.public_key));
        assert_eq!(
            alice
                .create_outbound_session(&bob.ed25519_key(), &bob.curve25519_key(), &ClaimedKey::OneTime(otk))
                .unwrap_err(),
            Error::OneTimeKeySignature
        );
    }

    #[test]
    fn fallback_key_sessions_work() {
        let alice = DeviceAccount::new();
        let mut bob = DeviceAccount::new();
        let fallback = bob.generate_fallback_key().unwrap();
        let mut out = alice
            .create_outbound_session(
                &bob.ed25519_key(),
                &bob.curve25519_key(),
                &ClaimedKey::Fallback(fallback),
            )
            .unwrap();
        let m = out.encrypt(b"via fallback").unwrap();
        let (_s, p) = bob.create_inbound_session(&alice.curve25519_key(), &m).unwrap();
        assert_eq!(p, b"via fallback");
    }

    #[test]
    fn negative_cases() {
        let (alice, mut bob, mut a, mut b) = pair();
        // Tampered ciphertext.
        let mut m = a.encrypt(b"x").unwrap();
        let last = m.len() - 1;
        m[last] ^= 1;
        assert_eq!(b.decrypt(&m).unwrap_err(), Error::OlmDecryption);
        // Malformed bytes.
        assert_eq!(b.decrypt(&[]).unwrap_err(), Error::MalformedOlmMessage);
        assert_eq!(b.decrypt(&[7, 1, 2]).unwrap_err(), Error::MalformedOlmMessage);
        assert_eq!(b.decrypt(&[1, 1, 2]).unwrap_err(), Error::MalformedOlmMessage);
        // A one-time key is used up by its first session.
        let first = a.encrypt(b"again").unwrap();
        assert!(b.matches_pre_key_message(&first));
        assert_eq!(
            bob.create_inbound_session(&alice.curve25519_key(), &first).unwrap_err(),
            Error::UnknownOneTimeKey
        );
        // A normal message cannot start a session.
        let normal = b.encrypt(b"n").unwrap();
        assert_eq!(
            bob.create_inbound_session(&alice.curve25519_key(), &normal).unwrap_err(),
            Error::NotPreKeyMessage
        );
        // Wrong claimed sender identity.
        let mallory = DeviceAccount::new();
        let mut fresh = DeviceAccount::new();
        let otk = fresh.generate_one_time_keys(1)[0];
        let mut s = alice
            .create_outbound_session(&fresh.ed25519_key(), &fresh.curve25519_key(), &ClaimedKey::OneTime(otk))
            .unwrap();
        let m = s.encrypt(b"x").unwrap();
        assert_eq!(
            fresh.create_inbound_session(&mallory.curve25519_key(), &m).unwrap_err(),
            Error::OlmSessionCreation
        );
    }

    #[test]
    fn pickle_round_trip_keeps_the_ratchet() {
        let (_alice, _bob, mut a, b) = pair();
        let key = PickleKey::from_bytes([2; 32]);
        let mut b = OlmSession::from_pickle(&b.pickle(&key), &key).unwrap();
        let m = a.encrypt(b"after restore").unwrap();
        assert_eq!(b.decrypt(&m).unwrap(), b"after restore");
        assert_eq!(
            OlmSession::from_pickle(&b.pickle(&key), &PickleKey::from_bytes([3; 32])).unwrap_err(),
            Error::PickleDecryption
        );
        assert!(format!("{b:?}").contains("[redacted]"));
    }
}
