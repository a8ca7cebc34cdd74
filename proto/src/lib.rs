//! KitsuLAN's wire schema, generated from the `.proto` files beside this crate.
//!
//! The `.proto` files are the single source of truth for the client API; the PWA generates its
//! TypeScript types from the same files. Nothing here is written by hand except this module and
//! the wire strings of the error reasons ([`reasons`]).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

pub mod reasons;

/// Version 1 of the client API (`kitsulan.v1`).
pub mod v1 {
    tonic::include_proto!("kitsulan.v1");
}

/// The encoded `FileDescriptorSet` of every KitsuLAN `.proto` file, for gRPC reflection and for
/// telling known RPC paths from unknown ones.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kitsulan_descriptor");
