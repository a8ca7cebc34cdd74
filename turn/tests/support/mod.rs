//! Shared pieces of the TURN integration tests: coturn's real client (`turnutils_uclient`), real
//! server (`turnserver`), free loopback ports, and a STUN readiness probe.
//!
//! The coturn tools come from Debian's `coturn` package. When they are missing the tests fail
//! with a message saying so; they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};

/// How long one `turnutils_uclient` run may take (a good run takes about 3 s).
const UCLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds a coturn tool on `PATH`, or fails the test with how to install it.
pub fn coturn_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed. These tests need Debian's coturn package \
                 (`apt-get install coturn`), which ships turnutils_uclient and turnserver."
        )
    })
}

/// What one `turnutils_uclient` run printed and how it ended.
#[derive(Debug)]
pub struct Uclient {
    pub exit_code: Option<i32>,
    pub output: String,
}

impl Uclient {
    /// Runs `turnutils_uclient` against `server` with `username`/`password` without RTCP
    /// sessions (`-c`), IPv4 relays (`-X`), 10 packets per session 5 ms apart; `extra` adds flags
    /// (`-y`: the sessions send to each other's relayed addresses). Fails the test after 30 s.
    pub async fn run(server: SocketAddr, username: &str, password: &str, extra: &[&str]) -> Self {
        let run = Self::run_for(server, username, password, extra, UCLIENT_TIMEOUT).await;
        assert!(
            run.exit_code.is_some(),
            "turnutils_uclient did not finish in {UCLIENT_TIMEOUT:?}:\n{}",
            run.output
        );
        run
    }

    /// Like [`Uclient::run`], but kills uclient after `limit` (then `exit_code` is `None`).
    pub async fn run_for(
        server: SocketAddr,
        username: &str,
        password: &str,
        extra: &[&str],
        limit: Duration,
    ) -> Self {
        let mut args: Vec<String> = ["-c", "-X", "-n", "10", "-z", "5"].map(String::from).to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend([
            "-u".into(),
            username.into(),
            "-w".into(),
            password.into(),
            "-p".into(),
            server.port().to_string(),
            server.ip().to_string(),
        ]);
        let mut child = Command::new(coturn_tool("turnutils_uclient"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start turnutils_uclient");
        let stdout = tokio::spawn(read_all(child.stdout.take().unwrap()));
        let stderr = tokio::spawn(read_all(child.stderr.take().unwrap()));
        let exit_code = match timeout(limit, child.wait()).await {
            Ok(status) => status.expect("wait for turnutils_uclient").code(),
            Err(_) => {
                child.kill().await.expect("kill turnutils_uclient");
                None
            }
        };
        let mut output = stdout.await.unwrap();
        output.push_str(&stderr.await.unwrap());
        Self { exit_code, output }
    }

    /// `(sent, received, lost)` from the summary lines
    /// `start_mclient: tot_send_msgs=N, tot_recv_msgs=M` and `Total lost packets L (…)`.
    pub fn totals(&self) -> Option<(u64, u64, u64)> {
        let number_after = |key: &str| -> Option<u64> {
            let line = self.output.lines().rev().find(|l| l.contains(key))?;
            let rest = &line[line.find(key)? + key.len()..];
            rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
        };
        Some((
            number_after("tot_send_msgs=")?,
            number_after("tot_recv_msgs=")?,
            number_after("Total lost packets ")?,
        ))
    }

    /// Asserts the run allocated, sent packets through the relay and got every one back.
    pub fn assert_relayed(&self) {
        let totals = self.totals();
        assert!(
            self.exit_code == Some(0)
                && !self.output.contains("ERROR")
                && matches!(totals, Some((sent, received, 0)) if sent > 0 && received == sent),
            "expected turnutils_uclient to relay every packet; exit {:?}, totals (sent, received, lost) \
             {totals:?}, output:\n{}",
            self.exit_code,
            self.output
        );
    }

    /// Asserts the server refused the allocation: uclient exited non-zero, relayed nothing, and
    /// printed `marker` (how it reports the server's answer; see the constants below).
    pub fn assert_refused(&self, marker: &str) {
        let relayed = matches!(self.totals(), Some((_, received, _)) if received > 0);
        assert!(
            self.exit_code != Some(0) && !relayed && self.output.contains(marker),
            "expected the allocation to be refused with {marker:?}; exit {:?}, output:\n{}",
            self.exit_code,
            self.output
        );
    }
}

/// What uclient prints when the `turn` crate refuses credentials (it answers 400, not 401).
pub const REFUSED_BY_EMBEDDED: &str = "error 400";
/// What uclient prints when a relay is full (508 Insufficient Capacity).
pub const RELAY_FULL: &str = "error 508";
/// What uclient prints when coturn refuses credentials (401 after the nonce round trip).
pub const REFUSED_BY_COTURN: &str = "Cannot complete Allocation";

async fn read_all(mut pipe: impl AsyncRead + Unpin) -> String {
    let mut bytes = Vec::new();
    let _ = pipe.read_to_end(&mut bytes).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A free UDP port on loopback (probed; free at the time of asking).
pub async fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port()
}

/// `len` consecutive UDP ports on loopback, starting at an even port, all free right now.
pub async fn free_port_range(len: u16) -> (u16, u16) {
    for _ in 0..100 {
        let port = free_udp_port().await;
        let base = port - port % 2;
        let Some(end) = base.checked_add(len - 1) else { continue };
        if base < 1024 {
            continue;
        }
        let mut held = Vec::new();
        for p in base..=end {
            match UdpSocket::bind(("127.0.0.1", p)).await {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
        if held.len() == usize::from(len) {
            return (base, end);
        }
    }
    panic!("found no {len} consecutive free UDP ports on loopback in 100 tries");
}

/// Sends STUN Binding requests to `server` until one is answered, for at most `limit`.
pub async fn wait_for_stun(server: SocketAddr, limit: Duration) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // RFC 5389 Binding request: type 0x0001, length 0, magic cookie, 12-byte transaction id.
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(b"kitsulantest");
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        socket.send_to(&request, server).await.unwrap();
        if let Ok(Ok((n, from))) = timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await {
            // A Binding success response (0x0101) echoing our transaction id.
            if from == server && n >= 20 && buf[..2] == [0x01, 0x01] && &buf[8..20] == b"kitsulantest" {
                return true;
            }
        }
    }
    false
}

/// A real coturn `turnserver` on loopback, checking credentials with `use-auth-secret`. Killed on
/// drop; its log is printed if the test is failing.
pub struct Coturn {
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Coturn {
    pub async fn start(secret: &str, realm: &str) -> Self {
        let tool = coturn_tool("turnserver");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("turnserver.log");
        let port = free_udp_port().await;
        let (min, max) = free_port_range(20).await;
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(tool)
            .args([
                "--use-auth-secret".to_owned(),
                format!("--static-auth-secret={secret}"),
                format!("--realm={realm}"),
                "--listening-ip=127.0.0.1".to_owned(),
                "--relay-ip=127.0.0.1".to_owned(),
                format!("--listening-port={port}"),
                format!("--min-port={min}"),
                format!("--max-port={max}"),
                "--allow-loopback-peers".to_owned(),
                "--no-cli".to_owned(),
                "--no-tls".to_owned(),
                "--no-dtls".to_owned(),
                "--no-tcp".to_owned(),
                format!("--userdb={}", dir.path().join("turndb").display()),
                format!("--pidfile={}", dir.path().join("turnserver.pid").display()),
                "--log-file=stdout".to_owned(),
                "--verbose".to_owned(),
            ])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("start turnserver");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let coturn = Self { addr, child, log, _dir: dir };
        assert!(
            wait_for_stun(addr, Duration::from_secs(10)).await,
            "turnserver did not answer STUN on {addr} within 10 s; log:\n{}",
            coturn.log_text()
        );
        coturn
    }

    pub fn log_text(&self) -> String {
        read_lossy(&self.log)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!("--- turnserver log ---\n{}\n--- end of turnserver log ---", self.log_text());
        }
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}
