//! Verifying another person with SAS emoji, the way the PWA does it (docs/e2ee.md, "Verifying
//! a contact"): the protocol is `kitsulan_crypto::verification` (the same code the PWA runs as
//! WebAssembly); this module is only its transport over Olm to-device messages
//! (`0x03 || verification message`, made by the protocol machine: see
//! [`E2eeDevice::send_verification`]).
//!
//! The initiator sends the request to every device of the other person; the first device that
//! answers `ready` is the one it verifies with, and the others get a cancel
//! (`accepted_elsewhere`). When both sides are done, each records the other's account key as
//! verified ([`E2eeDevice::mark_verified`]).

use anyhow::{Context as _, bail, ensure};
use kitsulan_crypto::sas::ShortAuthString;
use kitsulan_crypto::verification::{self, CancelReason, Identity, State, Verification};
use uuid::Uuid;

use crate::e2ee::{E2eeDevice, VerificationIn, now_ms};

/// One verification of another person, on one device.
#[derive(Debug)]
pub struct ContactVerification {
    /// The protocol state machine.
    pub inner: Verification,
    /// The person being verified.
    pub their_account_id: String,
    /// Their device taking part (the initiator learns it from `ready`).
    pub their_device_id: Option<String>,
    /// Devices the request went to (initiator).
    requested: Vec<String>,
}

fn our_identity(device: &E2eeDevice) -> Identity {
    Identity { device_ed25519: device.ed25519_key(), account_key: device.account_key().public_key() }
}

fn now() -> u64 {
    u64::try_from(now_ms()).unwrap_or(0)
}

impl ContactVerification {
    /// Starts verifying `account_id`: looks up their devices and sends each the request.
    pub async fn start(device: &mut E2eeDevice, account_id: &str) -> anyhow::Result<Self> {
        device.sync_devices(&[account_id]).await?;
        let theirs = device.pinned_account_key(account_id).context("no account key for that person")?;
        let requested = device.devices_of(&[account_id]);
        ensure!(!requested.is_empty(), "{account_id} has no devices to verify with");
        let txn = *Uuid::now_v7().as_bytes();
        let mut inner = Verification::request(txn, our_identity(device), theirs, now());
        let request = inner.take_outgoing().context("no request queued")?;
        let messages: Vec<_> = requested.iter().map(|d| (d.clone(), request.clone())).collect();
        device.send_verification(&messages).await?;
        Ok(Self { inner, their_account_id: account_id.to_owned(), their_device_id: None, requested })
    }

    /// Takes a request that arrived (responder), vouching for this device's own keys.
    pub fn from_request(device: &E2eeDevice, request: &VerificationIn) -> anyhow::Result<Self> {
        Self::from_request_as(device, request, our_identity(device))
    }

    /// [`ContactVerification::from_request`] vouching for `ours` instead: what a device
    /// holding other keys than the ones its contact trusts would send (tests only).
    pub fn from_request_as(
        device: &E2eeDevice,
        request: &VerificationIn,
        ours: Identity,
    ) -> anyhow::Result<Self> {
        let sender = &request.sender;
        let theirs =
            device.pinned_account_key(&sender.account_id).context("request from an unknown person")?;
        let inner = Verification::from_request(&request.bytes, sender.ed25519, theirs, ours, now())?;
        Ok(Self {
            inner,
            their_account_id: sender.account_id.clone(),
            their_device_id: Some(sender.device_id.clone()),
            requested: Vec::new(),
        })
    }

    /// Where it stands.
    pub fn state(&self) -> State {
        self.inner.state()
    }

    /// The emoji and decimals, once both SAS keys are known.
    pub fn short_auth_string(&self) -> Option<ShortAuthString> {
        self.inner.short_auth_string()
    }

    /// The person accepted (responder): sends `ready`.
    pub async fn accept(&mut self, device: &mut E2eeDevice) -> anyhow::Result<()> {
        self.inner.accept()?;
        self.flush(device).await
    }

    /// The person saw the same emoji: sends the MACs (and `done` when due).
    pub async fn confirm(&mut self, device: &mut E2eeDevice) -> anyhow::Result<()> {
        self.inner.confirm()?;
        self.flush(device).await
    }

    /// The person said the emoji differ, or cancelled.
    pub async fn cancel(&mut self, device: &mut E2eeDevice, reason: CancelReason) -> anyhow::Result<()> {
        self.inner.cancel(reason);
        self.flush(device).await
    }

    /// Sends what the state machine queued to the other device (before a device answered,
    /// only a cancel can be queued: it goes to every device the request went to).
    pub async fn flush(&mut self, device: &mut E2eeDevice) -> anyhow::Result<()> {
        let targets = match &self.their_device_id {
            Some(d) => vec![d.clone()],
            None => self.requested.clone(),
        };
        let mut messages = Vec::new();
        while let Some(m) = self.inner.take_outgoing() {
            messages.extend(targets.iter().map(|d| (d.clone(), m.clone())));
        }
        if !messages.is_empty() {
            device.send_verification(&messages).await.context("SendToDevice (verification)")?;
        }
        Ok(())
    }

    /// The next queued message, not sent (tests that tamper with it send it themselves).
    pub fn take_outgoing(&mut self) -> Option<Vec<u8>> {
        self.inner.take_outgoing()
    }

    /// Takes the verification messages of `inbox` that belong to this transaction, sends what
    /// they call for, and records the other person as verified once done. Returns how many
    /// were this transaction's.
    pub async fn take(&mut self, device: &mut E2eeDevice, inbox: &[VerificationIn]) -> anyhow::Result<usize> {
        let mut taken = 0;
        for message in inbox {
            if message.sender.account_id != self.their_account_id
                || verification::peek_transaction_id(&message.bytes).ok() != Some(self.inner.transaction_id())
            {
                continue;
            }
            taken += 1;
            self.inner.receive(&message.bytes, message.sender.ed25519);
            if self.their_device_id.is_none()
                && self.inner.their_device_ed25519() == Some(message.sender.ed25519)
            {
                // The first device that accepted: the others are told to stand down.
                self.their_device_id = Some(message.sender.device_id.clone());
                let cancel = verification::cancel_message(
                    self.inner.transaction_id(),
                    CancelReason::AcceptedElsewhere,
                );
                let others: Vec<_> = self
                    .requested
                    .iter()
                    .filter(|d| **d != message.sender.device_id)
                    .map(|d| (d.clone(), cancel.clone()))
                    .collect();
                if !others.is_empty() {
                    device.send_verification(&others).await?;
                }
            }
            self.flush(device).await?;
        }
        if let Some(key) = self.inner.verified_account_key() {
            device.mark_verified(&self.their_account_id, key);
        }
        Ok(taken)
    }

    /// Fetches this device's inbox and [`ContactVerification::take`]s what it holds.
    pub async fn receive(&mut self, device: &mut E2eeDevice) -> anyhow::Result<usize> {
        let inbox = device.receive().await?;
        if let Some((id, why)) = inbox.failures.first() {
            bail!("to-device message {id} could not be read: {why}");
        }
        self.take(device, &inbox.verifications).await
    }
}

/// Waits (polling the inbox) for a verification request from `from_account_id`.
pub async fn wait_for_request(
    device: &mut E2eeDevice,
    from_account_id: &str,
) -> anyhow::Result<VerificationIn> {
    for _ in 0..50 {
        let inbox = device.receive().await?;
        if let Some(request) = inbox
            .verifications
            .into_iter()
            .find(|v| v.sender.account_id == from_account_id && verification::is_request(&v.bytes))
        {
            return Ok(request);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bail!("no verification request from {from_account_id}")
}
