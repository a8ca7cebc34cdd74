//! What every gRPC handler needs to know about a request: who is calling (from the
//! `authorization: Bearer` access token) and from which address (for rate limits).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use tonic::Request;

use crate::services::{Caller, ClientAddr, Error, Services};

/// Shared by the gRPC service implementations.
#[derive(Clone)]
pub struct Context {
    /// The services.
    pub services: Arc<Services>,
    /// Whether to believe `X-Forwarded-For` (behind a reverse proxy).
    pub trust_forwarded_for: bool,
}

impl Context {
    /// The caller behind the request's access token, or `SESSION_INVALID`.
    pub async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Error> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        self.services.auth.authenticate(token.trim()).await
    }

    /// The client's address: the TCP peer, or the last `X-Forwarded-For` entry when trusted.
    pub fn client<T>(&self, request: &Request<T>) -> ClientAddr {
        let forwarded = self
            .trust_forwarded_for
            .then(|| {
                request
                    .metadata()
                    .get("x-forwarded-for")?
                    .to_str()
                    .ok()?
                    .rsplit(',')
                    .next()?
                    .trim()
                    .parse()
                    .ok()
            })
            .flatten();
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        ClientAddr(forwarded.or(peer).unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])))
    }
}
