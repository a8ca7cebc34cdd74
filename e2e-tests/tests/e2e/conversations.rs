//! Conversations and their messages, tested from outside: real devices (`kitsulan-crypto` on the
//! client side) talking to the real `kitsulan` binary over native gRPC, on SQLite and on
//! PostgreSQL. What is checked is what a person relies on: every member device decrypts what
//! the others sent, from the stored history; history pages back and forth without gaps or
//! duplicates; senders racing each other get gapless numbers; a retried send is stored once;
//! nobody outside a conversation sees or touches it, and roles decide who may manage it; bad
//! input is refused whole; a deleted message's ciphertext is gone from the database; unread
//! counts follow what the person read on any of their devices; and the server holds none of
//! the plaintexts.
//!
//! The sending and reading side (Megolm per conversation, keys shared over Olm) is
//! `kitsulan_client::conversations`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::collections::HashSet;
use std::fmt::Debug;
use std::time::Duration;

use kitsulan_client::client::Refusal;
use kitsulan_client::conversations::{Content, HistoryEntry, MAX_CIPHERTEXT, MAX_SESSION_ID};
use kitsulan_client::e2ee::{E2eeDevice, now_ms};
use kitsulan_client::people::{another_device, person, start};
use kitsulan_client::scan::{Finding, scan_database_rows, scan_for_plaintexts, scan_for_secrets};
use kitsulan_client::{Client, Database, assert_refused, assert_refused_with};
use kitsulan_proto::v1::{
    Conversation, ConversationKind, ConversationMode, CreateGroupRequest, EditMessageRequest,
    HistoryDirection, MemberRole, Message, SendMessageRequest,
};
use tonic::Status;
use uuid::Uuid;

fn is_uuid_v7(id: &str) -> bool {
    Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7)
}

fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// (account, device, text) of a line of history.
type Line = (String, String, String);

fn line(sender: &E2eeDevice, text: &str) -> Line {
    (sender.account_id().to_owned(), sender.device_id().to_owned(), text.to_owned())
}

fn shown(entry: &HistoryEntry) -> String {
    match &entry.content {
        Content::Text(plaintext) => String::from_utf8_lossy(plaintext).into_owned(),
        Content::Deleted => "<deleted>".to_owned(),
        Content::Undecryptable(why) => format!("<undecryptable: {why}>"),
        Content::System(event) => format!("<system: {:?}>", event.kind()),
    }
}

/// Reads the whole history of `conversation_id` as `device` and checks that its messages (the
/// system entries of group changes aside) say `expected`, in order, and that the whole history
/// is numbered 1, 2, 3, … without gaps.
async fn expect_history(device: &mut E2eeDevice, conversation_id: &str, expected: &[Line]) {
    let history = device
        .read_history(conversation_id)
        .await
        .unwrap_or_else(|e| panic!("history as {}: {e:#}", device.device_id()));
    let got: Vec<Line> = history
        .iter()
        .filter(|e| e.message.system.is_none())
        .map(|e| (e.message.sender_account_id.clone(), e.message.sender_device_id.clone(), shown(e)))
        .collect();
    assert_eq!(got, expected, "history of {conversation_id} as device {} reads it", device.device_id());
    let seqs: Vec<u64> = history.iter().map(|e| e.message.seq).collect();
    assert_eq!(seqs, (1..=history.len() as u64).collect::<Vec<_>>(), "seqs of {conversation_id}");
}

/// Members as (account id, role), sorted by account id.
fn roles(conversation: &Conversation) -> Vec<(String, MemberRole)> {
    let mut v: Vec<(String, MemberRole)> =
        conversation.members.iter().map(|m| (m.account_id.clone(), m.role())).collect();
    v.sort();
    v
}

fn expected_roles(members: &[(&E2eeDevice, MemberRole)]) -> Vec<(String, MemberRole)> {
    let mut v: Vec<(String, MemberRole)> =
        members.iter().map(|(d, role)| (d.account_id().to_owned(), *role)).collect();
    v.sort();
    v
}

fn member_ids(conversation: &Conversation) -> Vec<String> {
    let mut v: Vec<String> = conversation.members.iter().map(|m| m.account_id.clone()).collect();
    v.sort();
    v
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// Asserts a refusal for `reason` (as [`assert_refused`] does), naming `case` if it fails.
#[track_caller]
fn expect_refusal<T: Debug>(result: Result<T, Status>, reason: &str, case: &str) {
    match result {
        Ok(value) => panic!("{case}: expected {reason}, but the call succeeded: {value:?}"),
        Err(status) => {
            let refusal = Refusal::of(&status);
            assert_eq!(refusal.reason, reason, "{case}: {refusal:?}");
            assert_refused(Err::<(), _>(status), reason);
        }
    }
}

fn list(findings: &[Finding]) -> String {
    findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The unread count of `conversation_id` in the caller's `ListConversations`.
async fn unread(client: &Client, conversation_id: &str) -> u32 {
    let conversations = client.list_conversations().await.unwrap();
    let conversation = conversations
        .iter()
        .find(|c| c.id == conversation_id)
        .unwrap_or_else(|| panic!("{conversation_id} is not listed: {conversations:?}"));
    conversation.unread_count
}

/// Every message of a conversation, raw, oldest first.
async fn raw_history(client: &Client, conversation_id: &str) -> Vec<Message> {
    client.all_messages(conversation_id, HistoryDirection::Forward, 100).await.unwrap()
}

fn raw_request(conversation_id: &str, ciphertext: &[u8]) -> SendMessageRequest {
    SendMessageRequest {
        conversation_id: conversation_id.to_owned(),
        message_id: new_id(),
        ciphertext: ciphertext.to_vec(),
        session_id: b"an opaque session id".to_vec(),
        reply_to: String::new(),
        attachment_ids: Vec::new(),
        content: None,
    }
}

/// Sends `text` into the conversation as `device` and checks it got the next seq.
async fn say(device: &mut E2eeDevice, conversation_id: &str, text: &str, expected: &mut Vec<Line>) {
    let posted = device.send_to_conversation(conversation_id, text.as_bytes()).await.unwrap();
    expected.push(line(device, text));
    assert_eq!(posted.message.seq, expected.len() as u64, "seq of {text:?}");
}

// ---------------------------------------------------------------------------------------------
// (a), (h): a direct conversation and a group of five exchange Megolm messages

on_both_databases!(people_talk: people_talk_on_sqlite, people_talk_on_postgres);

async fn people_talk(database: Database) {
    let server = start(database).await;
    let mut laptop = person(&server, "alice").await;
    let mut phone = another_device(&server, &laptop, "alice", "Phone").await;
    let mut bob = person(&server, "bob").await;
    let alice_id = laptop.account_id().to_owned();
    let bob_id = bob.account_id().to_owned();

    // Alice opens the direct conversation with Bob.
    let opened = laptop.client.open_direct(&bob_id).await.unwrap();
    assert!(opened.created, "{opened:?}");
    let direct = opened.conversation.unwrap();
    assert!(is_uuid_v7(&direct.id), "{direct:?}");
    assert_eq!((direct.kind(), direct.mode()), (ConversationKind::Direct, ConversationMode::E2ee));
    assert_eq!(direct.last_seq, 0);
    assert_eq!(member_ids(&direct), sorted(&[&alice_id, &bob_id]));

    // There is one per pair, whoever asks and from which device.
    for (device, other) in [(&bob, &alice_id), (&phone, &bob_id), (&laptop, &bob_id)] {
        let again = device.client.open_direct(other).await.unwrap();
        assert!(!again.created, "{again:?}");
        assert_eq!(again.conversation.unwrap().id, direct.id);
    }

    // Messages both ways, from all three devices.
    let before = now_ms();
    let hello = laptop.send_to_conversation(&direct.id, b"hello bob, it's alice").await.unwrap();
    let message = &hello.message;
    assert_eq!(message.seq, 1);
    assert_eq!(
        (message.id.as_str(), message.conversation_id.as_str()),
        (hello.encrypted.message_id.as_str(), direct.id.as_str())
    );
    assert_eq!(
        (message.sender_account_id.as_str(), message.sender_device_id.as_str()),
        (laptop.account_id(), laptop.device_id())
    );
    assert_eq!(message.ciphertext, hello.encrypted.ciphertext);
    assert_eq!(message.session_id, hello.encrypted.session_id.as_bytes());
    assert!((before - 1000..=now_ms() + 1000).contains(&message.sent_at_ms), "{message:?}");
    assert_eq!((message.edited_at_ms, message.deleted_at_ms, message.reply_to.as_str()), (0, 0, ""));
    assert_eq!(laptop.conversation_shared_with(&direct.id), sorted(&[phone.device_id(), bob.device_id()]));

    let hi = bob.send_to_conversation(&direct.id, b"hi alice, bob here").await.unwrap();
    assert_eq!(hi.message.seq, 2);
    let reply =
        phone.reply_in_conversation(&direct.id, b"alice's phone says hi too", &hi.message.id).await.unwrap();
    assert_eq!((reply.message.seq, reply.message.reply_to.as_str()), (3, hi.message.id.as_str()));
    let second = laptop.send_to_conversation(&direct.id, b"same session, next index").await.unwrap();
    assert_eq!(second.encrypted.session_id, hello.encrypted.session_id, "no rotation while the devices stay");
    assert_eq!(second.encrypted.message_index, 1);

    let expected = [
        line(&laptop, "hello bob, it's alice"),
        line(&bob, "hi alice, bob here"),
        line(&phone, "alice's phone says hi too"),
        line(&laptop, "same session, next index"),
    ];
    for device in [&mut laptop, &mut phone, &mut bob] {
        expect_history(device, &direct.id, &expected).await;
    }
    assert_eq!(bob.client.get_conversation(&direct.id).await.unwrap().last_seq, 4);

    // A group of five: Alice (two devices), Bob, Carol, Dave and Erin.
    let mut carol = person(&server, "carol").await;
    let mut dave = person(&server, "dave").await;
    let mut erin = person(&server, "erin").await;
    let others = [bob.account_id(), carol.account_id(), dave.account_id(), erin.account_id()];
    let group = laptop.client.create_group("Five of us", &others).await.unwrap();
    assert!(is_uuid_v7(&group.id) && group.id != direct.id, "{group:?}");
    assert_eq!((group.kind(), group.mode()), (ConversationKind::Group, ConversationMode::E2ee));
    assert_eq!((group.title.as_str(), group.last_seq), ("Five of us", 0));
    let five = expected_roles(&[
        (&laptop, MemberRole::Owner),
        (&bob, MemberRole::Member),
        (&carol, MemberRole::Member),
        (&dave, MemberRole::Member),
        (&erin, MemberRole::Member),
    ]);
    assert_eq!(roles(&group), five);
    for device in [&phone, &bob, &carol, &dave, &erin] {
        let seen = device.client.get_conversation(&group.id).await.unwrap();
        assert_eq!((seen.id.as_str(), roles(&seen)), (group.id.as_str(), five.clone()));
    }

    let mut expected = Vec::new();
    say(&mut laptop, &group.id, "alice: welcome, all of you", &mut expected).await;
    say(&mut bob, &group.id, "bob: thanks alice", &mut expected).await;
    say(&mut carol, &group.id, "carol: hello everyone", &mut expected).await;
    say(&mut dave, &group.id, "dave: hi from dave", &mut expected).await;
    say(&mut erin, &group.id, "erin: erin is here", &mut expected).await;
    say(&mut phone, &group.id, "alice, from her phone: and me", &mut expected).await;
    say(&mut bob, &group.id, "bob: a second one from bob", &mut expected).await;
    // Bob shared his session with the other six devices of the group.
    let mut six = vec![
        laptop.device_id().to_owned(),
        phone.device_id().to_owned(),
        carol.device_id().to_owned(),
        dave.device_id().to_owned(),
        erin.device_id().to_owned(),
    ];
    six.sort();
    assert_eq!(bob.conversation_shared_with(&group.id), six);
    for device in [&mut laptop, &mut phone, &mut bob, &mut carol, &mut dave, &mut erin] {
        expect_history(device, &group.id, &expected).await;
    }

    // Bob's list: the group (most recent) first, then the direct conversation.
    let listed = bob.client.list_conversations().await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [group.id.as_str(), direct.id.as_str()]);
    assert_eq!(roles(&listed[0]), five);
    // Carol is in the group only.
    let listed = carol.client.list_conversations().await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [group.id.as_str()]);

    // (h) The server holds none of the plaintexts (database, WAL, free pages, data dir) and
    // none of the devices' private keys.
    let mut plaintexts: Vec<&[u8]> = vec![
        b"hello bob, it's alice",
        b"hi alice, bob here",
        b"alice's phone says hi too",
        b"same session, next index",
    ];
    plaintexts.extend(expected.iter().map(|(_, _, text)| text.as_bytes()));
    let found = scan_for_plaintexts(&server, &plaintexts).await.unwrap();
    assert!(found.is_empty(), "plaintext on the server: {}", list(&found));
    let mut secrets = Vec::new();
    for device in [&laptop, &phone, &bob, &carol, &dave, &erin] {
        secrets.extend(device.secrets());
    }
    let found = scan_for_secrets(&server, &secrets).await.unwrap();
    assert!(found.is_empty(), "private keys on the server: {}", list(&found));
    // And the scan does see what the server must hold: the ciphertexts.
    let ciphertexts: [&[u8]; 2] = [&hello.encrypted.ciphertext, &reply.encrypted.ciphertext];
    let found = scan_for_plaintexts(&server, &ciphertexts).await.unwrap();
    let needles: HashSet<usize> = found.iter().map(|f| f.needle).collect();
    assert_eq!(needles.len(), 2, "the scan missed ciphertexts the server must hold: {found:?}");
}

// ---------------------------------------------------------------------------------------------
// (b): history across 1,000 messages

on_both_databases!(a_thousand_messages: a_thousand_messages_on_sqlite, a_thousand_messages_on_postgres);

/// Pages through the whole history and checks each page: at most `limit` messages, full pages
/// until the last, `more` false on the last only. Returns the seqs in the order listed and the
/// number of pages.
async fn page_through(
    client: &Client,
    conversation_id: &str,
    direction: HistoryDirection,
    limit: u32,
) -> (Vec<Message>, usize) {
    let mut out = Vec::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let page = client.list_messages(conversation_id, cursor, direction, limit).await.unwrap();
        pages += 1;
        assert!(pages <= 1001, "the pages never end ({direction:?}, limit {limit})");
        assert!(
            page.messages.len() <= limit as usize,
            "{} messages on a page of {limit}",
            page.messages.len()
        );
        out.extend(page.messages.iter().cloned());
        if !page.more {
            return (out, pages);
        }
        assert_eq!(page.messages.len(), limit as usize, "a short page says there are more ({direction:?})");
        cursor = page.messages.last().unwrap().seq;
    }
}

async fn a_thousand_messages(database: Database) {
    let server = start(database).await;
    let mut alice = person(&server, "alice").await;
    let mut bob = person(&server, "bob").await;
    let mut carol = person(&server, "carol").await;
    let group =
        alice.client.create_group("A thousand", &[bob.account_id(), carol.account_id()]).await.unwrap();
    for device in [&mut alice, &mut bob, &mut carol] {
        device.refresh_conversation(&group.id).await.unwrap();
    }

    // 1,000 messages, round robin; each sender rotates its session every 100 messages.
    let mut sent: Vec<(String, String)> = Vec::new();
    let mut sessions: HashSet<String> = HashSet::new();
    for i in 0..1000u64 {
        let sender = match i % 3 {
            0 => &mut alice,
            1 => &mut bob,
            _ => &mut carol,
        };
        let text = format!("message {i:04} of the thousand");
        let posted = sender.send_prepared(&group.id, text.as_bytes(), "").await.unwrap();
        assert_eq!(posted.message.seq, i + 1, "seq of message {i}");
        sessions.insert(posted.encrypted.session_id.clone());
        sent.push((posted.message.id, text));
    }
    assert_eq!(sessions.len(), 12, "4 + 4 + 4 sessions (rotation after 100)");
    let conversation = alice.client.get_conversation(&group.id).await.unwrap();
    assert_eq!(conversation.last_seq, 1000);
    let ids: Vec<&str> = sent.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1000);

    // Backward (the default) by pages of 100 from the newest: 1000 down to 1, 10 pages.
    let (messages, pages) = page_through(&alice.client, &group.id, HistoryDirection::Backward, 100).await;
    let listed: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    let newest_first: Vec<&str> = ids.iter().rev().copied().collect();
    assert_eq!(listed, newest_first, "backward by 100");
    assert_eq!(messages.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=1000).rev().collect::<Vec<_>>());
    assert_eq!(pages, 10);

    // Forward by pages of 37 (27 full pages and one of 1), and other page sizes both ways.
    let (messages, pages) = page_through(&bob.client, &group.id, HistoryDirection::Forward, 37).await;
    assert_eq!(messages.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ids, "forward by 37");
    assert_eq!(messages.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=1000).collect::<Vec<_>>());
    assert_eq!(pages, 28);
    for (direction, limit, pages_expected) in [
        (HistoryDirection::Backward, 23, 44),
        (HistoryDirection::Forward, 100, 10),
        (HistoryDirection::Backward, 64, 16),
    ] {
        let (messages, pages) = page_through(&carol.client, &group.id, direction, limit).await;
        let mut seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        if direction == HistoryDirection::Backward {
            seqs.reverse();
        }
        assert_eq!(seqs, (1..=1000).collect::<Vec<_>>(), "{direction:?} by {limit}");
        assert_eq!(pages, pages_expected, "{direction:?} by {limit}");
    }

    // Cursors in the middle and at the ends; the default page size; the largest.
    let seqs = |messages: &[Message]| messages.iter().map(|m| m.seq).collect::<Vec<u64>>();
    for (cursor, direction, limit, expected, more) in [
        (0, HistoryDirection::Backward, 0, (951..=1000).rev().collect::<Vec<u64>>(), true),
        (501, HistoryDirection::Backward, 10, (491..=500).rev().collect(), true),
        (500, HistoryDirection::Forward, 10, (501..=510).collect(), true),
        (995, HistoryDirection::Forward, 10, (996..=1000).collect(), false),
        (990, HistoryDirection::Forward, 10, (991..=1000).collect(), false),
        (11, HistoryDirection::Backward, 10, (1..=10).rev().collect(), false),
        (1000, HistoryDirection::Forward, 10, vec![], false),
        (1, HistoryDirection::Backward, 10, vec![], false),
        (0, HistoryDirection::Forward, 3, vec![1, 2, 3], true),
        (5000, HistoryDirection::Backward, 3, vec![1000, 999, 998], true),
    ] {
        let page = alice.client.list_messages(&group.id, cursor, direction, limit).await.unwrap();
        assert_eq!(
            (seqs(&page.messages), page.more),
            (expected, more),
            "{direction:?} from {cursor}, limit {limit}"
        );
    }
    let page = alice.client.list_messages(&group.id, 0, HistoryDirection::Backward, 100).await.unwrap();
    assert_eq!((page.messages.len(), page.more), (100, true));
    assert_refused(
        alice.client.list_messages(&group.id, 0, HistoryDirection::Backward, 101).await,
        "LIMIT_INVALID",
    );

    // Every message decrypts, in order, on a device that received its keys over Olm.
    let history = carol.read_history(&group.id).await.unwrap();
    let texts: Vec<String> = history.iter().map(shown).collect();
    let expected: Vec<String> = sent.iter().map(|(_, text)| text.clone()).collect();
    assert_eq!(texts, expected);
    // And a sample as Bob, from an arbitrary page (seq 599 down to 595: messages 598 to 594).
    bob.receive().await.unwrap();
    let page = bob.client.list_messages(&group.id, 600, HistoryDirection::Backward, 5).await.unwrap();
    let sample: Vec<String> = page
        .messages
        .iter()
        .map(|m| match bob.decrypt_message(m) {
            Content::Text(p) => String::from_utf8(p).unwrap(),
            other => panic!("message {} as Bob: {other:?}", m.seq),
        })
        .collect();
    assert_eq!(
        sample,
        (594..599).rev().map(|i| format!("message {i:04} of the thousand")).collect::<Vec<_>>()
    );

    // Alice has read nothing: 666 of the messages are from others.
    assert_eq!(unread(&alice.client, &group.id).await, 666);
}

// ---------------------------------------------------------------------------------------------
// (c): a retried send is stored once

on_both_databases!(retried_sends: retried_sends_on_sqlite, retried_sends_on_postgres);

async fn retried_sends(database: Database) {
    let server = start(database).await;
    let mut alice = person(&server, "alice").await;
    let mut bob = person(&server, "bob").await;
    let direct = alice.client.open_direct(bob.account_id()).await.unwrap().conversation.unwrap();
    alice.refresh_conversation(&direct.id).await.unwrap();

    // The same send twice: the same message, once.
    let once = alice.encrypt_for_conversation(&direct.id, b"only once, however often sent").unwrap();
    let first = alice.client.send_message(once.send_request("")).await.unwrap();
    assert_eq!(first.seq, 1);
    let again = alice.client.send_message(once.send_request("")).await.unwrap();
    assert_eq!(again, first, "a retry returns the stored message");

    // Eight copies at once (a client retrying on a flaky link): one message.
    let at_once = alice.encrypt_for_conversation(&direct.id, b"eight copies at once").unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = alice.client.clone();
        let request = at_once.send_request("");
        tasks.spawn(async move { client.send_message(request).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap().unwrap_or_else(|s| panic!("concurrent retry: {:?}", Refusal::of(&s))));
    }
    assert!(answers.iter().all(|m| *m == answers[0]), "{answers:?}");
    assert_eq!((answers[0].seq, answers[0].id.as_str()), (2, at_once.message_id.as_str()));

    // Retries take no sequence numbers: the next message is 3.
    let next = alice.send_prepared(&direct.id, b"and the next one", "").await.unwrap();
    assert_eq!(next.message.seq, 3);

    // The same id with other content or from another sender. (In another conversation it is
    // another message: ids are unique per conversation, so the answer tells nobody whether an
    // id exists in a conversation they are not in.)
    let group = alice.client.create_group("Elsewhere", &[bob.account_id()]).await.unwrap();
    let other = alice.encrypt_for_conversation(&direct.id, b"other content").unwrap();
    let mut other_ciphertext = once.send_request("");
    other_ciphertext.ciphertext = other.ciphertext.clone();
    let mut other_session = once.send_request("");
    other_session.session_id = b"another session".to_vec();
    let mut elsewhere = once.send_request("");
    elsewhere.conversation_id = group.id.clone();
    for (who, request, case) in [
        (&alice.client, other_ciphertext, "other ciphertext"),
        (&alice.client, other_session, "other session id"),
        (&bob.client, once.send_request(""), "same content from another sender"),
    ] {
        expect_refusal(who.send_message(request).await, "MESSAGE_ID_TAKEN", case);
    }

    // History: three messages, each once, and Bob decrypts them.
    let history = raw_history(&bob.client, &direct.id).await;
    let listed: Vec<(&str, u64)> = history.iter().map(|m| (m.id.as_str(), m.seq)).collect();
    assert_eq!(
        listed,
        [
            (once.message_id.as_str(), 1),
            (at_once.message_id.as_str(), 2),
            (next.encrypted.message_id.as_str(), 3)
        ]
    );
    assert_eq!(history[0].ciphertext, once.ciphertext, "the first content stays");
    expect_history(
        &mut bob,
        &direct.id,
        &[
            line(&alice, "only once, however often sent"),
            line(&alice, "eight copies at once"),
            line(&alice, "and the next one"),
        ],
    )
    .await;
    assert_eq!(alice.client.get_conversation(&direct.id).await.unwrap().last_seq, 3);
    let stored_elsewhere = alice.client.send_message(elsewhere).await.unwrap();
    assert_eq!((stored_elsewhere.conversation_id.as_str(), stored_elsewhere.seq), (group.id.as_str(), 1));
    assert_eq!(raw_history(&alice.client, &group.id).await.len(), 1);

    // The same bytes, now as a reply, are another message too (docs/conversations.md: "the
    // same id with anything else is MESSAGE_ID_TAKEN"); answering with the stored non-reply
    // would let the client believe its reply was stored.
    let as_reply = alice.client.send_message(once.send_request(&next.message.id)).await;
    expect_refusal(as_reply, "MESSAGE_ID_TAKEN", "the same bytes as a reply");
}

// ---------------------------------------------------------------------------------------------
// Racing: senders at once, and both sides opening a direct conversation at once

on_both_databases!(racing: racing_on_sqlite, racing_on_postgres);

async fn racing(database: Database) {
    let server = start(database).await;
    let alice = person(&server, "alice").await;
    let bob = person(&server, "bob").await;

    // Both open their direct conversation at the same moment, four times each: one
    // conversation, made once.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (client, other) = if i % 2 == 0 {
            (alice.client.clone(), bob.account_id().to_owned())
        } else {
            (bob.client.clone(), alice.account_id().to_owned())
        };
        tasks.spawn(async move { client.open_direct(&other).await });
    }
    let mut opened = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        opened.push(answer.unwrap().unwrap_or_else(|s| panic!("OpenDirect at once: {:?}", Refusal::of(&s))));
    }
    let ids: HashSet<String> = opened.iter().map(|o| o.conversation.as_ref().unwrap().id.clone()).collect();
    assert_eq!(ids.len(), 1, "{opened:?}");
    assert_eq!(opened.iter().filter(|o| o.created).count(), 1, "created once: {opened:?}");
    assert_eq!(alice.client.list_conversations().await.unwrap().len(), 1);

    // Five people post 20 messages each into a group, all at once: 100 messages numbered 1 to
    // 100 without gaps, each stored once, each readable.
    let mut people = vec![alice, bob];
    for name in ["carol", "dave", "erin"] {
        people.push(person(&server, name).await);
    }
    let others: Vec<&str> = people[1..].iter().map(E2eeDevice::account_id).collect();
    let group = people[0].client.create_group("All at once", &others).await.unwrap();
    for device in &mut people {
        device.refresh_conversation(&group.id).await.unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (n, mut device) in people.into_iter().enumerate() {
        let group_id = group.id.clone();
        tasks.spawn(async move {
            let mut sent = Vec::new();
            for i in 0..20 {
                let text = format!("person {n} message {i:02}");
                let posted = device.send_prepared(&group_id, text.as_bytes(), "").await.unwrap();
                sent.push((posted.message.seq, text));
            }
            (device, sent)
        });
    }
    let mut people = Vec::new();
    let mut by_seq = std::collections::BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (device, sent) = done.unwrap();
        for (seq, text) in sent {
            assert!(by_seq.insert(seq, text).is_none(), "seq {seq} given twice");
        }
        people.push(device);
    }
    assert_eq!(by_seq.keys().copied().collect::<Vec<u64>>(), (1..=100).collect::<Vec<_>>());
    let expected: Vec<String> = by_seq.into_values().collect();
    for device in &mut people {
        let history = device.read_history(&group.id).await.unwrap();
        assert_eq!(history.iter().map(shown).collect::<Vec<_>>(), expected, "as {}", device.device_id());
    }
    assert_eq!(people[0].client.get_conversation(&group.id).await.unwrap().last_seq, 100);
}

// ---------------------------------------------------------------------------------------------
// (d): only members see or post; roles decide who manages

on_both_databases!(members_and_roles: members_and_roles_on_sqlite, members_and_roles_on_postgres);

/// Every ConversationService call about `conversation_id` by `who` is refused as if it did
/// not exist.
async fn expect_no_access(who: &Client, conversation_id: &str, message_id: &str, someone: &str) {
    let not_found = |result: Result<String, Status>, call: &str| {
        expect_refusal(result, "CONVERSATION_NOT_FOUND", &format!("{call} on {conversation_id}"));
    };
    let c = conversation_id;
    not_found(who.get_conversation(c).await.map(|c| c.id), "GetConversation");
    not_found(
        who.list_messages(c, 0, HistoryDirection::Backward, 10).await.map(|p| format!("{p:?}")),
        "ListMessages",
    );
    not_found(who.send_message(raw_request(c, b"posting uninvited")).await.map(|m| m.id), "SendMessage");
    let edit = EditMessageRequest {
        conversation_id: c.to_owned(),
        message_id: message_id.to_owned(),
        ciphertext: b"edited uninvited".to_vec(),
        session_id: b"s".to_vec(),
        content: None,
    };
    not_found(who.edit_message(edit).await.map(|m| m.id), "EditMessage");
    not_found(who.delete_message(c, message_id).await.map(|m| m.id), "DeleteMessage");
    not_found(who.mark_read(c, 1).await.map(|r| format!("{r:?}")), "MarkRead");
    not_found(who.add_members(c, &[someone]).await.map(|c| c.id), "AddMembers");
    not_found(who.remove_member(c, someone).await.map(|c| c.id), "RemoveMember");
    not_found(who.set_member_role(c, someone, MemberRole::Admin).await.map(|c| c.id), "SetMemberRole");
    not_found(who.leave_conversation(c).await.map(|()| String::new()), "LeaveConversation");
}

async fn members_and_roles(database: Database) {
    let server = start(database).await;
    let mut alice = person(&server, "alice").await;
    let bob = person(&server, "bob").await;
    let mut carol = person(&server, "carol").await;
    let dave = person(&server, "dave").await;
    let eve = person(&server, "eve").await;
    let mut frank = person(&server, "frank").await;
    let (a, b, c, d, e, f) = (
        alice.account_id().to_owned(),
        bob.account_id().to_owned(),
        carol.account_id().to_owned(),
        dave.account_id().to_owned(),
        eve.account_id().to_owned(),
        frank.account_id().to_owned(),
    );

    let group = alice.client.create_group("Roles", &[&b, &c, &d]).await.unwrap();
    let direct = alice.client.open_direct(&b).await.unwrap().conversation.unwrap();
    let in_group = alice.send_to_conversation(&group.id, b"alice in the group").await.unwrap();
    let in_direct = alice.send_to_conversation(&direct.id, b"alice to bob").await.unwrap();
    let by_carol = carol.send_to_conversation(&group.id, b"carol in the group").await.unwrap();

    // Eve is in neither: every call answers as for a conversation that does not exist.
    expect_no_access(&eve.client, &group.id, &in_group.message.id, &e).await;
    expect_no_access(&eve.client, &direct.id, &in_direct.message.id, &e).await;
    expect_no_access(&eve.client, &new_id(), &in_group.message.id, &e).await;
    expect_no_access(&alice.client, &new_id(), &in_group.message.id, &e).await;
    // Carol is in the group, not in Alice and Bob's direct conversation.
    expect_no_access(&carol.client, &direct.id, &in_direct.message.id, &e).await;
    assert!(eve.client.list_conversations().await.unwrap().is_empty());
    // Nothing changed.
    let history = raw_history(&alice.client, &group.id).await;
    assert_eq!(
        history.iter().map(|m| (m.seq, m.deleted_at_ms, m.edited_at_ms)).collect::<Vec<_>>(),
        [(1, 0, 0), (2, 0, 0)]
    );
    assert_eq!(raw_history(&bob.client, &direct.id).await.len(), 1);
    assert_eq!(roles(&alice.client.get_conversation(&group.id).await.unwrap()).len(), 4);

    // A member manages nothing, and changes nobody else's messages.
    assert_refused(carol.client.add_members(&group.id, &[&f]).await, "NOT_ALLOWED");
    assert_refused(carol.client.remove_member(&group.id, &d).await, "NOT_ALLOWED");
    assert_refused(carol.client.set_member_role(&group.id, &d, MemberRole::Admin).await, "NOT_ALLOWED");
    assert_refused(carol.client.delete_message(&group.id, &in_group.message.id).await, "NOT_ALLOWED");
    let (_, edited) =
        carol.edit_in_conversation(&group.id, &in_group.message.id, b"carol's words").await.unwrap();
    assert_refused(edited, "NOT_ALLOWED");

    // The owner makes Bob an admin. An admin adds and removes members, but cannot remove the
    // owner or another admin, nor change roles.
    let after = alice.client.set_member_role(&group.id, &b, MemberRole::Admin).await.unwrap();
    assert_eq!(
        roles(&after),
        expected_roles(&[
            (&alice, MemberRole::Owner),
            (&bob, MemberRole::Admin),
            (&carol, MemberRole::Member),
            (&dave, MemberRole::Member)
        ])
    );
    let after = bob.client.add_members(&group.id, &[&f]).await.unwrap();
    assert!(roles(&after).contains(&(f.clone(), MemberRole::Member)), "{after:?}");
    assert_refused(bob.client.remove_member(&group.id, &a).await, "NOT_ALLOWED");
    alice.client.set_member_role(&group.id, &d, MemberRole::Admin).await.unwrap();
    assert_refused(bob.client.remove_member(&group.id, &d).await, "NOT_ALLOWED");
    assert_refused(bob.client.set_member_role(&group.id, &c, MemberRole::Admin).await, "NOT_ALLOWED");
    assert_refused(bob.client.set_member_role(&group.id, &d, MemberRole::Member).await, "NOT_ALLOWED");
    // The owner role is not handed out with SetMemberRole, nor one's own role changed.
    for role in [MemberRole::Owner, MemberRole::Unspecified] {
        assert_refused(alice.client.set_member_role(&group.id, &c, role).await, "ROLE_INVALID");
    }
    assert_refused(alice.client.set_member_role(&group.id, &a, MemberRole::Member).await, "ROLE_INVALID");
    // Only members are managed; one leaves with LeaveConversation.
    assert_refused(alice.client.set_member_role(&group.id, &e, MemberRole::Admin).await, "MEMBER_NOT_FOUND");
    assert_refused(alice.client.remove_member(&group.id, &e).await, "MEMBER_NOT_FOUND");
    assert_refused(alice.client.remove_member(&group.id, &a).await, "USE_LEAVE");
    alice.client.set_member_role(&group.id, &d, MemberRole::Member).await.unwrap();

    // Frank, added later, reads what is sent after he joined, not what was sent before.
    let welcome = alice.send_to_conversation(&group.id, b"welcome, frank").await.unwrap();
    assert_ne!(
        welcome.encrypted.session_id, in_group.encrypted.session_id,
        "Alice rotated on the new member"
    );
    let history = frank.read_history(&group.id).await.unwrap();
    let shown_to_frank: Vec<String> =
        history.iter().filter(|e| e.message.system.is_none()).map(shown).collect();
    assert_eq!(shown_to_frank.len(), 3, "{shown_to_frank:?}");
    assert!(
        shown_to_frank[0].starts_with("<undecryptable") && shown_to_frank[1].starts_with("<undecryptable"),
        "{shown_to_frank:?}"
    );
    assert_eq!(shown_to_frank[2], "welcome, frank");
    let from_frank = frank.send_to_conversation(&group.id, b"frank says hi").await.unwrap();

    // An admin removes Frank: he loses access at once; his message stays for the others.
    let after = bob.client.remove_member(&group.id, &f).await.unwrap();
    assert!(!member_ids(&after).contains(&f), "{after:?}");
    expect_no_access(&frank.client, &group.id, &from_frank.message.id, &a).await;
    assert!(frank.client.list_conversations().await.unwrap().is_empty());
    let after_frank = alice.send_to_conversation(&group.id, b"frank is gone").await.unwrap();
    assert_ne!(after_frank.encrypted.session_id, welcome.encrypted.session_id, "rotated on removal");
    assert_eq!(frank.decrypt_with_any_session(&after_frank.encrypted.ciphertext), None);
    let expected = [
        line(&alice, "alice in the group"),
        line(&carol, "carol in the group"),
        line(&alice, "welcome, frank"),
        line(&frank, "frank says hi"),
        line(&alice, "frank is gone"),
    ];
    expect_history(&mut carol, &group.id, &expected).await;

    // Deleting others' messages: an admin may in a group, a member may not, nobody may in a
    // direct conversation.
    assert_refused(carol.client.delete_message(&group.id, &from_frank.message.id).await, "NOT_ALLOWED");
    bob.client.delete_message(&group.id, &by_carol.message.id).await.unwrap();
    assert_refused(bob.client.delete_message(&direct.id, &in_direct.message.id).await, "NOT_ALLOWED");

    // Admin back to member: no more managing.
    alice.client.set_member_role(&group.id, &b, MemberRole::Member).await.unwrap();
    assert_refused(bob.client.add_members(&group.id, &[&e]).await, "NOT_ALLOWED");

    // A direct conversation is not a group.
    assert_refused(alice.client.add_members(&direct.id, &[&c]).await, "NOT_A_GROUP");
    assert_refused(alice.client.remove_member(&direct.id, &b).await, "NOT_A_GROUP");
    assert_refused(alice.client.leave_conversation(&direct.id).await, "NOT_A_GROUP");
    assert_refused_with(
        alice.client.set_member_role(&direct.id, &b, MemberRole::Admin).await,
        &["NOT_A_GROUP", "NOT_ALLOWED"],
    );
    assert_eq!(member_ids(&bob.client.get_conversation(&direct.id).await.unwrap()), sorted(&[&a, &b]));

    // Leaving. Alice's second group: Carol from the start, Dave and then Bob added later;
    // Dave is made admin before Bob.
    let team = alice.client.create_group("Leaving", &[&c]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    alice.client.add_members(&team.id, &[&d]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    alice.client.add_members(&team.id, &[&b]).await.unwrap();
    alice.client.set_member_role(&team.id, &d, MemberRole::Admin).await.unwrap();
    alice.client.set_member_role(&team.id, &b, MemberRole::Admin).await.unwrap();

    // The owner leaves: the longest-standing admin (Dave) owns it, not the longer-standing
    // member (Carol).
    alice.client.leave_conversation(&team.id).await.unwrap();
    assert_refused(alice.client.get_conversation(&team.id).await, "CONVERSATION_NOT_FOUND");
    let now = carol.client.get_conversation(&team.id).await.unwrap();
    assert_eq!(
        roles(&now),
        expected_roles(&[
            (&bob, MemberRole::Admin),
            (&carol, MemberRole::Member),
            (&dave, MemberRole::Owner)
        ])
    );
    // Dave leaves: Bob, the admin left.
    dave.client.leave_conversation(&team.id).await.unwrap();
    let now = carol.client.get_conversation(&team.id).await.unwrap();
    assert_eq!(roles(&now), expected_roles(&[(&bob, MemberRole::Owner), (&carol, MemberRole::Member)]));
    // Bob leaves: no admin, so the member Carol.
    bob.client.leave_conversation(&team.id).await.unwrap();
    let now = carol.client.get_conversation(&team.id).await.unwrap();
    assert_eq!(roles(&now), expected_roles(&[(&carol, MemberRole::Owner)]));
    // The last one leaves an empty group behind, which nobody sees.
    carol.client.leave_conversation(&team.id).await.unwrap();
    for who in [&alice, &bob, &carol, &dave] {
        assert_refused(who.client.get_conversation(&team.id).await, "CONVERSATION_NOT_FOUND");
        assert!(!who.client.list_conversations().await.unwrap().iter().any(|c| c.id == team.id));
    }
    // A member who left has no access either.
    expect_no_access(&dave.client, &team.id, &in_group.message.id, &a).await;
}

// ---------------------------------------------------------------------------------------------
// (e): bad input is refused whole

on_both_databases!(bad_input: bad_input_on_sqlite, bad_input_on_postgres);

async fn bad_input(database: Database) {
    let server = start(database).await;
    let mut alice = person(&server, "alice").await;
    let bob = person(&server, "bob").await;
    let carol = person(&server, "carol").await;
    let (a, b, c) =
        (alice.account_id().to_owned(), bob.account_id().to_owned(), carol.account_id().to_owned());
    let direct = alice.client.open_direct(&b).await.unwrap().conversation.unwrap();
    let group = alice.client.create_group("Bad input", &[&b]).await.unwrap();
    let m1 = alice.send_to_conversation(&direct.id, b"first of alice").await.unwrap().message;
    let m2 = alice.send_to_conversation(&direct.id, b"second of alice").await.unwrap().message;
    let g1 = alice.send_to_conversation(&group.id, b"in the group").await.unwrap().message;
    let direct_before = raw_history(&alice.client, &direct.id).await;
    let group_before = raw_history(&alice.client, &group.id).await;
    let listed_before = alice.client.list_conversations().await.unwrap().len();
    // A UUID that is not a UUIDv7 (version 4).
    let v4 = uuid::Builder::from_random_bytes(*Uuid::now_v7().as_bytes()).into_uuid().to_string();

    // OpenDirect.
    assert_refused(alice.client.open_direct(&a).await, "CANNOT_MESSAGE_SELF");
    assert_refused(alice.client.open_direct(&new_id()).await, "ACCOUNT_NOT_FOUND");
    for bad in ["", "bob", &v4] {
        assert_refused(alice.client.open_direct(bad).await, "ID_INVALID");
    }

    // CreateGroup.
    let group_request = |title: &str, members: &[&str], mode: ConversationMode| CreateGroupRequest {
        title: title.to_owned(),
        member_ids: members.iter().map(|s| (*s).to_owned()).collect(),
        mode: mode.into(),
    };
    let unknown = new_id();
    let too_many: Vec<String> = (0..1001).map(|_| new_id()).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    for (request, reason) in [
        (group_request("", &[&b], ConversationMode::Unspecified), "TITLE_INVALID"),
        (group_request(&"x".repeat(101), &[&b], ConversationMode::Unspecified), "TITLE_INVALID"),
        (group_request(&"é".repeat(101), &[&b], ConversationMode::Unspecified), "TITLE_INVALID"),
        (group_request("ok", &[&b, &unknown], ConversationMode::E2ee), "ACCOUNT_NOT_FOUND"),
        (group_request("ok", &[&b, "bob"], ConversationMode::E2ee), "ID_INVALID"),
        (group_request("ok", &[&b, &v4], ConversationMode::E2ee), "ID_INVALID"),
    ] {
        let case =
            format!("CreateGroup {:?}", (request.title.chars().count(), &request.member_ids, request.mode));
        expect_refusal(alice.client.create_group_with(request).await, reason, &case);
    }
    assert_refused(
        alice.client.create_group_with(group_request("ok", &too_many, ConversationMode::E2ee)).await,
        "TOO_MANY_MEMBERS",
    );
    assert_eq!(
        alice.client.list_conversations().await.unwrap().len(),
        listed_before,
        "a refused group was made"
    );
    assert_eq!(bob.client.list_conversations().await.unwrap().len(), 2);

    // Within the limits: 100 characters (not bytes); duplicates and oneself are ignored.
    let long = alice.client.create_group(&"é".repeat(100), &[&b]).await.unwrap();
    assert_eq!(long.title, "é".repeat(100));
    let dupes = alice.client.create_group("Dupes", &[&b, &b, &a]).await.unwrap();
    assert_eq!(roles(&dupes), expected_roles(&[(&alice, MemberRole::Owner), (&bob, MemberRole::Member)]));

    // SendMessage: each refused, nothing stored, no sequence number used.
    let with = |change: &dyn Fn(&mut SendMessageRequest)| {
        let mut request = raw_request(&direct.id, b"opaque ciphertext bytes");
        change(&mut request);
        request
    };
    let too_large_id = new_id();
    let cases: Vec<(SendMessageRequest, &str)> = vec![
        (with(&|r| r.ciphertext.clear()), "MESSAGE_EMPTY"),
        (
            with(&|r| {
                r.ciphertext = vec![7; MAX_CIPHERTEXT + 1];
                r.message_id = too_large_id.clone();
            }),
            "MESSAGE_TOO_LARGE",
        ),
        (with(&|r| r.session_id = vec![b's'; MAX_SESSION_ID + 1]), "SESSION_ID_INVALID"),
        (with(&|r| r.message_id = "not-a-uuid".into()), "ID_INVALID"),
        (with(&|r| r.message_id = String::new()), "ID_INVALID"),
        (with(&|r| r.message_id = v4.clone()), "ID_INVALID"),
        (with(&|r| r.conversation_id = "nope".into()), "ID_INVALID"),
        (with(&|r| r.conversation_id = String::new()), "ID_INVALID"),
        (with(&|r| r.conversation_id = new_id()), "CONVERSATION_NOT_FOUND"),
        (with(&|r| r.reply_to = g1.id.clone()), "REPLY_NOT_FOUND"),
        (with(&|r| r.reply_to = new_id()), "REPLY_NOT_FOUND"),
        (with(&|r| r.reply_to = "x".into()), "ID_INVALID"),
    ];
    for (request, reason) in cases {
        let case = format!(
            "SendMessage {:?}",
            (
                &request.conversation_id,
                &request.message_id,
                request.ciphertext.len(),
                request.session_id.len(),
                &request.reply_to
            )
        );
        expect_refusal(alice.client.send_message(request).await, reason, &case);
    }
    assert_eq!(raw_history(&alice.client, &direct.id).await, direct_before, "a refused send left something");
    assert_eq!(alice.client.get_conversation(&direct.id).await.unwrap().last_seq, 2);

    // The refused id is not taken; the limits themselves are fine.
    let mut request = raw_request(&direct.id, b"now it fits");
    request.message_id = too_large_id.clone();
    assert_eq!(alice.client.send_message(request).await.unwrap().seq, 3);
    let mut request = raw_request(&direct.id, &vec![7; MAX_CIPHERTEXT]);
    request.session_id = vec![b's'; MAX_SESSION_ID];
    request.reply_to = m1.id.clone();
    let largest = alice.client.send_message(request).await.unwrap();
    assert_eq!(
        (largest.seq, largest.ciphertext.len(), largest.reply_to.as_str()),
        (4, MAX_CIPHERTEXT, m1.id.as_str())
    );
    let direct_before = raw_history(&alice.client, &direct.id).await;
    assert_eq!(direct_before.len(), 4);

    // EditMessage and DeleteMessage.
    let edit = |conversation: &str, message: &str, change: &dyn Fn(&mut EditMessageRequest)| {
        let mut request = EditMessageRequest {
            conversation_id: conversation.to_owned(),
            message_id: message.to_owned(),
            ciphertext: b"edited ciphertext".to_vec(),
            session_id: b"an opaque session id".to_vec(),
            content: None,
        };
        change(&mut request);
        request
    };
    for (request, reason) in [
        (edit(&direct.id, &m2.id, &|r| r.ciphertext.clear()), "MESSAGE_EMPTY"),
        (edit(&direct.id, &m2.id, &|r| r.ciphertext = vec![7; MAX_CIPHERTEXT + 1]), "MESSAGE_TOO_LARGE"),
        (edit(&direct.id, &m2.id, &|r| r.session_id = vec![b's'; MAX_SESSION_ID + 1]), "SESSION_ID_INVALID"),
        (edit(&direct.id, &new_id(), &|_| {}), "MESSAGE_NOT_FOUND"),
        (edit(&direct.id, "x", &|_| {}), "ID_INVALID"),
        (edit(&direct.id, &g1.id, &|_| {}), "MESSAGE_NOT_FOUND"),
        (edit(&group.id, &m2.id, &|_| {}), "MESSAGE_NOT_FOUND"),
        (edit("x", &m2.id, &|_| {}), "ID_INVALID"),
    ] {
        let case = format!(
            "EditMessage {:?}",
            (&request.conversation_id, &request.message_id, request.ciphertext.len())
        );
        expect_refusal(alice.client.edit_message(request).await, reason, &case);
    }
    assert_refused(alice.client.delete_message(&direct.id, &new_id()).await, "MESSAGE_NOT_FOUND");
    assert_refused(alice.client.delete_message(&direct.id, &g1.id).await, "MESSAGE_NOT_FOUND");
    assert_refused(alice.client.delete_message(&group.id, &m2.id).await, "MESSAGE_NOT_FOUND");
    assert_refused(alice.client.delete_message(&direct.id, "x").await, "ID_INVALID");

    // Other calls with bad ids or limits.
    assert_refused(alice.client.get_conversation("x").await, "ID_INVALID");
    assert_refused(alice.client.list_messages("x", 0, HistoryDirection::Backward, 10).await, "ID_INVALID");
    assert_refused(
        alice.client.list_messages(&direct.id, 0, HistoryDirection::Forward, 101).await,
        "LIMIT_INVALID",
    );
    assert_refused(alice.client.mark_read("x", 1).await, "ID_INVALID");
    assert_refused(alice.client.mark_read(&direct.id, u64::MAX).await, "SEQ_INVALID");
    assert_refused(
        alice.client.list_messages(&direct.id, u64::MAX, HistoryDirection::Backward, 10).await,
        "SEQ_INVALID",
    );
    let too_many_adds: Vec<String> = (0..1001).map(|_| new_id()).collect();
    let too_many_adds: Vec<&str> = too_many_adds.iter().map(String::as_str).collect();
    assert_refused(alice.client.add_members(&group.id, &too_many_adds).await, "TOO_MANY_MEMBERS");
    assert_refused(alice.client.leave_conversation("x").await, "ID_INVALID");
    assert_refused(alice.client.remove_member(&group.id, "x").await, "ID_INVALID");
    assert_refused(alice.client.add_members(&group.id, &[&c, &new_id()]).await, "ACCOUNT_NOT_FOUND");
    assert_refused(alice.client.add_members(&group.id, &[&c, "x"]).await, "ID_INVALID");
    assert_eq!(member_ids(&alice.client.get_conversation(&group.id).await.unwrap()), sorted(&[&a, &b]));
    assert!(carol.client.list_conversations().await.unwrap().is_empty(), "Carol was half-added");

    // Nothing changed in either conversation.
    assert_eq!(raw_history(&alice.client, &direct.id).await, direct_before);
    assert_eq!(raw_history(&alice.client, &group.id).await, group_before);
    assert_eq!(alice.client.get_conversation(&group.id).await.unwrap().last_seq, 1);
}

// ---------------------------------------------------------------------------------------------
// (f): editing and deleting

on_both_databases!(edit_and_delete: edit_and_delete_on_sqlite, edit_and_delete_on_postgres);

async fn edit_and_delete(database: Database) {
    let server = start(database).await;
    let mut alice = person(&server, "alice").await;
    let mut bob = person(&server, "bob").await;
    let mut carol = person(&server, "carol").await;
    let direct = alice.client.open_direct(bob.account_id()).await.unwrap().conversation.unwrap();

    let to_edit = alice.send_to_conversation(&direct.id, b"before the edit").await.unwrap();
    let to_delete = alice.send_to_conversation(&direct.id, b"to be deleted").await.unwrap();
    let stays = bob.send_to_conversation(&direct.id, b"bob's message stays").await.unwrap();
    // The database rows hold the ciphertexts (so the scan below can see their absence).
    let ciphertexts: [&[u8]; 2] = [&to_delete.encrypted.ciphertext, &stays.encrypted.ciphertext];
    let found = scan_database_rows(&server, &ciphertexts).await.unwrap();
    assert_eq!(found.iter().map(|f| f.needle).collect::<HashSet<_>>().len(), 2, "{}", list(&found));

    // Alice edits her message; it keeps its place.
    let (encrypted, edited) =
        alice.edit_in_conversation(&direct.id, &to_edit.message.id, b"after the edit").await.unwrap();
    let edited = edited.unwrap();
    assert_eq!(
        (edited.id.as_str(), edited.seq, edited.sent_at_ms),
        (to_edit.message.id.as_str(), 1, to_edit.message.sent_at_ms)
    );
    assert!(edited.edited_at_ms >= edited.sent_at_ms && edited.edited_at_ms > 0, "{edited:?}");
    assert_eq!(
        (edited.ciphertext.as_slice(), edited.session_id.as_slice()),
        (encrypted.ciphertext.as_slice(), encrypted.session_id.as_bytes())
    );
    assert_eq!(edited.deleted_at_ms, 0);

    // Bob may neither edit nor delete Alice's messages.
    let (_, refused) =
        bob.edit_in_conversation(&direct.id, &to_edit.message.id, b"bob's words").await.unwrap();
    assert_refused(refused, "NOT_ALLOWED");
    assert_refused(bob.client.delete_message(&direct.id, &to_delete.message.id).await, "NOT_ALLOWED");

    // Alice deletes one: the ciphertext goes, the place stays. Twice is fine.
    let deleted = alice.client.delete_message(&direct.id, &to_delete.message.id).await.unwrap();
    assert_eq!((deleted.seq, deleted.ciphertext.len()), (2, 0));
    assert!(deleted.deleted_at_ms > 0, "{deleted:?}");
    let again = alice.client.delete_message(&direct.id, &to_delete.message.id).await.unwrap();
    assert_eq!((again.seq, again.ciphertext.len()), (2, 0));
    assert!(again.deleted_at_ms > 0, "{again:?}");
    let (_, refused) =
        alice.edit_in_conversation(&direct.id, &to_delete.message.id, b"back again?").await.unwrap();
    assert_refused(refused, "MESSAGE_DELETED");
    assert_refused(alice.client.delete_message(&direct.id, &new_id()).await, "MESSAGE_NOT_FOUND");

    let expected =
        [line(&alice, "after the edit"), line(&alice, "<deleted>"), line(&bob, "bob's message stays")];
    for device in [&mut alice, &mut bob] {
        expect_history(device, &direct.id, &expected).await;
    }
    let history = raw_history(&bob.client, &direct.id).await;
    assert!(history[0].edited_at_ms > 0 && history[1].deleted_at_ms > 0, "{history:?}");
    assert!(history[1].ciphertext.is_empty());
    assert_eq!(bob.client.get_conversation(&direct.id).await.unwrap().last_seq, 3);

    // The deleted ciphertext is gone from the database; the other one is still there.
    let found = scan_database_rows(&server, &ciphertexts).await.unwrap();
    let needles: Vec<usize> = found.iter().map(|f| f.needle).collect();
    assert_eq!(needles, [1], "deleted ciphertext still in the database: {}", list(&found));

    // In a group, the owner and admins may delete anyone's message; members only their own;
    // nobody edits another's.
    let group =
        alice.client.create_group("Moderated", &[bob.account_id(), carol.account_id()]).await.unwrap();
    alice.client.set_member_role(&group.id, bob.account_id(), MemberRole::Admin).await.unwrap();
    let c1 = carol.send_to_conversation(&group.id, b"carol one").await.unwrap();
    let b1 = bob.send_to_conversation(&group.id, b"bob one").await.unwrap();
    let c2 = carol.send_to_conversation(&group.id, b"carol two").await.unwrap();
    let a1 = alice.send_to_conversation(&group.id, b"alice one").await.unwrap();
    let c3 = carol.send_to_conversation(&group.id, b"carol deletes her own").await.unwrap();
    assert_refused(carol.client.delete_message(&group.id, &b1.message.id).await, "NOT_ALLOWED");
    assert_refused(carol.client.delete_message(&group.id, &a1.message.id).await, "NOT_ALLOWED");
    bob.client.delete_message(&group.id, &c1.message.id).await.unwrap();
    alice.client.delete_message(&group.id, &c2.message.id).await.unwrap();
    carol.client.delete_message(&group.id, &c3.message.id).await.unwrap();
    for (editor, message) in [(&mut bob, &a1), (&mut alice, &b1), (&mut carol, &b1)] {
        let (_, refused) =
            editor.edit_in_conversation(&group.id, &message.message.id, b"not yours").await.unwrap();
        assert_refused(refused, "NOT_ALLOWED");
    }
    let expected = [
        line(&carol, "<deleted>"),
        line(&bob, "bob one"),
        line(&carol, "<deleted>"),
        line(&alice, "alice one"),
        line(&carol, "<deleted>"),
    ];
    expect_history(&mut carol, &group.id, &expected).await;
    let gone: [&[u8]; 3] = [&c1.encrypted.ciphertext, &c2.encrypted.ciphertext, &c3.encrypted.ciphertext];
    let found = scan_database_rows(&server, &gone).await.unwrap();
    assert!(found.is_empty(), "deleted ciphertexts still in the database: {}", list(&found));
}

// ---------------------------------------------------------------------------------------------
// (g): unread counts follow the person across devices

on_both_databases!(unread_counts: unread_counts_on_sqlite, unread_counts_on_postgres);

async fn unread_counts(database: Database) {
    let server = start(database).await;
    let mut laptop = person(&server, "alice").await;
    let mut phone = another_device(&server, &laptop, "alice", "Phone").await;
    let mut bob = person(&server, "bob").await;
    let alice_id = laptop.account_id().to_owned();
    let direct = laptop.client.open_direct(bob.account_id()).await.unwrap().conversation.unwrap();
    assert_eq!(direct.unread_count, 0);

    for text in ["bob 1", "bob 2", "bob 3"] {
        bob.send_to_conversation(&direct.id, text.as_bytes()).await.unwrap();
    }
    assert_eq!((unread(&laptop.client, &direct.id).await, unread(&phone.client, &direct.id).await), (3, 3));
    assert_eq!(unread(&bob.client, &direct.id).await, 0, "one's own messages are not unread");

    // Read up to 2 on the laptop: the phone shows 1 unread too.
    let read = laptop.client.mark_read(&direct.id, 2).await.unwrap();
    assert_eq!((read.read_seq, read.unread_count), (2, 1));
    assert_eq!(unread(&phone.client, &direct.id).await, 1);
    let seen = phone.client.get_conversation(&direct.id).await.unwrap();
    let alice_member = seen.members.iter().find(|m| m.account_id == alice_id).unwrap();
    assert_eq!((alice_member.read_seq, seen.unread_count), (2, 1));

    // Never backwards; never past the newest message (docs/conversations.md).
    for (seq, read_seq, unread_count) in [(1, 2, 1), (0, 2, 1), (2, 2, 1), (3, 3, 0)] {
        let read = phone.client.mark_read(&direct.id, seq).await.unwrap();
        assert_eq!((read.read_seq, read.unread_count), (read_seq, unread_count), "MarkRead({seq})");
    }
    assert_refused(phone.client.mark_read(&direct.id, 1000).await, "SEQ_IN_FUTURE");
    assert_eq!(unread(&laptop.client, &direct.id).await, 0);

    // Alice's own message is not unread for her; it is for Bob.
    phone.send_to_conversation(&direct.id, b"alice 4").await.unwrap();
    assert_eq!(unread(&laptop.client, &direct.id).await, 0);
    assert_eq!(unread(&bob.client, &direct.id).await, 1);
    // A deleted message is not unread.
    bob.send_to_conversation(&direct.id, b"bob 5").await.unwrap();
    let oops = bob.send_to_conversation(&direct.id, b"bob 6, deleted").await.unwrap();
    assert_eq!(unread(&phone.client, &direct.id).await, 2);
    bob.client.delete_message(&direct.id, &oops.message.id).await.unwrap();
    assert_eq!((unread(&phone.client, &direct.id).await, unread(&laptop.client, &direct.id).await), (1, 1));
    let read = bob.client.mark_read(&direct.id, 6).await.unwrap();
    assert_eq!((read.read_seq, read.unread_count), (6, 0));

    // Counts are per conversation; the list is most recently active first.
    let group = bob.client.create_group("Unread", &[&alice_id]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    bob.send_to_conversation(&group.id, b"group 1").await.unwrap();
    bob.send_to_conversation(&group.id, b"group 2").await.unwrap();
    let listed = phone.client.list_conversations().await.unwrap();
    let summary: Vec<(&str, u32)> = listed.iter().map(|c| (c.id.as_str(), c.unread_count)).collect();
    assert_eq!(summary, [(group.id.as_str(), 2), (direct.id.as_str(), 1)]);
    assert!(listed[0].last_activity_at_ms >= listed[1].last_activity_at_ms, "{listed:?}");
    laptop.client.mark_read(&group.id, 2).await.unwrap();
    assert_eq!((unread(&phone.client, &group.id).await, unread(&phone.client, &direct.id).await), (0, 1));

    tokio::time::sleep(Duration::from_millis(20)).await;
    laptop.send_to_conversation(&direct.id, b"alice 7").await.unwrap();
    let listed = bob.client.list_conversations().await.unwrap();
    let order: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(order, [direct.id.as_str(), group.id.as_str()]);
    assert!(listed[0].last_activity_at_ms > listed[1].last_activity_at_ms, "{listed:?}");
    assert_eq!(listed.iter().map(|c| c.unread_count).collect::<Vec<_>>(), [1, 0]);

    // The messages themselves read the same on every device.
    let expected = [
        line(&bob, "bob 1"),
        line(&bob, "bob 2"),
        line(&bob, "bob 3"),
        line(&phone, "alice 4"),
        line(&bob, "bob 5"),
        line(&bob, "<deleted>"),
        line(&laptop, "alice 7"),
    ];
    for device in [&mut laptop, &mut phone, &mut bob] {
        expect_history(device, &direct.id, &expected).await;
    }
}

// ---------------------------------------------------------------------------------------------
// A device rebuilt from its records

/// A device's protocol machine writes its records after every step; a device rebuilt from
/// them (an app restarted) keeps its keys, its Olm and Megolm sessions and its replay record:
/// it reads what came before and after, and its messages read on the other side.
#[tokio::test]
async fn a_restored_device_keeps_reading_and_sending() {
    let server = start(Database::Sqlite).await;
    let mut alice = person(&server, "alice").await;
    let mut bob = person(&server, "bob").await;
    let direct = alice.client.open_direct(bob.account_id()).await.unwrap().conversation.unwrap();
    bob.client.accept_request(&direct.id).await.unwrap();
    let mut expected = Vec::new();
    say(&mut alice, &direct.id, "before bob restarts", &mut expected).await;
    say(&mut bob, &direct.id, "bob, before restarting", &mut expected).await;
    expect_history(&mut bob, &direct.id, &expected).await;

    // Bob's app restarts: a new device value from the records alone (a wrong pickle key opens
    // nothing).
    let (pickle_key, records) = bob.snapshot();
    assert!(!records.is_empty());
    let wrong = kitsulan_crypto::PickleKey::generate(&mut kitsulan_crypto::OsRng::new());
    assert!(E2eeDevice::restore(bob.client.clone(), wrong, records.clone()).is_err());
    let session_before = bob.conversation_session_id(&direct.id).unwrap();
    let mut bob = E2eeDevice::restore(bob.client.clone(), pickle_key, records).unwrap();
    assert_eq!(bob.conversation_session_id(&direct.id).unwrap(), session_before, "the outbound session");

    // It reads the history as before (the same session indexes under the same ids are no
    // replay), then what Alice sends on the same session, and sends on its own.
    expect_history(&mut bob, &direct.id, &expected).await;
    say(&mut alice, &direct.id, "after bob restarted", &mut expected).await;
    say(&mut bob, &direct.id, "bob, restarted", &mut expected).await;
    expect_history(&mut bob, &direct.id, &expected).await;
    expect_history(&mut alice, &direct.id, &expected).await;
    assert_eq!(bob.undecryptable(), 0, "{:?}", bob.undecryptable_reasons());
    assert_eq!(alice.undecryptable(), 0, "{:?}", alice.undecryptable_reasons());
}
