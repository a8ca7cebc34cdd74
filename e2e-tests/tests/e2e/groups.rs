//! Group management from outside (docs/conversations.md, "System entries"): renaming a group,
//! and the system entries the server writes into a group's history when it is renamed, a role
//! changes, or a member is added, removed or leaves. Checked as a person relies on it: every
//! member sees the same lines in order, live and in `ListMessages` (also a member who joins
//! later), they are not unread and cannot be edited or deleted, and every refusal is written as
//! the attack it stops (a plain member or an outsider renaming, bad titles, a removed member
//! posting or reading on).

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::time::Duration;

use kitsulan_client::people::{PASSWORD, account_id, online, opaque, start};
use kitsulan_client::{Client, Database, TestServer, assert_refused};
use kitsulan_proto::v1::{EditMessageRequest, HistoryDirection, MemberRole, Message, SystemEventKind, event};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

async fn plain(server: &TestServer, username: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap();
    client.sign_up(username, PASSWORD).await.unwrap_or_else(|e| panic!("SignUp of {username}: {e:?}"));
    client
}

/// A line of history: (seq, kind or None for a message, actor, target, role, title).
type Entry = (u64, Option<SystemEventKind>, String, String, MemberRole, String);

fn entry(m: &Message) -> Entry {
    match &m.system {
        Some(s) => {
            assert!(
                m.ciphertext.is_empty() && m.session_id.is_empty(),
                "a system entry has no ciphertext: {m:?}"
            );
            assert_eq!(m.sender_device_id, Uuid::nil().to_string(), "no device wrote it");
            assert_eq!(s.actor_account_id, m.sender_account_id);
            (
                m.seq,
                Some(s.kind()),
                s.actor_account_id.clone(),
                s.target_account_id.clone(),
                s.role(),
                s.title.clone(),
            )
        }
        None => {
            (m.seq, None, m.sender_account_id.clone(), String::new(), MemberRole::Unspecified, String::new())
        }
    }
}

fn sys(seq: u64, kind: SystemEventKind, actor: &str, target: &str, role: MemberRole, title: &str) -> Entry {
    (seq, Some(kind), actor.to_owned(), target.to_owned(), role, title.to_owned())
}

async fn history(client: &Client, conversation_id: &str) -> Vec<Entry> {
    let all = client.all_messages(conversation_id, HistoryDirection::Forward, 3).await.unwrap();
    all.iter().map(entry).collect()
}

async fn group_management_writes_system_entries(database: Database) {
    let server = start(database).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let carol = plain(&server, "carol").await;
    let dave = plain(&server, "dave").await;
    let (a, b, c, d) = (account_id(&alice), account_id(&bob), account_id(&carol), account_id(&dave));
    let group = alice.create_group("Team", &[&b, &c]).await.unwrap();
    bob.accept_request(&group.id).await.unwrap();
    carol.accept_request(&group.id).await.unwrap();
    let direct = alice.open_direct(&b).await.unwrap().conversation.unwrap();
    let mut bob_in = online(&server, &bob, "bob").await;
    let mut carol_in = online(&server, &carol, "carol").await;
    let hello = alice.send_message(opaque(&group.id, "hello")).await.unwrap();

    // Attacks on RenameGroup: a plain member, an outsider, bad titles, a direct conversation.
    assert_refused(carol.rename_group(&group.id, "Carol's now").await, "NOT_ALLOWED");
    assert_refused(dave.rename_group(&group.id, "Dave's now").await, "CONVERSATION_NOT_FOUND");
    assert_refused(dave.rename_group(&Uuid::now_v7().to_string(), "Nowhere").await, "CONVERSATION_NOT_FOUND");
    for bad in ["", "   ", &"x".repeat(101), "Admins\u{202E}nimdA", "two\nlines", "zero\u{200B}width"] {
        assert_refused(alice.rename_group(&group.id, bad).await, "TITLE_INVALID");
    }
    assert_refused(alice.rename_group(&direct.id, "A pair").await, "NOT_A_GROUP");
    assert_refused(alice.rename_group("not an id", "Team").await, "ID_INVALID");
    assert_eq!(history(&alice, &group.id).await.len(), 1, "a refused rename writes nothing");
    assert_eq!(alice.get_conversation(&group.id).await.unwrap().title, "Team");

    // The owner renames (trimmed; 100 characters are fine), makes Bob an admin, who renames it
    // too; the same title again changes nothing.
    let renamed = alice.rename_group(&group.id, "  LAN party  ").await.unwrap();
    assert_eq!(renamed.title, "LAN party");
    alice.rename_group(&group.id, "LAN party").await.unwrap();
    alice.set_member_role(&group.id, &b, MemberRole::Admin).await.unwrap();
    alice.set_member_role(&group.id, &b, MemberRole::Admin).await.unwrap();
    let long = "я".repeat(100);
    assert_eq!(bob.rename_group(&group.id, &long).await.unwrap().title, long);

    // The owner removes Carol: from now on she can neither read nor post nor rename.
    alice.remove_member(&group.id, &c).await.unwrap();
    assert_refused(carol.send_message(opaque(&group.id, "still here?")).await, "CONVERSATION_NOT_FOUND");
    assert_refused(
        carol.list_messages(&group.id, 0, HistoryDirection::Backward, 10).await,
        "CONVERSATION_NOT_FOUND",
    );
    assert_refused(carol.rename_group(&group.id, "Revenge").await, "CONVERSATION_NOT_FOUND");
    // The admin adds Dave and leaves; the owner posts on.
    bob.add_members(&group.id, &[&d]).await.unwrap();
    bob.leave_conversation(&group.id).await.unwrap();
    let bye = alice.send_message(opaque(&group.id, "bye bob")).await.unwrap();

    use MemberRole::{Admin, Unspecified};
    use SystemEventKind::{MemberAdded, MemberLeft, MemberRemoved, RoleChanged, TitleChanged};
    let message = |seq, by: &str| (seq, None, by.to_owned(), String::new(), Unspecified, String::new());
    let expected = vec![
        message(1, &a),
        sys(2, TitleChanged, &a, "", Unspecified, "LAN party"),
        sys(3, RoleChanged, &a, &b, Admin, ""),
        sys(4, TitleChanged, &b, "", Unspecified, &long),
        sys(5, MemberRemoved, &a, &c, Unspecified, ""),
        sys(6, MemberAdded, &b, &d, Unspecified, ""),
        sys(7, MemberLeft, &b, "", Unspecified, ""),
        message(8, &a),
    ];
    // One history for everyone still in it, in pages of 3, also for Dave who came later.
    assert_eq!(history(&alice, &group.id).await, expected);
    assert_eq!(history(&dave, &group.id).await, expected);
    assert_eq!((hello.seq, bye.seq), (1, 8));
    assert_eq!(alice.get_conversation(&group.id).await.unwrap().title, long);

    // Live: Carol got the lines up to her removal and nothing after; Bob up to his leaving.
    carol_in
        .until(WAIT, "the lines before Carol's removal", |i| i.messages_in(&group.id).len() >= 4)
        .await
        .unwrap();
    carol_in
        .expect_none(Duration::from_millis(300), "a message after the removal", |e| {
            matches!(&e.body, Some(event::Body::Message(_)))
        })
        .await
        .unwrap();
    let carol_saw: Vec<Entry> = carol_in.messages_in(&group.id).into_iter().map(entry).collect();
    assert_eq!(carol_saw, expected[..4]);
    bob_in.until(WAIT, "the lines before Bob left", |i| i.messages_in(&group.id).len() >= 6).await.unwrap();
    let bob_saw: Vec<Entry> = bob_in.messages_in(&group.id).into_iter().map(entry).collect();
    assert_eq!(bob_saw, expected[..6], "Bob's own leaving is not delivered to him: he is gone");

    // Not unread: Dave has Alice's two messages unread, not the six lines between them.
    let for_dave = dave.get_conversation(&group.id).await.unwrap();
    assert_eq!((for_dave.last_seq, for_dave.unread_count), (8, 2));
    // Nobody edits or deletes a system entry, not even its actor (an owner may delete others'
    // messages, but not these).
    let line = alice.all_messages(&group.id, HistoryDirection::Forward, 100).await.unwrap()[1].clone();
    let edit = EditMessageRequest {
        conversation_id: group.id.clone(),
        message_id: line.id.clone(),
        ciphertext: b"rewritten history".to_vec(),
        session_id: b"s".to_vec(),
        content: None,
    };
    assert_refused(alice.edit_message(edit).await, "NOT_ALLOWED");
    assert_refused(alice.delete_message(&group.id, &line.id).await, "NOT_ALLOWED");
    assert_eq!(history(&alice, &group.id).await, expected, "unchanged");
    // Its id is taken: a device cannot post a message in its place.
    let mut reuse = opaque(&group.id, "my own");
    reuse.message_id = line.id.clone();
    assert_refused(alice.send_message(reuse).await, "MESSAGE_ID_TAKEN");
}

on_both_databases!(group_management_writes_system_entries: group_management_on_sqlite, group_management_on_postgres);
