//! Requests tonic refuses before any handler runs: a body that is not a valid protobuf message
//! of the method's type, a truncated or otherwise broken gRPC frame, a message over the size
//! limit. tonic answers those `INTERNAL` and `OUT_OF_RANGE` with its own words; clients get
//! them here as our errors instead: `INVALID_ARGUMENT` / `MALFORMED_REQUEST` and
//! `RESOURCE_EXHAUSTED` / `REQUEST_TOO_LARGE` with the limit, each with its `ErrorInfo`.
//!
//! It runs inside the gRPC-Web translation, so both native gRPC and gRPC-Web are covered.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tonic::{Code, Status};

use crate::services::Error;

/// The most bytes one request message may have, per method.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Every method but the avatar uploads.
    pub default: usize,
    /// `AvatarService` (the image travels in the request).
    pub avatar: usize,
}

impl RequestLimits {
    fn for_path(&self, path: &str) -> usize {
        if path.starts_with("/kitsulan.v1.AvatarService/") { self.avatar } else { self.default }
    }
}

/// Rewrites tonic's own refusals of undecodable or oversized requests (see the module docs).
pub async fn clear_errors(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    let limit = limits.for_path(request.uri().path());
    let mut response = next.run(request).await;
    let headers = response.headers();
    // Every error of ours carries an ErrorInfo; tonic's decoding errors never do. They come
    // before any message, so the status is in the headers (a "trailers-only" response).
    if headers.contains_key("grpc-status-details-bin") {
        return response;
    }
    let error = match headers.get("grpc-status").map(|code| Code::from_bytes(code.as_bytes())) {
        Some(Code::Internal) => Error::MalformedRequest,
        Some(Code::OutOfRange) => Error::RequestTooLarge { limit },
        _ => return response,
    };
    if let Some(original) = Status::from_header_map(headers) {
        tracing::debug!(cause = original.message(), "refused a request that could not be decoded");
    }
    let status = Status::from(error);
    let headers = response.headers_mut();
    headers.remove("grpc-message");
    if let Err(e) = status.add_header(headers) {
        tracing::warn!(error = %e, "cannot describe a refused request");
    }
    response
}
