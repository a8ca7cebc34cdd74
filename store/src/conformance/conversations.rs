//! Conformance of `ConversationStore`: conversations.

use super::Fresh;
use super::accounts::new_account;
use super::delivery::{accept_all, ids_of};
use crate::ids::{AccountId, ConversationId, DeviceId, MessageId};
use crate::{ConversationFilter, ConversationKind, MessageRecord, NewMessage, Role, SendOutcome, now_ms};

pub(super) async fn accounts(db: &Fresh, names: &[&str]) -> anyhow::Result<Vec<AccountId>> {
    let mut ids = Vec::new();
    for name in names {
        let account = new_account(name);
        db.store.create_account_without_device(&account).await?;
        ids.push(account.id);
    }
    Ok(ids)
}

pub(super) fn message(conversation: ConversationId, sender: AccountId, byte: u8) -> NewMessage {
    NewMessage {
        id: MessageId::generate(),
        conversation_id: conversation,
        sender: (sender, DeviceId::generate()),
        ciphertext: vec![byte; 16],
        session_id: b"session".to_vec(),
        reply_to: None,
        attachments: Vec::new(),
        cloud: None,
        now_ms: now_ms(),
    }
}

pub(super) async fn send(db: &Fresh, m: &NewMessage) -> anyhow::Result<MessageRecord> {
    match db.store.send_message(m).await? {
        SendOutcome::Stored(stored) => Ok(stored),
        other => anyhow::bail!("not stored: {other:?}"),
    }
}

pub(super) async fn a_pair_has_one_direct_conversation(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["vera", "walt"]).await?;
    let (a, b) = (ids[0], ids[1]);
    let mut racers = tokio::task::JoinSet::new();
    for pair in [(a, b), (b, a), (a, b), (b, a)] {
        let store = db.store.clone();
        racers.spawn(async move { store.open_direct(ConversationId::generate(), pair, now_ms()).await });
    }
    let (mut opened, mut created) = (Vec::new(), 0);
    while let Some(result) = racers.join_next().await {
        let (id, new) = result??;
        opened.push(id);
        created += usize::from(new);
    }
    opened.dedup();
    assert_eq!((opened.len(), created), (1, 1), "one conversation, made once");
    let members = db.store.members(opened[0]).await?;
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m.role == Role::Member));
    let record = db.store.conversation(opened[0]).await?.expect("exists");
    assert_eq!((record.kind, record.e2ee, record.last_seq), (ConversationKind::Direct, true, 0));
    Ok(())
}

pub(super) async fn messages_are_numbered_without_gaps_even_when_racing(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["xena", "yuri", "zoe"]).await?;
    let group = ConversationId::generate();
    db.store.create_group(group, "Party", ids[0], &ids[1..], now_ms()).await?;
    let mut senders = tokio::task::JoinSet::new();
    for i in 0..30u8 {
        let store = db.store.clone();
        let m = message(group, ids[usize::from(i % 3)], i);
        senders.spawn(async move { store.send_message(&m).await });
    }
    let mut seqs = Vec::new();
    while let Some(result) = senders.join_next().await {
        match result?? {
            SendOutcome::Stored(stored) => seqs.push(stored.seq),
            other => anyhow::bail!("{other:?}"),
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=30).collect::<Vec<i64>>());
    assert_eq!(db.store.conversation(group).await?.map(|c| c.last_seq), Some(30));

    // A retried send is the same message; a reused id with other content is refused.
    let m = message(group, ids[0], 99);
    let first = send(db, &m).await?;
    assert_eq!(db.store.send_message(&m).await?, SendOutcome::Duplicate(first.clone()));
    let tampered = NewMessage { ciphertext: vec![1; 16], ..m.clone() };
    assert_eq!(db.store.send_message(&tampered).await?, SendOutcome::IdTaken);
    let as_reply = NewMessage { reply_to: Some(first.id), ..m.clone() };
    assert_eq!(db.store.send_message(&as_reply).await?, SendOutcome::IdTaken, "a reply is another message");
    assert_eq!(db.store.conversation(group).await?.map(|c| c.last_seq), Some(31), "no number was used up");
    // Outsiders cannot post.
    let outsider = accounts(db, &["omar"]).await?[0];
    assert_eq!(db.store.send_message(&message(group, outsider, 1)).await?, SendOutcome::NotMember);
    Ok(())
}

pub(super) async fn message_ids_are_unique_per_conversation(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ida", "jon", "kim"]).await?;
    let (mine, theirs) = (ConversationId::generate(), ConversationId::generate());
    db.store.create_group(mine, "Mine", ids[0], &ids[1..2], now_ms()).await?;
    db.store.create_group(theirs, "Theirs", ids[2], &[], now_ms()).await?;
    let first = send(db, &message(theirs, ids[2], 1)).await?;
    // An outsider who picks the same id in a conversation of their own is told nothing: stored.
    let copy = NewMessage { id: first.id, ..message(mine, ids[0], 2) };
    let stored = send(db, &copy).await?;
    assert_eq!((stored.id, stored.conversation_id), (first.id, mine));
    assert_eq!(db.store.send_message(&copy).await?, SendOutcome::Duplicate(stored.clone()), "a retry");
    let other = NewMessage { ciphertext: vec![3; 16], ..copy.clone() };
    assert_eq!(db.store.send_message(&other).await?, SendOutcome::IdTaken, "taken in this conversation");
    // Each conversation keeps its own; deleting one leaves the other.
    assert!(db.store.delete_message(mine, first.id, now_ms()).await?.is_some());
    let kept = db.store.message(theirs, first.id).await?.expect("still there");
    assert_eq!((kept.deleted_at_ms, kept.ciphertext), (0, first.ciphertext));
    Ok(())
}

pub(super) async fn a_batch_of_sends_gives_each_its_own_outcome(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["bea", "cid", "dot"]).await?;
    let (one, two) = (ConversationId::generate(), ConversationId::generate());
    db.store.create_group(one, "One", ids[0], &ids[1..2], now_ms()).await?;
    db.store.create_group(two, "Two", ids[1], &ids[2..], now_ms()).await?;
    let first = message(one, ids[0], 1);
    let batch = vec![
        first.clone(),
        first.clone(),
        NewMessage { ciphertext: vec![2; 16], ..first.clone() },
        message(one, ids[2], 3),
        message(two, ids[2], 4),
        message(one, ids[1], 5),
    ];
    let outcomes = db.store.send_messages(&batch).await?;
    let outcomes: Vec<SendOutcome> = outcomes.into_iter().collect::<Result<_, _>>()?;
    let SendOutcome::Stored(stored) = &outcomes[0] else { anyhow::bail!("{:?}", outcomes[0]) };
    assert_eq!(stored.seq, 1);
    assert_eq!(outcomes[1], SendOutcome::Duplicate(stored.clone()), "the same message again in the batch");
    assert_eq!(outcomes[2], SendOutcome::IdTaken);
    assert_eq!(outcomes[3], SendOutcome::NotMember, "dot is not in the first group");
    assert!(matches!(&outcomes[4], SendOutcome::Stored(m) if m.seq == 1 && m.conversation_id == two));
    assert!(matches!(&outcomes[5], SendOutcome::Stored(m) if m.seq == 2), "refusals used up no number");
    assert_eq!(db.store.conversation(one).await?.map(|c| c.last_seq), Some(2));
    assert_eq!(ids_of(db, one).await?, vec![batch[0].id, batch[5].id]);

    // Batches racing each other (each sorted by conversation, as the queue does) all apply.
    let mut racers = tokio::task::JoinSet::new();
    for round in 0..4u8 {
        let mut batch: Vec<NewMessage> =
            (0..10u8).map(|i| message(if i % 2 == 0 { one } else { two }, ids[1], round * 10 + i)).collect();
        batch.sort_by_key(|m| m.conversation_id);
        let store = db.store.clone();
        racers.spawn(async move { store.send_messages(&batch).await });
    }
    while let Some(result) = racers.join_next().await {
        for outcome in result?? {
            anyhow::ensure!(matches!(outcome?, SendOutcome::Stored(_)), "a racing batch lost a message");
        }
    }
    assert_eq!(db.store.conversation(one).await?.map(|c| c.last_seq), Some(22));
    assert_eq!(db.store.conversation(two).await?.map(|c| c.last_seq), Some(21));
    Ok(())
}

pub(super) async fn history_pages_both_ways(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["adam", "bea"]).await?;
    let (c, _) = db.store.open_direct(ConversationId::generate(), (ids[0], ids[1]), now_ms()).await?;
    for i in 0..10u8 {
        send(db, &message(c, ids[usize::from(i % 2)], i)).await?;
    }
    let seqs = |page: Vec<MessageRecord>| page.into_iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(db.store.list_messages(c, 0, false, 3).await?), [10, 9, 8]);
    assert_eq!(seqs(db.store.list_messages(c, 8, false, 3).await?), [7, 6, 5]);
    assert_eq!(seqs(db.store.list_messages(c, 0, true, 4).await?), [1, 2, 3, 4]);
    assert_eq!(seqs(db.store.list_messages(c, 8, true, 4).await?), [9, 10]);
    assert!(db.store.list_messages(c, 1, false, 4).await?.is_empty());
    Ok(())
}

pub(super) async fn edits_deletes_and_read_marks(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["cara", "dan"]).await?;
    let (c, _) = db.store.open_direct(ConversationId::generate(), (ids[0], ids[1]), now_ms()).await?;
    accept_all(db, c).await?;
    let mut sent = Vec::new();
    for i in 0..4u8 {
        sent.push(send(db, &message(c, ids[0], i)).await?);
    }
    let edited = db.store.edit_message(c, sent[0].id, b"edited", b"s2", now_ms()).await?.expect("edited");
    assert_eq!(edited.change_seq, 5, "an edit is the conversation's next change");
    let edited = db.store.message(c, sent[0].id).await?.expect("exists");
    assert_eq!((edited.ciphertext.as_deref(), edited.edited_at_ms > 0), (Some(&b"edited"[..]), true));
    let gone = db.store.delete_message(c, sent[1].id, now_ms()).await?.expect("deleted");
    assert_eq!((gone.change_seq, gone.ciphertext), (6, None));
    assert!(db.store.delete_message(c, sent[1].id, now_ms()).await?.is_none(), "deleted once");
    let deleted = db.store.message(c, sent[1].id).await?.expect("keeps its place");
    assert_eq!((deleted.ciphertext, deleted.deleted_at_ms > 0), (None, true));
    assert!(
        db.store.edit_message(c, sent[1].id, b"again", b"s", now_ms()).await?.is_none(),
        "deleted stays deleted"
    );
    assert_eq!(
        db.store.conversation(c).await?.map(|c| (c.last_seq, c.last_change)),
        Some((4, 6)),
        "no change used up"
    );
    assert!(
        db.store.message(ConversationId::generate(), sent[2].id).await?.is_none(),
        "scoped to its conversation"
    );

    // Dan has 3 unread (the deleted one does not count); Cara none (her own).
    assert_eq!(db.store.unread_count(c, ids[1]).await?, 3);
    assert_eq!(db.store.unread_count(c, ids[0]).await?, 0);
    let receipt = db.store.mark_read(c, ids[1], 3).await?.expect("a member");
    assert_eq!((receipt.read_seq, receipt.delivered_seq), (3, 3), "read implies delivered");
    let mut told = vec![ids[0], ids[1]];
    told.sort_unstable();
    assert_eq!(receipt.notified, told, "the sender and the reader's own devices hear of it");
    assert_eq!(db.store.unread_count(c, ids[1]).await?, 1);
    let again = db.store.mark_read(c, ids[1], 2).await?.expect("a member");
    assert_eq!((again.read_seq, again.notified.len()), (3, 0), "never backwards, and nobody is told");
    assert_eq!(db.store.mark_read(c, ids[1], 4).await?.map(|r| r.read_seq), Some(4));
    assert_eq!(db.store.unread_count(c, ids[1]).await?, 0);
    let outsider = accounts(db, &["eve"]).await?[0];
    assert!(db.store.mark_read(c, outsider, 1).await?.is_none(), "not a member");
    Ok(())
}

pub(super) async fn owners_hand_over_when_they_leave(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["eli", "fay", "gus"]).await?;
    let group = ConversationId::generate();
    db.store.create_group(group, "Team", ids[0], &ids[1..], now_ms()).await?;
    assert!(db.store.set_role(group, ids[2], Role::Admin).await?);
    assert!(db.store.remove_member(group, ids[0]).await?);
    let roles: Vec<_> = db.store.members(group).await?.into_iter().map(|m| (m.account_id, m.role)).collect();
    assert!(roles.contains(&(ids[2], Role::Owner)), "the admin took over: {roles:?}");
    assert!(roles.contains(&(ids[1], Role::Member)));
    assert!(!db.store.remove_member(group, ids[0]).await?, "already gone");
    assert_eq!(db.store.conversations_of(ids[0], ConversationFilter::All, None, 1000).await?.len(), 0);
    assert_eq!(db.store.conversations_of(ids[1], ConversationFilter::All, None, 1000).await?.len(), 1);
    db.store.add_members(group, ids[2], &[ids[0], ids[1]], 1000, now_ms()).await?;
    assert_eq!(db.store.members(group).await?.len(), 3, "existing members stay as they are");
    Ok(())
}

/// Membership and title changes write system entries into the history in the same
/// transaction: numbered like messages, delivered like them, never unread, never editable.
/// Role changes racing sends in the same group: every one succeeds (on SQLite a transaction that
/// read before it wrote failed with "database is locked" once another writer got in between),
/// and each real change leaves exactly one system entry.
pub(super) async fn role_changes_racing_sends_all_succeed(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["rhea", "sid", "tam"]).await?;
    let (owner, bob, carol) = (ids[0], ids[1], ids[2]);
    let group = ConversationId::generate();
    db.store.create_group(group, "Race", owner, &[bob, carol], now_ms()).await?;
    accept_all(db, group).await?;
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..12u8 {
        let store = db.store.clone();
        racers.spawn(async move {
            let role = if i % 2 == 0 { Role::Admin } else { Role::Member };
            store.set_role_by(group, bob, role, Some(owner), now_ms()).await.map(|e| e.map(|e| e.len()))
        });
        let store = db.store.clone();
        racers.spawn(async move {
            match store.send_message(&message(group, carol, i)).await? {
                SendOutcome::Stored(_) => Ok(Some(0)),
                other => panic!("not stored: {other:?}"),
            }
        });
    }
    let mut entries = 0;
    while let Some(result) = racers.join_next().await {
        entries += result??.expect("bob is a member");
    }
    let history = db.store.conversation(group).await?.expect("the group").last_seq;
    assert_eq!(
        history,
        12 + entries as i64,
        "12 messages and one entry per real change, numbered without gaps"
    );
    assert!(entries >= 1, "at least the first change to admin is a change");
    Ok(())
}

pub(super) async fn group_changes_write_system_entries(db: &Fresh) -> anyhow::Result<()> {
    use crate::{AddOutcome, SystemEntry};
    let ids = accounts(db, &["owen", "bea", "cal", "dot"]).await?;
    let (owner, bob, carol, dave) = (ids[0], ids[1], ids[2], ids[3]);
    let group = ConversationId::generate();
    db.store.create_group(group, "Team", owner, &[bob, carol], now_ms()).await?;
    accept_all(db, group).await?;
    let carol_device = super::delivery::device(db, carol, 31).await?;
    let bob_device = super::delivery::device(db, bob, 32).await?;
    let hello = send(db, &message(group, carol, 1)).await?;
    assert_eq!(hello.system, None, "a device's message is not a system entry");

    let t = now_ms();
    let renamed = db.store.rename_group(group, owner, "LAN party", t).await?.expect("renamed");
    assert_eq!(renamed.system, Some(SystemEntry::TitleChanged("LAN party".into())));
    assert_eq!((renamed.seq, renamed.sender_account_id, renamed.ciphertext.clone()), (2, owner, None));
    assert_eq!((renamed.deleted_at_ms, renamed.sent_at_ms), (0, t));
    assert!(db.store.rename_group(group, owner, "LAN party", t).await?.is_none(), "the same title: nothing");
    assert_eq!(db.store.conversation(group).await?.and_then(|c| c.title).as_deref(), Some("LAN party"));

    let promoted = db.store.set_role_by(group, bob, Role::Admin, Some(owner), t).await?.expect("a member");
    assert_eq!(
        promoted.iter().map(|e| e.system.clone()).collect::<Vec<_>>(),
        [Some(SystemEntry::RoleChanged(bob, Role::Admin))]
    );
    let same = db.store.set_role_by(group, bob, Role::Admin, Some(owner), t).await?.expect("a member");
    assert!(same.is_empty(), "the same role again writes nothing");

    let (outcome, added) = db.store.add_members_by(group, bob, &[dave, carol], 100, t, true).await?;
    assert_eq!(outcome, AddOutcome::Added(vec![dave]));
    assert_eq!(
        added.iter().map(|e| (e.sender_account_id, e.system.clone())).collect::<Vec<_>>(),
        [(bob, Some(SystemEntry::MemberAdded(dave)))]
    );

    let removed = db.store.remove_member_by(group, carol, Some(bob), t).await?.expect("a member");
    assert_eq!(
        removed.iter().map(|e| e.system.clone()).collect::<Vec<_>>(),
        [Some(SystemEntry::MemberRemoved(carol))]
    );
    assert!(db.store.remove_member_by(group, carol, Some(bob), t).await?.is_none(), "already gone");
    // The owner leaves: the group passes to the admin, and both are written down.
    let left = db.store.remove_member_by(group, owner, Some(owner), t).await?.expect("a member");
    assert_eq!(
        left.iter().map(|e| (e.sender_account_id, e.system.clone())).collect::<Vec<_>>(),
        [(owner, Some(SystemEntry::MemberLeft)), (owner, Some(SystemEntry::RoleChanged(bob, Role::Owner)))]
    );

    // One history, numbered without gaps, in the order things happened.
    let history = db.store.list_messages(group, 0, true, 100).await?;
    assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6, 7]);
    let kinds: Vec<_> = history.iter().map(|m| m.system.as_ref().map(SystemEntry::kind)).collect();
    assert_eq!(
        kinds,
        [
            None,
            Some("title_changed"),
            Some("role_changed"),
            Some("member_added"),
            Some("member_removed"),
            Some("member_left"),
            Some("role_changed")
        ]
    );
    assert_eq!(db.store.conversation(group).await?.map(|c| c.last_seq), Some(7));
    // Delivered like messages to the members' devices; the removed member's stop.
    let changes = db.store.message_changes(bob_device, group, 0, 100).await?;
    assert_eq!(changes.len(), 7);
    assert!(db.store.message_changes(carol_device, group, 0, 100).await?.is_empty(), "no longer a member");
    // Never unread, and neither editable nor deletable through the store.
    assert_eq!(db.store.unread_count(group, dave).await?, 1, "only Carol's message");
    assert!(db.store.edit_message(group, renamed.id, b"x", b"s", t).await?.is_none());
    assert!(db.store.delete_message(group, renamed.id, t).await?.is_none());
    assert_eq!(db.store.message(group, renamed.id).await?, Some(renamed));
    // A direct conversation has no title to change.
    let direct = db.store.open_direct(ConversationId::generate(), (bob, dave), t).await?.0;
    assert!(db.store.rename_group(direct, bob, "Nope", t).await?.is_none());
    Ok(())
}
