//! `CryptoMachine`: [`crate::client::Machine`] for the PWA. Ids are UUID strings, bytes are
//! `Uint8Array`s, times are milliseconds as `number`s; results are plain JS objects and arrays.
//! Errors are thrown like the rest of this layer (`name` `"KitsulanCryptoError"`, `code` the
//! stable code); `account_key_changed` also carries `accountId` and `verifiedBefore`,
//! `unknown_device` carries `deviceId`. A message that does not decrypt is not thrown: `decrypt`
//! answers `{ ok: false, reason, message, missing? }`.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use super::{JsResult, WasmBackupKey, WasmSignedKey, pickle_key};
use crate::AccountKey;
use crate::client::{
    CallContext, Config, Error, GroupMessage, Id, Legacy, LegacyInbound, LegacyOutbound, Machine, MissingKey,
    OutgoingToDevice, Peer, Received,
};

fn set(target: &Object, key: &str, value: impl Into<JsValue>) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), &value.into());
}

fn bytes(b: &[u8]) -> JsValue {
    js_sys::Uint8Array::from(b).into()
}

fn client_error(error: Error) -> JsValue {
    let js = js_sys::Error::new(&error.to_string());
    js.set_name("KitsulanCryptoError");
    set(&js, "code", error.code());
    match &error {
        Error::AccountKeyChanged { account_id, verified_before } => {
            set(&js, "accountId", account_id.to_string());
            set(&js, "verifiedBefore", *verified_before);
        }
        Error::UnknownDevice(device) => set(&js, "deviceId", device.to_string()),
        _ => {}
    }
    js.into()
}

fn id(text: &str) -> JsResult<Id> {
    Id::parse(text).map_err(client_error)
}

fn ids(texts: &[String]) -> JsResult<Vec<Id>> {
    texts.iter().map(|t| id(t)).collect()
}

fn id_array(ids: &[Id]) -> Array {
    ids.iter().map(|i| JsValue::from_str(&i.to_string())).collect()
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn ms(now_ms: f64) -> u64 {
    if now_ms.is_finite() && now_ms > 0.0 { now_ms as u64 } else { 0 }
}

fn peer(p: &Peer) -> Object {
    let o = Object::new();
    set(&o, "accountId", p.account_id.to_string());
    set(&o, "deviceId", p.device_id.to_string());
    set(&o, "ed25519", bytes(&p.ed25519));
    set(&o, "curve25519", bytes(&p.curve25519));
    o
}

fn outgoing(m: &OutgoingToDevice) -> Object {
    let o = Object::new();
    set(&o, "messageId", m.message_id.to_string());
    set(&o, "recipientDeviceId", m.recipient_device_id.to_string());
    set(&o, "ciphertext", bytes(&m.ciphertext));
    o
}

fn outgoing_array(ms: &[OutgoingToDevice]) -> Array {
    ms.iter().map(outgoing).collect()
}

fn missing(m: &MissingKey) -> Object {
    let o = Object::new();
    set(&o, "conversationId", m.conversation_id.to_string());
    set(&o, "senderAccountId", m.sender_account_id.to_string());
    set(&o, "senderDeviceId", m.sender_device_id.to_string());
    set(&o, "sessionId", m.session_id.clone());
    o
}

fn missing_from(
    conversation: &str,
    sender_account: &str,
    sender_device: &str,
    session_id: &str,
) -> JsResult<MissingKey> {
    Ok(MissingKey {
        conversation_id: id(conversation)?,
        sender_account_id: id(sender_account)?,
        sender_device_id: id(sender_device)?,
        session_id: session_id.to_owned(),
    })
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A changed record of a CryptoMachine: write `value`, or delete the record when undefined. */
export interface MachineChange { name: string; value?: string }
/** A verified device. */
export interface MachinePeer { accountId: string; deviceId: string; ed25519: Uint8Array; curve25519: Uint8Array }
/** A to-device message to send (resend with the same id after a failure). */
export interface MachineToDevice { messageId: string; recipientDeviceId: string; ciphertext: Uint8Array }
export interface MachineKeyUpload { certificate?: Uint8Array; oneTimeKeys: SignedKey[]; fallbackKey?: SignedKey }
export interface MachineDeviceListChange { added: string[]; removed: string[]; refused: { deviceId: string; reason: string }[] }
export interface MachineRoomKeyShare {
  conversationId: string; sessionId: string; rotated: boolean; messages: MachineToDevice[];
  withoutOlm: string[]; unreadableBy: string[];
}
export interface MachineEncrypted { ciphertext: Uint8Array; sessionId: string; messageIndex: number; unreadableBy: string[] }
export interface MachineMissingKey { conversationId: string; senderAccountId: string; senderDeviceId: string; sessionId: string }
export type MachineReceived =
  | { kind: "duplicate" }
  | { kind: "roomKey"; sender: MachinePeer; conversationId?: string; sessionId: string }
  | { kind: "verification"; sender: MachinePeer; bytes: Uint8Array }
  | { kind: "keyRequest"; from: MachinePeer; sessionId: string; answer: MachineToDevice }
  | { kind: "forwardedKey"; from: MachinePeer; key: MachineMissingKey }
  | { kind: "voiceKey"; sender: MachinePeer; conversationId: string; kid: number; key: Uint8Array }
  | { kind: "refused"; reason: string; message: string };
export interface MachineVoiceKeyShare { messages: MachineToDevice[]; withoutOlm: string[] }
/** A session entry for the key backup (`PutBackupSessions`). */
export interface MachineBackupEntry { sessionId: string; data: Uint8Array }
/** A session imported from the key backup; `stored` is false when the session held was as good. */
export interface MachineImported {
  sessionId: string; senderAccountId: string; senderDeviceId: string; conversationId?: string; stored: boolean;
}
export type MachineDecrypted =
  | { ok: true; plaintext: Uint8Array; messageIndex: number; senderVerified: boolean }
  | { ok: false; reason: string; message: string; missing?: MachineMissingKey };
"#;

/// One device's end-to-end encryption state and protocol (`crate::client::Machine`).
#[wasm_bindgen(js_name = CryptoMachine)]
pub struct WasmMachine {
    inner: Machine,
}

fn config(rotate_after_messages: Option<u32>, rotate_after_ms: Option<f64>) -> Config {
    let d = Config::default();
    Config {
        rotate_after_messages: rotate_after_messages.unwrap_or(d.rotate_after_messages),
        rotate_after_ms: rotate_after_ms.map_or(d.rotate_after_ms, ms),
    }
}

#[wasm_bindgen(js_class = CryptoMachine)]
impl WasmMachine {
    /// A new device (a fresh Olm account) of `accountId`, holding the account key whose secret
    /// is given (a first or linked device), or none (it must be linked later).
    pub fn create(
        pickle_key_bytes: &[u8],
        account_id: &str,
        device_id: &str,
        account_key_secret: Option<Vec<u8>>,
        rotate_after_messages: Option<u32>,
        rotate_after_ms: Option<f64>,
    ) -> JsResult<WasmMachine> {
        let key = match account_key_secret {
            Some(secret) => {
                Some(AccountKey::from_secret_bytes(&super::array(&secret, "account key secret")?))
            }
            None => None,
        };
        Ok(Self {
            inner: Machine::new(
                pickle_key(pickle_key_bytes)?,
                config(rotate_after_messages, rotate_after_ms),
                id(account_id)?,
                id(device_id)?,
                key,
            ),
        })
    }

    /// Rebuilds a machine from its records (`names[i]` holds `values[i]`).
    pub fn restore(
        pickle_key_bytes: &[u8],
        names: Vec<String>,
        values: Vec<String>,
        rotate_after_messages: Option<u32>,
        rotate_after_ms: Option<f64>,
    ) -> JsResult<WasmMachine> {
        if names.len() != values.len() {
            return Err(client_error(Error::MalformedRecord("names and values differ in number".into())));
        }
        let records = names.into_iter().zip(values);
        Ok(Self {
            inner: Machine::restore(
                pickle_key(pickle_key_bytes)?,
                config(rotate_after_messages, rotate_after_ms),
                records,
            )
            .map_err(client_error)?,
        })
    }

    /// A machine from the old engine's state (`LegacyState`, consumed); every record is changed.
    /// Throws `malformed_record` naming the old record that does not open (nothing made).
    #[wasm_bindgen(js_name = fromLegacy)]
    pub fn from_legacy(
        pickle_key_bytes: &[u8],
        legacy: WasmLegacy,
        rotate_after_messages: Option<u32>,
        rotate_after_ms: Option<f64>,
    ) -> JsResult<WasmMachine> {
        Ok(Self {
            inner: Machine::import_legacy(
                pickle_key(pickle_key_bytes)?,
                config(rotate_after_messages, rotate_after_ms),
                legacy.inner,
            )
            .map_err(client_error)?,
        })
    }

    /// The records changed since the last call: `[{ name, value }]`, `value` undefined to delete.
    #[wasm_bindgen(js_name = takeChanges, unchecked_return_type = "MachineChange[]")]
    pub fn take_changes(&mut self) -> Array {
        self.inner
            .take_changes()
            .into_iter()
            .map(|c| {
                let o = Object::new();
                set(&o, "name", c.name);
                set(&o, "value", c.value.map_or(JsValue::UNDEFINED, |v| JsValue::from_str(&v)));
                JsValue::from(o)
            })
            .collect()
    }

    /// Whether changes wait.
    #[wasm_bindgen(js_name = hasChanges)]
    pub fn has_changes(&self) -> bool {
        self.inner.has_changes()
    }

    /// This device's account.
    #[wasm_bindgen(getter, js_name = accountId)]
    pub fn account_id(&self) -> String {
        self.inner.account_id().to_string()
    }

    /// This device.
    #[wasm_bindgen(getter, js_name = deviceId)]
    pub fn device_id(&self) -> String {
        self.inner.device_id().to_string()
    }

    /// This device's Ed25519 key.
    #[wasm_bindgen(getter, js_name = ed25519Key)]
    pub fn ed25519_key(&self) -> Vec<u8> {
        self.inner.ed25519_key().to_vec()
    }

    /// This device's Curve25519 key.
    #[wasm_bindgen(getter, js_name = curve25519Key)]
    pub fn curve25519_key(&self) -> Vec<u8> {
        self.inner.curve25519_key().to_vec()
    }

    /// The account key (public) if this device holds it.
    #[wasm_bindgen(getter, js_name = accountPublicKey)]
    pub fn account_public_key(&self) -> Option<Vec<u8>> {
        self.inner.account_public_key().map(|k| k.to_vec())
    }

    /// The account key's secret (pairing and backups only; wipe it after use).
    #[wasm_bindgen(js_name = accountKeySecret)]
    pub fn account_key_secret(&self) -> JsResult<Vec<u8>> {
        Ok(self.inner.account_key_secret().map_err(client_error)?.to_vec())
    }

    /// Gives a device without the account key the key (32-byte secret).
    #[wasm_bindgen(js_name = setAccountKey)]
    pub fn set_account_key(&mut self, secret: &[u8]) -> JsResult<()> {
        let key = AccountKey::from_secret_bytes(&super::array(secret, "account key secret")?);
        self.inner.set_account_key(key).map_err(client_error)
    }

    /// Whether this device holds the account key and uploaded its certificate.
    #[wasm_bindgen(getter, js_name = isReady)]
    pub fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// `{ certificate?, oneTimeKeys: SignedKey[], fallbackKey? }` to upload; then `keysUploaded()`.
    #[wasm_bindgen(js_name = keysToUpload, unchecked_return_type = "MachineKeyUpload")]
    pub fn keys_to_upload(&mut self, count: usize, now_ms: f64) -> JsResult<Object> {
        let up = self.inner.keys_to_upload(count, ms(now_ms)).map_err(client_error)?;
        let o = Object::new();
        set(&o, "certificate", up.certificate.as_deref().map_or(JsValue::UNDEFINED, bytes));
        let otks: Array =
            up.one_time_keys.into_iter().map(|k| JsValue::from(WasmSignedKey::from(k))).collect();
        set(&o, "oneTimeKeys", otks);
        set(&o, "fallbackKey", up.fallback_key.map_or(JsValue::UNDEFINED, |k| WasmSignedKey::from(k).into()));
        Ok(o)
    }

    /// The server took the keys of `keysToUpload`.
    #[wasm_bindgen(js_name = keysUploaded)]
    pub fn keys_uploaded(&mut self) {
        self.inner.keys_uploaded();
    }

    /// How many one-time keys to upload when the server holds `serverCount` (0: none).
    #[wasm_bindgen(js_name = oneTimeKeysNeeded)]
    pub fn one_time_keys_needed(&self, server_count: u32) -> usize {
        self.inner.one_time_keys_needed(u64::from(server_count))
    }

    /// Of `accounts`, those to query with `QueryKeys`.
    #[wasm_bindgen(js_name = devicesToQuery, unchecked_return_type = "string[]")]
    pub fn devices_to_query(&self, accounts: Vec<String>) -> JsResult<Array> {
        Ok(id_array(&self.inner.devices_to_query(&ids(&accounts)?)))
    }

    /// The server announced a change of `account`'s devices.
    #[wasm_bindgen(js_name = deviceListChanged)]
    pub fn device_list_changed(&mut self, account: &str) -> JsResult<()> {
        self.inner.device_list_changed(id(account)?);
        Ok(())
    }

    /// `QueryKeys`' answer for one account: `{ added, removed, refused: [{ deviceId, reason }] }`;
    /// throws `account_key_changed`.
    #[wasm_bindgen(js_name = receiveKeys, unchecked_return_type = "MachineDeviceListChange")]
    pub fn receive_keys(
        &mut self,
        account: &str,
        account_key: &[u8],
        device_ids: Vec<String>,
        certificates: Vec<js_sys::Uint8Array>,
    ) -> JsResult<Object> {
        if device_ids.len() != certificates.len() {
            return Err(client_error(Error::InvalidId));
        }
        let certificates: Vec<Vec<u8>> = certificates.iter().map(js_sys::Uint8Array::to_vec).collect();
        let devices: Vec<(Id, &[u8])> =
            ids(&device_ids)?.into_iter().zip(certificates.iter().map(Vec::as_slice)).collect();
        let change = self.inner.receive_keys(id(account)?, account_key, &devices).map_err(client_error)?;
        let o = Object::new();
        set(&o, "added", id_array(&change.added));
        set(&o, "removed", id_array(&change.removed));
        let refused: Array = change
            .refused
            .iter()
            .map(|(d, reason)| {
                let r = Object::new();
                set(&r, "deviceId", d.to_string());
                set(&r, "reason", reason.clone());
                JsValue::from(r)
            })
            .collect();
        set(&o, "refused", refused);
        Ok(o)
    }

    /// A verified device: `{ accountId, deviceId, ed25519, curve25519 }`, or undefined.
    #[wasm_bindgen(unchecked_return_type = "MachinePeer | undefined")]
    pub fn peer(&self, device: &str) -> JsResult<JsValue> {
        Ok(self.inner.peer(id(device)?).map_or(JsValue::UNDEFINED, |p| peer(&p).into()))
    }

    /// The verified devices of `account`.
    #[wasm_bindgen(js_name = devicesOf, unchecked_return_type = "MachinePeer[]")]
    pub fn devices_of(&self, account: &str) -> JsResult<Array> {
        Ok(self.inner.devices_of(id(account)?).iter().map(|p| JsValue::from(peer(p))).collect())
    }

    /// Our own other devices.
    #[wasm_bindgen(js_name = ownDevices, unchecked_return_type = "MachinePeer[]")]
    pub fn own_devices(&self) -> Array {
        self.inner.own_devices().iter().map(|p| JsValue::from(peer(p))).collect()
    }

    /// The account key pinned for `account`.
    #[wasm_bindgen(js_name = pinnedAccountKey)]
    pub fn pinned_account_key(&self, account: &str) -> JsResult<Option<Vec<u8>>> {
        Ok(self.inner.pinned_account_key(id(account)?).map(|k| k.to_vec()))
    }

    /// Records `accountKey` as verified for `account` if it is the pinned one.
    #[wasm_bindgen(js_name = markVerified)]
    pub fn mark_verified(&mut self, account: &str, account_key: &[u8]) -> JsResult<bool> {
        Ok(self.inner.mark_verified(id(account)?, super::array(account_key, "account key")?))
    }

    /// Whether `account` is verified with its pinned key.
    #[wasm_bindgen(js_name = isVerified)]
    pub fn is_verified(&self, account: &str) -> JsResult<bool> {
        Ok(self.inner.is_verified(id(account)?))
    }

    /// The accounts verified now.
    #[wasm_bindgen(js_name = verifiedAccounts, unchecked_return_type = "string[]")]
    pub fn verified_accounts(&self) -> Array {
        id_array(&self.inner.verified_accounts())
    }

    /// Whether `account`'s key changed after this device verified them.
    #[wasm_bindgen(js_name = changedAfterVerification)]
    pub fn changed_after_verification(&self, account: &str) -> JsResult<bool> {
        Ok(self.inner.changed_after_verification(id(account)?))
    }

    /// Of `devices`, the known ones without an Olm session (to `ClaimKeys`).
    #[wasm_bindgen(js_name = devicesMissingOlm, unchecked_return_type = "string[]")]
    pub fn devices_missing_olm(&self, devices: Vec<String>) -> JsResult<Array> {
        Ok(id_array(&self.inner.devices_missing_olm(&ids(&devices)?)))
    }

    /// Opens an Olm session with `device` from its claimed key.
    #[wasm_bindgen(js_name = receiveClaimedKey)]
    pub fn receive_claimed_key(&mut self, device: &str, key: &WasmSignedKey) -> JsResult<()> {
        self.inner.receive_claimed_key(id(device)?, &key.claimed()).map_err(client_error)
    }

    /// Shares the conversation's session with `members`' devices: `{ conversationId, sessionId,
    /// rotated, messages, withoutOlm, unreadableBy }`. Send `messages`, then
    /// `confirmRoomKeyShare`.
    #[wasm_bindgen(js_name = shareRoomKey, unchecked_return_type = "MachineRoomKeyShare")]
    pub fn share_room_key(
        &mut self,
        conversation: &str,
        members: Vec<String>,
        now_ms: f64,
    ) -> JsResult<Object> {
        let share = self
            .inner
            .share_room_key(id(conversation)?, &ids(&members)?, ms(now_ms))
            .map_err(client_error)?;
        let o = Object::new();
        set(&o, "conversationId", share.conversation_id.to_string());
        set(&o, "sessionId", share.session_id);
        set(&o, "rotated", share.rotated);
        set(&o, "messages", outgoing_array(&share.messages));
        set(&o, "withoutOlm", id_array(&share.without_olm));
        set(&o, "unreadableBy", id_array(&share.unreadable_by));
        Ok(o)
    }

    /// The shares of session `sessionId` reached `devices`.
    #[wasm_bindgen(js_name = confirmRoomKeyShare)]
    pub fn confirm_room_key_share(
        &mut self,
        conversation: &str,
        session_id: &str,
        devices: Vec<String>,
    ) -> JsResult<()> {
        self.inner.confirm_shared(id(conversation)?, session_id, &ids(&devices)?);
        Ok(())
    }

    /// Drops the conversation's outbound session (the next share starts a new one).
    #[wasm_bindgen(js_name = discardOutbound)]
    pub fn discard_outbound(&mut self, conversation: &str) -> JsResult<()> {
        self.inner.discard_outbound(id(conversation)?);
        Ok(())
    }

    /// `{ ciphertext, sessionId, messageIndex, unreadableBy }`.
    #[wasm_bindgen(unchecked_return_type = "MachineEncrypted")]
    pub fn encrypt(&mut self, conversation: &str, plaintext: &[u8]) -> JsResult<Object> {
        let e = self.inner.encrypt(id(conversation)?, plaintext).map_err(client_error)?;
        let o = Object::new();
        set(&o, "ciphertext", bytes(&e.ciphertext));
        set(&o, "sessionId", e.session_id);
        set(&o, "messageIndex", e.message_index);
        set(&o, "unreadableBy", id_array(&e.unreadable_by));
        Ok(o)
    }

    /// This device's SFrame key for a voice room (`kid`, 16-byte `baseKey`), sealed with Olm
    /// for each of `devices` (devices of `members`, the room's participants; anyone else's is
    /// refused): `{ messages, withoutOlm }`.
    #[wasm_bindgen(js_name = shareVoiceKey, unchecked_return_type = "MachineVoiceKeyShare")]
    pub fn share_voice_key(
        &mut self,
        conversation: &str,
        members: Vec<String>,
        devices: Vec<String>,
        kid: u32,
        base_key: &[u8],
        now_ms: f64,
    ) -> JsResult<Object> {
        let base_key: [u8; 16] = super::array(base_key, "voice key")?;
        let share = self
            .inner
            .share_voice_key(id(conversation)?, &ids(&members)?, &ids(&devices)?, kid, &base_key, ms(now_ms))
            .map_err(client_error)?;
        let o = Object::new();
        set(&o, "messages", outgoing_array(&share.messages));
        set(&o, "withoutOlm", id_array(&share.without_olm));
        Ok(o)
    }

    /// Takes a to-device message: `{ kind: "duplicate" | "roomKey" | "verification" |
    /// "keyRequest" | "forwardedKey" | "voiceKey" | "refused", ... }` (a key request carries the `answer` to
    /// send; a refusal its `reason` code and `message`).
    #[wasm_bindgen(js_name = receiveToDevice, unchecked_return_type = "MachineReceived")]
    pub fn receive_to_device(
        &mut self,
        sender_account: &str,
        sender_device: &str,
        message_id: &str,
        ciphertext: &[u8],
        now_ms: f64,
    ) -> JsResult<Object> {
        let received = self
            .inner
            .receive_to_device(
                id(sender_account)?,
                id(sender_device)?,
                id(message_id)?,
                ciphertext,
                ms(now_ms),
            )
            .map_err(client_error)?;
        let o = Object::new();
        match received {
            Received::Duplicate => set(&o, "kind", "duplicate"),
            Received::RoomKey { sender, conversation_id, session_id } => {
                set(&o, "kind", "roomKey");
                set(&o, "sender", peer(&sender));
                set(
                    &o,
                    "conversationId",
                    conversation_id.map_or(JsValue::UNDEFINED, |c| c.to_string().into()),
                );
                set(&o, "sessionId", session_id);
            }
            Received::Verification { sender, bytes: b } => {
                set(&o, "kind", "verification");
                set(&o, "sender", peer(&sender));
                set(&o, "bytes", bytes(&b));
            }
            Received::KeyRequest { from, session_id, answer } => {
                set(&o, "kind", "keyRequest");
                set(&o, "from", peer(&from));
                set(&o, "sessionId", session_id);
                set(&o, "answer", outgoing(&answer));
            }
            Received::ForwardedKey { from, key } => {
                set(&o, "kind", "forwardedKey");
                set(&o, "from", peer(&from));
                set(&o, "key", missing(&key));
            }
            Received::VoiceKey { sender, conversation_id, kid, key } => {
                set(&o, "kind", "voiceKey");
                set(&o, "sender", peer(&sender));
                set(&o, "conversationId", conversation_id.to_string());
                set(&o, "kid", kid);
                set(&o, "key", bytes(&key.0[..]));
            }
            Received::Refused(refusal) => {
                set(&o, "kind", "refused");
                set(&o, "reason", refusal.code());
                set(&o, "message", refusal.to_string());
            }
        }
        Ok(o)
    }

    /// Decrypts a conversation message: `{ ok: true, plaintext, messageIndex, senderVerified }`
    /// or `{ ok: false, reason, message, missing? }` (`missing`: ask `requestMissingKey`).
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(unchecked_return_type = "MachineDecrypted")]
    pub fn decrypt(
        &mut self,
        message_id: &str,
        conversation: &str,
        sender_account: &str,
        sender_device: &str,
        session_id: &[u8],
        ciphertext: &[u8],
    ) -> JsResult<Object> {
        let message = GroupMessage {
            message_id: id(message_id)?,
            conversation_id: id(conversation)?,
            sender_account_id: id(sender_account)?,
            sender_device_id: id(sender_device)?,
            session_id,
            ciphertext,
        };
        let o = Object::new();
        match self.inner.decrypt(&message) {
            Ok(d) => {
                set(&o, "ok", true);
                set(&o, "plaintext", bytes(&d.plaintext));
                set(&o, "messageIndex", d.message_index);
                set(&o, "senderVerified", d.sender_verified);
            }
            Err(u) => {
                set(&o, "ok", false);
                set(&o, "reason", u.reason.code());
                set(&o, "message", u.reason.to_string());
                set(&o, "missing", u.missing.as_ref().map_or(JsValue::UNDEFINED, |m| missing(m).into()));
            }
        }
        Ok(o)
    }

    /// Asks our own devices for a missing session: the messages to send.
    #[wasm_bindgen(js_name = requestMissingKey, unchecked_return_type = "MachineToDevice[]")]
    pub fn request_missing_key(
        &mut self,
        conversation: &str,
        sender_account: &str,
        sender_device: &str,
        session_id: &str,
        now_ms: f64,
    ) -> JsResult<Array> {
        let m = missing_from(conversation, sender_account, sender_device, session_id)?;
        Ok(outgoing_array(&self.inner.request_missing_key(&m, ms(now_ms)).map_err(client_error)?))
    }

    /// The key requests unanswered: `[{ conversationId, senderAccountId, senderDeviceId, sessionId }]`.
    #[wasm_bindgen(js_name = pendingKeyRequests, unchecked_return_type = "MachineMissingKey[]")]
    pub fn pending_key_requests(&self) -> Array {
        self.inner.pending_key_requests().iter().map(|m| JsValue::from(missing(m))).collect()
    }

    /// Forgets a key request.
    #[wasm_bindgen(js_name = cancelKeyRequest)]
    pub fn cancel_key_request(
        &mut self,
        conversation: &str,
        sender_account: &str,
        sender_device: &str,
        session_id: &str,
    ) -> JsResult<()> {
        self.inner.cancel_key_request(&missing_from(
            conversation,
            sender_account,
            sender_device,
            session_id,
        )?);
        Ok(())
    }

    /// A verification message to `device` (`0x03` over Olm): the to-device message to send.
    #[wasm_bindgen(js_name = encryptVerification, unchecked_return_type = "MachineToDevice")]
    pub fn encrypt_verification(&mut self, device: &str, message: &[u8], now_ms: f64) -> JsResult<Object> {
        let m = self.inner.encrypt_verification(id(device)?, message, ms(now_ms)).map_err(client_error)?;
        Ok(outgoing(&m))
    }

    /// A call signal's payload for `device` (of one of `members`), bound to the call.
    #[wasm_bindgen(js_name = encryptCallPayload)]
    pub fn encrypt_call_payload(
        &mut self,
        members: Vec<String>,
        device: &str,
        conversation: &str,
        call_id: &str,
        action: u8,
        payload: &[u8],
    ) -> JsResult<Vec<u8>> {
        let context = CallContext { conversation_id: id(conversation)?, call_id: id(call_id)?, action };
        self.inner.encrypt_call_payload(&ids(&members)?, id(device)?, &context, payload).map_err(client_error)
    }

    /// Decrypts a call signal's payload; throws `call_payload_mismatch` for another call or action.
    #[wasm_bindgen(js_name = decryptCallPayload)]
    pub fn decrypt_call_payload(
        &mut self,
        sender_account: &str,
        sender_device: &str,
        conversation: &str,
        call_id: &str,
        action: u8,
        ciphertext: &[u8],
    ) -> JsResult<Vec<u8>> {
        let context = CallContext { conversation_id: id(conversation)?, call_id: id(call_id)?, action };
        self.inner
            .decrypt_call_payload(id(sender_account)?, id(sender_device)?, &context, ciphertext)
            .map_err(client_error)
    }

    /// Up to `limit` inbound sessions not backed up yet, encrypted under `backupKey`:
    /// `[{ sessionId, data }]`. Upload them, then `markBackedUp` the ids the server took.
    #[wasm_bindgen(js_name = sessionsToBackUp, unchecked_return_type = "MachineBackupEntry[]")]
    pub fn sessions_to_back_up(&mut self, backup_key: &WasmBackupKey, limit: usize) -> Array {
        self.inner
            .sessions_to_back_up(&backup_key.inner, limit)
            .iter()
            .map(|(session_id, data)| {
                let o = Object::new();
                set(&o, "sessionId", session_id.clone());
                set(&o, "data", bytes(data));
                JsValue::from(o)
            })
            .collect()
    }

    /// The server took the entries of these sessions.
    #[wasm_bindgen(js_name = markBackedUp)]
    pub fn mark_backed_up(&mut self, session_ids: Vec<String>) {
        self.inner.mark_backed_up(&session_ids);
    }

    /// Every session goes to the backup again (a new backup key or version).
    #[wasm_bindgen(js_name = resetBackedUp)]
    pub fn reset_backed_up(&mut self) {
        self.inner.reset_backed_up();
    }

    /// How many sessions are not backed up yet.
    #[wasm_bindgen(js_name = sessionsNotBackedUp)]
    pub fn sessions_not_backed_up(&self) -> usize {
        self.inner.sessions_not_backed_up()
    }

    /// Imports the backup entry stored under `sessionId` (of this account's backup); throws
    /// `backup_decryption` / `malformed_backup` / `backup_session_conflict` /
    /// `device_of_another_account` with nothing changed.
    #[wasm_bindgen(js_name = importBackedUp, unchecked_return_type = "MachineImported")]
    pub fn import_backed_up(
        &mut self,
        backup_key: &WasmBackupKey,
        session_id: &str,
        data: &[u8],
    ) -> JsResult<Object> {
        let imported =
            self.inner.import_backed_up(&backup_key.inner, session_id, data).map_err(client_error)?;
        let o = Object::new();
        set(&o, "sessionId", imported.session_id);
        set(&o, "senderAccountId", imported.sender_account_id.to_string());
        set(&o, "senderDeviceId", imported.sender_device_id.to_string());
        if let Some(c) = imported.conversation_id {
            set(&o, "conversationId", c.to_string());
        }
        set(&o, "stored", imported.stored);
        Ok(o)
    }
}

/// What the PWA's engine kept in IndexedDB before `CryptoMachine` (`crate::client::Legacy`),
/// handed over record by record as it was stored, for `CryptoMachine.fromLegacy`.
#[wasm_bindgen(js_name = LegacyState)]
pub struct WasmLegacy {
    inner: Legacy,
}

#[wasm_bindgen(js_class = LegacyState)]
impl WasmLegacy {
    /// The old `device` pickle, `accountKey` pickle (if held) and `certificateUploaded`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        account_id: &str,
        device_id: &str,
        device_pickle: String,
        account_key_pickle: Option<String>,
        certificate_uploaded: bool,
    ) -> JsResult<WasmLegacy> {
        Ok(Self {
            inner: Legacy {
                account_id: Some(id(account_id)?),
                device_id: Some(id(device_id)?),
                device_pickle,
                account_key_pickle,
                certificate_uploaded,
                ..Legacy::default()
            },
        })
    }

    /// One entry of the old `pinned` map.
    pub fn pinned(&mut self, account: &str, key: &[u8]) -> JsResult<()> {
        self.inner.pinned.push((id(account)?, key.to_vec()));
        Ok(())
    }

    /// One entry of the old `verified` map.
    pub fn verified(&mut self, account: &str, key: &[u8]) -> JsResult<()> {
        self.inner.verified.push((id(account)?, key.to_vec()));
        Ok(())
    }

    /// One entry of the old `verifiedThenChanged` list.
    #[wasm_bindgen(js_name = verifiedThenChanged)]
    pub fn verified_then_changed(&mut self, account: &str) -> JsResult<()> {
        self.inner.verified_then_changed.push(id(account)?);
        Ok(())
    }

    /// One entry of the old `peers` list.
    pub fn peer(&mut self, account: &str, device: &str, ed25519: &[u8], curve25519: &[u8]) -> JsResult<()> {
        self.inner.peers.push(Peer {
            account_id: id(account)?,
            device_id: id(device)?,
            ed25519: super::array(ed25519, "ed25519 key")?,
            curve25519: super::array(curve25519, "curve25519 key")?,
        });
        Ok(())
    }

    /// One entry of the old `devices` map.
    pub fn devices(&mut self, account: &str, devices: Vec<String>) -> JsResult<()> {
        self.inner.devices.push((id(account)?, ids(&devices)?));
        Ok(())
    }

    /// An old `olm:<device id>` record (its pickles in order).
    pub fn olm(&mut self, device: &str, pickles: Vec<String>) -> JsResult<()> {
        self.inner.olm.push((id(device)?, pickles));
        Ok(())
    }

    /// An old `out:<conversation id>` record.
    pub fn outbound(
        &mut self,
        conversation: &str,
        pickle: String,
        shared_with: Vec<String>,
        created_at_ms: f64,
    ) -> JsResult<()> {
        self.inner.outbound.push(LegacyOutbound {
            conversation_id: id(conversation)?,
            pickle,
            shared_with: ids(&shared_with)?,
            created_at_ms: ms(created_at_ms),
        });
        Ok(())
    }

    /// An old `in:<key>` record (`key` is `"<sender device id>|<session id>"`).
    pub fn inbound(
        &mut self,
        key: String,
        pickle: String,
        sender_account: &str,
        conversation: Option<String>,
    ) -> JsResult<()> {
        self.inner.inbound.push(LegacyInbound {
            key,
            pickle,
            sender_account_id: id(sender_account)?,
            conversation_id: conversation.as_deref().map(id).transpose()?,
        });
        Ok(())
    }

    /// One entry of the old `seen` map (`key` is `"<sender device id>|<session id>|<index>"`).
    pub fn seen(&mut self, key: String, message_id: &str) -> JsResult<()> {
        self.inner.seen.push((key, id(message_id)?));
        Ok(())
    }

    /// The old `taken` list, oldest first.
    pub fn taken(&mut self, message_ids: Vec<String>) -> JsResult<()> {
        self.inner.taken.extend(ids(&message_ids)?);
        Ok(())
    }
}
