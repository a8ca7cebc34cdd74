//! Conformance of `PairingStore`: pairings.

use super::Fresh;
use super::accounts::{new_account, new_device};
use crate::ids::{DeviceId, PairingId};
use crate::{NewPairing, PairingConflict, PairingStatus, now_ms};

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

pub(super) async fn pairings_are_taken_by_one_device_and_approved_once(db: &Fresh) -> anyhow::Result<()> {
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
