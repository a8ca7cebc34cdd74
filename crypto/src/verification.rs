//! Verifying another person with SAS emoji: the messages and the state machine, shared by the
//! Rust clients and (through the WASM layer) the PWA, so both run exactly one implementation.
//!
//! Two devices of two people, the **initiator** (who pressed "Verify") and the **responder**
//! (the device on which the other person accepted), exchange [`VerificationMessage`]s. The
//! transport is the caller's: KitsuLAN sends them as Olm-encrypted to-device messages
//! (`docs/e2ee.md`, "Verifying a contact"), so each arrives from a known device whose Ed25519 key
//! the caller passes in. The byte format is in `FORMAT.md` ("Verification messages").
//!
//! ```text
//! initiator → every device of the other person   request  (transaction id, sent-at time)
//! responder → initiator                           ready    commitment to its SAS key
//! initiator → responder                           key      its SAS key
//! responder → initiator                           key      its SAS key (the reveal; checked)
//!   both show the 7 emoji (transaction id as text); each person confirms on their device
//! each → other, after its person confirmed        mac      MAC(device Ed25519 key), MAC(account key)
//! each → other, after confirming and verifying    done
//! either, at any time                             cancel   reason
//! ```
//!
//! A side is **done** when its person confirmed, the other side's MACs verified against the
//! keys this device holds for it (its certified device key and the account key pinned for that
//! person), and both `done` messages went. Only then does [`Verification::verified_account_key`]
//! name the key to record as verified.
//!
//! Every step that is not the next one cancels: a message out of turn or a second one of a
//! kind, a revealed key that does not match its commitment, a MAC that does not verify, the
//! emoji declared different, or [`TIMEOUT_MS`] since the request. A cancel from the other side
//! ends it too. Messages of other transactions, and messages from a device other than the one
//! that answered, are ignored (the caller routes by [`peek_transaction_id`]).
//!
//! Each step queues what to send next; the caller takes it with
//! [`Verification::take_outgoing`] and sends every message, in order, to the other device.
//!
//! # Security
//!
//! The responder commits to its SAS key before it sees the initiator's, and the initiator sends
//! its own before it sees the responder's, so a middleman (a server that swapped the device or
//! account keys it hands out) must fix its SAS keys on both sides before it can compute either
//! side's emoji: the 7 emoji (42 bits) then match by chance with probability 2^-42. The MACs
//! bind the long-term keys each side vouches for to the SAS secret, so once the people saw the
//! same emoji, a device whose keys were substituted does not verify. Nothing secret is sent.

use crate::sas::{self, EstablishedSas, SasVerification};
use crate::{Error, Result};

/// The format version byte of every verification message.
pub const VERSION: u8 = 0x01;
/// The key id of the MAC over the sender's device Ed25519 key.
pub const MAC_KEY_ID_DEVICE: &str = "device_ed25519";
/// The key id of the MAC over the sender's account key.
pub const MAC_KEY_ID_ACCOUNT: &str = "account";
/// A request older than this (by its sent-at time) is refused, and a verification not done this
/// long after its request is cancelled with [`CancelReason::Timeout`]: 10 minutes.
pub const TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// How far in the future a request's sent-at time may be (clock skew): 5 minutes.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

const TYPE_REQUEST: u8 = 0x01;
const TYPE_READY: u8 = 0x02;
const TYPE_KEY: u8 = 0x03;
const TYPE_MAC: u8 = 0x04;
const TYPE_DONE: u8 = 0x05;
const TYPE_CANCEL: u8 = 0x06;

/// Why a verification ended without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The person cancelled or declined.
    User,
    /// [`TIMEOUT_MS`] passed since the request.
    Timeout,
    /// A message out of turn, a second one of a kind, or an undecodable one.
    UnexpectedMessage,
    /// The revealed SAS key does not match its commitment, or it was not a valid key.
    KeyMismatch,
    /// A MAC did not verify: the keys differ from the ones this device holds.
    MacMismatch,
    /// The person said the emoji on the two screens differ.
    Mismatch,
    /// Another device of the person accepted the request.
    AcceptedElsewhere,
    /// A reason this version does not know (a cancel still cancels).
    Other(u8),
}

impl CancelReason {
    /// The wire byte.
    pub const fn to_byte(self) -> u8 {
        match self {
            CancelReason::User => 0x01,
            CancelReason::Timeout => 0x02,
            CancelReason::UnexpectedMessage => 0x03,
            CancelReason::KeyMismatch => 0x04,
            CancelReason::MacMismatch => 0x05,
            CancelReason::Mismatch => 0x06,
            CancelReason::AcceptedElsewhere => 0x07,
            CancelReason::Other(b) => b,
        }
    }

    /// From the wire byte.
    pub const fn from_byte(b: u8) -> Self {
        match b {
            0x01 => CancelReason::User,
            0x02 => CancelReason::Timeout,
            0x03 => CancelReason::UnexpectedMessage,
            0x04 => CancelReason::KeyMismatch,
            0x05 => CancelReason::MacMismatch,
            0x06 => CancelReason::Mismatch,
            0x07 => CancelReason::AcceptedElsewhere,
            other => CancelReason::Other(other),
        }
    }

    /// A stable `snake_case` code (for the PWA's messages and for logs).
    pub const fn code(self) -> &'static str {
        match self {
            CancelReason::User => "user",
            CancelReason::Timeout => "timeout",
            CancelReason::UnexpectedMessage => "unexpected_message",
            CancelReason::KeyMismatch => "key_mismatch",
            CancelReason::MacMismatch => "mac_mismatch",
            CancelReason::Mismatch => "mismatch",
            CancelReason::AcceptedElsewhere => "accepted_elsewhere",
            CancelReason::Other(_) => "other",
        }
    }
}

/// What a verification message says (after the version, type and transaction id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `0x01`: please verify me; sent-at time in Unix milliseconds.
    Request {
        /// When the initiator sent it.
        sent_at_ms: u64,
    },
    /// `0x02`: accepted on this device; the commitment to the responder's SAS key.
    Ready {
        /// [`sas::commitment`] of the responder's SAS public key.
        commitment: [u8; 32],
    },
    /// `0x03`: a SAS public key (initiator's first, then the responder's reveal).
    Key {
        /// The ephemeral Curve25519 public key.
        public_key: [u8; 32],
    },
    /// `0x04`: the sender's MACs over its device Ed25519 key and its account key.
    Mac {
        /// MAC with key id [`MAC_KEY_ID_DEVICE`].
        device: [u8; 32],
        /// MAC with key id [`MAC_KEY_ID_ACCOUNT`].
        account: [u8; 32],
    },
    /// `0x05`: the sender confirmed and verified the other side's MACs.
    Done,
    /// `0x06`: the verification is over.
    Cancel {
        /// Why.
        reason: CancelReason,
    },
}

/// One verification message: `version (1) || type (1) || transaction id (16) || body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationMessage {
    /// The transaction id (a UUIDv7 the initiator chose), 16 bytes.
    pub transaction_id: [u8; 16],
    /// The message itself.
    pub body: Body,
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| Error::MalformedVerificationMessage)
}

impl VerificationMessage {
    /// The encoded form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + 64);
        out.push(VERSION);
        let (kind, body): (u8, Vec<u8>) = match &self.body {
            Body::Request { sent_at_ms } => (TYPE_REQUEST, sent_at_ms.to_be_bytes().to_vec()),
            Body::Ready { commitment } => (TYPE_READY, commitment.to_vec()),
            Body::Key { public_key } => (TYPE_KEY, public_key.to_vec()),
            Body::Mac { device, account } => (TYPE_MAC, [device.as_slice(), account.as_slice()].concat()),
            Body::Done => (TYPE_DONE, Vec::new()),
            Body::Cancel { reason } => (TYPE_CANCEL, vec![reason.to_byte()]),
        };
        out.push(kind);
        out.extend_from_slice(&self.transaction_id);
        out.extend_from_slice(&body);
        out
    }

    /// Decodes strictly: known version and type, exact body length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let transaction_id = peek_transaction_id(bytes)?;
        let body = bytes.get(18..).ok_or(Error::MalformedVerificationMessage)?;
        let body = match bytes[1] {
            TYPE_REQUEST => Body::Request { sent_at_ms: u64::from_be_bytes(fixed(body)?) },
            TYPE_READY => Body::Ready { commitment: fixed(body)? },
            TYPE_KEY => Body::Key { public_key: fixed(body)? },
            TYPE_MAC => {
                let (device, account) =
                    body.split_at_checked(32).ok_or(Error::MalformedVerificationMessage)?;
                Body::Mac { device: fixed(device)?, account: fixed(account)? }
            }
            TYPE_DONE if body.is_empty() => Body::Done,
            TYPE_CANCEL => {
                let [reason] = fixed::<1>(body)?;
                Body::Cancel { reason: CancelReason::from_byte(reason) }
            }
            _ => return Err(Error::MalformedVerificationMessage),
        };
        Ok(Self { transaction_id, body })
    }
}

/// The transaction id of an encoded message (for routing it to its [`Verification`]), after
/// checking the version and that a type byte is there.
pub fn peek_transaction_id(bytes: &[u8]) -> Result<[u8; 16]> {
    match bytes {
        [VERSION, _, rest @ ..] if rest.len() >= 16 => fixed(&rest[..16]),
        _ => Err(Error::MalformedVerificationMessage),
    }
}

/// Whether encoded bytes are a request (which starts a [`Verification::from_request`]).
pub fn is_request(bytes: &[u8]) -> bool {
    peek_transaction_id(bytes).is_ok() && bytes.get(1) == Some(&TYPE_REQUEST)
}

/// A cancel message for `transaction_id`, e.g. to tell the other devices of the person that
/// one of them accepted ([`CancelReason::AcceptedElsewhere`]).
pub fn cancel_message(transaction_id: [u8; 16], reason: CancelReason) -> Vec<u8> {
    VerificationMessage { transaction_id, body: Body::Cancel { reason } }.to_bytes()
}

/// The text form of a 16-byte UUID: lowercase, hyphenated (the SAS transaction id).
pub fn uuid_text(id: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in id.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The long-term public keys one side vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The device's Ed25519 key (as in its certificate).
    pub device_ed25519: [u8; 32],
    /// The person's account key.
    pub account_key: [u8; 32],
}

/// Which side this device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sent the request.
    Initiator,
    /// Received it.
    Responder,
}

/// Where a verification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Initiator: the request went, no device answered yet. Responder: waiting for the person
    /// to accept ([`Verification::accept`]).
    Requested,
    /// Accepted; the SAS keys are being exchanged.
    Ready,
    /// Both SAS keys known: show [`Verification::emoji`] and ask the person.
    Compare,
    /// The person confirmed here; waiting for the other side's MACs and `done`.
    Confirmed,
    /// Verified: [`Verification::verified_account_key`] may be recorded.
    Done,
    /// Over without success.
    Cancelled {
        /// Why.
        reason: CancelReason,
        /// Whether the other side cancelled (else this side did).
        by_them: bool,
    },
}

impl State {
    /// A stable code: `requested`, `ready`, `compare`, `confirmed`, `done`, `cancelled`.
    pub const fn code(self) -> &'static str {
        match self {
            State::Requested => "requested",
            State::Ready => "ready",
            State::Compare => "compare",
            State::Confirmed => "confirmed",
            State::Done => "done",
            State::Cancelled { .. } => "cancelled",
        }
    }
}

/// One verification of another person, on one device.
pub struct Verification {
    role: Role,
    transaction_id: [u8; 16],
    txn_text: String,
    ours: Identity,
    their_account_key: [u8; 32],
    /// The other device's Ed25519 key: the initiator learns it from the first `ready`.
    their_device: Option<[u8; 32]>,
    requested_at_ms: u64,
    sas: Option<SasVerification>,
    their_commitment: Option<[u8; 32]>,
    established: Option<EstablishedSas>,
    confirmed: bool,
    their_mac_ok: bool,
    done_sent: bool,
    their_done: bool,
    cancelled: Option<(CancelReason, bool)>,
    outbox: std::collections::VecDeque<Vec<u8>>,
}

impl std::fmt::Debug for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verification")
            .field("role", &self.role)
            .field("transaction_id", &self.txn_text)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Verification {
    fn new(
        role: Role,
        transaction_id: [u8; 16],
        ours: Identity,
        their_account_key: [u8; 32],
        their_device: Option<[u8; 32]>,
        requested_at_ms: u64,
    ) -> Self {
        Self {
            role,
            transaction_id,
            txn_text: uuid_text(&transaction_id),
            ours,
            their_account_key,
            their_device,
            requested_at_ms,
            sas: None,
            their_commitment: None,
            established: None,
            confirmed: false,
            their_mac_ok: false,
            done_sent: false,
            their_done: false,
            cancelled: None,
            outbox: Default::default(),
        }
    }

    /// Starts verifying the person whose account key (as this device pinned it) is
    /// `their_account_key`. Queues the request, to send to every device of that person.
    pub fn request(
        transaction_id: [u8; 16],
        ours: Identity,
        their_account_key: [u8; 32],
        now_ms: u64,
    ) -> Self {
        let mut v = Self::new(Role::Initiator, transaction_id, ours, their_account_key, None, now_ms);
        v.push(Body::Request { sent_at_ms: now_ms });
        v
    }

    /// Takes a request that arrived from the device whose certified Ed25519 key is
    /// `their_device_ed25519`, of the person whose pinned account key is `their_account_key`.
    /// Refuses a request that is not one, older than [`TIMEOUT_MS`] or too far in the future.
    pub fn from_request(
        bytes: &[u8],
        their_device_ed25519: [u8; 32],
        their_account_key: [u8; 32],
        ours: Identity,
        now_ms: u64,
    ) -> Result<Self> {
        let message = VerificationMessage::from_bytes(bytes)?;
        let Body::Request { sent_at_ms } = message.body else {
            return Err(Error::MalformedVerificationMessage);
        };
        if now_ms.saturating_sub(sent_at_ms) > TIMEOUT_MS
            || sent_at_ms.saturating_sub(now_ms) > MAX_CLOCK_SKEW_MS
        {
            return Err(Error::VerificationRequestExpired);
        }
        Ok(Self::new(
            Role::Responder,
            message.transaction_id,
            ours,
            their_account_key,
            Some(their_device_ed25519),
            sent_at_ms.min(now_ms),
        ))
    }

    fn push(&mut self, body: Body) {
        self.outbox.push_back(VerificationMessage { transaction_id: self.transaction_id, body }.to_bytes());
    }

    fn finished(&self) -> bool {
        self.cancelled.is_some() || self.state() == State::Done
    }

    /// Cancels from this side (queues the cancel message) unless already over.
    pub fn cancel(&mut self, reason: CancelReason) {
        if self.finished() {
            return;
        }
        self.push(Body::Cancel { reason });
        self.stop(reason, false);
    }

    fn stop(&mut self, reason: CancelReason, by_them: bool) {
        self.cancelled = Some((reason, by_them));
        self.sas = None;
        self.established = None;
    }

    /// Cancels with [`CancelReason::Timeout`] when [`TIMEOUT_MS`] passed since the request.
    /// Returns whether it is (now) cancelled for that reason.
    pub fn check_timeout(&mut self, now_ms: u64) -> bool {
        if !self.finished() && now_ms.saturating_sub(self.requested_at_ms) > TIMEOUT_MS {
            self.cancel(CancelReason::Timeout);
        }
        matches!(self.cancelled, Some((CancelReason::Timeout, _)))
    }

    /// The responder's person accepted: makes the SAS key and queues `ready` with the
    /// commitment to it.
    pub fn accept(&mut self) -> Result<()> {
        if self.role != Role::Responder || self.state() != State::Requested {
            return Err(Error::UnexpectedVerificationStep);
        }
        let sas = SasVerification::new();
        let commitment = sas::commitment(&sas.public_key());
        self.sas = Some(sas);
        self.push(Body::Ready { commitment });
        Ok(())
    }

    /// The person saw the same emoji on both screens: queues our MACs (and `done`, if the
    /// other side's MACs already verified).
    pub fn confirm(&mut self) -> Result<()> {
        if self.state() != State::Compare {
            return Err(Error::UnexpectedVerificationStep);
        }
        let Some(sas) = &self.established else {
            return Err(Error::UnexpectedVerificationStep);
        };
        let device = sas.mac(&self.txn_text, MAC_KEY_ID_DEVICE, &self.ours.device_ed25519);
        let account = sas.mac(&self.txn_text, MAC_KEY_ID_ACCOUNT, &self.ours.account_key);
        self.push(Body::Mac { device: fixed(&device)?, account: fixed(&account)? });
        self.confirmed = true;
        self.maybe_done();
        Ok(())
    }

    /// The person said the emoji differ: cancels with [`CancelReason::Mismatch`].
    pub fn mismatch(&mut self) {
        self.cancel(CancelReason::Mismatch);
    }

    fn maybe_done(&mut self) {
        if self.confirmed && self.their_mac_ok && !self.done_sent {
            self.push(Body::Done);
            self.done_sent = true;
        }
    }

    /// Takes a message from the other side's device (`sender_device_ed25519`, as the transport
    /// authenticated it). Messages of other transactions or from another device are ignored;
    /// anything else that is not the next step cancels (and queues the cancel).
    pub fn receive(&mut self, bytes: &[u8], sender_device_ed25519: [u8; 32]) {
        if self.finished() || peek_transaction_id(bytes).ok() != Some(self.transaction_id) {
            return;
        }
        let message = match VerificationMessage::from_bytes(bytes) {
            Ok(m) => m,
            Err(_) => return self.cancel(CancelReason::UnexpectedMessage),
        };
        match self.their_device {
            Some(known) if known != sender_device_ed25519 => return,
            None => {
                // The initiator before any answer: a device of the person accepts (ready) or
                // declines (cancel); the first ready binds the verification to that device.
                match message.body {
                    Body::Ready { .. } => self.their_device = Some(sender_device_ed25519),
                    Body::Cancel { reason } => return self.stop(reason, true),
                    _ => return self.cancel(CancelReason::UnexpectedMessage),
                }
            }
            Some(_) => {}
        }
        if let Err(reason) = self.step(message.body) {
            self.cancel(reason);
        }
    }

    fn step(&mut self, body: Body) -> std::result::Result<(), CancelReason> {
        use CancelReason::{KeyMismatch, MacMismatch, UnexpectedMessage};
        match (self.role, body) {
            (_, Body::Cancel { reason }) => {
                self.stop(reason, true);
                Ok(())
            }
            (Role::Initiator, Body::Ready { commitment }) if self.their_commitment.is_none() => {
                self.their_commitment = Some(commitment);
                let sas = SasVerification::new();
                self.push(Body::Key { public_key: sas.public_key() });
                self.sas = Some(sas);
                Ok(())
            }
            (Role::Initiator, Body::Key { public_key }) if self.sas.is_some() => {
                let commitment = self.their_commitment.ok_or(UnexpectedMessage)?;
                if !sas::check_commitment(&public_key, &commitment) {
                    return Err(KeyMismatch);
                }
                let sas = self.sas.take().ok_or(UnexpectedMessage)?;
                self.established = Some(sas.establish(&public_key).map_err(|_| KeyMismatch)?);
                Ok(())
            }
            (Role::Responder, Body::Key { public_key }) if self.sas.is_some() => {
                let sas = self.sas.take().ok_or(UnexpectedMessage)?;
                let ours = sas.public_key();
                self.established = Some(sas.establish(&public_key).map_err(|_| KeyMismatch)?);
                self.push(Body::Key { public_key: ours });
                Ok(())
            }
            (_, Body::Mac { device, account }) if !self.their_mac_ok => {
                let sas = self.established.as_ref().ok_or(UnexpectedMessage)?;
                let their_device = self.their_device.ok_or(UnexpectedMessage)?;
                sas.verify_mac(&self.txn_text, MAC_KEY_ID_DEVICE, &their_device, &device)
                    .and_then(|()| {
                        sas.verify_mac(&self.txn_text, MAC_KEY_ID_ACCOUNT, &self.their_account_key, &account)
                    })
                    .map_err(|_| MacMismatch)?;
                self.their_mac_ok = true;
                self.maybe_done();
                Ok(())
            }
            // `done` says the other side verified our MACs: we must have sent them.
            (_, Body::Done) if self.confirmed && self.their_mac_ok && !self.their_done => {
                self.their_done = true;
                Ok(())
            }
            _ => Err(UnexpectedMessage),
        }
    }

    /// The next message to send to the other side (the request: to every device of the
    /// person), in order; `None` when nothing is waiting.
    pub fn take_outgoing(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// Where it stands.
    pub fn state(&self) -> State {
        if let Some((reason, by_them)) = self.cancelled {
            State::Cancelled { reason, by_them }
        } else if self.done_sent && self.their_done {
            State::Done
        } else if self.confirmed {
            State::Confirmed
        } else if self.established.is_some() {
            State::Compare
        } else if self.sas.is_some() || self.their_commitment.is_some() {
            State::Ready
        } else {
            State::Requested
        }
    }

    /// This device's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> [u8; 16] {
        self.transaction_id
    }

    /// The other device's Ed25519 key, once known (the initiator learns it from `ready`).
    pub fn their_device_ed25519(&self) -> Option<[u8; 32]> {
        self.their_device
    }

    /// The other person's account key this verification vouches for.
    pub fn their_account_key(&self) -> [u8; 32] {
        self.their_account_key
    }

    /// The 7 emoji (indices into [`sas::SAS_EMOJI`]) and 3 decimals, from the moment both SAS
    /// keys are known until the end (never after a cancel).
    pub fn short_auth_string(&self) -> Option<sas::ShortAuthString> {
        self.established.as_ref().map(|s| s.short_auth_string(&self.txn_text))
    }

    /// The account key to record as verified, once [`State::Done`].
    pub fn verified_account_key(&self) -> Option<[u8; 32]> {
        (self.state() == State::Done).then_some(self.their_account_key)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const T0: u64 = 1_700_000_000_000;
    const TXN: [u8; 16] =
        [0x01, 0x8f, 0x00, 0x11, 0x22, 0x33, 0x74, 0x44, 0x85, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb];

    fn alice() -> Identity {
        Identity { device_ed25519: [0xa1; 32], account_key: [0xa2; 32] }
    }
    fn bob() -> Identity {
        Identity { device_ed25519: [0xb1; 32], account_key: [0xb2; 32] }
    }

    /// Moves every queued message from `from` to `to`.
    fn pump(from: &mut Verification, from_device: [u8; 32], to: &mut Verification) -> usize {
        let mut n = 0;
        while let Some(m) = from.take_outgoing() {
            to.receive(&m, from_device);
            n += 1;
        }
        n
    }

    fn started() -> (Verification, Verification) {
        let mut a = Verification::request(TXN, alice(), bob().account_key, T0);
        let request = a.take_outgoing().unwrap();
        assert!(is_request(&request));
        let mut b =
            Verification::from_request(&request, alice().device_ed25519, alice().account_key, bob(), T0 + 5)
                .unwrap();
        assert_eq!((a.state(), b.state()), (State::Requested, State::Requested));
        b.accept().unwrap();
        pump(&mut b, bob().device_ed25519, &mut a); // ready
        assert_eq!(a.state(), State::Ready);
        pump(&mut a, alice().device_ed25519, &mut b); // initiator's key
        assert_eq!(b.state(), State::Compare);
        pump(&mut b, bob().device_ed25519, &mut a); // the reveal
        assert_eq!(a.state(), State::Compare);
        (a, b)
    }

    #[test]
    fn both_sides_see_the_same_emoji_and_finish() {
        let (mut a, mut b) = started();
        assert_eq!(a.short_auth_string(), b.short_auth_string());
        assert!(a.short_auth_string().is_some());
        // Bob confirms first; his MAC reaches Alice before she confirmed.
        b.confirm().unwrap();
        pump(&mut b, bob().device_ed25519, &mut a);
        assert_eq!((a.state(), b.state()), (State::Compare, State::Confirmed));
        a.confirm().unwrap(); // MAC and done
        assert_eq!(pump(&mut a, alice().device_ed25519, &mut b), 2);
        assert_eq!(b.state(), State::Done);
        assert_eq!(pump(&mut b, bob().device_ed25519, &mut a), 1); // Bob's done
        assert_eq!(a.state(), State::Done);
        assert_eq!(a.verified_account_key(), Some(bob().account_key));
        assert_eq!(b.verified_account_key(), Some(alice().account_key));
        assert!(a.take_outgoing().is_none() && b.take_outgoing().is_none());
    }

    #[test]
    fn a_substituted_account_key_fails_the_mac() {
        let mut a = Verification::request(TXN, alice(), [0xee; 32], T0); // Alice holds a wrong key for Bob
        let mut b = Verification::from_request(
            &a.take_outgoing().unwrap(),
            alice().device_ed25519,
            alice().account_key,
            bob(),
            T0,
        )
        .unwrap();
        b.accept().unwrap();
        pump(&mut b, bob().device_ed25519, &mut a);
        pump(&mut a, alice().device_ed25519, &mut b);
        pump(&mut b, bob().device_ed25519, &mut a);
        b.confirm().unwrap();
        pump(&mut b, bob().device_ed25519, &mut a);
        assert_eq!(a.state(), State::Cancelled { reason: CancelReason::MacMismatch, by_them: false });
        assert_eq!(a.verified_account_key(), None);
        assert!(a.short_auth_string().is_none());
        pump(&mut a, alice().device_ed25519, &mut b);
        assert_eq!(b.state(), State::Cancelled { reason: CancelReason::MacMismatch, by_them: true });
    }

    #[test]
    fn a_tampered_mac_is_refused() {
        let (mut a, mut b) = started();
        b.confirm().unwrap();
        let mut mac = b.take_outgoing().unwrap();
        let last = mac.len() - 1;
        mac[last] ^= 1;
        a.receive(&mac, bob().device_ed25519);
        assert_eq!(a.state(), State::Cancelled { reason: CancelReason::MacMismatch, by_them: false });
        assert_eq!(a.confirm().unwrap_err(), Error::UnexpectedVerificationStep);
    }

    #[test]
    fn a_reveal_that_breaks_the_commitment_cancels() {
        let mut a = Verification::request(TXN, alice(), bob().account_key, T0);
        let mut b = Verification::from_request(
            &a.take_outgoing().unwrap(),
            alice().device_ed25519,
            alice().account_key,
            bob(),
            T0,
        )
        .unwrap();
        b.accept().unwrap();
        pump(&mut b, bob().device_ed25519, &mut a);
        pump(&mut a, alice().device_ed25519, &mut b);
        let _honest = b.take_outgoing().unwrap();
        let other = VerificationMessage {
            transaction_id: TXN,
            body: Body::Key { public_key: SasVerification::new().public_key() },
        };
        a.receive(&other.to_bytes(), bob().device_ed25519);
        assert_eq!(a.state(), State::Cancelled { reason: CancelReason::KeyMismatch, by_them: false });
    }

    #[test]
    fn out_of_turn_messages_cancel_and_others_are_ignored() {
        let (mut a, _b) = started();
        // Another transaction, or another device: ignored.
        let mut other_txn = TXN;
        other_txn[0] ^= 1;
        a.receive(&cancel_message(other_txn, CancelReason::User), bob().device_ed25519);
        a.receive(&cancel_message(TXN, CancelReason::User), [0x77; 32]);
        assert_eq!(a.state(), State::Compare);
        // Done before any MAC is out of turn.
        a.receive(
            &VerificationMessage { transaction_id: TXN, body: Body::Done }.to_bytes(),
            bob().device_ed25519,
        );
        assert_eq!(a.state(), State::Cancelled { reason: CancelReason::UnexpectedMessage, by_them: false });
        assert!(CancelReason::from_byte(a.take_outgoing().unwrap()[18]) == CancelReason::UnexpectedMessage);
    }

    #[test]
    fn decline_mismatch_timeout_and_stale_requests() {
        let mut a = Verification::request(TXN, alice(), bob().account_key, T0);
        let request = a.take_outgoing().unwrap();
        // Bob declines on one device.
        a.receive(&cancel_message(TXN, CancelReason::User), bob().device_ed25519);
        assert_eq!(a.state(), State::Cancelled { reason: CancelReason::User, by_them: true });

        let (mut a, mut b) = started();
        b.mismatch();
        pump(&mut b, bob().device_ed25519, &mut a);
        assert_eq!(a.state(), State::Cancelled { reason: CancelReason::Mismatch, by_them: true });

        let mut a = Verification::request(TXN, alice(), bob().account_key, T0);
        assert!(!a.check_timeout(T0 + TIMEOUT_MS));
        assert!(a.check_timeout(T0 + TIMEOUT_MS + 1));
        assert_eq!(a.state().code(), "cancelled");

        let at = |now| Verification::from_request(&request, [1; 32], [2; 32], bob(), now).map(|_| ());
        assert_eq!(at(T0 + TIMEOUT_MS + 1), Err(Error::VerificationRequestExpired));
        assert_eq!(at(T0 - MAX_CLOCK_SKEW_MS - 1), Err(Error::VerificationRequestExpired));
        assert_eq!(at(T0 - MAX_CLOCK_SKEW_MS), Ok(()));
        let ready = VerificationMessage { transaction_id: TXN, body: Body::Ready { commitment: [0; 32] } };
        assert!(Verification::from_request(&ready.to_bytes(), [1; 32], [2; 32], bob(), T0).is_err());
    }

    #[test]
    fn wire_format() {
        let m = VerificationMessage {
            transaction_id: TXN,
            body: Body::Request { sent_at_ms: 0x0102_0304_0506_0708 },
        };
        let bytes = m.to_bytes();
        assert_eq!(bytes[..2], [VERSION, 0x01]);
        assert_eq!(bytes[2..18], TXN);
        assert_eq!(bytes[18..], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(VerificationMessage::from_bytes(&bytes), Ok(m));
        for body in [
            Body::Ready { commitment: [3; 32] },
            Body::Key { public_key: [4; 32] },
            Body::Mac { device: [5; 32], account: [6; 32] },
            Body::Done,
            Body::Cancel { reason: CancelReason::Other(0x42) },
        ] {
            let m = VerificationMessage { transaction_id: TXN, body };
            let bytes = m.to_bytes();
            assert_eq!(VerificationMessage::from_bytes(&bytes), Ok(m));
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(VerificationMessage::from_bytes(&longer), Err(Error::MalformedVerificationMessage));
            assert_eq!(
                VerificationMessage::from_bytes(&bytes[..bytes.len() - 1]),
                Err(Error::MalformedVerificationMessage)
            );
        }
        let mut bad_version = bytes.clone();
        bad_version[0] = 2;
        assert_eq!(VerificationMessage::from_bytes(&bad_version), Err(Error::MalformedVerificationMessage));
        let mut bad_type = bytes;
        bad_type[1] = 9;
        assert_eq!(VerificationMessage::from_bytes(&bad_type), Err(Error::MalformedVerificationMessage));
        assert_eq!(uuid_text(&TXN), "018f0011-2233-7444-8555-66778899aabb");
    }
}
