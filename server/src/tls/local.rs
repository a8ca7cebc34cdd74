//! The local CA (`KITSULAN_TLS=local`), for a LAN with no internet: made at first start in the
//! data dir (`tls/ca.pem`, `tls/ca.key`), it signs a server certificate (`tls/server.pem`,
//! `tls/server.key`) for this machine's names and addresses, made again when they change or
//! within 30 days of its end. People trust the CA once (the party screen offers `/ca.crt` and
//! its fingerprint).
//!
//! # Security
//! A phone that trusts this CA trusts whatever its key signs. The key lives on the server (a
//! laptop at a party), so the CA is name-constrained: it can only vouch for `.local`,
//! `localhost`, private and link-local addresses, and the names the server had when the CA was
//! made (its addresses, the admin's list). A stolen `ca.key` cannot impersonate anyone's bank to
//! the guests.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, NameConstraints, PublicKeyData as _, SanType,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::sign::CertifiedKey;
use tracing::{error, info, warn};

use super::CertResolver;
use crate::config::TlsName;

/// How long the CA is valid: 10 years.
const CA_DAYS: i64 = 3652;
/// How long a server certificate is valid: 397 days, the most browsers accept from any CA.
const SERVER_DAYS: i64 = 397;
/// A server certificate this close to its end is made again.
const RENEW_BEFORE_DAYS: i64 = 30;
/// How often a running server checks whether its certificate is due.
const RENEW_CHECK: Duration = Duration::from_secs(6 * 3600);

/// Networks the CA may vouch for besides the names given when it was made: loopback, the
/// private ranges (RFC 1918, shared address space for CGNAT and VPNs, IPv6 ULA) and link-local.
const PRIVATE_NETWORKS: [(&str, u8); 9] = [
    ("127.0.0.0", 8),
    ("10.0.0.0", 8),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
    ("169.254.0.0", 16),
    ("100.64.0.0", 10),
    ("::1", 128),
    ("fc00::", 7),
    ("fe80::", 10),
];
/// DNS names the CA may vouch for (each with every name below it).
const LOCAL_DOMAINS: [&str; 3] = ["local", "localhost", "home.arpa"];

/// The local CA: its certificate (served to people) and its key (kept in the data dir).
pub struct LocalCa {
    pem: String,
    der: CertificateDer<'static>,
    key: KeyPair,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("fingerprint_sha256", &self.fingerprint_sha256())
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// Loads the CA from `dir`, or makes it when neither file is there, allowed to vouch for the
    /// local and private names and for `names`. Half a CA (one file missing, a key that does not
    /// match) is an error: people may already trust it.
    pub fn load_or_create(dir: &Path, server_name: &str, names: &[TlsName]) -> anyhow::Result<Self> {
        crate::data_dir::private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Self::load(&cert_path, &key_path),
            (false, false) => {
                let ca = Self::create(server_name, names)?;
                write_file(&key_path, ca.key.serialize_pem().as_bytes())?;
                write_file(&cert_path, ca.pem.as_bytes())?;
                info!(path = %cert_path.display(), "made a local CA for HTTPS (KITSULAN_TLS=local)");
                Ok(ca)
            }
            _ => bail!(
                "KITSULAN_TLS=local: {} has only one of ca.pem and ca.key; restore the other, or delete both to \
                 make a new CA (everyone must trust the new one)",
                dir.display()
            ),
        }
    }

    fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(cert_path)
            .with_context(|| format!("cannot read {}", cert_path.display()))?;
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate ({e})", cert_path.display()))?;
        let key_pem = crate::data_dir::read_private_file(key_path)
            .with_context(|| format!("cannot read {}", key_path.display()))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| anyhow::anyhow!("{}: not a PEM private key ({e})", key_path.display()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| anyhow::anyhow!("{}: not a certificate ({e})", cert_path.display()))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            bail!("KITSULAN_TLS=local: {} does not match {}", key_path.display(), cert_path.display());
        }
        if parsed.validity().not_after.timestamp() < time::OffsetDateTime::now_utc().unix_timestamp() {
            bail!(
                "KITSULAN_TLS=local: the local CA {} has expired; delete ca.pem and ca.key to make a new one",
                cert_path.display()
            );
        }
        Ok(Self { pem, der, key })
    }

    fn create(server_name: &str, names: &[TlsName]) -> anyhow::Result<Self> {
        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("cannot make the CA's key")?;
        let mut params = CertificateParams::default();
        let prefix = "KitsuLAN local CA ";
        // A common name is at most 64 characters.
        let name: String = server_name.chars().take(64 - prefix.len()).collect();
        params.distinguished_name.push(DnType::CommonName, format!("{prefix}{name}"));
        params.distinguished_name.push(DnType::OrganizationName, "KitsuLAN");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(CA_DAYS);
        let mut permitted: Vec<GeneralSubtree> =
            LOCAL_DOMAINS.iter().map(|domain| GeneralSubtree::DnsName((*domain).to_owned())).collect();
        for (network, prefix) in PRIVATE_NETWORKS {
            let ip: IpAddr = network.parse().context("a private network")?;
            permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip, prefix)));
        }
        for name in names {
            let subtree = match name {
                TlsName::Dns(dns) => GeneralSubtree::DnsName(dns.clone()),
                TlsName::Ip(ip) => GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                    *ip,
                    if ip.is_ipv4() { 32 } else { 128 },
                )),
            };
            if !permitted.contains(&subtree) && !Constraints::from_subtrees(&permitted).permits(name) {
                permitted.push(subtree);
            }
        }
        params.name_constraints =
            Some(NameConstraints { permitted_subtrees: permitted, excluded_subtrees: vec![] });
        let cert = params.self_signed(&key).context("cannot make the CA's certificate")?;
        Ok(Self { pem: cert.pem(), der: cert.der().clone(), key })
    }

    /// The CA's certificate, DER (`/ca.crt`).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The CA's certificate, PEM (`/ca.pem`).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// `AA:BB:…`, the SHA-256 of the CA's certificate, for people to compare with what their
    /// device shows before trusting it.
    pub fn fingerprint_sha256(&self) -> String {
        super::fingerprint_sha256(&self.der)
    }

    /// The names the CA may vouch for (its name constraints).
    fn constraints(&self) -> anyhow::Result<Constraints> {
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&self.der).context("the local CA's certificate")?;
        Ok(match parsed.name_constraints().context("the local CA's name constraints")? {
            None => Constraints::default(),
            Some(extension) => {
                let mut constraints = Constraints { any: false, ..Constraints::default() };
                for subtree in extension.value.permitted_subtrees.iter().flatten() {
                    match &subtree.base {
                        x509_parser::extensions::GeneralName::DNSName(dns) => {
                            constraints.dns.push(dns.to_ascii_lowercase());
                        }
                        x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                            constraints.ip.push(bytes.to_vec());
                        }
                        _ => {}
                    }
                }
                constraints
            }
        })
    }

    /// `names` less those the CA may not vouch for: a default name outside is left out with a
    /// warning; one the admin listed (`explicit`) is an error.
    pub fn permitted(&self, names: Vec<TlsName>, explicit: &[TlsName]) -> anyhow::Result<Vec<TlsName>> {
        let constraints = self.constraints()?;
        let mut kept = Vec::with_capacity(names.len());
        for name in names {
            if constraints.permits(&name) {
                kept.push(name);
            } else if explicit.contains(&name) {
                bail!(
                    "invalid setting KITSULAN_TLS_NAMES (--tls-names) {name:?}: the local CA in the data dir was made \
                     without it and may not vouch for it; delete tls/ca.pem and tls/ca.key to make a new CA \
                     (everyone must trust the new one)",
                    name = name.to_string()
                );
            } else {
                warn!(%name, "the local CA may not vouch for this address: left out of the server certificate");
            }
        }
        Ok(kept)
    }

    /// A new server certificate for `names`, signed by the CA: (certificate PEM, key PEM).
    fn issue(&self, names: &[TlsName]) -> anyhow::Result<(String, String)> {
        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("cannot make the server's key")?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|name| {
                Ok(match name {
                    TlsName::Dns(dns) => SanType::DnsName(dns.clone().try_into()?),
                    TlsName::Ip(ip) => SanType::IpAddress(*ip),
                })
            })
            .collect::<Result<_, rcgen::Error>>()
            .context("a name of the server certificate")?;
        let common_name = names.iter().find_map(|name| match name {
            TlsName::Dns(dns) => Some(dns.clone()),
            TlsName::Ip(_) => None,
        });
        params
            .distinguished_name
            .push(DnType::CommonName, common_name.unwrap_or_else(|| "KitsuLAN".to_owned()));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = params.not_before + time::Duration::days(SERVER_DAYS);
        let issuer = Issuer::from_ca_cert_der(&self.der, &self.key).context("the local CA's certificate")?;
        let cert = params.signed_by(&key, &issuer).context("cannot sign the server certificate")?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// What a CA's name constraints permit.
struct Constraints {
    /// No constraints at all.
    any: bool,
    dns: Vec<String>,
    /// Address then mask, 8 or 32 bytes.
    ip: Vec<Vec<u8>>,
}

impl Default for Constraints {
    fn default() -> Self {
        Self { any: true, dns: Vec::new(), ip: Vec::new() }
    }
}

impl Constraints {
    fn from_subtrees(subtrees: &[GeneralSubtree]) -> Self {
        let mut constraints = Self { any: false, ..Self::default() };
        for subtree in subtrees {
            match subtree {
                GeneralSubtree::DnsName(dns) => constraints.dns.push(dns.clone()),
                GeneralSubtree::IpAddress(CidrSubnet::V4(addr, mask)) => {
                    constraints.ip.push(addr.iter().chain(mask).copied().collect());
                }
                GeneralSubtree::IpAddress(CidrSubnet::V6(addr, mask)) => {
                    constraints.ip.push(addr.iter().chain(mask).copied().collect());
                }
                _ => {}
            }
        }
        constraints
    }

    /// RFC 5280's rules: a DNS constraint permits the name and every name below it; an address
    /// constraint permits the addresses of its network. A kind with no constraint is free.
    fn permits(&self, name: &TlsName) -> bool {
        if self.any {
            return true;
        }
        match name {
            TlsName::Dns(dns) => {
                self.dns.is_empty()
                    || self.dns.iter().any(|c| {
                        let c = c.trim_start_matches('.');
                        dns == c || dns.ends_with(&format!(".{c}"))
                    })
            }
            TlsName::Ip(ip) => {
                let octets = match ip {
                    IpAddr::V4(v4) => v4.octets().to_vec(),
                    IpAddr::V6(v6) => v6.octets().to_vec(),
                };
                self.ip.is_empty()
                    || self.ip.iter().any(|c| {
                        c.len() == octets.len() * 2 && {
                            let (addr, mask) = c.split_at(octets.len());
                            octets.iter().zip(addr).zip(mask).all(|((o, a), m)| o & m == a & m)
                        }
                    })
            }
        }
    }
}

/// The names a local server certificate is made for: `<host name>.local`, `kitsulan.local`,
/// `localhost`, every address of this machine's interfaces (loopback included), then `extra`.
pub fn names(extra: &[TlsName]) -> Vec<TlsName> {
    let mut names: BTreeSet<TlsName> = default_names().into_iter().collect();
    names.extend(extra.iter().cloned());
    names.into_iter().collect()
}

/// The names without the admin's: see [`names`]. Interfaces are listed as the TURN relay lists
/// them (webrtc-util, getifaddrs).
pub fn default_names() -> Vec<TlsName> {
    let mut names = BTreeSet::new();
    for dns in ["kitsulan.local", "localhost"] {
        names.insert(TlsName::Dns(dns.to_owned()));
    }
    if let Some(host) = host_name()
        && let Ok(name) = format!("{host}.local").parse::<TlsName>()
    {
        names.insert(name);
    }
    names.insert(TlsName::Ip(IpAddr::from([127, 0, 0, 1])));
    names.insert(TlsName::Ip(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)));
    match webrtc_util::ifaces::ifaces() {
        Ok(ifaces) => {
            for ip in ifaces.into_iter().filter_map(|i| i.addr.map(|a| a.ip())) {
                if !ip.is_unspecified() && !ip.is_multicast() {
                    names.insert(TlsName::Ip(ip));
                }
            }
        }
        Err(e) => {
            warn!(error = %e, "cannot list this machine's addresses: the certificate names loopback only")
        }
    }
    names.into_iter().collect()
}

/// This machine's host name, first label only (`pi` of `pi.example.org`).
fn host_name() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let label = raw.trim().split('.').next()?.to_ascii_lowercase();
    (!label.is_empty() && label != "localhost").then_some(label)
}

/// The server certificate in `dir` when it is for `names`, signed by `ca` and not due; else a
/// new one, written there. `(key, true)` when it was made now.
pub fn server_key(dir: &Path, ca: &LocalCa, names: &[TlsName]) -> anyhow::Result<(CertifiedKey, bool)> {
    let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
    match reusable(&cert_path, &key_path, ca, names) {
        Ok(certified) => return Ok((certified, false)),
        Err(why) if cert_path.exists() => info!(%why, "making a new server certificate"),
        Err(_) => {}
    }
    let (cert_pem, key_pem) = ca.issue(names)?;
    let certified = super::certified_key(cert_pem.as_bytes(), key_pem.as_bytes())
        .context("the server certificate just made")?;
    write_file(&key_path, key_pem.as_bytes())?;
    write_file(&cert_path, cert_pem.as_bytes())?;
    Ok((certified, true))
}

/// The stored server certificate, if it can still serve; else why not.
fn reusable(
    cert_path: &Path,
    key_path: &Path,
    ca: &LocalCa,
    names: &[TlsName],
) -> Result<CertifiedKey, String> {
    let cert_pem = std::fs::read(cert_path).map_err(|e| e.to_string())?;
    let key_pem = crate::data_dir::read_private_file(key_path).map_err(|e| e.to_string())?;
    let certified = super::certified_key(&cert_pem, key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let leaf = certified.end_entity_cert().map_err(|e| e.to_string())?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|e| e.to_string())?;
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca.der).map_err(|e| e.to_string())?;
    parsed
        .verify_signature(Some(ca_cert.public_key()))
        .map_err(|_| "not signed by the local CA".to_owned())?;
    let left = parsed.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
    if left < RENEW_BEFORE_DAYS * 86_400 {
        return Err(format!("it ends in {} days", left / 86_400));
    }
    let mut has = BTreeSet::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => {
                    has.insert(TlsName::Dns(dns.to_ascii_lowercase()));
                }
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).map(IpAddr::from).ok(),
                        16 => <[u8; 16]>::try_from(*bytes).map(IpAddr::from).ok(),
                        _ => None,
                    };
                    has.extend(ip.map(TlsName::Ip));
                }
                _ => {}
            }
        }
    }
    let want: BTreeSet<TlsName> = names.iter().cloned().collect();
    if has != want {
        return Err("the names changed".to_owned());
    }
    Ok(certified)
}

/// Checks now and then that the server certificate is not due, and swaps in a new one when it is.
pub async fn keep_renewed(resolver: Arc<CertResolver>, dir: PathBuf, ca: Arc<LocalCa>, names: Vec<TlsName>) {
    loop {
        tokio::time::sleep(RENEW_CHECK).await;
        match server_key(&dir, &ca, &names) {
            Ok((certified, true)) => {
                info!("renewed the local server certificate");
                resolver.set(Arc::new(certified));
            }
            Ok((_, false)) => {}
            Err(e) => error!("cannot renew the local server certificate (the old one is kept): {e:#}"),
        }
    }
}

/// Writes `contents` to `path` (this user only), replacing it whole: a crash leaves the old
/// file or the new one, never half of either.
fn write_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    crate::data_dir::write_private_file(&temporary, contents)
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn dns(name: &str) -> TlsName {
        TlsName::Dns(name.to_owned())
    }

    fn ip(addr: &str) -> TlsName {
        TlsName::Ip(addr.parse().unwrap())
    }

    #[test]
    fn the_ca_is_made_once_and_its_server_certificate_follows_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("tls");
        let ca = LocalCa::load_or_create(&dir, "Party", &[dns("party.lan")]).unwrap();
        let again = LocalCa::load_or_create(&dir, "Party", &[]).unwrap();
        assert_eq!(ca.fingerprint_sha256(), again.fingerprint_sha256(), "loaded, not made again");

        let names = vec![dns("kitsulan.local"), ip("192.168.1.20"), ip("127.0.0.1")];
        let (first, made) = server_key(&dir, &ca, &names).unwrap();
        assert!(made);
        let (same, made) = server_key(&dir, &ca, &names).unwrap();
        assert!(!made, "reused while the names are the same");
        assert_eq!(first.cert, same.cert);
        let more = vec![dns("kitsulan.local"), ip("192.168.1.21"), ip("127.0.0.1")];
        let (_, made) = server_key(&dir, &ca, &more).unwrap();
        assert!(made, "made again for new names");

        // Another CA in the same place: the old server certificate is not reused.
        std::fs::remove_file(dir.join("ca.pem")).unwrap();
        std::fs::remove_file(dir.join("ca.key")).unwrap();
        let other = LocalCa::load_or_create(&dir, "Party", &[]).unwrap();
        let (_, made) = server_key(&dir, &other, &more).unwrap();
        assert!(made, "signed by the new CA");
    }

    #[test]
    fn half_a_ca_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        LocalCa::load_or_create(dir.path(), "Party", &[]).unwrap();
        std::fs::remove_file(dir.path().join("ca.key")).unwrap();
        let err = LocalCa::load_or_create(dir.path(), "Party", &[]).unwrap_err().to_string();
        assert!(err.contains("only one of ca.pem and ca.key"), "{err}");
        assert!(dir.path().join("ca.pem").exists());
    }

    /// The attack: someone copies `ca.key` off the party laptop and signs a certificate for a
    /// bank. The name constraints make every verifier (webpki here, browsers alike) refuse it.
    #[test]
    fn a_stolen_ca_key_cannot_vouch_for_public_names() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::load_or_create(dir.path(), "Party", &[dns("party.lan")]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let verify = |names: &[TlsName], server: &str| {
            let (cert_pem, _) = ca.issue(names).unwrap();
            let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
            let name = rustls::pki_types::ServerName::try_from(server.to_owned()).unwrap();
            rustls::client::danger::ServerCertVerifier::verify_server_cert(
                verifier.as_ref(),
                &der,
                &[],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
        };
        verify(&[dns("kitsulan.local"), ip("192.168.1.20")], "kitsulan.local").unwrap();
        verify(&[dns("kitsulan.local"), ip("192.168.1.20")], "192.168.1.20").unwrap();
        verify(&[dns("party.lan")], "party.lan").unwrap();
        assert!(verify(&[dns("bank.example.com")], "bank.example.com").is_err());
        assert!(verify(&[ip("8.8.8.8")], "8.8.8.8").is_err());

        // The same check, made before issuing: a listed name outside is an error, a default one dropped.
        let kept = ca.permitted(vec![dns("kitsulan.local"), ip("203.0.113.5")], &[]).unwrap();
        assert_eq!(kept, vec![dns("kitsulan.local")]);
        assert!(ca.permitted(vec![dns("chat.example.com")], &[dns("chat.example.com")]).is_err());
    }

    #[test]
    fn default_names_cover_loopback_and_the_local_name() {
        let names = default_names();
        for want in [dns("kitsulan.local"), dns("localhost"), ip("127.0.0.1"), ip("::1")] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }
}
