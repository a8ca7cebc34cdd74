//! The embedded relay against coturn's real TURN client, `turnutils_uclient`, on loopback:
//! good credentials allocate and relay, bad ones are refused, the allocation limits hold (the
//! relay's and each account's), and the peer policy keeps the relay from reaching loopback
//! services and the LAN.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use kitsulan_turn::{PortRange, Relay, RelayConfig, TurnCredentials, TurnSecret};
use support::{REFUSED_BY_EMBEDDED, RELAY_FULL, Uclient, free_port_range};
use tokio::net::UdpSocket;

const SECRET: &str = "embedded-relay-test-secret";
const ACCOUNT: &str = "0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b";
const HOUR: Duration = Duration::from_secs(3600);
const SIX_SECONDS: Duration = Duration::from_secs(6);

async fn relay_with(max_allocations: usize, allow_loopback_peers: bool) -> Relay {
    relay_on(free_port_range(40).await, max_allocations, allow_loopback_peers).await
}

async fn relay_on(ports: (u16, u16), max_allocations: usize, allow_loopback_peers: bool) -> Relay {
    relay_configured(ports, |c| {
        c.max_allocations = max_allocations;
        c.allow_loopback_peers = allow_loopback_peers;
    })
    .await
}

async fn relay_configured(ports: (u16, u16), change: impl FnOnce(&mut RelayConfig)) -> Relay {
    // The relay's log (and the turn crate's, through tracing-log) in failing tests' output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "kitsulan_turn=debug".into()))
        .with_test_writer()
        .try_init();
    let mut config = RelayConfig::new(TurnSecret::new(SECRET).unwrap());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.relay_ports = PortRange::new(ports.0, ports.1).unwrap();
    change(&mut config);
    kitsulan_turn::start(config).await.unwrap()
}

fn credentials(secret: &str, issued: SystemTime) -> TurnCredentials {
    issue(secret, ACCOUNT, HOUR, issued)
}

/// Credentials of `account` for `lifetime` from `issued`.
fn issue(secret: &str, account: &str, lifetime: Duration, issued: SystemTime) -> TurnCredentials {
    TurnCredentials::generate_at(&TurnSecret::new(secret).unwrap(), account, lifetime, &[], issued).unwrap()
}

#[tokio::test]
async fn valid_credentials_allocate_and_relay() {
    let ports = free_port_range(40).await;
    let relay = relay_on(ports, 10, false).await;
    let listen = relay.local_addr();
    let creds = credentials(SECRET, SystemTime::now());
    Uclient::run(listen, &creds.username, &creds.password, &["-y"]).await.assert_relayed();
    // uclient leaves an allocation behind to expire; close must end it and free every port.
    assert!(relay.active_allocations() > 0);
    relay.close().await.unwrap();
    let mut held = vec![UdpSocket::bind(listen).await.expect("the listening port is free after close")];
    for port in ports.0..=ports.1 {
        let socket = UdpSocket::bind(("127.0.0.1", port)).await;
        held.push(socket.unwrap_or_else(|e| panic!("relay port {port} still bound after close: {e}")));
    }
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let relay = relay_with(10, false).await;
    let creds = credentials(SECRET, SystemTime::now());
    let mut wrong = creds.password.clone().into_bytes();
    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    Uclient::run(relay.local_addr(), &creds.username, &wrong, &["-y"])
        .await
        .assert_refused(REFUSED_BY_EMBEDDED);
    assert_eq!(relay.active_allocations(), 0);
    relay.close().await.unwrap();
}

#[tokio::test]
async fn credentials_from_another_secret_are_refused() {
    let relay = relay_with(10, false).await;
    let creds = credentials("some-other-secret-entirely", SystemTime::now());
    Uclient::run(relay.local_addr(), &creds.username, &creds.password, &["-y"])
        .await
        .assert_refused(REFUSED_BY_EMBEDDED);
    assert_eq!(relay.active_allocations(), 0);
    relay.close().await.unwrap();
}

#[tokio::test]
async fn expired_credentials_are_refused() {
    let relay = relay_with(10, false).await;
    // Issued two hours ago for one hour: genuine, but expired an hour ago.
    let creds = credentials(SECRET, SystemTime::now() - 2 * HOUR);
    assert!(
        kitsulan_turn::verify(&TurnSecret::new(SECRET).unwrap(), &creds.username, &creds.password).is_err()
    );
    Uclient::run(relay.local_addr(), &creds.username, &creds.password, &["-y"])
        .await
        .assert_refused(REFUSED_BY_EMBEDDED);
    assert_eq!(relay.active_allocations(), 0);
    relay.close().await.unwrap();
}

#[tokio::test]
async fn a_username_without_an_account_is_refused() {
    // The crate's stock handler accepts a bare expiry as username; ours must not, even with the
    // right HMAC for it.
    let relay = relay_with(10, false).await;
    let expiry = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let username = expiry.to_string();
    let password = hmac_password(SECRET, &username);
    Uclient::run(relay.local_addr(), &username, &password, &["-y"]).await.assert_refused(REFUSED_BY_EMBEDDED);
    assert_eq!(relay.active_allocations(), 0);
    relay.close().await.unwrap();
}

#[tokio::test]
async fn the_allocation_limit_is_enforced() {
    // One `uclient -y -c` run holds three allocations at its peak (a first one it keeps, then one
    // per session) and leaves the first one behind, so a relay of 3 serves one run and then has
    // too little room for another.
    let relay = relay_with(3, false).await;
    let first = credentials(SECRET, SystemTime::now());
    Uclient::run(relay.local_addr(), &first.username, &first.password, &["-y"]).await.assert_relayed();
    let left = relay.active_allocations();
    assert!((1..=3).contains(&left), "{left} allocations after the first run");

    let second = credentials(SECRET, SystemTime::now());
    let run = Uclient::run(relay.local_addr(), &second.username, &second.password, &["-y"]).await;
    run.assert_refused(RELAY_FULL);
    assert!(relay.active_allocations() <= 3);
    relay.close().await.unwrap();
}

/// A UDP echo service on loopback, like a local service an attacker would like to reach.
async fn echo_service() -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    (addr, received)
}

#[tokio::test]
async fn loopback_services_are_unreachable_through_the_relay() {
    let (service, received) = echo_service().await;
    let peer_flags = ["-e", "127.0.0.1", "-r"].map(String::from);
    let port = service.port().to_string();
    let flags: Vec<&str> = peer_flags.iter().map(String::as_str).chain([port.as_str()]).collect();

    // Positive control: with loopback peers allowed, uclient reaches the service and back.
    let open = relay_with(10, true).await;
    let creds = credentials(SECRET, SystemTime::now());
    Uclient::run(open.local_addr(), &creds.username, &creds.password, &flags).await.assert_relayed();
    assert!(received.load(Ordering::SeqCst) > 0);
    open.close().await.unwrap();

    // The default: the same run gets its allocation, but its channel to the service is refused
    // (403), and with Send indications (a permission for the relay's own IP, which relayed
    // addresses share on a loopback relay) nothing reaches the service. uclient would wait a
    // long time for echoes that never come; the open run above finished in about 3 s, so 6 s is
    // plenty for it to have sent everything.
    received.store(0, Ordering::SeqCst);
    let strict = relay_with(10, false).await;
    let run =
        Uclient::run_for(strict.local_addr(), &creds.username, &creds.password, &flags, SIX_SECONDS).await;
    assert!(strict.active_allocations() > 0, "uclient never got an allocation:\n{}", run.output);
    assert!(run.output.contains(FORBIDDEN), "the channel to {service} should get 403:\n{}", run.output);
    let send: Vec<&str> = flags.iter().copied().chain(["-s"]).collect();
    let run =
        Uclient::run_for(strict.local_addr(), &creds.username, &creds.password, &send, SIX_SECONDS).await;
    assert!(!run.output.contains("ERROR"), "{}", run.output);
    assert_eq!(received.load(Ordering::SeqCst), 0, "the loopback service got datagrams through the relay");
    strict.close().await.unwrap();
}

/// Flags for uclient sending to `peer`, `clients` allocations at once, with Send indications
/// (`-s`, after CreatePermission) or a channel (ChannelBind).
fn to_peer(peer: SocketAddr, clients: usize, send_method: bool) -> Vec<String> {
    let mut flags =
        ["-m", &clients.to_string(), "-e", &peer.ip().to_string(), "-r", &peer.port().to_string()]
            .map(String::from)
            .to_vec();
    if send_method {
        flags.push("-s".into());
    }
    flags
}

async fn run_to(relay: &Relay, creds: &TurnCredentials, flags: &[String]) -> Uclient {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Uclient::run_for(relay.local_addr(), &creds.username, &creds.password, &flags, SIX_SECONDS).await
}

/// What uclient prints for 403 Forbidden and 486 Allocation Quota Reached.
const FORBIDDEN: &str = "403";
const QUOTA_REACHED: &str = "486";
/// A LAN peer (RFC 1918) nothing answers at.
const LAN_PEER: &str = "192.168.77.7:9";
const OTHER_ACCOUNT: &str = "0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6c";

#[tokio::test]
async fn one_account_holds_at_most_its_share_of_allocations() {
    // webrtc-rs's TURN client makes exactly one allocation per client, so the count is exact.
    let relay = relay_configured(free_port_range(40).await, |c| c.max_allocations_per_account = 3).await;
    let creds = credentials(SECRET, SystemTime::now());
    let mut held = Vec::new();
    for i in 0..3 {
        let client = turn_client(&relay, &creds).await;
        let allocation =
            client.allocate().await.unwrap_or_else(|e| panic!("allocation {i} of the share: {e}"));
        held.push((client, allocation));
    }
    assert_eq!(relay.active_allocations(), 3);
    // The fourth, with the same credentials or fresh ones of the same account: 486.
    for creds in [creds.clone(), credentials(SECRET, SystemTime::now() + Duration::from_secs(1))] {
        let client = turn_client(&relay, &creds).await;
        let refused = client.allocate().await.err().expect("the fourth allocation must be refused");
        assert!(refused.to_string().contains(QUOTA_REACHED), "486 Allocation Quota Reached, not {refused}");
        client.close().await.unwrap();
    }
    assert_eq!(relay.active_allocations(), 3, "nothing was allocated for the refused requests");
    // Another account has its own share.
    let other = turn_client(&relay, &issue(SECRET, OTHER_ACCOUNT, HOUR, SystemTime::now())).await;
    let _others = other.allocate().await.expect("another account allocates");
    assert_eq!(relay.active_allocations(), 4);
    // An allocation that ends gives its slot back.
    let (client, allocation) = held.pop().unwrap();
    {
        use webrtc_util::Conn as _;
        allocation.close().await.unwrap();
    }
    drop(allocation);
    client.close().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let again = loop {
        let client = turn_client(&relay, &creds).await;
        match client.allocate().await {
            Ok(allocation) => break (client, allocation),
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "the freed slot never came back: {e}");
                client.close().await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    drop(again);
    relay.close().await.unwrap();
}

#[tokio::test]
async fn lan_peers_are_refused_unless_allowed() {
    let lan: SocketAddr = LAN_PEER.parse().unwrap();
    let creds = credentials(SECRET, SystemTime::now());
    let strict = relay_with(10, false).await;
    for send_method in [true, false] {
        let run = run_to(&strict, &creds, &to_peer(lan, 1, send_method)).await;
        assert!(
            run.output.contains(FORBIDDEN),
            "{lan} (send method {send_method}) should get 403:\n{}",
            run.output
        );
    }
    strict.close().await.unwrap();
    let open = relay_configured(free_port_range(40).await, |c| c.allow_lan_peers = true).await;
    for send_method in [true, false] {
        let run = run_to(&open, &creds, &to_peer(lan, 1, send_method)).await;
        assert!(
            !run.output.contains(FORBIDDEN) && !run.output.contains("ERROR"),
            "with LAN peers allowed, {lan} (send method {send_method}):\n{}",
            run.output
        );
    }
    open.close().await.unwrap();
}

#[tokio::test]
async fn answers_stun_binding_requests() {
    let relay = relay_with(10, false).await;
    assert!(support::wait_for_stun(relay.local_addr(), Duration::from_secs(5)).await);
    relay.close().await.unwrap();
}

/// `base64(HMAC-SHA1(secret, username))` for a username our generator would never make.
fn hmac_password(secret: &str, username: &str) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// webrtc-rs's TURN client with `creds`, on a fresh loopback socket, allocating at `relay`.
async fn turn_client(relay: &Relay, creds: &TurnCredentials) -> turn::client::Client {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let server = relay.local_addr().to_string();
    let client = turn::client::Client::new(turn::client::ClientConfig {
        stun_serv_addr: server.clone(),
        turn_serv_addr: server,
        username: creds.username.clone(),
        password: creds.password.clone(),
        realm: "kitsulan".to_owned(),
        software: String::new(),
        rto_in_ms: 0,
        conn: socket,
        vnet: None,
    })
    .await
    .unwrap();
    client.listen().await.unwrap();
    client
}

#[tokio::test]
async fn an_allocation_outlives_its_credentials_but_they_start_no_new_one() {
    // A call set up with credentials that then expire keeps its relay: the allocation's later
    // requests (here a CreatePermission for a new peer) are accepted with the expired
    // credentials. What expired credentials cannot do is start an allocation.
    let (service, received) = echo_service().await;
    let relay = relay_configured(free_port_range(40).await, |c| c.allow_loopback_peers = true).await;
    let creds = issue(SECRET, ACCOUNT, Duration::from_secs(2), SystemTime::now());
    let client = turn_client(&relay, &creds).await;
    let allocation = client.allocate().await.expect("unexpired credentials allocate");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        kitsulan_turn::verify(&TurnSecret::new(SECRET).unwrap(), &creds.username, &creds.password).is_err(),
        "the credentials have expired"
    );

    use webrtc_util::Conn as _;
    allocation.send_to(b"after expiry", service).await.expect("a permission for a new peer after expiry");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the datagram sent after expiry never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let late = turn_client(&relay, &creds).await;
    assert!(late.allocate().await.is_err(), "expired credentials must not start an allocation");
    late.close().await.unwrap();
    client.close().await.unwrap();
    relay.close().await.unwrap();
}
