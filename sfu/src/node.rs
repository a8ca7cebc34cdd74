//! An SFU node: one UDP port, a WebRTC session (the `rtc` crate, sans-I/O) per participant, and
//! the [`Room`]s that decide what each hears. One task owns everything, so nothing is locked on
//! the packet path; others talk to it through [`Node`].
//!
//! # Sessions
//!
//! A participant offers one `sendonly` audio section (its voice: its SSRC in `a=ssrc`, its audio
//! level in the RFC 6464 extension if it has one) and up to [`RoomConfig::audio_slots`]
//! `recvonly` audio sections (what it hears); and, for video, up to two `sendonly` video
//! sections (a camera and a screen, VP8, each with its SSRC) and up to
//! [`RoomConfig::video_slots`] `recvonly` ones. [`Node::join`] answers with the SFU's one host
//! candidate and a fixed SSRC per slot. A listener's picture loss (RTCP PLI or FIR on a video
//! slot) becomes a PLI to the slot's sender, within the room's rate limit. Packets on the one port are told apart by the ICE
//! username of their STUN checks (each session has its own), then by address: every address a
//! session's checks came from (a device checks from each of its interfaces, and ICE may pick any
//! of them), up to [`MAX_ADDRESSES`].
//!
//! # Containment
//!
//! A session that fails (ICE or DTLS) or stays silent past the ICE timeouts is dropped and its
//! participant leaves its room, with the reason logged; a malformed or spoofed packet is counted
//! and dropped ([`crate::room::Dropped`]); datagrams from addresses no session knows are ignored.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol as _;
use rtc::shared::marshal::{Marshal as _, Unmarshal as _};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::room::{Counters, JoinError, MAX_VIDEO_UPLINKS, Media, ParticipantId, Room, RoomConfig, Uplink};

/// The RFC 6464 audio level header extension.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// Opus, as browsers offer it.
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// VP8, as browsers offer it (the answer takes the offer's number).
const VP8_PAYLOAD_TYPE: u8 = 96;
/// The largest datagram taken in (bigger ones are not RTP, STUN or DTLS we speak).
const MAX_DATAGRAM: usize = 1_500;
/// Addresses one session may send from (one per candidate pair it checks).
pub const MAX_ADDRESSES: usize = 8;
/// Commands waiting for the node's task, at most.
const COMMAND_QUEUE: usize = 256;

/// How a node runs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where its UDP port listens.
    pub bind: SocketAddr,
    /// The address it gives participants as its host candidate (what they can reach).
    pub advertise: IpAddr,
    /// How each room behaves.
    pub room: RoomConfig,
    /// Participants on this node at most, over all rooms.
    pub max_participants: usize,
    /// A participant whose session has been silent this long (no ICE check, no packet: its app
    /// crashed or its network went) is dropped, and its room goes on without it.
    pub drop_after: Duration,
    /// Told of each participant the node dropped by itself (its session failed or went silent),
    /// not of those who left through [`Node::leave`]. A full channel loses the news, never the
    /// packet path's time.
    pub dropped: Option<mpsc::Sender<ParticipantId>>,
}

/// Why a participant could not join.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinRefusal {
    /// The offer is not one voice, some slots and maybe video (the message says what is wrong).
    #[error("the offer is not one sendonly audio section, recvonly ones and video: {0}")]
    Offer(String),
    /// The room refused it.
    #[error("the room refused: {0:?}")]
    Room(JoinError),
    /// The node has as many participants as it may.
    #[error("this SFU node is full")]
    NodeFull,
    /// The WebRTC session could not be set up.
    #[error("the session could not be set up: {0}")]
    Session(String),
    /// The node has stopped.
    #[error("the SFU node has stopped")]
    Stopped,
}

/// A room's name on a node (the conversation or channel it is for).
pub type RoomKey = u128;

enum Command {
    Join {
        room: RoomKey,
        participant: ParticipantId,
        offer: String,
        reply: oneshot::Sender<Result<String, JoinRefusal>>,
    },
    Leave {
        participant: ParticipantId,
        reply: oneshot::Sender<bool>,
    },
    Counters {
        participant: ParticipantId,
        reply: oneshot::Sender<Option<Counters>>,
    },
    Stats {
        reply: oneshot::Sender<NodeStats>,
    },
}

/// What a node holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Sessions (participants), over all rooms.
    pub sessions: usize,
    /// Rooms with someone in them.
    pub rooms: usize,
    /// Addresses matched to sessions.
    pub addresses: usize,
}

/// A running SFU node.
#[derive(Clone)]
pub struct Node {
    commands: mpsc::Sender<Command>,
    local: SocketAddr,
}

impl Node {
    /// Binds the node's UDP port and starts its task.
    pub async fn start(config: NodeConfig) -> std::io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind(config.bind).await?);
        let local = socket.local_addr()?;
        let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
        let state = State {
            advertise: SocketAddr::new(config.advertise, local.port()),
            config,
            socket,
            local,
            peers: HashMap::new(),
            rooms: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
        };
        tokio::spawn(state.run(queue));
        Ok(Self { commands, local })
    }

    /// The UDP address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Lets `participant` into `room` with its SDP `offer`; returns the SDP answer.
    pub async fn join(
        &self,
        room: RoomKey,
        participant: ParticipantId,
        offer: String,
    ) -> Result<String, JoinRefusal> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Join { room, participant, offer, reply })
            .await
            .map_err(|_| JoinRefusal::Stopped)?;
        answer.await.map_err(|_| JoinRefusal::Stopped)?
    }

    /// Takes `participant` out of its room and closes its session; `false` if it was not in one.
    pub async fn leave(&self, participant: ParticipantId) -> bool {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Leave { participant, reply }).await.is_err() {
            return false;
        }
        done.await.unwrap_or(false)
    }

    /// What the node holds now.
    pub async fn stats(&self) -> NodeStats {
        let (reply, stats) = oneshot::channel();
        if self.commands.send(Command::Stats { reply }).await.is_err() {
            return NodeStats::default();
        }
        stats.await.unwrap_or_default()
    }

    /// What `participant` sent and received.
    pub async fn counters(&self, participant: ParticipantId) -> Option<Counters> {
        let (reply, counters) = oneshot::channel();
        self.commands.send(Command::Counters { participant, reply }).await.ok()?;
        counters.await.ok().flatten()
    }
}

struct Peer {
    pc: RTCPeerConnection,
    room: RoomKey,
    ufrag: String,
    /// Its slots' senders, in slot order, each with its SSRC and negotiated payload type: audio
    /// (Opus), then video (VP8).
    slots: Vec<(RTCRtpSenderId, u32, u8)>,
    video_slots: Vec<(RTCRtpSenderId, u32, u8)>,
    /// A receiver of its session, through which RTCP (a key frame request) reaches it.
    receiver: RTCRtpReceiverId,
    /// The addresses its checks came from.
    addrs: Vec<SocketAddr>,
}

struct State {
    config: NodeConfig,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    advertise: SocketAddr,
    peers: HashMap<ParticipantId, Peer>,
    rooms: HashMap<RoomKey, Room>,
    by_ufrag: HashMap<String, ParticipantId>,
    by_addr: HashMap<SocketAddr, ParticipantId>,
}

/// What one section of an offer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    /// The participant's voice (it sends there).
    Voice,
    /// Its camera or screen (it sends there).
    Video,
    /// An audio slot (it receives there).
    AudioSlot,
    /// A video slot (it receives there).
    VideoSlot,
}

/// What an offer asks for.
#[derive(Debug, PartialEq, Eq)]
struct Offered {
    /// What it sends.
    uplink: Uplink,
    /// Its sections in order.
    sections: Vec<Section>,
}

impl Offered {
    fn count(&self, kind: Section) -> usize {
        self.sections.iter().filter(|s| **s == kind).count()
    }
}

/// The SSRC a `sendonly` section sends with: the first of an `a=ssrc-group:FID` (the media, not
/// its retransmissions), else the first `a=ssrc`.
fn section_ssrc(lines: &[&str]) -> Option<u32> {
    let grouped = lines
        .iter()
        .find_map(|l| l.strip_prefix("a=ssrc-group:FID "))
        .and_then(|r| r.split_whitespace().next());
    let first =
        || lines.iter().find_map(|l| l.strip_prefix("a=ssrc:")).and_then(|r| r.split_whitespace().next());
    grouped.or_else(first).and_then(|n| n.parse::<u32>().ok())
}

/// What the offer asks for: the voice's SSRC and audio level extension id, the video streams'
/// SSRCs, and its sections in order.
fn read_offer(sdp: &str) -> Result<Offered, JoinRefusal> {
    let bad = |what: &str| JoinRefusal::Offer(what.to_owned());
    let mut voice: Option<(u32, Option<u8>)> = None;
    let mut video = Vec::new();
    let mut sections = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        let lines: Vec<&str> = section.lines().map(str::trim).collect();
        let audio = lines.first().is_some_and(|l| l.starts_with("audio "));
        if !audio && !lines.first().is_some_and(|l| l.starts_with("video ")) {
            return Err(bad("only audio and video sections"));
        }
        let has = |attribute: &str| lines.contains(&attribute);
        if has("a=recvonly") {
            sections.push(if audio { Section::AudioSlot } else { Section::VideoSlot });
        } else if has("a=sendonly") {
            let ssrc = section_ssrc(&lines).ok_or_else(|| bad("each sendonly section names its SSRC"))?;
            if !audio {
                if video.len() == MAX_VIDEO_UPLINKS {
                    return Err(bad("at most two sendonly video sections (a camera and a screen)"));
                }
                video.push(ssrc);
                sections.push(Section::Video);
                continue;
            }
            if voice.is_some() {
                return Err(bad("one sendonly audio section"));
            }
            let audio_level_extension = lines
                .iter()
                .filter_map(|l| l.strip_prefix("a=extmap:"))
                .find(|rest| rest.split_whitespace().nth(1) == Some(AUDIO_LEVEL_URI))
                .and_then(|rest| rest.split(['/', ' ']).next())
                .and_then(|id| id.parse::<u8>().ok())
                .filter(|id| (1..=14).contains(id));
            voice = Some((ssrc, audio_level_extension));
            sections.push(Section::Voice);
        } else {
            return Err(bad("each section sendonly or recvonly"));
        }
    }
    let (ssrc, audio_level_extension) = voice.ok_or_else(|| bad("one sendonly audio section"))?;
    let mut uplink = Uplink::audio(ssrc, audio_level_extension);
    for (at, ssrc) in video.into_iter().enumerate() {
        uplink.video[at] = Some(ssrc);
    }
    Ok(Offered { uplink, sections })
}

/// The answer with the sections the participant sends on (numbers `sections`) marked
/// `a=recvonly`, as JSEP answers a `sendonly` offer. The stack answers `a=sendrecv` there
/// because a track sits on each section to keep the slots' tracks in order; nothing is ever sent
/// on them, and browsers refuse an answer that would send where their offer only sends.
fn receive_only(answer: &str, sections: &[usize]) -> String {
    let mut out = String::with_capacity(answer.len());
    let mut index: Option<usize> = None;
    for line in answer.split_inclusive('\n') {
        if line.starts_with("m=") {
            index = Some(index.map_or(0, |i| i + 1));
        }
        if index.is_some_and(|i| sections.contains(&i)) && line.trim_end() == "a=sendrecv" {
            out.push_str("a=recvonly");
            out.push_str(&line["a=sendrecv".len()..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// The ICE username fragment of a STUN binding request (`ours:theirs`), if `datagram` is one.
fn stun_ufrag(datagram: &[u8]) -> Option<&str> {
    // RFC 5389: type (2, top bits 00), length (2), magic cookie, transaction id (12).
    if datagram.len() < 20 || datagram[0] & 0xC0 != 0 || datagram[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    let mut at = 20;
    while at + 4 <= datagram.len() {
        let kind = u16::from_be_bytes([datagram[at], datagram[at + 1]]);
        let length = usize::from(u16::from_be_bytes([datagram[at + 2], datagram[at + 3]]));
        let value = datagram.get(at + 4..at + 4 + length)?;
        if kind == 0x0006 {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        at += 4 + length.div_ceil(4) * 4;
    }
    None
}

fn random_token(length: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; length];
    // Without randomness there is no secure session at all: a fixed token is no fallback.
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    bytes.iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect()
}

fn session_error(e: impl std::fmt::Display) -> JoinRefusal {
    JoinRefusal::Session(e.to_string())
}

impl State {
    async fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        let socket = self.socket.clone();
        loop {
            let next = self.peers.values_mut().filter_map(|p| p.pc.poll_timeout()).min();
            let sleep =
                next.map_or(Duration::from_secs(1), |at| at.saturating_duration_since(Instant::now()));
            tokio::select! {
                command = queue.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => break,
                },
                received = socket.recv_from(&mut buffer) => match received {
                    Ok((n, from)) => self.datagram(&buffer[..n], from).await,
                    Err(e) => tracing::warn!(error = %e, "SFU socket read"),
                },
                () = tokio::time::sleep(sleep) => {
                    let now = Instant::now();
                    let due: Vec<ParticipantId> = self
                        .peers
                        .iter_mut()
                        .filter_map(|(id, p)| p.pc.poll_timeout().is_some_and(|at| at <= now).then_some(*id))
                        .collect();
                    for id in due {
                        if let Some(peer) = self.peers.get_mut(&id)
                            && let Err(e) = peer.pc.handle_timeout(now)
                        {
                            tracing::debug!(participant = id.0, error = %e, "SFU session timer");
                        }
                        self.pump(id).await;
                    }
                }
            }
        }
        for (_, mut peer) in self.peers.drain() {
            let _ = peer.pc.close();
        }
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Join { room, participant, offer, reply } => {
                let answer = self.join(room, participant, offer);
                let _ = reply.send(answer);
                self.pump(participant).await;
            }
            Command::Leave { participant, reply } => {
                let _ = reply.send(self.remove(participant, "left"));
            }
            Command::Stats { reply } => {
                let _ = reply.send(NodeStats {
                    sessions: self.peers.len(),
                    rooms: self.rooms.len(),
                    addresses: self.by_addr.len(),
                });
            }
            Command::Counters { participant, reply } => {
                let counters = self
                    .peers
                    .get(&participant)
                    .and_then(|p| self.rooms.get(&p.room))
                    .and_then(|room| room.counters(participant));
                let _ = reply.send(counters);
            }
        }
    }

    fn join(
        &mut self,
        key: RoomKey,
        participant: ParticipantId,
        offer: String,
    ) -> Result<String, JoinRefusal> {
        if self.peers.contains_key(&participant) {
            return Err(JoinRefusal::Room(JoinError::AlreadyIn));
        }
        if self.peers.len() >= self.config.max_participants {
            return Err(JoinRefusal::NodeFull);
        }
        let offered = read_offer(&offer)?;
        let room = self.rooms.entry(key).or_insert_with(|| Room::new(self.config.room.clone()));
        let (audio, video) = room
            .join_with_video(
                participant,
                offered.uplink,
                offered.count(Section::AudioSlot),
                offered.count(Section::VideoSlot),
            )
            .map_err(JoinRefusal::Room)?;
        let session =
            Self::session(self.advertise, self.config.drop_after, offer, &offered.sections, &audio, &video);
        let (pc, ufrag, (slots, video_slots), answer) = match session {
            Ok(made) => made,
            Err(e) => {
                room.leave(participant);
                if room.is_empty() {
                    self.rooms.remove(&key);
                }
                return Err(e);
            }
        };
        self.by_ufrag.insert(ufrag.clone(), participant);
        let receiver =
            RTCRtpReceiverId::from(offered.sections.iter().position(|s| *s == Section::Voice).unwrap_or(0));
        let (audio, video) = (slots.len(), video_slots.len());
        self.peers.insert(
            participant,
            Peer { pc, room: key, ufrag, slots, video_slots, receiver, addrs: Vec::new() },
        );
        tracing::info!(participant = participant.0, room = %key, audio, video, "joined the SFU");
        Ok(answer)
    }

    /// The session of one participant: its answer to `offer`, with a sender per slot (audio
    /// slots with `audio`'s SSRCs, video slots with `video`'s, in the order of `sections`).
    #[allow(clippy::type_complexity)] // One constructor's parts, used once.
    fn session(
        advertise: SocketAddr,
        drop_after: Duration,
        offer: String,
        sections: &[Section],
        audio: &[u32],
        video: &[u32],
    ) -> Result<
        (RTCPeerConnection, String, (Vec<(RTCRtpSenderId, u32, u8)>, Vec<(RTCRtpSenderId, u32, u8)>), String),
        JoinRefusal,
    > {
        let opus = RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        };
        let vp8 = RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        };
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters { rtp_codec: opus.clone(), payload_type: OPUS_PAYLOAD_TYPE },
                RtpCodecKind::Audio,
            )
            .map_err(session_error)?;
        media
            .register_codec(
                RTCRtpCodecParameters { rtp_codec: vp8.clone(), payload_type: VP8_PAYLOAD_TYPE },
                RtpCodecKind::Video,
            )
            .map_err(session_error)?;
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_owned() },
                RtpCodecKind::Audio,
                None,
            )
            .map_err(session_error)?;
        let registry = register_default_interceptors(Registry::new(), &mut media).map_err(session_error)?;
        let registry = crate::feedback::with_gate(registry);
        let ufrag = random_token(16);
        let password = random_token(32);
        if ufrag.is_empty() || password.is_empty() {
            return Err(session_error("no randomness for the session's ICE credentials"));
        }
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ufrag.clone(), password)
            .with_ice_timeouts(Some(drop_after / 2), Some(drop_after), None)
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(Instant::now())
            .map_err(session_error)?;
        let offer = RTCSessionDescription::offer(offer).map_err(|e| JoinRefusal::Offer(e.to_string()))?;
        pc.set_remote_description(Instant::now(), offer).map_err(|e| JoinRefusal::Offer(e.to_string()))?;
        // A track goes to each offered section in order, those it sends on too (where the SFU
        // never sends: the participant only sends there); the others are the slots, in order.
        let mut audio_senders = Vec::with_capacity(audio.len());
        let mut video_senders = Vec::with_capacity(video.len());
        let (mut next_audio, mut next_video) = (audio.iter(), video.iter());
        let seed = audio.iter().chain(video).fold(0x0BAD_5EED_u32, |a, s| a ^ s.rotate_left(7));
        for (index, section) in sections.iter().enumerate() {
            let placeholder = seed.wrapping_add(u32::try_from(index).unwrap_or(0).wrapping_mul(0x9E37_79B9));
            let (kind, codec, ssrc, name) = match section {
                Section::Voice => (RtpCodecKind::Audio, &opus, placeholder, "voice".to_owned()),
                Section::Video => (RtpCodecKind::Video, &vp8, placeholder, format!("video-{index}")),
                // Slots past the room's limit get no track: answered without a sender, they stay
                // silent (they are the last of their kind, so the tracks after still go in order).
                Section::AudioSlot => {
                    let Some(&ssrc) = next_audio.next() else { continue };
                    (RtpCodecKind::Audio, &opus, ssrc, format!("slot-{}", audio_senders.len()))
                }
                Section::VideoSlot => {
                    let Some(&ssrc) = next_video.next() else { continue };
                    (RtpCodecKind::Video, &vp8, ssrc, format!("video-slot-{}", video_senders.len()))
                }
            };
            let track = MediaStreamTrack::new(
                "kitsulan-sfu".to_owned(),
                name.clone(),
                name,
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                    codec: codec.clone(),
                    ..Default::default()
                }],
            );
            let sender = pc.add_track(track).map_err(session_error)?;
            match section {
                Section::AudioSlot => audio_senders.push((sender, ssrc)),
                Section::VideoSlot => video_senders.push((sender, ssrc)),
                Section::Voice | Section::Video => {}
            }
        }
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: advertise.ip().to_string(),
                port: advertise.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .map_err(session_error)?;
        let candidate = RTCIceCandidate::from(&candidate).to_json().map_err(session_error)?;
        pc.add_local_candidate(candidate).map_err(session_error)?;
        let answer = pc.create_answer(None).map_err(session_error)?;
        pc.set_local_description(Instant::now(), answer).map_err(session_error)?;
        let answer = pc.local_description().ok_or_else(|| session_error("no local description"))?.sdp;
        let sending: Vec<usize> = sections
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Section::Voice | Section::Video))
            .map(|(i, _)| i)
            .collect();
        let answer = receive_only(&answer, &sending);
        let mut negotiated = |senders: Vec<(RTCRtpSenderId, u32)>, mime: &str, default: u8| {
            senders
                .into_iter()
                .map(|(id, ssrc)| {
                    let payload_type = pc
                        .rtp_sender(id)
                        .and_then(|mut sender| {
                            sender
                                .get_parameters()
                                .rtp_parameters
                                .codecs
                                .iter()
                                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                                .map(|c| c.payload_type)
                        })
                        .unwrap_or(default);
                    (id, ssrc, payload_type)
                })
                .collect::<Vec<_>>()
        };
        let slots = negotiated(audio_senders, MIME_TYPE_OPUS, OPUS_PAYLOAD_TYPE);
        let video_slots = negotiated(video_senders, MIME_TYPE_VP8, VP8_PAYLOAD_TYPE);
        Ok((pc, ufrag, (slots, video_slots), answer))
    }

    /// Takes a participant out: its room forgets it (and goes when empty), its session closes.
    fn remove(&mut self, participant: ParticipantId, why: &str) -> bool {
        let Some(mut peer) = self.peers.remove(&participant) else { return false };
        self.by_ufrag.remove(&peer.ufrag);
        for addr in &peer.addrs {
            self.by_addr.remove(addr);
        }
        if let Some(room) = self.rooms.get_mut(&peer.room) {
            room.leave(participant);
            if room.is_empty() {
                self.rooms.remove(&peer.room);
            }
        }
        let _ = peer.pc.close();
        tracing::info!(participant = participant.0, room = %peer.room, why, "left the SFU");
        true
    }

    async fn datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        let participant = match self.by_addr.get(&from) {
            Some(p) => *p,
            None => {
                let Some(p) = stun_ufrag(datagram).and_then(|ufrag| self.by_ufrag.get(ufrag)).copied() else {
                    return;
                };
                // A check names the session; what comes later from its address goes by address
                // (an address another session holds is never taken over).
                if let Some(peer) = self.peers.get_mut(&p)
                    && peer.addrs.len() < MAX_ADDRESSES
                {
                    peer.addrs.push(from);
                    self.by_addr.insert(from, p);
                }
                p
            }
        };
        let Some(peer) = self.peers.get_mut(&participant) else { return };
        let read = peer.pc.handle_read(TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(datagram),
        });
        if let Err(e) = read {
            tracing::debug!(participant = participant.0, error = %e, "SFU session refused a datagram");
        }
        self.pump(participant).await;
    }

    /// Runs one session's output: datagrams out, state changes, and the packets it received,
    /// forwarded through its room to the others' sessions (whose output then goes out too).
    async fn pump(&mut self, participant: ParticipantId) {
        let mut touched = vec![participant];
        let mut failed = None;
        let mut received = Vec::new();
        let mut pictures_lost = Vec::new();
        if let Some(peer) = self.peers.get_mut(&participant) {
            while let Some(event) = peer.pc.poll_event() {
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event
                    && matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)
                {
                    failed = Some(state);
                }
            }
            while let Some(TaggedRTCMessage { message, .. }) = peer.pc.poll_read() {
                match message {
                    RTCMessage::RtpPacket(_, packet) => {
                        if let Ok(bytes) = packet.marshal() {
                            received.push(bytes);
                        }
                    }
                    RTCMessage::RtcpPacket(_, packets) => {
                        // Which video slots lost their picture, by the SSRC each report names
                        // (a compound packet may name several).
                        for packet in &packets {
                            let any = packet.as_any();
                            let ssrcs: Vec<u32> =
                                if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                                    vec![pli.media_ssrc]
                                } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                                    fir.fir.iter().map(|entry| entry.ssrc).collect()
                                } else {
                                    continue;
                                };
                            for ssrc in ssrcs {
                                if let Some(slot) = peer.video_slots.iter().position(|(_, s, _)| *s == ssrc) {
                                    pictures_lost.push(slot);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let now = Instant::now();
        if let Some(room) = self.peers.get(&participant).and_then(|p| self.rooms.get_mut(&p.room)) {
            for slot in pictures_lost {
                let _ = room.picture_lost(participant, slot, now);
            }
        }
        for bytes in received {
            let Some(room_key) = self.peers.get(&participant).map(|p| p.room) else { break };
            let Some(room) = self.rooms.get_mut(&room_key) else { break };
            let Ok(forwards) = room.forward(participant, &bytes, now) else { continue };
            for forward in forwards {
                let Some(listener) = self.peers.get_mut(&forward.to) else { continue };
                let slots = match forward.media {
                    Media::Audio => &listener.slots,
                    Media::Video => &listener.video_slots,
                };
                let Some((sender, _, payload_type)) = slots.get(forward.slot).copied() else {
                    continue;
                };
                let mut bytes = forward.packet.as_slice();
                let Ok(mut packet) = rtc::rtp::Packet::unmarshal(&mut bytes) else { continue };
                packet.header.payload_type = payload_type;
                if forward.media == Media::Video {
                    // The sender's extensions (its transport-wide sequence numbers, above all)
                    // mean nothing on the listener's session.
                    packet.header.extension = false;
                    packet.header.extensions.clear();
                }
                if let Some(mut sender) = listener.pc.rtp_sender(sender)
                    && let Err(e) = sender.write_rtp(now, packet)
                {
                    tracing::trace!(participant = forward.to.0, error = %e, "SFU slot write");
                }
                if !touched.contains(&forward.to) {
                    touched.push(forward.to);
                }
            }
        }
        // Key frames the room asks for: a PLI to each sender, on its own session.
        let requests = self
            .peers
            .get(&participant)
            .and_then(|p| self.rooms.get_mut(&p.room))
            .map(|room| room.keyframe_requests())
            .unwrap_or_default();
        for (sender, ssrc) in requests {
            let Some(peer) = self.peers.get_mut(&sender) else { continue };
            let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
            let receiver = peer.receiver;
            if let Some(mut receiver) = peer.pc.rtp_receiver(receiver)
                && let Err(e) = receiver.write_rtcp(now, vec![Box::new(pli)])
            {
                tracing::debug!(participant = sender.0, error = %e, "SFU key frame request");
            }
            if !touched.contains(&sender) {
                touched.push(sender);
            }
        }
        for id in touched {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            while let Some(out) = peer.pc.poll_write() {
                if let Err(e) = self.socket.send_to(&out.message, out.transport.peer_addr).await {
                    tracing::debug!(participant = id.0, error = %e, "SFU socket write");
                }
            }
        }
        if let Some(state) = failed {
            let why =
                if state == RTCPeerConnectionState::Failed { "session failed" } else { "session closed" };
            if self.remove(participant, why)
                && let Some(dropped) = &self.config.dropped
            {
                let _ = dropped.try_send(participant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_read_for_one_voice_and_its_slots() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:3 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=sendonly\r\na=ssrc:1234 cname:x\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n";
        let uplink = Uplink::audio(1234, Some(3));
        let sections = vec![Section::Voice, Section::AudioSlot, Section::AudioSlot];
        assert_eq!(read_offer(offer), Ok(Offered { uplink, sections }));
        // With a camera (its media SSRC, not its retransmissions'), a screen and a video slot.
        let video = format!(
            "{offer}m=video 9 X 96\r\na=sendonly\r\na=ssrc-group:FID 77 78\r\na=ssrc:78 cname:x\r\na=ssrc:77 cname:x\r\nm=video 9 X 96\r\na=sendonly\r\na=ssrc:88 cname:x\r\nm=video 9 X 96\r\na=recvonly\r\n"
        );
        let offered = read_offer(&video).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(offered.uplink.video, [Some(77), Some(88)]);
        assert_eq!((offered.count(Section::Video), offered.count(Section::VideoSlot)), (2, 1));
        let three = format!("{video}m=video 9 X 96\r\na=sendonly\r\na=ssrc:99 cname:x\r\n");
        for bad in [
            "v=0\r\nm=audio 9 X 111\r\na=recvonly\r\n",
            "v=0\r\nm=video 9 X 96\r\na=sendonly\r\na=ssrc:1\r\n",
            "v=0\r\nm=application 9 X 96\r\na=sendrecv\r\n",
            three.as_str(),
            "v=0\r\nm=audio 9 X 111\r\na=sendonly\r\n",
            "v=0\r\nm=audio 9 X 111\r\na=sendonly\r\na=ssrc:1\r\nm=audio 9 X 111\r\na=sendonly\r\na=ssrc:2\r\n",
            "v=0\r\nm=audio 9 X 111\r\na=sendrecv\r\na=ssrc:1\r\n",
            "",
        ] {
            assert!(matches!(read_offer(bad), Err(JoinRefusal::Offer(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_voice_section_is_answered_receive_only() {
        let answer = "v=0\r\na=group:BUNDLE 0 1\r\nm=audio 9 X 111\r\na=mid:0\r\na=sendonly\r\nm=audio 9 X 111\r\na=mid:1\r\na=sendrecv\r\nm=audio 9 X 111\r\na=sendrecv\r\n";
        let fixed = receive_only(answer, &[1]);
        assert_eq!(fixed, answer.replacen("a=mid:1\r\na=sendrecv", "a=mid:1\r\na=recvonly", 1));
        assert_eq!(fixed.matches("a=sendrecv").count(), 1, "other sections are left alone");
        assert_eq!(receive_only(answer, &[5]), answer, "no such section: unchanged");
        assert_eq!(receive_only(answer, &[1, 2]).matches("a=recvonly").count(), 2);
    }

    #[test]
    fn stun_checks_name_their_session() {
        let mut check = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xA4, 0x42];
        check.extend_from_slice(&[7; 12]);
        check.extend_from_slice(&[0x00, 0x06, 0x00, 0x09]);
        check.extend_from_slice(b"ours:them\0\0\0");
        assert_eq!(stun_ufrag(&check), Some("ours"));
        assert_eq!(stun_ufrag(&check[..30]), None, "truncated");
        let mut rtp = check.clone();
        rtp[0] = 0x80;
        assert_eq!(stun_ufrag(&rtp), None, "not STUN");
    }
}
