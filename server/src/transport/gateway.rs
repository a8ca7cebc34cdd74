//! `GET /v1/gateway`: the WebSocket gateway (docs/gateway.md). Frames are protobuf
//! (`ClientFrame` / `ServerFrame`); what to send and what an acknowledgement means is decided by
//! [`crate::services::delivery`]; this module only speaks the wire protocol.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures_util::SinkExt as _;
use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::GatewayCloseCode as Close;
use kitsulan_proto::v1::client_frame::Frame as ClientKind;
use kitsulan_proto::v1::event::Body;
use kitsulan_proto::v1::server_frame::Frame as ServerKind;
use prost::Message as _;
use uuid::Uuid;

use super::grpc::{message, role, seq, to_device_message};
use crate::ids::{CallId, ConversationId, DeviceId};
use crate::services::calls::{CallAction, CallEvent, Signal};
use crate::services::delivery::{Kick, MAX_UNACKED, Outgoing, Session, Wake};
use crate::services::{Caller, Error, ErrorReason, Services};

/// Largest client frame (a call signal carries up to 32 KiB).
const MAX_FRAME: usize = 64 * 1024;
/// Initial read buffer of a socket.
const READ_BUFFER: usize = 4 * 1024;
/// Time allowed for `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a client sends a heartbeat; three intervals of silence close the connection.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// Time allowed for one frame to be written before the client counts as gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router(services: Arc<Services>) -> Router {
    // GET: WebSocket over HTTP/1.1. CONNECT: over HTTP/2 (RFC 8441), which browsers use on an
    // HTTPS connection that negotiated h2 (axum's server offers the extended CONNECT).
    Router::new().route("/v1/gateway", get(upgrade).connect(upgrade)).with_state(services)
}

async fn upgrade(State(services): State<Arc<Services>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        // Client frames are small (acks, heartbeats); the default 128 KiB read buffer per socket
        // was most of an idle connection's memory. Bigger frames still fit (the buffer grows).
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| async move {
            let mut connection = Connection { socket, last_heard: Instant::now() };
            if let Some((mut session, caller)) = connection.hello(&services).await {
                connection.run(&services, &mut session).await;
                session.close().await;
                services.calls.device_disconnected(caller);
            }
        })
}

struct Connection {
    socket: WebSocket,
    last_heard: Instant,
}

/// How a connection ends from the server's side.
struct Fatal {
    reason: ErrorReason,
    message: String,
    code: Close,
}

impl Fatal {
    fn new(reason: ErrorReason, message: impl Into<String>, code: Close) -> Self {
        Self { reason, message: message.into(), code }
    }

    fn internal(e: &Error) -> Self {
        tracing::warn!(error = %e, "gateway session failed");
        Self::new(
            ErrorReason::Internal,
            "the server could not continue this connection; reconnect",
            Close::Internal,
        )
    }
}

impl Connection {
    /// Sends one frame now.
    async fn send(&mut self, frame: ServerKind) -> bool {
        self.feed(frame).await && self.flush().await
    }

    /// Queues one frame for the next [`Self::flush`] (a burst of events goes out in one write).
    async fn feed(&mut self, frame: ServerKind) -> bool {
        let bytes = pb::ServerFrame { frame: Some(frame) }.encode_to_vec();
        matches!(
            tokio::time::timeout(SEND_TIMEOUT, self.socket.feed(Message::Binary(bytes.into()))).await,
            Ok(Ok(()))
        )
    }

    async fn flush(&mut self) -> bool {
        matches!(tokio::time::timeout(SEND_TIMEOUT, self.socket.flush()).await, Ok(Ok(())))
    }

    async fn refuse(&mut self, reason: ErrorReason, message: impl Into<String>) -> bool {
        self.send(ServerKind::Error(pb::GatewayError {
            reason: reason.as_wire_str().into(),
            message: message.into(),
            fatal: false,
        }))
        .await
    }

    async fn end(&mut self, fatal: Fatal) {
        let error = pb::GatewayError {
            reason: fatal.reason.as_wire_str().into(),
            message: fatal.message,
            fatal: true,
        };
        self.send(ServerKind::Error(error)).await;
        let frame = CloseFrame { code: fatal.code.code(), reason: fatal.reason.as_wire_str().into() };
        let _ = tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Close(Some(frame)))).await;
    }

    /// Waits for `Hello`, authenticates it and opens the session (after sending `Ready`).
    async fn hello(&mut self, services: &Services) -> Option<(Session, Caller)> {
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, self.socket.recv()).await {
            Err(_) => {
                self.end(Fatal::new(ErrorReason::HelloTimeout, "send Hello first", Close::Protocol)).await;
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Err(e))) => {
                self.end(receive_error(&e)).await;
                return None;
            }
            Ok(Some(Ok(Message::Binary(bytes)))) => match pb::ClientFrame::decode(bytes) {
                Ok(pb::ClientFrame { frame: Some(ClientKind::Hello(hello)) }) => hello,
                Ok(_) => {
                    self.end(Fatal::new(
                        ErrorReason::HelloRequired,
                        "the first frame must be Hello",
                        Close::Protocol,
                    ))
                    .await;
                    return None;
                }
                Err(_) => {
                    self.end(Fatal::new(ErrorReason::MalformedFrame, "not a ClientFrame", Close::Protocol))
                        .await;
                    return None;
                }
            },
            Ok(Some(Ok(_))) => {
                self.end(Fatal::new(
                    ErrorReason::MalformedFrame,
                    "frames are binary protobuf",
                    Close::Protocol,
                ))
                .await;
                return None;
            }
        };
        let caller = match services.auth.authenticate(&hello.access_token).await {
            Ok(caller) => caller,
            Err(e @ Error::Unavailable(_)) => {
                self.end(Fatal::internal(&e)).await;
                return None;
            }
            Err(e) => {
                self.end(Fatal::new(ErrorReason::Unauthenticated, e.to_string(), Close::Unauthenticated))
                    .await;
                return None;
            }
        };
        let resume = hello.resume.and_then(|r| Uuid::parse_str(&r.session_id).ok().map(|id| (id, r.seq)));
        let opened = match services.delivery.open(&caller, resume).await {
            Ok(opened) => opened,
            Err(Error::SessionInvalid) => {
                self.end(Fatal::new(ErrorReason::SignedOut, "this device was signed out", Close::SignedOut))
                    .await;
                return None;
            }
            Err(e) if e.reason() == ErrorReason::ShuttingDown => {
                self.end(Fatal::new(
                    ErrorReason::ShuttingDown,
                    "the server is restarting; reconnect",
                    Close::GoingAway,
                ))
                .await;
                return None;
            }
            Err(e) => {
                self.end(Fatal::internal(&e)).await;
                return None;
            }
        };
        let mut session = opened.session;
        let ready = pb::Ready {
            session_id: session.id().to_string(),
            account_id: caller.account_id.to_string(),
            device_id: caller.device_id.to_string(),
            heartbeat_interval_ms: HEARTBEAT_INTERVAL.as_millis() as u32,
            max_unacked: MAX_UNACKED as u32,
            resumed: opened.resumed,
            online: opened
                .online
                .into_iter()
                .map(|account| pb::PresenceEvent { account_id: account.to_string(), online: true })
                .collect(),
        };
        if !self.send(ServerKind::Ready(ready)).await {
            session.close().await;
            return None;
        }
        tracing::debug!(account = %caller.account_id, device = %caller.device_id, session = %session.id(), "gateway ready");
        Some((session, caller))
    }

    async fn run(&mut self, services: &Services, session: &mut Session) {
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Send everything that is ready (up to the unacknowledged window) in one write.
            let mut fed = false;
            loop {
                match session.next_event().await {
                    Ok(Some((seq, event))) => {
                        if !self.feed(ServerKind::Event(pb::Event { seq, body: Some(body(event)) })).await {
                            return;
                        }
                        fed = true;
                    }
                    Ok(None) => break,
                    Err(e) => return self.end(Fatal::internal(&e)).await,
                }
            }
            if fed && !self.flush().await {
                return;
            }
            let notices = session.window_open();
            let acks_due = session.acks_due();
            tokio::select! {
                biased;
                // First, so a client acknowledging without pause cannot put saving off.
                () = tokio::time::sleep_until(acks_due.unwrap_or_else(Instant::now).into()), if acks_due.is_some() => {
                    session.save_acks();
                }
                frame = self.socket.recv() => {
                    self.last_heard = Instant::now();
                    match frame {
                        None | Some(Ok(Message::Close(_))) => return,
                        Some(Err(e)) => return self.end(receive_error(&e)).await,
                        Some(Ok(Message::Binary(bytes))) => {
                            if let Err(fatal) = self.handle(services, session, &bytes).await {
                                return self.end(fatal).await;
                            }
                        }
                        Some(Ok(Message::Text(_))) => {
                            if !self.refuse(ErrorReason::MalformedFrame, "frames are binary protobuf").await {
                                return;
                            }
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    }
                }
                wake = session.wait(notices) => match wake {
                    Wake::Notice(notice) => {
                        if let Err(e) = session.absorb(&notice).await {
                            return self.end(Fatal::internal(&e)).await;
                        }
                    }
                    Wake::Kick(why) => return self.end(kicked(why)).await,
                },
                _ = heartbeat.tick() => {
                    if self.last_heard.elapsed() > 3 * HEARTBEAT_INTERVAL {
                        return self.end(Fatal::new(ErrorReason::HeartbeatTimeout, "no heartbeat", Close::HeartbeatTimeout)).await;
                    }
                }
            }
        }
    }

    /// Handles one client frame after `Ready`. Refusals that leave the connection open are
    /// sent here; an `Err` ends it.
    async fn handle(
        &mut self,
        services: &Services,
        session: &mut Session,
        bytes: &[u8],
    ) -> Result<(), Fatal> {
        let sent = match pb::ClientFrame::decode(bytes).ok().and_then(|f| f.frame) {
            None => self.refuse(ErrorReason::MalformedFrame, "not a ClientFrame").await,
            Some(ClientKind::Hello(_)) => {
                self.refuse(ErrorReason::AlreadyReady, "this connection is already ready").await
            }
            Some(ClientKind::Heartbeat(h)) => {
                self.send(ServerKind::HeartbeatAck(pb::HeartbeatAck { nonce: h.nonce })).await
            }
            Some(ClientKind::Ack(ack)) => match session.ack(ack.seq).await {
                Ok(Ok(())) => true,
                Ok(Err(future)) => {
                    let message =
                        format!("event {} was not sent; the last one is {}", ack.seq, future.last_sent);
                    self.refuse(ErrorReason::AckInFuture, message).await
                }
                Err(e) => return Err(Fatal::internal(&e)),
            },
            Some(ClientKind::Call(call)) => match signal(call) {
                Err(reason) => {
                    self.refuse(reason, "a call signal names a conversation, a call and an action").await
                }
                Ok(signal) => match services.calls.signal(session.caller(), signal).await {
                    Ok(()) => true,
                    Err(e @ Error::Unavailable(_)) => return Err(Fatal::internal(&e)),
                    Err(e) => self.refuse(e.reason(), e.to_string()).await,
                },
            },
            Some(ClientKind::Typing(typing)) => {
                let conversation = typing.conversation_id.parse::<ConversationId>();
                match conversation {
                    Err(_) => self.refuse(ErrorReason::NotAMember, "no such conversation").await,
                    Ok(conversation) => match session.typing(conversation, typing.typing).await {
                        Ok(true) => true,
                        Ok(false) => self.refuse(ErrorReason::NotAMember, "no such conversation").await,
                        Err(Error::LimitExceeded { message, .. }) => {
                            self.refuse(ErrorReason::RateLimited, message).await
                        }
                        Err(e) => return Err(Fatal::internal(&e)),
                    },
                }
            }
        };
        if sent {
            Ok(())
        } else {
            Err(Fatal::new(ErrorReason::Gone, "the client stopped reading", Close::GoingAway))
        }
    }
}

fn kicked(why: Kick) -> Fatal {
    match why {
        Kick::SignedOut => Fatal::new(ErrorReason::SignedOut, "this device was signed out", Close::SignedOut),
        Kick::SlowConsumer => Fatal::new(
            ErrorReason::SlowConsumer,
            "too many events waiting; reconnect to resume",
            Close::SlowConsumer,
        ),
        Kick::ShuttingDown => {
            Fatal::new(ErrorReason::ShuttingDown, "the server is restarting; reconnect", Close::GoingAway)
        }
    }
}

fn receive_error(e: &axum::Error) -> Fatal {
    let text = e.to_string();
    if text.contains("too long") || text.contains("Space limit") || text.contains("size") {
        Fatal::new(
            ErrorReason::FrameTooLarge,
            format!("frames are at most {} KiB", MAX_FRAME / 1024),
            Close::TooLarge,
        )
    } else {
        Fatal::new(ErrorReason::MalformedFrame, text, Close::Protocol)
    }
}

/// A call signal from the wire, or the reason it is refused.
fn signal(call: pb::CallSignal) -> Result<Signal, ErrorReason> {
    let action = match pb::CallAction::try_from(call.action) {
        Ok(pb::CallAction::Invite) => CallAction::Invite,
        Ok(pb::CallAction::Ringing) => CallAction::Ringing,
        Ok(pb::CallAction::Accept) => CallAction::Accept,
        Ok(pb::CallAction::Decline) => CallAction::Decline,
        Ok(pb::CallAction::Busy) => CallAction::Busy,
        Ok(pb::CallAction::Cancel) => CallAction::Cancel,
        Ok(pb::CallAction::HangUp) => CallAction::HangUp,
        Ok(pb::CallAction::Offer) => CallAction::Offer,
        Ok(pb::CallAction::Answer) => CallAction::Answer,
        Ok(pb::CallAction::IceCandidate) => CallAction::IceCandidate,
        Ok(pb::CallAction::Ended | pb::CallAction::Unspecified) | Err(_) => {
            return Err(ErrorReason::ActionInvalid);
        }
    };
    let to_device = match call.to_device_id.as_str() {
        "" => None,
        id => Some(id.parse::<DeviceId>().map_err(|_| ErrorReason::IdInvalid)?),
    };
    Ok(Signal {
        conversation: call.conversation_id.parse::<ConversationId>().map_err(|_| ErrorReason::NotAMember)?,
        call: call.call_id.parse::<CallId>().map_err(|_| ErrorReason::IdInvalid)?,
        action,
        to_device,
        payload: call.payload,
        video: call.video,
    })
}

fn call_event(event: &CallEvent) -> pb::CallEvent {
    let action = match event.action {
        CallAction::Invite => pb::CallAction::Invite,
        CallAction::Ringing => pb::CallAction::Ringing,
        CallAction::Accept => pb::CallAction::Accept,
        CallAction::Decline => pb::CallAction::Decline,
        CallAction::Busy => pb::CallAction::Busy,
        CallAction::Cancel => pb::CallAction::Cancel,
        CallAction::HangUp => pb::CallAction::HangUp,
        CallAction::Offer => pb::CallAction::Offer,
        CallAction::Answer => pb::CallAction::Answer,
        CallAction::IceCandidate => pb::CallAction::IceCandidate,
        CallAction::Ended => pb::CallAction::Ended,
    };
    pb::CallEvent {
        conversation_id: event.conversation.to_string(),
        call_id: event.call.to_string(),
        action: action.into(),
        from_account_id: event.from.0.to_string(),
        from_device_id: event.from.1.to_string(),
        payload: event.payload.clone(),
        video: event.video,
        reason: event.reason.clone(),
        participant_device_ids: event.participants.iter().map(ToString::to_string).collect(),
    }
}

fn body(event: Outgoing) -> Body {
    match event {
        Outgoing::Message(m) => {
            let change = if m.deleted_at_ms != 0 {
                pb::MessageChange::Deleted
            } else if m.edited_at_ms != 0 || m.updated_at_ms != 0 {
                // A new text, or new reactions or pin: the message as it is now.
                pb::MessageChange::Edited
            } else {
                pb::MessageChange::New
            };
            Body::Message(pb::MessageEvent {
                message: Some(Box::new(message(Arc::unwrap_or_clone(m)))),
                change: change.into(),
            })
        }
        Outgoing::Member { conversation, account, role: r, request } => Body::Member(pb::MemberEvent {
            conversation_id: conversation.to_string(),
            account_id: account.to_string(),
            role: r.map(role).unwrap_or(pb::MemberRole::Unspecified).into(),
            removed: r.is_none(),
            request,
        }),
        Outgoing::Receipt { conversation, account, delivered_seq, read_seq, unread_count } => {
            Body::Receipt(pb::ReceiptEvent {
                conversation_id: conversation.to_string(),
                account_id: account.to_string(),
                delivered_seq: seq(delivered_seq),
                read_seq: seq(read_seq),
                unread_count: unread_count.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            })
        }
        Outgoing::DeviceList(account) => {
            Body::DeviceList(pb::DeviceListEvent { account_id: account.to_string() })
        }
        Outgoing::ToDevice(m) => Body::ToDevice(to_device_message(m)),
        Outgoing::Typing { conversation, account, typing } => Body::Typing(pb::TypingEvent {
            conversation_id: conversation.to_string(),
            account_id: account.to_string(),
            typing,
        }),
        Outgoing::Presence { account, online } => {
            Body::Presence(pb::PresenceEvent { account_id: account.to_string(), online })
        }
        Outgoing::SyncComplete => Body::SyncComplete(pb::SyncComplete {}),
        Outgoing::Call(event) => Body::Call(call_event(&event)),
        Outgoing::Attachment(event) => Body::Attachment(super::grpc::attachment_event(&event)),
        Outgoing::Avatar(event) => Body::Avatar(super::grpc::avatar_event(&event)),
        Outgoing::Guild(event) => {
            Body::Guild(pb::GuildEvent { guild_id: event.guild.to_string(), removed: event.removed })
        }
    }
}
