//! The E2EE key directory: who publishes which public keys, with which signatures, and who
//! may claim them. Every signature is checked here, against public keys only, before anything
//! is stored (formats: crypto/FORMAT.md).

use std::collections::HashSet;
use std::sync::Arc;

use kitsulan_crypto::{SignedFallbackKey, SignedOneTimeKey};

use super::rate_limits::{Limits, RateLimiter};
use super::{Caller, Error, ErrorReason};
use crate::ids::{AccountId, DeviceId};
use crate::store::{
    AccountKeyOutcome, AccountKeysRecord, ClaimedKeyRecord, DeviceKeysRecord, KeyUpload, KeyUploadOutcome,
    SignedKeyRecord, Store, now_ms,
};

/// One-time keys accepted in one upload.
pub const MAX_KEYS_PER_UPLOAD: usize = 100;
/// One-time keys a device may hold on the server.
pub const MAX_KEYS_HELD: i64 = 1000;
/// Accounts or devices in one query or claim.
pub const MAX_BATCH: usize = 100;

/// A signed key as it arrives (unchecked).
pub struct SignedKeyInput<'a> {
    /// Device-local key id.
    pub key_id: u64,
    /// Should be 32 bytes.
    pub public_key: &'a [u8],
    /// Should be 64 bytes.
    pub signature: &'a [u8],
}

/// What an upload carries.
pub struct UploadInput<'a> {
    /// The device certificate (empty: keep the published identity keys).
    pub certificate: &'a [u8],
    /// One-time keys to add.
    pub one_time_keys: Vec<SignedKeyInput<'a>>,
    /// A new fallback key.
    pub fallback_key: Option<SignedKeyInput<'a>>,
}

/// Key counts of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCounts {
    /// One-time keys held.
    pub one_time_keys: u32,
    /// Whether a fallback key is held.
    pub has_fallback_key: bool,
}

/// The key directory.
#[derive(Clone)]
pub struct Keys {
    pub(super) store: Arc<dyn Store>,
    pub(super) delivery: super::Delivery,
    pub(super) limiter: RateLimiter,
    pub(super) limits: Limits,
}

fn signed(field: &'static str, key: &SignedKeyInput<'_>) -> Result<([u8; 32], [u8; 64], i64), Error> {
    let bad =
        || Error::invalid(ErrorReason::KeySignatureInvalid, field, "a key or its signature is malformed");
    let public_key: [u8; 32] = key.public_key.try_into().map_err(|_| bad())?;
    let signature: [u8; 64] = key.signature.try_into().map_err(|_| bad())?;
    let key_id = i64::try_from(key.key_id).map_err(|_| bad())?;
    Ok((public_key, signature, key_id))
}

impl Keys {
    /// Publishes the caller's account key.
    pub async fn publish_account_key(&self, caller: &Caller, key: &[u8], replace: bool) -> Result<(), Error> {
        kitsulan_crypto::validate_account_key(key).map_err(|_| {
            Error::invalid(ErrorReason::AccountKeyInvalid, "account_key", "not an Ed25519 public key")
        })?;
        match self.store.publish_account_key(caller.account_id, key, replace).await? {
            AccountKeyOutcome::Unchanged => Ok(()),
            AccountKeyOutcome::Set => self.delivery.device_keys_changed(caller.account_id).await,
            AccountKeyOutcome::Replaced => {
                tracing::warn!(account = %caller.account_id, device = %caller.device_id, "account key replaced");
                self.delivery.device_keys_changed(caller.account_id).await
            }
            AccountKeyOutcome::Exists => Err(Error::precondition(
                ErrorReason::AccountKeyExists,
                "this account already has a different account key; link this device to an existing one instead",
            )),
        }
    }

    /// Uploads the calling device's keys after checking every signature.
    pub async fn upload(&self, caller: &Caller, input: UploadInput<'_>) -> Result<KeyCounts, Error> {
        if input.one_time_keys.len() > MAX_KEYS_PER_UPLOAD {
            return Err(Error::limit(
                ErrorReason::TooManyKeys,
                format!("at most {MAX_KEYS_PER_UPLOAD} one-time keys per upload"),
            ));
        }
        let identity = if input.certificate.is_empty() {
            None
        } else {
            let account_key = self.store.account_key(caller.account_id).await?.ok_or_else(|| {
                Error::precondition(
                    ErrorReason::NoAccountKey,
                    "publish the account key before uploading device keys",
                )
            })?;
            let certificate = kitsulan_crypto::verify_device_certificate(input.certificate, &account_key)
                .map_err(|e| {
                    Error::invalid(ErrorReason::CertificateInvalid, "device_certificate", e.to_string())
                })?;
            let fields = certificate.fields;
            if fields.account_id != *caller.account_id.as_uuid().as_bytes()
                || fields.device_id != *caller.device_id.as_uuid().as_bytes()
            {
                return Err(Error::invalid(
                    ErrorReason::CertificateInvalid,
                    "device_certificate",
                    "the certificate names another account or device",
                ));
            }
            Some(DeviceKeysRecord {
                device_id: caller.device_id,
                certificate: input.certificate.to_vec(),
                ed25519: fields.device_ed25519.to_vec(),
                curve25519: fields.device_curve25519.to_vec(),
            })
        };
        let ed25519 = match &identity {
            Some(identity) => identity.ed25519.clone(),
            None => {
                self.store
                    .device_keys(caller.device_id)
                    .await?
                    .ok_or_else(|| {
                        Error::precondition(
                            ErrorReason::KeysCertificateRequired,
                            "the first upload needs a device certificate",
                        )
                    })?
                    .ed25519
            }
        };
        let mut one_time_keys = Vec::with_capacity(input.one_time_keys.len());
        for key in &input.one_time_keys {
            let (public_key, signature, key_id) = signed("one_time_keys", key)?;
            let candidate = SignedOneTimeKey { key_id: key.key_id, public_key, signature };
            kitsulan_crypto::verify_one_time_key(&ed25519, &candidate).map_err(|_| {
                Error::invalid(
                    ErrorReason::KeySignatureInvalid,
                    "one_time_keys",
                    "a one-time key's signature does not verify",
                )
            })?;
            one_time_keys.push(SignedKeyRecord {
                key_id,
                public_key: public_key.to_vec(),
                signature: signature.to_vec(),
            });
        }
        let fallback_key = match &input.fallback_key {
            None => None,
            Some(key) => {
                let (public_key, signature, key_id) = signed("fallback_key", key)?;
                let candidate = SignedFallbackKey { key_id: key.key_id, public_key, signature };
                kitsulan_crypto::verify_fallback_key(&ed25519, &candidate).map_err(|_| {
                    Error::invalid(
                        ErrorReason::KeySignatureInvalid,
                        "fallback_key",
                        "the fallback key's signature does not verify",
                    )
                })?;
                Some(SignedKeyRecord {
                    key_id,
                    public_key: public_key.to_vec(),
                    signature: signature.to_vec(),
                })
            }
        };
        let upload = KeyUpload {
            identity,
            one_time_keys,
            fallback_key,
            max_one_time_keys: MAX_KEYS_HELD,
            now_ms: now_ms(),
        };
        let new_identity = upload.identity.is_some();
        match self.store.upload_keys(caller.account_id, caller.device_id, &upload).await? {
            KeyUploadOutcome::Stored { one_time_keys, has_fallback_key } => {
                if new_identity {
                    // Contacts must learn this device's keys before their next key share.
                    self.delivery.device_keys_changed(caller.account_id).await?;
                }
                Ok(KeyCounts {
                    one_time_keys: u32::try_from(one_time_keys).unwrap_or(u32::MAX),
                    has_fallback_key,
                })
            }
            KeyUploadOutcome::TooManyKeys => Err(Error::limit(
                ErrorReason::TooManyKeys,
                format!("a device holds at most {MAX_KEYS_HELD} one-time keys on the server"),
            )),
        }
    }

    /// The calling device's key counts.
    pub async fn counts(&self, caller: &Caller) -> Result<KeyCounts, Error> {
        let (held, has_fallback_key) = self.store.key_counts(caller.device_id).await?;
        Ok(KeyCounts { one_time_keys: u32::try_from(held).unwrap_or(u32::MAX), has_fallback_key })
    }

    /// Keys of the given accounts. Any signed-in account may ask about any account here: on a
    /// KitsuLAN server everybody may start a conversation with everybody.
    pub async fn query(
        &self,
        _caller: &Caller,
        accounts: &[AccountId],
    ) -> Result<Vec<AccountKeysRecord>, Error> {
        if accounts.len() > MAX_BATCH {
            return Err(Error::limit(
                ErrorReason::TooManyItems,
                format!("at most {MAX_BATCH} accounts per query"),
            ));
        }
        Ok(self.store.query_keys(accounts).await?)
    }

    /// One key per device for starting Olm sessions, each device named once.
    ///
    /// # Security
    ///
    /// One-time keys are a device's forward secrecy for new sessions; a stranger who takes them
    /// all leaves everyone else the fallback key. So, per claim: the claimer's account spends
    /// one of [`Limits::key_claims`] per device named (all up front, or the claim is refused
    /// with nothing taken); then for each device a one-time key is handed out only while the
    /// claimer's account is within [`Limits::key_claims_per_device`] for that device and, if it
    /// shares no conversation with the device's owner, strangers together are within
    /// [`Limits::stranger_key_claims`] for it. Past either, the fallback key is handed out:
    /// the claim still starts a working Olm session, it just cannot drain the one-time keys.
    /// Budgets are reserved before a key is taken and given back when no one-time key came of
    /// it, so racing claims cannot take more than the limits allow.
    pub async fn claim(
        &self,
        caller: &Caller,
        devices: &[DeviceId],
    ) -> Result<Vec<(DeviceId, ClaimedKeyRecord)>, Error> {
        if devices.len() > MAX_BATCH {
            return Err(Error::limit(
                ErrorReason::TooManyItems,
                format!("at most {MAX_BATCH} devices per claim"),
            ));
        }
        let mut seen = HashSet::with_capacity(devices.len());
        if let Some(twice) = devices.iter().find(|device| !seen.insert(**device)) {
            return Err(Error::invalid(
                ErrorReason::IdInvalid,
                "device_ids",
                format!("device {twice} is named twice"),
            ));
        }
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let named = u32::try_from(devices.len()).unwrap_or(u32::MAX);
        self.limiter
            .take_n(&self.limits.key_claims, &format!("key_claims:{}", caller.account_id), named)
            .await?;
        let mut claimed = Vec::with_capacity(devices.len());
        for device in devices {
            let Some(contact) = self.store.is_contact_of_device(caller.account_id, *device).await? else {
                continue; // unknown devices are left out, as devices without keys are
            };
            let mut budgets = vec![(
                &self.limits.key_claims_per_device,
                format!("key_claims:{}:{device}", caller.account_id),
            )];
            if !contact {
                budgets.push((&self.limits.stranger_key_claims, format!("stranger_key_claims:{device}")));
            }
            let needed = budgets.len();
            let mut reserved = Vec::with_capacity(needed);
            for (limit, key) in budgets {
                if !self.limiter.try_take(limit, &key).await? {
                    break;
                }
                reserved.push((limit, key));
            }
            let one_time = reserved.len() == needed;
            let key = self.store.claim_key(*device, one_time).await?;
            if key.as_ref().is_none_or(|k| k.fallback) {
                for (limit, budget) in &reserved {
                    self.limiter.give_back(limit, budget).await?;
                }
            }
            if let Some(key) = key {
                claimed.push((*device, key));
            }
        }
        Ok(claimed)
    }
}
