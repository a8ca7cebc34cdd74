//! Voice channels: who is in which room of the SFU (`kitsulan-sfu`), and the checks before
//! anyone gets in (docs/calls.md, "Voice channels through the SFU").
//!
//! # Security
//! A device joins only a voice channel its account can see and has `CONNECT` in (a timeout takes
//! it away), as the guild's permissions say on each join; a channel it cannot see is
//! `CONVERSATION_NOT_FOUND`, like one that does not exist. One device is in one room at a time,
//! so a flood of joins from one device holds one place, and an account joins at most [`JOINS`]
//! times a minute. The room and the node cap how many are in; the offer is bounded before it is
//! parsed. Who is in a voice channel is shown only with the
//! channel, to those who can see it (`GetGuild`).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use kitsulan_sfu::node::{JoinRefusal, Node};
use kitsulan_sfu::room::{JoinError, ParticipantId};
use tokio::sync::{Mutex, mpsc};

use super::delivery::Delivery;
use super::guilds::channel_access;
use super::guilds::permissions::Permissions as P;
use super::rate_limits::{Limit, RateLimiter};
use super::{Caller, Error, ErrorReason};
use crate::ids::{AccountId, ChannelId, ConversationId, DeviceId, GuildId};
use crate::store::{GuildChannelKind, Store};

/// The largest offer taken (a browser's is a few KiB).
pub const MAX_OFFER_BYTES: usize = 32 * 1024;

/// Joins per account: enough to hop between channels and to reconnect a flaky link, while a
/// flood of joins (each sets up a session and tells the whole guild) runs dry in a minute.
pub const JOINS: Limit = Limit::new(20, std::time::Duration::from_secs(60));

/// The media server of voice rooms as this module uses it: the one seam between who may be in a
/// room (decided here, on every join) and where the room's media goes. The SFU built into the
/// binary ([`Node`]) is one; another media server (LiveKit, say) would be a second implementation
/// beside it (docs/calls.md, "Another media server").
#[async_trait]
pub trait MediaRooms: Send + Sync + 'static {
    /// Lets `participant` into room `room` (the conversation's id) with its SDP `offer`;
    /// returns the SDP answer.
    async fn join(
        &self,
        room: u128,
        participant: ParticipantId,
        offer: String,
    ) -> Result<String, JoinRefusal>;
    /// Takes `participant` out of its room; `false` if it was in none.
    async fn leave(&self, participant: ParticipantId) -> bool;
}

#[async_trait]
impl MediaRooms for Node {
    async fn join(
        &self,
        room: u128,
        participant: ParticipantId,
        offer: String,
    ) -> Result<String, JoinRefusal> {
        Node::join(self, room, participant, offer).await
    }

    async fn leave(&self, participant: ParticipantId) -> bool {
        Node::leave(self, participant).await
    }
}

/// A device in a room.
#[derive(Clone, Copy, Debug)]
struct Seat {
    channel: ConversationId,
    guild: GuildId,
    account: AccountId,
    participant: ParticipantId,
}

struct Inner {
    store: Arc<dyn Store>,
    limiter: RateLimiter,
    delivery: Delivery,
    /// Unset while the SFU is off.
    node: OnceLock<Arc<dyn MediaRooms>>,
    /// Who is in which room.
    seats: Mutex<HashMap<DeviceId, Seat>>,
    next: AtomicU64,
    /// Counts evictions and rechecks begun: a join that saw it move while the SFU answered
    /// checks its access again.
    evictions: AtomicU64,
}

/// Voice channels over this server's SFU.
#[derive(Clone)]
pub struct Voice(Arc<Inner>);

fn not_found() -> Error {
    Error::not_found(ErrorReason::ConversationNotFound, "no such conversation")
}

impl Voice {
    /// Voice channels with no SFU yet ([`Voice::start`] gives it one): joins are refused.
    pub fn new(store: Arc<dyn Store>, delivery: Delivery) -> Self {
        Self(Arc::new(Inner {
            limiter: RateLimiter::new(store.clone()),
            store,
            delivery,
            node: OnceLock::new(),
            seats: Mutex::default(),
            next: AtomicU64::new(1),
            evictions: AtomicU64::new(0),
        }))
    }

    /// Runs voice channels over `node`, taking out those it reports on `dropped` (their app
    /// vanished) until that channel closes.
    pub fn start(&self, node: impl MediaRooms, mut dropped: mpsc::Receiver<ParticipantId>) {
        if self.0.node.set(Arc::new(node)).is_err() {
            tracing::warn!("the SFU was started twice; keeping the first");
            return;
        }
        let voice = self.clone();
        tokio::spawn(async move {
            while let Some(participant) = dropped.recv().await {
                let seat = {
                    let mut seats = voice.0.seats.lock().await;
                    let device = seats.iter().find(|(_, s)| s.participant == participant).map(|(d, _)| *d);
                    device.and_then(|device| seats.remove(&device))
                };
                if let Some(seat) = seat {
                    tracing::info!(channel = %seat.channel, account = %seat.account, "dropped from voice");
                    voice.tell(seat.guild).await;
                }
            }
        });
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
        // Evictions and rechecks from here on are seen below.
        let epoch = self.0.evictions.load(Ordering::SeqCst);
        let guild = self.may_connect(caller.account_id, id).await?;
        let node = self.0.node.get().ok_or_else(|| {
            Error::precondition(ErrorReason::VoiceUnavailable, "voice channels are off on this server")
        })?;
        self.0.limiter.take(&JOINS, &format!("voice-join:{}", caller.account_id)).await?;
        // One room at a time: joining again (here or elsewhere) leaves the one before.
        let before = self.0.seats.lock().await.remove(&caller.device_id);
        if let Some(before) = before {
            node.leave(before.participant).await;
        }
        // The SFU's answer comes without the seats locked: nobody else's join, leave or
        // eviction waits for this one.
        let participant = ParticipantId(self.0.next.fetch_add(1, Ordering::Relaxed));
        let joined = node.join(id.as_uuid().as_u128(), participant, offer).await.map_err(refusal);
        let mut displaced = None;
        if joined.is_ok() {
            let seat = Seat { channel: id, guild, account: caller.account_id, participant };
            // A join of this device that finished meanwhile gives way to this one.
            displaced = self.0.seats.lock().await.insert(caller.device_id, seat);
            tracing::info!(channel = %id, device = %caller.device_id, participant = participant.0, "joined voice");
        }
        for gone in before.iter().chain(&displaced) {
            if gone.participant != participant {
                node.leave(gone.participant).await;
            }
        }
        let mut told: Vec<GuildId> = Vec::new();
        for g in before.iter().chain(&displaced).map(|s| s.guild).chain(joined.is_ok().then_some(guild)) {
            if !told.contains(&g) {
                told.push(g);
                self.tell(g).await;
            }
        }
        let answer = joined?;
        // A kick, a ban or lost CONNECT while the SFU answered found no seat to empty: look again.
        if self.0.evictions.load(Ordering::SeqCst) != epoch
            && let Err(e) = self.may_connect(caller.account_id, id).await
        {
            let ours = {
                let mut seats = self.0.seats.lock().await;
                match seats.get(&caller.device_id) {
                    Some(seat) if seat.participant == participant => seats.remove(&caller.device_id),
                    _ => None,
                }
            };
            if ours.is_some() {
                node.leave(participant).await;
                self.tell(guild).await;
            }
            return Err(e);
        }
        Ok(answer)
    }

    /// The guild of voice channel `id` if `account` may connect to it now.
    async fn may_connect(&self, account: AccountId, id: ConversationId) -> Result<GuildId, Error> {
        let channel = ChannelId::from_uuid(id.as_uuid());
        let access = channel_access(&*self.0.store, account, channel).await?.ok_or_else(not_found)?;
        if access.channel.kind != GuildChannelKind::Voice {
            return Err(Error::precondition(ErrorReason::NotAVoiceChannel, "this is not a voice channel"));
        }
        if !access.permissions.contains(P::CONNECT) {
            return Err(Error::Forbidden {
                reason: ErrorReason::NotAllowed,
                message: "your roles do not allow you to connect to this voice channel".to_owned(),
            });
        }
        Ok(access.channel.guild_id)
    }

    /// Takes the caller's device out of voice channel `id`'s room, if it is there.
    pub async fn leave(&self, caller: &Caller, id: ConversationId) -> Result<(), Error> {
        let Some(node) = self.0.node.get() else { return Ok(()) };
        let seat = {
            let mut seats = self.0.seats.lock().await;
            match seats.get(&caller.device_id) {
                Some(seat) if seat.channel == id => seats.remove(&caller.device_id),
                _ => None,
            }
        };
        if let Some(seat) = seat {
            node.leave(seat.participant).await;
            self.tell(seat.guild).await;
        }
        Ok(())
    }

    /// Takes out of guild `guild`'s voice channels `account` (or everyone), in `channel` (or in
    /// all of them): those who lost the guild (a kick, a ban, leaving, its deletion) or the
    /// channel (deleted), at once, whatever their sessions say.
    pub async fn evict(&self, guild: GuildId, account: Option<AccountId>, channel: Option<ConversationId>) {
        let Some(node) = self.0.node.get() else { return };
        self.0.evictions.fetch_add(1, Ordering::SeqCst);
        let gone: Vec<Seat> = {
            let mut seats = self.0.seats.lock().await;
            let devices: Vec<DeviceId> = seats
                .iter()
                .filter(|(_, s)| {
                    s.guild == guild
                        && account.is_none_or(|a| a == s.account)
                        && channel.is_none_or(|c| c == s.channel)
                })
                .map(|(d, _)| *d)
                .collect();
            devices.into_iter().filter_map(|d| seats.remove(&d)).collect()
        };
        for seat in &gone {
            node.leave(seat.participant).await;
        }
        if !gone.is_empty() {
            tracing::info!(%guild, evicted = gone.len(), "taken out of voice channels");
            self.tell(guild).await;
        }
    }

    /// Takes out of guild `guild`'s voice channels everyone who may no longer be there (its
    /// roles, overwrites or a timeout took `CONNECT` or the channel away): called whenever what
    /// members may do there changed.
    pub async fn recheck(&self, guild: GuildId) {
        let Some(node) = self.0.node.get() else { return };
        self.0.evictions.fetch_add(1, Ordering::SeqCst);
        let seated: Vec<(DeviceId, Seat)> = {
            let seats = self.0.seats.lock().await;
            seats.iter().filter(|(_, s)| s.guild == guild).map(|(d, s)| (*d, *s)).collect()
        };
        let mut gone = Vec::new();
        for (device, seat) in seated {
            let channel = ChannelId::from_uuid(seat.channel.as_uuid());
            let allowed = match channel_access(&*self.0.store, seat.account, channel).await {
                Ok(access) => access.is_some_and(|a| a.permissions.contains(P::CONNECT)),
                Err(e) => {
                    tracing::warn!(%guild, error = %e, "cannot recheck who may be in voice");
                    continue;
                }
            };
            if !allowed {
                gone.push(device);
            }
        }
        let removed: Vec<Seat> = {
            let mut seats = self.0.seats.lock().await;
            // Only those still in the seat that was checked (not one rejoined meanwhile).
            gone.into_iter().filter_map(|device| seats.remove(&device)).collect()
        };
        for seat in &removed {
            node.leave(seat.participant).await;
            tracing::info!(channel = %seat.channel, account = %seat.account, "lost CONNECT: out of voice");
        }
        if !removed.is_empty() {
            self.tell(guild).await;
        }
    }

    /// Who is in each of guild `guild`'s voice channels now (each account once, however many
    /// of its devices, in id order); channels nobody is in are left out.
    pub async fn occupants(&self, guild: GuildId) -> HashMap<ConversationId, Vec<AccountId>> {
        let mut rooms: HashMap<ConversationId, BTreeSet<AccountId>> = HashMap::new();
        {
            let seats = self.0.seats.lock().await;
            for seat in seats.values().filter(|s| s.guild == guild) {
                rooms.entry(seat.channel).or_default().insert(seat.account);
            }
        }
        rooms.into_iter().map(|(channel, accounts)| (channel, accounts.into_iter().collect())).collect()
    }

    /// Tells guild `guild`'s members that who is in its voice channels changed.
    async fn tell(&self, guild: GuildId) {
        if let Err(e) = super::guilds::tell_members(&*self.0.store, &self.0.delivery, guild).await {
            tracing::warn!(%guild, error = %e, "cannot tell a guild who is in its voice channels");
        }
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
