//! The store conformance suite: every test here runs twice, on a fresh SQLite file and on a
//! fresh PostgreSQL database (`store::conformance::sqlite::*` and `…::postgres::*` in the test
//! output). PostgreSQL is required: without it these tests fail, they are never skipped.
//! Every new store trait adds its tests to the `conformance!` list at the bottom.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kitsulan_e2e::postgres::TestDatabase;

use super::{
    AcceptOutcome, AccountEvent, AccountKeyOutcome, AddOutcome, AttachmentRecord, AvatarChange, CallRecord,
    CodePurpose, Conflict, ConnectOptions, ConversationCursor, ConversationFilter, ConversationKind,
    CreateAttachmentOutcome, DeviceAcks, DeviceKeysRecord, GroupAvatarOutcome, InboxQuota, JoinOutcome,
    KeyUpload, KeyUploadOutcome, MessageRecord, NewAccount, NewAttachment, NewCall, NewCode, NewDevice,
    NewMessage, NewPairing, NewToDevice, PairingConflict, PairingStatus, Receipt, RefreshOutcome, Role,
    SendOutcome, SendRefusal, SessionTokens, SignedKeyRecord, StartOutcome, Store, StoreError, connect,
    now_ms,
};
use crate::DatabaseUrl;
use crate::ids::{
    AccountId, AttachmentId, AvatarId, CallId, CodeId, ConversationId, DeviceId, MessageId, PairingId,
};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A store on a database of its own (migrated unless asked otherwise), dropped with it.
struct Fresh {
    kind: Kind,
    store: Arc<dyn Store>,
    url: DatabaseUrl,
    _keep: Keep,
}

enum Keep {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] TestDatabase),
}

impl Fresh {
    async fn new(kind: Kind) -> anyhow::Result<Self> {
        let db = Self::unmigrated(kind).await?;
        db.store.migrate().await?;
        Ok(db)
    }

    async fn unmigrated(kind: Kind) -> anyhow::Result<Self> {
        let (url, keep) = match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir()?;
                (DatabaseUrl::Sqlite(dir.path().join("kitsulan.db")), Keep::Sqlite(dir))
            }
            Kind::Postgres => {
                let db = TestDatabase::create().await?;
                (DatabaseUrl::Postgres(db.url().to_owned()), Keep::Postgres(db))
            }
        };
        let store = connect(&url, &ConnectOptions::default()).await?;
        Ok(Self { kind, store, url, _keep: keep })
    }

    /// A second, independent connection pool to the same database, as another process has.
    async fn reopen(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(connect(&self.url, &ConnectOptions::default()).await?)
    }
}

async fn migrations_are_idempotent(db: &Fresh) -> anyhow::Result<()> {
    let again = db.store.migrate().await?;
    assert!(again.applied.is_empty(), "second run applied {:?}", again.applied);
    assert!(again.total >= 1);
    Ok(())
}

async fn fresh_database_reports_every_migration(db: &Fresh) -> anyhow::Result<()> {
    let empty = Fresh::unmigrated(db.kind).await?;
    let first = empty.store.migrate().await?;
    assert_eq!(first.applied.len(), first.total);
    assert!(first.applied.iter().any(|m| m.starts_with("0001 ")), "{:?}", first.applied);
    Ok(())
}

async fn ping_answers(db: &Fresh) -> anyhow::Result<()> {
    db.store.ping().await?;
    Ok(())
}

async fn instance_is_created_once(db: &Fresh) -> anyhow::Result<()> {
    let first = db.store.instance().await?;
    let second = db.store.instance().await?;
    assert_eq!(first, second);
    assert!(first.created_at_ms > 1_700_000_000_000, "{first:?}");
    Ok(())
}

async fn instance_survives_reconnect(db: &Fresh) -> anyhow::Result<()> {
    let before = db.store.instance().await?;
    db.store.close().await;
    let other = db.reopen().await?;
    assert_eq!(other.instance().await?, before);
    Ok(())
}

async fn concurrent_instance_creation_agrees(db: &Fresh) -> anyhow::Result<()> {
    // Two "processes" (pools) and many tasks race to create the identity: one wins, all agree.
    let other = db.reopen().await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let store = if i % 2 == 0 { db.store.clone() } else { other.clone() };
        tasks.spawn(async move { store.instance().await });
    }
    let mut seen = Vec::new();
    while let Some(result) = tasks.join_next().await {
        seen.push(result??);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    Ok(())
}

// ---- accounts and devices ----------------------------------------------------------------

fn new_account(username: &str) -> NewAccount {
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

fn new_device(account: AccountId, seed: u8) -> NewDevice {
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

async fn account_and_device_are_created_together(db: &Fresh) -> anyhow::Result<()> {
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

async fn verified_email_belongs_to_one_account(db: &Fresh) -> anyhow::Result<()> {
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

async fn totp_steps_are_accepted_once_and_in_order(db: &Fresh) -> anyhow::Result<()> {
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

async fn totp_secrets_are_replaced_only_while_unchanged(db: &Fresh) -> anyhow::Result<()> {
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

async fn access_tokens_authenticate_until_expiry_or_sign_out(db: &Fresh) -> anyhow::Result<()> {
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

async fn refresh_tokens_rotate_once_and_reuse_signs_out(db: &Fresh) -> anyhow::Result<()> {
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

async fn other_devices_are_signed_out_together(db: &Fresh) -> anyhow::Result<()> {
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

async fn expired_refresh_tokens_do_not_rotate(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("fred");
    let device = new_device(a.id, 8);
    db.store.create_account(&a, &device).await?;
    let later = device.tokens.refresh_expires_at_ms + 1;
    let outcome = db.store.rotate_refresh(&device.tokens.refresh_hash, &tokens(9, later), later).await?;
    assert_eq!(outcome, RefreshOutcome::Unknown);
    Ok(())
}

async fn racing_refreshes_of_one_token_rotate_at_most_once(db: &Fresh) -> anyhow::Result<()> {
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

async fn devices_are_listed_renamed_and_scoped_to_their_account(db: &Fresh) -> anyhow::Result<()> {
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

// ---- one-time codes --------------------------------------------------------------------

fn code(account: AccountId, purpose: CodePurpose, ttl_ms: i64) -> NewCode {
    NewCode {
        id: CodeId::generate(),
        account_id: account,
        purpose,
        email: Some("x@example.org".into()),
        code_hash: "$argon2id$code".into(),
        created_at_ms: now_ms(),
        expires_at_ms: now_ms() + ttl_ms,
    }
}

async fn codes_allow_limited_tries_and_one_use(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("jan");
    db.store.create_account_without_device(&a).await?;
    let first = code(a.id, CodePurpose::EmailSignIn, 60_000);
    db.store.put_code(&first).await?;
    let second = code(a.id, CodePurpose::EmailSignIn, 60_000);
    db.store.put_code(&second).await?; // replaces the first
    for attempt in 1..=3 {
        let counted = db.store.count_attempt(a.id, CodePurpose::EmailSignIn, 3, now_ms()).await?;
        assert_eq!(counted.map(|c| (c.id, c.attempts)), Some((second.id, attempt)));
    }
    assert!(
        db.store.count_attempt(a.id, CodePurpose::EmailSignIn, 3, now_ms()).await?.is_none(),
        "out of tries"
    );
    assert!(!db.store.consume_code(second.id).await?, "and gone");

    // Other purposes are separate; a code is used once.
    let admin = code(a.id, CodePurpose::AdminSignIn, 60_000);
    db.store.put_code(&admin).await?;
    assert!(db.store.count_attempt(a.id, CodePurpose::EmailVerify, 5, now_ms()).await?.is_none());
    assert!(db.store.count_attempt(a.id, CodePurpose::AdminSignIn, 5, now_ms()).await?.is_some());
    assert!(db.store.consume_code(admin.id).await?);
    assert!(!db.store.consume_code(admin.id).await?);

    // Expired codes count for nothing and are pruned.
    db.store.put_code(&code(a.id, CodePurpose::EmailVerify, 1)).await?;
    assert!(db.store.count_attempt(a.id, CodePurpose::EmailVerify, 5, now_ms() + 10).await?.is_none());
    db.store.put_code(&code(a.id, CodePurpose::EmailVerify, 1)).await?;
    assert_eq!(db.store.prune_codes(now_ms() + 10).await?, 1);
    Ok(())
}

async fn parallel_guesses_cannot_exceed_the_tries(db: &Fresh) -> anyhow::Result<()> {
    let a = new_account("kira");
    db.store.create_account_without_device(&a).await?;
    db.store.put_code(&code(a.id, CodePurpose::EmailSignIn, 60_000)).await?;
    let mut guessers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = db.store.clone();
        guessers.spawn(async move { store.count_attempt(a.id, CodePurpose::EmailSignIn, 5, now_ms()).await });
    }
    let mut counted = Vec::new();
    while let Some(result) = guessers.join_next().await {
        if let Ok(Ok(Some(c))) = result {
            counted.push(c.attempts);
        }
    }
    counted.sort_unstable();
    assert_eq!(counted, [1, 2, 3, 4, 5], "every try counted exactly once, no more than 5");
    Ok(())
}

// ---- rate limits -----------------------------------------------------------------------

async fn rate_limits_allow_the_burst_then_refuse(db: &Fresh) -> anyhow::Result<()> {
    let now = now_ms();
    for _ in 0..3 {
        assert_eq!(db.store.rate_limit_take("k", now, 10_000, 30_000).await?, None);
    }
    let wait = db.store.rate_limit_take("k", now, 10_000, 30_000).await?.expect("limited");
    assert!((9_000..=10_000).contains(&wait), "{wait}");
    assert_eq!(db.store.rate_limit_peek("k", now, 10_000, 30_000).await?, Some(wait));
    assert_eq!(db.store.rate_limit_peek("other", now, 10_000, 30_000).await?, None);
    assert_eq!(db.store.rate_limit_take("k", now + wait, 10_000, 30_000).await?, None, "fits after the wait");
    assert_eq!(db.store.prune_rate_limits(now + 60_000).await?, 1);
    Ok(())
}

async fn rate_limits_take_several_at_once_and_give_back(db: &Fresh) -> anyhow::Result<()> {
    let now = now_ms();
    // 3 per 30 s: two at once fit, two more at once do not, one more does.
    assert_eq!(db.store.rate_limit_take("w", now, 20_000, 30_000).await?, None);
    assert!(db.store.rate_limit_take("w", now, 20_000, 30_000).await?.is_some());
    assert_eq!(db.store.rate_limit_take("w", now, 10_000, 30_000).await?, None);
    assert!(db.store.rate_limit_take("w", now, 10_000, 30_000).await?.is_some(), "the burst is spent");
    // One given back fits again, once.
    db.store.rate_limit_give_back("w", 10_000).await?;
    assert_eq!(db.store.rate_limit_take("w", now, 10_000, 30_000).await?, None);
    assert!(db.store.rate_limit_take("w", now, 10_000, 30_000).await?.is_some());
    // Giving back more than was taken leaves no credit beyond the burst.
    for _ in 0..5 {
        db.store.rate_limit_give_back("w", 10_000).await?;
    }
    for _ in 0..3 {
        assert_eq!(db.store.rate_limit_take("w", now, 10_000, 30_000).await?, None);
    }
    assert!(db.store.rate_limit_take("w", now, 10_000, 30_000).await?.is_some(), "never more than the burst");
    db.store.rate_limit_give_back("never-taken", 10_000).await?;
    assert_eq!(db.store.rate_limit_peek("never-taken", now, 10_000, 30_000).await?, None);
    Ok(())
}

async fn racing_requests_cannot_slip_past_a_limit(db: &Fresh) -> anyhow::Result<()> {
    let now = now_ms();
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = db.store.clone();
        racers.spawn(async move { store.rate_limit_take("race", now, 60_000, 300_000).await });
    }
    let mut allowed = 0;
    while let Some(result) = racers.join_next().await {
        if let Ok(Ok(None)) = result {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5, "5 per 5 minutes");
    Ok(())
}

// ---- keys ------------------------------------------------------------------------------

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

async fn account_keys_are_set_once_unless_replaced(db: &Fresh) -> anyhow::Result<()> {
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

async fn key_uploads_are_all_or_nothing_and_idempotent(db: &Fresh) -> anyhow::Result<()> {
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

async fn one_time_keys_are_claimed_once_even_when_racing(db: &Fresh) -> anyhow::Result<()> {
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

async fn one_time_keys_can_be_withheld_for_the_fallback_key(db: &Fresh) -> anyhow::Result<()> {
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

async fn contacts_of_a_device_are_its_owner_and_who_shares_a_conversation(db: &Fresh) -> anyhow::Result<()> {
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

async fn removing_a_device_removes_its_keys_and_moves_the_version(db: &Fresh) -> anyhow::Result<()> {
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

// ---- to-device inboxes -----------------------------------------------------------------

fn to_device(recipient: DeviceId, byte: u8) -> NewToDevice {
    sized(recipient, byte, 8)
}

fn sized(recipient: DeviceId, byte: u8, size: usize) -> NewToDevice {
    NewToDevice { message_id: MessageId::generate(), recipient, ciphertext: vec![byte; size] }
}

/// At most `messages` waiting in an inbox, and no other limit.
fn quota(messages: i64) -> InboxQuota {
    InboxQuota {
        messages,
        bytes: i64::MAX,
        per_sender: i64::MAX,
        stranger_messages: i64::MAX,
        stranger_bytes: i64::MAX,
    }
}

async fn inbox_quotas_hold_per_sender_for_strangers_and_in_all(db: &Fresh) -> anyhow::Result<()> {
    let (owner, friend, s1, s2) =
        (new_account("sara"), new_account("tess"), new_account("ugo"), new_account("val"));
    let (laptop, phone) = (new_device(owner.id, 54), new_device(owner.id, 55));
    db.store.create_account(&owner, &laptop).await?;
    db.store.create_device(&phone).await?;
    let mut devices = Vec::new();
    for (n, account) in [&friend, &s1, &s2].into_iter().enumerate() {
        let device = new_device(account.id, 56 + n as u8);
        db.store.create_account(account, &device).await?;
        devices.push((account.id, device.id));
    }
    let (friend_d, s1_d, s2_d) = (devices[0], devices[1], devices[2]);
    let (direct, _) =
        db.store.open_direct(ConversationId::generate(), (owner.id, friend.id), now_ms()).await?;
    // A contact is someone who accepted (a pending request is not).
    db.store.accept_request(direct, friend.id).await?;
    let quota =
        InboxQuota { messages: 10, bytes: 1000, per_sender: 4, stranger_messages: 5, stranger_bytes: 100 };
    let now = now_ms();
    let send = |from: (AccountId, DeviceId), batch: Vec<NewToDevice>| {
        let store = db.store.clone();
        async move { store.send_to_devices(from, &batch, now, now + 60_000, &quota).await }
    };
    let to = |device: DeviceId, n: usize| (0..n).map(|i| to_device(device, i as u8)).collect::<Vec<_>>();

    // Per sender: four wait, the fifth is refused, whole batches at a time.
    assert_eq!(send(s1_d, to(laptop.id, 3)).await?, Ok(()));
    assert_eq!(send(s1_d, to(laptop.id, 2)).await?, Err(SendRefusal::TooManyPending(laptop.id)));
    assert_eq!(send(s1_d, to(laptop.id, 1)).await?, Ok(()));
    assert_eq!(send(s1_d, to(laptop.id, 1)).await?, Err(SendRefusal::TooManyPending(laptop.id)));
    // Strangers together: five messages, 100 bytes.
    assert_eq!(send(s2_d, to(laptop.id, 1)).await?, Ok(()));
    assert_eq!(send(s2_d, to(laptop.id, 1)).await?, Err(SendRefusal::StrangerInboxFull(laptop.id)));
    assert_eq!(
        send(s2_d, vec![sized(phone.id, 1, 101)]).await?,
        Err(SendRefusal::StrangerInboxFull(phone.id))
    );
    assert_eq!(send(s2_d, vec![sized(phone.id, 1, 100)]).await?, Ok(()));
    // A contact and the owner's other device use the rest, up to the inbox's own limit.
    assert_eq!(send(friend_d, to(laptop.id, 4)).await?, Ok(()));
    assert_eq!(send((owner.id, phone.id), to(laptop.id, 1)).await?, Ok(()));
    assert_eq!(send((owner.id, phone.id), to(laptop.id, 1)).await?, Err(SendRefusal::InboxFull(laptop.id)));
    assert_eq!(db.store.fetch_to_device(laptop.id, 100).await?.len(), 10);
    // Bytes count too.
    assert_eq!(
        send((owner.id, laptop.id), vec![sized(phone.id, 2, 900), sized(phone.id, 3, 1)]).await?,
        Err(SendRefusal::InboxFull(phone.id))
    );
    assert_eq!(send((owner.id, laptop.id), vec![sized(phone.id, 2, 900)]).await?, Ok(()));
    // A retried batch fits even at the limit: nothing new is stored.
    let batch = to(laptop.id, 1);
    db.store.ack_to_device(laptop.id, &[db.store.fetch_to_device(laptop.id, 1).await?[0].message_id]).await?;
    assert_eq!(send((owner.id, phone.id), batch.clone()).await?, Ok(()));
    assert_eq!(send((owner.id, phone.id), batch).await?, Ok(()));
    // Once the device took its messages, senders have room again.
    let waiting: Vec<_> =
        db.store.fetch_to_device(laptop.id, 100).await?.iter().map(|m| m.message_id).collect();
    db.store.ack_to_device(laptop.id, &waiting).await?;
    assert_eq!(send(s1_d, to(laptop.id, 4)).await?, Ok(()));
    Ok(())
}

async fn racing_sends_cannot_overshoot_an_inbox_quota(db: &Fresh) -> anyhow::Result<()> {
    let (owner, sender) = (new_account("wren"), new_account("xia"));
    let (device, from) = (new_device(owner.id, 60), new_device(sender.id, 61));
    db.store.create_account(&owner, &device).await?;
    db.store.create_account(&sender, &from).await?;
    let quota = InboxQuota { per_sender: 30, ..quota(1000) };
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = db.store.clone();
        let batch: Vec<_> = (0..4).map(|i| to_device(device.id, i)).collect();
        let now = now_ms();
        racers.spawn(async move {
            store.send_to_devices((sender.id, from.id), &batch, now, now + 60_000, &quota).await
        });
    }
    let mut stored = 0;
    while let Some(outcome) = racers.join_next().await {
        match outcome?? {
            Ok(()) => stored += 4,
            Err(refusal) => assert_eq!(refusal, SendRefusal::TooManyPending(device.id)),
        }
    }
    assert_eq!(stored, 28, "seven batches of four fit under 30");
    assert_eq!(db.store.fetch_to_device(device.id, 100).await?.len(), 28);
    Ok(())
}

async fn to_device_messages_wait_until_acknowledged(db: &Fresh) -> anyhow::Result<()> {
    let (a, b) = (new_account("pia"), new_account("quinn"));
    let (da, db_) = (new_device(a.id, 50), new_device(b.id, 51));
    db.store.create_account(&a, &da).await?;
    db.store.create_account(&b, &db_).await?;
    let now = now_ms();
    let batch: Vec<_> = (1..=3).map(|i| to_device(db_.id, i)).collect();
    assert_eq!(db.store.send_to_devices((a.id, da.id), &batch, now, now + 1000, &quota(100)).await?, Ok(()));
    // A retried send is stored once.
    assert_eq!(db.store.send_to_devices((a.id, da.id), &batch, now, now + 1000, &quota(100)).await?, Ok(()));
    let waiting = db.store.fetch_to_device(db_.id, 10).await?;
    assert_eq!(
        waiting.iter().map(|m| m.ciphertext[0]).collect::<Vec<_>>(),
        [1, 2, 3],
        "oldest first, once each"
    );
    assert_eq!((waiting[0].sender_account_id, waiting[0].sender_device_id), (a.id, da.id));
    assert_eq!(db.store.fetch_to_device(db_.id, 2).await?.len(), 2);
    assert_eq!(db.store.ack_to_device(db_.id, &[batch[0].message_id, MessageId::generate()]).await?, 1);
    assert_eq!(db.store.ack_to_device(da.id, &[batch[1].message_id]).await?, 0, "only the recipient acks");
    assert_eq!(db.store.fetch_to_device(db_.id, 10).await?.len(), 2);
    assert_eq!(db.store.prune_to_device(now + 1000).await?, 2, "expired");
    Ok(())
}

async fn to_device_batches_are_refused_whole(db: &Fresh) -> anyhow::Result<()> {
    let (a, b) = (new_account("rita"), new_account("sam"));
    let (da, db_) = (new_device(a.id, 52), new_device(b.id, 53));
    db.store.create_account(&a, &da).await?;
    db.store.create_account(&b, &db_).await?;
    let now = now_ms();
    let ghost = DeviceId::generate();
    let mixed = [to_device(db_.id, 1), to_device(ghost, 2)];
    assert_eq!(
        db.store.send_to_devices((a.id, da.id), &mixed, now, now + 1000, &quota(100)).await?,
        Err(SendRefusal::UnknownDevice(ghost))
    );
    assert!(db.store.fetch_to_device(db_.id, 10).await?.is_empty(), "nothing of the batch was kept");
    let full: Vec<_> = (0..3).map(|i| to_device(db_.id, i)).collect();
    assert_eq!(
        db.store.send_to_devices((a.id, da.id), &full, now, now + 1000, &quota(2)).await?,
        Err(SendRefusal::InboxFull(db_.id))
    );
    assert!(db.store.fetch_to_device(db_.id, 10).await?.is_empty());
    // A signed-out device's inbox goes with it.
    assert_eq!(
        db.store.send_to_devices((a.id, da.id), &full[..1], now, now + 1000, &quota(100)).await?,
        Ok(())
    );
    db.store.delete_device(None, db_.id).await?;
    assert!(db.store.fetch_to_device(db_.id, 10).await?.is_empty());
    Ok(())
}

// ---- pairings --------------------------------------------------------------------------

fn pairing(pin: u8, ttl_ms: i64) -> NewPairing {
    NewPairing {
        id: PairingId::generate(),
        public_key: vec![9; 32],
        pin_hash: [pin; 32],
        secret_hash: [pin.wrapping_add(1); 32],
        created_at_ms: now_ms(),
        expires_at_ms: now_ms() + ttl_ms,
    }
}

async fn pairings_are_taken_by_one_device_and_approved_once(db: &Fresh) -> anyhow::Result<()> {
    let (a, b) = (new_account("tom"), new_account("uma"));
    let (da, db_) = (new_device(a.id, 60), new_device(b.id, 61));
    db.store.create_account(&a, &da).await?;
    db.store.create_account(&b, &db_).await?;
    let p = pairing(1, 60_000);
    assert_eq!(db.store.create_pairing(&p).await?, Ok(()));
    assert_eq!(
        db.store.create_pairing(&NewPairing { id: PairingId::generate(), ..p.clone() }).await?,
        Err(PairingConflict::Pin)
    );
    assert_eq!(
        db.store.create_pairing(&NewPairing { pin_hash: [2; 32], ..p.clone() }).await?,
        Err(PairingConflict::Id)
    );
    let found = db.store.pairing_by_pin(&[1; 32], now_ms()).await?.expect("by PIN");
    assert_eq!((found.id, found.status), (p.id, PairingStatus::Open));
    assert!(db.store.pairing_by_pin(&[1; 32], now_ms() + 61_000).await?.is_none(), "expired");

    // Racing devices of two accounts: one takes it, and only it.
    let mut racers = tokio::task::JoinSet::new();
    for claimant in [(a.id, da.id), (b.id, db_.id), (a.id, da.id), (b.id, db_.id)] {
        let store = db.store.clone();
        racers.spawn(async move { (claimant, store.claim_pairing(p.id, claimant, now_ms()).await) });
    }
    let mut winners = Vec::new();
    while let Some(raced) = racers.join_next().await {
        let (claimant, won) = raced?;
        if won? {
            winners.push(claimant);
        }
    }
    winners.dedup();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let owner = winners[0];

    assert_eq!(db.store.post_pairing_message(p.id, false, b"hello", 3).await?, Some(1));
    assert_eq!(db.store.post_pairing_message(p.id, true, b"hi", 3).await?, Some(2));
    assert_eq!(db.store.post_pairing_message(p.id, false, b"x", 3).await?, Some(3));
    assert_eq!(db.store.post_pairing_message(p.id, false, b"y", 3).await?, None, "full");
    assert_eq!(
        db.store.pairing_messages(p.id, false, 0).await?,
        vec![(1, b"hello".to_vec()), (3, b"x".to_vec())]
    );
    assert_eq!(db.store.pairing_messages(p.id, false, 1).await?.len(), 1);

    let new_device = DeviceId::generate();
    let other = if owner.0 == a.id { (b.id, db_.id) } else { (a.id, da.id) };
    assert!(!db.store.approve_pairing(p.id, other, new_device, now_ms()).await?, "not the claimant");
    assert!(db.store.approve_pairing(p.id, owner, new_device, now_ms()).await?);
    assert!(!db.store.approve_pairing(p.id, owner, DeviceId::generate(), now_ms()).await?, "only once");
    assert_eq!(db.store.pairing(p.id).await?.and_then(|r| r.new_device_id), Some(new_device));
    let mut completers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let store = db.store.clone();
        completers.spawn(async move { store.complete_pairing(p.id, now_ms()).await });
    }
    let mut completed = 0;
    while let Some(done) = completers.join_next().await {
        completed += usize::from(done??);
    }
    assert_eq!(completed, 1, "the session is handed out once");
    assert!(!db.store.cancel_pairing(p.id).await?, "a completed pairing stays completed");
    let q = pairing(3, 1);
    assert_eq!(db.store.create_pairing(&q).await?, Ok(()));
    assert!(db.store.cancel_pairing(q.id).await?);
    assert_eq!(db.store.pairing(q.id).await?.map(|r| r.status), Some(PairingStatus::Cancelled));
    assert_eq!(db.store.prune_pairings(now_ms() + 10).await?, 1);
    Ok(())
}

// ---- conversations ---------------------------------------------------------------------

async fn accounts(db: &Fresh, names: &[&str]) -> anyhow::Result<Vec<AccountId>> {
    let mut ids = Vec::new();
    for name in names {
        let account = new_account(name);
        db.store.create_account_without_device(&account).await?;
        ids.push(account.id);
    }
    Ok(ids)
}

fn message(conversation: ConversationId, sender: AccountId, byte: u8) -> NewMessage {
    NewMessage {
        id: MessageId::generate(),
        conversation_id: conversation,
        sender: (sender, DeviceId::generate()),
        ciphertext: vec![byte; 16],
        session_id: b"session".to_vec(),
        reply_to: None,
        attachments: Vec::new(),
        now_ms: now_ms(),
    }
}

async fn send(db: &Fresh, m: &NewMessage) -> anyhow::Result<MessageRecord> {
    match db.store.send_message(m).await? {
        SendOutcome::Stored(stored) => Ok(stored),
        other => anyhow::bail!("not stored: {other:?}"),
    }
}

async fn a_pair_has_one_direct_conversation(db: &Fresh) -> anyhow::Result<()> {
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

async fn messages_are_numbered_without_gaps_even_when_racing(db: &Fresh) -> anyhow::Result<()> {
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

async fn message_ids_are_unique_per_conversation(db: &Fresh) -> anyhow::Result<()> {
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

async fn a_batch_of_sends_gives_each_its_own_outcome(db: &Fresh) -> anyhow::Result<()> {
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

async fn history_pages_both_ways(db: &Fresh) -> anyhow::Result<()> {
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

async fn edits_deletes_and_read_marks(db: &Fresh) -> anyhow::Result<()> {
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

async fn owners_hand_over_when_they_leave(db: &Fresh) -> anyhow::Result<()> {
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

// ---- delivery --------------------------------------------------------------------------

/// Signs a new device in to `account` (after the account's memberships exist, or before).
async fn device(db: &Fresh, account: AccountId, seed: u8) -> anyhow::Result<DeviceId> {
    let device = new_device(account, seed);
    db.store.create_device(&device).await?;
    Ok(device.id)
}

/// A message sent from a real device.
fn message_from(conversation: ConversationId, sender: (AccountId, DeviceId), byte: u8) -> NewMessage {
    NewMessage { sender, ..message(conversation, sender.0, byte) }
}

fn acks(conversations: &[(ConversationId, i64, i64)]) -> DeviceAcks {
    DeviceAcks { conversations: conversations.to_vec(), ..DeviceAcks::default() }
}

fn member_event(conversation: ConversationId, account: AccountId, role: Option<Role>) -> AccountEvent {
    AccountEvent::Member { conversation, account, role, request: false }
}

/// A member event as the member itself gets it while its membership is a request.
fn request_event(conversation: ConversationId, account: AccountId, role: Option<Role>) -> AccountEvent {
    AccountEvent::Member { conversation, account, role, request: true }
}

/// Accepts every request in `conversation`: for tests about something else than consent.
async fn accept_all(db: &Fresh, conversation: ConversationId) -> anyhow::Result<()> {
    for member in db.store.members(conversation).await? {
        if member.request {
            db.store.accept_request(conversation, member.account_id).await?;
        }
    }
    Ok(())
}

/// The whole stream of an account, checking that positions strictly increase.
async fn stream(db: &Fresh, account: AccountId) -> anyhow::Result<Vec<(i64, AccountEvent)>> {
    let events = db.store.account_events(account, 0, 10_000).await?;
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "positions strictly increase: {events:?}");
    Ok(events)
}

/// The newest position in an account's stream (0: empty).
async fn head(db: &Fresh, account: AccountId) -> anyhow::Result<i64> {
    Ok(stream(db, account).await?.last().map_or(0, |(position, _)| *position))
}

fn sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort_unstable();
    items
}

/// The ids of a conversation's messages, oldest first.
async fn ids_of(db: &Fresh, conversation: ConversationId) -> anyhow::Result<Vec<MessageId>> {
    Ok(db.store.list_messages(conversation, 0, true, 1000).await?.into_iter().map(|m| m.id).collect())
}

async fn cursors_exist_exactly_while_the_account_is_a_member(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "ben", "cid"]).await?;
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let a1 = device(db, a, 1).await?;
    let (direct, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    assert_eq!(db.store.conversation_cursor(a1, direct).await?, Some(0), "a joining account's devices");
    for i in 0..3 {
        send(db, &message(direct, a, i)).await?;
    }
    let a2 = device(db, a, 2).await?;
    assert_eq!(db.store.conversation_cursor(a2, direct).await?, Some(3), "a new device starts at the head");
    assert_eq!(db.store.conversation_cursor(a1, direct).await?, Some(0), "the older one stays where it was");

    let c1 = device(db, c, 3).await?;
    let group = ConversationId::generate();
    db.store.create_group(group, "G", a, &[b], now_ms()).await?;
    let first = send(db, &message(group, a, 1)).await?;
    send(db, &message(group, b, 2)).await?;
    db.store.edit_message(group, first.id, b"edited", b"s", now_ms()).await?.expect("edited");
    assert_eq!(db.store.conversation_cursor(c1, group).await?, None, "not a member yet");
    db.store.add_members(group, a, &[c], 1000, now_ms()).await?;
    assert_eq!(db.store.conversation_cursor(c1, group).await?, Some(3), "joins at the current change");
    let c2 = device(db, c, 4).await?;
    assert_eq!(
        db.store.device_streams(c2).await?.expect("exists").conversations,
        [ConversationCursor { conversation_id: group, acked: 3, head: 3 }]
    );
    let mut followed = db.store.device_streams(a1).await?.expect("exists").conversations;
    followed.sort_unstable_by_key(|cursor| cursor.conversation_id);
    let mut expected = vec![
        ConversationCursor { conversation_id: direct, acked: 0, head: 3 },
        ConversationCursor { conversation_id: group, acked: 0, head: 3 },
    ];
    expected.sort_unstable_by_key(|cursor| cursor.conversation_id);
    assert_eq!(followed, expected);

    // Leaving drops the cursors of every device of the account, in that conversation only.
    assert!(db.store.remove_member(group, c).await?);
    for d in [c1, c2] {
        assert_eq!(db.store.conversation_cursor(d, group).await?, None);
        assert_eq!(db.store.device_streams(d).await?.expect("exists").conversations, []);
    }
    assert_eq!(db.store.conversation_cursor(a1, group).await?, Some(0), "other members keep theirs");
    // Rejoining starts at the head again, not where the account left.
    send(db, &message(group, a, 5)).await?;
    db.store.add_members(group, a, &[c], 1000, now_ms()).await?;
    assert_eq!(db.store.conversation_cursor(c1, group).await?, Some(4));

    // A new device starts at the account stream's head (and then hears of itself).
    let before = head(db, a).await?;
    assert!(before > 0);
    let a3 = device(db, a, 5).await?;
    assert_eq!(db.store.device_streams(a3).await?.expect("exists").account_cursor, before);
    assert_eq!(
        db.store.account_events(a, before, 10).await?,
        [(before + 1, AccountEvent::DeviceList { account: a })]
    );

    // A deleted device has no streams at all.
    assert!(db.store.delete_device(None, a2).await?);
    assert_eq!(db.store.device_streams(a2).await?, None);
    assert_eq!(db.store.conversation_cursor(a2, direct).await?, None);
    assert_eq!(db.store.device_streams(DeviceId::generate()).await?, None);
    Ok(())
}

async fn message_changes_follow_the_latest_change_of_each_message(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["dee", "eli", "fox"]).await?;
    let (a, b, outsider) = (ids[0], ids[1], ids[2]);
    let (da, db_, dout) = (device(db, a, 1).await?, device(db, b, 2).await?, device(db, outsider, 3).await?);
    let group = ConversationId::generate();
    db.store.create_group(group, "G", a, &[b], now_ms()).await?;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(send(db, &message_from(group, (a, da), i)).await?);
    }
    // Another conversation of the same device does not mix in.
    let (direct, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    send(db, &message(direct, a, 9)).await?;

    let changes =
        |page: Vec<MessageRecord>| page.into_iter().map(|m| (m.seq, m.change_seq)).collect::<Vec<_>>();
    assert_eq!(
        changes(db.store.message_changes(db_, group, 0, 100).await?),
        [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
    );
    assert_eq!(changes(db.store.message_changes(db_, group, 2, 100).await?), [(3, 3), (4, 4), (5, 5)]);
    assert_eq!(changes(db.store.message_changes(db_, group, 0, 2).await?), [(1, 1), (2, 2)]);
    assert_eq!(changes(db.store.message_changes(da, direct, 0, 100).await?), [(1, 1)]);

    // An edit and a deletion move their message to the end, in its new state.
    db.store.edit_message(group, sent[1].id, b"edited", b"s2", now_ms()).await?.expect("edited");
    db.store.delete_message(group, sent[0].id, now_ms()).await?.expect("deleted");
    let all = db.store.message_changes(db_, group, 0, 100).await?;
    assert_eq!(changes(all.clone()), [(3, 3), (4, 4), (5, 5), (2, 6), (1, 7)]);
    assert_eq!((all[3].id, all[3].ciphertext.as_deref()), (sent[1].id, Some(&b"edited"[..])));
    assert!(all[3].edited_at_ms > 0);
    assert_eq!((all[4].id, all[4].ciphertext.as_deref(), all[4].deleted_at_ms > 0), (sent[0].id, None, true));
    assert_eq!(changes(db.store.message_changes(db_, group, 5, 100).await?), [(2, 6), (1, 7)]);
    assert_eq!(changes(db.store.message_changes(db_, group, 5, 1).await?), [(2, 6)]);
    assert!(db.store.message_changes(db_, group, 7, 100).await?.is_empty());

    // Only members' devices see anything.
    assert!(db.store.message_changes(dout, group, 0, 100).await?.is_empty(), "never a member");
    assert!(db.store.remove_member(group, b).await?);
    assert!(db.store.message_changes(db_, group, 0, 100).await?.is_empty(), "no longer a member");
    assert_eq!(db.store.message_changes(da, group, 0, 100).await?.len(), 5, "the others still do");
    Ok(())
}

async fn member_events_reach_the_right_accounts_and_keep_the_latest_state(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["gil", "hal", "ivo", "jay"]).await?;
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
    let (direct, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    let g = ConversationId::generate();
    // Creating a group tells each member of their own joining only.
    db.store.create_group(g, "G", a, &[b, c], now_ms()).await?;
    db.store.add_members(g, a, &[d], 1000, now_ms()).await?;
    assert!(db.store.set_role(g, c, Role::Admin).await?);
    // The owner leaves: the admin takes over; the remaining members hear of both, the owner of leaving.
    assert!(db.store.remove_member(g, a).await?);

    assert_eq!(
        stream(db, a).await?,
        [
            (1, member_event(direct, a, Some(Role::Member))),
            (2, member_event(direct, b, Some(Role::Member))),
            (4, member_event(g, d, Some(Role::Member))),
            (5, member_event(g, c, Some(Role::Admin))),
            (6, member_event(g, a, None)),
        ]
    );
    // Whether a membership is a request is told to that member only (b, c, d are a's strangers).
    assert_eq!(
        stream(db, b).await?,
        [
            (1, member_event(direct, a, Some(Role::Member))),
            (2, request_event(direct, b, Some(Role::Member))),
            (3, request_event(g, b, Some(Role::Member))),
            (4, member_event(g, d, Some(Role::Member))),
            (6, member_event(g, c, Some(Role::Owner))),
            (7, member_event(g, a, None)),
        ]
    );
    assert_eq!(
        stream(db, c).await?,
        [
            (2, member_event(g, d, Some(Role::Member))),
            (4, request_event(g, c, Some(Role::Owner))),
            (5, member_event(g, a, None))
        ]
    );
    assert_eq!(
        stream(db, d).await?,
        [
            (1, request_event(g, d, Some(Role::Member))),
            (3, member_event(g, c, Some(Role::Owner))),
            (4, member_event(g, a, None))
        ]
    );
    assert_eq!(
        db.store.account_events(b, 3, 2).await?,
        [(4, member_event(g, d, Some(Role::Member))), (6, member_event(g, c, Some(Role::Owner)))],
        "after and limit"
    );
    assert!(db.store.account_events(b, 7, 10).await?.is_empty());

    // Re-adding and removing the same member leaves one row per key, at the newest position.
    db.store.add_members(g, c, &[a], 1000, now_ms()).await?;
    assert_eq!(db.store.account_events(b, 7, 10).await?, [(8, member_event(g, a, Some(Role::Member)))]);
    assert!(db.store.remove_member(g, a).await?);
    for account in [a, b, c, d] {
        let events = stream(db, account).await?;
        let about_a: Vec<_> = events.iter().filter(|(_, e)| *e == member_event(g, a, None)).collect();
        assert_eq!(about_a.len(), 1, "{events:?}");
        assert_eq!(about_a[0], events.last().unwrap(), "the newest event");
        assert!(
            !events.iter().any(|(_, e)| *e == member_event(g, a, Some(Role::Member))),
            "the older state of the key is gone: {events:?}"
        );
    }
    assert_eq!(stream(db, b).await?.len(), 6);

    // No change, no event.
    let heads = [head(db, b).await?, head(db, c).await?];
    assert!(!db.store.set_role(g, a, Role::Admin).await?, "not a member");
    assert!(!db.store.remove_member(g, a).await?, "not a member");
    db.store.add_members(g, c, &[b], 1000, now_ms()).await?;
    assert_eq!([head(db, b).await?, head(db, c).await?], heads);
    Ok(())
}

async fn acks_move_cursors_and_the_delivered_mark_forward_only(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["kai", "lia"]).await?;
    let (a, b) = (ids[0], ids[1]);
    let (a1, b1, b2) = (device(db, a, 1).await?, device(db, b, 2).await?, device(db, b, 3).await?);
    let (c, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    accept_all(db, c).await?;
    for i in 0..3 {
        send(db, &message_from(c, (a, a1), i)).await?;
    }
    let receipts = db.store.commit_acks(b1, b, &acks(&[(c, 3, 3)])).await?;
    let expected =
        Receipt { conversation_id: c, account_id: b, delivered_seq: 3, read_seq: 0, notified: vec![a] };
    assert_eq!(receipts, [expected]);
    assert_eq!(db.store.conversation_cursor(b1, c).await?, Some(3));
    assert_eq!(db.store.conversation_cursor(b2, c).await?, Some(0), "per device");
    assert_eq!(db.store.member(c, b).await?.map(|m| (m.delivered_seq, m.read_seq)), Some((3, 0)));
    let told = head(db, a).await?;
    assert_eq!(
        stream(db, a).await?.last().map(|(_, e)| e.clone()),
        Some(AccountEvent::Receipt { conversation: c, account: b, delivered_seq: 3, read_seq: 0 })
    );
    assert!(
        !stream(db, b).await?.iter().any(|(_, e)| matches!(e, AccountEvent::Receipt { .. })),
        "a delivery is not the reader's news"
    );

    // The same ack again, older ones, and the other device catching up: nothing moves back and
    // nobody is told again.
    assert_eq!(db.store.commit_acks(b1, b, &acks(&[(c, 3, 3)])).await?, []);
    assert_eq!(db.store.commit_acks(b1, b, &acks(&[(c, 1, 1)])).await?, []);
    assert_eq!(db.store.conversation_cursor(b1, c).await?, Some(3), "a cursor never goes back");
    assert_eq!(db.store.commit_acks(b2, b, &acks(&[(c, 2, 2)])).await?, []);
    assert_eq!(db.store.conversation_cursor(b2, c).await?, Some(2));
    assert_eq!(db.store.member(c, b).await?.map(|m| m.delivered_seq), Some(3), "the mark never goes back");
    assert_eq!(head(db, a).await?, told);

    // A change without a new message (an edit) moves only the cursor.
    db.store.edit_message(c, ids_of(db, c).await?[0], b"e", b"s", now_ms()).await?.expect("edited");
    assert_eq!(db.store.commit_acks(b1, b, &acks(&[(c, 4, 0)])).await?, []);
    assert_eq!(db.store.conversation_cursor(b1, c).await?, Some(4));
    assert_eq!(db.store.member(c, b).await?.map(|m| m.delivered_seq), Some(3));

    // Its own messages delivered: the mark moves, nobody else is told.
    send(db, &message_from(c, (b, b1), 9)).await?;
    assert_eq!(db.store.commit_acks(b2, b, &acks(&[(c, 5, 4)])).await?, []);
    assert_eq!(db.store.member(c, b).await?.map(|m| m.delivered_seq), Some(4));
    assert_eq!(head(db, a).await?, told);

    // Reading implies delivery; a later, older delivery does not pull the mark under the read mark.
    send(db, &message_from(c, (a, a1), 10)).await?;
    send(db, &message_from(c, (a, a1), 11)).await?;
    let read = db.store.mark_read(c, b, 6).await?.expect("a member");
    assert_eq!((read.delivered_seq, read.read_seq, read.notified), (6, 6, sorted(&[a, b])));
    assert_eq!(db.store.commit_acks(b1, b, &acks(&[(c, 7, 5)])).await?, []);
    assert_eq!(db.store.member(c, b).await?.map(|m| (m.delivered_seq, m.read_seq)), Some((6, 6)));
    assert_eq!(
        stream(db, a).await?.last().map(|(_, e)| e.clone()),
        Some(AccountEvent::Receipt { conversation: c, account: b, delivered_seq: 6, read_seq: 6 })
    );
    assert_eq!(
        stream(db, b).await?.last().map(|(_, e)| e.clone()),
        Some(AccountEvent::Receipt { conversation: c, account: b, delivered_seq: 6, read_seq: 6 }),
        "a read mark is told to the reader's own devices"
    );
    Ok(())
}

async fn acks_cover_several_conversations_the_inbox_and_the_account_stream(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["max", "nia", "oto"]).await?;
    let (a, b, x) = (ids[0], ids[1], ids[2]);
    let (a1, b1, b2, x1) =
        (device(db, a, 1).await?, device(db, b, 2).await?, device(db, b, 3).await?, device(db, x, 4).await?);
    let (direct, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    accept_all(db, direct).await?;
    let group = ConversationId::generate();
    db.store.create_group(group, "G", x, &[a, b], now_ms()).await?;
    accept_all(db, group).await?;
    send(db, &message_from(direct, (a, a1), 1)).await?;
    send(db, &message_from(direct, (a, a1), 2)).await?;
    send(db, &message_from(group, (x, x1), 3)).await?;
    send(db, &message_from(group, (a, a1), 4)).await?;

    let mut receipts = db.store.commit_acks(b1, b, &acks(&[(group, 2, 2), (direct, 2, 2)])).await?;
    receipts.sort_unstable_by_key(|r| r.conversation_id);
    let mut expected = vec![
        Receipt { conversation_id: direct, account_id: b, delivered_seq: 2, read_seq: 0, notified: vec![a] },
        Receipt {
            conversation_id: group,
            account_id: b,
            delivered_seq: 2,
            read_seq: 0,
            notified: sorted(&[a, x]),
        },
    ];
    expected.sort_unstable_by_key(|r| r.conversation_id);
    assert_eq!(receipts, expected);
    assert_eq!(db.store.conversation_cursor(b1, direct).await?, Some(2));
    assert_eq!(db.store.conversation_cursor(b1, group).await?, Some(2));
    let receipt_in =
        |conversation| AccountEvent::Receipt { conversation, account: b, delivered_seq: 2, read_seq: 0 };
    let of_a: Vec<_> = stream(db, a).await?.into_iter().map(|(_, e)| e).collect();
    assert!(of_a.contains(&receipt_in(direct)) && of_a.contains(&receipt_in(group)), "{of_a:?}");
    let of_x: Vec<_> = stream(db, x).await?.into_iter().map(|(_, e)| e).collect();
    assert!(of_x.contains(&receipt_in(group)) && !of_x.contains(&receipt_in(direct)), "{of_x:?}");

    // To-device messages: read in inbox order after a position, deleted once acknowledged.
    let now = now_ms();
    let batch: Vec<_> = (1..=3).map(|i| to_device(b1, i)).collect();
    assert_eq!(db.store.send_to_devices((x, x1), &batch, now, now + 60_000, &quota(100)).await?, Ok(()));
    let waiting = db.store.to_device_after(b1, 0, 10).await?;
    assert_eq!(
        waiting.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        batch.iter().map(|m| m.message_id).collect::<Vec<_>>()
    );
    assert!(waiting.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(db.store.to_device_after(b1, waiting[0].seq, 10).await?, waiting[1..]);
    assert_eq!(db.store.to_device_after(b1, waiting[0].seq, 1).await?, waiting[1..2]);
    assert!(db.store.to_device_after(b1, waiting[2].seq, 10).await?.is_empty());
    assert!(db.store.to_device_after(b2, 0, 10).await?.is_empty(), "another device's inbox");
    let only_mine = DeviceAcks { to_device: vec![waiting[2].message_id], ..DeviceAcks::default() };
    assert_eq!(db.store.commit_acks(b2, b, &only_mine).await?, []);
    assert_eq!(db.store.fetch_to_device(b1, 10).await?.len(), 3, "only the recipient acknowledges");

    // The account stream position moves forward only; to-device acks delete.
    let position = head(db, b).await?;
    let start = db.store.device_streams(b2).await?.expect("exists").account_cursor;
    let done = DeviceAcks {
        account_position: Some(position),
        to_device: vec![waiting[0].message_id, waiting[1].message_id, MessageId::generate()],
        ..DeviceAcks::default()
    };
    assert_eq!(db.store.commit_acks(b1, b, &done).await?, []);
    assert_eq!(db.store.device_streams(b1).await?.expect("exists").account_cursor, position);
    assert_eq!(db.store.fetch_to_device(b1, 10).await?, waiting[2..]);
    let back = DeviceAcks { account_position: Some(1), ..DeviceAcks::default() };
    db.store.commit_acks(b1, b, &back).await?;
    assert_eq!(db.store.device_streams(b1).await?.expect("exists").account_cursor, position, "never back");
    assert_eq!(db.store.device_streams(b2).await?.expect("exists").account_cursor, start, "per device");

    // A conversation the account has left: its part of a batch changes nothing and does not
    // fail; the rest applies.
    assert!(db.store.remove_member(group, b).await?);
    send(db, &message_from(group, (x, x1), 5)).await?;
    send(db, &message_from(direct, (a, a1), 6)).await?;
    let x_head = head(db, x).await?;
    let receipts = db.store.commit_acks(b1, b, &acks(&[(group, 10, 3), (direct, 3, 3)])).await?;
    assert_eq!(
        receipts,
        [Receipt {
            conversation_id: direct,
            account_id: b,
            delivered_seq: 3,
            read_seq: 0,
            notified: vec![a]
        }]
    );
    assert_eq!(db.store.conversation_cursor(b1, group).await?, None);
    assert_eq!(db.store.member(group, b).await?, None);
    assert_eq!(head(db, x).await?, x_head, "the group's sender hears nothing");
    Ok(())
}

async fn device_lists_reach_everyone_sharing_a_conversation(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["pam", "quy", "rex", "sol"]).await?;
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
    db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    let (g, h) = (ConversationId::generate(), ConversationId::generate());
    db.store.create_group(g, "G", c, &[a], now_ms()).await?;
    db.store.create_group(h, "H", b, &[a, c], now_ms()).await?;
    assert_eq!(db.store.peers(a).await?, sorted(&[a, b, c]), "sorted, each once");
    assert_eq!(db.store.peers(b).await?, sorted(&[a, b, c]));
    assert_eq!(db.store.peers(d).await?, [d], "only itself");
    // Contacts (for presence and avatars) are only those who accepted: none of these yet.
    assert_eq!(db.store.contacts(a).await?, [a], "requests make no contacts");

    let latest_about = |events: &[(i64, AccountEvent)], account| {
        let rows: Vec<_> =
            events.iter().filter(|(_, e)| *e == AccountEvent::DeviceList { account }).collect();
        assert!(rows.len() <= 1, "one row per key: {events:?}");
        rows.first().map(|(position, _)| *position)
    };
    let told = db.store.device_list_changed(a).await?;
    assert_eq!(told, sorted(&[a, b, c]));
    let mut positions = Vec::new();
    for r in &told {
        let events = stream(db, *r).await?;
        assert_eq!(events.last().map(|(_, e)| e.clone()), Some(AccountEvent::DeviceList { account: a }));
        positions.push(latest_about(&events, a).expect("told"));
    }
    assert_eq!(latest_about(&stream(db, d).await?, a), None, "not a contact");

    // Each further change (keys, a new device, a signed-out device) moves that one row on.
    db.store.device_list_changed(a).await?;
    let a1 = device(db, a, 1).await?;
    let mut after_create = Vec::new();
    for (r, before) in told.iter().zip(&positions) {
        let events = stream(db, *r).await?;
        let now = latest_about(&events, a).expect("told");
        assert!(now > *before + 1, "moved twice: {before} -> {now}");
        assert_eq!(events.last().map(|(_, e)| e.clone()), Some(AccountEvent::DeviceList { account: a }));
        after_create.push(now);
    }
    device(db, b, 2).await?;
    assert_eq!(
        stream(db, a).await?.last().map(|(_, e)| e.clone()),
        Some(AccountEvent::DeviceList { account: b })
    );
    assert_eq!(latest_about(&stream(db, d).await?, b), None);
    assert!(db.store.delete_device(None, a1).await?);
    for (r, before) in told.iter().zip(&after_create) {
        let now = latest_about(&stream(db, *r).await?, a).expect("told");
        assert!(now > *before, "signing out is announced: {before} -> {now}");
    }

    // Leaving the last shared conversation ends the contact.
    assert!(db.store.remove_member(g, a).await?);
    assert!(db.store.remove_member(h, c).await?);
    assert_eq!(db.store.peers(c).await?, [c]);
    assert_eq!(db.store.device_list_changed(a).await?, sorted(&[a, b]));
    assert_eq!(db.store.device_list_changed(d).await?, [d]);
    assert_eq!(
        stream(db, d).await?.last().map(|(_, e)| e.clone()),
        Some(AccountEvent::DeviceList { account: d })
    );
    Ok(())
}

async fn sign_outs_and_disabled_accounts_are_revoked(db: &Fresh) -> anyhow::Result<()> {
    let start = now_ms();
    let ids = accounts(db, &["tom", "ula"]).await?;
    let (a, b) = (ids[0], ids[1]);
    let (a1, a2, a3, b1) =
        (device(db, a, 1).await?, device(db, a, 2).await?, device(db, a, 3).await?, device(db, b, 4).await?);
    assert!(db.store.revocations_since(start).await?.is_empty(), "signing in revokes nothing");
    assert!(db.store.delete_device(Some(a), a1).await?);
    assert_eq!(db.store.revocations_since(start).await?, [a1]);
    assert!(!db.store.delete_device(Some(a), a1).await?);
    assert!(db.store.set_disabled(a, true).await?);
    assert_eq!(sorted(&db.store.revocations_since(start).await?), sorted(&[a1, a2, a3]));
    assert!(db.store.set_disabled(a, false).await?);
    assert_eq!(db.store.revocations_since(start).await?.len(), 3, "enabling revokes nothing");
    assert!(db.store.revocations_since(now_ms() + 60_000).await?.is_empty(), "since is respected");
    assert!(!db.store.revocations_since(start).await?.contains(&b1));
    assert_eq!(db.store.prune_revocations(start).await?, 0, "nothing older than the start");
    assert_eq!(db.store.prune_revocations(now_ms() + 1).await?, 3);
    assert!(db.store.revocations_since(0).await?.is_empty());
    Ok(())
}

async fn acks_of_several_devices_commit_together(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ada", "ben", "cal"]).await?;
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let a1 = device(db, a, 1).await?;
    let (b1, b2, c1) = (device(db, b, 2).await?, device(db, b, 3).await?, device(db, c, 4).await?);
    let (ab, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    accept_all(db, ab).await?;
    let (ac, _) = db.store.open_direct(ConversationId::generate(), (a, c), now_ms()).await?;
    accept_all(db, ac).await?;
    for i in 0..6 {
        send(db, &message_from(ab, (a, a1), i)).await?;
        send(db, &message_from(ac, (a, a1), i)).await?;
    }
    // Two devices of one account (out of order) and another account's device, in one batch.
    let batch =
        vec![(b2, b, acks(&[(ab, 5, 5)])), (c1, c, acks(&[(ac, 6, 6)])), (b1, b, acks(&[(ab, 3, 3)]))];
    let receipts = db.store.commit_acks_of(&batch).await?;
    assert_eq!(receipts.len(), 3, "receipts per device, in the order given");
    assert_eq!(
        receipts[1].iter().map(|r| (r.conversation_id, r.delivered_seq)).collect::<Vec<_>>(),
        vec![(ac, 6)]
    );
    assert_eq!(
        db.store.member(ab, b).await?.map(|m| m.delivered_seq),
        Some(5),
        "the higher mark of b's devices"
    );
    assert_eq!(db.store.member(ac, c).await?.map(|m| m.delivered_seq), Some(6));
    assert_eq!(db.store.conversation_cursor(b1, ab).await?, Some(3));
    assert_eq!(db.store.conversation_cursor(b2, ab).await?, Some(5));
    assert_eq!(db.store.conversation_cursor(c1, ac).await?, Some(6));
    Ok(())
}

async fn racing_acks_of_one_account_keep_the_highest_delivered_mark(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["val", "wes"]).await?;
    let (a, b) = (ids[0], ids[1]);
    let a1 = device(db, a, 1).await?;
    let mut devices = Vec::new();
    for seed in 2..6 {
        devices.push(device(db, b, seed).await?);
    }
    let (c, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    accept_all(db, c).await?;
    for i in 0..24 {
        send(db, &message_from(c, (a, a1), i)).await?;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (store, stop) = (db.store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.push(store.member(c, b).await?.expect("a member").delivered_seq);
            }
            anyhow::Ok(seen)
        })
    };
    let mut racers = tokio::task::JoinSet::new();
    // Highest and lowest positions interleaved, each device acking its own increasing run.
    for seq in [24, 1, 23, 2, 22, 3, 21, 4, 20, 5, 19, 6, 18, 7, 17, 8, 16, 9, 15, 10, 14, 11, 13, 12] {
        let store = db.store.clone();
        let device = devices[usize::try_from(seq).unwrap() % devices.len()];
        racers.spawn(async move { store.commit_acks(device, b, &acks(&[(c, seq, seq)])).await });
    }
    let mut receipts = Vec::new();
    while let Some(result) = racers.join_next().await {
        receipts.extend(result??);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.await??;
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "the mark went back: {seen:?}");
    assert_eq!(db.store.member(c, b).await?.map(|m| m.delivered_seq), Some(24));
    for (i, device) in devices.iter().enumerate() {
        let highest = (1..=24).filter(|s| usize::try_from(*s).unwrap() % devices.len() == i).max();
        assert_eq!(db.store.conversation_cursor(*device, c).await?, highest, "each device's own highest");
    }
    // Every receipt returned moved the mark, so they are all different; the sender keeps the last.
    let mut marks: Vec<_> = receipts.iter().map(|r| r.delivered_seq).collect();
    marks.sort_unstable();
    marks.dedup();
    assert_eq!(marks.len(), receipts.len(), "{receipts:?}");
    assert!(marks.contains(&24));
    let about_b: Vec<_> =
        stream(db, a).await?.into_iter().filter(|(_, e)| matches!(e, AccountEvent::Receipt { .. })).collect();
    assert_eq!(about_b.len(), 1);
    assert_eq!(
        about_b[0].1,
        AccountEvent::Receipt { conversation: c, account: b, delivered_seq: 24, read_seq: 0 }
    );
    Ok(())
}

async fn racing_sends_edits_and_deletes_use_every_change_once(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["xan", "yoo", "zia"]).await?;
    let group = ConversationId::generate();
    db.store.create_group(group, "G", ids[0], &ids[1..], now_ms()).await?;
    let reader = device(db, ids[1], 1).await?;
    let mut base = Vec::new();
    for i in 0..6u8 {
        base.push(send(db, &message(group, ids[usize::from(i % 3)], i)).await?);
    }
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..36u8 {
        let store = db.store.clone();
        let target = base[usize::from(i % 6)].id;
        let m = message(group, ids[usize::from(i % 3)], i);
        racers.spawn(async move {
            Ok::<_, anyhow::Error>(match i % 4 {
                // Deletions race with edits of the same message: the loser changes nothing.
                3 => store.delete_message(group, target, now_ms()).await?,
                2 => store.edit_message(group, target, &[i; 8], b"s", now_ms()).await?,
                _ => match store.send_message(&m).await? {
                    SendOutcome::Stored(stored) => Some(stored),
                    other => anyhow::bail!("{other:?}"),
                },
            })
        });
    }
    let mut changes: Vec<(i64, MessageId)> = base.iter().map(|m| (m.change_seq, m.id)).collect();
    while let Some(result) = racers.join_next().await {
        if let Some(changed) = result?? {
            changes.push((changed.change_seq, changed.id));
        }
    }
    changes.sort_unstable();
    let last = db.store.conversation(group).await?.expect("exists");
    assert_eq!(
        changes.iter().map(|(change, _)| *change).collect::<Vec<_>>(),
        (1..=last.last_change).collect::<Vec<_>>(),
        "every change number used once, none lost"
    );
    assert_eq!(last.last_seq, 6 + 18);
    let current = db.store.list_messages(group, 0, true, 1000).await?;
    assert_eq!(current.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=24).collect::<Vec<_>>());
    for m in &current {
        let newest = changes.iter().filter(|(_, id)| *id == m.id).map(|(change, _)| *change).max();
        assert_eq!(Some(m.change_seq), newest, "a message carries its latest change");
    }
    let mut current_changes: Vec<_> = current.iter().map(|m| m.change_seq).collect();
    current_changes.sort_unstable();
    current_changes.dedup();
    assert_eq!(current_changes.len(), current.len(), "no two messages share a change");
    // The device sees every message once, in change order.
    let seen = db.store.message_changes(reader, group, 0, 1000).await?;
    assert_eq!(seen.len(), 24);
    assert!(seen.windows(2).all(|w| w[0].change_seq < w[1].change_seq));
    Ok(())
}

async fn racing_read_and_delivered_marks_never_cross(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["abe", "bea"]).await?;
    let (a, b) = (ids[0], ids[1]);
    let a1 = device(db, a, 1).await?;
    let (b1, b2) = (device(db, b, 2).await?, device(db, b, 3).await?);
    let (c, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    accept_all(db, c).await?;
    for i in 0..20 {
        send(db, &message_from(c, (a, a1), i)).await?;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (store, stop) = (db.store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let m = store.member(c, b).await?.expect("a member");
                seen.push((m.delivered_seq, m.read_seq));
            }
            anyhow::Ok(seen)
        })
    };
    let mut racers = tokio::task::JoinSet::new();
    for seq in 1..=20i64 {
        // Reads run ahead of and behind the deliveries.
        let read = if seq % 2 == 0 { seq } else { 21 - seq };
        let store = db.store.clone();
        racers.spawn(async move {
            Ok::<_, StoreError>(store.mark_read(c, b, read).await?.into_iter().collect::<Vec<_>>())
        });
        let store = db.store.clone();
        let device = if seq % 2 == 0 { b1 } else { b2 };
        racers.spawn(async move { store.commit_acks(device, b, &acks(&[(c, seq, seq)])).await });
    }
    let mut receipts = Vec::new();
    while let Some(result) = racers.join_next().await {
        receipts.extend(result??);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.await??;
    assert!(seen.iter().all(|(delivered, read)| delivered >= read), "delivered below read: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "a mark went back: {seen:?}");
    assert!(receipts.iter().all(|r| r.delivered_seq >= r.read_seq), "{receipts:?}");
    assert_eq!(db.store.member(c, b).await?.map(|m| (m.delivered_seq, m.read_seq)), Some((20, 20)));
    let latest = AccountEvent::Receipt { conversation: c, account: b, delivered_seq: 20, read_seq: 20 };
    assert_eq!(stream(db, a).await?.last().map(|(_, e)| e.clone()), Some(latest.clone()));
    assert_eq!(stream(db, b).await?.last().map(|(_, e)| e.clone()), Some(latest));
    Ok(())
}

async fn racing_acks_of_several_conversations_all_apply(db: &Fresh) -> anyhow::Result<()> {
    // Two devices of one account acknowledge overlapping sets of conversations while the account
    // reads, all with messages from the same senders: every transaction must get through.
    let ids = accounts(db, &["cal", "dot", "eon"]).await?;
    let (a, b, x) = (ids[0], ids[1], ids[2]);
    let (a1, x1) = (device(db, a, 1).await?, device(db, x, 2).await?);
    let (b1, b2) = (device(db, b, 3).await?, device(db, b, 4).await?);
    let mut conversations = Vec::new();
    for title in ["one", "two", "three"] {
        let g = ConversationId::generate();
        db.store.create_group(g, title, a, &[b, x], now_ms()).await?;
        conversations.push(g);
    }
    conversations.sort_unstable();
    const ROUNDS: i64 = 20;
    for round in 0..ROUNDS {
        for g in &conversations {
            let sender = if round % 2 == 0 { (a, a1) } else { (x, x1) };
            send(db, &message_from(*g, sender, 0)).await?;
        }
    }
    let mut racers = tokio::task::JoinSet::new();
    for seq in 1..=ROUNDS {
        let store = db.store.clone();
        let all: Vec<_> = conversations.iter().map(|g| (*g, seq, seq)).collect();
        racers.spawn(async move { store.commit_acks(b1, b, &acks(&all)).await.map(|_| ()) });
        let store = db.store.clone();
        let (first, last) = (conversations[0], conversations[2]);
        let some = [(last, seq, seq), (first, seq, seq)];
        racers.spawn(async move { store.commit_acks(b2, b, &acks(&some)).await.map(|_| ()) });
        for read in [conversations[1], conversations[2]] {
            let store = db.store.clone();
            racers.spawn(async move { store.mark_read(read, b, seq).await.map(|_| ()) });
        }
    }
    let mut failures = Vec::new();
    while let Some(result) = racers.join_next().await {
        if let Err(e) = result? {
            failures.push(e.to_string());
        }
    }
    let count = failures.len();
    failures.sort_unstable();
    failures.dedup();
    assert!(failures.is_empty(), "{count} of {} transactions failed: {failures:?}", 4 * ROUNDS);
    for g in &conversations {
        let m = db.store.member(*g, b).await?.expect("a member");
        assert_eq!(m.delivered_seq, ROUNDS);
        assert!(m.delivered_seq >= m.read_seq);
        assert_eq!(db.store.conversation_cursor(b1, *g).await?, Some(ROUNDS));
    }
    Ok(())
}

async fn racing_joins_and_sign_ins_keep_cursors_in_step(db: &Fresh) -> anyhow::Result<()> {
    // A device signing in while its account joins (or leaves) a group must end up with a cursor
    // exactly when the account is a member, whichever transaction commits first.
    let owner = accounts(db, &["fay"]).await?[0];
    let group = ConversationId::generate();
    db.store.create_group(group, "G", owner, &[], now_ms()).await?;
    send(db, &message(group, owner, 1)).await?;
    let joiners = accounts(db, &["gia", "hub", "ira", "jon", "kit", "lou", "moe", "ned"]).await?;
    let mut racers = tokio::task::JoinSet::new();
    let mut joined_devices = Vec::new();
    for (seed, account) in (10u8..).zip(&joiners) {
        let new = new_device(*account, seed);
        joined_devices.push(new.id);
        let store = db.store.clone();
        racers.spawn(async move { store.create_device(&new).await });
        let (store, account) = (db.store.clone(), *account);
        racers.spawn(
            async move { store.add_members(group, owner, &[account], 1000, now_ms()).await.map(|_| ()) },
        );
    }
    while let Some(result) = racers.join_next().await {
        result??;
    }
    let mut missing = Vec::new();
    for d in &joined_devices {
        if db.store.conversation_cursor(*d, group).await? != Some(1) {
            missing.push(*d);
        }
    }

    let mut left_devices = Vec::new();
    for (seed, account) in (30u8..).zip(&joiners) {
        let new = new_device(*account, seed);
        left_devices.push(new.id);
        let store = db.store.clone();
        racers.spawn(async move { store.create_device(&new).await });
        let (store, account) = (db.store.clone(), *account);
        racers.spawn(async move { store.remove_member(group, account).await.map(|_| ()) });
    }
    while let Some(result) = racers.join_next().await {
        result??;
    }
    send(db, &message(group, owner, 2)).await?;
    let mut kept = Vec::new();
    for d in joined_devices.iter().chain(&left_devices) {
        if db.store.conversation_cursor(*d, group).await?.is_some()
            || !db.store.message_changes(*d, group, 0, 10).await?.is_empty()
        {
            kept.push(*d);
        }
    }
    assert!(
        missing.is_empty() && kept.is_empty(),
        "{} of {} devices signed in while their account joined have no cursor; \
         {} of {} devices of accounts that left still follow the group",
        missing.len(),
        joined_devices.len(),
        kept.len(),
        joined_devices.len() + left_devices.len(),
    );
    Ok(())
}

async fn racing_owner_departures_and_device_list_changes_all_apply(db: &Fresh) -> anyhow::Result<()> {
    // An owner leaving tells the remaining members of the hand-over, then everyone (itself too)
    // of its leaving; meanwhile its device list changes, which tells the same accounts.
    let mut ids = accounts(db, &["oma", "pip", "quo", "ros"]).await?;
    ids.sort_unstable();
    let owner = ids[0];
    let mut groups = Vec::new();
    for _ in 0..10 {
        let g = ConversationId::generate();
        db.store.create_group(g, "G", owner, &ids[1..], now_ms()).await?;
        groups.push(g);
    }
    let mut racers = tokio::task::JoinSet::new();
    for g in &groups {
        let (store, g) = (db.store.clone(), *g);
        racers.spawn(async move { store.remove_member(g, owner).await.map(|_| ()) });
        let store = db.store.clone();
        racers.spawn(async move { store.device_list_changed(owner).await.map(|_| ()) });
    }
    let mut failures = Vec::new();
    while let Some(result) = racers.join_next().await {
        if let Err(e) = result? {
            failures.push(e.to_string());
        }
    }
    let count = failures.len();
    failures.sort_unstable();
    failures.dedup();
    assert!(failures.is_empty(), "{count} of {} transactions failed: {failures:?}", 2 * groups.len());
    assert!(db.store.conversations_of(owner, ConversationFilter::All, None, 1000).await?.is_empty());
    Ok(())
}

// ---- calls -------------------------------------------------------------------------------

/// `count` groups for calls (a call needs its conversation), owned by one account.
async fn call_conversations(db: &Fresh, owner: &str, count: usize) -> anyhow::Result<Vec<ConversationId>> {
    let owner = accounts(db, &[owner]).await?[0];
    let mut groups = Vec::new();
    for _ in 0..count {
        let group = ConversationId::generate();
        db.store.create_group(group, "Call", owner, &[], now_ms()).await?;
        groups.push(group);
    }
    Ok(groups)
}

/// A device in a call (calls do not check that the account or device exist).
fn call_device() -> (AccountId, DeviceId) {
    (AccountId::generate(), DeviceId::generate())
}

fn new_call(id: CallId, conversation: ConversationId, caller: (AccountId, DeviceId), now: i64) -> NewCall {
    NewCall { id, conversation_id: conversation, caller, video: false, now_ms: now }
}

/// Starts a call that must start.
async fn start(
    db: &Fresh,
    conversation: ConversationId,
    caller: (AccountId, DeviceId),
    now: i64,
) -> anyhow::Result<CallId> {
    let id = CallId::generate();
    let outcome = db.store.start_call(&new_call(id, conversation, caller, now)).await?;
    anyhow::ensure!(outcome == StartOutcome::Started, "not started: {outcome:?}");
    Ok(id)
}

async fn stored_call(db: &Fresh, id: CallId) -> anyhow::Result<CallRecord> {
    db.store.call(id).await?.ok_or_else(|| anyhow::anyhow!("call {id:?} is not stored"))
}

fn call_ids(calls: &[CallRecord]) -> Vec<CallId> {
    let mut ids: Vec<CallId> = calls.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    ids
}

async fn one_call_at_a_time_per_conversation_and_ids_are_never_reused(db: &Fresh) -> anyhow::Result<()> {
    let convs = call_conversations(db, "cal", 3).await?;
    let t = now_ms();
    let (alice, bob) = (call_device(), call_device());
    let a = CallId::generate();
    let first = NewCall { video: true, ..new_call(a, convs[0], alice, t) };
    assert_eq!(db.store.start_call(&first).await?, StartOutcome::Started);
    let expected = CallRecord {
        id: a,
        conversation_id: convs[0],
        caller: alice,
        video: true,
        created_at_ms: t,
        answered_at_ms: 0,
        ended_at_ms: 0,
    };
    assert_eq!(stored_call(db, a).await?, expected);
    assert_eq!(db.store.call_devices(a).await?, vec![alice.1], "the caller's device is in it");
    assert!(db.store.call(CallId::generate()).await?.is_none());

    // A retried invite, and another device's call while this one goes on.
    assert_eq!(db.store.start_call(&new_call(a, convs[0], alice, t + 5)).await?, StartOutcome::Duplicate);
    assert_eq!(stored_call(db, a).await?, expected, "a duplicate changes nothing");
    let b = CallId::generate();
    assert_eq!(db.store.start_call(&new_call(b, convs[0], bob, t + 6)).await?, StartOutcome::Busy(a));
    assert!(db.store.call(b).await?.is_none(), "a busy call is not stored");
    assert!(db.store.call_devices(b).await?.is_empty());
    assert_eq!(db.store.call_devices(a).await?, vec![alice.1]);
    // Other conversations are not affected.
    let c = start(db, convs[1], bob, t + 7).await?;

    // Once it ended, its id is never started again, here or elsewhere...
    assert!(db.store.end_call(a, t + 10).await?);
    let again = db.store.start_call(&new_call(a, convs[0], alice, t + 20)).await?;
    assert_eq!(again, StartOutcome::Busy(a), "an ended call's id is not reused");
    let elsewhere = db.store.start_call(&new_call(a, convs[2], alice, t + 21)).await?;
    assert_ne!(elsewhere, StartOutcome::Started, "nor in another conversation");
    let busy_elsewhere = db.store.start_call(&new_call(a, convs[1], alice, t + 22)).await?;
    assert_ne!(busy_elsewhere, StartOutcome::Started);
    assert_eq!(stored_call(db, a).await?, CallRecord { ended_at_ms: t + 10, ..expected });
    assert!(db.store.call_devices(a).await?.is_empty());
    assert!(db.store.call(b).await?.is_none());
    // ...and the id of a call going on in one conversation does not start one in another.
    let taken = db.store.start_call(&new_call(c, convs[2], alice, t + 23)).await?;
    assert_ne!(taken, StartOutcome::Started);
    assert_eq!(stored_call(db, c).await?.conversation_id, convs[1]);
    assert_eq!(db.store.call_devices(c).await?, vec![bob.1]);

    // A new call may start where one ended.
    let d = start(db, convs[0], bob, t + 30).await?;
    assert_eq!(db.store.start_call(&new_call(b, convs[0], bob, t + 31)).await?, StartOutcome::Busy(d));
    Ok(())
}

async fn joins_are_bounded_idempotent_and_answer_the_call(db: &Fresh) -> anyhow::Result<()> {
    let convs = call_conversations(db, "jo", 2).await?;
    let t = now_ms();
    let devices: Vec<(AccountId, DeviceId)> = (0..6).map(|_| call_device()).collect();
    let ids = |n: usize| devices[..n].iter().map(|d| d.1).collect::<Vec<DeviceId>>();
    let call = start(db, convs[0], devices[0], t).await?;

    // The caller joining its own call again does not answer it.
    assert_eq!(db.store.join_call(call, devices[0], 4, t + 1).await?, JoinOutcome::Joined(ids(1)));
    assert_eq!(stored_call(db, call).await?.answered_at_ms, 0, "one device is not an answer");

    // A second device answers it, once.
    assert_eq!(db.store.join_call(call, devices[1], 4, t + 10).await?, JoinOutcome::Joined(ids(2)));
    assert_eq!(stored_call(db, call).await?.answered_at_ms, t + 10);
    assert_eq!(
        db.store.join_call(call, devices[1], 4, t + 20).await?,
        JoinOutcome::Joined(ids(2)),
        "idempotent"
    );
    assert_eq!(db.store.join_call(call, devices[2], 4, t + 30).await?, JoinOutcome::Joined(ids(3)));
    assert_eq!(stored_call(db, call).await?.answered_at_ms, t + 10, "answered once");

    // At most `max_devices`; a device already in it still gets in.
    assert_eq!(db.store.join_call(call, devices[3], 4, t + 40).await?, JoinOutcome::Joined(ids(4)));
    assert_eq!(db.store.join_call(call, devices[4], 4, t + 50).await?, JoinOutcome::Full);
    assert_eq!(db.store.join_call(call, devices[5], 4, t + 51).await?, JoinOutcome::Full);
    assert_eq!(db.store.join_call(call, devices[2], 4, t + 52).await?, JoinOutcome::Joined(ids(4)));
    assert_eq!(db.store.call_devices(call).await?, ids(4), "earliest first, the full ones left out");
    // A device leaving makes room.
    assert!(db.store.leave_call(call, devices[3].1).await?.is_some());
    assert_eq!(
        db.store.join_call(call, devices[4], 4, t + 60).await?,
        JoinOutcome::Joined(vec![devices[0].1, devices[1].1, devices[2].1, devices[4].1])
    );

    // Nobody joins a call that ended, or one that never was.
    assert_eq!(db.store.join_call(CallId::generate(), devices[5], 4, t + 70).await?, JoinOutcome::Ended);
    assert!(db.store.end_call(call, t + 80).await?);
    assert_eq!(db.store.join_call(call, devices[5], 4, t + 90).await?, JoinOutcome::Ended);
    assert_eq!(db.store.join_call(call, devices[0], 4, t + 91).await?, JoinOutcome::Ended);
    assert!(db.store.call_devices(call).await?.is_empty());
    assert_eq!(stored_call(db, call).await?.ended_at_ms, t + 80, "a join does not revive a call");

    // A call whose caller left is still joined (and answered) by two others.
    let other = start(db, convs[1], devices[0], t + 100).await?;
    assert_eq!(db.store.leave_call(other, devices[0].1).await?, Some(Vec::new()));
    assert_eq!(
        db.store.join_call(other, devices[1], 6, t + 110).await?,
        JoinOutcome::Joined(vec![devices[1].1])
    );
    assert_eq!(stored_call(db, other).await?.answered_at_ms, 0);
    assert_eq!(
        db.store.join_call(other, devices[2], 6, t + 120).await?,
        JoinOutcome::Joined(vec![devices[1].1, devices[2].1])
    );
    assert_eq!(stored_call(db, other).await?.answered_at_ms, t + 120);
    Ok(())
}

async fn leaving_and_ending_calls(db: &Fresh) -> anyhow::Result<()> {
    let convs = call_conversations(db, "lea", 1).await?;
    let t = now_ms();
    let (d0, d1, d2) = (call_device(), call_device(), call_device());
    let call = start(db, convs[0], d0, t).await?;
    db.store.join_call(call, d1, 6, t + 1).await?;
    db.store.join_call(call, d2, 6, t + 2).await?;

    assert_eq!(db.store.leave_call(call, d1.1).await?, Some(vec![d0.1, d2.1]));
    assert_eq!(db.store.leave_call(call, d1.1).await?, None, "not in it any more");
    assert_eq!(db.store.leave_call(call, DeviceId::generate()).await?, None, "never in it");
    assert_eq!(db.store.leave_call(CallId::generate(), d0.1).await?, None, "no such call");
    assert_eq!(db.store.call_devices(call).await?, vec![d0.1, d2.1]);
    assert_eq!(stored_call(db, call).await?.ended_at_ms, 0, "leaving does not end a call");

    // Ending: once, with everyone out of it.
    assert!(db.store.end_call(call, t + 50).await?);
    assert!(!db.store.end_call(call, t + 60).await?);
    assert!(!db.store.end_call(CallId::generate(), t + 60).await?);
    let record = stored_call(db, call).await?;
    assert_eq!((record.ended_at_ms, record.answered_at_ms), (t + 50, t + 1));
    assert!(db.store.call_devices(call).await?.is_empty());
    assert_eq!(db.store.leave_call(call, d0.1).await?, None);
    assert!(db.store.calls_of_device(d2.1).await?.is_empty());
    Ok(())
}

async fn unanswered_calls_end_after_the_ring_time(db: &Fresh) -> anyhow::Result<()> {
    let convs = call_conversations(db, "ring", 5).await?;
    let t = now_ms();
    let (a, b) = (call_device(), call_device());
    let unanswered = start(db, convs[0], a, t).await?;
    let answered = start(db, convs[1], a, t).await?;
    db.store.join_call(answered, b, 6, t + 1).await?;
    let ended = start(db, convs[2], a, t).await?;
    db.store.end_call(ended, t + 2).await?;
    let on_time = start(db, convs[3], a, t + 50).await?; // created at `before`: not before it
    let recent = start(db, convs[4], b, t + 60).await?;

    let swept = db.store.end_unanswered(t + 50, t + 100).await?;
    assert_eq!(call_ids(&swept), vec![unanswered], "only the call nobody answered in time");
    let expected = CallRecord {
        id: unanswered,
        conversation_id: convs[0],
        caller: a,
        video: false,
        created_at_ms: t,
        answered_at_ms: 0,
        ended_at_ms: t + 100,
    };
    assert_eq!(swept[0], expected, "returned as ended");
    assert_eq!(stored_call(db, unanswered).await?, expected);
    assert!(db.store.call_devices(unanswered).await?.is_empty());
    assert_eq!(db.store.join_call(unanswered, b, 6, t + 101).await?, JoinOutcome::Ended);
    assert!(!db.store.end_call(unanswered, t + 102).await?, "already ended");
    assert_eq!(stored_call(db, ended).await?.ended_at_ms, t + 2, "an ended call is left alone");
    for going in [answered, on_time, recent] {
        assert_eq!(stored_call(db, going).await?.ended_at_ms, 0);
    }
    assert_eq!(db.store.call_devices(answered).await?, vec![a.1, b.1]);
    assert!(db.store.end_unanswered(t + 50, t + 110).await?.is_empty(), "ended once");

    // Later, the rest that nobody answered; an answered call rings no more, however old.
    let later = db.store.end_unanswered(t + 1000, t + 1100).await?;
    assert_eq!(
        call_ids(&later),
        call_ids(&[stored_call(db, on_time).await?, stored_call(db, recent).await?])
    );
    assert_eq!(stored_call(db, answered).await?.ended_at_ms, 0);

    // The conversations are free for new calls.
    start(db, convs[0], b, t + 200).await?;
    start(db, convs[3], b, t + 200).await?;
    Ok(())
}

async fn calls_of_a_device_are_the_calls_it_is_in_going_on(db: &Fresh) -> anyhow::Result<()> {
    let convs = call_conversations(db, "mine", 5).await?;
    let t = now_ms();
    let (me, other) = (call_device(), call_device());
    let mut as_caller = start(db, convs[0], me, t).await?;
    let as_joiner = start(db, convs[1], other, t).await?;
    db.store.join_call(as_joiner, me, 6, t + 1).await?;
    let left = start(db, convs[2], other, t).await?;
    db.store.join_call(left, me, 6, t + 1).await?;
    db.store.leave_call(left, me.1).await?;
    let not_mine = start(db, convs[3], other, t).await?;
    let ringing = start(db, convs[4], me, t + 500).await?;

    let mine = db.store.calls_of_device(me.1).await?;
    let mut expected = vec![as_caller, as_joiner, ringing];
    expected.sort_unstable();
    assert_eq!(call_ids(&mine), expected);
    let record = mine.iter().find(|c| c.id == as_joiner).expect("listed");
    assert_eq!(*record, stored_call(db, as_joiner).await?, "listed as stored");
    let mut theirs = vec![as_joiner, left, not_mine];
    theirs.sort_unstable();
    assert_eq!(call_ids(&db.store.calls_of_device(other.1).await?), theirs);
    assert!(db.store.calls_of_device(DeviceId::generate()).await?.is_empty());

    // Ended calls are not listed, however they ended.
    db.store.end_call(as_caller, t + 10).await?;
    db.store.end_unanswered(t + 100, t + 110).await?;
    assert_eq!(call_ids(&db.store.calls_of_device(me.1).await?), vec![as_joiner, ringing]);
    db.store.end_unanswered(t + 1000, t + 1010).await?;
    assert_eq!(call_ids(&db.store.calls_of_device(me.1).await?), vec![as_joiner]);
    as_caller = start(db, convs[0], me, t + 20).await?;
    expected = vec![as_caller, as_joiner];
    expected.sort_unstable();
    assert_eq!(call_ids(&db.store.calls_of_device(me.1).await?), expected);
    Ok(())
}

async fn racing_joins_never_exceed_the_most_devices(db: &Fresh) -> anyhow::Result<()> {
    // 20 devices, through two pools (as two processes), race to join a call of at most 6.
    let convs = call_conversations(db, "crowd", 1).await?;
    let caller = call_device();
    let call = start(db, convs[0], caller, now_ms()).await?;
    let other = db.reopen().await?;
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { db.store.clone() } else { other.clone() };
        let device = call_device();
        racers.spawn(async move { (device.1, store.join_call(call, device, 6, now_ms()).await) });
    }
    let (mut joined, mut full, mut failures) = (Vec::new(), 0, Vec::new());
    while let Some(result) = racers.join_next().await {
        match result? {
            (device, Ok(JoinOutcome::Joined(devices))) => {
                assert!(devices.contains(&device) && devices.contains(&caller.1), "{devices:?}");
                assert!(devices.len() <= 6, "{} devices in the call", devices.len());
                joined.push(device);
            }
            (_, Ok(JoinOutcome::Full)) => full += 1,
            (_, Ok(JoinOutcome::Ended)) => anyhow::bail!("the call ended"),
            (_, Err(e)) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{} of 20 joins failed: {failures:?}", failures.len());
    let devices = db.store.call_devices(call).await?;
    assert_eq!((devices.len(), joined.len(), full), (6, 5, 15), "in the call: {devices:?}");
    joined.push(caller.1);
    joined.sort_unstable();
    let mut in_call = devices.clone();
    in_call.sort_unstable();
    assert_eq!(in_call, joined, "exactly the winners are in it");
    assert_ne!(stored_call(db, call).await?.answered_at_ms, 0);
    Ok(())
}

async fn racing_starts_in_one_conversation_start_one_call(db: &Fresh) -> anyhow::Result<()> {
    // Two devices call in the same conversation at once, with different ids, in 10 conversations.
    let convs = call_conversations(db, "both", 10).await?;
    let other = db.reopen().await?;
    let mut racers = tokio::task::JoinSet::new();
    for conv in &convs {
        for store in [db.store.clone(), other.clone()] {
            let call = new_call(CallId::generate(), *conv, call_device(), now_ms());
            racers.spawn(async move { (call.conversation_id, call.id, store.start_call(&call).await) });
        }
    }
    let mut outcomes: Vec<(ConversationId, CallId, StartOutcome)> = Vec::new();
    let mut failures = Vec::new();
    while let Some(result) = racers.join_next().await {
        match result? {
            (conv, id, Ok(outcome)) => outcomes.push((conv, id, outcome)),
            (_, _, Err(e)) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{} of 20 starts failed: {failures:?}", failures.len());
    for conv in &convs {
        let here: Vec<_> = outcomes.iter().filter(|(c, _, _)| c == conv).collect();
        let winners: Vec<CallId> =
            here.iter().filter(|(_, _, o)| *o == StartOutcome::Started).map(|(_, id, _)| *id).collect();
        assert_eq!(winners.len(), 1, "one call started: {here:?}");
        let winner = winners[0];
        for (_, id, outcome) in &here {
            if *id != winner {
                assert_eq!(*outcome, StartOutcome::Busy(winner), "the loser is told the winner's id");
                assert!(db.store.call(*id).await?.is_none(), "the loser's call is not stored");
            }
        }
        let record = stored_call(db, winner).await?;
        assert_eq!((record.conversation_id, record.ended_at_ms), (*conv, 0));
        assert_eq!(db.store.call_devices(winner).await?, vec![record.caller.1]);
    }
    Ok(())
}

async fn racing_ends_and_sweeps_end_a_call_once(db: &Fresh) -> anyhow::Result<()> {
    // Hanging up races with the ring time running out (two sweepers, two pools).
    let convs = call_conversations(db, "fin", 12).await?;
    let t = now_ms();
    let mut calls = Vec::new();
    for conv in &convs {
        calls.push(start(db, *conv, call_device(), t).await?);
    }
    let other = db.reopen().await?;
    let mut racers = tokio::task::JoinSet::new();
    for (i, call) in calls.iter().enumerate() {
        let (store, call) = (if i % 2 == 0 { db.store.clone() } else { other.clone() }, *call);
        racers.spawn(async move {
            store.end_call(call, t + 1000).await.map(|e| if e { vec![call] } else { Vec::new() })
        });
        if i % 6 == 0 {
            let store = if i % 12 == 0 { other.clone() } else { db.store.clone() };
            racers.spawn(
                async move { store.end_unanswered(t + 1, t + 2000).await.map(|calls| call_ids(&calls)) },
            );
        }
    }
    let (mut ended, mut failures) = (Vec::new(), Vec::new());
    while let Some(result) = racers.join_next().await {
        match result? {
            Ok(calls) => ended.extend(calls),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{} ends failed: {failures:?}", failures.len());
    ended.sort_unstable();
    calls.sort_unstable();
    assert_eq!(ended, calls, "every call ended exactly once");
    for call in &calls {
        let at = stored_call(db, *call).await?.ended_at_ms;
        assert!(at == t + 1000 || at == t + 2000, "ended at {at}");
        assert!(db.store.call_devices(*call).await?.is_empty());
    }
    Ok(())
}

async fn racing_answers_and_sweeps_either_answer_or_end_a_call(db: &Fresh) -> anyhow::Result<()> {
    // A device accepting as the ring time runs out: the call is answered or ended, never both.
    let convs = call_conversations(db, "late", 12).await?;
    let t = now_ms();
    let mut calls = Vec::new();
    for conv in &convs {
        calls.push(start(db, *conv, call_device(), t).await?);
    }
    let other = db.reopen().await?;
    let mut racers = tokio::task::JoinSet::new();
    for (i, call) in calls.iter().enumerate() {
        let (store, call) = (if i % 2 == 0 { db.store.clone() } else { other.clone() }, *call);
        racers.spawn(async move {
            store.join_call(call, call_device(), 6, t + 10).await.map(|outcome| match outcome {
                JoinOutcome::Joined(_) => (Vec::new(), vec![call]),
                _ => (Vec::new(), Vec::new()),
            })
        });
        if i % 4 == 0 {
            let store = if i % 8 == 0 { other.clone() } else { db.store.clone() };
            racers.spawn(async move {
                store.end_unanswered(t + 1, t + 20).await.map(|calls| (call_ids(&calls), Vec::new()))
            });
        }
    }
    let (mut swept, mut answered, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(result) = racers.join_next().await {
        match result? {
            Ok((s, a)) => {
                swept.extend(s);
                answered.extend(a);
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{} operations failed: {failures:?}", failures.len());
    for call in &calls {
        let record = stored_call(db, *call).await?;
        let (was_swept, was_answered) = (swept.contains(call), answered.contains(call));
        assert!(
            was_swept != was_answered,
            "{call:?}: swept {was_swept}, answered {was_answered}: {record:?}"
        );
        assert_eq!(swept.iter().filter(|c| *c == call).count(), usize::from(was_swept), "swept once");
        if was_answered {
            assert_eq!((record.answered_at_ms, record.ended_at_ms), (t + 10, 0));
            assert_eq!(db.store.call_devices(*call).await?.len(), 2);
        } else {
            assert_eq!((record.answered_at_ms, record.ended_at_ms), (0, t + 20));
            assert!(db.store.call_devices(*call).await?.is_empty(), "nobody left in a swept call");
        }
    }
    Ok(())
}

// Attachments.

fn new_attachment(conversation: ConversationId, uploader: AccountId, size: i64) -> NewAttachment {
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

async fn attachments_are_reserved_by_members_within_the_quota(db: &Fresh) -> anyhow::Result<()> {
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

async fn racing_reservations_never_exceed_the_quota(db: &Fresh) -> anyhow::Result<()> {
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

async fn attachments_link_to_one_message_of_their_uploader_once_uploaded(db: &Fresh) -> anyhow::Result<()> {
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

async fn due_attachments_are_expired_orphaned_or_of_deleted_messages(db: &Fresh) -> anyhow::Result<()> {
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

async fn existing_attachments_names_the_ids_with_a_row(db: &Fresh) -> anyhow::Result<()> {
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

async fn downloads_are_recorded_once_per_account(db: &Fresh) -> anyhow::Result<()> {
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

// ---- requests and blocks ------------------------------------------------------------------

async fn strangers_join_as_requests_until_they_accept(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["una", "vic", "wes"]).await?;
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let (direct, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    let (me, other) =
        (db.store.member(direct, a).await?.expect("a"), db.store.member(direct, b).await?.expect("b"));
    assert_eq!((me.request, me.added_by), (false, None), "the one who starts it has accepted it");
    assert_eq!((other.request, other.added_by), (true, Some(a)), "a stranger gets a request");
    let listed = |account, filter| async move {
        let list = db.store.conversations_of(account, filter, None, 100).await?;
        Ok::<_, StoreError>(list.into_iter().map(|c| c.id).collect::<Vec<_>>())
    };
    assert_eq!(listed(b, ConversationFilter::Requests).await?, [direct]);
    assert!(listed(b, ConversationFilter::Accepted).await?.is_empty());
    assert_eq!(listed(a, ConversationFilter::Accepted).await?, [direct]);
    assert_eq!(listed(b, ConversationFilter::All).await?, [direct]);
    assert!(!db.store.are_contacts(a, b).await?);
    assert_eq!(db.store.contacts(a).await?, [a]);
    assert_eq!(db.store.peers(a).await?, sorted(&[a, b]), "devices lists still reach a request");

    // A request sends no receipts: only the reader's own devices hear of its read mark.
    send(db, &message(direct, a, 1)).await?;
    let head_a = head(db, a).await?;
    let read = db.store.mark_read(direct, b, 1).await?.expect("a member");
    assert_eq!((read.read_seq, read.notified), (1, vec![b]));
    assert_eq!(head(db, a).await?, head_a, "the stranger hears nothing");

    // Accepting: the member's own devices hear it, the others get the held-back marks.
    assert_eq!(db.store.accept_request(direct, b).await?, AcceptOutcome::Accepted);
    assert_eq!(db.store.accept_request(direct, b).await?, AcceptOutcome::NotRequest);
    assert_eq!(db.store.accept_request(direct, a).await?, AcceptOutcome::NotRequest);
    assert_eq!(db.store.accept_request(direct, c).await?, AcceptOutcome::NotMember);
    assert_eq!(
        stream(db, b).await?.last().map(|(_, e)| e.clone()),
        Some(member_event(direct, b, Some(Role::Member)))
    );
    assert_eq!(
        stream(db, a).await?.last().map(|(_, e)| e.clone()),
        Some(AccountEvent::Receipt { conversation: direct, account: b, delivered_seq: 1, read_seq: 1 })
    );
    assert!(db.store.are_contacts(a, b).await? && db.store.are_contacts(b, a).await?);
    assert_eq!(db.store.contacts(a).await?, sorted(&[a, b]));

    // A contact added to a group joins accepted; a stranger as a request.
    let group = ConversationId::generate();
    db.store.create_group(group, "G", a, &[b, c], now_ms()).await?;
    let requests: Vec<_> =
        db.store.members(group).await?.into_iter().map(|m| (m.account_id, m.request)).collect();
    assert!(
        requests.contains(&(a, false)) && requests.contains(&(b, false)) && requests.contains(&(c, true))
    );
    Ok(())
}

async fn blocks_take_the_blocker_out_and_keep_it_out(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["xia", "yul", "zed"]).await?;
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let b1 = device(db, b, 1).await?;
    let (direct, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    let asked = ConversationId::generate();
    db.store.create_group(asked, "From a", a, &[b], now_ms()).await?;
    let other = ConversationId::generate();
    db.store.create_group(other, "From c", c, &[a, b], now_ms()).await?;

    // b blocks a: b leaves the direct conversation and a's requests, not c's group.
    let mut left = db.store.block(b, a, now_ms()).await?;
    left.sort_unstable();
    assert_eq!(left, sorted(&[direct, asked]));
    assert!(db.store.block(b, a, now_ms()).await?.is_empty(), "blocking again changes nothing");
    assert_eq!(db.store.member(direct, b).await?, None);
    assert_eq!(db.store.conversation_cursor(b1, direct).await?, None, "its devices stop following it");
    assert!(db.store.member(other, b).await?.is_some());
    assert!(db.store.has_blocked(b, a).await? && !db.store.has_blocked(a, b).await?);
    assert_eq!(db.store.blockers_of(a).await?, [b]);
    assert_eq!(db.store.blocking_devices(a).await?, [b1]);
    assert!(db.store.blocking_devices(b).await?.is_empty());
    assert_eq!(db.store.blocked_by(b).await?.into_iter().map(|(id, _)| id).collect::<Vec<_>>(), [a]);

    // a's new requests leave b out: opening again, a new group, adding b.
    let (again, created) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    assert_eq!((again, created), (direct, false));
    assert_eq!(db.store.member(direct, b).await?, None);
    let fresh = ConversationId::generate();
    db.store.create_group(fresh, "Again", a, &[b, c], now_ms()).await?;
    assert_eq!(db.store.member(fresh, b).await?, None);
    assert!(db.store.member(fresh, c).await?.is_some());
    assert_eq!(db.store.add_members(fresh, a, &[b], 100, now_ms()).await?, AddOutcome::Added(vec![]));
    // c adds b: not blocked by that, and b and c are not contacts, so a request.
    assert_eq!(db.store.add_members(fresh, c, &[b], 100, now_ms()).await?, AddOutcome::Added(vec![b]));
    assert!(db.store.member(fresh, b).await?.expect("added").request);

    // Unblocked: a's request comes again.
    assert!(db.store.unblock(b, a).await?);
    assert!(!db.store.unblock(b, a).await?);
    assert!(db.store.blockers_of(a).await?.is_empty());
    db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    assert!(db.store.member(direct, b).await?.expect("back").request);
    Ok(())
}

async fn groups_never_exceed_their_cap_even_when_racing(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["ace", "bea", "cal", "dee", "eli", "fin", "gwen", "hoa", "ike"]).await?;
    let group = ConversationId::generate();
    db.store.create_group(group, "Capped", ids[0], &ids[1..2], now_ms()).await?;
    assert_eq!(db.store.add_members(group, ids[0], &ids[2..6], 5, now_ms()).await?, AddOutcome::Full);
    assert_eq!(db.store.members(group).await?.len(), 2, "nothing added");
    let mut racers = tokio::task::JoinSet::new();
    for account in ids[2..].iter().copied() {
        let (store, owner) = (db.store.clone(), ids[0]);
        racers.spawn(async move { store.add_members(group, owner, &[account], 5, now_ms()).await });
    }
    let mut added = 0;
    while let Some(outcome) = racers.join_next().await {
        if let AddOutcome::Added(accounts) = outcome?? {
            added += accounts.len();
        }
    }
    assert_eq!(added, 3);
    assert_eq!(db.store.members(group).await?.len(), 5);
    Ok(())
}

async fn conversation_lists_come_in_pages(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["jon", "kya"]).await?;
    let mut made = Vec::new();
    for (i, at) in [5_000, 1_000, 3_000, 3_000, 2_000].into_iter().enumerate() {
        let id = ConversationId::generate();
        db.store.create_group(id, &format!("g{i}"), ids[0], &[], at).await?;
        made.push((at, id));
    }
    made.sort_unstable_by(|x, y| y.cmp(x));
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = db.store.conversations_of(ids[0], ConversationFilter::All, after, 2).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.last_activity_at_ms, last.id));
        pages.push(page.into_iter().map(|c| (c.last_activity_at_ms, c.id)).collect::<Vec<_>>());
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), made, "newest first, ties by id, each once");
    assert!(db.store.conversations_of(ids[1], ConversationFilter::All, None, 10).await?.is_empty());
    Ok(())
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    super::$test(&super::Fresh::new(super::Kind::Sqlite).await?).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    super::$test(&super::Fresh::new(super::Kind::Postgres).await?).await
                }
            )*
        }
    };
}

// ---- avatars ---------------------------------------------------------------------------

async fn account_avatars_replace_each_other_and_count_versions(db: &Fresh) -> anyhow::Result<()> {
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

async fn racing_avatar_changes_each_replace_one_blob(db: &Fresh) -> anyhow::Result<()> {
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

async fn group_avatars_are_set_by_owners_and_admins(db: &Fresh) -> anyhow::Result<()> {
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

conformance!(
    migrations_are_idempotent,
    fresh_database_reports_every_migration,
    ping_answers,
    instance_is_created_once,
    instance_survives_reconnect,
    concurrent_instance_creation_agrees,
    account_and_device_are_created_together,
    verified_email_belongs_to_one_account,
    totp_steps_are_accepted_once_and_in_order,
    totp_secrets_are_replaced_only_while_unchanged,
    access_tokens_authenticate_until_expiry_or_sign_out,
    refresh_tokens_rotate_once_and_reuse_signs_out,
    other_devices_are_signed_out_together,
    expired_refresh_tokens_do_not_rotate,
    racing_refreshes_of_one_token_rotate_at_most_once,
    devices_are_listed_renamed_and_scoped_to_their_account,
    codes_allow_limited_tries_and_one_use,
    parallel_guesses_cannot_exceed_the_tries,
    rate_limits_allow_the_burst_then_refuse,
    rate_limits_take_several_at_once_and_give_back,
    racing_requests_cannot_slip_past_a_limit,
    account_keys_are_set_once_unless_replaced,
    key_uploads_are_all_or_nothing_and_idempotent,
    one_time_keys_are_claimed_once_even_when_racing,
    one_time_keys_can_be_withheld_for_the_fallback_key,
    contacts_of_a_device_are_its_owner_and_who_shares_a_conversation,
    removing_a_device_removes_its_keys_and_moves_the_version,
    to_device_messages_wait_until_acknowledged,
    to_device_batches_are_refused_whole,
    inbox_quotas_hold_per_sender_for_strangers_and_in_all,
    racing_sends_cannot_overshoot_an_inbox_quota,
    pairings_are_taken_by_one_device_and_approved_once,
    a_pair_has_one_direct_conversation,
    messages_are_numbered_without_gaps_even_when_racing,
    a_batch_of_sends_gives_each_its_own_outcome,
    message_ids_are_unique_per_conversation,
    history_pages_both_ways,
    edits_deletes_and_read_marks,
    owners_hand_over_when_they_leave,
    cursors_exist_exactly_while_the_account_is_a_member,
    message_changes_follow_the_latest_change_of_each_message,
    member_events_reach_the_right_accounts_and_keep_the_latest_state,
    acks_move_cursors_and_the_delivered_mark_forward_only,
    acks_cover_several_conversations_the_inbox_and_the_account_stream,
    device_lists_reach_everyone_sharing_a_conversation,
    sign_outs_and_disabled_accounts_are_revoked,
    racing_acks_of_one_account_keep_the_highest_delivered_mark,
    acks_of_several_devices_commit_together,
    racing_sends_edits_and_deletes_use_every_change_once,
    racing_read_and_delivered_marks_never_cross,
    racing_acks_of_several_conversations_all_apply,
    racing_joins_and_sign_ins_keep_cursors_in_step,
    racing_owner_departures_and_device_list_changes_all_apply,
    one_call_at_a_time_per_conversation_and_ids_are_never_reused,
    joins_are_bounded_idempotent_and_answer_the_call,
    leaving_and_ending_calls,
    unanswered_calls_end_after_the_ring_time,
    calls_of_a_device_are_the_calls_it_is_in_going_on,
    racing_joins_never_exceed_the_most_devices,
    racing_starts_in_one_conversation_start_one_call,
    racing_ends_and_sweeps_end_a_call_once,
    racing_answers_and_sweeps_either_answer_or_end_a_call,
    attachments_are_reserved_by_members_within_the_quota,
    existing_attachments_names_the_ids_with_a_row,
    racing_reservations_never_exceed_the_quota,
    attachments_link_to_one_message_of_their_uploader_once_uploaded,
    due_attachments_are_expired_orphaned_or_of_deleted_messages,
    downloads_are_recorded_once_per_account,
    account_avatars_replace_each_other_and_count_versions,
    racing_avatar_changes_each_replace_one_blob,
    group_avatars_are_set_by_owners_and_admins,
    strangers_join_as_requests_until_they_accept,
    blocks_take_the_blocker_out_and_keep_it_out,
    groups_never_exceed_their_cap_even_when_racing,
    conversation_lists_come_in_pages,
);
