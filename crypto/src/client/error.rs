//! [`Error`]: what a step of the machine can fail with, each with a stable code.

use super::Id;

/// Everything a step can fail with. Nothing changed when a step fails, except where a variant
/// says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A primitive failed (Olm decryption, a bad signature on a claimed key, a pickle...).
    #[error(transparent)]
    Crypto(#[from] crate::Error),
    /// Text given as an id is not a UUID, or bytes given as one are not 16 long.
    #[error("not a UUID")]
    InvalidId,
    /// This device does not hold the person's account key (it must be linked first).
    #[error("this device does not hold the account key")]
    NoAccountKey,
    /// This device holds an account key already.
    #[error("this device holds an account key already")]
    AccountKeyHeld,
    /// This device has not uploaded its certificate yet ([`Machine::keys_uploaded`](super::Machine::keys_uploaded)).
    #[error("this device is not set up for encryption yet")]
    NotReady,
    /// The account key a person publishes now is not the one pinned for them.
    #[error("the account key of {account_id} changed")]
    AccountKeyChanged {
        /// Whose.
        account_id: Id,
        /// Whether this device had verified the key pinned before (a stronger warning).
        verified_before: bool,
    },
    /// A device not known (not in a verified device list): query its account's keys, then retry.
    #[error("unknown device {0}")]
    UnknownDevice(Id),
    /// A known device belongs to another account than the one named.
    #[error("device {device_id} is not a device of account {account_id}")]
    DeviceOfAnotherAccount {
        /// The account named.
        account_id: Id,
        /// The device.
        device_id: Id,
    },
    /// The device list of these accounts was never received: query them first.
    #[error("the devices of {0:?} are not known yet")]
    DevicesUnknown(Vec<Id>),
    /// No Olm session with this device: claim one of its keys first.
    #[error("no Olm session with device {0}")]
    NoOlmSession(Id),
    /// The device is not a device of a member of the conversation.
    #[error("device {0} is not a member's")]
    NotAMember(Id),
    /// No outbound session for this conversation: share a room key first.
    #[error("no outbound session for conversation {0}: share the room key first")]
    NoOutboundSession(Id),
    /// The conversation's outbound session is due for rotation: share the room key again.
    #[error("the outbound session of conversation {0} is due for rotation: share the room key again")]
    RotationDue(Id),
    /// A ciphertext given as a to-device envelope is not `0x01 || Olm message`.
    #[error("not an Olm envelope")]
    NotOlmEnvelope,
    /// A call signal's payload was made for another conversation, call or action (its Olm
    /// message was used up all the same).
    #[error("the payload was made for another call or action")]
    CallPayloadMismatch,
    /// A stored record did not open or does not parse.
    #[error("record {0:?} is malformed")]
    MalformedRecord(String),
    /// A backed-up session is held already for another sender or conversation (the one held
    /// is kept).
    #[error("the backed-up session is held for another sender or conversation")]
    BackupSessionConflict,
    /// The records to restore from have no identity record.
    #[error("no identity record to restore from")]
    NoIdentity,
}

impl Error {
    /// A stable `snake_case` code (the JS `Error.code` in the WASM layer); a primitive's error
    /// keeps its own code.
    pub const fn code(&self) -> &'static str {
        match self {
            Error::Crypto(e) => e.code(),
            Error::InvalidId => "invalid_id",
            Error::NoAccountKey => "no_account_key",
            Error::AccountKeyHeld => "account_key_held",
            Error::NotReady => "not_ready",
            Error::AccountKeyChanged { .. } => "account_key_changed",
            Error::UnknownDevice(_) => "unknown_device",
            Error::DeviceOfAnotherAccount { .. } => "device_of_another_account",
            Error::DevicesUnknown(_) => "devices_unknown",
            Error::NoOlmSession(_) => "no_olm_session",
            Error::NotAMember(_) => "not_a_member",
            Error::NoOutboundSession(_) => "no_outbound_session",
            Error::RotationDue(_) => "rotation_due",
            Error::NotOlmEnvelope => "not_olm_envelope",
            Error::CallPayloadMismatch => "call_payload_mismatch",
            Error::MalformedRecord(_) => "malformed_record",
            Error::NoIdentity => "no_identity",
            Error::BackupSessionConflict => "backup_session_conflict",
        }
    }
}
