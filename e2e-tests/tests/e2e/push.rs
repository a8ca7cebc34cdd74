//! Web Push end to end (`PushService`, docs/admin.md "Push notifications"), checked by
//! implementations that are not ours: a push service stand-in (`scripts/push_receiver.py`, an
//! HTTPS server on 127.0.0.1 with its own test CA, which the server is told to trust) decrypts
//! each push with PyPI's `http_ece` (RFC 8291) using the subscription's private key and auth
//! secret, and verifies the VAPID token (RFC 8292) with `cryptography`. The tests then check
//! that the payload is content-free, the token names the right audience, contact and expiry and
//! is signed by the server's key; that a connected device gets no push; that a flood of
//! messages gives a handful of pushes; that 410 deletes the subscription and 503 is retried;
//! and that endpoints reaching inward (SSRF) are refused with nothing stored.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::process::Stdio;

use base64::Engine as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kitsulan_client::people::{account_id, online, opaque, signed_in, signed_up, start_with};
use kitsulan_client::{Client, Database, Options, TestServer, assert_refused};
use kitsulan_proto::v1::{DeletePushSubscriptionRequest, GetPushConfigRequest, SetPushSubscriptionRequest};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::mpsc;

const CONTACT: &str = "mailto:push-test@kitsulan.test";
/// KITSULAN_PUSH_MIN_INTERVAL_SECONDS in these tests.
const INTERVAL: Duration = Duration::from_secs(2);

/// The push service stand-in: its port, CA, the subscription keys, and what it received.
struct Receiver {
    port: u16,
    ca: String,
    p256dh: String,
    auth: String,
    received: mpsc::UnboundedReceiver<Value>,
    _dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl Receiver {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/push_receiver.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 {script}: {e} (install Python 3 and `pip install http-ece`)")
            });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the push receiver starts within 30 s")
            .unwrap()
            .expect("the push receiver says it is ready");
        let ready: Value = serde_json::from_str(&first).unwrap();
        assert_eq!(ready["ready"], true, "the push receiver cannot run: {}", ready["error"]);
        let (tx, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ =
                    tx.send(serde_json::from_str::<Value>(&line).expect("the receiver writes JSON lines"));
            }
        });
        Self {
            port: ready["port"].as_u64().unwrap() as u16,
            ca: ready["ca"].as_str().unwrap().to_owned(),
            p256dh: ready["p256dh"].as_str().unwrap().to_owned(),
            auth: ready["auth"].as_str().unwrap().to_owned(),
            received,
            _dir: dir,
            _child: child,
        }
    }

    fn origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// A server that trusts this receiver's CA and may reach its origin.
    async fn server(&self, database: Database) -> TestServer {
        start_with(
            Options::new(database)
                .env("KITSULAN_PUSH_ALLOWED_ORIGINS", &self.origin())
                .env("KITSULAN_PUSH_EXTRA_ROOTS", &self.ca)
                .env("KITSULAN_PUSH_CONTACT", CONTACT)
                .env("KITSULAN_PUSH_MIN_INTERVAL_SECONDS", &INTERVAL.as_secs().to_string())
                .env("RUST_LOG", "info,kitsulan_server::services::push=debug"),
        )
        .await
    }

    /// The next push received within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.received.recv()).await.ok().flatten()
    }

    /// Every push received within `wait`.
    async fn all_within(&mut self, wait: Duration) -> Vec<Value> {
        let until = tokio::time::Instant::now() + wait;
        let mut all = Vec::new();
        while let Ok(Some(push)) = tokio::time::timeout_at(until, self.received.recv()).await {
            all.push(push);
        }
        all
    }

    fn subscription(&self, path: &str) -> SetPushSubscriptionRequest {
        SetPushSubscriptionRequest {
            endpoint: self.endpoint(path),
            p256dh: self.p256dh.clone(),
            auth: self.auth.clone(),
        }
    }
}

async fn config(client: &Client) -> kitsulan_proto::v1::GetPushConfigResponse {
    client.push().get_push_config(GetPushConfigRequest {}).await.unwrap().into_inner()
}

/// Alice and Bob with an accepted direct conversation; returns its id.
async fn pair(server: &TestServer) -> (Client, Client, String) {
    let alice = signed_up(server, "alice").await;
    let bob = signed_up(server, "bob").await;
    let direct = alice.open_direct(&account_id(&bob)).await.unwrap().conversation.unwrap().id;
    bob.accept_request(&direct).await.unwrap();
    (alice, bob, direct)
}

/// Checks one push as the independent implementations read it.
fn assert_sound_push(push: &Value, server_key: &str, receiver: &Receiver, secrets: &[&str]) {
    assert_eq!(push["errors"], serde_json::json!([]), "the receiver found faults: {push}");
    assert_eq!(push["jwt_header"]["alg"], "ES256");
    assert_eq!(push["k"], server_key, "signed with the server's VAPID key");
    assert_eq!(push["jwt"]["aud"], receiver.origin().as_str(), "aud is the endpoint's origin");
    assert_eq!(push["jwt"]["sub"], CONTACT);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let exp = push["jwt"]["exp"].as_u64().expect("exp is a number");
    assert!(exp > now && exp <= now + 24 * 3600, "exp within 24 hours (RFC 8292): {exp} vs {now}");
    assert_eq!(push["headers"]["Content-Encoding"], "aes128gcm");
    assert_eq!(push["headers"]["Urgency"], "high");
    assert!(push["headers"]["TTL"].as_str().is_some_and(|t| t.parse::<u32>().is_ok()), "a TTL header");
    let plaintext = push["plaintext"].as_str().expect("decrypted");
    for secret in secrets {
        assert!(!plaintext.contains(secret), "the push carries {secret:?}: {plaintext}");
    }
    let keys: Vec<&String> = push["payload"].as_object().expect("a JSON object").keys().collect();
    assert!(
        keys.iter().all(|k| ["kind", "conversation"].contains(&k.as_str())),
        "only kind and conversation: {keys:?}"
    );
    assert_eq!(push["payload"]["kind"], "message");
}

#[tokio::test]
async fn a_closed_app_gets_a_content_free_push_that_independent_code_decrypts() {
    let mut receiver = Receiver::start().await;
    let server = receiver.server(Database::Sqlite).await;
    let (alice, mut bob, direct) = pair(&server).await;

    let before = config(&bob).await;
    assert!(before.enabled && !before.subscribed);
    assert_eq!(before.vapid_public_key.len(), 87, "a 65-byte point in base64url");
    let key_file = server.data_dir().join("vapid-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    bob.push().set_push_subscription(receiver.subscription("/sub/bob")).await.unwrap();
    assert!(config(&bob).await.subscribed);

    // Bob's app is closed: Alice's message wakes it, saying nothing but "a message, there".
    let secret = "the kiwi is in the freezer";
    alice.send_message(opaque(&direct, secret)).await.unwrap();
    let push = receiver.next(Duration::from_secs(15)).await.expect("a push for Bob");
    assert_eq!(push["path"], "/sub/bob");
    assert_sound_push(&push, &before.vapid_public_key, &receiver, &[secret, "alice", &account_id(&alice)]);
    assert_eq!(push["payload"]["conversation"], direct.as_str());
    let one_size = push["body_len"].as_u64().unwrap();

    // While Bob's app is connected, its own notifications tell him: no push.
    tokio::time::sleep(INTERVAL).await;
    let mut inbox = online(&server, &bob, "bob").await;
    alice.send_message(opaque(&direct, "while you are here")).await.unwrap();
    let none = receiver.all_within(INTERVAL * 2).await;
    assert!(none.is_empty(), "a connected device got a push: {none:?}");
    inbox.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice.send_message(opaque(&direct, "and now you are gone again")).await.unwrap();
    let push = receiver.next(Duration::from_secs(15)).await.expect("a push once Bob's app closed");
    assert_sound_push(&push, &before.vapid_public_key, &receiver, &["gone again"]);
    assert_eq!(push["body_len"].as_u64().unwrap(), one_size, "every push has one size");

    // The attack: a flood of messages. Bob's device gets a push per interval at most, the
    // rest merged into them.
    tokio::time::sleep(INTERVAL).await;
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..300 {
        let client = alice.clone();
        let request = opaque(&direct, &format!("flood {i}"));
        sends.spawn(async move { client.send_message(request).await });
    }
    while let Some(sent) = sends.join_next().await {
        sent.unwrap().unwrap();
    }
    let flood = started.elapsed();
    let pushes = receiver.all_within(INTERVAL * 3).await;
    let allowed = 2 + (flood.as_secs_f64() / INTERVAL.as_secs_f64()).ceil() as usize;
    println!("flood: 300 messages in {flood:?} gave {} pushes (at most {allowed} allowed)", pushes.len());
    assert!(
        !pushes.is_empty() && pushes.len() <= allowed,
        "{} pushes for 300 messages in {flood:?}",
        pushes.len()
    );
    for push in &pushes {
        assert_sound_push(push, &before.vapid_public_key, &receiver, &["flood"]);
    }

    // A second device of Bob's subscribes, then is signed out: its subscription goes with it.
    tokio::time::sleep(INTERVAL).await;
    let phone = signed_in(&server, "bob").await;
    phone.push().set_push_subscription(receiver.subscription("/sub/bob-phone")).await.unwrap();
    bob.devices()
        .sign_out_device(kitsulan_proto::v1::SignOutDeviceRequest { device_id: phone.device_id().to_owned() })
        .await
        .unwrap();
    alice.send_message(opaque(&direct, "after the phone left")).await.unwrap();
    let pushes = receiver.all_within(Duration::from_secs(4)).await;
    assert_eq!(pushes.iter().map(|p| p["path"].as_str().unwrap()).collect::<Vec<_>>(), ["/sub/bob"]);

    // Unsubscribing stops them.
    tokio::time::sleep(INTERVAL).await;
    bob.push().delete_push_subscription(DeletePushSubscriptionRequest {}).await.unwrap();
    assert!(!config(&bob).await.subscribed);
    alice.send_message(opaque(&direct, "nobody is told")).await.unwrap();
    assert!(receiver.all_within(Duration::from_secs(3)).await.is_empty());

    // Signing out takes the subscription with it (bob subscribes again first).
    bob.push().set_push_subscription(receiver.subscription("/sub/bob")).await.unwrap();
    bob.sign_out().await.unwrap();
    tokio::time::sleep(INTERVAL).await;
    alice.send_message(opaque(&direct, "to nobody")).await.unwrap();
    assert!(receiver.all_within(Duration::from_secs(3)).await.is_empty(), "a signed-out device got a push");
}

#[tokio::test]
async fn gone_subscriptions_are_deleted_and_failures_retried() {
    let mut receiver = Receiver::start().await;
    let server = receiver.server(Database::Sqlite).await;
    let (alice, bob, direct) = pair(&server).await;

    // 410 from the push service: the subscription is deleted.
    bob.push().set_push_subscription(receiver.subscription("/gone/bob")).await.unwrap();
    alice.send_message(opaque(&direct, "to a gone browser")).await.unwrap();
    let push = receiver.next(Duration::from_secs(15)).await.expect("a push");
    assert_eq!((push["path"].as_str(), push["status"].as_u64()), (Some("/gone/bob"), Some(410)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while config(&bob).await.subscribed {
        assert!(Instant::now() < deadline, "the gone subscription is still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(INTERVAL).await;
    alice.send_message(opaque(&direct, "nobody to tell")).await.unwrap();
    assert!(
        receiver.all_within(Duration::from_secs(3)).await.is_empty(),
        "nothing sent to a deleted subscription"
    );

    // 503 twice, then accepted: the same push is tried three times, with backoff.
    bob.push().set_push_subscription(receiver.subscription("/flaky/bob")).await.unwrap();
    alice.send_message(opaque(&direct, "try again")).await.unwrap();
    let pushes = receiver.all_within(Duration::from_secs(12)).await;
    let statuses: Vec<u64> = pushes.iter().map(|p| p["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [503, 503, 201], "retried until accepted: {pushes:?}");
    let at: Vec<f64> = pushes.iter().map(|p| p["at"].as_f64().unwrap()).collect();
    assert!(at[1] - at[0] >= 0.9 && at[2] - at[1] >= 4.9, "with backoff between tries (1 s, 5 s): {at:?}");
    for push in &pushes {
        assert_eq!(push["errors"], serde_json::json!([]), "each try is a sound push: {push}");
    }
    assert!(config(&bob).await.subscribed, "a temporary failure keeps the subscription");
}

#[tokio::test]
async fn push_endpoints_that_reach_inward_are_refused_and_nothing_is_stored() {
    let receiver = Receiver::start().await;
    let server = receiver.server(Database::Sqlite).await;
    let bob = signed_up(&server, "bob").await;
    let port = receiver.port;
    let huge = format!("https://push.example.com/{}", "a".repeat(5000));
    for endpoint in [
        format!("http://127.0.0.1:{port}/sub"), // not https, even for the allowed origin
        "https://127.0.0.1/sub".to_owned(),     // loopback, not the allowed origin
        format!("https://127.0.0.1:{}/sub", port + 1),
        format!("https://[::1]:{port}/sub"),
        format!("https://localhost:{port}/sub"),
        "https://10.0.0.1/sub".to_owned(),
        "https://192.168.1.1/sub".to_owned(),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
        "https://[fd00::1]/sub".to_owned(),
        "https://kitsulan.local/sub".to_owned(),
        "https://push.example.com:8443/sub".to_owned(), // a public name on another port
        "https://user:pw@push.example.com/sub".to_owned(),
        huge,
        "not a url".to_owned(),
    ] {
        let mut request = receiver.subscription("/x");
        request.endpoint.clone_from(&endpoint);
        let refusal =
            assert_refused(bob.push().set_push_subscription(request).await, "PUSH_ENDPOINT_INVALID");
        assert_eq!(refusal.field(), Some("endpoint"), "{endpoint}");
    }
    // A point off the curve (one coordinate byte changed).
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut point = b64.decode(&receiver.p256dh).unwrap();
    point[40] ^= 1;
    let mut off_curve = receiver.subscription("/x");
    off_curve.p256dh = b64.encode(point);
    assert_refused(bob.push().set_push_subscription(off_curve).await, "PUSH_KEYS_INVALID");
    let mut short_auth = receiver.subscription("/x");
    short_auth.auth = "AAAA".into();
    let refusal = assert_refused(bob.push().set_push_subscription(short_auth).await, "PUSH_KEYS_INVALID");
    assert_eq!(refusal.field(), Some("auth"));
    let mut not_base64 = receiver.subscription("/x");
    not_base64.p256dh = "*".repeat(87);
    assert_refused(bob.push().set_push_subscription(not_base64).await, "PUSH_KEYS_INVALID");
    assert!(!config(&bob).await.subscribed, "nothing was stored");

    // Only a signed-in device may subscribe.
    let stranger = Client::connect(&server.url()).await.unwrap();
    assert_refused(
        stranger.push().set_push_subscription(receiver.subscription("/x")).await,
        "SESSION_INVALID",
    );

    // With push off, the app learns it and subscribing is refused.
    let off = start_with(Options::new(Database::Sqlite).env("KITSULAN_PUSH", "off")).await;
    let carol = signed_up(&off, "carol").await;
    let off_config = config(&carol).await;
    assert!(!off_config.enabled && off_config.vapid_public_key.is_empty());
    assert_refused(carol.push().set_push_subscription(receiver.subscription("/x")).await, "PUSH_UNAVAILABLE");
    assert!(!off.data_dir().join("vapid-key").exists(), "no key is made while push is off");
}
