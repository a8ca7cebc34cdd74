//! Points 4 and 5 of the hardening issue, written as the attack.
//!
//! - One-time keys: a stranger used to take all 100 of a device's one-time keys in one
//!   `ClaimKeys` (the device listed 100 times), leaving everyone else the fallback key. Now a
//!   claim names each device once, one account takes at most a few one-time keys of one device
//!   per period, and accounts sharing no conversation with the device's owner ("strangers")
//!   take a few more between them; past that they get the fallback key, which still starts a
//!   working Olm session. Contacts keep getting one-time keys.
//! - To-device inboxes: a stranger used to fill a device's inbox (10,000 messages in 0.4 s), and
//!   then nobody could deliver a key share to it (`INBOX_FULL`). Now each sender account has a
//!   quota of messages waiting in one inbox, and strangers together may fill only a small part
//!   of it: the device's own account and its contacts still get through.
//!
//! The rules and defaults are in docs/e2ee.md ("Limits against draining and flooding").

use kitsulan_client::conversations::Content;
use kitsulan_client::e2ee::{E2eeDevice, Inbox, verify_claimed};
use kitsulan_client::people::{another_device, person, start, start_with};
use kitsulan_client::{Client, Database, Options, Refusal, TestServer, assert_refused};
use kitsulan_proto::v1::{ClaimKeysRequest, ClaimedKey, OutgoingToDeviceMessage, SendToDeviceRequest};
use tonic::Status;
use uuid::Uuid;

/// `KITSULAN_RATE_LIMIT_KEY_CLAIMS_PER_DEVICE`'s default: one-time keys one account takes from
/// one device per hour.
const PER_CLAIMER: usize = 10;
/// `KITSULAN_RATE_LIMIT_STRANGER_KEY_CLAIMS`'s default: one-time keys all strangers together
/// take from one device per hour.
const ALL_STRANGERS: usize = 20;
/// `KITSULAN_TO_DEVICE_PENDING_PER_SENDER`'s default.
const PENDING_PER_SENDER: usize = 500;
/// `KITSULAN_TO_DEVICE_INBOX_BYTES`'s default (64 MiB) and the strangers' 10 % of it.
const STRANGER_BYTES: usize = 64 * 1024 * 1024 / 10;
/// The largest to-device message.
const MAX_CIPHERTEXT: usize = 64 * 1024;

async fn claim(client: &Client, device_ids: Vec<String>) -> Result<Vec<ClaimedKey>, Status> {
    Ok(client.keys().claim_keys(ClaimKeysRequest { device_ids }).await?.into_inner().keys)
}

/// `n` claims of `device_id` at once by `client`'s account, each on its own request; returns how
/// many one-time keys and how many fallback keys came back (each signature checked).
async fn claim_in_parallel(client: &Client, device_id: &str, ed25519: &[u8], n: usize) -> (usize, usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let mut keys = client.keys();
        let device_ids = vec![device_id.to_owned()];
        tasks.spawn(async move { keys.claim_keys(ClaimKeysRequest { device_ids }).await });
    }
    let (mut one_time, mut fallback) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let keys = done.unwrap().expect("a claim past the limits still answers").into_inner().keys;
        assert_eq!(keys.len(), 1, "{keys:?}");
        let key = keys[0].key.as_ref().unwrap();
        verify_claimed(ed25519, key, keys[0].fallback).unwrap();
        if keys[0].fallback { fallback += 1 } else { one_time += 1 }
    }
    (one_time, fallback)
}

async fn one_time_keys_left(device: &E2eeDevice) -> u32 {
    device.key_counts().await.unwrap().one_time_key_count
}

/// The device's certified Ed25519 key, as `someone` sees it.
async fn ed25519_of(someone: &mut E2eeDevice, device: &E2eeDevice) -> Vec<u8> {
    someone.sync_devices(&[device.account_id()]).await.unwrap();
    someone.peer(device.device_id()).expect("listed").ed25519.to_vec()
}

/// The last message of `conversation_id` as `device` decrypts it.
async fn last_text(device: &mut E2eeDevice, conversation_id: &str) -> String {
    let history = device.read_history(conversation_id).await.unwrap();
    match &history.last().expect("a message").content {
        Content::Text(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_stranger_cannot_drain_a_devices_one_time_keys() {
    let server = start(Database::Sqlite).await;
    let mut bob = person(&server, "bob").await;
    bob.upload_keys(50).await.unwrap();
    bob.upload_keys(30).await.unwrap();
    assert_eq!(one_time_keys_left(&bob).await, 100);
    let laptop = bob.device_id().to_owned();
    let mut mallory = person(&server, "mallory").await;
    let ed25519 = ed25519_of(&mut mallory, &bob).await;

    // The device listed 100 times in one claim: refused whole, nothing taken.
    let refusal = assert_refused(claim(&mallory.client, vec![laptop.clone(); 100]).await, "ID_INVALID");
    assert_eq!(refusal.field(), Some("device_ids"));
    assert_eq!(one_time_keys_left(&bob).await, 100, "a refused claim took keys");

    // Claimed over and over, in parallel: a few one-time keys, then only the fallback key.
    let (one_time, fallback) = claim_in_parallel(&mallory.client, &laptop, &ed25519, 30).await;
    assert_eq!((one_time, fallback), (PER_CLAIMER, 30 - PER_CLAIMER));
    assert_eq!(one_time_keys_left(&bob).await, 100 - PER_CLAIMER as u32);

    // More stranger accounts: together they get a few more one-time keys, no more.
    let mut by_strangers = one_time;
    for name in ["eve", "oscar", "trudy"] {
        let stranger = person(&server, name).await;
        let (one_time, fallback) = claim_in_parallel(&stranger.client, &laptop, &ed25519, PER_CLAIMER).await;
        assert_eq!(one_time + fallback, PER_CLAIMER);
        by_strangers += one_time;
    }
    assert_eq!(by_strangers, ALL_STRANGERS, "one-time keys all strangers took");
    let left = one_time_keys_left(&bob).await;
    assert_eq!(left, 100 - ALL_STRANGERS as u32);

    // Bob's contacts still get one-time keys: Alice (a direct conversation) and Carol and Dave
    // (a group), each on their own, and then they talk end to end.
    let mut alice = person(&server, "alice").await;
    let mut carol = person(&server, "carol").await;
    let dave = person(&server, "dave").await;
    // Contacts are people who accepted: Bob's invitations are requests until then.
    let direct = bob.client.open_direct(alice.account_id()).await.unwrap().conversation.unwrap();
    alice.client.accept_request(&direct.id).await.unwrap();
    let group = bob.client.create_group("LAN party", &[carol.account_id(), dave.account_id()]).await.unwrap();
    carol.client.accept_request(&group.id).await.unwrap();
    dave.client.accept_request(&group.id).await.unwrap();
    for contact in [&carol, &dave] {
        let keys = claim(&contact.client, vec![laptop.clone()]).await.unwrap();
        assert_eq!(keys.len(), 1);
        assert!(!keys[0].fallback, "a contact got the fallback key: {keys:?}");
        verify_claimed(&ed25519, keys[0].key.as_ref().unwrap(), false).unwrap();
    }
    alice.send_to_conversation(&direct.id, b"hello bob, a contact").await.unwrap();
    carol.send_to_conversation(&group.id, b"hello bob, from the group").await.unwrap();
    assert_eq!(one_time_keys_left(&bob).await, left - 4, "each contact claim took a one-time key");
    let inbox = bob.receive().await.unwrap();
    assert!(inbox.failures.is_empty(), "{:?}", inbox.failures);
    let senders: Vec<&str> = inbox.room_keys.iter().map(|(device, _)| device.as_str()).collect();
    assert_eq!(senders, [alice.device_id(), carol.device_id()], "the key shares that came");
    assert_eq!(last_text(&mut bob, &direct.id).await, "hello bob, a contact");
    assert_eq!(last_text(&mut bob, &group.id).await, "hello bob, from the group");

    // And a stranger's Olm session on the fallback key works too: E2EE is not broken for them
    // (an Olm to-device message, here a verification request's transport, gets through).
    mallory.sync_devices(&[bob.account_id()]).await.unwrap();
    let hello = b"hello bob, from a stranger".to_vec();
    mallory.send_verification(&[(laptop.clone(), hello.clone())]).await.unwrap();
    let inbox = bob.receive().await.unwrap();
    assert!(inbox.failures.is_empty(), "{:?}", inbox.failures);
    let got: Vec<_> = inbox.verifications.iter().map(|v| (v.sender.device_id.as_str(), &v.bytes)).collect();
    assert_eq!(got, [(mallory.device_id(), &hello)]);
}

#[tokio::test]
async fn claims_are_limited_per_claimer_account() {
    let server =
        start_with(Options::new(Database::Sqlite).env("KITSULAN_RATE_LIMIT_KEY_CLAIMS", "4/1h")).await;
    let mut people = Vec::new();
    for name in ["ann", "ben", "cat", "dan", "eli"] {
        people.push(person(&server, name).await);
    }
    let devices: Vec<String> = people.iter().map(|p| p.device_id().to_owned()).collect();
    let mallory = person(&server, "mallory").await;

    // Four devices in one claim fit; any more are refused whole, with nothing taken.
    let keys = claim(&mallory.client, devices[..4].to_vec()).await.unwrap();
    assert_eq!(keys.len(), 4);
    let refusal = assert_refused(claim(&mallory.client, devices[4..].to_vec()).await, "RATE_LIMITED");
    assert!(refusal.retry_after.is_some(), "{refusal:?}");
    assert_eq!(one_time_keys_left(&people[4]).await, 20, "a refused claim took a key");

    // A claim bigger than the whole budget is refused at once, for a fresh account too.
    let trudy = person(&server, "trudy").await;
    assert_refused(claim(&trudy.client, devices.clone()).await, "RATE_LIMITED");
    for p in &people[..4] {
        assert_eq!(one_time_keys_left(p).await, 19, "only Mallory's claim took keys");
    }

    // Other accounts are not held back by Mallory's claims.
    let keys = claim(&trudy.client, devices[4..].to_vec()).await.unwrap();
    assert_eq!((keys.len(), keys[0].fallback), (1, false));
}

fn message(recipient: &str, ciphertext: Vec<u8>) -> OutgoingToDeviceMessage {
    OutgoingToDeviceMessage {
        message_id: Uuid::now_v7().to_string(),
        recipient_device_id: recipient.to_owned(),
        ciphertext,
    }
}

async fn send(from: &Client, messages: Vec<OutgoingToDeviceMessage>) -> Result<(), Status> {
    from.to_device().send_to_device(SendToDeviceRequest { messages }).await.map(|_| ())
}

/// Sends batches of `batch` messages of `size` bytes to `recipient` until one is refused or
/// `most` were accepted; returns how many were accepted and the refusal.
async fn flood(
    from: &Client,
    recipient: &str,
    batch: usize,
    size: usize,
    most: usize,
) -> (usize, Option<Status>) {
    let mut accepted = 0;
    while accepted < most {
        let messages = (0..batch).map(|i| message(recipient, vec![(i % 251) as u8 + 1; size])).collect();
        match send(from, messages).await {
            Ok(()) => accepted += batch,
            Err(status) => return (accepted, Some(status)),
        }
    }
    (accepted, None)
}

/// Takes `device`'s whole inbox as it would under a flood: every message is fetched (in pages
/// that fit a gRPC response) and acknowledged, and those from `trusted` accounts are decrypted.
/// Returns what they held and how many other messages there were.
async fn receive_from(device: &mut E2eeDevice, trusted: &[&str]) -> (Inbox, usize) {
    let (mut kept, mut others) = (Vec::new(), 0);
    loop {
        let (messages, more) = device.fetch(50).await.unwrap();
        device.ack(messages.iter().map(|m| m.message_id.clone()).collect()).await.unwrap();
        for message in messages {
            if trusted.contains(&message.sender_account_id.as_str()) {
                kept.push(message);
            } else {
                others += 1;
            }
        }
        if !more {
            break;
        }
    }
    (device.receive_to_device(&kept).await, others)
}

#[tokio::test]
async fn a_stranger_cannot_fill_an_inbox_and_block_key_shares_on_sqlite() {
    inbox_flood(Database::Sqlite).await;
}

#[tokio::test]
async fn a_stranger_cannot_fill_an_inbox_and_block_key_shares_on_postgres() {
    inbox_flood(Database::FreshPostgres).await;
}

async fn inbox_flood(database: Database) {
    let server: TestServer = start(database).await;
    let mut laptop = person(&server, "bob").await;
    let mut phone = another_device(&server, &laptop, "bob", "Phone").await;
    let mut alice = person(&server, "alice").await;
    let direct = laptop.client.open_direct(alice.account_id()).await.unwrap().conversation.unwrap();
    alice.client.accept_request(&direct.id).await.unwrap();
    let victim = laptop.device_id().to_owned();

    // Mallory floods Bob's laptop with small messages, 100 per call as fast as she can: she is
    // cut off at her quota of waiting messages, with a reason that says so.
    let mallory = person(&server, "mallory").await;
    let (accepted, refusal) = flood(&mallory.client, &victim, 100, 100, 10_100).await;
    let refusal = Refusal::of(&refusal.expect("the flood was never cut off"));
    assert_eq!((accepted, refusal.reason.as_str()), (PENDING_PER_SENDER, "TOO_MANY_PENDING"), "{refusal:?}");
    assert_eq!(refusal.code, tonic::Code::ResourceExhausted);

    // In parallel it is no different: a stranger's ten batches at once to Bob's phone, five fit.
    let eve = person(&server, "eve").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let mut to_device = eve.client.to_device();
        let messages: Vec<_> = (0..100).map(|_| message(phone.device_id(), vec![7; 100])).collect();
        tasks.spawn(
            async move { to_device.send_to_device(SendToDeviceRequest { messages }).await.map(|_| ()) },
        );
    }
    let (mut fitted, mut refused) = (0, Vec::new());
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(()) => fitted += 1,
            Err(status) => refused.push(Refusal::of(&status).reason),
        }
    }
    assert_eq!(fitted * 100, PENDING_PER_SENDER, "refused: {refused:?}");
    assert!(refused.iter().all(|r| r == "TOO_MANY_PENDING"), "{refused:?}");

    // Another stranger with the largest messages fills what strangers together may use of the
    // laptop's inbox, to the byte; then a new stranger's message is refused too.
    let trudy = person(&server, "trudy").await;
    let (accepted, refusal) = flood(&trudy.client, &victim, 1, MAX_CIPHERTEXT, 1_000).await;
    assert_refused(Err::<(), _>(refusal.expect("never cut off")), "STRANGER_INBOX_FULL");
    let used = PENDING_PER_SENDER * 100 + accepted * MAX_CIPHERTEXT;
    assert!(used <= STRANGER_BYTES && used + MAX_CIPHERTEXT > STRANGER_BYTES, "{accepted} of 64 KiB fitted");
    let oscar = person(&server, "oscar").await;
    let big = || vec![message(&victim, vec![9; MAX_CIPHERTEXT])];
    assert_refused(send(&oscar.client, big()).await, "STRANGER_INBOX_FULL");
    // A message request Oscar opens himself does not make him a contact: still refused.
    oscar.client.open_direct(laptop.account_id()).await.unwrap();
    assert_refused(send(&oscar.client, big()).await, "STRANGER_INBOX_FULL");

    // Bob's contact and his own other device still deliver key shares (and messages) to the
    // laptop, which receives them under the flood.
    alice.send_to_conversation(&direct.id, b"a key share from a contact").await.unwrap();
    let own = phone.account_id().to_owned();
    phone.send_to_conversation(&direct.id, b"a key share from my phone").await.unwrap();
    let (inbox, junk) = receive_from(&mut laptop, &[alice.account_id(), own.as_str()]).await;
    assert!(inbox.failures.is_empty(), "{:?}", inbox.failures);
    let senders: Vec<&str> = inbox.room_keys.iter().map(|(device, _)| device.as_str()).collect();
    assert_eq!(senders, [alice.device_id(), phone.device_id()], "the key shares that came");
    assert_eq!(last_text(&mut laptop, &direct.id).await, "a key share from my phone");
    assert_eq!(junk, PENDING_PER_SENDER + accepted, "the flood waited there too");

    // Once the laptop has taken its inbox, strangers' messages fit again: the quotas are on
    // what waits, not on what was ever sent.
    send(&mallory.client, vec![message(&victim, b"hello again".to_vec())]).await.unwrap();
    send(&oscar.client, big()).await.unwrap();
}
