//! To-device messages: opaque ciphertext from one device to others (Megolm key shares,
//! pairing, call signalling), waiting in each recipient's inbox until it acknowledges them.

use std::sync::Arc;
use std::time::Duration;

use super::{Caller, Error};
use crate::ids::MessageId;
use crate::store::{NewToDevice, SendRefusal, Store, ToDeviceRecord, now_ms};

/// Largest ciphertext.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages per send.
pub const MAX_MESSAGES_PER_SEND: usize = 100;
/// Messages waiting in one inbox.
pub const MAX_INBOX: i64 = 10_000;
/// How long an unacknowledged message waits.
pub const MESSAGE_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Largest fetch.
pub const MAX_FETCH: u32 = 500;

/// To-device messaging.
#[derive(Clone)]
pub struct ToDevice {
    pub(super) store: Arc<dyn Store>,
    pub(super) delivery: super::Delivery,
}

impl ToDevice {
    /// Queues messages, all or nothing (those for devices of accounts that blocked the caller
    /// are dropped, as if delivered).
    pub async fn send(&self, caller: &Caller, messages: Vec<NewToDevice>) -> Result<(), Error> {
        if messages.len() > MAX_MESSAGES_PER_SEND {
            return Err(Error::invalid(
                "TOO_MANY_MESSAGES",
                "messages",
                format!("at most {MAX_MESSAGES_PER_SEND} messages per send"),
            ));
        }
        if messages.iter().any(|m| m.ciphertext.len() > MAX_MESSAGE_BYTES) {
            return Err(Error::invalid(
                "MESSAGE_TOO_LARGE",
                "ciphertext",
                format!("a message is at most {} KiB", MAX_MESSAGE_BYTES / 1024),
            ));
        }
        if messages.iter().any(|m| m.ciphertext.is_empty()) {
            return Err(Error::invalid("MESSAGE_EMPTY", "ciphertext", "a message cannot be empty"));
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
        let outcome = self
            .store
            .send_to_devices((caller.account_id, caller.device_id), &messages, now, expires, MAX_INBOX)
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
            Err(SendRefusal::InboxFull(device)) => Err(Error::limit(
                "INBOX_FULL",
                format!("device {device} has {MAX_INBOX} messages waiting; try later"),
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
                "TOO_MANY_MESSAGES",
                "message_ids",
                format!("at most {MAX_FETCH} ids per ack"),
            ));
        }
        self.store.ack_to_device(caller.device_id, ids).await?;
        Ok(())
    }
}
