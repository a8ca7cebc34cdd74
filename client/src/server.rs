//! [`TestServer`]: the real `kitsulan` binary, started on `127.0.0.1:0` with a temporary data
//! dir, ready once it logs the address it listens on, killed when dropped. Its log is kept and
//! printed if the test fails. [`TestServer::kill`] stops it with SIGKILL and
//! [`TestServer::restart`] starts it again on the same data dir and database (on a new port:
//! clients reconnect to the new [`TestServer::url`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::postgres::TestDatabase;
use crate::smtp::SmtpSink;

/// Which database the server under test uses.
pub enum Database {
    /// SQLite in the server's data dir (the Lite default: no `DATABASE_URL`).
    Sqlite,
    /// A fresh PostgreSQL database created for this server.
    FreshPostgres,
    /// A given `DATABASE_URL` (e.g. through a proxy the test controls).
    Url(String),
}

/// A running `kitsulan serve`.
pub struct TestServer {
    child: Child,
    addr: SocketAddr,
    data_dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
    /// `DATABASE_URL` when not SQLite, and the test's settings: `kitsulan admin` gets the same.
    pub(crate) database_url: Option<String>,
    pub(crate) env: Vec<(String, String)>,
    /// The arguments after `serve`, for a restart.
    args: Vec<String>,
    /// The `kitsulan` binary, for a restart.
    binary: PathBuf,
    /// The program it runs under, if any, for a restart.
    launcher: Option<Launcher>,
    /// Index in `log` of the first line of the current process.
    log_from: usize,
    _database: Option<TestDatabase>,
}

/// Where the `kitsulan` binary is: `KITSULAN_BIN`, else next to this test's `deps/` directory.
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("KITSULAN_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot find the target directory from the test executable")?;
    let bin = profile_dir.join(format!("kitsulan{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "{} does not exist: build it first (`cargo build -p kitsulan-server`) or set KITSULAN_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// How to start a [`TestServer`]; `Options::new(db)` plus what the test needs.
pub struct Options {
    database: Database,
    env: Vec<(String, String)>,
    args: Vec<String>,
    dotenv: Option<String>,
    binary: Option<PathBuf>,
    launcher: Option<Launcher>,
}

/// A program the `kitsulan` binary runs under (an emulator), with its arguments before the
/// binary's path.
#[derive(Clone)]
struct Launcher {
    program: PathBuf,
    args: Vec<String>,
}

impl Options {
    /// A server on `database` with nothing else set.
    pub fn new(database: Database) -> Self {
        Self { database, env: Vec::new(), args: Vec::new(), dotenv: None, binary: None, launcher: None }
    }

    /// Sets an environment variable for the server.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds a command-line argument after `serve`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Runs this `kitsulan` binary instead of the one [`binary`] finds (the load generator
    /// starts the release build beside itself).
    pub fn binary(mut self, path: PathBuf) -> Self {
        self.binary = Some(path);
        self
    }

    /// Runs the binary under `program` (`program ARGS… BINARY serve …`): the arm64 build under
    /// `qemu-aarch64 -L /usr/aarch64-linux-gnu`.
    pub fn under(mut self, program: PathBuf, args: &[&str]) -> Self {
        self.launcher = Some(Launcher { program, args: args.iter().map(|&a| a.to_owned()).collect() });
        self
    }

    /// Writes a `.env` file with this content into the server's working directory.
    pub fn dotenv(mut self, content: &str) -> Self {
        self.dotenv = Some(content.to_owned());
        self
    }
}

impl Options {
    /// Points the server's email at `sink`: plain SMTP (no TLS, no login) on 127.0.0.1.
    pub fn smtp(self, sink: &SmtpSink) -> Self {
        self.env("KITSULAN_SMTP_HOST", "127.0.0.1")
            .env("KITSULAN_SMTP_PORT", &sink.port().to_string())
            .env("KITSULAN_SMTP_TLS", "none")
            .env("KITSULAN_SMTP_FROM", "KitsuLAN <noreply@kitsulan.test>")
    }
}

impl TestServer {
    /// Starts a server on the given database with no other settings.
    pub async fn start(database: Database) -> anyhow::Result<Self> {
        Self::start_with(Options::new(database)).await
    }

    /// Starts a server as `options` say and waits until it listens.
    pub async fn start_with(options: Options) -> anyhow::Result<Self> {
        let data_dir = tempfile::Builder::new().prefix("kitsulan-test-").tempdir()?;
        if let Some(content) = &options.dotenv {
            std::fs::write(data_dir.path().join(".env"), content)?;
        }
        let (url, owned) = match options.database {
            Database::Sqlite => (None, None),
            Database::FreshPostgres => {
                let db = TestDatabase::create().await?;
                (Some(db.url().to_owned()), Some(db))
            }
            Database::Url(ref url) => (Some(url.clone()), None),
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let binary = match options.binary {
            Some(path) => path,
            None => binary()?,
        };
        let child = spawn(
            &binary,
            options.launcher.as_ref(),
            data_dir.path(),
            url.as_deref(),
            &options.args,
            &options.env,
            &log,
        )?;
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            log,
            database_url: url,
            env: options.env,
            args: options.args,
            binary,
            launcher: options.launcher,
            log_from: 0,
            _database: owned,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Kills the process with SIGKILL (no shutdown at all, as `kill -9` does) and waits until
    /// it is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            self.child.start_kill().context("kill -9 kitsulan")?;
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("kitsulan did not die within 30 s of SIGKILL")??;
        Ok(())
    }

    /// Starts the server again (after [`Self::kill`], or killing it first if it still runs) on
    /// the same data dir, database and settings, and waits until it listens. It gets a new
    /// port: [`Self::url`] changes.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        if let Ok(mut log) = self.log.lock() {
            log.push("---- restarted by the test ----".to_owned());
            self.log_from = log.len();
        }
        self.child = spawn(
            &self.binary,
            self.launcher.as_ref(),
            self.data_dir.path(),
            self.database_url.as_deref(),
            &self.args,
            &self.env,
            &self.log,
        )?;
        self.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        self.wait_ready().await
    }

    /// `DATABASE_URL` of the server (`None` for SQLite): a second node shares it.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    /// Waits for the "listening" log line and takes the address from it.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let listening = self.log.lock().ok().and_then(|log| {
                log.iter()
                    .skip(self.log_from)
                    .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                    .find_map(|event| {
                        (event.get("message")?.as_str()? == "listening")
                            .then(|| event.get("addr")?.as_str()?.parse().ok())
                            .flatten()
                    })
            });
            if let Some(addr) = listening {
                self.addr = addr;
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("kitsulan exited before it was ready ({status}):\n{}", self.log_text());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("kitsulan did not get ready within 60 s:\n{}", self.log_text());
            }
            // Often enough that the load generator's cold-start timing is not dominated by it.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The first JSON log event for which `pick` returns something.
    pub fn find_log<T>(&self, pick: impl Fn(&serde_json::Value) -> Option<T>) -> Option<T> {
        let log = self.log.lock().ok()?;
        log.iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find_map(|event| pick(&event))
    }

    /// Everything the server has printed so far.
    pub fn log_text(&self) -> String {
        self.log.lock().map(|log| log.join("\n")).unwrap_or_default()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A gRPC (HTTP/2) channel to the server.
    pub async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        Ok(tonic::transport::Channel::from_shared(self.url())?.connect().await?)
    }

    /// The server's data dir.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Sends SIGTERM (a polite stop, as service managers do).
    pub fn terminate(&self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the server has already exited")?;
        let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        Ok(())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .with_context(|| format!("kitsulan did not exit within {timeout:?}:\n{}", self.log_text()))?
            .context("waiting for kitsulan")
    }
}

/// Starts `kitsulan serve` (under `launcher`, if given) in `data_dir` with exactly the given settings (nothing from the
/// developer's shell), its output collected into `log`.
fn spawn(
    binary: &Path,
    launcher: Option<&Launcher>,
    data_dir: &Path,
    url: Option<&str>,
    args: &[String],
    env: &[(String, String)],
    log: &Arc<Mutex<Vec<String>>>,
) -> anyhow::Result<Child> {
    let mut cmd = match launcher {
        Some(launcher) => {
            let mut cmd = Command::new(&launcher.program);
            cmd.args(&launcher.args).arg(binary);
            cmd
        }
        None => Command::new(binary),
    };
    // Settings from the developer's shell must not leak into the server under test.
    for (key, _) in std::env::vars() {
        if key.starts_with("KITSULAN_") || key == "DATABASE_URL" {
            cmd.env_remove(&key);
        }
    }
    cmd.arg("serve")
        .args(args)
        // The data dir is the working directory: a `.env` there is the server's own.
        .current_dir(data_dir)
        .env("KITSULAN_DATA_DIR", data_dir)
        .env("KITSULAN_LISTEN", "127.0.0.1:0")
        // The embedded TURN relay: any free UDP port on loopback, so servers run side by side.
        .env("KITSULAN_TURN_LISTEN", "127.0.0.1:0")
        // The SFU likewise, on loopback where the test's participants are.
        .env("KITSULAN_SFU_LISTEN", "127.0.0.1:0")
        .env("KITSULAN_LOG_FORMAT", "json")
        .env("KITSULAN_LOG", "info")
        .env("KITSULAN_SHUTDOWN_GRACE_SECONDS", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(url) = url {
        cmd.env("DATABASE_URL", url);
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn().context("cannot start kitsulan")?;
    let streams: [Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>; 2] =
        [child.stderr.take().map(|s| Box::new(s) as _), child.stdout.take().map(|s| Box::new(s) as _)];
    for stream in streams.into_iter().flatten() {
        let log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut log) = log.lock() {
                    log.push(line);
                }
            }
        });
    }
    Ok(child)
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!("---- kitsulan log ({}) ----\n{}\n---- end of log ----", self.addr, self.log_text());
        }
    }
}
