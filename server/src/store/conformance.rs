//! The store conformance suite: every test here runs twice, on a fresh SQLite file and on a
//! fresh PostgreSQL database (`store::conformance::sqlite::*` and `…::postgres::*` in the test
//! output). PostgreSQL is required: without it these tests fail, they are never skipped.
//! Every new store trait adds its tests to the `conformance!` list at the bottom.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kitsulan_e2e::postgres::TestDatabase;

use super::{
    AccountKeyOutcome, CodePurpose, Conflict, ConnectOptions, ConversationKind, DeviceKeysRecord, KeyUpload,
    KeyUploadOutcome, MessageRecord, NewAccount, NewCode, NewDevice, NewMessage, NewPairing, NewToDevice,
    PairingConflict, PairingStatus, RefreshOutcome, Role, SendOutcome, SendRefusal, SessionTokens,
    SignedKeyRecord, Store, StoreError, connect, now_ms,
};
use crate::config::DatabaseUrl;
use crate::ids::{AccountId, CodeId, ConversationId, DeviceId, MessageId, PairingId};

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
    assert_eq!(reused, RefreshOutcome::Reused(device.id));
    assert!(db.store.device(device.id).await?.is_none());
    assert!(db.store.authenticate(&next.access_hash, now).await?.is_none());
    assert_eq!(db.store.rotate_refresh(&[42; 32], &tokens(7, now), now).await?, RefreshOutcome::Unknown);
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
        claimers.spawn(async move { store.claim_key(device.id).await });
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
    assert_eq!(db.store.claim_key(nobody.id).await?, None, "nothing uploaded, nothing to claim");
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
    NewToDevice { message_id: MessageId::generate(), recipient, ciphertext: vec![byte; 8] }
}

async fn to_device_messages_wait_until_acknowledged(db: &Fresh) -> anyhow::Result<()> {
    let (a, b) = (new_account("pia"), new_account("quinn"));
    let (da, db_) = (new_device(a.id, 50), new_device(b.id, 51));
    db.store.create_account(&a, &da).await?;
    db.store.create_account(&b, &db_).await?;
    let now = now_ms();
    let batch: Vec<_> = (1..=3).map(|i| to_device(db_.id, i)).collect();
    assert_eq!(db.store.send_to_devices((a.id, da.id), &batch, now, now + 1000, 100).await?, Ok(()));
    // A retried send is stored once.
    assert_eq!(db.store.send_to_devices((a.id, da.id), &batch, now, now + 1000, 100).await?, Ok(()));
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
        db.store.send_to_devices((a.id, da.id), &mixed, now, now + 1000, 100).await?,
        Err(SendRefusal::UnknownDevice(ghost))
    );
    assert!(db.store.fetch_to_device(db_.id, 10).await?.is_empty(), "nothing of the batch was kept");
    let full: Vec<_> = (0..3).map(|i| to_device(db_.id, i)).collect();
    assert_eq!(
        db.store.send_to_devices((a.id, da.id), &full, now, now + 1000, 2).await?,
        Err(SendRefusal::InboxFull(db_.id))
    );
    assert!(db.store.fetch_to_device(db_.id, 10).await?.is_empty());
    // A signed-out device's inbox goes with it.
    assert_eq!(db.store.send_to_devices((a.id, da.id), &full[..1], now, now + 1000, 100).await?, Ok(()));
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
    assert_eq!(db.store.conversations_of(ids[0]).await?.len(), 0);
    assert_eq!(db.store.conversations_of(ids[1]).await?.len(), 1);
    db.store.add_members(group, &[ids[0], ids[1]], now_ms()).await?;
    assert_eq!(db.store.members(group).await?.len(), 3, "existing members stay as they are");
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
    access_tokens_authenticate_until_expiry_or_sign_out,
    refresh_tokens_rotate_once_and_reuse_signs_out,
    expired_refresh_tokens_do_not_rotate,
    racing_refreshes_of_one_token_rotate_at_most_once,
    devices_are_listed_renamed_and_scoped_to_their_account,
    codes_allow_limited_tries_and_one_use,
    parallel_guesses_cannot_exceed_the_tries,
    rate_limits_allow_the_burst_then_refuse,
    racing_requests_cannot_slip_past_a_limit,
    account_keys_are_set_once_unless_replaced,
    key_uploads_are_all_or_nothing_and_idempotent,
    one_time_keys_are_claimed_once_even_when_racing,
    removing_a_device_removes_its_keys_and_moves_the_version,
    to_device_messages_wait_until_acknowledged,
    to_device_batches_are_refused_whole,
    pairings_are_taken_by_one_device_and_approved_once,
    a_pair_has_one_direct_conversation,
    messages_are_numbered_without_gaps_even_when_racing,
    history_pages_both_ways,
    edits_deletes_and_read_marks,
    owners_hand_over_when_they_leave,
);
