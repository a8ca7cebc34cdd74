//! Conformance of `CallStore`: calls.

use super::Fresh;
use super::conversations::accounts;
use crate::ids::{AccountId, CallId, ConversationId, DeviceId};
use crate::{CallRecord, JoinOutcome, NewCall, StartOutcome, now_ms};

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

pub(super) async fn one_call_at_a_time_per_conversation_and_ids_are_never_reused(
    db: &Fresh,
) -> anyhow::Result<()> {
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

pub(super) async fn joins_are_bounded_idempotent_and_answer_the_call(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn leaving_and_ending_calls(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn unanswered_calls_end_after_the_ring_time(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn calls_of_a_device_are_the_calls_it_is_in_going_on(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn racing_joins_never_exceed_the_most_devices(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn racing_starts_in_one_conversation_start_one_call(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn racing_ends_and_sweeps_end_a_call_once(db: &Fresh) -> anyhow::Result<()> {
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

pub(super) async fn racing_answers_and_sweeps_either_answer_or_end_a_call(db: &Fresh) -> anyhow::Result<()> {
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
