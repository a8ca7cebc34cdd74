//! Linking a new device to an account by QR code or PIN. The server relays opaque messages
//! between the new device and an existing one, and once the existing device approves, issues
//! the new device its session. See docs/e2ee.md.
//!
//! # Security
//! - The PIN (8 digits) and the new device's secret are stored as SHA-256 hashes; PIN lookups
//!   are rate-limited per account and per address, and a pairing lives 5 minutes.
//! - Only the first signed-in device that posts takes a pairing; only it may approve, once.
//! - The new device's tokens are made when it picks them up, so no usable token is ever
//!   stored. What the two devices say to each other is end-to-end encrypted; the server only
//!   counts and relays it.

use std::time::Duration;

use super::auth::{Auth, ClientAddr, NewSession};
use super::names::DeviceName;
use super::rate_limits::address_key;
use super::tokens::{self, hash_token};
use super::{Caller, Error, ErrorReason};
use crate::ids::{DeviceId, PairingId};
use crate::store::{NewDevice, NewPairing, PairingConflict, PairingRecord, PairingStatus, now_ms};

/// How long a pairing lives.
pub const PAIRING_TTL: Duration = Duration::from_secs(5 * 60);
/// Messages per pairing (both sides together).
pub const MAX_MESSAGES: i64 = 32;
/// Bytes per message.
pub const MAX_PAYLOAD: usize = 16 * 1024;

/// A pairing's state as clients see it (expiry included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingState {
    /// Waiting for an existing device.
    Open,
    /// Taken by an existing device.
    Claimed,
    /// Approved, session not yet picked up.
    Approved,
    /// The new device has its session.
    Completed,
    /// Ended by a side.
    Cancelled,
    /// Not finished within its lifetime.
    Expired,
}

/// What a side sees.
pub struct PairingView {
    /// State.
    pub state: PairingState,
    /// The other side's messages (index, payload).
    pub messages: Vec<(i64, Vec<u8>)>,
    /// Expiry (ms).
    pub expires_at_ms: i64,
    /// For the new device, once: its session.
    pub session: Option<NewSession>,
}

/// A new pairing, as the new device needs it.
pub struct OpenedPairing {
    /// The PIN to show.
    pub pin: String,
    /// The secret proving the new device.
    pub secret: String,
    /// Expiry (ms).
    pub expires_at_ms: i64,
}

/// Which side is calling.
pub enum Side<'a> {
    /// The new device, proving itself with its secret.
    NewDevice(&'a str),
    /// A signed-in device.
    Existing(Caller),
}

/// Device pairing.
#[derive(Clone)]
pub struct Pairing {
    pub(super) auth: Auth,
}

fn not_found() -> Error {
    Error::not_found(ErrorReason::PairingNotFound, "no such pairing (or the PIN or secret is wrong)")
}

fn state(record: &PairingRecord, now: i64) -> PairingState {
    match record.status {
        PairingStatus::Completed => PairingState::Completed,
        PairingStatus::Cancelled => PairingState::Cancelled,
        _ if record.expires_at_ms <= now => PairingState::Expired,
        PairingStatus::Open => PairingState::Open,
        PairingStatus::Claimed => PairingState::Claimed,
        PairingStatus::Approved => PairingState::Approved,
    }
}

/// Checks that the pairing can still be talked on.
fn live(record: &PairingRecord, now: i64) -> Result<(), Error> {
    match state(record, now) {
        PairingState::Expired => {
            Err(Error::precondition(ErrorReason::PairingExpired, "the pairing expired; start again"))
        }
        PairingState::Cancelled | PairingState::Completed => {
            Err(Error::precondition(ErrorReason::PairingClosed, "the pairing is finished"))
        }
        _ => Ok(()),
    }
}

fn random_digits(n: usize) -> String {
    (0..n)
        .map(|_| {
            loop {
                let mut byte = [0u8; 1];
                tokens::fill_random(&mut byte);
                // 250 = 25 * 10: reject the rest so every digit is equally likely.
                if byte[0] < 250 {
                    break char::from(b'0' + byte[0] % 10);
                }
            }
        })
        .collect()
}

/// Strips spaces and dashes; `None` unless 8 digits remain.
fn normalize_pin(typed: &str) -> Option<String> {
    let pin: String = typed.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    (pin.len() == 8 && pin.bytes().all(|b| b.is_ascii_digit())).then_some(pin)
}

impl Pairing {
    async fn load(&self, id: PairingId, side: &Side<'_>) -> Result<PairingRecord, Error> {
        let record = self.auth.core.store.pairing(id).await?.ok_or_else(not_found)?;
        match side {
            Side::NewDevice(secret) if hash_token(secret).as_slice() == record.secret_hash.as_slice() => {
                Ok(record)
            }
            Side::NewDevice(_) => Err(not_found()),
            Side::Existing(_) => Ok(record),
        }
    }

    /// Opens a pairing for a new device.
    pub async fn create(
        &self,
        client: ClientAddr,
        id: PairingId,
        public_key: &[u8],
    ) -> Result<OpenedPairing, Error> {
        let core = &self.auth.core;
        if public_key.len() != 32 {
            return Err(Error::invalid(
                ErrorReason::PublicKeyInvalid,
                "public_key",
                "the public key is 32 bytes",
            ));
        }
        core.limiter.take(&core.policy.limits.sign_in, &format!("pairing:{}", address_key(client.0))).await?;
        let now = now_ms();
        let expires_at_ms = now + i64::try_from(PAIRING_TTL.as_millis()).unwrap_or(i64::MAX);
        let secret = tokens::random_token("kps_");
        for _ in 0..8 {
            let pin = random_digits(8);
            let pairing = NewPairing {
                id,
                public_key: public_key.to_vec(),
                pin_hash: hash_token(&pin),
                secret_hash: hash_token(&secret),
                created_at_ms: now,
                expires_at_ms,
            };
            match core.store.create_pairing(&pairing).await? {
                Ok(()) => return Ok(OpenedPairing { pin, secret, expires_at_ms }),
                Err(PairingConflict::Pin) => continue,
                Err(PairingConflict::Id) => {
                    return Err(Error::precondition(
                        ErrorReason::PairingExists,
                        "a pairing with this id exists; pick a new id",
                    ));
                }
            }
        }
        Err(Error::Internal("no free pairing PIN after 8 tries".into()))
    }

    /// Finds a pairing by the PIN typed on an existing device.
    pub async fn find(&self, caller: &Caller, client: ClientAddr, pin: &str) -> Result<PairingRecord, Error> {
        let core = &self.auth.core;
        let limit = &core.policy.limits.pairing_lookups;
        core.limiter.take(limit, &format!("pairing_pin:{}", address_key(client.0))).await?;
        core.limiter.take(limit, &format!("pairing_pin:{}", caller.account_id)).await?;
        let pin = normalize_pin(pin)
            .ok_or_else(|| Error::invalid(ErrorReason::PinInvalid, "pin", "the PIN is 8 digits"))?;
        let record = core.store.pairing_by_pin(&hash_token(&pin), now_ms()).await?.ok_or_else(not_found)?;
        match (record.status, record.claimant) {
            (PairingStatus::Open, _) => Ok(record),
            (PairingStatus::Claimed, Some(claimant)) if claimant == (caller.account_id, caller.device_id) => {
                Ok(record)
            }
            _ => Err(Error::precondition(
                ErrorReason::PairingTaken,
                "another device already took this pairing",
            )),
        }
    }

    /// Posts a message to the other side. A signed-in device takes the pairing with its first post.
    pub async fn post(&self, side: Side<'_>, id: PairingId, payload: &[u8]) -> Result<i64, Error> {
        let store = &self.auth.core.store;
        if payload.is_empty() || payload.len() > MAX_PAYLOAD {
            return Err(Error::invalid(
                ErrorReason::PayloadInvalid,
                "payload",
                format!("a pairing message is 1 to {} KiB", MAX_PAYLOAD / 1024),
            ));
        }
        let record = self.load(id, &side).await?;
        let now = now_ms();
        live(&record, now)?;
        let from_new_device = match &side {
            Side::NewDevice(_) => true,
            Side::Existing(caller) => {
                if !store.claim_pairing(id, (caller.account_id, caller.device_id), now).await? {
                    return Err(Error::precondition(
                        ErrorReason::PairingTaken,
                        "another device already took this pairing",
                    ));
                }
                false
            }
        };
        store.post_pairing_message(id, from_new_device, payload, MAX_MESSAGES).await?.ok_or_else(|| {
            Error::limit(
                ErrorReason::PairingFull,
                format!("a pairing carries at most {MAX_MESSAGES} messages"),
            )
        })
    }

    /// The state and the other side's messages; the new device's session once approved.
    pub async fn get(&self, side: Side<'_>, id: PairingId, after_index: i64) -> Result<PairingView, Error> {
        let core = &self.auth.core;
        let record = self.load(id, &side).await?;
        let now = now_ms();
        let from_new_device = match &side {
            Side::NewDevice(_) => false,
            Side::Existing(caller) => {
                if record.claimant != Some((caller.account_id, caller.device_id)) {
                    return Err(not_found());
                }
                true
            }
        };
        let messages = core.store.pairing_messages(id, from_new_device, after_index).await?;
        let mut session = None;
        let mut view_state = state(&record, now);
        if let (Side::NewDevice(_), PairingState::Approved, Some(device), Some((account, _))) =
            (&side, view_state, record.new_device_id, record.claimant)
            && core.store.complete_pairing(id, now).await?
        {
            let access_ttl = i64::try_from(core.policy.access_ttl.as_millis()).unwrap_or(i64::MAX);
            let refresh_ttl = i64::try_from(core.policy.refresh_ttl.as_millis()).unwrap_or(i64::MAX);
            let issued = tokens::issue(now, access_ttl, refresh_ttl);
            if !core.store.replace_tokens(device, &issued.stored, now).await? {
                return Err(Error::precondition(
                    ErrorReason::PairingClosed,
                    "the new device was signed out before it joined",
                ));
            }
            tracing::info!(%account, %device, pairing = %id, "paired device picked up its session");
            view_state = PairingState::Completed;
            session = Some(NewSession {
                account_id: account,
                device_id: device,
                access_token: issued.access,
                access_expires_at_ms: issued.stored.access_expires_at_ms,
                refresh_token: issued.refresh,
                refresh_expires_at_ms: issued.stored.refresh_expires_at_ms,
                password_reset_until_ms: 0,
            });
        }
        Ok(PairingView { state: view_state, messages, expires_at_ms: record.expires_at_ms, session })
    }

    /// Approves a pairing the caller took: the new device joins the caller's account.
    pub async fn approve(
        &self,
        caller: &Caller,
        id: PairingId,
        device_name: &str,
    ) -> Result<DeviceId, Error> {
        let core = &self.auth.core;
        let name = DeviceName::parse(device_name)?;
        let record = core.store.pairing(id).await?.ok_or_else(not_found)?;
        let now = now_ms();
        if record.claimant.is_some_and(|(account, _)| account != caller.account_id) {
            return Err(not_found());
        }
        match state(&record, now) {
            PairingState::Approved | PairingState::Completed => {
                return Err(Error::precondition(
                    ErrorReason::PairingAlreadyApproved,
                    "this pairing was already approved",
                ));
            }
            PairingState::Open => {
                return Err(Error::precondition(
                    ErrorReason::PairingNotClaimed,
                    "open the secure channel before approving",
                ));
            }
            _ => live(&record, now)?,
        }
        // The device exists from now on, with tokens nobody knows until it picks up its session.
        let placeholder = tokens::issue(now, 0, 0);
        let device = NewDevice {
            id: DeviceId::generate(),
            account_id: caller.account_id,
            name: name.as_str().to_owned(),
            created_at_ms: now,
            tokens: placeholder.stored,
            password_reset_until_ms: 0,
        };
        core.store.create_device(&device).await?;
        if !core.store.approve_pairing(id, (caller.account_id, caller.device_id), device.id, now).await? {
            core.store.delete_device(Some(caller.account_id), device.id).await?;
            return Err(Error::precondition(
                ErrorReason::PairingAlreadyApproved,
                "this pairing was already approved",
            ));
        }
        core.delivery.devices_changed(caller.account_id).await;
        tracing::info!(account = %caller.account_id, by = %caller.device_id, device = %device.id, "pairing approved");
        Ok(device.id)
    }

    /// Ends a pairing from either side.
    pub async fn cancel(&self, side: Side<'_>, id: PairingId) -> Result<(), Error> {
        let record = self.load(id, &side).await?;
        if let Side::Existing(caller) = &side
            && record.claimant.is_some_and(|(account, _)| account != caller.account_id)
        {
            return Err(not_found());
        }
        self.auth.core.store.cancel_pairing(id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_shows_until_the_pairing_is_finished() {
        let record = |status, expires_at_ms| PairingRecord {
            id: PairingId::generate(),
            public_key: vec![0; 32],
            secret_hash: vec![0; 32],
            status,
            claimant: None,
            new_device_id: None,
            expires_at_ms,
        };
        let cases = [
            (PairingStatus::Open, 10, PairingState::Open),
            (PairingStatus::Open, 5, PairingState::Expired),
            (PairingStatus::Claimed, 5, PairingState::Expired),
            (PairingStatus::Approved, 5, PairingState::Expired),
            (PairingStatus::Approved, 10, PairingState::Approved),
            (PairingStatus::Completed, 5, PairingState::Completed),
            (PairingStatus::Cancelled, 10, PairingState::Cancelled),
        ];
        for (status, expires, want) in cases {
            assert_eq!(state(&record(status, expires), 5), want, "{status:?} expiring at {expires}");
        }
        assert!(live(&record(PairingStatus::Open, 5), 5).is_err());
        assert!(live(&record(PairingStatus::Claimed, 6), 5).is_ok());
    }

    #[test]
    fn pins() {
        for _ in 0..50 {
            let pin = random_digits(8);
            assert_eq!(normalize_pin(&pin), Some(pin.clone()));
        }
        assert_eq!(normalize_pin(" 1234-5678 ").as_deref(), Some("12345678"));
        for bad in ["", "1234567", "123456789", "1234567a", "１２３４５６７８"] {
            assert_eq!(normalize_pin(bad), None, "{bad:?}");
        }
    }
}
