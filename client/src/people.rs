//! Setting up people for tests: a server that lets a test make the accounts and sign-ins it
//! needs, and E2EE devices ready to talk.

use crate::client::{Client, Refusal};
use crate::e2ee::E2eeDevice;
use crate::server::{Database, Options, TestServer};
use kitsulan_proto::v1::SignUpRequest;

/// The password test people sign up with.
pub const PASSWORD: &str = "correct horse battery staple";
/// One-time keys each device uploads when it is set up.
const ONE_TIME_KEYS: usize = 20;

/// Sign-up and sign-in limits out of the way, for tests that make many people quickly.
pub fn roomy(options: Options) -> Options {
    options.env("KITSULAN_RATE_LIMIT_SIGN_UP", "1000/1h").env("KITSULAN_RATE_LIMIT_SIGN_IN", "1000/10m")
}

/// A server on `database` with [`roomy`] limits. Panics if it does not start.
pub async fn start(database: Database) -> TestServer {
    start_with(Options::new(database)).await
}

/// A server with `options` and [`roomy`] limits. Panics if it does not start.
pub async fn start_with(options: Options) -> TestServer {
    TestServer::start_with(roomy(options)).await.unwrap_or_else(|e| panic!("starting the server: {e:#}"))
}

/// A person's first device ("Laptop"): signed up, account key published, keys uploaded.
pub async fn person(server: &TestServer, username: &str) -> E2eeDevice {
    E2eeDevice::sign_up(&server.url(), username, PASSWORD, "Laptop", ONE_TIME_KEYS)
        .await
        .unwrap_or_else(|e| panic!("setting up {username}: {e:#}"))
}

/// Another device of the person `first` belongs to, holding the same account key.
pub async fn another_device(
    server: &TestServer,
    first: &E2eeDevice,
    username: &str,
    name: &str,
) -> E2eeDevice {
    E2eeDevice::sign_in(&server.url(), username, PASSWORD, name, first.account_key_copy(), ONE_TIME_KEYS)
        .await
        .unwrap_or_else(|e| panic!("setting up {username}'s {name}: {e:#}"))
}

/// A new account `username` (password [`PASSWORD`]) signed in on a device called "Laptop",
/// with no keys: for tests about accounts and sessions, not messages.
pub async fn signed_up(server: &TestServer, username: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap_or_else(|e| panic!("connecting: {e:#}"));
    client
        .sign_up_with(SignUpRequest {
            username: username.into(),
            password: PASSWORD.into(),
            device_name: "Laptop".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("sign-up of {username}: {:?}", Refusal::of(&status)));
    client
}

/// Another device of `username`, signed in with [`PASSWORD`] (no keys).
pub async fn signed_in(server: &TestServer, username: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap_or_else(|e| panic!("connecting: {e:#}"));
    client
        .sign_in(username, PASSWORD)
        .await
        .unwrap_or_else(|status| panic!("sign-in of {username}: {:?}", Refusal::of(&status)));
    client
}

/// How long [`online`] waits for the gateway's first sync.
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `client`'s account id (empty when it is not signed in).
pub fn account_id(client: &Client) -> String {
    client.session().map(|s| s.account_id.clone()).unwrap_or_default()
}

/// A live gateway inbox for `client`, synced. Panics, naming `who`, if it cannot connect.
pub async fn online(server: &TestServer, client: &Client, who: &str) -> crate::gateway::LiveInbox {
    let mut inbox = crate::gateway::LiveInbox::new();
    inbox.connect(&server.url(), client.access_token(), false).await.unwrap_or_else(|e| panic!("{who}: {e}"));
    inbox.sync(SYNC_WAIT).await.unwrap_or_else(|e| panic!("{who} syncs: {e:#}"));
    inbox
}

/// A message whose "ciphertext" is `text` itself (never encrypted), with a new id: for tests of
/// how the server stores, orders and refuses messages, not of encryption.
pub fn opaque(conversation_id: &str, text: &str) -> kitsulan_proto::v1::SendMessageRequest {
    kitsulan_proto::v1::SendMessageRequest {
        conversation_id: conversation_id.to_owned(),
        message_id: uuid::Uuid::now_v7().to_string(),
        ciphertext: text.as_bytes().to_vec(),
        session_id: b"an opaque session".to_vec(),
        reply_to: String::new(),
        attachment_ids: Vec::new(),
        content: None,
    }
}

/// A cloud message saying `text`, with a new id.
pub fn cloud_text(conversation_id: &str, text: &str) -> kitsulan_proto::v1::SendMessageRequest {
    let body = kitsulan_crypto::content::proto::TextContent { body: text.to_owned(), ..Default::default() };
    kitsulan_proto::v1::SendMessageRequest {
        conversation_id: conversation_id.to_owned(),
        message_id: uuid::Uuid::now_v7().to_string(),
        content: Some(kitsulan_crypto::content::proto::Content {
            version: 1,
            body: Some(kitsulan_crypto::content::proto::content::Body::Text(body)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The text of a cloud message (empty when it has none).
pub fn cloud_text_of(message: &kitsulan_proto::v1::Message) -> String {
    match message.content.as_ref().and_then(|c| c.body.as_ref()) {
        Some(kitsulan_crypto::content::proto::content::Body::Text(t)) => t.body.clone(),
        _ => String::new(),
    }
}
