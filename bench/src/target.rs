//! The server under load: started here (the real `kitsulan` binary, through the client SDK)
//! or already running at `--url`, and a sampler reading its memory and CPU from `/proc`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kitsulan_client::server::{Database, Options, TestServer};
use serde::{Deserialize, Serialize};

use crate::Db;

/// How to get a server for a run.
#[derive(Clone, Debug)]
pub struct How {
    pub db: Db,
    pub server_bin: PathBuf,
    pub url: Option<String>,
    pub pid: Option<u32>,
}

/// A server under load.
pub struct Target {
    /// The server when this program started it.
    pub server: Option<TestServer>,
    url: String,
    pid: Option<u32>,
}

impl Target {
    /// A fresh server (and, for PostgreSQL, a fresh database) with limits meant for people
    /// out of the way (sign-ups), or the server at `--url`.
    pub async fn start(how: &How) -> anyhow::Result<Self> {
        if let Some(url) = &how.url {
            return Ok(Self { server: None, url: url.trim_end_matches('/').to_owned(), pid: how.pid });
        }
        anyhow::ensure!(
            how.server_bin.is_file(),
            "{} does not exist: build it (`cargo build --release -p kitsulan-server`) or pass --server-bin",
            how.server_bin.display()
        );
        let database = match how.db {
            Db::Sqlite => Database::Sqlite,
            Db::Postgres => Database::FreshPostgres,
        };
        let options = kitsulan_client::people::roomy(Options::new(database))
            .binary(how.server_bin.clone())
            .env("KITSULAN_RATE_LIMIT_SIGN_UP", "1000000/1h")
            .env("KITSULAN_RATE_LIMIT_SIGN_IN", "1000000/1h")
            .env("KITSULAN_RATE_LIMIT_REFRESH", "1000000/1h")
            // A crowd of strangers claiming and sending as fast as it can: the limits against
            // draining and flooding are still checked (and cost what they cost), but not hit.
            .env("KITSULAN_RATE_LIMIT_KEY_CLAIMS", "1000000/1h")
            .env("KITSULAN_RATE_LIMIT_KEY_CLAIMS_PER_DEVICE", "1000000/1h")
            .env("KITSULAN_RATE_LIMIT_STRANGER_KEY_CLAIMS", "1000000/1h")
            .env("KITSULAN_TO_DEVICE_PENDING_PER_SENDER", "1000000")
            .env("KITSULAN_TO_DEVICE_STRANGER_PERCENT", "100")
            // Groups as large as a scenario asks for, created as fast as it asks.
            .env("KITSULAN_GROUP_MAX_MEMBERS", "10000")
            .env("KITSULAN_RATE_LIMIT_GROUP_CREATIONS", "1000000/1h")
            // Voice rooms as large as a scenario asks for.
            .env("KITSULAN_SFU_ROOM_MAX", "500")
            .env("KITSULAN_SFU_MAX_PARTICIPANTS", "1000")
            // Warnings only: a log line per request would measure the log, not the server.
            .env("KITSULAN_LOG", "warn,kitsulan_server=info");
        let server = TestServer::start_with(options).await?;
        let url = server.url();
        let pid = server.pid();
        Ok(Self { server: Some(server), url, pid })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Starts sampling the server process every `every`.
    pub fn sample(&self, every: Duration) -> Sampler {
        Sampler::start(self.pid, every)
    }

    /// The server's resident memory now, in bytes (None without a process id).
    pub fn rss(&self) -> Option<u64> {
        self.pid.and_then(|pid| read_process(pid).map(|(rss, _)| rss))
    }

    /// The CPU time the server has used so far, in seconds (None without a process id).
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.pid.and_then(|pid| read_process(pid).map(|(_, ticks)| ticks as f64 / CLOCK_TICKS))
    }

    /// The server's resident memory now and its peak so far (None without a process id).
    pub fn memory(&self) -> Option<Memory> {
        let (hwm_kib, rss_kib) = kitsulan_client::attachments::memory_kib(self.pid?).ok()?;
        Some(Memory { rss: rss_kib * 1024, hwm: hwm_kib * 1024 })
    }

    /// Kills the server and starts it again on the same data; returns the time from starting
    /// the process to the first `/readyz` 200.
    pub async fn cold_start(&mut self) -> anyhow::Result<Duration> {
        let server = self.server.as_mut().context("a cold start needs a server this program started")?;
        server.kill().await?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        let started = Instant::now();
        server.restart().await?;
        let url = format!("{}/readyz", server.url());
        loop {
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "no /readyz 200 within 120 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let took = started.elapsed();
        self.url = server.url();
        self.pid = server.pid();
        Ok(took)
    }
}

/// The server's memory from `/proc/<pid>/status`, bytes.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the highest resident so far.
    pub hwm: u64,
}

/// One reading of the server process.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since sampling started.
    pub t: f64,
    /// Resident memory, MiB.
    pub rss_mib: f64,
    /// CPU time used since the previous sample, as % of one core.
    pub cpu_percent: f64,
    /// The same for this program (client and server share the machine).
    pub bench_cpu_percent: f64,
}

/// Samples `/proc/<pid>` in the background until dropped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: Option<u32>, every: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = pid.map(|pid| {
            let samples = samples.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let own = std::process::id();
                let mut last =
                    (start, read_process(pid).map_or(0, |(_, t)| t), read_process(own).map_or(0, |(_, t)| t));
                let mut ticks = tokio::time::interval(every);
                // The first tick is immediate: a sample over no time at all would be noise.
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    let Some((rss, ticks_used)) = read_process(pid) else { break };
                    let own_ticks = read_process(own).map_or(0, |(_, t)| t);
                    let now = Instant::now();
                    let wall = now.duration_since(last.0).as_secs_f64().max(1e-6);
                    let percent = |used: u64, before: u64| {
                        used.saturating_sub(before) as f64 / CLOCK_TICKS / wall * 100.0
                    };
                    let sample = Sample {
                        t: now.duration_since(start).as_secs_f64(),
                        rss_mib: rss as f64 / MIB,
                        cpu_percent: percent(ticks_used, last.1),
                        bench_cpu_percent: percent(own_ticks, last.2),
                    };
                    last = (now, ticks_used, own_ticks);
                    if let Ok(mut samples) = samples.lock() {
                        samples.push(sample);
                    }
                }
            })
        });
        Self { samples, task }
    }

    /// The samples so far (the first covers the interval after the start).
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Bytes per MiB.
pub const MIB: f64 = 1024.0 * 1024.0;
/// `USER_HZ`: the unit of the CPU times in `/proc/<pid>/stat` (100 on every Linux we run on).
const CLOCK_TICKS: f64 = 100.0;

/// (resident bytes, user + system CPU ticks) of a process, or None once it is gone.
fn read_process(pid: u32) -> Option<(u64, u64)> {
    let (_, rss_kib) = kitsulan_client::attachments::memory_kib(pid).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((rss_kib * 1024, utime + stime))
}
