//! A voice room: who is in it, which uplink stream is whose, and which of them each listener
//! hears.
//!
//! Each participant sends one audio stream (its *uplink*, one SSRC, declared when it joins) and
//! receives up to [`RoomConfig::audio_slots`] streams (its *slots*, each with an SSRC of the
//! SFU's that never changes, so the listener's session is negotiated once, whoever joins or
//! leaves later). In a room no bigger than the slots plus one, every listener hears everyone
//! else. In a bigger one each slot carries one of the loudest current speakers (by the audio
//! level of RFC 6464 every browser sends), as Discord and Jitsi do; a slot changes speaker only
//! for someone clearly louder and not more often than [`RoomConfig::hold`], so voices do not
//! flap.
//!
//! A packet is forwarded with its sequence number, timestamp and SSRC rewritten into the slot's
//! (continuous across a change of speaker, so the listener's jitter buffer sees one stream) and
//! its payload untouched: with end-to-end encrypted media the payload is ciphertext the SFU
//! cannot read, and the frame's own key id tells the listener whose it is.
//!
//! Video (a camera and a shared screen per participant, each its own uplink SSRC) goes into
//! each listener's *video slots* the same way, first come first served: a stream keeps its slot
//! while it sends, and a slot whose stream has been quiet for [`RoomConfig::video_idle`] is free
//! for the next. A slot starts carrying a stream only at a key frame (VP8's frame tag stays
//! readable in end-to-end encrypted frames, crypto/FORMAT.md), and the room asks the sender for
//! one ([`Room::keyframe_requests`]), at most once per [`RoomConfig::keyframe_interval`] per
//! stream whoever asks, so a listener flooding picture-loss reports cannot make a sender send
//! key frames without end.
//!
//! The room is plain logic: time comes in as [`Instant`]s and packets as bytes, so it is tested
//! without a network and the I/O around it decides what to do with a participant that falls
//! behind ([`Room::leave`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::rtp::{Rtp, RtpError, rewritten};

/// A participant, as the I/O layer names it (one connection of one device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipantId(pub u64);

/// How a room behaves.
#[derive(Clone, Debug)]
pub struct RoomConfig {
    /// The most participants at once.
    pub max_participants: usize,
    /// Streams each participant receives at most.
    pub audio_slots: usize,
    /// Audio clock ticks per second (Opus: 48,000).
    pub clock_rate: u32,
    /// How long a slot keeps its speaker at least before a louder one takes it.
    pub hold: Duration,
    /// How much louder (dB) a speaker must be to take a slot from another.
    pub margin_db: u8,
    /// Speakers silent this long count as silent whatever their last level was.
    pub speaking_window: Duration,
    /// The first SSRC of the SFU's own streams (a random value per room in production).
    pub ssrc_base: u32,
    /// Video streams each participant receives at most.
    pub video_slots: usize,
    /// A video stream quiet this long (its camera or share was turned off) gives up its slots.
    pub video_idle: Duration,
    /// Key frames asked of one video stream at most this often.
    pub keyframe_interval: Duration,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            max_participants: 50,
            audio_slots: 6,
            clock_rate: 48_000,
            hold: Duration::from_millis(800),
            margin_db: 6,
            speaking_window: Duration::from_millis(1_500),
            ssrc_base: 0x5F00_0000,
            video_slots: 4,
            video_idle: Duration::from_millis(1_500),
            keyframe_interval: Duration::from_millis(500),
        }
    }
}

/// What a participant sends: its voice's SSRC, the header extension id that carries its audio
/// level (from its negotiated session; `None`: it sends none, and counts as silent), and the
/// SSRCs of its video streams (a camera, a screen), if it offered any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uplink {
    /// The SSRC of its audio.
    pub ssrc: u32,
    /// The id of the RFC 6464 audio level extension in its packets.
    pub audio_level_extension: Option<u8>,
    /// The SSRCs of its video streams.
    pub video: [Option<u32>; MAX_VIDEO_UPLINKS],
}

/// Video streams one participant may send: a camera and a screen.
pub const MAX_VIDEO_UPLINKS: usize = 2;

impl Uplink {
    /// A voice without video.
    pub fn audio(ssrc: u32, audio_level_extension: Option<u8>) -> Self {
        Self { ssrc, audio_level_extension, video: [None; MAX_VIDEO_UPLINKS] }
    }

    fn ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.ssrc).chain(self.video.iter().flatten().copied())
    }
}

/// Which kind of slot a forwarded packet goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// One of the listener's audio slots.
    Audio,
    /// One of its video slots.
    Video,
}

/// Why someone was not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// The room is full.
    Full,
    /// This participant is in the room already.
    AlreadyIn,
    /// Another participant sends with this SSRC (or it names one SSRC twice).
    SsrcTaken,
}

/// Why a packet was not forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Not an RTP packet the SFU accepts.
    Malformed(RtpError),
    /// From someone not in the room.
    NotInRoom,
    /// An SSRC that is not the sender's uplink (another participant's, or made up).
    UnknownSsrc,
    /// A report about a slot the listener does not have.
    UnknownSlot,
}

/// One forwarded packet: to whom, and the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// The listener.
    pub to: ParticipantId,
    /// Which kind of slot.
    pub media: Media,
    /// Which of its slots of that kind.
    pub slot: usize,
    /// The packet with the slot's SSRC, sequence number and timestamp.
    pub packet: Vec<u8>,
}

/// What a participant sent and received, for the admin and the benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets taken in from it.
    pub received: u64,
    /// Packets sent to it.
    pub forwarded: u64,
    /// Its packets no listener took (it was not among the loudest).
    pub unselected: u64,
    /// Its packets refused ([`Dropped`]).
    pub refused: u64,
    /// Video packets held back from it until its slot's key frame.
    pub awaiting_keyframe: u64,
    /// Picture-loss reports (PLI, FIR) it sent about its video slots.
    pub picture_losses: u64,
}

/// A listener's slot.
#[derive(Clone, Debug)]
struct Slot {
    /// The SFU's SSRC for it.
    ssrc: u32,
    /// Whom it carries now.
    source: Option<ParticipantId>,
    /// Since when it carries them.
    since: Option<Instant>,
    /// Added to a source's sequence numbers and timestamps to make the slot's.
    sequence_delta: u16,
    timestamp_delta: u32,
    /// The last packet sent on it: its sequence number, timestamp and when.
    last: Option<(u16, u32, Instant)>,
}

/// A listener's video slot: whose stream (the sender and that stream's SSRC) it carries.
#[derive(Clone, Debug)]
struct VideoSlot {
    ssrc: u32,
    source: Option<(ParticipantId, u32)>,
    /// The slot shows nothing until its stream's next key frame.
    awaiting_keyframe: bool,
    sequence_delta: u16,
    timestamp_delta: u32,
    last: Option<(u16, u32, Instant)>,
}

#[derive(Clone, Debug)]
struct Participant {
    uplink: Uplink,
    slots: Vec<Slot>,
    video_slots: Vec<VideoSlot>,
    /// When each of its video streams last sent (by SSRC), and last had a key frame asked.
    video_heard: HashMap<u32, Instant>,
    keyframe_asked: HashMap<u32, Instant>,
    /// Its last audio level and when it was heard (the level of silence until then).
    level: u8,
    heard_at: Option<Instant>,
    counters: Counters,
}

/// A room of participants who hear each other.
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    participants: BTreeMap<ParticipantId, Participant>,
    by_ssrc: HashMap<u32, ParticipantId>,
    next_ssrc: u32,
    /// Key frames to ask of senders: (sender, its video SSRC).
    keyframes: Vec<(ParticipantId, u32)>,
}

/// The video clock (90 kHz for every video codec in RTP).
const VIDEO_CLOCK: u64 = 90_000;

/// What to add to `rtp`'s sequence number and timestamp so that a slot whose last packet was
/// `last` goes on without a gap: the next sequence number, and the time that passed since in a
/// clock of `clock` ticks a second (at least `min_ticks`, one frame). A slot that never sent
/// takes the packet's own numbers.
fn continued(
    last: Option<(u16, u32, Instant)>,
    rtp: &Rtp<'_>,
    now: Instant,
    clock: u64,
    min_ticks: u64,
) -> (u16, u32) {
    let (sequence, timestamp) = match last {
        Some((sequence, timestamp, at)) => {
            let elapsed = now.saturating_duration_since(at).as_micros() as u64 * clock / 1_000_000;
            let ticks = u32::try_from(elapsed.max(min_ticks)).unwrap_or(u32::MAX);
            (sequence.wrapping_add(1), timestamp.wrapping_add(ticks))
        }
        None => (rtp.sequence(), rtp.timestamp()),
    };
    (sequence.wrapping_sub(rtp.sequence()), timestamp.wrapping_sub(rtp.timestamp()))
}

/// The level of silence (-127 dBov).
const SILENCE: u8 = 127;

impl Room {
    /// An empty room.
    pub fn new(config: RoomConfig) -> Self {
        let next_ssrc = config.ssrc_base;
        Self {
            config,
            participants: BTreeMap::new(),
            by_ssrc: HashMap::new(),
            next_ssrc,
            keyframes: Vec::new(),
        }
    }

    /// How many are in it.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// Whether nobody is in it.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Lets `id` in, sending `uplink`, with `slots` streams to receive (at most
    /// [`RoomConfig::audio_slots`]); returns the SSRCs of its slots, which its session announces
    /// once.
    pub fn join(&mut self, id: ParticipantId, uplink: Uplink, slots: usize) -> Result<Vec<u32>, JoinError> {
        self.join_with_video(id, uplink, slots, 0).map(|(audio, _)| audio)
    }

    /// [`Self::join`] with `video_slots` video streams to receive too (at most
    /// [`RoomConfig::video_slots`]); returns the SSRCs of its audio slots and of its video slots.
    pub fn join_with_video(
        &mut self,
        id: ParticipantId,
        uplink: Uplink,
        slots: usize,
        video_slots: usize,
    ) -> Result<(Vec<u32>, Vec<u32>), JoinError> {
        if self.participants.contains_key(&id) {
            return Err(JoinError::AlreadyIn);
        }
        if self.participants.len() >= self.config.max_participants {
            return Err(JoinError::Full);
        }
        let mut own: Vec<u32> = uplink.ssrcs().collect();
        own.sort_unstable();
        own.dedup();
        if own.len() != uplink.ssrcs().count()
            || own.iter().any(|ssrc| self.by_ssrc.contains_key(ssrc) || self.is_ours(*ssrc))
        {
            return Err(JoinError::SsrcTaken);
        }
        let audio = self.new_ssrcs(slots.min(self.config.audio_slots), &own);
        let video = self.new_ssrcs(video_slots.min(self.config.video_slots), &own);
        let slots = audio
            .iter()
            .map(|&ssrc| Slot {
                ssrc,
                source: None,
                since: None,
                sequence_delta: 0,
                timestamp_delta: 0,
                last: None,
            })
            .collect();
        let video_slots = video
            .iter()
            .map(|&ssrc| VideoSlot {
                ssrc,
                source: None,
                awaiting_keyframe: true,
                sequence_delta: 0,
                timestamp_delta: 0,
                last: None,
            })
            .collect();
        for ssrc in own {
            self.by_ssrc.insert(ssrc, id);
        }
        let participant = Participant {
            uplink,
            slots,
            video_slots,
            video_heard: HashMap::new(),
            keyframe_asked: HashMap::new(),
            level: SILENCE,
            heard_at: None,
            counters: Counters::default(),
        };
        self.participants.insert(id, participant);
        Ok((audio, video))
    }

    /// `count` SSRCs of the SFU's own, none of them a participant's or in `avoid`.
    fn new_ssrcs(&mut self, count: usize, avoid: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let ssrc = self.next_ssrc;
            self.next_ssrc = self.next_ssrc.wrapping_add(1);
            if !self.by_ssrc.contains_key(&ssrc) && !avoid.contains(&ssrc) && !self.is_ours(ssrc) {
                out.push(ssrc);
            }
        }
        out
    }

    /// Whether `ssrc` is one of the SFU's own (a participant may not send with it).
    fn is_ours(&self, ssrc: u32) -> bool {
        self.participants
            .values()
            .any(|p| p.slots.iter().any(|s| s.ssrc == ssrc) || p.video_slots.iter().any(|s| s.ssrc == ssrc))
    }

    /// Takes `id` out; its slots at the others fall free. `false` if it was not in.
    pub fn leave(&mut self, id: ParticipantId) -> bool {
        let Some(gone) = self.participants.remove(&id) else { return false };
        for ssrc in gone.uplink.ssrcs() {
            self.by_ssrc.remove(&ssrc);
        }
        for other in self.participants.values_mut() {
            for slot in other.slots.iter_mut().filter(|s| s.source == Some(id)) {
                slot.source = None;
                slot.since = None;
            }
            for slot in other.video_slots.iter_mut().filter(|s| s.source.is_some_and(|(p, _)| p == id)) {
                slot.source = None;
            }
        }
        self.keyframes.retain(|(p, _)| *p != id);
        true
    }

    /// What `id` sent and received.
    pub fn counters(&self, id: ParticipantId) -> Option<Counters> {
        self.participants.get(&id).map(|p| p.counters)
    }

    /// Who each of `id`'s slots carries now.
    pub fn slots_of(&self, id: ParticipantId) -> Option<Vec<Option<ParticipantId>>> {
        self.participants.get(&id).map(|p| p.slots.iter().map(|s| s.source).collect())
    }

    /// Whose video stream each of `id`'s video slots carries now (the sender and its SSRC).
    pub fn video_slots_of(&self, id: ParticipantId) -> Option<Vec<Option<(ParticipantId, u32)>>> {
        self.participants.get(&id).map(|p| p.video_slots.iter().map(|s| s.source).collect())
    }

    /// The key frames to ask of senders since the last call: (sender, its video SSRC).
    pub fn keyframe_requests(&mut self) -> Vec<(ParticipantId, u32)> {
        std::mem::take(&mut self.keyframes)
    }

    /// A listener lost the picture on its video slot `slot` (an RTCP PLI or FIR on that slot's
    /// SSRC): the slot's sender is asked for a key frame, within the rate limit.
    pub fn picture_lost(
        &mut self,
        listener: ParticipantId,
        slot: usize,
        now: Instant,
    ) -> Result<(), Dropped> {
        let reporter = self.participants.get_mut(&listener).ok_or(Dropped::NotInRoom)?;
        let source = reporter.video_slots.get(slot).ok_or(Dropped::UnknownSlot)?.source;
        reporter.counters.picture_losses += 1;
        if let Some((sender, ssrc)) = source {
            self.ask_keyframe(sender, ssrc, now);
        }
        Ok(())
    }

    /// Queues a key frame request to `sender` for its stream `ssrc`, unless one went out within
    /// [`RoomConfig::keyframe_interval`].
    fn ask_keyframe(&mut self, sender: ParticipantId, ssrc: u32, now: Instant) {
        let interval = self.config.keyframe_interval;
        let Some(p) = self.participants.get_mut(&sender) else { return };
        let due = p.keyframe_asked.get(&ssrc).is_none_or(|at| now.saturating_duration_since(*at) >= interval);
        if due {
            p.keyframe_asked.insert(ssrc, now);
            self.keyframes.push((sender, ssrc));
        }
    }

    /// Forwards one packet of `from`'s video stream into every listener's video slot that carries
    /// it, or takes a free one (nobody's, or a stream gone quiet) for it.
    /// `resumed`: the stream was quiet until now, so whoever sees it needs a key frame first.
    fn forward_video(
        &mut self,
        from: ParticipantId,
        rtp: &Rtp<'_>,
        resumed: bool,
        now: Instant,
    ) -> Vec<Forward> {
        let ssrc = rtp.ssrc();
        let idle = self.config.video_idle;
        let keyframe = crate::rtp::vp8_keyframe_start(rtp.payload());
        // When each video stream was last heard: needed only to find a free slot, so not built
        // on the packet path once every listener has this stream in a slot.
        let placed = self
            .participants
            .iter()
            .filter(|(id, _)| **id != from)
            .all(|(_, p)| p.video_slots.iter().any(|s| s.source == Some((from, ssrc))));
        let heard: HashMap<(ParticipantId, u32), Instant> = if placed {
            HashMap::new()
        } else {
            self.participants
                .iter()
                .flat_map(|(id, p)| p.video_heard.iter().map(|(stream, at)| ((*id, *stream), *at)))
                .collect()
        };
        let quiet = |source: (ParticipantId, u32)| {
            heard.get(&source).is_none_or(|at| now.saturating_duration_since(*at) >= idle)
        };
        let mut out = Vec::new();
        let mut wants_keyframe = false;
        for (listener_id, listener) in self.participants.iter_mut() {
            if *listener_id == from {
                continue;
            }
            let slots = &mut listener.video_slots;
            let index = slots
                .iter()
                .position(|s| s.source == Some((from, ssrc)))
                .or_else(|| slots.iter().position(|s| s.source.is_none_or(quiet)));
            let Some(index) = index else { continue };
            let slot = &mut slots[index];
            if slot.source != Some((from, ssrc)) || resumed {
                slot.source = Some((from, ssrc));
                slot.awaiting_keyframe = true;
            }
            if slot.awaiting_keyframe {
                if !keyframe {
                    listener.counters.awaiting_keyframe += 1;
                    wants_keyframe = true;
                    continue;
                }
                // The slot's numbering goes on from where it stopped (at least a 30 fps frame).
                (slot.sequence_delta, slot.timestamp_delta) =
                    continued(slot.last, rtp, now, VIDEO_CLOCK, VIDEO_CLOCK / 30);
                slot.awaiting_keyframe = false;
            }
            let sequence = rtp.sequence().wrapping_add(slot.sequence_delta);
            let timestamp = rtp.timestamp().wrapping_add(slot.timestamp_delta);
            slot.last = Some((sequence, timestamp, now));
            out.push(Forward {
                to: *listener_id,
                media: Media::Video,
                slot: index,
                packet: rewritten(rtp, slot.ssrc, sequence, timestamp, rtp.marker()),
            });
            listener.counters.forwarded += 1;
        }
        if wants_keyframe {
            self.ask_keyframe(from, ssrc, now);
        }
        out
    }

    /// Takes in an RTP packet `from` a participant (the I/O layer knows whose connection it came
    /// on) and returns it as each listener who gets it should receive it.
    pub fn forward(
        &mut self,
        from: ParticipantId,
        packet: &[u8],
        now: Instant,
    ) -> Result<Vec<Forward>, Dropped> {
        let refused = |room: &mut Self, why: Dropped| {
            if let Some(p) = room.participants.get_mut(&from) {
                p.counters.refused += 1;
            }
            Err(why)
        };
        let rtp = match Rtp::parse(packet) {
            Ok(rtp) => rtp,
            Err(e) => return refused(self, Dropped::Malformed(e)),
        };
        let Some(sender) = self.participants.get_mut(&from) else { return Err(Dropped::NotInRoom) };
        if sender.uplink.video.contains(&Some(rtp.ssrc())) {
            sender.counters.received += 1;
            let idle = self.config.video_idle;
            let before = sender.video_heard.insert(rtp.ssrc(), now);
            let resumed = before.is_none_or(|at| now.saturating_duration_since(at) >= idle);
            return Ok(self.forward_video(from, &rtp, resumed, now));
        }
        if rtp.ssrc() != sender.uplink.ssrc {
            return refused(self, Dropped::UnknownSsrc);
        }
        sender.counters.received += 1;
        let level = sender.uplink.audio_level_extension.and_then(|id| rtp.audio_level(id)).unwrap_or(SILENCE);
        sender.level = level;
        sender.heard_at = Some(now);
        let loudness = |p: &Participant| -> u8 {
            match p.heard_at {
                Some(at) if now.saturating_duration_since(at) <= self.config.speaking_window => {
                    SILENCE - p.level
                }
                _ => 0,
            }
        };
        let mine = SILENCE - level;
        let louder = |other: u8| mine >= other.saturating_add(self.config.margin_db);
        // Only a room bigger than the slots ever takes a slot from someone.
        let crowded = self.participants.len() > self.config.audio_slots + 1;
        let loudness_of: HashMap<ParticipantId, u8> = if crowded {
            self.participants.iter().map(|(id, p)| (*id, loudness(p))).collect()
        } else {
            HashMap::new()
        };
        let mut out = Vec::new();
        let hold = self.config.hold;
        let clock = u64::from(self.config.clock_rate);
        for (listener_id, listener) in self.participants.iter_mut() {
            if *listener_id == from {
                continue;
            }
            let slots = &mut listener.slots;
            let index = match slots.iter().position(|s| s.source == Some(from)) {
                Some(i) => Some(i),
                None => {
                    // A free slot, else the quietest that has been held long enough, if the
                    // sender is clearly louder than whom it carries.
                    let free = slots.iter().position(|s| s.source.is_none());
                    free.or_else(|| {
                        slots
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| {
                                s.since.is_none_or(|since| now.saturating_duration_since(since) >= hold)
                            })
                            .min_by_key(|(_, s)| {
                                s.source.and_then(|p| loudness_of.get(&p).copied()).unwrap_or(0)
                            })
                            .filter(|(_, s)| {
                                louder(s.source.and_then(|p| loudness_of.get(&p).copied()).unwrap_or(0))
                            })
                            .map(|(i, _)| i)
                    })
                }
            };
            let Some(index) = index else { continue };
            let slot = &mut slots[index];
            let switched = slot.source != Some(from);
            if switched {
                // Continue the slot's numbering where it stopped (at least one 20 ms frame).
                (slot.sequence_delta, slot.timestamp_delta) =
                    continued(slot.last, &rtp, now, clock, clock / 50);
                slot.source = Some(from);
                slot.since = Some(now);
            }
            let sequence = rtp.sequence().wrapping_add(slot.sequence_delta);
            let timestamp = rtp.timestamp().wrapping_add(slot.timestamp_delta);
            slot.last = Some((sequence, timestamp, now));
            // A new voice on the slot starts a talkspurt.
            let marker = rtp.marker() || switched;
            out.push(Forward {
                to: *listener_id,
                media: Media::Audio,
                slot: index,
                packet: rewritten(&rtp, slot.ssrc, sequence, timestamp, marker),
            });
            listener.counters.forwarded += 1;
        }
        if out.is_empty()
            && self.participants.len() > 1
            && let Some(sender) = self.participants.get_mut(&from)
        {
            sender.counters.unselected += 1;
        }
        Ok(out)
    }
}
