//! The live events that services publish and the bus carries between nodes: call signals,
//! attachment, avatar and guild changes. They live here, below both, so the bus never has to know the
//! services that produce them; each service re-exports the ones it publishes.

use crate::ids::{AccountId, AttachmentId, AvatarId, CallId, ConversationId, DeviceId, GuildId};

/// What a call signal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallAction {
    /// Starts a call.
    Invite,
    /// A callee's device rings.
    Ringing,
    /// A device joins.
    Accept,
    /// A callee declines.
    Decline,
    /// A callee is busy.
    Busy,
    /// The caller gives up before anyone answered.
    Cancel,
    /// A device leaves.
    HangUp,
    /// WebRTC offer for one device.
    Offer,
    /// WebRTC answer for one device.
    Answer,
    /// ICE candidate for one device.
    IceCandidate,
    /// From the server: the call is over.
    Ended,
}

/// A call signal as devices receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    /// Where.
    pub conversation: ConversationId,
    /// Which call.
    pub call: CallId,
    /// What.
    pub action: CallAction,
    /// From which account and device.
    pub from: (AccountId, DeviceId),
    /// Opaque.
    pub payload: Vec<u8>,
    /// With video.
    pub video: bool,
    /// Ended: why.
    pub reason: String,
    /// The devices in the call after this signal.
    pub participants: Vec<DeviceId>,
}

/// What happened to an attachment, for the gateway (live only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentChange {
    /// `account` downloaded it.
    Downloaded,
    /// It is gone.
    Expired,
}

/// An attachment event as devices receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentEvent {
    /// Which.
    pub attachment: AttachmentId,
    /// Where.
    pub conversation: ConversationId,
    /// What.
    pub change: AttachmentChange,
    /// Downloaded: who.
    pub account: Option<AccountId>,
    /// When (ms).
    pub at_ms: i64,
}

/// An avatar change as devices receive it (live only): fetch the avatar again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarEvent {
    /// Whose (an account's avatar), or
    pub account: Option<AccountId>,
    /// which group's.
    pub conversation: Option<ConversationId>,
    /// The current avatar (`None`: removed).
    pub avatar: Option<AvatarId>,
    /// Its version.
    pub version: i64,
}

/// A guild changed, for its members' devices (live only): read it again with `GetGuild`, or,
/// when `removed`, the receiving account is no longer in it (it left, was kicked or banned, or
/// the guild was deleted) and drops it at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildEvent {
    /// Which guild.
    pub guild: GuildId,
    /// The receiving accounts are no longer members.
    pub removed: bool,
    /// Only the guild's details or who is in it changed, not what its members may see: their
    /// sessions need not work out again which channels they follow (never sent to devices).
    pub members_only: bool,
    /// Channels the receiving accounts' sockets follow from the moment the hub routes this
    /// event, before they work out the rest (a newcomer's: the first message after the join
    /// cannot slip past). Never sent to devices.
    pub follow: Vec<crate::ids::ConversationId>,
}
