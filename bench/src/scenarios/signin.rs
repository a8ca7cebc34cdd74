//! Scenario 7: a burst of sign-ups and sign-ins, as at a LAN party where everyone signs up in
//! the first minute. Each one is an Argon2id hash (19 MiB) on the server; what matters is the
//! server's resident memory before, at the peak and a while after (a 1 GB Raspberry Pi must
//! not be taken down, and the memory must come back).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kitsulan_client::client::Client;
use kitsulan_client::people::PASSWORD;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::crowd;
use crate::record::Recorder;
use crate::report::Report;
use crate::target::{How, MIB, Target};

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct Args {
    /// Accounts to sign up, then sign in once each.
    #[arg(long, default_value_t = 200)]
    pub accounts: usize,
    /// Sign-ups (then sign-ins) in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// How long to wait after the burst before reading the memory again.
    #[arg(long, default_value_t = 10)]
    pub settle_seconds: u64,
}

#[derive(Clone, Copy)]
enum Step {
    SignUp,
    SignIn,
}

pub async fn run(how: &How, args: &Args) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.accounts >= 1 && args.concurrency >= 1,
        "need at least one account and one in flight"
    );
    let target = Target::start(how).await?;
    let sampler = target.sample(Duration::from_millis(100));
    // Let start-up work settle before "before".
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = target.memory();
    let recorder = Arc::new(Recorder::new());
    let tag = crowd::run_tag();
    let clock = Instant::now();
    burst(target.url(), &tag, args, Step::SignUp, &recorder).await?;
    let sign_ups_took = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    burst(target.url(), &tag, args, Step::SignIn, &recorder).await?;
    let sign_ins_took = clock.elapsed().as_secs_f64();
    let at_end = target.memory();
    let bar = crowd::SecondsBar::new(args.settle_seconds, "settling");
    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    drop(bar);
    let after = target.memory();

    let mut report = Report::new("signin_burst", how.db, serde_json::to_value(args)?);
    report.set_result("sign_ups_per_s", args.accounts as f64 / sign_ups_took);
    report.set_result("sign_ins_per_s", args.accounts as f64 / sign_ins_took);
    report.finish(&recorder, &sampler, before.map(|m| m.rss));
    let sampled_peak = report.server.rss_peak_mib;
    if let (Some(before), Some(at_end), Some(after)) = (before, at_end, after) {
        // The peak: the highest sample, or the kernel's high-water mark if a sample missed it.
        let peak = (at_end.hwm as f64 / MIB).max(sampled_peak);
        let after_mib = after.rss as f64 / MIB;
        report.set_result("rss_before_mib", before.rss as f64 / MIB);
        report.set_result("rss_peak_mib", peak);
        report.set_result("rss_at_end_of_burst_mib", at_end.rss as f64 / MIB);
        report.set_result("rss_after_settle_mib", after_mib);
        report.goal(
            &format!("RSS {} s after {} sign-ups and sign-ins", args.settle_seconds, args.accounts),
            "<= 64 MiB",
            format!("{after_mib:.1} MiB (peak {peak:.1}, before {:.1})", before.rss as f64 / MIB),
            after_mib <= 64.0,
        );
    }
    report.goal(
        "sign-ups and sign-ins that failed",
        "0",
        report.errors.count.to_string(),
        report.errors.count == 0,
    );
    Ok(report)
}

/// Signs up (or in) `{tag}-0` … `{tag}-N`, `concurrency` at a time, each on its own connection
/// (as many phones would).
async fn burst(
    url: &str,
    tag: &str,
    args: &Args,
    step: Step,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<()> {
    let what = match step {
        Step::SignUp => "signing up",
        Step::SignIn => "signing in",
    };
    let bar = crowd::progress(args.accounts as u64, what);
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = JoinSet::new();
    for i in 0..args.accounts {
        let (url, username, permits, bar, recorder) =
            (url.to_owned(), format!("{tag}-{i}"), permits.clone(), bar.clone(), recorder.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let mut client = Client::connect(&url).await?;
            let started = Instant::now();
            let outcome = match step {
                Step::SignUp => client.sign_up(&username, PASSWORD).await,
                Step::SignIn => client.sign_in(&username, PASSWORD).await,
            };
            match (outcome, step) {
                (Ok(_), Step::SignUp) => recorder.latency("sign_up", started.elapsed()),
                (Ok(_), Step::SignIn) => recorder.latency("sign_in", started.elapsed()),
                (Err(status), _) => recorder.error(format!("{username}: {status}")),
            }
            bar.inc(1);
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    bar.finish_and_clear();
    Ok(())
}
