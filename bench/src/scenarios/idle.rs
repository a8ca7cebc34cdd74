//! Scenario 3: many connected, idle gateway sockets (heartbeats only). The server's resident
//! memory with nobody connected, and what each socket adds.

use std::sync::Arc;
use std::time::Duration;

use crate::crowd::{self, Deliveries, Receivers, Socket};
use crate::record::Recorder;
use crate::report::Report;
use crate::target::{How, MIB, Target};

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct Args {
    /// Gateway sockets to open.
    #[arg(long, default_value_t = 10_000)]
    pub sockets: usize,
    /// People whose devices open them (each device opens sockets/accounts of them, as a person
    /// with the app open in several tabs and on several devices would).
    #[arg(long, default_value_t = 100)]
    pub accounts: usize,
    /// How long to hold them open once all are connected.
    #[arg(long, default_value_t = 30)]
    pub hold_seconds: u64,
}

pub async fn run(how: &How, args: &Args) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.accounts >= 1 && args.sockets >= args.accounts,
        "need at least one socket per account"
    );
    let target = Target::start(how).await?;
    let sampler = target.sample(Duration::from_millis(250));
    // Let start-up work (migrations, the first housekeeping pass) settle before "idle".
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = target.rss();
    let people = crowd::people(target.url(), &crowd::run_tag(), args.accounts, 1, 1).await?;
    let devices: Vec<Socket> = people.iter().flatten().map(Socket::of).collect();
    let sockets: Vec<Socket> = (0..args.sockets).map(|i| devices[i % devices.len()].clone()).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = target.rss();

    let recorder = Arc::new(Recorder::new());
    let deliveries = Arc::new(Deliveries::new(recorder.clone()));
    let receivers = Receivers::connect(target.url(), &sockets, deliveries, recorder.clone()).await?;
    receivers.wait_synced(Duration::from_secs(300)).await?;
    let bar = crowd::SecondsBar::new(args.hold_seconds, "holding sockets");
    tokio::time::sleep(Duration::from_secs(args.hold_seconds)).await;
    drop(bar);
    let after = target.rss();

    let mut report = Report::new("idle", how.db, serde_json::to_value(args)?);
    report.set_result("sockets", args.sockets as f64);
    report.set_result("sockets_alive_at_end", receivers.alive() as f64);
    if let (Some(idle), Some(before), Some(after)) = (idle_rss, before, after) {
        let per_socket = after.saturating_sub(before) as f64 / args.sockets as f64;
        let idle_mib = idle as f64 / MIB;
        report.set_result("rss_idle_mib", idle_mib);
        report.set_result("rss_with_accounts_mib", before as f64 / MIB);
        report.set_result("rss_with_sockets_mib", after as f64 / MIB);
        report.set_result("rss_per_socket_kib", per_socket / 1024.0);
        report.goal("idle RSS", "< 15 MB", format!("{:.1} MB", idle as f64 / 1e6), (idle as f64) < 15e6);
        report.goal("RSS per idle socket", "< 8 KB", format!("{:.1} KB", per_socket / 1e3), per_socket < 8e3);
    }
    let dead = args.sockets - receivers.alive();
    report.goal(
        "sockets alive after holding",
        &format!("{}", args.sockets),
        format!("{}", receivers.alive()),
        dead == 0,
    );
    drop(receivers);
    report.finish(&recorder, &sampler, idle_rss);
    Ok(report)
}
