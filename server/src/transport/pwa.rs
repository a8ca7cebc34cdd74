//! The PWA, embedded at build time from `pwa/dist` (see `build.rs`), so the one binary is the
//! whole server. Unknown paths without a file extension get `index.html` (client-side routes);
//! hashed files under `/assets/` are cached forever, everything else is revalidated by ETag.
//!
//! Text, JSON, SVG and WebAssembly also exist as brotli and gzip copies made at build time; the
//! copy is chosen by `Accept-Encoding` (highest q-value, brotli first on a tie, never a coding
//! with q=0, the plain file when nothing else is acceptable), with `Vary: Accept-Encoding` and
//! an ETag of its own. A request with `Range` always gets the plain file.
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
    br: Option<Encoded>,
    gzip: Option<Encoded>,
}

/// A compressed copy of an [`Asset`], with its own ETag.
struct Encoded {
    bytes: &'static [u8],
    etag: &'static str,
}

/// A content coding we can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Br,
    Gzip,
    Identity,
}

/// The coding to send, given the request's `Accept-Encoding` and which copies exist: the
/// highest q-value (RFC 9110 12.5.3; `*` stands for codings not named), brotli before gzip
/// before the plain file on a tie; a coding with q=0 never. No header, or nothing acceptable:
/// the plain file (which is also what a client refusing `identity` gets when nothing else fits).
fn choose(accept: Option<&HeaderValue>, has_br: bool, has_gzip: bool) -> Coding {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else { return Coding::Identity };
    let (mut br, mut gzip, mut identity, mut star) = (None, None, None, None);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)))
            // An unreadable q-value counts as a refusal.
            .unwrap_or(0.0);
        let slot = match name.as_str() {
            "br" => &mut br,
            "gzip" | "x-gzip" => &mut gzip,
            "identity" => &mut identity,
            "*" => &mut star,
            _ => continue,
        };
        // Named twice: the first one counts.
        slot.get_or_insert(q);
    }
    let q_of =
        |named: Option<f32>, available: bool| if available { named.or(star).unwrap_or(0.0) } else { 0.0 };
    // The plain file is always acceptable as the last resort; it beats a compressed copy only
    // when the client prefers it by name (or by `*`) with a higher q-value.
    let identity = identity.or(star).unwrap_or(0.0);
    [(Coding::Br, q_of(br, has_br)), (Coding::Gzip, q_of(gzip, has_gzip))]
        .into_iter()
        .filter(|(_, q)| *q > 0.0 && *q >= identity)
        // max_by keeps the last of equals: reverse so brotli wins a tie.
        .rev()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(Coding::Identity, |(coding, _)| coding)
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 13.1.2 asks), or is `*`.
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    })
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
    respond(asset, headers)
}

/// One file: the copy `Accept-Encoding` asks for, or 304 when the client has that copy.
fn respond(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let cache =
        if asset.path.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let accept =
        if headers.contains_key(header::RANGE) { None } else { headers.get(header::ACCEPT_ENCODING) };
    let (bytes, etag, encoding) =
        match (choose(accept, asset.br.is_some(), asset.gzip.is_some()), &asset.br, &asset.gzip) {
            (Coding::Br, Some(br), _) => (br.bytes, br.etag, Some("br")),
            (Coding::Gzip, _, Some(gzip)) => (gzip.bytes, gzip.etag, Some("gzip")),
            _ => (asset.bytes, asset.etag, None),
        };
    let mut response = if none_match(headers, etag) {
        (StatusCode::NOT_MODIFIED, [(header::CACHE_CONTROL, cache), (header::ETAG, etag)]).into_response()
    } else {
        // For HEAD, hyper sends the headers (with the real length) and drops the body.
        let mut ok = (
            StatusCode::OK,
            [
                (header::CACHE_CONTROL, cache),
                (header::ETAG, etag),
                (header::CONTENT_TYPE, asset.content_type),
            ],
            bytes,
        )
            .into_response();
        if let Some(encoding) = encoding {
            ok.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        ok
    };
    if asset.br.is_some() || asset.gzip.is_some() {
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
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

    static SCRIPT: Asset = Asset {
        path: "/assets/app-1234.js",
        bytes: b"plain plain plain plain",
        content_type: "text/javascript; charset=utf-8",
        etag: "\"abc\"",
        br: Some(Encoded { bytes: b"BR", etag: "\"abc-br\"" }),
        gzip: Some(Encoded { bytes: b"GZIP", etag: "\"abc-gz\"" }),
    };
    static ONLY_GZIP: Asset = Asset {
        path: "/assets/app-1234.js",
        bytes: b"plain plain plain plain",
        content_type: "text/javascript; charset=utf-8",
        etag: "\"abc\"",
        br: None,
        gzip: Some(Encoded { bytes: b"GZIP", etag: "\"abc-gz\"" }),
    };
    static IMAGE: Asset = Asset {
        path: "/icon-192.png",
        bytes: b"\x89PNG",
        content_type: "image/png",
        etag: "\"png\"",
        br: None,
        gzip: None,
    };

    fn get(asset: &'static Asset, headers: &[(&str, &str)]) -> Response {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        respond(asset, &map)
    }

    fn header(response: &Response, name: HeaderName) -> Option<&str> {
        response.headers().get(name).map(|v| v.to_str().unwrap())
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()
    }

    #[tokio::test]
    async fn brotli_is_chosen_when_the_browser_takes_it() {
        // What Chromium sends.
        let response = get(&SCRIPT, &[("accept-encoding", "gzip, deflate, br, zstd")]);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, header::CONTENT_ENCODING), Some("br"));
        assert_eq!(header(&response, header::VARY), Some("accept-encoding"));
        assert_eq!(header(&response, header::ETAG), Some("\"abc-br\""));
        assert_eq!(header(&response, header::CONTENT_TYPE), Some("text/javascript; charset=utf-8"));
        assert_eq!(body(response).await, b"BR");
        // Case and spaces do not matter; a higher q-value beats the tie-break.
        assert_eq!(choose(Some(&HeaderValue::from_static("GZIP;Q=0.5 , BR")), true, true), Coding::Br);
        assert_eq!(choose(Some(&HeaderValue::from_static("*")), true, true), Coding::Br);
    }

    #[tokio::test]
    async fn gzip_is_chosen_when_brotli_is_not_taken_or_not_there() {
        for (asset, accept) in [
            (&SCRIPT, "gzip, deflate"),
            (&SCRIPT, "br;q=0.5, gzip;q=0.8"),
            (&SCRIPT, "x-gzip"),
            (&ONLY_GZIP, "br, gzip"),
        ] {
            let response = get(asset, &[("accept-encoding", accept)]);
            assert_eq!(header(&response, header::CONTENT_ENCODING), Some("gzip"), "{accept}");
            assert_eq!(header(&response, header::ETAG), Some("\"abc-gz\""), "{accept}");
            assert_eq!(body(response).await, b"GZIP", "{accept}");
        }
    }

    #[tokio::test]
    async fn a_coding_with_q_zero_is_never_sent() {
        let response = get(&SCRIPT, &[("accept-encoding", "br;q=0, gzip")]);
        assert_eq!(header(&response, header::CONTENT_ENCODING), Some("gzip"));
        for accept in
            ["br;q=0, gzip;q=0", "*;q=0, identity", "br;q=0.0, gzip;q=0.000", "br;q=nonsense", "gzip;q=2"]
        {
            let response = get(&SCRIPT, &[("accept-encoding", accept)]);
            assert_eq!(header(&response, header::CONTENT_ENCODING), None, "{accept}");
            assert_eq!(body(response).await, SCRIPT.bytes, "{accept}");
        }
        // Named twice: the first one counts.
        assert_eq!(choose(Some(&HeaderValue::from_static("br;q=0, br")), true, true), Coding::Identity);
    }

    #[tokio::test]
    async fn the_plain_file_without_accept_encoding_for_identity_for_ranges_and_for_images() {
        for (asset, headers) in [
            (&SCRIPT, vec![]),
            (&SCRIPT, vec![("accept-encoding", "identity")]),
            (&SCRIPT, vec![("accept-encoding", "deflate, zstd")]),
            // identity preferred over brotli by its q-value.
            (&SCRIPT, vec![("accept-encoding", "identity, br;q=0.5")]),
            // Identity refused but nothing else fits: still the plain file.
            (&SCRIPT, vec![("accept-encoding", "identity;q=0, zstd")]),
            // Range is about the plain file, as before compression existed.
            (&SCRIPT, vec![("accept-encoding", "br, gzip"), ("range", "bytes=0-3")]),
            (&IMAGE, vec![("accept-encoding", "br, gzip")]),
        ] {
            let response = get(asset, &headers);
            assert_eq!(response.status(), StatusCode::OK, "{headers:?}");
            assert_eq!(header(&response, header::CONTENT_ENCODING), None, "{headers:?}");
            assert_eq!(header(&response, header::ETAG), Some(asset.etag), "{headers:?}");
            let vary = header(&response, header::VARY);
            assert_eq!(vary, asset.br.as_ref().map(|_| "accept-encoding"), "{headers:?}");
            assert_eq!(body(response).await, asset.bytes, "{headers:?}");
        }
    }

    #[test]
    fn each_coding_has_its_own_etag_and_304s_only_for_its_own() {
        let etags = ["br, gzip", "gzip", "identity"].map(|accept| {
            header(&get(&SCRIPT, &[("accept-encoding", accept)]), header::ETAG).unwrap().to_owned()
        });
        assert_eq!(etags, ["\"abc-br\"", "\"abc-gz\"", "\"abc\""]);
        for (accept, etag) in [("br, gzip", "\"abc-br\""), ("gzip", "\"abc-gz\""), ("identity", "\"abc\"")] {
            let cached = get(&SCRIPT, &[("accept-encoding", accept), ("if-none-match", etag)]);
            assert_eq!(cached.status(), StatusCode::NOT_MODIFIED, "{accept}");
            assert_eq!(header(&cached, header::ETAG), Some(etag), "{accept}");
            assert_eq!(header(&cached, header::VARY), Some("accept-encoding"), "{accept}");
            // Weak and listed tags match too.
            let weak = format!("\"other\", W/{etag}");
            let listed = get(&SCRIPT, &[("accept-encoding", accept), ("if-none-match", &weak)]);
            assert_eq!(listed.status(), StatusCode::NOT_MODIFIED, "{accept}");
        }
        // A cached brotli copy is not a reason to 304 a client that now wants gzip or plain.
        for accept in ["gzip", "identity"] {
            let other = get(&SCRIPT, &[("accept-encoding", accept), ("if-none-match", "\"abc-br\"")]);
            assert_eq!(other.status(), StatusCode::OK, "{accept}");
        }
        let stale = get(&SCRIPT, &[("accept-encoding", "br"), ("if-none-match", "\"abc\"")]);
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[test]
    fn head_has_the_headers_of_get() {
        let mut map = HeaderMap::new();
        map.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        let head = file(Method::HEAD, Uri::from_static("/index.html"), &map);
        let get = file(Method::GET, Uri::from_static("/index.html"), &map);
        assert_eq!(head.status(), StatusCode::OK);
        for name in [header::CONTENT_ENCODING, header::ETAG, header::VARY, header::CONTENT_TYPE] {
            assert_eq!(head.headers().get(&name), get.headers().get(&name), "{name}");
        }
    }

    #[test]
    fn assets_are_sorted_for_lookup_and_have_an_index() {
        assert!(ASSETS.windows(2).all(|w| w[0].path < w[1].path));
        assert!(find("/index.html").is_some());
    }
}
