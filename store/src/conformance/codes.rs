//! Conformance of `CodeStore`: one-time codes.

use super::Fresh;
use super::accounts::new_account;
use crate::ids::{AccountId, CodeId};
use crate::{CodePurpose, NewCode, now_ms};

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

pub(super) async fn codes_allow_limited_tries_and_one_use(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn parallel_guesses_cannot_exceed_the_tries(db: &Fresh) -> anyhow::Result<()> {
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
