//! The whole client protocol of one device, as a sans-IO state machine: [`Machine`].
//!
//! The machine owns one device's end-to-end encryption state (its Olm account, the person's
//! account key if this device holds it, the account keys pinned for everyone it has seen,
//! verified devices, Olm sessions, Megolm sessions, the replay record) and the rules of the
//! protocol (`FORMAT.md`, "Client protocol"; `docs/e2ee.md`). It never does network I/O: the glue
//! code (the PWA's `engine.ts`, the Rust client) tells it what the server said and sends what it
//! returns. One protocol, in one place, for the browser (through `wasm.rs`) and every Rust client.
//!
//! # A send, step by step
//!
//! ```text
//! devices_to_query(members)          -> accounts to QueryKeys
//! receive_keys(account, key, devices) for each answer (certificates checked against pinned keys)
//! devices_missing_olm(member devices) -> devices to ClaimKeys; receive_claimed_key for each
//! share_room_key(conversation, members, now) -> to-device messages; send them, then
//! confirm_room_key_share(share)
//! encrypt(conversation, plaintext)   -> ciphertext and session id for SendMessage
//! ```
//!
//! and on the receiving side `receive_to_device` (room keys, verification messages, key requests
//! answered, forwarded keys) and `decrypt` (binding and replay checks), with
//! `request_missing_key` when a message's key is missing.
//!
//! # Persistence
//!
//! Every step records which of the machine's records changed; [`Machine::take_changes`] hands
//! them out as (record name, sealed text or deletion), each sealed with
//! [`crate::pickle::seal_local`] under the pickle key and bound to its name. The glue writes them
//! to a [`Store`] (IndexedDB in the PWA, [`MemoryStore`] natively) and rebuilds the machine with
//! [`Machine::restore`]. Record names are listed in `FORMAT.md`.
//!
//! # Security
//!
//! Devices of others come only from certificates verified against the account key pinned the
//! first time their person was seen (a changed key is an error, never silently accepted). A
//! Megolm session is bound to the device that shared it, its account and the conversation it
//! was shared for. Keys are forwarded only to this person's own devices (certified by the same
//! account key), and a forwarded key is accepted only from a device we asked, for the session we
//! asked for.

mod backup;
mod error;
mod id;
mod legacy;
mod records;
mod store;
#[cfg(feature = "testing")]
mod testing;
mod types;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use zeroize::Zeroizing;

use crate::certificate::AccountKey;
use crate::device::{ClaimedKey, DeviceAccount};
use crate::megolm::{InboundGroupSession, OutboundGroupSession};
use crate::olm::{OlmSession, is_pre_key_message};
use crate::{PickleKey, verify_device_certificate};

pub use backup::Imported;
pub use error::Error;
pub use id::Id;
pub use legacy::{Legacy, LegacyInbound, LegacyOutbound};
pub use records::Change;
pub use store::{MemoryStore, Store};
pub use types::{
    CallContext, Decrypted, DeviceListChange, Encrypted, GroupMessage, KeyUpload, MissingKey,
    OutgoingToDevice, Peer, Received, Refusal, RoomKeyShare, Undecryptable, UndecryptableReason,
    VoiceBaseKey, VoiceKeyShare,
};
pub use wire::{
    CALL_SIGNAL, CONVERSATION_KEY, ENVELOPE_OLM, FORWARDED_KEY, KEY_REQUEST, MAX_SESSION_ID, ROOM_KEY,
    VERIFICATION, VOICE_KEY,
};

use records::RecordKey;

/// Keep at least this many one-time keys on the server.
pub const MIN_ONE_TIME_KEYS: u64 = 25;
/// Upload this many one-time keys when topping up.
pub const UPLOAD_ONE_TIME_KEYS: usize = 50;
/// How many to-device message ids the machine remembers as taken (oldest forgotten first).
pub const MAX_TAKEN: usize = 2000;
/// How many key requests may be outstanding at once (the oldest is dropped past it).
pub const MAX_KEY_REQUESTS: usize = 500;
/// How many Olm sessions are kept per device (the least recently used goes first).
pub const MAX_OLM_SESSIONS: usize = 8;
/// A device asked for a key is asked again after this long without an answer.
pub const KEY_REQUEST_RETRY_MS: u64 = 10 * 60 * 1000;

/// When an outbound Megolm session is replaced by a new one (besides a change of the recipient
/// devices, which always rotates a session already used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Rotate after this many messages.
    pub rotate_after_messages: u32,
    /// Rotate when the session is older than this (milliseconds).
    pub rotate_after_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { rotate_after_messages: 100, rotate_after_ms: 7 * 24 * 3600 * 1000 }
    }
}

/// What this device knows of one person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Person {
    /// The account key pinned the first time they were seen (or ours).
    pub(crate) pinned: Option<[u8; 32]>,
    /// The account key verified with SAS (kept while equal to the pinned one).
    pub(crate) verified: Option<[u8; 32]>,
    /// Their key changed after this device had verified them.
    pub(crate) changed_after_verification: bool,
    /// Their verified devices (never this one), as last listed; `None` until first listed.
    pub(crate) devices: Option<Vec<Id>>,
    /// The list should be queried again (a device-list change was announced).
    pub(crate) stale: bool,
}

/// A conversation's outbound Megolm session.
pub(crate) struct Outbound {
    pub(crate) session: OutboundGroupSession,
    pub(crate) created_at_ms: u64,
    /// The members it was last shared for (our account included).
    pub(crate) members: Vec<Id>,
    /// The member devices at the last share (rotation compares against this set).
    pub(crate) recipients: BTreeSet<Id>,
    /// The devices the key reached (confirmed sent).
    pub(crate) shared_with: BTreeSet<Id>,
    /// The devices a share was made for, confirmed or not (it may have reached them): a
    /// session offered to anyone counts as used.
    pub(crate) offered: BTreeSet<Id>,
}

/// An inbound Megolm session, bound to who shared it and what for, with the message ids that
/// used each index (the replay record).
pub(crate) struct Inbound {
    pub(crate) session: InboundGroupSession,
    pub(crate) sender_account: Id,
    pub(crate) conversation: Option<Id>,
    pub(crate) seen: BTreeMap<u32, Id>,
    /// Its entry is in the key backup (see [`Machine::sessions_to_back_up`]).
    pub(crate) backed_up: bool,
}

/// A key request this device sent to its own devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRequest {
    pub(crate) conversation: Id,
    pub(crate) sender_account: Id,
    pub(crate) created_at_ms: u64,
    /// The devices asked, and when.
    pub(crate) asked: BTreeMap<Id, u64>,
}

/// One device's end-to-end encryption state and protocol (see the module docs).
pub struct Machine {
    pickle_key: PickleKey,
    config: Config,
    account_id: Id,
    device_id: Id,
    account: DeviceAccount,
    account_key: Option<AccountKey>,
    certificate_uploaded: bool,
    people: BTreeMap<Id, Person>,
    peers: BTreeMap<Id, Peer>,
    olm: BTreeMap<Id, Vec<OlmSession>>,
    outbound: BTreeMap<Id, Outbound>,
    inbound: BTreeMap<(Id, String), Inbound>,
    requests: BTreeMap<(Id, String), KeyRequest>,
    taken: VecDeque<Id>,
    dirty: BTreeSet<RecordKey>,
    /// Sessions handed out for the backup and not marked yet, with the first index exported.
    backup_pending: BTreeMap<(Id, String), u32>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("account_id", &self.account_id)
            .field("device_id", &self.device_id)
            .field("account", &self.account)
            .field("has_account_key", &self.account_key.is_some())
            .field("secrets", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// A new device: a fresh Olm account, and the person's account key when this device holds
    /// it (a first device makes one; a linked device receives it). Its records are all changed.
    pub fn new(
        pickle_key: PickleKey,
        config: Config,
        account_id: Id,
        device_id: Id,
        account_key: Option<AccountKey>,
    ) -> Self {
        let mut machine = Self {
            pickle_key,
            config,
            account_id,
            device_id,
            account: DeviceAccount::new(),
            account_key: None,
            certificate_uploaded: false,
            people: BTreeMap::new(),
            peers: BTreeMap::new(),
            olm: BTreeMap::new(),
            outbound: BTreeMap::new(),
            inbound: BTreeMap::new(),
            requests: BTreeMap::new(),
            taken: VecDeque::new(),
            dirty: BTreeSet::new(),
            backup_pending: BTreeMap::new(),
        };
        machine.dirty.insert(RecordKey::Identity);
        if let Some(key) = account_key {
            machine.adopt_account_key(key);
        }
        machine
    }

    fn adopt_account_key(&mut self, key: AccountKey) {
        let public = key.public_key();
        self.account_key = Some(key);
        let own = self.account_id;
        let person = self.people.entry(own).or_default();
        if person.pinned != Some(public) {
            person.pinned = Some(public);
            // Devices certified by another key are not ours any more.
            if let Some(devices) = person.devices.take() {
                for d in devices {
                    self.peers.remove(&d);
                    if self.olm.remove(&d).is_some() {
                        self.dirty.insert(RecordKey::Olm(d));
                    }
                }
            }
        }
        self.dirty.insert(RecordKey::Person(own));
        self.dirty.insert(RecordKey::Identity);
    }

    /// Gives a device that did not hold the account key the key (linked by pairing or restored
    /// from a backup). Refused (nothing changed) when it holds one already.
    pub fn set_account_key(&mut self, key: AccountKey) -> Result<(), Error> {
        if self.account_key.is_some() {
            return Err(Error::AccountKeyHeld);
        }
        self.adopt_account_key(key);
        Ok(())
    }

    /// The pickle key the records are sealed under.
    pub fn pickle_key(&self) -> &PickleKey {
        &self.pickle_key
    }

    /// The rotation settings.
    pub fn config(&self) -> Config {
        self.config
    }

    /// This device's account.
    pub fn account_id(&self) -> Id {
        self.account_id
    }

    /// This device.
    pub fn device_id(&self) -> Id {
        self.device_id
    }

    /// This device's Ed25519 key.
    pub fn ed25519_key(&self) -> [u8; 32] {
        self.account.ed25519_key()
    }

    /// This device's Curve25519 identity key.
    pub fn curve25519_key(&self) -> [u8; 32] {
        self.account.curve25519_key()
    }

    /// The person's account key (public), when this device holds it.
    pub fn account_public_key(&self) -> Option<[u8; 32]> {
        self.account_key.as_ref().map(AccountKey::public_key)
    }

    /// The account key's secret, for the pairing channel or a backup only (wipe it after use).
    pub fn account_key_secret(&self) -> Result<Zeroizing<[u8; 32]>, Error> {
        Ok(self.account_key.as_ref().ok_or(Error::NoAccountKey)?.to_secret_bytes())
    }

    /// Whether this device holds the account key and uploaded its certificate.
    pub fn is_ready(&self) -> bool {
        self.account_key.is_some() && self.certificate_uploaded
    }

    fn ensure_ready(&self) -> Result<(), Error> {
        if self.account_key.is_none() {
            return Err(Error::NoAccountKey);
        }
        if !self.certificate_uploaded {
            return Err(Error::NotReady);
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------
    // Own keys

    /// The keys to upload: the certificate (signed now, the first time), `count` new one-time
    /// keys and, the first time, a fallback key. Call [`Machine::keys_uploaded`] after the
    /// server took them; until then the same keys come again.
    pub fn keys_to_upload(&mut self, count: usize, now_ms: u64) -> Result<KeyUpload, Error> {
        let account_key = self.account_key.as_ref().ok_or(Error::NoAccountKey)?;
        let certificate = if self.certificate_uploaded {
            None
        } else {
            let fields = self.account.certificate_fields(self.account_id.0, self.device_id.0, now_ms / 1000);
            Some(account_key.certify(&fields).to_bytes())
        };
        let unpublished = self.account.unpublished_one_time_keys().len();
        let one_time_keys = self.account.generate_one_time_keys(count.saturating_sub(unpublished));
        let fallback_key = if self.certificate_uploaded {
            self.account.unpublished_fallback_key()
        } else {
            match self.account.unpublished_fallback_key() {
                Some(k) => Some(k),
                None => self.account.generate_fallback_key(),
            }
        };
        self.dirty.insert(RecordKey::Identity);
        Ok(KeyUpload { certificate, one_time_keys, fallback_key })
    }

    /// The server took the keys of [`Machine::keys_to_upload`].
    pub fn keys_uploaded(&mut self) {
        self.account.mark_keys_as_published();
        self.certificate_uploaded = true;
        self.dirty.insert(RecordKey::Identity);
    }

    /// How many one-time keys to upload when the server holds `server_count` of ours (0: none).
    pub fn one_time_keys_needed(&self, server_count: u64) -> usize {
        if self.is_ready() && server_count < MIN_ONE_TIME_KEYS { UPLOAD_ONE_TIME_KEYS } else { 0 }
    }

    // ------------------------------------------------------------------------------------
    // People and their devices

    /// Of `accounts`, those whose device list to query (`QueryKeys`): never listed, or announced
    /// as changed since.
    pub fn devices_to_query(&self, accounts: &[Id]) -> Vec<Id> {
        let mut out: Vec<Id> = accounts
            .iter()
            .filter(|a| self.people.get(a).is_none_or(|p| p.devices.is_none() || p.stale))
            .copied()
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The server announced a change of `account`'s devices: query them again before the next
    /// share.
    pub fn device_list_changed(&mut self, account: Id) {
        if let Some(person) = self.people.get_mut(&account)
            && !person.stale
        {
            person.stale = true;
            self.dirty.insert(RecordKey::Person(account));
        }
    }

    /// Takes `QueryKeys`' answer for one account: its published account key (empty: none yet)
    /// and its devices' certificates. The key is pinned the first time; a different key later
    /// is [`Error::AccountKeyChanged`] (nothing else changes, and a verification of the old key
    /// no longer counts). Each certificate must verify against the pinned key and name this
    /// account and its device; a device whose keys changed keeps its old keys. Devices no
    /// longer listed are forgotten with their Olm sessions.
    pub fn receive_keys(
        &mut self,
        account: Id,
        account_key: &[u8],
        devices: &[(Id, &[u8])],
    ) -> Result<DeviceListChange, Error> {
        let mut change = DeviceListChange::default();
        let mut listed = Vec::new();
        if account_key.is_empty() {
            for (device, _) in devices {
                change.refused.push((*device, "listed without an account key".to_owned()));
            }
        } else {
            let published: [u8; 32] =
                account_key.try_into().map_err(|_| crate::Error::InvalidLength("account key"))?;
            crate::validate_account_key(&published)?;
            let own_key = (account == self.account_id).then(|| self.account_public_key()).flatten();
            let person = self.people.entry(account).or_default();
            let pinned = *person.pinned.get_or_insert(own_key.unwrap_or(published));
            if pinned != published {
                let verified_before = person.verified.take().is_some();
                if verified_before {
                    person.changed_after_verification = true;
                }
                self.dirty.insert(RecordKey::Person(account));
                return Err(Error::AccountKeyChanged { account_id: account, verified_before });
            }
            for (device, certificate) in devices {
                if listed.contains(device) {
                    change.refused.push((*device, "listed twice".to_owned()));
                    continue;
                }
                let cert = match verify_device_certificate(certificate, &pinned) {
                    Ok(cert) => cert,
                    Err(e) => {
                        change.refused.push((*device, format!("certificate: {e}")));
                        continue;
                    }
                };
                if cert.fields.account_id != account.0 || cert.fields.device_id != device.0 {
                    change
                        .refused
                        .push((*device, "the certificate names another account or device".to_owned()));
                    continue;
                }
                if *device == self.device_id {
                    if cert.fields.device_ed25519 != self.account.ed25519_key() {
                        change.refused.push((*device, "other keys listed for this very device".to_owned()));
                    }
                    continue;
                }
                let peer = Peer {
                    account_id: account,
                    device_id: *device,
                    ed25519: cert.fields.device_ed25519,
                    curve25519: cert.fields.device_curve25519,
                };
                match self.peers.get(device) {
                    Some(known) if *known != peer => {
                        change.refused.push((*device, "the device changed its identity keys".to_owned()));
                        if known.account_id != account {
                            continue;
                        }
                    }
                    Some(_) => {}
                    None => {
                        change.added.push(*device);
                        self.peers.insert(*device, peer);
                    }
                }
                listed.push(*device);
            }
        }
        let person = self.people.entry(account).or_default();
        let before = person.devices.replace(listed.clone()).unwrap_or_default();
        person.stale = false;
        for gone in before.into_iter().filter(|d| !listed.contains(d)) {
            if self.peers.get(&gone).is_some_and(|p| p.account_id == account) {
                self.peers.remove(&gone);
            }
            if self.olm.remove(&gone).is_some() {
                self.dirty.insert(RecordKey::Olm(gone));
            }
            change.removed.push(gone);
        }
        self.dirty.insert(RecordKey::Person(account));
        Ok(change)
    }

    /// A verified device, if known.
    pub fn peer(&self, device: Id) -> Option<Peer> {
        self.peers.get(&device).copied()
    }

    /// The verified devices of `account` as last listed (never this device).
    pub fn devices_of(&self, account: Id) -> Vec<Peer> {
        self.people
            .get(&account)
            .and_then(|p| p.devices.as_ref())
            .map(|ds| ds.iter().filter_map(|d| self.peers.get(d).copied()).collect())
            .unwrap_or_default()
    }

    /// Our own other devices (certified by our account key).
    pub fn own_devices(&self) -> Vec<Peer> {
        self.devices_of(self.account_id)
    }

    /// The account key pinned for `account`.
    pub fn pinned_account_key(&self, account: Id) -> Option<[u8; 32]> {
        self.people.get(&account).and_then(|p| p.pinned)
    }

    /// Records `account_key` as verified for `account` (after a SAS verification), only if it is
    /// the key pinned for them; returns whether it was.
    pub fn mark_verified(&mut self, account: Id, account_key: [u8; 32]) -> bool {
        let Some(person) = self.people.get_mut(&account) else { return false };
        if person.pinned != Some(account_key) {
            return false;
        }
        person.verified = Some(account_key);
        person.changed_after_verification = false;
        self.dirty.insert(RecordKey::Person(account));
        true
    }

    /// Whether `account` was verified with the key pinned for them now.
    pub fn is_verified(&self, account: Id) -> bool {
        self.people.get(&account).is_some_and(|p| p.verified.is_some() && p.verified == p.pinned)
    }

    /// The accounts verified now.
    pub fn verified_accounts(&self) -> Vec<Id> {
        self.people.keys().copied().filter(|a| self.is_verified(*a)).collect()
    }

    /// Whether `account`'s key changed after this device had verified them.
    pub fn changed_after_verification(&self, account: Id) -> bool {
        self.people.get(&account).is_some_and(|p| p.changed_after_verification)
    }

    // ------------------------------------------------------------------------------------
    // Olm sessions

    /// Of `devices`, the known ones without an Olm session (claim a key for each).
    pub fn devices_missing_olm(&self, devices: &[Id]) -> Vec<Id> {
        let mut out: Vec<Id> = devices
            .iter()
            .filter(|d| self.peers.contains_key(d) && self.olm.get(d).is_none_or(Vec::is_empty))
            .copied()
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether an Olm session with `device` exists.
    pub fn has_olm_session(&self, device: Id) -> bool {
        self.olm.get(&device).is_some_and(|s| !s.is_empty())
    }

    /// Opens an Olm session with `device` from a key claimed for it; the key's signature is
    /// checked against the device's certified Ed25519 key.
    pub fn receive_claimed_key(&mut self, device: Id, claimed: &ClaimedKey) -> Result<(), Error> {
        let peer = *self.peers.get(&device).ok_or(Error::UnknownDevice(device))?;
        let session = self.account.create_outbound_session(&peer.ed25519, &peer.curve25519, claimed)?;
        let sessions = self.olm.entry(device).or_default();
        sessions.insert(0, session);
        sessions.truncate(MAX_OLM_SESSIONS);
        self.dirty.insert(RecordKey::Olm(device));
        Ok(())
    }

    fn olm_encrypt(&mut self, device: Id, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let session =
            self.olm.get_mut(&device).and_then(|s| s.first_mut()).ok_or(Error::NoOlmSession(device))?;
        let olm = session.encrypt(plaintext)?;
        self.dirty.insert(RecordKey::Olm(device));
        Ok(wire::envelope(&olm))
    }

    fn olm_message(&mut self, device: Id, plaintext: &[u8], now_ms: u64) -> Result<OutgoingToDevice, Error> {
        let ciphertext = self.olm_encrypt(device, plaintext)?;
        Ok(OutgoingToDevice { message_id: Id::new_v7(now_ms), recipient_device_id: device, ciphertext })
    }

    /// Decrypts an Olm message from `peer`: with the session its pre-key message names, else a
    /// new inbound session (using up our one-time key), or with any session for a normal
    /// message. The session that decrypted moves to the front (we answer on it).
    fn olm_decrypt(&mut self, peer: &Peer, message: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let sessions = self.olm.entry(peer.device_id).or_default();
        let found = if is_pre_key_message(message) {
            match sessions.iter().position(|s| s.matches_pre_key_message(message)) {
                Some(i) => Some((i, sessions[i].decrypt(message)?)),
                None => {
                    let (session, plaintext) =
                        self.account.create_inbound_session(&peer.curve25519, message)?;
                    sessions.push(session);
                    self.dirty.insert(RecordKey::Identity);
                    Some((sessions.len() - 1, plaintext))
                }
            }
        } else {
            sessions.iter_mut().enumerate().find_map(|(i, s)| s.decrypt(message).ok().map(|p| (i, p)))
        };
        let Some((index, plaintext)) = found else {
            if sessions.is_empty() {
                self.olm.remove(&peer.device_id);
            }
            return Err(Error::Crypto(crate::Error::OlmDecryption));
        };
        let session = sessions.remove(index);
        sessions.insert(0, session);
        sessions.truncate(MAX_OLM_SESSIONS);
        self.dirty.insert(RecordKey::Olm(peer.device_id));
        Ok(Zeroizing::new(plaintext))
    }

    fn known_sender(&self, account: Id, device: Id) -> Result<Peer, Error> {
        let peer = *self.peers.get(&device).ok_or(Error::UnknownDevice(device))?;
        if peer.account_id != account {
            return Err(Error::DeviceOfAnotherAccount { account_id: account, device_id: device });
        }
        Ok(peer)
    }

    // ------------------------------------------------------------------------------------
    // Sending in a conversation

    fn new_outbound(&mut self, conversation: Id, now_ms: u64) {
        let session = OutboundGroupSession::new();
        // Keep the inbound half, so this device reads its own messages in the history.
        if let Ok(inbound) = InboundGroupSession::from_session_key(&session.session_key()) {
            let key = (self.device_id, session.session_id());
            self.inbound.insert(
                key.clone(),
                Inbound {
                    session: inbound,
                    sender_account: self.account_id,
                    conversation: Some(conversation),
                    seen: BTreeMap::new(),
                    backed_up: false,
                },
            );
            self.dirty.insert(RecordKey::Inbound(key.0, key.1));
        }
        self.dirty.insert(RecordKey::Outbound(conversation));
        let outbound = Outbound {
            session,
            created_at_ms: now_ms,
            members: Vec::new(),
            recipients: BTreeSet::new(),
            shared_with: BTreeSet::new(),
            offered: BTreeSet::new(),
        };
        self.outbound.insert(conversation, outbound);
    }

    fn unreadable_by(&self, members: &[Id], reached: &BTreeSet<Id>) -> Vec<Id> {
        members
            .iter()
            .filter(|a| **a != self.account_id)
            .filter(|a| !self.devices_of(**a).iter().any(|p| reached.contains(&p.device_id)))
            .copied()
            .collect()
    }

    /// Shares the conversation's outbound session with every device of `members` (our account
    /// is added; this device left out) that lacks it, over Olm: `0x02 || conversation id ||
    /// session key`. Starts a new session first when there is none, when the member devices
    /// changed since the current one was used (a member or device removed or added), after
    /// [`Config::rotate_after_messages`] messages or when older than [`Config::rotate_after_ms`].
    /// Send the messages, then call [`Machine::confirm_room_key_share`]. Every member's device
    /// list must be known ([`Error::DevicesUnknown`]); devices without an Olm session are
    /// listed in `without_olm`.
    pub fn share_room_key(
        &mut self,
        conversation: Id,
        members: &[Id],
        now_ms: u64,
    ) -> Result<RoomKeyShare, Error> {
        self.ensure_ready()?;
        let mut members: Vec<Id> = members.to_vec();
        members.push(self.account_id);
        members.sort();
        members.dedup();
        let unknown: Vec<Id> = members
            .iter()
            .filter(|a| self.people.get(a).is_none_or(|p| p.devices.is_none()))
            .copied()
            .collect();
        if !unknown.is_empty() {
            return Err(Error::DevicesUnknown(unknown));
        }
        let recipients: BTreeSet<Id> =
            members.iter().flat_map(|a| self.devices_of(*a)).map(|p| p.device_id).collect();
        let config = self.config;
        let rotate = match self.outbound.get(&conversation) {
            None => true,
            Some(o) => {
                let used = o.session.message_index() > 0 || !o.offered.is_empty();
                (used && o.recipients != recipients)
                    || o.session.message_index() >= config.rotate_after_messages
                    || now_ms.saturating_sub(o.created_at_ms) > config.rotate_after_ms
            }
        };
        if rotate {
            self.new_outbound(conversation, now_ms);
        }
        let Some(outbound) = self.outbound.get_mut(&conversation) else {
            return Err(Error::NoOutboundSession(conversation));
        };
        outbound.members = members.clone();
        outbound.recipients = recipients.clone();
        let session_id = outbound.session.session_id();
        let plaintext = wire::conversation_key(conversation, &outbound.session.session_key());
        let targets: Vec<Id> =
            recipients.iter().filter(|d| !outbound.shared_with.contains(d)).copied().collect();
        let mut reached = outbound.shared_with.clone();
        self.dirty.insert(RecordKey::Outbound(conversation));
        let mut messages = Vec::new();
        let mut without_olm = Vec::new();
        for device in targets {
            if !self.has_olm_session(device) {
                without_olm.push(device);
                continue;
            }
            messages.push(self.olm_message(device, &plaintext, now_ms)?);
            reached.insert(device);
        }
        if let Some(outbound) = self.outbound.get_mut(&conversation) {
            outbound.offered.extend(messages.iter().map(|m| m.recipient_device_id));
        }
        let unreadable_by = self.unreadable_by(&members, &reached);
        Ok(RoomKeyShare {
            conversation_id: conversation,
            session_id,
            rotated: rotate,
            messages,
            without_olm,
            unreadable_by,
        })
    }

    /// The shares of `share` were sent: their devices hold the key now. (A share of a session
    /// since replaced changes nothing.)
    pub fn confirm_room_key_share(&mut self, share: &RoomKeyShare) {
        let devices: Vec<Id> = share.messages.iter().map(|m| m.recipient_device_id).collect();
        self.confirm_shared(share.conversation_id, &share.session_id, &devices);
    }

    /// [`Machine::confirm_room_key_share`] by its parts: the shares of session `session_id` of
    /// `conversation` reached `devices`.
    pub fn confirm_shared(&mut self, conversation: Id, session_id: &str, devices: &[Id]) {
        let Some(outbound) = self.outbound.get_mut(&conversation) else { return };
        if outbound.session.session_id() != session_id {
            return;
        }
        let recipients = outbound.recipients.clone();
        outbound.shared_with.extend(devices.iter().filter(|d| recipients.contains(d)));
        self.dirty.insert(RecordKey::Outbound(conversation));
    }

    /// Drops the conversation's outbound session (after a send that cannot be delivered, or to
    /// force a new session): the next share starts a new one.
    pub fn discard_outbound(&mut self, conversation: Id) {
        if self.outbound.remove(&conversation).is_some() {
            self.dirty.insert(RecordKey::Outbound(conversation));
        }
    }

    /// The current outbound session of `conversation` (its id), if any.
    pub fn outbound_session_id(&self, conversation: Id) -> Option<String> {
        self.outbound.get(&conversation).map(|o| o.session.session_id())
    }

    /// The devices the conversation's current outbound session reached (confirmed shares).
    pub fn outbound_shared_with(&self, conversation: Id) -> Vec<Id> {
        self.outbound.get(&conversation).map(|o| o.shared_with.iter().copied().collect()).unwrap_or_default()
    }

    /// Encrypts `plaintext` with the conversation's outbound session (share first; a session
    /// due for rotation by message count is refused with [`Error::RotationDue`]).
    pub fn encrypt(&mut self, conversation: Id, plaintext: &[u8]) -> Result<Encrypted, Error> {
        self.ensure_ready()?;
        let outbound = self.outbound.get_mut(&conversation).ok_or(Error::NoOutboundSession(conversation))?;
        if outbound.session.message_index() >= self.config.rotate_after_messages {
            return Err(Error::RotationDue(conversation));
        }
        let message_index = outbound.session.message_index();
        let ciphertext = outbound.session.encrypt(plaintext);
        let session_id = outbound.session.session_id();
        let members = outbound.members.clone();
        let reached = outbound.shared_with.clone();
        self.dirty.insert(RecordKey::Outbound(conversation));
        Ok(Encrypted {
            ciphertext,
            session_id,
            message_index,
            unreadable_by: self.unreadable_by(&members, &reached),
        })
    }

    // ------------------------------------------------------------------------------------
    // Receiving

    fn take(&mut self, message_id: Id) {
        self.taken.push_back(message_id);
        while self.taken.len() > MAX_TAKEN {
            self.taken.pop_front();
        }
        self.dirty.insert(RecordKey::Taken);
    }

    /// Takes a to-device message from `sender_device` of `sender_account`. A sender not known
    /// yet is [`Error::UnknownDevice`] (query its account's keys and offer the message again);
    /// a message that does not decrypt is an error and not taken. Once decrypted, the message
    /// is taken (its id remembered, a second copy is [`Received::Duplicate`]) whatever it held.
    pub fn receive_to_device(
        &mut self,
        sender_account: Id,
        sender_device: Id,
        message_id: Id,
        ciphertext: &[u8],
        now_ms: u64,
    ) -> Result<Received, Error> {
        if self.taken.contains(&message_id) {
            return Ok(Received::Duplicate);
        }
        let peer = self.known_sender(sender_account, sender_device)?;
        let Some((&ENVELOPE_OLM, olm)) = ciphertext.split_first() else {
            self.take(message_id);
            return Ok(Received::Refused(Refusal::UnknownEnvelope));
        };
        let plaintext = self.olm_decrypt(&peer, olm)?;
        self.take(message_id);
        let payload = match wire::parse(&plaintext) {
            Ok(payload) => payload,
            Err(refusal) => return Ok(Received::Refused(refusal)),
        };
        Ok(match payload {
            wire::Payload::RoomKey(key) => self.import_shared(peer, None, key),
            wire::Payload::ConversationKey { conversation, key } => {
                self.import_shared(peer, Some(conversation), key)
            }
            wire::Payload::Verification(bytes) => {
                Received::Verification { sender: peer, bytes: bytes.to_vec() }
            }
            wire::Payload::CallSignal => Received::Refused(Refusal::CallSignalOutsideCall),
            wire::Payload::KeyRequest { conversation, sender_device, session_id } => {
                let session_id = session_id.to_owned();
                self.answer_key_request(peer, conversation, sender_device, session_id, now_ms)?
            }
            wire::Payload::ForwardedKey { conversation, sender_account, sender_device, key } => {
                self.accept_forwarded(peer, conversation, sender_account, sender_device, key)
            }
            wire::Payload::VoiceKey { conversation, kid, key } => Received::VoiceKey {
                sender: peer,
                conversation_id: conversation,
                kid,
                key: VoiceBaseKey(Zeroizing::new(key)),
            },
        })
    }

    /// Stores `inbound` under (device, session id) unless a session held there is as good (the
    /// same or an earlier first index). A session held for another sender or conversation is
    /// never replaced.
    fn store_inbound(&mut self, device: Id, session_id: String, mut inbound: Inbound) -> Result<(), Refusal> {
        let key = (device, session_id);
        if let Some(held) = self.inbound.get(&key) {
            if held.sender_account != inbound.sender_account || held.conversation != inbound.conversation {
                return Err(Refusal::SharedForSomethingElse);
            }
            if held.session.first_known_index() <= inbound.session.first_known_index() {
                return Ok(());
            }
            inbound.seen = held.seen.clone();
        }
        self.dirty.insert(RecordKey::Inbound(key.0, key.1.clone()));
        self.inbound.insert(key, inbound);
        Ok(())
    }

    fn import_shared(&mut self, peer: Peer, conversation: Option<Id>, key: &[u8]) -> Received {
        let Ok(session) = InboundGroupSession::from_session_key(key) else {
            return Received::Refused(Refusal::MalformedSessionKey);
        };
        let session_id = session.session_id();
        let inbound = Inbound {
            session,
            sender_account: peer.account_id,
            conversation,
            seen: BTreeMap::new(),
            backed_up: false,
        };
        if let Err(refusal) = self.store_inbound(peer.device_id, session_id.clone(), inbound) {
            return Received::Refused(refusal);
        }
        if self.requests.remove(&(peer.device_id, session_id.clone())).is_some() {
            self.dirty.insert(RecordKey::Request(peer.device_id, session_id.clone()));
        }
        Received::RoomKey { sender: peer, conversation_id: conversation, session_id }
    }

    fn answer_key_request(
        &mut self,
        from: Peer,
        conversation: Id,
        sender_device: Id,
        session_id: String,
        now_ms: u64,
    ) -> Result<Received, Error> {
        // `from` is in our verified lists: certified by the key pinned for its account, which for
        // our own account is the account key this device holds.
        if from.account_id != self.account_id || self.account_key.is_none() {
            return Ok(Received::Refused(Refusal::RequestFromAnotherPerson));
        }
        let Some(inbound) = self.inbound.get(&(sender_device, session_id.clone())) else {
            return Ok(Received::Refused(Refusal::NoSuchSession));
        };
        if inbound.conversation != Some(conversation) {
            return Ok(Received::Refused(Refusal::NoSuchSession));
        }
        let plaintext = wire::forwarded_key(
            conversation,
            inbound.sender_account,
            sender_device,
            &inbound.session.export_at_first_known_index(),
        );
        let answer = self.olm_message(from.device_id, &plaintext, now_ms)?;
        Ok(Received::KeyRequest { from, session_id, answer })
    }

    fn accept_forwarded(
        &mut self,
        from: Peer,
        conversation: Id,
        sender_account: Id,
        sender_device: Id,
        key: &[u8],
    ) -> Received {
        if from.account_id != self.account_id {
            return Received::Refused(Refusal::ForwardedByAnotherPerson);
        }
        let Ok(session) = InboundGroupSession::import(key) else {
            return Received::Refused(Refusal::MalformedSessionKey);
        };
        // The session id comes from the key itself: a key for another session finds no request.
        let session_id = session.session_id();
        let request_key = (sender_device, session_id.clone());
        let Some(request) = self.requests.get(&request_key) else {
            return Received::Refused(Refusal::Unrequested);
        };
        if !request.asked.contains_key(&from.device_id) {
            return Received::Refused(Refusal::Unrequested);
        }
        if request.conversation != conversation || request.sender_account != sender_account {
            return Received::Refused(Refusal::ForwardedKeyMismatch);
        }
        if self.peers.get(&sender_device).is_some_and(|p| p.account_id != sender_account) {
            return Received::Refused(Refusal::ForwardedKeyMismatch);
        }
        let inbound = Inbound {
            session,
            sender_account,
            conversation: Some(conversation),
            seen: BTreeMap::new(),
            backed_up: false,
        };
        if let Err(refusal) = self.store_inbound(sender_device, session_id.clone(), inbound) {
            return Received::Refused(refusal);
        }
        self.requests.remove(&request_key);
        self.dirty.insert(RecordKey::Request(sender_device, session_id.clone()));
        Received::ForwardedKey {
            from,
            key: MissingKey {
                conversation_id: conversation,
                sender_account_id: sender_account,
                sender_device_id: sender_device,
                session_id,
            },
        }
    }

    /// Decrypts a conversation message with the session its sending device shared for this
    /// conversation (or one of our devices forwarded): the session must be bound to the
    /// message's sender account and conversation, and an index already used by another message
    /// id is a replay.
    pub fn decrypt(&mut self, message: &GroupMessage<'_>) -> Result<Decrypted, Undecryptable> {
        let Ok(session_id) = std::str::from_utf8(message.session_id) else {
            return Err(Undecryptable { reason: UndecryptableReason::BadSessionId, missing: None });
        };
        let missing = MissingKey {
            conversation_id: message.conversation_id,
            sender_account_id: message.sender_account_id,
            sender_device_id: message.sender_device_id,
            session_id: session_id.to_owned(),
        };
        let key = (message.sender_device_id, session_id.to_owned());
        let Some(inbound) = self.inbound.get_mut(&key) else {
            return Err(Undecryptable { reason: UndecryptableReason::MissingKey, missing: Some(missing) });
        };
        if inbound.sender_account != message.sender_account_id
            || inbound.conversation != Some(message.conversation_id)
        {
            return Err(Undecryptable { reason: UndecryptableReason::SharedForSomethingElse, missing: None });
        }
        let decrypted = match inbound.session.decrypt_history(message.ciphertext) {
            Ok(d) => d,
            Err(crate::Error::MegolmUnknownIndex { first_known, index }) => {
                return Err(Undecryptable {
                    reason: UndecryptableReason::UnknownIndex { first_known, index },
                    missing: Some(missing),
                });
            }
            Err(e) => return Err(Undecryptable { reason: UndecryptableReason::Crypto(e), missing: None }),
        };
        let index = decrypted.message_index;
        match inbound.seen.get(&index) {
            Some(id) if *id != message.message_id => {
                return Err(Undecryptable { reason: UndecryptableReason::Replayed, missing: None });
            }
            Some(_) => {}
            None => {
                inbound.seen.insert(index, message.message_id);
                self.dirty.insert(RecordKey::Inbound(key.0, key.1));
            }
        }
        Ok(Decrypted {
            plaintext: Zeroizing::new(decrypted.plaintext),
            message_index: index,
            sender_verified: self.is_verified(message.sender_account_id),
        })
    }

    // ------------------------------------------------------------------------------------
    // Key requests

    /// Asks our own other devices (those with an Olm session; see [`Machine::own_devices`] and
    /// [`Machine::devices_missing_olm`]) for a session a message needs: `0x05 || conversation id
    /// || sender device id || session id`. A device already asked is asked again only after
    /// [`KEY_REQUEST_RETRY_MS`]. Only the devices asked may answer.
    pub fn request_missing_key(
        &mut self,
        missing: &MissingKey,
        now_ms: u64,
    ) -> Result<Vec<OutgoingToDevice>, Error> {
        self.ensure_ready()?;
        if missing.session_id.is_empty() || missing.session_id.len() > MAX_SESSION_ID {
            return Err(Error::Crypto(crate::Error::InvalidLength("session id")));
        }
        let key = (missing.sender_device_id, missing.session_id.clone());
        let usable = self.inbound.get(&key).is_some_and(|i| i.session.first_known_index() == 0);
        if usable {
            return Ok(Vec::new());
        }
        let request = self.requests.entry(key.clone()).or_insert_with(|| KeyRequest {
            conversation: missing.conversation_id,
            sender_account: missing.sender_account_id,
            created_at_ms: now_ms,
            asked: BTreeMap::new(),
        });
        if request.conversation != missing.conversation_id
            || request.sender_account != missing.sender_account_id
        {
            // The same session named for another conversation or sender: keep the first.
            return Ok(Vec::new());
        }
        let asked = request.asked.clone();
        let plaintext =
            wire::key_request(missing.conversation_id, missing.sender_device_id, &missing.session_id);
        let mut out = Vec::new();
        for peer in self.own_devices() {
            let due = asked
                .get(&peer.device_id)
                .is_none_or(|at| now_ms.saturating_sub(*at) >= KEY_REQUEST_RETRY_MS);
            if !due || !self.has_olm_session(peer.device_id) {
                continue;
            }
            out.push(self.olm_message(peer.device_id, &plaintext, now_ms)?);
        }
        if let Some(request) = self.requests.get_mut(&key) {
            for m in &out {
                request.asked.insert(m.recipient_device_id, now_ms);
            }
        }
        self.dirty.insert(RecordKey::Request(key.0, key.1));
        self.prune_requests();
        Ok(out)
    }

    fn prune_requests(&mut self) {
        while self.requests.len() > MAX_KEY_REQUESTS {
            let oldest = self.requests.iter().min_by_key(|(_, r)| r.created_at_ms).map(|(k, _)| k.clone());
            let Some(oldest) = oldest else { break };
            self.requests.remove(&oldest);
            self.dirty.insert(RecordKey::Request(oldest.0, oldest.1));
        }
    }

    /// The key requests still unanswered.
    pub fn pending_key_requests(&self) -> Vec<MissingKey> {
        self.requests
            .iter()
            .map(|((device, session_id), r)| MissingKey {
                conversation_id: r.conversation,
                sender_account_id: r.sender_account,
                sender_device_id: *device,
                session_id: session_id.clone(),
            })
            .collect()
    }

    /// Forgets a key request (a forwarded key for it is refused from now on).
    pub fn cancel_key_request(&mut self, missing: &MissingKey) {
        let key = (missing.sender_device_id, missing.session_id.clone());
        if self.requests.remove(&key).is_some() {
            self.dirty.insert(RecordKey::Request(key.0, key.1));
        }
    }

    // ------------------------------------------------------------------------------------
    // Verification and calls

    /// A verification message to `device` over Olm (`0x03 || message`).
    pub fn encrypt_verification(
        &mut self,
        device: Id,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<OutgoingToDevice, Error> {
        if !self.peers.contains_key(&device) {
            return Err(Error::UnknownDevice(device));
        }
        self.olm_message(device, &wire::verification(bytes), now_ms)
    }

    /// Encrypts this device's SFrame key for a voice room (`kid`, `base_key`) with Olm for each
    /// of `devices`, which must be devices of `members` (the room's participants): a device of
    /// anyone else is [`Error::NotAMember`], so the glue cannot hand the key to a stranger by
    /// mistake. Devices without an Olm session are listed in `without_olm`.
    pub fn share_voice_key(
        &mut self,
        conversation: Id,
        members: &[Id],
        devices: &[Id],
        kid: u32,
        base_key: &[u8; 16],
        now_ms: u64,
    ) -> Result<VoiceKeyShare, Error> {
        self.ensure_ready()?;
        let plaintext = wire::voice_key(conversation, kid, base_key);
        let mut share = VoiceKeyShare { messages: Vec::new(), without_olm: Vec::new() };
        // Every device checked before any Olm session moves.
        for &device in devices {
            let peer = self.peers.get(&device).ok_or(Error::UnknownDevice(device))?;
            if !members.contains(&peer.account_id) {
                return Err(Error::NotAMember(device));
            }
        }
        for &device in devices {
            if !self.has_olm_session(device) {
                share.without_olm.push(device);
                continue;
            }
            share.messages.push(self.olm_message(device, &plaintext, now_ms)?);
        }
        Ok(share)
    }

    /// Encrypts a call signal's payload with Olm for `device`, which must be a device of one of
    /// `members`, bound to `context`: `0x01 || Olm(0x04 || context || payload)`.
    pub fn encrypt_call_payload(
        &mut self,
        members: &[Id],
        device: Id,
        context: &CallContext,
        payload: &[u8],
    ) -> Result<Vec<u8>, Error> {
        self.ensure_ready()?;
        let peer = self.peers.get(&device).ok_or(Error::UnknownDevice(device))?;
        if !members.contains(&peer.account_id) {
            return Err(Error::NotAMember(device));
        }
        self.olm_encrypt(device, &wire::call_signal(&context.to_bytes(), payload))
    }

    /// Decrypts a call signal's payload from `sender_device` of `sender_account`; refused when
    /// it was made for another conversation, call or action than `context`.
    pub fn decrypt_call_payload(
        &mut self,
        sender_account: Id,
        sender_device: Id,
        context: &CallContext,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let peer = self.known_sender(sender_account, sender_device)?;
        let Some((&ENVELOPE_OLM, olm)) = ciphertext.split_first() else {
            return Err(Error::NotOlmEnvelope);
        };
        let plaintext = self.olm_decrypt(&peer, olm)?;
        match plaintext.split_first() {
            Some((&CALL_SIGNAL, rest)) if rest.len() >= 33 && rest[..33] == context.to_bytes() => {
                Ok(rest[33..].to_vec())
            }
            _ => Err(Error::CallPayloadMismatch),
        }
    }

    // ------------------------------------------------------------------------------------
    // Persistence

    /// The records changed since the last call, sealed (or deleted): write them all, in one
    /// transaction where the store has them.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty.into_iter().map(|key| self.record(&key)).collect()
    }

    /// Whether changes wait to be taken.
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }
}

/// Entry points for the fuzz targets in `crypto/fuzz` only (compiled under `--cfg fuzzing`):
/// the Olm-plaintext parser and the record decoders, which normally sit behind Olm or the
/// pickle key.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz_hooks {
    use std::sync::OnceLock;

    use super::{Config, Id, Machine};
    use crate::{OsRng, PickleKey};

    /// Parses an Olm plaintext of the client protocol.
    pub fn payload(data: &[u8]) {
        let _ = super::wire::parse(data);
    }

    /// Restores a machine from a valid identity and one record whose body is `data[1..]`
    /// (sealed under the right key and name; `data[0]` picks the kind of record).
    pub fn record(data: &[u8]) {
        static IDENTITY: OnceLock<String> = OnceLock::new();
        let key = PickleKey::from_bytes([7; 32]);
        let identity = IDENTITY.get_or_init(|| {
            let mut m = Machine::new(key.clone(), Config::default(), Id([1; 16]), Id([2; 16]), None);
            m.take_changes().into_iter().find_map(|c| c.value).unwrap_or_default()
        });
        let Some((&kind, body)) = data.split_first() else { return };
        let id = Id([3; 16]);
        let name = match kind % 6 {
            0 => "taken".to_owned(),
            1 => format!("person:{id}"),
            2 => format!("olm:{id}"),
            3 => format!("out:{id}"),
            4 => format!("in:{id}:AAAA"),
            _ => format!("req:{id}:AAAA"),
        };
        let sealed = crate::pickle::seal_local(&key, &name, body, &mut OsRng::new());
        let records = vec![("identity".to_owned(), identity.clone()), (name, sealed)];
        let _ = Machine::restore(key, Config::default(), records);
    }
}
