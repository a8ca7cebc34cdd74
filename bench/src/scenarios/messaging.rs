//! Scenarios 1 (fan-out at a fixed rate) and 2 (ingest as fast as acknowledged): people in
//! group conversations, every device connected to the gateway, some members of each group
//! sending real Megolm messages through `SendMessage`. Each message is timed from the send to
//! its acknowledgement and to its arrival on every other member device.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kitsulan_client::e2ee::E2eeDevice;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::crowd::{self, Deliveries, Receivers, Socket};
use crate::record::Recorder;
use crate::report::Report;
use crate::target::{How, Target};

/// What a message says (about the size of a short chat line once encrypted).
const PLAINTEXT: &[u8] = br#"{"text":"gg wp, one more round? I'll bring the snacks this time"}"#;

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct FanoutArgs {
    /// People.
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Devices per person (all connected).
    #[arg(long, default_value_t = 1)]
    pub devices: usize,
    /// People per conversation.
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Sending devices per conversation.
    #[arg(long, default_value_t = 5)]
    pub senders: usize,
    /// Messages per second over all senders.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long to send.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
}

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct IngestArgs {
    /// People.
    #[arg(long, default_value_t = 200)]
    pub accounts: usize,
    /// People per conversation.
    #[arg(long, default_value_t = 2)]
    pub members: usize,
    /// Sending devices per conversation.
    #[arg(long, default_value_t = 2)]
    pub senders: usize,
    /// Sends each sender keeps in flight.
    #[arg(long, default_value_t = 4)]
    pub inflight: usize,
    /// How long to send.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
}

/// The shape of a messaging run.
struct Load {
    accounts: usize,
    devices: usize,
    members: usize,
    senders: usize,
    /// Messages per second over all senders; None: as fast as acknowledged.
    rate: Option<f64>,
    inflight: usize,
    seconds: u64,
}

pub async fn fanout(how: &How, args: &FanoutArgs) -> anyhow::Result<Report> {
    let load = Load {
        accounts: args.accounts,
        devices: args.devices,
        members: args.members,
        senders: args.senders,
        rate: Some(args.rate),
        inflight: 64,
        seconds: args.seconds,
    };
    let mut report = run(how, "fanout", &load, serde_json::to_value(args)?).await?;
    let delivered = report.latency("send_to_delivered").p99_ms;
    report.goal("p99 send to delivered", "< 25 ms", format!("{delivered:.1} ms"), delivered < 25.0);
    let lost = report.result("lost_deliveries");
    report.goal("lost deliveries", "0", format!("{lost}"), lost == 0.0);
    Ok(report)
}

pub async fn ingest(how: &How, args: &IngestArgs) -> anyhow::Result<Report> {
    let load = Load {
        accounts: args.accounts,
        devices: 1,
        members: args.members,
        senders: args.senders,
        rate: None,
        inflight: args.inflight,
        seconds: args.seconds,
    };
    let mut report = run(how, "ingest", &load, serde_json::to_value(args)?).await?;
    let rate = report.result("messages_per_s");
    let goal = if how.db == crate::Db::Sqlite { 20_000.0 } else { 10_000.0 };
    report.goal(
        "messages acknowledged per second",
        &format!(">= {goal}"),
        format!("{rate:.0}"),
        rate >= goal,
    );
    Ok(report)
}

async fn run(how: &How, scenario: &str, load: &Load, params: serde_json::Value) -> anyhow::Result<Report> {
    let target = Target::start(how).await?;
    let sampler = target.sample(Duration::from_millis(250));
    let idle_rss = target.rss();
    let one_time_keys = (load.senders + 2).min(50);
    let mut people =
        crowd::people(target.url(), &crowd::run_tag(), load.accounts, load.devices, one_time_keys).await?;
    let groups = crowd::groups(&people, load.members).await?;

    let recorder = Arc::new(Recorder::new());
    let deliveries = Arc::new(Deliveries::new(recorder.clone()));
    let sockets: Vec<Socket> = people.iter().flatten().map(Socket::of).collect();
    let receivers = Receivers::connect(target.url(), &sockets, deliveries.clone(), recorder.clone()).await?;
    receivers.wait_synced(Duration::from_secs(120)).await?;

    // The senders share their Megolm session with every member device before the clock runs.
    let mut senders: Vec<(E2eeDevice, String, u32)> = Vec::new();
    for group in &groups {
        for &member in group.members.iter().take(load.senders) {
            let device = people[member].swap_remove(0);
            senders.push((device, group.id.clone(), (group.devices - 1) as u32));
        }
    }
    drop(people);
    let bar = crowd::progress(senders.len() as u64, "sharing room keys");
    let mut sharing = JoinSet::new();
    for (mut device, conversation, expected) in senders {
        let bar = bar.clone();
        sharing.spawn(async move {
            device.refresh_conversation(&conversation).await?;
            bar.inc(1);
            anyhow::Ok((device, conversation, expected))
        });
    }
    let mut senders = Vec::new();
    while let Some(done) = sharing.join_next().await {
        senders.push(done??);
    }
    bar.finish_and_clear();

    let count = senders.len();
    let interval = load.rate.map(|rate| Duration::from_secs_f64(count as f64 / rate));
    let duration = Duration::from_secs(load.seconds);
    let clock = Instant::now();
    let until = clock + duration;
    let bar = crowd::SecondsBar::new(load.seconds, &format!("{scenario}: sending"));
    let mut sending = JoinSet::new();
    for (n, (device, conversation, expected)) in senders.into_iter().enumerate() {
        let pace = interval.map(|every| (every, every.mul_f64(n as f64 / count as f64)));
        let sender = Sender {
            device,
            conversation,
            expected,
            inflight: Arc::new(Semaphore::new(load.inflight)),
            recorder: recorder.clone(),
            deliveries: deliveries.clone(),
        };
        sending.spawn(sender.run(pace, until));
    }
    let mut report = Report::new(scenario, how.db, params);
    crowd::settle(sending, clock, &recorder, &deliveries, &mut report).await?;
    drop(bar);
    report.set_result("sockets", sockets.len() as f64);
    report.set_result("sockets_alive_at_end", receivers.alive() as f64);
    report.set_result("conversations", groups.len() as f64);
    report.set_result("senders", count as f64);
    report.finish(&recorder, &sampler, idle_rss);
    Ok(report)
}

/// One sending device.
struct Sender {
    device: E2eeDevice,
    conversation: String,
    /// Deliveries each message should make (the member devices but this one).
    expected: u32,
    inflight: Arc<Semaphore>,
    recorder: Arc<Recorder>,
    deliveries: Arc<Deliveries>,
}

impl Sender {
    /// Sends until `until`, every `pace.0` from `pace.1` after now (or as fast as
    /// acknowledged); returns how many sends it started.
    async fn run(mut self, pace: Option<(Duration, Duration)>, until: Instant) -> u64 {
        let mut ticks = pace.map(|(every, offset)| {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            ticks
        });
        let mut started = 0u64;
        let mut flying = JoinSet::new();
        loop {
            if let Some(ticks) = ticks.as_mut() {
                ticks.tick().await;
            }
            if Instant::now() >= until {
                break;
            }
            let Ok(permit) = self.inflight.clone().acquire_owned().await else { break };
            // Encrypts, and shares a new session first every 100 messages, as apps do.
            let encrypted = match self.device.prepare_message(&self.conversation, PLAINTEXT).await {
                Ok(encrypted) => encrypted,
                Err(e) => {
                    self.recorder.error(format!("preparing a message: {e:#}"));
                    continue;
                }
            };
            let Ok(id) = Uuid::parse_str(&encrypted.message_id) else { continue };
            let request = encrypted.send_request("");
            let client = self.device.client.clone();
            let (recorder, deliveries, expected) =
                (self.recorder.clone(), self.deliveries.clone(), self.expected);
            started += 1;
            flying.spawn(async move {
                crowd::timed_send(client, request, id, expected, recorder, deliveries).await;
                drop(permit);
            });
            while flying.try_join_next().is_some() {}
        }
        while flying.join_next().await.is_some() {}
        started
    }
}
