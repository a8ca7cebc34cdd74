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
//!
//! Three parts: the [`Hub`] (this node's sessions and the fan-out of notices to them), one
//! [`Session`] (a device's connection: its streams, acknowledgements and backlog), and here the
//! front, [`Delivery`]: what the other services call, and the gateway's [`Delivery::open`].

mod hub;
mod session;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::{Caller, Error, ErrorReason};
use crate::bus::{Bus, Notice, NoticeSink};
use crate::ids::{AccountId, DeviceId};
use crate::store::{DeviceAcks, Store, now_ms};
use hub::Entry;
pub use hub::{Hub, MAX_QUEUED, NODE_ALIVE_EVERY};

/// Guilds of up to this many members show their members' presence live (as Discord's
/// "large threshold"); in bigger ones presence is read with the member list.
pub const PRESENCE_GUILD_MAX: i64 = 250;
pub use session::{
    ACK_SAVE_DELAY, AckInFuture, Kick, MAX_OUTBOX, MAX_UNACKED, Opened, Outgoing, Session, Wake,
};

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

    /// Who sees `account` come online and go offline: its contacts, and the members of the
    /// guilds it shares of at most [`PRESENCE_GUILD_MAX`] members (a bigger guild's member
    /// list shows who is online when it is read, not live), but for those it blocked.
    pub(crate) async fn presence_audience(&self, account: AccountId) -> Result<Vec<AccountId>, Error> {
        let mut audience = self.store.contacts(account).await?;
        audience.extend(self.store.guild_peers(account, PRESENCE_GUILD_MAX).await?);
        audience.sort_unstable();
        audience.dedup();
        Ok(audience)
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
        let mut session = Session::new(id, *caller, key, self.clone(), rx, kick_rx);
        let result = session.start(stashed).await;
        let resumed = match result {
            Ok(resumed) => resumed,
            Err(e) => {
                session.close().await;
                return Err(e);
            }
        };
        let contacts = self.presence_audience(caller.account_id).await?;
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
                match self.presence_audience(account).await {
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
