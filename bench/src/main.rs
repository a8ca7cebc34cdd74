//! `kitsulan-bench`: the load generator. It starts the real `kitsulan` binary (or targets a
//! running one), makes accounts and devices with the client SDK (`kitsulan-client`), opens gateway
//! sockets and sends real Megolm-encrypted messages, and records latency histograms, rates,
//! errors and the server's memory and CPU (from `/proc`). Each run writes a JSON report and an
//! SVG plot; `report` turns the JSON files into the tables of BENCHMARKS.md.
//!
//! - [`target`]: the server under load and its `/proc` samples.
//! - [`crowd`]: accounts, devices, conversations and gateway receivers.
//! - [`record`]: latency histograms over time.
//! - [`report`]: the report of a run, the summary, the plot and the Markdown tables.
//! - [`scenarios`]: what each scenario does.

mod crowd;
mod record;
mod report;
mod scenarios;
mod target;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

/// Load generator and benchmarks for KitsuLAN.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The databases to run each scenario on (a fresh server and database per run).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite", global = true)]
    db: Vec<Db>,
    /// Where the JSON reports and SVG plots go.
    #[arg(long, default_value = "bench-results", global = true)]
    out: PathBuf,
    /// The `kitsulan` binary to start (default: the one beside this program).
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    /// Load a server that is already running (`http://host:port`) instead of starting one;
    /// `--db` is then only a label and nothing is restarted.
    #[arg(long, global = true)]
    url: Option<String>,
    /// With `--url`: the server's process id, for memory and CPU samples from /proc.
    #[arg(long, global = true)]
    pid: Option<u32>,
    #[command(subcommand)]
    scenario: Scenario,
}

/// A database the server can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Db {
    /// SQLite in the data dir (Lite).
    Sqlite,
    /// A fresh database on the local PostgreSQL (Pro).
    Postgres,
}

impl Db {
    fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        }
    }
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// 1. Fan-out: many connected devices, conversations of many members, a fixed send rate.
    Fanout(scenarios::messaging::FanoutArgs),
    /// 2. Ingest: as many messages per second as the server acknowledges (after commit).
    Ingest(scenarios::messaging::IngestArgs),
    /// 3. Idle: many connected, idle gateway sockets; the server's memory per socket.
    Idle(scenarios::idle::Args),
    /// 4 and 6. History pages from one long conversation, then cold starts on that database.
    History(scenarios::history::Args),
    /// 5. One-time key claims per second under concurrency.
    Keys(scenarios::keys::Args),
    /// 7. A burst of sign-ups and sign-ins; the server's memory before, at the peak and after.
    SigninBurst(scenarios::signin::Args),
    /// 8. Cloud ingest, then full-text search latency over what was sent.
    Cloud(scenarios::cloud::Args),
    /// 9. A big guild: members online, a few posting in one channel at a fixed rate.
    Guild(scenarios::guild::Args),
    /// 10. Voice rooms through the SFU: CPU per forwarded stream, forwarding delay, losses.
    Voice(scenarios::voice::Args),
    /// Every scenario at a tiny size, failing on any error or loss (CI runs this).
    Smoke,
    /// Renders the JSON reports in `--out` as the results section of a Markdown file
    /// (between `<!-- bench:begin -->` and `<!-- bench:end -->`).
    Report {
        /// The Markdown file to update.
        #[arg(long, default_value = "BENCHMARKS.md")]
        into: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;
    if let Scenario::Report { into } = &cli.scenario {
        return report::update_markdown(&cli.out, into);
    }
    let server_bin = match &cli.server_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory around this program")?
            .join(format!("kitsulan{}", std::env::consts::EXE_SUFFIX)),
    };
    let mut failures = Vec::new();
    for &db in &cli.db {
        let how = target::How { db, server_bin: server_bin.clone(), url: cli.url.clone(), pid: cli.pid };
        let reports = match &cli.scenario {
            Scenario::Fanout(args) => vec![scenarios::messaging::fanout(&how, args).await?],
            Scenario::Ingest(args) => vec![scenarios::messaging::ingest(&how, args).await?],
            Scenario::Idle(args) => vec![scenarios::idle::run(&how, args).await?],
            Scenario::History(args) => scenarios::history::run(&how, args).await?,
            Scenario::Keys(args) => vec![scenarios::keys::run(&how, args).await?],
            Scenario::SigninBurst(args) => vec![scenarios::signin::run(&how, args).await?],
            Scenario::Cloud(args) => vec![scenarios::cloud::run(&how, args).await?],
            Scenario::Guild(args) => vec![scenarios::guild::run(&how, args).await?],
            Scenario::Voice(args) => vec![scenarios::voice::run(&how, args).await?],
            Scenario::Smoke => scenarios::smoke(&how).await?,
            Scenario::Report { .. } => Vec::new(),
        };
        for report in reports {
            report.print();
            report.save(&cli.out)?;
            if matches!(cli.scenario, Scenario::Smoke) {
                failures.extend(report.smoke_failures());
            }
        }
    }
    anyhow::ensure!(failures.is_empty(), "the smoke run found problems:\n- {}", failures.join("\n- "));
    Ok(())
}
