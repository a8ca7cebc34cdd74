//! The KitsuLAN server: one binary, `kitsulan`, that runs the API (gRPC and gRPC-Web), plain
//! HTTP endpoints and the embedded PWA on one port, plus `migrate` and `admin` commands.
//!
//! Layers point inward: [`transport`] (wire protocols) -> [`services`] (the rules) ->
//! [`store`] (storage traits with SQLite and PostgreSQL implementations).
//! The store and the typed ids live in the `kitsulan-store` crate, re-exported here as [`store`]
//! and [`ids`] so `crate::store::…` and `crate::ids::…` name them as before.

pub mod blobs;
pub mod bus;
pub mod config;
pub mod data_dir;
pub mod mail;
pub mod services;
pub mod transport;

mod commands;
mod telemetry;

pub use commands::run;
pub use kitsulan_store::{self as store, ids};
