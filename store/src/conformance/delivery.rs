//! Conformance of `DeliveryStore`: delivery.

use std::sync::Arc;

use super::Fresh;
use super::accounts::new_device;
use super::conversations::{accounts, message, send};
use super::inbox::{quota, to_device};
use crate::ids::{AccountId, ConversationId, DeviceId, MessageId};
use crate::{
    AccountEvent, ConversationCursor, ConversationFilter, DeviceAcks, MessageRecord, NewMessage, Receipt,
    Role, SendOutcome, StoreError, now_ms,
};

/// Signs a new device in to `account` (after the account's memberships exist, or before).
pub(super) async fn device(db: &Fresh, account: AccountId, seed: u8) -> anyhow::Result<DeviceId> {
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

pub(super) fn member_event(
    conversation: ConversationId,
    account: AccountId,
    role: Option<Role>,
) -> AccountEvent {
    AccountEvent::Member { conversation, account, role, request: false }
}

/// A member event as the member itself gets it while its membership is a request.
fn request_event(conversation: ConversationId, account: AccountId, role: Option<Role>) -> AccountEvent {
    AccountEvent::Member { conversation, account, role, request: true }
}

/// Accepts every request in `conversation`: for tests about something else than consent.
pub(super) async fn accept_all(db: &Fresh, conversation: ConversationId) -> anyhow::Result<()> {
    for member in db.store.members(conversation).await? {
        if member.request {
            db.store.accept_request(conversation, member.account_id).await?;
        }
    }
    Ok(())
}

/// The whole stream of an account, checking that positions strictly increase.
pub(super) async fn stream(db: &Fresh, account: AccountId) -> anyhow::Result<Vec<(i64, AccountEvent)>> {
    let events = db.store.account_events(account, 0, 10_000).await?;
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "positions strictly increase: {events:?}");
    Ok(events)
}

/// The newest position in an account's stream (0: empty).
pub(super) async fn head(db: &Fresh, account: AccountId) -> anyhow::Result<i64> {
    Ok(stream(db, account).await?.last().map_or(0, |(position, _)| *position))
}

pub(super) fn sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort_unstable();
    items
}

/// The ids of a conversation's messages, oldest first.
pub(super) async fn ids_of(db: &Fresh, conversation: ConversationId) -> anyhow::Result<Vec<MessageId>> {
    Ok(db.store.list_messages(conversation, 0, true, 1000).await?.into_iter().map(|m| m.id).collect())
}

pub(super) async fn cursors_exist_exactly_while_the_account_is_a_member(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn message_changes_follow_the_latest_change_of_each_message(
    db: &Fresh,
) -> anyhow::Result<()> {
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

pub(super) async fn member_events_reach_the_right_accounts_and_keep_the_latest_state(
    db: &Fresh,
) -> anyhow::Result<()> {
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

pub(super) async fn acks_move_cursors_and_the_delivered_mark_forward_only(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn acks_cover_several_conversations_the_inbox_and_the_account_stream(
    db: &Fresh,
) -> anyhow::Result<()> {
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

pub(super) async fn device_lists_reach_everyone_sharing_a_conversation(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn sign_outs_and_disabled_accounts_are_revoked(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn acks_of_several_devices_commit_together(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn racing_acks_of_one_account_keep_the_highest_delivered_mark(
    db: &Fresh,
) -> anyhow::Result<()> {
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

pub(super) async fn racing_sends_edits_and_deletes_use_every_change_once(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn racing_read_and_delivered_marks_never_cross(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn racing_acks_of_several_conversations_all_apply(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn racing_joins_and_sign_ins_keep_cursors_in_step(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn racing_owner_departures_and_device_list_changes_all_apply(
    db: &Fresh,
) -> anyhow::Result<()> {
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
