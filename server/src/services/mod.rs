//! The rules of KitsuLAN, independent of how requests arrive (gRPC, HTTP, gateway) and of which
//! database holds the data. Transport calls services; services call the store traits.

pub mod readiness;
pub mod server_info;

use std::sync::Arc;

use crate::store::Store;

pub use readiness::{NotReady, Readiness};
pub use server_info::{ServerInfo, StorageBackend};

/// Every service, shared by all transports.
pub struct Services {
    /// Facts about this server, fixed at start-up.
    pub server_info: ServerInfo,
    /// Whether the server can take traffic.
    pub readiness: Readiness,
}

impl Services {
    /// Builds the services over one store.
    pub fn new(store: Arc<dyn Store>, server_info: ServerInfo) -> Self {
        Self { readiness: Readiness::new(store), server_info }
    }
}
