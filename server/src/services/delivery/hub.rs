//! The hub: this node's sessions, by account, device and conversation, and the fan-out of every
//! notice the bus delivers to the sessions it concerns. It also keeps who is online on which
//! node (from presence notices) and the unacknowledged events of recently closed sessions, for
//! a `ResumePoint`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::session::{Kick, Position};
use crate::bus::{Notice, NoticeSink};
use crate::ids::{AccountId, ConversationId, DeviceId};

/// Notices queued for a session that is not reading, at most (then it is closed).
pub const MAX_QUEUED: usize = 1024;
/// How long a closed session's unacknowledged events are kept for a `ResumePoint`.
const RESUME_WINDOW: Duration = Duration::from_secs(600);
/// Closed sessions kept for a `ResumePoint`, at most.
const MAX_RECENT: usize = 10_000;
/// How often a node tells the others it is alive (and who is connected to it).
pub const NODE_ALIVE_EVERY: Duration = Duration::from_secs(15);

/// Routes notices to the sessions of this node.
pub struct Hub {
    pub(super) node: Uuid,
    state: Mutex<HubState>,
}

#[derive(Default)]
pub(super) struct HubState {
    pub(super) next_key: u64,
    pub(super) sessions: HashMap<u64, Entry>,
    pub(super) by_account: HashMap<AccountId, HashSet<u64>>,
    pub(super) by_device: HashMap<DeviceId, HashSet<u64>>,
    by_conversation: HashMap<ConversationId, HashSet<u64>>,
    /// Nodes on which each account has a connection (from presence notices).
    online: HashMap<AccountId, HashSet<Uuid>>,
    /// When each other node was last heard of.
    nodes_seen: HashMap<Uuid, Instant>,
    /// Closed sessions' unacknowledged events, for a `ResumePoint`, and their ids oldest first.
    pub(super) recent: HashMap<Uuid, Recent>,
    recent_order: VecDeque<Uuid>,
    pub(super) shutting_down: bool,
}

pub(super) struct Entry {
    pub(super) account: AccountId,
    pub(super) device: DeviceId,
    pub(super) conversations: HashSet<ConversationId>,
    pub(super) tx: mpsc::Sender<Arc<Notice>>,
    pub(super) kick: watch::Sender<Option<Kick>>,
}

impl HubState {
    /// Routes `conversation`'s notices to session `key` (if it is still open).
    fn subscribe(&mut self, key: u64, conversation: ConversationId) {
        let Some(entry) = self.sessions.get_mut(&key) else { return };
        entry.conversations.insert(conversation);
        self.by_conversation.entry(conversation).or_default().insert(key);
    }

    pub(super) fn remember(&mut self, session: Uuid, recent: Recent) {
        self.forget_old_sessions();
        while self.recent_order.len() >= MAX_RECENT {
            if let Some(oldest) = self.recent_order.pop_front() {
                self.recent.remove(&oldest);
            }
        }
        self.recent.insert(session, recent);
        self.recent_order.push_back(session);
    }

    pub(super) fn forget_old_sessions(&mut self) {
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

pub(super) struct Recent {
    pub(super) device: DeviceId,
    pub(super) closed_at: Instant,
    pub(super) pending: VecDeque<(u64, Position)>,
}

impl Hub {
    /// A hub for a node with a fresh id.
    pub fn new() -> Arc<Self> {
        Arc::new(Self { node: Uuid::now_v7(), state: Mutex::new(HubState::default()) })
    }

    pub(super) fn state(&self) -> MutexGuard<'_, HubState> {
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

    /// Closes one session.
    pub(super) fn kick_session(&self, key: u64, why: Kick) {
        if let Some(entry) = self.state().sessions.get(&key) {
            entry.kick.send_replace(Some(why));
        }
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

    pub(super) fn devices(&self) -> Vec<DeviceId> {
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

    pub(super) fn subscribe(&self, key: u64, conversation: ConversationId) {
        self.state().subscribe(key, conversation);
    }

    pub(super) fn unsubscribe(state: &mut HubState, key: u64, conversation: ConversationId) {
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

    /// Whether `account` has a connection on any node.
    pub fn is_online(&self, account: AccountId) -> bool {
        self.state().online.get(&account).is_some_and(|nodes| !nodes.is_empty())
    }

    /// Every account with a connection on any node, in id order.
    pub fn online_accounts(&self) -> Vec<AccountId> {
        let mut online: Vec<AccountId> =
            self.state().online.iter().filter(|(_, nodes)| !nodes.is_empty()).map(|(a, _)| *a).collect();
        online.sort_unstable();
        online
    }

    /// The accounts with a session on this node.
    pub(super) fn local_accounts(&self) -> Vec<AccountId> {
        self.state().by_account.keys().copied().collect()
    }

    /// Forgets nodes not heard of for three rounds; returns (account, node) pairs that were
    /// online only through such a node.
    pub(super) fn expire_nodes(&self) -> Vec<(AccountId, Uuid)> {
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
            Notice::Guild { event, accounts } => {
                let keys: HashSet<u64> = accounts
                    .iter()
                    .flat_map(|a| state.by_account.get(a).into_iter().flatten().copied())
                    .collect();
                for key in keys {
                    // Followed from now, so a message routed after this event reaches the
                    // session, which takes the event in first.
                    for channel in &event.follow {
                        state.subscribe(key, *channel);
                    }
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
        // Fails rather than passes silently on a clock too young to go back (a machine up for
        // less than a minute): the expiry below would then go unchecked.
        let long_ago = Instant::now()
            .checked_sub(4 * NODE_ALIVE_EVERY)
            .expect("the monotonic clock goes back four node-alive periods");
        hub.state().nodes_seen.insert(other, long_ago);
        assert_eq!(hub.expire_nodes(), vec![(account, other)]);
        hub.deliver(Notice::Presence { account, node: other, online: false, recipients: Vec::new() });
        assert!(!hub.is_online(account));
        // A node that speaks again is back.
        hub.deliver(Notice::NodeAlive { node: other, accounts: vec![account] });
        assert!(hub.is_online(account));
    }
}
