//! [`E2eeDevice`]: one signed-in device doing end-to-end encryption the way an app does. The
//! e2e tests and the load generator share it.
//!
//! The protocol is not here: it is `kitsulan_crypto::client`'s [`Machine`], the sans-IO state
//! machine the PWA drives through WebAssembly (`CryptoMachine`). This module is only its glue:
//! it asks the server what the machine needs (`QueryKeys`, `ClaimKeys`, the to-device inbox,
//! conversations) and sends what the machine returns (`UploadKeys`, `SendToDevice`,
//! `SendMessage`), with the same wire formats as the PWA (crypto/FORMAT.md, "Client protocol").
//! Every step's changed records are written to a [`MemoryStore`] sealed under the device's
//! pickle key, so a device can be rebuilt from them ([`E2eeDevice::restore`]).
//!
//! What the machine does for this device: it pins each person's account key the first time it
//! sees it and checks every device certificate against it, opens Olm sessions from claimed keys
//! (checking their signatures), shares each conversation's outbound Megolm session over Olm
//! bound to that conversation (`0x02 || conversation id || session key`), rotates it when the
//! member devices change, after [`Config::rotate_after_messages`] messages or when it is too old,
//! decrypts a message only with a session its sending device shared for that very conversation
//! (and refuses a second message on an index already used), asks our own devices for keys that
//! are missing and answers theirs, carries verification messages and call payloads over Olm,
//! and hands out and imports key-backup entries.
//!
//! Every message this device could not decrypt is counted ([`E2eeDevice::undecryptable`], with
//! the reasons in [`E2eeDevice::undecryptable_reasons`]); one that decrypts later (its key came)
//! is no longer counted.
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

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail, ensure};
use kitsulan_crypto::client::{
    CallContext, Config, Error as MachineError, Id, Machine, MemoryStore, MissingKey, OutgoingToDevice, Peer,
    Received, Store as _,
};
use kitsulan_crypto::device::ClaimedKey;
use kitsulan_crypto::linking::{self, ExistingDeviceFlow, NewDeviceFlow};
use kitsulan_crypto::pairing::{CheckCode, PairingQr};
use kitsulan_crypto::sas::ShortAuthString;
use kitsulan_crypto::{
    AccountKey, DeviceAccount, OsRng, PickleKey, SignedFallbackKey, SignedOneTimeKey, verify_fallback_key,
    verify_one_time_key,
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
/// How many items the API takes per call (`SendToDevice`, `ClaimKeys`, `QueryKeys`, OTKs).
pub const BATCH: usize = 100;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// [`now_ms`] as the machine takes it.
pub(crate) fn now() -> u64 {
    u64::try_from(now_ms()).unwrap_or(0)
}

/// Parses an id the server gave us into its 16 UUID bytes.
pub fn uuid_bytes(id: &str) -> anyhow::Result<[u8; 16]> {
    Ok(*Uuid::parse_str(id).with_context(|| format!("not a UUID: {id:?}"))?.as_bytes())
}

/// Parses an id the server gave us into the machine's [`Id`].
pub fn id(text: &str) -> anyhow::Result<Id> {
    Ok(Id::from_bytes(uuid_bytes(text)?))
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

/// A to-device message the machine made, in its wire form.
pub fn outgoing(message: &OutgoingToDevice) -> OutgoingToDeviceMessage {
    OutgoingToDeviceMessage {
        message_id: message.message_id.to_string(),
        recipient_device_id: message.recipient_device_id.to_string(),
        ciphertext: message.ciphertext.clone(),
    }
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

impl From<Peer> for PeerDevice {
    fn from(peer: Peer) -> Self {
        Self {
            account_id: peer.account_id.to_string(),
            device_id: peer.device_id.to_string(),
            ed25519: peer.ed25519,
            curve25519: peer.curve25519,
        }
    }
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

/// What one [`E2eeDevice::receive`] found in the inbox (everything it found was acked).
#[derive(Debug, Default)]
pub struct Inbox {
    /// Megolm sessions imported (shared by their sender, or forwarded by our own device):
    /// (sending device, session id).
    pub room_keys: Vec<(String, String)>,
    /// Messages that could not be read, or were read and refused: (message id, why).
    pub failures: Vec<(String, String)>,
    /// Verification messages, in inbox order, for [`crate::verification`].
    pub verifications: Vec<VerificationIn>,
    /// Key requests of our own other devices this device answered (the forwarded key sent).
    pub answered_key_requests: usize,
    /// Voice keys of other participants: (sending device, voice channel, key id, base key).
    pub voice_keys: Vec<(String, String, u32, kitsulan_crypto::client::VoiceBaseKey)>,
}

/// A verification message that arrived over Olm from a known device.
#[derive(Clone, Debug)]
pub struct VerificationIn {
    /// The device that sent it, as its certificate describes it.
    pub sender: PeerDevice,
    /// The message (`kitsulan_crypto::verification::VerificationMessage` bytes).
    pub bytes: Vec<u8>,
}

/// One signed-in device: the [`Client`] and the protocol [`Machine`] it drives.
pub struct E2eeDevice {
    /// The signed-in client.
    pub client: Client,
    machine: Machine,
    /// The machine's sealed records, as written after every step.
    store: MemoryStore,
    /// `device_list_version` per account, as the server last answered.
    versions: HashMap<String, u64>,
    /// Member accounts per conversation, as of the last [`E2eeDevice::refresh_conversation`].
    pub(crate) members: HashMap<String, Vec<Id>>,
    /// Messages that did not decrypt (and have not since), by id, with why.
    undecryptable: BTreeMap<String, String>,
    /// Keys messages were missing, not asked for yet.
    missing: Vec<MissingKey>,
}

impl std::fmt::Debug for E2eeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eeDevice")
            .field("account_id", &self.account_id())
            .field("device_id", &self.device_id())
            .field("machine", &self.machine)
            .finish_non_exhaustive()
    }
}

impl E2eeDevice {
    /// A device of a person whose account key already exists (a copy of it, or the key
    /// received over the pairing channel). `client` must be signed in.
    pub fn new(client: Client, account_key: AccountKey) -> Self {
        Self::with_config(client, account_key, Config::default())
    }

    /// [`E2eeDevice::new`] with other rotation settings.
    pub fn with_config(client: Client, account_key: AccountKey, config: Config) -> Self {
        let (account_id, device_id) =
            ids_of(&client).unwrap_or((Id::from_bytes([0; 16]), Id::from_bytes([0; 16])));
        let pickle_key = PickleKey::generate(&mut OsRng::new());
        let machine = Machine::new(pickle_key, config, account_id, device_id, Some(account_key));
        let mut device = Self {
            client,
            machine,
            store: MemoryStore::new(),
            versions: HashMap::new(),
            members: HashMap::new(),
            undecryptable: BTreeMap::new(),
            missing: Vec::new(),
        };
        device.persist();
        device
    }

    /// Rebuilds a device from the records of another one's [`E2eeDevice::snapshot`] (the same
    /// device after a restart): `client` must be signed in as that device.
    pub fn restore(client: Client, pickle_key: PickleKey, store: MemoryStore) -> anyhow::Result<Self> {
        let Ok(records) = store.load_all();
        let machine =
            Machine::restore(pickle_key, Config::default(), records).context("restoring the machine")?;
        let (account_id, device_id) = ids_of(&client)?;
        ensure!(
            machine.account_id() == account_id && machine.device_id() == device_id,
            "the records are another device's"
        );
        Ok(Self {
            client,
            machine,
            store,
            versions: HashMap::new(),
            members: HashMap::new(),
            undecryptable: BTreeMap::new(),
            missing: Vec::new(),
        })
    }

    /// The pickle key and the records as of now, for [`E2eeDevice::restore`].
    pub fn snapshot(&mut self) -> (PickleKey, MemoryStore) {
        self.persist();
        (self.machine.pickle_key().clone(), self.store.clone())
    }

    /// Writes the machine's changed records to the store.
    fn persist(&mut self) {
        let changes = self.machine.take_changes();
        let Ok(()) = self.store.apply(&changes);
    }

    /// Runs one step of the machine and writes what it changed to the store.
    pub(crate) fn machine_step<T>(
        &mut self,
        step: impl FnOnce(&mut Machine) -> Result<T, MachineError>,
    ) -> anyhow::Result<T> {
        let result = step(&mut self.machine);
        self.persist();
        Ok(result?)
    }

    /// The protocol machine (read only: every step goes through this device's methods).
    pub fn machine(&self) -> &Machine {
        &self.machine
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

    /// The person's account key (a copy; it stays in the machine).
    pub fn account_key(&self) -> AccountKey {
        self.account_key_copy()
    }

    /// A copy of the account key, for giving a second device of the same person its key
    /// without pairing (tests that are not about pairing).
    pub fn account_key_copy(&self) -> AccountKey {
        match self.machine.account_key_secret() {
            Ok(secret) => AccountKey::from_secret_bytes(&secret),
            // Every E2eeDevice is made with the account key.
            Err(_) => unreachable!("an E2eeDevice always holds the account key"),
        }
    }

    /// This device's Ed25519 key.
    pub fn ed25519_key(&self) -> [u8; 32] {
        self.machine.ed25519_key()
    }

    /// This device's Curve25519 identity key.
    pub fn curve25519_key(&self) -> [u8; 32] {
        self.machine.curve25519_key()
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
        let account_key = self.machine.account_public_key().unwrap_or_default().to_vec();
        let request = PublishAccountKeyRequest { account_key, replace: false };
        self.client.keys().publish_account_key(request).await?;
        Ok(())
    }

    /// Uploads the certificate (first time only), `one_time_keys` new one-time keys and, on the
    /// first upload, a fallback key; marks them published.
    pub async fn upload_keys(&mut self, one_time_keys: usize) -> anyhow::Result<UploadKeysResponse> {
        let upload = self.machine.keys_to_upload(one_time_keys, now())?;
        self.persist();
        let request = UploadKeysRequest {
            device_certificate: upload.certificate.unwrap_or_default(),
            one_time_keys: upload.one_time_keys.iter().map(one_time_key_proto).collect(),
            fallback_key: upload.fallback_key.as_ref().map(fallback_key_proto),
        };
        let response = self.client.keys().upload_keys(request).await?.into_inner();
        self.machine.keys_uploaded();
        self.persist();
        Ok(response)
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

    /// Queries the device lists of `account_ids` and hands them to the machine, which verifies
    /// every device's certificate against the person's pinned account key (pinned now if first
    /// seen) and forgets devices that are gone (with our Olm sessions to them). Fails on an
    /// account key that changed and on any device the machine refused (a certificate that does
    /// not verify or does not name its account and device, identity keys that changed).
    pub async fn sync_devices(&mut self, account_ids: &[&str]) -> anyhow::Result<DeviceListChange> {
        let mut change = DeviceListChange::default();
        let result = self.sync_devices_into(account_ids, &mut change).await;
        self.persist();
        result.map(|()| change)
    }

    async fn sync_devices_into(
        &mut self,
        account_ids: &[&str],
        change: &mut DeviceListChange,
    ) -> anyhow::Result<()> {
        for chunk in account_ids.chunks(BATCH) {
            let accounts = self.query_keys(chunk).await.context("QueryKeys")?;
            for asked in chunk {
                let Some(keys) = accounts.iter().find(|a| a.account_id == *asked) else {
                    bail!("QueryKeys left out account {asked}");
                };
                change.versions.insert(keys.account_id.clone(), keys.device_list_version);
                self.versions.insert(keys.account_id.clone(), keys.device_list_version);
                let devices = keys
                    .devices
                    .iter()
                    .map(|d| Ok((id(&d.device_id)?, d.certificate.as_slice())))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let account = id(&keys.account_id)?;
                let taken = match self.machine.receive_keys(account, &keys.account_key, &devices) {
                    Ok(taken) => taken,
                    Err(MachineError::AccountKeyChanged { .. }) => {
                        bail!("the account key of {asked} changed: warn, do not trust")
                    }
                    Err(e) => return Err(e).with_context(|| format!("the device list of {asked}")),
                };
                change.added.extend(taken.added.iter().map(Id::to_string));
                change.removed.extend(taken.removed.iter().map(Id::to_string));
                if !taken.refused.is_empty() {
                    let why: Vec<String> =
                        taken.refused.iter().map(|(d, why)| format!("device {d}: {why}")).collect();
                    bail!("refused in the device list of {asked}: {}", why.join("; "));
                }
            }
        }
        Ok(())
    }

    /// The verified devices of `account_ids` (without this one), in the server's order.
    pub fn devices_of(&self, account_ids: &[&str]) -> Vec<String> {
        account_ids
            .iter()
            .filter_map(|a| id(a).ok())
            .flat_map(|a| self.machine.devices_of(a))
            .map(|p| p.device_id.to_string())
            .collect()
    }

    /// The device list version the server last reported for `account_id`.
    pub fn device_list_version(&self, account_id: &str) -> Option<u64> {
        self.versions.get(account_id).copied()
    }

    /// A verified device, if known.
    pub fn peer(&self, device_id: &str) -> Option<PeerDevice> {
        self.machine.peer(id(device_id).ok()?).map(PeerDevice::from)
    }

    /// Whether this device has an Olm session with `device_id`.
    pub fn has_olm_session(&self, device_id: &str) -> bool {
        id(device_id).is_ok_and(|d| self.machine.has_olm_session(d))
    }

    /// Opens an Olm session with each of `device_ids` that has none yet: claims a key per
    /// device, checked against the device's certified Ed25519 key.
    pub async fn ensure_olm_sessions(&mut self, device_ids: &[String]) -> anyhow::Result<()> {
        let ids = device_ids.iter().map(|d| id(d)).collect::<anyhow::Result<Vec<_>>>()?;
        for d in &ids {
            ensure!(self.machine.peer(*d).is_some(), "unknown device {d}");
        }
        let missing = self.machine.devices_missing_olm(&ids);
        let result = self.claim(&missing).await;
        self.persist();
        result
    }

    async fn claim(&mut self, missing: &[Id]) -> anyhow::Result<()> {
        for chunk in missing.chunks(BATCH) {
            let device_ids = chunk.iter().map(Id::to_string).collect();
            let claimed = self
                .client
                .keys()
                .claim_keys(ClaimKeysRequest { device_ids })
                .await
                .context("ClaimKeys")?
                .into_inner()
                .keys;
            for device in chunk {
                let peer = self.machine.peer(*device).with_context(|| format!("unknown device {device}"))?;
                let claim = claimed
                    .iter()
                    .find(|c| id(&c.device_id).ok() == Some(*device))
                    .with_context(|| format!("ClaimKeys gave no key for device {device}"))?;
                let key = claim.key.as_ref().context("ClaimKeys answered without a key")?;
                let key = verify_claimed(&peer.ed25519, key, claim.fallback)?;
                self.machine.receive_claimed_key(*device, &key)?;
            }
        }
        Ok(())
    }

    /// The verified device `device_id`, which must belong to `account_id`; looked up with
    /// `QueryKeys` if it is new to us.
    async fn sender(&mut self, account_id: &str, device_id: &str) -> anyhow::Result<Peer> {
        let device = id(device_id)?;
        if self.machine.peer(device).is_none() {
            self.sync_devices(&[account_id]).await?;
        }
        let peer =
            self.machine.peer(device).with_context(|| format!("unknown sending device {device_id}"))?;
        ensure!(peer.account_id == id(account_id)?, "device {device_id} is not of the account named");
        Ok(peer)
    }

    /// The account key pinned for `account_id` (the first one seen, or our own).
    pub fn pinned_account_key(&self, account_id: &str) -> Option<[u8; 32]> {
        self.machine.pinned_account_key(id(account_id).ok()?)
    }

    /// Records `account_key` as verified for `account_id` (after a SAS verification), if it is
    /// the key pinned for them; returns whether it was.
    pub fn mark_verified(&mut self, account_id: &str, account_key: [u8; 32]) -> bool {
        let marked = id(account_id).is_ok_and(|a| self.machine.mark_verified(a, account_key));
        self.persist();
        marked
    }

    /// Whether `account_id` was verified with the account key pinned for it now.
    pub fn is_verified(&self, account_id: &str) -> bool {
        id(account_id).is_ok_and(|a| self.machine.is_verified(a))
    }

    /// Sends each `(device, verification message)` as an Olm to-device message
    /// (`0x03 || message`), opening Olm sessions where needed, all in one `SendToDevice`
    /// batch so each device gets its messages in order.
    pub async fn send_verification(&mut self, messages: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        let devices: Vec<String> = messages.iter().map(|(d, _)| d.clone()).collect();
        self.ensure_olm_sessions(&devices).await?;
        let mut out = Vec::with_capacity(messages.len());
        for (device, bytes) in messages {
            let made = self.machine.encrypt_verification(id(device)?, bytes, now());
            self.persist();
            out.push(outgoing(&made?));
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

    /// Sends this device's SFrame key for voice room `room` (`kid`, `base`) over Olm to every
    /// device of `others` (the room's other participants, looked up and given Olm sessions as
    /// needed), as the apps do when they join and when someone leaves; returns how many devices
    /// it went to.
    pub async fn share_voice_key(
        &mut self,
        room: &str,
        others: &[&str],
        kid: u32,
        base: &[u8; 16],
    ) -> anyhow::Result<usize> {
        self.sync_devices(others).await?;
        let devices = self.devices_of(others);
        self.ensure_olm_sessions(&devices).await?;
        let members = others.iter().map(|a| id(a)).collect::<anyhow::Result<Vec<_>>>()?;
        let device_ids = devices.iter().map(|d| id(d)).collect::<anyhow::Result<Vec<_>>>()?;
        let now = u64::try_from(now_ms()).unwrap_or(0);
        let share = self.machine.share_voice_key(id(room)?, &members, &device_ids, kid, base, now)?;
        self.persist();
        ensure!(share.without_olm.is_empty(), "no Olm session with {:?}", share.without_olm);
        let sent = share.messages.len();
        self.send_to_device(share.messages.iter().map(outgoing).collect())
            .await
            .context("SendToDevice (voice key)")?;
        Ok(sent)
    }

    // -----------------------------------------------------------------------------------------
    // Calls

    /// Encrypts a call signal's payload for `to_device_id` (a device of `to_account_id`, looked
    /// up and given an Olm session if needed), bound to the conversation, the call and the
    /// action: `0x01 || Olm(0x04 || context || payload)` (docs/calls.md).
    pub async fn encrypt_call_payload(
        &mut self,
        conversation_id: &str,
        call_id: &str,
        action: u8,
        to_account_id: &str,
        to_device_id: &str,
        payload: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        self.sender(to_account_id, to_device_id).await?;
        self.ensure_olm_sessions(&[to_device_id.to_owned()]).await?;
        let context = CallContext { conversation_id: id(conversation_id)?, call_id: id(call_id)?, action };
        let made =
            self.machine.encrypt_call_payload(&[id(to_account_id)?], id(to_device_id)?, &context, payload);
        self.persist();
        Ok(made?)
    }

    /// Decrypts a call signal's payload from `sender_device_id` of `sender_account_id` (looked
    /// up if new to us); refused when it was made for another conversation, call or action.
    pub async fn decrypt_call_payload(
        &mut self,
        conversation_id: &str,
        call_id: &str,
        action: u8,
        sender_account_id: &str,
        sender_device_id: &str,
        ciphertext: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        let peer = self.sender(sender_account_id, sender_device_id).await?;
        let context = CallContext { conversation_id: id(conversation_id)?, call_id: id(call_id)?, action };
        let opened = self.machine.decrypt_call_payload(peer.account_id, peer.device_id, &context, ciphertext);
        self.persist();
        Ok(opened?)
    }

    // -----------------------------------------------------------------------------------------
    // The to-device inbox

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

    /// Fetches the whole inbox, hands every message to the machine (room keys imported,
    /// verification messages collected, our own devices' key requests answered), acks
    /// everything fetched, and reports.
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
    /// [`crate::gateway`]) as [`E2eeDevice::receive`] takes those it fetches. A message already
    /// taken (by id) is skipped; one that did not decrypt is tried again when offered again.
    pub async fn receive_to_device(&mut self, messages: &[ToDeviceMessage]) -> Inbox {
        let mut inbox = Inbox::default();
        self.take_all(messages, &mut inbox).await;
        inbox
    }

    async fn take_all(&mut self, messages: &[ToDeviceMessage], inbox: &mut Inbox) {
        for message in messages {
            let taken = self.take(message, inbox).await;
            self.persist();
            if let Err(e) = taken {
                inbox.failures.push((message.message_id.clone(), format!("{e:#}")));
            }
        }
    }

    async fn take(&mut self, message: &ToDeviceMessage, inbox: &mut Inbox) -> anyhow::Result<()> {
        // A sender not known yet is looked up first (the failure may be the server's being away:
        // the message is not taken then, and is tried again when offered again).
        let peer = self.sender(&message.sender_account_id, &message.sender_device_id).await?;
        let received = self.machine.receive_to_device(
            peer.account_id,
            peer.device_id,
            id(&message.message_id)?,
            &message.ciphertext,
            now(),
        )?;
        match received {
            Received::Duplicate => {}
            Received::RoomKey { sender, session_id, .. } => {
                inbox.room_keys.push((sender.device_id.to_string(), session_id));
            }
            Received::ForwardedKey { key, .. } => {
                inbox.room_keys.push((key.sender_device_id.to_string(), key.session_id));
            }
            Received::Verification { sender, bytes } => {
                inbox.verifications.push(VerificationIn { sender: sender.into(), bytes });
            }
            Received::KeyRequest { answer, .. } => {
                self.persist();
                self.send_to_device(vec![outgoing(&answer)]).await.context("SendToDevice (forwarded key)")?;
                inbox.answered_key_requests += 1;
            }
            Received::VoiceKey { sender, conversation_id, kid, key } => {
                let entry = (sender.device_id.to_string(), conversation_id.to_string(), kid, key);
                inbox.voice_keys.push(entry);
            }
            Received::Refused(refusal) => bail!("refused: {} ({refusal})", refusal.code()),
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // What could not be decrypted

    /// How many messages this device could not decrypt (and has not since).
    pub fn undecryptable(&self) -> usize {
        self.undecryptable.len()
    }

    /// Those messages, by id, with why (the reason's stable code and its text).
    pub fn undecryptable_reasons(&self) -> Vec<(String, String)> {
        self.undecryptable.iter().map(|(id, why)| (id.clone(), why.clone())).collect()
    }

    /// Records the outcome of one decryption for the counter.
    pub(crate) fn note_decryption(&mut self, message_id: &str, failure: Option<String>) {
        match failure {
            Some(why) => {
                self.undecryptable.insert(message_id.to_owned(), why);
            }
            None => {
                self.undecryptable.remove(message_id);
            }
        }
    }

    /// Keeps a key a message was missing, for [`E2eeDevice::request_missing_keys`].
    pub(crate) fn note_missing(&mut self, missing: MissingKey) {
        if !self.missing.contains(&missing) {
            self.missing.push(missing);
        }
    }

    /// Asks our own other devices for the keys messages were missing (one request per session;
    /// a device already asked is asked again only after a while). Returns how many requests
    /// went out.
    pub async fn request_missing_keys(&mut self) -> anyhow::Result<usize> {
        let missing = std::mem::take(&mut self.missing);
        let mut out = Vec::new();
        for key in &missing {
            let made = self.machine.request_missing_key(key, now());
            self.persist();
            out.extend(made?.iter().map(outgoing));
        }
        let n = out.len();
        self.send_to_device(out).await.context("SendToDevice (key requests)")?;
        Ok(n)
    }

    // -----------------------------------------------------------------------------------------
    // Tests only

    /// This device's certificate, signed now by the account key (tests that upload by hand).
    #[cfg(feature = "testing")]
    pub fn certificate(&self) -> anyhow::Result<Vec<u8>> {
        let fields = self.machine.account().certificate_fields(
            uuid_bytes(self.account_id())?,
            uuid_bytes(self.device_id())?,
            now() / 1000,
        );
        Ok(self.account_key().certify(&fields).to_bytes())
    }

    /// The machine's Olm account (tests that sign or upload by hand).
    #[cfg(feature = "testing")]
    pub fn account(&self) -> &DeviceAccount {
        self.machine.account()
    }

    /// The machine's Olm account, mutable (tests that generate keys outside the protocol).
    #[cfg(feature = "testing")]
    pub fn account_mut(&mut self) -> &mut DeviceAccount {
        self.machine.account_mut()
    }

    /// The machine itself, mutable, for attack tests that step outside the protocol (raw Olm
    /// plaintexts and the like).
    #[cfg(feature = "testing")]
    pub fn machine_mut(&mut self) -> &mut Machine {
        &mut self.machine
    }

    /// Tries every inbound session this device holds, whoever shared it, on a Megolm message:
    /// what a device that kept its old keys could do with a ciphertext it got hold of.
    #[cfg(feature = "testing")]
    pub fn decrypt_with_any_session(&mut self, megolm: &[u8]) -> Option<Vec<u8>> {
        self.machine.decrypt_with_any_session(megolm)
    }

    /// Private material of this device a server must never hold, labelled (for the plaintext
    /// scans): the account key secret, every Megolm session's ratchet, this device's pickle
    /// and the keys it was pickled under.
    #[cfg(feature = "testing")]
    pub fn secrets(&self) -> Vec<(String, Vec<u8>)> {
        self.machine.secrets_for_scan()
    }
}

/// The account and device a signed-in client is.
fn ids_of(client: &Client) -> anyhow::Result<(Id, Id)> {
    let session = client.session().context("the client is not signed in")?;
    Ok((id(&session.account_id)?, id(&session.device_id)?))
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
    old.send_account_key(&existing.client, &existing.account_key()).await?;
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
