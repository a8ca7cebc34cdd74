//! Calls (docs/calls.md), tested from outside against the real `kitsulan` binary.
//!
//! TURN: the credentials `CallService.GetTurnCredentials` hands out have the documented format
//! (`<expiry>:<account id>`, base64(HMAC-SHA1(secret, username)), the TTL, the URLs) and really
//! work: coturn's own client (`turnutils_uclient`) relays through the embedded relay at the URL
//! the RPC names, and through a real coturn (`turnserver`) in the external (Pro) setup; a wrong
//! password, an expired username or another account's name are refused by both. Without TURN
//! the RPC says `TURN_UNAVAILABLE`, and the external mode refuses to start without its secret.
//!
//! Signalling: devices holding a gateway WebSocket each (`kitsulan_client::gateway`) call each
//! other; every signal is checked to reach exactly the devices docs/calls.md names (the next
//! call event each device sees is the one expected, and at the end none has anything left), with
//! the documented non-fatal refusals, the ring timeout, cancelling, the six-device limit and the
//! 10-second grace for a device whose connection drops.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kitsulan_client::calls::{
    Coturn, MAX_CALL_DEVICES, MAX_PAYLOAD, RECONNECT_GRACE, REFUSED_BY_COTURN, REFUSED_BY_EMBEDDED, Uclient,
    directed, free_port_range, parse_username, signal, turn_password, url_addr,
};
use kitsulan_client::gateway::LiveInbox;
use kitsulan_client::people::{PASSWORD, start_with as start};
use kitsulan_client::{Client, Database, Options, TestServer, assert_refused};
use kitsulan_proto::v1::{CallAction, CallEvent, CallSignal, GetTurnCredentialsResponse};
use tokio::time::Instant;
use tonic::Code;
use uuid::Uuid;

/// How long a live event may take.
const WAIT: Duration = Duration::from_secs(10);
/// How long to listen for events that must not come (they would be queued by then).
const QUIET: Duration = Duration::from_millis(400);

/// A signed-up account without E2EE keys (signalling needs none).
async fn plain(server: &TestServer, username: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap();
    client.sign_up(username, PASSWORD).await.unwrap_or_else(|e| panic!("SignUp of {username}: {e:?}"));
    client
}

fn account_id(client: &Client) -> String {
    client.session().map(|s| s.account_id.clone()).unwrap_or_default()
}

fn new_call_id() -> String {
    Uuid::now_v7().to_string()
}

// ---------------------------------------------------------------------------------------------
// TURN credentials

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// `GetTurnCredentials` as `client`, with the wall-clock seconds before and after the call.
async fn credentials(client: &Client) -> (GetTurnCredentialsResponse, (u64, u64)) {
    let before = now_secs();
    let creds = client.turn_credentials().await.unwrap_or_else(|e| panic!("GetTurnCredentials: {e:?}"));
    (creds, (before, now_secs()))
}

/// Checks one set of credentials against docs/calls.md: the username names `account` and
/// expires `ttl` seconds after it was issued, `ttl_seconds` and `expires_at_ms` agree, and the
/// password is base64(HMAC-SHA1(secret, username)).
fn check_format(
    creds: &GetTurnCredentialsResponse,
    account: &str,
    secret: &str,
    ttl: u64,
    issued: (u64, u64),
) {
    let (expiry, named) = parse_username(&creds.username).unwrap();
    assert_eq!(named, account, "the account in TURN username {:?}", creds.username);
    assert!(
        (issued.0 + ttl..=issued.1 + ttl + 1).contains(&expiry),
        "TURN username {:?} issued between {} and {} should expire {ttl} s later",
        creds.username,
        issued.0,
        issued.1
    );
    assert_eq!(u64::from(creds.ttl_seconds), ttl, "ttl_seconds");
    assert_eq!(creds.expires_at_ms, i64::try_from(expiry * 1000).unwrap(), "expires_at_ms vs the username");
    assert_eq!(
        creds.password,
        turn_password(secret, &creds.username),
        "the password should be base64(HMAC-SHA1(secret, {:?}))",
        creds.username
    );
}

/// The embedded relay's URLs: exactly `turn:127.0.0.1:P?transport=udp` and `stun:127.0.0.1:P`.
fn embedded_relay(creds: &GetTurnCredentialsResponse) -> SocketAddr {
    let turn = creds.urls.iter().find(|u| u.starts_with("turn:")).unwrap_or_else(|| {
        panic!("no turn: URL in {:?}", creds.urls);
    });
    let relay = url_addr(turn).unwrap();
    assert!(relay.ip().is_loopback() && relay.port() != 0, "the relay's URL {turn:?}");
    assert_eq!(
        creds.urls,
        [format!("turn:{relay}?transport=udp"), format!("stun:{relay}")],
        "the URLs of the embedded relay"
    );
    relay
}

async fn expect_relayed(relay: SocketAddr, username: &str, password: &str, case: &str) -> Uclient {
    let run = Uclient::run(relay, username, password).await.unwrap_or_else(|e| panic!("{case}: {e:#}"));
    assert!(
        run.relayed(),
        "{case}: turnutils_uclient should relay every packet through {relay} as {username:?}; exit {:?}, \
         totals (sent, received, lost) {:?}, output:\n{}",
        run.exit_code,
        run.totals(),
        run.output
    );
    run
}

async fn expect_turn_refused(relay: SocketAddr, username: &str, password: &str, marker: &str, case: &str) {
    let run = Uclient::run(relay, username, password).await.unwrap_or_else(|e| panic!("{case}: {e:#}"));
    assert!(
        run.refused(marker),
        "{case}: {relay} should refuse {username:?} ({marker:?}); exit {:?}, totals {:?}, output:\n{}",
        run.exit_code,
        run.totals(),
        run.output
    );
}

/// Credentials that must not work: a wrong password, a username that expired a minute ago (with
/// the right HMAC) and another account's name with this password.
async fn expect_bad_credentials_refused(
    relay: SocketAddr,
    creds: &GetTurnCredentialsResponse,
    secret: &str,
    other_account: &str,
    marker: &str,
) {
    let (_, account) = parse_username(&creds.username).unwrap();
    let wrong = turn_password("not-the-shared-secret-at-all", &creds.username);
    expect_turn_refused(relay, &creds.username, &wrong, marker, "a wrong password").await;
    let expired = format!("{}:{account}", now_secs() - 60);
    expect_turn_refused(relay, &expired, &turn_password(secret, &expired), marker, "an expired username")
        .await;
    let (expiry, _) = parse_username(&creds.username).unwrap();
    let foreign = format!("{expiry}:{other_account}");
    expect_turn_refused(relay, &foreign, &creds.password, marker, "another account's name").await;
}

#[tokio::test]
async fn the_embedded_relay_takes_the_credentials_it_hands_out_and_no_others() {
    let (min, max) = free_port_range(40).await.unwrap();
    let mut server =
        start(Options::new(Database::Sqlite).env("KITSULAN_TURN_RELAY_PORTS", &format!("{min}-{max}"))).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let secret_file = server.data_dir().join("turn-secret");
    let secret = std::fs::read_to_string(&secret_file).unwrap().trim().to_owned();
    assert!(secret.len() >= 16, "the generated TURN secret is short: {} characters", secret.len());

    let (creds, issued) = credentials(&alice).await;
    check_format(&creds, &account_id(&alice), &secret, 600, issued);
    let relay = embedded_relay(&creds);
    let (bobs, issued) = credentials(&bob).await;
    check_format(&bobs, &account_id(&bob), &secret, 600, issued);
    assert_eq!(bobs.urls, creds.urls);

    // Only a signed-in device gets credentials.
    let anonymous = Client::connect(&server.url()).await.unwrap();
    let status = anonymous.turn_credentials().await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "GetTurnCredentials without a token: {status:?}");

    expect_relayed(relay, &creds.username, &creds.password, "Alice's credentials").await;
    expect_relayed(relay, &bobs.username, &bobs.password, "Bob's credentials").await;
    expect_bad_credentials_refused(relay, &creds, &secret, &account_id(&bob), REFUSED_BY_EMBEDDED).await;
    // The refusals were the relay checking credentials, not the relay going away.
    expect_relayed(relay, &creds.username, &creds.password, "Alice's credentials again").await;

    // The secret is kept in the data dir: after a restart (new relay port) the same credentials
    // still work, and new ones are made with the same secret.
    server.restart().await.unwrap();
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap().trim(), secret, "turn-secret after a restart");
    let session = alice.session().cloned();
    let mut alice = Client::connect(&server.url()).await.unwrap();
    alice.set_session(session);
    let (fresh, issued) = credentials(&alice).await;
    check_format(&fresh, &account_id(&alice), &secret, 600, issued);
    let relay = embedded_relay(&fresh);
    expect_relayed(relay, &creds.username, &creds.password, "credentials from before the restart").await;
    expect_relayed(relay, &fresh.username, &fresh.password, "credentials after the restart").await;
}

#[tokio::test]
async fn with_an_external_coturn_the_credentials_relay_through_it() {
    const SECRET: &str = "e2e-coturn-shared-secret-4f1c2b";
    let coturn = Coturn::start(SECRET).await.unwrap();
    let turn_url = format!("turn:{}?transport=udp", coturn.addr);
    let stun_url = format!("stun:{}", coturn.addr);
    let server = start(
        Options::new(Database::Sqlite)
            .env("KITSULAN_TURN", "external")
            .env("KITSULAN_TURN_SECRET", SECRET)
            .env("KITSULAN_TURN_URLS", &format!("{turn_url},{stun_url}"))
            .env("KITSULAN_TURN_CREDENTIAL_TTL_SECONDS", "600"),
    )
    .await;
    assert!(
        !server.log_text().contains(SECRET),
        "the TURN secret is in the server's log:\n{}",
        server.log_text()
    );
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;

    let (creds, issued) = credentials(&alice).await;
    check_format(&creds, &account_id(&alice), SECRET, 600, issued);
    assert_eq!(creds.urls, [turn_url.clone(), stun_url], "the URLs are KITSULAN_TURN_URLS");
    let relay = url_addr(&turn_url).unwrap();

    let accepted =
        expect_relayed(relay, &creds.username, &creds.password, "Alice's credentials at coturn").await;
    let log = coturn.log_text();
    assert!(
        log.contains(&creds.username),
        "coturn's log should show the username it accepted ({accepted:?}):\n{log}"
    );
    expect_bad_credentials_refused(relay, &creds, SECRET, &account_id(&bob), REFUSED_BY_COTURN).await;
    let (bobs, _) = credentials(&bob).await;
    expect_relayed(relay, &bobs.username, &bobs.password, "Bob's credentials at coturn").await;
}

#[tokio::test]
async fn without_turn_the_rpc_says_so_and_external_mode_needs_its_settings() {
    let server = start(Options::new(Database::Sqlite).env("KITSULAN_TURN", "off")).await;
    let alice = plain(&server, "alice").await;
    assert_refused(alice.turn_credentials().await, "TURN_UNAVAILABLE");

    let secret = "a-secret-that-must-not-be-printed";
    let cases: [(&[(&str, &str)], &str); 2] = [
        (
            &[("KITSULAN_TURN", "external"), ("KITSULAN_TURN_URLS", "turn:127.0.0.1:3478?transport=udp")],
            "KITSULAN_TURN_SECRET",
        ),
        (&[("KITSULAN_TURN", "external"), ("KITSULAN_TURN_SECRET", secret)], "KITSULAN_TURN_URLS"),
    ];
    // Every problem of every case at once, so a failure says all that is wrong.
    let mut failures = Vec::new();
    for (env, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut vars: Vec<(String, String)> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        vars.push(("KITSULAN_DATA_DIR".into(), dir.path().join("data").display().to_string()));
        vars.push(("KITSULAN_LISTEN".into(), "127.0.0.1:0".into()));
        vars.push(("KITSULAN_TURN_LISTEN".into(), "127.0.0.1:0".into()));
        let out = kitsulan_client::admin::run(&["serve"], &vars, dir.path(), None).await.unwrap();
        let mut problems = Vec::new();
        if out.code != Some(2) {
            problems.push(format!("exit code {:?}, not 2 (as for every invalid setting)", out.code));
        }
        let lines = out.stderr.trim_end().lines().count();
        if lines != 1 {
            problems.push(format!("{lines} lines on stderr, not one"));
        }
        if !out.stderr.contains(&format!("invalid setting {want}")) {
            problems.push(format!("no \"invalid setting {want}\""));
        }
        if out.stderr.contains(secret) || out.stdout.contains(secret) {
            problems.push("the secret leaked".to_owned());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "kitsulan serve with {env:?}: {}; stderr:\n{}",
                problems.join("; "),
                out.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Signalling

static NONCE: AtomicU64 = AtomicU64::new(1);

/// One signed-in device with its gateway connection.
struct Device {
    who: String,
    client: Client,
    inbox: LiveInbox,
}

impl Device {
    /// A new account's first device, online and synced.
    async fn sign_up(server: &TestServer, username: &str) -> Self {
        let client = plain(server, username).await;
        Self::online(server, client, username).await
    }

    /// Another device of `username`, online and synced.
    async fn sign_in(server: &TestServer, username: &str, name: &str) -> Self {
        let mut client = Client::connect(&server.url()).await.unwrap();
        client
            .sign_in_as(username, PASSWORD, name)
            .await
            .unwrap_or_else(|e| panic!("SignIn of {username}'s {name}: {e:?}"));
        Self::online(server, client, &format!("{username}'s {name}")).await
    }

    async fn online(server: &TestServer, client: Client, who: &str) -> Self {
        let mut device = Self { who: who.to_owned(), client, inbox: LiveInbox::new() };
        device.connect(server).await;
        device
    }

    async fn connect(&mut self, server: &TestServer) {
        let who = &self.who;
        self.inbox
            .connect(&server.url(), self.client.access_token(), false)
            .await
            .unwrap_or_else(|e| panic!("{who} connects: {e}"));
        self.inbox.sync(WAIT).await.unwrap_or_else(|e| panic!("{who} syncs: {e:#}"));
    }

    fn id(&self) -> String {
        self.client.device_id().to_owned()
    }

    fn account(&self) -> String {
        account_id(&self.client)
    }

    fn send(&mut self, signal: CallSignal) {
        let who = self.who.clone();
        let gateway = self.inbox.gateway().unwrap_or_else(|| panic!("{who} is not connected"));
        gateway.call(signal).unwrap_or_else(|e| panic!("{who} sends a call signal: {e:#}"));
    }

    /// The next call event this device gets must be `action` of `call_id` from `from`.
    async fn expect(&mut self, action: CallAction, call_id: &str, from: &(String, String)) -> CallEvent {
        let what = format!("{action:?} of call {call_id} at {}", self.who);
        let event = self.inbox.next_call(WAIT, &what).await.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            (event.action(), event.call_id.as_str()),
            (action, call_id),
            "{what}: the next call event was {event:?}"
        );
        assert_eq!(
            (&event.from_account_id, &event.from_device_id),
            (&from.0, &from.1),
            "{what}: from (account, device)"
        );
        event
    }

    /// The next call event this device gets must be ENDED of `call_id` with `reason`.
    async fn ended(&mut self, call_id: &str, reason: &str) -> CallEvent {
        let what = format!("ENDED ({reason}) of call {call_id} at {}", self.who);
        let event = self.inbox.next_call(WAIT, &what).await.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            (event.action(), event.call_id.as_str(), event.reason.as_str()),
            (CallAction::Ended, call_id, reason),
            "{what}: the next call event was {event:?}"
        );
        event
    }

    /// Sends `signal` and expects the non-fatal GatewayError `reason`, the connection alive.
    async fn refused(&mut self, signal: CallSignal, reason: &str, case: &str) {
        let who = self.who.clone();
        self.send(signal);
        let gateway = self.inbox.gateway().unwrap();
        let error = gateway.expect_error(WAIT).await.unwrap_or_else(|e| panic!("{case} ({who}): {e:#}"));
        assert_eq!((error.reason.as_str(), error.fatal), (reason, false), "{case} ({who}): {error:?}");
        gateway
            .check_alive(NONCE.fetch_add(1, Ordering::Relaxed), WAIT)
            .await
            .unwrap_or_else(|e| panic!("{case} ({who}): the connection did not survive: {e:#}"));
    }

    /// No call event is waiting or comes within [`QUIET`].
    async fn quiet(&mut self, why: &str) {
        self.quiet_for(QUIET, why).await;
    }

    async fn quiet_for(&mut self, period: Duration, why: &str) {
        let what = format!("{} should get no call event ({why})", self.who);
        self.inbox.expect_no_call(period, &what).await.unwrap();
    }
}

/// `(account id, device id)` of a device, as `CallEvent.from_*` name it.
fn from(device: &Device) -> (String, String) {
    (device.account(), device.id())
}

/// Sends `signal` from `sender` and checks that each of `receivers` gets it next, with the
/// given participants.
async fn fan_out(
    sender: &mut Device,
    receivers: &mut [&mut Device],
    signal: CallSignal,
    participants: &[String],
) -> Vec<CallEvent> {
    let action = signal.action();
    let call_id = signal.call_id.clone();
    let origin = from(sender);
    sender.send(signal);
    let mut events = Vec::new();
    for device in receivers.iter_mut() {
        let event = device.expect(action, &call_id, &origin).await;
        assert_eq!(
            event.participant_device_ids, participants,
            "participants in {action:?} of {call_id} at {}",
            device.who
        );
        events.push(event);
    }
    events
}

#[tokio::test]
async fn a_direct_call_reaches_exactly_the_right_devices() {
    let server = start(Options::new(Database::Sqlite)).await;
    let mut alice = Device::sign_up(&server, "alice").await;
    let mut alice_phone = Device::sign_in(&server, "alice", "Phone").await;
    let mut bob = Device::sign_up(&server, "bob").await;
    let mut bob_phone = Device::sign_in(&server, "bob", "Phone").await;
    let mut carol = Device::sign_up(&server, "carol").await;
    let (alice_id, bob_phone_id) = (alice.id(), bob_phone.id());
    let direct = alice.client.open_direct(&bob.account()).await.unwrap().conversation.unwrap().id;
    // Bob accepts Alice's request (a request does not ring).
    bob.client.accept_request(&direct).await.unwrap();
    // Carol shares another conversation with Alice and Bob, just not this one.
    let elsewhere =
        carol.client.create_group("Elsewhere", &[&alice.account(), &bob.account()]).await.unwrap();
    let call = new_call_id();
    let sig = |action| signal(&direct, &call, action);

    // INVITE: Bob's two devices and Alice's other device; not Alice's laptop, not Carol.
    let invite = CallSignal { video: true, payload: b"an invite".to_vec(), ..sig(CallAction::Invite) };
    let events = fan_out(
        &mut alice,
        &mut [&mut bob, &mut bob_phone, &mut alice_phone],
        invite,
        std::slice::from_ref(&alice_id),
    )
    .await;
    for event in events {
        assert_eq!(event.conversation_id, direct);
        assert!(event.video, "INVITE with video: {event:?}");
        assert_eq!(event.payload, b"an invite");
    }

    // Carol is no member: whatever she sends into this conversation is refused.
    for action in [
        CallAction::Invite,
        CallAction::Ringing,
        CallAction::Accept,
        CallAction::Decline,
        CallAction::Busy,
        CallAction::Cancel,
        CallAction::HangUp,
    ] {
        carol
            .refused(sig(action), "NOT_A_MEMBER", &format!("Carol's {action:?} into Alice and Bob's call"))
            .await;
    }
    let offer = directed(&direct, &call, CallAction::Offer, &alice.id(), b"carol's offer");
    carol.refused(offer, "NOT_A_MEMBER", "Carol's OFFER to Alice").await;
    let own = signal(&direct, &new_call_id(), CallAction::Invite);
    carol.refused(own, "NOT_A_MEMBER", "Carol's own INVITE in Alice and Bob's conversation").await;
    let unknown = signal(&Uuid::now_v7().to_string(), &new_call_id(), CallAction::Invite);
    carol.refused(unknown, "NOT_A_MEMBER", "an INVITE into an unknown conversation").await;

    // One call at a time per conversation; other malformed signals.
    let second = signal(&direct, &new_call_id(), CallAction::Invite);
    bob_phone.refused(second.clone(), "CALL_IN_PROGRESS", "a second INVITE from Bob").await;
    alice.refused(second, "CALL_IN_PROGRESS", "a second INVITE from Alice").await;
    let stray = signal(&direct, &new_call_id(), CallAction::Ringing);
    bob.refused(stray, "CALL_NOT_FOUND", "RINGING for a call that does not exist").await;
    bob.refused(signal(&direct, "not-a-uuid", CallAction::Ringing), "ID_INVALID", "a malformed call id")
        .await;
    bob.refused(sig(CallAction::Ended), "ACTION_INVALID", "ENDED from a device").await;
    bob.refused(sig(CallAction::Unspecified), "ACTION_INVALID", "no action").await;
    bob.refused(sig(CallAction::Cancel), "NOT_ALLOWED", "CANCEL by the callee").await;
    alice_phone.refused(sig(CallAction::Cancel), "NOT_ALLOWED", "CANCEL by the caller's other device").await;
    let early = directed(&direct, &call, CallAction::Offer, &alice.id(), b"early");
    bob.refused(early, "NOT_IN_CALL", "an OFFER from a device not in the call").await;

    // RINGING from Bob's phone: the devices in the call (Alice's laptop) and Bob's other device.
    fan_out(
        &mut bob_phone,
        &mut [&mut alice, &mut bob],
        sig(CallAction::Ringing),
        std::slice::from_ref(&alice_id),
    )
    .await;

    // ACCEPT from Bob's laptop: everyone else, with both devices in the call.
    let both = [alice.id(), bob.id()];
    fan_out(&mut bob, &mut [&mut alice, &mut alice_phone, &mut bob_phone], sig(CallAction::Accept), &both)
        .await;
    alice.refused(sig(CallAction::Cancel), "NOT_ALLOWED", "CANCEL after Bob accepted").await;

    // OFFER, ANSWER and ICE candidates: only the device named.
    let (a, b) = (from(&alice), from(&bob));
    alice.send(directed(&direct, &call, CallAction::Offer, &bob.id(), b"sdp offer for bob's laptop"));
    let offer = bob.expect(CallAction::Offer, &call, &a).await;
    assert_eq!(offer.payload, b"sdp offer for bob's laptop");
    bob.send(directed(&direct, &call, CallAction::Answer, &alice.id(), b"sdp answer"));
    assert_eq!(alice.expect(CallAction::Answer, &call, &b).await.payload, b"sdp answer");
    alice.send(directed(&direct, &call, CallAction::IceCandidate, &bob.id(), b"candidate a"));
    assert_eq!(bob.expect(CallAction::IceCandidate, &call, &a).await.payload, b"candidate a");
    bob.send(directed(&direct, &call, CallAction::IceCandidate, &alice.id(), b"candidate b"));
    assert_eq!(alice.expect(CallAction::IceCandidate, &call, &b).await.payload, b"candidate b");

    let to_phone = directed(&direct, &call, CallAction::Offer, &bob_phone.id(), b"offer");
    alice.refused(to_phone, "DEVICE_NOT_IN_CALL", "an OFFER to Bob's phone, which is not in the call").await;
    let to_carol = directed(&direct, &call, CallAction::Offer, &carol.id(), b"offer");
    alice.refused(to_carol, "DEVICE_NOT_IN_CALL", "an OFFER to Carol's device").await;
    let nowhere = directed(&direct, &call, CallAction::Offer, "", b"offer");
    alice.refused(nowhere, "TO_DEVICE_REQUIRED", "an OFFER for no device").await;
    let big = directed(&direct, &call, CallAction::IceCandidate, &bob.id(), &vec![7; MAX_PAYLOAD + 1]);
    alice.refused(big, "PAYLOAD_TOO_LARGE", "a payload of 32 KiB + 1").await;
    alice.send(directed(&direct, &call, CallAction::IceCandidate, &bob.id(), &vec![7; MAX_PAYLOAD]));
    let largest = bob.expect(CallAction::IceCandidate, &call, &a).await;
    assert_eq!(largest.payload, vec![7; MAX_PAYLOAD], "a payload of exactly 32 KiB arrives whole");

    // HANG_UP by Bob: Alice (left in the call) and Bob's phone get it, then every member device
    // gets ENDED (hung_up).
    fan_out(
        &mut bob,
        &mut [&mut alice, &mut bob_phone],
        sig(CallAction::HangUp),
        std::slice::from_ref(&alice_id),
    )
    .await;
    for device in [&mut alice, &mut alice_phone, &mut bob, &mut bob_phone] {
        let ended = device.ended(&call, "hung_up").await;
        assert_eq!(ended.conversation_id, direct);
    }
    alice.refused(sig(CallAction::HangUp), "CALL_ENDED", "HANG_UP after the call ended").await;
    bob_phone.refused(sig(CallAction::Accept), "CALL_ENDED", "ACCEPT after the call ended").await;

    // The conversation is free again: a new call from Bob's phone, which he cancels.
    let next = new_call_id();
    let invite = signal(&direct, &next, CallAction::Invite);
    fan_out(
        &mut bob_phone,
        &mut [&mut alice, &mut alice_phone, &mut bob],
        invite,
        std::slice::from_ref(&bob_phone_id),
    )
    .await;
    bob_phone.send(signal(&direct, &next, CallAction::Cancel));
    for device in [&mut alice, &mut alice_phone, &mut bob, &mut bob_phone] {
        device.ended(&next, "cancelled").await;
    }

    // Nobody got anything else; Carol, in a group with both, nothing at all.
    for device in [&mut alice, &mut alice_phone, &mut bob, &mut bob_phone, &mut carol] {
        device.quiet("after the calls").await;
    }
    assert!(!elsewhere.id.is_empty());
}

#[tokio::test]
async fn unanswered_calls_end_after_the_ring_time_and_callers_can_cancel() {
    let server = start(Options::new(Database::Sqlite).env("KITSULAN_CALL_RING_SECONDS", "2")).await;
    let mut alice = Device::sign_up(&server, "alice").await;
    let mut alice_phone = Device::sign_in(&server, "alice", "Phone").await;
    let mut bob = Device::sign_up(&server, "bob").await;
    let (alice_id, bob_id) = (alice.id(), bob.id());
    let direct = alice.client.open_direct(&bob.account()).await.unwrap().conversation.unwrap().id;
    bob.client.accept_request(&direct).await.unwrap();

    // Nobody answers: ENDED (unanswered) to every device, the caller's too, after ~2 s.
    let call = new_call_id();
    let invited = Instant::now();
    fan_out(
        &mut alice,
        &mut [&mut bob, &mut alice_phone],
        signal(&direct, &call, CallAction::Invite),
        std::slice::from_ref(&alice_id),
    )
    .await;
    fan_out(
        &mut bob,
        &mut [&mut alice],
        signal(&direct, &call, CallAction::Ringing),
        std::slice::from_ref(&alice_id),
    )
    .await;
    for device in [&mut alice, &mut alice_phone, &mut bob] {
        let ended = device.ended(&call, "unanswered").await;
        assert!(ended.participant_device_ids.is_empty(), "{ended:?}");
    }
    let after = invited.elapsed();
    assert!(
        (Duration::from_millis(1900)..Duration::from_secs(8)).contains(&after),
        "an unanswered call with KITSULAN_CALL_RING_SECONDS=2 ended after {after:?}"
    );
    bob.refused(signal(&direct, &call, CallAction::Accept), "CALL_ENDED", "ACCEPT after the ring time").await;

    // The caller cancels before anyone answers: ENDED (cancelled) to every device.
    let call = new_call_id();
    fan_out(
        &mut alice,
        &mut [&mut bob, &mut alice_phone],
        signal(&direct, &call, CallAction::Invite),
        std::slice::from_ref(&alice_id),
    )
    .await;
    bob.refused(signal(&direct, &call, CallAction::Cancel), "NOT_ALLOWED", "CANCEL by the callee").await;
    alice.send(signal(&direct, &call, CallAction::Cancel));
    for device in [&mut alice, &mut alice_phone, &mut bob] {
        device.ended(&call, "cancelled").await;
    }

    // An answered call is not ended by the ring time.
    let call = new_call_id();
    fan_out(
        &mut alice,
        &mut [&mut bob, &mut alice_phone],
        signal(&direct, &call, CallAction::Invite),
        std::slice::from_ref(&alice_id),
    )
    .await;
    let both = [alice.id(), bob.id()];
    fan_out(&mut bob, &mut [&mut alice, &mut alice_phone], signal(&direct, &call, CallAction::Accept), &both)
        .await;
    let long = Duration::from_millis(5_500);
    for device in [&mut alice, &mut alice_phone, &mut bob] {
        device.quiet_for(long / 3, "an answered call goes on past the ring time").await;
    }
    fan_out(
        &mut alice,
        &mut [&mut bob, &mut alice_phone],
        signal(&direct, &call, CallAction::HangUp),
        std::slice::from_ref(&bob_id),
    )
    .await;
    for device in [&mut alice, &mut alice_phone, &mut bob] {
        device.ended(&call, "hung_up").await;
    }
    for device in [&mut alice, &mut alice_phone, &mut bob] {
        device.quiet("after the calls").await;
    }
}

#[tokio::test]
async fn a_group_call_takes_six_devices_and_refuses_the_seventh() {
    let server = start(Options::new(Database::Sqlite)).await;
    let mut devices = vec![
        Device::sign_up(&server, "alice").await,
        Device::sign_up(&server, "bob").await,
        Device::sign_up(&server, "carol").await,
        Device::sign_in(&server, "alice", "Phone").await,
        Device::sign_in(&server, "bob", "Phone").await,
        Device::sign_in(&server, "carol", "Phone").await,
        Device::sign_in(&server, "alice", "Tablet").await,
    ];
    assert_eq!(devices.len(), MAX_CALL_DEVICES + 1);
    let (bob_id, carol_id) = (devices[1].account(), devices[2].account());
    let group = devices[0].client.create_group("Seven devices", &[&bob_id, &carol_id]).await.unwrap().id;
    devices[1].client.accept_request(&group).await.unwrap();
    devices[2].client.accept_request(&group).await.unwrap();
    let call = new_call_id();
    let sig = |action| signal(&group, &call, action);

    /// Sends from device `i` and expects every device but `i` in `to` to get it.
    async fn send_to(
        devices: &mut [Device],
        i: usize,
        to: &[usize],
        signal: CallSignal,
        participants: &[String],
    ) {
        let (before, rest) = devices.split_at_mut(i);
        let (sender, after) = rest.split_first_mut().unwrap();
        let mut receivers: Vec<&mut Device> = before
            .iter_mut()
            .enumerate()
            .chain(after.iter_mut().enumerate().map(|(j, d)| (i + 1 + j, d)))
            .filter(|(j, _)| to.contains(j))
            .map(|(_, d)| d)
            .collect();
        fan_out(sender, &mut receivers, signal, participants).await;
    }
    let all: Vec<usize> = (0..devices.len()).collect();

    // Alice's laptop calls; five more devices join, one at a time: six in the call.
    let mut participants = vec![devices[0].id()];
    send_to(&mut devices, 0, &all, sig(CallAction::Invite), &participants).await;
    for i in 1..MAX_CALL_DEVICES {
        participants.push(devices[i].id());
        send_to(&mut devices, i, &all, sig(CallAction::Accept), &participants).await;
    }
    // The seventh (Alice's tablet) is refused, and nobody hears of it.
    devices[6].refused(sig(CallAction::Accept), "CALL_FULL", "a seventh device accepting").await;
    for device in &mut devices {
        device.quiet("a refused ACCEPT").await;
    }

    // Mesh signalling between any two devices in the call.
    let (a, b) = (from(&devices[3]), devices[5].id());
    devices[3].send(directed(&group, &call, CallAction::Offer, &b, b"phone to phone"));
    assert_eq!(devices[5].expect(CallAction::Offer, &call, &a).await.payload, b"phone to phone");
    let tablet = devices[6].id();
    devices[3]
        .refused(
            directed(&group, &call, CallAction::Offer, &tablet, b"x"),
            "DEVICE_NOT_IN_CALL",
            "an OFFER to the refused tablet",
        )
        .await;

    // Carol's phone leaves: the five left get HANG_UP (no ENDED); then the tablet fits.
    participants.retain(|d| *d != devices[5].id());
    send_to(&mut devices, 5, &[0, 1, 2, 3, 4], sig(CallAction::HangUp), &participants).await;
    participants.push(tablet);
    send_to(&mut devices, 6, &all, sig(CallAction::Accept), &participants).await;
    for device in &mut devices {
        device.quiet("after the tablet joined").await;
    }
}

#[tokio::test]
async fn a_device_whose_connection_drops_leaves_its_call_after_ten_seconds() {
    let server = start(Options::new(Database::Sqlite)).await;
    let mut alice = Device::sign_up(&server, "alice").await;
    let mut bob = Device::sign_up(&server, "bob").await;
    let mut carol = Device::sign_up(&server, "carol").await;
    let alice_id = alice.id();
    let group = alice.client.create_group("Three", &[&bob.account(), &carol.account()]).await.unwrap().id;
    bob.client.accept_request(&group).await.unwrap();
    carol.client.accept_request(&group).await.unwrap();
    let call = new_call_id();
    let sig = |action| signal(&group, &call, action);
    fan_out(
        &mut alice,
        &mut [&mut bob, &mut carol],
        sig(CallAction::Invite),
        std::slice::from_ref(&alice_id),
    )
    .await;
    let two = [alice.id(), bob.id()];
    fan_out(&mut bob, &mut [&mut alice, &mut carol], sig(CallAction::Accept), &two).await;
    let three = [alice.id(), bob.id(), carol.id()];
    fan_out(&mut carol, &mut [&mut alice, &mut bob], sig(CallAction::Accept), &three).await;

    // Bob's connection drops for good (no close handshake); Carol's drops too but she is back
    // within two seconds, so she stays in the call.
    let dropped = Instant::now();
    bob.inbox.drop_connection();
    carol.inbox.drop_connection();
    tokio::time::sleep(Duration::from_secs(2)).await;
    carol.connect(&server).await;

    let b = from(&bob);
    let left = [alice.id(), carol.id()];
    let limit = RECONNECT_GRACE + Duration::from_secs(10);
    for device in [&mut alice, &mut carol] {
        let what = format!("HANG_UP of Bob's dropped device at {}", device.who);
        let event = device.inbox.next_call(limit, &what).await.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            (event.action(), event.call_id.as_str(), event.from_device_id.as_str()),
            (CallAction::HangUp, call.as_str(), b.1.as_str()),
            "{what}: {event:?}"
        );
        assert_eq!(event.from_account_id, b.0);
        assert_eq!(event.participant_device_ids, left, "{what}");
    }
    let after = dropped.elapsed();
    assert!(
        after >= RECONNECT_GRACE - Duration::from_secs(1),
        "Bob's device was taken out of the call {after:?} after its connection dropped (grace: 10 s)"
    );
    // Two devices are left: no ENDED; and Carol, who came back in time, is not taken out.
    for device in [&mut alice, &mut carol] {
        device.quiet_for(Duration::from_secs(3), "Carol reconnected within the grace period").await;
    }
    carol.send(directed(&group, &call, CallAction::Offer, &alice.id(), b"still here"));
    assert_eq!(alice.expect(CallAction::Offer, &call, &from(&carol)).await.payload, b"still here");

    // Alice closes her connection (politely) and does not come back: Carol gets HANG_UP from
    // her, and with one device left, ENDED (hung_up).
    let a = from(&alice);
    let closed = Instant::now();
    alice.inbox.close().await;
    let what = "HANG_UP of Alice's closed device at Carol";
    let event = carol.inbox.next_call(limit, what).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        (event.action(), event.call_id.as_str(), &event.from_device_id, &event.from_account_id),
        (CallAction::HangUp, call.as_str(), &a.1, &a.0),
        "{what}: {event:?}"
    );
    assert_eq!(event.participant_device_ids, [carol.id()], "{what}");
    let after = closed.elapsed();
    assert!(after >= RECONNECT_GRACE - Duration::from_secs(1), "Alice's device left after {after:?}");
    carol.ended(&call, "hung_up").await;
    carol.quiet("after the call ended").await;
}
