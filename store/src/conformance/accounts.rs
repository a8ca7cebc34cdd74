//! Conformance of `AccountStore` and `DeviceStore`: accounts and devices.

use super::Fresh;
use crate::ids::{AccountId, DeviceId};
use crate::{Conflict, NewAccount, NewDevice, RefreshOutcome, SessionTokens, StoreError, now_ms};

pub(super) fn new_account(username: &str) -> NewAccount {
    NewAccount {
        id: AccountId::generate(),
        username: username.to_owned(),
        display_name: username.to_owned(),
        email: None,
        password_hash: "$argon2id$test".to_owned(),
        created_at_ms: now_ms(),
    }
}

fn tokens(seed: u8, now: i64) -> SessionTokens {
    SessionTokens {
        access_hash: [seed; 32],
        access_expires_at_ms: now + 60_000,
        refresh_hash: [seed.wrapping_add(100); 32],
        refresh_expires_at_ms: now + 3_600_000,
    }
}

pub(super) fn new_device(account: AccountId, seed: u8) -> NewDevice {
    let now = now_ms();
    NewDevice {
        id: DeviceId::generate(),
        account_id: account,
        name: format!("device {seed}"),
        created_at_ms: now,
        tokens: tokens(seed, now),
        password_reset_until_ms: 0,
    }
}

pub(super) async fn account_and_device_are_created_together(db: &Fresh) -> anyhow::Result<()> {
    let alice = new_account("alice");
    let device = new_device(alice.id, 1);
    db.store.create_account(&alice, &device).await?;
    let stored = db.store.account_by_username("alice").await?.expect("alice exists");
    assert_eq!((stored.id, stored.display_name.as_str(), stored.disabled), (alice.id, "alice", false));
    assert_eq!(db.store.list_devices(alice.id).await?.len(), 1);

    // A taken username: refused, and the new device was not written either.
    let copy = new_account("alice");
    let other_device = new_device(copy.id, 2);
    let err = db.store.create_account(&copy, &other_device).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::Username)), "{err:?}");
    assert!(db.store.device(other_device.id).await?.is_none());

    // A device that cannot be written (its token hash is taken): the account is not left behind.
    let bob = new_account("bob");
    let clash = NewDevice { id: DeviceId::generate(), ..new_device(bob.id, 1) };
    assert!(db.store.create_account(&bob, &clash).await.is_err());
    assert!(db.store.account_by_username("bob").await?.is_none());
    assert_eq!(db.store.list_accounts().await?.len(), 1);
    Ok(())
}

pub(super) async fn verified_email_belongs_to_one_account(db: &Fresh) -> anyhow::Result<()> {
    let (a, b) = (new_account("anna"), new_account("boris"));
    db.store.create_account_without_device(&a).await?;
    db.store.create_account_without_device(&b).await?;
    // Both may claim the address while unverified...
    assert!(db.store.set_email(a.id, Some("x@example.org")).await?);
    assert!(db.store.set_email(b.id, Some("x@example.org")).await?);
    assert!(db.store.mark_email_verified(a.id, "x@example.org").await?);
    assert_eq!(db.store.account_by_verified_email("x@example.org").await?.map(|r| r.id), Some(a.id));
    // ...but only one may verify it.
    let err = db.store.mark_email_verified(b.id, "x@example.org").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::Email)), "{err:?}");
    // Verifying an address that is no longer the account's does nothing.
    assert!(!db.store.mark_email_verified(b.id, "other@example.org").await?);
    Ok(())
}

pub(super) async fn totp_steps_are_accepted_once_and_in_order(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("tina");
    db.store.create_account_without_device(&a).await?;
    assert!(!db.store.accept_totp_step(a.id, 10).await?, "no TOTP enrolled yet");
    assert!(db.store.set_totp_pending(a.id, Some(b"secret-1")).await?);
    assert!(!db.store.enable_totp(a.id, b"other", 5).await?, "only the pending secret");
    assert!(db.store.enable_totp(a.id, b"secret-1", 5).await?);
    let stored = db.store.account(a.id).await?.expect("exists");
    assert_eq!(stored.totp_secret.as_deref(), Some(&b"secret-1"[..]));
    assert_eq!(stored.totp_pending_secret, None);
    assert!(!db.store.accept_totp_step(a.id, 5).await?, "the enrolment step is used");
    assert!(db.store.accept_totp_step(a.id, 6).await?);
    assert!(!db.store.accept_totp_step(a.id, 6).await?, "never twice");
    assert!(!db.store.accept_totp_step(a.id, 4).await?, "never an older one");
    // Racing sign-ins with the same code: exactly one wins.
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = db.store.clone();
        racers.spawn(async move { store.accept_totp_step(a.id, 7).await });
    }
    let mut wins = 0;
    while let Some(won) = racers.join_next().await {
        wins += usize::from(won??);
    }
    assert_eq!(wins, 1);
    assert!(db.store.disable_totp(a.id).await?);
    assert!(db.store.account(a.id).await?.expect("exists").totp_secret.is_none());
    Ok(())
}

pub(super) async fn totp_secrets_are_replaced_only_while_unchanged(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("tess");
    db.store.create_account_without_device(&a).await?;
    assert!(!db.store.replace_totp_secret(a.id, b"plain-1", b"sealed-1").await?, "nothing enrolled");
    assert!(db.store.set_totp_pending(a.id, Some(b"plain-1")).await?);
    assert!(db.store.enable_totp(a.id, b"plain-1", 5).await?);
    assert!(db.store.set_totp_pending(a.id, Some(b"plain-2")).await?);
    // The active one is replaced, the pending one is left as it is, and the other way round.
    assert!(db.store.replace_totp_secret(a.id, b"plain-1", b"sealed-1").await?);
    let stored = db.store.account(a.id).await?.expect("exists");
    assert_eq!(stored.totp_secret.as_deref(), Some(&b"sealed-1"[..]));
    assert_eq!(stored.totp_pending_secret.as_deref(), Some(&b"plain-2"[..]));
    assert!(db.store.replace_totp_secret(a.id, b"plain-2", b"sealed-2").await?);
    let stored = db.store.account(a.id).await?.expect("exists");
    assert_eq!(stored.totp_secret.as_deref(), Some(&b"sealed-1"[..]));
    assert_eq!(stored.totp_pending_secret.as_deref(), Some(&b"sealed-2"[..]));
    // A secret that changed meanwhile is not overwritten.
    assert!(!db.store.replace_totp_secret(a.id, b"plain-1", b"stale").await?);
    assert_eq!(db.store.account(a.id).await?.expect("exists").totp_secret.as_deref(), Some(&b"sealed-1"[..]));
    Ok(())
}

pub(super) async fn access_tokens_authenticate_until_expiry_or_sign_out(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("dora");
    let device = new_device(a.id, 3);
    db.store.create_account(&a, &device).await?;
    let now = now_ms();
    let found = db.store.authenticate(&[3; 32], now).await?.expect("valid token");
    assert_eq!((found.account_id, found.device_id, found.account_disabled), (a.id, device.id, false));
    assert!(db.store.authenticate(&[3; 32], now + 61_000).await?.is_none(), "expired");
    assert!(db.store.authenticate(&[9; 32], now).await?.is_none(), "unknown");
    db.store.set_disabled(a.id, true).await?;
    assert!(db.store.authenticate(&[3; 32], now).await?.expect("still found").account_disabled);
    // Only the owner's account can sign a device out through the scoped delete.
    assert!(!db.store.delete_device(Some(AccountId::generate()), device.id).await?);
    assert!(db.store.delete_device(Some(a.id), device.id).await?);
    assert!(db.store.authenticate(&[3; 32], now).await?.is_none(), "signed out");
    Ok(())
}

pub(super) async fn refresh_tokens_rotate_once_and_reuse_signs_out(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("eve");
    let device = new_device(a.id, 4);
    db.store.create_account(&a, &device).await?;
    let old_refresh = device.tokens.refresh_hash;
    let now = now_ms();
    let next = tokens(5, now);
    let outcome = db.store.rotate_refresh(&old_refresh, &next, now).await?;
    assert!(matches!(outcome, RefreshOutcome::Rotated(d) if d.device_id == device.id), "{outcome:?}");
    assert!(
        db.store.authenticate(&device.tokens.access_hash, now).await?.is_none(),
        "old access token is gone"
    );
    assert!(db.store.authenticate(&next.access_hash, now).await?.is_some());
    // The old refresh token again: theft. The device is signed out, new tokens and all.
    let reused = db.store.rotate_refresh(&old_refresh, &tokens(6, now), now).await?;
    assert_eq!(reused, RefreshOutcome::Reused { device: device.id, account: a.id });
    assert!(db.store.device(device.id).await?.is_none());
    // Recorded like a sign-out, so every node closes the device's sockets.
    assert!(db.store.revocations_since(now - 1_000).await?.contains(&device.id), "no revocation recorded");
    assert!(db.store.authenticate(&next.access_hash, now).await?.is_none());
    assert_eq!(db.store.rotate_refresh(&[42; 32], &tokens(7, now), now).await?, RefreshOutcome::Unknown);
    Ok(())
}

pub(super) async fn other_devices_are_signed_out_together(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("gina");
    let kept = new_device(a.id, 20);
    db.store.create_account(&a, &kept).await?;
    let (phone, tablet) = (new_device(a.id, 21), new_device(a.id, 22));
    db.store.create_device(&phone).await?;
    db.store.create_device(&tablet).await?;
    let stranger = new_account("hank");
    let theirs = new_device(stranger.id, 23);
    db.store.create_account(&stranger, &theirs).await?;
    let now = now_ms();
    let mut gone = db.store.delete_other_devices(a.id, kept.id).await?;
    gone.sort_unstable();
    let mut want = vec![phone.id, tablet.id];
    want.sort_unstable();
    assert_eq!(gone, want);
    let listed: Vec<_> = db.store.list_devices(a.id).await?.into_iter().map(|d| d.id).collect();
    assert_eq!(listed, vec![kept.id]);
    let revoked = db.store.revocations_since(now - 1_000).await?;
    assert!(revoked.contains(&phone.id) && revoked.contains(&tablet.id), "{revoked:?}");
    assert!(!revoked.contains(&kept.id));
    assert!(db.store.device(theirs.id).await?.is_some(), "another account's device was touched");
    assert!(db.store.delete_other_devices(a.id, kept.id).await?.is_empty(), "nothing left to sign out");
    Ok(())
}

pub(super) async fn expired_refresh_tokens_do_not_rotate(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("fred");
    let device = new_device(a.id, 8);
    db.store.create_account(&a, &device).await?;
    let later = device.tokens.refresh_expires_at_ms + 1;
    let outcome = db.store.rotate_refresh(&device.tokens.refresh_hash, &tokens(9, later), later).await?;
    assert_eq!(outcome, RefreshOutcome::Unknown);
    Ok(())
}

pub(super) async fn racing_refreshes_of_one_token_rotate_at_most_once(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("gina");
    let device = new_device(a.id, 10);
    db.store.create_account(&a, &device).await?;
    let mut racers = tokio::task::JoinSet::new();
    for seed in 20..28u8 {
        let store = db.store.clone();
        let presented = device.tokens.refresh_hash;
        racers
            .spawn(async move { store.rotate_refresh(&presented, &tokens(seed, now_ms()), now_ms()).await });
    }
    let mut rotated = 0;
    while let Some(outcome) = racers.join_next().await {
        // A racer may also find the database busy; what matters is that no two rotate.
        if let Ok(Ok(RefreshOutcome::Rotated(_))) = outcome {
            rotated += 1;
        }
    }
    assert!(rotated <= 1, "{rotated} racers rotated the same token");
    Ok(())
}

pub(super) async fn devices_are_listed_renamed_and_scoped_to_their_account(db: &Fresh) -> anyhow::Result<()> {
    let (a, b) = (new_account("hana"), new_account("igor"));
    let (d1, d2) = (new_device(a.id, 30), new_device(a.id, 31));
    db.store.create_account(&a, &d1).await?;
    db.store.create_device(&d2).await?;
    db.store.create_account(&b, &new_device(b.id, 32)).await?;
    let listed: Vec<_> = db.store.list_devices(a.id).await?.into_iter().map(|d| d.id).collect();
    assert_eq!(listed, [d1.id, d2.id]);
    let renamed = db.store.rename_device(a.id, d2.id, "Phone").await?.expect("a's device");
    assert_eq!(renamed.name, "Phone");
    assert!(db.store.rename_device(b.id, d2.id, "Stolen").await?.is_none(), "not b's device");
    assert!(db.store.delete_device(None, d1.id).await?);
    assert_eq!(db.store.list_devices(a.id).await?.len(), 1);
    Ok(())
}
