//! The harness for KitsuLAN's black-box tests: start the real `kitsulan` binary on port 0 with
//! its own data dir and database, talk to it as clients do, and print its log when a test
//! fails. The PostgreSQL test database, coturn's tools and the SMTP sink come from
//! `kitsulan-testkit` (re-exported as [`postgres`], [`smtp`] and in [`calls`]).
//!
//! - [`server`]: the server under test; [`admin`]: `kitsulan admin` beside it.
//! - [`client`]: one device of one person (sessions, bearer tokens, refusals).
//! - [`smtp`]: a real SMTP server catching the mail the server sends.
//! - [`totp`]: the authenticator app.
//! - [`e2ee`]: a device doing end-to-end encryption (keys, Olm, Megolm, pairing).
//! - [`conversations`]: conversations and their E2EE messages (sending, history, decrypting).
//! - [`gateway`]: the real-time gateway (WebSocket client, live inbox with dedupe and resume).
//! - [`calls`]: call signals, TURN credentials, coturn's client and server.
//! - [`call_peer`]: a device in a call with a real WebRTC peer connection (relay-only ICE).
//! - [`attachments`]: encrypted files, streamed uploads and downloads, a real S3 server.
//! - [`scan`]: searching the server's storage for plaintexts and private keys.
//! - [`verification`]: verifying another person with SAS emoji over Olm to-device messages.

pub mod admin;
pub mod attachments;
pub mod avatars;
pub mod call_peer;
pub mod calls;
pub mod client;
pub mod conversations;
pub mod e2ee;
pub mod gateway;
pub mod people;
pub mod scan;
pub mod server;
pub mod totp;
pub mod verification;

pub use kitsulan_testkit::{postgres, smtp};

pub use client::{Client, Refusal, assert_refused, assert_refused_with};
pub use server::{Database, Options, TestServer};
pub use smtp::{Mail, SmtpSink};
pub use totp::Authenticator;
