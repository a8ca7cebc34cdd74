#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

//! Ten people in one voice room through a real SFU node: each is a WebRTC session of its own
//! (the `rtc` stack, over its own UDP socket on 127.0.0.1, with ICE, DTLS and SRTP) that sends
//! a stream of numbered Opus-shaped packets and receives through its slots. Everyone hears every
//! other one's packets, nobody hears their own, and after someone leaves the others go on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kitsulan_sfu::node::{AUDIO_LEVEL_URI, JoinRefusal, Node, NodeConfig};
use kitsulan_sfu::room::{ParticipantId, RoomConfig};
use rtc::interceptor::Registry;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol as _;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

const PEOPLE: u64 = 10;
const PACKETS: u16 = 100;
const ROOM: u128 = 7;

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// What one person heard: per sender, the packet numbers.
type Heard = BTreeMap<u8, BTreeSet<u16>>;

/// One person: joins through `node`, says when its session is up, waits until told to speak,
/// speaks `PACKETS` packets 20 ms apart (or, with `crash_after`, vanishes after that many
/// without a word, as a killed app does), listens a little longer, and returns what it heard.
async fn person(
    node: Node,
    who: u8,
    connected: mpsc::Sender<u8>,
    mut go: watch::Receiver<bool>,
    crash_after: Option<u16>,
) -> anyhow::Result<Heard> {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let local = socket.local_addr()?;
    let mut media = MediaEngine::default();
    media.register_codec(
        RTCRtpCodecParameters { rtp_codec: opus(), payload_type: 111 },
        RtpCodecKind::Audio,
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
    for _ in 1..PEOPLE {
        pc.add_transceiver_from_kind(RtpCodecKind::Audio, None)?;
    }
    let sender = pc.get_senders().next().expect("the voice's sender");
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
    let offer = pc.local_description().expect("an offer").sdp;
    let answer = node.join(ROOM, ParticipantId(u64::from(who)), offer).await?;
    pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(answer)?)?;

    let mut heard = Heard::new();
    let mut buffer = vec![0u8; 1_500];
    let mut next_packet: u16 = 0;
    let mut next_send = Instant::now();
    let mut done_at: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        while let Some(out) = pc.poll_write() {
            socket.send_to(&out.message, out.transport.peer_addr).await?;
        }
        while let Some(event) = pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                anyhow::ensure!(state != RTCPeerConnectionState::Failed, "person {who}: the session failed");
                if state == RTCPeerConnectionState::Connected {
                    connected.send(who).await?;
                }
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message
                && packet.payload.len() >= 3
            {
                let number = u16::from_be_bytes([packet.payload[1], packet.payload[2]]);
                heard.entry(packet.payload[0]).or_default().insert(number);
            }
        }
        let now = Instant::now();
        anyhow::ensure!(now < deadline, "person {who}: out of time, heard {heard:?}");
        if done_at.is_some_and(|at| now >= at) {
            break;
        }
        if crash_after == Some(next_packet) {
            // Gone: no goodbye, no more packets, no more ICE checks.
            return Ok(heard);
        }
        if *go.borrow() && next_packet < PACKETS && now >= next_send {
            let mut header = rtc::rtp::header::Header {
                version: 2,
                payload_type: 111,
                sequence_number: 40_000u16.wrapping_add(next_packet),
                timestamp: u32::from(next_packet) * 960,
                ssrc,
                ..Default::default()
            };
            header.set_extension(1, Bytes::from_static(&[0x80 | 40]))?;
            let mut payload = vec![who, (next_packet >> 8) as u8, next_packet as u8];
            payload.resize(60, 0xAB);
            let packet = rtc::rtp::Packet { header, payload: Bytes::from(payload) };
            pc.rtp_sender(sender).expect("the voice's sender").write_rtp(now, packet)?;
            next_packet += 1;
            next_send = now + Duration::from_millis(20);
            if next_packet == PACKETS {
                done_at = Some(now + Duration::from_millis(1_500));
            }
            continue;
        }
        let mut wake =
            pc.poll_timeout().unwrap_or(now + Duration::from_millis(50)).min(now + Duration::from_millis(50));
        if *go.borrow() && next_packet < PACKETS {
            wake = wake.min(next_send);
        }
        let sleep = wake.saturating_duration_since(now);
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let (n, from) = received?;
                pc.handle_read(TaggedBytesMut {
                    now: Instant::now(),
                    transport: TransportContext { local_addr: local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP },
                    message: BytesMut::from(&buffer[..n]),
                })?;
            }
            changed = go.changed() => { changed?; }
            () = tokio::time::sleep(sleep) => { pc.handle_timeout(Instant::now())?; }
        }
    }
    pc.close()?;
    Ok(heard)
}

fn node_config(max_participants: usize) -> NodeConfig {
    NodeConfig {
        bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        advertise: IpAddr::V4(Ipv4Addr::LOCALHOST),
        room: RoomConfig { audio_slots: 9, ..RoomConfig::default() },
        max_participants,
        drop_after: Duration::from_secs(4),
    }
}

/// Ten people in one room, person 9 vanishing after `crash_after` packets if given: returns what
/// each heard, once everyone is done.
async fn a_room_of_ten(node: &Node, crash_after: Option<u16>) -> Vec<Heard> {
    let (go, listening) = watch::channel(false);
    let (up, mut connected) = mpsc::channel(PEOPLE as usize);
    let mut people = Vec::new();
    for who in 0..PEOPLE as u8 {
        let crash = if who == 9 { crash_after } else { None };
        people.push(tokio::spawn(person(node.clone(), who, up.clone(), listening.clone(), crash)));
    }
    // Everyone's session comes up; then all speak at once.
    for _ in 0..PEOPLE {
        tokio::time::timeout(Duration::from_secs(30), connected.recv())
            .await
            .expect("every session comes up");
    }
    go.send(true).unwrap();
    let mut all = Vec::new();
    for person in people {
        all.push(person.await.unwrap().unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_people_hear_each_other_through_the_sfu() {
    let node = Node::start(node_config(20)).await.unwrap();
    let all = a_room_of_ten(&node, None).await;
    for (who, heard) in all.iter().enumerate() {
        let who = who as u8;
        assert!(!heard.contains_key(&who), "person {who} heard themselves");
        for other in (0..PEOPLE as u8).filter(|o| *o != who) {
            let got = heard.get(&other).map_or(0, BTreeSet::len);
            assert!(
                got >= usize::from(PACKETS) * 95 / 100,
                "person {who} heard {got} of {other}'s {PACKETS} packets"
            );
        }
    }
    // The node forwarded each packet to the nine others.
    let counters = node.counters(ParticipantId(3)).await.expect("in the room");
    assert_eq!((counters.received, counters.refused), (u64::from(PACKETS), 0));
    assert!(counters.forwarded >= u64::from(PACKETS) * 9 * 95 / 100);
    assert!(node.leave(ParticipantId(0)).await);
    assert!(!node.leave(ParticipantId(0)).await);
    assert_eq!(node.counters(ParticipantId(0)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_participant_is_dropped_and_the_others_go_on() {
    let node = Node::start(node_config(20)).await.unwrap();
    let all = a_room_of_ten(&node, Some(20)).await;
    // The nine heard each other throughout, and the vanished one's first packets.
    for (who, heard) in all.iter().enumerate().take(9) {
        for other in (0..9u8).filter(|o| usize::from(*o) != who) {
            let got = heard.get(&other).map_or(0, BTreeSet::len);
            assert!(got >= usize::from(PACKETS) * 95 / 100, "person {who} heard {got} of {other}'s packets");
        }
        assert!(heard.get(&9).map_or(0, BTreeSet::len) <= 20);
    }
    // The node dropped it once its session went silent (4 s here).
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.counters(ParticipantId(9)).await.is_some() {
        assert!(Instant::now() < deadline, "the vanished participant is still in the room");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(node.counters(ParticipantId(1)).await.is_some(), "the others stay");
}

#[tokio::test]
async fn offers_that_are_not_one_voice_and_slots_are_refused() {
    let node = Node::start(node_config(1)).await.unwrap();
    for offer in ["", "v=0\r\n", "not sdp at all", "v=0\r\nm=video 9 X 96\r\na=sendonly\r\na=ssrc:1\r\n"] {
        let refused = node.join(ROOM, ParticipantId(1), offer.to_owned()).await;
        assert!(matches!(refused, Err(JoinRefusal::Offer(_))), "{offer:?}: {refused:?}");
    }
}
