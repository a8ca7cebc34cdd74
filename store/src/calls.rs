//! Calls (`calls`, `call_participants`): which conversation has a call going and which devices
//! are in it. One call per conversation at a time (a partial unique index), a bounded number of
//! devices per call (checked in the statement that adds one).

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use crate::ids::{AccountId, CallId, ConversationId, DeviceId};

/// A call as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Its id (chosen by the caller's device).
    pub id: CallId,
    /// Where.
    pub conversation_id: ConversationId,
    /// Who started it.
    pub caller: (AccountId, DeviceId),
    /// With video.
    pub video: bool,
    /// When (ms).
    pub created_at_ms: i64,
    /// When a second device joined (0: not yet).
    pub answered_at_ms: i64,
    /// When it ended (0: going on).
    pub ended_at_ms: i64,
}

/// A call to start.
#[derive(Debug, Clone)]
pub struct NewCall {
    /// Its id.
    pub id: CallId,
    /// Where.
    pub conversation_id: ConversationId,
    /// Who starts it.
    pub caller: (AccountId, DeviceId),
    /// With video.
    pub video: bool,
    /// Now (ms).
    pub now_ms: i64,
}

/// What starting a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// Started, with the caller's device in it.
    Started,
    /// The same call was started before (a retried invite).
    Duplicate,
    /// The conversation has another call going.
    Busy(CallId),
}

/// What joining a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// In the call now (or already was); the devices in it.
    Joined(Vec<DeviceId>),
    /// The call already has the most devices allowed.
    Full,
    /// The call is over or does not exist.
    Ended,
}

/// Calls.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Starts a call with the caller's device in it.
    async fn start_call(&self, call: &NewCall) -> Result<StartOutcome, StoreError>;
    /// One call.
    async fn call(&self, id: CallId) -> Result<Option<CallRecord>, StoreError>;
    /// The devices in a call, earliest first.
    async fn call_devices(&self, id: CallId) -> Result<Vec<DeviceId>, StoreError>;
    /// Adds a device to a call that is going on, unless it has `max_devices` already.
    async fn join_call(
        &self,
        id: CallId,
        device: (AccountId, DeviceId),
        max_devices: i64,
        now_ms: i64,
    ) -> Result<JoinOutcome, StoreError>;
    /// Takes a device out of a call; returns the devices left, or `None` if it was not in it.
    async fn leave_call(&self, id: CallId, device: DeviceId) -> Result<Option<Vec<DeviceId>>, StoreError>;
    /// Ends a call that is going on; `false` if it had ended.
    async fn end_call(&self, id: CallId, now_ms: i64) -> Result<bool, StoreError>;
    /// Ends every call nobody answered since `before_ms`, and returns them.
    async fn end_unanswered(&self, before_ms: i64, now_ms: i64) -> Result<Vec<CallRecord>, StoreError>;
    /// Calls going on that `device` is in.
    async fn calls_of_device(&self, device: DeviceId) -> Result<Vec<CallRecord>, StoreError>;
}

const CALL_COLUMNS: &str = "id, conversation_id, caller_account_id, caller_device_id, video, created_at_ms, \
                            answered_at_ms, ended_at_ms";

macro_rules! decode_call {
    ($row:expr) => {{
        let row = $row;
        CallRecord {
            id: CallId::from_uuid(row.try_get::<Uuid, _>("id")?),
            conversation_id: ConversationId::from_uuid(row.try_get::<Uuid, _>("conversation_id")?),
            caller: (
                AccountId::from_uuid(row.try_get::<Uuid, _>("caller_account_id")?),
                DeviceId::from_uuid(row.try_get::<Uuid, _>("caller_device_id")?),
            ),
            video: row.try_get("video")?,
            created_at_ms: row.try_get("created_at_ms")?,
            answered_at_ms: row.try_get("answered_at_ms")?,
            ended_at_ms: row.try_get("ended_at_ms")?,
        }
    }};
}

macro_rules! devices_of_call {
    ($executor:expr, $id:expr) => {{
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT device_id FROM call_participants WHERE call_id = $1 ORDER BY joined_at_ms, device_id",
        )
        .bind($id.as_uuid())
        .fetch_all($executor)
        .await?;
        ids.into_iter().map(DeviceId::from_uuid).collect::<Vec<DeviceId>>()
    }};
}

impl_for_backends! {
    impl CallStore {
        async fn start_call(&self, call: &NewCall) -> Result<StartOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO calls (id, conversation_id, caller_account_id, caller_device_id, video, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(call.id.as_uuid())
            .bind(call.conversation_id.as_uuid())
            .bind(call.caller.0.as_uuid())
            .bind(call.caller.1.as_uuid())
            .bind(call.video)
            .bind(call.now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                let going: Option<Uuid> =
                    sqlx::query_scalar("SELECT id FROM calls WHERE conversation_id = $1 AND ended_at_ms = 0")
                        .bind(call.conversation_id.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await?;
                tx.commit().await?;
                return Ok(match going {
                    Some(id) if id == call.id.as_uuid() => StartOutcome::Duplicate,
                    Some(id) => StartOutcome::Busy(CallId::from_uuid(id)),
                    // The id was used by a call that is over (never reused), or (PostgreSQL) the
                    // conversation's call ended between the two statements: the caller retries
                    // with a new id.
                    None => StartOutcome::Busy(call.id),
                });
            }
            sqlx::query(
                "INSERT INTO call_participants (call_id, device_id, account_id, joined_at_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(call.id.as_uuid())
            .bind(call.caller.1.as_uuid())
            .bind(call.caller.0.as_uuid())
            .bind(call.now_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(StartOutcome::Started)
        }

        async fn call(&self, id: CallId) -> Result<Option<CallRecord>, StoreError> {
            let row = sqlx::query(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = $1"))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
            Ok(match row {
                Some(row) => Some(decode_call!(row)),
                None => None,
            })
        }

        async fn call_devices(&self, id: CallId) -> Result<Vec<DeviceId>, StoreError> {
            Ok(devices_of_call!(&self.pool, id))
        }

        async fn join_call(
            &self,
            id: CallId,
            device: (AccountId, DeviceId),
            max_devices: i64,
            now_ms: i64,
        ) -> Result<JoinOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Lock the call first: joins of one call take turns, so the count below holds.
            let going: Option<i64> = sqlx::query_scalar(
                "UPDATE calls SET answered_at_ms = answered_at_ms WHERE id = $1 AND ended_at_ms = 0 RETURNING created_at_ms",
            )
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            if going.is_none() {
                return Ok(JoinOutcome::Ended);
            }
            let inserted = sqlx::query(
                "INSERT INTO call_participants (call_id, device_id, account_id, joined_at_ms) \
                 SELECT $1, $2, $3, $4 WHERE (SELECT COUNT(*) FROM call_participants WHERE call_id = $1) < $5 \
                 ON CONFLICT (call_id, device_id) DO NOTHING",
            )
            .bind(id.as_uuid())
            .bind(device.1.as_uuid())
            .bind(device.0.as_uuid())
            .bind(now_ms)
            .bind(max_devices)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let devices = devices_of_call!(&mut *tx, id);
            if inserted == 0 && !devices.contains(&device.1) {
                return Ok(JoinOutcome::Full);
            }
            if devices.len() >= 2 {
                sqlx::query("UPDATE calls SET answered_at_ms = $2 WHERE id = $1 AND answered_at_ms = 0")
                    .bind(id.as_uuid())
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(JoinOutcome::Joined(devices))
        }

        async fn leave_call(&self, id: CallId, device: DeviceId) -> Result<Option<Vec<DeviceId>>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let left = sqlx::query("DELETE FROM call_participants WHERE call_id = $1 AND device_id = $2")
                .bind(id.as_uuid())
                .bind(device.as_uuid())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if left == 0 {
                return Ok(None);
            }
            let devices = devices_of_call!(&mut *tx, id);
            tx.commit().await?;
            Ok(Some(devices))
        }

        async fn end_call(&self, id: CallId, now_ms: i64) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            let ended = sqlx::query("UPDATE calls SET ended_at_ms = $2 WHERE id = $1 AND ended_at_ms = 0")
                .bind(id.as_uuid())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            sqlx::query("DELETE FROM call_participants WHERE call_id = $1")
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ended)
        }

        async fn end_unanswered(&self, before_ms: i64, now_ms: i64) -> Result<Vec<CallRecord>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let rows = sqlx::query(&format!(
                "UPDATE calls SET ended_at_ms = $2 WHERE ended_at_ms = 0 AND answered_at_ms = 0 AND created_at_ms < $1 \
                 RETURNING {CALL_COLUMNS}"
            ))
            .bind(before_ms)
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?;
            let mut calls = Vec::with_capacity(rows.len());
            for row in rows {
                let call = decode_call!(row);
                sqlx::query("DELETE FROM call_participants WHERE call_id = $1")
                    .bind(call.id.as_uuid())
                    .execute(&mut *tx)
                    .await?;
                calls.push(call);
            }
            tx.commit().await?;
            Ok(calls)
        }

        async fn calls_of_device(&self, device: DeviceId) -> Result<Vec<CallRecord>, StoreError> {
            let rows = sqlx::query(&format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE ended_at_ms = 0 AND id IN \
                 (SELECT call_id FROM call_participants WHERE device_id = $1)"
            ))
            .bind(device.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            let mut calls = Vec::with_capacity(rows.len());
            for row in rows {
                calls.push(decode_call!(row));
            }
            Ok(calls)
        }
    }
}
