//! `kitsulan admin …` run the way an operator runs it beside a [`TestServer`]: the same binary,
//! the same data dir and `DATABASE_URL`, the same settings, while the server keeps serving.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::TestServer;
use crate::server::binary;

/// What one `kitsulan` command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// The command line after `kitsulan`, for messages.
    pub args: Vec<String>,
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Fails unless it exited with 0; returns itself for chaining.
    pub fn ok(self) -> anyhow::Result<Self> {
        if !self.success() {
            bail!(
                "`kitsulan {}` failed ({:?}):\n{}\n{}",
                self.args.join(" "),
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }

    /// Standard output parsed as JSON (for `--json`).
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(self.stdout.trim()).with_context(|| {
            format!(
                "`kitsulan {}` did not print JSON:\n{}\n{}",
                self.args.join(" "),
                self.stdout,
                self.stderr
            )
        })
    }
}

/// Runs `kitsulan ARGS` with exactly `env` (nothing from the developer's shell), in `dir`,
/// feeding `stdin` and waiting up to 60 s.
pub async fn run(
    args: &[&str],
    env: &[(String, String)],
    dir: &std::path::Path,
    stdin: Option<&str>,
) -> anyhow::Result<Output> {
    let mut cmd = Command::new(binary()?);
    for (key, _) in std::env::vars() {
        if key.starts_with("KITSULAN_") || key == "DATABASE_URL" {
            cmd.env_remove(&key);
        }
    }
    cmd.args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("cannot start kitsulan")?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await?;
        pipe.shutdown().await?;
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .with_context(|| format!("`kitsulan {}` did not finish within 60 s", args.join(" ")))??;
    Ok(Output {
        args: args.iter().map(|&a| a.to_owned()).collect(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

impl TestServer {
    /// The environment `kitsulan admin` gets: the server's data dir, database and settings.
    fn admin_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("KITSULAN_DATA_DIR".to_owned(), self.data_dir().display().to_string()),
            ("KITSULAN_LOG_FORMAT".to_owned(), "json".to_owned()),
        ];
        if let Some(url) = &self.database_url {
            env.push(("DATABASE_URL".to_owned(), url.clone()));
        }
        env.extend(self.env.iter().cloned());
        env
    }

    /// Runs `kitsulan admin ARGS` against this server's database; see [`Output`].
    pub async fn admin(&self, args: &[&str]) -> anyhow::Result<Output> {
        let args: Vec<&str> = std::iter::once("admin").chain(args.iter().copied()).collect();
        run(&args, &self.admin_env(), self.data_dir(), None).await
    }

    /// [`Self::admin`] with `stdin` fed to the command (e.g. `--password-stdin`).
    pub async fn admin_with_stdin(&self, args: &[&str], stdin: &str) -> anyhow::Result<Output> {
        let args: Vec<&str> = std::iter::once("admin").chain(args.iter().copied()).collect();
        run(&args, &self.admin_env(), self.data_dir(), Some(stdin)).await
    }
}
