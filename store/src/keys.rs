//! The E2EE public-key directory: account keys, device identity keys (with their certificate),
//! signed one-time keys (each handed out once) and fallback keys. Signatures are checked by the
//! service before anything reaches the store.

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use crate::ids::{AccountId, DeviceId};

/// A Curve25519 key with the device's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedKeyRecord {
    /// Device-local key id.
    pub key_id: i64,
    /// 32 bytes.
    pub public_key: Vec<u8>,
    /// 64 bytes.
    pub signature: Vec<u8>,
}

/// A device's published identity keys.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceKeysRecord {
    /// The device.
    #[sqlx(try_from = "Uuid")]
    pub device_id: DeviceId,
    /// Its certificate, as uploaded.
    pub certificate: Vec<u8>,
    /// Ed25519 public key.
    pub ed25519: Vec<u8>,
    /// Curve25519 identity key.
    pub curve25519: Vec<u8>,
}

/// An account's keys as others see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountKeysRecord {
    /// The account.
    pub account_id: AccountId,
    /// Its account key, if published.
    pub account_key: Option<Vec<u8>>,
    /// Moves whenever a device appears, changes keys or goes.
    pub device_list_version: i64,
    /// Devices with published keys, oldest first.
    pub devices: Vec<DeviceKeysRecord>,
}

/// What publishing an account key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKeyOutcome {
    /// There was none; now there is.
    Set,
    /// The same key was already published.
    Unchanged,
    /// A different key is published and `replace` was not asked for: nothing changed.
    Exists,
    /// The key was replaced; every device's published keys were removed.
    Replaced,
}

/// Keys to store for a device, in one transaction.
#[derive(Debug, Clone)]
pub struct KeyUpload {
    /// New identity keys (certificate, Ed25519, Curve25519), if the upload carries them.
    pub identity: Option<DeviceKeysRecord>,
    /// One-time keys to add (already stored ids are skipped).
    pub one_time_keys: Vec<SignedKeyRecord>,
    /// A fallback key replacing the previous one.
    pub fallback_key: Option<SignedKeyRecord>,
    /// The most one-time keys the device may hold.
    pub max_one_time_keys: i64,
    /// Upload time (ms).
    pub now_ms: i64,
}

/// What an upload left on the server, or why it changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUploadOutcome {
    /// Stored. One-time keys held and whether a fallback key is there.
    Stored {
        /// One-time keys held now.
        one_time_keys: i64,
        /// Whether a fallback key is held.
        has_fallback_key: bool,
    },
    /// The device would hold more than `max_one_time_keys`: nothing was stored.
    TooManyKeys,
}

/// A key claimed for an Olm session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedKeyRecord {
    /// The key.
    pub key: SignedKeyRecord,
    /// Whether it is the fallback key (none of the one-time keys were left).
    pub fallback: bool,
}

/// The key directory.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The account's published account key.
    async fn account_key(&self, account: AccountId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Publishes an account key (see [`AccountKeyOutcome`]).
    async fn publish_account_key(
        &self,
        account: AccountId,
        key: &[u8],
        replace: bool,
    ) -> Result<AccountKeyOutcome, StoreError>;
    /// The device's published identity keys.
    async fn device_keys(&self, device: DeviceId) -> Result<Option<DeviceKeysRecord>, StoreError>;
    /// Stores identity keys, one-time keys and a fallback key for `device` of `account`, all or
    /// nothing. New identity keys drop the one-time and fallback keys signed with the old ones.
    async fn upload_keys(
        &self,
        account: AccountId,
        device: DeviceId,
        upload: &KeyUpload,
    ) -> Result<KeyUploadOutcome, StoreError>;
    /// One-time keys held and whether a fallback key is held.
    async fn key_counts(&self, device: DeviceId) -> Result<(i64, bool), StoreError>;
    /// The keys of these accounts (unknown ones are left out), in the order asked.
    async fn query_keys(&self, accounts: &[AccountId]) -> Result<Vec<AccountKeysRecord>, StoreError>;
    /// Takes one one-time key of `device` (deleting it: it is never handed out again, even to
    /// racing claimers), or its fallback key when none is left or `one_time` is false; `None`
    /// if it has neither.
    async fn claim_key(
        &self,
        device: DeviceId,
        one_time: bool,
    ) -> Result<Option<ClaimedKeyRecord>, StoreError>;
    /// Whether `account` owns `device` or shares a conversation with its owner (a contact);
    /// `None` when there is no such device.
    async fn is_contact_of_device(
        &self,
        account: AccountId,
        device: DeviceId,
    ) -> Result<Option<bool>, StoreError>;
}

/// A [`SignedKeyRecord`] from a row with `key_id, public_key, signature`.
macro_rules! signed_key {
    ($row:expr) => {
        SignedKeyRecord {
            key_id: $row.try_get("key_id")?,
            public_key: $row.try_get("public_key")?,
            signature: $row.try_get("signature")?,
        }
    };
}

impl_for_backends! {
    impl KeyStore {
        async fn account_key(&self, account: AccountId) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(sqlx::query_scalar::<_, Option<Vec<u8>>>("SELECT account_key FROM accounts WHERE id = $1")
                .bind(account.as_uuid())
                .fetch_optional(&self.pool)
                .await?
                .flatten())
        }

        async fn publish_account_key(
            &self,
            account: AccountId,
            key: &[u8],
            replace: bool,
        ) -> Result<AccountKeyOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Set it if there is none (a write first, so SQLite takes its lock at once).
            let set = sqlx::query("UPDATE accounts SET account_key = $2 WHERE id = $1 AND account_key IS NULL")
                .bind(account.as_uuid())
                .bind(key)
                .execute(&mut *tx)
                .await?;
            if set.rows_affected() == 1 {
                tx.commit().await?;
                return Ok(AccountKeyOutcome::Set);
            }
            let current: Option<Vec<u8>> = sqlx::query_scalar("SELECT account_key FROM accounts WHERE id = $1")
                .bind(account.as_uuid())
                .fetch_optional(&mut *tx)
                .await?
                .flatten();
            if current.as_deref() == Some(key) {
                return Ok(AccountKeyOutcome::Unchanged);
            }
            if !replace {
                return Ok(AccountKeyOutcome::Exists);
            }
            // Certificates signed by the old key mean nothing now: every device re-uploads.
            for table in ["one_time_keys", "fallback_keys", "device_keys"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE device_id IN (SELECT id FROM devices WHERE account_id = $1)"
                ))
                .bind(account.as_uuid())
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE accounts SET account_key = $2, device_list_version = device_list_version + 1 WHERE id = $1",
            )
            .bind(account.as_uuid())
            .bind(key)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(AccountKeyOutcome::Replaced)
        }

        async fn device_keys(&self, device: DeviceId) -> Result<Option<DeviceKeysRecord>, StoreError> {
            Ok(sqlx::query_as("SELECT device_id, certificate, ed25519, curve25519 FROM device_keys WHERE device_id = $1")
                .bind(device.as_uuid())
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn upload_keys(
            &self,
            account: AccountId,
            device: DeviceId,
            upload: &KeyUpload,
        ) -> Result<KeyUploadOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            if let Some(identity) = &upload.identity {
                let changed = sqlx::query(
                    "UPDATE device_keys SET certificate = $2, ed25519 = $3, curve25519 = $4, uploaded_at_ms = $5 \
                     WHERE device_id = $1 AND (ed25519 <> $3 OR curve25519 <> $4)",
                )
                .bind(device.as_uuid())
                .bind(&identity.certificate)
                .bind(&identity.ed25519)
                .bind(&identity.curve25519)
                .bind(upload.now_ms)
                .execute(&mut *tx)
                .await?;
                if changed.rows_affected() == 1 {
                    // Keys signed with the old identity are worthless now.
                    for table in ["one_time_keys", "fallback_keys"] {
                        sqlx::query(&format!("DELETE FROM {table} WHERE device_id = $1"))
                            .bind(device.as_uuid())
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                sqlx::query(
                    "INSERT INTO device_keys (device_id, account_id, certificate, ed25519, curve25519, uploaded_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (device_id) DO UPDATE SET certificate = excluded.certificate",
                )
                .bind(device.as_uuid())
                .bind(account.as_uuid())
                .bind(&identity.certificate)
                .bind(&identity.ed25519)
                .bind(&identity.curve25519)
                .bind(upload.now_ms)
                .execute(&mut *tx)
                .await?;
            }
            for key in &upload.one_time_keys {
                sqlx::query(
                    "INSERT INTO one_time_keys (device_id, key_id, public_key, signature) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (device_id, key_id) DO NOTHING",
                )
                .bind(device.as_uuid())
                .bind(key.key_id)
                .bind(&key.public_key)
                .bind(&key.signature)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(key) = &upload.fallback_key {
                sqlx::query(
                    "INSERT INTO fallback_keys (device_id, key_id, public_key, signature) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (device_id) DO UPDATE SET key_id = excluded.key_id, \
                     public_key = excluded.public_key, signature = excluded.signature",
                )
                .bind(device.as_uuid())
                .bind(key.key_id)
                .bind(&key.public_key)
                .bind(&key.signature)
                .execute(&mut *tx)
                .await?;
            }
            let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM one_time_keys WHERE device_id = $1")
                .bind(device.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
            if held > upload.max_one_time_keys {
                tx.rollback().await?;
                return Ok(KeyUploadOutcome::TooManyKeys);
            }
            let has_fallback_key: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM fallback_keys WHERE device_id = $1)")
                    .bind(device.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(KeyUploadOutcome::Stored { one_time_keys: held, has_fallback_key })
        }

        async fn key_counts(&self, device: DeviceId) -> Result<(i64, bool), StoreError> {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM one_time_keys WHERE device_id = $1) AS held, \
                 EXISTS (SELECT 1 FROM fallback_keys WHERE device_id = $1) AS fallback",
            )
            .bind(device.as_uuid())
            .fetch_one(&self.pool)
            .await?;
            Ok((row.try_get("held")?, row.try_get("fallback")?))
        }

        async fn query_keys(&self, accounts: &[AccountId]) -> Result<Vec<AccountKeysRecord>, StoreError> {
            let mut found = Vec::with_capacity(accounts.len());
            for account in accounts {
                let Some(row) = sqlx::query("SELECT account_key, device_list_version FROM accounts WHERE id = $1")
                    .bind(account.as_uuid())
                    .fetch_optional(&self.pool)
                    .await?
                else {
                    continue;
                };
                let devices = sqlx::query_as(
                    "SELECT k.device_id, k.certificate, k.ed25519, k.curve25519 FROM device_keys k \
                     JOIN devices d ON d.id = k.device_id WHERE k.account_id = $1 ORDER BY d.created_at_ms, d.id",
                )
                .bind(account.as_uuid())
                .fetch_all(&self.pool)
                .await?;
                found.push(AccountKeysRecord {
                    account_id: *account,
                    account_key: row.try_get("account_key")?,
                    device_list_version: row.try_get("device_list_version")?,
                    devices,
                });
            }
            Ok(found)
        }

        async fn claim_key(&self, device: DeviceId, one_time: bool) -> Result<Option<ClaimedKeyRecord>, StoreError> {
            // One statement takes the lowest key id. A racing claimer that loses the row gets
            // nothing back and tries the next key, so no key is ever handed out twice.
            let attempts = if one_time { 1000 } else { 0 };
            for _ in 0..attempts {
                let taken = sqlx::query(
                    "DELETE FROM one_time_keys WHERE device_id = $1 AND key_id = \
                     (SELECT MIN(key_id) FROM one_time_keys WHERE device_id = $1) \
                     RETURNING key_id, public_key, signature",
                )
                .bind(device.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = taken {
                    return Ok(Some(ClaimedKeyRecord { key: signed_key!(row), fallback: false }));
                }
                let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM one_time_keys WHERE device_id = $1")
                    .bind(device.as_uuid())
                    .fetch_one(&self.pool)
                    .await?;
                if left == 0 {
                    break;
                }
            }
            let fallback = sqlx::query("SELECT key_id, public_key, signature FROM fallback_keys WHERE device_id = $1")
                .bind(device.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
            Ok(match fallback {
                Some(row) => Some(ClaimedKeyRecord { key: signed_key!(row), fallback: true }),
                None => None,
            })
        }

        async fn is_contact_of_device(&self, account: AccountId, device: DeviceId) -> Result<Option<bool>, StoreError> {
            Ok(sqlx::query_scalar(super::inbox::IS_CONTACT_OF_DEVICE)
                .bind(device.as_uuid())
                .bind(account.as_uuid())
                .fetch_optional(&self.pool)
                .await?)
        }
    }
}
