//! A client SDK for KitsuLAN: gRPC + gateway + E2EE, used by the e2e tests (`kitsulan-e2e`)
//! and the load generator (`kitsulan-bench`). It talks to a server as the apps do (sessions,
//! Olm and Megolm, the real-time gateway, encrypted files, calls), and it can start the real
//! `kitsulan` binary on port 0 with its own data dir and database for a test, printing its log
//! when the test fails. The PostgreSQL test database, coturn's tools and the SMTP sink come
//! from `kitsulan-testkit` (re-exported as [`postgres`], [`smtp`] and in [`calls`]). The WebRTC
//! call peer is not here: it lives with the e2e tests, so the load generator does not build
//! a WebRTC stack.
//!
//! - [`server`]: the server under test; [`admin`]: `kitsulan admin` beside it.
//! - [`client`]: one device of one person (sessions, bearer tokens, refusals).
//! - [`smtp`]: a real SMTP server catching the mail the server sends.
//! - [`totp`]: the authenticator app.
//! - [`e2ee`]: a device doing end-to-end encryption (keys, Olm, Megolm, pairing).
//! - [`conversations`]: conversations and their E2EE messages (sending, history, decrypting).
//! - [`guilds`]: communities with channels, roles, invites and moderation.
//! - [`content`]: what a message says (the typed `Content` inside the plaintext), as the PWA
//!   writes and reads it.
//! - [`gateway`]: the real-time gateway (WebSocket client, live inbox with dedupe and resume).
//! - [`calls`]: call signals, TURN credentials, coturn's client and server.
//! - [`attachments`]: encrypted files, streamed uploads and downloads, a real S3 server.
//! - [`backup`]: key backup (`KeyBackupService`): the account's encrypted keys on the server.
//! - [`scan`]: searching the server's storage for plaintexts and private keys.
//! - [`verification`]: verifying another person with SAS emoji over Olm to-device messages.

pub mod admin;
pub mod attachments;
pub mod avatars;
pub mod backup;
pub mod calls;
pub mod client;
pub mod content;
pub mod conversations;
pub mod e2ee;
pub mod gateway;
pub mod guilds;
pub mod key_backup;
pub mod people;
pub mod scan;
pub mod server;
pub mod totp;
pub mod verification;
pub mod voice;

pub use kitsulan_testkit::{postgres, smtp};

pub use client::{Client, Refusal, assert_refused, assert_refused_with};
pub use server::{Database, Options, TestServer, binary};
pub use smtp::{Mail, SmtpSink};
pub use totp::Authenticator;
