//! The scenarios of BENCHMARKS.md, and the smoke run that keeps them all working.

pub mod cloud;
pub mod guild;
pub mod history;
pub mod idle;
pub mod keys;
pub mod messaging;
pub mod signin;
pub mod voice;

use crate::report::Report;
use crate::target::How;

/// Every scenario at a tiny size (a few seconds each), for CI.
pub async fn smoke(how: &How) -> anyhow::Result<Vec<Report>> {
    let fanout =
        messaging::FanoutArgs { accounts: 8, devices: 2, members: 4, senders: 2, rate: 40.0, seconds: 2 };
    let ingest = messaging::IngestArgs { accounts: 4, members: 2, senders: 2, inflight: 2, seconds: 2 };
    let idle = idle::Args { sockets: 60, accounts: 3, hold_seconds: 2 };
    let history = history::Args { messages: 250, inflight: 8, pages: 20, page_size: 50, restarts: 1 };
    let keys = keys::Args { targets: 2, keys_per_target: 60, claimers: 2, concurrency: 4, seconds: 1 };
    let signin = signin::Args { accounts: 8, concurrency: 4, settle_seconds: 1 };
    let cloud = cloud::Args { messages: 300, senders: 2, groups: 2, inflight: 8, searches: 20 };
    let guild = guild::Args { members: 12, online: 6, senders: 2, rate: 20.0, seconds: 2 };
    let voice = voice::Args { sizes: vec![3], slots: 6, seconds: 2 };
    let mut reports = vec![
        messaging::fanout(how, &fanout).await?,
        messaging::ingest(how, &ingest).await?,
        idle::run(how, &idle).await?,
    ];
    reports.extend(history::run(how, &history).await?);
    reports.push(keys::run(how, &keys).await?);
    reports.push(signin::run(how, &signin).await?);
    reports.push(cloud::run(how, &cloud).await?);
    reports.push(guild::run(how, &guild).await?);
    reports.push(voice::run(how, &voice).await?);
    for report in &mut reports {
        report.scenario = format!("smoke-{}", report.scenario);
    }
    Ok(reports)
}
