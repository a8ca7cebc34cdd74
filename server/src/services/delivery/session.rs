//! One session: a device's connection state. What it follows (its conversations, account
//! stream and to-device inbox, from the positions the device acknowledged), what it has sent and
//! not had acknowledged, its outbox, and the acknowledgements waiting to be saved.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::hub::{Hub, Recent};
use super::{Delivery, Error};
use crate::bus::Notice;
use crate::events::{AttachmentEvent, AvatarEvent, CallEvent, GuildEvent};
use crate::ids::{AccountId, ConversationId, DeviceId, GuildId, MessageId};
use crate::services::guilds::permissions::Permissions;
use crate::services::guilds::visible_channels;
use crate::services::{Caller, ErrorReason};
use crate::store::{AccountEvent, DeviceAcks, MessageRecord, Role, ToDeviceRecord};

/// Events sent and not yet acknowledged, at most.
pub const MAX_UNACKED: usize = 1024;
/// Events read and waiting to be sent, at most (then streams are re-read later).
pub const MAX_OUTBOX: usize = 1024;
/// How long acknowledgements are gathered before they are saved in one transaction. Saving each
/// on its own made every acknowledged event a commit (an fsync on SQLite), the most frequent
/// write of a busy server. Acks are cumulative and nothing waits for them to be saved; those
/// not yet saved when a session closes are saved then, so only a crash can lose them, and what
/// they covered is then delivered again (as if the ack had been lost on the network).
pub const ACK_SAVE_DELAY: Duration = Duration::from_millis(50);
/// Rows read from the database per catch-up step.
const BATCH: i64 = 256;
/// Typing updates per second per session.
const TYPING_PER_SECOND: u32 = 5;

/// One event for a device, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A message's current state (new, edited or deleted).
    Message(Arc<MessageRecord>),
    /// A membership change.
    Member {
        /// Where.
        conversation: ConversationId,
        /// Who.
        account: AccountId,
        /// Role now; `None` when removed.
        role: Option<Role>,
        /// The receiving account's own membership is a request it has not accepted.
        request: bool,
    },
    /// A member's marks.
    Receipt {
        /// Where.
        conversation: ConversationId,
        /// Whose.
        account: AccountId,
        /// Delivered mark.
        delivered_seq: i64,
        /// Read mark.
        read_seq: i64,
        /// For the receiving account's own marks: its unread messages there.
        unread_count: Option<i64>,
    },
    /// An account's devices changed.
    DeviceList(AccountId),
    /// A to-device message.
    ToDevice(ToDeviceRecord),
    /// Typing (live only).
    Typing {
        /// Where.
        conversation: ConversationId,
        /// Who.
        account: AccountId,
        /// Started or stopped.
        typing: bool,
    },
    /// Presence (live only).
    Presence {
        /// Whose.
        account: AccountId,
        /// Online or not.
        online: bool,
    },
    /// The backlog has been sent.
    SyncComplete,
    /// A call signal (live only).
    Call(Arc<CallEvent>),
    /// An attachment was downloaded or is gone (live only).
    Attachment(Arc<AttachmentEvent>),
    /// An account's or a group's avatar changed (live only).
    Avatar(Arc<AvatarEvent>),
    /// A guild changed, or the account is no longer in it (live only).
    Guild(Arc<GuildEvent>),
}

/// Why a session is being closed from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The device was signed out or revoked, or its account disabled.
    SignedOut,
    /// The session's queue overflowed.
    SlowConsumer,
    /// The server is shutting down.
    ShuttingDown,
}

/// What acknowledging an event moves.
#[derive(Debug, Clone, Copy)]
pub(super) enum Position {
    Conversation { id: ConversationId, change: i64, message_seq: i64 },
    Account(i64),
    ToDevice(MessageId),
    Live,
}

/// A refused acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckInFuture {
    /// The last event sent.
    pub last_sent: u64,
}

/// A session just opened.
pub struct Opened {
    /// The session.
    pub session: Session,
    /// Whether the `ResumePoint` was known and applied.
    pub resumed: bool,
    /// Contacts online now.
    pub online: Vec<AccountId>,
}

/// Why the session wakes up.
pub enum Wake {
    /// A notice to absorb.
    Notice(Arc<Notice>),
    /// The session must close.
    Kick(Kick),
}

/// One connection of one device.
pub struct Session {
    id: Uuid,
    caller: Caller,
    key: u64,
    account: AccountId,
    device: DeviceId,
    delivery: Delivery,
    rx: mpsc::Receiver<Arc<Notice>>,
    kick: watch::Receiver<Option<Kick>>,
    next_seq: u64,
    pending: VecDeque<(u64, Position)>,
    outbox: VecDeque<(Outgoing, Position)>,
    /// Per followed conversation: the last change sent (or acknowledged before).
    sent: HashMap<ConversationId, i64>,
    /// Conversations to read from the database.
    dirty: BTreeSet<ConversationId>,
    /// The guild cloud channels the account can see, with their guild and what it may do
    /// there. Their messages are live only: a device reads what it missed with
    /// `ListMessages`, so a message in a channel writes no row per member.
    channels: HashMap<ConversationId, (GuildId, Permissions)>,
    dirty_account: bool,
    account_sent: i64,
    dirty_inbox: bool,
    inbox_sent: i64,
    sync_sent: bool,
    typing_window: (Instant, u32),
    /// Acknowledged but not yet saved (see [`ACK_SAVE_DELAY`]), and since when.
    unsaved: DeviceAcks,
    unsaved_since: Option<Instant>,
    /// The save in flight ([`Self::save_acks`]).
    saving: Option<tokio::task::JoinHandle<()>>,
    closed: bool,
}

impl Session {
    /// A session of `caller`'s device, registered in the hub as `key`, hearing notices on `rx`
    /// and kicks on `kick`.
    pub(super) fn new(
        id: Uuid,
        caller: Caller,
        key: u64,
        delivery: Delivery,
        rx: mpsc::Receiver<Arc<Notice>>,
        kick: watch::Receiver<Option<Kick>>,
    ) -> Self {
        Session {
            id,
            caller,
            key,
            account: caller.account_id,
            device: caller.device_id,
            delivery,
            rx,
            kick,
            next_seq: 1,
            pending: VecDeque::new(),
            outbox: VecDeque::new(),
            sent: HashMap::new(),
            dirty: BTreeSet::new(),
            channels: HashMap::new(),
            dirty_account: true,
            account_sent: 0,
            dirty_inbox: true,
            inbox_sent: 0,
            sync_sent: false,
            typing_window: (Instant::now(), 0),
            unsaved: DeviceAcks::default(),
            unsaved_since: None,
            saving: None,
            closed: false,
        }
    }

    /// Who this session is.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Names this session (for a later `ResumePoint`).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Whether the session may send more events before acknowledgements arrive.
    pub fn window_open(&self) -> bool {
        self.pending.len() < MAX_UNACKED
    }

    pub(super) async fn start(&mut self, stashed: Option<(Recent, u64)>) -> Result<bool, Error> {
        let store = self.delivery.store.clone();
        let resumed = match stashed {
            Some((recent, seq)) => {
                let mut acks = DeviceAcks::default();
                collect_acks(recent.pending.into_iter().take_while(|(s, _)| *s <= seq), &mut acks);
                self.delivery.save_acks(self.device, self.account, acks).await?;
                true
            }
            None => false,
        };
        let first = store.device_streams(self.device).await?.ok_or_else(signed_out)?;
        for cursor in &first.conversations {
            self.delivery.hub.subscribe(self.key, cursor.conversation_id);
        }
        // Read again now that notices flow: a change between the reads is in this one.
        let streams = store.device_streams(self.device).await?.ok_or_else(signed_out)?;
        for cursor in streams.conversations {
            if !first.conversations.iter().any(|c| c.conversation_id == cursor.conversation_id) {
                self.delivery.hub.subscribe(self.key, cursor.conversation_id);
            }
            self.sent.insert(cursor.conversation_id, cursor.acked);
            if cursor.head > cursor.acked {
                self.dirty.insert(cursor.conversation_id);
            }
        }
        self.account_sent = streams.account_cursor;
        self.follow_guilds().await?;
        Ok(resumed)
    }

    /// Follows the channels the account can see in every guild it is in.
    async fn follow_guilds(&mut self) -> Result<(), Error> {
        let guilds: Vec<GuildId> =
            self.delivery.store.guilds_of(self.account).await?.into_iter().map(|g| g.id).collect();
        let gone: HashSet<GuildId> =
            self.channels.values().map(|(g, _)| *g).filter(|g| !guilds.contains(g)).collect();
        for guild in gone {
            self.follow_guild(guild, true).await?;
        }
        for guild in guilds {
            self.follow_guild(guild, false).await?;
        }
        Ok(())
    }

    /// Follows the channels of `guild` the account can see now (none when `removed`), and
    /// stops following the others: called when the session opens and whenever the guild
    /// changes, before any later notice is taken in, so a member who lost a channel (or the
    /// guild) gets nothing more from it.
    async fn follow_guild(&mut self, guild: GuildId, removed: bool) -> Result<(), Error> {
        let visible = if removed {
            Vec::new()
        } else {
            visible_channels(&*self.delivery.store, self.account, guild).await?
        };
        let before: Vec<ConversationId> =
            self.channels.iter().filter(|(_, (g, _))| *g == guild).map(|(c, _)| *c).collect();
        for conversation in before {
            self.channels.remove(&conversation);
        }
        for access in visible {
            let conversation = access.channel.id.conversation();
            self.channels.insert(conversation, (guild, access.permissions));
        }
        {
            let mut state = self.delivery.hub.state();
            let followed: Vec<ConversationId> = state
                .sessions
                .get(&self.key)
                .map(|e| e.conversations.iter().copied().collect())
                .unwrap_or_default();
            for conversation in followed {
                if !self.sent.contains_key(&conversation) && !self.channels.contains_key(&conversation) {
                    Hub::unsubscribe(&mut state, self.key, conversation);
                }
            }
        }
        for conversation in self.channels.iter().filter(|(_, (g, _))| *g == guild).map(|(c, _)| *c) {
            self.delivery.hub.subscribe(self.key, conversation);
        }
        let (sent, channels) = (&self.sent, &self.channels);
        let followed = |c: &ConversationId| sent.contains_key(c) || channels.contains_key(c);
        self.outbox.retain(|(event, _)| match event {
            Outgoing::Message(m) => followed(&m.conversation_id),
            Outgoing::Typing { conversation, .. } => followed(conversation),
            _ => true,
        });
        Ok(())
    }

    /// Waits for a notice or a kick. Cancel-safe: nothing is lost if the future is dropped.
    pub async fn wait(&mut self, notices: bool) -> Wake {
        if let Some(why) = *self.kick.borrow_and_update() {
            return Wake::Kick(why);
        }
        tokio::select! {
            biased;
            changed = self.kick.changed() => match (changed, *self.kick.borrow_and_update()) {
                (Ok(()), Some(why)) => Wake::Kick(why),
                // The hub dropped the session: treat as a shutdown.
                _ => Wake::Kick(Kick::ShuttingDown),
            },
            notice = self.rx.recv(), if notices => match notice {
                Some(notice) => Wake::Notice(notice),
                None => Wake::Kick(Kick::ShuttingDown),
            },
        }
    }

    /// Takes a live notice in: sends it on as is when it is the next change of its stream,
    /// else marks the stream for a catch-up read. A guild's change makes the session follow
    /// that guild's channels anew before it takes anything else in.
    pub async fn absorb(&mut self, notice: &Notice) -> Result<(), Error> {
        self.absorb_now(notice);
        match notice {
            Notice::Guild { event, .. } if event.removed || !event.members_only => {
                self.follow_guild(event.guild, event.removed).await?;
            }
            // The hub's "resync" after a bus outage: guilds may have changed meanwhile.
            Notice::Accounts(accounts) if accounts.is_empty() => self.follow_guilds().await?,
            _ => {}
        }
        Ok(())
    }

    fn absorb_now(&mut self, notice: &Notice) {
        match notice {
            Notice::Message(message) if self.channels.contains_key(&message.conversation_id) => {
                if self.outbox.len() < MAX_OUTBOX {
                    self.outbox.push_back((Outgoing::Message(message.clone()), Position::Live));
                } else {
                    // A channel's message has no stream to read it again from: a session that
                    // cannot take it is closed, and the device reads what it missed.
                    self.delivery.hub.kick_session(self.key, Kick::SlowConsumer);
                }
            }
            Notice::Message(message) => {
                let conversation = message.conversation_id;
                let Some(sent) = self.sent.get_mut(&conversation) else { return };
                if self.dirty.contains(&conversation) || message.change_seq <= *sent {
                    return;
                }
                if message.change_seq == *sent + 1 && self.outbox.len() < MAX_OUTBOX {
                    *sent = message.change_seq;
                    let position = message_position(message);
                    self.outbox.push_back((Outgoing::Message(message.clone()), position));
                } else {
                    self.dirty.insert(conversation);
                }
            }
            Notice::Accounts(_) => {
                self.dirty_account = true;
                // An empty list is the hub's "resync": re-read everything.
                if let Notice::Accounts(accounts) = notice
                    && accounts.is_empty()
                {
                    self.dirty_inbox = true;
                    self.dirty.extend(self.sent.keys().copied());
                }
            }
            Notice::Inboxes(_) => self.dirty_inbox = true,
            Notice::NodeAlive { .. } => {}
            Notice::Left { .. } => {}
            Notice::Typing { conversation, account, typing } => {
                let followed =
                    self.sent.contains_key(conversation) || self.channels.contains_key(conversation);
                if followed && self.outbox.len() < MAX_OUTBOX {
                    let event =
                        Outgoing::Typing { conversation: *conversation, account: *account, typing: *typing };
                    self.outbox.push_back((event, Position::Live));
                }
            }
            Notice::Call { event, .. } => {
                if self.outbox.len() < MAX_OUTBOX {
                    self.outbox.push_back((Outgoing::Call(event.clone()), Position::Live));
                }
            }
            Notice::Attachment { event, .. } => {
                if self.outbox.len() < MAX_OUTBOX {
                    self.outbox.push_back((Outgoing::Attachment(event.clone()), Position::Live));
                }
            }
            Notice::Avatar { event, .. } => {
                if self.outbox.len() < MAX_OUTBOX {
                    self.outbox.push_back((Outgoing::Avatar(event.clone()), Position::Live));
                }
            }
            Notice::Guild { event, .. } => {
                if self.outbox.len() < MAX_OUTBOX {
                    self.outbox.push_back((Outgoing::Guild(event.clone()), Position::Live));
                }
            }
            Notice::Presence { account, online, .. } => {
                if self.outbox.len() < MAX_OUTBOX {
                    self.outbox.push_back((
                        Outgoing::Presence { account: *account, online: *online },
                        Position::Live,
                    ));
                }
            }
        }
    }

    /// The next event to send with its sequence number, reading from the database when the
    /// outbox is empty; `None` when there is nothing to send or the window is full.
    pub async fn next_event(&mut self) -> Result<Option<(u64, Outgoing)>, Error> {
        loop {
            if !self.window_open() {
                return Ok(None);
            }
            if let Some((event, position)) = self.outbox.pop_front() {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.pending.push_back((seq, position));
                return Ok(Some((seq, event)));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Reads one batch from a stream that needs it. `false` when nothing was left to read.
    async fn fill(&mut self) -> Result<bool, Error> {
        let store = self.delivery.store.clone();
        if let Some(conversation) = self.dirty.pop_first() {
            let Some(after) = self.sent.get(&conversation).copied() else { return Ok(true) };
            let changes = store.message_changes(self.device, conversation, after, BATCH).await?;
            if changes.len() as i64 == BATCH {
                self.dirty.insert(conversation);
            }
            for message in changes {
                self.sent.insert(conversation, message.change_seq);
                let message = Arc::new(message);
                let position = message_position(&message);
                self.outbox.push_back((Outgoing::Message(message), position));
            }
            return Ok(true);
        }
        if self.dirty_account {
            let events = store.account_events(self.account, self.account_sent, BATCH).await?;
            self.dirty_account = events.len() as i64 == BATCH;
            for (position, event) in events {
                self.account_sent = position;
                if let Some(outgoing) = self.account_event(event).await? {
                    self.outbox.push_back((outgoing, Position::Account(position)));
                }
            }
            return Ok(true);
        }
        if self.dirty_inbox {
            let messages = store.to_device_after(self.device, self.inbox_sent, BATCH).await?;
            self.dirty_inbox = messages.len() as i64 == BATCH;
            for message in messages {
                self.inbox_sent = message.seq;
                let position = Position::ToDevice(message.message_id);
                self.outbox.push_back((Outgoing::ToDevice(message), position));
            }
            return Ok(true);
        }
        if !self.sync_sent {
            self.sync_sent = true;
            self.outbox.push_back((Outgoing::SyncComplete, Position::Live));
            return Ok(true);
        }
        Ok(false)
    }

    /// Turns an account event into what the device sees, following or leaving conversations
    /// when the event is about this account's own membership.
    async fn account_event(&mut self, event: AccountEvent) -> Result<Option<Outgoing>, Error> {
        Ok(Some(match event {
            AccountEvent::Member { conversation, account, role, request } => {
                if account == self.account {
                    self.follow(conversation, role.is_some()).await?;
                }
                Outgoing::Member { conversation, account, role, request }
            }
            AccountEvent::Receipt { conversation, account, delivered_seq, read_seq } => {
                let unread_count = if account == self.account {
                    Some(self.delivery.store.unread_count(conversation, account).await?)
                } else {
                    None
                };
                Outgoing::Receipt { conversation, account, delivered_seq, read_seq, unread_count }
            }
            AccountEvent::DeviceList { account } => Outgoing::DeviceList(account),
        }))
    }

    async fn follow(&mut self, conversation: ConversationId, member: bool) -> Result<(), Error> {
        if member {
            if self.sent.contains_key(&conversation) {
                return Ok(());
            }
            // The cursor was made with the membership; none means it has ended again since.
            if let Some(cursor) = self.delivery.store.conversation_cursor(self.device, conversation).await? {
                self.delivery.hub.subscribe(self.key, conversation);
                self.sent.insert(conversation, cursor);
                self.dirty.insert(conversation);
            }
        } else {
            self.sent.remove(&conversation);
            self.dirty.remove(&conversation);
            Hub::unsubscribe(&mut self.delivery.hub.state(), self.key, conversation);
            self.outbox.retain(|(event, _)| {
                !matches!(event, Outgoing::Message(m) if m.conversation_id == conversation)
                    && !matches!(event, Outgoing::Typing { conversation: c, .. } if *c == conversation)
            });
        }
        Ok(())
    }

    /// Acknowledges every event up to `seq`: stores the positions (and delivered receipts).
    pub async fn ack(&mut self, seq: u64) -> Result<Result<(), AckInFuture>, Error> {
        if seq >= self.next_seq {
            return Ok(Err(AckInFuture { last_sent: self.next_seq - 1 }));
        }
        let mut done = Vec::new();
        while let Some((s, _)) = self.pending.front()
            && *s <= seq
        {
            if let Some(entry) = self.pending.pop_front() {
                done.push(entry);
            }
        }
        collect_acks(done.into_iter(), &mut self.unsaved);
        if self.unsaved_since.is_none() && !self.unsaved.is_empty() {
            self.unsaved_since = Some(Instant::now());
        }
        Ok(Ok(()))
    }

    /// When the acknowledgements taken so far are due to be saved ([`Self::save_acks`]);
    /// `None` when there are none.
    pub fn acks_due(&self) -> Option<Instant> {
        self.unsaved_since.map(|since| since + ACK_SAVE_DELAY)
    }

    /// Starts saving the acknowledgements taken so far (group-committed with other sessions'),
    /// without waiting: this session goes on reading notices meanwhile, so a busy database
    /// cannot make it a slow consumer. One save at a time; a save that fails is logged and
    /// what it covered is delivered again later.
    pub fn save_acks(&mut self) {
        if self.saving.as_ref().is_some_and(|task| !task.is_finished()) {
            self.unsaved_since = Some(Instant::now());
            return;
        }
        let acks = std::mem::take(&mut self.unsaved);
        self.unsaved_since = None;
        if acks.is_empty() {
            return;
        }
        let (delivery, device, account) = (self.delivery.clone(), self.device, self.account);
        self.saving = Some(tokio::spawn(async move {
            if let Err(e) = delivery.save_acks(device, account, acks).await {
                tracing::warn!(error = %e, "cannot save acknowledgements; their events will come again");
            }
        }));
    }

    /// Tells the other members that this account is typing. `Ok(false)`: refused because it is
    /// not a member; `Err(LimitExceeded)`: too many updates.
    pub async fn typing(&mut self, conversation: ConversationId, typing: bool) -> Result<bool, Error> {
        let may_post = |(_, p): &(GuildId, Permissions)| p.contains(Permissions::SEND_MESSAGES);
        if !self.sent.contains_key(&conversation) && !self.channels.get(&conversation).is_some_and(may_post) {
            return Ok(false);
        }
        let now = Instant::now();
        if now.duration_since(self.typing_window.0) >= Duration::from_secs(1) {
            self.typing_window = (now, 0);
        }
        if self.typing_window.1 >= TYPING_PER_SECOND {
            return Err(Error::limit(ErrorReason::RateLimited, "at most 5 typing updates a second"));
        }
        self.typing_window.1 += 1;
        self.delivery.publish(Notice::Typing { conversation, account: self.account, typing }).await;
        Ok(true)
    }

    /// The last event sent on this session.
    pub fn last_sent(&self) -> u64 {
        self.next_seq - 1
    }

    /// Ends the session: unregisters it, keeps what was not acknowledged for a `ResumePoint`,
    /// and tells contacts when this was the account's last connection on this node.
    pub async fn close(&mut self) {
        if self.closed {
            return;
        }
        // What the device acknowledged is saved before the session is forgotten, so that a
        // reconnect (resumed or not) does not bring it again.
        if let Some(saving) = self.saving.take() {
            let _ = saving.await;
        }
        let acks = std::mem::take(&mut self.unsaved);
        if let Err(e) = self.delivery.save_acks(self.device, self.account, acks).await {
            tracing::warn!(error = %e, "cannot save a closing session's acknowledgements");
        }
        self.closed = true;
        let last_here = {
            let mut state = self.delivery.hub.state();
            let conversations =
                state.sessions.get(&self.key).map(|e| e.conversations.clone()).unwrap_or_default();
            for conversation in conversations {
                Hub::unsubscribe(&mut state, self.key, conversation);
            }
            state.sessions.remove(&self.key);
            remove_key(&mut state.by_device, self.device, self.key);
            let last_here = remove_key(&mut state.by_account, self.account, self.key);
            // Kept even when everything was acknowledged, so the next connection knows it resumed.
            let pending = std::mem::take(&mut self.pending);
            state.remember(self.id, Recent { device: self.device, closed_at: Instant::now(), pending });
            last_here
        };
        if last_here {
            let recipients = match self.delivery.presence_audience(self.account).await {
                Ok(contacts) => contacts,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell contacts that an account went offline");
                    return;
                }
            };
            let node = self.delivery.hub.node;
            self.delivery
                .publish(Notice::Presence { account: self.account, node, online: false, recipients })
                .await;
        }
    }
}

/// Removes `key` from `map[id]`; `true` when that was the last one.
fn remove_key<K: std::hash::Hash + Eq>(map: &mut HashMap<K, HashSet<u64>>, id: K, key: u64) -> bool {
    let Some(keys) = map.get_mut(&id) else { return false };
    keys.remove(&key);
    if keys.is_empty() {
        map.remove(&id);
        return true;
    }
    false
}

fn message_position(message: &MessageRecord) -> Position {
    // Changes arrive in order, so having this one means having every message up to its number.
    Position::Conversation {
        id: message.conversation_id,
        change: message.change_seq,
        message_seq: message.seq,
    }
}

/// Adds the positions of `pending` to `acks` (keeping the furthest position of each stream).
fn collect_acks(pending: impl Iterator<Item = (u64, Position)>, acks: &mut DeviceAcks) {
    let mut conversations: HashMap<ConversationId, (i64, i64)> =
        acks.conversations.drain(..).map(|(id, change, seq)| (id, (change, seq))).collect();
    for (_, position) in pending {
        match position {
            Position::Conversation { id, change, message_seq } => {
                let entry = conversations.entry(id).or_default();
                entry.0 = entry.0.max(change);
                entry.1 = entry.1.max(message_seq);
            }
            Position::Account(p) => acks.account_position = Some(acks.account_position.unwrap_or(0).max(p)),
            Position::ToDevice(id) => acks.to_device.push(id),
            Position::Live => {}
        }
    }
    acks.conversations = conversations.into_iter().map(|(id, (change, seq))| (id, change, seq)).collect();
}

fn signed_out() -> Error {
    Error::SessionInvalid
}
