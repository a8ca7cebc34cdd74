//! Request metrics for `/metrics`: a count and a latency histogram per method, route and
//! status, for every HTTP and gRPC request.
//!
//! # Security
//! Label values come from a closed set (the route table and the RPC methods in our descriptor
//! sets), never from the raw request path, so a client cannot grow the metrics without bound.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::services::Hub;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LatencyLabels {
    method: String,
    route: String,
}

type LatencyFamily = Family<LatencyLabels, Histogram, fn() -> Histogram>;

/// The server's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    grpc_methods: HashSet<String>,
    gateway_sessions: Gauge,
    hub: Arc<Hub>,
}

impl Metrics {
    /// A registry that knows the given gRPC method paths (`/package.Service/Method`) and reads
    /// the gateway's sessions from `hub`.
    pub fn new(grpc_methods: HashSet<String>, hub: Arc<Hub>) -> Self {
        let mut registry = Registry::with_prefix("kitsulan");
        registry.register(
            "build",
            "The running KitsuLAN version",
            Info::new(vec![("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP and gRPC requests answered", requests.clone());
        let latency: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16)));
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers",
            latency.clone(),
        );
        let gateway_sessions = Gauge::default();
        registry.register(
            "gateway_sessions",
            "Gateway WebSocket sessions open on this node",
            gateway_sessions.clone(),
        );
        Self { registry, requests, latency, grpc_methods, gateway_sessions, hub }
    }

    /// The registry in Prometheus/OpenMetrics text format.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        self.gateway_sessions.set(i64::try_from(self.hub.sessions()).unwrap_or(i64::MAX));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    fn route_of(&self, request: &Request) -> String {
        let path = request.uri().path();
        if self.grpc_methods.contains(path) {
            return path.to_owned();
        }
        match request.extensions().get::<MatchedPath>() {
            Some(matched) if !matched.as_str().contains("{*") => matched.as_str().to_owned(),
            Some(_) => "grpc_unknown".to_owned(),
            None => "static".to_owned(),
        }
    }
}

/// Middleware recording every request.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let route = metrics.route_of(&request);
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    metrics
        .latency
        .get_or_create(&LatencyLabels { method: method.clone(), route: route.clone() })
        .observe(elapsed);
    metrics
        .requests
        .get_or_create(&RequestLabels { method, route, status: response.status().as_u16() })
        .inc();
    response
}
