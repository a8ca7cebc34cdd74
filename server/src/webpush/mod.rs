//! Web Push, the protocol parts: message encryption (RFC 8291, [`ece`]), the server's
//! identification (VAPID, RFC 8292, [`vapid`]), which endpoints may be reached ([`endpoint`])
//! and the HTTP request to a push service (RFC 8030, [`client`]). A leaf module: the rules of
//! who gets a push, and when, are in `services::push`.

pub mod client;
pub mod ece;
pub mod endpoint;
pub mod vapid;

pub use client::{Outcome, PushClient, PushRequest};
pub use endpoint::{Endpoint, EndpointError, EndpointPolicy};
pub use vapid::VapidKey;
