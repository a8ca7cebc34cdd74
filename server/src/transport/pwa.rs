//! The PWA, embedded at build time from `pwa/dist` (see `build.rs`), so the one binary is the
//! whole server. Unknown paths without a file extension get `index.html` (client-side routes);
//! hashed files under `/assets/` are cached forever, everything else is revalidated by ETag.
//!
//! # Security
//! Every file goes out with a strict [`Policy`]: a Content-Security-Policy that lets the app
//! load scripts, styles, fonts and workers from this server only (no inline script, no `eval`;
//! `'wasm-unsafe-eval'` because the crypto runs as WebAssembly), talk to this server only (and
//! the S3 endpoint when blobs live there; `blob:` URLs are the files the app itself decrypted,
//! read back without any request), never be framed, and never post a form elsewhere; no
//! `Referer` leaves the app; camera, microphone and screen capture only for this origin.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
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

/// The security headers of every file of the app.
#[derive(Debug, Clone)]
pub struct Policy {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Policy {
    /// The policy for an app that fetches blobs from this server and from `blob_origins`
    /// (`https://host[:port]`: the S3 endpoint).
    pub fn new(blob_origins: &[String]) -> Self {
        let extra: String = blob_origins
            .iter()
            // Only what a CSP source can be: an origin without spaces, quotes or semicolons.
            .filter(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_graphic() && !b"';,\"".contains(&b)))
            .map(|o| format!(" {o}"))
            .collect();
        let csp = format!(
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
             img-src 'self' blob: data:{extra}; media-src 'self' blob:; font-src 'self'; \
             connect-src 'self' blob:{extra}; worker-src 'self'; manifest-src 'self'; \
             frame-src 'none'; frame-ancestors 'none'; object-src 'none'; base-uri 'none'; \
             form-action 'self'"
        );
        let mut headers = vec![
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (
                HeaderName::from_static("permissions-policy"),
                HeaderValue::from_static(
                    "camera=(self), microphone=(self), display-capture=(self), geolocation=(), \
                     payment=(), usb=()",
                ),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ];
        // The filter above keeps the value valid; an invalid one would only drop the CSP.
        match HeaderValue::from_str(&csp) {
            Ok(value) => headers.push((header::CONTENT_SECURITY_POLICY, value)),
            Err(e) => tracing::error!(error = %e, "the Content-Security-Policy is not a valid header"),
        }
        Self { headers }
    }

    fn apply(&self, response: &mut Response) {
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
}

/// The fallback handler: PWA files, or a gRPC "unimplemented" for unknown RPC paths.
pub async fn serve(policy: Arc<Policy>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let mut response = file(method, uri, &headers);
    if !response.headers().contains_key("grpc-status") {
        policy.apply(&mut response);
    }
    response
}

fn file(method: Method, uri: Uri, headers: &HeaderMap) -> Response {
    if let Some(grpc) = grpc_content_type(headers) {
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
    let common = [(header::CACHE_CONTROL, cache), (header::ETAG, asset.etag)];
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
    fn the_policy_names_the_blob_origin_and_refuses_odd_ones() {
        let policy = Policy::new(&["https://s3.example.org:9000".to_owned(), "x; script-src *".to_owned()]);
        let csp = policy
            .headers
            .iter()
            .find(|(name, _)| name == header::CONTENT_SECURITY_POLICY)
            .map(|(_, v)| v.to_str().unwrap().to_owned())
            .unwrap();
        assert!(csp.contains("connect-src 'self' blob: https://s3.example.org:9000;"), "{csp}");
        assert!(!csp.contains("script-src *"), "{csp}");
    }

    #[test]
    fn assets_are_sorted_for_lookup_and_have_an_index() {
        assert!(ASSETS.windows(2).all(|w| w[0].path < w[1].path));
        assert!(find("/index.html").is_some());
    }
}
