//! Conformance of `AvatarStore`: avatars.

use super::Fresh;
use super::conversations::accounts;
use super::delivery::accept_all;
use crate::ids::{AccountId, AvatarId, ConversationId};
use crate::{AvatarChange, GroupAvatarOutcome, Role, now_ms};

pub(super) async fn account_avatars_replace_each_other_and_count_versions(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ann", "ben", "cid"]).await?;
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let fresh = db.store.account(a).await?.expect("exists");
    assert_eq!((fresh.avatar_id, fresh.avatar_version), (None, 0));
    let (first, second) = (AvatarId::generate(), AvatarId::generate());
    assert_eq!(
        db.store.set_account_avatar(a, Some(first)).await?,
        Some(AvatarChange { previous: None, version: 1 })
    );
    assert_eq!(
        db.store.set_account_avatar(a, Some(second)).await?,
        Some(AvatarChange { previous: Some(first), version: 2 })
    );
    let record = db.store.account(a).await?.expect("exists");
    assert_eq!((record.avatar_id, record.avatar_version), (Some(second), 2));
    assert_eq!(
        db.store.set_account_avatar(a, None).await?,
        Some(AvatarChange { previous: Some(second), version: 3 })
    );
    let record = db.store.account(a).await?.expect("exists");
    assert_eq!((record.avatar_id, record.avatar_version), (None, 3));
    assert_eq!(db.store.set_account_avatar(AccountId::generate(), Some(first)).await?, None);
    // Others are untouched.
    assert_eq!(db.store.account(b).await?.expect("exists").avatar_version, 0);
    // Contacts: sharing a conversation.
    assert!(!db.store.are_contacts(a, b).await?);
    let (direct, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    assert!(!db.store.are_contacts(a, b).await?, "a request makes no contact");
    accept_all(db, direct).await?;
    assert!(db.store.are_contacts(a, b).await? && db.store.are_contacts(b, a).await?);
    assert!(!db.store.are_contacts(a, c).await?);
    Ok(())
}

pub(super) async fn racing_avatar_changes_each_replace_one_blob(db: &Fresh) -> anyhow::Result<()> {
    // Every blob but the last is handed back as "previous" exactly once: none is lost.
    let ids = accounts(db, &["rac"]).await?;
    let other = db.reopen().await?;
    let mut racers = tokio::task::JoinSet::new();
    let mut set = Vec::new();
    for i in 0..12 {
        let (store, id) = (if i % 2 == 0 { db.store.clone() } else { other.clone() }, AvatarId::generate());
        set.push(id);
        let account = ids[0];
        racers.spawn(async move { store.set_account_avatar(account, Some(id)).await });
    }
    let mut previous = Vec::new();
    let mut versions = Vec::new();
    while let Some(result) = racers.join_next().await {
        let change = result??.expect("exists");
        versions.push(change.version);
        previous.extend(change.previous);
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=12).collect::<Vec<i64>>());
    let current = db.store.account(ids[0]).await?.expect("exists").avatar_id.expect("set");
    previous.push(current);
    previous.sort();
    set.sort();
    assert_eq!(previous, set, "each blob is current or was replaced once");
    Ok(())
}

pub(super) async fn group_avatars_are_set_by_owners_and_admins(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["own", "adm", "mem", "out"]).await?;
    let (owner, admin, member, outsider) = (ids[0], ids[1], ids[2], ids[3]);
    let group = ConversationId::generate();
    db.store.create_group(group, "Crew", owner, &[admin, member], now_ms()).await?;
    db.store.set_role(group, admin, Role::Admin).await?;
    let (first, second) = (AvatarId::generate(), AvatarId::generate());
    assert_eq!(
        db.store.set_group_avatar(group, owner, Some(first)).await?,
        GroupAvatarOutcome::Changed(AvatarChange { previous: None, version: 1 })
    );
    assert_eq!(
        db.store.set_group_avatar(group, admin, Some(second)).await?,
        GroupAvatarOutcome::Changed(AvatarChange { previous: Some(first), version: 2 })
    );
    assert_eq!(db.store.set_group_avatar(group, member, None).await?, GroupAvatarOutcome::NotAllowed);
    assert_eq!(db.store.set_group_avatar(group, outsider, None).await?, GroupAvatarOutcome::NotMember);
    assert_eq!(
        db.store.set_group_avatar(ConversationId::generate(), owner, None).await?,
        GroupAvatarOutcome::NotMember
    );
    let record = db.store.conversation(group).await?.expect("exists");
    assert_eq!((record.avatar_id, record.avatar_version), (Some(second), 2));
    let (direct, _) = db.store.open_direct(ConversationId::generate(), (owner, member), now_ms()).await?;
    assert_eq!(db.store.set_group_avatar(direct, owner, Some(first)).await?, GroupAvatarOutcome::NotAGroup);
    let record = db.store.conversation(direct).await?.expect("exists");
    assert_eq!((record.avatar_id, record.avatar_version), (None, 0));
    Ok(())
}
