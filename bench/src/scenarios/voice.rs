//! Scenario 10: voice rooms through the SFU in `kitsulan serve`. For each room size, that many
//! people join one voice channel of a guild with real WebRTC sessions (ICE, DTLS, SRTP; the
//! client SDK's `VoicePeer`) and all speak at once: Opus-sized packets every 20 ms, each sealed
//! with SFrame as the PWA seals them, with the audio level a speaking voice has. The SFU
//! forwards the loudest (up to `slots`) to each of the others. Measured per size: the server's
//! CPU while they speak, per forwarded stream; the delay from a packet's send to its arrival at
//! each receiver (two hops through the SFU, on loopback); what was lost; the server's memory.
//!
//! The load generator runs every participant's WebRTC stack on the same machine, so what the
//! server gets of the machine shrinks as rooms grow; the CPU counted is the server's own.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kitsulan_client::Client;
use kitsulan_client::voice::{Speech, VoicePeer};
use kitsulan_proto::v1::GuildChannelKind;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::crowd;
use crate::record::{Latency, Recorder, Summary};
use crate::report::Report;
use crate::target::{How, MIB, Target};

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct Args {
    /// Room sizes to measure, one after another.
    #[arg(long, value_delimiter = ',', default_value = "5,10,20,30,40,60,80")]
    pub sizes: Vec<usize>,
    /// Streams each participant hears at once (the SFU forwards the loudest into them).
    #[arg(long, default_value_t = 6)]
    pub slots: usize,
    /// How long everyone speaks in each room.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

/// Packets per second of one voice (one Opus frame per 20 ms).
const PACKETS_PER_SECOND: u64 = 50;

/// What one room size gave.
struct Step {
    size: usize,
    /// Streams the SFU forwards: each participant hears min(size - 1, slots) voices.
    streams: usize,
    cpu_percent: f64,
    delays: Summary,
    expected: u64,
    heard: u64,
    rss_mib: f64,
}

pub async fn run(how: &How, args: &Args) -> anyhow::Result<Report> {
    anyhow::ensure!(!args.sizes.is_empty() && args.sizes.iter().all(|s| *s >= 2), "room sizes start at 2");
    anyhow::ensure!((1..=6).contains(&args.slots), "1 to 6 slots");
    let largest = args.sizes.iter().copied().max().unwrap_or(2);
    let target = Target::start(how).await?;
    let sampler = target.sample(Duration::from_millis(250));
    let idle_rss = target.rss();
    let people = crowd::sign_up(target.url(), &format!("{}-v", crowd::run_tag()), largest).await?;
    let guild = people[0].create_guild("Bench voice").await?;
    let lobby = people[0]
        .get_guild(&guild.id)
        .await?
        .channels
        .into_iter()
        .find(|c| c.kind() == GuildChannelKind::Voice)
        .context("a new guild has no voice channel")?
        .id;
    let invite = people[0].create_invite(&guild.id, 0, 0).await?.code;
    for person in &people[1..] {
        person.join_guild(&invite).await?;
    }

    let recorder = Arc::new(Recorder::new());
    let mut steps = Vec::new();
    for &size in &args.sizes {
        let step = room(&target, &people[..size], &lobby, args, &recorder).await?;
        println!(
            "  room of {size:>3}: {:>4} streams, server CPU {:>5.1} % ({:.3} % per stream), delay p50 {:.2} ms p99 {:.2} ms, heard {}/{}",
            step.streams,
            step.cpu_percent,
            step.cpu_percent / step.streams as f64,
            step.delays.p50_ms,
            step.delays.p99_ms,
            step.heard,
            step.expected,
        );
        steps.push(step);
    }

    let mut report = Report::new("voice", how.db, serde_json::to_value(args)?);
    report.finish(&recorder, &sampler, idle_rss);
    let (mut expected, mut heard) = (0, 0);
    for step in &steps {
        let name = |what: &str| format!("room_{:03}_{what}", step.size);
        report.set_result(&name("streams"), step.streams as f64);
        report.set_result(&name("server_cpu_percent"), step.cpu_percent);
        report.set_result(&name("cpu_percent_per_stream"), step.cpu_percent / step.streams as f64);
        report.set_result(&name("delay_p50_ms"), step.delays.p50_ms);
        report.set_result(&name("delay_p99_ms"), step.delays.p99_ms);
        report.set_result(&name("lost_percent"), lost_percent(step.expected, step.heard));
        report.set_result(&name("server_rss_mib"), step.rss_mib);
        expected += step.expected;
        heard += step.heard;
    }
    report.set_result("packets_expected", expected as f64);
    report.set_result("packets_heard", heard as f64);
    // The cost of one forwarded stream, from the biggest room (where fixed costs weigh least).
    let biggest = steps.iter().max_by_key(|s| s.streams).context("no room measured")?;
    let per_stream = biggest.cpu_percent / biggest.streams as f64;
    report.set_result("cpu_percent_per_stream", per_stream);
    let measured_under_half =
        steps.iter().filter(|s| s.cpu_percent < 50.0).map(|s| s.size).max().unwrap_or(0);
    report.set_result("largest_room_measured_under_half_a_core", measured_under_half as f64);
    // Each of n people hears min(n - 1, slots) voices: the largest n whose streams fit in half a
    // core at the measured cost per stream.
    let fits = (2..=10_000)
        .take_while(|n| (n * (n - 1).min(args.slots)) as f64 * per_stream < 50.0)
        .last()
        .unwrap_or(0);
    report.set_result("largest_room_under_half_a_core_at_that_cost", fits as f64);
    let p99 = biggest.delays.p99_ms;
    report.goal(
        "largest room under 50 % of one core",
        "≥ 30 (a LAN party)",
        format!("{measured_under_half} measured, {fits} at {per_stream:.3} % per stream"),
        measured_under_half >= 30 || fits >= 30,
    );
    report.goal("forwarding delay p99, largest room", "< 20 ms", format!("{p99:.2} ms"), p99 < 20.0);
    let lost = lost_percent(expected, heard);
    report.goal("packets lost", "< 1 %", format!("{lost:.2} %"), lost < 1.0);
    Ok(report)
}

/// One room of `people`: everyone joins, all speak for `args.seconds`, everyone leaves.
async fn room(
    target: &Target,
    people: &[Client],
    lobby: &str,
    args: &Args,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<Step> {
    let size = people.len();
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (go, listening) = watch::channel(false);
    let (up, mut connected) = mpsc::channel(size);
    let packets = u16::try_from(args.seconds * PACKETS_PER_SECOND).context("a shorter run")?;
    let mut speakers = JoinSet::new();
    for (who, person) in people.iter().enumerate() {
        let who = u8::try_from(who).context("at most 256 people in a room")?;
        let (mut peer, offer) = VoicePeer::offer(who, localhost, args.slots).await?;
        let answer = person.join_voice(lobby, offer).await.map_err(|s| anyhow::anyhow!("JoinVoice: {s}"))?;
        peer.accept(answer)?;
        let speech = Speech {
            packets,
            crash_after: None,
            deadline: Duration::from_secs(args.seconds + 60),
            room_key: Some([0x5A; 16]),
        };
        speakers.spawn(peer.run_timed(up.clone(), listening.clone(), speech));
    }
    for _ in 0..size {
        tokio::time::timeout(Duration::from_secs(30), connected.recv())
            .await
            .context("a session did not come up in 30 s")?;
    }
    // Everyone speaks for the whole window; the CPU counted is the server's over it.
    let cpu_before = target.cpu_seconds();
    let started = Instant::now();
    go.send(true)?;
    let speaking = Duration::from_secs(args.seconds);
    tokio::time::sleep(speaking).await;
    let cpu_percent = match (cpu_before, target.cpu_seconds()) {
        (Some(before), Some(after)) => (after - before) / started.elapsed().as_secs_f64() * 100.0,
        _ => f64::NAN,
    };
    let rss_mib = target.rss().map_or(f64::NAN, |b| b as f64 / MIB);
    let mut delays = Latency::new(started);
    let mut heard = 0u64;
    while let Some(done) = speakers.join_next().await {
        let (got, took) = done??;
        let now = Instant::now();
        for delay in &took {
            delays.record(now, *delay);
            recorder.latency("forward_delay", *delay);
        }
        heard += got.values().map(|n| n.len() as u64).sum::<u64>();
    }
    for person in people {
        person.leave_voice(lobby).await.map_err(|s| anyhow::anyhow!("LeaveVoice: {s}"))?;
    }
    let streams = size * (size - 1).min(args.slots);
    Ok(Step {
        size,
        streams,
        cpu_percent,
        delays: delays.summary(),
        expected: streams as u64 * u64::from(packets),
        heard,
        rss_mib,
    })
}

fn lost_percent(expected: u64, heard: u64) -> f64 {
    if expected == 0 { 0.0 } else { expected.saturating_sub(heard) as f64 / expected as f64 * 100.0 }
}
