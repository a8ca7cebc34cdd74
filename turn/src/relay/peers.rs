//! Which peers the relay talks to: the address classifier and the policy built on it.
//!
//! # Security
//! A TURN relay sends UDP from the server to whatever address an authenticated user names. Left
//! open, that reaches services that trust their network: anything on loopback, the server's own
//! addresses, the LAN behind it (routers, printers, NAS), cloud metadata at 169.254.169.254. Like
//! coturn with the `denied-peer-ip` ranges its documentation recommends, the relay by default
//! refuses every peer that is not a public unicast address:
//!
//! | class | addresses | default | setting |
//! |---|---|---|---|
//! | unusable | unspecified, `0.0.0.0/8`, multicast, broadcast, `240.0.0.0/4`, port 0 | refused | never allowed |
//! | loopback | `127.0.0.0/8`, `::1` | only this relay's own ports | `allow_loopback_peers` (tests) |
//! | this host | the relay IP, the listen IP, every interface address | only this relay's own ports | never allowed |
//! | LAN | RFC 1918, CGNAT `100.64.0.0/10`, link-local, ULA `fc00::/7`, site-local `fec0::/10` | refused | `allow_lan_peers` |
//! | public | everything else | allowed | |
//!
//! "This relay's own ports" lets two clients of the same relay reach each other's relayed
//! addresses, which is how calls between two relayed devices work. IPv4-mapped, NAT64
//! (`64:ff9b::/96`) and 6to4 (`2002::/16`) IPv6 addresses are judged by the IPv4 address inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::PortRange;

/// What kind of address a peer is, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerClass {
    /// Never a peer: unspecified, "this network", multicast, broadcast, reserved, port 0.
    Unusable,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// One of this host's addresses.
    ThisHost,
    /// Private (RFC 1918), shared (CGNAT), link-local, unique-local or site-local.
    Lan,
    /// A public unicast address.
    Public,
}

/// Classifies `ip` (not knowing the host's own addresses, see [`PeerPolicy::class`]).
pub(crate) fn classify(ip: IpAddr) -> PeerClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> PeerClass {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || a == 0 || ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        PeerClass::Unusable
    } else if ip.is_loopback() {
        PeerClass::Loopback
    } else if ip.is_private() || ip.is_link_local() || (a == 100 && (b & 0xc0) == 64) {
        PeerClass::Lan
    } else {
        PeerClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> PeerClass {
    let first = ip.segments()[0];
    if ip.is_unspecified() || ip.is_multicast() {
        PeerClass::Unusable
    } else if ip.is_loopback() {
        PeerClass::Loopback
    } else if ip.is_unicast_link_local() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfec0 {
        PeerClass::Lan
    } else {
        PeerClass::Public
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`), NAT64
/// (`64:ff9b::a.b.c.d`) or 6to4 (`2002:AABB:CCDD::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let from = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(from(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(from(s[1], s[2]));
    }
    None
}

/// Which peers relay sockets may exchange datagrams with, and create permissions for.
#[derive(Debug)]
pub(crate) struct PeerPolicy {
    relay_ip: IpAddr,
    own_ips: Vec<IpAddr>,
    relay_ports: PortRange,
    allow_loopback: bool,
    allow_lan: bool,
}

impl PeerPolicy {
    /// `relay_ip`: where relayed addresses are; `own_ips`: the listen IP and the host's
    /// interface addresses (the relay IP counts as one too).
    pub(crate) fn new(
        relay_ip: IpAddr,
        own_ips: Vec<IpAddr>,
        relay_ports: PortRange,
        allow_loopback: bool,
        allow_lan: bool,
    ) -> Self {
        let relay_ip = relay_ip.to_canonical();
        let mut own_ips: Vec<IpAddr> = own_ips.into_iter().map(|ip| ip.to_canonical()).collect();
        own_ips.push(relay_ip);
        own_ips.sort_unstable();
        own_ips.dedup();
        Self { relay_ip, own_ips, relay_ports, allow_loopback, allow_lan }
    }

    /// Whether a permission (CreatePermission: an IP address, any port) may be made for `ip`.
    /// The relay IP may be a peer, for another client's relayed address there; the ports are
    /// then held to this relay's own by [`PeerPolicy::allows`] on every datagram.
    pub(crate) fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip == self.relay_ip {
            return true;
        }
        match self.class(ip) {
            PeerClass::Unusable | PeerClass::ThisHost => false,
            PeerClass::Loopback => self.allow_loopback,
            PeerClass::Lan => self.allow_lan,
            PeerClass::Public => true,
        }
    }

    /// The class of `ip` here: [`classify`], with this host's own addresses recognised.
    pub(crate) fn class(&self, ip: IpAddr) -> PeerClass {
        let ip = ip.to_canonical();
        match classify(ip) {
            PeerClass::Lan | PeerClass::Public if self.own_ips.contains(&ip) => PeerClass::ThisHost,
            class => class,
        }
    }

    /// Whether the relay may talk to `peer`.
    pub(crate) fn allows(&self, peer: SocketAddr) -> bool {
        if peer.port() == 0 {
            return false;
        }
        match self.class(peer.ip()) {
            PeerClass::Unusable => false,
            PeerClass::Loopback => self.allow_loopback || self.relay_ports.contains(peer.port()),
            PeerClass::ThisHost => self.relay_ports.contains(peer.port()),
            PeerClass::Lan => self.allow_lan,
            PeerClass::Public => true,
        }
    }
}

/// This host's interface addresses (all families), for [`PeerPolicy`]. Read once at start: an
/// address added later (DHCP, a new container bridge) is still refused if it is loopback or LAN,
/// but a new public address of the host would be treated as any public peer until a restart.
pub(crate) fn host_addresses() -> Vec<IpAddr> {
    match webrtc_util::ifaces::ifaces() {
        Ok(ifaces) => ifaces.into_iter().filter_map(|i| i.addr.map(|a| a.ip())).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list this host's addresses; the relay refuses only the relay and listen IPs as this host");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn classifier_table() {
        use PeerClass::*;
        for (ip, class) in [
            // IPv4
            ("0.0.0.0", Unusable),
            ("0.1.2.3", Unusable),
            ("224.0.0.251", Unusable),
            ("239.255.255.250", Unusable),
            ("255.255.255.255", Unusable),
            ("240.0.0.1", Unusable),
            ("127.0.0.1", Loopback),
            ("127.8.9.10", Loopback),
            ("10.0.0.1", Lan),
            ("10.255.255.255", Lan),
            ("172.16.0.1", Lan),
            ("172.31.255.254", Lan),
            ("192.168.1.20", Lan),
            ("169.254.169.254", Lan), // cloud metadata
            ("100.64.0.1", Lan),
            ("100.127.255.254", Lan),
            ("100.63.255.255", Public), // just below CGNAT
            ("100.128.0.0", Public),    // just above
            ("172.15.255.255", Public),
            ("172.32.0.0", Public),
            ("11.0.0.1", Public),
            ("192.169.0.1", Public),
            ("203.0.113.5", Public),
            ("8.8.8.8", Public),
            // IPv6
            ("::", Unusable),
            ("ff02::1", Unusable),
            ("ff05::2", Unusable),
            ("::1", Loopback),
            ("fe80::1", Lan),
            ("febf::1", Lan),
            ("fec0::1", Lan),
            ("fc00::1", Lan),
            ("fd12:3456::1", Lan),
            ("2001:db8::5", Public),
            ("2a00:1450::1", Public),
            // IPv6 carrying IPv4
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Lan),
            ("::ffff:8.8.8.8", Public),
            ("64:ff9b::a01:203", Lan),    // NAT64 of 10.1.2.3
            ("64:ff9b::808:808", Public), // NAT64 of 8.8.8.8
            ("2002:c0a8:114::1", Lan),    // 6to4 of 192.168.1.20
            ("2002:7f00:1::1", Loopback), // 6to4 of 127.0.0.1
        ] {
            assert_eq!(classify(ip.parse().unwrap()), class, "{ip}");
        }
    }

    #[test]
    fn policy_table() {
        let ports = PortRange::new(50000, 50099).unwrap();
        let own: Vec<IpAddr> = vec!["192.168.1.10".parse().unwrap(), "198.51.100.7".parse().unwrap()];
        let relay_ip: IpAddr = "192.168.1.10".parse().unwrap();
        let strict = PeerPolicy::new(relay_ip, own.clone(), ports, false, false);
        let lan = PeerPolicy::new(relay_ip, own.clone(), ports, false, true);
        let tests = PeerPolicy::new(relay_ip, own, ports, true, false);
        for (peer, strict_ok, lan_ok, loopback_ok) in [
            ("203.0.113.5:443", true, true, true),             // the internet
            ("[2001:db8::5]:5000", true, true, true),          // IPv6 internet
            ("192.168.1.20:40000", false, true, false),        // another LAN host
            ("10.0.0.1:53", false, true, false),               // RFC 1918
            ("100.64.1.1:9", false, true, false),              // CGNAT
            ("169.254.169.254:80", false, true, false),        // link-local (cloud metadata)
            ("[fd00::2]:22", false, true, false),              // ULA
            ("[fe80::1]:22", false, true, false),              // IPv6 link-local
            ("192.168.1.10:50010", true, true, true),          // another allocation on this relay
            ("192.168.1.10:5432", false, false, false),        // a service on this host's LAN address
            ("198.51.100.7:50010", true, true, true),          // this relay, public address
            ("198.51.100.7:22", false, false, false),          // a service on this host's public address
            ("192.168.1.10:49999", false, false, false),       // just below the range
            ("127.0.0.1:50010", true, true, true),             // loopback, relay port
            ("127.0.0.1:8080", false, false, true),            // loopback service
            ("127.8.9.10:22", false, false, true),             // all of 127/8
            ("[::1]:8080", false, false, true),                // IPv6 loopback
            ("[::ffff:127.0.0.1]:8080", false, false, true),   // IPv4-mapped loopback
            ("[::ffff:192.168.1.10]:22", false, false, false), // IPv4-mapped own address
            ("[::ffff:192.168.1.10]:50010", true, true, true), // IPv4-mapped own relay port
            ("0.0.0.0:50010", false, false, false),
            ("[::]:50010", false, false, false),
            ("224.0.0.251:5353", false, false, false),
            ("[ff02::1]:5353", false, false, false),
            ("255.255.255.255:9", false, false, false),
            ("203.0.113.5:0", false, false, false),
        ] {
            let addr: SocketAddr = peer.parse().unwrap();
            assert_eq!(strict.allows(addr), strict_ok, "default policy, {peer}");
            assert_eq!(lan.allows(addr), lan_ok, "LAN peers allowed, {peer}");
            assert_eq!(tests.allows(addr), loopback_ok, "loopback peers allowed, {peer}");
        }
    }

    #[test]
    fn permissions_table() {
        let ports = PortRange::new(50000, 50099).unwrap();
        let own: Vec<IpAddr> = vec!["198.51.100.7".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        let lan_relay = PeerPolicy::new("192.168.1.10".parse().unwrap(), own.clone(), ports, false, false);
        let loopback_relay = PeerPolicy::new("127.0.0.1".parse().unwrap(), own.clone(), ports, false, false);
        let lan_allowed = PeerPolicy::new("192.168.1.10".parse().unwrap(), own, ports, false, true);
        for (ip, lan_relay_ok, loopback_relay_ok, lan_allowed_ok) in [
            ("203.0.113.5", true, true, true),
            ("192.168.1.10", true, false, true), // the relay IP: other clients' relayed addresses
            ("::ffff:192.168.1.10", true, false, true),
            ("192.168.1.20", false, false, true),
            ("10.1.2.3", false, false, true),
            ("127.0.0.1", false, true, false), // relayed addresses are on loopback only in tests
            ("127.0.0.2", false, false, false),
            ("198.51.100.7", false, false, false), // this host, not the relay IP
            ("0.0.0.0", false, false, false),
            ("224.0.0.1", false, false, false),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(lan_relay.permits(ip), lan_relay_ok, "relay on the LAN, {ip}");
            assert_eq!(loopback_relay.permits(ip), loopback_relay_ok, "relay on loopback, {ip}");
            assert_eq!(lan_allowed.permits(ip), lan_allowed_ok, "LAN peers allowed, {ip}");
        }
    }

    #[test]
    fn the_host_addresses_include_loopback() {
        // Every Linux host has lo; this shows the interface listing works at all.
        let addrs = host_addresses();
        assert!(addrs.iter().any(IpAddr::is_loopback), "{addrs:?}");
    }
}
