//! Conformance of `AttachmentStore`: attachments.

use super::Fresh;
use super::conversations::{accounts, message, send};
use crate::ids::{AccountId, AttachmentId, ConversationId, DeviceId};
use crate::{AttachmentRecord, CreateAttachmentOutcome, NewAttachment, NewMessage, SendOutcome, now_ms};

pub(super) fn new_attachment(conversation: ConversationId, uploader: AccountId, size: i64) -> NewAttachment {
    NewAttachment {
        id: AttachmentId::generate(),
        conversation_id: conversation,
        uploader: (uploader, DeviceId::generate()),
        size,
        expires_at_ms: 0,
        now_ms: now_ms(),
    }
}

async fn created(db: &Fresh, a: &NewAttachment, quota: i64) -> anyhow::Result<AttachmentRecord> {
    match db.store.create_attachment(a, quota).await? {
        CreateAttachmentOutcome::Created(record) => Ok(record),
        other => anyhow::bail!("not created: {other:?}"),
    }
}

pub(super) async fn attachments_are_reserved_by_members_within_the_quota(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob", "eve"]).await?;
    let (a, b, eve) = (ids[0], ids[1], ids[2]);
    let (c, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    let first = new_attachment(c, a, 600);
    let record = created(db, &first, 1000).await?;
    assert_eq!(
        (
            record.id,
            record.conversation_id,
            record.uploader,
            record.size,
            record.uploaded_at_ms,
            record.message_id
        ),
        (first.id, c, first.uploader, 600, 0, None)
    );
    assert_eq!(db.store.attachment(first.id).await?, Some(record));
    // 600 + 401 > 1000: refused, and nothing stored.
    let over = new_attachment(c, a, 401);
    assert_eq!(
        db.store.create_attachment(&over, 1000).await?,
        CreateAttachmentOutcome::QuotaExceeded { used: 600 }
    );
    assert_eq!(db.store.attachment(over.id).await?, None);
    created(db, &new_attachment(c, a, 400), 1000).await?;
    assert_eq!(db.store.attachment_usage(a).await?, 1000);
    // The quota is per uploader.
    created(db, &new_attachment(c, b, 1000), 1000).await?;
    // Not a member: refused.
    let outsider = new_attachment(c, eve, 1);
    assert_eq!(db.store.create_attachment(&outsider, 1000).await?, CreateAttachmentOutcome::NotMember);
    assert_eq!(db.store.attachment_usage(eve).await?, 0);
    Ok(())
}

pub(super) async fn racing_reservations_never_exceed_the_quota(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob"]).await?;
    let (c, _) = db.store.open_direct(ConversationId::generate(), (ids[0], ids[1]), now_ms()).await?;
    let other = db.reopen().await?;
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { db.store.clone() } else { other.clone() };
        let a = new_attachment(c, ids[0], 100);
        racers.spawn(async move { store.create_attachment(&a, 1000).await });
    }
    let mut made = 0;
    while let Some(result) = racers.join_next().await {
        if let CreateAttachmentOutcome::Created(_) = result?? {
            made += 1;
        }
    }
    assert_eq!(made, 10, "exactly the quota's worth is reserved");
    assert_eq!(db.store.attachment_usage(ids[0]).await?, 1000);
    Ok(())
}

pub(super) async fn attachments_link_to_one_message_of_their_uploader_once_uploaded(
    db: &Fresh,
) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob"]).await?;
    let (a, b) = (ids[0], ids[1]);
    let (c, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    let other_c = ConversationId::generate();
    db.store.create_group(other_c, "Elsewhere", a, &[b], now_ms()).await?;
    let pending = created(db, &new_attachment(c, a, 10), 1000).await?;
    let uploaded = created(db, &new_attachment(c, a, 10), 1000).await?;
    let t = now_ms();
    let marked = db.store.mark_uploaded(uploaded.id, t).await?.unwrap();
    assert_eq!(marked.uploaded_at_ms, t);
    // Marking again keeps the first time.
    assert_eq!(db.store.mark_uploaded(uploaded.id, t + 5).await?.unwrap().uploaded_at_ms, t);
    assert_eq!(db.store.mark_uploaded(AttachmentId::generate(), t).await?, None);
    let bobs = created(db, &new_attachment(c, b, 10), 1000).await?;
    db.store.mark_uploaded(bobs.id, t).await?;
    let elsewhere = created(db, &new_attachment(other_c, a, 10), 1000).await?;
    db.store.mark_uploaded(elsewhere.id, t).await?;

    // Each refused attachment refuses the whole message: nothing is stored.
    for refused in [pending.id, bobs.id, elsewhere.id, AttachmentId::generate()] {
        let m = NewMessage { attachments: vec![uploaded.id, refused], ..message(c, a, 1) };
        assert_eq!(db.store.send_message(&m).await?, SendOutcome::AttachmentRefused(refused));
        assert_eq!(db.store.message(c, m.id).await?, None);
        assert_eq!(db.store.attachment(uploaded.id).await?.unwrap().message_id, None, "not linked");
    }
    let m = NewMessage { attachments: vec![uploaded.id], ..message(c, a, 1) };
    let stored = send(db, &m).await?;
    assert_eq!(db.store.attachment(uploaded.id).await?.unwrap().message_id, Some(stored.id));
    // A retried send is the same message; another message cannot take it.
    assert!(matches!(db.store.send_message(&m).await?, SendOutcome::Duplicate(_)));
    let second = NewMessage { attachments: vec![uploaded.id], ..message(c, a, 2) };
    assert_eq!(db.store.send_message(&second).await?, SendOutcome::AttachmentRefused(uploaded.id));

    // An expired attachment cannot be linked.
    let ttl = NewAttachment { expires_at_ms: now_ms() - 1, ..new_attachment(c, a, 10) };
    created(db, &ttl, 1000).await?;
    db.store.mark_uploaded(ttl.id, t).await?;
    let late = NewMessage { attachments: vec![ttl.id], ..message(c, a, 3) };
    assert_eq!(db.store.send_message(&late).await?, SendOutcome::AttachmentRefused(ttl.id));
    Ok(())
}

pub(super) async fn due_attachments_are_expired_orphaned_or_of_deleted_messages(
    db: &Fresh,
) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob"]).await?;
    let (a, b) = (ids[0], ids[1]);
    let (c, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    let t = now_ms();
    let at = |ms: i64| NewAttachment { now_ms: ms, ..new_attachment(c, a, 10) };
    let linked = created(db, &at(t - 10_000), 1_000_000).await?;
    db.store.mark_uploaded(linked.id, t).await?;
    let m = send(db, &NewMessage { attachments: vec![linked.id], ..message(c, a, 1) }).await?;
    let with_ttl = NewAttachment { expires_at_ms: t + 1000, ..at(t - 10_000) };
    created(db, &with_ttl, 1_000_000).await?;
    db.store.mark_uploaded(with_ttl.id, t).await?;
    send(db, &NewMessage { attachments: vec![with_ttl.id], ..message(c, a, 2) }).await?;
    let old_orphan = created(db, &at(t - 5000), 1_000_000).await?;
    let young_orphan = created(db, &at(t - 10), 1_000_000).await?;

    let due = |now: i64| async move {
        let due = db.store.due_attachments(now, t - 1000, 100).await?;
        anyhow::Ok(due.into_iter().map(|d| d.id).collect::<Vec<_>>())
    };
    assert_eq!(due(t).await?, [old_orphan.id], "only the orphan past the grace period");
    // Claimed for deletion: it can no longer go with a message.
    db.store.mark_uploaded(old_orphan.id, t).await?;
    let late = NewMessage { attachments: vec![old_orphan.id], ..message(c, a, 3) };
    assert_eq!(db.store.send_message(&late).await?, SendOutcome::AttachmentRefused(old_orphan.id));
    assert_eq!(due(t + 1000).await?, [with_ttl.id, old_orphan.id], "and the one past its TTL");

    // Deleting the message makes its attachment due at once.
    db.store.delete_message(c, m.id, t + 1).await?;
    let record = db.store.attachment(linked.id).await?.unwrap();
    assert_eq!(record.expires_at_ms, t + 1);
    assert!(record.expired(t + 1) && !record.expired(t));
    assert_eq!(due(t + 1).await?, [linked.id, old_orphan.id]);

    // The uploader expires one by hand; an earlier expiry stays.
    assert!(db.store.expire_attachment(young_orphan.id, t + 2).await?);
    assert!(db.store.expire_attachment(linked.id, t + 50).await?);
    assert_eq!(db.store.attachment(linked.id).await?.unwrap().expires_at_ms, t + 1);
    assert!(!db.store.expire_attachment(AttachmentId::generate(), t).await?);
    assert_eq!(due(t + 2).await?, [linked.id, old_orphan.id, young_orphan.id]);

    // Deleting rows: downloads go with them; usage drops.
    assert!(db.store.record_download(linked.id, b, t).await?);
    for id in [linked.id, old_orphan.id, young_orphan.id] {
        assert!(db.store.delete_attachment(id).await?);
        assert!(!db.store.delete_attachment(id).await?, "once");
        assert_eq!(db.store.attachment(id).await?, None);
    }
    assert!(db.store.downloads(linked.id).await?.is_empty());
    assert_eq!(db.store.attachment_usage(a).await?, 10);
    assert_eq!(due(t + 2).await?, Vec::<AttachmentId>::new());
    Ok(())
}

pub(super) async fn existing_attachments_names_the_ids_with_a_row(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob"]).await?;
    let (c, _) = db.store.open_direct(ConversationId::generate(), (ids[0], ids[1]), now_ms()).await?;
    let pending = created(db, &new_attachment(c, ids[0], 10), 1000).await?;
    let uploaded = created(db, &new_attachment(c, ids[1], 10), 1000).await?;
    db.store.mark_uploaded(uploaded.id, now_ms()).await?;
    let expired = created(db, &new_attachment(c, ids[0], 10), 1000).await?;
    db.store.expire_attachment(expired.id, now_ms()).await?;
    let deleted = created(db, &new_attachment(c, ids[0], 10), 1000).await?;
    db.store.delete_attachment(deleted.id).await?;
    let stray = AttachmentId::generate();

    assert!(db.store.existing_attachments(&[]).await?.is_empty());
    let mut found =
        db.store.existing_attachments(&[stray, pending.id, deleted.id, uploaded.id, expired.id]).await?;
    found.sort();
    let mut want = vec![pending.id, uploaded.id, expired.id];
    want.sort();
    assert_eq!(found, want, "every row counts, in any state; a deleted one and a stray do not");
    // A full sweep batch in one query.
    let mut many: Vec<AttachmentId> = (0..500).map(|_| AttachmentId::generate()).collect();
    many.push(pending.id);
    assert_eq!(db.store.existing_attachments(&many).await?, vec![pending.id]);
    Ok(())
}

pub(super) async fn downloads_are_recorded_once_per_account(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "bob", "cat"]).await?;
    let group = ConversationId::generate();
    db.store.create_group(group, "Team", ids[0], &ids[1..], now_ms()).await?;
    let a = created(db, &new_attachment(group, ids[0], 10), 1000).await?;
    let t = now_ms();
    assert!(db.store.record_download(a.id, ids[2], t + 2).await?);
    assert!(db.store.record_download(a.id, ids[1], t + 1).await?);
    assert!(!db.store.record_download(a.id, ids[1], t + 9).await?, "the first time counts");
    assert_eq!(db.store.downloads(a.id).await?, [(ids[1], t + 1), (ids[2], t + 2)]);
    assert!(!db.store.record_download(AttachmentId::generate(), ids[1], t).await?, "gone");
    Ok(())
}
