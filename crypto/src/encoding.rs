//! Small byte and text helpers shared by the modules: base64 for the browser and fixed-size
//! reads for our own binary formats. Internal: the formats themselves live with their owners.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::{Error, Result};

/// Standard alphabet, no padding on output, padding optional on input (vodozemac's choice).
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe alphabet without padding, for text that goes into QR codes and URLs.
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Unpadded standard base64.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64, padded or not.
pub(crate) fn unb64(text: &str) -> Result<Vec<u8>> {
    STANDARD.decode(text).map_err(|_| Error::InvalidBase64)
}

/// Unpadded URL-safe base64.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

/// Decodes URL-safe base64, padded or not.
pub(crate) fn unb64url(text: &str) -> Result<Vec<u8>> {
    URL_SAFE.decode(text).map_err(|_| Error::InvalidBase64)
}

/// A cursor over untrusted bytes; every read fails with the caller's error when short.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    error: Error,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], error: Error) -> Self {
        Self { rest: bytes, error }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(self.error.clone());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Fails unless every byte was consumed: trailing garbage is refused, not ignored.
    pub(crate) fn finish(self) -> Result<()> {
        if self.rest.is_empty() { Ok(()) } else { Err(self.error) }
    }
}

/// Parses an Ed25519 public key from bytes.
pub(crate) fn ed25519_key(bytes: &[u8]) -> Result<vodozemac::Ed25519PublicKey> {
    let array: &[u8; 32] = bytes.try_into().map_err(|_| Error::InvalidPublicKey("Ed25519"))?;
    vodozemac::Ed25519PublicKey::from_slice(array).map_err(|_| Error::InvalidPublicKey("Ed25519"))
}

/// Parses a Curve25519 public key from bytes (every 32-byte string is a valid encoding).
pub(crate) fn curve25519_key(bytes: &[u8]) -> Result<vodozemac::Curve25519PublicKey> {
    vodozemac::Curve25519PublicKey::from_slice(bytes).map_err(|_| Error::InvalidPublicKey("Curve25519"))
}

/// Parses a 64-byte Ed25519 signature.
pub(crate) fn signature(bytes: &[u8]) -> Result<vodozemac::Ed25519Signature> {
    if bytes.len() != 64 {
        return Err(Error::MalformedSignature);
    }
    vodozemac::Ed25519Signature::from_slice(bytes).map_err(|_| Error::MalformedSignature)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn base64_round_trips_and_accepts_padding() {
        assert_eq!(b64(b"ab"), "YWI");
        assert_eq!(unb64("YWI").unwrap(), b"ab");
        assert_eq!(unb64("YWI=").unwrap(), b"ab");
        assert_eq!(unb64("Y!I"), Err(Error::InvalidBase64));
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(unb64url("-_8").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn reader_refuses_short_and_trailing_input() {
        let mut r = Reader::new(&[1, 0, 2, 9], Error::MalformedBackup);
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 2);
        assert_eq!(r.u32(), Err(Error::MalformedBackup));
        let r = Reader::new(&[1], Error::MalformedPickle);
        assert_eq!(r.finish(), Err(Error::MalformedPickle));
    }

    #[test]
    fn key_parsers_check_lengths() {
        assert_eq!(ed25519_key(&[0; 31]).unwrap_err(), Error::InvalidPublicKey("Ed25519"));
        assert_eq!(curve25519_key(&[0; 33]).unwrap_err(), Error::InvalidPublicKey("Curve25519"));
        assert_eq!(signature(&[0; 63]).unwrap_err(), Error::MalformedSignature);
    }
}
