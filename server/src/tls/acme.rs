//! HTTPS certificates from an ACME CA (RFC 8555): Let's Encrypt by default, or any CA with an
//! ACME directory. Names are proved with http-01: the CA fetches
//! `http://NAME/.well-known/acme-challenge/TOKEN` on port 80, which [`Challenges::router`]
//! answers.
//!
//! What is kept in the data dir (`tls/`, 0700; files 0600):
//! - `acme-account.json`: the account key (P-256, PKCS#8), made once. The same key is the same
//!   account at the CA, so it is registered again by itself if the CA forgot it.
//! - `acme-cert.pem`, `acme-key.pem`: the last certificate chain and its key, reused at start
//!   while they fit the configured names and are not yet due for renewal.
//!
//! Renewal ([`spawn_renewal`]) runs when a third of the certificate's lifetime is left (at most
//! 30 days before it ends: day 60 of Let's Encrypt's 90). A failure is logged as one warning
//! line and retried with a doubling wait, and the old certificate stays in use until a new one
//! is issued; each new one is sent on a `watch` channel for the TLS acceptor to swap in.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, HttpClient, Identifier, Key,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::config::AcmeSettings;
use crate::data_dir;

/// The account key file in the `tls/` directory of the data dir.
pub const ACCOUNT_FILE: &str = "acme-account.json";
/// The certificate chain (leaf first) in the `tls/` directory of the data dir.
pub const CERT_FILE: &str = "acme-cert.pem";
/// The certificate's private key in the `tls/` directory of the data dir.
pub const KEY_FILE: &str = "acme-key.pem";

/// The path the CA fetches http-01 answers from (`{token}` appended).
pub const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";
/// Longest token answered: RFC 8555 tokens are 128 bits or more of base64url (Let's Encrypt's
/// are 43 characters); anything much longer is not from a CA.
pub const MAX_TOKEN_LEN: usize = 128;
/// Most answers kept at once: one per name of one order, plus room for a retry.
const MAX_PENDING: usize = 2 * crate::config::ACME_MAX_DOMAINS;

/// How long one request to the CA may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the CA may take to validate every name, and then to issue.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(120);
const ISSUE_TIMEOUT: Duration = Duration::from_secs(120);

/// At most this long before the end of a certificate, renewal starts.
const RENEW_BEFORE_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a certificate could not be obtained: one line, no secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeError(String);

impl AcmeError {
    fn new(message: impl Into<String>) -> Self {
        let message: String = message.into();
        Self(message.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// `context: error: its source: …`, on one line.
    fn with(context: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut line = format!("{context}: {err}");
        let mut source = err.source();
        while let Some(inner) = source {
            let text = inner.to_string();
            if !line.ends_with(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = inner.source();
        }
        Self::new(line)
    }
}

impl std::fmt::Display for AcmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AcmeError {}

/// The http-01 answers the CA may fetch now: token → key authorization. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Challenges(Arc<Mutex<HashMap<String, String>>>);

impl Challenges {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `GET /.well-known/acme-challenge/{token}`: the key authorization of a token of an
    /// order under way, 404 for any other. Mount it on plain HTTP (port 80), never redirected.
    pub fn router(&self) -> Router {
        Router::new().route("/.well-known/acme-challenge/{token}", get(answer)).with_state(self.clone())
    }

    /// Publishes one answer until the guard is dropped.
    fn publish(&self, token: &str, key_authorization: &str) -> Result<ChallengeGuard, AcmeError> {
        if !valid_token(token) {
            return Err(AcmeError::new("the CA sent an http-01 token that is not base64url"));
        }
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_PENDING {
            return Err(AcmeError::new("too many http-01 challenges under way"));
        }
        map.insert(token.to_owned(), key_authorization.to_owned());
        Ok(ChallengeGuard { challenges: self.clone(), token: token.to_owned() })
    }

    fn get(&self, token: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(token).cloned()
    }

    /// Answers published now (for tests and metrics).
    pub fn pending(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

struct ChallengeGuard {
    challenges: Challenges,
    token: String,
}

impl Drop for ChallengeGuard {
    fn drop(&mut self) {
        self.challenges.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.token);
    }
}

fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn answer(State(challenges): State<Challenges>, UrlPath(token): UrlPath<String>) -> Response {
    if !valid_token(&token) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match challenges.get(&token) {
        Some(key_authorization) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], key_authorization).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A certificate chain and its key, as issued.
#[derive(Clone)]
pub struct Issued {
    /// PEM certificates, the leaf first.
    pub chain_pem: String,
    /// PEM PKCS#8 private key of the leaf.
    pub key_pem: Zeroizing<String>,
    /// The leaf's validity.
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The leaf's serial number (big-endian bytes).
    pub serial: Vec<u8>,
    /// The leaf's DNS names.
    pub names: Vec<String>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("names", &self.names)
            .field("serial", &hex(&self.serial))
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Issued {
    /// Reads a chain and key, checking that the key is the leaf's.
    pub fn parse(chain_pem: String, key_pem: Zeroizing<String>) -> Result<Self, AcmeError> {
        let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .next()
            .ok_or_else(|| AcmeError::new("no certificate in the chain"))?
            .map_err(|e| AcmeError::with("the certificate chain is not PEM", &e))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf)
            .map_err(|e| AcmeError::with("the certificate cannot be read", &e))?;
        let key =
            rcgen::KeyPair::from_pem(&key_pem).map_err(|e| AcmeError::with("the key cannot be read", &e))?;
        if key.public_key_raw() != &*cert.public_key().subject_public_key.data {
            return Err(AcmeError::new("the key is not the certificate's"));
        }
        let time = |t: x509_parser::time::ASN1Time| {
            let secs = u64::try_from(t.timestamp()).unwrap_or(0);
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
        };
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                    names.push(dns.to_ascii_lowercase());
                }
            }
        }
        Ok(Self {
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
            serial: cert.raw_serial().to_vec(),
            names,
            chain_pem,
            key_pem,
        })
    }

    /// The serial number as hex, for logs.
    pub fn serial_hex(&self) -> String {
        hex(&self.serial)
    }

    /// Whether the certificate names every one of `domains`.
    pub fn covers(&self, domains: &[String]) -> bool {
        domains.iter().all(|d| self.names.contains(d))
    }

    /// When renewal is due: a third of the lifetime before the end, at most 30 days before it
    /// (or `renew_before` before it, if given).
    pub fn renew_at(&self, renew_before: Option<Duration>) -> SystemTime {
        let lifetime = self.not_after.duration_since(self.not_before).unwrap_or_default();
        let before = renew_before.unwrap_or_else(|| (lifetime / 3).min(RENEW_BEFORE_MAX));
        self.not_after.checked_sub(before).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ACME client of one server: settings, where files go, and the challenge answers.
pub struct Acme {
    settings: AcmeSettings,
    dir: PathBuf,
    tls: Arc<rustls::ClientConfig>,
    challenges: Challenges,
}

impl Acme {
    /// Reads the extra CA roots (if any) and makes `DATA_DIR/tls` (0700). Errors name the setting.
    pub fn new(settings: AcmeSettings, data_dir: &Path, challenges: Challenges) -> Result<Self, AcmeError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &settings.ca_roots {
            let setting = format!(
                "invalid setting KITSULAN_ACME_CA_ROOTS (--acme-ca-roots) {:?}",
                path.display().to_string()
            );
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| AcmeError::with(&setting, &e))?;
            if certs.is_empty() {
                return Err(AcmeError::new(format!("{setting}: no PEM certificate in it")));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| AcmeError::with(&setting, &e))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| AcmeError::with("TLS setup", &e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let dir = data_dir.join("tls");
        data_dir::private_dir(&dir)
            .map_err(|e| AcmeError::with(&format!("cannot make {}", dir.display()), &e))?;
        Ok(Self { settings, dir, tls: Arc::new(tls), challenges })
    }

    pub fn settings(&self) -> &AcmeSettings {
        &self.settings
    }

    pub fn challenges(&self) -> &Challenges {
        &self.challenges
    }

    /// The directory the certificate, its key and the account key are kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The stored certificate to serve at start: there, readable, its key its own, naming every
    /// configured name, not expired. (If it is due for renewal, [`spawn_renewal`] renews it at
    /// once; until then it is served.)
    pub fn usable_stored(&self) -> Option<Issued> {
        match self.stored() {
            Ok(Some(stored)) if !stored.covers(&self.settings.domains) => {
                tracing::info!(names = ?stored.names, "the stored ACME certificate does not name every KITSULAN_ACME_DOMAINS; asking for a new one");
                None
            }
            Ok(Some(stored)) if SystemTime::now() >= stored.not_after => None,
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!("ignoring the stored ACME certificate: {e}");
                None
            }
        }
    }

    /// The stored certificate and key, if both files are there.
    pub fn stored(&self) -> Result<Option<Issued>, AcmeError> {
        let (cert_path, key_path) = (self.dir.join(CERT_FILE), self.dir.join(KEY_FILE));
        if !cert_path.exists() || !key_path.exists() {
            return Ok(None);
        }
        let chain = std::fs::read_to_string(&cert_path)
            .map_err(|e| AcmeError::with(&format!("cannot read {}", cert_path.display()), &e))?;
        let key = data_dir::read_private_file(&key_path)
            .map_err(|e| AcmeError::with(&format!("cannot read {}", key_path.display()), &e))?;
        Issued::parse(chain, Zeroizing::new(key)).map(Some)
    }

    /// Orders a certificate for the configured names, proves them over http-01, and stores and
    /// returns the chain and its new key.
    pub async fn obtain(&self) -> Result<Issued, AcmeError> {
        let names = self.settings.domains.join(", ");
        let issued = self.order().await.map_err(|e| {
            AcmeError::new(format!("ACME certificate for {names} from {}: {e}", self.settings.directory))
        })?;
        self.store(&issued)?;
        tracing::info!(
            names = ?issued.names,
            serial = %issued.serial_hex(),
            not_after_unix = unix_seconds(issued.not_after),
            "ACME certificate issued"
        );
        Ok(issued)
    }

    async fn order(&self) -> Result<Issued, AcmeError> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> =
            self.settings.domains.iter().map(|d| Identifier::Dns(d.clone())).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| AcmeError::with("new order", &e))?;

        // Publish every answer, then tell the CA to fetch them.
        let mut published = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| AcmeError::with("authorization", &e))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => {
                    return Err(AcmeError::new(format!(
                        "the authorization for {} is {status:?}",
                        authz.identifier()
                    )));
                }
            }
            let name = authz.identifier().to_string();
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| AcmeError::new(format!("the CA offers no http-01 challenge for {name}")))?;
            let key_authorization = challenge.key_authorization();
            published.push(self.challenges.publish(&challenge.token, key_authorization.as_str())?);
            challenge.set_ready().await.map_err(|e| AcmeError::with(&format!("challenge for {name}"), &e))?;
        }

        let polling =
            RetryPolicy::new().initial_delay(Duration::from_secs(1)).backoff(1.5).timeout(VALIDATION_TIMEOUT);
        let ready = order.poll_ready(&polling).await;
        drop(published);
        match ready {
            Ok(OrderStatus::Ready) => {}
            Ok(status) => {
                let why = why_invalid(&mut order, format!("the order is {status:?}")).await;
                return Err(AcmeError::new(format!("validation failed: {why}")));
            }
            Err(instant_acme::Error::Api(problem)) => {
                let why = why_invalid(&mut order, problem.to_string()).await;
                return Err(AcmeError::new(format!("validation failed: {why}")));
            }
            Err(e) => return Err(AcmeError::with("validation", &e)),
        }

        // A fresh key for every certificate; the CSR names exactly the configured names.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| AcmeError::with("key generation", &e))?;
        let mut params = rcgen::CertificateParams::new(self.settings.domains.clone())
            .map_err(|e| AcmeError::with("certificate request", &e))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).map_err(|e| AcmeError::with("certificate request", &e))?;
        order.finalize_csr(csr.der()).await.map_err(|e| AcmeError::with("finalize", &e))?;
        let polling =
            RetryPolicy::new().initial_delay(Duration::from_secs(1)).backoff(1.5).timeout(ISSUE_TIMEOUT);
        let chain = order.poll_certificate(&polling).await.map_err(|e| AcmeError::with("certificate", &e))?;

        let issued = Issued::parse(chain, Zeroizing::new(key.serialize_pem()))?;
        if !issued.covers(&self.settings.domains) {
            return Err(AcmeError::new(format!(
                "the CA issued a certificate for {:?} instead",
                issued.names
            )));
        }
        Ok(issued)
    }

    /// The account: the stored key (made and kept on first use), registered at the CA (an
    /// existing registration of the key is simply returned).
    async fn account(&self) -> Result<Account, AcmeError> {
        let pkcs8 = self.account_key()?;
        let key = Key::from_pkcs8_der(pkcs8.clone_key()).map_err(|e| AcmeError::with("account key", &e))?;
        let http: Box<dyn HttpClient> = Box::new(Http::new(self.tls.clone()));
        let (account, _) = Account::builder_with_http(http)
            .create_from_key((key, PrivateKeyDer::Pkcs8(pkcs8)), self.settings.directory.clone())
            .await
            .map_err(|e| AcmeError::with("account", &e))?;
        if let Some(email) = &self.settings.email {
            let contact = format!("mailto:{email}");
            account
                .update_contacts(&[contact.as_str()])
                .await
                .map_err(|e| AcmeError::with("account contact", &e))?;
        }
        Ok(account)
    }

    fn account_key(&self) -> Result<PrivatePkcs8KeyDer<'static>, AcmeError> {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Stored {
            key_pkcs8: String,
        }
        let path = self.dir.join(ACCOUNT_FILE);
        let what = |verb: &str| format!("cannot {verb} the ACME account key {}", path.display());
        if path.exists() {
            let text = Zeroizing::new(
                data_dir::read_private_file(&path).map_err(|e| AcmeError::with(&what("read"), &e))?,
            );
            let stored: Stored =
                serde_json::from_str(&text).map_err(|e| AcmeError::with(&what("read"), &e))?;
            let der = URL_SAFE_NO_PAD
                .decode(stored.key_pkcs8.as_bytes())
                .map_err(|e| AcmeError::with(&what("read"), &e))?;
            return Ok(PrivatePkcs8KeyDer::from(der));
        }
        let (_, pkcs8) = Key::generate_pkcs8().map_err(|e| AcmeError::with("account key", &e))?;
        let stored = Stored { key_pkcs8: URL_SAFE_NO_PAD.encode(pkcs8.secret_pkcs8_der()) };
        let json =
            Zeroizing::new(serde_json::to_vec(&stored).map_err(|e| AcmeError::with("account key", &e))?);
        data_dir::write_private_file(&path, &json).map_err(|e| AcmeError::with(&what("write"), &e))?;
        Ok(pkcs8)
    }

    /// Replaces the stored certificate and key (each written whole, then renamed over the old).
    fn store(&self, issued: &Issued) -> Result<(), AcmeError> {
        replace_private_file(&self.dir.join(KEY_FILE), issued.key_pem.as_bytes())?;
        replace_private_file(&self.dir.join(CERT_FILE), issued.chain_pem.as_bytes())?;
        Ok(())
    }
}

/// What the CA said about each failed challenge, for the error line (`otherwise` if nothing).
async fn why_invalid(order: &mut instant_acme::Order, otherwise: String) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        let name = authz.identifier().to_string();
        for challenge in &authz.challenges {
            if let Some(problem) = &challenge.error {
                reasons.push(format!("{name}: {problem}"));
            }
        }
    }
    if reasons.is_empty() { otherwise } else { reasons.join("; ") }
}

/// Writes `contents` to `path.new` (0600), syncs it and renames it over `path`: a reader sees
/// the old file or the new one, never half of one.
fn replace_private_file(path: &Path, contents: &[u8]) -> Result<(), AcmeError> {
    let fail = |e: std::io::Error| AcmeError::with(&format!("cannot write {}", path.display()), &e);
    let mut temp = path.as_os_str().to_owned();
    temp.push(".new");
    let temp = PathBuf::from(temp);
    match std::fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    data_dir::write_private_file(&temp, contents).map_err(fail)?;
    std::fs::rename(&temp, path).map_err(fail)
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The HTTPS client the ACME library talks through: hyper with rustls on ring, our roots, and a
/// time limit on every request.
struct Http(
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        BodyWrapper<Bytes>,
    >,
);

impl Http {
    fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        Self(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector),
        )
    }
}

impl HttpClient for Http {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = self.0.request(req);
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, response).await {
                Ok(Ok(response)) => Ok(BytesResponse::from(response)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(Box::new(e))),
                Err(_) => Err(instant_acme::Error::Other(
                    format!("no answer in {} s", REQUEST_TIMEOUT.as_secs()).into(),
                )),
            }
        })
    }
}

/// When renewal runs and how failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct RenewPolicy {
    /// Renew this long before the end; `None`: a third of the lifetime, at most 30 days.
    pub renew_before: Option<Duration>,
    /// The wait after the first failure; it doubles after each, up to `max_retry`.
    pub first_retry: Duration,
    pub max_retry: Duration,
    /// The longest sleep between two looks at the clock (a suspended host wakes up late).
    pub check_every: Duration,
}

impl Default for RenewPolicy {
    fn default() -> Self {
        Self {
            renew_before: None,
            first_retry: Duration::from_secs(60),
            max_retry: Duration::from_secs(6 * 3600),
            check_every: Duration::from_secs(3600),
        }
    }
}

/// The renewal task: the certificate in use, and what went wrong lately.
pub struct Renewal {
    /// The certificate to serve (`None` until the first one is issued); changes when a new one
    /// is.
    pub current: watch::Receiver<Option<Arc<Issued>>>,
    failures: Arc<AtomicU64>,
    last_error: Arc<Mutex<Option<AcmeError>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Renewal {
    /// Failed attempts since the task started.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The last failure's reason.
    pub fn last_error(&self) -> Option<AcmeError> {
        self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stops the task.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Calls `apply` with the current certificate (if there is one) and then with every new
    /// one, for as long as the returned future runs; dropping it stops renewal.
    pub async fn for_each(mut self, mut apply: impl FnMut(&Issued) + Send) {
        loop {
            if let Some(issued) = self.current.borrow_and_update().clone() {
                apply(&issued);
            }
            if self.current.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the certificate's upkeep: with none yet (`current` is `None`), one is asked for at
/// once; then it is renewed when due. Failures are logged as one line and retried with a
/// doubling wait, and the old certificate stays in [`Renewal::current`]. Runs until the
/// returned [`Renewal`] is dropped.
pub fn spawn_renewal(acme: Arc<Acme>, current: Option<Issued>, policy: RenewPolicy) -> Renewal {
    let (sender, receiver) = watch::channel(current.map(Arc::new));
    let failures = Arc::new(AtomicU64::new(0));
    let last_error = Arc::new(Mutex::new(None));
    let task = tokio::spawn(renew_loop(acme, sender, policy, failures.clone(), last_error.clone()));
    Renewal { current: receiver, failures, last_error, task }
}

async fn renew_loop(
    acme: Arc<Acme>,
    sender: watch::Sender<Option<Arc<Issued>>>,
    policy: RenewPolicy,
    failures: Arc<AtomicU64>,
    last_error: Arc<Mutex<Option<AcmeError>>>,
) {
    let mut retry = policy.first_retry;
    loop {
        let current = sender.borrow().clone();
        if let Some(current) = &current
            && let Ok(wait) = current.renew_at(policy.renew_before).duration_since(SystemTime::now())
        {
            tokio::time::sleep(wait.min(policy.check_every)).await;
            continue;
        }
        match acme.obtain().await {
            Ok(issued) => {
                retry = policy.first_retry;
                sender.send_replace(Some(Arc::new(issued)));
                // Never renew twice in a row faster than a failure would be retried.
                tokio::time::sleep(policy.first_retry).await;
            }
            Err(e) => {
                failures.fetch_add(1, Ordering::Relaxed);
                let wait = retry.as_secs_f32();
                match &current {
                    Some(current) => {
                        let left = current.not_after.duration_since(SystemTime::now()).unwrap_or_default();
                        tracing::warn!(
                            "ACME renewal failed, retrying in {wait:.0} s; still serving certificate {} ({} h left): {e}",
                            current.serial_hex(),
                            left.as_secs() / 3600
                        );
                    }
                    None => tracing::error!(
                        "ACME: no certificate yet (HTTPS handshakes fail until one is issued), retrying in {wait:.0} s: {e}"
                    ),
                }
                *last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(policy.max_retry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(router: &Router, path: &str) -> (StatusCode, String) {
        use tower::ServiceExt as _;
        let request = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn challenge_answers_only_published_tokens_while_published() {
        let challenges = Challenges::new();
        let router = challenges.router();
        let guard = challenges.publish("tok_EN-1", "tok_EN-1.thumb").unwrap();
        assert_eq!(
            get(&router, "/.well-known/acme-challenge/tok_EN-1").await,
            (StatusCode::OK, "tok_EN-1.thumb".into())
        );
        assert_eq!(get(&router, "/.well-known/acme-challenge/other").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&router, "/.well-known/acme-challenge/").await.0, StatusCode::NOT_FOUND);
        drop(guard);
        assert_eq!(get(&router, "/.well-known/acme-challenge/tok_EN-1").await.0, StatusCode::NOT_FOUND);
        assert_eq!(challenges.pending(), 0);
    }

    #[tokio::test]
    async fn hostile_tokens_are_refused() {
        let challenges = Challenges::new();
        let router = challenges.router();
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        // Tokens that are not base64url never get published, and never looked up.
        for bad in ["a.b", "a%2Fb", "..", "a b", "é", long.as_str(), ""] {
            assert!(challenges.publish(bad, "x").is_err(), "{bad:?}");
        }
        for path in ["a%2E%2E", "%2E%2E%2Fetc", "a.b", &long] {
            let (status, _) = get(&router, &format!("/.well-known/acme-challenge/{path}")).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        // A flood of published answers stops at the cap.
        let guards: Vec<_> =
            (0..MAX_PENDING).map(|i| challenges.publish(&format!("t{i}"), "x").unwrap()).collect();
        assert!(challenges.publish("one-more", "x").is_err());
        drop(guards);
        assert_eq!(challenges.pending(), 0);
    }

    #[test]
    fn renewal_is_due_a_third_before_the_end_at_most_thirty_days() {
        let day = Duration::from_secs(86_400);
        let start = SystemTime::UNIX_EPOCH + 1000 * day;
        let issued = |days: u32| Issued {
            chain_pem: String::new(),
            key_pem: Zeroizing::new(String::new()),
            not_before: start,
            not_after: start + day * days,
            serial: vec![1],
            names: vec![],
        };
        assert_eq!(issued(90).renew_at(None), start + 60 * day);
        assert_eq!(issued(6).renew_at(None), start + 4 * day);
        assert_eq!(issued(365).renew_at(None), start + 335 * day);
        assert_eq!(issued(90).renew_at(Some(day)), start + 89 * day);
    }

    #[test]
    fn errors_are_one_line() {
        let e = AcmeError::new("a\nb\r\n  c");
        assert_eq!(e.to_string(), "a b c");
    }
}
