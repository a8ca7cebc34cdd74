//! ACME against a real ACME server: Debian's `pebble` (Let's Encrypt's test CA), with
//! `pebble-challtestsrv` as its DNS server answering 127.0.0.1 for every name. Pebble's
//! validation authority really fetches `http://NAME:PORT/.well-known/acme-challenge/TOKEN`
//! from our challenge router (`PEBBLE_VA_ALWAYS_VALID` is removed from its environment), so a
//! certificate is only issued when the http-01 answer is served right.
//!
//! Needs the `pebble` package (`apt-get install pebble`); without it these tests fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use kitsulan_server::config::AcmeSettings;
use kitsulan_server::tls::acme::{self, Acme, Challenges, Issued, RenewPolicy};
use kitsulan_testkit::pebble;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpListener;

const DOMAIN: &str = "chat.kitsulan.test";

async fn free_port() -> u16 {
    pebble::free_port().await.unwrap()
}

/// The shared pebble harness ([`kitsulan_testkit::pebble`]), stopping the test if it cannot start.
struct Pebble(pebble::Pebble);

impl Pebble {
    async fn start(http_port: u16, validity_seconds: Option<u64>) -> Self {
        Self(pebble::Pebble::start(http_port, validity_seconds).await.unwrap())
    }

    fn directory(&self) -> String {
        self.0.directory()
    }

    fn api_roots(&self) -> PathBuf {
        self.0.api_roots()
    }

    /// The root that issued our certificates, from pebble's management API.
    async fn issuing_root(&self) -> CertificateDer<'static> {
        let pem = https_get(&self.api_roots(), &self.0.issuing_root_url()).await;
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }
}

async fn https_get(roots_pem: &Path, url: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(roots_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, axum::body::Body>(connector);
    let response = client.get(url.parse().unwrap()).await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 20).await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Serves the challenge router on a port of its own, counting the requests pebble makes.
async fn serve_challenges(challenges: &Challenges) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let router = challenges.router().layer(tower::util::MapRequestLayer::new(move |request| {
        counted.fetch_add(1, Ordering::SeqCst);
        request
    }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (port, hits)
}

fn settings(directory: String, ca_roots: Option<PathBuf>) -> AcmeSettings {
    AcmeSettings {
        domains: vec![DOMAIN.to_owned()],
        directory,
        email: Some("admin@kitsulan.test".into()),
        ca_roots,
    }
}

fn chain(issued: &Issued) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes()).collect::<Result<_, _>>().unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn pebble_issues_a_certificate_after_fetching_the_challenge() {
    let challenges = Challenges::new();
    let (http_port, hits) = serve_challenges(&challenges).await;
    let pebble = Pebble::start(http_port, None).await;
    let data = tempfile::tempdir().unwrap();
    let acme =
        Acme::new(settings(pebble.directory(), Some(pebble.api_roots())), data.path(), challenges.clone())
            .unwrap();

    let issued = acme.obtain().await.unwrap();
    assert!(hits.load(Ordering::SeqCst) >= 1, "pebble fetched the http-01 answer");
    assert_eq!(challenges.pending(), 0, "answers are withdrawn after the order");
    assert_eq!(issued.names, [DOMAIN]);

    // The chain verifies, for the name, up to the root pebble issues from.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pebble.issuing_root().await).unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let certs = chain(&issued);
    assert!(certs.len() >= 2, "leaf and intermediate");
    let name = ServerName::try_from(DOMAIN).unwrap();
    verifier.verify_server_cert(&certs[0], &certs[1..], &name, &[], UnixTime::now()).unwrap();
    let other = ServerName::try_from("other.kitsulan.test").unwrap();
    assert!(verifier.verify_server_cert(&certs[0], &certs[1..], &other, &[], UnixTime::now()).is_err());

    // Kept in the data dir, for this user only.
    let dir = data.path().join("tls");
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700);
        for file in [acme::ACCOUNT_FILE, acme::CERT_FILE, acme::KEY_FILE] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
    }
    let account = std::fs::read(dir.join(acme::ACCOUNT_FILE)).unwrap();

    // A second certificate: same account key, a new certificate key and serial.
    let second = acme.obtain().await.unwrap();
    assert_ne!(second.serial, issued.serial);
    assert_ne!(*second.key_pem, *issued.key_pem);
    assert_eq!(std::fs::read(dir.join(acme::ACCOUNT_FILE)).unwrap(), account, "the account key is kept");

    // At start, the stored certificate is served (with the CA gone, too), and not renewed
    // before it is due.
    drop(pebble);
    let restarted = Arc::new(
        Acme::new(settings("https://127.0.0.1:9/dir".into(), None), data.path(), Challenges::new()).unwrap(),
    );
    let stored = restarted.usable_stored().unwrap();
    assert_eq!(stored.serial, second.serial);
    let renewal = acme::spawn_renewal(restarted, Some(stored), RenewPolicy::default());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(renewal.failures(), 0, "nothing asked of the CA");
    assert_eq!(renewal.current.borrow().as_ref().unwrap().serial, second.serial);
    // What the TLS acceptor is handed: the current certificate at once.
    let (applied_tx, mut applied) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(renewal.for_each(move |issued| {
        let _ = applied_tx.send(issued.serial.clone());
    }));
    let first_applied = tokio::time::timeout(Duration::from_secs(5), applied.recv()).await.unwrap();
    assert_eq!(first_applied, Some(second.serial.clone()));
    follower.abort();

    // A stored certificate for other names is not used.
    let other = Acme::new(
        AcmeSettings {
            domains: vec!["other.kitsulan.test".into()],
            ..settings("https://127.0.0.1:9/dir".into(), None)
        },
        data.path(),
        Challenges::new(),
    )
    .unwrap();
    assert!(other.usable_stored().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn renewal_replaces_the_certificate_when_a_third_of_its_life_is_left() {
    let challenges = Challenges::new();
    let (http_port, hits) = serve_challenges(&challenges).await;
    // 15 s certificates: renewal is due 10 s after issue.
    let pebble = Pebble::start(http_port, Some(15)).await;
    let data = tempfile::tempdir().unwrap();
    let acme = Arc::new(
        Acme::new(settings(pebble.directory(), Some(pebble.api_roots())), data.path(), challenges.clone())
            .unwrap(),
    );
    // Nothing stored: the first certificate is asked for at once.
    assert!(acme.usable_stored().is_none());
    let policy = RenewPolicy { first_retry: Duration::from_secs(1), ..RenewPolicy::default() };
    let mut renewal = acme::spawn_renewal(acme.clone(), None, policy);
    tokio::time::timeout(Duration::from_secs(60), renewal.current.changed()).await.unwrap().unwrap();
    let first = renewal.current.borrow_and_update().clone().unwrap();
    let lifetime = first.not_after.duration_since(first.not_before).unwrap();
    assert!(lifetime <= Duration::from_secs(16), "pebble honours the validity: {lifetime:?}");
    let hits_after_first = hits.load(Ordering::SeqCst);

    // Then it is renewed when a third of its life is left.
    tokio::time::timeout(Duration::from_secs(60), renewal.current.changed()).await.unwrap().unwrap();
    let renewed = renewal.current.borrow_and_update().clone().unwrap();
    let renewed_at = SystemTime::now();
    assert_ne!(renewed.serial, first.serial);
    assert!(renewed.not_after > first.not_after);
    assert!(renewed_at >= first.renew_at(None), "not renewed early");
    assert!(hits.load(Ordering::SeqCst) > hits_after_first, "the renewal was validated again");
    assert_eq!(renewal.failures(), 0);
    let stored = acme.stored().unwrap().unwrap();
    assert_eq!(stored.serial, renewed.serial, "the renewed certificate is what a restart uses");
    renewal.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_renewal_keeps_the_old_certificate_and_retries() {
    let challenges = Challenges::new();
    let (http_port, _) = serve_challenges(&challenges).await;
    let pebble = Pebble::start(http_port, None).await;
    let data = tempfile::tempdir().unwrap();
    let acme = Arc::new(
        Acme::new(settings(pebble.directory(), Some(pebble.api_roots())), data.path(), challenges.clone())
            .unwrap(),
    );
    let old = acme.obtain().await.unwrap();
    let cert_file = data.path().join("tls").join(acme::CERT_FILE);
    let on_disk = std::fs::read(&cert_file).unwrap();

    // The CA goes away; renewal is forced due at once and retried quickly.
    drop(pebble);
    let policy = RenewPolicy {
        renew_before: Some(Duration::from_secs(100 * 365 * 86_400)),
        first_retry: Duration::from_millis(200),
        max_retry: Duration::from_millis(800),
        check_every: Duration::from_secs(1),
    };
    let renewal = acme::spawn_renewal(acme.clone(), Some(old.clone()), policy);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while renewal.failures() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "only {} attempts", renewal.failures());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let error = renewal.last_error().unwrap().to_string();
    eprintln!("renewal error: {error}");
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains(DOMAIN) && error.contains("/dir"), "names what failed: {error}");
    assert_eq!(
        renewal.current.borrow().as_ref().unwrap().serial,
        old.serial,
        "the old certificate is still served"
    );
    assert!(!renewal.current.has_changed().unwrap());
    assert_eq!(std::fs::read(&cert_file).unwrap(), on_disk, "the stored certificate is kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_challenge_not_served_fails_validation_in_one_line() {
    // Pebble validates on a port where nothing answers.
    let unserved = free_port().await;
    let pebble = Pebble::start(unserved, None).await;
    let data = tempfile::tempdir().unwrap();
    let challenges = Challenges::new();
    let acme =
        Acme::new(settings(pebble.directory(), Some(pebble.api_roots())), data.path(), challenges.clone())
            .unwrap();
    let error = acme.obtain().await.unwrap_err().to_string();
    eprintln!("validation error: {error}");
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains("validation failed") && error.contains(DOMAIN), "{error}");
    assert_eq!(challenges.pending(), 0);
    assert!(!data.path().join("tls").join(acme::CERT_FILE).exists(), "nothing stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_ca_at_start_is_retried_and_named_in_one_line() {
    let closed = free_port().await;
    let data = tempfile::tempdir().unwrap();
    let directory = format!("https://127.0.0.1:{closed}/dir");
    let acme =
        Arc::new(Acme::new(settings(directory.clone(), None), data.path(), Challenges::new()).unwrap());
    assert!(acme.usable_stored().is_none());
    let error = acme.obtain().await.unwrap_err().to_string();
    eprintln!("unreachable CA: {error}");
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains(&directory) && error.contains(DOMAIN), "{error}");

    let policy = RenewPolicy {
        first_retry: Duration::from_millis(100),
        max_retry: Duration::from_millis(400),
        ..RenewPolicy::default()
    };
    let renewal = acme::spawn_renewal(acme, None, policy);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while renewal.failures() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "only {} attempts", renewal.failures());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(renewal.current.borrow().is_none(), "nothing to serve yet");
    assert!(!data.path().join("tls").join(acme::CERT_FILE).exists());
}

#[test]
fn extra_roots_that_are_not_pem_name_the_setting() {
    let data = tempfile::tempdir().unwrap();
    let bad = data.path().join("roots.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let Err(error) =
        Acme::new(settings("https://ca.example/dir".into(), Some(bad)), data.path(), Challenges::new())
    else {
        panic!("accepted a roots file without certificates");
    };
    assert!(error.to_string().starts_with("invalid setting KITSULAN_ACME_CA_ROOTS"), "{error}");
}
