//! To-device messages: opaque ciphertext from one device to others (Megolm key shares,
//! pairing, call signalling), waiting in each recipient's inbox until it acknowledges them.
//!
//! # Security
//!
//! Anyone signed in may send to any device, so an inbox is a shared resource a stranger could
//! fill, blocking the key shares that keep E2EE working. What waits in one inbox is bounded
//! three ways ([`InboxLimits`]): per sender account, for strangers together (accounts that
//! share no conversation with the device's owner), and in all. Strangers may use only a part,
//! so the device's own account and its contacts always have room; one contact or one stranger
//! cannot take it all either.

use std::sync::Arc;
use std::time::Duration;

use super::{Caller, Error, ErrorReason};
use crate::ids::MessageId;
use crate::store::{InboxQuota, NewToDevice, SendRefusal, Store, ToDeviceRecord, now_ms};

/// Largest ciphertext.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages per send.
pub const MAX_MESSAGES_PER_SEND: usize = 100;
/// How long an unacknowledged message waits.
pub const MESSAGE_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Largest fetch.
pub const MAX_FETCH: u32 = 500;

/// What may wait in one device's inbox (from the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxLimits {
    /// Messages, from everyone.
    pub messages: u32,
    /// Bytes of ciphertext, from everyone.
    pub bytes: u64,
    /// Messages from one sender account.
    pub per_sender: u32,
    /// The percentage of `messages` and of `bytes` that strangers may fill together.
    pub stranger_percent: u8,
}

impl Default for InboxLimits {
    fn default() -> Self {
        // A key share is a few hundred bytes: 500 waiting from one account is a long time
        // offline; 64 MiB keeps a worst case per device well below the 640 MiB that 10,000
        // messages of 64 KiB once allowed.
        Self { messages: 10_000, bytes: 64 * 1024 * 1024, per_sender: 500, stranger_percent: 10 }
    }
}

impl InboxLimits {
    /// The quota as the store enforces it.
    pub fn quota(&self) -> InboxQuota {
        let percent = i64::from(self.stranger_percent.min(100));
        let bytes = i64::try_from(self.bytes).unwrap_or(i64::MAX);
        InboxQuota {
            messages: i64::from(self.messages),
            bytes,
            per_sender: i64::from(self.per_sender),
            stranger_messages: i64::from(self.messages) * percent / 100,
            stranger_bytes: bytes.saturating_mul(percent) / 100,
        }
    }
}

/// To-device messaging.
#[derive(Clone)]
pub struct ToDevice {
    pub(super) store: Arc<dyn Store>,
    pub(super) delivery: super::Delivery,
    pub(super) limits: InboxLimits,
}

impl ToDevice {
    /// Queues messages, all or nothing (those for devices of accounts that blocked the caller
    /// are dropped, as if delivered).
    pub async fn send(&self, caller: &Caller, messages: Vec<NewToDevice>) -> Result<(), Error> {
        if messages.len() > MAX_MESSAGES_PER_SEND {
            return Err(Error::invalid(
                ErrorReason::TooManyMessages,
                "messages",
                format!("at most {MAX_MESSAGES_PER_SEND} messages per send"),
            ));
        }
        if messages.iter().any(|m| m.ciphertext.len() > MAX_MESSAGE_BYTES) {
            return Err(Error::invalid(
                ErrorReason::MessageTooLarge,
                "ciphertext",
                format!("a message is at most {} KiB", MAX_MESSAGE_BYTES / 1024),
            ));
        }
        if messages.iter().any(|m| m.ciphertext.is_empty()) {
            return Err(Error::invalid(ErrorReason::MessageEmpty, "ciphertext", "a message cannot be empty"));
        }
        // An account that blocked the sender does not get its messages; the sender is not told.
        let blocking = self.store.blocking_devices(caller.account_id).await?;
        let messages: Vec<NewToDevice> =
            messages.into_iter().filter(|m| !blocking.contains(&m.recipient)).collect();
        if messages.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let expires = now + i64::try_from(MESSAGE_TTL.as_millis()).unwrap_or(i64::MAX);
        let quota = self.limits.quota();
        let outcome = self
            .store
            .send_to_devices((caller.account_id, caller.device_id), &messages, now, expires, &quota)
            .await?;
        match outcome {
            Ok(()) => {
                let mut devices: Vec<_> = messages.iter().map(|m| m.recipient).collect();
                devices.sort_unstable();
                devices.dedup();
                self.delivery.publish(crate::bus::Notice::Inboxes(devices)).await;
                Ok(())
            }
            Err(SendRefusal::UnknownDevice(device)) => Err(Error::DeviceNotFound).inspect_err(|_| {
                tracing::debug!(%device, "to-device message for an unknown device");
            }),
            Err(SendRefusal::TooManyPending(device)) => Err(Error::limit(
                ErrorReason::TooManyPending,
                format!(
                    "at most {} of your messages may wait for device {device}; send more once it has fetched them",
                    quota.per_sender
                ),
            )),
            Err(SendRefusal::StrangerInboxFull(device)) => {
                tracing::debug!(sender = %caller.account_id, %device, "strangers' part of an inbox is full");
                Err(Error::limit(
                    ErrorReason::StrangerInboxFull,
                    format!(
                        "device {device} takes no more messages from accounts that share no conversation with \
                         its owner until it has fetched those waiting"
                    ),
                ))
            }
            Err(SendRefusal::InboxFull(device)) => Err(Error::limit(
                ErrorReason::InboxFull,
                format!(
                    "device {device} holds at most {} messages or {} MiB waiting; try later",
                    quota.messages,
                    quota.bytes / (1024 * 1024)
                ),
            )),
        }
    }

    /// Waiting messages (oldest first) and whether more are waiting.
    pub async fn fetch(&self, caller: &Caller, limit: u32) -> Result<(Vec<ToDeviceRecord>, bool), Error> {
        let limit = match limit {
            0 => 100,
            n => n.min(MAX_FETCH),
        };
        let mut messages = self.store.fetch_to_device(caller.device_id, i64::from(limit) + 1).await?;
        let more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        Ok((messages, more))
    }

    /// Deletes acknowledged messages.
    pub async fn ack(&self, caller: &Caller, ids: &[MessageId]) -> Result<(), Error> {
        if ids.len() > usize::try_from(MAX_FETCH).unwrap_or(500) {
            return Err(Error::invalid(
                ErrorReason::TooManyMessages,
                "message_ids",
                format!("at most {MAX_FETCH} ids per ack"),
            ));
        }
        self.store.ack_to_device(caller.device_id, ids).await?;
        Ok(())
    }
}
