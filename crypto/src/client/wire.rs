//! The bytes of the client protocol between devices (`FORMAT.md`, "Client protocol"): the
//! to-device envelope and the kinds of Olm plaintext. Byte-compatible with what
//! `pwa/src/crypto/engine.ts` and `client/src/e2ee.rs` sent before this module existed, plus the
//! key request (0x05) and the forwarded key (0x06).
//!
//! ```text
//! to-device ciphertext   0x01 || Olm message
//! Olm plaintext          0x01 || Megolm session key                       (room key, no conversation)
//!                        0x02 || conversation id (16) || Megolm session key
//!                        0x03 || verification message
//!                        0x04 || conversation id (16) || call id (16) || action (1) || payload
//!                        0x05 || conversation id (16) || sender device id (16) || session id (UTF-8)
//!                        0x06 || conversation id (16) || sender account id (16) ||
//!                               sender device id (16) || exported session key
//!                        0x07 || conversation id (16) || kid (4, big-endian) || SFrame base key (16)
//! ```

use zeroize::Zeroizing;

use super::{Id, Refusal};

/// Kind byte of a to-device ciphertext holding an Olm message.
pub const ENVELOPE_OLM: u8 = 0x01;
/// Olm plaintext: a Megolm session key bound to no conversation (older to-device Megolm).
pub const ROOM_KEY: u8 = 0x01;
/// Olm plaintext: a conversation's Megolm session key.
pub const CONVERSATION_KEY: u8 = 0x02;
/// Olm plaintext: a verification message (`crate::verification`).
pub const VERIFICATION: u8 = 0x03;
/// Olm plaintext: a call signal's payload, bound to its conversation, call and action.
pub const CALL_SIGNAL: u8 = 0x04;
/// Olm plaintext: a request for a Megolm session, to one's own devices.
pub const KEY_REQUEST: u8 = 0x05;
/// Olm plaintext: a Megolm session forwarded by one's own device, answering a key request.
pub const FORWARDED_KEY: u8 = 0x06;
/// Olm plaintext: a participant's SFrame key for a voice room (`crate::sframe`).
pub const VOICE_KEY: u8 = 0x07;

/// The longest session id a key request may name (vodozemac's are 43 characters).
pub const MAX_SESSION_ID: usize = 128;

/// A parsed Olm plaintext.
#[derive(Debug)]
pub(crate) enum Payload<'a> {
    RoomKey(&'a [u8]),
    ConversationKey { conversation: Id, key: &'a [u8] },
    Verification(&'a [u8]),
    CallSignal,
    KeyRequest { conversation: Id, sender_device: Id, session_id: &'a str },
    ForwardedKey { conversation: Id, sender_account: Id, sender_device: Id, key: &'a [u8] },
    VoiceKey { conversation: Id, kid: u32, key: [u8; 16] },
}

fn id_at(bytes: &[u8], at: usize) -> Option<Id> {
    let slice: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
    Some(Id::from_bytes(slice))
}

/// Parses an Olm plaintext; anything truncated or of an unknown kind is refused.
pub(crate) fn parse(plaintext: &[u8]) -> Result<Payload<'_>, Refusal> {
    let (&kind, body) = plaintext.split_first().ok_or(Refusal::Malformed)?;
    match kind {
        ROOM_KEY => Ok(Payload::RoomKey(body)),
        CONVERSATION_KEY => {
            let conversation = id_at(body, 0).ok_or(Refusal::Malformed)?;
            let key = &body[16..];
            if key.is_empty() {
                return Err(Refusal::Malformed);
            }
            Ok(Payload::ConversationKey { conversation, key })
        }
        VERIFICATION => Ok(Payload::Verification(body)),
        CALL_SIGNAL => Ok(Payload::CallSignal),
        KEY_REQUEST => {
            let conversation = id_at(body, 0).ok_or(Refusal::Malformed)?;
            let sender_device = id_at(body, 16).ok_or(Refusal::Malformed)?;
            let session_id = std::str::from_utf8(&body[32..]).map_err(|_| Refusal::Malformed)?;
            if session_id.is_empty() || session_id.len() > MAX_SESSION_ID {
                return Err(Refusal::Malformed);
            }
            Ok(Payload::KeyRequest { conversation, sender_device, session_id })
        }
        FORWARDED_KEY => {
            let conversation = id_at(body, 0).ok_or(Refusal::Malformed)?;
            let sender_account = id_at(body, 16).ok_or(Refusal::Malformed)?;
            let sender_device = id_at(body, 32).ok_or(Refusal::Malformed)?;
            let key = &body[48..];
            if key.is_empty() {
                return Err(Refusal::Malformed);
            }
            Ok(Payload::ForwardedKey { conversation, sender_account, sender_device, key })
        }
        VOICE_KEY => {
            let conversation = id_at(body, 0).ok_or(Refusal::Malformed)?;
            let (Some(kid), Some(key), 36) = (body.get(16..20), body.get(20..36), body.len()) else {
                return Err(Refusal::Malformed);
            };
            let kid = u32::from_be_bytes(kid.try_into().map_err(|_| Refusal::Malformed)?);
            let key: [u8; 16] = key.try_into().map_err(|_| Refusal::Malformed)?;
            Ok(Payload::VoiceKey { conversation, kid, key })
        }
        other => Err(Refusal::UnknownKind(other)),
    }
}

/// `0x01 || Olm message`.
pub(crate) fn envelope(olm: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + olm.len());
    out.push(ENVELOPE_OLM);
    out.extend_from_slice(olm);
    out
}

/// `0x02 || conversation id || session key`.
pub(crate) fn conversation_key(conversation: Id, key: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(17 + key.len()));
    out.push(CONVERSATION_KEY);
    out.extend_from_slice(conversation.as_bytes());
    out.extend_from_slice(key);
    out
}

/// `0x03 || verification message`.
pub(crate) fn verification(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + bytes.len());
    out.push(VERIFICATION);
    out.extend_from_slice(bytes);
    out
}

/// `0x04 || context (33) || payload`.
pub(crate) fn call_signal(context: &[u8; 33], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(34 + payload.len());
    out.push(CALL_SIGNAL);
    out.extend_from_slice(context);
    out.extend_from_slice(payload);
    out
}

/// `0x05 || conversation id || sender device id || session id`.
pub(crate) fn key_request(conversation: Id, sender_device: Id, session_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(33 + session_id.len());
    out.push(KEY_REQUEST);
    out.extend_from_slice(conversation.as_bytes());
    out.extend_from_slice(sender_device.as_bytes());
    out.extend_from_slice(session_id.as_bytes());
    out
}

/// `0x06 || conversation id || sender account id || sender device id || exported key`.
pub(crate) fn forwarded_key(
    conversation: Id,
    sender_account: Id,
    sender_device: Id,
    exported: &[u8],
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(49 + exported.len()));
    out.push(FORWARDED_KEY);
    out.extend_from_slice(conversation.as_bytes());
    out.extend_from_slice(sender_account.as_bytes());
    out.extend_from_slice(sender_device.as_bytes());
    out.extend_from_slice(exported);
    out
}

/// `0x07 || conversation id || kid (big-endian) || base key`.
pub(crate) fn voice_key(conversation: Id, kid: u32, key: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(37));
    out.push(VOICE_KEY);
    out.extend_from_slice(conversation.as_bytes());
    out.extend_from_slice(&kid.to_be_bytes());
    out.extend_from_slice(key);
    out
}
