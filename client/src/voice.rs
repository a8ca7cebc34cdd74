//! A participant of a voice room as the tests and the load generator need one: a real WebRTC
//! session (the `rtc` stack, over its own UDP socket, with ICE, DTLS and SRTP) that offers one
//! voice and `slots` streams to hear, sends numbered Opus-shaped packets 20 ms apart, and
//! records which packets of whom it heard. What it sends is marked, not encoded audio: the SFU
//! forwards packets without reading them, so the marks are what a test checks.
//!
//! Payloads are `[who, number (2 bytes, big-endian), sent (4 bytes: microseconds since this
//! process's first voice packet), 0xAB…]`, 60 bytes, with an RFC 6464
//! audio level of -40 dBov in header extension 1. With a room key ([`Speech::room_key`]) each
//! payload is sealed as an SFrame frame (`kitsulan_crypto::sframe`, `KID` = who, `CTR` = number)
//! and opened on arrival: a payload that arrives in the clear, or does not authenticate, is an
//! error, so a test through the SFU shows it forwarded only ciphertext it could not change.
//!
//! With a [`KeyRing`] ([`VoicePeer::run_keyed`]) each participant has a key of its own that
//! may change while the room runs, as the apps' keys do (shared over Olm, new ones when someone
//! leaves): frames under a key not (or no longer) held are counted, not opened.
//!
//! With a camera ([`VoicePeer::offer_with_camera`]) it also offers one `sendonly` VP8 section
//! and some `recvonly` ones, and sends a marked video frame every 60 ms: `[VP8 descriptor,
//! frame tag, 9 bytes, who, number]`, sealed with the frame tag's bytes in the clear as the PWA
//! seals VP8 (crypto/FORMAT.md). Frames 5, 15, 25… are key frames, the others delta frames, so
//! a test can tell that the SFU starts each listener at a key frame.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bytes::{Bytes, BytesMut};
use kitsulan_crypto::sframe;
use kitsulan_proto::v1::voice_service_client::VoiceServiceClient;
use kitsulan_proto::v1::{JoinVoiceRequest, LeaveVoiceRequest};
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol as _;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

impl crate::client::Client {
    /// `VoiceService`, as this device.
    pub fn voice(&self) -> VoiceServiceClient<crate::client::Authed> {
        VoiceServiceClient::with_interceptor(self.channel(), self.headers())
    }

    /// `JoinVoice`: the SFU's answer to `offer`.
    pub async fn join_voice(&self, conversation_id: &str, offer: String) -> Result<String, tonic::Status> {
        let request = JoinVoiceRequest { conversation_id: conversation_id.to_owned(), offer_sdp: offer };
        Ok(self.voice().join_voice(request).await?.into_inner().answer_sdp)
    }

    /// `LeaveVoice`.
    pub async fn leave_voice(&self, conversation_id: &str) -> Result<(), tonic::Status> {
        let request = LeaveVoiceRequest { conversation_id: conversation_id.to_owned() };
        self.voice().leave_voice(request).await?;
        Ok(())
    }
}

/// Who filmed a video frame that arrived, and its number; sealed frames are opened (and must
/// open under their sender's key).
fn see(who: u8, payload: &[u8], room_key: Option<&[u8; 16]>) -> anyhow::Result<(u8, u16)> {
    let frame = payload.get(1..).context("a video packet without a frame")?;
    let key = frame.first().is_some_and(|tag| tag & 1 == 0);
    let frame = match room_key {
        None => frame.to_vec(),
        Some(base) => {
            ensure!(
                !frame.windows(8).any(|w| w == [0xCD; 8]),
                "participant {who}: a video frame in the clear"
            );
            let mut keys = None;
            let (kid, _, frame) = sframe::open_keeping(
                |kid| Some(&*keys.insert(sframe::FrameKey::derive(base, kid))),
                frame,
                vp8_clear(key),
            )
            .map_err(|e| anyhow::anyhow!("participant {who}: a video frame did not open: {e}"))?;
            ensure!(
                frame.get(10).is_some_and(|w| u64::from(*w) == kid),
                "participant {who}: a frame under another's key"
            );
            frame
        }
    };
    let mark = frame.get(10..13).context("a video frame without its mark")?;
    Ok((mark[0], u16::from_be_bytes([mark[1], mark[2]])))
}

/// The RFC 6464 audio level header extension.
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// How long after its last packet a participant keeps listening.
const LINGER: Duration = Duration::from_millis(1_500);

/// What one participant heard: per sender, the packet numbers.
pub type Heard = BTreeMap<u8, BTreeSet<u16>>;

/// The clock of the send times in payloads: participants in one process share it, so a
/// receiver can tell how long a packet took from its sender through the SFU.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Where the filler of a payload starts (after who, number and the send time).
const FILLER_AT: usize = 7;

/// How a participant speaks.
#[derive(Clone, Copy, Debug)]
pub struct Speech {
    /// Packets to send, 20 ms apart.
    pub packets: u16,
    /// Vanish without a word (no more packets, no ICE checks) after this many, as a killed app.
    pub crash_after: Option<u16>,
    /// Give up after this long.
    pub deadline: Duration,
    /// The room's SFrame base key: seal what is sent, open what arrives.
    pub room_key: Option<[u8; 16]>,
}

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

/// What a participant took in: the voices heard and the video frames seen (per sender, the
/// numbers), and how long each voice packet took from its sender.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Voice packets heard, per sender.
    pub heard: Heard,
    /// Video frames seen, per sender.
    pub seen: Heard,
    /// Sender to here, per voice packet heard.
    pub delays: Vec<Duration>,
    /// With a [`KeyRing`]: the voice packets heard under each key, per (sender, `KID`).
    pub by_key: BTreeMap<(u8, u64), BTreeSet<u16>>,
}

/// The SFrame keys of one participant in a room whose keys change while it runs: its own
/// (shared with the others by whoever drives the test, over Olm) and those of the others that
/// reached it, each with whose it is. A clone is the same ring.
#[derive(Clone, Default)]
pub struct KeyRing(Arc<std::sync::Mutex<Ring>>);

#[derive(Default)]
struct Ring {
    own: Option<sframe::FrameKey>,
    peers: std::collections::HashMap<u64, (u8, sframe::FrameKey)>,
    unopened: u64,
}

impl KeyRing {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// From the next packet on, this participant seals with `kid` and `base`.
    pub fn set_own(&self, kid: u32, base: &[u8; 16]) {
        self.ring().own = Some(sframe::FrameKey::derive(base, u64::from(kid)));
    }

    /// Participant `who`'s key `kid` reached us.
    pub fn add_peer(&self, who: u8, kid: u32, base: &[u8; 16]) {
        self.ring().peers.insert(u64::from(kid), (who, sframe::FrameKey::derive(base, u64::from(kid))));
    }

    /// Forgets key `kid`: its frames no longer open.
    pub fn remove_peer(&self, kid: u32) {
        self.ring().peers.remove(&u64::from(kid));
    }

    /// Frames that arrived under a key not held.
    pub fn unopened(&self) -> u64 {
        self.ring().unopened
    }
}

/// Whether video frame `number` is a key frame.
pub fn is_key_frame(number: u16) -> bool {
    number % 10 == 5
}

/// The clear bytes of a VP8 frame sealed end to end: 10 of a key frame, 3 of a delta frame.
fn vp8_clear(key: bool) -> usize {
    if key { 10 } else { 3 }
}

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// A participant whose offer is made and whose answer is awaited, then who speaks and listens.
pub struct VoicePeer {
    who: u8,
    pc: RTCPeerConnection,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    sender: RTCRtpSenderId,
    ssrc: u32,
    /// Its camera's sender and SSRC.
    camera: Option<(RTCRtpSenderId, u32)>,
}

impl VoicePeer {
    /// Participant `who`, on a UDP socket of `ip`, hearing `slots` streams; returns it with its
    /// SDP offer.
    pub async fn offer(who: u8, ip: std::net::IpAddr, slots: usize) -> anyhow::Result<(Self, String)> {
        Self::offer_with_camera(who, ip, slots, None).await
    }

    /// [`VoicePeer::offer`], with a camera and `video_slots` video streams to see when given.
    pub async fn offer_with_camera(
        who: u8,
        ip: std::net::IpAddr,
        slots: usize,
        video_slots: Option<usize>,
    ) -> anyhow::Result<(Self, String)> {
        let socket = Arc::new(UdpSocket::bind(SocketAddr::new(ip, 0)).await?);
        let local = socket.local_addr()?;
        let mut media = MediaEngine::default();
        media.register_codec(
            RTCRtpCodecParameters { rtp_codec: opus(), payload_type: 111 },
            RtpCodecKind::Audio,
        )?;
        media.register_codec(
            RTCRtpCodecParameters { rtp_codec: vp8(), payload_type: 96 },
            RtpCodecKind::Video,
        )?;
        media.register_header_extension(
            RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_owned() },
            RtpCodecKind::Audio,
            None,
        )?;
        let registry = register_default_interceptors(Registry::new(), &mut media)?;
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(Instant::now())?;
        let ssrc = 0x7000_0000 + u32::from(who);
        let voice = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![],
            send_encodings: vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec: opus(),
                ..Default::default()
            }],
        };
        pc.add_transceiver_from_kind(RtpCodecKind::Audio, Some(voice))?;
        for _ in 0..slots {
            pc.add_transceiver_from_kind(RtpCodecKind::Audio, None)?;
        }
        let mut camera = None;
        if let Some(video_slots) = video_slots {
            let ssrc = 0x7100_0000 + u32::from(who);
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                    codec: vp8(),
                    ..Default::default()
                }],
            };
            pc.add_transceiver_from_kind(RtpCodecKind::Video, Some(init))?;
            for _ in 0..video_slots {
                pc.add_transceiver_from_kind(RtpCodecKind::Video, None)?;
            }
            let sender = pc.get_senders().nth(1).context("the camera's sender")?;
            camera = Some((sender, ssrc));
        }
        let sender = pc.get_senders().next().context("the voice's sender")?;
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: local.ip().to_string(),
                port: local.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()?;
        pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
        let offer = pc.create_offer(None)?;
        pc.set_local_description(Instant::now(), offer)?;
        let offer = pc.local_description().context("an offer")?.sdp;
        Ok((Self { who, pc, socket, local, sender, ssrc, camera }, offer))
    }

    /// Takes the SFU's answer.
    pub fn accept(&mut self, answer: String) -> anyhow::Result<()> {
        self.pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(answer)?)?;
        Ok(())
    }

    /// Says on `connected` when its session is up, waits for `go`, speaks as `speech` says,
    /// listens a little longer, and returns what it heard.
    pub async fn run(
        self,
        connected: mpsc::Sender<u8>,
        go: watch::Receiver<bool>,
        speech: Speech,
    ) -> anyhow::Result<Heard> {
        Ok(self.run_timed(connected, go, speech).await?.0)
    }

    /// [`VoicePeer::run`], also returning how long each packet heard took from its sender (in
    /// this process) to here: two hops through the SFU and the time to read it.
    pub async fn run_timed(
        self,
        connected: mpsc::Sender<u8>,
        go: watch::Receiver<bool>,
        speech: Speech,
    ) -> anyhow::Result<(Heard, Vec<Duration>)> {
        let outcome = self.run_all(connected, go, speech).await?;
        Ok((outcome.heard, outcome.delays))
    }

    /// [`VoicePeer::run`], with everything it took in: the video frames it saw too.
    pub async fn run_all(
        self,
        connected: mpsc::Sender<u8>,
        go: watch::Receiver<bool>,
        speech: Speech,
    ) -> anyhow::Result<Outcome> {
        self.run_with(connected, go, speech, None).await
    }

    /// [`VoicePeer::run_all`] with the keys of `ring` (not [`Speech::room_key`]), which may
    /// change while it runs.
    pub async fn run_keyed(
        self,
        connected: mpsc::Sender<u8>,
        go: watch::Receiver<bool>,
        speech: Speech,
        ring: KeyRing,
    ) -> anyhow::Result<Outcome> {
        self.run_with(connected, go, speech, Some(ring)).await
    }

    async fn run_with(
        mut self,
        connected: mpsc::Sender<u8>,
        mut go: watch::Receiver<bool>,
        speech: Speech,
        ring: Option<KeyRing>,
    ) -> anyhow::Result<Outcome> {
        let who = self.who;
        let mut by_key: BTreeMap<(u8, u64), BTreeSet<u16>> = BTreeMap::new();
        let mut heard = Heard::new();
        let mut seen = Heard::new();
        let mut pictures = BTreeSet::new();
        let mut delays = Vec::new();
        let mut buffer = vec![0u8; 1_500];
        let mut next_packet: u16 = 0;
        let mut next_send = Instant::now();
        let mut done_at: Option<Instant> = None;
        let deadline = Instant::now() + speech.deadline;
        let mut keys: std::collections::HashMap<u64, sframe::FrameKey> = std::collections::HashMap::new();
        let own = speech.room_key.map(|base| sframe::FrameKey::derive(&base, u64::from(who)));
        loop {
            while let Some(out) = self.pc.poll_write() {
                self.socket.send_to(&out.message, out.transport.peer_addr).await?;
            }
            while let Some(event) = self.pc.poll_event() {
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                    ensure!(state != RTCPeerConnectionState::Failed, "participant {who}: the session failed");
                    if state == RTCPeerConnectionState::Connected {
                        connected.send(who).await?;
                    }
                }
            }
            while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
                if let RTCMessage::RtpPacket(track, packet) = &message
                    && packet.header.payload_type == 96
                {
                    // As a browser does, it asks for a key frame when a picture starts.
                    if pictures.insert(packet.header.ssrc) {
                        self.picture_lost(track, packet.header.ssrc)?;
                    }
                    let (sender, number) = see(who, &packet.payload, speech.room_key.as_ref())?;
                    seen.entry(sender).or_default().insert(number);
                    continue;
                }
                if let RTCMessage::RtpPacket(_, packet) = message {
                    if let Some(ring) = &ring {
                        ensure!(
                            !(packet.payload.len() == 60
                                && packet.payload[FILLER_AT..].iter().all(|b| *b == 0xAB)),
                            "participant {who}: a payload arrived in the clear"
                        );
                        let mut ring = ring.ring();
                        let opened = sframe::open(
                            |kid| ring.peers.get(&kid).map(|(_, key)| key),
                            b"",
                            &packet.payload,
                        );
                        let (kid, plaintext) = match opened {
                            Ok((kid, _, plaintext)) => (kid, plaintext),
                            Err(sframe::SFrameError::UnknownKey) => {
                                ring.unopened += 1;
                                continue;
                            }
                            Err(e) => anyhow::bail!("participant {who}: a frame did not open: {e}"),
                        };
                        let sender = ring.peers.get(&kid).map(|(sender, _)| *sender);
                        ensure!(
                            plaintext.len() >= FILLER_AT && sender == Some(plaintext[0]),
                            "participant {who}: a frame under another's key"
                        );
                        let number = u16::from_be_bytes([plaintext[1], plaintext[2]]);
                        heard.entry(plaintext[0]).or_default().insert(number);
                        by_key.entry((plaintext[0], kid)).or_default().insert(number);
                        continue;
                    }
                    let payload = match &speech.room_key {
                        None => packet.payload.to_vec(),
                        Some(base) => {
                            ensure!(
                                !(packet.payload.len() == 60
                                    && packet.payload[FILLER_AT..].iter().all(|b| *b == 0xAB)),
                                "participant {who}: a payload arrived in the clear"
                            );
                            let (kid, _, plaintext) = sframe::open(
                                |kid| {
                                    keys.entry(kid).or_insert_with(|| sframe::FrameKey::derive(base, kid));
                                    keys.get(&kid)
                                },
                                b"",
                                &packet.payload,
                            )
                            .map_err(|e| anyhow::anyhow!("participant {who}: a frame did not open: {e}"))?;
                            ensure!(
                                u64::from(plaintext[0]) == kid,
                                "participant {who}: a frame under another's key"
                            );
                            plaintext
                        }
                    };
                    if payload.len() >= FILLER_AT {
                        let number = u16::from_be_bytes([payload[1], payload[2]]);
                        heard.entry(payload[0]).or_default().insert(number);
                        let sent = u32::from_be_bytes([payload[3], payload[4], payload[5], payload[6]]);
                        let sent = epoch() + Duration::from_micros(u64::from(sent));
                        delays.push(Instant::now().saturating_duration_since(sent));
                    }
                }
            }
            let now = Instant::now();
            ensure!(now < deadline, "participant {who}: out of time, heard {heard:?}");
            if done_at.is_some_and(|at| now >= at) {
                break;
            }
            if speech.crash_after == Some(next_packet) {
                // Gone: no goodbye, no more packets, no more ICE checks.
                return Ok(Outcome { heard, seen, delays, by_key });
            }
            let speaking = *go.borrow() && next_packet < speech.packets;
            if speaking && now >= next_send {
                // With a ring, its key of the moment (and nothing sent before there is one).
                let key = match &ring {
                    Some(ring) => ring.ring().own.clone(),
                    None => own.clone(),
                };
                if ring.is_none() || key.is_some() {
                    self.speak(next_packet, now, key.as_ref())?;
                    if next_packet.is_multiple_of(3) {
                        self.film(next_packet / 3, now, key.as_ref())?;
                    }
                }
                next_packet += 1;
                next_send = now + Duration::from_millis(20);
                if next_packet == speech.packets {
                    done_at = Some(now + LINGER);
                }
                continue;
            }
            let mut wake = self.pc.poll_timeout().unwrap_or(now + Duration::from_millis(50));
            wake = wake.min(now + Duration::from_millis(50));
            if speaking {
                wake = wake.min(next_send);
            }
            tokio::select! {
                received = self.socket.recv_from(&mut buffer) => {
                    let (n, from) = received?;
                    self.pc.handle_read(TaggedBytesMut {
                        now: Instant::now(),
                        transport: TransportContext {
                            local_addr: self.local,
                            peer_addr: from,
                            ecn: None,
                            transport_protocol: TransportProtocol::UDP,
                        },
                        message: BytesMut::from(&buffer[..n]),
                    })?;
                }
                changed = go.changed() => { changed?; }
                () = tokio::time::sleep(wake.saturating_duration_since(now)) => {
                    self.pc.handle_timeout(Instant::now())?;
                }
            }
        }
        self.pc.close()?;
        Ok(Outcome { heard, seen, delays, by_key })
    }

    /// Reports picture loss (a PLI) on the stream `ssrc` it receives on `track`.
    fn picture_lost(&mut self, track: &str, ssrc: u32) -> anyhow::Result<()> {
        let receivers: Vec<_> = self.pc.get_receivers().collect();
        for id in receivers {
            let Some(mut receiver) = self.pc.rtp_receiver(id) else { continue };
            if receiver.track().track_id() == track {
                let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc: ssrc,
                };
                receiver.write_rtcp(Instant::now(), vec![Box::new(pli)])?;
                return Ok(());
            }
        }
        Ok(())
    }

    /// Sends video frame `number` on its camera, if it has one.
    fn film(&mut self, number: u16, now: Instant, seal: Option<&sframe::FrameKey>) -> anyhow::Result<()> {
        let Some((sender, ssrc)) = self.camera else { return Ok(()) };
        let key = is_key_frame(number);
        let header = rtc::rtp::header::Header {
            version: 2,
            payload_type: 96,
            marker: true,
            sequence_number: 20_000u16.wrapping_add(number),
            timestamp: u32::from(number) * 5_400,
            ssrc,
            ..Default::default()
        };
        // The frame tag (its low bit clear: a key frame), nine bytes any frame tag could hold,
        // then who filmed it and which frame it is.
        let mut frame = vec![if key { 0x10 } else { 0x11 }, 2, 0, 0x9d, 1, 0x2a, 0x80, 2, 0xe0, 1];
        let [high, low] = number.to_be_bytes();
        frame.extend_from_slice(&[self.who, high, low]);
        frame.resize(80, 0xCD);
        if let Some(seal) = seal {
            frame = sframe::seal_keeping(seal, 0x1_0000 + u64::from(number), &frame, vp8_clear(key));
        }
        // The VP8 payload descriptor: the start of partition 0.
        let mut payload = vec![0x10];
        payload.extend_from_slice(&frame);
        let packet = rtc::rtp::Packet { header, payload: Bytes::from(payload) };
        self.pc.rtp_sender(sender).context("the camera's sender")?.write_rtp(now, packet)?;
        Ok(())
    }

    /// Sends packet `number`, sealed with `key` if there is one.
    fn speak(&mut self, number: u16, now: Instant, key: Option<&sframe::FrameKey>) -> anyhow::Result<()> {
        let mut header = rtc::rtp::header::Header {
            version: 2,
            payload_type: 111,
            sequence_number: 40_000u16.wrapping_add(number),
            timestamp: u32::from(number) * 960,
            ssrc: self.ssrc,
            ..Default::default()
        };
        header.set_extension(1, Bytes::from_static(&[0x80 | 40]))?;
        let [high, low] = number.to_be_bytes();
        let mut payload = vec![self.who, high, low];
        // Wraps after 71 minutes, longer than any run.
        let sent = now.saturating_duration_since(epoch()).as_micros() as u32;
        payload.extend_from_slice(&sent.to_be_bytes());
        payload.resize(60, 0xAB);
        if let Some(key) = key {
            payload = key.seal(u64::from(number), b"", &payload);
        }
        let packet = rtc::rtp::Packet { header, payload: Bytes::from(payload) };
        self.pc.rtp_sender(self.sender).context("the voice's sender")?.write_rtp(now, packet)?;
        Ok(())
    }
}
