//! Device pairings (`pairings`, `pairing_messages`): a new device's request to join an account,
//! the existing device that took it, and the opaque messages the two exchange through us.

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use crate::ids::{AccountId, DeviceId, PairingId};

/// Where a pairing stands (expiry is separate: see [`PairingRecord::expires_at_ms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingStatus {
    /// Waiting for an existing device.
    Open,
    /// An existing device took it.
    Claimed,
    /// Approved: the new device's device row exists, its session not yet picked up.
    Approved,
    /// The new device has its session.
    Completed,
    /// Ended by either side.
    Cancelled,
}

impl PairingStatus {
    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "open" => Self::Open,
            "claimed" => Self::Claimed,
            "approved" => Self::Approved,
            "completed" => Self::Completed,
            "cancelled" => Self::Cancelled,
            other => return Err(StoreError::Corrupt(format!("pairing state {other:?}"))),
        })
    }
}

/// A stored pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingRecord {
    /// Its id (chosen by the new device).
    pub id: PairingId,
    /// The new device's ECIES public key.
    pub public_key: Vec<u8>,
    /// SHA-256 of the new device's secret.
    pub secret_hash: Vec<u8>,
    /// Where it stands.
    pub status: PairingStatus,
    /// The account and device that took it.
    pub claimant: Option<(AccountId, DeviceId)>,
    /// The new device, once approved.
    pub new_device_id: Option<DeviceId>,
    /// When it expires (ms).
    pub expires_at_ms: i64,
}

/// A new pairing.
#[derive(Debug, Clone)]
pub struct NewPairing {
    /// Its id.
    pub id: PairingId,
    /// The new device's ECIES public key.
    pub public_key: Vec<u8>,
    /// SHA-256 of the PIN.
    pub pin_hash: [u8; 32],
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    /// Now (ms).
    pub created_at_ms: i64,
    /// Expiry (ms).
    pub expires_at_ms: i64,
}

/// Why a pairing could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingConflict {
    /// The id is taken.
    Id,
    /// The PIN is taken by another live pairing: pick another.
    Pin,
}

/// Pairings.
#[async_trait]
pub trait PairingStore: Send + Sync {
    /// Opens a pairing.
    async fn create_pairing(&self, pairing: &NewPairing) -> Result<Result<(), PairingConflict>, StoreError>;
    /// The pairing with this id.
    async fn pairing(&self, id: PairingId) -> Result<Option<PairingRecord>, StoreError>;
    /// The unexpired pairing with this PIN hash.
    async fn pairing_by_pin(
        &self,
        pin_hash: &[u8; 32],
        now_ms: i64,
    ) -> Result<Option<PairingRecord>, StoreError>;
    /// Takes an open pairing for `claimant` (or confirms it is already theirs). `false` if it
    /// is not open or another device took it.
    async fn claim_pairing(
        &self,
        id: PairingId,
        claimant: (AccountId, DeviceId),
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Appends a message; returns its index, or `None` if the pairing already has `max`.
    async fn post_pairing_message(
        &self,
        id: PairingId,
        from_new_device: bool,
        payload: &[u8],
        max: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Messages of one side with an index above `after`.
    async fn pairing_messages(
        &self,
        id: PairingId,
        from_new_device: bool,
        after: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError>;
    /// Moves a claimed pairing of `claimant` to approved with its new device. `false` if it was
    /// not claimed by them (e.g. already approved).
    async fn approve_pairing(
        &self,
        id: PairingId,
        claimant: (AccountId, DeviceId),
        new_device: DeviceId,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Moves an approved pairing to completed. `true` for exactly one caller.
    async fn complete_pairing(&self, id: PairingId, now_ms: i64) -> Result<bool, StoreError>;
    /// Cancels a pairing that is not completed.
    async fn cancel_pairing(&self, id: PairingId) -> Result<bool, StoreError>;
    /// Deletes pairings expired before `before_ms`. Returns how many.
    async fn prune_pairings(&self, before_ms: i64) -> Result<u64, StoreError>;
}

fn record<R>(row: &R) -> Result<PairingRecord, StoreError>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> Uuid: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Uuid>: sqlx::Decode<'r, R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let claimant_account: Option<Uuid> = row.try_get("claimant_account_id")?;
    let claimant_device: Option<Uuid> = row.try_get("claimant_device_id")?;
    Ok(PairingRecord {
        id: PairingId::from_uuid(row.try_get("id")?),
        public_key: row.try_get("public_key")?,
        secret_hash: row.try_get("secret_hash")?,
        status: PairingStatus::parse(&row.try_get::<String, _>("state")?)?,
        claimant: claimant_account
            .zip(claimant_device)
            .map(|(a, d)| (AccountId::from_uuid(a), DeviceId::from_uuid(d))),
        new_device_id: row.try_get::<Option<Uuid>, _>("new_device_id")?.map(DeviceId::from_uuid),
        expires_at_ms: row.try_get("expires_at_ms")?,
    })
}

const COLUMNS: &str = "id, public_key, secret_hash, state, claimant_account_id, claimant_device_id, new_device_id, expires_at_ms";

impl_for_backends! {
    impl PairingStore {
        async fn create_pairing(&self, p: &NewPairing) -> Result<Result<(), PairingConflict>, StoreError> {
            let inserted = sqlx::query(
                "INSERT INTO pairings (id, public_key, pin_hash, secret_hash, state, created_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, 'open', $5, $6)",
            )
            .bind(p.id.as_uuid())
            .bind(&p.public_key)
            .bind(&p.pin_hash[..])
            .bind(&p.secret_hash[..])
            .bind(p.created_at_ms)
            .bind(p.expires_at_ms)
            .execute(&self.pool)
            .await;
            match inserted {
                Ok(_) => Ok(Ok(())),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    let text = format!("{} {}", e.constraint().unwrap_or_default(), e.message());
                    Ok(Err(if text.contains("pin") { PairingConflict::Pin } else { PairingConflict::Id }))
                }
                Err(e) => Err(e.into()),
            }
        }

        async fn pairing(&self, id: PairingId) -> Result<Option<PairingRecord>, StoreError> {
            let row = sqlx::query(&format!("SELECT {COLUMNS} FROM pairings WHERE id = $1"))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(record).transpose()
        }

        async fn pairing_by_pin(&self, pin_hash: &[u8; 32], now_ms: i64) -> Result<Option<PairingRecord>, StoreError> {
            let row = sqlx::query(&format!("SELECT {COLUMNS} FROM pairings WHERE pin_hash = $1 AND expires_at_ms > $2"))
                .bind(&pin_hash[..])
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(record).transpose()
        }

        async fn claim_pairing(
            &self,
            id: PairingId,
            claimant: (AccountId, DeviceId),
            now_ms: i64,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE pairings SET state = 'claimed', claimant_account_id = $2, claimant_device_id = $3 \
                 WHERE id = $1 AND expires_at_ms > $4 AND (state = 'open' OR \
                 (state = 'claimed' AND claimant_account_id = $2 AND claimant_device_id = $3))",
            )
            .bind(id.as_uuid())
            .bind(claimant.0.as_uuid())
            .bind(claimant.1.as_uuid())
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn post_pairing_message(
            &self,
            id: PairingId,
            from_new_device: bool,
            payload: &[u8],
            max: i64,
        ) -> Result<Option<i64>, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Lock the pairing first (an update), so two posts cannot take the same index.
            sqlx::query("UPDATE pairings SET state = state WHERE id = $1")
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
            let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx), 0) + 1 FROM pairing_messages WHERE pairing_id = $1")
                .bind(id.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
            if next > max {
                return Ok(None);
            }
            sqlx::query("INSERT INTO pairing_messages (pairing_id, idx, from_new_device, payload) VALUES ($1, $2, $3, $4)")
                .bind(id.as_uuid())
                .bind(next)
                .bind(from_new_device)
                .bind(payload)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(next))
        }

        async fn pairing_messages(
            &self,
            id: PairingId,
            from_new_device: bool,
            after: i64,
        ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
            let rows = sqlx::query(
                "SELECT idx, payload FROM pairing_messages WHERE pairing_id = $1 AND from_new_device = $2 AND idx > $3 \
                 ORDER BY idx",
            )
            .bind(id.as_uuid())
            .bind(from_new_device)
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| Ok((row.try_get::<i64, _>("idx")?, row.try_get::<Vec<u8>, _>("payload")?)))
                .collect()
        }

        async fn approve_pairing(
            &self,
            id: PairingId,
            claimant: (AccountId, DeviceId),
            new_device: DeviceId,
            now_ms: i64,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE pairings SET state = 'approved', new_device_id = $4 \
                 WHERE id = $1 AND state = 'claimed' AND claimant_account_id = $2 AND claimant_device_id = $3 \
                 AND expires_at_ms > $5",
            )
            .bind(id.as_uuid())
            .bind(claimant.0.as_uuid())
            .bind(claimant.1.as_uuid())
            .bind(new_device.as_uuid())
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn complete_pairing(&self, id: PairingId, now_ms: i64) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE pairings SET state = 'completed' WHERE id = $1 AND state = 'approved' AND expires_at_ms > $2",
            )
            .bind(id.as_uuid())
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn cancel_pairing(&self, id: PairingId) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE pairings SET state = 'cancelled' WHERE id = $1 AND state IN ('open', 'claimed', 'approved')",
            )
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn prune_pairings(&self, before_ms: i64) -> Result<u64, StoreError> {
            let done = sqlx::query("DELETE FROM pairings WHERE expires_at_ms <= $1")
                .bind(before_ms)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        }
    }
}
