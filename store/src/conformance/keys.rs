//! Conformance of `KeyStore`: keys.

use super::Fresh;
use super::accounts::{new_account, new_device};
use crate::ids::{AccountId, ConversationId, DeviceId};
use crate::{AccountKeyOutcome, DeviceKeysRecord, KeyUpload, KeyUploadOutcome, SignedKeyRecord, now_ms};

fn signed(key_id: i64) -> SignedKeyRecord {
    SignedKeyRecord { key_id, public_key: vec![key_id as u8; 32], signature: vec![7; 64] }
}

fn identity(device: DeviceId, seed: u8) -> DeviceKeysRecord {
    DeviceKeysRecord {
        device_id: device,
        certificate: vec![seed; 217],
        ed25519: vec![seed; 32],
        curve25519: vec![seed; 32],
    }
}

fn upload(
    identity: Option<DeviceKeysRecord>,
    otks: impl IntoIterator<Item = i64>,
    fallback: Option<i64>,
) -> KeyUpload {
    KeyUpload {
        identity,
        one_time_keys: otks.into_iter().map(signed).collect(),
        fallback_key: fallback.map(signed),
        max_one_time_keys: 10,
        now_ms: now_ms(),
    }
}

async fn version(db: &Fresh, account: AccountId) -> anyhow::Result<i64> {
    Ok(db.store.query_keys(&[account]).await?.first().map(|a| a.device_list_version).unwrap_or(-1))
}

pub(super) async fn account_keys_are_set_once_unless_replaced(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("lena");
    let device = new_device(a.id, 40);
    db.store.create_account(&a, &device).await?;
    assert_eq!(db.store.publish_account_key(a.id, &[1; 32], false).await?, AccountKeyOutcome::Set);
    assert_eq!(db.store.publish_account_key(a.id, &[1; 32], false).await?, AccountKeyOutcome::Unchanged);
    assert_eq!(db.store.publish_account_key(a.id, &[2; 32], false).await?, AccountKeyOutcome::Exists);
    assert_eq!(db.store.account_key(a.id).await?, Some(vec![1; 32]));
    db.store.upload_keys(a.id, device.id, &upload(Some(identity(device.id, 1)), 1..=3, Some(1))).await?;
    let before = version(db, a.id).await?;
    assert_eq!(db.store.publish_account_key(a.id, &[2; 32], true).await?, AccountKeyOutcome::Replaced);
    // Everything certified by the old key is gone, and contacts can tell.
    assert_eq!(db.store.device_keys(device.id).await?, None);
    assert_eq!(db.store.key_counts(device.id).await?, (0, false));
    assert!(version(db, a.id).await? > before);
    Ok(())
}

pub(super) async fn key_uploads_are_all_or_nothing_and_idempotent(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("mia");
    let device = new_device(a.id, 41);
    db.store.create_account(&a, &device).await?;
    let v0 = version(db, a.id).await?;
    let stored =
        db.store.upload_keys(a.id, device.id, &upload(Some(identity(device.id, 1)), 1..=5, Some(1))).await?;
    assert_eq!(stored, KeyUploadOutcome::Stored { one_time_keys: 5, has_fallback_key: true });
    assert!(version(db, a.id).await? > v0, "a device with keys appeared");
    // The same keys again change nothing; new ones add up.
    let again = db.store.upload_keys(a.id, device.id, &upload(None, 1..=7, None)).await?;
    assert_eq!(again, KeyUploadOutcome::Stored { one_time_keys: 7, has_fallback_key: true });
    // Over the limit: refused whole.
    assert_eq!(
        db.store.upload_keys(a.id, device.id, &upload(None, 8..=12, Some(2))).await?,
        KeyUploadOutcome::TooManyKeys
    );
    assert_eq!(db.store.key_counts(device.id).await?, (7, true));
    // New identity keys drop the keys signed with the old ones.
    let v1 = version(db, a.id).await?;
    let renewed =
        db.store.upload_keys(a.id, device.id, &upload(Some(identity(device.id, 2)), [20], None)).await?;
    assert_eq!(renewed, KeyUploadOutcome::Stored { one_time_keys: 1, has_fallback_key: false });
    assert_eq!(db.store.device_keys(device.id).await?.map(|k| k.ed25519), Some(vec![2; 32]));
    assert!(version(db, a.id).await? > v1);
    Ok(())
}

pub(super) async fn one_time_keys_are_claimed_once_even_when_racing(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("nina");
    let device = new_device(a.id, 42);
    db.store.create_account(&a, &device).await?;
    db.store.upload_keys(a.id, device.id, &upload(Some(identity(device.id, 3)), 1..=5, Some(99))).await?;
    let mut claimers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = db.store.clone();
        claimers.spawn(async move { store.claim_key(device.id, true).await });
    }
    let (mut one_time, mut fallback) = (Vec::new(), 0);
    while let Some(claimed) = claimers.join_next().await {
        let claimed = claimed??.expect("a key for every claimer");
        if claimed.fallback {
            assert_eq!(claimed.key.key_id, 99);
            fallback += 1;
        } else {
            one_time.push(claimed.key.key_id);
        }
    }
    one_time.sort_unstable();
    assert_eq!(one_time, [1, 2, 3, 4, 5], "each one-time key exactly once");
    assert_eq!(fallback, 15);
    assert_eq!(db.store.key_counts(device.id).await?, (0, true), "the fallback key stays");
    let nobody = new_device(a.id, 43);
    db.store.create_device(&nobody).await?;
    assert_eq!(db.store.claim_key(nobody.id, true).await?, None, "nothing uploaded, nothing to claim");
    Ok(())
}

pub(super) async fn one_time_keys_can_be_withheld_for_the_fallback_key(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("nora");
    let (d1, d2) = (new_device(a.id, 46), new_device(a.id, 47));
    db.store.create_account(&a, &d1).await?;
    db.store.create_device(&d2).await?;
    db.store.upload_keys(a.id, d1.id, &upload(Some(identity(d1.id, 6)), 1..=3, Some(77))).await?;
    let withheld = db.store.claim_key(d1.id, false).await?.expect("the fallback key");
    assert_eq!((withheld.key.key_id, withheld.fallback), (77, true));
    assert_eq!(db.store.key_counts(d1.id).await?, (3, true), "no one-time key was taken");
    let taken = db.store.claim_key(d1.id, true).await?.expect("a one-time key");
    assert_eq!((taken.key.key_id, taken.fallback), (1, false));
    // One-time keys but no fallback key: withholding them leaves nothing to hand out.
    db.store.upload_keys(a.id, d2.id, &upload(Some(identity(d2.id, 7)), 1..=2, None)).await?;
    assert_eq!(db.store.claim_key(d2.id, false).await?, None);
    assert_eq!(db.store.key_counts(d2.id).await?, (2, false));
    Ok(())
}

pub(super) async fn contacts_of_a_device_are_its_owner_and_who_shares_a_conversation(
    db: &Fresh,
) -> anyhow::Result<()> {
    let (owner, friend, group_mate, stranger) =
        (new_account("ola"), new_account("pete"), new_account("quin"), new_account("rob"));
    let device = new_device(owner.id, 48);
    db.store.create_account(&owner, &device).await?;
    for (n, account) in [&friend, &group_mate, &stranger].into_iter().enumerate() {
        db.store.create_account(account, &new_device(account.id, 49 + n as u8)).await?;
    }
    let contact = |account: AccountId| db.store.is_contact_of_device(account, device.id);
    assert_eq!(contact(owner.id).await?, Some(true), "its own account");
    // A conversation the friend opened is a request until the owner accepts it.
    let (direct, _) =
        db.store.open_direct(ConversationId::generate(), (friend.id, owner.id), now_ms()).await?;
    assert_eq!(contact(friend.id).await?, Some(false), "a pending request makes no contact");
    db.store.accept_request(direct, owner.id).await?;
    assert_eq!(contact(friend.id).await?, Some(true), "an accepted direct conversation");
    let group = ConversationId::generate();
    db.store.create_group(group, "LAN", stranger.id, &[group_mate.id], now_ms()).await?;
    db.store.accept_request(group, group_mate.id).await?;
    assert_eq!(contact(group_mate.id).await?, Some(false), "a group without the owner");
    assert_eq!(contact(stranger.id).await?, Some(false));
    db.store.add_members(group, stranger.id, &[owner.id], 1000, now_ms()).await?;
    assert_eq!(contact(stranger.id).await?, Some(false), "a group the owner is only invited to");
    db.store.accept_request(group, owner.id).await?;
    assert_eq!(contact(group_mate.id).await?, Some(true), "a group with the owner");
    assert_eq!(contact(stranger.id).await?, Some(true), "the group's creator");
    // A block, either way, ends it.
    db.store.block(owner.id, friend.id, now_ms()).await?;
    assert_eq!(contact(friend.id).await?, Some(false), "blocked by the owner");
    db.store.block(group_mate.id, owner.id, now_ms()).await?;
    assert_eq!(contact(group_mate.id).await?, Some(false), "the owner is blocked by them");
    assert_eq!(db.store.is_contact_of_device(owner.id, DeviceId::generate()).await?, None, "no such device");
    Ok(())
}

pub(super) async fn removing_a_device_removes_its_keys_and_moves_the_version(
    db: &Fresh,
) -> anyhow::Result<()> {
    let a = new_account("olga");
    let (d1, d2) = (new_device(a.id, 44), new_device(a.id, 45));
    db.store.create_account(&a, &d1).await?;
    db.store.create_device(&d2).await?;
    for (d, seed) in [(&d1, 4), (&d2, 5)] {
        db.store.upload_keys(a.id, d.id, &upload(Some(identity(d.id, seed)), 1..=2, None)).await?;
    }
    let listed = db.store.query_keys(&[a.id, AccountId::generate()]).await?;
    assert_eq!(listed.len(), 1, "unknown accounts are left out");
    assert_eq!(listed[0].devices.iter().map(|d| d.device_id).collect::<Vec<_>>(), [d1.id, d2.id]);
    let before = listed[0].device_list_version;
    db.store.delete_device(Some(a.id), d2.id).await?;
    let after = &db.store.query_keys(&[a.id]).await?[0];
    assert_eq!(after.devices.len(), 1);
    assert!(after.device_list_version > before);
    assert_eq!(db.store.key_counts(d2.id).await?, (0, false));
    Ok(())
}
