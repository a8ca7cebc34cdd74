//! KitsuLAN's wire schema, generated from the `.proto` files beside this crate.
//!
//! The `.proto` files are the single source of truth for the client API; the PWA generates its
//! TypeScript types from the same files (all but the internal ones under `kitsulan/internal/`).
//! Nothing here is written by hand except this module and the wire strings of the error reasons
//! ([`reasons`]).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

pub mod reasons;

/// Version 1 of the client API (`kitsulan.v1`).
pub mod v1 {
    tonic::include_proto!("kitsulan.v1");
}

/// Schemas internal to the server, generated like the client API but no part of it: nodes use
/// them to talk to each other, clients never see them.
pub mod internal {
    /// The notices nodes of one instance send each other over the bus (NATS); see
    /// `kitsulan/internal/bus/v1/bus.proto`.
    pub mod bus {
        /// Version 1 of the bus notices (`kitsulan.internal.bus.v1`).
        pub mod v1 {
            tonic::include_proto!("kitsulan.internal.bus.v1");
        }
    }
}

/// The encoded `FileDescriptorSet` of every KitsuLAN client API `.proto` file (the internal
/// ones left out), for gRPC reflection and for telling known RPC paths from unknown ones.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kitsulan_descriptor");
