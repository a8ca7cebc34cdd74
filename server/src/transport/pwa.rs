//! The PWA, embedded at build time from `pwa/dist` (see `build.rs`), so the one binary is the
//! whole server. Unknown paths without a file extension get `index.html` (client-side routes);
//! hashed files under `/assets/` are cached forever, everything else is revalidated by ETag.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

struct Asset {
    path: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
    etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/pwa_assets.rs"));

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.binary_search_by(|a| a.path.cmp(path)).ok().and_then(|i| ASSETS.get(i))
}

/// The fallback handler: PWA files, or a gRPC "unimplemented" for unknown RPC paths.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(grpc) = grpc_content_type(&headers) {
        // An RPC to a service we do not have: answer in gRPC terms, not with a web page.
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, grpc),
                (header::HeaderName::from_static("grpc-status"), HeaderValue::from_static("12")),
                (
                    header::HeaderName::from_static("grpc-message"),
                    HeaderValue::from_static("unknown%20service"),
                ),
            ],
        )
            .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")]).into_response();
    }
    let path = uri.path();
    let asset = match find(path) {
        Some(asset) => asset,
        None if path == "/" || !path.rsplit('/').next().unwrap_or_default().contains('.') => {
            match find("/index.html") {
                Some(index) => index,
                None => return StatusCode::NOT_FOUND.into_response(),
            }
        }
        None => return StatusCode::NOT_FOUND.into_response(),
    };
    let cache =
        if asset.path.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let fresh = headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == asset.etag.as_bytes());
    let common = [
        (header::CACHE_CONTROL, cache),
        (header::ETAG, asset.etag),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    // For HEAD, hyper sends the headers (with the real length) and drops the body.
    (StatusCode::OK, common, [(header::CONTENT_TYPE, asset.content_type)], asset.bytes).into_response()
}

fn grpc_content_type(headers: &HeaderMap) -> Option<HeaderValue> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    ["application/grpc-web-text", "application/grpc-web", "application/grpc"]
        .into_iter()
        .find(|prefix| ct.starts_with(prefix))
        .map(HeaderValue::from_static)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_sorted_for_lookup_and_have_an_index() {
        assert!(ASSETS.windows(2).all(|w| w[0].path < w[1].path));
        assert!(find("/index.html").is_some());
    }
}
