//! What the machine's steps take and return: peers, to-device messages, shares, decryption
//! results, refusals.

use zeroize::Zeroizing;

use super::Id;
use crate::device::{SignedFallbackKey, SignedOneTimeKey};

/// Why a to-device message that decrypted was not used (it is taken all the same: its Olm
/// message cannot decrypt twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The to-device ciphertext is not an Olm envelope (`0x01`).
    UnknownEnvelope,
    /// The Olm plaintext has a kind this build does not know.
    UnknownKind(u8),
    /// The Olm plaintext is truncated or malformed.
    Malformed,
    /// The Megolm session key in it is malformed or its signature is invalid.
    MalformedSessionKey,
    /// A call signal payload arrived as a to-device message (they travel in call signals).
    CallSignalOutsideCall,
    /// A key for a session this device already holds for another sender or conversation.
    SharedForSomethingElse,
    /// A key request from a device of another person: keys go to one's own devices only.
    RequestFromAnotherPerson,
    /// A key request for a session this device does not hold (for that conversation).
    NoSuchSession,
    /// A forwarded key from a device of another person.
    ForwardedByAnotherPerson,
    /// A forwarded key this device did not ask that device for.
    Unrequested,
    /// A forwarded key whose conversation or sender is not what was asked for.
    ForwardedKeyMismatch,
}

impl Refusal {
    /// A stable `snake_case` code.
    pub const fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownEnvelope => "unknown_envelope",
            Refusal::UnknownKind(_) => "unknown_kind",
            Refusal::Malformed => "malformed",
            Refusal::MalformedSessionKey => "malformed_session_key",
            Refusal::CallSignalOutsideCall => "call_signal_outside_call",
            Refusal::SharedForSomethingElse => "shared_for_something_else",
            Refusal::RequestFromAnotherPerson => "request_from_another_person",
            Refusal::NoSuchSession => "no_such_session",
            Refusal::ForwardedByAnotherPerson => "forwarded_by_another_person",
            Refusal::Unrequested => "unrequested",
            Refusal::ForwardedKeyMismatch => "forwarded_key_mismatch",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownEnvelope => f.write_str("not an Olm envelope"),
            Refusal::UnknownKind(k) => write!(f, "unknown kind {k:#04x}"),
            Refusal::Malformed => f.write_str("malformed"),
            Refusal::MalformedSessionKey => f.write_str("malformed session key"),
            Refusal::CallSignalOutsideCall => f.write_str("a call signal outside a call"),
            Refusal::SharedForSomethingElse => f.write_str("the session is held for something else"),
            Refusal::RequestFromAnotherPerson => f.write_str("a key request from another person's device"),
            Refusal::NoSuchSession => f.write_str("no such session here"),
            Refusal::ForwardedByAnotherPerson => f.write_str("a key forwarded by another person's device"),
            Refusal::Unrequested => f.write_str("a forwarded key nobody asked that device for"),
            Refusal::ForwardedKeyMismatch => f.write_str("the forwarded key is not the one asked for"),
        }
    }
}

/// Another device (of another person or our own), as its verified certificate describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its account.
    pub account_id: Id,
    /// The device.
    pub device_id: Id,
    /// Its Ed25519 key (certified).
    pub ed25519: [u8; 32],
    /// Its Curve25519 identity key (certified).
    pub curve25519: [u8; 32],
}

/// A to-device message to send (`SendToDevice`); resend it as is (same id) after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingToDevice {
    /// Its id (UUIDv7).
    pub message_id: Id,
    /// The device it is for.
    pub recipient_device_id: Id,
    /// `0x01 || Olm message`.
    pub ciphertext: Vec<u8>,
}

/// What one [`Machine::receive_keys`](super::Machine::receive_keys) changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceListChange {
    /// Devices seen for the first time.
    pub added: Vec<Id>,
    /// Devices gone from the list (with our Olm sessions to them).
    pub removed: Vec<Id>,
    /// Devices left out, and why (a certificate that does not verify or names another device,
    /// keys that changed).
    pub refused: Vec<(Id, String)>,
}

/// What to upload with `UploadKeys`; call [`Machine::keys_uploaded`](super::Machine::keys_uploaded) once the server took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUpload {
    /// The device certificate (the first upload only).
    pub certificate: Option<Vec<u8>>,
    /// Signed one-time keys.
    pub one_time_keys: Vec<SignedOneTimeKey>,
    /// A signed fallback key (the first upload only).
    pub fallback_key: Option<SignedFallbackKey>,
}

/// The room-key shares one [`Machine::share_room_key`](super::Machine::share_room_key) made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomKeyShare {
    /// The conversation.
    pub conversation_id: Id,
    /// The outbound session shared.
    pub session_id: String,
    /// Whether a new session was started by this call.
    pub rotated: bool,
    /// The shares to send (one per device that lacks the key and has an Olm session).
    pub messages: Vec<OutgoingToDevice>,
    /// Member devices that lack the key but have no Olm session (claim a key, share again).
    pub without_olm: Vec<Id>,
    /// Members (not us) none of whose devices has or gets the key: they cannot read what is sent.
    pub unreadable_by: Vec<Id>,
}

/// A message encrypted for a conversation.
#[derive(Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// The Megolm message (`SendMessage.ciphertext`).
    pub ciphertext: Vec<u8>,
    /// The session id (`SendMessage.session_id`, ASCII).
    pub session_id: String,
    /// Its index in the session.
    pub message_index: u32,
    /// Members (not us) none of whose devices was confirmed to have the key.
    pub unreadable_by: Vec<Id>,
}

impl std::fmt::Debug for Encrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encrypted")
            .field("session_id", &self.session_id)
            .field("message_index", &self.message_index)
            .field("unreadable_by", &self.unreadable_by)
            .finish_non_exhaustive()
    }
}

/// A conversation message as the server lists it (the fields decryption depends on).
#[derive(Debug, Clone, Copy)]
pub struct GroupMessage<'a> {
    /// The message id.
    pub message_id: Id,
    /// The conversation it is in.
    pub conversation_id: Id,
    /// The sending account.
    pub sender_account_id: Id,
    /// The sending device.
    pub sender_device_id: Id,
    /// The session id (bytes as stored; ASCII).
    pub session_id: &'a [u8],
    /// The Megolm message.
    pub ciphertext: &'a [u8],
}

/// A decrypted conversation message.
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Its index in the session.
    pub message_index: u32,
    /// Whether the sender's account key is verified (SAS) now.
    pub sender_verified: bool,
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext", &"[redacted]")
            .field("message_index", &self.message_index)
            .field("sender_verified", &self.sender_verified)
            .finish()
    }
}

/// The session a message needs and this device lacks: what [`Machine::request_missing_key`](super::Machine::request_missing_key) asks
/// one's own devices for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingKey {
    /// The conversation.
    pub conversation_id: Id,
    /// The account that sent the message.
    pub sender_account_id: Id,
    /// The device that sent it (and made the session).
    pub sender_device_id: Id,
    /// The session id.
    pub session_id: String,
}

/// Why a message did not decrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndecryptableReason {
    /// The session id is not text.
    BadSessionId,
    /// This device holds no key for that session (yet).
    MissingKey,
    /// The key this device holds for the session was shared by another account or for another
    /// conversation.
    SharedForSomethingElse,
    /// The session is known only from a later message on.
    UnknownIndex {
        /// The first index this device can decrypt.
        first_known: u32,
        /// The message's.
        index: u32,
    },
    /// Another message (id) already used this session index.
    Replayed,
    /// The Megolm message did not decrypt or authenticate.
    Crypto(crate::Error),
}

impl UndecryptableReason {
    /// A stable `snake_case` code.
    pub const fn code(&self) -> &'static str {
        match self {
            UndecryptableReason::BadSessionId => "bad_session_id",
            UndecryptableReason::MissingKey => "missing_key",
            UndecryptableReason::SharedForSomethingElse => "shared_for_something_else",
            UndecryptableReason::UnknownIndex { .. } => "unknown_index",
            UndecryptableReason::Replayed => "replayed",
            UndecryptableReason::Crypto(e) => e.code(),
        }
    }
}

impl std::fmt::Display for UndecryptableReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UndecryptableReason::BadSessionId => f.write_str("bad session id"),
            UndecryptableReason::MissingKey => f.write_str("waiting for the key"),
            UndecryptableReason::SharedForSomethingElse => {
                f.write_str("the key was shared for something else")
            }
            UndecryptableReason::UnknownIndex { .. } => f.write_str("waiting for an earlier key"),
            UndecryptableReason::Replayed => f.write_str("replayed"),
            UndecryptableReason::Crypto(e) => write!(f, "{e}"),
        }
    }
}

/// A message that did not decrypt, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecryptable {
    /// Why.
    pub reason: UndecryptableReason,
    /// The session it needs (when the reason is a key this device lacks, so one's own devices
    /// can be asked).
    pub missing: Option<MissingKey>,
}

/// A participant's SFrame base key for a voice room (`crate::sframe::FrameKey::derive` with its
/// kid gives the frame key). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct VoiceBaseKey(pub Zeroizing<[u8; 16]>);

impl std::fmt::Debug for VoiceBaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoiceBaseKey(..)")
    }
}

/// The voice-key shares one [`Machine::share_voice_key`](super::Machine::share_voice_key) made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceKeyShare {
    /// The shares to send, one per device with an Olm session.
    pub messages: Vec<OutgoingToDevice>,
    /// Devices with no Olm session yet (claim a key, share again).
    pub without_olm: Vec<Id>,
}

/// What a to-device message brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Taken before (same message id): nothing done.
    Duplicate,
    /// A Megolm session key shared by its sender, imported.
    RoomKey {
        /// The device that shared it.
        sender: Peer,
        /// The conversation it is for (none: an old to-device room key).
        conversation_id: Option<Id>,
        /// The session.
        session_id: String,
    },
    /// A verification message, for `crate::verification`.
    Verification {
        /// The device that sent it.
        sender: Peer,
        /// The message.
        bytes: Vec<u8>,
    },
    /// One of our own devices asked for a session we hold: send `answer`.
    KeyRequest {
        /// Our device that asked.
        from: Peer,
        /// The session asked for.
        session_id: String,
        /// The forwarded key (to-device message to that device).
        answer: OutgoingToDevice,
    },
    /// A session we asked our own device for, imported: retry the messages that waited for it.
    ForwardedKey {
        /// Our device that forwarded it.
        from: Peer,
        /// What the session is for.
        key: MissingKey,
    },
    /// A participant's key for the frames it sends in a voice room.
    VoiceKey {
        /// The device that sends with it.
        sender: Peer,
        /// The voice channel (or conversation) of the room.
        conversation_id: Id,
        /// The key id its frames carry in their SFrame header.
        kid: u32,
        /// The base key.
        key: VoiceBaseKey,
    },
    /// Decrypted but not used, and why.
    Refused(Refusal),
}

/// A call signal payload's binding: conversation id (16) || call id (16) || action (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallContext {
    /// The conversation.
    pub conversation_id: Id,
    /// The call.
    pub call_id: Id,
    /// The signal's action.
    pub action: u8,
}

impl CallContext {
    /// The 33 bytes the payload is bound to.
    pub fn to_bytes(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[..16].copy_from_slice(self.conversation_id.as_bytes());
        out[16..32].copy_from_slice(self.call_id.as_bytes());
        out[32] = self.action;
        out
    }
}
