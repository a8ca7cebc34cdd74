//! Just enough of RTP (RFC 3550) for forwarding: the fixed header, the header extensions of
//! RFC 8285 (one-byte and two-byte forms) to find the audio level of RFC 6464, the three
//! fields a forwarder rewrites (sequence number, timestamp, SSRC), and whether a VP8 packet
//! starts a key frame (from VP8's descriptor and frame tag, which stay in the clear). The media
//! itself is never read: with end-to-end encrypted frames it is ciphertext the SFU cannot read.

use std::fmt;

/// The smallest RTP header.
const FIXED_HEADER: usize = 12;
/// The extension profile of one-byte header elements (RFC 8285 §4.2).
const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// Two-byte header elements (RFC 8285 §4.3): `0x100` and 4 bits the sender may choose.
const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Why bytes are not an RTP packet this forwarder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than its headers say.
    Truncated,
    /// Not version 2.
    Version,
    /// Padding longer than the packet.
    Padding,
}

impl fmt::Display for RtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "shorter than its headers say",
            Self::Version => "not RTP version 2",
            Self::Padding => "padding longer than the packet",
        })
    }
}

impl std::error::Error for RtpError {}

/// A checked view of an RTP packet's header.
#[derive(Clone, Copy, Debug)]
pub struct Rtp<'a> {
    bytes: &'a [u8],
    /// Where the header extension's elements start and end (`None`: no extension).
    extension: Option<(u16, usize, usize)>,
}

impl<'a> Rtp<'a> {
    /// Checks `bytes` as an RTP packet: version 2, every header within the packet, padding that
    /// fits.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RtpError> {
        if bytes.len() < FIXED_HEADER {
            return Err(RtpError::Truncated);
        }
        if bytes[0] >> 6 != 2 {
            return Err(RtpError::Version);
        }
        let csrcs = usize::from(bytes[0] & 0x0F);
        let mut end = FIXED_HEADER + 4 * csrcs;
        if bytes.len() < end {
            return Err(RtpError::Truncated);
        }
        let mut extension = None;
        if bytes[0] & 0x10 != 0 {
            let header = bytes.get(end..end + 4).ok_or(RtpError::Truncated)?;
            let profile = u16::from_be_bytes([header[0], header[1]]);
            let words = usize::from(u16::from_be_bytes([header[2], header[3]]));
            let start = end + 4;
            end = start + 4 * words;
            if bytes.len() < end {
                return Err(RtpError::Truncated);
            }
            extension = Some((profile, start, end));
        }
        if bytes[0] & 0x20 != 0 {
            let padding = usize::from(*bytes.last().ok_or(RtpError::Truncated)?);
            if padding == 0 || end + padding > bytes.len() {
                return Err(RtpError::Padding);
            }
        }
        Ok(Self { bytes, extension })
    }

    /// The payload type.
    pub fn payload_type(&self) -> u8 {
        self.bytes[1] & 0x7F
    }

    /// The marker bit (for audio: the first packet of a talkspurt).
    pub fn marker(&self) -> bool {
        self.bytes[1] & 0x80 != 0
    }

    /// The sequence number.
    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes([self.bytes[2], self.bytes[3]])
    }

    /// The timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }

    /// The synchronisation source.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.bytes[8], self.bytes[9], self.bytes[10], self.bytes[11]])
    }

    /// The payload: what follows the headers, without padding.
    pub fn payload(&self) -> &'a [u8] {
        let start =
            self.extension.map_or(FIXED_HEADER + 4 * usize::from(self.bytes[0] & 0x0F), |(_, _, end)| end);
        let padding =
            if self.bytes[0] & 0x20 != 0 { usize::from(self.bytes[self.bytes.len() - 1]) } else { 0 };
        self.bytes.get(start..self.bytes.len() - padding).unwrap_or_default()
    }

    /// The data of header extension element `id`, if the packet carries it.
    pub fn extension(&self, id: u8) -> Option<&'a [u8]> {
        let (profile, start, end) = self.extension?;
        let data = &self.bytes[start..end];
        let mut at = 0;
        if profile == ONE_BYTE_PROFILE {
            while at < data.len() {
                let (element, length) = (data[at] >> 4, usize::from(data[at] & 0x0F) + 1);
                match element {
                    0 => at += 1, // padding between elements
                    15 => return None,
                    found => {
                        let value = data.get(at + 1..at + 1 + length)?;
                        if found == id {
                            return Some(value);
                        }
                        at += 1 + length;
                    }
                }
            }
        } else if profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE {
            while at < data.len() {
                if data[at] == 0 {
                    at += 1;
                    continue;
                }
                let length = usize::from(*data.get(at + 1)?);
                let value = data.get(at + 2..at + 2 + length)?;
                if data[at] == id {
                    return Some(value);
                }
                at += 2 + length;
            }
        }
        None
    }

    /// The audio level of RFC 6464 carried in extension element `id`: 0 (loudest, 0 dBov) to
    /// 127 (silence, -127 dBov).
    pub fn audio_level(&self, id: u8) -> Option<u8> {
        self.extension(id).and_then(|value| value.first()).map(|level| level & 0x7F)
    }
}

/// Whether a VP8 RTP payload (RFC 7741) starts a key frame: its payload descriptor says the
/// packet starts partition 0 of a frame, and the frame tag after it has the key frame bit (`P`)
/// clear. The descriptor is the packetizer's and the frame tag stays in the clear in end-to-end
/// encrypted frames (crypto/FORMAT.md), so this reads nothing that is sealed.
pub fn vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else { return false };
    let (extended, start, partition) = (first & 0x80 != 0, first & 0x10 != 0, first & 0x07);
    if !start || partition != 0 {
        return false;
    }
    let mut at = 1;
    if extended {
        let Some(&flags) = payload.get(1) else { return false };
        at = 2;
        if flags & 0x80 != 0 {
            // The picture id: 7 bits, or 15 when its first bit says so.
            let Some(&id) = payload.get(at) else { return false };
            at += if id & 0x80 != 0 { 2 } else { 1 };
        }
        if flags & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if flags & 0x30 != 0 {
            at += 1; // TID, Y and KEYIDX
        }
    }
    payload.get(at).is_some_and(|tag| tag & 0x01 == 0)
}

/// Writes the fields a forwarder changes into a copy of a checked packet.
pub fn rewritten(packet: &Rtp<'_>, ssrc: u32, sequence: u16, timestamp: u32, marker: bool) -> Vec<u8> {
    let mut out = packet.bytes.to_vec();
    out[1] = if marker { out[1] | 0x80 } else { out[1] & 0x7F };
    out[2..4].copy_from_slice(&sequence.to_be_bytes());
    out[4..8].copy_from_slice(&timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An RTP packet of Opus (payload type 111) with an audio level in one-byte extension `ext`
    /// (when `level` is given) and `payload` as its payload.
    pub(crate) fn packet(
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        level: Option<(u8, u8)>,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = vec![0x80, 111];
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&ssrc.to_be_bytes());
        if let Some((ext, level)) = level {
            out[0] |= 0x10;
            out.extend_from_slice(&ONE_BYTE_PROFILE.to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes());
            // Padding first, then the element (length 1 is written as 0), then padding.
            out.extend_from_slice(&[0, ext << 4, 0x80 | level, 0]);
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn headers_extensions_and_rewrites() {
        let bytes = packet(0xDEAD_BEEF, 65_535, 4_294_967_000, Some((1, 42)), b"opus");
        let rtp = Rtp::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((rtp.ssrc(), rtp.sequence(), rtp.timestamp()), (0xDEAD_BEEF, 65_535, 4_294_967_000));
        assert_eq!(rtp.payload_type(), 111);
        assert_eq!(rtp.audio_level(1), Some(42), "the voice-activity bit is not part of the level");
        assert_eq!(rtp.audio_level(2), None);
        let out = rewritten(&rtp, 7, 1, 2, true);
        let again = Rtp::parse(&out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((again.ssrc(), again.sequence(), again.timestamp(), again.marker()), (7, 1, 2, true));
        assert_eq!(&out[out.len() - 4..], b"opus", "the payload is untouched");
        assert_eq!(again.audio_level(1), Some(42));

        // Two-byte elements.
        let mut two = packet(1, 1, 1, None, b"");
        two[0] |= 0x10;
        two.extend_from_slice(&[0x10, 0x00, 0, 1, 0, 3, 1, 99]);
        assert_eq!(Rtp::parse(&two).map(|r| r.audio_level(3)), Ok(Some(99)));
    }

    #[test]
    fn vp8_key_frames_are_told_from_the_descriptor_and_frame_tag() {
        // S=1, PID 0, then the frame tag: P clear (key frame), P set (delta frame).
        assert!(vp8_keyframe_start(&[0x10, 0x10, 0x02, 0x00]));
        assert!(!vp8_keyframe_start(&[0x10, 0x11, 0x02, 0x00]));
        // With the extension: a 15-bit picture id, TL0PICIDX and TID/KEYIDX before the tag.
        assert!(vp8_keyframe_start(&[0x90, 0xF0, 0x80, 0x01, 0x05, 0x20, 0x10]));
        assert!(!vp8_keyframe_start(&[0x90, 0xF0, 0x80, 0x01, 0x05, 0x20, 0x11]));
        assert!(vp8_keyframe_start(&[0x90, 0x80, 0x7F, 0x10]), "a 7-bit picture id");
        // Not the start of a frame, or not partition 0: no.
        assert!(!vp8_keyframe_start(&[0x00, 0x10]));
        assert!(!vp8_keyframe_start(&[0x11, 0x10]));
        // Cut short anywhere: no, and no panic.
        let long = [0x90, 0xF0, 0x80, 0x01, 0x05, 0x20, 0x10];
        for end in 0..long.len() {
            assert!(!vp8_keyframe_start(&long[..end]), "{end}");
        }
        let rtp = packet(1, 1, 1, Some((1, 3)), &[0x10, 0x10, 7]);
        assert_eq!(Rtp::parse(&rtp).map(|r| r.payload().to_vec()), Ok(vec![0x10, 0x10, 7]));
    }

    #[test]
    fn malformed_packets_are_refused_without_panicking() {
        assert_eq!(Rtp::parse(&[0x80; 11]).err(), Some(RtpError::Truncated));
        let mut v1 = packet(1, 1, 1, None, b"x");
        v1[0] = 0x40;
        assert_eq!(Rtp::parse(&v1).err(), Some(RtpError::Version));
        let mut csrcs = packet(1, 1, 1, None, b"");
        csrcs[0] |= 0x0F; // 15 CSRCs announced, none there
        assert_eq!(Rtp::parse(&csrcs).err(), Some(RtpError::Truncated));
        let mut long_extension = packet(1, 1, 1, Some((1, 3)), b"");
        long_extension[15] = 200; // 200 words of extension
        assert_eq!(Rtp::parse(&long_extension).err(), Some(RtpError::Truncated));
        let mut padding = packet(1, 1, 1, None, &[0, 0, 9]);
        padding[0] |= 0x20;
        assert_eq!(Rtp::parse(&padding).err(), Some(RtpError::Padding));
        // An element that runs past its extension reads as absent.
        let mut runaway = packet(1, 1, 1, Some((1, 3)), b"");
        runaway[17] = 0x1F; // id 1, 16 bytes
        assert_eq!(Rtp::parse(&runaway).map(|r| r.audio_level(1)), Ok(None));
        // Every prefix of a good packet is refused or parsed, never a panic.
        let good = packet(5, 5, 5, Some((1, 3)), b"payload");
        for end in 0..good.len() {
            let _ = Rtp::parse(&good[..end]).map(|r| r.audio_level(1));
        }
    }
}
