//! Voice channels: who is in which room of the SFU (`kitsulan-sfu`), and the checks before
//! anyone gets in (docs/calls.md, "Voice channels through the SFU").
//!
//! # Security
//! A device joins only a voice channel its account can see and has `CONNECT` in (a timeout takes
//! it away), as the guild's permissions say on each join; a channel it cannot see is
//! `CONVERSATION_NOT_FOUND`, like one that does not exist. One device is in one room at a time,
//! so a flood of joins from one device holds one place. The room and the node cap how many are
//! in; the offer is bounded before it is parsed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kitsulan_sfu::node::{JoinRefusal, Node};
use kitsulan_sfu::room::{JoinError, ParticipantId};
use tokio::sync::Mutex;

use super::guilds::channel_access;
use super::guilds::permissions::Permissions as P;
use super::{Caller, Error, ErrorReason};
use crate::ids::{ChannelId, ConversationId, DeviceId};
use crate::store::{GuildChannelKind, Store};

/// The largest offer taken (a browser's is a few KiB).
pub const MAX_OFFER_BYTES: usize = 32 * 1024;

/// Voice channels over this server's SFU.
#[derive(Clone)]
pub struct Voice {
    store: Arc<dyn Store>,
    /// `None` when the SFU is off.
    node: Option<Node>,
    /// Which room each device is in, as which participant.
    rooms: Arc<Mutex<HashMap<DeviceId, (ConversationId, ParticipantId)>>>,
    next: Arc<AtomicU64>,
}

fn not_found() -> Error {
    Error::not_found(ErrorReason::ConversationNotFound, "no such conversation")
}

impl Voice {
    /// Voice over `node` (`None`: the SFU is off, and joins are refused).
    pub fn new(store: Arc<dyn Store>, node: Option<Node>) -> Self {
        Self { store, node, rooms: Arc::default(), next: Arc::new(AtomicU64::new(1)) }
    }

    /// Puts the caller's device into voice channel `id`'s room with its SDP `offer`; returns
    /// the SFU's answer.
    pub async fn join(&self, caller: &Caller, id: ConversationId, offer: String) -> Result<String, Error> {
        if offer.len() > MAX_OFFER_BYTES {
            return Err(Error::limit(
                ErrorReason::PayloadTooLarge,
                format!("an offer is at most {} KiB", MAX_OFFER_BYTES / 1024),
            ));
        }
        let channel = ChannelId::from_uuid(id.as_uuid());
        let access = channel_access(&*self.store, caller.account_id, channel).await?.ok_or_else(not_found)?;
        if access.channel.kind != GuildChannelKind::Voice {
            return Err(Error::precondition(ErrorReason::NotAVoiceChannel, "this is not a voice channel"));
        }
        if !access.permissions.contains(P::CONNECT) {
            return Err(Error::Forbidden {
                reason: ErrorReason::NotAllowed,
                message: "your roles do not allow you to connect to this voice channel".to_owned(),
            });
        }
        let node = self.node.as_ref().ok_or_else(|| {
            Error::precondition(ErrorReason::VoiceUnavailable, "voice channels are off on this server")
        })?;
        let mut rooms = self.rooms.lock().await;
        // One room at a time: joining again (here or elsewhere) leaves the one before.
        if let Some((_, before)) = rooms.remove(&caller.device_id) {
            node.leave(before).await;
        }
        let participant = ParticipantId(self.next.fetch_add(1, Ordering::Relaxed));
        let answer = node.join(id.as_uuid().as_u128(), participant, offer).await.map_err(refusal)?;
        rooms.insert(caller.device_id, (id, participant));
        tracing::info!(channel = %id, device = %caller.device_id, participant = participant.0, "joined voice");
        Ok(answer)
    }

    /// Takes the caller's device out of voice channel `id`'s room, if it is there.
    pub async fn leave(&self, caller: &Caller, id: ConversationId) -> Result<(), Error> {
        let Some(node) = &self.node else { return Ok(()) };
        let mut rooms = self.rooms.lock().await;
        if let Some((room, participant)) = rooms.get(&caller.device_id).copied()
            && room == id
        {
            rooms.remove(&caller.device_id);
            node.leave(participant).await;
        }
        Ok(())
    }
}

fn refusal(refusal: JoinRefusal) -> Error {
    let full = |what: &str| Error::limit(ErrorReason::VoiceFull, what.to_owned());
    match refusal {
        JoinRefusal::Offer(why) | JoinRefusal::Session(why) => {
            Error::invalid(ErrorReason::OfferInvalid, "offer_sdp", why)
        }
        JoinRefusal::Room(JoinError::SsrcTaken) => Error::invalid(
            ErrorReason::OfferInvalid,
            "offer_sdp",
            "its SSRC is taken in this room: offer another",
        ),
        JoinRefusal::Room(JoinError::Full) => full("this voice channel is full"),
        JoinRefusal::NodeFull => full("voice channels on this server are full"),
        JoinRefusal::Room(JoinError::AlreadyIn) => {
            Error::Internal("a participant id was used twice".to_owned())
        }
        JoinRefusal::Stopped => Error::precondition(ErrorReason::VoiceUnavailable, "the SFU has stopped"),
    }
}
