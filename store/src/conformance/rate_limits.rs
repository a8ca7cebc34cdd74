//! Conformance of `RateLimitStore`: rate limits.

use super::Fresh;
use crate::now_ms;

pub(super) async fn rate_limits_allow_the_burst_then_refuse(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn rate_limits_take_several_at_once_and_give_back(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn racing_requests_cannot_slip_past_a_limit(db: &Fresh) -> anyhow::Result<()> {
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
