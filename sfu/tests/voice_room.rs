#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

//! Ten people in one voice room through a real SFU node: each is a WebRTC session of its own
//! (the `rtc` stack, over its own UDP socket on 127.0.0.1, with ICE, DTLS and SRTP) that sends
//! a stream of numbered Opus-shaped packets and receives through its slots. Everyone hears every
//! other one's packets, nobody hears their own, and after someone leaves the others go on.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use kitsulan_client::voice::{Heard, Speech, VoicePeer, is_key_frame};
use kitsulan_sfu::node::{JoinRefusal, Node, NodeConfig};
use kitsulan_sfu::room::{ParticipantId, RoomConfig};
use tokio::sync::{mpsc, watch};

const PEOPLE: u64 = 10;
const PACKETS: u16 = 100;
const ROOM: u128 = 7;

/// One participant through `node`: offers, joins, and runs.
async fn person(
    node: Node,
    who: u8,
    connected: mpsc::Sender<u8>,
    go: watch::Receiver<bool>,
    crash_after: Option<u16>,
) -> anyhow::Result<Heard> {
    let (mut peer, offer) =
        VoicePeer::offer(who, IpAddr::V4(Ipv4Addr::LOCALHOST), PEOPLE as usize - 1).await?;
    let answer = node.join(ROOM, ParticipantId(u64::from(who)), offer).await?;
    peer.accept(answer)?;
    // Frames sealed end to end (SFrame): the SFU forwards what it cannot read or change.
    let speech =
        Speech { packets: PACKETS, crash_after, deadline: Duration::from_secs(40), room_key: Some([42; 16]) };
    peer.run(connected, go, speech).await
}

fn node_config(max_participants: usize) -> NodeConfig {
    NodeConfig {
        bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        advertise: IpAddr::V4(Ipv4Addr::LOCALHOST),
        room: RoomConfig { audio_slots: 9, ..RoomConfig::default() },
        max_participants,
        drop_after: Duration::from_secs(4),
        dropped: None,
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
    let (dropped, mut drops) = mpsc::channel(4);
    let node = Node::start(NodeConfig { dropped: Some(dropped), ..node_config(20) }).await.unwrap();
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
    // The server hears of it (and of nobody else: the others closed their sessions, which
    // the node notices later or never, but nobody left through `leave`).
    assert_eq!(drops.recv().await, Some(ParticipantId(9)));
}

#[tokio::test]
async fn offers_that_are_not_one_voice_and_slots_are_refused() {
    let node = Node::start(node_config(1)).await.unwrap();
    for offer in ["", "v=0\r\n", "not sdp at all", "v=0\r\nm=video 9 X 96\r\na=sendonly\r\na=ssrc:1\r\n"] {
        let refused = node.join(ROOM, ParticipantId(1), offer.to_owned()).await;
        assert!(matches!(refused, Err(JoinRefusal::Offer(_))), "{offer:?}: {refused:?}");
    }
    // More slots than the room gives: the extra ones are answered silent, not refused.
    let (_, offer) = VoicePeer::offer(1, IpAddr::V4(Ipv4Addr::LOCALHOST), 12).await.unwrap();
    let answer = node.join(ROOM, ParticipantId(1), offer).await.unwrap();
    assert_eq!(answer.matches("m=audio").count(), 13);
}

/// A STUN binding request whose USERNAME is `username` (RFC 5389; no integrity, which the node's
/// matching does not need: the session's ICE checks that).
fn binding_request(username: &str, id: u8) -> Vec<u8> {
    let padded = username.len().div_ceil(4) * 4;
    let mut out = vec![0x00, 0x01];
    out.extend_from_slice(&u16::try_from(4 + padded).unwrap().to_be_bytes());
    out.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    out.extend_from_slice(&[id; 12]);
    out.extend_from_slice(&[0x00, 0x06]);
    out.extend_from_slice(&u16::try_from(username.len()).unwrap().to_be_bytes());
    out.extend_from_slice(username.as_bytes());
    out.resize(20 + 4 + padded, 0);
    out
}

#[tokio::test]
async fn a_flood_of_addresses_for_one_session_is_bounded_and_strangers_map_nothing() {
    let node = Node::start(node_config(4)).await.unwrap();
    let (mut peer, offer) = VoicePeer::offer(1, IpAddr::V4(Ipv4Addr::LOCALHOST), 2).await.unwrap();
    let answer = node.join(ROOM, ParticipantId(1), offer).await.unwrap();
    peer.accept(answer.clone()).unwrap();
    let ufrag = answer.lines().find_map(|l| l.trim().strip_prefix("a=ice-ufrag:")).unwrap().to_owned();
    // Checks naming the session from 20 addresses (as someone who learned its username might):
    // at most MAX_ADDRESSES are matched to it. Checks naming no session match nothing.
    let mut sockets = Vec::new();
    for n in 0..20u8 {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.send_to(&binding_request(&format!("{ufrag}:x"), n), node.local_addr()).await.unwrap();
        socket.send_to(&binding_request("madeup:x", n), node.local_addr()).await.unwrap();
        sockets.push(socket);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = node.stats().await;
        if stats.addresses >= kitsulan_sfu::node::MAX_ADDRESSES {
            break;
        }
        assert!(Instant::now() < deadline, "{stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = node.stats().await;
    assert_eq!((stats.sessions, stats.rooms, stats.addresses), (1, 1, kitsulan_sfu::node::MAX_ADDRESSES));
    assert!(node.leave(ParticipantId(1)).await);
    assert_eq!(node.stats().await.addresses, 0, "leaving forgets its addresses");
}

/// Four people with cameras: every other participant sees each camera's frames, sealed end to
/// end with the VP8 frame tag in the clear (a frame that arrived readable or changed fails the
/// run), starting at its first key frame: the SFU holds a stream back from a listener until one
/// comes (and asks the camera for it with a PLI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_reach_everyone_from_a_key_frame_on() {
    const CAMERAS: u8 = 4;
    let node = Node::start(node_config(20)).await.unwrap();
    let (go, listening) = watch::channel(false);
    let (up, mut connected) = mpsc::channel(usize::from(CAMERAS));
    let mut people = Vec::new();
    for who in 0..CAMERAS {
        let (node, up, listening) = (node.clone(), up.clone(), listening.clone());
        people.push(tokio::spawn(async move {
            let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let (mut peer, offer) = VoicePeer::offer_with_camera(who, ip, 3, Some(3)).await?;
            peer.accept(node.join(ROOM, ParticipantId(u64::from(who)), offer).await?)?;
            let speech = Speech {
                packets: 150,
                crash_after: None,
                deadline: Duration::from_secs(40),
                room_key: Some([7; 16]),
            };
            peer.run_all(up, listening, speech).await
        }));
    }
    for _ in 0..CAMERAS {
        tokio::time::timeout(Duration::from_secs(30), connected.recv())
            .await
            .expect("every session comes up");
    }
    go.send(true).unwrap();
    // Each listener reports picture loss when a picture starts, as browsers do: the reports reach
    // the node (the stack would stop them before it, but for the SFU's feedback gate).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for who in 0..CAMERAS {
        let counters = node.counters(ParticipantId(u64::from(who))).await.expect("in the room");
        assert!(counters.picture_losses >= 1, "person {who}'s picture-loss reports: {counters:?}");
    }
    for (who, person) in people.into_iter().enumerate() {
        let outcome = person.await.unwrap().unwrap();
        let who = who as u8;
        assert!(!outcome.seen.contains_key(&who), "person {who} saw themselves");
        for other in (0..CAMERAS).filter(|o| *o != who) {
            let seen = outcome.seen.get(&other).cloned().unwrap_or_default();
            // 50 frames, the first key frame fifth: 45 to see, some may be lost on a busy machine
            // (the test shares two cores with the others).
            assert!(seen.len() >= 30, "person {who} saw {} of {other}'s 50 frames", seen.len());
            let first = seen.first().copied();
            assert!(first.is_some_and(is_key_frame), "person {who} saw {other} first at frame {first:?}");
        }
        assert_eq!(outcome.heard.len(), usize::from(CAMERAS) - 1, "person {who} heard the others too");
    }
}
