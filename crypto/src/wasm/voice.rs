//! `VoiceKeys`: the SFrame keys of one device in one voice room, for the PWA's encoded-frame
//! transform (a worker). Its own key seals what it sends, with a frame counter kept here so a
//! counter is never used twice under one key; the other participants' keys, by key id, open
//! what arrives. Keys reach it over Olm (`CryptoMachine.shareVoiceKey`, `receiveToDevice`'s
//! `voiceKey`); the base keys stay in WASM memory.

use std::collections::HashMap;

use wasm_bindgen::prelude::*;

use super::JsResult;
use crate::sframe::{self, FrameKey, SFrameError};

/// The most peer keys held: more participants than a room admits, with room for rotations.
const MAX_PEER_KEYS: usize = 1024;

fn sframe_error(error: SFrameError) -> JsValue {
    let js = js_sys::Error::new(&error.to_string());
    js.set_name("KitsulanCryptoError");
    let code = match error {
        SFrameError::Truncated => "sframe_truncated",
        SFrameError::UnknownKey => "sframe_unknown_key",
        SFrameError::Forged => "sframe_forged",
    };
    let _ = js_sys::Reflect::set(&js, &JsValue::from_str("code"), &JsValue::from_str(code));
    js.into()
}

fn base(bytes: &[u8]) -> JsResult<[u8; 16]> {
    super::array(bytes, "voice key")
}

/// One device's SFrame keys in one voice room.
#[wasm_bindgen]
pub struct VoiceKeys {
    own: Option<(FrameKey, u64)>,
    peers: HashMap<u32, FrameKey>,
}

#[wasm_bindgen]
impl VoiceKeys {
    /// No keys yet.
    #[wasm_bindgen(constructor)]
    pub fn new() -> VoiceKeys {
        Self { own: None, peers: HashMap::new() }
    }

    /// This device's sending key (a fresh random base key and key id on every rotation); the
    /// frame counter starts again at 0.
    #[wasm_bindgen(js_name = setOwn)]
    pub fn set_own(&mut self, kid: u32, base_key: &[u8]) -> JsResult<()> {
        self.own = Some((FrameKey::derive(&base(base_key)?, u64::from(kid)), 0));
        Ok(())
    }

    /// Seals one encoded frame with the own key.
    pub fn seal(&mut self, frame: &[u8]) -> JsResult<Vec<u8>> {
        let Some((key, counter)) = self.own.as_mut() else {
            return Err(sframe_error(SFrameError::UnknownKey));
        };
        let sealed = key.seal(*counter, &[], frame);
        *counter += 1;
        Ok(sealed)
    }

    /// Seals one encoded video frame with the own key (the same counter as [`Self::seal`]),
    /// keeping its first `clear` bytes readable and authenticated (crypto/FORMAT.md, "SFrame").
    #[wasm_bindgen(js_name = sealWith)]
    pub fn seal_with(&mut self, frame: &[u8], clear: usize) -> JsResult<Vec<u8>> {
        let Some((key, counter)) = self.own.as_mut() else {
            return Err(sframe_error(SFrameError::UnknownKey));
        };
        let sealed = sframe::seal_keeping(key, *counter, frame, clear);
        *counter += 1;
        Ok(sealed)
    }

    /// Adds or replaces a participant's key.
    #[wasm_bindgen(js_name = setPeer)]
    pub fn set_peer(&mut self, kid: u32, base_key: &[u8]) -> JsResult<()> {
        if self.peers.len() >= MAX_PEER_KEYS && !self.peers.contains_key(&kid) {
            return Err(super::js_error(crate::Error::InvalidLength("voice keys held")));
        }
        self.peers.insert(kid, FrameKey::derive(&base(base_key)?, u64::from(kid)));
        Ok(())
    }

    /// Forgets a participant's key: its frames no longer open.
    #[wasm_bindgen(js_name = removePeer)]
    pub fn remove_peer(&mut self, kid: u32) {
        self.peers.remove(&kid);
    }

    /// Opens a frame sealed with the key its header names; throws (`sframe_unknown_key`,
    /// `sframe_forged`, `sframe_truncated`) when it cannot.
    pub fn open(&self, frame: &[u8]) -> JsResult<Vec<u8>> {
        let key_of = |kid: u64| u32::try_from(kid).ok().and_then(|kid| self.peers.get(&kid));
        let (_, _, plaintext) = sframe::open(key_of, &[], frame).map_err(sframe_error)?;
        Ok(plaintext)
    }

    /// Opens a frame sealed by [`Self::seal_with`] with the same `clear`.
    #[wasm_bindgen(js_name = openWith)]
    pub fn open_with(&self, frame: &[u8], clear: usize) -> JsResult<Vec<u8>> {
        let key_of = |kid: u64| u32::try_from(kid).ok().and_then(|kid| self.peers.get(&kid));
        let (_, _, frame) = sframe::open_keeping(key_of, frame, clear).map_err(sframe_error)?;
        Ok(frame)
    }

    /// The key id in a sealed frame's header.
    #[wasm_bindgen(js_name = kidOf)]
    pub fn kid_of(frame: &[u8]) -> JsResult<u32> {
        let (kid, _, _) = sframe::decode_header(frame).map_err(sframe_error)?;
        u32::try_from(kid).map_err(|_| sframe_error(SFrameError::UnknownKey))
    }
}
