//! Everything that speaks a wire protocol: plain HTTP (health, metrics, the PWA), gRPC and
//! gRPC-Web, all on one port; `/metrics` and gRPC reflection optionally on an admin address of
//! their own. [`router`] builds the whole thing without opening a socket, so tests can call it
//! directly; [`serve`] runs it on a listener, [`serve_https`] on a listener that speaks HTTPS
//! and plain HTTP on one port.

mod blobs;
mod gateway;
mod grpc;
mod http;
mod https;
pub mod mdns;
mod metrics;
mod pwa;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::services::Services;

pub use grpc::HealthHandle;
pub use https::{RedirectTo, plain_router, serve as serve_https};
pub use metrics::Metrics;

/// How the transport behaves (from the settings).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Take client addresses from `X-Forwarded-For` (behind a reverse proxy).
    pub trust_forwarded_for: bool,
    /// Serve `/metrics` and gRPC reflection on their own router ([`Routers::admin`], for
    /// `KITSULAN_ADMIN_LISTEN`) and not on the main one.
    pub separate_admin: bool,
    /// Origins besides this server's that the web app talks to (the S3 endpoint for blobs),
    /// allowed by its Content-Security-Policy.
    pub blob_origins: Vec<String>,
    /// The local CA (`KITSULAN_TLS=local`): `/ca.crt` and `/ca.pem` for people to trust it.
    pub local_ca: Option<Arc<crate::tls::LocalCa>>,
    /// ACME's `/.well-known/acme-challenge/{token}` (only that route).
    pub acme_challenges: Option<Router>,
}

/// What [`router`] builds.
pub struct Routers {
    /// Everything clients use: gRPC (+ gRPC-Web), the gateway, blobs, health, the PWA; and
    /// `/metrics` and reflection unless they are apart.
    pub main: Router,
    /// With [`Options::separate_admin`]: `/metrics`, gRPC reflection, `/healthz` and `/readyz`.
    pub admin: Option<Router>,
    /// Flips gRPC health on shutdown.
    pub health: HealthHandle,
}

/// Builds the full router: gRPC (+ gRPC-Web), HTTP endpoints, the PWA as fallback, metrics
/// around all of it; and the admin router when `/metrics` and reflection are apart.
pub async fn router(services: Arc<Services>, options: Options) -> anyhow::Result<Routers> {
    let metrics = Arc::new(Metrics::new(grpc::known_methods()?, services.delivery.hub().clone()));
    let context =
        grpc::Context { services: services.clone(), trust_forwarded_for: options.trust_forwarded_for };
    let (grpc, health) = grpc::router(context, !options.separate_admin).await?;
    let mut router = Router::new();
    if let Some(disk) = &services.disk_blobs {
        router = router.merge(blobs::router(disk.clone(), services.attachments.clone()));
    }
    let mut router = router.merge(http::router(services.clone()));
    if let Some(ca) = &options.local_ca {
        router = router.merge(https::ca_router(ca.clone()));
    }
    if let Some(challenges) = &options.acme_challenges {
        router = router.merge(challenges.clone());
    }
    let (router, admin) = if options.separate_admin {
        let admin = http::admin_router(metrics.clone())
            .merge(http::router(services.clone()))
            .merge(grpc::reflection_router()?)
            .fallback(|| async { axum::http::StatusCode::NOT_FOUND });
        // A plain 404, not the web app the fallback would serve for an unknown path.
        let hidden =
            router.route("/metrics", axum::routing::any(|| async { axum::http::StatusCode::NOT_FOUND }));
        (hidden, Some(admin))
    } else {
        (router.merge(http::admin_router(metrics.clone())), None)
    };
    let pwa = Arc::new(pwa::Policy::new(&options.blob_origins));
    let main = router
        .merge(gateway::router(services))
        .merge(grpc)
        .fallback(move |method, uri, headers| pwa::serve(pwa.clone(), method, uri, headers))
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track));
    Ok(Routers { main, admin, health })
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    // Without TCP_NODELAY a response written in pieces (a gRPC reply's headers, body and
    // trailers, a burst of gateway frames) waits for the client's delayed ACK: ~40 ms per
    // request on Linux, which the load generator showed as the median SendMessage latency.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
