//! Scenario 8 on one database: cloud ingest and search. Cloud groups of a few people receive
//! many cloud messages (each a sentence of Russian and English words, sent through
//! `SendMessage` as fast as acknowledged, so every one is committed and indexed), then random
//! searches for an inflected form of a word (`SearchMessages`, the first page of 20 hits) run
//! one at a time, across every conversation and within the group.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kitsulan_client::people::cloud_text;

use crate::crowd;
use crate::record::Recorder;
use crate::report::Report;
use crate::target::{How, Target};

use super::history::SplitMix;

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct Args {
    /// Cloud messages to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// People sending them (members of every group).
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// Cloud groups the messages are spread over (as on a server with many conversations; one
    /// conversation takes its sends one at a time).
    #[arg(long, default_value_t = 10)]
    pub groups: usize,
    /// Sends in flight.
    #[arg(long, default_value_t = 32)]
    pub inflight: usize,
    /// Searches to time.
    #[arg(long, default_value_t = 2000)]
    pub searches: u64,
}

/// How often the filling refreshes its sessions.
const TOKEN_REFRESH: Duration = Duration::from_secs(300);

/// Words the messages are made of, each as written in a message and as searched for (another
/// inflected form: Russian cases and English tenses, so only stemming finds them).
const WORDS: [(&str, &str); 24] = [
    ("кошку", "кошками"),
    ("сервер", "серверами"),
    ("турнира", "турнир"),
    ("пиццу", "пиццы"),
    ("клавиатуры", "клавиатура"),
    ("провода", "проводами"),
    ("команде", "команды"),
    ("победили", "победа"),
    ("играли", "играть"),
    ("карты", "картой"),
    ("коммутатор", "коммутатора"),
    ("ночью", "ночь"),
    ("running", "runs"),
    ("servers", "server"),
    ("played", "playing"),
    ("cables", "cable"),
    ("matches", "match"),
    ("winners", "winner"),
    ("connected", "connecting"),
    ("drivers", "driver"),
    ("maps", "map"),
    ("switches", "switch"),
    ("teams", "team"),
    ("tournaments", "tournament"),
];

/// Filler between the searched words (found by nothing the searches ask for).
const FILLER: [&str; 8] = ["и", "the", "на", "with", "мы", "a", "у", "for"];

fn sentence(random: &mut SplitMix, n: u64) -> String {
    let mut words = Vec::with_capacity(9);
    for i in 0..8 {
        let r = random.next();
        words.push(if i % 2 == 0 { WORDS[(r % 24) as usize].0 } else { FILLER[(r % 8) as usize] });
    }
    format!("{} #{n}", words.join(" "))
}

pub async fn run(how: &How, args: &Args) -> anyhow::Result<Report> {
    anyhow::ensure!(args.senders >= 2, "a group needs at least two people");
    let target = Target::start(how).await?;
    let sampler = target.sample(Duration::from_millis(500));
    let idle_rss = target.rss();
    let people = crowd::people(target.url(), &crowd::run_tag(), args.senders, 1, 5).await?;
    let mut clients: Vec<kitsulan_client::Client> = people.iter().map(|p| p[0].client.clone()).collect();
    let others: Vec<&str> = people[1..].iter().map(|p| p[0].account_id()).collect();
    let mut groups = Vec::with_capacity(args.groups.max(1));
    for n in 0..args.groups.max(1) {
        let group = clients[0].create_cloud_group(&format!("Bench cloud {n}"), &others).await?;
        for client in &clients[1..] {
            client.accept_if_request(&group.id).await?;
        }
        groups.push(group.id);
    }

    // Filling: `inflight` sends going, round-robin over the senders.
    let mut filler = crowd::Filler::new(args.inflight, args.messages, "sending cloud messages");
    let mut random = SplitMix(0x5eed);
    let filling = Instant::now();
    let mut refreshed = Instant::now();
    for n in 0..args.messages {
        if refreshed.elapsed() > TOKEN_REFRESH {
            for client in &mut clients {
                client.refresh().await?;
            }
            refreshed = Instant::now();
        }
        let request = cloud_text(&groups[(n as usize) % groups.len()], &sentence(&mut random, n));
        filler.send(clients[(n as usize) % clients.len()].clone(), request).await?;
    }
    let fill = filler.finish().await?;
    let fill_took = filling.elapsed();
    if let Some(url) = target.server.as_ref().and_then(|s| s.database_url()) {
        stand_in_for_autovacuum(url).await?;
    }
    for client in &mut clients {
        client.refresh().await?;
    }

    // Searching: one at a time, an inflected form of one or two words, everywhere and in the
    // group; every search must find something (each word is in about 1/6 of the messages).
    let recorder = Arc::new(Recorder::new());
    let bar = crowd::progress(args.searches, "searching");
    let reader = &clients[1];
    for i in 0..args.searches {
        let first = WORDS[(random.next() % 24) as usize].1;
        let query = if i % 2 == 0 {
            first.to_owned()
        } else {
            format!("{first} {}", WORDS[(random.next() % 24) as usize].1)
        };
        let within = if i % 3 == 0 { groups[0].as_str() } else { "" };
        let started = Instant::now();
        match reader.search_messages(&query, within).await {
            Ok(page) if !page.hits.is_empty() => recorder.latency("search", started.elapsed()),
            Ok(_) => recorder.error(format!("{query:?} found nothing")),
            Err(status) => recorder.error(format!("SearchMessages {query:?}: {status}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let mut report = Report::new("cloud", how.db, serde_json::to_value(args)?);
    report.set_result("messages", args.messages as f64);
    report.set_result("ingest_messages_per_s", args.messages as f64 / fill_took.as_secs_f64());
    if let Some(server) = &target.server {
        report.set_result(
            "data_dir_mib",
            super::history::dir_size(server.data_dir()) as f64 / crate::target::MIB,
        );
    }
    let p99 = recorder.finish().0.get("search").map_or(f64::NAN, |s| s.p99_ms);
    report.goal("p99 per search (first 20 hits)", "< 100 ms", format!("{p99:.1} ms"), p99 < 100.0);
    let fill_summary = fill.finish().0;
    if let Some(ack) = fill_summary.get("send_to_ack") {
        report.set_result("send_to_ack_p99_ms", ack.p99_ms);
    }
    report.finish(&recorder, &sampler, idle_rss);
    Ok(report)
}

/// PostgreSQL plans from statistics its autovacuum gathers as a table grows. On by default and
/// in every deployment, it may be off on a test machine (this one's is): then nothing has
/// analyzed the million messages, the planner takes the table for empty, and a search that
/// walks the newest messages and stops at its page sorts every match instead (about 1 s rather
/// than a few ms). So when it is off, the bench does what autovacuum would have done by now,
/// and says so.
async fn stand_in_for_autovacuum(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut db = sqlx::PgConnection::connect(url).await?;
    let autovacuum: String = sqlx::query_scalar("SHOW autovacuum").fetch_one(&mut db).await?;
    if autovacuum == "off" {
        println!(
            "  this PostgreSQL runs with autovacuum off: ANALYZE after filling, as autovacuum would have"
        );
        sqlx::query("ANALYZE").execute(&mut db).await?;
    }
    db.close().await?;
    Ok(())
}
