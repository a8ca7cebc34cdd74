//! The embedded TURN relay: webrtc-rs's `turn` server on one UDP port, with our credentials,
//! a bounded relay port range, a bounded number of allocations (in all and per account) and a
//! peer policy.
//!
//! [`start`] binds the listening socket and returns a [`Relay`]; [`Relay::close`] stops it and
//! waits (bounded) until its sockets are released. Dropping a `Relay` without closing it stops it
//! in the background.

mod auth;
mod gate;
mod peers;
mod ports;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use turn::server::Server;
use turn::server::config::{ConnConfig, ServerConfig};
use webrtc_util::Conn;

use crate::credentials::TurnSecret;
use auth::RestAuthHandler;
use gate::{AccountQuota, Gate, GatedListener, RequestContext};
use peers::PeerPolicy;
use ports::{Limits, RelayPorts};

/// Where the relay listens by default: all IPv4 interfaces, the standard TURN port.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 3478);

/// The relay ports handed out by default (100 even ports; see [`PortRange`]).
pub const DEFAULT_RELAY_PORTS: PortRange = PortRange { min: 49160, max: 49359 };

/// How many allocations may exist at once by default. A browser in a 6-person mesh call that
/// needs the relay uses about one allocation per other participant.
pub const DEFAULT_MAX_ALLOCATIONS: usize = 100;

/// How many allocations one account may hold at once by default. A call has at most 6 devices,
/// so a device in a full call keeps a peer connection (one relayed allocation each, with
/// BUNDLE) to each of 5 others; 10 leaves room for a second device of the same account in the
/// call, or a browser that gathers relayed candidates on two networks. One account then holds
/// at most a tenth of the default relay.
pub const DEFAULT_MAX_ALLOCATIONS_PER_ACCOUNT: usize = 10;

/// The most allocations we let one relay hold; each is a UDP socket and two tasks.
pub const MAX_ALLOCATIONS_LIMIT: usize = 10_000;

/// The realm the relay announces by default.
pub const DEFAULT_REALM: &str = "kitsulan";

/// How long [`Relay::close`] waits for the relay's sockets to be released.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// An inclusive range of UDP ports for relayed addresses, e.g. `49160-49359`.
///
/// Only the **even** ports in the range are used: a client may ask for an even port (RFC 5766
/// EVEN-PORT) and the `turn` crate then retries until it gets one, so handing out only even
/// ports keeps that request from looping. A range of N ports therefore holds about N/2
/// allocations; open the whole range in the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    min: u16,
    max: u16,
}

impl PortRange {
    /// The lowest port we accept in a range (below are system and well-known ports).
    pub const LOWEST: u16 = 1024;

    /// `min..=max`.
    ///
    /// # Errors
    /// [`ConfigError::PortRange`] when `min > max`, `min` is below [`PortRange::LOWEST`], or the
    /// range has no even port.
    pub fn new(min: u16, max: u16) -> Result<Self, ConfigError> {
        let range = Self { min, max };
        if min > max || min < Self::LOWEST || range.even_ports() == 0 {
            return Err(ConfigError::PortRange(format!("{min}-{max}")));
        }
        Ok(range)
    }

    /// The lowest port.
    pub fn min(&self) -> u16 {
        self.min
    }

    /// The highest port (inclusive).
    pub fn max(&self) -> u16 {
        self.max
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.min..=self.max).contains(&port)
    }

    /// How many even ports the range holds: the most allocations it can serve.
    pub fn even_ports(&self) -> usize {
        let first = self.min.saturating_add(self.min % 2);
        if self.min > self.max || first > self.max {
            return 0;
        }
        usize::from((self.max - first) / 2) + 1
    }
}

impl FromStr for PortRange {
    type Err = ConfigError;

    /// Parses `MIN-MAX` (e.g. `49160-49359`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::PortRange(s.to_owned());
        let (min, max) = s.trim().split_once('-').ok_or_else(bad)?;
        let min = min.trim().parse().map_err(|_| bad())?;
        let max = max.trim().parse().map_err(|_| bad())?;
        Self::new(min, max)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

/// Settings for the embedded relay. [`RelayConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The secret shared with the KitsuLAN server (`KITSULAN_TURN_SECRET`).
    pub secret: TurnSecret,
    /// UDP address to listen on for TURN and STUN; default [`DEFAULT_LISTEN`]. Port 0 lets the
    /// OS pick (tests).
    pub listen: SocketAddr,
    /// The address peers reach relayed ports at, put in XOR-RELAYED-ADDRESS and in
    /// [`Relay::urls`]. `None`: the listen address if it is a specific one, else the address of
    /// the interface the OS would route outbound traffic through.
    pub relay_ip: Option<IpAddr>,
    /// Ports for relayed addresses; default [`DEFAULT_RELAY_PORTS`]. Relay sockets bind on the
    /// listen address's IP.
    pub relay_ports: PortRange,
    /// The most allocations that may exist at once; default [`DEFAULT_MAX_ALLOCATIONS`]. Beyond
    /// it, Allocate requests get 508 Insufficient Capacity.
    pub max_allocations: usize,
    /// The most allocations one account (the account id in the credentials' username, whatever
    /// their expiry) may hold at once; default [`DEFAULT_MAX_ALLOCATIONS_PER_ACCOUNT`]. Beyond
    /// it, Allocate requests get 486 Allocation Quota Reached.
    pub max_allocations_per_account: usize,
    /// The realm announced to clients; default [`DEFAULT_REALM`].
    pub realm: String,
    /// Relay to any port on loopback addresses. Off by default, which limits loopback peers to
    /// this relay's own ports (like coturn without `--allow-loopback-peers`); for tests.
    pub allow_loopback_peers: bool,
    /// Relay to private (RFC 1918), CGNAT, link-local and unique-local peers. Off by default
    /// (like coturn's recommended `denied-peer-ip` ranges); on for LAN parties whose devices
    /// cannot reach each other directly. This host's own addresses stay refused either way.
    pub allow_lan_peers: bool,
}

impl RelayConfig {
    /// The defaults, with `secret`.
    pub fn new(secret: TurnSecret) -> Self {
        Self {
            secret,
            listen: DEFAULT_LISTEN,
            relay_ip: None,
            relay_ports: DEFAULT_RELAY_PORTS,
            max_allocations: DEFAULT_MAX_ALLOCATIONS,
            max_allocations_per_account: DEFAULT_MAX_ALLOCATIONS_PER_ACCOUNT,
            realm: DEFAULT_REALM.to_owned(),
            allow_loopback_peers: false,
            allow_lan_peers: false,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_allocations == 0 || self.max_allocations > MAX_ALLOCATIONS_LIMIT {
            return Err(ConfigError::MaxAllocations { max: MAX_ALLOCATIONS_LIMIT });
        }
        if self.max_allocations_per_account == 0 || self.max_allocations_per_account > MAX_ALLOCATIONS_LIMIT {
            return Err(ConfigError::MaxAllocationsPerAccount { max: MAX_ALLOCATIONS_LIMIT });
        }
        if self.realm.is_empty()
            || self.realm.len() > 127
            || !self.realm.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError::Realm);
        }
        if self.listen.port() != 0 && self.relay_ports.contains(self.listen.port()) {
            return Err(ConfigError::ListenInRelayPorts);
        }
        if let Some(ip) = self.relay_ip
            && (ip.is_unspecified() || ip.is_multicast() || ip.is_ipv4() != self.listen.is_ipv4())
        {
            return Err(ConfigError::RelayIp(ip));
        }
        Ok(())
    }
}

/// A running relay. Stop it with [`Relay::close`].
pub struct Relay {
    server: Option<Server>,
    listener: Arc<UdpSocket>,
    local_addr: SocketAddr,
    relay_ip: IpAddr,
    slots: Arc<Semaphore>,
    max_allocations: usize,
}

/// Starts the relay: validates `config`, binds the listening socket and serves until
/// [`Relay::close`].
///
/// # Errors
/// [`RelayError::Config`] for an invalid setting, [`RelayError::Bind`] when the listen address
/// cannot be bound, [`RelayError::NoRelayIp`] when no relay IP was set and none could be found,
/// [`RelayError::Turn`] when the `turn` server refuses to start.
pub async fn start(config: RelayConfig) -> Result<Relay, RelayError> {
    config.validate()?;
    let listener = UdpSocket::bind(config.listen)
        .await
        .map_err(|source| RelayError::Bind { addr: config.listen, source })?;
    let listener = Arc::new(listener);
    let local_addr =
        listener.local_addr().map_err(|source| RelayError::Bind { addr: config.listen, source })?;
    let relay_ip = match config.relay_ip {
        Some(ip) => ip,
        None if !local_addr.ip().is_unspecified() => local_addr.ip(),
        None => outbound_ip(local_addr.is_ipv4()).map_err(RelayError::NoRelayIp)?,
    };

    let slots = Arc::new(Semaphore::new(config.max_allocations));
    let mut own_ips = peers::host_addresses();
    if !local_addr.ip().is_unspecified() {
        own_ips.push(local_addr.ip());
    }
    let policy = Arc::new(PeerPolicy::new(
        relay_ip,
        own_ips,
        config.relay_ports,
        config.allow_loopback_peers,
        config.allow_lan_peers,
    ));
    let context = Arc::new(RequestContext::default());
    let quota = Arc::new(AccountQuota::new(config.max_allocations_per_account));
    let auth =
        Arc::new(RestAuthHandler::new(config.secret.clone(), config.realm.clone(), Arc::clone(&context)));
    let limits = Limits {
        slots: Arc::clone(&slots),
        max: config.max_allocations,
        quota: Arc::clone(&quota),
        context: Arc::clone(&context),
    };
    let generator =
        RelayPorts::new(local_addr.ip(), relay_ip, config.relay_ports, limits, Arc::clone(&policy));
    let gate = Gate { auth: Arc::clone(&auth), policy, quota, context };
    let conn: Arc<dyn Conn + Send + Sync> = Arc::new(GatedListener { socket: Arc::clone(&listener), gate });
    let server = Server::new(ServerConfig {
        conn_configs: vec![ConnConfig { conn, relay_addr_generator: Box::new(generator) }],
        realm: config.realm.clone(),
        auth_handler: auth,
        // Zero means the crate's default (10 minutes, RFC 5766).
        channel_bind_timeout: Duration::ZERO,
        alloc_close_notify: None,
    })
    .await
    .map_err(RelayError::Turn)?;

    tracing::info!(
        listen = %local_addr,
        %relay_ip,
        relay_ports = %config.relay_ports,
        max_allocations = config.max_allocations,
        max_allocations_per_account = config.max_allocations_per_account,
        allow_lan_peers = config.allow_lan_peers,
        realm = %config.realm,
        "TURN relay listening"
    );
    Ok(Relay {
        server: Some(server),
        listener,
        local_addr,
        relay_ip,
        slots,
        max_allocations: config.max_allocations,
    })
}

impl Relay {
    /// The address the relay listens on (with the OS-chosen port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address relayed ports are announced at.
    pub fn relay_ip(&self) -> IpAddr {
        self.relay_ip
    }

    /// The URLs clients should be given: `turn:IP:PORT?transport=udp` and `stun:IP:PORT`, with
    /// the relay IP and the listening port.
    pub fn urls(&self) -> Vec<String> {
        let host = match self.relay_ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        let port = self.local_addr.port();
        vec![format!("turn:{host}:{port}?transport=udp"), format!("stun:{host}:{port}")]
    }

    /// How many relay sockets are open now (allocations, plus a port briefly probed for an
    /// EVEN-PORT request).
    pub fn active_allocations(&self) -> usize {
        self.max_allocations.saturating_sub(self.slots.available_permits())
    }

    /// Stops the relay: ends every allocation and waits up to five seconds until the listening
    /// port and the relay ports are released.
    ///
    /// # Errors
    /// [`RelayError::Turn`] when the `turn` server fails to stop.
    pub async fn close(mut self) -> Result<(), RelayError> {
        if let Some(server) = self.server.take() {
            server.close().await.map_err(RelayError::Turn)?;
        }
        // The crate's tasks hold clones of our sockets until they notice the close; wait for
        // them so a restart can bind the same ports.
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        while Arc::strong_count(&self.listener) > 1 || self.active_allocations() > 0 {
            if Instant::now() >= deadline {
                tracing::warn!(
                    active_allocations = self.active_allocations(),
                    "TURN relay closed, but some sockets were still held after {CLOSE_TIMEOUT:?}"
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(listen = %self.local_addr, "TURN relay closed");
        Ok(())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // Not closed explicitly: stop the tasks in the background if a runtime is still there
            // (if not, the runtime's shutdown has already ended them).
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = server.close().await;
                });
            }
        }
    }
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("local_addr", &self.local_addr)
            .field("relay_ip", &self.relay_ip)
            .field("active_allocations", &self.active_allocations())
            .field("max_allocations", &self.max_allocations)
            .finish_non_exhaustive()
    }
}

/// The local address the OS would use to reach a public address. Connecting a UDP socket sends
/// nothing; it only asks the routing table. (Also what the SFU advertises by default.)
pub fn outbound_ip(ipv4: bool) -> std::io::Result<IpAddr> {
    // TEST-NET-1 / the IPv6 documentation prefix: routable-looking, never contacted.
    let (bind, probe): (SocketAddr, SocketAddr) = if ipv4 {
        (([0, 0, 0, 0], 0).into(), ([192, 0, 2, 1], 9).into())
    } else {
        (([0u16; 8], 0).into(), ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 9).into())
    };
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.connect(probe)?;
    let ip = socket.local_addr()?.ip();
    if ip.is_unspecified() {
        return Err(std::io::Error::other("no usable local address"));
    }
    Ok(ip)
}

/// A setting the relay cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The relay port range is not `MIN-MAX` with `1024 <= MIN <= MAX` and an even port in it.
    #[error("invalid TURN relay port range {0:?} (want MIN-MAX, MIN >= 1024, with an even port)")]
    PortRange(String),
    /// `max_allocations` is 0 or above `max`.
    #[error("the TURN allocation limit must be between 1 and {max}")]
    MaxAllocations {
        /// [`MAX_ALLOCATIONS_LIMIT`].
        max: usize,
    },
    /// `max_allocations_per_account` is 0 or above `max`.
    #[error("the TURN allocation limit per account must be between 1 and {max}")]
    MaxAllocationsPerAccount {
        /// [`MAX_ALLOCATIONS_LIMIT`].
        max: usize,
    },
    /// The realm is empty, longer than 127 bytes, or not printable ASCII without spaces.
    #[error("the TURN realm must be 1 to 127 printable ASCII characters")]
    Realm,
    /// The listening port is inside the relay port range.
    #[error("the TURN listening port must not be inside the relay port range")]
    ListenInRelayPorts,
    /// The relay IP is unspecified, multicast, or of another family than the listen address.
    #[error("unusable TURN relay IP {0} (must be a unicast address of the listen address's family)")]
    RelayIp(IpAddr),
}

/// Why the relay did not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listening address could not be bound (in use, or not an address of this host).
    #[error("cannot listen for TURN on {addr}")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No relay IP was configured, the listen address is a wildcard, and the OS has no route to
    /// tell us the host's address.
    #[error("cannot tell which address peers reach the TURN relay at; set the relay IP")]
    NoRelayIp(#[source] std::io::Error),
    /// The `turn` server refused to start or failed to stop.
    #[error("TURN server error")]
    Turn(#[source] turn::Error),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn port_ranges_parse_and_count_even_ports() {
        for (text, min, max, even) in [
            ("49160-49359", 49160, 49359, 100),
            (" 50000 - 50000 ", 50000, 50000, 1),
            ("50001-50002", 50001, 50002, 1),
            ("1024-65535", 1024, 65535, 32256),
        ] {
            let range: PortRange = text.parse().unwrap();
            assert_eq!((range.min(), range.max(), range.even_ports()), (min, max, even), "{text}");
        }
        assert_eq!(DEFAULT_RELAY_PORTS, PortRange::new(49160, 49359).unwrap());
        assert_eq!(DEFAULT_RELAY_PORTS.to_string(), "49160-49359");
        for text in ["", "49160", "49359-49160", "80-90", "50001-50001", "a-b", "0-0", "49160-70000", "-1-5"]
        {
            assert!(matches!(text.parse::<PortRange>(), Err(ConfigError::PortRange(_))), "{text:?}");
        }
    }

    #[test]
    fn refuses_bad_configs() {
        let base = || {
            let mut c = RelayConfig::new(TurnSecret::new("relay-config-test-secret").unwrap());
            c.listen = "127.0.0.1:3478".parse().unwrap();
            c
        };
        assert_eq!(base().validate(), Ok(()));
        type Change = fn(&mut RelayConfig);
        let cases: Vec<(Change, ConfigError)> = vec![
            (|c| c.max_allocations = 0, ConfigError::MaxAllocations { max: MAX_ALLOCATIONS_LIMIT }),
            (
                |c| c.max_allocations = MAX_ALLOCATIONS_LIMIT + 1,
                ConfigError::MaxAllocations { max: MAX_ALLOCATIONS_LIMIT },
            ),
            (
                |c| c.max_allocations_per_account = 0,
                ConfigError::MaxAllocationsPerAccount { max: MAX_ALLOCATIONS_LIMIT },
            ),
            (|c| c.realm = String::new(), ConfigError::Realm),
            (|c| c.realm = "two words".into(), ConfigError::Realm),
            (|c| c.listen = "127.0.0.1:49200".parse().unwrap(), ConfigError::ListenInRelayPorts),
            (
                |c| c.relay_ip = Some("0.0.0.0".parse().unwrap()),
                ConfigError::RelayIp("0.0.0.0".parse().unwrap()),
            ),
            (
                |c| c.relay_ip = Some("224.0.0.1".parse().unwrap()),
                ConfigError::RelayIp("224.0.0.1".parse().unwrap()),
            ),
            (|c| c.relay_ip = Some("::1".parse().unwrap()), ConfigError::RelayIp("::1".parse().unwrap())),
        ];
        for (change, expected) in cases {
            let mut config = base();
            change(&mut config);
            assert_eq!(config.validate(), Err(expected));
        }
    }

    #[tokio::test]
    async fn urls_use_the_relay_ip_and_the_listening_port() {
        let mut config = RelayConfig::new(TurnSecret::new("relay-config-test-secret").unwrap());
        config.listen = "0.0.0.0:0".parse().unwrap();
        config.relay_ip = Some("192.0.2.7".parse().unwrap());
        let relay = start(config).await.unwrap();
        let port = relay.local_addr().port();
        assert_ne!(port, 0);
        assert_eq!(
            relay.urls(),
            [format!("turn:192.0.2.7:{port}?transport=udp"), format!("stun:192.0.2.7:{port}")]
        );
        relay.close().await.unwrap();
    }

    #[tokio::test]
    async fn close_releases_the_listening_port() {
        let mut config = RelayConfig::new(TurnSecret::new("relay-config-test-secret").unwrap());
        config.listen = "127.0.0.1:0".parse().unwrap();
        let relay = start(config.clone()).await.unwrap();
        assert_eq!(relay.relay_ip(), IpAddr::from([127, 0, 0, 1]));
        let addr = relay.local_addr();
        relay.close().await.unwrap();
        config.listen = addr;
        let again = start(config).await.unwrap();
        assert_eq!(again.local_addr(), addr);
        again.close().await.unwrap();
    }
}
