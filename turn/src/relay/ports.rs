//! Relay sockets: which ports they bind, how many may exist, and which peers they talk to.
//!
//! The `turn` crate asks a `RelayAddressGenerator` for a socket whenever it creates an
//! allocation. Ours
//! - binds only even ports of the configured range (see [`super::PortRange`] for why),
//! - holds a semaphore permit inside each socket, so the allocation limit counts sockets that
//!   really exist and frees a slot exactly when the crate drops the socket, whatever the reason
//!   (expiry, refresh with lifetime 0, shutdown, read error),
//! - holds one of the allocating account's slots too ([`AccountQuota`]), given back the same way,
//! - wraps the socket in [`RelayConn`], which applies the [`PeerPolicy`] to every datagram.
//!
//! # Security
//! The gate refuses permissions for peers the policy refuses (403), so the crate never sends
//! to them; the policy is applied again here to every datagram, in both directions, so nothing
//! reaches or comes from such a peer whatever path a datagram takes (Send indications, channel
//! data, a peer that sends first).

use std::any::Any;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use turn::relay::RelayAddressGenerator;
use webrtc_util::Conn;

use super::PortRange;
use super::gate::{AccountQuota, AccountSlot, RequestContext};
use super::peers::PeerPolicy;

/// Hands out relay sockets on even ports of the range, at most `max` at a time.
pub(crate) struct RelayPorts {
    bind_ip: IpAddr,
    relay_ip: IpAddr,
    ports: PortRange,
    slots: Arc<Semaphore>,
    max: usize,
    policy: Arc<PeerPolicy>,
    quota: Arc<AccountQuota>,
    context: Arc<RequestContext>,
}

/// Who else the relay-port generator works with.
pub(crate) struct Limits {
    /// Allocations of the whole relay.
    pub(crate) slots: Arc<Semaphore>,
    /// Their number.
    pub(crate) max: usize,
    /// Allocations per account.
    pub(crate) quota: Arc<AccountQuota>,
    /// Which Allocate is being handled.
    pub(crate) context: Arc<RequestContext>,
}

impl RelayPorts {
    pub(crate) fn new(
        bind_ip: IpAddr,
        relay_ip: IpAddr,
        ports: PortRange,
        limits: Limits,
        policy: Arc<PeerPolicy>,
    ) -> Self {
        let Limits { slots, max, quota, context } = limits;
        Self { bind_ip, relay_ip, ports, slots, max, policy, quota, context }
    }

    /// Tries every even port once, from a random start (RFC 8656 §7.2 asks for unpredictable
    /// relay ports).
    async fn bind_any(&self) -> io::Result<UdpSocket> {
        let first = self.ports.min() + self.ports.min() % 2;
        let count = self.ports.even_ports();
        let start = getrandom::u32().map_or(0, |r| r as usize % count.max(1));
        let mut last_error = io::Error::new(io::ErrorKind::AddrInUse, "no free relay port");
        for i in 0..count {
            let Ok(offset) = u16::try_from((start + i) % count) else { continue };
            let port = first + 2 * offset;
            match UdpSocket::bind(SocketAddr::new(self.bind_ip, port)).await {
                Ok(socket) => return Ok(socket),
                Err(err) => last_error = err,
            }
        }
        Err(last_error)
    }
}

#[async_trait]
impl RelayAddressGenerator for RelayPorts {
    fn validate(&self) -> Result<(), turn::Error> {
        if self.ports.even_ports() == 0 {
            return Err(turn::Error::Other("the relay port range has no even port".to_owned()));
        }
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        if use_ipv4 != self.relay_ip.is_ipv4() {
            return Err(turn::Error::Other("relay address family not served".to_owned()));
        }
        // The gate answered 486 to an account at its maximum already; this holds the limit even
        // if a request got past it (the crate then answers 508).
        let Some(account) = self.context.allocating() else {
            return Err(turn::Error::Other("no authenticated Allocate is being handled".to_owned()));
        };
        let Some(account_slot) = self.quota.take(&account) else {
            tracing::info!(account_id = %account, "TURN allocation refused: the account holds its maximum");
            return Err(turn::Error::Other("allocation quota reached".to_owned()));
        };
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            tracing::warn!(max_allocations = self.max, "TURN allocation refused: the relay is full");
            return Err(turn::Error::Other("allocation limit reached".to_owned()));
        };
        // A non-zero port comes from the crate's EVEN-PORT handling, which got it from us; check
        // it anyway so nothing binds outside the range.
        let socket = if requested_port != 0 {
            if !self.ports.contains(requested_port) || !requested_port.is_multiple_of(2) {
                return Err(turn::Error::Other(format!("requested relay port {requested_port} refused")));
            }
            UdpSocket::bind(SocketAddr::new(self.bind_ip, requested_port)).await
        } else {
            self.bind_any().await
        };
        let socket = socket.map_err(|err| {
            tracing::warn!(error = %err, "TURN allocation refused: no relay port could be bound");
            turn::Error::Other(format!("no relay port: {err}"))
        })?;
        let port = socket.local_addr().map_err(|err| turn::Error::Other(err.to_string()))?.port();
        tracing::debug!(
            relay_port = port,
            active_allocations = self.max.saturating_sub(self.slots.available_permits()),
            "TURN relay port bound"
        );
        let conn =
            RelayConn { socket, policy: Arc::clone(&self.policy), _slot: slot, _account: account_slot };
        Ok((Arc::new(conn), SocketAddr::new(self.relay_ip, port)))
    }
}

/// A relay socket that enforces the [`PeerPolicy`] and gives its allocation slots (the relay's
/// and the account's) back on drop.
struct RelayConn {
    socket: UdpSocket,
    policy: Arc<PeerPolicy>,
    _slot: OwnedSemaphorePermit,
    _account: AccountSlot,
}

impl Drop for RelayConn {
    fn drop(&mut self) {
        if let Ok(addr) = self.socket.local_addr() {
            tracing::debug!(relay_port = addr.port(), "TURN relay port released");
        }
    }
}

#[async_trait]
impl Conn for RelayConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        if !self.policy.allows(addr) {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "peer not allowed").into());
        }
        Ok(self.socket.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        // Only reachable after `connect`, which applied the policy.
        Ok(self.socket.recv(buf).await?)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            if self.policy.allows(from) {
                return Ok((n, from));
            }
            tracing::debug!(peer = %from, "TURN relay dropped a datagram from a refused peer");
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        Ok(self.socket.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.policy.allows(target) {
            // Dropped silently, as UDP would; an error here would only make the crate log an
            // error line per datagram.
            tracing::debug!(peer = %target, "TURN relay dropped a datagram to a refused peer");
            return Ok(buf.len());
        }
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        // Like the crate's own UDP sockets: the socket closes when the last reference drops.
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

    #[tokio::test]
    async fn hands_out_even_ports_in_range_up_to_the_limit() {
        // A range of 6 ports (3 even) on loopback, limit 2.
        let base = free_even_range(6).await;
        let ports = PortRange::new(base, base + 5).unwrap();
        let slots = Arc::new(Semaphore::new(2));
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let policy = Arc::new(PeerPolicy::new(loopback, vec![], ports, false, false));
        let context = Arc::new(RequestContext::default());
        context.set_allocating_for_tests("alice");
        let limits =
            Limits { slots: Arc::clone(&slots), max: 2, quota: Arc::new(AccountQuota::new(10)), context };
        let generator = RelayPorts::new(loopback, loopback, ports, limits, policy);

        let (a, addr_a) = generator.allocate_conn(true, 0).await.unwrap();
        let (b, addr_b) = generator.allocate_conn(true, 0).await.unwrap();
        for addr in [addr_a, addr_b] {
            assert!(ports.contains(addr.port()) && addr.port().is_multiple_of(2), "{addr}");
            assert_eq!(addr.ip(), loopback);
        }
        assert_ne!(addr_a, addr_b);
        assert!(generator.allocate_conn(true, 0).await.is_err(), "the third allocation must be refused");
        assert!(generator.allocate_conn(false, 0).await.is_err(), "IPv6 is not served on an IPv4 relay");

        drop(a);
        let (_c, addr_c) = generator.allocate_conn(true, 0).await.unwrap();
        assert!(ports.contains(addr_c.port()));
        drop(b);
        assert!(generator.allocate_conn(true, base + 1).await.is_err(), "odd requested port");
        assert!(generator.allocate_conn(true, base + 6).await.is_err(), "requested port out of range");
        assert_eq!(slots.available_permits(), 1, "refused requests must not keep a slot");
    }

    /// An even base port such that `base..base+len` binds on loopback right now.
    async fn free_even_range(len: u16) -> u16 {
        for _ in 0..50 {
            let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = probe.local_addr().unwrap().port();
            drop(probe);
            let base = port - port % 2;
            if base < 1024 || base.checked_add(len).is_none() {
                continue;
            }
            let mut held = Vec::new();
            for p in base..base + len {
                match UdpSocket::bind(("127.0.0.1", p)).await {
                    Ok(s) => held.push(s),
                    Err(_) => break,
                }
            }
            if held.len() == usize::from(len) {
                return base;
            }
        }
        panic!("no free range of {len} UDP ports on loopback");
    }
}
