//! [`E2eeDevice`]: one signed-in device doing end-to-end encryption the way an app does, with
//! `kitsulan-crypto` on the client side and only public keys and ciphertext reaching the
//! server. The e2e tests and the load generator share it.
//!
//! A device publishes (first device of a person) or receives (linked device) the person's
//! [`AccountKey`], uploads a certificate signed by it with signed one-time and fallback keys,
//! finds other devices with `KeyService.QueryKeys` (checking every certificate against the
//! account key it pinned for that person the first time it saw it), opens Olm sessions from
//! claimed keys (checking each key's signature), shares its outbound Megolm session over Olm,
//! and encrypts messages with Megolm.
//!
//! # Transport of Megolm messages
//!
//! In a conversation, Megolm messages are stored by `ConversationService` (see
//! [`crate::conversations`]). Outside conversations they can also travel as to-device messages,
//! one copy per recipient device. The `ciphertext` of a to-device message is one of (a test
//! format of this module, not part of the API):
//!
//! ```text
//! 0x01 || Olm message (crypto/FORMAT.md "Olm message")
//! 0x02 || session id length (u8) || Megolm session id (ASCII) || Megolm message
//! ```
//!
//! and the plaintext inside an Olm message is a room-key share, one of
//!
//! ```text
//! 0x01 || Megolm session key                               (for to-device Megolm messages)
//! 0x02 || conversation id (16 bytes) || Megolm session key (for one conversation)
//! ```
//!
//! An inbound Megolm session is bound to the device that shared it over Olm, and to what it was
//! shared for: a Megolm message is decrypted only with a session that its sending device shared
//! for that very conversation (or for to-device messages).
//!
//! # Rotation
//!
//! As ARCHITECTURE.md §4 says: a new outbound session whenever the set of recipient devices
//! differs from the set the current session was shared with (a device added or removed), and
//! after 100 messages. A new session is shared only with the devices of that moment.
//!
//! # Pairing
//!
//! [`NewDeviceLink`] and [`ExistingDeviceLink`] are the two sides of `PairingService`, and
//! [`link_new_device_by_pin`] / [`link_new_device_by_qr`] run the whole flow (docs/e2ee.md,
//! "Linking a new device"). They only do the I/O: the steps (HELLO, the SAS commitment, keys
//! and MACs over the channel keys, the account key only after both MACs, the optional backup
//! key after it) are `kitsulan_crypto::linking`'s [`NewDeviceFlow`] and [`ExistingDeviceFlow`],
//! the same state machine the PWA runs through WASM. Anything out of turn, a key that does not
//! match the commitment, or a MAC that does not verify cancels the pairing on the server too.

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail, ensure};
use kitsulan_crypto::device::ClaimedKey;
use kitsulan_crypto::linking::{self, ExistingDeviceFlow, NewDeviceFlow};
use kitsulan_crypto::megolm::{InboundGroupSession, OutboundGroupSession};
use kitsulan_crypto::olm::{OlmSession, is_pre_key_message};
use kitsulan_crypto::pairing::{CheckCode, PairingQr};
use kitsulan_crypto::sas::ShortAuthString;
use kitsulan_crypto::{
    AccountKey, DeviceAccount, OsRng, PickleKey, SignedFallbackKey, SignedOneTimeKey,
    verify_device_certificate, verify_fallback_key, verify_one_time_key,
};
use kitsulan_proto::v1::{
    AccountKeys, AckToDeviceRequest, ApprovePairingRequest, CancelPairingRequest, ClaimKeysRequest,
    CreatePairingRequest, CreatePairingResponse, FetchToDeviceRequest, FindPairingRequest,
    FindPairingResponse, GetKeyCountsRequest, GetKeyCountsResponse, GetPairingRequest, GetPairingResponse,
    OutgoingToDeviceMessage, PairingState, PostPairingMessageRequest, PublishAccountKeyRequest,
    QueryKeysRequest, SendToDeviceRequest, Session, SignUpRequest, SignedKey, ToDeviceMessage,
    UploadKeysRequest, UploadKeysResponse,
};
use tonic::Status;
use uuid::Uuid;

use crate::Client;

/// Kind byte of a to-device ciphertext holding an Olm message.
pub const ENVELOPE_OLM: u8 = 0x01;
/// Kind byte of a to-device ciphertext holding a Megolm message.
pub const ENVELOPE_MEGOLM: u8 = 0x02;
/// Kind byte of an Olm plaintext that shares a Megolm session key.
pub const OLM_ROOM_KEY: u8 = 0x01;
/// Kind byte of an Olm plaintext that shares a conversation's Megolm session key
/// (`0x02 || conversation id (16) || session key`; see [`crate::conversations`]).
pub const OLM_CONVERSATION_KEY: u8 = 0x02;
/// Kind byte of an Olm plaintext that carries a verification message
/// (`0x03 || kitsulan_crypto::verification` message; see [`crate::verification`]).
pub const OLM_VERIFICATION: u8 = 0x03;
/// Kind byte of an Olm plaintext that carries a call signal's payload, sent in the call signal
/// itself, not as a to-device message (`0x04 || conversation id (16) || call id (16) ||
/// action (1) || JSON`; docs/calls.md, see the e2e tests' `kitsulan_e2e::call_peer`).
pub const OLM_CALL_SIGNAL: u8 = 0x04;
/// Kind byte of the pairing-channel message that carries the account key secret.
pub const PAIRING_ACCOUNT_KEY: u8 = linking::KIND_ACCOUNT_KEY;
/// Kind byte of the new device's commitment to its SAS key.
pub const PAIRING_SAS_COMMITMENT: u8 = linking::KIND_SAS_COMMITMENT;
/// Kind byte of a SAS public key (the existing device's, then the new device's reveal).
pub const PAIRING_SAS_KEY: u8 = linking::KIND_SAS_KEY;
/// Kind byte of a SAS MAC over the channel keys, sent once the person confirmed the emoji.
pub const PAIRING_SAS_MAC: u8 = linking::KIND_SAS_MAC;
/// Kind byte of the optional pairing-channel message that carries the key-backup key.
pub const PAIRING_BACKUP_KEY: u8 = linking::KIND_BACKUP_KEY;
/// The key id of the SAS MAC in a pairing channel.
pub const PAIRING_MAC_KEY_ID: &str = linking::MAC_KEY_ID;
/// The initial pairing plaintext (existing device to new device).
pub const PAIRING_HELLO: &[u8] = linking::HELLO;
/// A session is rotated after this many messages.
pub const ROTATE_AFTER_MESSAGES: u32 = 100;
/// How many items the API takes per call (`SendToDevice`, `ClaimKeys`, `QueryKeys`, OTKs).
pub const BATCH: usize = 100;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Parses an id the server gave us into its 16 UUID bytes.
pub fn uuid_bytes(id: &str) -> anyhow::Result<[u8; 16]> {
    Ok(*Uuid::parse_str(id).with_context(|| format!("not a UUID: {id:?}"))?.as_bytes())
}

/// A claimed or uploaded key in its wire form.
pub fn signed_key(key_id: u64, public_key: &[u8; 32], signature: &[u8; 64]) -> SignedKey {
    SignedKey { key_id, public_key: public_key.to_vec(), signature: signature.to_vec() }
}

/// A one-time key in its wire form.
pub fn one_time_key_proto(key: &SignedOneTimeKey) -> SignedKey {
    signed_key(key.key_id, &key.public_key, &key.signature)
}

/// A fallback key in its wire form.
pub fn fallback_key_proto(key: &SignedFallbackKey) -> SignedKey {
    signed_key(key.key_id, &key.public_key, &key.signature)
}

/// Reads a claimed key off the wire and checks its signature against the device's Ed25519 key.
pub fn verify_claimed(device_ed25519: &[u8], key: &SignedKey, fallback: bool) -> anyhow::Result<ClaimedKey> {
    let public_key: [u8; 32] =
        key.public_key.as_slice().try_into().map_err(|_| anyhow!("claimed key is not 32 bytes"))?;
    let signature: [u8; 64] =
        key.signature.as_slice().try_into().map_err(|_| anyhow!("claimed key signature is not 64 bytes"))?;
    Ok(if fallback {
        let key = SignedFallbackKey { key_id: key.key_id, public_key, signature };
        verify_fallback_key(device_ed25519, &key).context("fallback key signature")?;
        ClaimedKey::Fallback(key)
    } else {
        let key = SignedOneTimeKey { key_id: key.key_id, public_key, signature };
        verify_one_time_key(device_ed25519, &key).context("one-time key signature")?;
        ClaimedKey::OneTime(key)
    })
}

/// `n` one-time keys with valid signatures by `account`'s Ed25519 key over made-up Curve25519
/// keys, with ids from `first_id` on: for tests of server limits, which check signatures only
/// (vodozemac keeps at most 50 real unpublished keys).
pub fn made_up_one_time_keys(account: &DeviceAccount, first_id: u64, n: usize) -> Vec<SignedKey> {
    (0..n as u64)
        .map(|i| {
            let key_id = first_id + i;
            let mut public_key = [0u8; 32];
            public_key[..8].copy_from_slice(&key_id.to_be_bytes());
            public_key[8..24].copy_from_slice(Uuid::now_v7().as_bytes());
            let signature = account.sign(&kitsulan_crypto::device::one_time_key_payload(key_id, &public_key));
            signed_key(key_id, &public_key, &signature)
        })
        .collect()
}

/// Another person's (or our own other) device, as its verified certificate describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerDevice {
    /// The account it belongs to.
    pub account_id: String,
    /// Its device id.
    pub device_id: String,
    /// Its Ed25519 key (from the verified certificate).
    pub ed25519: [u8; 32],
    /// Its Curve25519 identity key (from the verified certificate).
    pub curve25519: [u8; 32],
}

/// What changed in the device lists after [`E2eeDevice::sync_devices`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceListChange {
    /// Devices seen for the first time.
    pub added: Vec<String>,
    /// Devices that are gone.
    pub removed: Vec<String>,
    /// `device_list_version` per account, as the server answered.
    pub versions: HashMap<String, u64>,
}

/// A Megolm message this device sent.
#[derive(Clone, Debug)]
pub struct SentMessage {
    /// The Megolm session it was encrypted with.
    pub session_id: String,
    /// Its index in that session.
    pub message_index: u32,
    /// The Megolm message itself.
    pub megolm: Vec<u8>,
    /// The to-device ciphertext it travelled in (`0x02 || …`).
    pub envelope: Vec<u8>,
    /// The devices it was sent to.
    pub recipients: Vec<String>,
}

/// A decrypted Megolm message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The sending account.
    pub sender_account_id: String,
    /// The sending device.
    pub sender_device_id: String,
    /// Its Megolm session.
    pub session_id: String,
    /// Its index in that session.
    pub message_index: u32,
    /// The plaintext.
    pub plaintext: Vec<u8>,
}

/// What one [`E2eeDevice::receive`] found in the inbox (everything it found was acked).
#[derive(Debug, Default)]
pub struct Inbox {
    /// Megolm messages decrypted, in inbox order.
    pub messages: Vec<Received>,
    /// Megolm sessions imported: (sending device, session id).
    pub room_keys: Vec<(String, String)>,
    /// Messages that could not be read: (message id, why).
    pub failures: Vec<(String, String)>,
    /// Verification messages (Olm payload [`OLM_VERIFICATION`]), in inbox order, for
    /// [`crate::verification`].
    pub verifications: Vec<VerificationIn>,
}

/// A verification message that arrived over Olm from a known device.
#[derive(Clone, Debug)]
pub struct VerificationIn {
    /// The device that sent it, as its certificate describes it.
    pub sender: PeerDevice,
    /// The message (`kitsulan_crypto::verification::VerificationMessage` bytes).
    pub bytes: Vec<u8>,
}

impl Inbox {
    /// The plaintexts of the decrypted messages, as text.
    pub fn texts(&self) -> Vec<String> {
        self.messages.iter().map(|m| String::from_utf8_lossy(&m.plaintext).into_owned()).collect()
    }
}

/// One signed-in device with its Olm account and the person's account key.
pub struct E2eeDevice {
    /// The signed-in client.
    pub client: Client,
    /// The device's Olm account (identity, one-time and fallback keys).
    pub account: DeviceAccount,
    /// The person's account key.
    pub account_key: AccountKey,
    certificate_uploaded: bool,
    /// Account keys pinned the first time each person was seen.
    pinned: HashMap<String, [u8; 32]>,
    /// Verified devices by id (our own other devices too, never this one).
    peers: HashMap<String, PeerDevice>,
    /// Device ids per account, in the server's order (oldest first).
    devices_by_account: HashMap<String, Vec<String>>,
    versions: HashMap<String, u64>,
    /// Olm sessions per peer device (a pair of devices may end up with more than one).
    olm: HashMap<String, Vec<OlmSession>>,
    /// The outbound session for Megolm messages sent as to-device messages.
    outbound: Outbound,
    /// The outbound session of each conversation, by conversation id.
    pub(crate) conversation_outbound: HashMap<String, Outbound>,
    /// The first session key of every outbound session made here (for the secrets scan).
    outbound_keys: Vec<Vec<u8>>,
    /// Inbound Megolm sessions by (sending device, session id).
    pub(crate) inbound: HashMap<(String, String), Inbound>,
    /// Conversation state kept by [`crate::conversations`] (members, replay record).
    pub(crate) conversations: crate::conversations::ConversationState,
    /// Ids of the to-device messages already taken (they may come both from `FetchToDevice`
    /// and from the gateway, and an Olm message decrypts only once).
    to_device_taken: HashSet<String>,
    /// Account keys this device verified with SAS (see [`crate::verification`]), by account.
    verified: HashMap<String, [u8; 32]>,
}

/// An outbound Megolm session and the devices it was shared with.
pub(crate) struct Outbound {
    pub(crate) session: OutboundGroupSession,
    pub(crate) shared_with: HashSet<String>,
}

impl Outbound {
    fn new() -> Self {
        Self { session: OutboundGroupSession::new(), shared_with: HashSet::new() }
    }
}

/// Which outbound session: the to-device one, or a conversation's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot<'a> {
    ToDevice,
    Conversation(&'a str),
}

/// An inbound Megolm session: who shared it, and for which conversation (`None`: a session for
/// to-device Megolm messages). A session is used only for what it was shared for.
pub(crate) struct Inbound {
    pub(crate) session: InboundGroupSession,
    pub(crate) sender_account_id: String,
    pub(crate) conversation_id: Option<String>,
}

impl std::fmt::Debug for E2eeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eeDevice")
            .field("account_id", &self.account_id())
            .field("device_id", &self.device_id())
            .field("account", &self.account)
            .field("outbound", &self.outbound.session)
            .finish_non_exhaustive()
    }
}

impl E2eeDevice {
    /// A device of a person whose account key already exists (a copy of it, or the key
    /// received over the pairing channel). `client` must be signed in.
    pub fn new(client: Client, account_key: AccountKey) -> Self {
        let outbound = Outbound::new();
        let first_key = outbound.session.session_key().to_vec();
        let mut device = Self {
            client,
            account: DeviceAccount::new(),
            account_key,
            certificate_uploaded: false,
            pinned: HashMap::new(),
            peers: HashMap::new(),
            devices_by_account: HashMap::new(),
            versions: HashMap::new(),
            olm: HashMap::new(),
            outbound,
            conversation_outbound: HashMap::new(),
            outbound_keys: vec![first_key],
            inbound: HashMap::new(),
            conversations: Default::default(),
            to_device_taken: HashSet::new(),
            verified: HashMap::new(),
        };
        let own = device.account_id().to_owned();
        device.pinned.insert(own, device.account_key.public_key());
        device
    }

    /// A person's first device: makes a new account key.
    pub fn first_device(client: Client) -> Self {
        Self::new(client, AccountKey::generate(&mut OsRng::new()))
    }

    /// Signs up `username` on a new connection to `url` and sets the device up as a person's
    /// first device: account key made and published, certificate and `one_time_keys` one-time
    /// keys (and a fallback key) uploaded.
    pub async fn sign_up(
        url: &str,
        username: &str,
        password: &str,
        device_name: &str,
        one_time_keys: usize,
    ) -> anyhow::Result<Self> {
        let mut client = Client::connect(url).await?;
        client
            .sign_up_with(SignUpRequest {
                username: username.to_owned(),
                password: password.to_owned(),
                device_name: device_name.to_owned(),
                ..SignUpRequest::default()
            })
            .await
            .with_context(|| format!("SignUp of {username}"))?;
        let mut device = Self::first_device(client);
        device.publish_account_key().await.context("PublishAccountKey")?;
        device.upload_keys(one_time_keys).await?;
        Ok(device)
    }

    /// Another device of `username`, signed in with the password on a new connection to `url`,
    /// holding `account_key` (as if linked), with its keys uploaded.
    pub async fn sign_in(
        url: &str,
        username: &str,
        password: &str,
        device_name: &str,
        account_key: AccountKey,
        one_time_keys: usize,
    ) -> anyhow::Result<Self> {
        let mut client = Client::connect(url).await?;
        client
            .sign_in_as(username, password, device_name)
            .await
            .with_context(|| format!("SignIn of {username}"))?;
        let mut device = Self::new(client, account_key);
        device.upload_keys(one_time_keys).await?;
        Ok(device)
    }

    /// A copy of the account key, for giving a second device of the same person its key
    /// without pairing (tests that are not about pairing).
    pub fn account_key_copy(&self) -> AccountKey {
        AccountKey::from_secret_bytes(&self.account_key.to_secret_bytes())
    }

    /// This device's account id.
    pub fn account_id(&self) -> &str {
        self.client.session().map_or("", |s| s.account_id.as_str())
    }

    /// This device's id.
    pub fn device_id(&self) -> &str {
        self.client.device_id()
    }

    /// `PublishAccountKey` with this person's account key (no `replace`).
    pub async fn publish_account_key(&self) -> Result<(), Status> {
        let request =
            PublishAccountKeyRequest { account_key: self.account_key.public_key().to_vec(), replace: false };
        self.client.keys().publish_account_key(request).await?;
        Ok(())
    }

    /// This device's certificate, signed now by the account key.
    pub fn certificate(&self) -> anyhow::Result<Vec<u8>> {
        let fields = self.account.certificate_fields(
            uuid_bytes(self.account_id())?,
            uuid_bytes(self.device_id())?,
            u64::try_from(now_ms() / 1000)?,
        );
        Ok(self.account_key.certify(&fields).to_bytes())
    }

    /// Uploads the certificate (first time only), `one_time_keys` new one-time keys and, on the
    /// first upload or when `new_fallback`, a new fallback key; marks them published.
    pub async fn upload_keys_with(
        &mut self,
        one_time_keys: usize,
        new_fallback: bool,
    ) -> anyhow::Result<UploadKeysResponse> {
        let device_certificate = if self.certificate_uploaded { Vec::new() } else { self.certificate()? };
        let otks = self.account.generate_one_time_keys(one_time_keys);
        let fallback = if new_fallback || !self.certificate_uploaded {
            self.account.generate_fallback_key()
        } else {
            None
        };
        let request = UploadKeysRequest {
            device_certificate,
            one_time_keys: otks.iter().map(one_time_key_proto).collect(),
            fallback_key: fallback.as_ref().map(fallback_key_proto),
        };
        let response = self.client.keys().upload_keys(request).await?.into_inner();
        self.account.mark_keys_as_published();
        self.certificate_uploaded = true;
        Ok(response)
    }

    /// [`E2eeDevice::upload_keys_with`] with a fallback key on the first upload only.
    pub async fn upload_keys(&mut self, one_time_keys: usize) -> anyhow::Result<UploadKeysResponse> {
        self.upload_keys_with(one_time_keys, false).await
    }

    /// `GetKeyCounts` for this device.
    pub async fn key_counts(&self) -> Result<GetKeyCountsResponse, Status> {
        Ok(self.client.keys().get_key_counts(GetKeyCountsRequest {}).await?.into_inner())
    }

    /// `QueryKeys`, unverified.
    pub async fn query_keys(&self, account_ids: &[&str]) -> Result<Vec<AccountKeys>, Status> {
        let request = QueryKeysRequest { account_ids: account_ids.iter().map(|s| (*s).to_owned()).collect() };
        Ok(self.client.keys().query_keys(request).await?.into_inner().accounts)
    }

    /// Queries the device lists of `account_ids` and verifies every device's certificate
    /// against the person's pinned account key (pinned now if first seen). Fails on any
    /// certificate that does not verify or does not name its account and device, and on an
    /// account key that changed. Forgets devices that are gone (and our Olm sessions to them).
    pub async fn sync_devices(&mut self, account_ids: &[&str]) -> anyhow::Result<DeviceListChange> {
        let mut change = DeviceListChange::default();
        for chunk in account_ids.chunks(BATCH) {
            let accounts = self.query_keys(chunk).await.context("QueryKeys")?;
            for asked in chunk {
                let Some(keys) = accounts.iter().find(|a| a.account_id == *asked) else {
                    bail!("QueryKeys left out account {asked}");
                };
                self.take_device_list(keys, &mut change)?;
            }
        }
        Ok(change)
    }

    fn take_device_list(&mut self, keys: &AccountKeys, change: &mut DeviceListChange) -> anyhow::Result<()> {
        let account_id = keys.account_id.clone();
        change.versions.insert(account_id.clone(), keys.device_list_version);
        self.versions.insert(account_id.clone(), keys.device_list_version);
        let mut listed = Vec::new();
        if !keys.account_key.is_empty() {
            let published: [u8; 32] =
                keys.account_key.as_slice().try_into().map_err(|_| anyhow!("account key is not 32 bytes"))?;
            let pinned = *self.pinned.entry(account_id.clone()).or_insert(published);
            if pinned != published {
                // A verification vouched for the pinned key only: a changed key is unverified.
                self.verified.remove(&account_id);
            }
            ensure!(pinned == published, "the account key of {account_id} changed: warn, do not trust");
            let account_bytes = uuid_bytes(&account_id)?;
            for device in &keys.devices {
                let cert = verify_device_certificate(&device.certificate, &pinned)
                    .with_context(|| format!("certificate of device {}", device.device_id))?;
                ensure!(
                    cert.fields.account_id == account_bytes
                        && cert.fields.device_id == uuid_bytes(&device.device_id)?,
                    "the certificate of device {} names another account or device",
                    device.device_id
                );
                ensure!(
                    device.ed25519 == cert.fields.device_ed25519
                        && device.curve25519 == cert.fields.device_curve25519,
                    "the keys listed for device {} are not the ones its certificate binds",
                    device.device_id
                );
                if device.device_id == self.device_id() {
                    ensure!(
                        cert.fields.device_ed25519 == self.account.ed25519_key(),
                        "the server lists other keys for this very device"
                    );
                    continue;
                }
                listed.push(device.device_id.clone());
                let peer = PeerDevice {
                    account_id: account_id.clone(),
                    device_id: device.device_id.clone(),
                    ed25519: cert.fields.device_ed25519,
                    curve25519: cert.fields.device_curve25519,
                };
                match self.peers.get(&device.device_id) {
                    None => {
                        change.added.push(device.device_id.clone());
                        self.peers.insert(device.device_id.clone(), peer);
                    }
                    Some(known) => {
                        ensure!(*known == peer, "device {} changed its identity keys", device.device_id)
                    }
                }
            }
        } else {
            ensure!(keys.devices.is_empty(), "account {account_id} lists devices but no account key");
        }
        let before = self.devices_by_account.insert(account_id, listed.clone()).unwrap_or_default();
        for gone in before.into_iter().filter(|d| !listed.contains(d)) {
            self.peers.remove(&gone);
            self.olm.remove(&gone);
            change.removed.push(gone);
        }
        Ok(())
    }

    /// The verified devices of `account_ids` (without this one), in the server's order.
    pub fn devices_of(&self, account_ids: &[&str]) -> Vec<String> {
        account_ids
            .iter()
            .flat_map(|a| self.devices_by_account.get(*a).cloned().unwrap_or_default())
            .collect()
    }

    /// The device list version the server last reported for `account_id`.
    pub fn device_list_version(&self, account_id: &str) -> Option<u64> {
        self.versions.get(account_id).copied()
    }

    /// A verified device, if known.
    pub fn peer(&self, device_id: &str) -> Option<&PeerDevice> {
        self.peers.get(device_id)
    }

    /// Whether this device has an Olm session with `device_id`.
    pub fn has_olm_session(&self, device_id: &str) -> bool {
        self.olm.get(device_id).is_some_and(|s| !s.is_empty())
    }

    /// Opens an Olm session with each of `device_ids` that has none yet: claims a key per
    /// device and checks its signature against the device's certified Ed25519 key.
    pub async fn ensure_olm_sessions(&mut self, device_ids: &[String]) -> anyhow::Result<()> {
        let missing: Vec<String> = device_ids.iter().filter(|d| !self.has_olm_session(d)).cloned().collect();
        for chunk in missing.chunks(BATCH) {
            let claimed = self
                .client
                .keys()
                .claim_keys(ClaimKeysRequest { device_ids: chunk.to_vec() })
                .await
                .context("ClaimKeys")?
                .into_inner()
                .keys;
            for device_id in chunk {
                let peer =
                    self.peers.get(device_id).with_context(|| format!("unknown device {device_id}"))?;
                let claim = claimed
                    .iter()
                    .find(|c| &c.device_id == device_id)
                    .with_context(|| format!("ClaimKeys gave no key for device {device_id}"))?;
                let key = claim.key.as_ref().context("ClaimKeys answered without a key")?;
                let key = verify_claimed(&peer.ed25519, key, claim.fallback)?;
                let session = self.account.create_outbound_session(&peer.ed25519, &peer.curve25519, &key)?;
                self.olm.entry(device_id.clone()).or_default().push(session);
            }
        }
        Ok(())
    }

    /// Olm-encrypts `plaintext` for `device_id` (a session must exist) into a to-device
    /// message with a fresh id.
    pub fn olm_message(
        &mut self,
        device_id: &str,
        plaintext: &[u8],
    ) -> anyhow::Result<OutgoingToDeviceMessage> {
        Ok(OutgoingToDeviceMessage {
            message_id: Uuid::now_v7().to_string(),
            recipient_device_id: device_id.to_owned(),
            ciphertext: self.olm_encrypt(device_id, plaintext)?,
        })
    }

    /// Olm-encrypts `plaintext` for `device_id` (a session must exist, or one the peer opened
    /// to us): `0x01 || Olm message`, the ciphertext of a to-device message and the payload of
    /// a call's OFFER, ANSWER and ICE_CANDIDATE (`kitsulan_e2e::call_peer`).
    pub fn olm_encrypt(&mut self, device_id: &str, plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let session = self
            .olm
            .get_mut(device_id)
            .and_then(|s| s.first_mut())
            .with_context(|| format!("no Olm session with {device_id}"))?;
        let mut ciphertext = vec![ENVELOPE_OLM];
        ciphertext.extend_from_slice(&session.encrypt(plaintext)?);
        Ok(ciphertext)
    }

    /// Decrypts `0x01 || Olm message` from `sender_device_id` of `sender_account_id` (looking
    /// the device up first if it is new to us, and opening the inbound session a pre-key
    /// message starts): the counterpart of [`Self::olm_encrypt`].
    pub async fn olm_decrypt(
        &mut self,
        sender_account_id: &str,
        sender_device_id: &str,
        ciphertext: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        let peer = self.sender(sender_account_id, sender_device_id).await?;
        match ciphertext.split_first() {
            Some((&ENVELOPE_OLM, olm)) => self.decrypt_olm(&peer, olm),
            _ => bail!("not an Olm envelope"),
        }
    }

    /// The verified device `device_id`, which must belong to `account_id`; looked up with
    /// `QueryKeys` if it is new to us.
    async fn sender(&mut self, account_id: &str, device_id: &str) -> anyhow::Result<PeerDevice> {
        if !self.peers.contains_key(device_id) {
            self.sync_devices(&[account_id]).await?;
        }
        let peer = self
            .peers
            .get(device_id)
            .cloned()
            .with_context(|| format!("unknown sending device {device_id}"))?;
        ensure!(peer.account_id == account_id, "device {device_id} is not of the account named");
        Ok(peer)
    }

    /// The account key pinned for `account_id` (the first one seen, or our own).
    pub fn pinned_account_key(&self, account_id: &str) -> Option<[u8; 32]> {
        self.pinned.get(account_id).copied()
    }

    /// Records `account_key` as verified for `account_id` (after a SAS verification).
    pub fn mark_verified(&mut self, account_id: &str, account_key: [u8; 32]) {
        self.verified.insert(account_id.to_owned(), account_key);
    }

    /// Whether `account_id` was verified with the account key pinned for it now.
    pub fn is_verified(&self, account_id: &str) -> bool {
        self.verified.get(account_id).is_some_and(|k| self.pinned.get(account_id) == Some(k))
    }

    /// Sends each `(device, verification message)` as an Olm to-device message
    /// (`0x03 || message`), opening Olm sessions where needed, all in one `SendToDevice`
    /// batch so each device gets its messages in order.
    pub async fn send_verification(&mut self, messages: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        let devices: Vec<String> = messages.iter().map(|(d, _)| d.clone()).collect();
        self.ensure_olm_sessions(&devices).await?;
        let mut out = Vec::with_capacity(messages.len());
        for (device, bytes) in messages {
            let mut plaintext = vec![OLM_VERIFICATION];
            plaintext.extend_from_slice(bytes);
            out.push(self.olm_message(device, &plaintext)?);
        }
        self.send_to_device(out).await.context("SendToDevice (verification)")
    }

    /// `SendToDevice` in batches of [`BATCH`].
    pub async fn send_to_device(&self, messages: Vec<OutgoingToDeviceMessage>) -> Result<(), Status> {
        for chunk in messages.chunks(BATCH) {
            self.client.to_device().send_to_device(SendToDeviceRequest { messages: chunk.to_vec() }).await?;
        }
        Ok(())
    }

    /// The current outbound Megolm session's id.
    pub fn outbound_session_id(&self) -> String {
        self.outbound.session.session_id()
    }

    /// The devices the current outbound session was shared with.
    pub fn shared_with(&self) -> Vec<String> {
        let mut v: Vec<String> = self.outbound.shared_with.iter().cloned().collect();
        v.sort();
        v
    }

    /// Starts a new outbound Megolm session (shared with nobody yet).
    pub fn rotate(&mut self) {
        self.rotate_slot(Slot::ToDevice);
    }

    /// The outbound session of `slot` (a conversation's is made on first use).
    pub(crate) fn outbound_mut(&mut self, slot: Slot<'_>) -> &mut Outbound {
        match slot {
            Slot::ToDevice => &mut self.outbound,
            Slot::Conversation(id) => {
                if !self.conversation_outbound.contains_key(id) {
                    self.rotate_slot(slot);
                }
                self.conversation_outbound.entry(id.to_owned()).or_insert_with(Outbound::new)
            }
        }
    }

    /// Starts a new outbound session for `slot`. For a conversation, this device also keeps
    /// the inbound half, so it reads its own messages in the history.
    pub(crate) fn rotate_slot(&mut self, slot: Slot<'_>) {
        let fresh = Outbound::new();
        let key = fresh.session.session_key();
        self.outbound_keys.push(key.to_vec());
        match slot {
            Slot::ToDevice => self.outbound = fresh,
            Slot::Conversation(id) => {
                if let Ok(session) = InboundGroupSession::from_session_key(&key) {
                    let inbound = Inbound {
                        session,
                        sender_account_id: self.account_id().to_owned(),
                        conversation_id: Some(id.to_owned()),
                    };
                    self.inbound.insert((self.device_id().to_owned(), fresh.session.session_id()), inbound);
                }
                self.conversation_outbound.insert(id.to_owned(), fresh);
            }
        }
    }

    /// Shares the current outbound session's key (at its current index) over Olm with each of
    /// `device_ids` it was not shared with yet; returns how many got it.
    pub async fn share_room_key(&mut self, device_ids: &[String]) -> anyhow::Result<usize> {
        self.share_slot_key(Slot::ToDevice, device_ids).await
    }

    /// [`E2eeDevice::share_room_key`] for the outbound session of `slot`. A conversation's key
    /// travels as `0x02 || conversation id || session key`, so receivers bind it to that
    /// conversation.
    pub(crate) async fn share_slot_key(
        &mut self,
        slot: Slot<'_>,
        device_ids: &[String],
    ) -> anyhow::Result<usize> {
        let outbound = self.outbound_mut(slot);
        let targets: Vec<String> =
            device_ids.iter().filter(|d| !outbound.shared_with.contains(*d)).cloned().collect();
        let plaintext = match slot {
            Slot::ToDevice => {
                let mut plaintext = vec![OLM_ROOM_KEY];
                plaintext.extend_from_slice(&outbound.session.session_key());
                plaintext
            }
            Slot::Conversation(id) => {
                let mut plaintext = vec![OLM_CONVERSATION_KEY];
                plaintext.extend_from_slice(&uuid_bytes(id)?);
                plaintext.extend_from_slice(&outbound.session.session_key());
                plaintext
            }
        };
        if targets.is_empty() {
            return Ok(0);
        }
        self.ensure_olm_sessions(&targets).await?;
        let messages =
            targets.iter().map(|d| self.olm_message(d, &plaintext)).collect::<anyhow::Result<Vec<_>>>()?;
        self.send_to_device(messages).await.context("SendToDevice (room keys)")?;
        self.outbound_mut(slot).shared_with.extend(targets.iter().cloned());
        Ok(targets.len())
    }

    /// Encrypts `plaintext` with the current outbound session (shared first with whichever of
    /// `recipients` lack it) and sends it to every one of `recipients`.
    pub async fn send_megolm(
        &mut self,
        plaintext: &[u8],
        recipients: &[String],
    ) -> anyhow::Result<SentMessage> {
        self.share_room_key(recipients).await?;
        let session_id = self.outbound.session.session_id();
        let message_index = self.outbound.session.message_index();
        let megolm = self.outbound.session.encrypt(plaintext);
        let envelope = megolm_envelope(&session_id, &megolm)?;
        let messages = recipients
            .iter()
            .map(|d| OutgoingToDeviceMessage {
                message_id: Uuid::now_v7().to_string(),
                recipient_device_id: d.clone(),
                ciphertext: envelope.clone(),
            })
            .collect();
        self.send_to_device(messages).await.context("SendToDevice (Megolm)")?;
        Ok(SentMessage { session_id, message_index, megolm, envelope, recipients: recipients.to_vec() })
    }

    /// What an app does to post into a conversation of `account_ids` (their devices and our
    /// own other devices): refresh the device lists, rotate when the recipients changed since
    /// the session was shared (or after [`ROTATE_AFTER_MESSAGES`]), share, encrypt, send.
    pub async fn send_to_accounts(
        &mut self,
        plaintext: &[u8],
        account_ids: &[&str],
    ) -> anyhow::Result<SentMessage> {
        self.sync_devices(account_ids).await?;
        let recipients = self.devices_of(account_ids);
        let now: HashSet<String> = recipients.iter().cloned().collect();
        if (!self.outbound.shared_with.is_empty() && now != self.outbound.shared_with)
            || self.outbound.session.message_index() >= ROTATE_AFTER_MESSAGES
        {
            self.rotate();
        }
        self.send_megolm(plaintext, &recipients).await
    }

    /// `FetchToDevice` once (up to `limit`).
    pub async fn fetch(&self, limit: u32) -> Result<(Vec<ToDeviceMessage>, bool), Status> {
        let response =
            self.client.to_device().fetch_to_device(FetchToDeviceRequest { limit }).await?.into_inner();
        Ok((response.messages, response.more))
    }

    /// `AckToDevice`.
    pub async fn ack(&self, message_ids: Vec<String>) -> Result<(), Status> {
        self.client.to_device().ack_to_device(AckToDeviceRequest { message_ids }).await?;
        Ok(())
    }

    /// Fetches the whole inbox, decrypts what it can (Olm room-key shares are imported, Megolm
    /// messages decrypted), acks everything fetched, and reports.
    pub async fn receive(&mut self) -> anyhow::Result<Inbox> {
        let mut inbox = Inbox::default();
        loop {
            let (messages, more) = self.fetch(500).await.context("FetchToDevice")?;
            if messages.is_empty() {
                break;
            }
            let ids = messages.iter().map(|m| m.message_id.clone()).collect();
            self.take_all(&messages, &mut inbox).await;
            self.ack(ids).await.context("AckToDevice")?;
            if !more {
                break;
            }
        }
        Ok(inbox)
    }

    /// Takes to-device messages that arrived some other way (over the gateway, see
    /// [`crate::gateway`]) as [`E2eeDevice::receive`] takes those it fetches: room keys are
    /// imported, Megolm messages decrypted. A message already taken (by id) is skipped; one
    /// that failed is tried again when offered again.
    pub async fn receive_to_device(&mut self, messages: &[ToDeviceMessage]) -> Inbox {
        let mut inbox = Inbox::default();
        self.take_all(messages, &mut inbox).await;
        inbox
    }

    async fn take_all(&mut self, messages: &[ToDeviceMessage], inbox: &mut Inbox) {
        for message in messages {
            if !self.to_device_taken.insert(message.message_id.clone()) {
                continue;
            }
            if let Err(e) = self.take(message, inbox).await {
                // Not taken: offered again, it is tried again (the failure may have been the
                // server's being away while the sender's devices were looked up).
                self.to_device_taken.remove(&message.message_id);
                inbox.failures.push((message.message_id.clone(), format!("{e:#}")));
            }
        }
    }

    async fn take(&mut self, message: &ToDeviceMessage, inbox: &mut Inbox) -> anyhow::Result<()> {
        let sender = message.sender_device_id.clone();
        let peer = self.sender(&message.sender_account_id, &sender).await?;
        match message.ciphertext.split_first() {
            Some((&ENVELOPE_OLM, olm)) => {
                let plaintext = self.decrypt_olm(&peer, olm)?;
                match plaintext.split_first() {
                    Some((&OLM_ROOM_KEY, key)) => {
                        let session = InboundGroupSession::from_session_key(key)?;
                        let session_id = session.session_id();
                        let inbound = Inbound {
                            session,
                            sender_account_id: peer.account_id.clone(),
                            conversation_id: None,
                        };
                        self.inbound.insert((sender.clone(), session_id.clone()), inbound);
                        inbox.room_keys.push((sender, session_id));
                        Ok(())
                    }
                    Some((&OLM_VERIFICATION, bytes)) => {
                        inbox.verifications.push(VerificationIn { sender: peer, bytes: bytes.to_vec() });
                        Ok(())
                    }
                    Some((&OLM_CONVERSATION_KEY, rest)) => {
                        let (conversation, key) =
                            rest.split_at_checked(16).context("truncated conversation room key")?;
                        let conversation_id = Uuid::from_slice(conversation)?.to_string();
                        let session = InboundGroupSession::from_session_key(key)?;
                        let session_id = session.session_id();
                        let inbound = Inbound {
                            session,
                            sender_account_id: peer.account_id.clone(),
                            conversation_id: Some(conversation_id),
                        };
                        self.inbound.insert((sender.clone(), session_id.clone()), inbound);
                        inbox.room_keys.push((sender, session_id));
                        Ok(())
                    }
                    _ => bail!("unknown Olm payload"),
                }
            }
            Some((&ENVELOPE_MEGOLM, _)) => {
                let received = self.decrypt_megolm_envelope(&peer, &message.ciphertext)?;
                inbox.messages.push(received);
                Ok(())
            }
            _ => bail!("unknown envelope"),
        }
    }

    fn decrypt_olm(&mut self, peer: &PeerDevice, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let sessions = self.olm.entry(peer.device_id.clone()).or_default();
        if is_pre_key_message(message) {
            if let Some(session) = sessions.iter_mut().find(|s| s.matches_pre_key_message(message)) {
                return Ok(session.decrypt(message)?);
            }
            let (session, plaintext) = self.account.create_inbound_session(&peer.curve25519, message)?;
            sessions.push(session);
            return Ok(plaintext);
        }
        for session in sessions.iter_mut() {
            if let Ok(plaintext) = session.decrypt(message) {
                return Ok(plaintext);
            }
        }
        bail!("no Olm session with {} decrypts this message", peer.device_id)
    }

    /// Decrypts a Megolm envelope (`0x02 || …`) sent by `peer`, with a session that very
    /// device shared with us.
    pub fn decrypt_megolm_envelope(
        &mut self,
        peer: &PeerDevice,
        envelope: &[u8],
    ) -> anyhow::Result<Received> {
        let (session_id, megolm) = parse_megolm_envelope(envelope)?;
        let inbound = self
            .inbound
            .get_mut(&(peer.device_id.clone(), session_id.clone()))
            .with_context(|| format!("no inbound session {session_id} from device {}", peer.device_id))?;
        ensure!(inbound.conversation_id.is_none(), "session {session_id} was shared for a conversation");
        let decrypted = inbound.session.decrypt(megolm)?;
        Ok(Received {
            sender_account_id: peer.account_id.clone(),
            sender_device_id: peer.device_id.clone(),
            session_id,
            message_index: decrypted.message_index,
            plaintext: decrypted.plaintext,
        })
    }

    /// Tries every inbound session this device holds, whoever shared it, on a Megolm message:
    /// what a device that kept its old keys could do with a ciphertext it got hold of.
    pub fn decrypt_with_any_session(&mut self, megolm: &[u8]) -> Option<Vec<u8>> {
        self.inbound.values_mut().find_map(|s| s.session.decrypt_history(megolm).ok().map(|d| d.plaintext))
    }

    /// The ids of the inbound sessions this device holds.
    pub fn inbound_session_ids(&self) -> Vec<String> {
        self.inbound.keys().map(|(_, id)| id.clone()).collect()
    }

    /// Private material of this device a server must never hold, labelled: the account key
    /// secret, the ratchet of every Megolm session key made or received here (session keys as
    /// shared and as exported), this device's pickle and the key it was pickled under.
    pub fn secrets(&self) -> Vec<(String, Vec<u8>)> {
        let who = format!("{}…", self.device_id().get(..13).unwrap_or(""));
        let mut out =
            vec![(format!("account key secret ({who})"), self.account_key.to_secret_bytes().to_vec())];
        for key in &self.outbound_keys {
            // Session key v2: version (1) || index (4) || ratchet (128) || public key (32) || signature.
            out.push((format!("outbound Megolm session key ({who})"), key.clone()));
            if let Some(ratchet) = key.get(5..133) {
                out.push((format!("outbound Megolm ratchet ({who})"), ratchet.to_vec()));
            }
        }
        for ((from, id), inbound) in &self.inbound {
            let exported = inbound.session.export_at_first_known_index();
            // Exported key v1: version (1) || index (4) || ratchet (128) || public key (32).
            if let Some(ratchet) = exported.get(5..133) {
                out.push((format!("inbound Megolm ratchet {id} from {from} ({who})"), ratchet.to_vec()));
            }
        }
        let pickle_key = PickleKey::generate(&mut OsRng::new());
        out.push((format!("device pickle ({who})"), self.account.pickle(&pickle_key).into_bytes()));
        out.push((format!("pickle key ({who})"), pickle_key.as_bytes().to_vec()));
        out
    }
}

/// `0x02 || len || session id || megolm`.
pub fn megolm_envelope(session_id: &str, megolm: &[u8]) -> anyhow::Result<Vec<u8>> {
    let len = u8::try_from(session_id.len()).context("session id too long")?;
    let mut out = vec![ENVELOPE_MEGOLM, len];
    out.extend_from_slice(session_id.as_bytes());
    out.extend_from_slice(megolm);
    Ok(out)
}

/// The session id and Megolm message of a [`megolm_envelope`].
pub fn parse_megolm_envelope(envelope: &[u8]) -> anyhow::Result<(String, &[u8])> {
    let [ENVELOPE_MEGOLM, len, rest @ ..] = envelope else { bail!("not a Megolm envelope") };
    let len = usize::from(*len);
    ensure!(rest.len() > len, "truncated Megolm envelope");
    let (id, megolm) = rest.split_at(len);
    Ok((std::str::from_utf8(id)?.to_owned(), megolm))
}

// ---------------------------------------------------------------------------------------------
// Pairing: I/O around `kitsulan_crypto::linking`, which holds the steps.

/// Posts every payload the flow queued, in order, with `secret` (empty for the existing device).
async fn post_queued(
    client: &Client,
    pairing_id: &str,
    secret: &str,
    mut next: impl FnMut() -> Option<Vec<u8>>,
) -> anyhow::Result<Option<u32>> {
    let mut last = None;
    while let Some(payload) = next() {
        let request = PostPairingMessageRequest {
            pairing_id: pairing_id.to_owned(),
            secret: secret.to_owned(),
            payload,
        };
        last = Some(
            client
                .pairing()
                .post_pairing_message(request)
                .await
                .context("PostPairingMessage")?
                .into_inner()
                .index,
        );
    }
    Ok(last)
}

/// The new device's side of a pairing: no session until approved.
pub struct NewDeviceLink {
    /// The connection (not signed in until [`NewDeviceLink::finish`]).
    pub client: Client,
    /// The pairing id it chose (UUIDv7).
    pub pairing_id: String,
    /// What `CreatePairing` answered: PIN, secret, expiry.
    pub created: CreatePairingResponse,
    /// What the QR code shows (`KITSULAN-PAIR:…`).
    pub qr_text: String,
    /// The public key it registered.
    pub public_key: [u8; 32],
    flow: NewDeviceFlow,
    after_index: u32,
}

impl std::fmt::Debug for NewDeviceLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDeviceLink").field("pairing_id", &self.pairing_id).finish_non_exhaustive()
    }
}

impl NewDeviceLink {
    /// Chooses a pairing id and an ephemeral key and calls `CreatePairing`.
    pub async fn open(client: Client, server_url: &str) -> anyhow::Result<Self> {
        let id = Uuid::now_v7();
        let flow = NewDeviceFlow::new(*id.as_bytes(), server_url)?;
        let public_key = flow.public_key();
        let created = client
            .pairing()
            .create_pairing(CreatePairingRequest {
                pairing_id: id.to_string(),
                public_key: public_key.to_vec(),
            })
            .await
            .context("CreatePairing")?
            .into_inner();
        let qr_text = flow.qr().to_text();
        Ok(Self { client, pairing_id: id.to_string(), created, qr_text, public_key, flow, after_index: 0 })
    }

    /// The secret `CreatePairing` gave.
    pub fn secret(&self) -> &str {
        &self.created.secret
    }

    /// `GetPairing` with our secret and `after_index` (raw; does not move our cursor).
    pub async fn get_raw(&self, after_index: u32) -> Result<GetPairingResponse, Status> {
        let request = GetPairingRequest {
            pairing_id: self.pairing_id.clone(),
            secret: self.created.secret.clone(),
            after_index,
        };
        Ok(self.client.pairing().get_pairing(request).await?.into_inner())
    }

    /// `GetPairing` for messages after the last one read, fed to the flow, and what it queued
    /// posted. Returns the response and the plaintexts after HELLO. A message out of turn, a
    /// bad key or MAC cancels the pairing and is an error (and so is every later call).
    pub async fn poll(&mut self) -> anyhow::Result<(GetPairingResponse, Vec<Vec<u8>>)> {
        if let Some(why) = self.flow.cancelled() {
            bail!(why);
        }
        let response = self.get_raw(self.after_index).await.context("GetPairing (new device)")?;
        let mut plaintexts = Vec::new();
        for message in &response.messages {
            ensure!(message.index > self.after_index, "GetPairing repeated message {}", message.index);
            self.after_index = message.index;
            let opening = self.flow.check_code().is_none();
            match self.flow.receive(&message.payload) {
                Ok(plaintext) if !opening => plaintexts.push(plaintext.to_vec()),
                Ok(_) => {}
                Err(why) => {
                    self.cancel().await;
                    bail!(why);
                }
            }
            self.post_queued().await?;
        }
        Ok((response, plaintexts))
    }

    async fn post_queued(&mut self) -> anyhow::Result<Option<u32>> {
        let flow = &mut self.flow;
        post_queued(&self.client, &self.pairing_id, &self.created.secret, || flow.take_outgoing()).await
    }

    /// `CancelPairing` with our secret (best effort).
    pub async fn cancel(&self) {
        let request =
            CancelPairingRequest { pairing_id: self.pairing_id.clone(), secret: self.created.secret.clone() };
        let _ = self.client.pairing().cancel_pairing(request).await;
    }

    /// The check code, once the channel is open (the emoji are what the person compares).
    pub fn check_code(&self) -> Option<CheckCode> {
        self.flow.check_code()
    }

    /// The emoji and decimals, once both SAS keys are known.
    pub fn short_auth_string(&self) -> Option<ShortAuthString> {
        self.flow.short_auth_string()
    }

    /// The person saw the same emoji on both screens: sends our SAS MAC.
    pub async fn confirm(&mut self) -> anyhow::Result<()> {
        if let Some(why) = self.flow.cancelled() {
            bail!(why);
        }
        self.flow.confirm().context("confirming the emoji (not yet, or twice)")?;
        self.post_queued().await?;
        Ok(())
    }

    /// Encrypts and posts a channel message with our secret (raw: any bytes, outside the
    /// flow's steps; for tests that play a misbehaving device).
    pub async fn post(&mut self, plaintext: &[u8]) -> anyhow::Result<u32> {
        let payload = self.flow.encrypt_raw(plaintext).context("the channel is not open")?;
        let mut payload = Some(payload);
        post_queued(&self.client, &self.pairing_id, &self.created.secret, || payload.take())
            .await?
            .context("nothing posted")
    }

    /// After approval: reads the account key from the channel and the session from the
    /// response, and signs the client in with it. (The server reports the state as of after
    /// the call: the response that carries the session already says COMPLETED.)
    pub async fn finish(&mut self) -> anyhow::Result<(Session, AccountKey)> {
        let (response, _) = self.poll().await?;
        ensure!(
            matches!(response.state(), PairingState::Approved | PairingState::Completed),
            "pairing state {:?}, expected APPROVED or COMPLETED",
            response.state()
        );
        let session = response.session.context("no session after approval")?;
        let account_key = self.flow.take_account_key().context("no account key came through the channel")?;
        self.client.set_session(Some(session.clone()));
        Ok((session, account_key))
    }

    /// The key-backup key the existing device sent after the account key, if it sent one
    /// (taken once; read it after [`NewDeviceLink::finish`]).
    pub fn take_backup_key(&mut self) -> Option<[u8; 32]> {
        self.flow.take_backup_key().map(|key| *key)
    }
}

/// The existing device's side of a pairing.
pub struct ExistingDeviceLink {
    /// The pairing.
    pub pairing_id: String,
    flow: ExistingDeviceFlow,
    after_index: u32,
}

impl std::fmt::Debug for ExistingDeviceLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExistingDeviceLink").field("pairing_id", &self.pairing_id).finish_non_exhaustive()
    }
}

impl ExistingDeviceLink {
    /// Opens the channel to the new device's `public_key` and posts the initial message
    /// (which takes the pairing for `device`).
    pub async fn connect(device: &Client, pairing_id: &str, public_key: &[u8]) -> anyhow::Result<Self> {
        let flow = ExistingDeviceFlow::connect(uuid_bytes(pairing_id)?, public_key)?;
        let mut link = Self { pairing_id: pairing_id.to_owned(), flow, after_index: 0 };
        link.post_queued(device).await?;
        Ok(link)
    }

    async fn post_queued(&mut self, device: &Client) -> anyhow::Result<Option<u32>> {
        let flow = &mut self.flow;
        post_queued(device, &self.pairing_id, "", || flow.take_outgoing()).await
    }

    /// The check code (the emoji are what the person compares).
    pub fn check_code(&self) -> CheckCode {
        self.flow.check_code()
    }

    /// The emoji and decimals, once the new device revealed its SAS key.
    pub fn short_auth_string(&self) -> Option<ShortAuthString> {
        self.flow.short_auth_string()
    }

    /// `GetPairing` as the signed-in device, fed to the flow, and what it queued posted.
    /// Returns the response and the plaintexts. A message out of turn, a key that does not
    /// match its commitment, or a bad MAC cancels the pairing and is an error (and so is every
    /// later call).
    pub async fn poll(&mut self, device: &Client) -> anyhow::Result<(GetPairingResponse, Vec<Vec<u8>>)> {
        if let Some(why) = self.flow.cancelled() {
            bail!(why);
        }
        let request = GetPairingRequest {
            pairing_id: self.pairing_id.clone(),
            secret: String::new(),
            after_index: self.after_index,
        };
        let response =
            device.pairing().get_pairing(request).await.context("GetPairing (existing device)")?.into_inner();
        let mut plaintexts = Vec::new();
        for message in &response.messages {
            ensure!(message.index > self.after_index, "GetPairing repeated message {}", message.index);
            self.after_index = message.index;
            match self.flow.receive(&message.payload) {
                Ok(plaintext) => plaintexts.push(plaintext.to_vec()),
                Err(why) => {
                    self.cancel(device).await;
                    bail!(why);
                }
            }
            self.post_queued(device).await?;
        }
        Ok((response, plaintexts))
    }

    /// The person saw the same emoji on both screens: sends our SAS MAC.
    pub async fn confirm(&mut self, device: &Client) -> anyhow::Result<()> {
        if let Some(why) = self.flow.cancelled() {
            bail!(why);
        }
        self.flow.confirm().context("confirming the emoji (not yet, or twice)")?;
        self.post_queued(device).await?;
        Ok(())
    }

    /// Whether both sides confirmed and the new device's MAC verified: only then may the
    /// account key go.
    pub fn verified(&self) -> bool {
        self.flow.verified()
    }

    /// Encrypts and posts a channel message (raw: any bytes, outside the flow's steps; for
    /// tests that play a misbehaving device).
    pub async fn post(&mut self, device: &Client, plaintext: &[u8]) -> anyhow::Result<u32> {
        let payload = self.flow.encrypt_raw(plaintext).context("the channel is closed")?;
        let mut payload = Some(payload);
        post_queued(device, &self.pairing_id, "", || payload.take()).await?.context("nothing posted")
    }

    /// Sends the account key secret inside the channel; refused unless
    /// [`ExistingDeviceLink::verified`].
    pub async fn send_account_key(
        &mut self,
        device: &Client,
        account_key: &AccountKey,
    ) -> anyhow::Result<()> {
        if let Some(why) = self.flow.cancelled() {
            bail!(why);
        }
        self.flow.send_account_key(account_key).context(
            "the account key goes only after the person confirmed here and the new device's MAC verified",
        )?;
        self.post_queued(device).await.context("PostPairingMessage (account key)")?;
        Ok(())
    }

    /// Sends the key-backup key inside the channel (optional), after the account key.
    pub async fn send_backup_key(&mut self, device: &Client, backup_key: &[u8; 32]) -> anyhow::Result<()> {
        self.flow
            .send_backup_key(backup_key)
            .context("the backup key goes only after the account key, once")?;
        self.post_queued(device).await.context("PostPairingMessage (backup key)")?;
        Ok(())
    }

    /// `ApprovePairing`; returns the new device's id.
    pub async fn approve(&self, device: &Client, device_name: &str) -> Result<String, Status> {
        let request = ApprovePairingRequest {
            pairing_id: self.pairing_id.clone(),
            device_name: device_name.to_owned(),
        };
        Ok(device.pairing().approve_pairing(request).await?.into_inner().device_id)
    }

    /// `CancelPairing` (best effort).
    pub async fn cancel(&self, device: &Client) {
        let request = CancelPairingRequest { pairing_id: self.pairing_id.clone(), secret: String::new() };
        let _ = device.pairing().cancel_pairing(request).await;
    }
}

/// `FindPairing` with a typed PIN.
pub async fn find_pairing(device: &Client, pin: &str) -> Result<FindPairingResponse, Status> {
    Ok(device.pairing().find_pairing(FindPairingRequest { pin: pin.to_owned() }).await?.into_inner())
}

/// A device linked by pairing, with what both screens showed.
#[derive(Debug)]
pub struct Linked {
    /// The new device, signed in with the session it got, holding the account key, with its
    /// keys uploaded.
    pub device: E2eeDevice,
    /// The check code on the new device's screen.
    pub new_device_code: CheckCode,
    /// The check code on the existing device's screen.
    pub existing_device_code: CheckCode,
    /// The emoji (and decimals) on the new device's screen.
    pub new_device_sas: ShortAuthString,
    /// The emoji (and decimals) on the existing device's screen.
    pub existing_device_sas: ShortAuthString,
    /// The device id `ApprovePairing` returned.
    pub approved_device_id: String,
    /// The pairing.
    pub pairing_id: String,
}

/// How the existing device learns the pairing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkBy {
    /// The person types the PIN the new device shows.
    Pin,
    /// The existing device scans the QR code the new device shows.
    Qr,
}

/// Links a new device (`new_client`, not signed in) to `existing`'s account by PIN.
pub async fn link_new_device_by_pin(
    existing: &E2eeDevice,
    new_client: Client,
    server_url: &str,
    device_name: &str,
) -> anyhow::Result<Linked> {
    link_new_device(existing, new_client, server_url, device_name, LinkBy::Pin).await
}

/// Links a new device (`new_client`, not signed in) to `existing`'s account by QR code.
pub async fn link_new_device_by_qr(
    existing: &E2eeDevice,
    new_client: Client,
    server_url: &str,
    device_name: &str,
) -> anyhow::Result<Linked> {
    link_new_device(existing, new_client, server_url, device_name, LinkBy::Qr).await
}

/// The whole pairing flow (see the module docs); uploads the new device's keys at the end
/// (certificate, 10 one-time keys, fallback key).
pub async fn link_new_device(
    existing: &E2eeDevice,
    new_client: Client,
    server_url: &str,
    device_name: &str,
    by: LinkBy,
) -> anyhow::Result<Linked> {
    // 1. The new device opens the pairing and shows the PIN and the QR code.
    let mut fresh = NewDeviceLink::open(new_client, server_url).await?;
    ensure!(
        fresh.created.pin.len() == 8 && fresh.created.pin.bytes().all(|b| b.is_ascii_digit()),
        "PIN {:?}",
        fresh.created.pin
    );
    // 2. The existing device learns the pairing id and the new device's key.
    let (pairing_id, public_key) = match by {
        LinkBy::Pin => {
            let found = find_pairing(&existing.client, &fresh.created.pin).await.context("FindPairing")?;
            (found.pairing_id, found.public_key)
        }
        LinkBy::Qr => {
            let qr = PairingQr::from_text(&fresh.qr_text)?;
            ensure!(qr.server_url == server_url, "the QR code names another server");
            (Uuid::from_bytes(qr.pairing_id).to_string(), qr.public_key.to_vec())
        }
    };
    ensure!(pairing_id == fresh.pairing_id, "found pairing {pairing_id}, opened {}", fresh.pairing_id);
    ensure!(public_key == fresh.public_key, "the server handed out another public key");
    // 3. The existing device opens the channel (HELLO).
    let mut old = ExistingDeviceLink::connect(&existing.client, &pairing_id, &public_key).await?;
    // 4. The SAS: the new device opens the channel and commits to its SAS key; the existing
    //    device answers with its SAS key; the new device reveals its own; the existing device
    //    checks it against the commitment.
    let (response, _) = fresh.poll().await?;
    ensure!(
        response.state() == PairingState::Claimed,
        "state {:?} after the first message",
        response.state()
    );
    old.poll(&existing.client).await?;
    fresh.poll().await?;
    old.poll(&existing.client).await?;
    // 5. Both screens show the emoji; the person confirms on both, and each sends its MAC.
    let new_device_code = fresh.check_code().context("the channel did not open")?;
    let existing_device_code = old.check_code();
    let new_device_sas = fresh.short_auth_string().context("no emoji on the new device")?;
    let existing_device_sas = old.short_auth_string().context("no emoji on the existing device")?;
    ensure!(new_device_sas == existing_device_sas, "the emoji differ: stop");
    fresh.confirm().await?;
    old.confirm(&existing.client).await?;
    // 6. The existing device checks the new device's MAC, sends the account key and approves.
    old.poll(&existing.client).await?;
    ensure!(old.verified(), "the new device's SAS MAC did not come");
    old.send_account_key(&existing.client, &existing.account_key).await?;
    let approved_device_id = old.approve(&existing.client, device_name).await.context("ApprovePairing")?;
    // 7. The new device checks the existing device's MAC, takes the account key and its session.
    let (session, account_key) = fresh.finish().await?;
    ensure!(session.account_id == existing.account_id(), "the session is for another account");
    ensure!(session.device_id == approved_device_id, "the session is for another device");
    // 8. It is a device like any other now.
    let mut device = E2eeDevice::new(fresh.client.clone(), account_key);
    device.publish_account_key().await.context("PublishAccountKey (same key again)")?;
    device.upload_keys(10).await?;
    Ok(Linked {
        device,
        new_device_code,
        existing_device_code,
        new_device_sas,
        existing_device_sas,
        approved_device_id,
        pairing_id,
    })
}
