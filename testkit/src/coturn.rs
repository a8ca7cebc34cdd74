//! coturn's real tools from Debian's `coturn` package, for the relay tests of `kitsulan-turn`
//! and the call tests of `kitsulan-e2e`: [`Uclient`] runs `turnutils_uclient` (a TURN client
//! that allocates, sends through the relay and counts what comes back) and [`Coturn`] runs a
//! `turnserver` with `use-auth-secret` on loopback (the Pro setup); with the free-port and STUN
//! helpers they need. When the tools are missing the calls fail saying so; nothing is skipped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};

/// The TURN realm KitsuLAN uses (and [`Coturn`] is started with).
pub const REALM: &str = "kitsulan";

/// How long one `turnutils_uclient` run may take (a good run takes about 3 s).
const UCLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What uclient prints when the embedded relay refuses credentials (it answers 400, not 401).
pub const REFUSED_BY_EMBEDDED: &str = "error 400";
/// What uclient prints when coturn refuses credentials (401 after the nonce round trip).
pub const REFUSED_BY_COTURN: &str = "Cannot complete Allocation";

/// Finds a coturn tool on `PATH`.
pub fn coturn_tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()).with_context(|| {
        format!(
            "`{name}` is not installed. These tests need Debian's coturn package \
             (`apt-get install coturn`), which ships turnutils_uclient and turnserver."
        )
    })
}

/// What one `turnutils_uclient` run printed and how it ended.
#[derive(Debug)]
pub struct Uclient {
    /// The exit code (`None` when killed at the time limit).
    pub exit_code: Option<i32>,
    /// stdout, then stderr.
    pub output: String,
}

impl Uclient {
    /// Runs `turnutils_uclient -c -X -n 10 -z 5 -y` against `server` with `username` and
    /// `password`: no RTCP, IPv4 relays, 10 packets per session 5 ms apart, the sessions sending
    /// to each other's relayed addresses (so every packet crosses the relay twice). Fails after
    /// 30 s.
    pub async fn run(server: SocketAddr, username: &str, password: &str) -> anyhow::Result<Self> {
        let run = Self::run_with(server, username, password, &["-y"], UCLIENT_TIMEOUT).await?;
        if run.exit_code.is_none() {
            bail!("turnutils_uclient did not finish in {UCLIENT_TIMEOUT:?}:\n{}", run.output);
        }
        Ok(run)
    }

    /// Runs `turnutils_uclient -c -X -n 10 -z 5` with `extra` flags, killing it after `limit`
    /// (then `exit_code` is `None`).
    pub async fn run_with(
        server: SocketAddr,
        username: &str,
        password: &str,
        extra: &[&str],
        limit: Duration,
    ) -> anyhow::Result<Self> {
        let mut args: Vec<String> = ["-c", "-X", "-n", "10", "-z", "5"].map(String::from).to_vec();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.extend([
            "-u".into(),
            username.into(),
            "-w".into(),
            password.into(),
            "-p".into(),
            server.port().to_string(),
            server.ip().to_string(),
        ]);
        let mut child = Command::new(coturn_tool("turnutils_uclient")?)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start turnutils_uclient")?;
        let stdout = tokio::spawn(read_all(child.stdout.take().context("uclient stdout")?));
        let stderr = tokio::spawn(read_all(child.stderr.take().context("uclient stderr")?));
        let exit_code = match timeout(limit, child.wait()).await {
            Ok(status) => status.context("wait for turnutils_uclient")?.code(),
            Err(_) => {
                child.kill().await.context("kill turnutils_uclient")?;
                None
            }
        };
        let mut output = stdout.await?;
        output.push_str(&stderr.await?);
        Ok(Self { exit_code, output })
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

    /// Whether the run allocated, sent packets through the relay and got every one back.
    pub fn relayed(&self) -> bool {
        self.exit_code == Some(0)
            && !self.output.contains("ERROR")
            && matches!(self.totals(), Some((sent, received, 0)) if sent > 0 && received == sent)
    }

    /// Whether the allocation was refused: non-zero exit, nothing relayed, and `marker` printed.
    pub fn refused(&self, marker: &str) -> bool {
        let relayed = matches!(self.totals(), Some((_, received, _)) if received > 0);
        self.exit_code != Some(0) && !relayed && self.output.contains(marker)
    }
}

async fn read_all(mut pipe: impl AsyncRead + Unpin) -> String {
    let mut bytes = Vec::new();
    let _ = pipe.read_to_end(&mut bytes).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A free UDP port on loopback (free at the time of asking).
pub async fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0").await?.local_addr()?.port())
}

/// `len` consecutive UDP ports on loopback, starting at an even port, all free right now.
pub async fn free_port_range(len: u16) -> anyhow::Result<(u16, u16)> {
    for _ in 0..100 {
        let port = free_udp_port().await?;
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
            return Ok((base, end));
        }
    }
    bail!("found no {len} consecutive free UDP ports on loopback in 100 tries")
}

/// Sends STUN Binding requests to `server` until one is answered, for at most `limit`.
pub async fn wait_for_stun(server: SocketAddr, limit: Duration) -> anyhow::Result<bool> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    // RFC 5389 Binding request: type 0x0001, length 0, magic cookie, 12-byte transaction id.
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(b"kitsulane2e!");
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        socket.send_to(&request, server).await?;
        if let Ok(Ok((n, from))) = timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await {
            // A Binding success response (0x0101) echoing our transaction id.
            if from == server && n >= 20 && buf[..2] == [0x01, 0x01] && &buf[8..20] == b"kitsulane2e!" {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A real coturn `turnserver` on loopback checking credentials with `use-auth-secret`
/// (`--allow-loopback-peers`, as only tests on one machine should). Killed on drop; its log is
/// printed if the test is failing.
pub struct Coturn {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    /// Its relay ports (`--min-port`, `--max-port`).
    pub relay_ports: (u16, u16),
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Coturn {
    /// Starts `turnserver` with `secret` on a free loopback port and relay ports, and waits
    /// until it answers STUN.
    pub async fn start(secret: &str) -> anyhow::Result<Self> {
        let tool = coturn_tool("turnserver")?;
        let dir = tempfile::Builder::new().prefix("kitsulan-coturn-").tempdir()?;
        let log = dir.path().join("turnserver.log");
        let port = free_udp_port().await?;
        let (min, max) = free_port_range(20).await?;
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(tool)
            .args([
                "--use-auth-secret".to_owned(),
                format!("--static-auth-secret={secret}"),
                format!("--realm={REALM}"),
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
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .context("start turnserver")?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let coturn = Self { addr, relay_ports: (min, max), child, log, _dir: dir };
        if !wait_for_stun(addr, Duration::from_secs(10)).await? {
            bail!("turnserver did not answer STUN on {addr} within 10 s; log:\n{}", coturn.log_text());
        }
        Ok(coturn)
    }

    /// Everything coturn logged so far.
    pub fn log_text(&self) -> String {
        read_lossy(&self.log)
    }

    /// Whether coturn logged a successful Allocate by `username` (coturn 4.6's wording).
    pub fn allocated_for(&self, username: &str) -> bool {
        self.log_text().contains(&format!("user <{username}>: incoming packet ALLOCATE processed, success"))
    }

    /// Whether coturn logged refusing a request by `username` with 401 (coturn 4.6's wording).
    pub fn refused(&self, username: &str) -> bool {
        self.log_text().contains(&format!("user <{username}>: incoming packet message processed, error 401"))
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
