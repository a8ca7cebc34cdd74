//! Linking a new device: the steps of the pairing channel as a sans-IO state machine, the one
//! implementation behind the PWA (through `wasm.rs`) and the Rust client (`client/src/e2ee.rs`).
//! docs/e2ee.md "Linking a new device" tells the story; `FORMAT.md` "Pairing channel messages"
//! has the bytes.
//!
//! [`NewDeviceFlow`] and [`ExistingDeviceFlow`] each own their end of the ECIES channel
//! ([`crate::pairing`]) and the SAS ([`crate::sas`]) that runs inside it. They do no I/O and
//! read no clock: the caller hands them the payloads `GetPairing` returned, in order
//! (`receive`), and the person's "the emoji match" (`confirm`), and posts with
//! `PostPairingMessage` what `take_outgoing` gives, in that order (each payload is encrypted
//! when it is queued, so the order of the queue is the order of the channel's counter).
//!
//! The existing device opens the channel with [`HELLO`] (the ECIES initial plaintext); every
//! later plaintext is `kind (1) || body`:
//!
//! ```text
//! new → existing   0x02 || SAS commitment (32)   sas::commitment(new device's SAS key)
//! existing → new   0x03 || SAS public key (32)    the existing device's SAS key
//! new → existing   0x03 || SAS public key (32)    the reveal; checked against the commitment
//!   (both show the 7 emoji of the SAS, transaction id = the pairing id; the person compares)
//! each → other     0x04 || SAS MAC (32)           once the person confirmed on that device
//! existing → new   0x01 || account key secret (32), only after both MACs
//! existing → new   0x05 || key-backup key (32), optional, only after the account key
//! ```
//!
//! The MAC (key id [`MAC_KEY_ID`]) covers the channel's keys as its sender saw them: the new
//! device's ECIES key (32) || the existing device's ephemeral key (32), so a middleman with two
//! channels cannot make both MACs verify. Anything out of turn, a message that does not
//! decrypt, a key that does not match the commitment or a MAC that does not verify cancels the
//! flow with a [`CancelReason`]: from then on it queues nothing, takes nothing and releases no
//! secret (a received account key or backup key is wiped).

use std::collections::VecDeque;

use zeroize::Zeroizing;

use crate::pairing::{self, CheckCode, NewDevicePairing, PairingChannel, PairingQr};
use crate::sas::{self, EstablishedSas, SasVerification, ShortAuthString};
use crate::verification::uuid_text;
use crate::{AccountKey, Error, Result};

/// The initial channel plaintext (existing device to new device).
pub const HELLO: &[u8] = b"KITSULAN-LINK/2 hello";
/// Kind of the message that carries the account key secret (existing → new).
pub const KIND_ACCOUNT_KEY: u8 = 0x01;
/// Kind of the new device's commitment to its SAS key.
pub const KIND_SAS_COMMITMENT: u8 = 0x02;
/// Kind of a SAS public key (the existing device's, then the new device's reveal).
pub const KIND_SAS_KEY: u8 = 0x03;
/// Kind of a SAS MAC over the channel keys, sent once the person confirmed the emoji.
pub const KIND_SAS_MAC: u8 = 0x04;
/// Kind of the optional message that carries the key-backup key (existing → new), after the
/// account key.
pub const KIND_BACKUP_KEY: u8 = 0x05;
/// The key id of the SAS MAC in a pairing channel.
pub const MAC_KEY_ID: &str = "pairing_channel";

const KEY_LEN: usize = 32;

/// Why a flow was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The person (or the app on their behalf) cancelled here.
    User,
    /// A message came out of turn: a kind this side does not take, or not now (an account key
    /// before both MACs, a second SAS key, a backup key before the account key, …), or the
    /// initial plaintext was not [`HELLO`].
    UnexpectedMessage,
    /// A message of the right kind had a body of the wrong length.
    MalformedMessage,
    /// A payload did not decrypt: tampered, replayed, out of order, or not from the other end
    /// of this channel.
    ChannelDecryption,
    /// The channel or the SAS could not be keyed (an invalid or non-contributory key).
    KeyAgreement,
    /// The new device revealed a SAS key that does not match its commitment.
    CommitmentMismatch,
    /// The other side's SAS MAC over the channel keys did not verify (someone in the middle).
    MacMismatch,
}

impl CancelReason {
    /// A stable `snake_case` code (for the JS error's `reason` and for logs).
    pub const fn code(self) -> &'static str {
        match self {
            CancelReason::User => "user",
            CancelReason::UnexpectedMessage => "unexpected_message",
            CancelReason::MalformedMessage => "malformed_message",
            CancelReason::ChannelDecryption => "channel_decryption",
            CancelReason::KeyAgreement => "key_agreement",
            CancelReason::CommitmentMismatch => "commitment_mismatch",
            CancelReason::MacMismatch => "mac_mismatch",
        }
    }
}

/// A cancelled flow: why, and a sentence saying what happened (no secrets in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pairing was stopped: {detail}")]
pub struct Cancelled {
    /// Why.
    pub reason: CancelReason,
    /// What happened, in English, for logs and error messages.
    pub detail: &'static str,
}

const fn stop(reason: CancelReason, detail: &'static str) -> Cancelled {
    Cancelled { reason, detail }
}

/// Where a flow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// New device: waiting for the existing device to open the channel.
    WaitingForChannel,
    /// The SAS keys are being exchanged.
    ExchangingKeys,
    /// Both sides know the SAS: show the emoji; the person has not confirmed here yet.
    Compare,
    /// The person confirmed here (our MAC is queued); the other side's MAC has not verified yet.
    Confirmed,
    /// Both MACs: the existing device may send the account key; the new device waits for it.
    Verified,
    /// Existing device: the account key is queued. New device: the account key came.
    Done,
    /// Cancelled: nothing more is sent or taken.
    Cancelled(Cancelled),
}

impl LinkState {
    /// `waiting`, `exchanging`, `compare`, `confirmed`, `verified`, `done` or `cancelled`.
    pub const fn code(&self) -> &'static str {
        match self {
            LinkState::WaitingForChannel => "waiting",
            LinkState::ExchangingKeys => "exchanging",
            LinkState::Compare => "compare",
            LinkState::Confirmed => "confirmed",
            LinkState::Verified => "verified",
            LinkState::Done => "done",
            LinkState::Cancelled(_) => "cancelled",
        }
    }
}

fn key32(body: &[u8], what: &'static str) -> Result<[u8; KEY_LEN], Cancelled> {
    body.try_into().map_err(|_| stop(CancelReason::MalformedMessage, what))
}

/// What both sides share: the channel, the SAS and the queue.
struct Core {
    /// The pairing id as text: the SAS transaction id.
    transaction_id: String,
    channel: Option<PairingChannel>,
    /// The channel's check code (kept after a cancel, for the screen).
    check_code: Option<CheckCode>,
    /// New device's ECIES key (32) || existing device's ephemeral key (32), as this side saw them.
    channel_keys: [u8; 2 * KEY_LEN],
    /// Our SAS key pair, until the other side's key came.
    ours: Option<SasVerification>,
    established: Option<EstablishedSas>,
    /// The person confirmed here and our MAC is queued.
    confirmed: bool,
    /// The other side's MAC verified.
    their_mac_ok: bool,
    outgoing: VecDeque<Vec<u8>>,
    cancelled: Option<Cancelled>,
}

impl Core {
    fn new(pairing_id: &[u8; 16]) -> Self {
        Self {
            transaction_id: uuid_text(pairing_id),
            channel: None,
            check_code: None,
            channel_keys: [0; 2 * KEY_LEN],
            ours: None,
            established: None,
            confirmed: false,
            their_mac_ok: false,
            outgoing: VecDeque::new(),
            cancelled: None,
        }
    }

    fn set_channel(&mut self, channel: PairingChannel, new_device_key: &[u8], existing_key: &[u8]) {
        self.channel_keys[..KEY_LEN].copy_from_slice(new_device_key);
        self.channel_keys[KEY_LEN..].copy_from_slice(existing_key);
        self.check_code = Some(channel.check_code());
        self.channel = Some(channel);
    }

    fn going(&self) -> Result<(), Cancelled> {
        self.cancelled.map_or(Ok(()), Err)
    }

    /// Encrypts `kind || body` and queues it.
    fn send(&mut self, kind: u8, body: &[u8]) {
        if let Some(channel) = self.channel.as_mut() {
            let mut plaintext = Zeroizing::new(Vec::with_capacity(1 + body.len()));
            plaintext.push(kind);
            plaintext.extend_from_slice(body);
            self.outgoing.push_back(channel.encrypt(&plaintext));
        }
    }

    /// Stops for good: forgets the SAS and the channel and drops what was not posted yet.
    fn cancel(&mut self, why: Cancelled) -> Cancelled {
        let why = *self.cancelled.get_or_insert(why);
        self.outgoing.clear();
        self.channel = None;
        self.ours = None;
        self.established = None;
        why
    }

    fn decrypt(&mut self, payload: &[u8]) -> Result<Zeroizing<Vec<u8>>, Cancelled> {
        let channel = self.channel.as_mut().ok_or(stop(CancelReason::UnexpectedMessage, "no channel"))?;
        channel.decrypt(payload).map(Zeroizing::new).map_err(|_| {
            stop(
                CancelReason::ChannelDecryption,
                "a channel message did not decrypt (tampered, replayed or foreign)",
            )
        })
    }

    fn short_auth_string(&self) -> Option<ShortAuthString> {
        self.established.as_ref().map(|s| s.short_auth_string(&self.transaction_id))
    }

    fn check_code(&self) -> Option<CheckCode> {
        self.check_code
    }

    /// Establishes the SAS with the other side's key.
    fn establish(&mut self, theirs: &[u8; KEY_LEN]) -> Result<(), Cancelled> {
        let ours = self.ours.take().ok_or(stop(CancelReason::UnexpectedMessage, "a second SAS key"))?;
        let established = ours
            .establish(theirs)
            .map_err(|_| stop(CancelReason::KeyAgreement, "the SAS key agreement failed"))?;
        self.established = Some(established);
        Ok(())
    }

    fn verify_mac(&mut self, mac: &[u8]) -> Result<(), Cancelled> {
        let sas = self
            .established
            .as_ref()
            .ok_or(stop(CancelReason::UnexpectedMessage, "a SAS MAC came before the SAS keys"))?;
        if self.their_mac_ok {
            return Err(stop(CancelReason::UnexpectedMessage, "a second SAS MAC"));
        }
        if mac.len() != KEY_LEN {
            return Err(stop(CancelReason::MalformedMessage, "the SAS MAC is not 32 bytes"));
        }
        sas.verify_mac(&self.transaction_id, MAC_KEY_ID, &self.channel_keys, mac)
            .map_err(|_| stop(CancelReason::MacMismatch, "the other device's SAS MAC does not match"))?;
        self.their_mac_ok = true;
        Ok(())
    }

    fn confirm(&mut self) -> Result<()> {
        if self.cancelled.is_some() || self.confirmed {
            return Err(Error::UnexpectedVerificationStep);
        }
        let sas = self.established.as_ref().ok_or(Error::UnexpectedVerificationStep)?;
        let mac = sas.mac(&self.transaction_id, MAC_KEY_ID, &self.channel_keys);
        self.send(KIND_SAS_MAC, &mac);
        self.confirmed = true;
        Ok(())
    }

    fn both_macs(&self) -> bool {
        self.cancelled.is_none() && self.confirmed && self.their_mac_ok
    }

    fn state(&self, done: bool) -> LinkState {
        if let Some(why) = self.cancelled {
            LinkState::Cancelled(why)
        } else if self.channel.is_none() {
            LinkState::WaitingForChannel
        } else if self.established.is_none() {
            LinkState::ExchangingKeys
        } else if done {
            LinkState::Done
        } else if !self.confirmed {
            LinkState::Compare
        } else if !self.their_mac_ok {
            LinkState::Confirmed
        } else {
            LinkState::Verified
        }
    }

    fn encrypt_raw(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.channel.as_mut().map(|c| c.encrypt(plaintext)).ok_or(Error::UnexpectedVerificationStep)
    }
}

/// Splits `kind || body`.
fn kind_of(plaintext: &[u8]) -> Result<(u8, &[u8]), Cancelled> {
    plaintext
        .split_first()
        .map(|(k, b)| (*k, b))
        .ok_or(stop(CancelReason::UnexpectedMessage, "an empty pairing message"))
}

const UNEXPECTED_KIND: Cancelled =
    stop(CancelReason::UnexpectedMessage, "an unexpected pairing message kind");

/// The new device's side: shows the PIN/QR, commits to its SAS key, reveals it, and takes the
/// account key (and maybe the backup key) only after both MACs.
pub struct NewDeviceFlow {
    core: Core,
    ecies: Option<NewDevicePairing>,
    public_key: [u8; KEY_LEN],
    qr: PairingQr,
    account_key: Option<Zeroizing<[u8; KEY_LEN]>>,
    account_key_came: bool,
    backup_key: Option<Zeroizing<[u8; KEY_LEN]>>,
    backup_key_came: bool,
}

impl NewDeviceFlow {
    /// A fresh ephemeral ECIES key for the pairing `pairing_id` (UUIDv7 bytes) on `server_url`.
    pub fn new(pairing_id: [u8; 16], server_url: &str) -> Result<Self> {
        let ecies = NewDevicePairing::new(pairing_id, server_url)?;
        Ok(Self {
            core: Core::new(&pairing_id),
            public_key: ecies.public_key(),
            qr: ecies.qr(),
            ecies: Some(ecies),
            account_key: None,
            account_key_came: false,
            backup_key: None,
            backup_key_came: false,
        })
    }

    /// Our ephemeral public key (`CreatePairing`; relayed by the server for PIN pairing).
    pub fn public_key(&self) -> [u8; KEY_LEN] {
        self.public_key
    }

    /// What the QR code shows.
    pub fn qr(&self) -> &PairingQr {
        &self.qr
    }

    /// Takes the next payload from the existing device (in `GetPairing` order) and returns its
    /// plaintext ([`HELLO`] for the first; for `0x01`/`0x05` it holds a secret: drop it).
    /// Queues what the step calls for. An error means the flow is cancelled (now or before).
    pub fn receive(&mut self, payload: &[u8]) -> Result<Zeroizing<Vec<u8>>, Cancelled> {
        self.core.going()?;
        let result = match self.ecies.take() {
            Some(ecies) => self.open(ecies, payload),
            None => {
                self.core.decrypt(payload).and_then(|plaintext| self.handle(&plaintext).map(|()| plaintext))
            }
        };
        result.map_err(|why| self.cancel_with(why))
    }

    fn open(&mut self, ecies: NewDevicePairing, payload: &[u8]) -> Result<Zeroizing<Vec<u8>>, Cancelled> {
        let (channel, hello) = ecies.accept(payload).map_err(|e| match e {
            Error::PairingDecryption => {
                stop(CancelReason::ChannelDecryption, "the opening message did not decrypt")
            }
            Error::PairingKeyAgreement => {
                stop(CancelReason::KeyAgreement, "the channel key agreement failed")
            }
            _ => stop(CancelReason::MalformedMessage, "a malformed opening message"),
        })?;
        let hello = Zeroizing::new(hello);
        if hello.as_slice() != HELLO {
            return Err(stop(CancelReason::UnexpectedMessage, "unexpected first pairing message"));
        }
        // `accept` checked the length: the existing device's ephemeral key comes first.
        self.core.set_channel(channel, &self.public_key, &payload[..KEY_LEN]);
        let ours = SasVerification::new();
        let commitment = sas::commitment(&ours.public_key());
        self.core.ours = Some(ours);
        self.core.send(KIND_SAS_COMMITMENT, &commitment);
        Ok(hello)
    }

    fn handle(&mut self, plaintext: &[u8]) -> Result<(), Cancelled> {
        let (kind, body) = kind_of(plaintext)?;
        match kind {
            KIND_SAS_KEY => {
                let theirs = key32(body, "the SAS key is not 32 bytes")?;
                let reveal = self
                    .core
                    .ours
                    .as_ref()
                    .map(SasVerification::public_key)
                    .ok_or(stop(CancelReason::UnexpectedMessage, "a second SAS key"))?;
                self.core.establish(&theirs)?;
                self.core.send(KIND_SAS_KEY, &reveal);
            }
            KIND_SAS_MAC => self.core.verify_mac(body)?,
            KIND_ACCOUNT_KEY => {
                if self.account_key_came {
                    return Err(stop(CancelReason::UnexpectedMessage, "a second account key"));
                }
                if !self.core.both_macs() {
                    return Err(stop(
                        CancelReason::UnexpectedMessage,
                        "the account key came before both SAS MACs",
                    ));
                }
                self.account_key = Some(Zeroizing::new(key32(body, "the account key is not 32 bytes")?));
                self.account_key_came = true;
            }
            KIND_BACKUP_KEY => {
                if !self.account_key_came {
                    return Err(stop(
                        CancelReason::UnexpectedMessage,
                        "the backup key came before the account key",
                    ));
                }
                if self.backup_key_came {
                    return Err(stop(CancelReason::UnexpectedMessage, "a second backup key"));
                }
                self.backup_key = Some(Zeroizing::new(key32(body, "the backup key is not 32 bytes")?));
                self.backup_key_came = true;
            }
            _ => return Err(UNEXPECTED_KIND),
        }
        Ok(())
    }

    fn cancel_with(&mut self, why: Cancelled) -> Cancelled {
        self.ecies = None;
        self.account_key = None;
        self.backup_key = None;
        self.core.cancel(why)
    }

    /// The person saw the same emoji on both screens: queues our SAS MAC. Refused
    /// (`UnexpectedVerificationStep`) before the emoji are known, twice, or once cancelled.
    pub fn confirm(&mut self) -> Result<()> {
        self.core.confirm()
    }

    /// The person cancelled (or the emoji differ): the flow stops, no secret is released.
    pub fn cancel(&mut self) {
        self.cancel_with(stop(CancelReason::User, "cancelled on this device"));
    }

    /// The next payload to post, in order (`None` when there is none).
    pub fn take_outgoing(&mut self) -> Option<Vec<u8>> {
        self.core.outgoing.pop_front()
    }

    /// Where the flow is.
    pub fn state(&self) -> LinkState {
        self.core.state(self.account_key_came)
    }

    /// Why it was cancelled, if it was.
    pub fn cancelled(&self) -> Option<Cancelled> {
        self.core.cancelled
    }

    /// The channel's check code, once the channel is open.
    pub fn check_code(&self) -> Option<CheckCode> {
        self.core.check_code()
    }

    /// The emoji and decimals to compare, once both SAS keys are known (and not cancelled).
    pub fn short_auth_string(&self) -> Option<ShortAuthString> {
        self.core.short_auth_string()
    }

    /// Whether the person confirmed here.
    pub fn confirmed(&self) -> bool {
        self.core.confirmed
    }

    /// The account key, once it came after both MACs (taken once; never after a cancel).
    pub fn take_account_key(&mut self) -> Option<AccountKey> {
        self.core.going().ok()?;
        self.account_key.take().map(|secret| AccountKey::from_secret_bytes(&secret))
    }

    /// The key-backup key, if the existing device sent one after the account key (taken once;
    /// never after a cancel).
    pub fn take_backup_key(&mut self) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        self.core.going().ok()?;
        self.backup_key.take()
    }

    /// Encrypts any plaintext on the channel, outside the flow's steps: for tests that play a
    /// misbehaving device. Refused before the channel is open or after a cancel.
    pub fn encrypt_raw(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.core.encrypt_raw(plaintext)
    }
}

impl std::fmt::Debug for NewDeviceFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDeviceFlow")
            .field("pairing_id", &self.core.transaction_id)
            .field("state", &self.state().code())
            .finish_non_exhaustive()
    }
}

/// The existing device's side: opens the channel, answers the commitment with its SAS key,
/// checks the reveal and the MAC, and only then sends the account key (and maybe the backup
/// key).
pub struct ExistingDeviceFlow {
    core: Core,
    check_code: CheckCode,
    their_commitment: Option<[u8; KEY_LEN]>,
    account_key_sent: bool,
    backup_key_sent: bool,
}

impl ExistingDeviceFlow {
    /// Opens the channel to the new device's `new_device_public_key` for the pairing
    /// `pairing_id`; the first outgoing payload is the opening message (which takes the
    /// pairing for this device).
    pub fn connect(pairing_id: [u8; 16], new_device_public_key: &[u8]) -> Result<Self> {
        let (channel, initial) = pairing::connect(new_device_public_key, HELLO)?;
        let mut core = Core::new(&pairing_id);
        let check_code = channel.check_code();
        // `connect` checked the key's length; the initial message starts with our ephemeral key.
        core.set_channel(channel, new_device_public_key, &initial[..KEY_LEN]);
        core.outgoing.push_back(initial);
        Ok(Self { core, check_code, their_commitment: None, account_key_sent: false, backup_key_sent: false })
    }

    /// Takes the next payload from the new device (in `GetPairing` order) and returns its
    /// plaintext. Queues what the step calls for. An error means the flow is cancelled (now or
    /// before).
    pub fn receive(&mut self, payload: &[u8]) -> Result<Zeroizing<Vec<u8>>, Cancelled> {
        self.core.going()?;
        let result =
            self.core.decrypt(payload).and_then(|plaintext| self.handle(&plaintext).map(|()| plaintext));
        result.map_err(|why| self.core.cancel(why))
    }

    fn handle(&mut self, plaintext: &[u8]) -> Result<(), Cancelled> {
        let (kind, body) = kind_of(plaintext)?;
        match kind {
            KIND_SAS_COMMITMENT => {
                if self.their_commitment.is_some() {
                    return Err(stop(CancelReason::UnexpectedMessage, "a second SAS commitment"));
                }
                self.their_commitment = Some(key32(body, "the SAS commitment is not 32 bytes")?);
                let ours = SasVerification::new();
                let key = ours.public_key();
                self.core.ours = Some(ours);
                self.core.send(KIND_SAS_KEY, &key);
            }
            KIND_SAS_KEY => {
                let commitment = self
                    .their_commitment
                    .ok_or(stop(CancelReason::UnexpectedMessage, "a SAS key before the commitment"))?;
                if self.core.ours.is_none() {
                    return Err(stop(CancelReason::UnexpectedMessage, "a second SAS key"));
                }
                let theirs = key32(body, "the SAS key is not 32 bytes")?;
                if !sas::check_commitment(&theirs, &commitment) {
                    return Err(stop(
                        CancelReason::CommitmentMismatch,
                        "the new device's SAS key does not match its commitment",
                    ));
                }
                self.core.establish(&theirs)?;
            }
            KIND_SAS_MAC => self.core.verify_mac(body)?,
            _ => return Err(UNEXPECTED_KIND),
        }
        Ok(())
    }

    /// The person saw the same emoji on both screens: queues our SAS MAC. Refused
    /// (`UnexpectedVerificationStep`) before the emoji are known, twice, or once cancelled.
    pub fn confirm(&mut self) -> Result<()> {
        self.core.confirm()
    }

    /// The person cancelled (or the emoji differ): the flow stops, no secret is sent.
    pub fn cancel(&mut self) {
        self.core.cancel(stop(CancelReason::User, "cancelled on this device"));
    }

    /// Whether the person confirmed here and the new device's MAC verified: only then may the
    /// account key go.
    pub fn verified(&self) -> bool {
        self.core.both_macs()
    }

    /// Queues `0x01 || account key secret`. Refused (`UnexpectedVerificationStep`, nothing
    /// queued) unless [`ExistingDeviceFlow::verified`], or when sent already.
    pub fn send_account_key(&mut self, account_key: &AccountKey) -> Result<()> {
        if !self.verified() || self.account_key_sent {
            return Err(Error::UnexpectedVerificationStep);
        }
        self.core.send(KIND_ACCOUNT_KEY, &*account_key.to_secret_bytes());
        self.account_key_sent = true;
        Ok(())
    }

    /// Queues `0x05 || key-backup key`, optional. Refused (`UnexpectedVerificationStep`,
    /// nothing queued) before the account key, when sent already, or once cancelled.
    pub fn send_backup_key(&mut self, backup_key: &[u8; KEY_LEN]) -> Result<()> {
        if self.core.cancelled.is_some() || !self.account_key_sent || self.backup_key_sent {
            return Err(Error::UnexpectedVerificationStep);
        }
        self.core.send(KIND_BACKUP_KEY, backup_key);
        self.backup_key_sent = true;
        Ok(())
    }

    /// The next payload to post, in order (`None` when there is none).
    pub fn take_outgoing(&mut self) -> Option<Vec<u8>> {
        self.core.outgoing.pop_front()
    }

    /// Where the flow is.
    pub fn state(&self) -> LinkState {
        self.core.state(self.account_key_sent)
    }

    /// Why it was cancelled, if it was.
    pub fn cancelled(&self) -> Option<Cancelled> {
        self.core.cancelled
    }

    /// The channel's check code.
    pub fn check_code(&self) -> CheckCode {
        self.check_code
    }

    /// The emoji and decimals to compare, once the new device revealed a SAS key that matches
    /// its commitment (and not cancelled).
    pub fn short_auth_string(&self) -> Option<ShortAuthString> {
        self.core.short_auth_string()
    }

    /// Whether the person confirmed here.
    pub fn confirmed(&self) -> bool {
        self.core.confirmed
    }

    /// Encrypts any plaintext on the channel, outside the flow's steps: for tests that play a
    /// misbehaving device. Refused after a cancel.
    pub fn encrypt_raw(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.core.encrypt_raw(plaintext)
    }
}

impl std::fmt::Debug for ExistingDeviceFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExistingDeviceFlow")
            .field("pairing_id", &self.core.transaction_id)
            .field("state", &self.state().code())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const ID: [u8; 16] =
        [0x01, 0x8f, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x90, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07];

    fn account_key() -> AccountKey {
        AccountKey::generate(&mut crate::OsRng::new())
    }

    fn drain_new(flow: &mut NewDeviceFlow) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| flow.take_outgoing()).collect()
    }

    fn drain_existing(flow: &mut ExistingDeviceFlow) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| flow.take_outgoing()).collect()
    }

    /// Delivers every payload `from` queued to `to`, returning the plaintexts.
    fn to_existing(from: &mut NewDeviceFlow, to: &mut ExistingDeviceFlow) -> Vec<Vec<u8>> {
        drain_new(from).iter().map(|p| to.receive(p).unwrap().to_vec()).collect()
    }

    fn to_new(from: &mut ExistingDeviceFlow, to: &mut NewDeviceFlow) -> Vec<Vec<u8>> {
        drain_existing(from).iter().map(|p| to.receive(p).unwrap().to_vec()).collect()
    }

    fn kinds(plaintexts: &[Vec<u8>]) -> Vec<(u8, usize)> {
        plaintexts.iter().map(|p| (p[0], p.len())).collect()
    }

    /// Both flows up to the emoji: (new, existing).
    fn to_compare() -> (NewDeviceFlow, ExistingDeviceFlow) {
        let mut new = NewDeviceFlow::new(ID, "https://chat.lan").unwrap();
        assert_eq!(new.state(), LinkState::WaitingForChannel);
        let mut existing = ExistingDeviceFlow::connect(ID, &new.public_key()).unwrap();
        assert_eq!(existing.state(), LinkState::ExchangingKeys);
        assert_eq!(to_new(&mut existing, &mut new), [HELLO.to_vec()]);
        assert_eq!(new.state(), LinkState::ExchangingKeys);
        assert_eq!(kinds(&to_existing(&mut new, &mut existing)), [(KIND_SAS_COMMITMENT, 33)]);
        assert!(existing.short_auth_string().is_none());
        assert_eq!(kinds(&to_new(&mut existing, &mut new)), [(KIND_SAS_KEY, 33)]);
        assert_eq!(kinds(&to_existing(&mut new, &mut existing)), [(KIND_SAS_KEY, 33)]);
        assert_eq!(new.state(), LinkState::Compare);
        assert_eq!(existing.state(), LinkState::Compare);
        assert_eq!(new.short_auth_string(), existing.short_auth_string());
        assert_eq!(new.check_code(), Some(existing.check_code()));
        (new, existing)
    }

    /// Both confirm, both MACs verify.
    fn to_verified() -> (NewDeviceFlow, ExistingDeviceFlow) {
        let (mut new, mut existing) = to_compare();
        new.confirm().unwrap();
        assert_eq!(new.state(), LinkState::Confirmed);
        existing.confirm().unwrap();
        assert_eq!(kinds(&to_existing(&mut new, &mut existing)), [(KIND_SAS_MAC, 33)]);
        assert_eq!(kinds(&to_new(&mut existing, &mut new)), [(KIND_SAS_MAC, 33)]);
        assert!(existing.verified());
        assert_eq!((new.state(), existing.state()), (LinkState::Verified, LinkState::Verified));
        (new, existing)
    }

    #[test]
    fn both_flows_link_with_and_without_the_backup_key() {
        for with_backup in [false, true] {
            let (mut new, mut existing) = to_verified();
            let account_key = account_key();
            existing.send_account_key(&account_key).unwrap();
            if with_backup {
                existing.send_backup_key(&[0x42; 32]).unwrap();
            }
            assert_eq!(existing.state(), LinkState::Done);
            let heard = to_new(&mut existing, &mut new);
            let mut expected = vec![[&[KIND_ACCOUNT_KEY][..], &*account_key.to_secret_bytes()].concat()];
            if with_backup {
                expected.push([&[KIND_BACKUP_KEY][..], &[0x42; 32]].concat());
            }
            assert_eq!(heard, expected);
            assert_eq!(new.state(), LinkState::Done);
            assert_eq!(new.take_account_key().unwrap().public_key(), account_key.public_key());
            assert!(new.take_account_key().is_none(), "taken once");
            assert_eq!(new.take_backup_key().map(|k| *k), with_backup.then_some([0x42; 32]));
            assert!(new.take_outgoing().is_none() && existing.take_outgoing().is_none());
        }
    }

    /// A new device written from the documented layout (FORMAT.md) against the flow of the
    /// existing device, and the other way round: the bytes are the documented ones.
    #[test]
    fn the_bytes_follow_the_documented_layout() {
        let txn = uuid_text(&ID);
        assert_eq!(txn, "018f3a4b-5c6d-7e8f-90a1-b2c3d4e5f607");
        // Hand-made new device, flow on the existing side.
        let ecies = NewDevicePairing::new(ID, "https://x").unwrap();
        let new_key = ecies.public_key();
        let mut existing = ExistingDeviceFlow::connect(ID, &new_key).unwrap();
        let initial = existing.take_outgoing().unwrap();
        let (mut channel, hello) = ecies.accept(&initial).unwrap();
        assert_eq!(hello, HELLO);
        let ours = SasVerification::new();
        let reveal = ours.public_key();
        let commitment = sas::commitment(&reveal);
        existing.receive(&channel.encrypt(&[&[0x02][..], &commitment].concat())).unwrap();
        let their_key = channel.decrypt(&existing.take_outgoing().unwrap()).unwrap();
        assert_eq!((their_key[0], their_key.len()), (0x03, 33));
        let sas_here = ours.establish(&their_key[1..]).unwrap();
        existing.receive(&channel.encrypt(&[&[0x03][..], &reveal].concat())).unwrap();
        assert_eq!(existing.short_auth_string(), Some(sas_here.short_auth_string(&txn)));
        let channel_keys = [&new_key[..], &initial[..32]].concat();
        existing.confirm().unwrap();
        let mac = channel.decrypt(&existing.take_outgoing().unwrap()).unwrap();
        assert_eq!(mac[0], 0x04);
        sas_here.verify_mac(&txn, "pairing_channel", &channel_keys, &mac[1..]).unwrap();
        let our_mac = sas_here.mac(&txn, "pairing_channel", &channel_keys);
        existing.receive(&channel.encrypt(&[&[0x04][..], &our_mac].concat())).unwrap();
        let account_key = account_key();
        existing.send_account_key(&account_key).unwrap();
        existing.send_backup_key(&[9; 32]).unwrap();
        let secret = channel.decrypt(&existing.take_outgoing().unwrap()).unwrap();
        assert_eq!(secret, [&[0x01][..], &*account_key.to_secret_bytes()].concat());
        let backup = channel.decrypt(&existing.take_outgoing().unwrap()).unwrap();
        assert_eq!(backup, [&[0x05][..], &[9; 32]].concat());

        // Hand-made existing device, flow on the new side.
        let mut new = NewDeviceFlow::new(ID, "https://x").unwrap();
        let (mut channel, initial) = pairing::connect(&new.public_key(), b"KITSULAN-LINK/2 hello").unwrap();
        new.receive(&initial).unwrap();
        let commitment = channel.decrypt(&new.take_outgoing().unwrap()).unwrap();
        assert_eq!((commitment[0], commitment.len()), (0x02, 33));
        let ours = SasVerification::new();
        new.receive(&channel.encrypt(&[&[0x03][..], &ours.public_key()].concat())).unwrap();
        let reveal = channel.decrypt(&new.take_outgoing().unwrap()).unwrap();
        assert_eq!(reveal[0], 0x03);
        assert!(sas::check_commitment(&reveal[1..].try_into().unwrap(), &commitment[1..]));
        let sas_here = ours.establish(&reveal[1..]).unwrap();
        assert_eq!(new.short_auth_string(), Some(sas_here.short_auth_string(&txn)));
        let channel_keys = [&new.public_key()[..], &initial[..32]].concat();
        let our_mac = sas_here.mac(&txn, "pairing_channel", &channel_keys);
        new.receive(&channel.encrypt(&[&[0x04][..], &our_mac].concat())).unwrap();
        new.confirm().unwrap();
        let mac = channel.decrypt(&new.take_outgoing().unwrap()).unwrap();
        sas_here.verify_mac(&txn, "pairing_channel", &channel_keys, &mac[1..]).unwrap();
        new.receive(&channel.encrypt(&[&[0x01][..], &[3; 32]].concat())).unwrap();
        assert_eq!(*new.take_account_key().unwrap().to_secret_bytes(), [3; 32]);
        assert!(new.take_backup_key().is_none(), "a flow without the backup key completes");
    }

    fn assert_stopped_new(
        new: &mut NewDeviceFlow,
        why: Result<Zeroizing<Vec<u8>>, Cancelled>,
        reason: CancelReason,
    ) {
        let error = why.unwrap_err();
        assert_eq!(error.reason, reason, "{error}");
        assert_eq!(new.state(), LinkState::Cancelled(error));
        assert!(new.take_outgoing().is_none(), "nothing more is posted");
        assert!(new.take_account_key().is_none() && new.take_backup_key().is_none());
        assert!(new.short_auth_string().is_none());
        assert_eq!(new.confirm(), Err(Error::UnexpectedVerificationStep));
        assert_eq!(new.receive(b"anything").unwrap_err(), error, "a stopped flow stays stopped");
    }

    fn assert_stopped_existing(
        existing: &mut ExistingDeviceFlow,
        why: Result<Zeroizing<Vec<u8>>, Cancelled>,
        reason: CancelReason,
    ) {
        let error = why.unwrap_err();
        assert_eq!(error.reason, reason, "{error}");
        assert_eq!(existing.state(), LinkState::Cancelled(error));
        assert!(!existing.verified());
        assert_eq!(existing.send_account_key(&account_key()), Err(Error::UnexpectedVerificationStep));
        assert!(existing.take_outgoing().is_none(), "no account key, nothing at all");
        assert!(existing.short_auth_string().is_none());
        assert_eq!(existing.confirm(), Err(Error::UnexpectedVerificationStep));
        assert_eq!(existing.receive(b"anything").unwrap_err(), error);
    }

    #[test]
    fn a_reveal_that_breaks_the_commitment_stops_the_existing_device() {
        let ecies = NewDevicePairing::new(ID, "x").unwrap();
        let mut existing = ExistingDeviceFlow::connect(ID, &ecies.public_key()).unwrap();
        let (mut channel, _) = ecies.accept(&existing.take_outgoing().unwrap()).unwrap();
        let committed = SasVerification::new();
        existing
            .receive(&channel.encrypt(&[&[0x02][..], &sas::commitment(&committed.public_key())].concat()))
            .unwrap();
        existing.take_outgoing().unwrap();
        // A middleman that chose its key after seeing the existing device's.
        let other = SasVerification::new().public_key();
        let result = existing.receive(&channel.encrypt(&[&[0x03][..], &other].concat()));
        assert_stopped_existing(&mut existing, result, CancelReason::CommitmentMismatch);
    }

    #[test]
    fn a_bad_mac_stops_either_side_before_the_account_key() {
        // The new device's MAC is bad: the existing device never sends the account key.
        let (mut new, mut existing) = to_compare();
        existing.confirm().unwrap();
        drain_existing(&mut existing);
        let forged = new.encrypt_raw(&[&[KIND_SAS_MAC][..], &[0; 32]].concat()).unwrap();
        let result = existing.receive(&forged);
        assert_stopped_existing(&mut existing, result, CancelReason::MacMismatch);

        // The existing device's MAC is bad: the new device takes no account key after it.
        let (mut new, mut existing) = to_compare();
        new.confirm().unwrap();
        drain_new(&mut new);
        let forged = existing.encrypt_raw(&[&[KIND_SAS_MAC][..], &[0; 32]].concat()).unwrap();
        let result = new.receive(&forged);
        assert_stopped_new(&mut new, result, CancelReason::MacMismatch);
    }

    /// Mallory sits between two channels and relays every plaintext: the SAS keys (so the
    /// emoji) match, but each MAC covers other channel keys, so neither side goes on.
    #[test]
    fn a_relaying_middleman_is_caught_by_the_macs() {
        let mut new = NewDeviceFlow::new(ID, "x").unwrap();
        let mallory_ecies = NewDevicePairing::new(ID, "x").unwrap();
        // The existing device scanned Mallory's key; Mallory opens her own channel to the new one.
        let mut existing = ExistingDeviceFlow::connect(ID, &mallory_ecies.public_key()).unwrap();
        let (mut to_existing_ch, _) = mallory_ecies.accept(&existing.take_outgoing().unwrap()).unwrap();
        let (mut to_new_ch, initial) = pairing::connect(&new.public_key(), HELLO).unwrap();
        new.receive(&initial).unwrap();
        fn relay_to_existing(
            new: &mut NewDeviceFlow,
            existing: &mut ExistingDeviceFlow,
            from_new: &mut PairingChannel,
            to_existing: &mut PairingChannel,
        ) -> Vec<Result<Zeroizing<Vec<u8>>, Cancelled>> {
            drain_new(new)
                .iter()
                .map(|p| existing.receive(&to_existing.encrypt(&from_new.decrypt(p).unwrap())))
                .collect()
        }
        let results = relay_to_existing(&mut new, &mut existing, &mut to_new_ch, &mut to_existing_ch);
        assert!(results.iter().all(Result::is_ok));
        // (The relay in the other direction needs the channels the other way round.)
        let key = drain_existing(&mut existing);
        let plain = to_existing_ch.decrypt(&key[0]).unwrap();
        new.receive(&to_new_ch.encrypt(&plain)).unwrap();
        let results = relay_to_existing(&mut new, &mut existing, &mut to_new_ch, &mut to_existing_ch);
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(new.short_auth_string(), existing.short_auth_string(), "the emoji match");
        new.confirm().unwrap();
        existing.confirm().unwrap();
        let results = relay_to_existing(&mut new, &mut existing, &mut to_new_ch, &mut to_existing_ch);
        assert_stopped_existing(
            &mut existing,
            results.into_iter().next().unwrap(),
            CancelReason::MacMismatch,
        );
    }

    #[test]
    fn messages_out_of_turn_cancel_the_new_device() {
        // `None`: bytes that are no channel message at all.
        let cases: Vec<(&str, Option<Vec<u8>>, CancelReason)> = vec![
            (
                "account key before the MACs",
                Some([&[KIND_ACCOUNT_KEY][..], &[1; 32]].concat()),
                CancelReason::UnexpectedMessage,
            ),
            (
                "backup key first",
                Some([&[KIND_BACKUP_KEY][..], &[1; 32]].concat()),
                CancelReason::UnexpectedMessage,
            ),
            (
                "a commitment to the new device",
                Some([&[KIND_SAS_COMMITMENT][..], &[1; 32]].concat()),
                CancelReason::UnexpectedMessage,
            ),
            ("an unknown kind", Some(vec![0x06, 1, 2]), CancelReason::UnexpectedMessage),
            ("an empty message", Some(vec![]), CancelReason::UnexpectedMessage),
            (
                "a MAC before the SAS keys",
                Some([&[KIND_SAS_MAC][..], &[1; 32]].concat()),
                CancelReason::UnexpectedMessage,
            ),
            ("a short SAS key", Some(vec![KIND_SAS_KEY, 1, 2]), CancelReason::MalformedMessage),
            (
                "a non-contributory SAS key",
                Some([&[KIND_SAS_KEY][..], &[0; 32]].concat()),
                CancelReason::KeyAgreement,
            ),
            ("garbage", None, CancelReason::ChannelDecryption),
        ];
        for (name, plaintext, reason) in cases {
            let mut new = NewDeviceFlow::new(ID, "x").unwrap();
            let mut existing = ExistingDeviceFlow::connect(ID, &new.public_key()).unwrap();
            to_new(&mut existing, &mut new);
            let payload = match plaintext {
                Some(plaintext) => existing.encrypt_raw(&plaintext).unwrap(),
                None => vec![7; 40],
            };
            let result = new.receive(&payload);
            assert_eq!(result.as_ref().unwrap_err().reason, reason, "{name}");
            assert_stopped_new(&mut new, result, reason);
        }
    }

    #[test]
    fn the_account_key_is_refused_until_both_macs_and_once() {
        // Their MAC verified but the person has not confirmed here.
        let (mut new, mut existing) = to_compare();
        existing.confirm().unwrap();
        to_new(&mut existing, &mut new);
        assert_eq!(new.state(), LinkState::Compare);
        let early = existing.encrypt_raw(&[&[KIND_ACCOUNT_KEY][..], &[1; 32]].concat()).unwrap();
        let result = new.receive(&early);
        assert!(result.as_ref().unwrap_err().detail.contains("before both SAS MACs"));
        assert_stopped_new(&mut new, result, CancelReason::UnexpectedMessage);

        // Confirmed here, their MAC not yet.
        let (mut new, mut existing) = to_compare();
        new.confirm().unwrap();
        let early = existing.encrypt_raw(&[&[KIND_ACCOUNT_KEY][..], &[1; 32]].concat()).unwrap();
        let result = new.receive(&early);
        assert_stopped_new(&mut new, result, CancelReason::UnexpectedMessage);

        // A second account key, a second backup key, a short backup key: all cancel and wipe
        // what came.
        for extra in [
            vec![[&[KIND_ACCOUNT_KEY][..], &[2; 32]].concat()],
            vec![[&[KIND_BACKUP_KEY][..], &[2; 32]].concat(), [&[KIND_BACKUP_KEY][..], &[3; 32]].concat()],
            vec![[&[KIND_BACKUP_KEY][..], &[2; 31]].concat()],
            vec![[&[KIND_SAS_MAC][..], &[2; 32]].concat()],
        ] {
            let (mut new, mut existing) = to_verified();
            existing.send_account_key(&account_key()).unwrap();
            to_new(&mut existing, &mut new);
            let (last, first) = extra.split_last().unwrap();
            for plaintext in first {
                new.receive(&existing.encrypt_raw(plaintext).unwrap()).unwrap();
            }
            let result = new.receive(&existing.encrypt_raw(last).unwrap());
            let reason = result.as_ref().unwrap_err().reason;
            assert!(matches!(reason, CancelReason::UnexpectedMessage | CancelReason::MalformedMessage));
            assert_stopped_new(&mut new, result, reason);
        }
    }

    #[test]
    fn the_existing_device_sends_secrets_only_in_turn() {
        let (mut new, mut existing) = to_compare();
        let key = account_key();
        assert_eq!(existing.send_backup_key(&[1; 32]), Err(Error::UnexpectedVerificationStep));
        assert_eq!(existing.send_account_key(&key), Err(Error::UnexpectedVerificationStep));
        existing.confirm().unwrap();
        assert_eq!(existing.confirm(), Err(Error::UnexpectedVerificationStep), "confirmed once");
        assert_eq!(existing.send_account_key(&key), Err(Error::UnexpectedVerificationStep));
        assert_eq!(kinds(&to_new(&mut existing, &mut new)), [(KIND_SAS_MAC, 33)], "nothing else queued");
        new.confirm().unwrap();
        to_existing(&mut new, &mut existing);
        existing.send_account_key(&key).unwrap();
        assert_eq!(existing.send_account_key(&key), Err(Error::UnexpectedVerificationStep));
        existing.send_backup_key(&[1; 32]).unwrap();
        assert_eq!(existing.send_backup_key(&[1; 32]), Err(Error::UnexpectedVerificationStep));

        // Out of turn on the existing side: a new device's account key, a second commitment,
        // a key before the commitment, a replayed message.
        let cases: Vec<(Vec<u8>, CancelReason)> = vec![
            ([&[KIND_ACCOUNT_KEY][..], &[1; 32]].concat(), CancelReason::UnexpectedMessage),
            ([&[KIND_BACKUP_KEY][..], &[1; 32]].concat(), CancelReason::UnexpectedMessage),
            ([&[KIND_SAS_KEY][..], &[1; 32]].concat(), CancelReason::UnexpectedMessage),
            ([&[KIND_SAS_COMMITMENT][..], &[1; 31]].concat(), CancelReason::MalformedMessage),
        ];
        for (plaintext, reason) in cases {
            // A new device by hand, so that this is its first message on the channel.
            let ecies = NewDevicePairing::new(ID, "x").unwrap();
            let mut existing = ExistingDeviceFlow::connect(ID, &ecies.public_key()).unwrap();
            let (mut channel, _) = ecies.accept(&existing.take_outgoing().unwrap()).unwrap();
            let result = existing.receive(&channel.encrypt(&plaintext));
            assert_stopped_existing(&mut existing, result, reason);
        }
        let mut new = NewDeviceFlow::new(ID, "x").unwrap();
        let mut existing = ExistingDeviceFlow::connect(ID, &new.public_key()).unwrap();
        to_new(&mut existing, &mut new);
        let commitment = drain_new(&mut new);
        existing.receive(&commitment[0]).unwrap();
        let result = existing.receive(&commitment[0]);
        assert_stopped_existing(&mut existing, result, CancelReason::ChannelDecryption);
    }

    #[test]
    fn a_wrong_opening_message_or_a_user_cancel_stops_the_new_device() {
        let mut new = NewDeviceFlow::new(ID, "x").unwrap();
        let (_, initial) = pairing::connect(&new.public_key(), b"KITSULAN-LINK/1 hello").unwrap();
        let result = new.receive(&initial);
        assert_stopped_new(&mut new, result, CancelReason::UnexpectedMessage);

        let mut new = NewDeviceFlow::new(ID, "x").unwrap();
        let result = new.receive(&[1; 10]);
        assert_stopped_new(&mut new, result, CancelReason::MalformedMessage);

        // Cancelled after the account key came: it is wiped, not released.
        let (mut new, mut existing) = to_verified();
        existing.send_account_key(&account_key()).unwrap();
        to_new(&mut existing, &mut new);
        new.cancel();
        assert!(matches!(new.state(), LinkState::Cancelled(Cancelled { reason: CancelReason::User, .. })));
        assert!(new.take_account_key().is_none());

        let (_, mut existing) = to_compare();
        existing.cancel();
        assert_eq!(existing.cancelled().map(|c| c.reason), Some(CancelReason::User));
        assert_eq!(existing.confirm(), Err(Error::UnexpectedVerificationStep));
        assert!(existing.take_outgoing().is_none());
    }
}
