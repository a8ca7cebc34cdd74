//! Delivery to connected devices: what the gateway sends, in which order, and what an
//! acknowledgement means. Transport-free: the WebSocket handler drives a [`Session`].
//!
//! Each session follows the device's streams (see `store::delivery`): its conversations, its
//! account stream and its to-device inbox. It starts from the device's acknowledged positions,
//! so a reconnect resumes where the device stopped. Live notices from the [`Hub`] either carry
//! the next change of a stream (sent as is) or mark the stream for a catch-up read from the
//! database, so a missed or reordered notice never loses an event.
//!
//! Memory per session is bounded: at most [`MAX_UNACKED`] events wait for an acknowledgement,
//! the outbox holds at most [`MAX_OUTBOX`] events (beyond that a stream is re-read from the
//! database later), and the hub's queue of notices for a session holds [`MAX_QUEUED`]; when a
//! session stops reading (its client does not acknowledge) and that queue overflows, the
//! session is closed with [`Kick::SlowConsumer`] and the device resumes on reconnect.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::attachments::AttachmentEvent;
use super::avatars::AvatarEvent;
use super::calls::CallEvent;
use super::{Caller, Error, ErrorReason};
use crate::bus::{Bus, Notice, NoticeSink};
use crate::ids::{AccountId, ConversationId, DeviceId, MessageId};
use crate::store::{AccountEvent, DeviceAcks, MessageRecord, Role, Store, ToDeviceRecord, now_ms};

/// Events sent and not yet acknowledged, at most.
pub const MAX_UNACKED: usize = 1024;
/// Events read and waiting to be sent, at most (then streams are re-read later).
pub const MAX_OUTBOX: usize = 1024;
/// Notices queued for a session that is not reading, at most (then it is closed).
pub const MAX_QUEUED: usize = 1024;
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
/// How long a closed session's unacknowledged events are kept for a `ResumePoint`.
const RESUME_WINDOW: Duration = Duration::from_secs(600);
/// Closed sessions kept for a `ResumePoint`, at most.
const MAX_RECENT: usize = 10_000;
/// How often a node tells the others it is alive (and who is connected to it).
pub const NODE_ALIVE_EVERY: Duration = Duration::from_secs(15);

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
}

/// What acknowledging an event moves.
#[derive(Debug, Clone, Copy)]
enum Position {
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

/// Routes notices to the sessions of this node.
pub struct Hub {
    node: Uuid,
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    next_key: u64,
    sessions: HashMap<u64, Entry>,
    by_account: HashMap<AccountId, HashSet<u64>>,
    by_device: HashMap<DeviceId, HashSet<u64>>,
    by_conversation: HashMap<ConversationId, HashSet<u64>>,
    /// Nodes on which each account has a connection (from presence notices).
    online: HashMap<AccountId, HashSet<Uuid>>,
    /// When each other node was last heard of.
    nodes_seen: HashMap<Uuid, Instant>,
    /// Closed sessions' unacknowledged events, for a `ResumePoint`, and their ids oldest first.
    recent: HashMap<Uuid, Recent>,
    recent_order: VecDeque<Uuid>,
    shutting_down: bool,
}

struct Entry {
    account: AccountId,
    device: DeviceId,
    conversations: HashSet<ConversationId>,
    tx: mpsc::Sender<Arc<Notice>>,
    kick: watch::Sender<Option<Kick>>,
}

impl HubState {
    fn remember(&mut self, session: Uuid, recent: Recent) {
        self.forget_old_sessions();
        while self.recent_order.len() >= MAX_RECENT {
            if let Some(oldest) = self.recent_order.pop_front() {
                self.recent.remove(&oldest);
            }
        }
        self.recent.insert(session, recent);
        self.recent_order.push_back(session);
    }

    fn forget_old_sessions(&mut self) {
        let now = Instant::now();
        while let Some(oldest) = self.recent_order.front() {
            match self.recent.get(oldest) {
                Some(r) if now.duration_since(r.closed_at) < RESUME_WINDOW => break,
                _ => {
                    if let Some(id) = self.recent_order.pop_front() {
                        self.recent.remove(&id);
                    }
                }
            }
        }
    }
}

struct Recent {
    device: DeviceId,
    closed_at: Instant,
    pending: VecDeque<(u64, Position)>,
}

impl Hub {
    /// A hub for a node with a fresh id.
    pub fn new() -> Arc<Self> {
        Arc::new(Self { node: Uuid::now_v7(), state: Mutex::new(HubState::default()) })
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves maps that are still consistent enough to route.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many sessions this node holds.
    pub fn sessions(&self) -> usize {
        self.state().sessions.len()
    }

    /// Closes every session of `device` on this node.
    pub fn kick_device(&self, device: DeviceId, why: Kick) -> usize {
        let state = self.state();
        let keys = state.by_device.get(&device).cloned().unwrap_or_default();
        for key in &keys {
            if let Some(entry) = state.sessions.get(key) {
                entry.kick.send_replace(Some(why));
            }
        }
        keys.len()
    }

    /// Closes every session, now and for any that open later.
    pub fn shut_down(&self) {
        let mut state = self.state();
        state.shutting_down = true;
        for entry in state.sessions.values() {
            entry.kick.send_replace(Some(Kick::ShuttingDown));
        }
    }

    /// Whether `device` has a session on this node.
    pub fn has_device(&self, device: DeviceId) -> bool {
        self.state().by_device.contains_key(&device)
    }

    fn devices(&self) -> Vec<DeviceId> {
        self.state().by_device.keys().copied().collect()
    }

    fn send(entry: &Entry, notice: &Arc<Notice>) {
        if let Err(mpsc::error::TrySendError::Full(_)) = entry.tx.try_send(notice.clone()) {
            entry.kick.send_replace(Some(Kick::SlowConsumer));
        }
    }

    fn send_to(state: &HubState, keys: Option<&HashSet<u64>>, notice: &Arc<Notice>, skip: Option<AccountId>) {
        for key in keys.into_iter().flatten() {
            if let Some(entry) = state.sessions.get(key)
                && Some(entry.account) != skip
            {
                Self::send(entry, notice);
            }
        }
    }

    fn subscribe(&self, key: u64, conversation: ConversationId) {
        let mut state = self.state();
        let Some(entry) = state.sessions.get_mut(&key) else { return };
        entry.conversations.insert(conversation);
        state.by_conversation.entry(conversation).or_default().insert(key);
    }

    fn unsubscribe(state: &mut HubState, key: u64, conversation: ConversationId) {
        if let Some(entry) = state.sessions.get_mut(&key) {
            entry.conversations.remove(&conversation);
        }
        if let Some(keys) = state.by_conversation.get_mut(&conversation) {
            keys.remove(&key);
            if keys.is_empty() {
                state.by_conversation.remove(&conversation);
            }
        }
    }

    fn is_online(&self, account: AccountId) -> bool {
        self.state().online.get(&account).is_some_and(|nodes| !nodes.is_empty())
    }

    /// The accounts with a session on this node.
    fn local_accounts(&self) -> Vec<AccountId> {
        self.state().by_account.keys().copied().collect()
    }

    /// Forgets nodes not heard of for three rounds; returns (account, node) pairs that were
    /// online only through such a node.
    fn expire_nodes(&self) -> Vec<(AccountId, Uuid)> {
        let mut state = self.state();
        let now = Instant::now();
        let gone: HashSet<Uuid> = state
            .nodes_seen
            .iter()
            .filter(|(_, seen)| now.duration_since(**seen) > 3 * NODE_ALIVE_EVERY)
            .map(|(node, _)| *node)
            .collect();
        state.nodes_seen.retain(|node, _| !gone.contains(node));
        let mut stale = Vec::new();
        for (account, nodes) in &state.online {
            for node in nodes.iter().filter(|n| gone.contains(n)) {
                stale.push((*account, *node));
            }
        }
        stale
    }
}

impl NoticeSink for Hub {
    fn deliver(&self, notice: Notice) {
        let notice = Arc::new(notice);
        let mut state = self.state();
        match &*notice {
            Notice::Message(message) => {
                Self::send_to(&state, state.by_conversation.get(&message.conversation_id), &notice, None);
            }
            Notice::Accounts(accounts) => {
                for account in accounts {
                    Self::send_to(&state, state.by_account.get(account), &notice, None);
                }
            }
            Notice::Inboxes(devices) => {
                for device in devices {
                    Self::send_to(&state, state.by_device.get(device), &notice, None);
                }
            }
            Notice::Left { conversation, account } => {
                let keys: Vec<u64> = state.by_account.get(account).into_iter().flatten().copied().collect();
                for key in keys {
                    Self::unsubscribe(&mut state, key, *conversation);
                }
            }
            Notice::Typing { conversation, account, .. } => {
                Self::send_to(&state, state.by_conversation.get(conversation), &notice, Some(*account));
            }
            Notice::Call { event, conversation, devices, accounts, except } => {
                let mut keys: HashSet<u64> = HashSet::new();
                if *conversation {
                    keys.extend(state.by_conversation.get(&event.conversation).into_iter().flatten());
                }
                for device in devices {
                    keys.extend(state.by_device.get(device).into_iter().flatten());
                }
                for account in accounts {
                    keys.extend(state.by_account.get(account).into_iter().flatten());
                }
                for key in keys {
                    if let Some(entry) = state.sessions.get(&key)
                        && Some(entry.device) != *except
                    {
                        Self::send(entry, &notice);
                    }
                }
            }
            Notice::Attachment { event, conversation, accounts } => {
                let mut keys: HashSet<u64> = HashSet::new();
                if *conversation {
                    keys.extend(state.by_conversation.get(&event.conversation).into_iter().flatten());
                }
                for account in accounts {
                    keys.extend(state.by_account.get(account).into_iter().flatten());
                }
                for key in keys {
                    if let Some(entry) = state.sessions.get(&key) {
                        Self::send(entry, &notice);
                    }
                }
            }
            Notice::Avatar { event, conversation, accounts } => {
                let mut keys: HashSet<u64> = HashSet::new();
                if *conversation && let Some(group) = &event.conversation {
                    keys.extend(state.by_conversation.get(group).into_iter().flatten());
                }
                for account in accounts {
                    keys.extend(state.by_account.get(account).into_iter().flatten());
                }
                for key in keys {
                    if let Some(entry) = state.sessions.get(&key) {
                        Self::send(entry, &notice);
                    }
                }
            }
            Notice::NodeAlive { node, accounts } => {
                if *node != self.node {
                    state.nodes_seen.insert(*node, Instant::now());
                    // Catch up quietly (after a bus outage); changes come as presence notices.
                    for account in accounts {
                        state.online.entry(*account).or_default().insert(*node);
                    }
                }
            }
            Notice::Presence { account, node, online, recipients } => {
                if *node != self.node {
                    state.nodes_seen.insert(*node, Instant::now());
                }
                let nodes = state.online.entry(*account).or_default();
                let was = !nodes.is_empty();
                if *online {
                    nodes.insert(*node);
                } else {
                    nodes.remove(node);
                }
                let now = !nodes.is_empty();
                if now != was {
                    for recipient in recipients.iter().filter(|r| *r != account) {
                        Self::send_to(&state, state.by_account.get(recipient), &notice, None);
                    }
                }
            }
        }
    }

    fn resync(&self) {
        let notice = Arc::new(Notice::Accounts(Vec::new()));
        let state = self.state();
        for entry in state.sessions.values() {
            Self::send(entry, &notice);
        }
    }
}

/// Opens sessions and keeps the node-wide delivery tasks.
#[derive(Clone)]
pub struct Delivery {
    pub(super) store: Arc<dyn Store>,
    /// Where sessions' acknowledgements wait for the next group commit.
    pub(super) acks: super::group_commit::AckQueue,
    pub(super) bus: Arc<dyn Bus>,
    pub(super) hub: Arc<Hub>,
}

impl Delivery {
    /// Saves a device's acknowledgements (with other sessions' in one transaction) and tells
    /// the accounts whose receipts moved.
    async fn save_acks(&self, device: DeviceId, account: AccountId, acks: DeviceAcks) -> Result<(), Error> {
        if acks.is_empty() {
            return Ok(());
        }
        let receipts = self.acks.submit((device, account, acks)).await?;
        let mut notified: Vec<AccountId> = receipts.into_iter().flat_map(|r| r.notified).collect();
        if !notified.is_empty() {
            notified.sort_unstable();
            notified.dedup();
            self.publish(Notice::Accounts(notified)).await;
        }
        Ok(())
    }

    /// The hub of this node.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Publishes a notice to every node.
    pub async fn publish(&self, notice: Notice) {
        self.bus.publish(notice).await;
    }

    /// Wakes the streams of `account` and its peers (anyone sharing a conversation, requests
    /// included) after its devices changed (the store wrote their events with the change). A
    /// failure only delays the events.
    pub async fn devices_changed(&self, account: AccountId) {
        match self.store.peers(account).await {
            Ok(peers) => self.publish(Notice::Accounts(peers)).await,
            Err(e) => tracing::warn!(error = %e, "cannot wake the contacts of an account"),
        }
    }

    /// A device was signed out or revoked: its sessions here close now (other nodes see the
    /// revocation in the database), and its contacts hear its device list changed.
    pub async fn device_gone(&self, account: AccountId, device: DeviceId) {
        self.hub.kick_device(device, Kick::SignedOut);
        self.devices_changed(account).await;
    }

    /// Several devices of one account were signed out at once (their revocations are in the
    /// database for other nodes): their sessions here close now, and contacts hear of it once.
    pub async fn devices_gone(&self, account: AccountId, devices: &[DeviceId]) {
        if devices.is_empty() {
            return;
        }
        for device in devices {
            self.hub.kick_device(*device, Kick::SignedOut);
        }
        self.devices_changed(account).await;
    }

    /// Records that an account's device keys changed and wakes who must hear it.
    pub async fn device_keys_changed(&self, account: AccountId) -> Result<(), Error> {
        let recipients = self.store.device_list_changed(account).await?;
        self.publish(Notice::Accounts(recipients)).await;
        Ok(())
    }

    /// Opens a session for an authenticated device. `resume` names the device's previous
    /// session and the last event processed there.
    pub async fn open(&self, caller: &Caller, resume: Option<(Uuid, u64)>) -> Result<Opened, Error> {
        let (tx, rx) = mpsc::channel(MAX_QUEUED);
        let (kick_tx, kick_rx) = watch::channel(None);
        let id = Uuid::now_v7();
        // Register before reading positions, so no notice between the two is missed.
        let (key, first_here, stashed) = {
            let mut state = self.hub.state();
            if state.shutting_down {
                return Err(Error::precondition(ErrorReason::ShuttingDown, "the server is shutting down"));
            }
            state.next_key += 1;
            let key = state.next_key;
            let first_here = !state.by_account.contains_key(&caller.account_id);
            state.sessions.insert(
                key,
                Entry {
                    account: caller.account_id,
                    device: caller.device_id,
                    conversations: HashSet::new(),
                    tx,
                    kick: kick_tx,
                },
            );
            state.by_account.entry(caller.account_id).or_default().insert(key);
            state.by_device.entry(caller.device_id).or_default().insert(key);
            state.forget_old_sessions();
            let stashed = resume
                .and_then(|(session, seq)| state.recent.remove(&session).map(|r| (r, seq)))
                .filter(|(r, _)| r.device == caller.device_id);
            (key, first_here, stashed)
        };
        let mut session = Session {
            id,
            caller: *caller,
            key,
            account: caller.account_id,
            device: caller.device_id,
            delivery: self.clone(),
            rx,
            kick: kick_rx,
            next_seq: 1,
            pending: VecDeque::new(),
            outbox: VecDeque::new(),
            sent: HashMap::new(),
            dirty: BTreeSet::new(),
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
        };
        let result = session.start(stashed).await;
        let resumed = match result {
            Ok(resumed) => resumed,
            Err(e) => {
                session.close().await;
                return Err(e);
            }
        };
        let contacts = self.store.contacts(caller.account_id).await?;
        if first_here {
            self.publish(Notice::Presence {
                account: caller.account_id,
                node: self.hub.node,
                online: true,
                recipients: contacts.clone(),
            })
            .await;
        }
        let online =
            contacts.into_iter().filter(|c| *c != caller.account_id && self.hub.is_online(*c)).collect();
        Ok(Opened { session, resumed, online })
    }

    /// Tells other nodes this one is alive every [`NODE_ALIVE_EVERY`], and takes accounts that
    /// were online only on a node gone silent (killed, cut off) offline for their contacts here.
    pub async fn keep_presence(self) {
        let mut tick = tokio::time::interval(NODE_ALIVE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let accounts = self.hub.local_accounts();
            self.publish(Notice::NodeAlive { node: self.hub.node, accounts }).await;
            for (account, node) in self.hub.expire_nodes() {
                match self.store.contacts(account).await {
                    // Only this node's hub: every node does the same for its own sessions.
                    Ok(recipients) => {
                        self.hub.deliver(Notice::Presence { account, node, online: false, recipients })
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot tell contacts an account went offline"),
                }
            }
        }
    }

    /// Closes sessions of devices revoked by any node or process, checking every `every`.
    pub async fn watch_revocations(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut since = now_ms();
        loop {
            tick.tick().await;
            if self.hub.sessions() == 0 {
                since = now_ms();
                continue;
            }
            // Overlap the windows: a revocation committed late with an earlier time is still seen.
            let started = now_ms();
            match self.store.revocations_since(since - 5_000).await {
                Ok(devices) => {
                    let here: HashSet<DeviceId> = self.hub.devices().into_iter().collect();
                    for device in devices.into_iter().filter(|d| here.contains(d)) {
                        let n = self.hub.kick_device(device, Kick::SignedOut);
                        tracing::info!(%device, sessions = n, "closing the gateway sessions of a signed-out device");
                    }
                    since = started;
                }
                Err(e) => tracing::warn!(error = %e, "cannot check for signed-out devices"),
            }
        }
    }
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

    async fn start(&mut self, stashed: Option<(Recent, u64)>) -> Result<bool, Error> {
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
        Ok(resumed)
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
    /// else marks the stream for a catch-up read.
    pub fn absorb(&mut self, notice: &Notice) {
        match notice {
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
                if self.sent.contains_key(conversation) && self.outbox.len() < MAX_OUTBOX {
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
        if !self.sent.contains_key(&conversation) {
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
            let recipients = match self.delivery.store.contacts(self.account).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_online_only_on_a_silent_node_go_offline() {
        let hub = Hub::new();
        let account = AccountId::from_uuid(Uuid::now_v7());
        let other = Uuid::now_v7();
        hub.deliver(Notice::Presence { account, node: other, online: true, recipients: Vec::new() });
        assert!(hub.is_online(account));
        assert!(hub.expire_nodes().is_empty(), "the node was heard of just now");
        let Some(long_ago) = Instant::now().checked_sub(4 * NODE_ALIVE_EVERY) else { return };
        hub.state().nodes_seen.insert(other, long_ago);
        assert_eq!(hub.expire_nodes(), vec![(account, other)]);
        hub.deliver(Notice::Presence { account, node: other, online: false, recipients: Vec::new() });
        assert!(!hub.is_online(account));
        // A node that speaks again is back.
        hub.deliver(Notice::NodeAlive { node: other, accounts: vec![account] });
        assert!(hub.is_online(account));
    }
}
