//! The real-time gateway as a device uses it (docs/gateway.md): [`GatewayClient`] is one
//! WebSocket to `GET /v1/gateway` carrying binary protobuf frames, and [`LiveInbox`] is what an
//! app keeps on top of it: messages by id with duplicates dropped, acknowledgements of what it
//! processed, and the [`ResumePoint`] for the next connection. The e2e tests and the load
//! generator share them.
//!
//! [`GatewayClient::connect`] sends `Hello` and waits for `Ready` (or says which
//! `GatewayError` and close code refused it). Afterwards a background task keeps sending
//! `Heartbeat`s at half the `Ready` interval; nothing else is answered automatically: the
//! caller acks with [`GatewayClient::ack`]. Every wait takes a timeout. What the server sent
//! when it closed the socket is in [`GatewayClient::closed`].
//!
//! Dropping a [`GatewayClient`] drops the TCP connection without a close handshake (a device
//! losing its network); [`GatewayClient::close`] closes politely.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use kitsulan_proto::v1::{
    Ack, CallEvent, CallSignal, ClientFrame, Event, GatewayError, Heartbeat, Hello, Message, MessageChange,
    Ready, ResumePoint, ServerFrame, ToDeviceMessage, TypingUpdate, client_frame, event, server_frame,
};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::conversations::Content;
use crate::e2ee::E2eeDevice;

/// The gateway's path.
pub const PATH: &str = "/v1/gateway";
/// The largest client frame the server takes.
pub const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// Close code: the token is unknown or expired (`UNAUTHENTICATED`).
pub const CLOSE_UNAUTHENTICATED: u16 = 4001;
/// Close code: no valid `Hello` first (`MALFORMED_FRAME`, `HELLO_REQUIRED`, `HELLO_TIMEOUT`).
pub const CLOSE_PROTOCOL: u16 = 4002;
/// Close code: the device was signed out or revoked, or the account disabled.
pub const CLOSE_SIGNED_OUT: u16 = 4003;
/// Close code: the connection's queue overflowed.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code: no frame for three heartbeat intervals.
pub const CLOSE_HEARTBEAT_TIMEOUT: u16 = 4009;
/// Close code: a frame over [`MAX_CLIENT_FRAME`].
pub const CLOSE_FRAME_TOO_LARGE: u16 = 1009;
/// Close code: the server is shutting down.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// What [`GatewayClient::closed`] says when the connection ended without a close frame.
pub const CLOSE_ABNORMAL: u16 = 1006;

/// Nonces of the background heartbeats start here, so a test's own nonces never collide.
const BACKGROUND_NONCE: u64 = 1 << 48;
/// How long [`GatewayClient::connect`] waits for `Ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// What the reader task passes on.
enum Incoming {
    /// Boxed: a frame is much larger than the other variants.
    Frame(Box<ServerFrame>),
    /// A text frame, or a binary one that is not a `ServerFrame`.
    Garbage(String),
    Closed(u16, String),
}

/// Why a wait for a frame ended without one.
#[derive(Clone, Debug)]
pub enum WaitError {
    /// Nothing (suitable) arrived in time.
    Timeout(Duration),
    /// The connection is closed: the close code and reason ([`CLOSE_ABNORMAL`] without a close
    /// frame).
    Closed(u16, String),
    /// The server refused something with a `GatewayError`.
    Refused(GatewayError),
    /// Something the protocol does not allow arrived (described).
    Unexpected(String),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout(after) => write!(f, "nothing arrived within {after:?}"),
            Self::Closed(code, reason) => write!(f, "the gateway closed the connection ({code} {reason:?})"),
            Self::Refused(e) => {
                write!(f, "the gateway sent GatewayError {} (fatal: {}): {}", e.reason, e.fatal, e.message)
            }
            Self::Unexpected(what) => write!(f, "unexpected from the gateway: {what}"),
        }
    }
}

impl std::error::Error for WaitError {}

/// Why [`GatewayClient::connect`] got no `Ready`.
#[derive(Clone, Debug, Default)]
pub struct ConnectError {
    /// The `GatewayError` the server sent, if any.
    pub error: Option<GatewayError>,
    /// The close code and reason, if the server closed the socket.
    pub close: Option<(u16, String)>,
    /// Anything else (transport failure, timeout, an unexpected frame).
    pub detail: String,
}

impl ConnectError {
    fn detail(detail: impl Into<String>) -> Self {
        Self { detail: detail.into(), ..Self::default() }
    }

    /// The close code, if the server closed the socket.
    pub fn close_code(&self) -> Option<u16> {
        self.close.as_ref().map(|(code, _)| *code)
    }

    /// The `GatewayError.reason`, if an error came.
    pub fn reason(&self) -> Option<&str> {
        self.error.as_ref().map(|e| e.reason.as_str())
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no Ready from the gateway")?;
        if let Some(e) = &self.error {
            write!(f, "; GatewayError {} (fatal: {}): {}", e.reason, e.fatal, e.message)?;
        }
        if let Some((code, reason)) = &self.close {
            write!(f, "; closed with {code} {reason:?}")?;
        }
        if !self.detail.is_empty() {
            write!(f, "; {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectError {}

/// `ws://host:port/v1/gateway` for `http://host:port`.
pub fn gateway_url(server_url: &str) -> String {
    let base = server_url.trim_end_matches('/');
    let base = match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", base.strip_prefix("http://").unwrap_or(base)),
    };
    format!("{base}{PATH}")
}

/// One WebSocket to the gateway.
pub struct GatewayClient {
    ready: Option<Ready>,
    outgoing: mpsc::UnboundedSender<WsMessage>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// Frames put aside while waiting for something else (an error, the close).
    stash: VecDeque<ServerFrame>,
    close: Arc<Mutex<Option<(u16, String)>>>,
    heartbeat_acks: HashSet<u64>,
    errors: Vec<GatewayError>,
    last_seq: u64,
    heartbeats_on: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for GatewayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayClient")
            .field("ready", &self.ready)
            .field("last_seq", &self.last_seq)
            .field("closed", &self.closed())
            .finish_non_exhaustive()
    }
}

impl Drop for GatewayClient {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Short description of a frame for failure messages.
pub fn describe_frame(frame: &ServerFrame) -> String {
    match &frame.frame {
        Some(server_frame::Frame::Ready(r)) => format!("Ready(session {})", r.session_id),
        Some(server_frame::Frame::Event(e)) => describe(e),
        Some(server_frame::Frame::HeartbeatAck(a)) => format!("HeartbeatAck({})", a.nonce),
        Some(server_frame::Frame::Error(e)) => {
            format!("GatewayError({} fatal={}: {})", e.reason, e.fatal, e.message)
        }
        None => "an empty ServerFrame".to_owned(),
    }
}

/// Short description of an event for failure messages.
pub fn describe(event: &Event) -> String {
    let body = match &event.body {
        Some(event::Body::Message(m)) => match &m.message {
            Some(msg) => format!(
                "message {:?} {} seq {} in {} (edited {}, deleted {})",
                m.change(),
                msg.id,
                msg.seq,
                msg.conversation_id,
                msg.edited_at_ms,
                msg.deleted_at_ms
            ),
            None => format!("message {:?} without a message", m.change()),
        },
        Some(event::Body::Member(m)) => format!(
            "member {} in {} role {:?} removed {}",
            m.account_id,
            m.conversation_id,
            m.role(),
            m.removed
        ),
        Some(event::Body::Receipt(r)) => format!(
            "receipt {} in {}: delivered {} read {} unread {}",
            r.account_id, r.conversation_id, r.delivered_seq, r.read_seq, r.unread_count
        ),
        Some(event::Body::DeviceList(d)) => format!("device_list {}", d.account_id),
        Some(event::Body::Call(c)) => format!(
            "call {:?} {} in {} from device {} (reason {:?}, participants {:?}, {} payload bytes)",
            c.action(),
            c.call_id,
            c.conversation_id,
            c.from_device_id,
            c.reason,
            c.participant_device_ids,
            c.payload.len()
        ),
        Some(event::Body::ToDevice(t)) => format!("to_device {} from {}", t.message_id, t.sender_device_id),
        Some(event::Body::Typing(t)) => {
            format!("typing {} in {}: {}", t.account_id, t.conversation_id, t.typing)
        }
        Some(event::Body::Presence(p)) => format!("presence {}: {}", p.account_id, p.online),
        Some(event::Body::SyncComplete(_)) => "sync_complete".to_owned(),
        Some(event::Body::Attachment(a)) => format!(
            "attachment {:?} {} in {} by {:?}",
            a.change(),
            a.attachment_id,
            a.conversation_id,
            a.account_id
        ),
        Some(event::Body::Avatar(a)) => format!(
            "avatar of {:?}: {:?}",
            a.owner,
            a.avatar.as_ref().map(|v| (&v.avatar_id, v.avatar_version))
        ),
        Some(event::Body::Guild(g)) => format!("guild {} (removed {})", g.guild_id, g.removed),
        None => "an empty event".to_owned(),
    };
    format!("#{} {body}", event.seq)
}

impl GatewayClient {
    /// Opens the WebSocket to `server_url` (`http://host:port`) without sending anything.
    pub async fn open(server_url: &str) -> anyhow::Result<Self> {
        let url = gateway_url(server_url);
        let (socket, _response) = tokio::time::timeout(
            Duration::from_secs(10),
            // As browsers do: no Nagle delay on small frames (acks, heartbeats).
            tokio_tungstenite::connect_async_with_config(url.as_str(), None, true),
        )
        .await
        .with_context(|| format!("WebSocket upgrade at {url} took over 10 s"))?
        .with_context(|| format!("WebSocket upgrade at {url}"))?;
        let (mut sink, mut stream) = socket.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<WsMessage>();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let close = Arc::new(Mutex::new(None));
        let writer = tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                let last = matches!(message, WsMessage::Close(_));
                if sink.send(message).await.is_err() || last {
                    break;
                }
            }
        });
        let closed = close.clone();
        let reader = tokio::spawn(async move {
            let (code, reason) = loop {
                match stream.next().await {
                    Some(Ok(WsMessage::Binary(bytes))) => {
                        let item = match ServerFrame::decode(bytes.as_ref()) {
                            Ok(frame) => Incoming::Frame(Box::new(frame)),
                            Err(e) => Incoming::Garbage(format!(
                                "{} bytes that are no ServerFrame: {e}",
                                bytes.len()
                            )),
                        };
                        let _ = in_tx.send(item);
                    }
                    Some(Ok(WsMessage::Text(text))) => {
                        let _ = in_tx.send(Incoming::Garbage(format!("a text frame: {:?}", text.as_str())));
                    }
                    Some(Ok(WsMessage::Close(frame))) => {
                        break match frame {
                            Some(frame) => (u16::from(frame.code), frame.reason.to_string()),
                            None => (1005, String::new()),
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break (CLOSE_ABNORMAL, format!("connection lost: {e}")),
                    None => break (CLOSE_ABNORMAL, "connection ended without a close frame".to_owned()),
                }
            };
            if let Ok(mut slot) = closed.lock() {
                *slot = Some((code, reason.clone()));
            }
            let _ = in_tx.send(Incoming::Closed(code, reason));
            // Let the close handshake finish (the reply goes out while reading).
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while stream.next().await.is_some() {}
            })
            .await;
        });
        Ok(Self {
            ready: None,
            outgoing: out_tx,
            incoming: in_rx,
            stash: VecDeque::new(),
            close,
            heartbeat_acks: HashSet::new(),
            errors: Vec::new(),
            last_seq: 0,
            heartbeats_on: Arc::new(AtomicBool::new(true)),
            tasks: vec![writer, reader],
        })
    }

    /// Opens the WebSocket, sends `Hello{access_token, resume}` and waits for `Ready`.
    pub async fn connect(
        server_url: &str,
        access_token: &str,
        resume: Option<ResumePoint>,
    ) -> Result<Self, ConnectError> {
        let mut client = Self::open(server_url).await.map_err(|e| ConnectError::detail(format!("{e:#}")))?;
        client.hello(access_token, resume).map_err(|e| ConnectError::detail(format!("{e:#}")))?;
        client.wait_ready(READY_TIMEOUT).await?;
        Ok(client)
    }

    /// Waits for `Ready` (after [`Self::hello`]); then starts the background heartbeats.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<&Ready, ConnectError> {
        let deadline = Instant::now() + timeout;
        let frame = match self.recv(deadline).await {
            Ok(frame) => frame,
            Err(WaitError::Closed(code, reason)) => {
                return Err(ConnectError { close: Some((code, reason)), ..ConnectError::default() });
            }
            Err(e) => return Err(ConnectError::detail(e.to_string())),
        };
        match frame.frame {
            Some(server_frame::Frame::Ready(ready)) => {
                self.start_heartbeats(ready.heartbeat_interval_ms);
                Ok(self.ready.insert(ready))
            }
            Some(server_frame::Frame::Error(error)) => {
                self.errors.push(error.clone());
                // A fatal error is followed by the close: wait a little for its code.
                let close = match self.wait_closed(Duration::from_secs(5)).await {
                    Ok(close) => Some(close),
                    Err(_) => self.closed(),
                };
                Err(ConnectError { error: Some(error), close, detail: String::new() })
            }
            other => Err(ConnectError::detail(format!(
                "expected Ready first, got {}",
                describe_frame(&ServerFrame { frame: other })
            ))),
        }
    }

    fn start_heartbeats(&mut self, interval_ms: u32) {
        let interval = Duration::from_millis(u64::from(interval_ms.max(200)) / 2);
        let outgoing = self.outgoing.clone();
        let on = self.heartbeats_on.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut nonce = BACKGROUND_NONCE;
            let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
            loop {
                ticks.tick().await;
                if !on.load(Ordering::Relaxed) {
                    continue;
                }
                nonce += 1;
                let frame = ClientFrame { frame: Some(client_frame::Frame::Heartbeat(Heartbeat { nonce })) };
                if outgoing.send(WsMessage::Binary(frame.encode_to_vec().into())).is_err() {
                    break;
                }
            }
        }));
    }

    /// Stops (or restarts) the background heartbeats.
    pub fn set_heartbeats(&self, on: bool) {
        self.heartbeats_on.store(on, Ordering::Relaxed);
    }

    /// `Ready`, once it came.
    pub fn ready(&self) -> Option<&Ready> {
        self.ready.as_ref()
    }

    /// `Ready.session_id` ("" before Ready).
    pub fn session_id(&self) -> &str {
        self.ready.as_ref().map_or("", |r| r.session_id.as_str())
    }

    /// The seq of the last event received on this connection.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The close code and reason, once the connection is closed ([`CLOSE_ABNORMAL`] when it
    /// ended without a close frame).
    pub fn closed(&self) -> Option<(u16, String)> {
        self.close.lock().ok().and_then(|c| c.clone())
    }

    /// Every `GatewayError` received so far.
    pub fn errors(&self) -> &[GatewayError] {
        &self.errors
    }

    /// Sends one `ClientFrame`.
    pub fn send_frame(&self, frame: client_frame::Frame) -> anyhow::Result<()> {
        self.send_raw(ClientFrame { frame: Some(frame) }.encode_to_vec())
    }

    /// Sends any bytes as one binary WebSocket message.
    pub fn send_raw(&self, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.outgoing.send(WsMessage::Binary(bytes.into())).ok().context("the gateway connection is gone")
    }

    /// Sends a text WebSocket message (which the protocol does not allow).
    pub fn send_text(&self, text: &str) -> anyhow::Result<()> {
        self.outgoing.send(WsMessage::text(text)).ok().context("the gateway connection is gone")
    }

    /// Sends `Hello`.
    pub fn hello(&self, access_token: &str, resume: Option<ResumePoint>) -> anyhow::Result<()> {
        self.send_frame(client_frame::Frame::Hello(Hello { access_token: access_token.to_owned(), resume }))
    }

    /// Acknowledges every event up to `seq`.
    pub fn ack(&self, seq: u64) -> anyhow::Result<()> {
        self.send_frame(client_frame::Frame::Ack(Ack { seq }))
    }

    /// Sends a `Heartbeat` with `nonce` (see [`Self::expect_heartbeat_ack`]).
    pub fn heartbeat(&self, nonce: u64) -> anyhow::Result<()> {
        self.send_frame(client_frame::Frame::Heartbeat(Heartbeat { nonce }))
    }

    /// Says this person is typing (or stopped) in `conversation_id`.
    pub fn typing(&self, conversation_id: &str, typing: bool) -> anyhow::Result<()> {
        self.send_frame(client_frame::Frame::Typing(TypingUpdate {
            conversation_id: conversation_id.to_owned(),
            typing,
        }))
    }

    /// Sends a call signal (docs/calls.md).
    pub fn call(&self, signal: CallSignal) -> anyhow::Result<()> {
        self.send_frame(client_frame::Frame::Call(signal))
    }

    /// Closes politely (close code 1000) and waits up to 5 s for the server's close.
    pub async fn close(&mut self) {
        let frame = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
        if self.outgoing.send(WsMessage::Close(Some(frame))).is_ok() {
            let _ = self.wait_closed(Duration::from_secs(5)).await;
        }
    }

    /// The next frame from the channel (not the stash), as a result.
    async fn recv(&mut self, deadline: Instant) -> Result<ServerFrame, WaitError> {
        let waited = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
            Err(_) => Err(WaitError::Timeout(waited)),
            Ok(Some(Incoming::Frame(frame))) => Ok(*frame),
            Ok(Some(Incoming::Garbage(what))) => Err(WaitError::Unexpected(what)),
            Ok(Some(Incoming::Closed(code, reason))) => Err(WaitError::Closed(code, reason)),
            Ok(None) => {
                let (code, reason) =
                    self.closed().unwrap_or((CLOSE_ABNORMAL, "the reader stopped".to_owned()));
                Err(WaitError::Closed(code, reason))
            }
        }
    }

    /// The next frame of any kind (put-aside frames first).
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<ServerFrame, WaitError> {
        if let Some(frame) = self.stash.pop_front() {
            return Ok(frame);
        }
        self.recv(Instant::now() + timeout).await
    }

    /// The next event. `HeartbeatAck`s are noted and skipped; a `GatewayError`, the close, an
    /// event out of sequence or anything else unexpected ends the wait with an error.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Event, WaitError> {
        let deadline = Instant::now() + timeout;
        loop {
            let frame = match self.stash.pop_front() {
                Some(frame) => frame,
                None => self.recv(deadline).await?,
            };
            match frame.frame {
                Some(server_frame::Frame::Event(event)) => {
                    if event.seq != self.last_seq + 1 {
                        return Err(WaitError::Unexpected(format!(
                            "event {} after event #{} on this connection",
                            describe(&event),
                            self.last_seq
                        )));
                    }
                    self.last_seq = event.seq;
                    return Ok(event);
                }
                Some(server_frame::Frame::HeartbeatAck(ack)) => {
                    self.heartbeat_acks.insert(ack.nonce);
                }
                Some(server_frame::Frame::Error(error)) => {
                    self.errors.push(error.clone());
                    return Err(WaitError::Refused(error));
                }
                other => {
                    return Err(WaitError::Unexpected(describe_frame(&ServerFrame { frame: other })));
                }
            }
        }
    }

    /// Waits for a `GatewayError`; events arriving meanwhile are kept for [`Self::next_event`].
    pub async fn expect_error(&mut self, timeout: Duration) -> anyhow::Result<GatewayError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv(deadline).await {
                Ok(ServerFrame { frame: Some(server_frame::Frame::Error(error)) }) => {
                    self.errors.push(error.clone());
                    return Ok(error);
                }
                Ok(ServerFrame { frame: Some(server_frame::Frame::HeartbeatAck(ack)) }) => {
                    self.heartbeat_acks.insert(ack.nonce);
                }
                Ok(frame) => self.stash.push_back(frame),
                Err(e) => bail!("expected a GatewayError: {e}"),
            }
        }
    }

    /// Waits for the `HeartbeatAck` of `nonce` (events and non-fatal errors arriving meanwhile
    /// are kept).
    pub async fn expect_heartbeat_ack(&mut self, nonce: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.heartbeat_acks.contains(&nonce) {
            match self.recv(deadline).await {
                Ok(ServerFrame { frame: Some(server_frame::Frame::HeartbeatAck(ack)) }) => {
                    self.heartbeat_acks.insert(ack.nonce);
                }
                Ok(ServerFrame { frame: Some(server_frame::Frame::Error(error)) }) => {
                    // Non-fatal errors (for earlier frames) are kept in `errors`.
                    self.errors.push(error.clone());
                    if error.fatal {
                        bail!("expected HeartbeatAck({nonce}), got GatewayError {error:?}");
                    }
                }
                Ok(frame) => self.stash.push_back(frame),
                Err(e) => bail!("expected HeartbeatAck({nonce}): {e}"),
            }
        }
        Ok(())
    }

    /// Sends a heartbeat and waits for its ack: proof that the connection is alive.
    pub async fn check_alive(&mut self, nonce: u64, timeout: Duration) -> anyhow::Result<()> {
        self.heartbeat(nonce)?;
        self.expect_heartbeat_ack(nonce, timeout).await
    }

    /// Waits until the server closes the connection and returns the close code and reason.
    /// Events and errors arriving meanwhile are kept ([`Self::errors`], [`Self::next_event`]).
    pub async fn wait_closed(&mut self, timeout: Duration) -> anyhow::Result<(u16, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv(deadline).await {
                Err(WaitError::Closed(code, reason)) => return Ok((code, reason)),
                Err(WaitError::Timeout(after)) => {
                    bail!(
                        "the gateway did not close the connection within {after:?} (errors: {:?})",
                        self.errors
                    )
                }
                Err(WaitError::Unexpected(_)) | Err(WaitError::Refused(_)) => {}
                Ok(ServerFrame { frame: Some(server_frame::Frame::Error(error)) }) => self.errors.push(error),
                Ok(ServerFrame { frame: Some(server_frame::Frame::HeartbeatAck(ack)) }) => {
                    self.heartbeat_acks.insert(ack.nonce);
                }
                Ok(frame) => self.stash.push_back(frame),
            }
        }
    }
}

/// What an app keeps of the gateway: the current connection, every message by id (latest
/// state), the other events, the to-device messages for its crypto, and where to resume.
///
/// Delivery is at least once, so [`LiveInbox::take`] drops a message event it already has (same
/// id, same `edited_at_ms` and `deleted_at_ms`) and a to-device message it already has (same
/// id). [`LiveInbox::next`] takes each event and then acks it.
#[derive(Debug, Default)]
pub struct LiveInbox {
    gateway: Option<GatewayClient>,
    messages: HashMap<String, Message>,
    arrival: Vec<String>,
    states: HashSet<(String, i64, i64, i64)>,
    changes: Vec<(MessageChange, Message)>,
    events: Vec<Event>,
    to_device: Vec<ToDeviceMessage>,
    to_device_ids: HashSet<String>,
    to_device_imported: usize,
    duplicates: usize,
    resume: Option<ResumePoint>,
    synced: bool,
    connections: usize,
}

impl LiveInbox {
    /// An empty inbox, not connected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects (dropping any current connection first), with the last [`ResumePoint`] when
    /// `resume` is true.
    pub async fn connect(
        &mut self,
        server_url: &str,
        access_token: &str,
        resume: bool,
    ) -> Result<&Ready, ConnectError> {
        self.gateway = None;
        self.synced = false;
        let point = if resume { self.resume.clone() } else { None };
        let gateway = GatewayClient::connect(server_url, access_token, point).await?;
        self.connections += 1;
        let gateway = self.gateway.insert(gateway);
        gateway.ready().ok_or_else(|| ConnectError::detail("connected without Ready"))
    }

    /// Drops the connection without a close handshake (as a device losing its network does).
    pub fn drop_connection(&mut self) {
        self.gateway = None;
        self.synced = false;
    }

    /// Closes the connection politely.
    pub async fn close(&mut self) {
        if let Some(mut gateway) = self.gateway.take() {
            gateway.close().await;
        }
        self.synced = false;
    }

    /// The current connection.
    pub fn gateway(&mut self) -> Option<&mut GatewayClient> {
        self.gateway.as_mut()
    }

    /// Whether connected (and not known to be closed).
    pub fn is_connected(&self) -> bool {
        self.gateway.as_ref().is_some_and(|g| g.closed().is_none())
    }

    /// How many connections reached Ready.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// Whether `sync_complete` came on the current connection.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Where to resume: the last connection on which an event was processed, and that event.
    pub fn resume_point(&self) -> Option<ResumePoint> {
        self.resume.clone()
    }

    /// Takes one event: returns whether it was new (false for a duplicate message or
    /// to-device message).
    pub fn take(&mut self, event: &Event) -> bool {
        match &event.body {
            Some(event::Body::Message(m)) => {
                let Some(message) = &m.message else { return false };
                let state =
                    (message.id.clone(), message.edited_at_ms, message.deleted_at_ms, message.updated_at_ms);
                if !self.states.insert(state) {
                    self.duplicates += 1;
                    return false;
                }
                if let Some(known) = self.messages.get(&message.id) {
                    // An older state arriving after a newer one changes nothing.
                    if (known.deleted_at_ms, known.edited_at_ms, known.updated_at_ms)
                        > (message.deleted_at_ms, message.edited_at_ms, message.updated_at_ms)
                    {
                        self.duplicates += 1;
                        return false;
                    }
                } else {
                    self.arrival.push(message.id.clone());
                }
                self.messages.insert(message.id.clone(), (**message).clone());
                self.changes.push((m.change(), (**message).clone()));
                true
            }
            Some(event::Body::ToDevice(message)) => {
                if !self.to_device_ids.insert(message.message_id.clone()) {
                    self.duplicates += 1;
                    return false;
                }
                self.to_device.push(message.clone());
                true
            }
            Some(event::Body::SyncComplete(_)) => {
                self.synced = true;
                self.events.push(event.clone());
                true
            }
            _ => {
                self.events.push(event.clone());
                true
            }
        }
    }

    /// The next event on the current connection, taken and then acknowledged. The bool says
    /// whether it was new.
    pub async fn next(&mut self, timeout: Duration) -> Result<(Event, bool), WaitError> {
        let Some(gateway) = self.gateway.as_mut() else {
            return Err(WaitError::Closed(CLOSE_ABNORMAL, "not connected".to_owned()));
        };
        let event = gateway.next_event(timeout).await?;
        let session_id = gateway.session_id().to_owned();
        let fresh = self.take(&event);
        if let Some(gateway) = self.gateway.as_ref() {
            // An ack that cannot go out is lost with the connection: what it covered comes again.
            let _ = gateway.ack(event.seq);
        }
        self.resume = Some(ResumePoint { session_id, seq: event.seq });
        Ok((event, fresh))
    }

    /// Takes events until `done(self)` holds; fails after `timeout` saying `what` was awaited
    /// and what came instead.
    pub async fn until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&Self) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Ok((event, _)) => {
                    if seen.len() < 40 {
                        seen.push(describe(&event));
                    }
                }
                Err(e) => bail!("waiting for {what}: {e}; events taken meanwhile: {seen:?}"),
            }
        }
        Ok(())
    }

    /// Takes events until one matches `want` and returns it.
    pub async fn wait_event(
        &mut self,
        timeout: Duration,
        what: &str,
        want: impl Fn(&Event) -> bool,
    ) -> anyhow::Result<Event> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Ok((event, _)) if want(&event) => return Ok(event),
                Ok((event, _)) => {
                    if seen.len() < 40 {
                        seen.push(describe(&event));
                    }
                }
                Err(e) => bail!("waiting for {what}: {e}; events taken meanwhile: {seen:?}"),
            }
        }
    }

    /// Takes events for `period` and fails if one matches `unwanted` (events are taken and
    /// acked as usual). Use only to show that something does *not* come.
    pub async fn expect_none(
        &mut self,
        period: Duration,
        what: &str,
        unwanted: impl Fn(&Event) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + period;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.next(left).await {
                Ok((event, _)) if unwanted(&event) => bail!("{what}, but got {}", describe(&event)),
                Ok(_) | Err(WaitError::Timeout(_)) => {}
                Err(e) => bail!("while checking that no {what}: {e}"),
            }
        }
    }

    /// Takes events until the next call event and returns it (other events are taken as usual).
    pub async fn next_call(&mut self, timeout: Duration, what: &str) -> anyhow::Result<CallEvent> {
        let event = self.wait_event(timeout, what, |e| matches!(e.body, Some(event::Body::Call(_)))).await?;
        match event.body {
            Some(event::Body::Call(call)) => Ok(call),
            _ => bail!("waiting for {what}: got {} instead of a call event", describe(&event)),
        }
    }

    /// Takes events for `period` and fails if a call event comes.
    pub async fn expect_no_call(&mut self, period: Duration, why: &str) -> anyhow::Result<()> {
        self.expect_none(period, why, |e| matches!(e.body, Some(event::Body::Call(_)))).await
    }

    /// Takes events until `sync_complete` on the current connection.
    pub async fn sync(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.until(timeout, "sync_complete", |inbox| inbox.synced).await
    }

    /// Every message, latest state, in the order each first arrived.
    pub fn messages(&self) -> Vec<&Message> {
        self.arrival.iter().filter_map(|id| self.messages.get(id)).collect()
    }

    /// The messages of one conversation, latest state, in arrival order.
    pub fn messages_in(&self, conversation_id: &str) -> Vec<&Message> {
        self.messages().into_iter().filter(|m| m.conversation_id == conversation_id).collect()
    }

    /// The latest state of message `id`.
    pub fn message(&self, id: &str) -> Option<&Message> {
        self.messages.get(id)
    }

    /// Every message change taken (duplicates dropped), in arrival order.
    pub fn changes(&self) -> &[(MessageChange, Message)] {
        &self.changes
    }

    /// Every other event taken (member, receipt, device list, typing, presence, sync), in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Every to-device message taken (duplicates dropped), in order.
    pub fn to_device(&self) -> &[ToDeviceMessage] {
        &self.to_device
    }

    /// How many duplicates were dropped.
    pub fn duplicates(&self) -> usize {
        self.duplicates
    }

    /// Hands the to-device messages not handed over yet to `device` (room keys imported).
    /// Fails if any could not be read.
    pub async fn import_keys(&mut self, device: &mut E2eeDevice) -> anyhow::Result<()> {
        let fresh = self.to_device.get(self.to_device_imported..).unwrap_or_default().to_vec();
        self.to_device_imported = self.to_device.len();
        let taken = device.receive_to_device(&fresh).await;
        if !taken.failures.is_empty() {
            bail!("{} could not read to-device messages: {:?}", device.device_id(), taken.failures);
        }
        Ok(())
    }

    /// Message `id` decrypted by `device`, taking further events (room keys may come after the
    /// message) until it decrypts or `timeout` passes.
    pub async fn decrypted(
        &mut self,
        device: &mut E2eeDevice,
        id: &str,
        timeout: Duration,
    ) -> anyhow::Result<Content> {
        let deadline = Instant::now() + timeout;
        loop {
            self.import_keys(device).await?;
            let message = self.message(id).with_context(|| format!("message {id} has not arrived"))?.clone();
            let content = device.decrypt_message(&message);
            if !matches!(content, Content::Undecryptable(_)) {
                return Ok(content);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Ok(_) => {}
                Err(WaitError::Timeout(_)) => return Ok(content),
                Err(e) => bail!("message {id} does not decrypt ({content:?}) and: {e}"),
            }
        }
    }
}
