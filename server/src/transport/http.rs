//! Plain HTTP endpoints for operators: `/healthz` (the process runs), `/readyz` (it can serve:
//! the database answers) and `/metrics` (Prometheus text format; on the admin address alone
//! when `KITSULAN_ADMIN_LISTEN` is set).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::metrics::Metrics;
use crate::services::Services;

/// `/healthz` and `/readyz` (load balancers probe them on the main port).
pub fn router(services: Arc<Services>) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz).with_state(services))
}

/// `/metrics`.
pub fn admin_router(metrics: Arc<Metrics>) -> Router {
    Router::new().route("/metrics", get(metrics_text).with_state(metrics))
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(services): State<Arc<Services>>) -> Response {
    match services.readiness.check().await {
        Ok(()) => Json(json!({
            "status": "ready",
            "database": services.server_info.database.name(),
        }))
        .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason.to_string() })),
        )
            .into_response(),
    }
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.render() {
        Ok(text) => {
            ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
