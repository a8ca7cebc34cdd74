//! The KitsuLAN server: one binary, `kitsulan`, that runs the API (gRPC and gRPC-Web), plain
//! HTTP endpoints and the embedded PWA on one port, plus `migrate` and `admin` commands.
//!
//! Layers point inward: [`transport`] (wire protocols) -> [`services`] (the rules) ->
//! [`store`] (storage traits with SQLite and PostgreSQL implementations); [`tls`] (HTTPS
//! certificates: ACME) sits in the transport's layer. Above them all,
//! `commands` turns the settings [`config`] parsed into what the services take; below the
//! services, beside the store, sit the leaf modules they use: [`bus`] and the [`events`] it
//! carries, [`blobs`], [`mail`], [`tls`] (HTTPS certificates), [`webpush`], [`config`], [`ids`], [`data_dir`] and `telemetry`. A module
//! never imports a layer above its own (`server/tests/layers.rs` checks it). The store and the typed ids live in the `kitsulan-store` crate (which cannot
//! import the server at all), re-exported here as [`store`] and [`ids`].

pub mod blobs;
pub mod bus;
pub mod config;
pub mod data_dir;
pub mod events;
pub mod mail;
pub mod services;
pub mod tls;
pub mod transport;
pub mod webpush;

mod commands;
mod telemetry;

pub use commands::run;
pub use kitsulan_store::{self as store, ids};
