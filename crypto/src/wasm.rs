//! The WebAssembly layer for the PWA: thin `#[wasm_bindgen]` wrappers (`struct X { inner }`)
//! over the native API, with bytes (`Uint8Array`) and strings across the boundary.
//!
//! Only compiled for `wasm32` with the `wasm` feature (`crypto/build-wasm.sh`). Errors are
//! thrown as a JS `Error` whose `name` is `"KitsulanCryptoError"` and whose `code` is
//! [`Error::code`] (stable strings, tested natively in `error.rs` for every variant). Ids are
//! 16-byte `Uint8Array`s, times and key ids are `bigint`. Randomness comes from
//! `crypto.getRandomValues`. Objects hold secrets in WASM memory: call `.free()` when done.

#![allow(clippy::new_without_default)]

use wasm_bindgen::prelude::*;

use crate::attachment::{AttachmentDecryptor, AttachmentEncryptor, AttachmentSecrets};
use crate::backup::{self, BackedUpSession, BackupKey, SessionOrigin};
use crate::certificate::{AccountKey, CertificateFields};
use crate::device::{ClaimedKey, DeviceAccount, SignedFallbackKey, SignedOneTimeKey};
use crate::linking;
use crate::megolm::{InboundGroupSession, OutboundGroupSession};
use crate::olm::OlmSession;
use crate::pairing::{self, NewDevicePairing, PairingChannel, PairingQr};
use crate::sas::{EstablishedSas, SAS_EMOJI, SasVerification};
use crate::verification::{self, CancelReason, Identity, State, Verification};
use crate::{Error, OsRng, PickleKey};

/// Converts an [`Error`] into the thrown JS value: `Error` with `name` and `code`.
fn js_error(error: Error) -> JsValue {
    let js = js_sys::Error::new(&error.to_string());
    js.set_name("KitsulanCryptoError");
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&js, &JsValue::from_str("code"), &JsValue::from_str(error.code()));
    js.into()
}

type JsResult<T> = Result<T, JsValue>;

fn array<const N: usize>(bytes: &[u8], what: &'static str) -> JsResult<[u8; N]> {
    bytes.try_into().map_err(|_| js_error(Error::InvalidLength(what)))
}

fn pickle_key(bytes: &[u8]) -> JsResult<PickleKey> {
    Ok(PickleKey::from_bytes(array(bytes, "pickle key")?))
}

/// Seals a record kept on the device (bytes) under the pickle key, bound to its `name`.
#[wasm_bindgen(js_name = sealLocal)]
pub fn seal_local(key: &[u8], name: &str, body: &[u8]) -> JsResult<String> {
    Ok(crate::pickle::seal_local(&pickle_key(key)?, name, body, &mut OsRng::new()))
}

/// Opens a record sealed by `sealLocal` under the same key and name.
#[wasm_bindgen(js_name = openLocal)]
pub fn open_local(key: &[u8], name: &str, sealed: &str) -> JsResult<Vec<u8>> {
    Ok(crate::pickle::open_local(&pickle_key(key)?, name, sealed).map_err(js_error)?.to_vec())
}

/// A random 32-byte pickle key.
#[wasm_bindgen(js_name = generatePickleKey)]
pub fn generate_pickle_key() -> Vec<u8> {
    PickleKey::generate(&mut OsRng::new()).as_bytes().to_vec()
}

/// A signed one-time or fallback key (as uploaded, or as claimed from the server).
#[wasm_bindgen(js_name = SignedKey)]
pub struct WasmSignedKey {
    key_id: u64,
    public_key: [u8; 32],
    signature: [u8; 64],
    fallback: bool,
}

#[wasm_bindgen(js_class = SignedKey)]
impl WasmSignedKey {
    /// Builds a claimed key from the server's fields.
    #[wasm_bindgen(constructor)]
    pub fn new(key_id: u64, public_key: &[u8], signature: &[u8], fallback: bool) -> JsResult<WasmSignedKey> {
        Ok(Self {
            key_id,
            public_key: array(public_key, "public key")?,
            signature: array(signature, "signature")?,
            fallback,
        })
    }
    /// The device-local key id.
    #[wasm_bindgen(getter, js_name = keyId)]
    pub fn key_id(&self) -> u64 {
        self.key_id
    }
    /// The Curve25519 public key.
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> Vec<u8> {
        self.public_key.to_vec()
    }
    /// The device's Ed25519 signature.
    #[wasm_bindgen(getter)]
    pub fn signature(&self) -> Vec<u8> {
        self.signature.to_vec()
    }
    /// Whether this is the fallback key.
    #[wasm_bindgen(getter)]
    pub fn fallback(&self) -> bool {
        self.fallback
    }
    fn claimed(&self) -> ClaimedKey {
        if self.fallback {
            ClaimedKey::Fallback(SignedFallbackKey {
                key_id: self.key_id,
                public_key: self.public_key,
                signature: self.signature,
            })
        } else {
            ClaimedKey::OneTime(SignedOneTimeKey {
                key_id: self.key_id,
                public_key: self.public_key,
                signature: self.signature,
            })
        }
    }
}

impl From<SignedOneTimeKey> for WasmSignedKey {
    fn from(k: SignedOneTimeKey) -> Self {
        Self { key_id: k.key_id, public_key: k.public_key, signature: k.signature, fallback: false }
    }
}

impl From<SignedFallbackKey> for WasmSignedKey {
    fn from(k: SignedFallbackKey) -> Self {
        Self { key_id: k.key_id, public_key: k.public_key, signature: k.signature, fallback: true }
    }
}

/// Checks a signed one-time or fallback key against the device's Ed25519 key.
#[wasm_bindgen(js_name = verifySignedKey)]
pub fn verify_signed_key(device_ed25519: &[u8], key: &WasmSignedKey) -> JsResult<()> {
    match key.claimed() {
        ClaimedKey::OneTime(k) => crate::verify_one_time_key(device_ed25519, &k),
        ClaimedKey::Fallback(k) => crate::verify_fallback_key(device_ed25519, &k),
    }
    .map_err(js_error)
}

/// A device's Olm account.
#[wasm_bindgen(js_name = DeviceAccount)]
pub struct WasmDeviceAccount {
    inner: DeviceAccount,
}

/// An inbound Olm session with the plaintext of the message that created it.
#[wasm_bindgen(js_name = InboundOlmSession)]
pub struct WasmInboundOlm {
    session: Option<WasmOlmSession>,
    plaintext: Vec<u8>,
}

#[wasm_bindgen(js_class = InboundOlmSession)]
impl WasmInboundOlm {
    /// Takes the session out (once; later calls return `undefined`).
    #[wasm_bindgen(js_name = takeSession)]
    pub fn take_session(&mut self) -> Option<WasmOlmSession> {
        self.session.take()
    }
    /// The decrypted first message.
    #[wasm_bindgen(getter)]
    pub fn plaintext(&self) -> Vec<u8> {
        self.plaintext.clone()
    }
}

#[wasm_bindgen(js_class = DeviceAccount)]
impl WasmDeviceAccount {
    /// A new device with random identity keys.
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmDeviceAccount {
        Self { inner: DeviceAccount::new() }
    }
    /// Restores from `pickle()`.
    #[wasm_bindgen(js_name = fromPickle)]
    pub fn from_pickle(pickle: &str, key: &[u8]) -> JsResult<WasmDeviceAccount> {
        Ok(Self { inner: DeviceAccount::from_pickle(pickle, &pickle_key(key)?).map_err(js_error)? })
    }
    /// The encrypted pickle.
    pub fn pickle(&self, key: &[u8]) -> JsResult<String> {
        Ok(self.inner.pickle(&pickle_key(key)?))
    }
    /// The Ed25519 signing key.
    #[wasm_bindgen(getter, js_name = ed25519Key)]
    pub fn ed25519_key(&self) -> Vec<u8> {
        self.inner.ed25519_key().to_vec()
    }
    /// The Curve25519 identity key.
    #[wasm_bindgen(getter, js_name = curve25519Key)]
    pub fn curve25519_key(&self) -> Vec<u8> {
        self.inner.curve25519_key().to_vec()
    }
    /// The Ed25519 key, base64.
    #[wasm_bindgen(getter, js_name = ed25519KeyBase64)]
    pub fn ed25519_key_base64(&self) -> String {
        self.inner.ed25519_key_base64()
    }
    /// The Curve25519 key, base64.
    #[wasm_bindgen(getter, js_name = curve25519KeyBase64)]
    pub fn curve25519_key_base64(&self) -> String {
        self.inner.curve25519_key_base64()
    }
    /// How many one-time keys to keep on the server at most.
    #[wasm_bindgen(js_name = maxOneTimeKeys)]
    pub fn max_one_time_keys(&self) -> usize {
        self.inner.max_one_time_keys()
    }
    /// Generates `count` one-time keys; returns all unpublished ones, signed.
    #[wasm_bindgen(js_name = generateOneTimeKeys)]
    pub fn generate_one_time_keys(&mut self, count: usize) -> Vec<WasmSignedKey> {
        self.inner.generate_one_time_keys(count).into_iter().map(Into::into).collect()
    }
    /// Generates a new fallback key and returns it signed.
    #[wasm_bindgen(js_name = generateFallbackKey)]
    pub fn generate_fallback_key(&mut self) -> Option<WasmSignedKey> {
        self.inner.generate_fallback_key().map(Into::into)
    }
    /// Marks all current keys as uploaded.
    #[wasm_bindgen(js_name = markKeysAsPublished)]
    pub fn mark_keys_as_published(&mut self) {
        self.inner.mark_keys_as_published();
    }
    /// Starts an Olm session from a claimed key (its signature is checked first).
    #[wasm_bindgen(js_name = createOutboundSession)]
    pub fn create_outbound_session(
        &self,
        their_ed25519: &[u8],
        their_curve25519: &[u8],
        claimed: &WasmSignedKey,
    ) -> JsResult<WasmOlmSession> {
        let inner = self
            .inner
            .create_outbound_session(their_ed25519, their_curve25519, &claimed.claimed())
            .map_err(js_error)?;
        Ok(WasmOlmSession { inner })
    }
    /// Creates the inbound session from a pre-key message.
    #[wasm_bindgen(js_name = createInboundSession)]
    pub fn create_inbound_session(
        &mut self,
        their_curve25519: &[u8],
        message: &[u8],
    ) -> JsResult<WasmInboundOlm> {
        let (inner, plaintext) =
            self.inner.create_inbound_session(their_curve25519, message).map_err(js_error)?;
        Ok(WasmInboundOlm { session: Some(WasmOlmSession { inner }), plaintext })
    }
}

/// An Olm session.
#[wasm_bindgen(js_name = OlmSession)]
pub struct WasmOlmSession {
    inner: OlmSession,
}

#[wasm_bindgen(js_class = OlmSession)]
impl WasmOlmSession {
    /// Restores from `pickle()`.
    #[wasm_bindgen(js_name = fromPickle)]
    pub fn from_pickle(pickle: &str, key: &[u8]) -> JsResult<WasmOlmSession> {
        Ok(Self { inner: OlmSession::from_pickle(pickle, &pickle_key(key)?).map_err(js_error)? })
    }
    /// The encrypted pickle.
    pub fn pickle(&self, key: &[u8]) -> JsResult<String> {
        Ok(self.inner.pickle(&pickle_key(key)?))
    }
    /// The session id.
    #[wasm_bindgen(getter, js_name = sessionId)]
    pub fn session_id(&self) -> String {
        self.inner.session_id()
    }
    /// Whether a message from the other side was decrypted.
    #[wasm_bindgen(getter, js_name = hasReceivedMessage)]
    pub fn has_received_message(&self) -> bool {
        self.inner.has_received_message()
    }
    /// Whether a pre-key message belongs to this session.
    #[wasm_bindgen(js_name = matchesPreKeyMessage)]
    pub fn matches_pre_key_message(&self, message: &[u8]) -> bool {
        self.inner.matches_pre_key_message(message)
    }
    /// Encrypts.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> JsResult<Vec<u8>> {
        self.inner.encrypt(plaintext).map_err(js_error)
    }
    /// Decrypts.
    pub fn decrypt(&mut self, message: &[u8]) -> JsResult<Vec<u8>> {
        self.inner.decrypt(message).map_err(js_error)
    }
}

/// Whether bytes are an Olm pre-key message.
#[wasm_bindgen(js_name = isPreKeyMessage)]
pub fn is_pre_key_message(message: &[u8]) -> bool {
    crate::olm::is_pre_key_message(message)
}

/// The per-person account key.
#[wasm_bindgen(js_name = AccountKey)]
pub struct WasmAccountKey {
    inner: AccountKey,
}

#[wasm_bindgen(js_class = AccountKey)]
impl WasmAccountKey {
    /// A new random account key.
    pub fn generate() -> WasmAccountKey {
        Self { inner: AccountKey::generate(&mut OsRng::new()) }
    }
    /// From the 32-byte seed received over the pairing channel.
    #[wasm_bindgen(js_name = fromSecretBytes)]
    pub fn from_secret_bytes(seed: &[u8]) -> JsResult<WasmAccountKey> {
        Ok(Self { inner: AccountKey::from_secret_bytes(&array(seed, "account key seed")?) })
    }
    /// The 32-byte seed, for the pairing channel only.
    #[wasm_bindgen(js_name = toSecretBytes)]
    pub fn to_secret_bytes(&self) -> Vec<u8> {
        self.inner.to_secret_bytes().to_vec()
    }
    /// The public key.
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> Vec<u8> {
        self.inner.public_key().to_vec()
    }
    /// Signs a device certificate; returns its canonical bytes.
    pub fn certify(
        &self,
        account_id: &[u8],
        device_id: &[u8],
        device_ed25519: &[u8],
        device_curve25519: &[u8],
        created_at: u64,
    ) -> JsResult<Vec<u8>> {
        let fields = CertificateFields {
            account_id: array(account_id, "account id")?,
            device_id: array(device_id, "device id")?,
            device_ed25519: array(device_ed25519, "device Ed25519 key")?,
            device_curve25519: array(device_curve25519, "device Curve25519 key")?,
            created_at,
        };
        Ok(self.inner.certify(&fields).to_bytes())
    }
    /// The pickle.
    pub fn pickle(&self, key: &[u8]) -> JsResult<String> {
        Ok(self.inner.pickle(&pickle_key(key)?, &mut OsRng::new()))
    }
    /// Restores from `pickle()`.
    #[wasm_bindgen(js_name = fromPickle)]
    pub fn from_pickle(pickle: &str, key: &[u8]) -> JsResult<WasmAccountKey> {
        Ok(Self { inner: AccountKey::from_pickle(pickle, &pickle_key(key)?).map_err(js_error)? })
    }
}

/// A verified device certificate's fields.
#[wasm_bindgen(js_name = DeviceCertificate)]
pub struct WasmDeviceCertificate {
    inner: crate::DeviceCertificate,
}

#[wasm_bindgen(js_class = DeviceCertificate)]
impl WasmDeviceCertificate {
    /// Account id (16 bytes).
    #[wasm_bindgen(getter, js_name = accountId)]
    pub fn account_id(&self) -> Vec<u8> {
        self.inner.fields.account_id.to_vec()
    }
    /// Device id (16 bytes).
    #[wasm_bindgen(getter, js_name = deviceId)]
    pub fn device_id(&self) -> Vec<u8> {
        self.inner.fields.device_id.to_vec()
    }
    /// Device Ed25519 key.
    #[wasm_bindgen(getter, js_name = deviceEd25519)]
    pub fn device_ed25519(&self) -> Vec<u8> {
        self.inner.fields.device_ed25519.to_vec()
    }
    /// Device Curve25519 key.
    #[wasm_bindgen(getter, js_name = deviceCurve25519)]
    pub fn device_curve25519(&self) -> Vec<u8> {
        self.inner.fields.device_curve25519.to_vec()
    }
    /// Creation time, Unix seconds.
    #[wasm_bindgen(getter, js_name = createdAt)]
    pub fn created_at(&self) -> u64 {
        self.inner.fields.created_at
    }
}

/// Verifies a device certificate against the person's pinned account key.
#[wasm_bindgen(js_name = verifyDeviceCertificate)]
pub fn verify_device_certificate(bytes: &[u8], account_key: &[u8]) -> JsResult<WasmDeviceCertificate> {
    Ok(WasmDeviceCertificate {
        inner: crate::verify_device_certificate(bytes, account_key).map_err(js_error)?,
    })
}

/// The sending Megolm session.
#[wasm_bindgen(js_name = OutboundGroupSession)]
pub struct WasmOutboundGroupSession {
    inner: OutboundGroupSession,
}

#[wasm_bindgen(js_class = OutboundGroupSession)]
impl WasmOutboundGroupSession {
    /// A new session.
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmOutboundGroupSession {
        Self { inner: OutboundGroupSession::new() }
    }
    /// The session id.
    #[wasm_bindgen(getter, js_name = sessionId)]
    pub fn session_id(&self) -> String {
        self.inner.session_id()
    }
    /// The next message index.
    #[wasm_bindgen(getter, js_name = messageIndex)]
    pub fn message_index(&self) -> u32 {
        self.inner.message_index()
    }
    /// The session key to share over Olm.
    #[wasm_bindgen(js_name = sessionKey)]
    pub fn session_key(&self) -> Vec<u8> {
        self.inner.session_key().to_vec()
    }
    /// Encrypts.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.inner.encrypt(plaintext)
    }
    /// The encrypted pickle.
    pub fn pickle(&self, key: &[u8]) -> JsResult<String> {
        Ok(self.inner.pickle(&pickle_key(key)?))
    }
    /// Restores from `pickle()`.
    #[wasm_bindgen(js_name = fromPickle)]
    pub fn from_pickle(pickle: &str, key: &[u8]) -> JsResult<WasmOutboundGroupSession> {
        Ok(Self { inner: OutboundGroupSession::from_pickle(pickle, &pickle_key(key)?).map_err(js_error)? })
    }
}

/// A decrypted group message.
#[wasm_bindgen(js_name = DecryptedGroupMessage)]
pub struct WasmDecryptedGroupMessage {
    plaintext: Vec<u8>,
    message_index: u32,
}

#[wasm_bindgen(js_class = DecryptedGroupMessage)]
impl WasmDecryptedGroupMessage {
    /// The plaintext.
    #[wasm_bindgen(getter)]
    pub fn plaintext(&self) -> Vec<u8> {
        self.plaintext.clone()
    }
    /// The message index.
    #[wasm_bindgen(getter, js_name = messageIndex)]
    pub fn message_index(&self) -> u32 {
        self.message_index
    }
}

/// The receiving Megolm session with replay rejection.
#[wasm_bindgen(js_name = InboundGroupSession)]
pub struct WasmInboundGroupSession {
    inner: InboundGroupSession,
}

#[wasm_bindgen(js_class = InboundGroupSession)]
impl WasmInboundGroupSession {
    /// From a shared session key.
    #[wasm_bindgen(js_name = fromSessionKey)]
    pub fn from_session_key(key: &[u8]) -> JsResult<WasmInboundGroupSession> {
        Ok(Self { inner: InboundGroupSession::from_session_key(key).map_err(js_error)? })
    }
    /// From an exported key (backup).
    pub fn import(key: &[u8]) -> JsResult<WasmInboundGroupSession> {
        Ok(Self { inner: InboundGroupSession::import(key).map_err(js_error)? })
    }
    /// Exports at the first known index.
    #[wasm_bindgen(js_name = exportAtFirstKnownIndex)]
    pub fn export_at_first_known_index(&self) -> Vec<u8> {
        self.inner.export_at_first_known_index().to_vec()
    }
    /// The session id.
    #[wasm_bindgen(getter, js_name = sessionId)]
    pub fn session_id(&self) -> String {
        self.inner.session_id()
    }
    /// The first decryptable index.
    #[wasm_bindgen(getter, js_name = firstKnownIndex)]
    pub fn first_known_index(&self) -> u32 {
        self.inner.first_known_index()
    }
    /// Decrypts live traffic (replays throw `megolm_replay`).
    pub fn decrypt(&mut self, message: &[u8]) -> JsResult<WasmDecryptedGroupMessage> {
        let d = self.inner.decrypt(message).map_err(js_error)?;
        Ok(WasmDecryptedGroupMessage { plaintext: d.plaintext, message_index: d.message_index })
    }
    /// Decrypts stored history (exact duplicates allowed).
    #[wasm_bindgen(js_name = decryptHistory)]
    pub fn decrypt_history(&mut self, message: &[u8]) -> JsResult<WasmDecryptedGroupMessage> {
        let d = self.inner.decrypt_history(message).map_err(js_error)?;
        Ok(WasmDecryptedGroupMessage { plaintext: d.plaintext, message_index: d.message_index })
    }
    /// The pickle (with the replay record).
    pub fn pickle(&self, key: &[u8]) -> JsResult<String> {
        Ok(self.inner.pickle(&pickle_key(key)?, &mut OsRng::new()))
    }
    /// Restores from `pickle()`.
    #[wasm_bindgen(js_name = fromPickle)]
    pub fn from_pickle(pickle: &str, key: &[u8]) -> JsResult<WasmInboundGroupSession> {
        Ok(Self { inner: InboundGroupSession::from_pickle(pickle, &pickle_key(key)?).map_err(js_error)? })
    }
}

/// One side of a SAS verification.
#[wasm_bindgen(js_name = SasVerification)]
pub struct WasmSas {
    inner: Option<SasVerification>,
}

#[wasm_bindgen(js_class = SasVerification)]
impl WasmSas {
    /// A new ephemeral key.
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmSas {
        Self { inner: Some(SasVerification::new()) }
    }
    /// Our public key (empty after `establish`).
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> Vec<u8> {
        self.inner.as_ref().map(|s| s.public_key().to_vec()).unwrap_or_default()
    }
    /// Completes the key agreement (once).
    pub fn establish(&mut self, their_public_key: &[u8]) -> JsResult<WasmEstablishedSas> {
        let sas = self.inner.take().ok_or_else(|| js_error(Error::SasKeyAgreement))?;
        Ok(WasmEstablishedSas { inner: sas.establish(their_public_key).map_err(js_error)? })
    }
}

/// SAS after key agreement.
#[wasm_bindgen(js_name = EstablishedSas)]
pub struct WasmEstablishedSas {
    inner: EstablishedSas,
}

#[wasm_bindgen(js_class = EstablishedSas)]
impl WasmEstablishedSas {
    /// The seven emoji indices.
    #[wasm_bindgen(js_name = emojiIndices)]
    pub fn emoji_indices(&self, transaction_id: &str) -> Vec<u8> {
        self.inner.short_auth_string(transaction_id).emoji_indices.to_vec()
    }
    /// The three decimals.
    pub fn decimals(&self, transaction_id: &str) -> Vec<u16> {
        self.inner.short_auth_string(transaction_id).decimals.to_vec()
    }
    /// Our MAC over a key we vouch for.
    pub fn mac(&self, transaction_id: &str, key_id: &str, key: &[u8]) -> Vec<u8> {
        self.inner.mac(transaction_id, key_id, key)
    }
    /// Checks the other side's MAC.
    #[wasm_bindgen(js_name = verifyMac)]
    pub fn verify_mac(&self, transaction_id: &str, key_id: &str, key: &[u8], mac: &[u8]) -> JsResult<()> {
        self.inner.verify_mac(transaction_id, key_id, key, mac).map_err(js_error)
    }
}

/// The emoji of the SAS table at `index` (0..63).
#[wasm_bindgen(js_name = sasEmoji)]
pub fn sas_emoji(index: u8) -> String {
    SAS_EMOJI[usize::from(index & 63)].emoji.to_owned()
}

/// The English name of the SAS emoji at `index` (0..63).
#[wasm_bindgen(js_name = sasEmojiName)]
pub fn sas_emoji_name(index: u8) -> String {
    SAS_EMOJI[usize::from(index & 63)].name.to_owned()
}

/// The commitment to a SAS public key.
#[wasm_bindgen(js_name = sasCommitment)]
pub fn sas_commitment(public_key: &[u8]) -> JsResult<Vec<u8>> {
    Ok(crate::sas::commitment(&array(public_key, "SAS public key")?).to_vec())
}

/// Verifying another person (`verification.rs`): one transaction on this device.
#[wasm_bindgen(js_name = Verification)]
pub struct WasmVerification {
    inner: Verification,
}

fn identity(device_ed25519: &[u8], account_key: &[u8]) -> JsResult<Identity> {
    Ok(Identity {
        device_ed25519: array(device_ed25519, "device Ed25519 key")?,
        account_key: array(account_key, "account key")?,
    })
}

#[wasm_bindgen(js_class = Verification)]
impl WasmVerification {
    /// Starts verifying the person whose pinned account key is `their_account_key`; the
    /// request is the first `takeOutgoing()`, for every device of that person.
    pub fn request(
        transaction_id: &[u8],
        our_device_ed25519: &[u8],
        our_account_key: &[u8],
        their_account_key: &[u8],
        now_ms: u64,
    ) -> JsResult<WasmVerification> {
        Ok(Self {
            inner: Verification::request(
                array(transaction_id, "transaction id")?,
                identity(our_device_ed25519, our_account_key)?,
                array(their_account_key, "account key")?,
                now_ms,
            ),
        })
    }
    /// Takes a request from the device `their_device_ed25519` of the person whose pinned
    /// account key is `their_account_key` (throws `verification_request_expired` when stale).
    #[wasm_bindgen(js_name = fromRequest)]
    pub fn from_request(
        bytes: &[u8],
        their_device_ed25519: &[u8],
        their_account_key: &[u8],
        our_device_ed25519: &[u8],
        our_account_key: &[u8],
        now_ms: u64,
    ) -> JsResult<WasmVerification> {
        let inner = Verification::from_request(
            bytes,
            array(their_device_ed25519, "device Ed25519 key")?,
            array(their_account_key, "account key")?,
            identity(our_device_ed25519, our_account_key)?,
            now_ms,
        )
        .map_err(js_error)?;
        Ok(Self { inner })
    }
    /// The person accepted the request (responder).
    pub fn accept(&mut self) -> JsResult<()> {
        self.inner.accept().map_err(js_error)
    }
    /// The person confirmed the emoji match.
    pub fn confirm(&mut self) -> JsResult<()> {
        self.inner.confirm().map_err(js_error)
    }
    /// The person said the emoji differ.
    pub fn mismatch(&mut self) {
        self.inner.mismatch();
    }
    /// The person cancelled.
    pub fn cancel(&mut self) {
        self.inner.cancel(CancelReason::User);
    }
    /// Cancels on timeout; returns whether it timed out.
    #[wasm_bindgen(js_name = checkTimeout)]
    pub fn check_timeout(&mut self, now_ms: u64) -> bool {
        self.inner.check_timeout(now_ms)
    }
    /// Takes a message from the other side's device (its certified Ed25519 key).
    pub fn receive(&mut self, bytes: &[u8], sender_device_ed25519: &[u8]) -> JsResult<()> {
        self.inner.receive(bytes, array(sender_device_ed25519, "device Ed25519 key")?);
        Ok(())
    }
    /// The next message to send (`undefined` when none).
    #[wasm_bindgen(js_name = takeOutgoing)]
    pub fn take_outgoing(&mut self) -> Option<Vec<u8>> {
        self.inner.take_outgoing()
    }
    /// `requested`, `ready`, `compare`, `confirmed`, `done` or `cancelled`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.inner.state().code().to_owned()
    }
    /// Why it was cancelled (`user`, `timeout`, `mismatch`, `mac_mismatch`, …), if it was.
    #[wasm_bindgen(getter, js_name = cancelReason)]
    pub fn cancel_reason(&self) -> Option<String> {
        match self.inner.state() {
            State::Cancelled { reason, .. } => Some(reason.code().to_owned()),
            _ => None,
        }
    }
    /// Whether the other side cancelled.
    #[wasm_bindgen(getter, js_name = cancelledByThem)]
    pub fn cancelled_by_them(&self) -> bool {
        matches!(self.inner.state(), State::Cancelled { by_them: true, .. })
    }
    /// Whether this device sent the request.
    #[wasm_bindgen(getter, js_name = isInitiator)]
    pub fn is_initiator(&self) -> bool {
        self.inner.role() == verification::Role::Initiator
    }
    /// The transaction id (16 bytes).
    #[wasm_bindgen(getter, js_name = transactionId)]
    pub fn transaction_id(&self) -> Vec<u8> {
        self.inner.transaction_id().to_vec()
    }
    /// The other device's Ed25519 key, once known.
    #[wasm_bindgen(getter, js_name = theirDeviceEd25519)]
    pub fn their_device_ed25519(&self) -> Option<Vec<u8>> {
        self.inner.their_device_ed25519().map(|k| k.to_vec())
    }
    /// The seven emoji indices, once both SAS keys are known.
    #[wasm_bindgen(getter, js_name = emojiIndices)]
    pub fn emoji_indices(&self) -> Option<Vec<u8>> {
        self.inner.short_auth_string().map(|s| s.emoji_indices.to_vec())
    }
    /// The account key to record as verified, once done.
    #[wasm_bindgen(getter, js_name = verifiedAccountKey)]
    pub fn verified_account_key(&self) -> Option<Vec<u8>> {
        self.inner.verified_account_key().map(|k| k.to_vec())
    }
}

/// The transaction id of an encoded verification message (throws when malformed).
#[wasm_bindgen(js_name = verificationTransactionId)]
pub fn verification_transaction_id(bytes: &[u8]) -> JsResult<Vec<u8>> {
    Ok(verification::peek_transaction_id(bytes).map_err(js_error)?.to_vec())
}

/// Whether an encoded verification message is a request.
#[wasm_bindgen(js_name = isVerificationRequest)]
pub fn is_verification_request(bytes: &[u8]) -> bool {
    verification::is_request(bytes)
}

/// A cancel for `transaction_id` saying another device of the person accepted.
#[wasm_bindgen(js_name = verificationAcceptedElsewhere)]
pub fn verification_accepted_elsewhere(transaction_id: &[u8]) -> JsResult<Vec<u8>> {
    Ok(verification::cancel_message(
        array(transaction_id, "transaction id")?,
        CancelReason::AcceptedElsewhere,
    ))
}

/// The new device's side of a pairing.
#[wasm_bindgen(js_name = NewDevicePairing)]
pub struct WasmNewDevicePairing {
    inner: Option<NewDevicePairing>,
}

/// A channel plus the first plaintext (new device) or the initial message (existing device).
#[wasm_bindgen(js_name = PairingStart)]
pub struct WasmPairingStart {
    channel: Option<WasmPairingChannel>,
    bytes: Vec<u8>,
}

#[wasm_bindgen(js_class = PairingStart)]
impl WasmPairingStart {
    /// Takes the channel out (once).
    #[wasm_bindgen(js_name = takeChannel)]
    pub fn take_channel(&mut self) -> Option<WasmPairingChannel> {
        self.channel.take()
    }
    /// The initial plaintext (accept) or the initial message to relay (connect).
    #[wasm_bindgen(getter)]
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

#[wasm_bindgen(js_class = NewDevicePairing)]
impl WasmNewDevicePairing {
    /// A fresh ephemeral key for a pairing.
    #[wasm_bindgen(constructor)]
    pub fn new(pairing_id: &[u8], server_url: &str) -> JsResult<WasmNewDevicePairing> {
        let inner = NewDevicePairing::new(array(pairing_id, "pairing id")?, server_url).map_err(js_error)?;
        Ok(Self { inner: Some(inner) })
    }
    fn get(&self) -> JsResult<&NewDevicePairing> {
        self.inner.as_ref().ok_or_else(|| js_error(Error::MalformedPairingData))
    }
    /// Our public key (what the server relays for PIN pairing).
    #[wasm_bindgen(js_name = publicKey)]
    pub fn public_key(&self) -> JsResult<Vec<u8>> {
        Ok(self.get()?.public_key().to_vec())
    }
    /// The QR text.
    #[wasm_bindgen(js_name = qrText)]
    pub fn qr_text(&self) -> JsResult<String> {
        Ok(self.get()?.qr().to_text())
    }
    /// Accepts the existing device's initial message (once).
    pub fn accept(&mut self, initial_message: &[u8]) -> JsResult<WasmPairingStart> {
        let pairing = self.inner.take().ok_or_else(|| js_error(Error::MalformedPairingData))?;
        let (channel, bytes) = pairing.accept(initial_message).map_err(js_error)?;
        Ok(WasmPairingStart { channel: Some(WasmPairingChannel { inner: channel }), bytes })
    }
}

/// A parsed pairing QR.
#[wasm_bindgen(js_name = PairingQr)]
pub struct WasmPairingQr {
    inner: PairingQr,
}

#[wasm_bindgen(js_class = PairingQr)]
impl WasmPairingQr {
    /// Parses QR text.
    #[wasm_bindgen(js_name = fromText)]
    pub fn from_text(text: &str) -> JsResult<WasmPairingQr> {
        Ok(Self { inner: PairingQr::from_text(text).map_err(js_error)? })
    }
    /// The pairing id.
    #[wasm_bindgen(getter, js_name = pairingId)]
    pub fn pairing_id(&self) -> Vec<u8> {
        self.inner.pairing_id.to_vec()
    }
    /// The new device's public key.
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> Vec<u8> {
        self.inner.public_key.to_vec()
    }
    /// The server URL.
    #[wasm_bindgen(getter, js_name = serverUrl)]
    pub fn server_url(&self) -> String {
        self.inner.server_url.clone()
    }
}

/// The existing device opens the channel to the new device's public key.
#[wasm_bindgen(js_name = pairingConnect)]
pub fn pairing_connect(new_device_public_key: &[u8], initial_plaintext: &[u8]) -> JsResult<WasmPairingStart> {
    let (channel, bytes) = pairing::connect(new_device_public_key, initial_plaintext).map_err(js_error)?;
    Ok(WasmPairingStart { channel: Some(WasmPairingChannel { inner: channel }), bytes })
}

/// A random 8-digit pairing PIN.
#[wasm_bindgen(js_name = generatePairingPin)]
pub fn generate_pairing_pin() -> String {
    pairing::generate_pin(&mut OsRng::new())
}

/// Normalizes a typed PIN (drops spaces and dashes).
#[wasm_bindgen(js_name = normalizePairingPin)]
pub fn normalize_pairing_pin(typed: &str) -> JsResult<String> {
    pairing::normalize_pin(typed).map_err(js_error)
}

/// An established pairing channel.
#[wasm_bindgen(js_name = PairingChannel)]
pub struct WasmPairingChannel {
    inner: PairingChannel,
}

#[wasm_bindgen(js_class = PairingChannel)]
impl WasmPairingChannel {
    /// The two-digit check code to compare.
    #[wasm_bindgen(getter, js_name = checkCode)]
    pub fn check_code(&self) -> String {
        self.inner.check_code().digits()
    }
    /// Encrypts the next message.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.inner.encrypt(plaintext)
    }
    /// Decrypts the next message.
    pub fn decrypt(&mut self, message: &[u8]) -> JsResult<Vec<u8>> {
        self.inner.decrypt(message).map_err(js_error)
    }
}

/// Key, IV and ciphertext hash of an attachment.
#[wasm_bindgen(js_name = AttachmentSecrets)]
pub struct WasmAttachmentSecrets {
    inner: AttachmentSecrets,
}

#[wasm_bindgen(js_class = AttachmentSecrets)]
impl WasmAttachmentSecrets {
    /// Parses the encoded form.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> JsResult<WasmAttachmentSecrets> {
        Ok(Self { inner: AttachmentSecrets::from_bytes(bytes).map_err(js_error)? })
    }
    /// The encoded form (for the E2EE message).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes().to_vec()
    }
    /// SHA-256 of the ciphertext.
    #[wasm_bindgen(getter)]
    pub fn sha256(&self) -> Vec<u8> {
        self.inner.sha256.to_vec()
    }
}

/// Streaming attachment encryption.
#[wasm_bindgen(js_name = AttachmentEncryptor)]
pub struct WasmAttachmentEncryptor {
    inner: Option<AttachmentEncryptor>,
}

#[wasm_bindgen(js_class = AttachmentEncryptor)]
impl WasmAttachmentEncryptor {
    /// A new file with a random key.
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmAttachmentEncryptor {
        Self { inner: Some(AttachmentEncryptor::new(&mut OsRng::new())) }
    }
    /// Encrypts the next chunk (empty after `finish`).
    pub fn update(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.inner.as_mut().map(|e| e.update(chunk)).unwrap_or_default()
    }
    /// Finishes (once).
    pub fn finish(&mut self) -> JsResult<WasmAttachmentSecrets> {
        let enc = self.inner.take().ok_or_else(|| js_error(Error::MalformedAttachmentReference))?;
        Ok(WasmAttachmentSecrets { inner: enc.finish() })
    }
}

/// Streaming attachment decryption with the hash check at the end.
#[wasm_bindgen(js_name = AttachmentDecryptor)]
pub struct WasmAttachmentDecryptor {
    inner: Option<AttachmentDecryptor>,
}

#[wasm_bindgen(js_class = AttachmentDecryptor)]
impl WasmAttachmentDecryptor {
    /// Starts decrypting.
    #[wasm_bindgen(constructor)]
    pub fn new(secrets: &WasmAttachmentSecrets) -> WasmAttachmentDecryptor {
        Self { inner: Some(AttachmentDecryptor::new(&secrets.inner)) }
    }
    /// Decrypts the next chunk (untrusted until `finish` succeeds).
    pub fn update(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.inner.as_mut().map(|d| d.update(chunk)).unwrap_or_default()
    }
    /// Checks the hash (throws `attachment_hash_mismatch`).
    pub fn finish(&mut self) -> JsResult<()> {
        let dec = self.inner.take().ok_or_else(|| js_error(Error::AttachmentHashMismatch))?;
        dec.finish().map_err(js_error)
    }
}

/// The key backup's key `B` (`backup.rs`, "Key backup v1"). Errors carry `code`:
/// `recovery_key_malformed`, `wrong_recovery_key`, `wrong_passphrase`, `no_passphrase`,
/// `malformed_backup`, `backup_decryption`, `backup_params_out_of_range`.
#[wasm_bindgen(js_name = BackupKey)]
pub struct WasmBackupKey {
    inner: BackupKey,
}

fn optional_id(bytes: &[u8], what: &'static str) -> JsResult<Option<[u8; 16]>> {
    if bytes.is_empty() { Ok(None) } else { array(bytes, what).map(Some) }
}

#[wasm_bindgen(js_class = BackupKey)]
impl WasmBackupKey {
    /// A new random backup key.
    pub fn generate() -> WasmBackupKey {
        Self { inner: BackupKey::generate(&mut OsRng::new()) }
    }
    /// Parses a typed recovery key (throws `recovery_key_malformed` on a typo).
    #[wasm_bindgen(js_name = fromRecoveryKey)]
    pub fn from_recovery_key(display: &str) -> JsResult<WasmBackupKey> {
        Ok(Self { inner: BackupKey::from_recovery_key(display).map_err(js_error)? })
    }
    /// Opens the passphrase wrap of the auth data (Argon2id; throws `wrong_passphrase`,
    /// `no_passphrase`, `malformed_backup`, `backup_params_out_of_range`).
    #[wasm_bindgen(js_name = fromPassphrase)]
    pub fn from_passphrase(passphrase: &str, auth_data: &[u8]) -> JsResult<WasmBackupKey> {
        Ok(Self { inner: BackupKey::from_passphrase(passphrase.as_bytes(), auth_data).map_err(js_error)? })
    }
    /// From the 32 bytes another device of the account sent over the pairing channel.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> JsResult<WasmBackupKey> {
        Ok(Self { inner: BackupKey::from_bytes(array(bytes, "backup key")?) })
    }
    /// The 32 bytes, for the pairing channel only.
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes().to_vec()
    }
    /// The recovery key to show (groups of 4 characters).
    #[wasm_bindgen(js_name = recoveryKey)]
    pub fn recovery_key(&self) -> String {
        self.inner.recovery_key().to_string()
    }
    /// New auth data: the key check, plus an Argon2id wrap when a passphrase is given
    /// (an empty passphrase throws `invalid_length`).
    #[wasm_bindgen(js_name = authData)]
    pub fn auth_data(&self, passphrase: Option<String>) -> JsResult<Vec<u8>> {
        self.inner.auth_data(passphrase.as_deref().map(str::as_bytes), &mut OsRng::new()).map_err(js_error)
    }
    /// Checks this key against auth data (throws `wrong_recovery_key`, `malformed_backup`).
    pub fn check(&self, auth_data: &[u8]) -> JsResult<()> {
        self.inner.check(auth_data).map_err(js_error)
    }
    /// Encrypts the account key's 32-byte secret for the backup of `accountId`.
    #[wasm_bindgen(js_name = encryptIdentity)]
    pub fn encrypt_identity(&self, account_id: &[u8], account_key_secret: &[u8]) -> JsResult<Vec<u8>> {
        Ok(self.inner.encrypt_identity(
            &array(account_id, "account id")?,
            &array(account_key_secret, "account key seed")?,
            &mut OsRng::new(),
        ))
    }
    /// Decrypts the identity blob of `accountId`: the account key's 32-byte secret.
    #[wasm_bindgen(js_name = decryptIdentity)]
    pub fn decrypt_identity(&self, account_id: &[u8], blob: &[u8]) -> JsResult<Vec<u8>> {
        Ok(self.inner.decrypt_identity(&array(account_id, "account id")?, blob).map_err(js_error)?.to_vec())
    }
    /// Encrypts a Megolm session for the backup of `accountId`, with its sender and
    /// conversation (an empty `conversationId` for none).
    #[wasm_bindgen(js_name = encryptSession)]
    pub fn encrypt_session(
        &self,
        account_id: &[u8],
        session: &WasmInboundGroupSession,
        sender_account_id: &[u8],
        sender_device_id: &[u8],
        conversation_id: &[u8],
    ) -> JsResult<Vec<u8>> {
        let origin = SessionOrigin {
            sender_account_id: array(sender_account_id, "sender account id")?,
            sender_device_id: array(sender_device_id, "sender device id")?,
            conversation_id: optional_id(conversation_id, "conversation id")?,
        };
        Ok(self.inner.encrypt_session(
            &array(account_id, "account id")?,
            &session.inner,
            &origin,
            &mut OsRng::new(),
        ))
    }
    /// Decrypts the session entry stored under `sessionId` in the backup of `accountId`.
    #[wasm_bindgen(js_name = decryptSession)]
    pub fn decrypt_session(
        &self,
        account_id: &[u8],
        session_id: &str,
        blob: &[u8],
    ) -> JsResult<WasmBackedUpSession> {
        let restored = self
            .inner
            .decrypt_session(&array(account_id, "account id")?, session_id, blob)
            .map_err(js_error)?;
        Ok(WasmBackedUpSession { inner: restored })
    }
    /// The pickle (under the pickle key).
    pub fn pickle(&self, key: &[u8]) -> JsResult<String> {
        Ok(self.inner.pickle(&pickle_key(key)?, &mut OsRng::new()))
    }
    /// Restores from `pickle()`.
    #[wasm_bindgen(js_name = fromPickle)]
    pub fn from_pickle(pickle: &str, key: &[u8]) -> JsResult<WasmBackupKey> {
        Ok(Self { inner: BackupKey::from_pickle(pickle, &pickle_key(key)?).map_err(js_error)? })
    }
}

/// A session restored from a key backup, with its sender and conversation.
#[wasm_bindgen(js_name = BackedUpSession)]
pub struct WasmBackedUpSession {
    inner: BackedUpSession,
}

#[wasm_bindgen(js_class = BackedUpSession)]
impl WasmBackedUpSession {
    /// The session (a new copy on each call, from the backed-up key).
    #[wasm_bindgen(js_name = takeSession)]
    pub fn take_session(&self) -> JsResult<WasmInboundGroupSession> {
        let inner = InboundGroupSession::import(&self.inner.session.export_at_first_known_index())
            .map_err(js_error)?;
        Ok(WasmInboundGroupSession { inner })
    }
    /// The sender's account id (16 bytes).
    #[wasm_bindgen(getter, js_name = senderAccountId)]
    pub fn sender_account_id(&self) -> Vec<u8> {
        self.inner.origin.sender_account_id.to_vec()
    }
    /// The sender's device id (16 bytes).
    #[wasm_bindgen(getter, js_name = senderDeviceId)]
    pub fn sender_device_id(&self) -> Vec<u8> {
        self.inner.origin.sender_device_id.to_vec()
    }
    /// The conversation id (16 bytes), when recorded.
    #[wasm_bindgen(getter, js_name = conversationId)]
    pub fn conversation_id(&self) -> Option<Vec<u8>> {
        self.inner.origin.conversation_id.map(|c| c.to_vec())
    }
}

/// Whether a backup's auth data has a passphrase (throws `malformed_backup`).
#[wasm_bindgen(js_name = hasPassphrase)]
pub fn has_passphrase(auth_data: &[u8]) -> JsResult<bool> {
    backup::has_passphrase(auth_data).map_err(js_error)
}

// The client protocol of one device (`crate::client::Machine`) as `CryptoMachine`.
mod machine;

// SFrame for voice rooms (`crate::sframe`): `VoiceKeys`.
mod voice;

// What a message says (`crate::content`): `encodeContent` and `decodeContent`.
mod content;

// ---------------------------------------------------------------------------------------------
// Linking a new device (`linking.rs`): the pairing steps as a state machine; the PWA only
// posts what `takeOutgoing()` gives and feeds `receive()` what `GetPairing` returned.

/// Throws a cancelled flow as a `KitsulanCryptoError` with `code` `"pairing_cancelled"` and
/// `reason` the [`linking::CancelReason`] code.
fn link_cancelled(cancelled: linking::Cancelled) -> JsValue {
    let js = js_sys::Error::new(&cancelled.to_string());
    js.set_name("KitsulanCryptoError");
    let _ = js_sys::Reflect::set(&js, &JsValue::from_str("code"), &JsValue::from_str("pairing_cancelled"));
    let _ =
        js_sys::Reflect::set(&js, &JsValue::from_str("reason"), &JsValue::from_str(cancelled.reason.code()));
    js.into()
}

/// The new device's side of linking.
#[wasm_bindgen(js_name = NewDeviceLinkFlow)]
pub struct WasmNewDeviceLinkFlow {
    inner: linking::NewDeviceFlow,
}

#[wasm_bindgen(js_class = NewDeviceLinkFlow)]
impl WasmNewDeviceLinkFlow {
    /// A fresh ephemeral key for the pairing `pairingId` (16 bytes) on `serverUrl`.
    #[wasm_bindgen(constructor)]
    pub fn new(pairing_id: &[u8], server_url: &str) -> JsResult<WasmNewDeviceLinkFlow> {
        let inner =
            linking::NewDeviceFlow::new(array(pairing_id, "pairing id")?, server_url).map_err(js_error)?;
        Ok(Self { inner })
    }
    /// Our public key (for `CreatePairing`).
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> Vec<u8> {
        self.inner.public_key().to_vec()
    }
    /// The `KITSULAN-PAIR:…` text of the QR code.
    #[wasm_bindgen(js_name = qrText)]
    pub fn qr_text(&self) -> String {
        self.inner.qr().to_text()
    }
    /// Takes the next payload from `GetPairing` (in order); throws `pairing_cancelled` when
    /// the flow stops (now or before).
    pub fn receive(&mut self, payload: &[u8]) -> JsResult<()> {
        self.inner.receive(payload).map(drop).map_err(link_cancelled)
    }
    /// The person confirmed the emoji match (throws `unexpected_verification_step` out of turn).
    pub fn confirm(&mut self) -> JsResult<()> {
        self.inner.confirm().map_err(js_error)
    }
    /// The person cancelled.
    pub fn cancel(&mut self) {
        self.inner.cancel();
    }
    /// The next payload to post (`undefined` when none).
    #[wasm_bindgen(js_name = takeOutgoing)]
    pub fn take_outgoing(&mut self) -> Option<Vec<u8>> {
        self.inner.take_outgoing()
    }
    /// `waiting`, `exchanging`, `compare`, `confirmed`, `verified`, `done` or `cancelled`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.inner.state().code().to_owned()
    }
    /// Why it was cancelled (`user`, `mac_mismatch`, …), if it was.
    #[wasm_bindgen(getter, js_name = cancelReason)]
    pub fn cancel_reason(&self) -> Option<String> {
        self.inner.cancelled().map(|c| c.reason.code().to_owned())
    }
    /// Whether the person confirmed here.
    #[wasm_bindgen(getter)]
    pub fn confirmed(&self) -> bool {
        self.inner.confirmed()
    }
    /// The 7 emoji indices, once both SAS keys are known.
    #[wasm_bindgen(getter, js_name = emojiIndices)]
    pub fn emoji_indices(&self) -> Option<Vec<u8>> {
        self.inner.short_auth_string().map(|s| s.emoji_indices.to_vec())
    }
    /// The 3 decimals, once both SAS keys are known.
    #[wasm_bindgen(getter)]
    pub fn decimals(&self) -> Option<Vec<u16>> {
        self.inner.short_auth_string().map(|s| s.decimals.to_vec())
    }
    /// The account key secret (32 bytes), once it came after both MACs; taken once.
    #[wasm_bindgen(js_name = takeAccountKey)]
    pub fn take_account_key(&mut self) -> Option<Vec<u8>> {
        self.inner.take_account_key().map(|k| k.to_secret_bytes().to_vec())
    }
    /// The key-backup key (32 bytes), if the existing device sent one; taken once.
    #[wasm_bindgen(js_name = takeBackupKey)]
    pub fn take_backup_key(&mut self) -> Option<Vec<u8>> {
        self.inner.take_backup_key().map(|k| k.to_vec())
    }
}

/// The existing device's side of linking.
#[wasm_bindgen(js_name = ExistingDeviceLinkFlow)]
pub struct WasmExistingDeviceLinkFlow {
    inner: linking::ExistingDeviceFlow,
}

#[wasm_bindgen(js_class = ExistingDeviceLinkFlow)]
impl WasmExistingDeviceLinkFlow {
    /// Opens the channel to the new device's key; the first `takeOutgoing()` is the opening
    /// message.
    pub fn connect(pairing_id: &[u8], new_device_public_key: &[u8]) -> JsResult<WasmExistingDeviceLinkFlow> {
        let inner =
            linking::ExistingDeviceFlow::connect(array(pairing_id, "pairing id")?, new_device_public_key)
                .map_err(js_error)?;
        Ok(Self { inner })
    }
    /// Takes the next payload from `GetPairing` (in order); throws `pairing_cancelled` when
    /// the flow stops (now or before).
    pub fn receive(&mut self, payload: &[u8]) -> JsResult<()> {
        self.inner.receive(payload).map(drop).map_err(link_cancelled)
    }
    /// The person confirmed the emoji match (throws `unexpected_verification_step` out of turn).
    pub fn confirm(&mut self) -> JsResult<()> {
        self.inner.confirm().map_err(js_error)
    }
    /// The person cancelled.
    pub fn cancel(&mut self) {
        self.inner.cancel();
    }
    /// The next payload to post (`undefined` when none).
    #[wasm_bindgen(js_name = takeOutgoing)]
    pub fn take_outgoing(&mut self) -> Option<Vec<u8>> {
        self.inner.take_outgoing()
    }
    /// `exchanging`, `compare`, `confirmed`, `verified`, `done` or `cancelled`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.inner.state().code().to_owned()
    }
    /// Why it was cancelled, if it was.
    #[wasm_bindgen(getter, js_name = cancelReason)]
    pub fn cancel_reason(&self) -> Option<String> {
        self.inner.cancelled().map(|c| c.reason.code().to_owned())
    }
    /// Whether the person confirmed here.
    #[wasm_bindgen(getter)]
    pub fn confirmed(&self) -> bool {
        self.inner.confirmed()
    }
    /// Both MACs verified: the account key may go.
    #[wasm_bindgen(getter)]
    pub fn verified(&self) -> bool {
        self.inner.verified()
    }
    /// The 7 emoji indices, once the new device revealed its SAS key.
    #[wasm_bindgen(getter, js_name = emojiIndices)]
    pub fn emoji_indices(&self) -> Option<Vec<u8>> {
        self.inner.short_auth_string().map(|s| s.emoji_indices.to_vec())
    }
    /// The 3 decimals, once the new device revealed its SAS key.
    #[wasm_bindgen(getter)]
    pub fn decimals(&self) -> Option<Vec<u16>> {
        self.inner.short_auth_string().map(|s| s.decimals.to_vec())
    }
    /// Queues the account key secret (32 bytes); only once `verified`.
    #[wasm_bindgen(js_name = sendAccountKey)]
    pub fn send_account_key(&mut self, account_key_secret: &[u8]) -> JsResult<()> {
        let secret = zeroize::Zeroizing::new(array::<32>(account_key_secret, "account key")?);
        self.inner.send_account_key(&AccountKey::from_secret_bytes(&secret)).map_err(js_error)
    }
    /// Queues the key-backup key (32 bytes), optional; only after the account key.
    #[wasm_bindgen(js_name = sendBackupKey)]
    pub fn send_backup_key(&mut self, backup_key: &[u8]) -> JsResult<()> {
        let key = zeroize::Zeroizing::new(array::<32>(backup_key, "backup key")?);
        self.inner.send_backup_key(&key).map_err(js_error)
    }
}
