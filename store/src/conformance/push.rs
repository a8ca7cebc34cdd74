//! Conformance of `PushStore`: one subscription per device, gone with the device, and who a
//! message wakes.

use super::Fresh;
use super::conversations::accounts;
use super::delivery::device;
use crate::ids::ConversationId;
use crate::{PushSubscription, now_ms};

fn subscription(endpoint: &str, byte: u8) -> PushSubscription {
    let mut p256dh = vec![byte; 65];
    p256dh[0] = 4;
    PushSubscription { endpoint: endpoint.to_owned(), p256dh, auth: vec![byte; 16] }
}

pub(super) async fn a_device_has_one_subscription_that_goes_with_it(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["pia", "pol"]).await?;
    let (a1, a2) = (device(db, ids[0], 1).await?, device(db, ids[0], 2).await?);
    assert_eq!(db.store.push_subscription(a1).await?, None);
    let first = subscription("https://push.example/one", 1);
    db.store.set_push_subscription(a1, &first, now_ms()).await?;
    assert_eq!(db.store.push_subscription(a1).await?, Some(first));
    // Subscribing again replaces it: still one per device.
    let second = subscription("https://push.example/two", 2);
    db.store.set_push_subscription(a1, &second, now_ms()).await?;
    assert_eq!(db.store.push_subscription(a1).await?, Some(second.clone()));
    db.store.set_push_subscription(a2, &subscription("https://push.example/three", 3), now_ms()).await?;

    // Unsubscribing deletes it once.
    assert!(db.store.delete_push_subscription(a2, None).await?);
    assert!(!db.store.delete_push_subscription(a2, None).await?);
    assert_eq!(db.store.push_subscription(a2).await?, None);

    // Signing the device out takes its subscription with it.
    assert!(db.store.delete_device(Some(ids[0]), a1).await?);
    assert_eq!(db.store.push_subscription(a1).await?, None);
    Ok(())
}

pub(super) async fn a_gone_endpoint_deletes_only_that_subscription(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["pat"]).await?;
    let d = device(db, ids[0], 1).await?;
    let newer = subscription("https://push.example/newer", 2);
    db.store.set_push_subscription(d, &newer, now_ms()).await?;
    // A push to the old endpoint came back 410 after the browser re-subscribed.
    assert!(!db.store.delete_push_subscription(d, Some("https://push.example/older")).await?);
    assert_eq!(db.store.push_subscription(d).await?, Some(newer));
    assert!(db.store.delete_push_subscription(d, Some("https://push.example/newer")).await?);
    assert_eq!(db.store.push_subscription(d).await?, None);
    Ok(())
}

pub(super) async fn push_devices_are_accepted_members_other_than_the_sender(
    db: &Fresh,
) -> anyhow::Result<()> {
    let ids = accounts(db, &["pam", "pen", "pip", "pux"]).await?;
    let (a, b, c, outsider) = (ids[0], ids[1], ids[2], ids[3]);
    let (a1, b1, c1, o1) = (
        device(db, a, 1).await?,
        device(db, b, 2).await?,
        device(db, c, 4).await?,
        device(db, outsider, 5).await?,
    );
    device(db, b, 3).await?; // b's second device, without a subscription
    for (byte, d) in [(1, a1), (2, b1), (3, c1), (4, o1)] {
        db.store.set_push_subscription(d, &subscription("https://push.example/x", byte), now_ms()).await?;
    }
    let (direct, _) = db.store.open_direct(ConversationId::generate(), (a, b), now_ms()).await?;
    // b has not accepted a's request yet: a stranger's message wakes nobody.
    assert!(db.store.push_devices(direct, a).await?.is_empty());
    // a (who started it) is woken by b's message.
    assert_eq!(db.store.push_devices(direct, b).await?, [(a, a1)]);
    db.store.accept_request(direct, b).await?;
    assert_eq!(db.store.push_devices(direct, a).await?, [(b, b1)]);

    let group = ConversationId::generate();
    db.store.create_group(group, "G", a, &[b], now_ms()).await?;
    let mut woken = db.store.push_devices(group, a).await?;
    woken.sort_unstable();
    assert_eq!(woken, [(b, b1)], "the sender, non-members and devices without a subscription are not woken");
    Ok(())
}
