//! Conformance of `InboxStore`: to-device inboxes.

use super::Fresh;
use super::accounts::{new_account, new_device};
use crate::ids::{AccountId, ConversationId, DeviceId, MessageId};
use crate::{InboxQuota, NewToDevice, SendRefusal, now_ms};

pub(super) fn to_device(recipient: DeviceId, byte: u8) -> NewToDevice {
    sized(recipient, byte, 8)
}

fn sized(recipient: DeviceId, byte: u8, size: usize) -> NewToDevice {
    NewToDevice { message_id: MessageId::generate(), recipient, ciphertext: vec![byte; size] }
}

/// At most `messages` waiting in an inbox, and no other limit.
pub(super) fn quota(messages: i64) -> InboxQuota {
    InboxQuota {
        messages,
        bytes: i64::MAX,
        per_sender: i64::MAX,
        stranger_messages: i64::MAX,
        stranger_bytes: i64::MAX,
    }
}

pub(super) async fn inbox_quotas_hold_per_sender_for_strangers_and_in_all(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn racing_sends_cannot_overshoot_an_inbox_quota(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn to_device_messages_wait_until_acknowledged(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn to_device_batches_are_refused_whole(db: &Fresh) -> anyhow::Result<()> {
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
