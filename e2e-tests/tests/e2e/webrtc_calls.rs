//! Calls between two real WebRTC peers (webrtc-rs, `kitsulan_e2e::call_peer`) that signal
//! through the real `kitsulan` binary: INVITE and ACCEPT, then OFFER, ANSWER and ICE candidates
//! Olm-encrypted between the two devices, with TURN credentials from
//! `CallService.GetTurnCredentials` and relay-only ICE, so nothing gets through unless the TURN
//! relay relays it.
//!
//! Through the embedded relay (`KITSULAN_TURN=embedded`, the default) and through a real coturn
//! (`KITSULAN_TURN=external`), three calls at once on one server:
//!
//! - with the credentials the RPC gave, the data channel opens, carries a few KB both ways
//!   intact, and the selected candidate pair is relay to relay, at that relay;
//! - with a wrong password, and with a username that expired (forged with the right secret),
//!   the relay refuses the allocations: no candidate is gathered, the connection fails, and no
//!   data channel opens.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kitsulan_client::calls::{Coturn, free_port_range, parse_username, signal, turn_password, url_addr};
use kitsulan_client::people::start_with as start;
use kitsulan_client::{Database, Options, TestServer};
use kitsulan_e2e::call_peer::{
    Attempt, CallPeer, DATA_CHANNEL, ICE_TIMEOUT, Link, PairEnd, Role, ice_servers,
};
use kitsulan_proto::v1::{CallAction, GetTurnCredentialsResponse};
use uuid::Uuid;
use webrtc::peer_connection::{RTCIceCandidateType, RTCPeerConnectionState};

/// Messages each side sends, and their size: a few KB each way.
const MESSAGES: usize = 4;
const MESSAGE_BYTES: usize = 3000;

/// Two people in a direct conversation, each with one device on the gateway, in one call:
/// Alice invited, Bob accepted.
struct InCall {
    alice: CallPeer,
    bob: CallPeer,
    /// Alice's view of the call (Bob's device at the other end), and Bob's.
    to_bob: Link,
    to_alice: Link,
}

async fn in_call(server: &TestServer, caller: &str, callee: &str) -> InCall {
    let mut alice = CallPeer::sign_up(server, caller).await.unwrap();
    let mut bob = CallPeer::sign_up(server, callee).await.unwrap();
    let conversation_id =
        alice.device.client.open_direct(&bob.account_id()).await.unwrap().conversation.unwrap().id;
    // Bob accepts Alice's request (a request does not ring).
    bob.device.client.accept_request(&conversation_id).await.unwrap();
    alice.member_of(&conversation_id).await.unwrap();
    bob.member_of(&conversation_id).await.unwrap();
    let call_id = Uuid::now_v7().to_string();
    alice.send(signal(&conversation_id, &call_id, CallAction::Invite)).unwrap();
    bob.expect(CallAction::Invite, &call_id).await.unwrap();
    bob.send(signal(&conversation_id, &call_id, CallAction::Accept)).unwrap();
    let accepted = alice.expect(CallAction::Accept, &call_id).await.unwrap();
    assert_eq!(accepted.participant_device_ids, [alice.device_id(), bob.device_id()]);
    let to_bob = Link {
        conversation_id: conversation_id.clone(),
        call_id: call_id.clone(),
        remote_account_id: bob.account_id(),
        remote_device_id: bob.device_id(),
    };
    let to_alice = Link {
        conversation_id,
        call_id,
        remote_account_id: alice.account_id(),
        remote_device_id: alice.device_id(),
    };
    InCall { alice, bob, to_bob, to_alice }
}

impl InCall {
    /// Alice offers, Bob answers, each with its own credentials, both sides at once; ICE gives
    /// up after `fail_after`.
    async fn connect(
        &mut self,
        alice_creds: &GetTurnCredentialsResponse,
        bob_creds: &GetTurnCredentialsResponse,
        fail_after: Duration,
    ) -> (Attempt, Attempt) {
        let (alice, bob) = tokio::join!(
            self.alice.connect(&self.to_bob, Role::Offerer, ice_servers(alice_creds), fail_after),
            self.bob.connect(&self.to_alice, Role::Answerer, ice_servers(bob_creds), fail_after),
        );
        (
            alice.unwrap_or_else(|e| panic!("{}'s side: {e:#}", self.alice.who)),
            bob.unwrap_or_else(|e| panic!("{}'s side: {e:#}", self.bob.who)),
        )
    }

    /// Alice hangs up: Bob gets HANG_UP, then both get ENDED (hung_up).
    async fn hang_up(&mut self) {
        let link = &self.to_bob;
        self.alice.send(signal(&link.conversation_id, &link.call_id, CallAction::HangUp)).unwrap();
        self.bob.expect(CallAction::HangUp, &link.call_id).await.unwrap();
        for peer in [&mut self.alice, &mut self.bob] {
            let ended = peer.expect(CallAction::Ended, &link.call_id).await.unwrap();
            assert_eq!(ended.reason, "hung_up", "{ended:?}");
        }
    }
}

/// The TURN relay under test: where relayed addresses must be, and its secret.
struct Relay {
    name: &'static str,
    ip: IpAddr,
    ports: (u16, u16),
    secret: String,
}

/// `n` bytes that differ per `seed` and per message.
fn pattern(seed: u8, message: usize, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(31) ^ message.wrapping_mul(7) ^ usize::from(seed)) as u8).collect()
}

/// Both sides send [`MESSAGES`] messages; each gets the other's, in order, byte for byte.
async fn exchange(alice: &mut Attempt, bob: &mut Attempt) {
    let (from_alice, from_bob): (Vec<_>, Vec<_>) =
        (0..MESSAGES).map(|i| (pattern(0xa1, i, MESSAGE_BYTES), pattern(0xb0, i, MESSAGE_BYTES))).unzip();
    for (a, b) in from_alice.iter().zip(&from_bob) {
        alice.send(a).await.unwrap();
        bob.send(b).await.unwrap();
    }
    for i in 0..MESSAGES {
        let at_bob = bob.receive().await.unwrap();
        assert!(at_bob == from_alice[i], "message {i} from Alice arrived changed ({} bytes)", at_bob.len());
        let at_alice = alice.receive().await.unwrap();
        assert!(at_alice == from_bob[i], "message {i} from Bob arrived changed ({} bytes)", at_alice.len());
    }
}

/// The selected pair on both sides is relay to relay: each side's local candidate was allocated
/// at `turn_url`, on the relay's address and ports, and is what the other side sees as remote.
async fn assert_relayed(alice: &Attempt, bob: &Attempt, turn_url: &str, relay: &Relay) {
    let (alice_local, alice_remote) = alice.selected_pair().await.unwrap();
    let (bob_local, bob_remote) = bob.selected_pair().await.unwrap();
    let (ip, ports) = (relay.ip.to_string(), relay.ports);
    for (who, end) in [
        ("Alice's local", &alice_local),
        ("Alice's remote", &alice_remote),
        ("Bob's local", &bob_local),
        ("Bob's remote", &bob_remote),
    ] {
        assert_eq!(
            end.candidate_type,
            RTCIceCandidateType::Relay,
            "{who} candidate of the selected pair: {end:?}"
        );
        assert_eq!(end.address, ip, "{who} candidate of the selected pair is not at {}: {end:?}", relay.name);
        assert!(
            (ports.0..=ports.1).contains(&end.port),
            "{who} candidate is not on a relay port {ports:?}: {end:?}"
        );
    }
    for (who, end) in [("Alice's", &alice_local), ("Bob's", &bob_local)] {
        assert!(end.url.starts_with(turn_url), "{who} relay candidate should come from {turn_url}: {end:?}");
    }
    let same = |a: &PairEnd, b: &PairEnd| a.address == b.address && a.port == b.port;
    assert!(same(&alice_local, &bob_remote), "Alice relays from {alice_local:?}, Bob sees {bob_remote:?}");
    assert!(same(&bob_local, &alice_remote), "Bob relays from {bob_local:?}, Alice sees {alice_remote:?}");
}

/// The TURN URL of a credentials response.
fn turn_url(creds: &GetTurnCredentialsResponse) -> String {
    creds.urls.iter().find(|u| u.starts_with("turn:")).unwrap_or_else(|| panic!("{:?}", creds.urls)).clone()
}

/// A call with the credentials `GetTurnCredentials` gave: the data channel opens, carries bytes
/// both ways, relay to relay. Returns the usernames used.
async fn good_call(server: &TestServer, names: (&str, &str), relay: &Relay) -> [String; 2] {
    let mut call = in_call(server, names.0, names.1).await;
    let alice_creds = call.alice.turn_credentials().await.unwrap();
    let bob_creds = call.bob.turn_credentials().await.unwrap();
    let url = turn_url(&alice_creds);
    let addr: SocketAddr = url_addr(&url).unwrap();
    assert_eq!(addr.ip(), relay.ip, "the TURN URL {url} should name {}", relay.name);

    let (mut alice, mut bob) = call.connect(&alice_creds, &bob_creds, ICE_TIMEOUT).await;
    assert!(
        alice.is_open() && bob.is_open(),
        "the data channel {DATA_CHANNEL:?} should open through {}:\n{alice:#?}\n{bob:#?}",
        relay.name
    );
    for attempt in [&alice, &bob] {
        let types: Vec<_> = attempt.local_candidates.iter().map(|c| c.typ).collect();
        assert!(
            !types.is_empty() && types.iter().all(|t| *t == RTCIceCandidateType::Relay),
            "relay-only ICE should gather relay candidates only: {attempt:#?}"
        );
    }
    exchange(&mut alice, &mut bob).await;
    assert_relayed(&alice, &bob, &url, relay).await;

    call.hang_up().await;
    alice.close().await.unwrap();
    bob.close().await.unwrap();
    [alice_creds.username, bob_creds.username]
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Ways to spoil good credentials.
#[derive(Clone, Copy, Debug)]
enum Forged {
    /// The right username, a password made with another secret.
    WrongPassword,
    /// A username that expired a minute ago, with the right password for it.
    Expired,
}

fn forge(creds: &GetTurnCredentialsResponse, secret: &str, how: Forged) -> GetTurnCredentialsResponse {
    let (_, account) = parse_username(&creds.username).unwrap();
    let (username, password) = match how {
        Forged::WrongPassword => {
            (creds.username.clone(), turn_password("not-the-shared-secret-at-all", &creds.username))
        }
        Forged::Expired => {
            let username = format!("{}:{account}", now_secs() - 60);
            let password = turn_password(secret, &username);
            (username, password)
        }
    };
    GetTurnCredentialsResponse { username, password, ..creds.clone() }
}

/// How long ICE checks when the credentials are bad (nothing can connect without a relay
/// candidate, so this only bounds the test).
const REFUSED_FAIL_AFTER: Duration = Duration::from_secs(10);

/// A call whose credentials were spoiled `how`: no candidate is gathered (the relay refused the
/// allocations), ICE fails on both sides, and no data channel opens. Returns the usernames.
async fn refused_call(server: &TestServer, names: (&str, &str), relay: &Relay, how: Forged) -> [String; 2] {
    let mut call = in_call(server, names.0, names.1).await;
    let alice_creds = forge(&call.alice.turn_credentials().await.unwrap(), &relay.secret, how);
    let bob_creds = forge(&call.bob.turn_credentials().await.unwrap(), &relay.secret, how);
    let (alice, bob) = call.connect(&alice_creds, &bob_creds, REFUSED_FAIL_AFTER).await;
    let case = format!("{how:?} credentials at {}", relay.name);
    for (who, attempt) in [(names.0, &alice), (names.1, &bob)] {
        assert!(!attempt.is_open(), "{case}: a data channel opened at {who}: {attempt:#?}");
        assert!(
            attempt.gathering_complete && attempt.local_candidates.is_empty(),
            "{case}: {who} should have gathered no relay candidate: {attempt:#?}"
        );
        assert_eq!(
            attempt.state(),
            Some(RTCPeerConnectionState::Failed),
            "{case}: {who}'s connection should have failed: {attempt:#?}"
        );
    }
    call.hang_up().await;
    alice.close().await.unwrap();
    bob.close().await.unwrap();
    [alice_creds.username, bob_creds.username]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_embedded_relay_only_good_credentials_open_a_data_channel() {
    let ports = free_port_range(40).await.unwrap();
    let server = start(
        Options::new(Database::Sqlite).env("KITSULAN_TURN_RELAY_PORTS", &format!("{}-{}", ports.0, ports.1)),
    )
    .await;
    let secret = std::fs::read_to_string(server.data_dir().join("turn-secret")).unwrap().trim().to_owned();
    let relay = Relay { name: "the embedded relay", ip: IpAddr::from([127, 0, 0, 1]), ports, secret };
    tokio::join!(
        good_call(&server, ("alice", "bob"), &relay),
        refused_call(&server, ("carol", "dave"), &relay, Forged::WrongPassword),
        refused_call(&server, ("erin", "frank"), &relay, Forged::Expired),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_coturn_only_good_credentials_open_a_data_channel() {
    const SECRET: &str = "e2e-webrtc-coturn-secret-9d3a71";
    let coturn = Coturn::start(SECRET).await.unwrap();
    let turn = format!("turn:{}?transport=udp", coturn.addr);
    let server = start(
        Options::new(Database::Sqlite)
            .env("KITSULAN_TURN", "external")
            .env("KITSULAN_TURN_SECRET", SECRET)
            .env("KITSULAN_TURN_URLS", &format!("{turn},stun:{}", coturn.addr)),
    )
    .await;
    let relay =
        Relay { name: "coturn", ip: coturn.addr.ip(), ports: coturn.relay_ports, secret: SECRET.to_owned() };
    let (good, wrong, expired) = tokio::join!(
        good_call(&server, ("alice", "bob"), &relay),
        refused_call(&server, ("carol", "dave"), &relay, Forged::WrongPassword),
        refused_call(&server, ("erin", "frank"), &relay, Forged::Expired),
    );
    // coturn itself says so: it allocated for the good usernames and refused the forged ones.
    for username in &good {
        assert!(
            coturn.allocated_for(username),
            "coturn should have allocated for {username}:\n{}",
            coturn.log_text()
        );
    }
    for username in wrong.iter().chain(&expired) {
        assert!(
            coturn.refused(username) && !coturn.allocated_for(username),
            "coturn should have refused {username} and allocated nothing:\n{}",
            coturn.log_text()
        );
    }
}
