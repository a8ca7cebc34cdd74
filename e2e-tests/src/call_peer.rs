//! A device in a call as an app runs one (docs/calls.md): an [`E2eeDevice`] on the gateway that
//! signals through the real server and holds a real WebRTC peer connection (webrtc-rs, the
//! `webrtc` crate) with **relay-only** ICE, so every packet between two [`CallPeer`]s crosses
//! the TURN relay whose credentials they were given (`CallService.GetTurnCredentials`, or
//! forged ones).
//!
//! [`CallPeer::connect`] is one side of one peer connection in a call both devices are already
//! in (INVITE and ACCEPT are the test's, with the helpers of [`kitsulan_client::calls`]). The
//! offerer opens a data channel named [`DATA_CHANNEL`] and sends OFFER; the answerer answers;
//! both trickle their ICE candidates. It returns an [`Attempt`] once the data channel is open on that side or
//! the connection failed (or closed), with everything it saw on the way.
//!
//! # Payloads
//!
//! As docs/calls.md says (and the PWA does): OFFER, ANSWER and ICE_CANDIDATE payloads are
//! `0x01 || Olm message` to the receiving device ([`E2eeDevice::encrypt_call_payload`], made by
//! the protocol machine, which also opens them and checks the binding) of
//!
//! ```text
//! 0x04 || conversation id (16) || call id (16) || action (1) || JSON
//! ```
//!
//! where the JSON is `{"type", "sdp"}` (a browser's `RTCSessionDescriptionInit`) for OFFER and
//! ANSWER and an `RTCIceCandidateInit` for ICE_CANDIDATE. A payload that does not decrypt, is
//! bound to another conversation, call or action, or does not fit its action ends the attempt
//! with an error.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use kitsulan_proto::v1::{CallAction, CallEvent, CallSignal, GetTurnCredentialsResponse, event};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidate, RTCIceCandidateInit, RTCIceCandidateType, RTCIceGatheringState, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSdpType,
    RTCSessionDescription, RTCStatsReportEntry, SettingEngineBuilder, StatsSelector,
};

use kitsulan_client::calls::directed;
use kitsulan_client::e2ee::E2eeDevice;
use kitsulan_client::gateway::LiveInbox;
use kitsulan_client::people;
use kitsulan_client::server::TestServer;

/// How long ICE may check before a connection that should come up is declared failed (on an
/// idle machine a relayed connection is up within a few seconds; this is for a loaded one).
pub const ICE_TIMEOUT: Duration = Duration::from_secs(30);
/// ICE calls a connection disconnected after this long without traffic from the peer.
const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(5);
/// The label of the data channel the offerer opens.
pub const DATA_CHANNEL: &str = "kitsulan-e2e";
/// How long one signal or data channel message may take.
const WAIT: Duration = Duration::from_secs(10);

/// Which side of the peer connection a device plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opens the data channel and sends OFFER.
    Offerer,
    /// Waits for OFFER and sends ANSWER.
    Answerer,
}

/// The call a peer connection belongs to, and the device at the other end.
#[derive(Clone, Debug)]
pub struct Link {
    /// The conversation of the call.
    pub conversation_id: String,
    /// The call.
    pub call_id: String,
    /// The other device's account.
    pub remote_account_id: String,
    /// The other device.
    pub remote_device_id: String,
}

/// The ICE servers of `GetTurnCredentials` (every URL, with its username and password).
pub fn ice_servers(credentials: &GetTurnCredentialsResponse) -> Vec<RTCIceServer> {
    vec![RTCIceServer {
        urls: credentials.urls.clone(),
        username: credentials.username.clone(),
        credential: credentials.password.clone(),
    }]
}

/// One signed-in E2EE device with its gateway connection.
pub struct CallPeer {
    /// Who this is, for failure messages.
    pub who: String,
    /// The device (Olm sessions, the signed-in client).
    pub device: E2eeDevice,
    /// Its gateway connection.
    pub inbox: LiveInbox,
}

impl CallPeer {
    /// A new person's first device ([`people::person`]), online and synced.
    pub async fn sign_up(server: &TestServer, username: &str) -> anyhow::Result<Self> {
        let device = people::person(server, username).await;
        let mut inbox = LiveInbox::new();
        inbox
            .connect(&server.url(), device.client.access_token(), false)
            .await
            .with_context(|| format!("{username} connects to the gateway"))?;
        inbox.sync(WAIT).await.with_context(|| format!("{username} syncs"))?;
        Ok(Self { who: username.to_owned(), device, inbox })
    }

    /// This device's id.
    pub fn device_id(&self) -> String {
        self.device.device_id().to_owned()
    }

    /// This device's account.
    pub fn account_id(&self) -> String {
        self.device.account_id().to_owned()
    }

    /// Waits until the gateway says this device's account is a member of `conversation_id`.
    /// Call signals for a conversation are live only and reach a device's connection once it
    /// follows the conversation, which it does as it sends this event: a call started before
    /// that would not ring here.
    pub async fn member_of(&mut self, conversation_id: &str) -> anyhow::Result<()> {
        let account = self.account_id();
        let what = format!("{}'s membership of {conversation_id}", self.who);
        self.inbox
            .wait_event(WAIT, &what, |event| {
                matches!(&event.body, Some(event::Body::Member(m))
                    if m.conversation_id == conversation_id && m.account_id == account && !m.removed)
            })
            .await?;
        Ok(())
    }

    /// `GetTurnCredentials` as this device.
    pub async fn turn_credentials(&self) -> anyhow::Result<GetTurnCredentialsResponse> {
        self.device
            .client
            .turn_credentials()
            .await
            .with_context(|| format!("GetTurnCredentials as {}", self.who))
    }

    /// Sends a call signal on the gateway.
    pub fn send(&mut self, signal: CallSignal) -> anyhow::Result<()> {
        let who = self.who.clone();
        let gateway = self.inbox.gateway().with_context(|| format!("{who} is not connected"))?;
        gateway.call(signal).with_context(|| format!("{who} sends a call signal"))
    }

    /// The next call event, which must be `action` of `call_id`; OFFER, ANSWER and ICE
    /// candidates of that call still in flight from an earlier peer connection are skipped.
    pub async fn expect(&mut self, action: CallAction, call_id: &str) -> anyhow::Result<CallEvent> {
        let what = format!("{action:?} of call {call_id} at {}", self.who);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.inbox.next_call(left, &what).await?;
            let late = event.call_id == call_id
                && matches!(
                    event.action(),
                    CallAction::Offer | CallAction::Answer | CallAction::IceCandidate
                )
                && !matches!(action, CallAction::Offer | CallAction::Answer | CallAction::IceCandidate);
            if late {
                continue;
            }
            ensure!(
                event.action() == action && event.call_id == call_id,
                "{what}: the next call event was {event:?}"
            );
            return Ok(event);
        }
    }

    /// One side of a peer connection to `link`'s device, relay-only through `ice_servers`:
    /// signals until the data channel is open here or the connection fails or closes. ICE
    /// declares it failed after `fail_after` of checking without success (use [`ICE_TIMEOUT`]
    /// for a connection that should come up); [`WAIT`] later this gives up waiting anyway.
    /// Errors are for signalling and API failures; a connection that does not come up is an
    /// [`Attempt`] without a channel.
    pub async fn connect(
        &mut self,
        link: &Link,
        role: Role,
        ice_servers: Vec<RTCIceServer>,
        fail_after: Duration,
    ) -> anyhow::Result<Attempt> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let handler = Arc::new(Handler { events: events_tx.clone() });
        let configuration = RTCConfigurationBuilder::new()
            .with_ice_servers(ice_servers)
            .with_ice_transport_policy(RTCIceTransportPolicy::Relay)
            .build();
        let settings = SettingEngineBuilder::new()
            // Checking for longer than both together fails the connection.
            .with_ice_timeouts(
                Some(ICE_DISCONNECTED_AFTER),
                Some(fail_after.saturating_sub(ICE_DISCONNECTED_AFTER)),
                None,
            )
            .build();
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(configuration)
                .with_setting_engine(settings)
                .with_handler(handler)
                // The TURN relays of the tests listen on loopback.
                .with_udp_addrs(vec!["127.0.0.1:0"])
                .build()
                .await
                .context("build the peer connection")?,
        );
        let mut attempt = Attempt {
            who: self.who.clone(),
            pc,
            events_tx,
            events,
            channel: None,
            received: VecDeque::new(),
            states: Vec::new(),
            local_candidates: Vec::new(),
            remote_candidates: 0,
            gathering_complete: false,
            trace: Vec::new(),
            tasks: Vec::new(),
            started: Instant::now(),
        };

        if role == Role::Offerer {
            let channel = attempt
                .pc
                .create_data_channel(DATA_CHANNEL, None)
                .await
                .context("create the data channel")?;
            attempt.tasks.push(forward(channel, attempt.events_tx.clone()));
            let offer = attempt.pc.create_offer(None).await.context("create the offer")?;
            attempt.pc.set_local_description(offer.clone()).await.context("set the offer")?;
            self.signal(link, CallAction::Offer, serde_json::to_value(&offer)?).await?;
            attempt.note("sent OFFER");
        }

        // Remote candidates wait for the remote description.
        let mut pending: Vec<RTCIceCandidateInit> = Vec::new();
        let mut described = false;
        let deadline = tokio::time::Instant::now() + fail_after + WAIT;
        loop {
            if attempt.channel.is_some() {
                break;
            }
            if let Some(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) =
                attempt.states.last()
            {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    attempt.note("gave up waiting");
                    break;
                }
                event = attempt.events.recv() => {
                    let Some(event) = event else { bail!("the peer connection's events stopped") };
                    match event {
                        Event::Candidate(candidate) => {
                            let init = candidate.to_json().context("a local candidate as JSON")?;
                            self.signal(link, CallAction::IceCandidate, serde_json::to_value(&init)?).await?;
                            attempt.take(Event::Candidate(candidate)).await?;
                        }
                        other => attempt.take(other).await?,
                    }
                }
                call = self.inbox.next_call(fail_after + WAIT, "a call signal") => {
                    let call = call?;
                    if call.call_id != link.call_id || call.from_device_id != link.remote_device_id {
                        attempt.note(&format!("ignored {:?} from {}", call.action(), call.from_device_id));
                        continue;
                    }
                    match call.action() {
                        CallAction::Offer if role == Role::Answerer && !described => {
                            let offer = self.open(link, &call, RTCSdpType::Offer).await?;
                            attempt.note("got OFFER");
                            attempt.pc.set_remote_description(offer).await.context("set the offer")?;
                            let answer = attempt.pc.create_answer(None).await.context("create the answer")?;
                            attempt.pc.set_local_description(answer.clone()).await.context("set the answer")?;
                            self.signal(link, CallAction::Answer, serde_json::to_value(&answer)?).await?;
                            attempt.note("sent ANSWER");
                            described = true;
                        }
                        CallAction::Answer if role == Role::Offerer && !described => {
                            let answer = self.open(link, &call, RTCSdpType::Answer).await?;
                            attempt.note("got ANSWER");
                            attempt.pc.set_remote_description(answer).await.context("set the answer")?;
                            described = true;
                        }
                        CallAction::IceCandidate => {
                            let candidate = self.open(link, &call, RTCSdpType::Unspecified).await?;
                            attempt.note("got a remote candidate");
                            attempt.remote_candidates += 1;
                            pending.push(candidate);
                        }
                        CallAction::HangUp | CallAction::Ended => {
                            attempt.note(&format!("the call ended: {:?} {}", call.action(), call.reason));
                            break;
                        }
                        other => bail!("{}: unexpected {other:?} from the other device: {call:?}", self.who),
                    }
                    if described {
                        for candidate in pending.drain(..) {
                            attempt.pc.add_ice_candidate(candidate).await.context("add a remote candidate")?;
                        }
                    }
                }
            }
        }
        Ok(attempt)
    }

    /// Sends `value` as JSON, Olm-encrypted to `link`'s device and bound to the call, as
    /// `action`.
    async fn signal(
        &mut self,
        link: &Link,
        action: CallAction,
        value: serde_json::Value,
    ) -> anyhow::Result<()> {
        let payload = self
            .device
            .encrypt_call_payload(
                &link.conversation_id,
                &link.call_id,
                action_byte(action)?,
                &link.remote_account_id,
                &link.remote_device_id,
                &serde_json::to_vec(&value)?,
            )
            .await
            .context("encrypting the call payload for the other device")?;
        self.send(directed(&link.conversation_id, &link.call_id, action, &link.remote_device_id, &payload))
    }

    /// Decrypts `call`'s payload, checks that it is bound to `link`'s call and the action it
    /// came with, and reads it: a description of type `sdp_type`, or (for `Unspecified`) a
    /// candidate.
    async fn open<T: Opened>(
        &mut self,
        link: &Link,
        call: &CallEvent,
        sdp_type: RTCSdpType,
    ) -> anyhow::Result<T> {
        let what = format!("{:?} payload from {} at {}", call.action(), call.from_device_id, self.who);
        let json = self
            .device
            .decrypt_call_payload(
                &link.conversation_id,
                &link.call_id,
                action_byte(call.action())?,
                &call.from_account_id,
                &call.from_device_id,
                &call.payload,
            )
            .await
            .with_context(|| {
                format!("decrypting the {what} (or it is no call signal of this call and action)")
            })?;
        let opened = T::parse(&json).with_context(|| what.clone())?;
        opened.check(sdp_type).with_context(|| what.clone())?;
        Ok(opened)
    }
}

/// The action byte a call signal's payload is bound to (with its conversation and call).
fn action_byte(action: CallAction) -> anyhow::Result<u8> {
    u8::try_from(i32::from(action)).context("a call action beyond 255")
}

/// What a decrypted payload carries, checked against the signal it came in.
trait Opened: Sized {
    fn parse(json: &[u8]) -> anyhow::Result<Self>;
    fn check(&self, sdp_type: RTCSdpType) -> anyhow::Result<()>;
}

impl Opened for RTCSessionDescription {
    fn parse(json: &[u8]) -> anyhow::Result<Self> {
        Ok(serde_json::from_slice(json)?)
    }

    fn check(&self, sdp_type: RTCSdpType) -> anyhow::Result<()> {
        ensure!(self.sdp_type == sdp_type, "a {:?} where an {sdp_type:?} belongs", self.sdp_type);
        Ok(())
    }
}

impl Opened for RTCIceCandidateInit {
    fn parse(json: &[u8]) -> anyhow::Result<Self> {
        Ok(serde_json::from_slice(json)?)
    }

    fn check(&self, _: RTCSdpType) -> anyhow::Result<()> {
        ensure!(!self.candidate.is_empty(), "an empty candidate");
        Ok(())
    }
}

/// What the peer connection's handler and data channels report to [`CallPeer::connect`].
enum Event {
    Candidate(RTCIceCandidate),
    GatheringComplete,
    State(RTCPeerConnectionState),
    /// A data channel the other side opened (not open yet).
    Channel(Arc<dyn DataChannel>),
    Open(Arc<dyn DataChannel>),
    Message(Vec<u8>),
    Closed,
}

struct Handler {
    events: mpsc::UnboundedSender<Event>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let _ = self.events.send(Event::Candidate(event.candidate));
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.events.send(Event::GatheringComplete);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(Event::State(state));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.events.send(Event::Channel(channel));
    }
}

/// Forwards a data channel's events (open, messages, close) until it closes.
fn forward(channel: Arc<dyn DataChannel>, events: mpsc::UnboundedSender<Event>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = channel.poll().await {
            let event = match event {
                DataChannelEvent::OnOpen => Event::Open(channel.clone()),
                DataChannelEvent::OnMessage(message) => Event::Message(message.data.to_vec()),
                DataChannelEvent::OnClose => Event::Closed,
                _ => continue,
            };
            if events.send(event).is_err() {
                return;
            }
        }
    })
}

/// A candidate of the selected pair, from the stats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairEnd {
    /// host, srflx, prflx or relay.
    pub candidate_type: RTCIceCandidateType,
    /// Its address and port.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// For a local relay candidate: the TURN URL it was allocated at.
    pub url: String,
}

/// One side of one peer connection, as [`CallPeer::connect`] left it.
pub struct Attempt {
    who: String,
    pc: Arc<dyn PeerConnection>,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    started: Instant,
    /// The open data channel, if it opened.
    channel: Option<Arc<dyn DataChannel>>,
    received: VecDeque<Vec<u8>>,
    /// Every connection state it went through.
    pub states: Vec<RTCPeerConnectionState>,
    /// Every local candidate gathered (relay-only: only relay candidates).
    pub local_candidates: Vec<RTCIceCandidate>,
    /// How many remote candidates came over the signalling.
    pub remote_candidates: usize,
    /// Whether gathering completed.
    pub gathering_complete: bool,
    /// What happened when, for failure messages.
    pub trace: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("who", &self.who)
            .field("open", &self.channel.is_some())
            .field("states", &self.states)
            .field("local_candidates", &self.local_candidates.len())
            .field("remote_candidates", &self.remote_candidates)
            .field("gathering_complete", &self.gathering_complete)
            .field("trace", &self.trace)
            .finish_non_exhaustive()
    }
}

impl Attempt {
    fn note(&mut self, what: &str) {
        self.trace.push(format!("{:>6} ms {what}", self.started.elapsed().as_millis()));
    }

    /// Whether the data channel opened on this side.
    pub fn is_open(&self) -> bool {
        self.channel.is_some()
    }

    /// The last connection state.
    pub fn state(&self) -> Option<RTCPeerConnectionState> {
        self.states.last().copied()
    }

    fn channel(&self) -> anyhow::Result<&Arc<dyn DataChannel>> {
        self.channel.as_ref().with_context(|| format!("{}: the data channel is not open: {self:?}", self.who))
    }

    /// Sends `bytes` as one binary message.
    pub async fn send(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.channel()?
            .send(bytes.into())
            .await
            .with_context(|| format!("{} sends {} bytes", self.who, bytes.len()))
    }

    /// Takes an event that is not about candidates.
    async fn take(&mut self, event: Event) -> anyhow::Result<()> {
        match event {
            Event::Candidate(candidate) => {
                self.note(&format!(
                    "local {:?} candidate {}:{}",
                    candidate.typ, candidate.address, candidate.port
                ));
                self.local_candidates.push(candidate);
            }
            Event::GatheringComplete => {
                self.gathering_complete = true;
                self.note("gathering complete");
            }
            Event::State(state) => {
                self.note(&format!("connection {state}"));
                self.states.push(state);
            }
            Event::Channel(channel) => self.tasks.push(forward(channel, self.events_tx.clone())),
            Event::Open(channel) => {
                let label = channel.label().await.unwrap_or_default();
                self.note(&format!("data channel {label:?} open"));
                ensure!(label == DATA_CHANNEL, "{}: a data channel {label:?} opened", self.who);
                self.channel = Some(channel);
            }
            Event::Message(bytes) => self.received.push_back(bytes),
            Event::Closed => self.note("data channel closed"),
        }
        Ok(())
    }

    /// The next message on the data channel, within [`WAIT`].
    pub async fn receive(&mut self) -> anyhow::Result<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(message) = self.received.pop_front() {
                return Ok(message);
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => self.take(event).await?,
                Ok(None) => bail!("{}: the peer connection's events stopped: {self:?}", self.who),
                Err(_) => bail!("{}: no data channel message within {WAIT:?}: {self:?}", self.who),
            }
        }
    }

    /// The selected candidate pair (local, remote) from the connection's stats.
    pub async fn selected_pair(&self) -> anyhow::Result<(PairEnd, PairEnd)> {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let transport = report.transport().context("no transport in the stats")?;
        let pair_id = &transport.selected_candidate_pair_id;
        ensure!(!pair_id.is_empty(), "{}: no selected candidate pair in the stats", self.who);
        let pair = report
            .candidate_pairs()
            .find(|p| &p.stats.id == pair_id)
            .with_context(|| format!("no candidate pair {pair_id} in the stats"))?;
        // webrtc 0.21.1 names a pair's candidates by their ICE ids (`candidate:…`) but files the
        // candidates under `RTCLocalIceCandidate_<id>` / `RTCRemoteIceCandidate_<id>`: take both.
        let end = |id: &str, local: bool| -> anyhow::Result<PairEnd> {
            let (local_id, remote_id) =
                (format!("RTCLocalIceCandidate_{id}"), format!("RTCRemoteIceCandidate_{id}"));
            report
                .iter()
                .find_map(|entry| match entry {
                    RTCStatsReportEntry::LocalCandidate(c)
                        if local && [id, &local_id].contains(&c.stats.id.as_str()) =>
                    {
                        Some(c)
                    }
                    RTCStatsReportEntry::RemoteCandidate(c)
                        if !local && [id, &remote_id].contains(&c.stats.id.as_str()) =>
                    {
                        Some(c)
                    }
                    _ => None,
                })
                .map(|c| PairEnd {
                    candidate_type: c.candidate_type,
                    address: c.address.clone().unwrap_or_default(),
                    port: c.port,
                    url: c.url.clone(),
                })
                .with_context(|| format!("no candidate {id} in the stats"))
        };
        Ok((end(&pair.local_candidate_id, true)?, end(&pair.remote_candidate_id, false)?))
    }

    /// Closes the peer connection.
    pub async fn close(self) -> anyhow::Result<()> {
        for task in &self.tasks {
            task.abort();
        }
        self.pc.close().await.with_context(|| format!("{} closes its peer connection", self.who))
    }
}
