//! TURN for KitsuLAN calls: coturn-compatible credentials and the embedded relay.
//!
//! Calls are WebRTC between browsers (ARCHITECTURE.md §8). When two devices cannot reach each
//! other directly, their media goes through a TURN relay. This crate owns both halves of that:
//!
//! - [`credentials`]: the KitsuLAN server issues short-lived [`TurnCredentials`] in coturn's REST
//!   format (`username = "<expiry unix seconds>:<account id>"`,
//!   `password = base64(HMAC-SHA1(secret, username))`), and [`verify`] checks them.
//! - [`relay`]: the embedded relay ([`start`] → [`Relay`]), webrtc-rs's `turn` server with an
//!   auth handler that accepts exactly those credentials.
//!
//! # Deployments
//! **Lite** turns the embedded relay on by default: one UDP port (3478), a small relay port
//! range, the secret generated and kept by the server. **Pro** points at coturn instead: the
//! server keeps issuing the same credentials and coturn checks them with
//! `use-auth-secret` / `static-auth-secret=<the same secret>`; the embedded relay stays off.
//!
//! # What the embedded relay relays, and its limits
//! - TURN over **UDP** only (RFC 5766 allocations with UDP relayed addresses): no TCP or TLS
//!   listeners, no TCP relaying (RFC 6062), no DTLS. Browsers reach it with
//!   `turn:HOST:3478?transport=udp`; it also answers STUN Binding requests (`stun:HOST:3478`).
//! - Only clients with valid, unexpired credentials get an allocation. Refreshes, permissions
//!   and channel bindings need the right password too, but may carry credentials that expired
//!   since (as with coturn), so a call outlives its credentials and the credential lifetime can
//!   be short.
//! - Relayed addresses use the **even** ports of the configured range only; at most
//!   `max_allocations` exist at once (further Allocate requests get 508 Insufficient
//!   Capacity), and one account holds at most `max_allocations_per_account` (486 Allocation
//!   Quota Reached), counted by the account id whatever the credentials' expiry.
//! - Peers: public addresses only by default. Private, CGNAT, link-local and unique-local
//!   addresses with `allow_lan_peers`; loopback and this host's own addresses (every
//!   interface) only on the relay's own ports; unspecified, multicast, broadcast and reserved
//!   never. A permission for a refused peer gets 403 (`relay::peers` has the table).
//! - One IP family per relay (that of the listen address); no bandwidth quotas.
//! - It logs through `tracing` (starts, stops, refusals, a full relay); the `turn` crate logs
//!   through `log`, with one `error` line per refused request under the `turn` target.
//!   Secrets and passwords are never logged.

#![deny(missing_docs)]

pub mod credentials;
pub mod relay;

pub use credentials::{
    IssueError, SecretError, TurnCredentials, TurnSecret, VerifiedUser, VerifyError, verify, verify_at,
};
pub use relay::{ConfigError, PortRange, Relay, RelayConfig, RelayError, outbound_ip, start};
