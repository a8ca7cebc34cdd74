//! The rules of KitsuLAN, independent of how requests arrive (gRPC, HTTP, gateway, admin CLI)
//! and of which database holds the data. Transport calls services; services call the store
//! traits and the mailer.

pub mod account_data;
pub mod accounts;
pub mod admin;
pub mod attachments;
pub mod auth;
pub mod avatars;
pub mod backup;
pub mod calls;
pub mod conversations;
pub mod delivery;
pub mod devices;
mod error;
mod group_commit;
pub mod guilds;
pub mod keys;
pub mod message_extras;
pub mod names;
pub mod pairing;
pub mod passwords;
pub mod push;
pub mod rate_limits;
pub mod readiness;
pub mod server_info;
pub mod to_device;
pub mod tokens;
pub mod totp;
pub mod voice;

use std::sync::Arc;
use std::time::Duration;

use crate::blobs::{BlobStore, DiskBlobs};
use crate::bus::Bus;
use crate::mail::Mailer;
use crate::store::{Store, now_ms};

pub use accounts::Accounts;
pub use admin::Admin;
pub use attachments::{AttachmentSettings, Attachments, UploadGate};
pub use auth::{Auth, AuthPolicy, Caller, ClientAddr};
pub use avatars::Avatars;
pub use backup::Backups;
pub use calls::{Calls, TurnSettings};
pub use conversations::{ConversationSettings, Conversations};
pub use delivery::{Delivery, Hub};
pub use devices::Devices;
pub use error::{Error, ErrorReason};
pub use guilds::{GuildSettings, Guilds};
pub use keys::Keys;
pub use pairing::Pairing;
pub use passwords::{HashPoolSize, SecretHasher};
pub use push::{Push, PushSettings};
pub use readiness::{NotReady, Readiness};
pub use server_info::{ServerInfo, StorageBackend};
pub use to_device::ToDevice;
pub use voice::Voice;

/// Every service, shared by all transports.
pub struct Services {
    /// Facts about this server, fixed at start-up.
    pub server_info: ServerInfo,
    /// Whether the server can take traffic.
    pub readiness: Readiness,
    /// Sign-up, sign-in, sessions.
    pub auth: Auth,
    /// The caller's own account.
    pub accounts: Accounts,
    /// The caller's devices.
    pub devices: Devices,
    /// Admin operations.
    pub admin: Admin,
    /// The E2EE public-key directory.
    pub keys: Keys,
    /// To-device messages.
    pub to_device: ToDevice,
    /// Linking new devices.
    pub pairing: Pairing,
    /// Conversations and messages.
    pub conversations: Conversations,
    /// What connected devices receive.
    pub delivery: Delivery,
    /// TURN credentials and call signalling.
    pub calls: Calls,
    /// Encrypted attachments.
    pub attachments: Attachments,
    /// Account and group pictures.
    pub avatars: Avatars,
    /// Key backups (opaque blobs encrypted on the devices).
    pub backup: Backups,
    /// Web Push subscriptions and sending (off until `commands` starts it).
    pub push: Push,
    /// Guilds: channels, roles, invites and moderation.
    pub guilds: Guilds,
    /// Voice channels over the SFU (off until `commands` starts it: [`Voice::start`]).
    pub voice: Voice,
    /// The blobs on disk, when this server keeps them there (the transport serves their URLs).
    pub disk_blobs: Option<Arc<DiskBlobs>>,
    store: Arc<dyn Store>,
}

/// Where blobs are kept, for [`Services::new`].
pub struct BlobSetup {
    /// The store services use.
    pub store: Arc<dyn BlobStore>,
    /// The same store when it is the data dir (served by the transport).
    pub disk: Option<Arc<DiskBlobs>>,
    /// Limits and timings.
    pub settings: AttachmentSettings,
}

impl BlobSetup {
    /// No blob storage (the admin CLI).
    pub fn none() -> Self {
        Self {
            store: Arc::new(crate::blobs::NoBlobs),
            disk: None,
            settings: AttachmentSettings {
                max_bytes: 0,
                quota_bytes: 0,
                avatar_max_bytes: 0,
                url_ttl: Duration::from_secs(1),
                download_url_ttl: Duration::from_secs(1),
                orphan_grace: Duration::from_secs(86_400),
                stray_grace: Duration::from_secs(3_600),
            },
        }
    }
}

impl Services {
    /// Builds the services over one store. `mailer` is `None` when SMTP is not configured;
    /// `bus` carries notices to `hub` (and the hubs of other nodes).
    pub fn new(
        store: Arc<dyn Store>,
        server_info: ServerInfo,
        policy: AuthPolicy,
        mailer: Option<Arc<dyn Mailer>>,
        (bus, hub): (Arc<dyn Bus>, Arc<Hub>),
        turn: Option<TurnSettings>,
        blobs: BlobSetup,
    ) -> Self {
        let delivery =
            Delivery { store: store.clone(), acks: group_commit::ack_queue(store.clone()), bus, hub };
        let limits = policy.limits;
        let auth = Auth {
            core: Arc::new(auth::AuthCore {
                store: store.clone(),
                hasher: SecretHasher::new(policy.hash_pool),
                limiter: rate_limits::RateLimiter::new(store.clone()),
                guesses: rate_limits::OneAtATime::default(),
                mailer,
                policy,
                server_name: server_info.name.clone(),
                delivery: delivery.clone(),
            }),
        };
        let avatars = Avatars {
            store: store.clone(),
            delivery: delivery.clone(),
            blobs: blobs.store.clone(),
            settings: blobs.settings.clone(),
            decodes: Arc::new(tokio::sync::Semaphore::new(avatars::MAX_DECODES)),
        };
        let voice = Voice::new(store.clone(), delivery.clone());
        Self {
            readiness: Readiness::new(store.clone()),
            accounts: Accounts { auth: auth.clone(), delete_messages_with_account: false },
            devices: Devices { auth: auth.clone() },
            admin: Admin { auth: auth.clone() },
            pairing: Pairing { auth: auth.clone() },
            keys: Keys {
                store: store.clone(),
                delivery: delivery.clone(),
                limiter: rate_limits::RateLimiter::new(store.clone()),
                limits,
            },
            to_device: ToDevice { store: store.clone(), delivery: delivery.clone(), limits: limits.inbox },
            conversations: Conversations {
                store: store.clone(),
                sends: group_commit::send_queue(store.clone()),
                delivery: delivery.clone(),
                limiter: rate_limits::RateLimiter::new(store.clone()),
                settings: conversations::ConversationSettings::default(),
                push: Push::off(store.clone()),
            },
            calls: Calls { store: store.clone(), delivery: delivery.clone(), turn },
            backup: Backups {
                store: store.clone(),
                limiter: rate_limits::RateLimiter::new(store.clone()),
                versions: limits.backup_versions,
            },
            avatars: avatars.clone(),
            attachments: Attachments {
                store: store.clone(),
                delivery: delivery.clone(),
                blobs: blobs.store,
                settings: blobs.settings,
            },
            disk_blobs: blobs.disk,
            push: Push::off(store.clone()),
            guilds: Guilds::new(
                store.clone(),
                delivery.clone(),
                avatars.clone(),
                voice.clone(),
                GuildSettings::default(),
            ),
            voice: voice.clone(),
            delivery,
            auth,
            server_info,
            store,
        }
    }

    /// Deletes what has expired: one-time codes, rate-limit state, used refresh tokens,
    /// unacknowledged to-device messages past their lifetime, and pairings (kept an hour past
    /// expiry so a late client still learns it expired).
    pub async fn prune_expired(&self) -> Result<u64, Error> {
        let now = now_ms();
        Ok(self.store.prune_codes(now).await?
            + self.store.prune_rate_limits(now).await?
            + self.store.prune_used_refresh_tokens(now).await?
            + self.store.prune_to_device(now).await?
            + self.store.prune_pairings(now - 3_600_000).await?
            + self.store.prune_revocations(now - 3_600_000).await?)
    }

    /// Runs [`Services::prune_expired`] every `every` until the task is dropped.
    pub async fn housekeeping(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            match self.prune_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "pruned expired rows"),
                Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
            }
        }
    }
}
