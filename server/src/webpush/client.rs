//! The HTTP side of a push (RFC 8030): one POST to the subscription's endpoint over HTTPS
//! (rustls with the Mozilla root certificates, plus any the admin adds for a push service of
//! their own), through a resolver that lets a name reach public addresses only (or any, for an
//! origin the admin exempted), so a name pointed at the LAN after it was checked still cannot
//! make the server reach inward. Redirects are not followed; the answer's body is not read.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;

use super::endpoint::{EndpointPolicy, is_public};

/// How long one push may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the push service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: accepted.
    Accepted,
    /// 404 or 410: the subscription is gone (RFC 8030 §7.3); delete it.
    Gone,
    /// 429, 5xx, a timeout or a network error: worth trying again later.
    Retry(String),
    /// Any other answer (400, 401, 403, 413, …): trying again would fail the same way.
    Refused(u16),
}

/// One push to send.
pub struct PushRequest {
    /// The endpoint URL (already checked by [`EndpointPolicy::check`]).
    pub endpoint: String,
    /// `vapid t=…, k=…`.
    pub authorization: String,
    /// Seconds the push service may keep it for an offline browser.
    pub ttl: u32,
    /// `very-low`, `low`, `normal` or `high` (RFC 8030 §5.3).
    pub urgency: &'static str,
    /// A push with the same topic replaces one still waiting at the push service (§5.4).
    pub topic: Option<&'static str>,
    /// The encrypted body (`aes128gcm`).
    pub body: Vec<u8>,
}

/// Sends pushes.
#[derive(Clone)]
pub struct PushClient {
    client: Client<HttpsConnector<HttpConnector<PublicResolver>>, Full<Bytes>>,
}

impl PushClient {
    /// A client trusting the Mozilla roots and `extra_roots`, reaching only public addresses
    /// except for the origins `policy` exempts.
    pub fn new(
        policy: Arc<EndpointPolicy>,
        extra_roots: Vec<CertificateDer<'static>>,
    ) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra_roots {
            roots.add(cert).map_err(|e| anyhow::anyhow!("an extra root certificate is not usable: {e}"))?;
        }
        let tls =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(PublicResolver { policy });
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client =
            Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(https);
        Ok(Self { client })
    }

    /// POSTs one push and says what came of it.
    pub async fn send(&self, push: PushRequest) -> Outcome {
        let mut request = http::Request::post(&push.endpoint)
            .header(http::header::AUTHORIZATION, push.authorization)
            .header(http::header::CONTENT_ENCODING, "aes128gcm")
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .header("TTL", push.ttl.to_string())
            .header("Urgency", push.urgency);
        if let Some(topic) = push.topic {
            request = request.header("Topic", topic);
        }
        let request = match request.body(Full::new(Bytes::from(push.body))) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build a push request");
                return Outcome::Refused(400);
            }
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request)).await {
            Err(_) => Outcome::Retry("timed out".into()),
            Ok(Err(e)) => Outcome::Retry(error_chain(&e)),
            Ok(Ok(response)) => match response.status().as_u16() {
                200..=299 => Outcome::Accepted,
                404 | 410 => Outcome::Gone,
                429 | 500..=599 => Outcome::Retry(format!("HTTP {}", response.status().as_u16())),
                other => Outcome::Refused(other),
            },
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves names with the system resolver and keeps only public addresses, unless the name
/// is an exempt origin's host.
#[derive(Clone)]
struct PublicResolver {
    policy: Arc<EndpointPolicy>,
}

type Resolving = Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>>;

impl tower::Service<Name> for PublicResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let exempt = policy.is_allowed_host(&host);
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found.into_iter().filter(|a| exempt || is_public(a.ip())).collect();
            if usable.is_empty() {
                return Err(std::io::Error::other(format!(
                    "{host} resolves to no public address (a push endpoint may not reach a private network)"
                )));
            }
            Ok(usable.into_iter())
        })
    }
}
