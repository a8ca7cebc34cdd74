//! Devices and their sessions (`devices`, `used_refresh_tokens`). A device is one sign-in; it
//! holds the SHA-256 hashes of its current access and refresh tokens, never the tokens.

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use crate::ids::{AccountId, DeviceId};

/// The hashes and expiry times of a device's current tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionTokens {
    /// SHA-256 of the access token.
    pub access_hash: [u8; 32],
    /// When the access token expires (ms since the Unix epoch).
    pub access_expires_at_ms: i64,
    /// SHA-256 of the refresh token.
    pub refresh_hash: [u8; 32],
    /// When the refresh token expires (ms since the Unix epoch).
    pub refresh_expires_at_ms: i64,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("access_expires_at_ms", &self.access_expires_at_ms)
            .field("refresh_expires_at_ms", &self.refresh_expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// A device being signed in.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Its id.
    pub id: DeviceId,
    /// The account it signs in to.
    pub account_id: AccountId,
    /// Its name ("Firefox on Linux").
    pub name: String,
    /// Sign-in time (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// Its first tokens.
    pub tokens: SessionTokens,
    /// Until when it may set a new password without the old one (0: not at all).
    pub password_reset_until_ms: i64,
}

/// Writes a [`NewDevice`] (used inside transactions too, hence a macro over the executor).
macro_rules! insert_device {
    ($device:expr) => {
        sqlx::query(
            "INSERT INTO devices (id, account_id, name, created_at_ms, last_seen_at_ms, access_hash, \
             access_expires_at_ms, refresh_hash, refresh_expires_at_ms, password_reset_until_ms) \
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)",
        )
        .bind($device.id.as_uuid())
        .bind($device.account_id.as_uuid())
        .bind(&$device.name)
        .bind($device.created_at_ms)
        .bind(&$device.tokens.access_hash[..])
        .bind($device.tokens.access_expires_at_ms)
        .bind(&$device.tokens.refresh_hash[..])
        .bind($device.tokens.refresh_expires_at_ms)
        .bind($device.password_reset_until_ms)
    };
}
pub(super) use insert_device;

/// A device as listed to its owner.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceRecord {
    /// Its id.
    #[sqlx(try_from = "Uuid")]
    pub id: DeviceId,
    /// The account it belongs to.
    #[sqlx(try_from = "Uuid")]
    pub account_id: AccountId,
    /// Its name.
    pub name: String,
    /// Sign-in time (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// Last sign-in or refresh (ms since the Unix epoch).
    pub last_seen_at_ms: i64,
}

/// Who an access token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticatedDevice {
    /// The device.
    pub device_id: DeviceId,
    /// Its account.
    pub account_id: AccountId,
    /// Whether an admin disabled the account.
    pub account_disabled: bool,
    /// Until when it may set a new password without the old one.
    pub password_reset_until_ms: i64,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current: the device now has the new tokens.
    Rotated(AuthenticatedDevice),
    /// The token had already been exchanged (someone else has a copy): the device was deleted
    /// and its revocation recorded, as by a sign-out.
    Reused {
        /// The signed-out device.
        device: DeviceId,
        /// Its account.
        account: AccountId,
    },
    /// No device has this token (never issued, expired, or its device is gone).
    Unknown,
}

/// Devices and sessions.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Adds a device to an existing account.
    async fn create_device(&self, device: &NewDevice) -> Result<(), StoreError>;
    /// The device whose current, unexpired access token has this hash.
    async fn authenticate(
        &self,
        access_hash: &[u8; 32],
        now_ms: i64,
    ) -> Result<Option<AuthenticatedDevice>, StoreError>;
    /// Exchanges a refresh token: if `presented` is current and unexpired, the device gets
    /// `new` and `presented` is remembered as used; if `presented` was used before, the device
    /// is deleted as by [`DeviceStore::delete_device`] (revocation recorded, contacts told).
    /// Atomic, so of two racing exchanges of one token only one succeeds.
    async fn rotate_refresh(
        &self,
        presented: &[u8; 32],
        new: &SessionTokens,
        now_ms: i64,
    ) -> Result<RefreshOutcome, StoreError>;
    /// The account's devices, oldest first.
    async fn list_devices(&self, account: AccountId) -> Result<Vec<DeviceRecord>, StoreError>;
    /// One device by id, whoever owns it.
    async fn device(&self, id: DeviceId) -> Result<Option<DeviceRecord>, StoreError>;
    /// Renames one of the account's devices; `None` if the account has no such device.
    async fn rename_device(
        &self,
        account: AccountId,
        device: DeviceId,
        name: &str,
    ) -> Result<Option<DeviceRecord>, StoreError>;
    /// Deletes (signs out) a device, with everything that belongs to it. With `account`, only
    /// if the device is that account's. `false` if nothing was deleted.
    async fn delete_device(&self, account: Option<AccountId>, device: DeviceId) -> Result<bool, StoreError>;
    /// Deletes every device of `account` but `keep`, recording their revocations (every node
    /// closes their sockets). Returns the devices deleted.
    async fn delete_other_devices(
        &self,
        account: AccountId,
        keep: DeviceId,
    ) -> Result<Vec<DeviceId>, StoreError>;
    /// Gives a device new tokens (a paired device picking up its session). `false` if the
    /// device is gone.
    async fn replace_tokens(
        &self,
        device: DeviceId,
        tokens: &SessionTokens,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Ends the password-reset window of a device (after the new password is set).
    async fn end_password_reset(&self, device: DeviceId) -> Result<(), StoreError>;
    /// Forgets used refresh tokens that have expired anyway. Returns how many.
    async fn prune_used_refresh_tokens(&self, now_ms: i64) -> Result<u64, StoreError>;
}

const DEVICE_COLUMNS: &str = "id, account_id, name, created_at_ms, last_seen_at_ms";

impl_for_backends! {
    impl DeviceStore {
        async fn create_device(&self, device: &NewDevice) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            crate::delivery::lock_memberships!(tx, vec![device.account_id]);
            insert_device!(device).execute(&mut *tx).await?;
            // The new device follows the account's conversations and stream from now on.
            sqlx::query(
                "INSERT INTO device_cursors (device_id, conversation_id, change_seq) \
                 SELECT $1, m.conversation_id, c.last_change FROM conversation_members m \
                 JOIN conversations c ON c.id = m.conversation_id WHERE m.account_id = $2",
            )
            .bind(device.id.as_uuid())
            .bind(device.account_id.as_uuid())
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE devices SET event_cursor = (SELECT event_seq FROM accounts WHERE id = $2) WHERE id = $1")
                .bind(device.id.as_uuid())
                .bind(device.account_id.as_uuid())
                .execute(&mut *tx)
                .await?;
            crate::delivery::announce_devices!(tx, device.account_id);
            tx.commit().await?;
            Ok(())
        }

        async fn authenticate(
            &self,
            access_hash: &[u8; 32],
            now_ms: i64,
        ) -> Result<Option<AuthenticatedDevice>, StoreError> {
            let row = sqlx::query(
                "SELECT d.id, d.account_id, d.password_reset_until_ms, a.disabled \
                 FROM devices d JOIN accounts a ON a.id = d.account_id \
                 WHERE d.access_hash = $1 AND d.access_expires_at_ms > $2",
            )
            .bind(&access_hash[..])
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(AuthenticatedDevice {
                device_id: DeviceId::from_uuid(row.try_get::<Uuid, _>("id")?),
                account_id: AccountId::from_uuid(row.try_get::<Uuid, _>("account_id")?),
                account_disabled: row.try_get("disabled")?,
                password_reset_until_ms: row.try_get("password_reset_until_ms")?,
            }))
        }

        async fn rotate_refresh(
            &self,
            presented: &[u8; 32],
            new: &SessionTokens,
            now_ms: i64,
        ) -> Result<RefreshOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Write first, so SQLite takes its write lock at once (no read-to-write upgrade).
            let rotated = sqlx::query(
                "UPDATE devices SET access_hash = $2, access_expires_at_ms = $3, refresh_hash = $4, \
                 refresh_expires_at_ms = $5, last_seen_at_ms = $6 \
                 WHERE refresh_hash = $1 AND refresh_expires_at_ms > $6 \
                 RETURNING id, account_id, password_reset_until_ms, refresh_expires_at_ms",
            )
            .bind(&presented[..])
            .bind(&new.access_hash[..])
            .bind(new.access_expires_at_ms)
            .bind(&new.refresh_hash[..])
            .bind(new.refresh_expires_at_ms)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = rotated {
                let device_id = DeviceId::from_uuid(row.try_get::<Uuid, _>("id")?);
                let account_id = AccountId::from_uuid(row.try_get::<Uuid, _>("account_id")?);
                sqlx::query("INSERT INTO used_refresh_tokens (hash, device_id, expires_at_ms) VALUES ($1, $2, $3)")
                    .bind(&presented[..])
                    .bind(device_id.as_uuid())
                    .bind(row.try_get::<i64, _>("refresh_expires_at_ms")?.max(now_ms))
                    .execute(&mut *tx)
                    .await?;
                let disabled: bool = sqlx::query_scalar("SELECT disabled FROM accounts WHERE id = $1")
                    .bind(account_id.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(RefreshOutcome::Rotated(AuthenticatedDevice {
                    device_id,
                    account_id,
                    account_disabled: disabled,
                    password_reset_until_ms: row.try_get("password_reset_until_ms")?,
                }));
            }
            let reused = sqlx::query(
                "SELECT d.id, d.account_id FROM used_refresh_tokens u JOIN devices d ON d.id = u.device_id \
                 WHERE u.hash = $1",
            )
            .bind(&presented[..])
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            let Some(row) = reused else { return Ok(RefreshOutcome::Unknown) };
            let device = DeviceId::from_uuid(row.try_get::<Uuid, _>("id")?);
            let account = AccountId::from_uuid(row.try_get::<Uuid, _>("account_id")?);
            // Signed out like any other device, so its sockets close on every node.
            Ok(if self.delete_device(Some(account), device).await? {
                RefreshOutcome::Reused { device, account }
            } else {
                RefreshOutcome::Unknown
            })
        }

        async fn list_devices(&self, account: AccountId) -> Result<Vec<DeviceRecord>, StoreError> {
            Ok(sqlx::query_as(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE account_id = $1 ORDER BY created_at_ms, id"
            ))
            .bind(account.as_uuid())
            .fetch_all(&self.pool)
            .await?)
        }

        async fn device(&self, id: DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
            Ok(sqlx::query_as(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn rename_device(
            &self,
            account: AccountId,
            device: DeviceId,
            name: &str,
        ) -> Result<Option<DeviceRecord>, StoreError> {
            Ok(sqlx::query_as(&format!(
                "UPDATE devices SET name = $3 WHERE id = $2 AND account_id = $1 RETURNING {DEVICE_COLUMNS}"
            ))
            .bind(account.as_uuid())
            .bind(device.as_uuid())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn delete_device(&self, account: Option<AccountId>, device: DeviceId) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if Self::BACKEND == crate::Backend::Postgres {
                let owner: Option<Uuid> = sqlx::query_scalar("SELECT account_id FROM devices WHERE id = $1")
                    .bind(device.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?;
                crate::delivery::lock_memberships!(tx, owner.map(AccountId::from_uuid).into_iter().collect());
            }
            let owner: Option<Uuid> =
                sqlx::query_scalar("DELETE FROM devices WHERE id = $1 AND ($2 IS NULL OR account_id = $2) RETURNING account_id")
                    .bind(device.as_uuid())
                    .bind(account.map(|a| a.as_uuid()))
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(owner) = owner else { return Ok(false) };
            // Every node closes the device's gateway connections when it sees this.
            sqlx::query("INSERT INTO device_revocations (device_id, at_ms) VALUES ($1, $2)")
                .bind(device.as_uuid())
                .bind(crate::now_ms())
                .execute(&mut *tx)
                .await?;
            crate::delivery::announce_devices!(tx, AccountId::from_uuid(owner));
            tx.commit().await?;
            Ok(true)
        }

        async fn delete_other_devices(&self, account: AccountId, keep: DeviceId) -> Result<Vec<DeviceId>, StoreError> {
            let mut tx = self.pool.begin().await?;
            crate::delivery::lock_memberships!(tx, vec![account]);
            let gone: Vec<Uuid> = sqlx::query_scalar("DELETE FROM devices WHERE account_id = $1 AND id <> $2 RETURNING id")
                .bind(account.as_uuid())
                .bind(keep.as_uuid())
                .fetch_all(&mut *tx)
                .await?;
            if gone.is_empty() {
                return Ok(Vec::new());
            }
            let now = crate::now_ms();
            for device in &gone {
                // Every node closes the device's gateway connections when it sees this.
                sqlx::query("INSERT INTO device_revocations (device_id, at_ms) VALUES ($1, $2)")
                    .bind(device)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            crate::delivery::announce_devices!(tx, account);
            tx.commit().await?;
            Ok(gone.into_iter().map(DeviceId::from_uuid).collect())
        }

        async fn replace_tokens(&self, device: DeviceId, tokens: &SessionTokens, now_ms: i64) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE devices SET access_hash = $2, access_expires_at_ms = $3, refresh_hash = $4, \
                 refresh_expires_at_ms = $5, last_seen_at_ms = $6 WHERE id = $1",
            )
            .bind(device.as_uuid())
            .bind(&tokens.access_hash[..])
            .bind(tokens.access_expires_at_ms)
            .bind(&tokens.refresh_hash[..])
            .bind(tokens.refresh_expires_at_ms)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn end_password_reset(&self, device: DeviceId) -> Result<(), StoreError> {
            sqlx::query("UPDATE devices SET password_reset_until_ms = 0 WHERE id = $1")
                .bind(device.as_uuid())
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn prune_used_refresh_tokens(&self, now_ms: i64) -> Result<u64, StoreError> {
            let done = sqlx::query("DELETE FROM used_refresh_tokens WHERE expires_at_ms <= $1")
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        }
    }
}
