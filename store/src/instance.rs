//! The installation's identity (`instance` table): one row, created on first start.

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::{StoreError, now_ms};
use crate::ids::InstanceId;

/// This installation's identity, created with the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    /// The installation's id.
    pub id: InstanceId,
    /// When the database was first set up, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// The installation's identity.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Returns the installation's identity, creating it on first use. Safe to call from many
    /// processes and tasks at once: all of them get the same identity.
    async fn instance(&self) -> Result<Instance, StoreError>;
}

impl_for_backends! {
    impl InstanceStore {
        async fn instance(&self) -> Result<Instance, StoreError> {
            sqlx::query(
                "INSERT INTO instance (singleton, id, created_at_ms) VALUES (1, $1, $2) \
                 ON CONFLICT (singleton) DO NOTHING",
            )
            .bind(InstanceId::generate().as_uuid())
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
            let row = sqlx::query("SELECT id, created_at_ms FROM instance WHERE singleton = 1")
                .fetch_one(&self.pool)
                .await?;
            Ok(Instance {
                id: InstanceId::from_uuid(row.try_get::<Uuid, _>("id")?),
                created_at_ms: row.try_get("created_at_ms")?,
            })
        }
    }
}
