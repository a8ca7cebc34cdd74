#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

//! Rooms as listeners hear them: every packet of every other speaker in a small room, the
//! loudest in a big one, one continuous stream per slot whoever speaks on it, and refusals of
//! what a participant must not send.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::room::{Dropped, Forward, JoinError, Media, ParticipantId, Room, RoomConfig, Uplink};
use crate::rtp::tests::packet;
use crate::rtp::{Rtp, RtpError};

const EXT: u8 = 1;
const FRAME: Duration = Duration::from_millis(20);

fn uplink(n: u64) -> u32 {
    0x1000 + n as u32
}

/// Participant `n`'s uplink, with its audio level in extension [`EXT`].
fn up(n: u64) -> Uplink {
    Uplink::audio(uplink(n), Some(EXT))
}

fn room(slots: usize, members: u64) -> Room {
    let mut room = Room::new(RoomConfig { audio_slots: slots, ..RoomConfig::default() });
    for n in 0..members {
        room.join(ParticipantId(n), up(n), slots).unwrap();
    }
    room
}

/// Participant `n`'s packet number `i` (sequence numbers and timestamps starting near their
/// wrap-around, to prove the rewriting wraps too), at `level` dBov below full scale; its payload
/// says who sent it and which it is.
fn spoken(n: u64, i: u16, level: u8) -> Vec<u8> {
    let sequence = 65_500u16.wrapping_add(i);
    let timestamp = 4_294_960_000u32.wrapping_add(u32::from(i) * 960);
    packet(uplink(n), sequence, timestamp, Some((EXT, level)), &[n as u8, (i >> 8) as u8, i as u8])
}

/// What each listener's slots carried: per listener and slot, the packets in order.
#[derive(Default)]
struct Heard(BTreeMap<(u64, usize), Vec<Vec<u8>>>);

impl Heard {
    fn take(&mut self, forwards: Vec<Forward>) {
        for f in forwards {
            self.0.entry((f.to.0, f.slot)).or_default().push(f.packet);
        }
    }

    /// The (sender, packet number) pairs listener `n` heard, in arrival order per slot.
    fn payloads(&self, n: u64) -> Vec<(u8, u16)> {
        let mut out = Vec::new();
        for ((listener, _), packets) in &self.0 {
            if *listener == n {
                for p in packets {
                    let tail = &p[p.len() - 3..];
                    out.push((tail[0], u16::from_be_bytes([tail[1], tail[2]])));
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Checks that every slot is one stream: one SSRC, sequence numbers +1 each packet,
    /// timestamps never going back (in wrapping arithmetic).
    fn assert_continuous(&self) {
        for ((listener, slot), packets) in &self.0 {
            let parsed: Vec<Rtp<'_>> = packets.iter().map(|p| Rtp::parse(p).unwrap()).collect();
            for pair in parsed.windows(2) {
                assert_eq!(pair[0].ssrc(), pair[1].ssrc(), "listener {listener} slot {slot}: one SSRC");
                assert_eq!(
                    pair[1].sequence(),
                    pair[0].sequence().wrapping_add(1),
                    "listener {listener} slot {slot}: sequence numbers without a gap"
                );
                let step = pair[1].timestamp().wrapping_sub(pair[0].timestamp());
                assert!(
                    step > 0 && step < 48_000 * 5,
                    "listener {listener} slot {slot}: timestamp step {step}"
                );
            }
        }
    }
}

#[test]
fn ten_in_a_room_each_hear_the_nine_others_once_and_never_themselves() {
    let mut room = room(9, 10);
    let mut heard = Heard::default();
    let start = Instant::now();
    for i in 0..100u16 {
        let now = start + FRAME * u32::from(i);
        for n in 0..10 {
            heard.take(room.forward(ParticipantId(n), &spoken(n, i, 30), now).unwrap());
        }
    }
    for n in 0..10u64 {
        let expected: Vec<(u8, u16)> =
            (0..10u8).filter(|s| u64::from(*s) != n).flat_map(|s| (0..100).map(move |i| (s, i))).collect();
        assert_eq!(heard.payloads(n), expected, "listener {n}");
        let counters = room.counters(ParticipantId(n)).unwrap();
        assert_eq!((counters.received, counters.forwarded, counters.unselected), (100, 900, 0));
    }
    heard.assert_continuous();
}

#[test]
fn in_a_big_room_the_loudest_are_heard_and_a_new_voice_takes_the_quietest_slot() {
    // Eight people, three slots each: 0, 1 and 2 talk, the others murmur.
    let mut room = room(3, 8);
    let mut heard = Heard::default();
    let start = Instant::now();
    let level = |n: u64, i: u16| match n {
        0 => 20,
        1 => 25,
        2 => 40,
        // 7 starts shouting after a second.
        7 if i >= 50 => 10,
        _ => 90,
    };
    for i in 0..100u16 {
        let now = start + FRAME * u32::from(i);
        for n in 0..8 {
            heard.take(room.forward(ParticipantId(n), &spoken(n, i, level(n, i)), now).unwrap());
        }
    }
    // A listener who is not speaking heard 0, 1 and 2 at first; then 7 took 2's slot (the
    // quietest of the three), and kept it.
    let sources = room.slots_of(ParticipantId(5)).unwrap();
    assert_eq!(sources, [Some(ParticipantId(0)), Some(ParticipantId(1)), Some(ParticipantId(7))]);
    let to_five = heard.payloads(5);
    assert!(to_five.iter().all(|(from, _)| [0, 1, 2, 7].contains(from)), "only the loudest");
    assert!(!to_five.iter().any(|&(from, i)| from == 7 && i < 50), "7 was quiet before");
    assert!(to_five.contains(&(7, 99)) && to_five.contains(&(2, 49)) && !to_five.contains(&(2, 99)));
    heard.assert_continuous();
    // The first packet after the change of voice starts a talkspurt.
    let slot = &heard.0[&(5, 2)];
    let first_of_seven = slot.iter().find(|p| p[p.len() - 3] == 7).map(|p| Rtp::parse(p).unwrap().marker());
    assert_eq!(first_of_seven, Some(true));
    // The murmurers were heard by nobody.
    assert!(room.counters(ParticipantId(4)).unwrap().unselected >= 99);
}

#[test]
fn a_slot_holds_its_voice_so_two_close_speakers_do_not_flap() {
    let mut room = room(1, 3);
    let start = Instant::now();
    // 0 speaks first; 1 is only a little louder: 0 keeps the slot at 2.
    room.forward(ParticipantId(0), &spoken(0, 0, 30), start).unwrap();
    room.forward(ParticipantId(1), &spoken(1, 0, 27), start + FRAME).unwrap();
    assert_eq!(room.slots_of(ParticipantId(2)).unwrap(), [Some(ParticipantId(0))]);
    // 1 is much louder, but within the hold: still 0.
    room.forward(ParticipantId(1), &spoken(1, 1, 5), start + FRAME * 2).unwrap();
    assert_eq!(room.slots_of(ParticipantId(2)).unwrap(), [Some(ParticipantId(0))]);
    // After the hold it takes the slot.
    room.forward(ParticipantId(0), &spoken(0, 1, 30), start + Duration::from_secs(1)).unwrap();
    room.forward(ParticipantId(1), &spoken(1, 2, 5), start + Duration::from_secs(1) + FRAME).unwrap();
    assert_eq!(room.slots_of(ParticipantId(2)).unwrap(), [Some(ParticipantId(1))]);
    // Someone gone silent loses a slot to anyone: after the speaking window, quiet 2 takes
    // listener 0's slot from 1, who stopped.
    let later = start + Duration::from_secs(4);
    room.forward(ParticipantId(2), &spoken(2, 0, 100), later).unwrap();
    assert_eq!(room.slots_of(ParticipantId(0)).unwrap(), [Some(ParticipantId(2))]);
}

#[test]
fn leaving_frees_the_slots_and_the_stream_goes_on_unbroken() {
    let mut room = room(1, 3);
    let mut heard = Heard::default();
    let start = Instant::now();
    for i in 0..10u16 {
        heard.take(room.forward(ParticipantId(0), &spoken(0, i, 20), start + FRAME * u32::from(i)).unwrap());
    }
    assert!(room.leave(ParticipantId(0)));
    assert!(!room.leave(ParticipantId(0)));
    assert_eq!(room.slots_of(ParticipantId(2)).unwrap(), [None]);
    for i in 0..10u16 {
        let now = start + Duration::from_secs(2) + FRAME * u32::from(i);
        heard.take(room.forward(ParticipantId(1), &spoken(1, i, 60), now).unwrap());
    }
    heard.assert_continuous();
    assert_eq!(heard.0[&(2, 0)].len(), 20, "ten of 0's, then ten of 1's, on the same slot");
    assert_eq!(room.len(), 2);
}

#[test]
fn what_a_participant_must_not_send_is_refused_and_counted() {
    let mut room = room(2, 3);
    let now = Instant::now();
    // Someone else's SSRC, an SSRC of the SFU's, a made-up one.
    let ours = room.join(ParticipantId(9), up(9), 2).unwrap()[0];
    for ssrc in [uplink(1), ours, 0xABCD] {
        let spoofed = packet(ssrc, 1, 1, Some((EXT, 1)), b"x");
        assert_eq!(room.forward(ParticipantId(0), &spoofed, now), Err(Dropped::UnknownSsrc));
    }
    assert_eq!(
        room.forward(ParticipantId(0), b"\x80\x6f", now),
        Err(Dropped::Malformed(RtpError::Truncated))
    );
    assert_eq!(room.forward(ParticipantId(42), &spoken(0, 0, 1), now), Err(Dropped::NotInRoom));
    assert_eq!(room.counters(ParticipantId(0)).unwrap().refused, 4);
    assert_eq!(room.counters(ParticipantId(0)).unwrap().received, 0);
    // A packet without an audio level is forwarded as silence (never preferred, never refused).
    let plain = packet(uplink(0), 1, 1, None, b"x");
    assert_eq!(room.forward(ParticipantId(0), &plain, now).unwrap().len(), 3);

    // Joining: twice, with a taken SSRC, with one of the SFU's, into a full room.
    assert_eq!(room.join(ParticipantId(0), Uplink::audio(77, None), 2), Err(JoinError::AlreadyIn));
    assert_eq!(room.join(ParticipantId(5), up(1), 2), Err(JoinError::SsrcTaken));
    assert_eq!(room.join(ParticipantId(5), Uplink::audio(ours, None), 2), Err(JoinError::SsrcTaken));
    let mut small = Room::new(RoomConfig { max_participants: 2, ..RoomConfig::default() });
    small.join(ParticipantId(0), up(0), 6).unwrap();
    small.join(ParticipantId(1), up(1), 6).unwrap();
    assert_eq!(small.join(ParticipantId(2), up(2), 6), Err(JoinError::Full));
    // Nobody's slots share an SSRC with another slot or an uplink.
    let mut fresh = Room::new(RoomConfig::default());
    let mut all: Vec<u32> = Vec::new();
    for n in 0..4u64 {
        all.extend(fresh.join(ParticipantId(n), up(n), 6).unwrap());
        all.push(uplink(n));
    }
    assert_eq!(fresh.join(ParticipantId(8), up(8), 100).unwrap().len(), 6, "capped at the room's slots");
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count);
}

/// Participant `n`'s camera (`0`) or screen (`1`) SSRC.
fn video_ssrc(n: u64, which: usize) -> u32 {
    0x2000 + 2 * n as u32 + which as u32
}

/// Participant `n`'s uplink with a camera and a screen.
fn with_video(n: u64) -> Uplink {
    Uplink { video: [Some(video_ssrc(n, 0)), Some(video_ssrc(n, 1))], ..up(n) }
}

/// A VP8 packet of `n`'s stream `which`, number `i`: the payload descriptor (start of partition
/// 0), then a frame tag whose key frame bit says `key`, then who sent it and which it is.
fn filmed(n: u64, which: usize, i: u16, key: bool) -> Vec<u8> {
    let tag = if key { 0x10 } else { 0x11 };
    packet(
        video_ssrc(n, which),
        1_000 + i,
        90_000 + u32::from(i) * 3_000,
        None,
        &[0x10, tag, n as u8, (i >> 8) as u8, i as u8],
    )
}

#[test]
fn video_reaches_each_listener_from_a_key_frame_on_and_a_slot_is_one_stream() {
    let mut room = Room::new(RoomConfig::default());
    for n in 0..3 {
        room.join_with_video(ParticipantId(n), with_video(n), 2, 2).unwrap();
    }
    let start = Instant::now();
    let at = |i: u16| start + Duration::from_millis(33) * u32::from(i);
    // Delta frames first: nobody sees them, and the camera is asked for a key frame, once.
    for i in 0..3 {
        assert_eq!(room.forward(ParticipantId(0), &filmed(0, 0, i, false), at(i)), Ok(vec![]));
    }
    assert_eq!(room.keyframe_requests(), [(ParticipantId(0), video_ssrc(0, 0))]);
    assert_eq!(room.counters(ParticipantId(1)).unwrap().awaiting_keyframe, 3);
    // From the key frame on, both others see every packet, on one slot each.
    let mut heard = Heard::default();
    for i in 3..20 {
        let out = room.forward(ParticipantId(0), &filmed(0, 0, i, i == 3), at(i)).unwrap();
        assert!(out.iter().all(|f| f.media == Media::Video));
        assert_eq!(out.iter().map(|f| f.to.0).collect::<Vec<_>>(), [1, 2], "never back to its sender");
        heard.take(out);
    }
    assert_eq!(heard.payloads(1), (3..20).map(|i| (0, i)).collect::<Vec<_>>());
    assert_eq!(
        room.video_slots_of(ParticipantId(2)).unwrap(),
        [Some((ParticipantId(0), video_ssrc(0, 0))), None]
    );
    for packets in heard.0.values() {
        let ssrcs: Vec<u32> = packets.iter().map(|p| Rtp::parse(p).unwrap().ssrc()).collect();
        assert!(ssrcs.iter().all(|s| *s == ssrcs[0] && *s != video_ssrc(0, 0)), "the slot's own SSRC");
    }
    // The audio slots are untouched by video.
    assert_eq!(room.slots_of(ParticipantId(1)).unwrap(), [None, None]);
    // A screen takes the second slot; a third stream finds none free and is not forwarded.
    room.forward(ParticipantId(1), &filmed(1, 1, 0, true), at(20)).unwrap();
    assert_eq!(room.video_slots_of(ParticipantId(2)).unwrap()[1], Some((ParticipantId(1), video_ssrc(1, 1))));
    // 1's camera too: 2's two slots are taken (0's camera, 1's screen), so only 0 sees it.
    let third = room.forward(ParticipantId(1), &filmed(1, 0, 0, true), at(21)).unwrap();
    assert_eq!(third.iter().map(|f| f.to.0).collect::<Vec<_>>(), [0], "no free slot at 2");
    // 0 turns its camera off: after the idle time the third stream takes that slot, at a key
    // frame, and the slot's numbering goes on without a gap.
    let later = at(21) + Duration::from_secs(2);
    room.forward(ParticipantId(2), &filmed(2, 0, 1, false), later).unwrap();
    let out = room.forward(ParticipantId(2), &filmed(2, 0, 2, true), later).unwrap();
    let to_one = out.iter().find(|f| f.to == ParticipantId(1)).expect("the freed slot");
    assert_eq!(to_one.slot, 0);
    let before = Rtp::parse(heard.0[&(1, 0)].last().unwrap()).unwrap();
    let after = Rtp::parse(&to_one.packet).unwrap();
    assert_eq!((after.ssrc(), after.sequence()), (before.ssrc(), before.sequence().wrapping_add(1)));
    // Leaving frees what a participant's streams held.
    assert!(room.leave(ParticipantId(2)));
    assert_eq!(room.video_slots_of(ParticipantId(1)).unwrap()[0], None);
}

#[test]
fn a_flood_of_picture_loss_reports_asks_a_sender_for_one_key_frame_per_interval() {
    let mut room = Room::new(RoomConfig::default());
    for n in 0..2 {
        room.join_with_video(ParticipantId(n), with_video(n), 1, 1).unwrap();
    }
    let start = Instant::now();
    room.forward(ParticipantId(0), &filmed(0, 0, 0, true), start).unwrap();
    let _ = room.keyframe_requests();
    for i in 0..1_000u32 {
        room.picture_lost(ParticipantId(1), 0, start + Duration::from_micros(u64::from(i) * 100)).unwrap();
    }
    assert_eq!(room.keyframe_requests().len(), 1, "one in 100 ms of reports");
    room.picture_lost(ParticipantId(1), 0, start + Duration::from_millis(600)).unwrap();
    assert_eq!(room.keyframe_requests(), [(ParticipantId(0), video_ssrc(0, 0))], "again after the interval");
    // A slot it does not have, a listener not in the room: refused, nothing asked.
    assert_eq!(room.picture_lost(ParticipantId(1), 5, start), Err(Dropped::UnknownSlot));
    assert_eq!(room.picture_lost(ParticipantId(9), 0, start), Err(Dropped::NotInRoom));
    assert!(room.keyframe_requests().is_empty());
}

#[test]
fn video_ssrcs_are_checked_like_voices() {
    let mut room = Room::new(RoomConfig::default());
    room.join_with_video(ParticipantId(0), with_video(0), 1, 1).unwrap();
    // A camera with another's voice or camera SSRC, or its own voice's, is refused.
    let stolen = Uplink { video: [Some(video_ssrc(0, 0)), None], ..up(1) };
    assert_eq!(room.join_with_video(ParticipantId(1), stolen, 1, 1), Err(JoinError::SsrcTaken));
    let twice = Uplink { video: [Some(uplink(1)), None], ..up(1) };
    assert_eq!(room.join_with_video(ParticipantId(1), twice, 1, 1), Err(JoinError::SsrcTaken));
    let (_, video) = room.join_with_video(ParticipantId(1), up(1), 1, 100).unwrap();
    assert_eq!(video.len(), RoomConfig::default().video_slots, "capped at the room's video slots");
    // Someone without a camera sending video, or with another's camera SSRC: refused.
    let now = Instant::now();
    assert_eq!(room.forward(ParticipantId(1), &filmed(1, 0, 0, true), now), Err(Dropped::UnknownSsrc));
    assert_eq!(room.forward(ParticipantId(1), &filmed(0, 0, 0, true), now), Err(Dropped::UnknownSsrc));
}
