//! A real ACME server for the ACME tests: Debian's `pebble` (Let's Encrypt's test CA), with
//! `pebble-challtestsrv` as its DNS server answering 127.0.0.1 for every name. Pebble's
//! validation authority really fetches `http://NAME:PORT/.well-known/acme-challenge/TOKEN`
//! (`PEBBLE_VA_ALWAYS_VALID` is removed from its environment), so a certificate is only issued
//! when the http-01 answer is served right.
//!
//! Needs the `pebble` package (`apt-get install pebble`); without it the tests fail.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// A tool from the `pebble` package, or a failure that says how to install it.
fn tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!("`{name}` is not installed: these tests need the real ACME test server (Debian package `pebble`: apt-get install pebble)")
        })
}

/// A free TCP port on loopback.
pub async fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port())
}

async fn wait_for_port(port: u16, what: &str, child: &mut Child) -> anyhow::Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!("{what} exited at start ({status})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{what} is not listening on port {port}")
}

/// A running pebble and its DNS server, stopped when dropped.
pub struct Pebble {
    dir: tempfile::TempDir,
    acme_port: u16,
    management_port: u16,
    _pebble: Child,
    _dns: Child,
}

impl Pebble {
    /// Pebble validating http-01 on `http_port`, issuing certificates valid for
    /// `validity_seconds` (pebble's default, 5 years, if `None`).
    pub async fn start(http_port: u16, validity_seconds: Option<u64>) -> anyhow::Result<Self> {
        let (pebble_bin, dns_bin) = (tool("pebble")?, tool("pebble-challtestsrv")?);
        let dir = tempfile::tempdir()?;

        // Pebble's own HTTPS (its API) needs a certificate: a throwaway CA and a leaf for 127.0.0.1.
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "pebble API test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
        let leaf_key = rcgen::KeyPair::generate()?;
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
            .signed_by(&leaf_key, &ca)?;
        std::fs::write(dir.path().join("api-ca.pem"), ca.pem())?;
        std::fs::write(dir.path().join("api-cert.pem"), leaf.pem())?;
        std::fs::write(dir.path().join("api-key.pem"), leaf_key.serialize_pem())?;

        let (acme_port, management_port, tls_port) =
            (free_port().await?, free_port().await?, free_port().await?);
        let (dns_port, dns_management_port) = (free_port().await?, free_port().await?);
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": dir.path().join("api-cert.pem"),
                "privateKey": dir.path().join("api-key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "retryAfter": { "authz": 1, "order": 1 },
            }
        });
        if let Some(seconds) = validity_seconds {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        std::fs::write(dir.path().join("pebble.json"), config.to_string())?;

        let mut dns = Command::new(dns_bin)
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{dns_management_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        wait_for_port(dns_management_port, "pebble-challtestsrv", &mut dns).await?;

        let mut pebble = Command::new(pebble_bin)
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // The validation must really happen, for every order (no reused authorizations),
            // without pebble's random sleeps. Its random rejection of 5% of nonces stays on: the
            // client must retry those, as with a real CA.
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        wait_for_port(acme_port, "pebble", &mut pebble).await?;
        wait_for_port(management_port, "pebble (management)", &mut pebble).await?;
        Ok(Self { dir, acme_port, management_port, _pebble: pebble, _dns: dns })
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    /// The root of pebble's own HTTPS (its API), PEM: what a client of the API trusts.
    pub fn api_roots(&self) -> PathBuf {
        self.dir.path().join("api-ca.pem")
    }

    /// The management API's URL of the root that issues the certificates (PEM), over HTTPS
    /// checked against [`Self::api_roots`].
    pub fn issuing_root_url(&self) -> String {
        format!("https://127.0.0.1:{}/roots/0", self.management_port)
    }
}
