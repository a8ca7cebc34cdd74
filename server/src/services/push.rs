//! Web Push: a content-free "new message" for devices whose app is closed (docs/admin.md,
//! "Push notifications"). A device registers the browser's push subscription
//! (`PushService`); when a message arrives in a conversation, each other accepted member's
//! subscribed device that has no gateway connection on this node gets one push, encrypted to
//! the browser (RFC 8291) and signed with the server's VAPID key (RFC 8292).
//!
//! What a push says: `{"kind":"message","conversation":"<id>"}`, or without the conversation
//! when several were written to, padded to one size. No sender, no text: the push service
//! sees neither (it sees the ciphertext's fixed size, the time, TTL and urgency), and the
//! browser shows "New message" and opens that conversation.
//!
//! A flood of messages must not become a flood of pushes: a device gets at most one push per
//! `min_interval`; what arrives meanwhile is merged into the next one. Sends run at most
//! [`MAX_CONCURRENT_SENDS`] at a time; a 404 or 410 deletes the subscription; 429, 5xx and
//! network errors are tried again [`MAX_ATTEMPTS`] times in all, with backoff; anything else is
//! given up. Messages are noticed through a bounded queue: when it is full (the server cannot
//! keep up), a push is skipped, never a message.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::sync::{Semaphore, mpsc};

use super::{Caller, Error, ErrorReason, Hub};
use crate::ids::{AccountId, ConversationId, DeviceId};
use crate::store::{PushSubscription, Store, now_ms};
use crate::webpush::{EndpointPolicy, Outcome, PushClient, PushRequest, VapidKey, ece};

/// Pushes being sent at once, at most.
pub const MAX_CONCURRENT_SENDS: usize = 16;
/// Tries of one push in all (the first and the retries).
pub const MAX_ATTEMPTS: u32 = 3;
/// Messages waiting to be looked at for pushes, at most (then pushes are skipped).
const QUEUE: usize = 4096;
/// Slots kept before idle ones are dropped.
const MAX_SLOTS: usize = 10_000;
/// The topic of every push: one still waiting at the push service is replaced by a newer one.
const TOPIC: &str = "messages";

/// What the admin chose.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The `sub` of VAPID tokens: how a push service reaches the admin (`mailto:` or `https:`).
    pub contact: String,
    /// One push per device per this, at most.
    pub min_interval: Duration,
    /// How long a push service may hold a push for an offline browser (`TTL`), in seconds.
    pub ttl: u32,
    /// Waits between tries (`backoff[i]` before try `i + 2`).
    pub backoff: [Duration; 2],
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            contact: "mailto:admin@kitsulan.invalid".into(),
            min_interval: Duration::from_secs(10),
            ttl: 86_400,
            backoff: [Duration::from_secs(1), Duration::from_secs(5)],
        }
    }
}

/// What a device's app needs to subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// Whether this server sends pushes at all.
    pub enabled: bool,
    /// The VAPID public key (base64url, uncompressed point): `applicationServerKey`.
    pub public_key: String,
    /// Whether the calling device has a subscription.
    pub subscribed: bool,
}

/// Push subscriptions and sending.
#[derive(Clone)]
pub struct Push {
    store: Arc<dyn Store>,
    core: Option<Arc<Core>>,
}

struct Core {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    key: VapidKey,
    policy: Arc<EndpointPolicy>,
    client: PushClient,
    settings: PushSettings,
    queue: mpsc::Sender<(ConversationId, AccountId)>,
    slots: Mutex<HashMap<DeviceId, Slot>>,
    sends: Semaphore,
}

/// One device's pacing: when it may get its next push, and what waits for it.
struct Slot {
    next_at: Instant,
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Messages in one conversation.
    One(ConversationId),
    /// Messages in several.
    Several,
}

impl Push {
    /// Push turned off (`KITSULAN_PUSH=off`, and the admin CLI): subscriptions are refused and
    /// nothing is sent.
    pub fn off(store: Arc<dyn Store>) -> Self {
        Self { store, core: None }
    }

    /// Push on: starts the task that turns messages into pushes (it ends with the runtime).
    pub fn start(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        key: VapidKey,
        policy: Arc<EndpointPolicy>,
        client: PushClient,
        settings: PushSettings,
    ) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let core = Arc::new(Core {
            store: store.clone(),
            hub,
            key,
            policy,
            client,
            settings,
            queue,
            slots: Mutex::new(HashMap::new()),
            sends: Semaphore::new(MAX_CONCURRENT_SENDS),
        });
        tokio::spawn(core.clone().watch(rx));
        Self { store, core: Some(core) }
    }

    fn core(&self) -> Result<&Arc<Core>, Error> {
        self.core.as_ref().ok_or_else(|| {
            Error::precondition(
                ErrorReason::PushUnavailable,
                "push notifications are turned off on this server",
            )
        })
    }

    /// Whether push is on, the key to subscribe with, and whether the caller's device is subscribed.
    pub async fn config(&self, caller: &Caller) -> Result<PushConfig, Error> {
        let subscribed = self.store.push_subscription(caller.device_id).await?.is_some();
        Ok(match &self.core {
            Some(core) => PushConfig { enabled: true, public_key: core.key.public_key_b64(), subscribed },
            None => PushConfig { enabled: false, public_key: String::new(), subscribed },
        })
    }

    /// Sets the caller's device's subscription (replacing any): the endpoint must pass the
    /// endpoint rules (`webpush::endpoint`), the keys be a P-256 point and a 16-byte secret
    /// (base64url). Nothing is stored when anything is refused.
    pub async fn subscribe(
        &self,
        caller: &Caller,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> Result<(), Error> {
        let core = self.core()?;
        let endpoint = core.policy.check(endpoint).map_err(|e| {
            Error::invalid(
                ErrorReason::PushEndpointInvalid,
                "endpoint",
                format!("push endpoint refused: {e}"),
            )
        })?;
        let p256dh = decode_key(p256dh, 100, "p256dh")?;
        let auth = decode_key(auth, 40, "auth")?;
        if auth.len() != ece::AUTH_LEN {
            return Err(Error::invalid(
                ErrorReason::PushKeysInvalid,
                "auth",
                "auth must be 16 bytes (base64url)",
            ));
        }
        ece::check_keys(&p256dh, &auth).map_err(|_| {
            Error::invalid(
                ErrorReason::PushKeysInvalid,
                "p256dh",
                "p256dh must be an uncompressed P-256 public key (65 bytes, base64url)",
            )
        })?;
        let subscription = PushSubscription { endpoint: endpoint.url, p256dh, auth };
        self.store.set_push_subscription(caller.device_id, &subscription, now_ms()).await?;
        tracing::info!(device = %caller.device_id, origin = %endpoint.origin, "push subscription set");
        Ok(())
    }

    /// Deletes the caller's device's subscription (none is fine).
    pub async fn unsubscribe(&self, caller: &Caller) -> Result<(), Error> {
        if self.store.delete_push_subscription(caller.device_id, None).await? {
            tracing::info!(device = %caller.device_id, "push subscription deleted by its device");
        }
        Ok(())
    }

    /// A message from `sender` was stored in `conversation`: wake the other members' closed apps.
    pub fn message_sent(&self, conversation: ConversationId, sender: AccountId) {
        if let Some(core) = &self.core
            && core.queue.try_send((conversation, sender)).is_err()
        {
            tracing::debug!(%conversation, "push queue full: no push for this message");
        }
    }
}

fn decode_key(text: &str, max: usize, field: &'static str) -> Result<Vec<u8>, Error> {
    let refused = || {
        Error::invalid(
            ErrorReason::PushKeysInvalid,
            field,
            format!("{field} must be base64url (at most {max} characters)"),
        )
    };
    if text.len() > max {
        return Err(refused());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| refused())
}

impl Core {
    /// Turns noticed messages into device wake-ups, one store read per conversation and batch.
    async fn watch(self: Arc<Self>, mut rx: mpsc::Receiver<(ConversationId, AccountId)>) {
        while let Some(first) = rx.recv().await {
            let mut batch = HashSet::from([first]);
            while let Ok(more) = rx.try_recv() {
                batch.insert(more);
            }
            for (conversation, sender) in batch {
                match self.store.push_devices(conversation, sender).await {
                    Ok(devices) => {
                        for (_, device) in devices {
                            self.clone().wake(device, conversation);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot look up whom to push to"),
                }
            }
        }
    }

    /// `device` has a new message in `conversation`: a push now, or merged into the next one.
    fn wake(self: Arc<Self>, device: DeviceId, conversation: ConversationId) {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slots.len() >= MAX_SLOTS {
            slots.retain(|_, s| s.pending.is_some() || s.next_at > now);
        }
        let slot = slots.entry(device).or_insert(Slot { next_at: now, pending: None });
        match slot.pending {
            Some(Pending::One(c)) if c != conversation => slot.pending = Some(Pending::Several),
            Some(_) => {}
            None => {
                slot.pending = Some(Pending::One(conversation));
                let delay = slot.next_at.saturating_duration_since(now);
                tokio::spawn(self.clone().flush(device, delay));
            }
        }
    }

    /// After `delay`, sends what waits for `device` (unless it is connected here now).
    async fn flush(self: Arc<Self>, device: DeviceId, delay: Duration) {
        tokio::time::sleep(delay).await;
        let pending = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(slot) = slots.get_mut(&device) else { return };
            slot.next_at = Instant::now() + self.settings.min_interval;
            slot.pending.take()
        };
        let Some(pending) = pending else { return };
        if self.hub.has_device(device) {
            tracing::debug!(%device, "device connected: its open app tells of the message, no push");
            return;
        }
        let subscription = match self.store.push_subscription(device).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a push subscription");
                return;
            }
        };
        self.deliver(device, &subscription, pending).await;
    }

    async fn deliver(&self, device: DeviceId, subscription: &PushSubscription, pending: Pending) {
        // The admin's rules may have changed since it was stored.
        let endpoint = match self.policy.check(&subscription.endpoint) {
            Ok(endpoint) => endpoint,
            Err(e) => {
                tracing::warn!(%device, error = %e, "push endpoint no longer allowed: subscription deleted");
                let _ = self.store.delete_push_subscription(device, Some(&subscription.endpoint)).await;
                return;
            }
        };
        let payload = match pending {
            Pending::One(c) => serde_json::json!({ "kind": "message", "conversation": c.to_string() }),
            Pending::Several => serde_json::json!({ "kind": "message" }),
        };
        let payload = payload.to_string();
        for attempt in 0..MAX_ATTEMPTS {
            let outcome = {
                let Ok(_permit) = self.sends.acquire().await else { return };
                let body = match ece::encrypt(payload.as_bytes(), &subscription.p256dh, &subscription.auth) {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::warn!(%device, error = %e, "cannot encrypt a push");
                        return;
                    }
                };
                let authorization = match self.key.authorization(&endpoint.origin, &self.settings.contact) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot sign a push");
                        return;
                    }
                };
                self.client
                    .send(PushRequest {
                        endpoint: endpoint.url.clone(),
                        authorization,
                        ttl: self.settings.ttl,
                        urgency: "high",
                        topic: Some(TOPIC),
                        body,
                    })
                    .await
            };
            match outcome {
                Outcome::Accepted => {
                    tracing::debug!(%device, origin = %endpoint.origin, "push sent");
                    return;
                }
                Outcome::Gone => {
                    tracing::info!(%device, origin = %endpoint.origin, "push subscription gone (404/410): deleted");
                    if let Err(e) =
                        self.store.delete_push_subscription(device, Some(&subscription.endpoint)).await
                    {
                        tracing::warn!(error = %e, "cannot delete a gone push subscription");
                    }
                    return;
                }
                Outcome::Refused(status) => {
                    tracing::warn!(%device, origin = %endpoint.origin, status, "push refused; not retried");
                    return;
                }
                Outcome::Retry(why) => {
                    let Some(wait) = self.settings.backoff.get(attempt as usize) else {
                        tracing::warn!(%device, origin = %endpoint.origin, attempts = MAX_ATTEMPTS, %why,
                                       "push failed; giving up");
                        return;
                    };
                    tracing::debug!(%device, origin = %endpoint.origin, %why, "push failed; trying again");
                    tokio::time::sleep(*wait).await;
                }
            }
        }
    }
}
