//! Conformance of `InstanceStore` and `Store` itself: migrations, ping and the instance identity.

use super::Fresh;

pub(super) async fn migrations_are_idempotent(db: &Fresh) -> anyhow::Result<()> {
    let again = db.store.migrate().await?;
    assert!(again.applied.is_empty(), "second run applied {:?}", again.applied);
    assert!(again.total >= 1);
    Ok(())
}

pub(super) async fn fresh_database_reports_every_migration(db: &Fresh) -> anyhow::Result<()> {
    let empty = Fresh::unmigrated(db.kind).await?;
    let first = empty.store.migrate().await?;
    assert_eq!(first.applied.len(), first.total);
    assert!(first.applied.iter().any(|m| m.starts_with("0001 ")), "{:?}", first.applied);
    Ok(())
}

pub(super) async fn ping_answers(db: &Fresh) -> anyhow::Result<()> {
    db.store.ping().await?;
    Ok(())
}

pub(super) async fn instance_is_created_once(db: &Fresh) -> anyhow::Result<()> {
    let first = db.store.instance().await?;
    let second = db.store.instance().await?;
    assert_eq!(first, second);
    assert!(first.created_at_ms > 1_700_000_000_000, "{first:?}");
    Ok(())
}

pub(super) async fn instance_survives_reconnect(db: &Fresh) -> anyhow::Result<()> {
    let before = db.store.instance().await?;
    db.store.close().await;
    let other = db.reopen().await?;
    assert_eq!(other.instance().await?, before);
    Ok(())
}

pub(super) async fn concurrent_instance_creation_agrees(db: &Fresh) -> anyhow::Result<()> {
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
