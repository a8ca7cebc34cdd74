//! End-to-end encryption of media frames through the SFU: SFrame (RFC 9605) with the cipher suite
//! `AES_128_CTR_HMAC_SHA256_80` (0x0001), built from the AES-CTR, HMAC-SHA256 and SHA-256 this
//! crate has already. Each participant encrypts every encoded frame it sends with a key of its own
//! (its `KID`), derived from a base key it shares over Olm with the room's devices; the SFU
//! forwards frames it cannot read, and listeners pick the key by the frame's `KID`
//! (crypto/FORMAT.md, "SFrame").
//!
//! A frame is `header || ciphertext || tag`: the header holds the `KID` and the frame's counter
//! (`CTR`, never reused under one key), the ciphertext is AES-128-CTR under a nonce made of the
//! key's salt and the counter, and the tag is HMAC-SHA256 over lengths, nonce, header, metadata
//! and ciphertext, cut to 10 bytes. The header and any metadata given are authenticated, not
//! encrypted.

use aes::Aes128;
use ctr::cipher::{KeyIvInit as _, StreamCipher as _};
use hmac::Mac as _;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The cipher suite: `AES_128_CTR_HMAC_SHA256_80`.
pub const CIPHER_SUITE: u16 = 0x0001;
/// `AEAD.Nk`: the derived key (16 bytes of AES key, 32 of HMAC key).
const KEY_LEN: usize = 48;
/// `Nka`: the AES key's part of it.
const ENC_KEY_LEN: usize = 16;
/// `AEAD.Nn`: nonce and salt.
const NONCE_LEN: usize = 12;
/// `AEAD.Nt`: the tag.
pub const TAG_LEN: usize = 10;
/// The longest header: the config byte, an 8-byte KID and an 8-byte CTR.
pub const MAX_HEADER_LEN: usize = 17;

type HmacSha256 = hmac::Hmac<Sha256>;
type Aes128Ctr = ctr::Ctr32BE<Aes128>;

/// Why a frame could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SFrameError {
    /// Shorter than a header and a tag, or a header that runs past the frame.
    #[error("the frame is truncated")]
    Truncated,
    /// No key for its `KID` (a participant not, or no longer, in the room).
    #[error("no key for this frame's KID")]
    UnknownKey,
    /// The tag does not match: a changed frame, a wrong key, or another room's frame.
    #[error("the frame does not authenticate")]
    Forged,
}

/// One participant's key in one room: what its frames are sealed with.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct FrameKey {
    #[zeroize(skip)]
    kid: u64,
    enc: [u8; ENC_KEY_LEN],
    auth: [u8; KEY_LEN - ENC_KEY_LEN],
    salt: [u8; NONCE_LEN],
}

impl std::fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// HKDF-Extract with an empty salt (RFC 5869: a hash-length of zeros, which HMAC pads the same).
fn extract(ikm: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(&[]).unwrap_or_else(|_| unreachable!());
    mac.update(ikm);
    mac.finalize().into_bytes().into()
}

/// HKDF-Expand into `out` (at most 255 blocks, far more than used here).
fn expand(prk: &[u8; 32], info: &[u8], out: &mut [u8]) {
    let mut previous: Vec<u8> = Vec::new();
    for (index, chunk) in out.chunks_mut(32).enumerate() {
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(prk).unwrap_or_else(|_| unreachable!());
        mac.update(&previous);
        mac.update(info);
        mac.update(&[u8::try_from(index + 1).unwrap_or(u8::MAX)]);
        let block: [u8; 32] = mac.finalize().into_bytes().into();
        chunk.copy_from_slice(&block[..chunk.len()]);
        previous.zeroize();
        previous = block.to_vec();
    }
    previous.zeroize();
}

impl FrameKey {
    /// The key of participant `kid` from the room's `base_key` (RFC 9605 §4.4.2).
    pub fn derive(base_key: &[u8], kid: u64) -> Self {
        let mut secret = extract(base_key);
        let label = |prefix: &str| {
            let mut info = prefix.as_bytes().to_vec();
            info.extend_from_slice(&kid.to_be_bytes());
            info.extend_from_slice(&CIPHER_SUITE.to_be_bytes());
            info
        };
        let mut key = [0u8; KEY_LEN];
        expand(&secret, &label("SFrame 1.0 Secret key "), &mut key);
        let mut salt = [0u8; NONCE_LEN];
        expand(&secret, &label("SFrame 1.0 Secret salt "), &mut salt);
        secret.zeroize();
        let mut enc = [0u8; ENC_KEY_LEN];
        let mut auth = [0u8; KEY_LEN - ENC_KEY_LEN];
        enc.copy_from_slice(&key[..ENC_KEY_LEN]);
        auth.copy_from_slice(&key[ENC_KEY_LEN..]);
        key.zeroize();
        Self { kid, enc, auth, salt }
    }

    /// Its `KID`.
    pub fn kid(&self) -> u64 {
        self.kid
    }

    fn nonce(&self, ctr: u64) -> [u8; NONCE_LEN] {
        let mut nonce = self.salt;
        for (byte, c) in nonce[NONCE_LEN - 8..].iter_mut().zip(ctr.to_be_bytes()) {
            *byte ^= c;
        }
        nonce
    }

    /// Seals `plaintext` as frame number `ctr` (the caller never reuses one under this key),
    /// authenticating `metadata` too.
    pub fn seal(&self, ctr: u64, metadata: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut frame = encode_header(self.kid, ctr);
        let header_len = frame.len();
        let nonce = self.nonce(ctr);
        let mut aad = frame.clone();
        aad.extend_from_slice(metadata);
        frame.extend_from_slice(plaintext);
        let tag = seal_in_place(&self.enc, &self.auth, &nonce, &aad, &mut frame[header_len..]);
        frame.extend_from_slice(&tag);
        frame
    }
}

/// The AES-CTR with HMAC construction (RFC 9605 §4.5.1): encrypts `data` in place, returns the tag.
fn seal_in_place(
    enc: &[u8; 16],
    auth: &[u8],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    data: &mut [u8],
) -> [u8; TAG_LEN] {
    keystream(enc, nonce, data);
    tag(auth, nonce, aad, data)
}

fn keystream(enc: &[u8; 16], nonce: &[u8; NONCE_LEN], data: &mut [u8]) {
    let mut counter = [0u8; 16];
    counter[..NONCE_LEN].copy_from_slice(nonce);
    Aes128Ctr::new(enc.into(), &counter.into()).apply_keystream(data);
}

fn tag(auth: &[u8], nonce: &[u8; NONCE_LEN], aad: &[u8], ciphertext: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(auth).unwrap_or_else(|_| unreachable!());
    mac.update(&(aad.len() as u64).to_be_bytes());
    mac.update(&(ciphertext.len() as u64).to_be_bytes());
    mac.update(&(TAG_LEN as u64).to_be_bytes());
    mac.update(nonce);
    mac.update(aad);
    mac.update(ciphertext);
    let full: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&full[..TAG_LEN]);
    out
}

/// A value of the header: inline when under 8, else its big-endian bytes without leading zeros.
fn encoded(value: u64) -> (u8, Vec<u8>) {
    if value < 8 {
        return (u8::try_from(value).unwrap_or(0), Vec::new());
    }
    let bytes = value.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(7);
    let length = 8 - first;
    (0x08 | u8::try_from(length - 1).unwrap_or(7), bytes[first..].to_vec())
}

/// The header of frame `ctr` under key `kid` (RFC 9605 §4.3).
pub fn encode_header(kid: u64, ctr: u64) -> Vec<u8> {
    let (k, kid_bytes) = encoded(kid);
    let (c, ctr_bytes) = encoded(ctr);
    let mut header = vec![(k << 4) | c];
    header.extend_from_slice(&kid_bytes);
    header.extend_from_slice(&ctr_bytes);
    header
}

/// Reads a header: the `KID`, the `CTR` and the header's length.
pub fn decode_header(frame: &[u8]) -> Result<(u64, u64, usize), SFrameError> {
    let config = *frame.first().ok_or(SFrameError::Truncated)?;
    let mut at = 1;
    let mut read = |field: u8| -> Result<u64, SFrameError> {
        if field & 0x08 == 0 {
            return Ok(u64::from(field & 0x07));
        }
        let length = usize::from(field & 0x07) + 1;
        let bytes = frame.get(at..at + length).ok_or(SFrameError::Truncated)?;
        at += length;
        Ok(bytes.iter().fold(0u64, |value, b| (value << 8) | u64::from(*b)))
    };
    let kid = read(config >> 4)?;
    let ctr = read(config & 0x0F)?;
    Ok((kid, ctr, at))
}

/// Opens `frame` with the key its `KID` names (`key_of`), checking `metadata` with it; returns
/// the `KID`, the `CTR` and the plaintext. A frame that does not authenticate is refused whole.
pub fn open<'k>(
    key_of: impl FnOnce(u64) -> Option<&'k FrameKey>,
    metadata: &[u8],
    frame: &[u8],
) -> Result<(u64, u64, Vec<u8>), SFrameError> {
    let (kid, ctr, header_len) = decode_header(frame)?;
    if frame.len() < header_len + TAG_LEN {
        return Err(SFrameError::Truncated);
    }
    let key = key_of(kid).ok_or(SFrameError::UnknownKey)?;
    let (sealed, received) = frame.split_at(frame.len() - TAG_LEN);
    let mut aad = sealed[..header_len].to_vec();
    aad.extend_from_slice(metadata);
    let nonce = key.nonce(ctr);
    let ciphertext = &sealed[header_len..];
    let expected = tag(&key.auth, &nonce, &aad, ciphertext);
    // Constant time: the tag decides, not how much of it matched.
    let differs = expected.iter().zip(received).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if differs != 0 {
        return Err(SFrameError::Forged);
    }
    let mut plaintext = ciphertext.to_vec();
    keystream(&key.enc, &nonce, &mut plaintext);
    Ok((kid, ctr, plaintext))
}

/// Seals a video frame whose first `clear` bytes must stay readable (the codec's frame tag, which
/// the receiving browser's depacketizer reads before anything is decrypted): returns
/// `frame[..clear] ‖ seal(ctr, metadata = frame[..clear], frame[clear..])`, so the clear bytes are
/// authenticated, not hidden. A frame shorter than `clear` is sealed with all of it in the clear.
pub fn seal_keeping(key: &FrameKey, ctr: u64, frame: &[u8], clear: usize) -> Vec<u8> {
    let (head, rest) = frame.split_at(clear.min(frame.len()));
    let mut out = head.to_vec();
    out.extend_from_slice(&key.seal(ctr, head, rest));
    out
}

/// Opens what [`seal_keeping`] made with the same `clear`: the `KID`, the `CTR` and the whole
/// frame again (clear bytes first). Changed clear bytes fail the tag like any other change.
pub fn open_keeping<'k>(
    key_of: impl FnOnce(u64) -> Option<&'k FrameKey>,
    frame: &[u8],
    clear: usize,
) -> Result<(u64, u64, Vec<u8>), SFrameError> {
    if frame.len() < clear {
        return Err(SFrameError::Truncated);
    }
    let (head, sealed) = frame.split_at(clear);
    let (kid, ctr, rest) = open(key_of, head, sealed)?;
    let mut out = head.to_vec();
    out.extend_from_slice(&rest);
    Ok((kid, ctr, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let clean: String = text.split_whitespace().collect();
        (0..clean.len()).step_by(2).map(|i| u8::from_str_radix(&clean[i..i + 2], 16).unwrap_or(0)).collect()
    }

    #[test]
    fn the_aes_ctr_hmac_construction_matches_rfc_9605_appendix_c2() {
        // RFC 9605 Appendix C.2, AES_128_CTR_HMAC_SHA256_80.
        let key = hex(
            "000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1f 202122232425262728292a2b2c2d2e2f",
        );
        let nonce: [u8; 12] = hex("101112131415161718191a1b").try_into().unwrap_or([0; 12]);
        let aad = b"IETF SFrame WG";
        let mut data = b"draft-ietf-sframe-enc".to_vec();
        let enc: [u8; 16] = key[..16].try_into().unwrap_or([0; 16]);
        let tag = seal_in_place(&enc, &key[16..], &nonce, aad, &mut data);
        data.extend_from_slice(&tag);
        assert_eq!(data, hex("6339af04ada1d064688a442b8dc69d5b 6bfa40f4bef0583e8081069cc60705"));
    }

    #[test]
    fn keys_and_a_whole_frame_match_an_independent_implementation() {
        // Computed with pyca/cryptography's HKDF, AES-CTR and HMAC from the RFC's text, for the
        // base key 00…0f, KID 0x123 and CTR 0x4567 (the parameters of RFC 9605 Appendix C.3).
        let base = hex("000102030405060708090a0b0c0d0e0f");
        let key = FrameKey::derive(&base, 0x123);
        let expected = hex(
            "3f7d9a7c83ae8e1c8a11ae695ab59314 b367e359fadac7b9c46b2bc6f81f46e1 6b96f0811868d59402b7e870102720b3",
        );
        assert_eq!((&key.enc[..], &key.auth[..]), (&expected[..16], &expected[16..]));
        assert_eq!(key.salt.to_vec(), hex("50b29329a04dc0f184ac3168"));
        let frame = key.seal(0x4567, b"IETF SFrame WG", b"draft-ietf-sframe-enc");
        assert_eq!(frame, hex("9901234567449408b6f490086165b9d6f62b24ae1a59a56486b4ae8ed036b88912e24f11"));
    }

    #[test]
    fn headers_round_trip_at_every_length() {
        for (kid, ctr) in
            [(0, 0), (7, 7), (8, 8), (0xFF, 0x100), (u64::MAX, 1), (1, u64::MAX), (0x1234, 0xABCDEF)]
        {
            let header = encode_header(kid, ctr);
            assert!(header.len() <= MAX_HEADER_LEN);
            assert_eq!(decode_header(&header), Ok((kid, ctr, header.len())), "{kid} {ctr}");
        }
        assert_eq!(encode_header(0, 0), [0x00]);
        assert_eq!(encode_header(7, 1), [0x71]);
        assert_eq!(encode_header(0x12, 0x345), [0x89, 0x12, 0x03, 0x45]);
        assert_eq!(decode_header(&[0x8F, 1, 2]), Err(SFrameError::Truncated));
        assert_eq!(decode_header(&[]), Err(SFrameError::Truncated));
    }

    #[test]
    fn frames_open_only_with_their_key_and_unchanged() {
        let base = [7u8; 16];
        let alice = FrameKey::derive(&base, 1);
        let bob = FrameKey::derive(&base, 2);
        let metadata = b"room 42";
        let frame = alice.seal(99, metadata, b"an encoded opus frame");
        assert!(!frame.windows(5).any(|w| w == b"opus "), "the plaintext shows");
        let keys = [&alice, &bob];
        let pick = |kid: u64| keys.iter().copied().find(|k| k.kid() == kid);
        assert_eq!(open(pick, metadata, &frame), Ok((1, 99, b"an encoded opus frame".to_vec())));
        // Each byte changed, the wrong metadata, a stranger's key, a truncated frame: refused.
        for at in 0..frame.len() {
            let mut changed = frame.clone();
            changed[at] ^= 0x01;
            assert!(open(pick, metadata, &changed).is_err(), "byte {at} changed and still opened");
        }
        assert_eq!(open(pick, b"room 43", &frame), Err(SFrameError::Forged));
        let other_room = FrameKey::derive(&[8u8; 16], 1);
        assert_eq!(open(|_| Some(&other_room), metadata, &frame), Err(SFrameError::Forged));
        assert_eq!(open(|_| None, metadata, &frame), Err(SFrameError::UnknownKey));
        assert_eq!(open(pick, metadata, &frame[..5]), Err(SFrameError::Truncated));
        // Keys differ by KID and by base key; the counter changes the ciphertext.
        assert_ne!(alice.seal(1, b"", b"same")[2..], bob.seal(1, b"", b"same")[2..]);
        assert_ne!(alice.seal(1, b"", b"same")[1..], alice.seal(2, b"", b"same")[1..]);
    }
    #[test]
    fn video_frames_keep_their_codec_tag_readable_and_authenticated() {
        let alice = FrameKey::derive(&[9u8; 16], 3);
        let frame = b"\x10\x02\x00\x9d\x01\x2a\x80\x02\xe0\x01 the rest of a VP8 key frame";
        let sealed = seal_keeping(&alice, 5, frame, 10);
        assert_eq!(&sealed[..10], &frame[..10], "the frame tag stays where the depacketizer reads it");
        assert!(!sealed.windows(8).any(|w| w == b"the rest"), "the picture shows");
        assert_eq!(decode_header(&sealed[10..]).map(|(kid, ctr, _)| (kid, ctr)), Ok((3, 5)));
        let pick = |kid: u64| (kid == 3).then_some(&alice);
        assert_eq!(open_keeping(pick, &sealed, 10), Ok((3, 5, frame.to_vec())));
        for at in 0..sealed.len() {
            let mut changed = sealed.clone();
            changed[at] ^= 0x01;
            assert!(open_keeping(pick, &changed, 10).is_err(), "byte {at} changed and still opened");
        }
        assert!(open_keeping(pick, &sealed, 3).is_err(), "read with the wrong split");
        assert_eq!(open_keeping(pick, &sealed[..4], 10), Err(SFrameError::Truncated));
        // A frame shorter than the clear part is sealed whole in the clear part's place.
        let tiny = seal_keeping(&alice, 6, b"ab", 10);
        assert_eq!(open_keeping(pick, &tiny, 2), Ok((3, 6, b"ab".to_vec())));
        // Without a clear part it is the audio frame.
        assert_eq!(seal_keeping(&alice, 7, b"opus", 0), alice.seal(7, b"", b"opus"));
    }
}
