//! Scenario 5: one-time key claims per second. Target devices upload real one-time keys
//! (vodozemac, signed); many concurrent `ClaimKeys` calls then take them, one device per call,
//! as a client starting an Olm session with a new device does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kitsulan_proto::v1::ClaimKeysRequest;
use tokio::task::JoinSet;

use crate::crowd;
use crate::record::Recorder;
use crate::report::Report;
use crate::target::{How, Target};

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct Args {
    /// Devices whose keys are claimed.
    #[arg(long, default_value_t = 100)]
    pub targets: usize,
    /// One-time keys each target uploads (the server keeps at most 1,000 per device).
    #[arg(long, default_value_t = 1000)]
    pub keys_per_target: usize,
    /// Devices claiming.
    #[arg(long, default_value_t = 16)]
    pub claimers: usize,
    /// Claims in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to claim.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

/// Keys a device uploads at once (vodozemac keeps at most 50 unpublished).
const UPLOAD_BATCH: usize = 50;

pub async fn run(how: &How, args: &Args) -> anyhow::Result<Report> {
    let target = Target::start(how).await?;
    let sampler = target.sample(Duration::from_millis(250));
    let idle_rss = target.rss();
    let tag = crowd::run_tag();
    let mut targets = crowd::people(target.url(), &format!("{tag}t"), args.targets, 1, 0).await?;
    let bar = crowd::progress((args.targets * args.keys_per_target) as u64, "uploading one-time keys");
    let mut uploading = JoinSet::new();
    for mut device in targets.drain(..).flatten() {
        let (bar, total) = (bar.clone(), args.keys_per_target);
        uploading.spawn(async move {
            let mut done = 0;
            while done < total {
                let n = UPLOAD_BATCH.min(total - done);
                device.upload_keys(n).await?;
                done += n;
                bar.inc(n as u64);
            }
            anyhow::Ok(device.device_id().to_owned())
        });
    }
    let mut target_ids = Vec::new();
    while let Some(done) = uploading.join_next().await {
        target_ids.push(done??);
    }
    bar.finish_and_clear();
    let claimers = crowd::people(target.url(), &format!("{tag}c"), args.claimers, 1, 1).await?;
    let clients: Vec<_> = claimers.iter().flatten().map(|d| d.client.clone()).collect();

    let recorder = Arc::new(Recorder::new());
    let claimed = Arc::new(AtomicU64::new(0));
    let fallbacks = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let target_ids = Arc::new(target_ids);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let clock = Instant::now();
    let bar = crowd::SecondsBar::new(args.seconds, "claiming");
    let mut claiming = JoinSet::new();
    for n in 0..args.concurrency {
        let client = clients[n % clients.len()].clone();
        let (recorder, claimed, fallbacks, next, target_ids) =
            (recorder.clone(), claimed.clone(), fallbacks.clone(), next.clone(), target_ids.clone());
        claiming.spawn(async move {
            while Instant::now() < until {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % target_ids.len();
                let request = ClaimKeysRequest { device_ids: vec![target_ids[i].clone()] };
                let started = Instant::now();
                match client.keys().claim_keys(request).await {
                    Ok(response) => {
                        recorder.latency("claim", started.elapsed());
                        for key in response.into_inner().keys {
                            claimed.fetch_add(1, Ordering::Relaxed);
                            if key.fallback {
                                fallbacks.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(status) => recorder.error(format!("ClaimKeys: {status}")),
                }
            }
        });
    }
    while claiming.join_next().await.is_some() {}
    drop(bar);
    let took = clock.elapsed().as_secs_f64();

    let claimed = claimed.load(Ordering::Relaxed) as f64;
    let fallbacks = fallbacks.load(Ordering::Relaxed) as f64;
    let mut report = Report::new("keys", how.db, serde_json::to_value(args)?);
    report.set_result("claims", claimed);
    report.set_result("claims_per_s", claimed / took);
    report.set_result("one_time_claims_per_s", (claimed - fallbacks) / took);
    report.set_result("fallback_claims", fallbacks);
    let rate = (claimed - fallbacks) / took;
    report.goal("one-time key claims per second", ">= 10000", format!("{rate:.0}"), rate >= 10_000.0);
    report.finish(&recorder, &sampler, idle_rss);
    Ok(report)
}
