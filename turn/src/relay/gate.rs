//! The gate in front of the `turn` crate: every datagram on the listening socket passes here
//! first, so the relay can refuse, with the standard error codes, what the crate would accept:
//!
//! - an **Allocate** from an account that already holds its share of allocations gets
//!   **486 Allocation Quota Reached** (RFC 8656 §7.2; coturn's `user-quota`);
//! - a **CreatePermission** or **ChannelBind** naming a peer the [`PeerPolicy`] refuses gets
//!   **403 Forbidden** (RFC 8656 §9.1), and nothing of it reaches the crate.
//!
//! Both answers are given only to requests whose MESSAGE-INTEGRITY checks out (so a stranger
//! learns nothing and the crate still answers 401 to unauthenticated requests). Everything else
//! goes on to the crate unchanged.
//!
//! The gate also tells the rest of the relay which request the crate is handling now
//! ([`RequestContext`]): the crate reads one datagram, handles it to the end, then reads the
//! next (one read loop per listening socket, and we have one), so what the gate saw last is
//! what the crate's auth handler and relay-port generator are called for. The auth handler uses
//! it to check credential expiry on Allocate only; the generator to count allocations per
//! account.

use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_REALM, ATTR_USERNAME, ATTR_XOR_PEER_ADDRESS};
use stun::error_code::{CODE_ALLOC_QUOTA_REACHED, CODE_FORBIDDEN, ErrorCode, ErrorCodeAttribute};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_REQUEST, METHOD_ALLOCATE, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION,
    Message, MessageType, Method, Setter,
};
use stun::textattrs::TextAttribute;
use tokio::net::UdpSocket;
use webrtc_util::Conn;

use super::auth::RestAuthHandler;
use super::peers::PeerPolicy;
use crate::credentials::ParsedUsername;

/// The magic cookie of STUN (RFC 5389 §6), also the XOR mask of XOR-PEER-ADDRESS.
const MAGIC_COOKIE: u32 = 0x2112_a442;

/// What the crate is handling now, as the gate last saw it.
#[derive(Debug, Default)]
pub(crate) struct RequestContext {
    current: Mutex<Current>,
}

#[derive(Debug, Default, Clone)]
struct Current {
    /// The STUN method of a request (`None`: not a request, or not decodable).
    method: Option<Method>,
    /// For an authenticated Allocate: the account in its username.
    allocating: Option<String>,
}

impl RequestContext {
    fn set(&self, current: Current) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = current;
    }

    fn get(&self) -> Current {
        self.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether the request being handled is one of the known non-Allocate requests, whose
    /// credentials may have expired since their allocation was made.
    pub(crate) fn is_follow_up(&self) -> bool {
        matches!(self.get().method, Some(method) if method != METHOD_ALLOCATE)
    }

    /// The account an Allocate being handled is for.
    pub(crate) fn allocating(&self) -> Option<String> {
        self.get().allocating
    }

    #[cfg(test)]
    pub(crate) fn set_allocating_for_tests(&self, account: &str) {
        self.set(Current { method: Some(METHOD_ALLOCATE), allocating: Some(account.to_owned()) });
    }
}

/// How many allocations each account holds, and the most it may.
#[derive(Debug)]
pub(crate) struct AccountQuota {
    max: usize,
    held: Mutex<HashMap<String, usize>>,
}

impl AccountQuota {
    pub(crate) fn new(max: usize) -> Self {
        Self { max, held: Mutex::new(HashMap::new()) }
    }

    /// How many allocations `account` holds now.
    pub(crate) fn held(&self, account: &str) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).get(account).copied().unwrap_or(0)
    }

    /// Takes one of `account`'s slots, given back when the returned guard drops; `None` when the
    /// account holds its maximum.
    pub(crate) fn take(self: &Arc<Self>, account: &str) -> Option<AccountSlot> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(account.to_owned()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AccountSlot { quota: Arc::clone(self), account: account.to_owned() })
    }
}

/// One allocation of one account; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct AccountSlot {
    quota: Arc<AccountQuota>,
    account: String,
}

impl Drop for AccountSlot {
    fn drop(&mut self) {
        let mut held = self.quota.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.account) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.account);
            }
        }
    }
}

/// What to do with a datagram.
#[derive(Debug)]
enum Verdict {
    /// Hand it to the crate.
    Pass,
    /// Answer this instead and drop the datagram.
    Refuse(Vec<u8>),
}

/// The checks, apart from the socket (so they can be tested on bytes).
pub(crate) struct Gate {
    pub(crate) auth: Arc<RestAuthHandler>,
    pub(crate) policy: Arc<PeerPolicy>,
    pub(crate) quota: Arc<AccountQuota>,
    pub(crate) context: Arc<RequestContext>,
}

impl Gate {
    fn admit(&self, datagram: &[u8], from: SocketAddr) -> Verdict {
        let (current, verdict) = self.judge(datagram, from);
        // Only what the crate will handle becomes the current request.
        if matches!(verdict, Verdict::Pass) {
            self.context.set(current);
        }
        verdict
    }

    fn judge(&self, datagram: &[u8], from: SocketAddr) -> (Current, Verdict) {
        let mut current = Current::default();
        if !stun::message::is_message(datagram) {
            return (current, Verdict::Pass); // ChannelData: the crate checks its channel.
        }
        let mut m = Message::new();
        m.raw = datagram.to_vec();
        if m.decode().is_err() || m.typ.class != CLASS_REQUEST {
            return (current, Verdict::Pass);
        }
        current.method = Some(m.typ.method);
        let method = m.typ.method;
        if ![METHOD_ALLOCATE, METHOD_CREATE_PERMISSION, METHOD_CHANNEL_BIND].contains(&method)
            || !m.contains(ATTR_MESSAGE_INTEGRITY)
        {
            return (current, Verdict::Pass);
        }
        let (Ok(username), Ok(realm)) =
            (TextAttribute::get_from_as(&m, ATTR_USERNAME), TextAttribute::get_from_as(&m, ATTR_REALM))
        else {
            return (current, Verdict::Pass);
        };
        let (username, realm) = (username.to_string(), realm.to_string());
        // Expiry is the crate's to check (through the auth handler); here only the integrity.
        let Ok(key) = self.auth.key_ignoring_expiry(&username, &realm) else {
            return (current, Verdict::Pass);
        };
        let integrity = MessageIntegrity(key);
        if integrity.check(&mut m.clone()).is_err() {
            return (current, Verdict::Pass);
        }
        let Ok(parsed) = ParsedUsername::parse(&username) else {
            return (current, Verdict::Pass);
        };
        let account = parsed.account_id.to_owned();

        if method == METHOD_ALLOCATE {
            if self.quota.held(&account) >= self.quota.max {
                tracing::info!(%from, account_id = %account, max = self.quota.max,
                    "TURN allocation refused: the account holds its maximum");
                return (
                    current,
                    refuse(&m, CODE_ALLOC_QUOTA_REACHED, "Allocation Quota Reached", integrity),
                );
            }
            current.allocating = Some(account);
            return (current, Verdict::Pass);
        }

        for peer in xor_peer_addresses(&m) {
            let allowed = if method == METHOD_CHANNEL_BIND {
                self.policy.allows(peer)
            } else {
                // A permission is for an IP address, whatever the port (RFC 8656 §9).
                self.policy.permits(peer.ip())
            };
            if !allowed {
                tracing::info!(%from, account_id = %account, %peer,
                    "TURN permission refused: the peer address is not allowed");
                return (current, refuse(&m, CODE_FORBIDDEN, "Forbidden", integrity));
            }
        }
        (current, Verdict::Pass)
    }
}

/// An error response to `request`, signed with the request's key.
fn refuse(request: &Message, code: ErrorCode, reason: &str, integrity: MessageIntegrity) -> Verdict {
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(Message { transaction_id: request.transaction_id, ..Default::default() }),
        Box::new(MessageType::new(request.typ.method, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute { code, reason: reason.as_bytes().to_vec() }),
        Box::new(integrity),
        Box::new(FINGERPRINT),
    ];
    let mut response = Message::new();
    match response.build(&setters) {
        Ok(()) => Verdict::Refuse(response.raw),
        Err(e) => {
            // Cannot happen with these attributes; dropping the request is still a refusal.
            tracing::warn!(error = %e, "cannot build a TURN error response");
            Verdict::Refuse(Vec::new())
        }
    }
}

/// Every XOR-PEER-ADDRESS of `m` (a CreatePermission may carry several).
fn xor_peer_addresses(m: &Message) -> Vec<SocketAddr> {
    m.attributes
        .0
        .iter()
        .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
        .map(|a| decode_xor_address(&a.value, &m.transaction_id.0).unwrap_or(UNDECODABLE))
        .collect()
}

/// What an undecodable peer address counts as: unusable, so it is refused.
const UNDECODABLE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// RFC 5389 §15.2: `0, family, port ^ 0x2112, address ^ (cookie ‖ transaction id)`.
fn decode_xor_address(value: &[u8], transaction_id: &[u8; 12]) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction_id);
    let ip = match (family, value.len()) {
        (0x01, 8) => {
            let mut octets = [0u8; 4];
            for (i, o) in octets.iter_mut().enumerate() {
                *o = value[4 + i] ^ mask[i];
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        (0x02, 20) => {
            let mut octets = [0u8; 16];
            for (i, o) in octets.iter_mut().enumerate() {
                *o = value[4 + i] ^ mask[i];
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The listening socket as the crate sees it: reads pass through the [`Gate`].
pub(crate) struct GatedListener {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) gate: Gate,
}

#[async_trait]
impl Conn for GatedListener {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        Ok(self.socket.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            match self.gate.admit(&buf[..n], from) {
                Verdict::Pass => return Ok((n, from)),
                Verdict::Refuse(answer) if answer.is_empty() => {}
                Verdict::Refuse(answer) => {
                    if let Err(e) = self.socket.send_to(&answer, from).await {
                        tracing::debug!(error = %e, %from, "cannot send a TURN refusal");
                    }
                }
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        Ok(self.socket.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn xor_addresses_decode() {
        // RFC 5769 §2.2's XOR-MAPPED-ADDRESS: 192.0.2.1:32853, and §2.3's 2001:db8:1234:5678:11:2233:4455:6677:32853.
        let tid = [0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae];
        let v4 = [0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43];
        assert_eq!(decode_xor_address(&v4, &tid), Some("192.0.2.1:32853".parse().unwrap()));
        let v6 = [
            0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5,
            0xbe, 0xd2, 0xb9, 0xd9,
        ];
        assert_eq!(
            decode_xor_address(&v6, &tid),
            Some("[2001:db8:1234:5678:11:2233:4455:6677]:32853".parse().unwrap())
        );
        assert_eq!(decode_xor_address(&v4[..7], &tid), None);
        assert_eq!(decode_xor_address(&[0, 3, 0, 0, 0, 0, 0, 0], &tid), None);
    }

    #[test]
    fn account_slots_count_and_free() {
        let quota = Arc::new(AccountQuota::new(2));
        let a1 = quota.take("alice").unwrap();
        let _a2 = quota.take("alice").unwrap();
        assert!(quota.take("alice").is_none(), "the third of alice's is refused");
        let _b1 = quota.take("bob").expect("bob has his own quota");
        assert_eq!(quota.held("alice"), 2);
        drop(a1);
        assert_eq!(quota.held("alice"), 1);
        let _a3 = quota.take("alice").expect("a freed slot can be taken again");
    }
}
