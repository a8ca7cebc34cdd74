//! Calls: TURN credentials and call signalling (docs/calls.md). Media never passes through
//! here: devices connect peer to peer (or through TURN) and the server only relays signals
//! between devices of the conversation's members, keeping which devices are in which call.
//!
//! # Security
//! Only members of a conversation can start, see or join its calls; offers, answers and ICE
//! candidates go only to a device in the same call, from a device in it. Their payloads are
//! opaque (clients encrypt them with Olm). TURN credentials name the account and expire.
//! A member whose membership is still a request neither rings nor signals until it accepts,
//! and no call signal from an account reaches an account that blocked it.

use std::sync::Arc;
use std::time::Duration;

use kitsulan_turn::{TurnCredentials, TurnSecret};

use super::{Caller, Delivery, Error, ErrorReason};
use crate::bus::Notice;
pub use crate::events::{CallAction, CallEvent};
use crate::ids::{AccountId, CallId, ConversationId, DeviceId};
use crate::store::{JoinOutcome, NewCall, StartOutcome, Store, now_ms};

/// Devices in one call at most (a mesh: each sends its media to every other).
pub const MAX_CALL_DEVICES: i64 = 6;
/// Largest signal payload (SDP, ICE candidate).
pub const MAX_PAYLOAD: usize = 32 * 1024;
/// How long a device that lost its gateway connection stays in a call.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(10);

/// A signal from a device.
#[derive(Debug, Clone)]
pub struct Signal {
    /// Where.
    pub conversation: ConversationId,
    /// Which call.
    pub call: CallId,
    /// What.
    pub action: CallAction,
    /// Offer, answer, candidate: for which device.
    pub to_device: Option<DeviceId>,
    /// Opaque.
    pub payload: Vec<u8>,
    /// Invite: with video.
    pub video: bool,
}

/// Where TURN credentials point.
#[derive(Clone)]
pub struct TurnSettings {
    /// Shared with the relay (embedded or coturn).
    pub secret: TurnSecret,
    /// STUN/TURN URLs for clients.
    pub urls: Vec<String>,
    /// How long credentials last.
    pub ttl: Duration,
}

/// Calls.
#[derive(Clone)]
pub struct Calls {
    pub(super) store: Arc<dyn Store>,
    pub(super) delivery: Delivery,
    pub(super) turn: Option<TurnSettings>,
}

fn not_in_call() -> Error {
    Error::precondition(ErrorReason::NotInCall, "this device is not in that call")
}

fn call_not_found() -> Error {
    Error::not_found(ErrorReason::CallNotFound, "no such call in this conversation")
}

impl Calls {
    /// TURN credentials for the caller's account.
    pub fn turn_credentials(&self, caller: &Caller) -> Result<TurnCredentials, Error> {
        let turn = self.turn.as_ref().ok_or_else(|| {
            Error::precondition(ErrorReason::TurnUnavailable, "this server has no TURN relay configured")
        })?;
        TurnCredentials::generate(&turn.secret, &caller.account_id.to_string(), turn.ttl, &turn.urls)
            .map_err(|e| Error::Internal(format!("TURN credentials: {e}")))
    }

    /// Handles one signal from the caller's device.
    pub async fn signal(&self, caller: &Caller, signal: Signal) -> Result<(), Error> {
        if signal.payload.len() > MAX_PAYLOAD {
            return Err(Error::limit(
                ErrorReason::PayloadTooLarge,
                format!("a call signal carries at most {} KiB", MAX_PAYLOAD / 1024),
            ));
        }
        let me = self.store.member(signal.conversation, caller.account_id).await?;
        let me = me.ok_or_else(|| Error::not_found(ErrorReason::NotAMember, "no such conversation"))?;
        if me.request {
            return Err(Error::precondition(
                ErrorReason::RequestPending,
                "accept the conversation's request before calling in it",
            ));
        }
        let event = |action, participants| CallEvent {
            conversation: signal.conversation,
            call: signal.call,
            action,
            from: (caller.account_id, caller.device_id),
            payload: signal.payload.clone(),
            video: signal.video,
            reason: String::new(),
            participants,
        };
        if signal.action == CallAction::Invite {
            let call = NewCall {
                id: signal.call,
                conversation_id: signal.conversation,
                caller: (caller.account_id, caller.device_id),
                video: signal.video,
                now_ms: now_ms(),
            };
            return match self.store.start_call(&call).await? {
                StartOutcome::Started | StartOutcome::Duplicate => {
                    let event = event(CallAction::Invite, vec![caller.device_id]);
                    self.to_conversation(event, Some(caller.device_id)).await;
                    Ok(())
                }
                StartOutcome::Busy(going) => Err(Error::Conflict {
                    reason: ErrorReason::CallInProgress,
                    message: format!("this conversation has a call going ({going}); accept it to join"),
                }),
            };
        }
        let call = self.store.call(signal.call).await?.filter(|c| c.conversation_id == signal.conversation);
        let call = call.ok_or_else(call_not_found)?;
        if call.ended_at_ms != 0 {
            return Err(Error::precondition(ErrorReason::CallEnded, "that call is over"));
        }
        let devices = self.store.call_devices(call.id).await?;
        match signal.action {
            CallAction::Invite => Ok(()),
            CallAction::Ringing | CallAction::Decline | CallAction::Busy => {
                let event = event(signal.action, devices.clone());
                self.to_devices(event, devices, Some(caller.account_id), caller.device_id).await;
                Ok(())
            }
            CallAction::Accept => {
                let device = (caller.account_id, caller.device_id);
                match self.store.join_call(call.id, device, MAX_CALL_DEVICES, now_ms()).await? {
                    JoinOutcome::Joined(devices) => {
                        self.to_conversation(event(CallAction::Accept, devices), Some(caller.device_id))
                            .await;
                        Ok(())
                    }
                    JoinOutcome::Full => Err(Error::limit(
                        ErrorReason::CallFull,
                        format!("a call has at most {MAX_CALL_DEVICES} devices"),
                    )),
                    JoinOutcome::Ended => {
                        Err(Error::precondition(ErrorReason::CallEnded, "that call is over"))
                    }
                }
            }
            CallAction::Cancel => {
                if call.caller.1 != caller.device_id || call.answered_at_ms != 0 {
                    return Err(Error::Forbidden {
                        reason: ErrorReason::NotAllowed,
                        message: "only the calling device cancels, before anyone answered".into(),
                    });
                }
                self.end(call.conversation_id, call.id, "cancelled", caller).await
            }
            CallAction::HangUp => self.leave(call.conversation_id, call.id, caller).await,
            CallAction::Offer | CallAction::Answer | CallAction::IceCandidate => {
                let to = signal.to_device.ok_or_else(|| {
                    Error::invalid(
                        ErrorReason::ToDeviceRequired,
                        "to_device_id",
                        "name the device in the call it is for",
                    )
                })?;
                if !devices.contains(&caller.device_id) {
                    return Err(not_in_call());
                }
                if !devices.contains(&to) {
                    return Err(Error::not_found(
                        ErrorReason::DeviceNotInCall,
                        "that device is not in the call",
                    ));
                }
                self.to_devices(event(signal.action, Vec::new()), vec![to], None, caller.device_id).await;
                Ok(())
            }
            CallAction::Ended => {
                Err(Error::invalid(ErrorReason::ActionInvalid, "action", "only the server ends calls"))
            }
        }
    }

    async fn leave(&self, conversation: ConversationId, call: CallId, who: &Caller) -> Result<(), Error> {
        let remaining = self.store.leave_call(call, who.device_id).await?.ok_or_else(not_in_call)?;
        let event = CallEvent {
            conversation,
            call,
            action: CallAction::HangUp,
            from: (who.account_id, who.device_id),
            payload: Vec::new(),
            video: false,
            reason: String::new(),
            participants: remaining.clone(),
        };
        self.to_devices(event, remaining.clone(), Some(who.account_id), who.device_id).await;
        if remaining.len() < 2 {
            self.end(conversation, call, "hung_up", who).await?;
        }
        Ok(())
    }

    async fn end(
        &self,
        conversation: ConversationId,
        call: CallId,
        reason: &str,
        who: &Caller,
    ) -> Result<(), Error> {
        if self.store.end_call(call, now_ms()).await? {
            let event = CallEvent {
                conversation,
                call,
                action: CallAction::Ended,
                from: (who.account_id, who.device_id),
                payload: Vec::new(),
                video: false,
                reason: reason.to_owned(),
                participants: Vec::new(),
            };
            self.to_conversation(event, None).await;
        }
        Ok(())
    }

    /// Sends `event` to every device of every member of its conversation (but `except`) who
    /// has accepted it and has not blocked the sender. The members come from the database, not
    /// from what the gateway sessions have learnt so far: a session adds a new conversation
    /// only when it gets to its own membership event, and a call started right after the
    /// conversation was created must still ring.
    async fn to_conversation(&self, event: CallEvent, except: Option<DeviceId>) {
        let members = match self.store.blockers_of(event.from.0).await {
            Ok(blockers) => self.store.members(event.conversation).await.map(|members| {
                members
                    .into_iter()
                    .filter(|m| !m.request && !blockers.contains(&m.account_id))
                    .map(|m| m.account_id)
                    .collect()
            }),
            Err(e) => Err(e),
        };
        let (conversation, accounts) = match members {
            Ok(accounts) => (false, accounts),
            Err(e) => {
                // Ending a call still reaches the devices whose sessions know the conversation;
                // anything else waits for the database (it might reach a request or a blocker).
                tracing::warn!(error = %e, "cannot read the members of a call's conversation");
                (event.action == CallAction::Ended, Vec::new())
            }
        };
        let notice =
            Notice::Call { event: Arc::new(event), conversation, devices: Vec::new(), accounts, except };
        self.delivery.publish(notice).await;
    }

    async fn to_devices(
        &self,
        event: CallEvent,
        devices: Vec<DeviceId>,
        account: Option<AccountId>,
        except: DeviceId,
    ) {
        let notice = Notice::Call {
            event: Arc::new(event),
            conversation: false,
            devices,
            accounts: account.into_iter().collect(),
            except: Some(except),
        };
        self.delivery.publish(notice).await;
    }

    /// A device's gateway connection closed: unless it is back within [`RECONNECT_GRACE`], it
    /// leaves its calls (the others are told).
    pub fn device_disconnected(&self, who: Caller) {
        let calls = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RECONNECT_GRACE).await;
            if calls.delivery.hub().has_device(who.device_id) {
                return;
            }
            match calls.store.calls_of_device(who.device_id).await {
                Ok(going) => {
                    for call in going {
                        if let Err(e) = calls.leave(call.conversation_id, call.id, &who).await {
                            tracing::warn!(error = %e, call = %call.id, "cannot take a gone device out of a call");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot look up the calls of a gone device"),
            }
        });
    }

    /// Ends calls nobody answered within `ring` (`KITSULAN_CALL_RING_SECONDS`), checking every
    /// `every`.
    pub async fn end_unanswered(self, ring: Duration, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = now_ms();
            let before = now - i64::try_from(ring.as_millis()).unwrap_or(i64::MAX);
            match self.store.end_unanswered(before, now).await {
                Ok(calls) => {
                    for call in calls {
                        let event = CallEvent {
                            conversation: call.conversation_id,
                            call: call.id,
                            action: CallAction::Ended,
                            from: call.caller,
                            payload: Vec::new(),
                            video: call.video,
                            reason: "unanswered".into(),
                            participants: Vec::new(),
                        };
                        self.to_conversation(event, None).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot end unanswered calls"),
            }
        }
    }
}
