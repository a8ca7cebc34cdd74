//! HTTPS certificates: which one the main port presents, where it comes from (the admin's files,
//! the local CA, or ACME) and swapping it while the server runs (renewal, SIGHUP). The transport
//! does the handshakes (`transport::https`); this module owns certificates and keys.
//!
//! The pieces ACME plugs into: [`CertResolver`] (the current certificate, swapped with
//! [`CertResolver::set`]), [`certified_key`] (PEM chain + key, checked) and
//! [`Setup::challenges`] (a router for `/.well-known/acme-challenge/{token}`, answered on plain
//! HTTP and never redirected).

pub mod acme;
mod local;

use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{AcmeArgs, TlsArgs, TlsMode};

pub use local::{LocalCa, default_names};

/// The certificate the main port presents now, swapped at runtime (renewal, SIGHUP). Empty
/// (every handshake fails) until one is set: ACME starts that way.
#[derive(Debug, Default)]
pub struct CertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl CertResolver {
    /// A resolver presenting `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(Self { current: RwLock::new(Some(key)) })
    }

    /// Presents `key` from the next handshake on.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut current) => *current = Some(key),
            Err(poisoned) => *poisoned.into_inner() = Some(key),
        }
    }

    /// What is presented now.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("no PEM certificate in it")]
    NoCertificate,
    /// A `CERTIFICATE` block is not valid PEM or not a certificate.
    #[error("not a readable certificate ({0})")]
    BadCertificate(String),
    /// The key file holds no private key rustls can read.
    #[error("no PEM private key in it ({0})")]
    BadKey(String),
    /// The key is of a kind the TLS stack cannot sign with.
    #[error("a key of a kind that cannot be used ({0})")]
    UnsupportedKey(String),
    /// The key is not the one the certificate was made for.
    #[error("the key does not match the certificate")]
    KeyMismatch,
    /// Now is before the certificate's `notBefore`.
    #[error("the certificate is not valid before {0}")]
    NotYetValid(String),
    /// Now is after the certificate's `notAfter`.
    #[error("the certificate expired on {0}")]
    Expired(String),
}

impl CertError {
    /// Whether the key (and not the certificate) is at fault: decides which setting an error names.
    pub fn is_about_key(&self) -> bool {
        matches!(self, Self::BadKey(_) | Self::UnsupportedKey(_) | Self::KeyMismatch)
    }
}

/// A PEM certificate chain (the server's certificate first) and its PEM private key, checked:
/// every certificate parses, the key matches the first one and it is valid now.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, CertError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadCertificate(e.to_string()))?;
    let leaf = chain.first().ok_or(CertError::NoCertificate)?;
    for cert in &chain {
        x509_parser::parse_x509_certificate(cert).map_err(|e| CertError::BadCertificate(e.to_string()))?;
    }
    let (not_before, not_after) = validity(leaf).map_err(CertError::BadCertificate)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| CertError::BadKey(e.to_string()))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| CertError::UnsupportedKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // ring's keys all tell their public key; "unknown" cannot happen with them.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => return Err(CertError::KeyMismatch),
    }
    let now = time::OffsetDateTime::now_utc();
    if now < not_before {
        return Err(CertError::NotYetValid(show_time(not_before)));
    }
    if now > not_after {
        return Err(CertError::Expired(show_time(not_after)));
    }
    Ok(certified)
}

/// A certificate's `notBefore` and `notAfter`.
pub fn validity(cert: &[u8]) -> Result<(time::OffsetDateTime, time::OffsetDateTime), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| e.to_string())?;
    let validity = parsed.validity();
    Ok((validity.not_before.to_datetime(), validity.not_after.to_datetime()))
}

fn show_time(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// `AA:BB:…`: the SHA-256 of a certificate's DER, as people compare fingerprints.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(der);
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The TLS settings of the main port: TLS 1.2 and 1.3 on ring, ALPN `h2` then `http/1.1`.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// HTTPS as the settings ask, ready for the transport.
pub struct Setup {
    /// The certificate presented; renewal swaps it.
    pub resolver: Arc<CertResolver>,
    /// The local CA (`KITSULAN_TLS=local`): served as `/ca.crt` and `/ca.pem`, its fingerprint
    /// shown to people.
    pub local_ca: Option<Arc<LocalCa>>,
    /// Answers `/.well-known/acme-challenge/{token}` on plain HTTP (ACME's HTTP-01).
    pub challenges: Option<axum::Router>,
    /// Renewal and reload tasks: aborted at shutdown.
    pub tasks: Vec<JoinHandle<()>>,
}

impl Setup {
    /// The rustls settings presenting [`Self::resolver`]'s certificate.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        server_config(self.resolver.clone())
    }

    /// The local CA's fingerprint (for `ServerInfo` and the party screen), when there is one.
    pub fn local_ca_sha256(&self) -> Option<String> {
        self.local_ca.as_ref().map(|ca| ca.fingerprint_sha256())
    }
}

/// Loads or makes the certificate the settings ask for. `None` with `KITSULAN_TLS=off`. Every
/// failure is one line naming the setting, before anything listens.
pub async fn setup(
    args: &TlsArgs,
    acme_args: &AcmeArgs,
    data_dir: &Path,
    server_name: &str,
) -> anyhow::Result<Option<Setup>> {
    match args.mode {
        TlsMode::Off => Ok(None),
        TlsMode::Files => {
            let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
                anyhow::bail!(
                    "invalid setting KITSULAN_TLS_CERT (--tls-cert): required with KITSULAN_TLS=files"
                );
            };
            let certified = load_files(cert, key)?;
            log_certificate("HTTPS with the certificate from KITSULAN_TLS_CERT", &certified);
            let resolver = CertResolver::new(Arc::new(certified));
            let tasks = vec![tokio::spawn(reload_on_sighup(resolver.clone(), cert.clone(), key.clone()))];
            Ok(Some(Setup { resolver, local_ca: None, challenges: None, tasks }))
        }
        TlsMode::Local => {
            let dir = data_dir.join("tls");
            let names = local::names(&args.names);
            let ca = Arc::new(LocalCa::load_or_create(&dir, server_name, &names)?);
            let names = ca.permitted(names, &args.names)?;
            let (certified, made) = local::server_key(&dir, &ca, &names)?;
            if made {
                info!(path = %dir.join("server.pem").display(), "made the server certificate");
            }
            let fingerprint = ca.fingerprint_sha256();
            info!(ca = %dir.join("ca.pem").display(), fingerprint_sha256 = %fingerprint,
                  names = %names.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                  "HTTPS with the local CA: people trust it once (GET /ca.crt) and compare its fingerprint");
            let resolver = CertResolver::new(Arc::new(certified));
            let tasks = vec![tokio::spawn(local::keep_renewed(resolver.clone(), dir, ca.clone(), names))];
            Ok(Some(Setup { resolver, local_ca: Some(ca), challenges: None, tasks }))
        }
        TlsMode::Acme => {
            let settings = acme_args.settings().map_err(anyhow::Error::msg)?;
            let challenges = acme::Challenges::new();
            let acme = Arc::new(acme::Acme::new(settings, data_dir, challenges.clone())?);
            let stored = acme.usable_stored();
            let resolver = match &stored {
                Some(issued) => {
                    let certified = certified_key(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes())
                        .with_context(|| {
                            format!("the stored ACME certificate in {}", acme.dir().display())
                        })?;
                    log_certificate("HTTPS with the stored ACME certificate", &certified);
                    CertResolver::new(Arc::new(certified))
                }
                None => {
                    // Until the first certificate is issued, handshakes fail (the resolver has
                    // none); plain HTTP answers the CA's challenges meanwhile.
                    info!(domains = %acme.settings().domains.join(","),
                          "HTTPS by ACME: asking the CA for a certificate; handshakes fail until it is issued");
                    Arc::new(CertResolver::default())
                }
            };
            let renewal = acme::spawn_renewal(acme, stored, acme::RenewPolicy::default());
            let target = resolver.clone();
            let tasks = vec![tokio::spawn(renewal.for_each(move |issued| {
                match certified_key(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes()) {
                    Ok(certified) => target.set(Arc::new(certified)),
                    Err(e) => error!("ACME: the issued certificate cannot be used, kept the old one: {e}"),
                }
            }))];
            Ok(Some(Setup { resolver, local_ca: None, challenges: Some(challenges.router()), tasks }))
        }
    }
}

/// `KITSULAN_TLS=files`: the chain and key, checked, each error naming its setting.
fn load_files(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = std::fs::read(cert).with_context(|| {
        format!("invalid setting KITSULAN_TLS_CERT (--tls-cert) {}: cannot read it", cert.display())
    })?;
    let key_pem = std::fs::read(key).with_context(|| {
        format!("invalid setting KITSULAN_TLS_KEY (--tls-key) {}: cannot read it", key.display())
    })?;
    certified_key(&chain, &key_pem).map_err(|e| {
        if e.is_about_key() {
            anyhow::anyhow!("invalid setting KITSULAN_TLS_KEY (--tls-key) {}: {e}", key.display())
        } else {
            anyhow::anyhow!("invalid setting KITSULAN_TLS_CERT (--tls-cert) {}: {e}", cert.display())
        }
    })
}

fn log_certificate(message: &str, certified: &CertifiedKey) {
    match certified.end_entity_cert().map(|der| validity(der)) {
        Ok(Ok((_, not_after))) => info!(expires = %show_time(not_after), "{message}"),
        _ => info!("{message}"),
    }
}

/// `KITSULAN_TLS=files`: SIGHUP reads the files again; a bad pair is logged and the old one kept.
async fn reload_on_sighup(resolver: Arc<CertResolver>, cert: std::path::PathBuf, key: std::path::PathBuf) {
    #[cfg(unix)]
    {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            warn!("cannot listen for SIGHUP: the certificate files are read at start only");
            return;
        };
        while hangup.recv().await.is_some() {
            match load_files(&cert, &key) {
                Ok(certified) => {
                    log_certificate("SIGHUP: reloaded the certificate", &certified);
                    resolver.set(Arc::new(certified));
                }
                Err(e) => error!("SIGHUP: kept the old certificate: {e:#}"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (resolver, cert, key);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn pair(days_from: i64, days_to: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["example.test".to_owned()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(days_from);
        params.not_after = now + time::Duration::days(days_to);
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn a_good_pair_loads_and_bad_ones_say_why() {
        let (cert, key) = pair(-1, 30);
        certified_key(cert.as_bytes(), key.as_bytes()).unwrap();

        let (_, other_key) = pair(-1, 30);
        let err = certified_key(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch), "{err}");
        assert!(err.is_about_key());

        let (expired, expired_key) = pair(-30, -1);
        let err = certified_key(expired.as_bytes(), expired_key.as_bytes()).unwrap_err();
        assert!(matches!(err, CertError::Expired(_)), "{err}");
        assert!(!err.is_about_key());

        let (early, early_key) = pair(2, 30);
        let err = certified_key(early.as_bytes(), early_key.as_bytes()).unwrap_err();
        assert!(matches!(err, CertError::NotYetValid(_)), "{err}");

        let err = certified_key(key.as_bytes(), key.as_bytes()).unwrap_err();
        assert!(matches!(err, CertError::NoCertificate), "{err}");
        let err = certified_key(cert.as_bytes(), cert.as_bytes()).unwrap_err();
        assert!(matches!(err, CertError::BadKey(_)), "{err}");
    }

    #[test]
    fn the_resolver_presents_what_was_set_last() {
        let (cert, key) = pair(-1, 30);
        let first = Arc::new(certified_key(cert.as_bytes(), key.as_bytes()).unwrap());
        let (cert, key) = pair(-1, 30);
        let second = Arc::new(certified_key(cert.as_bytes(), key.as_bytes()).unwrap());
        let resolver = CertResolver::new(first.clone());
        assert!(Arc::ptr_eq(&resolver.current().unwrap(), &first));
        resolver.set(second.clone());
        assert!(Arc::ptr_eq(&resolver.current().unwrap(), &second));
    }

    #[test]
    fn fingerprints_are_colon_separated_upper_hex() {
        let fp = fingerprint_sha256(b"abc");
        assert_eq!(
            fp,
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }
}
