//! What a participant's RTCP may make the SFU do: the one interceptor of ours in each session's
//! chain (the `rtc` stack's interceptors answer RTCP themselves and stop it before the
//! application, `rtc::interceptor::NoopInterceptor`).
//!
//! - **Picture loss** (a PLI or FIR) is let through to the node, which asks the sender of that
//!   video slot for a key frame (the room limits how often, [`crate::room::Room::picture_lost`]).
//! - **Retransmission requests** (NACKs) are answered by the stack's NACK responder from its own
//!   buffer: one 1,500-byte NACK can name hundreds of packets, so a participant repeating it
//!   could make the SFU resend without end, thousands of times the bytes it sent. Each session
//!   gets [`RESENDS_PER_SECOND`] packets of retransmission (a burst of as many); NACKs past that
//!   are dropped before the responder sees them, and counted.
//!
//! It sits in a slot of its own ([`GATE_SLOT`]) just nearer the wire than the NACK responder, so
//! inbound RTCP reaches it first.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Retransmissions one session may ask for per second (and at once). A listener of four video
/// streams at 2 Mbit/s losing 10 % asks for about 70.
pub const RESENDS_PER_SECOND: u32 = 400;

/// The gate of one session's inbound RTCP.
pub struct FeedbackGate {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    /// Retransmissions it may still ask for, and when that was last topped up.
    tokens: f64,
    topped_up: Option<Instant>,
    /// Retransmissions asked for past the budget, and not made.
    refused: u64,
}

impl Default for FeedbackGate {
    fn default() -> Self {
        Self {
            read: VecDeque::new(),
            write: VecDeque::new(),
            tokens: f64::from(RESENDS_PER_SECOND),
            topped_up: None,
            refused: 0,
        }
    }
}

/// Where the gate sits: nearer the wire than the NACK responder (4,000), so inbound NACKs pass it
/// first, and above a pacer (3,000), which would meter the resends it lets through.
pub const GATE_SLOT: usize = 3_900;

/// `registry` with a [`FeedbackGate`] in its place.
pub fn with_gate(registry: Registry) -> Registry {
    registry.with(Slot::from(GATE_SLOT), FeedbackGate::default())
}

impl FeedbackGate {
    /// Retransmissions asked for past the budget so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    fn top_up(&mut self, now: Instant) {
        let rate = f64::from(RESENDS_PER_SECOND);
        if let Some(before) = self.topped_up {
            self.tokens =
                (self.tokens + now.saturating_duration_since(before).as_secs_f64() * rate).min(rate);
        }
        self.topped_up = Some(now);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackGate {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        let Packet::Rtcp(packets) = &mut msg.message.packet else {
            self.read.push_back(msg);
            return Ok(());
        };
        self.top_up(msg.now);
        let mut kept = Vec::with_capacity(packets.len());
        let mut picture_lost = false;
        for packet in packets.drain(..) {
            let any = packet.as_any();
            if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                let asked: u32 = nack.nacks.iter().map(|pair| 1 + pair.lost_packets.count_ones()).sum();
                if self.tokens >= f64::from(asked) {
                    self.tokens -= f64::from(asked);
                    kept.push(packet);
                } else {
                    self.refused += u64::from(asked);
                }
                continue;
            }
            picture_lost |= any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>();
            kept.push(packet);
        }
        if kept.is_empty() {
            return Ok(());
        }
        *packets = kept;
        if picture_lost {
            msg.message.attributes.push(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for FeedbackGate {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rtc::interceptor::AttributedPacket;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;
    use rtc::shared::TransportContext;

    use super::*;

    fn rtcp(now: Instant, packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(packets)),
        }
    }

    /// A NACK naming 17 packets in each of `pairs` pairs: what one full-size NACK names.
    fn nack(pairs: u16) -> Box<dyn rtc::rtcp::Packet> {
        let nacks = (0..pairs).map(|i| NackPair { packet_id: i * 17, lost_packets: 0xFFFF }).collect();
        Box::new(TransportLayerNack { sender_ssrc: 1, media_ssrc: 2, nacks })
    }

    fn nacks_passed(gate: &mut FeedbackGate) -> u32 {
        let mut asked = 0;
        while let Some(msg) = gate.poll_read() {
            if let Packet::Rtcp(packets) = msg.message.packet {
                for p in packets {
                    if let Some(n) = p.as_any().downcast_ref::<TransportLayerNack>() {
                        asked += n.nacks.iter().map(|pair| 1 + pair.lost_packets.count_ones()).sum::<u32>();
                    }
                }
            }
        }
        asked
    }

    #[test]
    fn a_flood_of_nacks_gets_a_second_of_resends_a_second() {
        let mut gate = FeedbackGate::default();
        let start = Instant::now();
        // A participant sends a NACK of 10 pairs (170 packets) every millisecond for a second.
        for ms in 0..1_000u32 {
            gate.handle_read(rtcp(start + Duration::from_millis(u64::from(ms)), vec![nack(10)])).unwrap();
        }
        let passed = nacks_passed(&mut gate);
        // The burst, and what a second tops up: never the 170,000 asked for.
        assert!(passed <= 2 * RESENDS_PER_SECOND, "{passed} resends let through");
        assert!(passed >= RESENDS_PER_SECOND, "the honest budget was cut: {passed}");
        assert!(gate.refused() >= 165_000, "{} refused", gate.refused());
    }

    #[test]
    fn picture_loss_reaches_the_node_and_reports_stay_with_the_stack() {
        let mut gate = FeedbackGate::default();
        let now = Instant::now();
        let pli: Box<dyn rtc::rtcp::Packet> =
            Box::new(PictureLossIndication { sender_ssrc: 1, media_ssrc: 7 });
        let report: Box<dyn rtc::rtcp::Packet> = Box::new(ReceiverReport::default());
        gate.handle_read(rtcp(now, vec![report.clone(), pli])).unwrap();
        gate.handle_read(rtcp(now, vec![report])).unwrap();
        let first = gate.poll_read().unwrap();
        assert!(first.message.has(&Attribute::DeliverToApplication), "a PLI is for the node");
        let second = gate.poll_read().unwrap();
        assert!(!second.message.has(&Attribute::DeliverToApplication), "a report is the stack's");
        // A compound left empty by the budget is dropped whole.
        let mut spent = FeedbackGate { tokens: 0.0, topped_up: Some(now), ..FeedbackGate::default() };
        spent.handle_read(rtcp(now, vec![nack(1)])).unwrap();
        assert!(spent.poll_read().is_none());
    }
}
