//! Scenarios 4 and 6 on one database: a conversation of many real Megolm messages (sent
//! through `SendMessage`, as fast as acknowledged), then random 50-message history pages from
//! it, then cold starts of the server on that database (process start to `/readyz` 200).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kitsulan_proto::v1::HistoryDirection;

use crate::crowd;
use crate::record::Recorder;
use crate::report::Report;
use crate::target::{How, Target};

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct Args {
    /// Messages in the conversation.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Sends in flight while filling it.
    #[arg(long, default_value_t = 32)]
    pub inflight: usize,
    /// History pages to read.
    #[arg(long, default_value_t = 2000)]
    pub pages: u64,
    /// Messages per page.
    #[arg(long, default_value_t = 50)]
    pub page_size: u32,
    /// Cold starts to time.
    #[arg(long, default_value_t = 5)]
    pub restarts: u32,
}

/// How often the filling refreshes its sessions.
const TOKEN_REFRESH: Duration = Duration::from_secs(300);

pub async fn run(how: &How, args: &Args) -> anyhow::Result<Vec<Report>> {
    anyhow::ensure!(args.messages > u64::from(args.page_size), "need more messages than one page");
    let mut target = Target::start(how).await?;
    let sampler = target.sample(Duration::from_millis(500));
    let idle_rss = target.rss();
    let mut people = crowd::people(target.url(), &crowd::run_tag(), 2, 1, 5).await?;
    let groups = crowd::groups(&people, 2).await?;
    let conversation = groups[0].id.clone();
    let mut reader = people[1].remove(0);
    let mut writer = people[0].remove(0);
    writer.refresh_conversation(&conversation).await?;

    // Filling: the writer encrypts each message and keeps `inflight` sends going.
    let mut filler = crowd::Filler::new(args.inflight, args.messages, "filling the conversation");
    let filling = Instant::now();
    let mut refreshed = Instant::now();
    for n in 0..args.messages {
        // Filling outlasts an access token (15 minutes by default): refresh as apps do.
        if refreshed.elapsed() > TOKEN_REFRESH {
            writer.client.refresh().await?;
            reader.client.refresh().await?;
            refreshed = Instant::now();
        }
        let text = format!("{{\"text\":\"message {n} of the long conversation\"}}");
        let encrypted = writer.prepare_message(&conversation, text.as_bytes()).await?;
        filler.send(writer.client.clone(), encrypted.send_request("")).await?;
    }
    let _fill = filler.finish().await?;
    let fill_took = filling.elapsed();

    // Reading: one page at a time, before a random point.
    let recorder = Arc::new(Recorder::new());
    let mut random = SplitMix(args.messages ^ 0x9e37_79b9_7f4a_7c15);
    let bar = crowd::progress(args.pages, "reading history pages");
    for _ in 0..args.pages {
        let cursor =
            u64::from(args.page_size) + 1 + random.next() % (args.messages - u64::from(args.page_size));
        let started = Instant::now();
        match reader
            .client
            .list_messages(&conversation, cursor, HistoryDirection::Backward, args.page_size)
            .await
        {
            Ok(page) if page.messages.len() == args.page_size as usize => {
                recorder.latency("page", started.elapsed());
            }
            Ok(page) => recorder.error(format!(
                "a page before {cursor} had {} messages, not {}",
                page.messages.len(),
                args.page_size
            )),
            Err(status) => recorder.error(format!("ListMessages: {status}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let params = serde_json::to_value(args)?;
    let mut history = Report::new("history", how.db, params.clone());
    history.set_result("messages", args.messages as f64);
    history.set_result("fill_messages_per_s", args.messages as f64 / fill_took.as_secs_f64());
    if let Some(server) = &target.server {
        history.set_result("data_dir_mib", dir_size(server.data_dir()) as f64 / crate::target::MIB);
    }
    let p99 = recorder.finish().0.get("page").map_or(f64::NAN, |s| s.p99_ms);
    history.goal("p99 per 50-message page", "< 3 ms", format!("{p99:.2} ms"), p99 < 3.0);
    history.finish(&recorder, &sampler, idle_rss);
    drop(sampler);

    // Cold starts on the same database.
    let mut cold = Report::new("cold_start", how.db, params);
    let starts = Arc::new(Recorder::new());
    for _ in 0..args.restarts {
        match target.cold_start().await {
            Ok(took) => starts.latency("start_to_ready", took),
            Err(e) => starts.error(format!("cold start: {e:#}")),
        }
    }
    cold.set_result("messages", args.messages as f64);
    let (summaries, _, _) = starts.finish();
    let median = summaries.get("start_to_ready").map_or(f64::NAN, |s| s.p50_ms);
    cold.goal("process start to /readyz 200 (median)", "< 200 ms", format!("{median:.0} ms"), median < 200.0);
    let after = target.sample(Duration::from_millis(100));
    tokio::time::sleep(Duration::from_millis(500)).await;
    cold.finish(&starts, &after, None);
    Ok(vec![history, cold])
}

/// Bytes under `dir`, recursively.
pub(super) fn dir_size(dir: &std::path::Path) -> u64 {
    kitsulan_client::attachments::files_named(dir, "")
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// SplitMix64: repeatable pseudo-random numbers (where history pages start, which words a cloud
/// message holds), with no dependency.
pub(super) struct SplitMix(pub(super) u64);

impl SplitMix {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49eb_133b_a133);
        z ^ (z >> 31)
    }
}
