//! Cloud conversations (docs/conversations.md, "Cloud conversations") from outside, as people
//! rely on them: history on a brand-new device that has no keys at all, search that finds an
//! inflected word, an E2EE conversation beside it whose words never reach the server, reactions,
//! pins and mentions live on the other side, and disappearing messages gone from the server and
//! from the devices after their timer. Each refusal is written as the attack it stops: plaintext
//! pushed into an E2EE conversation, a flood of reactions or pins, search syntax and huge
//! queries, a plain member changing a group's timer, an outsider searching or reacting.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::time::Duration;

use kitsulan_client::people::{
    PASSWORD, account_id, cloud_text, cloud_text_of, online, person, start, start_with,
};
use kitsulan_client::scan::{scan_database_rows, scan_for_plaintexts};
use kitsulan_client::{Client, Database, Options, TestServer, assert_refused};
use kitsulan_crypto::content::proto::{Mention, TextContent, content::Body};
use kitsulan_proto::v1::{
    ConversationMode, DeletedAccountMessages, HistoryDirection, MessageChange, SearchMessagesRequest,
    SystemEventKind,
};

const WAIT: Duration = Duration::from_secs(10);

async fn plain(server: &TestServer, username: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap();
    client.sign_up(username, PASSWORD).await.unwrap_or_else(|e| panic!("SignUp of {username}: {e:?}"));
    client
}

async fn new_device(server: &TestServer, username: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap();
    client.sign_in(username, PASSWORD).await.unwrap_or_else(|e| panic!("SignIn of {username}: {e:?}"));
    client
}

async fn cloud_history_search_and_an_e2ee_neighbour(database: Database) {
    let server = start(database).await;
    // Alice and Bob have an E2EE group too: its words must never reach the server.
    let mut alice_e2ee = person(&server, "alice").await;
    let alice = &alice_e2ee.client.clone();
    let bob = plain(&server, "bob").await;
    let (a, b) = (account_id(alice), account_id(&bob));
    let group = alice.create_cloud_group("LAN party", &[&b]).await.unwrap();
    assert_eq!(group.mode(), ConversationMode::Cloud);
    bob.accept_request(&group.id).await.unwrap();
    let secret_group = alice_e2ee.client.create_group("Secrets", &[]).await.unwrap();
    alice_e2ee.refresh_conversation(&secret_group.id).await.unwrap();
    let secret = "the e2ee passphrase is correct horse";
    alice_e2ee.send_to_conversation(&secret_group.id, secret.as_bytes()).await.unwrap();

    let lines =
        ["Кто принёс кошку на турнир?", "Bob is running the Quake server tonight", "Пицца будет в восемь"];
    let mut sent = Vec::new();
    for line in lines {
        sent.push(alice.send_message(cloud_text(&group.id, line)).await.unwrap());
    }
    // A retried send is the same message.
    let mut again = cloud_text(&group.id, lines[0]);
    again.message_id = sent[0].id.clone();
    assert_eq!(alice.send_message(again).await.unwrap().seq, sent[0].seq);

    // Bob on a brand-new device (no keys uploaded, nothing decrypted ever) reads it all at once.
    let bob_phone = new_device(&server, "bob").await;
    let history = bob_phone.all_messages(&group.id, HistoryDirection::Forward, 100).await.unwrap();
    let texts: Vec<String> = history.iter().filter(|m| m.system.is_none()).map(cloud_text_of).collect();
    assert_eq!(texts, lines);
    assert!(history.iter().all(|m| m.ciphertext.is_empty()));

    // Search: an inflected Russian form and an English one, with snippets and highlights.
    let found = bob_phone.search_messages("кошками", "").await.unwrap();
    assert_eq!(found.hits.len(), 1, "{found:?}");
    let hit = &found.hits[0];
    assert_eq!(hit.message.as_ref().unwrap().id, sent[0].id);
    let snippet: Vec<u16> = hit.snippet.encode_utf16().collect();
    let marked =
        String::from_utf16(&snippet[hit.highlights[0].start as usize..hit.highlights[0].end as usize])
            .unwrap();
    assert_eq!(marked, "кошку");
    let found = bob_phone.search_messages("runs", &group.id).await.unwrap();
    assert_eq!(
        found.hits.iter().map(|h| h.message.as_ref().unwrap().id.clone()).collect::<Vec<_>>(),
        [sent[1].id.clone()]
    );
    // The E2EE group is never searched: the server has no words of it.
    assert!(alice.search_messages("passphrase", "").await.unwrap().hits.is_empty());

    // Attacks on search: syntax is words, a huge query is refused, nothing errors out of the
    // database; an outsider finds nothing and cannot name the conversation.
    for odd in ["\"кошку", "кошку OR *", "NEAR(Bob Quake)", "'; DROP TABLE messages; --", "col:^x*"]
    {
        alice.search_messages(odd, "").await.unwrap();
    }
    assert_refused(alice.search_messages(&"кошка ".repeat(60), "").await, "SEARCH_QUERY_INVALID");
    assert_refused(alice.search_messages("*** ()", "").await, "SEARCH_QUERY_INVALID");
    let eve = plain(&server, "eve").await;
    assert!(eve.search_messages("кошка", "").await.unwrap().hits.is_empty());
    assert_refused(eve.search_messages("кошка", &group.id).await, "CONVERSATION_NOT_FOUND");
    let page = SearchMessagesRequest { query: "server".into(), limit: 51, ..Default::default() };
    assert_refused(
        alice.conversations().search_messages(page).await.map(|r| r.into_inner()),
        "LIMIT_INVALID",
    );

    // Attacks on the kind: plaintext into the E2EE group is refused and stored nowhere;
    // ciphertext into the cloud group too.
    let leak = "this must never be stored anywhere";
    assert_refused(alice.send_message(cloud_text(&secret_group.id, leak)).await, "WRONG_MODE");
    assert_refused(
        alice.send_message(kitsulan_client::people::opaque(&group.id, "opaque bytes here")).await,
        "WRONG_MODE",
    );

    // The server's files: the E2EE words nowhere (database, WAL, free pages, data dir); the
    // cloud words present, and only in cloud rows.
    let found = scan_for_plaintexts(&server, &[secret.as_bytes(), leak.as_bytes()]).await.unwrap();
    assert!(found.is_empty(), "E2EE plaintext on the server: {found:?}");
    let found = scan_database_rows(&server, &[lines[1].as_bytes()]).await.unwrap();
    assert!(!found.is_empty(), "the scan sees cloud content the server must hold");
    assert!(
        found
            .iter()
            .all(|f| f.place.starts_with("messages.content") || f.place.starts_with("messages.search_text")),
        "cloud words outside cloud rows: {found:?}"
    );
    let _ = a;
}

on_both_databases!(cloud_history_search_and_an_e2ee_neighbour: cloud_history_on_sqlite, cloud_history_on_postgres);

async fn reactions_pins_and_mentions_reach_the_others(database: Database) {
    let server = start(database).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let carol = plain(&server, "carol").await;
    let (b, c) = (account_id(&bob), account_id(&carol));
    let group = alice.create_cloud_group("Team", &[&b, &c]).await.unwrap();
    bob.accept_request(&group.id).await.unwrap();
    carol.accept_request(&group.id).await.unwrap();
    let mut bob_in = online(&server, &bob, "bob").await;

    // A mention of Bob: his mention count, apart from unread.
    let mut mention = cloud_text(&group.id, "@bob bring the switch");
    if let Some(Body::Text(TextContent { mentions, .. })) =
        mention.content.as_mut().and_then(|c| c.body.as_mut())
    {
        mentions.push(Mention { account_id: b.clone(), start: 0, end: 4 });
    }
    let hello = alice.send_message(mention).await.unwrap();
    alice.send_message(cloud_text(&group.id, "and cables")).await.unwrap();
    let seen = bob.get_conversation(&group.id).await.unwrap();
    assert_eq!((seen.unread_count, seen.mention_count), (2, 1));
    assert_eq!(carol.get_conversation(&group.id).await.unwrap().mention_count, 0);
    // A mention of someone outside the group is refused.
    let mut stranger = cloud_text(&group.id, "@eve hi");
    if let Some(Body::Text(TextContent { mentions, .. })) =
        stranger.content.as_mut().and_then(|c| c.body.as_mut())
    {
        mentions.push(Mention { account_id: uuid::Uuid::now_v7().to_string(), start: 0, end: 4 });
    }
    assert_refused(alice.send_message(stranger).await, "CONTENT_INVALID");
    // Oversized or malformed content, each refused and nothing stored.
    let before = alice.all_messages(&group.id, HistoryDirection::Forward, 100).await.unwrap().len();
    let long = cloud_text(&group.id, &"ж".repeat(16_001));
    let mut flood = cloud_text(&group.id, "@everyone");
    text_of(&mut flood).mentions =
        (0..51).map(|_| Mention { account_id: b.clone(), start: 0, end: 1 }).collect();
    let mut outside = cloud_text(&group.id, "hi");
    text_of(&mut outside).mentions = vec![Mention { account_id: b.clone(), start: 0, end: 9 }];
    let mut quote = cloud_text(&group.id, "quoting");
    quote.reply_to = hello.id.clone();
    quote.content.as_mut().unwrap().reply = Some(kitsulan_crypto::content::proto::Reply {
        message_id: hello.id.clone(),
        quote: "q".repeat(1_001),
    });
    let mut elsewhere = cloud_text(&group.id, "answers another");
    elsewhere.content.as_mut().unwrap().reply =
        Some(kitsulan_crypto::content::proto::Reply { message_id: hello.id.clone(), quote: String::new() });
    let empty = cloud_text(&group.id, "   ");
    let mut none = cloud_text(&group.id, "x");
    none.content.as_mut().unwrap().body = None;
    let mut both = cloud_text(&group.id, "and ciphertext");
    both.ciphertext = b"opaque bytes".to_vec();
    for (what, request) in [
        ("16,001 characters", long),
        ("51 mentions", flood),
        ("a mention past the text", outside),
        ("a 1,001-character quote", quote),
        ("a reply that is not reply_to", elsewhere),
        ("blank text", empty),
        ("no body", none),
        ("content and ciphertext", both),
    ] {
        let status = alice.send_message(request).await.expect_err(what);
        assert_eq!(
            kitsulan_client::client::reason(&status).as_deref(),
            Some("CONTENT_INVALID"),
            "{what}: {status:?}"
        );
    }
    assert_eq!(alice.all_messages(&group.id, HistoryDirection::Forward, 100).await.unwrap().len(), before);

    // Reactions: counted, named, live on Bob's side; limited per person; one emoji each.
    alice.react(&group.id, &hello.id, "🎉", false).await.unwrap();
    let reacted = carol.react(&group.id, &hello.id, "🎉", false).await.unwrap();
    assert_eq!(reacted.reactions.len(), 1);
    assert_eq!(reacted.reactions[0].count, 2);
    bob_in
        .until(WAIT, "the reactions", |i| {
            i.message(&hello.id).is_some_and(|m| m.reactions.first().is_some_and(|r| r.count == 2))
        })
        .await
        .unwrap();
    for bad in ["", "ab", "🎉🎉", "🎉 ", &"👍".repeat(20)] {
        assert_refused(alice.react(&group.id, &hello.id, bad, false).await, "REACTION_INVALID");
    }
    let emoji: Vec<String> = ('😀'..).take(21).map(String::from).collect();
    for e in &emoji[..19] {
        alice.react(&group.id, &hello.id, e, false).await.unwrap();
    }
    assert_refused(alice.react(&group.id, &hello.id, &emoji[19], false).await, "TOO_MANY_REACTIONS");
    let outsider = plain(&server, "eve").await;
    assert_refused(outsider.react(&group.id, &hello.id, "🎉", false).await, "CONVERSATION_NOT_FOUND");

    // Pins: owners and admins in a group; listed; live on Bob's side; at most 50.
    assert_refused(bob.pin_message(&group.id, &hello.id, true).await, "NOT_ALLOWED");
    alice.pin_message(&group.id, &hello.id, true).await.unwrap();
    bob_in
        .until(WAIT, "the pin", |i| i.message(&hello.id).is_some_and(|m| m.pinned_at_ms > 0))
        .await
        .unwrap();
    assert_eq!(
        bob.list_pins(&group.id).await.unwrap().iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [hello.id.as_str()]
    );
    for i in 0..49 {
        let m = alice.send_message(cloud_text(&group.id, &format!("pin me {i}"))).await.unwrap();
        alice.pin_message(&group.id, &m.id, true).await.unwrap();
    }
    let one_more = alice.send_message(cloud_text(&group.id, "one too many")).await.unwrap();
    assert_refused(alice.pin_message(&group.id, &one_more.id, true).await, "TOO_MANY_PINS");
    // E2EE conversations have reactions inside the encryption, never on the server.
    let direct = alice.open_direct(&b).await.unwrap().conversation.unwrap();
    let opaque =
        alice.send_message(kitsulan_client::people::opaque(&direct.id, "opaque ciphertext")).await.unwrap();
    assert_refused(alice.react(&direct.id, &opaque.id, "🎉", false).await, "WRONG_MODE");
    // …but pins hold only ids, so they work there, for any member of a direct conversation.
    bob.accept_request(&direct.id).await.ok();
    bob.pin_message(&direct.id, &opaque.id, true).await.unwrap();
}

on_both_databases!(reactions_pins_and_mentions_reach_the_others: reactions_pins_mentions_on_sqlite, reactions_pins_mentions_on_postgres);

async fn disappearing_messages_leave_the_server_and_the_devices(database: Database) {
    let server = start(database).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let carol = plain(&server, "carol").await;
    let (b, c) = (account_id(&bob), account_id(&carol));
    let group = alice.create_cloud_group("Ephemeral", &[&b, &c]).await.unwrap();
    bob.accept_request(&group.id).await.unwrap();
    carol.accept_request(&group.id).await.unwrap();
    // Only owners and admins set a group's timer; it is bounded.
    assert_refused(bob.set_message_timer(&group.id, 3600).await, "NOT_ALLOWED");
    for bad in [1, 29, 365 * 24 * 3600 + 1] {
        assert_refused(alice.set_message_timer(&group.id, bad).await, "TIMER_INVALID");
    }
    let set = alice.set_message_timer(&group.id, 30).await.unwrap();
    assert_eq!(set.message_timer_seconds, 30);
    let mut bob_in = online(&server, &bob, "bob").await;
    let gone = "this message will self-destruct in thirty seconds";
    let m = alice.send_message(cloud_text(&group.id, gone)).await.unwrap();
    assert_eq!(m.expires_at_ms, m.sent_at_ms + 30_000);
    // The timer change is a line in the history, and the header's value for everyone.
    let history = bob.all_messages(&group.id, HistoryDirection::Forward, 100).await.unwrap();
    let line = history
        .iter()
        .find(|m| m.system.as_ref().is_some_and(|s| s.kind() == SystemEventKind::TimerChanged))
        .unwrap();
    assert_eq!(line.system.as_ref().unwrap().timer_seconds, 30);
    assert_eq!(carol.get_conversation(&group.id).await.unwrap().message_timer_seconds, 30);
    assert!(!bob.search_messages("self-destruct", "").await.unwrap().hits.is_empty());

    // After the timer: deleted on Bob's device (a live deletion), in every history, in search,
    // and in the database's rows.
    bob_in
        .until(Duration::from_secs(45), "the message to disappear", |i| {
            i.changes().iter().any(|(change, msg)| *change == MessageChange::Deleted && msg.id == m.id)
        })
        .await
        .unwrap();
    let tombstone = carol
        .all_messages(&group.id, HistoryDirection::Forward, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.id == m.id)
        .unwrap();
    assert!(tombstone.content.is_none() && tombstone.deleted_at_ms > 0, "{tombstone:?}");
    assert!(bob.search_messages("self-destruct", "").await.unwrap().hits.is_empty());
    let found = scan_database_rows(&server, &[gone.as_bytes()]).await.unwrap();
    assert!(found.is_empty(), "an expired message is still in the database: {found:?}");
    // Turned off, messages stay.
    alice.set_message_timer(&group.id, 0).await.unwrap();
    let kept = alice.send_message(cloud_text(&group.id, "this one stays")).await.unwrap();
    assert_eq!(kept.expires_at_ms, 0);
}

on_both_databases!(disappearing_messages_leave_the_server_and_the_devices: disappearing_on_sqlite, disappearing_on_postgres);

async fn a_person_exports_and_deletes_their_account(database: Database) {
    let server = start(database).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let b = account_id(&bob);
    let group = alice.create_cloud_group("Our party", &[&b]).await.unwrap();
    bob.accept_request(&group.id).await.unwrap();
    let secret_group = alice.create_group("E2EE", &[&b]).await.unwrap();
    alice
        .send_message(kitsulan_client::people::opaque(&secret_group.id, "opaque ciphertext bytes"))
        .await
        .unwrap();
    let said = alice.send_message(cloud_text(&group.id, "Алиса принесла роутер")).await.unwrap();
    bob.send_message(cloud_text(&group.id, "Bob thanks Alice")).await.unwrap();

    // The export: one JSON document with the profile, the devices, both conversations, and the
    // cloud messages (E2EE ones are ciphertext: not in it); no password hash.
    let text = alice.export_account().await.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["account"]["username"], "alice");
    assert_eq!(doc["devices"].as_array().unwrap().len(), 1);
    let conversations = doc["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 2);
    let cloud = conversations.iter().find(|c| c["mode"] == "cloud").unwrap();
    let texts: Vec<&str> =
        cloud["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["Алиса принесла роутер", "Bob thanks Alice"]);
    let e2ee = conversations.iter().find(|c| c["mode"] == "e2ee").unwrap();
    assert!(e2ee["messages"].as_array().unwrap().is_empty());
    assert!(!text.contains("argon2"), "no password hash in an export");
    // A flood of exports: three an hour.
    alice.export_account().await.unwrap();
    alice.export_account().await.unwrap();
    assert_refused(alice.export_account().await, "RATE_LIMITED");

    // Deleting: a thief with the token but not the password cannot; the owner can.
    assert_refused(alice.delete_account("not the password", "").await, "PASSWORD_REQUIRED");
    let mut bob_in = online(&server, &bob, "bob").await;
    let done = alice.delete_account(PASSWORD, "").await.unwrap();
    assert_eq!((done.conversations_left, done.messages_deleted), (2, 0));
    assert_refused(alice.get_conversation(&group.id).await, "SESSION_INVALID");
    // Bob's group passed to him, with the line that says Alice left, live.
    bob_in
        .until(WAIT, "Alice leaving", |i| {
            i.messages_in(&group.id)
                .iter()
                .any(|m| m.system.as_ref().is_some_and(|s| s.kind() == SystemEventKind::MemberLeft))
        })
        .await
        .unwrap();
    let now = bob.get_conversation(&group.id).await.unwrap();
    assert_eq!(now.members.len(), 1);
    // Anonymised by default: her message stays, from an account that is gone.
    let kept = bob.all_messages(&group.id, HistoryDirection::Forward, 100).await.unwrap();
    assert!(kept.iter().any(|m| m.id == said.id && cloud_text_of(m) == "Алиса принесла роутер"));
    assert!(bob.profile(&said.sender_account_id).await.is_err(), "no profile of a deleted account");
    // The name is free again.
    plain(&server, "alice").await;
}

on_both_databases!(a_person_exports_and_deletes_their_account: export_and_delete_on_sqlite, export_and_delete_on_postgres);

/// An admin who must not keep a deleted person's words (KITSULAN_DELETED_ACCOUNT_MESSAGES=delete)
/// and keeps messages 30 days: the server tells apps both before anyone signs in (the PWA says
/// them where people delete their account), and a deletion takes the messages' content with it.
async fn the_admin_s_deletion_and_retention_choices_are_told_and_kept(database: Database) {
    let server = start_with(
        Options::new(database)
            .env("KITSULAN_DELETED_ACCOUNT_MESSAGES", "delete")
            .env("KITSULAN_RETENTION_DAYS", "30"),
    )
    .await;
    let stranger = Client::connect(&server.url()).await.unwrap();
    let info = stranger.server_info().await.unwrap();
    assert_eq!(info.retention_days, 30);
    assert_eq!(info.deleted_account_messages(), DeletedAccountMessages::Delete);

    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let group = alice.create_cloud_group("Short memory", &[&account_id(&bob)]).await.unwrap();
    bob.accept_request(&group.id).await.unwrap();
    let said = alice.send_message(cloud_text(&group.id, "забудьте эти слова")).await.unwrap();
    let done = alice.delete_account(PASSWORD, "").await.unwrap();
    assert_eq!(done.messages_deleted, 1);
    let left = bob.all_messages(&group.id, HistoryDirection::Forward, 100).await.unwrap();
    let gone = left.iter().find(|m| m.id == said.id).expect("a tombstone stays");
    assert!(gone.content.is_none() && gone.deleted_at_ms > 0, "deleted with the account: {gone:?}");
    let found = bob.search_messages("слово", "").await.unwrap();
    assert!(found.hits.is_empty(), "a deleted account's words are still found: {found:?}");
}

on_both_databases!(
    the_admin_s_deletion_and_retention_choices_are_told_and_kept: admin_choices_on_sqlite,
    admin_choices_on_postgres
);

/// The text of a cloud message request made by `cloud_text`.
fn text_of(request: &mut kitsulan_proto::v1::SendMessageRequest) -> &mut TextContent {
    match request.content.as_mut().and_then(|c| c.body.as_mut()) {
        Some(Body::Text(t)) => t,
        _ => unreachable!("cloud_text makes a text"),
    }
}
