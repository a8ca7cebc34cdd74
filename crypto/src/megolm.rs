//! Megolm group sessions for conversation messages, with replay rejection on the inbound side.
//!
//! Each sending device keeps one [`OutboundGroupSession`] per conversation and shares its
//! session key with every member device over Olm; receivers build an [`InboundGroupSession`]
//! from it. A Megolm message travels as vodozemac's bytes (`FORMAT.md`, "Megolm message").
//!
//! # Replay rejection
//!
//! vodozemac alone decrypts the same message as often as it is presented. Our
//! [`InboundGroupSession`] remembers, for every message index it has decrypted, the SHA-256 of
//! the message (re-encoded canonically after parsing, so two encodings of one message count as
//! the same message). Then:
//!
//! | call | index never seen | same message again | different message, same index |
//! |---|---|---|---|
//! | [`InboundGroupSession::decrypt`] (live traffic) | decrypts, records | [`Error::MegolmReplay`] | [`Error::MegolmIndexConflict`] |
//! | [`InboundGroupSession::decrypt_history`] (re-reading stored history) | decrypts, records | decrypts | [`Error::MegolmIndexConflict`] |
//!
//! Only messages that authenticate (signature and MAC) are recorded or compared, so a forger
//! cannot poison the record. The record is part of the pickle. It holds at most
//! [`MAX_TRACKED_INDICES`] indices (ten times the rotation limit of 100 messages); past that,
//! new indices are refused with [`Error::MegolmTooManyMessages`].
//!
//! # Security
//!
//! A conflict means the sender encrypted two different messages with the same ratchet state:
//! its session state was cloned or restored from an old copy, or its key leaked. Show it as a
//! warning on that sender, not as a normal decryption failure. The record is as fresh as the
//! pickle it is loaded from: restoring an old pickle forgets later indices (see
//! [`crate::pickle`]).

use std::collections::BTreeMap;

use rand_core::CryptoRng;
use sha2::{Digest as _, Sha256};
use vodozemac::megolm::{
    ExportedSessionKey, GroupSession, InboundGroupSession as VodozemacInbound, MegolmMessage, SessionConfig,
    SessionKey,
};
use zeroize::Zeroizing;

use crate::encoding::Reader;
use crate::pickle::{self, Kind, PickleKey};
use crate::{Error, Result};

/// How many distinct message indices one inbound session tracks at most.
pub const MAX_TRACKED_INDICES: usize = 1024;

/// The sending side of a conversation's Megolm session. Holds the ratchet; `Debug` shows only
/// the session id and index.
pub struct OutboundGroupSession {
    inner: GroupSession,
}

impl OutboundGroupSession {
    /// A new session with a random ratchet and signing key.
    pub fn new() -> Self {
        Self { inner: GroupSession::new(SessionConfig::version_1()) }
    }

    /// The session id (unpadded base64 of the session's public signing key).
    pub fn session_id(&self) -> String {
        self.inner.session_id()
    }

    /// The index the next message will get (the number of messages sent so far).
    pub fn message_index(&self) -> u32 {
        self.inner.message_index()
    }

    /// The session key at the current index, to share with member devices over Olm.
    /// Receivers can decrypt messages from this index on.
    pub fn session_key(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.inner.session_key().to_bytes())
    }

    /// Encrypts a message; the index advances by one.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.inner.encrypt(plaintext).to_bytes()
    }

    /// Pickles the session (vodozemac's encrypted pickle) under `pickle_key`.
    pub fn pickle(&self, pickle_key: &PickleKey) -> String {
        self.inner.pickle().encrypt(pickle_key.as_bytes())
    }

    /// Restores a session from [`OutboundGroupSession::pickle`].
    pub fn from_pickle(pickle: &str, pickle_key: &PickleKey) -> Result<Self> {
        let p = vodozemac::megolm::GroupSessionPickle::from_encrypted(pickle, pickle_key.as_bytes())
            .map_err(pickle::from_vodozemac)?;
        Ok(Self { inner: GroupSession::from_pickle(p) })
    }
}

impl Default for OutboundGroupSession {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for OutboundGroupSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundGroupSession")
            .field("session_id", &self.session_id())
            .field("message_index", &self.message_index())
            .field("ratchet", &"[redacted]")
            .finish()
    }
}

/// A decrypted Megolm message.
#[derive(Clone, PartialEq, Eq)]
pub struct DecryptedGroupMessage {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The message index the sender encrypted it at.
    pub message_index: u32,
}

impl std::fmt::Debug for DecryptedGroupMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptedGroupMessage")
            .field("plaintext", &"[redacted]")
            .field("message_index", &self.message_index)
            .finish()
    }
}

/// The receiving side of someone's Megolm session, with the replay record described in the
/// module docs.
pub struct InboundGroupSession {
    inner: VodozemacInbound,
    seen: BTreeMap<u32, [u8; 32]>,
    /// [`MAX_TRACKED_INDICES`], lowered only by tests (signatures are slow in debug builds).
    limit: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Live,
    History,
}

impl InboundGroupSession {
    /// Creates the session from a session key shared by the sender (over Olm). The key's
    /// signature by the session's signing key is checked.
    pub fn from_session_key(session_key: &[u8]) -> Result<Self> {
        let key = SessionKey::from_bytes(session_key).map_err(|_| Error::MalformedMegolmSessionKey)?;
        Ok(Self {
            inner: VodozemacInbound::new(&key, SessionConfig::version_1()),
            seen: BTreeMap::new(),
            limit: MAX_TRACKED_INDICES,
        })
    }

    /// Imports an exported session key (from a key backup or a forwarded key).
    ///
    /// # Security
    ///
    /// An exported key carries no signature: trust it only as far as its source (your own
    /// encrypted backup, or a verified device of your own).
    pub fn import(exported_key: &[u8]) -> Result<Self> {
        let key =
            ExportedSessionKey::from_bytes(exported_key).map_err(|_| Error::MalformedMegolmSessionKey)?;
        Ok(Self {
            inner: VodozemacInbound::import(&key, SessionConfig::version_1()),
            seen: BTreeMap::new(),
            limit: MAX_TRACKED_INDICES,
        })
    }

    /// Exports the key at the first index this session knows (for backups).
    pub fn export_at_first_known_index(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.inner.export_at_first_known_index().to_bytes())
    }

    /// The session id; equals the sender's [`OutboundGroupSession::session_id`].
    pub fn session_id(&self) -> String {
        self.inner.session_id()
    }

    /// The first message index this session can decrypt.
    pub fn first_known_index(&self) -> u32 {
        self.inner.first_known_index()
    }

    /// The indices decrypted so far, in order.
    pub fn decrypted_indices(&self) -> Vec<u32> {
        self.seen.keys().copied().collect()
    }

    /// Decrypts live traffic: refuses replays and index conflicts (see the module docs).
    pub fn decrypt(&mut self, message: &[u8]) -> Result<DecryptedGroupMessage> {
        self.decrypt_with(message, Mode::Live)
    }

    /// Decrypts a message again when re-reading stored history: an exact duplicate of a
    /// message already decrypted is allowed, a different message at a seen index is not.
    pub fn decrypt_history(&mut self, message: &[u8]) -> Result<DecryptedGroupMessage> {
        self.decrypt_with(message, Mode::History)
    }

    fn decrypt_with(&mut self, message: &[u8], mode: Mode) -> Result<DecryptedGroupMessage> {
        let parsed = MegolmMessage::from_bytes(message).map_err(|_| Error::MalformedMegolmMessage)?;
        let decrypted = self.inner.decrypt(&parsed).map_err(|e| match e {
            vodozemac::megolm::DecryptionError::UnknownMessageIndex(first_known, index) => {
                Error::MegolmUnknownIndex { first_known, index }
            }
            _ => Error::MegolmDecryption,
        })?;
        let index = decrypted.message_index;
        let digest: [u8; 32] = Sha256::digest(parsed.to_bytes()).into();
        match self.seen.get(&index) {
            Some(previous) if *previous != digest => return Err(Error::MegolmIndexConflict(index)),
            Some(_) if mode == Mode::Live => return Err(Error::MegolmReplay(index)),
            Some(_) => {}
            None => {
                if self.seen.len() >= self.limit {
                    return Err(Error::MegolmTooManyMessages);
                }
                self.seen.insert(index, digest);
            }
        }
        Ok(DecryptedGroupMessage { plaintext: decrypted.plaintext, message_index: index })
    }

    /// Pickles the session and its replay record (the sealed envelope of [`crate::pickle`];
    /// body layout in `FORMAT.md`).
    pub fn pickle<R: CryptoRng + ?Sized>(&self, pickle_key: &PickleKey, rng: &mut R) -> String {
        let inner = self.inner.pickle().encrypt(pickle_key.as_bytes());
        let mut body = Zeroizing::new(Vec::with_capacity(8 + inner.len() + self.seen.len() * 36));
        body.extend_from_slice(&u32::try_from(inner.len()).unwrap_or(u32::MAX).to_be_bytes());
        body.extend_from_slice(inner.as_bytes());
        body.extend_from_slice(&u32::try_from(self.seen.len()).unwrap_or(u32::MAX).to_be_bytes());
        for (index, digest) in &self.seen {
            body.extend_from_slice(&index.to_be_bytes());
            body.extend_from_slice(digest);
        }
        pickle::seal(Kind::InboundGroupSession, pickle_key, &body, rng)
    }

    /// Restores a session and its replay record from [`InboundGroupSession::pickle`].
    pub fn from_pickle(pickle: &str, pickle_key: &PickleKey) -> Result<Self> {
        let body = pickle::open(Kind::InboundGroupSession, pickle_key, pickle)?;
        let mut r = Reader::new(&body, Error::MalformedPickle);
        let len = r.u32()? as usize;
        let inner = std::str::from_utf8(r.take(len)?).map_err(|_| Error::MalformedPickle)?;
        let inner =
            vodozemac::megolm::InboundGroupSessionPickle::from_encrypted(inner, pickle_key.as_bytes())
                .map_err(pickle::from_vodozemac)?;
        let count = r.u32()? as usize;
        if count > MAX_TRACKED_INDICES {
            return Err(Error::MalformedPickle);
        }
        let mut seen = BTreeMap::new();
        for _ in 0..count {
            let index = r.u32()?;
            if seen.insert(index, r.array()?).is_some() {
                return Err(Error::MalformedPickle);
            }
        }
        r.finish()?;
        Ok(Self { inner: VodozemacInbound::from_pickle(inner), seen, limit: MAX_TRACKED_INDICES })
    }
}

impl std::fmt::Debug for InboundGroupSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundGroupSession")
            .field("session_id", &self.session_id())
            .field("first_known_index", &self.first_known_index())
            .field("decrypted", &self.seen.len())
            .field("ratchet", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    use super::*;

    fn pair() -> (OutboundGroupSession, InboundGroupSession) {
        let out = OutboundGroupSession::new();
        let inbound = InboundGroupSession::from_session_key(&out.session_key()).unwrap();
        assert_eq!(inbound.session_id(), out.session_id());
        (out, inbound)
    }

    #[test]
    fn encrypt_decrypt_with_indices() {
        let (mut out, mut inbound) = pair();
        assert_eq!(out.message_index(), 0);
        let m0 = out.encrypt(b"zero");
        let m1 = out.encrypt(b"one");
        assert_eq!(out.message_index(), 2);
        // Out of order is fine.
        let d1 = inbound.decrypt(&m1).unwrap();
        assert_eq!((d1.plaintext.as_slice(), d1.message_index), (&b"one"[..], 1));
        let d0 = inbound.decrypt(&m0).unwrap();
        assert_eq!((d0.plaintext.as_slice(), d0.message_index), (&b"zero"[..], 0));
        assert_eq!(inbound.decrypted_indices(), vec![0, 1]);
    }

    #[test]
    fn replay_is_refused_but_history_may_reread() {
        let (mut out, mut inbound) = pair();
        let m = out.encrypt(b"pay 10");
        inbound.decrypt(&m).unwrap();
        assert_eq!(inbound.decrypt(&m).unwrap_err(), Error::MegolmReplay(0));
        assert_eq!(inbound.decrypt_history(&m).unwrap().plaintext, b"pay 10");
    }

    #[test]
    fn a_different_message_at_a_seen_index_is_a_conflict_even_in_history() {
        let (mut out, mut inbound) = pair();
        let pickle_key = PickleKey::from_bytes([1; 32]);
        let cloned = out.pickle(&pickle_key);
        let m = out.encrypt(b"original");
        inbound.decrypt(&m).unwrap();
        // The sender's state is rolled back and index 0 is used again for other content.
        let mut forked = OutboundGroupSession::from_pickle(&cloned, &pickle_key).unwrap();
        let evil = forked.encrypt(b"substitute");
        assert_eq!(inbound.decrypt(&evil).unwrap_err(), Error::MegolmIndexConflict(0));
        assert_eq!(inbound.decrypt_history(&evil).unwrap_err(), Error::MegolmIndexConflict(0));
    }

    #[test]
    fn tampered_and_foreign_messages_are_refused_and_not_recorded() {
        let (mut out, mut inbound) = pair();
        let mut m = out.encrypt(b"x");
        let mid = m.len() / 2;
        m[mid] ^= 1;
        assert_eq!(inbound.decrypt(&m).unwrap_err(), Error::MegolmDecryption);
        assert!(inbound.decrypted_indices().is_empty());
        let mut other = OutboundGroupSession::new();
        assert_eq!(inbound.decrypt(&other.encrypt(b"y")).unwrap_err(), Error::MegolmDecryption);
        assert_eq!(inbound.decrypt(&[3, 0]).unwrap_err(), Error::MalformedMegolmMessage);
        assert_eq!(
            InboundGroupSession::from_session_key(b"nope").unwrap_err(),
            Error::MalformedMegolmSessionKey
        );
    }

    #[test]
    fn late_joiners_cannot_read_earlier_messages() {
        let mut out = OutboundGroupSession::new();
        let early = out.encrypt(b"before you joined");
        let mut inbound = InboundGroupSession::from_session_key(&out.session_key()).unwrap();
        assert_eq!(inbound.first_known_index(), 1);
        assert_eq!(
            inbound.decrypt(&early).unwrap_err(),
            Error::MegolmUnknownIndex { first_known: 1, index: 0 }
        );
    }

    #[test]
    fn export_import_and_pickles_keep_the_replay_record() {
        let (mut out, mut inbound) = pair();
        let m0 = out.encrypt(b"a");
        let m1 = out.encrypt(b"b");
        inbound.decrypt(&m0).unwrap();
        let mut rng = ChaCha20Rng::from_seed([7; 32]);
        let key = PickleKey::from_bytes([2; 32]);
        let pickled = inbound.pickle(&key, &mut rng);
        let mut restored = InboundGroupSession::from_pickle(&pickled, &key).unwrap();
        assert_eq!(restored.decrypt(&m0).unwrap_err(), Error::MegolmReplay(0));
        assert_eq!(restored.decrypt(&m1).unwrap().plaintext, b"b");
        assert_eq!(
            InboundGroupSession::from_pickle(&pickled, &PickleKey::from_bytes([3; 32])).unwrap_err(),
            Error::PickleDecryption
        );
        let mut imported = InboundGroupSession::import(&inbound.export_at_first_known_index()).unwrap();
        assert_eq!(imported.decrypt(&m1).unwrap().plaintext, b"b");

        let mut out_restored = OutboundGroupSession::from_pickle(&out.pickle(&key), &key).unwrap();
        assert_eq!(out_restored.message_index(), 2);
        assert_eq!(restored.decrypt(&out_restored.encrypt(b"c")).unwrap().message_index, 2);
        assert!(format!("{out_restored:?}").contains("[redacted]"));
        assert!(format!("{restored:?}").contains("[redacted]"));
    }

    #[test]
    fn the_record_is_bounded() {
        let (mut out, mut inbound) = pair();
        inbound.limit = 8;
        for _ in 0..8 {
            inbound.decrypt(&out.encrypt(b".")).unwrap();
        }
        assert_eq!(inbound.decrypt(&out.encrypt(b".")).unwrap_err(), Error::MegolmTooManyMessages);
    }
}
