//! The people of a run: accounts with their devices (the client SDK's [`E2eeDevice`]), group
//! conversations between them, and gateway receivers that acknowledge every event and time
//! every message from its send to its arrival.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use kitsulan_client::Client;
use kitsulan_client::e2ee::E2eeDevice;
use kitsulan_client::gateway::GatewayClient;
use kitsulan_client::people::PASSWORD;
use kitsulan_proto::v1::{MessageChange, event};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use crate::record::Recorder;

/// A progress bar for `len` steps of `what` (drawn only on a terminal).
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>22} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

/// A progress bar of `seconds` that advances by itself once a second until dropped.
pub struct SecondsBar {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
}

impl SecondsBar {
    pub fn new(seconds: u64, what: &str) -> Self {
        let bar = progress(seconds, what);
        let ticking = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            ticks.tick().await;
            loop {
                ticks.tick().await;
                ticking.inc(1);
            }
        });
        Self { bar, ticker }
    }
}

impl Drop for SecondsBar {
    fn drop(&mut self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// A name prefix for this run's accounts, so runs against one server do not collide.
pub fn run_tag() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("b{:05x}", nanos & 0xfffff)
}

/// Signs up `accounts` people (`{tag}-{i}`), each with `devices` devices holding
/// `one_time_keys` keys, several at a time (the server hashes each password with Argon2id).
pub async fn people(
    url: &str,
    tag: &str,
    accounts: usize,
    devices: usize,
    one_time_keys: usize,
) -> anyhow::Result<Vec<Vec<E2eeDevice>>> {
    let bar = progress((accounts * devices) as u64, "signing up devices");
    let permits = Arc::new(Semaphore::new(16));
    let mut tasks = JoinSet::new();
    for i in 0..accounts {
        let (url, username, permits, bar) =
            (url.to_owned(), format!("{tag}-{i}"), permits.clone(), bar.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let first = E2eeDevice::sign_up(&url, &username, PASSWORD, "Laptop", one_time_keys).await?;
            bar.inc(1);
            let mut all = vec![first];
            for d in 1..devices {
                let (name, key) = (format!("Device {d}"), all[0].account_key_copy());
                all.push(E2eeDevice::sign_in(&url, &username, PASSWORD, &name, key, one_time_keys).await?);
                bar.inc(1);
            }
            anyhow::Ok((i, all))
        });
    }
    let mut people: Vec<(usize, Vec<E2eeDevice>)> = Vec::with_capacity(accounts);
    while let Some(done) = tasks.join_next().await {
        people.push(done??);
    }
    bar.finish_and_clear();
    people.sort_by_key(|(i, _)| *i);
    Ok(people.into_iter().map(|(_, d)| d).collect())
}

/// A group conversation of the run.
pub struct Group {
    pub id: String,
    /// Indexes of its members in the people list, the creator first.
    pub members: Vec<usize>,
    /// How many devices its members have in all.
    pub devices: usize,
}

/// Splits the people into groups of `members` (a smaller last group only if it has two or
/// more) and has each group's first person create it.
pub async fn groups(people: &[Vec<E2eeDevice>], members: usize) -> anyhow::Result<Vec<Group>> {
    anyhow::ensure!(members >= 2, "a conversation needs at least two members");
    let indexes: Vec<usize> = (0..people.len()).collect();
    let chunks: Vec<&[usize]> = indexes.chunks(members).filter(|c| c.len() >= 2).collect();
    let bar = progress(chunks.len() as u64, "creating conversations");
    let mut groups = Vec::new();
    for (n, chunk) in chunks.into_iter().enumerate() {
        let creator = &people[chunk[0]][0];
        let others: Vec<&str> = chunk[1..].iter().map(|&i| people[i][0].account_id()).collect();
        let conversation = creator
            .client
            .create_group(&format!("Bench {n}"), &others)
            .await
            .with_context(|| format!("creating group {n}"))?;
        let devices = chunk.iter().map(|&i| people[i].len()).sum();
        groups.push(Group { id: conversation.id, members: chunk.to_vec(), devices });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(groups)
}

/// Messages on their way: when each was sent and how many deliveries it still awaits.
pub struct Deliveries {
    pending: Mutex<HashMap<Uuid, (Instant, u32)>>,
    recorder: Arc<Recorder>,
    /// Deliveries of messages this run sent (each device counted once per message).
    pub delivered: AtomicU64,
    /// Deliveries of messages it was not waiting for (duplicates, or more than expected).
    pub unexpected: AtomicU64,
}

impl Deliveries {
    pub fn new(recorder: Arc<Recorder>) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            recorder,
            delivered: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
        }
    }

    /// Notes that message `id` is being sent now and should reach `devices` devices.
    pub fn expect(&self, id: Uuid, devices: u32) {
        if devices == 0 {
            return;
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(id, (Instant::now(), devices));
        }
    }

    /// Forgets message `id` (its send failed, so nothing will arrive).
    pub fn cancel(&self, id: &Uuid) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(id);
        }
    }

    fn arrived(&self, id: Uuid) {
        let sent = self.pending.lock().ok().and_then(|mut pending| {
            let entry = pending.get_mut(&id)?;
            let sent = entry.0;
            entry.1 -= 1;
            if entry.1 == 0 {
                pending.remove(&id);
            }
            Some(sent)
        });
        match sent {
            Some(sent) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.recorder.latency("send_to_delivered", sent.elapsed());
            }
            None => {
                self.unexpected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Deliveries still awaited.
    pub fn outstanding(&self) -> u64 {
        self.pending.lock().map(|p| p.values().map(|(_, n)| u64::from(*n)).sum()).unwrap_or(0)
    }

    /// Waits until nothing is awaited or `patience` has passed; returns what is still awaited.
    pub async fn drain(&self, patience: Duration) -> u64 {
        let until = Instant::now() + patience;
        while self.outstanding() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.outstanding()
    }
}

/// Sends `request` (message `id`, awaited by `expected` sockets) as `client`, timing it to its
/// acknowledgement; a refused send is an error and its deliveries are no longer awaited.
pub async fn timed_send(
    client: kitsulan_client::Client,
    request: kitsulan_proto::v1::SendMessageRequest,
    id: Uuid,
    expected: u32,
    recorder: Arc<Recorder>,
    deliveries: Arc<Deliveries>,
) {
    deliveries.expect(id, expected);
    let sent = Instant::now();
    match client.send_message(request).await {
        Ok(_) => recorder.latency("send_to_ack", sent.elapsed()),
        Err(status) => {
            deliveries.cancel(&id);
            recorder.error(format!("SendMessage: {status}"));
        }
    }
}

/// Waits for the senders started at `clock` (each answering how many sends it started), then
/// up to 30 s for the deliveries still awaited, and records what every delivery scenario
/// reports: sends, acknowledgements and deliveries, per second and in all, and what was lost.
pub async fn settle(
    mut sending: JoinSet<u64>,
    clock: Instant,
    recorder: &Recorder,
    deliveries: &Deliveries,
    report: &mut crate::report::Report,
) -> anyhow::Result<()> {
    let mut sent = 0u64;
    while let Some(done) = sending.join_next().await {
        sent += done?;
    }
    let sending_took = clock.elapsed();
    let lost = deliveries.drain(Duration::from_secs(30)).await;
    let drained_after = clock.elapsed();
    let acked = recorder.count("send_to_ack");
    let delivered = deliveries.delivered.load(Ordering::Relaxed);
    report.set_result("messages_sent", sent as f64);
    report.set_result("messages_acknowledged", acked as f64);
    report.set_result("messages_per_s", acked as f64 / sending_took.as_secs_f64());
    report.set_result("deliveries", delivered as f64);
    report.set_result("deliveries_per_s", delivered as f64 / drained_after.as_secs_f64());
    report.set_result("lost_deliveries", lost as f64);
    report.set_result("unexpected_deliveries", deliveries.unexpected.load(Ordering::Relaxed) as f64);
    Ok(())
}

/// A device's gateway connection, for [`Receivers::connect`].
#[derive(Clone)]
pub struct Socket {
    pub access_token: String,
    pub device_id: String,
}

impl Socket {
    pub fn of(device: &E2eeDevice) -> Self {
        Self {
            access_token: device.client.access_token().to_owned(),
            device_id: device.device_id().to_owned(),
        }
    }
}

/// Gateway connections that read and acknowledge every event, as an app does.
pub struct Receivers {
    tasks: Vec<JoinHandle<()>>,
    synced: Arc<AtomicUsize>,
}

impl Receivers {
    /// Connects every socket (`parallel` at a time) and starts reading.
    pub async fn connect(
        url: &str,
        sockets: &[Socket],
        deliveries: Arc<Deliveries>,
        recorder: Arc<Recorder>,
    ) -> anyhow::Result<Self> {
        let bar = progress(sockets.len() as u64, "connecting sockets");
        let synced = Arc::new(AtomicUsize::new(0));
        let permits = Arc::new(Semaphore::new(32));
        let mut connecting = JoinSet::new();
        for socket in sockets.iter().cloned() {
            let (url, permits, bar, recorder) =
                (url.to_owned(), permits.clone(), bar.clone(), recorder.clone());
            connecting.spawn(async move {
                let _permit = permits.acquire_owned().await?;
                let started = Instant::now();
                let gateway = GatewayClient::connect(&url, &socket.access_token, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("connecting {}: {e}", socket.device_id))?;
                recorder.latency("connect_to_ready", started.elapsed());
                bar.inc(1);
                anyhow::Ok((socket.device_id, gateway))
            });
        }
        let mut tasks = Vec::with_capacity(sockets.len());
        while let Some(done) = connecting.join_next().await {
            let (device_id, gateway) = done??;
            tasks.push(tokio::spawn(receive(
                gateway,
                device_id,
                deliveries.clone(),
                recorder.clone(),
                synced.clone(),
            )));
        }
        bar.finish_and_clear();
        Ok(Self { tasks, synced })
    }

    /// Waits until every socket has caught up (`sync_complete`).
    pub async fn wait_synced(&self, patience: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + patience;
        while self.synced.load(Ordering::Relaxed) < self.tasks.len() {
            anyhow::ensure!(
                Instant::now() < until,
                "only {} of {} sockets caught up within {patience:?}",
                self.synced.load(Ordering::Relaxed),
                self.tasks.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// How many sockets are still being read (the others were closed or failed).
    pub fn alive(&self) -> usize {
        self.tasks.iter().filter(|t| !t.is_finished()).count()
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn receive(
    mut gateway: GatewayClient,
    device_id: String,
    deliveries: Arc<Deliveries>,
    recorder: Arc<Recorder>,
    synced: Arc<AtomicUsize>,
) {
    loop {
        let event = match gateway.next_event(Duration::from_secs(24 * 3600)).await {
            Ok(event) => event,
            Err(e) => {
                recorder.error(format!("the socket of device {device_id} ended: {e}"));
                return;
            }
        };
        match &event.body {
            Some(event::Body::Message(change)) if change.change() == MessageChange::New => {
                if let Some(message) = &change.message
                    && message.sender_device_id != device_id
                    && let Ok(id) = Uuid::parse_str(&message.id)
                {
                    deliveries.arrived(id);
                }
            }
            Some(event::Body::SyncComplete(_)) => {
                synced.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if gateway.ack(event.seq).is_err() {
            recorder.error(format!("the socket of device {device_id} could not send an ack"));
            return;
        }
    }
}

/// Sends kept in flight as fast as they are acknowledged (filling a conversation): each timed
/// from the call to its answer (`send_to_ack`), counted on a progress bar.
pub struct Filler {
    permits: Arc<Semaphore>,
    flying: JoinSet<anyhow::Result<()>>,
    recorder: Arc<Recorder>,
    bar: ProgressBar,
}

impl Filler {
    pub fn new(inflight: usize, messages: u64, what: &str) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(inflight)),
            flying: JoinSet::new(),
            recorder: Arc::new(Recorder::new()),
            bar: progress(messages, what),
        }
    }

    /// Waits for room, then sends `request` as `client`; fails with the first failed send.
    pub async fn send(
        &mut self,
        client: kitsulan_client::Client,
        request: kitsulan_proto::v1::SendMessageRequest,
    ) -> anyhow::Result<()> {
        let permit = self.permits.clone().acquire_owned().await?;
        let (recorder, bar) = (self.recorder.clone(), self.bar.clone());
        self.flying.spawn(async move {
            let sent = Instant::now();
            let result = client.send_message(request).await;
            recorder.latency("send_to_ack", sent.elapsed());
            bar.inc(1);
            drop(permit);
            result.map(|_| ()).map_err(|status| anyhow::anyhow!("SendMessage: {status}"))
        });
        while let Some(done) = self.flying.try_join_next() {
            done??;
        }
        Ok(())
    }

    /// Waits for every send; returns the latencies.
    pub async fn finish(mut self) -> anyhow::Result<Arc<Recorder>> {
        while let Some(done) = self.flying.join_next().await {
            done??;
        }
        self.bar.finish_and_clear();
        Ok(self.recorder)
    }
}

/// Signs up `count` people (`{prefix}{i}`, no E2EE device), several at a time, in order.
pub async fn sign_up(url: &str, prefix: &str, count: usize) -> anyhow::Result<Vec<Client>> {
    let bar = progress(count as u64, "signing up");
    let permits = Arc::new(Semaphore::new(16));
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let (url, username, permits, bar) =
            (url.to_owned(), format!("{prefix}{i}"), permits.clone(), bar.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let mut client = Client::connect(&url).await?;
            client
                .sign_up(&username, PASSWORD)
                .await
                .map_err(|s| anyhow::anyhow!("SignUp {username}: {s}"))?;
            bar.inc(1);
            anyhow::Ok((i, client))
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        all.push(done??);
    }
    bar.finish_and_clear();
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, c)| c).collect())
}
