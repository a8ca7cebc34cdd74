//! Readiness: can this process serve requests right now? Used by `/readyz`, which load
//! balancers and orchestrators poll, so it must answer quickly even when the database hangs.

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;

/// How long the database gets to answer a readiness check.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the server is not ready. The messages are safe to show to anyone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The database refused or failed the check.
    #[error("database unreachable")]
    DatabaseUnreachable,
    /// The database did not answer within [`CHECK_TIMEOUT`].
    #[error("database did not answer within {}s", CHECK_TIMEOUT.as_secs())]
    DatabaseTimeout,
}

/// Checks the dependencies a request needs.
pub struct Readiness {
    store: Arc<dyn Store>,
}

impl Readiness {
    /// Readiness over the given store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// `Ok` when the database answers in time.
    pub async fn check(&self) -> Result<(), NotReady> {
        match tokio::time::timeout(CHECK_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness check failed");
                Err(NotReady::DatabaseUnreachable)
            }
            Err(_) => {
                tracing::warn!("readiness check timed out");
                Err(NotReady::DatabaseTimeout)
            }
        }
    }
}
