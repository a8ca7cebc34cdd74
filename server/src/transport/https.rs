//! HTTPS and plain HTTP on one port. Each connection's first byte decides: 0x16 (a TLS
//! ClientHello) gets the TLS handshake, anything else is plain HTTP. Over TLS, and over plain
//! HTTP from loopback (a secure context already; the tests and local tools use it), clients get
//! the whole router. Plain HTTP from anywhere else gets the plain router: the local CA
//! (`/ca.crt`, `/ca.pem`: a phone fetches it before it can trust HTTPS), ACME challenges, and a
//! 308 redirect to the same URL on `https://` for everything else.
//!
//! Handshakes run in a task per connection with a time limit, off the accept loop, so a slow or
//! silent client cannot hold up the others. HTTP/1.1, HTTP/2 (ALPN `h2`), gRPC, gRPC-Web and
//! WebSockets are served as on plain HTTP: by `axum::serve`, through [`SecureListener`].

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tower::Service;

use crate::tls::LocalCa;

/// How long a client may take from connecting to finishing the TLS handshake (or sending its
/// first plain-HTTP byte).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections ready to serve that `axum::serve` has not taken yet.
const READY_QUEUE: usize = 128;

/// Serves `main` over HTTPS (and over plain HTTP to loopback clients) and `plain` to other
/// plain-HTTP clients, on `listener`, until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    main: Router,
    plain: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let listener = SecureListener::new(listener, config)?;
    axum::serve(listener, PickRouter { main, plain }).with_graceful_shutdown(shutdown).await
}

/// Where a plain-HTTP request is sent.
#[derive(Debug, Clone, Copy)]
pub enum RedirectTo {
    /// The port it came to (the main port speaks both).
    SamePort,
    /// Another port: the main one, seen from `KITSULAN_HTTP_REDIRECT_LISTEN`.
    Port(u16),
}

/// What plain HTTP from the LAN gets: the local CA, ACME challenges, and redirects to HTTPS.
pub fn plain_router(to: RedirectTo, local_ca: Option<Arc<LocalCa>>, challenges: Option<Router>) -> Router {
    let mut router = Router::new();
    if let Some(ca) = local_ca {
        router = router.merge(ca_router(ca));
    }
    if let Some(challenges) = challenges {
        router = router.merge(challenges);
    }
    router.fallback(move |uri: Uri, headers: HeaderMap| async move { redirect(to, &uri, &headers) })
}

/// `GET /ca.crt` (DER, what phones install) and `GET /ca.pem`.
pub fn ca_router(ca: Arc<LocalCa>) -> Router {
    let der = bytes::Bytes::copy_from_slice(ca.der());
    let pem = ca.pem().to_owned();
    Router::new()
        .route(
            "/ca.crt",
            get(move || {
                let der = der.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/x-x509-ca-cert"),
                            (header::CONTENT_DISPOSITION, "attachment; filename=\"kitsulan-ca.crt\""),
                        ],
                        der,
                    )
                }
            }),
        )
        .route(
            "/ca.pem",
            get(move || {
                let pem = pem.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/x-pem-file"),
                            (header::CONTENT_DISPOSITION, "attachment; filename=\"kitsulan-ca.pem\""),
                        ],
                        pem,
                    )
                }
            }),
        )
}

/// 308 to `https://` with the same host, path and query. The host comes from the request (the
/// name the person typed); one that is not a plain host name or address gets a 400, so the
/// redirect can never point somewhere odd.
fn redirect(to: RedirectTo, uri: &Uri, headers: &HeaderMap) -> Response {
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned));
    let Some((host, port)) = authority.as_deref().and_then(split_host) else {
        return (StatusCode::BAD_REQUEST, "Use https:// to reach this server.\n").into_response();
    };
    let port = match to {
        RedirectTo::SamePort => port,
        RedirectTo::Port(443) => None,
        RedirectTo::Port(port) => Some(port),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = match port {
        Some(port) => format!("https://{host}:{port}{path}"),
        None => format!("https://{host}{path}"),
    };
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "Use https:// to reach this server.\n").into_response(),
    }
}

/// `host[:port]` with a host of letters, digits, dots and hyphens, or an IP address (IPv6 in
/// brackets); anything else (user info, odd characters) is refused.
fn split_host(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let ok = !host.is_empty()
            && host.len() <= 253
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !ok {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(port) => Some(port.parse::<u16>().ok()?),
    };
    Some((host, port))
}

/// Who is on the other end, and whether they speak TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// A connection after its first byte: TLS (handshake done) or plain.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Self::Tls(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Self::Tls(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Self::Tls(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(io) => io.is_write_vectored(),
            Self::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_flush(cx),
            Self::Tls(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Self::Tls(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// A listener for `axum::serve` that hands over connections once their first byte (and, for
/// TLS, the handshake) is in. The accepting runs in its own task.
pub struct SecureListener {
    ready: mpsc::Receiver<(Conn, Peer)>,
    local: SocketAddr,
    accepting: JoinHandle<()>,
}

impl SecureListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(Self { ready, local, accepting })
    }
}

impl Drop for SecureListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Listener for SecureListener {
    type Io = Conn;
    type Addr = Peer;

    async fn accept(&mut self) -> (Conn, Peer) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer { addr: self.local, tls: true })
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, ready: mpsc::Sender<(Conn, Peer)>) {
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_error(e).await;
                continue;
            }
        };
        // See `transport::serve`: without it, replies written in pieces wait ~40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, open(tcp, acceptor)).await {
                Ok(Ok((conn, tls))) => {
                    let _ = ready.send((conn, Peer { addr, tls })).await;
                }
                Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %addr, "no TLS handshake within the time limit"),
            }
        });
    }
}

/// Looks at the first byte without taking it: 0x16 starts a TLS handshake record.
async fn open(tcp: TcpStream, acceptor: TlsAcceptor) -> io::Result<(Conn, bool)> {
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if first[0] == 0x16 {
        Ok((Conn::Tls(Box::new(acceptor.accept(tcp).await?)), true))
    } else {
        Ok((Conn::Plain(tcp), false))
    }
}

/// As `axum::serve` does: errors about one connection are skipped; others (out of file
/// descriptors) are logged and the loop pauses a second.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept error");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Gives each connection its router: the whole one over TLS or from loopback, the plain one
/// otherwise; and the client's address as `ConnectInfo<SocketAddr>`, as `transport::serve` does.
#[derive(Clone)]
struct PickRouter {
    main: Router,
    plain: Router,
}

impl Service<IncomingStream<'_, SecureListener>> for PickRouter {
    type Response = WithPeer;
    type Error = Infallible;
    type Future = std::future::Ready<Result<WithPeer, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, SecureListener>) -> Self::Future {
        let peer = *stream.remote_addr();
        let router =
            if peer.tls || is_loopback(peer.addr.ip()) { self.main.clone() } else { self.plain.clone() };
        std::future::ready(Ok(WithPeer { router, addr: peer.addr }))
    }
}

/// A router that knows its client's address.
#[derive(Clone)]
struct WithPeer {
    router: Router,
    addr: SocketAddr,
}

impl Service<Request> for WithPeer {
    type Response = Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.addr));
        self.router.call(request)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn location(to: RedirectTo, uri: &str, host: Option<&str>) -> (u16, Option<String>) {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        let response = redirect(to, &uri.parse().unwrap(), &headers);
        let location = response.headers().get(header::LOCATION).map(|l| l.to_str().unwrap().to_owned());
        (response.status().as_u16(), location)
    }

    #[test]
    fn redirects_keep_host_path_and_query_and_refuse_odd_hosts() {
        let cases = [
            (
                RedirectTo::SamePort,
                "/chat?x=1",
                Some("192.168.1.5:8080"),
                308,
                Some("https://192.168.1.5:8080/chat?x=1"),
            ),
            (RedirectTo::SamePort, "/", Some("Kitsulan.Local"), 308, Some("https://kitsulan.local/")),
            (RedirectTo::SamePort, "/a", Some("[fe80::1]:8080"), 308, Some("https://[fe80::1]:8080/a")),
            (
                RedirectTo::Port(8443),
                "/a",
                Some("kitsulan.local"),
                308,
                Some("https://kitsulan.local:8443/a"),
            ),
            (RedirectTo::Port(443), "/a", Some("kitsulan.local:80"), 308, Some("https://kitsulan.local/a")),
            (RedirectTo::SamePort, "http://pi.local:8080/p", None, 308, Some("https://pi.local:8080/p")),
            (RedirectTo::SamePort, "/", None, 400, None),
            (RedirectTo::SamePort, "/", Some("evil.example@x"), 400, None),
            (RedirectTo::SamePort, "/", Some("a b"), 400, None),
            (RedirectTo::SamePort, "/", Some("host:99999"), 400, None),
            (RedirectTo::SamePort, "/", Some("[not-v6]:80"), 400, None),
        ];
        for (to, uri, host, status, want) in cases {
            let got = location(to, uri, host);
            assert_eq!(got, (status, want.map(str::to_owned)), "{uri} Host: {host:?}");
        }
    }
}
