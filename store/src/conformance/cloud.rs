//! Conformance of `MessageExtrasStore` and the cloud side of `ConversationStore`: content kept
//! as sent, search with stemming, reactions, pins, timers and the sweep.

use super::Fresh;
use super::conversations::{accounts, message, send};
use super::delivery::accept_all;
use crate::ids::{AccountId, ConversationId, MessageId};
use crate::{
    CloudBody, MessageRecord, NewMessage, PinOutcome, ReactOutcome, ReactionChange, Role, SearchQuery,
    SendOutcome, SystemEntry, now_ms,
};

async fn cloud_group(db: &Fresh, owner: AccountId, members: &[AccountId]) -> anyhow::Result<ConversationId> {
    let c = ConversationId::generate();
    db.store.create_group_in(c, "cloud", owner, members, false, now_ms()).await?;
    accept_all(db, c).await?;
    Ok(c)
}

pub(super) fn cloud(
    conversation: ConversationId,
    sender: AccountId,
    text: &str,
    mentions: &[AccountId],
) -> NewMessage {
    NewMessage {
        ciphertext: Vec::new(),
        session_id: Vec::new(),
        cloud: Some(CloudBody {
            content: format!("content:{text}").into_bytes(),
            search_text: text.to_owned(),
            mentions: mentions.to_vec(),
        }),
        ..message(conversation, sender, 0)
    }
}

fn query(account: AccountId, text: &str) -> SearchQuery {
    SearchQuery {
        account,
        text: text.to_owned(),
        conversation: None,
        channel: false,
        sender: None,
        after_ms: 0,
        before_ms: 0,
        older_than: None,
        limit: 20,
    }
}

async fn found(db: &Fresh, q: &SearchQuery) -> anyhow::Result<Vec<MessageId>> {
    Ok(db.store.search_messages(q).await?.into_iter().map(|m| m.id).collect())
}

pub(super) async fn cloud_messages_keep_their_content(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob"]).await?;
    let c = cloud_group(db, ids[0], &ids[1..]).await?;
    assert!(!db.store.conversation(c).await?.unwrap().e2ee);
    let m = cloud(c, ids[0], "hello", &[]);
    let stored = send(db, &m).await?;
    assert_eq!(stored.content.as_deref(), Some(b"content:hello".as_slice()));
    assert_eq!(stored.ciphertext, None);
    // A retried send is the same message; the same id with other content is not.
    assert!(matches!(db.store.send_message(&m).await?, SendOutcome::Duplicate(_)));
    let other = NewMessage {
        cloud: Some(CloudBody { content: b"x".to_vec(), ..m.cloud.clone().unwrap() }),
        ..m.clone()
    };
    assert_eq!(db.store.send_message(&other).await?, SendOutcome::IdTaken);
    // A pair has one E2EE and one cloud direct conversation.
    let (e2ee, _) =
        db.store.open_direct_in(ConversationId::generate(), (ids[0], ids[1]), true, now_ms()).await?;
    let (cloudy, created) =
        db.store.open_direct_in(ConversationId::generate(), (ids[0], ids[1]), false, now_ms()).await?;
    assert!(created);
    assert_ne!(e2ee, cloudy);
    assert_eq!(
        db.store.open_direct_in(ConversationId::generate(), (ids[1], ids[0]), false, now_ms()).await?.0,
        cloudy
    );
    assert!(!db.store.conversation(cloudy).await?.unwrap().e2ee);
    Ok(())
}

pub(super) async fn search_finds_inflected_forms_in_the_callers_conversations(
    db: &Fresh,
) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob", "eve"]).await?;
    let (ada, bob, eve) = (ids[0], ids[1], ids[2]);
    let c = cloud_group(db, ada, &[bob]).await?;
    let cats = send(db, &cloud(c, ada, "Мы видели кошку во дворе", &[])).await?;
    let running = send(db, &cloud(c, bob, "The dogs were running home", &[])).await?;
    let both = send(db, &cloud(c, bob, "Кошка and the dog", &[])).await?;
    // Russian and English stemming: an inflected form finds the others.
    assert_eq!(found(db, &query(ada, "кошками")).await?, vec![both.id, cats.id]);
    assert_eq!(found(db, &query(ada, "run")).await?, vec![running.id]);
    // Every word must occur.
    assert_eq!(found(db, &query(ada, "dog кошка")).await?, vec![both.id]);
    // Filters: sender, conversation, time.
    assert_eq!(found(db, &SearchQuery { sender: Some(ada), ..query(ada, "кошка") }).await?, vec![cats.id]);
    let elsewhere = cloud_group(db, ada, &[]).await?;
    assert!(
        found(db, &SearchQuery { conversation: Some(elsewhere), ..query(ada, "кошка") }).await?.is_empty()
    );
    assert_eq!(found(db, &SearchQuery { conversation: Some(c), ..query(ada, "dog") }).await?.len(), 2);
    assert!(
        found(db, &SearchQuery { after_ms: both.sent_at_ms + 1, ..query(ada, "кошка") }).await?.is_empty()
    );
    assert!(found(db, &SearchQuery { before_ms: cats.sent_at_ms, ..query(ada, "кошка") }).await?.is_empty());
    // Paging: newest first, each page after the last one's time and id.
    let first = db.store.search_messages(&SearchQuery { limit: 1, ..query(ada, "кошка") }).await?;
    assert_eq!(first.len(), 1);
    let last = &first[0];
    let next = SearchQuery {
        older_than: Some((last.sent_at_ms, last.conversation_id, last.id)),
        ..query(ada, "кошка")
    };
    assert_eq!(found(db, &next).await?, vec![cats.id]);
    // Someone who is not a member finds nothing.
    assert!(found(db, &query(eve, "кошка")).await?.is_empty());
    // Search syntax, quotes and odd characters are words or nothing, never an error.
    for odd in ["\"кошка", "кошка OR *", "NEAR(кошка dog)", "^dog:", "'; DROP TABLE messages; --", "\u{0}"]
    {
        db.store.search_messages(&query(ada, odd)).await?;
    }
    assert!(found(db, &query(ada, "*** ()")).await?.is_empty());
    // An edit changes what is found; a deletion takes the message out.
    let body = CloudBody {
        content: b"content:edited".to_vec(),
        search_text: "Собаки лают".into(),
        mentions: vec![],
    };
    let edited = db.store.edit_cloud_message(c, cats.id, &body, now_ms()).await?.unwrap();
    assert_eq!(edited.content.as_deref(), Some(b"content:edited".as_slice()));
    assert_eq!(found(db, &query(ada, "кошка")).await?, vec![both.id]);
    assert_eq!(found(db, &query(ada, "собака")).await?, vec![cats.id]);
    let gone = db.store.delete_message(c, both.id, now_ms()).await?.unwrap();
    assert_eq!((gone.content, gone.ciphertext), (None, None));
    assert!(found(db, &query(ada, "кошка")).await?.is_empty());
    // E2EE messages are never searched (the server has no words of theirs).
    let e2ee = ConversationId::generate();
    db.store.create_group(e2ee, "e2ee", ada, &[], now_ms()).await?;
    send(db, &message(e2ee, ada, 7)).await?;
    assert_eq!(found(db, &query(ada, "dog")).await?, vec![running.id]);
    Ok(())
}

pub(super) async fn reactions_are_counted_and_limited(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob"]).await?;
    let c = cloud_group(db, ids[0], &ids[1..]).await?;
    let m = send(db, &cloud(c, ids[0], "hi", &[])).await?;
    let react = |who: AccountId, emoji: &'static str, remove: bool| {
        let store = db.store.clone();
        async move {
            let change = ReactionChange { conversation: c, message: m.id, account: who, emoji, remove };
            store.react(change, 3, now_ms()).await
        }
    };
    let ReactOutcome::Changed(after) = react(ids[0], "👍", false).await? else { panic!("not added") };
    assert!(after.change_seq > m.change_seq);
    react(ids[1], "👍", false).await?;
    let ReactOutcome::Changed(after) = react(ids[1], "🎉", false).await? else { panic!("not added") };
    assert_eq!(after.reactions.len(), 2);
    assert_eq!((after.reactions[0].emoji.as_str(), after.reactions[0].count), ("👍", 2));
    assert_eq!(after.reactions[0].accounts, vec![ids[0], ids[1]]);
    // Twice is once; taking back what is not there changes nothing.
    assert!(matches!(react(ids[1], "🎉", false).await?, ReactOutcome::Unchanged(_)));
    assert!(matches!(react(ids[0], "🎉", true).await?, ReactOutcome::Unchanged(_)));
    // At most three different reactions per person here.
    react(ids[1], "😀", false).await?;
    assert_eq!(react(ids[1], "🔥", false).await?, ReactOutcome::TooMany);
    let ReactOutcome::Changed(after) = react(ids[1], "👍", true).await? else { panic!("not removed") };
    assert_eq!(after.reactions.iter().find(|g| g.emoji == "👍").unwrap().count, 1);
    // History shows them; a deleted message has none and takes none.
    let page = db.store.list_messages(c, 0, false, 10).await?;
    assert_eq!(page[0].reactions, after.reactions);
    db.store.delete_message(c, m.id, now_ms()).await?;
    assert!(db.store.message(c, m.id).await?.unwrap().reactions.is_empty());
    assert_eq!(react(ids[0], "👍", false).await?, ReactOutcome::NotFound);
    Ok(())
}

pub(super) async fn pins_are_listed_and_limited(db: &Fresh) -> anyhow::Result<()> {
    let ada = accounts(db, &["ada"]).await?[0];
    let ids = [ada];
    let c = ConversationId::generate();
    // Pins work in E2EE conversations too: they hold ids, never content.
    db.store.create_group(c, "e2ee", ids[0], &[], now_ms()).await?;
    let mut sent: Vec<MessageRecord> = Vec::new();
    for i in 0..3 {
        sent.push(send(db, &message(c, ids[0], i)).await?);
    }
    let pin = |id: MessageId, pin: bool, at: i64| {
        let store = db.store.clone();
        async move { store.pin_message(c, id, ada, pin, 2, at).await }
    };
    let PinOutcome::Changed(pinned) = pin(sent[0].id, true, 1_000).await? else { panic!("not pinned") };
    assert_eq!((pinned.pinned_at_ms, pinned.pinned_by), (1_000, Some(ids[0])));
    assert!(matches!(pin(sent[0].id, true, 1_500).await?, PinOutcome::Unchanged(_)));
    pin(sent[1].id, true, 2_000).await?;
    assert_eq!(pin(sent[2].id, true, 3_000).await?, PinOutcome::TooMany);
    let listed: Vec<MessageId> = db.store.pins(c).await?.into_iter().map(|m| m.id).collect();
    assert_eq!(listed, vec![sent[1].id, sent[0].id]);
    pin(sent[1].id, false, 4_000).await?;
    // Deleting a pinned message unpins it.
    db.store.delete_message(c, sent[0].id, now_ms()).await?;
    assert!(db.store.pins(c).await?.is_empty());
    assert_eq!(pin(sent[0].id, true, 5_000).await?, PinOutcome::NotFound);
    Ok(())
}

pub(super) async fn timers_expire_messages_and_retention_sweeps_old_ones(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob"]).await?;
    let c = cloud_group(db, ids[0], &ids[1..]).await?;
    let entry = db.store.set_message_timer(c, ids[0], 3600, now_ms()).await?.unwrap();
    assert_eq!(entry.system, Some(SystemEntry::TimerChanged(3600)));
    assert_eq!(db.store.conversation(c).await?.unwrap().message_timer_s, 3600);
    assert_eq!(db.store.set_message_timer(c, ids[0], 3600, now_ms()).await?, None);
    let m = send(db, &cloud(c, ids[0], "gone soon", &[])).await?;
    assert_eq!(m.expires_at_ms, m.sent_at_ms + 3_600_000);
    let change =
        ReactionChange { conversation: c, message: m.id, account: ids[1], emoji: "👍", remove: false };
    db.store.react(change, 20, now_ms()).await?;
    // Nothing is due before its time.
    assert!(db.store.sweep_messages(m.expires_at_ms - 1, None, 100).await?.is_empty());
    let swept = db.store.sweep_messages(m.expires_at_ms, None, 100).await?;
    assert_eq!(swept.len(), 1);
    let tombstone = &swept[0];
    assert_eq!((tombstone.id, tombstone.content.as_deref()), (m.id, None));
    assert!(tombstone.deleted_at_ms > 0 && tombstone.reactions.is_empty());
    assert!(tombstone.change_seq > m.change_seq);
    assert!(found(db, &query(ids[0], "gone")).await?.is_empty());
    // Turned off: new messages stay.
    db.store.set_message_timer(c, ids[0], 0, now_ms()).await?;
    let kept = send(db, &cloud(c, ids[0], "kept", &[])).await?;
    assert_eq!(kept.expires_at_ms, 0);
    // Retention: everything sent before the cutoff, in every conversation and of both kinds,
    // loses its content; system entries stay.
    let e2ee = ConversationId::generate();
    db.store.create_group(e2ee, "e2ee", ids[0], &[], now_ms()).await?;
    let secret = send(db, &message(e2ee, ids[0], 9)).await?;
    let cutoff = secret.sent_at_ms + 1;
    let swept: Vec<MessageId> =
        db.store.sweep_messages(now_ms(), Some(cutoff), 100).await?.into_iter().map(|m| m.id).collect();
    assert!(swept.contains(&kept.id) && swept.contains(&secret.id), "{swept:?}");
    assert_eq!(db.store.message(e2ee, secret.id).await?.unwrap().ciphertext, None);
    let history = db.store.list_messages(c, 0, false, 100).await?;
    assert!(history.iter().all(|m| m.content.is_none()));
    assert!(history.iter().any(|m| m.system.is_some() && m.deleted_at_ms == 0));
    assert!(db.store.sweep_messages(now_ms(), Some(cutoff), 100).await?.is_empty());
    Ok(())
}

pub(super) async fn mentions_count_until_read(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob", "cat"]).await?;
    let c = cloud_group(db, ids[0], &ids[1..]).await?;
    send(db, &cloud(c, ids[0], "@bob look", &[ids[1]])).await?;
    let second = send(db, &cloud(c, ids[0], "@bob @cat again", &[ids[1], ids[2]])).await?;
    assert_eq!(db.store.mention_count(c, ids[1]).await?, 2);
    assert_eq!(db.store.mention_count(c, ids[2]).await?, 1);
    assert_eq!(db.store.mention_count(c, ids[0]).await?, 0);
    db.store.mark_read(c, ids[1], second.seq - 1).await?;
    assert_eq!(db.store.mention_count(c, ids[1]).await?, 1);
    // A deleted message mentions nobody any more.
    db.store.delete_message(c, second.id, now_ms()).await?;
    assert_eq!(db.store.mention_count(c, ids[1]).await?, 0);
    assert_eq!(db.store.mention_count(c, ids[2]).await?, 0);
    Ok(())
}

pub(super) async fn deleting_an_account_deletes_or_keeps_its_messages(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob", "cat"]).await?;
    let (ada, bob, cat) = (ids[0], ids[1], ids[2]);
    let c = cloud_group(db, ada, &[bob, cat]).await?;
    let (direct, _) =
        db.store.open_direct_in(ConversationId::generate(), (ada, bob), false, now_ms()).await?;
    let mine = send(db, &cloud(c, ada, "ada's secret plans", &[])).await?;
    let theirs = send(db, &cloud(c, bob, "bob answers ada", &[])).await?;
    let done = db.store.delete_account(ada, true, now_ms()).await?.unwrap();
    let mut left = done.conversations.clone();
    left.sort();
    let mut expected = vec![c, direct];
    expected.sort();
    assert_eq!(left, expected);
    assert_eq!(done.messages_deleted, 1);
    // The group passed on, with the lines everyone sees.
    let members = db.store.members(c).await?;
    assert!(members.iter().all(|m| m.account_id != ada));
    assert_eq!(members.iter().filter(|m| m.role == Role::Owner).count(), 1);
    assert!(done.changed.iter().any(|m| m.system == Some(SystemEntry::MemberLeft)));
    assert!(db.store.account(ada).await?.is_none());
    assert_eq!(db.store.message(c, mine.id).await?.unwrap().content, None);
    assert!(db.store.message(c, theirs.id).await?.unwrap().content.is_some());
    assert!(found(db, &query(bob, "secret")).await?.is_empty());
    // Anonymised: the messages stay, under an account that no longer exists.
    let kept = send(db, &cloud(c, cat, "cat was here", &[])).await?;
    db.store.delete_account(cat, false, now_ms()).await?.unwrap();
    let after = db.store.message(c, kept.id).await?.unwrap();
    assert_eq!((after.content, after.sender_account_id), (kept.content, cat));
    assert_eq!(found(db, &query(bob, "cats")).await?, vec![kept.id]);
    assert_eq!(db.store.delete_account(cat, false, now_ms()).await?, None);
    Ok(())
}

/// Deletions racing each other and other writers all go through: each waits for the write lock
/// rather than failing with "database is locked" (a SQLite transaction that reads first and
/// writes later cannot wait).
pub(super) async fn deletions_wait_for_racing_writers(db: &Fresh) -> anyhow::Result<()> {
    let names: Vec<String> = (0..7).map(|i| format!("leaver{i}")).collect();
    let ids = accounts(db, &names.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    let (host, leavers) = (ids[0], &ids[1..]);
    let c = cloud_group(db, host, leavers).await?;
    let mut racers = tokio::task::JoinSet::new();
    for (i, &leaver) in leavers.iter().enumerate() {
        let store = db.store.clone();
        racers.spawn(async move {
            anyhow::Ok(store.delete_account(leaver, i % 2 == 0, now_ms()).await?.is_some())
        });
        let store = db.store.clone();
        let note = cloud(c, host, &format!("note {i}"), &[]);
        racers.spawn(async move {
            store.send_message(&note).await?;
            anyhow::Ok(true)
        });
    }
    while let Some(result) = racers.join_next().await {
        assert!(result??, "an account to delete was not found");
    }
    let members = db.store.members(c).await?;
    assert_eq!(members.iter().map(|m| m.account_id).collect::<Vec<_>>(), [host]);
    for leaver in leavers {
        assert!(db.store.account(*leaver).await?.is_none());
    }
    Ok(())
}
