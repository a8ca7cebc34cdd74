//! The harness for KitsuLAN's black-box tests: start the real `kitsulan` binary on port 0 with
//! its own data dir and database, talk to it as clients do, and print its log when a test
//! fails. The store conformance suite uses [`postgres::TestDatabase`] too.

pub mod postgres;
pub mod server;

pub use server::{Database, Options, TestServer};
