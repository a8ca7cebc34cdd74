//! The real-time gateway (docs/gateway.md), tested from outside: devices holding a WebSocket to
//! the real `kitsulan` binary (`kitsulan_client::gateway`) while others post over gRPC. What is
//! checked is what a person relies on: Megolm messages, edits and deletions arrive live and
//! decrypt; typing and presence reach the people sharing a conversation and nobody else;
//! delivered and read receipts follow acknowledgements and `MarkRead`; a device that was away,
//! slow or cut off (even by `kill -9` of the server) gets everything it has not processed, in
//! order, once after dedupe; a removed member hears nothing more; a signed-out device's socket is
//! closed; bad frames get the documented errors and close codes; two nodes on one PostgreSQL
//! pass live events over NATS; and the server holds none of the plaintexts.
//!
//! History paging over 1,000 messages (pages of 100 and of 37) is in tests/conversations.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use kitsulan_client::client::Refusal;
use kitsulan_client::conversations::{Content, Encrypted};
use kitsulan_client::e2ee::E2eeDevice;
use kitsulan_client::gateway::{
    CLOSE_FRAME_TOO_LARGE, CLOSE_PROTOCOL, CLOSE_SIGNED_OUT, CLOSE_SLOW_CONSUMER, CLOSE_UNAUTHENTICATED,
    GatewayClient, LiveInbox, MAX_CLIENT_FRAME, WaitError, describe,
};
use kitsulan_client::people::{PASSWORD, another_device, person, start, start_with};
use kitsulan_client::scan::{Finding, scan_for_plaintexts};
use kitsulan_client::{Client, Database, Options, TestServer};
use kitsulan_proto::v1::{
    Event, Message, MessageChange, SendMessageRequest, Session, SignOutDeviceRequest, client_frame, event,
};
use tokio::time::Instant;
use uuid::Uuid;

/// How long a live event may take.
const WAIT: Duration = Duration::from_secs(10);

/// A signed-up account without E2EE keys (for tests that need no encryption).
async fn plain(server: &TestServer, username: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap();
    client.sign_up(username, PASSWORD).await.unwrap_or_else(|e| panic!("SignUp of {username}: {e:?}"));
    client
}

/// Another signed-in device of `username`.
async fn plain_device(server: &TestServer, username: &str, name: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap();
    client
        .sign_in_as(username, PASSWORD, name)
        .await
        .unwrap_or_else(|e| panic!("SignIn of {username}: {e:?}"));
    client
}

fn account_id(client: &Client) -> String {
    client.session().map(|s| s.account_id.clone()).unwrap_or_default()
}

/// A live inbox connected to `server` as the device with `token`, synced.
async fn online(server: &TestServer, token: &str, who: &str) -> LiveInbox {
    let mut inbox = LiveInbox::new();
    inbox.connect(&server.url(), token, false).await.unwrap_or_else(|e| panic!("{who} connects: {e}"));
    inbox.sync(WAIT).await.unwrap_or_else(|e| panic!("{who} syncs: {e:#}"));
    inbox
}

/// An opaque (not encrypted) message: for tests about delivery, not cryptography.
fn opaque(conversation_id: &str, n: usize) -> SendMessageRequest {
    SendMessageRequest {
        conversation_id: conversation_id.to_owned(),
        message_id: Uuid::now_v7().to_string(),
        ciphertext: format!("opaque ciphertext {n}").into_bytes(),
        session_id: b"an opaque session".to_vec(),
        reply_to: String::new(),
        attachment_ids: Vec::new(),
        content: None,
    }
}

fn message_of(event: &Event) -> Option<(&Message, MessageChange)> {
    match &event.body {
        Some(event::Body::Message(m)) => m.message.as_deref().map(|message| (message, m.change())),
        _ => None,
    }
}

fn is_message(event: &Event, id: &str, change: MessageChange) -> bool {
    message_of(event).is_some_and(|(m, c)| m.id == id && c == change)
}

fn list(findings: &[Finding]) -> String {
    findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Requires that the server holds none of `plaintexts` (data dir, SQLite files, PostgreSQL).
async fn expect_no_plaintext(server: &TestServer, plaintexts: &[String]) {
    let needles: Vec<&[u8]> = plaintexts.iter().map(|p| p.as_bytes()).collect();
    let found = scan_for_plaintexts(server, &needles).await.unwrap();
    assert!(found.is_empty(), "plaintext on the server: {}", list(&found));
}

/// Waits until `inbox` gets message `posted` (as `change`) and checks that it is the stored
/// message and that `device` decrypts it to `text` (or to nothing, once deleted).
async fn expect_live(
    inbox: &mut LiveInbox,
    device: &mut E2eeDevice,
    posted: &Message,
    change: MessageChange,
    text: Option<&str>,
) {
    let who = device.device_id().to_owned();
    let event = inbox
        .wait_event(WAIT, &format!("{change:?} of message {} at device {who}", posted.id), |e| {
            is_message(e, &posted.id, change)
        })
        .await
        .unwrap();
    let (message, _) = message_of(&event).unwrap();
    assert_eq!(message, posted, "the {change:?} event at {who} carries the message as stored");
    let content = inbox.decrypted(device, &posted.id, WAIT).await.unwrap();
    let want = match text {
        Some(text) => Content::Text(text.as_bytes().to_vec()),
        None => Content::Deleted,
    };
    assert_eq!(content, want, "message {} as device {who} reads it live", posted.id);
}

// ---------------------------------------------------------------------------------------------
// Live messages: a direct conversation and a group of five, with edits and deletions

#[tokio::test]
async fn messages_edits_and_deletions_arrive_live_and_decrypt() {
    let server = start(Database::Sqlite).await;
    let mut laptop = person(&server, "alice").await;
    let mut phone = another_device(&server, &laptop, "alice", "Phone").await;
    let mut bob = person(&server, "bob").await;
    let mut laptop_in = online(&server, laptop.client.access_token(), "alice's laptop").await;
    let mut phone_in = online(&server, phone.client.access_token(), "alice's phone").await;
    let mut bob_in = online(&server, bob.client.access_token(), "bob").await;
    let mut plaintexts = Vec::new();

    // Direct: Alice's laptop to Bob (and her phone), Bob back to both of hers.
    let direct = laptop.client.open_direct(bob.account_id()).await.unwrap().conversation.unwrap();
    let text = "hello bob, live from alice's laptop";
    let hello = laptop.send_to_conversation(&direct.id, text.as_bytes()).await.unwrap().message;
    plaintexts.push(text.to_owned());
    expect_live(&mut bob_in, &mut bob, &hello, MessageChange::New, Some(text)).await;
    expect_live(&mut phone_in, &mut phone, &hello, MessageChange::New, Some(text)).await;
    let text = "hi alice, bob answers live";
    let hi = bob.send_to_conversation(&direct.id, text.as_bytes()).await.unwrap().message;
    plaintexts.push(text.to_owned());
    expect_live(&mut laptop_in, &mut laptop, &hi, MessageChange::New, Some(text)).await;
    expect_live(&mut phone_in, &mut phone, &hi, MessageChange::New, Some(text)).await;

    // A group of five: Alice (two devices), Bob, Carol, Dave and Erin; each posts once.
    let carol = person(&server, "carol").await;
    let dave = person(&server, "dave").await;
    let erin = person(&server, "erin").await;
    let carol_in = online(&server, carol.client.access_token(), "carol").await;
    let dave_in = online(&server, dave.client.access_token(), "dave").await;
    let erin_in = online(&server, erin.client.access_token(), "erin").await;
    let others = [bob.account_id(), carol.account_id(), dave.account_id(), erin.account_id()];
    let group = laptop.client.create_group("Five, live", &others).await.unwrap();

    let mut devices = [
        (laptop, laptop_in),
        (phone, phone_in),
        (bob, bob_in),
        (carol, carol_in),
        (dave, dave_in),
        (erin, erin_in),
    ];
    let mut posted = Vec::new();
    for sender in 0..devices.len() {
        let text = format!("group message number {sender} from device {}", devices[sender].0.device_id());
        let message =
            devices[sender].0.send_to_conversation(&group.id, text.as_bytes()).await.unwrap().message;
        // Every device of every member gets it, the sending device too.
        for (device, inbox) in &mut devices {
            expect_live(inbox, device, &message, MessageChange::New, Some(&text)).await;
        }
        plaintexts.push(text);
        posted.push(message);
    }

    // Alice edits her first group message; Bob deletes his.
    let edited_text = "alice's group message, edited";
    let (_, edited) =
        devices[0].0.edit_in_conversation(&group.id, &posted[0].id, edited_text.as_bytes()).await.unwrap();
    let edited = edited.unwrap();
    assert!(edited.edited_at_ms > 0, "{edited:?}");
    plaintexts.push(edited_text.to_owned());
    let deleted = devices[2].0.client.delete_message(&group.id, &posted[2].id).await.unwrap();
    assert!(deleted.deleted_at_ms > 0 && deleted.ciphertext.is_empty(), "{deleted:?}");
    for (device, inbox) in &mut devices {
        expect_live(inbox, device, &edited, MessageChange::Edited, Some(edited_text)).await;
        expect_live(inbox, device, &deleted, MessageChange::Deleted, None).await;
    }
    // What each device ended up with: the group's six messages in seq order, latest state.
    for (device, inbox) in &devices {
        let seqs: Vec<u64> = inbox.messages_in(&group.id).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=6).collect::<Vec<u64>>(), "group messages at {}", device.device_id());
        assert_eq!(inbox.message(&posted[0].id), Some(&edited));
        assert_eq!(inbox.message(&posted[2].id), Some(&deleted));
    }
    expect_no_plaintext(&server, &plaintexts).await;
}

// ---------------------------------------------------------------------------------------------
// Typing and presence

fn presence_of(event: &Event, account_id: &str, online: bool) -> bool {
    matches!(&event.body, Some(event::Body::Presence(p)) if p.account_id == account_id && p.online == online)
}

fn typing_of(event: &Event, conversation_id: &str, account_id: &str, typing: bool) -> bool {
    matches!(&event.body, Some(event::Body::Typing(t))
        if t.conversation_id == conversation_id && t.account_id == account_id && t.typing == typing)
}

fn names(event: &Event, account_id: &str) -> bool {
    match &event.body {
        Some(event::Body::Presence(p)) => p.account_id == account_id,
        Some(event::Body::Typing(t)) => t.account_id == account_id,
        _ => false,
    }
}

#[tokio::test]
async fn typing_and_presence_reach_only_people_sharing_a_conversation() {
    let server = start(Database::Sqlite).await;
    let alice = plain(&server, "alice").await;
    let bob_laptop = plain(&server, "bob").await;
    let bob_phone = plain_device(&server, "bob", "Phone").await;
    let carol = plain(&server, "carol").await;
    let (alice_id, bob_id, carol_id) = (account_id(&alice), account_id(&bob_laptop), account_id(&carol));
    // Alice and Bob share a direct conversation; Alice and Carol a group (each accepted Alice's
    // request: presence is for contacts). Bob and Carol share none.
    let direct = alice.open_direct(&bob_id).await.unwrap().conversation.unwrap();
    let group = alice.create_group("Alice and Carol", &[&carol_id]).await.unwrap();
    bob_laptop.accept_request(&direct.id).await.unwrap();
    carol.accept_request(&group.id).await.unwrap();

    let mut carol_in = online(&server, carol.access_token(), "carol").await;
    let mut alice_in = LiveInbox::new();
    let ready = alice_in.connect(&server.url(), alice.access_token(), false).await.unwrap().clone();
    let listed: Vec<(&str, bool)> = ready.online.iter().map(|p| (p.account_id.as_str(), p.online)).collect();
    assert_eq!(listed, [(carol_id.as_str(), true)], "Alice's Ready.online: Carol only (Bob is away)");
    alice_in.sync(WAIT).await.unwrap();
    carol_in.wait_event(WAIT, "Alice online, at Carol", |e| presence_of(e, &alice_id, true)).await.unwrap();

    // Bob comes online: Alice hears of it; his Ready lists Alice, not Carol.
    let mut bob_in = LiveInbox::new();
    let ready = bob_in.connect(&server.url(), bob_laptop.access_token(), false).await.unwrap().clone();
    let listed: Vec<(&str, bool)> = ready.online.iter().map(|p| (p.account_id.as_str(), p.online)).collect();
    assert_eq!(listed, [(alice_id.as_str(), true)], "Bob's Ready.online: Alice only");
    bob_in.sync(WAIT).await.unwrap();
    alice_in.wait_event(WAIT, "Bob online, at Alice", |e| presence_of(e, &bob_id, true)).await.unwrap();
    let mut phone_in = online(&server, bob_phone.access_token(), "bob's phone").await;

    // Typing goes to the other members of that conversation.
    bob_in.gateway().unwrap().typing(&direct.id, true).unwrap();
    alice_in
        .wait_event(WAIT, "Bob typing, at Alice", |e| typing_of(e, &direct.id, &bob_id, true))
        .await
        .unwrap();
    alice_in.gateway().unwrap().typing(&group.id, true).unwrap();
    carol_in
        .wait_event(WAIT, "Alice typing, at Carol", |e| typing_of(e, &group.id, &alice_id, true))
        .await
        .unwrap();
    bob_in.gateway().unwrap().typing(&direct.id, false).unwrap();
    alice_in
        .wait_event(WAIT, "Bob stopped typing", |e| typing_of(e, &direct.id, &bob_id, false))
        .await
        .unwrap();

    // Bob's phone goes: he is still online on his laptop. Then the laptop goes: offline.
    phone_in.close().await;
    alice_in
        .expect_none(Duration::from_secs(1), "Bob is still online on his laptop", |e| {
            presence_of(e, &bob_id, false)
        })
        .await
        .unwrap();
    bob_in.close().await;
    alice_in.wait_event(WAIT, "Bob offline, at Alice", |e| presence_of(e, &bob_id, false)).await.unwrap();

    // Carol heard nothing about Bob, and Bob nothing of the group he is not in.
    carol_in
        .expect_none(Duration::from_millis(500), "Carol hears of Bob", |e| names(e, &bob_id))
        .await
        .unwrap();
    let about_bob: Vec<String> =
        carol_in.events().iter().filter(|e| names(e, &bob_id)).map(describe).collect();
    assert!(about_bob.is_empty(), "Carol got events about Bob: {about_bob:?}");
    let from_group: Vec<String> = bob_in
        .events()
        .iter()
        .chain(phone_in.events())
        .filter(|e| matches!(&e.body, Some(event::Body::Typing(t)) if t.conversation_id == group.id))
        .map(describe)
        .collect();
    assert!(from_group.is_empty(), "Bob got typing of a group he is not in: {from_group:?}");
    let at_alice: Vec<String> =
        alice_in.events().iter().filter(|e| names(e, &alice_id)).map(describe).collect();
    assert!(at_alice.is_empty(), "Alice got her own typing or presence: {at_alice:?}");
}

// ---------------------------------------------------------------------------------------------
// Receipts

fn receipt_of(event: &Event, conversation_id: &str, account_id: &str) -> Option<(u64, u64, u32)> {
    match &event.body {
        Some(event::Body::Receipt(r))
            if r.conversation_id == conversation_id && r.account_id == account_id =>
        {
            Some((r.delivered_seq, r.read_seq, r.unread_count))
        }
        _ => None,
    }
}

#[tokio::test]
async fn delivered_and_read_receipts() {
    let server = start(Database::Sqlite).await;
    let alice = plain(&server, "alice").await;
    let alice_phone = plain_device(&server, "alice", "Phone").await;
    let bob_laptop = plain(&server, "bob").await;
    let bob_phone = plain_device(&server, "bob", "Phone").await;
    let bob_id = account_id(&bob_laptop);
    let direct = alice.open_direct(&bob_id).await.unwrap().conversation.unwrap();
    // A request sends no receipts: Bob accepts Alice's first.
    bob_laptop.accept_request(&direct.id).await.unwrap();

    let mut alice_in = online(&server, alice.access_token(), "alice").await;
    let mut alice_phone_in = online(&server, alice_phone.access_token(), "alice's phone").await;
    let mut phone_in = online(&server, bob_phone.access_token(), "bob's phone").await;
    // Bob's laptop connects but does not take (or ack) anything yet.
    let mut laptop = GatewayClient::connect(&server.url(), bob_laptop.access_token(), None).await.unwrap();

    let first = alice.send_message(opaque(&direct.id, 1)).await.unwrap();
    let second = alice.send_message(opaque(&direct.id, 2)).await.unwrap();
    assert_eq!((first.seq, second.seq), (1, 2));

    // Bob's laptop acks the first message only: Alice's devices see delivered_seq 1.
    let mut acked = false;
    let deadline = Instant::now() + WAIT;
    while !acked {
        let event = laptop.next_event(deadline - Instant::now()).await.unwrap();
        if message_of(&event).is_some_and(|(message, _)| message.id == first.id) {
            laptop.ack(event.seq).unwrap();
            acked = true;
        }
    }
    for inbox in [&mut alice_in, &mut alice_phone_in] {
        let event = inbox
            .wait_event(WAIT, "Bob's delivered receipt", |e| {
                receipt_of(e, &direct.id, &bob_id).is_some_and(|(delivered, _, _)| delivered >= 1)
            })
            .await
            .unwrap();
        let (delivered, read, _) = receipt_of(&event, &direct.id, &bob_id).unwrap();
        assert_eq!(
            (delivered, read),
            (1, 0),
            "after Bob's laptop acked message 1 only: {}",
            describe(&event)
        );
    }
    // Bob's phone takes both (the live inbox acks them): delivered 2.
    phone_in
        .until(WAIT, "both messages at Bob's phone", |i| i.messages_in(&direct.id).len() == 2)
        .await
        .unwrap();
    alice_in
        .wait_event(WAIT, "delivered_seq 2", |e| {
            receipt_of(e, &direct.id, &bob_id).is_some_and(|(delivered, _, _)| delivered == 2)
        })
        .await
        .unwrap();

    // Bob reads on his laptop (MarkRead over gRPC): Alice sees read_seq 2, Bob's phone unread 0.
    let read = bob_laptop.mark_read(&direct.id, 2).await.unwrap();
    assert_eq!((read.read_seq, read.unread_count), (2, 0));
    alice_in
        .wait_event(WAIT, "Bob's read receipt at Alice", |e| {
            receipt_of(e, &direct.id, &bob_id).is_some_and(|(_, read, _)| read == 2)
        })
        .await
        .unwrap();
    let event = phone_in
        .wait_event(WAIT, "Bob's own read mark at his phone", |e| {
            receipt_of(e, &direct.id, &bob_id).is_some_and(|(_, read, _)| read == 2)
        })
        .await
        .unwrap();
    assert_eq!(
        receipt_of(&event, &direct.id, &bob_id).unwrap().2,
        0,
        "unread at Bob's phone: {}",
        describe(&event)
    );

    // Reading half of a new pair on the phone leaves one unread on every device of Bob's.
    let third = alice.send_message(opaque(&direct.id, 3)).await.unwrap();
    alice.send_message(opaque(&direct.id, 4)).await.unwrap();
    phone_in
        .until(WAIT, "messages 3 and 4 at Bob's phone", |i| i.messages_in(&direct.id).len() == 4)
        .await
        .unwrap();
    bob_phone.mark_read(&direct.id, third.seq).await.unwrap();
    let event = phone_in
        .wait_event(WAIT, "read_seq 3 at Bob's phone", |e| {
            receipt_of(e, &direct.id, &bob_id).is_some_and(|(_, read, _)| read == 3)
        })
        .await
        .unwrap();
    assert_eq!(receipt_of(&event, &direct.id, &bob_id).unwrap().2, 1, "{}", describe(&event));
    let deadline = Instant::now() + WAIT;
    loop {
        let event = laptop.next_event(deadline - Instant::now()).await.unwrap();
        if let Some((_, read, unread)) = receipt_of(&event, &direct.id, &bob_id).filter(|r| r.1 == 3) {
            assert_eq!((read, unread), (3, 1), "at Bob's laptop: {}", describe(&event));
            break;
        }
    }
    // Alice gets no receipt with an unread count for Bob (counts are for the reader's devices).
    let leaked: Vec<String> = alice_in
        .events()
        .iter()
        .filter(|e| receipt_of(e, &direct.id, &bob_id).is_some_and(|(_, _, unread)| unread != 0))
        .map(describe)
        .collect();
    assert!(leaked.is_empty(), "Alice saw Bob's unread count: {leaked:?}");
}

// ---------------------------------------------------------------------------------------------
// Resume: away, slow

/// Sends `n` Megolm messages from `sender` into `conversation_id`; returns (id, seq, text).
async fn send_many(
    sender: &mut E2eeDevice,
    conversation_id: &str,
    n: usize,
    label: &str,
) -> Vec<(String, u64, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let text = format!("{label} {i:03}: sent while the receiver was away");
        let posted = sender.send_prepared(conversation_id, text.as_bytes(), "").await.unwrap();
        out.push((posted.message.id, posted.message.seq, text));
    }
    out
}

#[tokio::test]
async fn an_away_device_catches_up_in_order_once() {
    let server = start(Database::Sqlite).await;
    let mut alice = person(&server, "alice").await;
    let mut bob = person(&server, "bob").await;
    let direct = alice.client.open_direct(bob.account_id()).await.unwrap().conversation.unwrap();
    alice.refresh_conversation(&direct.id).await.unwrap();
    let mut inbox = online(&server, bob.client.access_token(), "bob").await;
    let mut sent = send_many(&mut alice, &direct.id, 1, "live").await;
    inbox.until(WAIT, "the first message", |i| i.messages_in(&direct.id).len() == 1).await.unwrap();

    let mut wrong_resumed = Vec::new();
    // Away four times: network lost or closed politely, each with and without a resume point.
    for (round, (how, resume)) in
        [("dropped", true), ("dropped", false), ("closed", true), ("closed", false)].into_iter().enumerate()
    {
        if how == "dropped" {
            inbox.drop_connection();
        } else {
            inbox.close().await;
        }
        let label = format!("round {round} ({how}, resume {resume})");
        sent.extend(send_many(&mut alice, &direct.id, 25, &label).await);
        let duplicates = inbox.duplicates();
        let ready = inbox.connect(&server.url(), bob.client.access_token(), resume).await.unwrap().clone();
        if ready.resumed != resume {
            wrong_resumed.push(format!("{label}: Ready.resumed {}", ready.resumed));
        }
        assert!(!ready.resumed || resume, "Ready.resumed without a ResumePoint in {label}");
        assert_eq!(ready.device_id, bob.device_id());
        inbox.sync(WAIT).await.unwrap_or_else(|e| panic!("{label}: {e:#}"));
        // Everything came before sync_complete, in seq order, each message once.
        let got: Vec<(String, u64)> =
            inbox.messages_in(&direct.id).iter().map(|m| (m.id.clone(), m.seq)).collect();
        let want: Vec<(String, u64)> = sent.iter().map(|(id, seq, _)| (id.clone(), *seq)).collect();
        assert_eq!(got, want, "messages at Bob after {label}");
        if resume {
            assert_eq!(inbox.duplicates(), duplicates, "{label}: something already processed came again");
        }
    }
    let seqs: Vec<u64> = sent.iter().map(|(_, seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=101).collect::<Vec<u64>>());
    inbox.import_keys(&mut bob).await.unwrap();
    for (id, _, text) in &sent {
        let message = inbox.message(id).unwrap().clone();
        assert_eq!(bob.decrypt_message(&message), Content::Text(text.clone().into_bytes()), "message {id}");
    }
    let plaintexts: Vec<String> = sent.into_iter().map(|(_, _, text)| text).collect();
    expect_no_plaintext(&server, &plaintexts).await;
    // Proto: `Ready.resumed` is "whether the ResumePoint was known here and its
    // acknowledgement applied"; the previous connection always ended on this very process.
    assert!(wrong_resumed.is_empty(), "a ResumePoint of this process was not recognised: {wrong_resumed:?}");
}

#[tokio::test]
async fn a_device_that_never_acks_is_closed_as_slow_and_resumes_without_loss() {
    let server = start(Database::Sqlite).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let direct = alice.open_direct(&account_id(&bob)).await.unwrap().conversation.unwrap();

    let mut slow = GatewayClient::connect(&server.url(), bob.access_token(), None).await.unwrap();
    let max_unacked = slow.ready().unwrap().max_unacked;
    assert_eq!(max_unacked, 1024, "Ready.max_unacked (docs/gateway.md)");
    // Alice posts while Bob's device reads but never acks, until the server gives up on it.
    let mut sent: Vec<Message> = Vec::new();
    let mut received = 0usize;
    let mut refused = Vec::new();
    let mut closed = None;
    while closed.is_none() && sent.len() < 6000 {
        let batch: Vec<SendMessageRequest> =
            (sent.len()..sent.len() + 200).map(|n| opaque(&direct.id, n)).collect();
        let answers: Vec<_> = futures_util::stream::iter(batch.into_iter().map(|request| {
            let alice = alice.clone();
            async move { alice.send_message(request).await }
        }))
        .buffer_unordered(6)
        .collect()
        .await;
        for answer in answers {
            sent.push(answer.unwrap_or_else(|s| panic!("SendMessage: {:?}", Refusal::of(&s))));
        }
        loop {
            match slow.next_event(Duration::from_millis(50)).await {
                Ok(_) => received += 1,
                Err(WaitError::Timeout(_)) => break,
                Err(WaitError::Refused(e)) => refused.push(e),
                Err(WaitError::Closed(code, reason)) => {
                    closed = Some((code, reason));
                    break;
                }
                Err(e) => panic!("the unacking device: {e}"),
            }
        }
        assert!(
            received <= max_unacked as usize,
            "the server sent {received} events without an ack (max_unacked {max_unacked})"
        );
    }
    let (code, reason) = closed.unwrap_or_else(|| {
        panic!(
            "{} messages later, the device that never acked ({received} events) is still connected",
            sent.len()
        )
    });
    assert_eq!(
        code,
        CLOSE_SLOW_CONSUMER,
        "close code (reason {reason:?}, errors {refused:?}) after {} messages",
        sent.len()
    );
    assert!(
        refused.iter().all(|e| e.reason == "SLOW_CONSUMER" && e.fatal),
        "GatewayErrors before the close: {refused:?}"
    );
    assert_eq!(received, max_unacked as usize, "events sent before the pause");

    // Bob's device comes back (it acks now): every message, in order, once.
    let mut inbox = LiveInbox::new();
    inbox.connect(&server.url(), bob.access_token(), false).await.unwrap();
    inbox.sync(Duration::from_secs(120)).await.unwrap();
    sent.sort_by_key(|m| m.seq);
    let want: Vec<(&str, u64)> = sent.iter().map(|m| (m.id.as_str(), m.seq)).collect();
    let got: Vec<(&str, u64)> =
        inbox.messages_in(&direct.id).iter().map(|m| (m.id.as_str(), m.seq)).collect();
    assert_eq!(got.len(), want.len(), "messages after resuming");
    assert_eq!(got, want, "messages after resuming, in seq order");
    assert_eq!(inbox.duplicates(), 0, "nothing had been acked, so nothing comes twice");
}

// ---------------------------------------------------------------------------------------------
// Resilience: 2,000 messages through dropped sockets and two `kill -9`s of the server

const RESILIENCE_MESSAGES: usize = 2000;

#[tokio::test]
async fn resilience_on_sqlite() {
    resilience(Database::Sqlite).await;
}

#[tokio::test]
async fn resilience_on_postgres() {
    resilience(Database::FreshPostgres).await;
}

/// Whether a failed call is the server being away (retry) rather than a refusal (a bug here).
fn is_outage(status: &tonic::Status) -> bool {
    Refusal::of(status).reason.is_empty()
        && matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Internal
        )
}

/// A client for `session` on the server's current url (which changes with a restart), once the
/// server answers there.
async fn connect_current(
    session: Option<Session>,
    urls: &mut tokio::sync::watch::Receiver<String>,
    deadline: Instant,
) -> Client {
    loop {
        assert!(Instant::now() < deadline, "the sender could not reach the server again in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let url = urls.borrow_and_update().clone();
        if let Ok(mut client) = Client::connect(&url).await {
            client.set_session(session);
            return client;
        }
    }
}

/// Sends one encrypted message until it is acknowledged: a send that failed because the server
/// was away is retried with the same id and ciphertext (sends are idempotent). Returns the
/// stored message and how many retries it took.
async fn send_until_acknowledged(
    mut client: Client,
    encrypted: Encrypted,
    mut urls: tokio::sync::watch::Receiver<String>,
) -> (Message, usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut retries = 0;
    loop {
        match client.send_message(encrypted.send_request("")).await {
            Ok(message) => {
                assert_eq!(message.id, encrypted.message_id);
                assert_eq!(message.ciphertext, encrypted.ciphertext, "message {} as stored", message.id);
                return (message, retries);
            }
            Err(status) if is_outage(&status) && Instant::now() < deadline => {
                retries += 1;
                client = connect_current(client.session().cloned(), &mut urls, deadline).await;
            }
            Err(status) => {
                panic!("SendMessage {} (retry {retries}): {:?}", encrypted.message_id, Refusal::of(&status))
            }
        }
    }
}

/// Encrypts the messages one after the other (sharing room keys as needed, again after a
/// failure) and keeps up to four sends in flight, each retried until acknowledged. Returns
/// (id, seq, text) of every message, in seq order.
async fn send_through_outages(
    mut alice: E2eeDevice,
    conversation_id: String,
    mut urls: tokio::sync::watch::Receiver<String>,
    progress: Arc<AtomicUsize>,
) -> Vec<(String, u64, String)> {
    let mut sent = Vec::new();
    let mut retries = 0usize;
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    for i in 0..RESILIENCE_MESSAGES {
        let text = format!("{i:04}-th resilient message, kept across kill -9");
        let deadline = Instant::now() + Duration::from_secs(120);
        let encrypted = loop {
            match alice.prepare_message(&conversation_id, text.as_bytes()).await {
                Ok(encrypted) => break encrypted,
                Err(e) => {
                    retries += 1;
                    assert!(Instant::now() < deadline, "sharing the room key for message {i}: {e:#}");
                    alice.client =
                        connect_current(alice.client.session().cloned(), &mut urls, deadline).await;
                }
            }
        };
        let send = send_until_acknowledged(alice.client.clone(), encrypted, urls.clone());
        in_flight.push(async move { (send.await, text) });
        while in_flight.len() >= 4 {
            let ((message, tries), text) = in_flight.next().await.unwrap();
            retries += tries;
            sent.push((message.id, message.seq, text));
            progress.fetch_add(1, Ordering::Relaxed);
        }
    }
    while let Some(((message, tries), text)) = in_flight.next().await {
        retries += tries;
        sent.push((message.id, message.seq, text));
        progress.fetch_add(1, Ordering::Relaxed);
    }
    assert!(retries > 0, "no send ever failed: the server was not killed while Alice was sending");
    sent.sort_by_key(|(_, seq, _)| *seq);
    sent
}

async fn resilience(database: Database) {
    let mut server = start(database).await;
    let mut alice = person(&server, "alice").await;
    let mut bob = person(&server, "bob").await;
    let direct = alice.client.open_direct(bob.account_id()).await.unwrap().conversation.unwrap();
    alice.refresh_conversation(&direct.id).await.unwrap();
    let bob_token = bob.client.access_token().to_owned();

    let (urls, url_rx) = tokio::sync::watch::channel(server.url());
    let progress = Arc::new(AtomicUsize::new(0));
    let mut sender =
        Some(tokio::spawn(send_through_outages(alice, direct.id.clone(), url_rx, progress.clone())));
    let mut sent = None;

    // Bob's device takes what comes, dropping its socket every so many events (alternately
    // resuming with and without a ResumePoint); the server is killed twice meanwhile.
    let kill_at = [RESILIENCE_MESSAGES * 3 / 10, RESILIENCE_MESSAGES * 7 / 10];
    let drop_after = [37usize, 211, 5, 120, 400, 64];
    let mut inbox = LiveInbox::new();
    let (mut kills, mut drops, mut on_connection, mut resume) = (0usize, 0usize, 0usize, true);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(
            Instant::now() < deadline,
            "not done in time: {} sent, Bob has {} messages, {kills} kills, {drops} drops",
            progress.load(Ordering::Relaxed),
            inbox.messages_in(&direct.id).len()
        );
        if sender.as_ref().is_some_and(|s| s.is_finished()) {
            sent = Some(sender.take().unwrap().await.expect("the sender failed"));
        }
        if kills < kill_at.len() && progress.load(Ordering::Relaxed) >= kill_at[kills] {
            server.kill().await.unwrap();
            // Let Alice's next sends fail against the dead server (realism, not correctness).
            tokio::time::sleep(Duration::from_millis(300)).await;
            server.restart().await.unwrap();
            urls.send_replace(server.url());
            kills += 1;
            inbox.drop_connection();
        }
        if !inbox.is_connected() {
            match inbox.connect(&server.url(), &bob_token, resume).await {
                Ok(_) => {
                    resume = !resume;
                    on_connection = 0;
                }
                Err(e) => {
                    eprintln!("bob reconnecting: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        match inbox.next(Duration::from_millis(200)).await {
            Ok(_) => {
                on_connection += 1;
                if on_connection >= drop_after[drops % drop_after.len()] {
                    inbox.drop_connection();
                    drops += 1;
                }
            }
            Err(WaitError::Timeout(_)) => {
                if sent.is_some() && inbox.messages_in(&direct.id).len() >= RESILIENCE_MESSAGES {
                    break;
                }
            }
            Err(WaitError::Closed(code, reason)) => {
                eprintln!("bob's socket closed by the server: {code} {reason}");
                inbox.drop_connection();
            }
            Err(e) => panic!("bob's gateway: {e}"),
        }
    }
    let sent = sent.unwrap();
    assert_eq!(kills, 2);
    assert!(drops >= 5, "only {drops} socket drops");

    // Exactly the acknowledged messages, in order of their seqs, each decrypting to its text.
    let seqs: Vec<u64> = sent.iter().map(|(_, seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=RESILIENCE_MESSAGES as u64).collect::<Vec<_>>(), "seqs of the acknowledged sends");
    let got = inbox.messages_in(&direct.id);
    let got_ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    let want_ids: Vec<&str> = sent.iter().map(|(id, _, _)| id.as_str()).collect();
    if got_ids != want_ids {
        let got_set: HashSet<&str> = got_ids.iter().copied().collect();
        let missing: Vec<u64> =
            sent.iter().filter(|(id, _, _)| !got_set.contains(id.as_str())).map(|(_, seq, _)| *seq).collect();
        let out_of_order: Vec<(u64, u64)> =
            got.windows(2).filter(|w| w[1].seq <= w[0].seq).map(|w| (w[0].seq, w[1].seq)).collect();
        panic!(
            "Bob has {} messages, want {}: missing seqs {missing:?}, out of order (prev, next) {out_of_order:?}",
            got.len(),
            sent.len()
        );
    }
    // Bob's gRPC connection still points at the first process: reach the current one.
    let mut client = Client::connect(&server.url()).await.unwrap();
    client.set_session(bob.client.session().cloned());
    bob.client = client;
    inbox.import_keys(&mut bob).await.unwrap();
    for (id, seq, text) in &sent {
        let message = inbox.message(id).unwrap().clone();
        assert_eq!(
            bob.decrypt_message(&message),
            Content::Text(text.clone().into_bytes()),
            "message seq {seq}"
        );
    }
    // Not one message Bob's device could not decrypt (the counter every decryption feeds).
    assert_eq!(bob.undecryptable(), 0, "undecryptable on Bob's device: {:?}", bob.undecryptable_reasons());
    eprintln!(
        "resilience: {} messages, {drops} socket drops, {} connections, {} duplicates dropped",
        sent.len(),
        inbox.connections(),
        inbox.duplicates()
    );
    let plaintexts: Vec<String> = sent.into_iter().map(|(_, _, text)| text).collect();
    expect_no_plaintext(&server, &plaintexts).await;
}

// ---------------------------------------------------------------------------------------------
// Removal

#[tokio::test]
async fn a_removed_member_hears_nothing_more() {
    let server = start(Database::Sqlite).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let carol = plain(&server, "carol").await;
    let bob_id = account_id(&bob);
    let group = alice.create_group("Soon without Bob", &[&bob_id, &account_id(&carol)]).await.unwrap();
    let mut bob_in = online(&server, bob.access_token(), "bob").await;
    let mut carol_in = online(&server, carol.access_token(), "carol").await;

    let before = alice.send_message(opaque(&group.id, 1)).await.unwrap();
    for inbox in [&mut bob_in, &mut carol_in] {
        inbox
            .until(WAIT, "the message before the removal", |i| i.message(&before.id).is_some())
            .await
            .unwrap();
    }
    alice.remove_member(&group.id, &bob_id).await.unwrap();
    let event = bob_in
        .wait_event(WAIT, "member{removed} for Bob", |e| {
            matches!(&e.body, Some(event::Body::Member(m)) if m.conversation_id == group.id && m.account_id == bob_id)
        })
        .await
        .unwrap();
    assert!(matches!(&event.body, Some(event::Body::Member(m)) if m.removed), "{}", describe(&event));

    let after = alice.send_message(opaque(&group.id, 2)).await.unwrap();
    carol_in.until(WAIT, "the message after the removal", |i| i.message(&after.id).is_some()).await.unwrap();
    let in_group = |e: &Event| message_of(e).is_some_and(|(m, _)| m.conversation_id == group.id);
    bob_in.expect_none(Duration::from_millis(500), "Bob was removed", in_group).await.unwrap();

    // Away and back, with and without a resume point: still nothing.
    for resume in [true, false] {
        bob_in.drop_connection();
        let later = alice.send_message(opaque(&group.id, 3)).await.unwrap();
        carol_in.until(WAIT, "a later message", |i| i.message(&later.id).is_some()).await.unwrap();
        bob_in.connect(&server.url(), bob.access_token(), resume).await.unwrap();
        bob_in.sync(WAIT).await.unwrap();
    }
    let mut fresh = online(&server, bob.access_token(), "bob, a fresh inbox").await;
    fresh.expect_none(Duration::from_millis(300), "Bob was removed", in_group).await.unwrap();
    let bobs: Vec<u64> = bob_in.messages_in(&group.id).iter().map(|m| m.seq).collect();
    assert_eq!(bobs, [before.seq], "Bob's messages of the group");
    let replayed: Vec<String> =
        fresh.messages_in(&group.id).iter().map(|m| format!("seq {}", m.seq)).collect();
    assert!(replayed.iter().all(|s| *s == format!("seq {}", before.seq)), "replayed to Bob: {replayed:?}");
}

// ---------------------------------------------------------------------------------------------
// Signing out closes the socket

/// Waits up to 3 s for `gateway` to be closed with 4003.
async fn expect_signed_out(gateway: &mut GatewayClient, how: &str) {
    let (code, reason) = gateway
        .wait_closed(Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| panic!("{how}: the socket stayed open: {e:#}"));
    assert_eq!(
        code,
        CLOSE_SIGNED_OUT,
        "{how}: close code (reason {reason:?}, errors {:?})",
        gateway.errors()
    );
    assert!(
        gateway.errors().iter().all(|e| e.reason == "SIGNED_OUT" && e.fatal),
        "{how}: GatewayErrors {:?}",
        gateway.errors()
    );
}

#[tokio::test]
async fn signing_a_device_out_closes_its_socket() {
    let server = start(Database::Sqlite).await;
    let laptop = plain(&server, "alice").await;
    let mut phone = plain_device(&server, "alice", "Phone").await;
    let tablet = plain_device(&server, "alice", "Tablet").await;
    let desktop = plain_device(&server, "alice", "Desktop").await;
    let mut sockets = Vec::new();
    for device in [&laptop, &phone, &tablet, &desktop] {
        sockets.push(GatewayClient::connect(&server.url(), device.access_token(), None).await.unwrap());
    }
    let [mut laptop_gw, mut phone_gw, mut tablet_gw, mut desktop_gw] =
        <[GatewayClient; 4]>::try_from(sockets).unwrap();

    phone.sign_out().await.unwrap();
    expect_signed_out(&mut phone_gw, "AuthService.SignOut from the phone").await;

    let request = SignOutDeviceRequest { device_id: tablet.device_id().to_owned() };
    laptop.devices().sign_out_device(request).await.unwrap();
    expect_signed_out(&mut tablet_gw, "DeviceService.SignOutDevice from the laptop").await;

    server.admin(&["device", "revoke", desktop.device_id()]).await.unwrap().ok().unwrap();
    expect_signed_out(&mut desktop_gw, "`kitsulan admin device revoke`").await;

    // The laptop's socket is untouched, and a signed-out token gets no new one.
    laptop_gw.check_alive(7, WAIT).await.unwrap();
    assert_eq!(laptop_gw.closed(), None);
    let refused = GatewayClient::connect(&server.url(), tablet.access_token(), None).await.unwrap_err();
    assert_eq!(
        (refused.close_code(), refused.reason()),
        (Some(CLOSE_UNAUTHENTICATED), Some("UNAUTHENTICATED")),
        "a revoked device's token: {refused}"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input

/// A connection past Ready and sync_complete.
async fn synced(server: &TestServer, token: &str) -> GatewayClient {
    let mut gateway = GatewayClient::connect(&server.url(), token, None).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let event = gateway.next_event(deadline - Instant::now()).await.unwrap();
        if matches!(event.body, Some(event::Body::SyncComplete(_))) {
            return gateway;
        }
    }
}

/// Expects a non-fatal `reason` and a connection that still answers heartbeats.
async fn expect_survives(gateway: &mut GatewayClient, reason: &str, case: &str, nonce: u64) {
    let before = gateway.errors().len();
    let error = gateway.expect_error(WAIT).await.unwrap_or_else(|e| panic!("{case}: {e:#}"));
    assert_eq!((error.reason.as_str(), error.fatal), (reason, false), "{case}: {error:?}");
    gateway
        .check_alive(nonce, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{case}: the connection did not survive: {e:#}"));
    let others: Vec<_> =
        gateway.errors()[before..].iter().filter(|e| e.reason != reason || e.fatal).collect();
    assert!(others.is_empty(), "{case}: other errors too: {others:?}");
}

/// Expects the connection closed with `code` (and, if a GatewayError came, a fatal `reason`).
async fn expect_closed(gateway: &mut GatewayClient, code: u16, reason: &str, case: &str) {
    let before = gateway.errors().len();
    let (got, why) = gateway.wait_closed(WAIT).await.unwrap_or_else(|e| panic!("{case}: {e:#}"));
    let errors = &gateway.errors()[before..];
    assert_eq!(got, code, "{case}: close code (reason {why:?}, errors {errors:?})");
    assert!(
        errors.iter().all(|e| e.reason == reason && e.fatal),
        "{case}: expected {reason}, got {errors:?}"
    );
}

#[tokio::test]
async fn bad_input_gets_the_documented_errors_and_close_codes() {
    let server = start(Database::Sqlite).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let carol = plain(&server, "carol").await;
    let token = alice.access_token();
    let mine = alice.open_direct(&account_id(&bob)).await.unwrap().conversation.unwrap();
    let theirs = bob.open_direct(&account_id(&carol)).await.unwrap().conversation.unwrap();

    // Before Ready.
    let refused = GatewayClient::connect(&server.url(), "not a token", None).await.unwrap_err();
    assert_eq!(
        (refused.close_code(), refused.reason()),
        (Some(CLOSE_UNAUTHENTICATED), Some("UNAUTHENTICATED")),
        "{refused}"
    );
    let mut gateway = GatewayClient::open(&server.url()).await.unwrap();
    gateway.send_raw(vec![0xff, 0xff, 0xff, 0x07, 0x13, 0x37]).unwrap();
    expect_closed(&mut gateway, CLOSE_PROTOCOL, "MALFORMED_FRAME", "garbage as the first frame").await;
    let mut gateway = GatewayClient::open(&server.url()).await.unwrap();
    gateway.send_text("{\"hello\": {}}").unwrap();
    expect_closed(&mut gateway, CLOSE_PROTOCOL, "MALFORMED_FRAME", "a text frame first").await;
    let mut gateway = GatewayClient::open(&server.url()).await.unwrap();
    gateway.heartbeat(1).unwrap();
    expect_closed(&mut gateway, CLOSE_PROTOCOL, "HELLO_REQUIRED", "a Heartbeat before Hello").await;

    // After Ready: refused frames leave the connection open.
    let mut gateway = synced(&server, token).await;
    gateway.send_raw(b"\xff\xfethis is no ClientFrame".to_vec()).unwrap();
    expect_survives(&mut gateway, "MALFORMED_FRAME", "garbage after Ready", 1).await;
    gateway.send_text("a text frame").unwrap();
    expect_survives(&mut gateway, "MALFORMED_FRAME", "a text frame after Ready", 2).await;
    let sent = gateway.last_seq();
    gateway.ack(sent + 1000).unwrap();
    expect_survives(&mut gateway, "ACK_IN_FUTURE", "an Ack from the future", 3).await;
    gateway.typing(&Uuid::now_v7().to_string(), true).unwrap();
    expect_survives(&mut gateway, "NOT_A_MEMBER", "typing in an unknown conversation", 4).await;
    gateway.typing(&theirs.id, true).unwrap();
    expect_survives(&mut gateway, "NOT_A_MEMBER", "typing in someone else's conversation", 5).await;
    gateway.hello(token, None).unwrap();
    expect_survives(&mut gateway, "ALREADY_READY", "a second Hello", 6).await;
    // Typing: 5 updates a second, more are RATE_LIMITED.
    for _ in 0..12 {
        gateway.typing(&mine.id, true).unwrap();
    }
    expect_survives(&mut gateway, "RATE_LIMITED", "12 typing updates at once", 7).await;
    assert_eq!(gateway.closed(), None);

    // Too big: closed with 1009.
    let huge = "x".repeat(MAX_CLIENT_FRAME + 1);
    gateway
        .send_frame(client_frame::Frame::Typing(kitsulan_proto::v1::TypingUpdate {
            conversation_id: huge,
            typing: true,
        }))
        .unwrap();
    // The server stops reading mid-frame, so the rest of it may reach a closed socket and the
    // close frame be lost to a TCP reset (1006); the fatal error frame always comes first.
    let before = gateway.errors().len();
    let (code, why) =
        gateway.wait_closed(WAIT).await.unwrap_or_else(|e| panic!("a frame over 64 KiB: {e:#}"));
    let errors = &gateway.errors()[before..];
    assert!(
        code == CLOSE_FRAME_TOO_LARGE || (code == 1006 && !errors.is_empty()),
        "a frame over 64 KiB: close code {code} ({why:?}), errors {errors:?}"
    );
    assert!(
        errors.iter().all(|e| e.reason == "FRAME_TOO_LARGE" && e.fatal),
        "a frame over 64 KiB: expected FRAME_TOO_LARGE, got {errors:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Two nodes on one PostgreSQL, live events over NATS

#[tokio::test]
async fn two_nodes_pass_live_events_over_nats() {
    const BUS: &str = "nats://127.0.0.1:4222";
    let node_a = start_with(Options::new(Database::FreshPostgres).env("KITSULAN_BUS_URL", BUS)).await;
    let url = node_a.database_url().unwrap().to_owned();
    let node_b = start_with(Options::new(Database::Url(url)).env("KITSULAN_BUS_URL", BUS)).await;
    let mut alice = person(&node_a, "alice").await;
    let mut bob = person(&node_b, "bob").await;
    let (alice_id, bob_id) = (alice.account_id().to_owned(), bob.account_id().to_owned());
    let mut alice_in = online(&node_a, alice.client.access_token(), "alice on node A").await;
    let mut bob_in = online(&node_b, bob.client.access_token(), "bob on node B").await;
    let direct = bob.client.open_direct(&alice_id).await.unwrap().conversation.unwrap();

    // Bob, on node B, posts; Alice, on node A, gets it live and reads it.
    let text = "from node B to node A, over NATS";
    let posted = bob.send_to_conversation(&direct.id, text.as_bytes()).await.unwrap().message;
    expect_live(&mut alice_in, &mut alice, &posted, MessageChange::New, Some(text)).await;
    let answer = "and back from node A to node B";
    let back = alice.send_to_conversation(&direct.id, answer.as_bytes()).await.unwrap().message;
    expect_live(&mut bob_in, &mut bob, &back, MessageChange::New, Some(answer)).await;

    // Typing both ways.
    bob_in.gateway().unwrap().typing(&direct.id, true).unwrap();
    alice_in
        .wait_event(WAIT, "Bob typing, across nodes", |e| typing_of(e, &direct.id, &bob_id, true))
        .await
        .unwrap();
    alice_in.gateway().unwrap().typing(&direct.id, true).unwrap();
    bob_in
        .wait_event(WAIT, "Alice typing, across nodes", |e| typing_of(e, &direct.id, &alice_id, true))
        .await
        .unwrap();
    expect_no_plaintext(&node_a, &[text.to_owned(), answer.to_owned()]).await;
}
