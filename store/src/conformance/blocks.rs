//! Conformance of `BlockStore`: requests and blocks (with the group cap and conversation list
//! pages that came with them).

use super::Fresh;
use super::conversations::{accounts, message, send};
use super::delivery::{device, head, member_event, sorted, stream};
use crate::ids::ConversationId;
use crate::{AcceptOutcome, AccountEvent, AddOutcome, ConversationFilter, Role, StoreError, now_ms};

pub(super) async fn strangers_join_as_requests_until_they_accept(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn blocks_take_the_blocker_out_and_keep_it_out(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn groups_never_exceed_their_cap_even_when_racing(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn conversation_lists_come_in_pages(db: &Fresh) -> anyhow::Result<()> {
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
