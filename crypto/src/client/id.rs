//! [`Id`]: the 16-byte UUIDs the protocol names accounts, devices, conversations, messages and
//! calls by (parsed at the edge; the text form is lowercase and hyphenated).

use super::Error;
use crate::OsRng;

/// A 16-byte id (a UUID: accounts, devices, conversations, messages, calls).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub(crate) [u8; 16]);

impl Id {
    /// Wraps the 16 bytes of a UUID.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses the text form (`8-4-4-4-12` hex digits, either case).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bytes = text.as_bytes();
        if bytes.len() != 36 {
            return Err(Error::InvalidId);
        }
        let mut out = [0u8; 16];
        let mut digits = bytes.iter().enumerate().filter(|(i, _)| !matches!(i, 8 | 13 | 18 | 23));
        if [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
            return Err(Error::InvalidId);
        }
        for byte in &mut out {
            let mut value = 0u8;
            for _ in 0..2 {
                let (_, c) = digits.next().ok_or(Error::InvalidId)?;
                let nibble = (*c as char).to_digit(16).ok_or(Error::InvalidId)?;
                value = (value << 4) | nibble as u8;
            }
            *byte = value;
        }
        Ok(Self(out))
    }

    /// Parses 16 bytes (as the WASM layer and the wire carry ids).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        bytes.try_into().map(Self).map_err(|_| Error::InvalidId)
    }

    /// A new UUIDv7 (milliseconds `now_ms`, random rest), for to-device message ids.
    pub fn new_v7(now_ms: u64) -> Self {
        let mut bytes = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut OsRng::new(), &mut bytes[6..]);
        bytes[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
        bytes[6] = 0x70 | (bytes[6] & 0x0f);
        bytes[8] = 0x80 | (bytes[8] & 0x3f);
        Self(bytes)
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
