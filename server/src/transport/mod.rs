//! Everything that speaks a wire protocol: plain HTTP (health, metrics, the PWA), gRPC and
//! gRPC-Web, all on one port. [`router`] builds the whole thing without opening a socket, so
//! tests can call it directly; [`serve`] runs it on a listener.

mod blobs;
mod gateway;
mod grpc;
mod http;
mod metrics;
mod pwa;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::services::Services;

pub use grpc::HealthHandle;
pub use metrics::Metrics;

/// How the transport behaves (from the settings).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Take client addresses from `X-Forwarded-For` (behind a reverse proxy).
    pub trust_forwarded_for: bool,
}

/// Builds the full router: gRPC (+ gRPC-Web), HTTP endpoints, the PWA as fallback, metrics
/// around all of it. Returns the handle that flips gRPC health on shutdown.
pub async fn router(services: Arc<Services>, options: Options) -> anyhow::Result<(Router, HealthHandle)> {
    let metrics = Arc::new(Metrics::new(grpc::known_methods()?, services.delivery.hub().clone()));
    let context =
        grpc::Context { services: services.clone(), trust_forwarded_for: options.trust_forwarded_for };
    let (grpc, health) = grpc::router(context).await?;
    let mut router = Router::new();
    if let Some(disk) = &services.disk_blobs {
        router = router.merge(blobs::router(disk.clone(), services.attachments.clone()));
    }
    let router = router
        .merge(http::router(services.clone(), metrics.clone()))
        .merge(gateway::router(services))
        .merge(grpc)
        .fallback(pwa::serve)
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track));
    Ok((router, health))
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
