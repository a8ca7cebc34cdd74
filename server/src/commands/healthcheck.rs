//! `kitsulan healthcheck`: `GET /readyz` on the local server over loopback, for a container's
//! HEALTHCHECK (the image has no shell and no curl). Exit 0 when it answers 200, else 1 with one
//! line saying why.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::config::HealthcheckArgs;

pub async fn run(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let addr = target(args.admin_listen.unwrap_or(args.listen));
    let timeout = Duration::from_secs(args.timeout_seconds);
    let status = tokio::time::timeout(timeout, ask(addr))
        .await
        .with_context(|| format!("no answer from http://{addr}/readyz within {}s", timeout.as_secs()))??;
    if status != 200 {
        bail!("http://{addr}/readyz answered {status}: not ready");
    }
    Ok(())
}

/// Where to ask: the listen address, with an unspecified IP replaced by loopback.
fn target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// One HTTP/1.1 request; the status code of the answer.
async fn ask(addr: SocketAddr) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    // The status line is all that is needed; /readyz answers a few bytes.
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    status_of(&head).with_context(|| format!("{addr} did not answer HTTP"))
}

/// `HTTP/1.1 200 OK` → 200.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\r').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_asked_on_loopback() {
        let at = |text: &str| text.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(target(at("0.0.0.0:8080")), at("127.0.0.1:8080"));
        assert_eq!(target(at("[::]:80")), at("[::1]:80"));
        assert_eq!(target(at("10.1.2.3:9090")), at("10.1.2.3:9090"));
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"), Some(200));
        assert_eq!(status_of(b"HTTP/1.1 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b""), None);
    }
}
