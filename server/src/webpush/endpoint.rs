//! Which push endpoints the server will POST to. A subscription's endpoint is a URL a signed-in
//! person chooses, and the server sends requests to it: without rules it would be a way to
//! make the server reach into its own network (SSRF). So an endpoint must be `https` on port
//! 443, no longer than [`MAX_ENDPOINT_LEN`], with no user info, naming a host on the internet:
//! not an IP literal in a loopback, private, link-local, CGNAT, ULA, multicast or reserved
//! range, not `localhost` nor a name that only a LAN resolves (no dot, `.local`, `.lan`,
//! `.internal`, `.home.arpa`, …). When a push is sent, a name must also resolve to public
//! addresses only (`client.rs`), so DNS cannot point a public name inward later. The admin may
//! exempt whole origins (`KITSULAN_PUSH_ALLOWED_ORIGINS`): a push service on the LAN, or a
//! test's receiver; they still need https.

use std::net::{IpAddr, Ipv4Addr};

/// The longest endpoint URL taken (browsers' push services use a few hundred bytes).
pub const MAX_ENDPOINT_LEN: usize = 1024;

/// Why an endpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Longer than [`MAX_ENDPOINT_LEN`].
    #[error("the endpoint is longer than {MAX_ENDPOINT_LEN} bytes")]
    TooLong,
    /// Not a URL.
    #[error("the endpoint is not a URL")]
    Malformed,
    /// Not https.
    #[error("the endpoint must be an https:// URL")]
    NotHttps,
    /// User info in the URL.
    #[error("the endpoint must not carry a user name or password")]
    UserInfo,
    /// A port other than 443.
    #[error("the endpoint must use port 443")]
    Port,
    /// A loopback, private or otherwise non-public address or local name.
    #[error("the endpoint names a host on a local or private network")]
    Private,
}

/// A checked endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as given.
    pub url: String,
    /// Its origin, as VAPID's `aud` wants it: `https://host` (`:port` unless 443).
    pub origin: String,
    /// The host, lowercase (IPv6 without brackets).
    pub host: String,
}

/// The rules, with the admin's exemptions.
#[derive(Debug, Clone, Default)]
pub struct EndpointPolicy {
    /// Origins exempt from the network rules (normalised like [`Endpoint::origin`]).
    allowed: Vec<String>,
}

impl EndpointPolicy {
    /// The rules, exempting `allowed_origins` (`https://host[:port]` each).
    pub fn new(allowed_origins: &[String]) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for raw in allowed_origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
            let parsed = parse(&format!("{}/", raw.trim_end_matches('/')))
                .map_err(|e| format!("{raw:?} is not an https origin: {e}"))?;
            allowed.push(parsed.0.origin);
        }
        Ok(Self { allowed })
    }

    /// Whether `origin` is exempt.
    pub fn is_allowed_origin(&self, origin: &str) -> bool {
        self.allowed.iter().any(|a| a == origin)
    }

    /// Whether `host` belongs to an exempt origin (for the resolver, which sees names only).
    pub fn is_allowed_host(&self, host: &str) -> bool {
        self.allowed.iter().any(|a| origin_host(a) == host)
    }

    /// Checks `url` against the rules.
    pub fn check(&self, url: &str) -> Result<Endpoint, EndpointError> {
        if url.len() > MAX_ENDPOINT_LEN {
            return Err(EndpointError::TooLong);
        }
        let (endpoint, port) = parse(url)?;
        if self.is_allowed_origin(&endpoint.origin) {
            return Ok(endpoint);
        }
        if port != 443 {
            return Err(EndpointError::Port);
        }
        match endpoint.host.parse::<IpAddr>() {
            Ok(ip) if !is_public(ip) => return Err(EndpointError::Private),
            Ok(_) => {}
            Err(_) if is_local_name(&endpoint.host) => return Err(EndpointError::Private),
            Err(_) => {}
        }
        Ok(endpoint)
    }
}

fn origin_host(origin: &str) -> &str {
    let rest = origin.strip_prefix("https://").unwrap_or(origin);
    match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => rest.rsplit_once(':').map_or(rest, |(h, _)| h),
    }
}

fn parse(url: &str) -> Result<(Endpoint, u16), EndpointError> {
    let uri: http::Uri = url.parse().map_err(|_| EndpointError::Malformed)?;
    match uri.scheme_str() {
        Some("https") => {}
        Some(_) => return Err(EndpointError::NotHttps),
        None => return Err(EndpointError::Malformed),
    }
    let authority = uri.authority().ok_or(EndpointError::Malformed)?;
    if authority.as_str().contains('@') {
        return Err(EndpointError::UserInfo);
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if host.is_empty() {
        return Err(EndpointError::Malformed);
    }
    let port = authority.port_u16().unwrap_or(443);
    let shown = if host.contains(':') { format!("[{host}]") } else { host.clone() };
    let origin = if port == 443 { format!("https://{shown}") } else { format!("https://{shown}:{port}") };
    Ok((Endpoint { url: url.to_owned(), origin, host }, port))
}

/// Names only a LAN resolves (or that mean this machine).
fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    const SUFFIXES: [&str; 9] = [
        ".localhost",
        ".local",
        ".lan",
        ".home",
        ".internal",
        ".intranet",
        ".corp",
        ".home.arpa",
        ".localdomain",
    ];
    !host.contains('.') || host == "localhost" || SUFFIXES.iter().any(|s| host.ends_with(s))
}

/// Whether `ip` is an address on the internet (not loopback, private, link-local, CGNAT, ULA,
/// multicast, documentation, benchmarking or otherwise reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64, can reach IPv4 private ranges
                || (s[0] == 0x2002)) // 6to4, likewise
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_endpoints_on_443_pass() {
        let policy = EndpointPolicy::default();
        let ok = policy.check("https://fcm.googleapis.com/fcm/send/abc:def").unwrap();
        assert_eq!(ok.origin, "https://fcm.googleapis.com");
        assert!(policy.check("https://updates.push.services.mozilla.com/wpush/v2/x").is_ok());
        assert!(policy.check("https://8.8.8.8/x").is_ok());
        for (url, why) in [
            ("http://fcm.googleapis.com/x", EndpointError::NotHttps),
            ("ftp://fcm.googleapis.com/x", EndpointError::NotHttps),
            ("fcm.googleapis.com/x", EndpointError::Malformed),
            ("https://user:pw@fcm.googleapis.com/x", EndpointError::UserInfo),
            ("https://fcm.googleapis.com:22/x", EndpointError::Port),
            ("https://127.0.0.1/x", EndpointError::Private),
            ("https://10.1.2.3/x", EndpointError::Private),
            ("https://172.16.0.1/x", EndpointError::Private),
            ("https://192.168.1.1/x", EndpointError::Private),
            ("https://169.254.169.254/latest/meta-data", EndpointError::Private),
            ("https://100.64.0.1/x", EndpointError::Private),
            ("https://0.0.0.0/x", EndpointError::Private),
            ("https://[::1]/x", EndpointError::Private),
            ("https://[fd00::1]/x", EndpointError::Private),
            ("https://[fe80::1]/x", EndpointError::Private),
            ("https://[::ffff:10.0.0.1]/x", EndpointError::Private),
            ("https://localhost/x", EndpointError::Private),
            ("https://kitsulan.local/x", EndpointError::Private),
            ("https://router/x", EndpointError::Private),
            ("https://db.internal/x", EndpointError::Private),
        ] {
            assert_eq!(policy.check(url), Err(why), "{url}");
        }
        let huge = format!("https://fcm.googleapis.com/{}", "a".repeat(MAX_ENDPOINT_LEN));
        assert_eq!(policy.check(&huge), Err(EndpointError::TooLong));
    }

    #[test]
    fn allowed_origins_are_exempt_from_the_network_rules_only() {
        let policy =
            EndpointPolicy::new(&["https://127.0.0.1:8443".into(), "https://Push.LAN/".into()]).unwrap();
        let ok = policy.check("https://127.0.0.1:8443/sub/1").unwrap();
        assert_eq!(ok.origin, "https://127.0.0.1:8443");
        assert!(policy.is_allowed_host("127.0.0.1") && policy.is_allowed_host("push.lan"));
        assert!(policy.check("https://push.lan/x").is_ok());
        assert_eq!(policy.check("https://127.0.0.1:8444/x"), Err(EndpointError::Port), "another port");
        assert_eq!(policy.check("https://127.0.0.1/x"), Err(EndpointError::Private), "another origin");
        assert_eq!(policy.check("http://127.0.0.1:8443/x"), Err(EndpointError::NotHttps));
        assert!(EndpointPolicy::new(&["http://127.0.0.1:8443".into()]).is_err());
    }
}
