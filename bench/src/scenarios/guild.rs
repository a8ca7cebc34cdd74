//! Scenario 9: a big guild. Thousands of members join one guild by invite; some of them are
//! online (every one a connected gateway socket, as an open app); a few post in #general at a
//! fixed rate through `SendMessage`. Each message is timed from the send to its
//! acknowledgement and to its arrival on every other online member's socket. A cloud channel
//! writes no row per member, so what this measures is the fan-out to sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kitsulan_client::Client;
use kitsulan_client::people::cloud_text;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::crowd::{self, Deliveries, Receivers, Socket};
use crate::record::Recorder;
use crate::report::Report;
use crate::target::{How, Target};

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct Args {
    /// Members of the guild (its owner included).
    #[arg(long, default_value_t = 5000)]
    pub members: usize,
    /// Members online (a connected socket each).
    #[arg(long, default_value_t = 1000)]
    pub online: usize,
    /// Members posting (among the online ones).
    #[arg(long, default_value_t = 5)]
    pub senders: usize,
    /// Messages per second over all senders.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// How long to send.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
}

pub async fn run(how: &How, args: &Args) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.senders >= 1 && args.senders <= args.online && args.online <= args.members,
        "need 1 <= senders <= online <= members"
    );
    let target = Target::start(how).await?;
    let sampler = target.sample(Duration::from_millis(250));
    let idle_rss = target.rss();
    let mut members = crowd::sign_up(target.url(), &format!("{}-g", crowd::run_tag()), args.members).await?;

    // The first member makes the guild; everyone else joins by one invite, several at a time.
    let guild = members[0].create_guild("Bench guild").await?;
    let invite = members[0].create_invite(&guild.id, 0, 0).await?.code;
    let general = members[0]
        .get_guild(&guild.id)
        .await?
        .channels
        .into_iter()
        .find(|c| c.name == "general")
        .ok_or_else(|| anyhow::anyhow!("a new guild has no #general"))?
        .id;
    let bar = crowd::progress(args.members as u64 - 1, "joining the guild");
    let permits = Arc::new(Semaphore::new(16));
    let mut joining = JoinSet::new();
    for member in &members[1..] {
        let (member, invite, permits, bar) = (member.clone(), invite.clone(), permits.clone(), bar.clone());
        joining.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            member.join_guild(&invite).await?;
            bar.inc(1);
            anyhow::Ok(())
        });
    }
    while let Some(done) = joining.join_next().await {
        done??;
    }
    bar.finish_and_clear();
    // Setting up a big guild takes longer than an access token lives.
    for member in members.iter_mut().take(args.online) {
        member.refresh().await?;
    }

    let recorder = Arc::new(Recorder::new());
    let deliveries = Arc::new(Deliveries::new(recorder.clone()));
    let sockets: Vec<Socket> = members
        .iter()
        .take(args.online)
        .map(|m| Socket { access_token: m.access_token().to_owned(), device_id: m.device_id().to_owned() })
        .collect();
    let receivers = Receivers::connect(target.url(), &sockets, deliveries.clone(), recorder.clone()).await?;
    receivers.wait_synced(Duration::from_secs(300)).await?;
    let rss_before_sending = target.rss();

    // Every online socket but the sender's own gets each message.
    let expected = (args.online - 1) as u32;
    let interval = Duration::from_secs_f64(args.senders as f64 / args.rate);
    let clock = Instant::now();
    let until = clock + Duration::from_secs(args.seconds);
    let bar = crowd::SecondsBar::new(args.seconds, "guild: sending");
    let mut sending = JoinSet::new();
    for (n, sender) in members.iter().take(args.senders).enumerate() {
        let offset = interval.mul_f64(n as f64 / args.senders as f64);
        let post = Post {
            client: sender.clone(),
            channel: general.clone(),
            expected,
            recorder: recorder.clone(),
            deliveries: deliveries.clone(),
        };
        sending.spawn(post.run(interval, offset, until));
    }
    let mut report = Report::new("guild", how.db, serde_json::to_value(args)?);
    crowd::settle(sending, clock, &recorder, &deliveries, &mut report).await?;
    drop(bar);
    report.set_result("members", args.members as f64);
    report.set_result("sockets", sockets.len() as f64);
    report.set_result("sockets_alive_at_end", receivers.alive() as f64);
    if let Some(rss) = rss_before_sending {
        report.set_result("server_rss_online_idle_mib", rss as f64 / crate::target::MIB);
    }
    report.finish(&recorder, &sampler, idle_rss);
    let p99 = report.latency("send_to_delivered").p99_ms;
    report.goal("p99 send to delivered", "< 25 ms", format!("{p99:.1} ms"), p99 < 25.0);
    let lost = report.result("lost_deliveries");
    report.goal("lost deliveries", "0", format!("{lost}"), lost == 0.0);
    Ok(report)
}

/// One posting member.
struct Post {
    client: Client,
    channel: String,
    expected: u32,
    recorder: Arc<Recorder>,
    deliveries: Arc<Deliveries>,
}

impl Post {
    /// Posts every `every` from `offset` after now until `until`; returns how many it started.
    async fn run(self, every: Duration, offset: Duration, until: Instant) -> u64 {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut started = 0u64;
        let mut flying = JoinSet::new();
        let mut n = 0u64;
        loop {
            ticks.tick().await;
            if Instant::now() >= until {
                break;
            }
            n += 1;
            let request = cloud_text(&self.channel, &format!("gg wp, one more round? #{n}"));
            let Ok(id) = Uuid::parse_str(&request.message_id) else { continue };
            let (client, recorder, deliveries) =
                (self.client.clone(), self.recorder.clone(), self.deliveries.clone());
            started += 1;
            flying.spawn(crowd::timed_send(client, request, id, self.expected, recorder, deliveries));
            while flying.try_join_next().is_some() {}
        }
        while flying.join_next().await.is_some() {}
        started
    }
}
