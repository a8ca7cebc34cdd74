//! Relay sockets: which ports they bind, how many may exist, and which peers they talk to.
//!
//! The `turn` crate asks a `RelayAddressGenerator` for a socket whenever it creates an
//! allocation. Ours
//! - binds only even ports of the configured range (see [`super::PortRange`] for why),
//! - holds a semaphore permit inside each socket, so the allocation limit counts sockets that
//!   really exist and frees a slot exactly when the crate drops the socket, whatever the reason
//!   (expiry, refresh with lifetime 0, shutdown, read error),
//! - wraps the socket in [`RelayConn`], which applies the [`PeerPolicy`] to every datagram.
//!
//! # Security
//! Without a peer policy a TURN relay lets any authenticated user send UDP from the server to
//! anything the server can reach, including services that listen only on loopback or on the
//! server's own address. The policy drops datagrams to or from unspecified, multicast and
//! broadcast addresses, and, on loopback and the relay's own addresses, everything except this
//! relay's own port range (so two clients of the same relay still reach each other). Other
//! addresses of the host (a second interface, a container bridge) are not known here; the
//! crate documentation says so.

use std::any::Any;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use turn::relay::RelayAddressGenerator;
use webrtc_util::Conn;

use super::PortRange;

/// Which peers relay sockets may exchange datagrams with.
#[derive(Debug)]
pub(crate) struct PeerPolicy {
    own_ips: Vec<IpAddr>,
    relay_ports: PortRange,
    allow_loopback: bool,
}

impl PeerPolicy {
    pub(crate) fn new(own_ips: Vec<IpAddr>, relay_ports: PortRange, allow_loopback: bool) -> Self {
        let own_ips = own_ips.into_iter().map(|ip| ip.to_canonical()).collect();
        Self { own_ips, relay_ports, allow_loopback }
    }

    pub(crate) fn allows(&self, peer: SocketAddr) -> bool {
        let ip = peer.ip().to_canonical();
        if peer.port() == 0 || ip.is_unspecified() || ip.is_multicast() || ip == Ipv4Addr::BROADCAST {
            return false;
        }
        if ip.is_loopback() && self.allow_loopback {
            return true;
        }
        if ip.is_loopback() || self.own_ips.contains(&ip) {
            return self.relay_ports.contains(peer.port());
        }
        true
    }
}

/// Hands out relay sockets on even ports of the range, at most `max` at a time.
pub(crate) struct RelayPorts {
    bind_ip: IpAddr,
    relay_ip: IpAddr,
    ports: PortRange,
    slots: Arc<Semaphore>,
    max: usize,
    policy: Arc<PeerPolicy>,
}

impl RelayPorts {
    pub(crate) fn new(
        bind_ip: IpAddr,
        relay_ip: IpAddr,
        ports: PortRange,
        slots: Arc<Semaphore>,
        max: usize,
        policy: Arc<PeerPolicy>,
    ) -> Self {
        Self { bind_ip, relay_ip, ports, slots, max, policy }
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
        let conn = RelayConn { socket, policy: Arc::clone(&self.policy), _slot: slot };
        Ok((Arc::new(conn), SocketAddr::new(self.relay_ip, port)))
    }
}

/// A relay socket that enforces the [`PeerPolicy`] and gives its allocation slot back on drop.
struct RelayConn {
    socket: UdpSocket,
    policy: Arc<PeerPolicy>,
    _slot: OwnedSemaphorePermit,
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

    #[test]
    fn peer_policy_table() {
        let ports = PortRange::new(50000, 50099).unwrap();
        let own: Vec<IpAddr> = vec!["192.168.1.10".parse().unwrap()];
        let strict = PeerPolicy::new(own.clone(), ports, false);
        let loose = PeerPolicy::new(own, ports, true);
        for (peer, strict_ok, loose_ok) in [
            ("192.168.1.20:40000", true, true),         // another LAN host
            ("203.0.113.5:443", true, true),            // the internet
            ("[2001:db8::5]:5000", true, true),         // IPv6 peer
            ("192.168.1.10:50010", true, true),         // another allocation on this relay
            ("192.168.1.10:5432", false, false),        // a service on the relay host
            ("192.168.1.10:49999", false, false),       // just below the range
            ("127.0.0.1:50010", true, true),            // loopback, relay port
            ("127.0.0.1:8080", false, true),            // loopback service
            ("127.8.9.10:22", false, true),             // all of 127/8
            ("[::1]:8080", false, true),                // IPv6 loopback
            ("[::ffff:127.0.0.1]:8080", false, true),   // IPv4-mapped loopback
            ("[::ffff:192.168.1.10]:22", false, false), // IPv4-mapped own address
            ("0.0.0.0:50010", false, false),
            ("[::]:50010", false, false),
            ("224.0.0.251:5353", false, false),
            ("[ff02::1]:5353", false, false),
            ("255.255.255.255:9", false, false),
            ("192.168.1.20:0", false, false),
        ] {
            let addr: SocketAddr = peer.parse().unwrap();
            assert_eq!(strict.allows(addr), strict_ok, "strict {peer}");
            assert_eq!(loose.allows(addr), loose_ok, "loopback allowed {peer}");
        }
    }

    #[tokio::test]
    async fn hands_out_even_ports_in_range_up_to_the_limit() {
        // A range of 6 ports (3 even) on loopback, limit 2.
        let base = free_even_range(6).await;
        let ports = PortRange::new(base, base + 5).unwrap();
        let slots = Arc::new(Semaphore::new(2));
        let policy = Arc::new(PeerPolicy::new(vec![], ports, false));
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let generator = RelayPorts::new(loopback, loopback, ports, Arc::clone(&slots), 2, policy);

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
