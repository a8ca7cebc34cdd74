//! HTTPS in the binary (`KITSULAN_TLS`): the admin's certificate files, the local CA, plain HTTP
//! from the LAN redirected, and bad certificates stopping start-up. The clients here trust
//! exactly one CA (the test's or the data dir's), as a phone that installed it would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use kitsulan_client::{Database, Options, TestServer};
use kitsulan_proto::v1::server_info_service_client::ServerInfoServiceClient;
use kitsulan_proto::v1::{GetServerInfoRequest, GetServerInfoResponse};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A TLS client trusting only `ca_pem`, offering `alpn`.
fn client(ca_pem: &[u8], alpn: &[&str]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// Connects to `addr` and shakes hands as if it were `name`.
async fn tls(connector: &TlsConnector, addr: SocketAddr, name: &str) -> anyhow::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned())?;
    Ok(tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp)).await??)
}

/// `GET path` over HTTP/2 on an open TLS connection: (status, body).
async fn get_h2(stream: TlsStream<TcpStream>, authority: &str, path: &str) -> anyhow::Result<(u16, Bytes)> {
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(stream))
            .await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(format!("https://{authority}{path}")).body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

/// `GET path` over HTTP/1.1 on an open TLS connection.
async fn get_h1(stream: TlsStream<TcpStream>, host: &str, path: &str) -> anyhow::Result<(u16, Bytes)> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path).header("host", host).body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

fn alpn(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

/// `GetServerInfo` over native gRPC on TLS, the connection made by `connector` to `addr` as `name`.
/// (The URI says http: tonic without its TLS feature refuses https URIs; the TLS is ours.)
async fn grpc_server_info(
    connector: TlsConnector,
    addr: SocketAddr,
    name: &str,
) -> anyhow::Result<GetServerInfoResponse> {
    let name = name.to_owned();
    let connect = tower::service_fn(move |_uri: hyper::Uri| {
        let (connector, name) = (connector.clone(), name.clone());
        async move { tls(&connector, addr, &name).await.map(TokioIo::new) }
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_with_connector(connect)
        .await?;
    Ok(ServerInfoServiceClient::new(channel).get_server_info(GetServerInfoRequest {}).await?.into_inner())
}

/// A CA and a server certificate it signs for `names`, valid from `from` to `to` days from now:
/// (CA PEM, chain PEM, key PEM).
fn certificates(names: &[&str], from: i64, to: i64) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Test CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from);
    params.not_after = now + time::Duration::days(to);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), format!("{}{}", cert.pem(), ca.pem()), key.serialize_pem())
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn own_certificate_files_serve_http2_grpc_and_http1_over_tls() -> anyhow::Result<()> {
    let files = tempfile::tempdir()?;
    let (ca, chain, key) = certificates(&["chat.example.test", "127.0.0.1"], -1, 30);
    let server = TestServer::start_with(
        Options::new(Database::Sqlite)
            .env("KITSULAN_TLS", "files")
            .env("KITSULAN_TLS_CERT", &write(files.path(), "chain.pem", &chain))
            .env("KITSULAN_TLS_KEY", &write(files.path(), "key.pem", &key)),
    )
    .await?;
    let addr = server.addr();
    let trusting = client(ca.as_bytes(), &["h2", "http/1.1"]);

    // A client that is slow to shake hands does not hold up the others.
    let mut stalled = TcpStream::connect(addr).await?;
    stalled.write_all(&[0x16, 0x03, 0x01]).await?;

    let stream = tls(&trusting, addr, "chat.example.test").await?;
    assert_eq!(alpn(&stream).as_deref(), Some(&b"h2"[..]), "HTTP/2 negotiated");
    let (status, body) = get_h2(stream, "chat.example.test", "/healthz").await?;
    assert_eq!(status, 200, "{body:?}");

    let info = grpc_server_info(trusting.clone(), addr, "chat.example.test").await?;
    assert_eq!(info.name, "KitsuLAN");
    // The admin's own certificate: no local CA for people to trust, so no fingerprint.
    assert_eq!(info.local_ca_sha256, "");

    let http1 = client(ca.as_bytes(), &["http/1.1"]);
    let stream = tls(&http1, addr, "127.0.0.1").await?;
    assert_eq!(alpn(&stream).as_deref(), Some(&b"http/1.1"[..]));
    let (status, _) = get_h1(stream, "127.0.0.1", "/readyz").await?;
    assert_eq!(status, 200);

    // A client that trusts another CA refuses the server.
    let (other_ca, _, _) = certificates(&["chat.example.test"], -1, 30);
    let stranger = client(other_ca.as_bytes(), &["h2"]);
    let err =
        tls(&stranger, addr, "chat.example.test").await.expect_err("another CA's certificate is refused");
    assert!(format!("{err:#}").contains("invalid peer certificate"), "{err:#}");
    // And a name the certificate does not hold is refused too.
    assert!(tls(&trusting, addr, "other.example.test").await.is_err());

    // Plain HTTP from loopback is served as before TLS was on.
    let health = reqwest::get(format!("{}/healthz", server.url())).await?;
    assert_eq!(health.status(), 200);
    drop(stalled);
    Ok(())
}

#[tokio::test]
async fn a_local_ca_is_made_once_and_trusted_alone_is_enough() -> anyhow::Result<()> {
    let mut server =
        TestServer::start_with(Options::new(Database::Sqlite).env("KITSULAN_TLS", "local")).await?;
    let tls_dir = server.data_dir().join("tls");
    let ca_pem = std::fs::read(tls_dir.join("ca.pem")).context("the data dir's ca.pem")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(tls_dir.join("ca.key"))?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "ca.key is for the server's user only");
    }
    let ca_der = CertificateDer::from_pem_slice(&ca_pem)?;
    let fingerprint = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&ca_der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
    };
    let logged = server.find_log(|event| {
        (event["message"] == "listening")
            .then(|| event["local_ca_sha256"].as_str().map(str::to_owned))
            .flatten()
    });
    assert_eq!(logged.as_deref(), Some(fingerprint.as_str()), "the fingerprint people compare");

    let trusting = client(&ca_pem, &["h2", "http/1.1"]);
    let addr = server.addr();
    for name in ["127.0.0.1", "kitsulan.local", "localhost"] {
        let stream = tls(&trusting, addr, name).await.with_context(|| format!("HTTPS as {name}"))?;
        assert_eq!(alpn(&stream).as_deref(), Some(&b"h2"[..]));
        let (status, _) = get_h2(stream, name, "/healthz").await?;
        assert_eq!(status, 200, "as {name}");
    }
    // GetServerInfo over TLS gives the same fingerprint (the party screen shows it).
    let info = grpc_server_info(trusting.clone(), addr, "kitsulan.local").await?;
    assert_eq!(info.name, "KitsuLAN");
    assert_eq!(info.local_ca_sha256, fingerprint, "ServerInfo.local_ca_sha256 is the CA's SHA-256");

    // Without the CA, the handshake fails.
    let (other_ca, _, _) = certificates(&["kitsulan.local"], -1, 30);
    let err =
        tls(&client(other_ca.as_bytes(), &["h2"]), addr, "kitsulan.local").await.expect_err("untrusted");
    assert!(format!("{err:#}").contains("UnknownIssuer"), "{err:#}");

    // The CA for phones: DER at /ca.crt, PEM at /ca.pem, over plain HTTP and HTTPS.
    let plain = reqwest::get(format!("{}/ca.crt", server.url())).await?;
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], "application/x-x509-ca-cert");
    assert_eq!(plain.bytes().await?.as_ref(), ca_der.as_ref());
    let (status, body) =
        get_h2(tls(&trusting, addr, "kitsulan.local").await?, "kitsulan.local", "/ca.pem").await?;
    assert_eq!((status, body.as_ref()), (200, ca_pem.as_slice()));

    // A restart keeps the CA people trust, and the server certificate with it.
    let server_pem = std::fs::read(tls_dir.join("server.pem"))?;
    server.restart().await?;
    assert_eq!(std::fs::read(tls_dir.join("ca.pem"))?, ca_pem, "the same CA after a restart");
    assert_eq!(std::fs::read(tls_dir.join("server.pem"))?, server_pem, "the server certificate is reused");
    let (status, _) =
        get_h2(tls(&trusting, server.addr(), "kitsulan.local").await?, "kitsulan.local", "/healthz").await?;
    assert_eq!(status, 200);
    Ok(())
}

/// An address of this machine that is not loopback (the LAN side), as `ip` lists it.
fn lan_address() -> IpAddr {
    let output = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .expect("the `ip` tool (iproute2) lists this machine's addresses");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!("this test needs a non-loopback IPv4 address; `ip addr` shows none:\n{text}")
        })
}

#[tokio::test]
async fn plain_http_from_the_lan_is_redirected_but_the_ca_is_not() -> anyhow::Result<()> {
    let lan = lan_address();
    let server = TestServer::start_with(
        Options::new(Database::Sqlite)
            .env("KITSULAN_TLS", "local")
            .env("KITSULAN_LISTEN", "0.0.0.0:0")
            .env("KITSULAN_HTTP_REDIRECT_LISTEN", "127.0.0.1:0"),
    )
    .await?;
    let port = server.addr().port();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;

    let response = no_redirects.get(format!("http://{lan}:{port}/chat?room=1")).send().await?;
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers()["location"], format!("https://{lan}:{port}/chat?room=1").as_str());
    let response = no_redirects
        .post(format!("http://{lan}:{port}/api"))
        .header("host", "kitsulan.local:8080")
        .send()
        .await?;
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers()["location"], "https://kitsulan.local:8080/api");

    // Loopback is a secure context: served as before.
    let response = no_redirects.get(format!("http://127.0.0.1:{port}/healthz")).send().await?;
    assert_eq!(response.status(), 200);

    // The CA, fetched by a phone before it can trust HTTPS, is not redirected.
    let ca_pem = std::fs::read(server.data_dir().join("tls/ca.pem"))?;
    let ca_der = CertificateDer::from_pem_slice(&ca_pem)?;
    let response = no_redirects.get(format!("http://{lan}:{port}/ca.crt")).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await?.as_ref(), ca_der.as_ref());

    // Where the redirect leads works: this machine's LAN address is in the certificate.
    let trusting = client(&ca_pem, &["h2"]);
    let stream = tls(&trusting, SocketAddr::new(lan, port), &lan.to_string()).await?;
    let (status, _) = get_h2(stream, &format!("{lan}:{port}"), "/healthz").await?;
    assert_eq!(status, 200);

    // KITSULAN_HTTP_REDIRECT_LISTEN: redirects only (even from loopback), to the main port.
    let redirect_addr: SocketAddr = server
        .find_log(|event| {
            (event["message"] == "redirecting plain HTTP to HTTPS")
                .then(|| event["addr"].as_str()?.parse().ok())?
        })
        .context("the redirect listener's address in the log")?;
    let response = no_redirects
        .get(format!("http://{redirect_addr}/party"))
        .header("host", "kitsulan.local")
        .send()
        .await?;
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers()["location"], format!("https://kitsulan.local:{port}/party").as_str());
    let response = no_redirects.get(format!("http://{redirect_addr}/ca.pem")).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await?.as_ref(), ca_pem.as_slice());
    Ok(())
}

/// `kitsulan serve` with these settings must exit non-zero before listening, its last line
/// naming `setting`.
async fn refuses_to_start(env: &[(&str, &str)], setting: &str, reason: &str) {
    let data = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(kitsulan_client::binary().unwrap());
    for (key, _) in std::env::vars() {
        if key.starts_with("KITSULAN_") || key == "DATABASE_URL" {
            command.env_remove(&key);
        }
    }
    command
        .arg("serve")
        .current_dir(data.path())
        .env("KITSULAN_DATA_DIR", data.path())
        .env("KITSULAN_LISTEN", "127.0.0.1:0")
        .env("KITSULAN_TURN", "off")
        .env("KITSULAN_SFU", "off")
        .envs(env.iter().copied())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("kitsulan kept running with {env:?}"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{env:?} started:\n{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with(&format!("kitsulan: invalid setting {setting}")), "{env:?}:\n{stderr}");
    assert!(last.contains(reason), "{env:?}: {last:?} does not say {reason:?}");
    assert!(
        !stderr.contains("\"listening\"") && !stderr.contains(" listening"),
        "{env:?} listened:\n{stderr}"
    );
}

#[tokio::test]
async fn bad_certificates_stop_start_up_with_one_line_naming_the_setting() {
    let files = tempfile::tempdir().unwrap();
    let dir = files.path();
    let (_, chain, key) = certificates(&["chat.example.test"], -1, 30);
    let (_, _, other_key) = certificates(&["chat.example.test"], -1, 30);
    let (_, expired, expired_key) = certificates(&["chat.example.test"], -30, -1);
    let (_, early, early_key) = certificates(&["chat.example.test"], 2, 30);
    let chain = write(dir, "chain.pem", &chain);
    let key = write(dir, "key.pem", &key);
    let other_key = write(dir, "other-key.pem", &other_key);
    let expired = write(dir, "expired.pem", &expired);
    let expired_key = write(dir, "expired-key.pem", &expired_key);
    let early = write(dir, "early.pem", &early);
    let early_key = write(dir, "early-key.pem", &early_key);
    let missing = dir.join("missing.pem").to_string_lossy().into_owned();
    let files = |cert: &str, key: &str| {
        vec![
            ("KITSULAN_TLS", "files".to_owned()),
            ("KITSULAN_TLS_CERT", cert.to_owned()),
            ("KITSULAN_TLS_KEY", key.to_owned()),
        ]
    };
    /// Settings, the one the error must name, and words it must say.
    type Case<'a> = (Vec<(&'a str, String)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (files(&chain, &other_key), "KITSULAN_TLS_KEY", "does not match"),
        (files(&expired, &expired_key), "KITSULAN_TLS_CERT", "expired"),
        (files(&early, &early_key), "KITSULAN_TLS_CERT", "not valid before"),
        (files(&missing, &key), "KITSULAN_TLS_CERT", "cannot read"),
        (files(&chain, &missing), "KITSULAN_TLS_KEY", "cannot read"),
        (files(&key, &key), "KITSULAN_TLS_CERT", "no PEM certificate"),
        (
            vec![("KITSULAN_TLS", "files".to_owned()), ("KITSULAN_TLS_CERT", chain.clone())],
            "KITSULAN_TLS_KEY",
            "required",
        ),
        (vec![("KITSULAN_TLS", "acme".to_owned())], "KITSULAN_ACME_DOMAINS", "required"),
        (vec![("KITSULAN_TLS", "https".to_owned())], "KITSULAN_TLS", "expected one of"),
        (
            vec![("KITSULAN_TLS", "local".to_owned()), ("KITSULAN_TLS_NAMES", "bad name!".to_owned())],
            "KITSULAN_TLS_NAMES",
            "not a DNS name",
        ),
        (
            vec![("KITSULAN_HTTP_REDIRECT_LISTEN", "127.0.0.1:0".to_owned())],
            "KITSULAN_HTTP_REDIRECT_LISTEN",
            "off",
        ),
    ];
    for (env, setting, reason) in cases {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        refuses_to_start(&env, setting, reason).await;
    }
}

/// `KITSULAN_TLS=acme` against a real ACME CA (Debian's pebble, its DNS answering 127.0.0.1 for
/// every name): pebble validates http-01 on the server's own port, the certificate it issues is
/// served for the name, to a client trusting only pebble's issuing root, and a restart serves
/// the stored certificate at once instead of ordering a new one. Before any certificate exists
/// handshakes fail cleanly and the server goes on.
#[tokio::test]
async fn acme_issues_from_a_real_ca_and_a_restart_reuses_the_certificate() -> anyhow::Result<()> {
    use kitsulan_testkit::pebble::{Pebble, free_port};
    const NAME: &str = "chat.kitsulan.test";
    let acme = |port: u16, directory: &str, roots: &Path| {
        Options::new(Database::Sqlite)
            .env("KITSULAN_LISTEN", &format!("127.0.0.1:{port}"))
            .env("KITSULAN_TLS", "acme")
            .env("KITSULAN_ACME_DOMAINS", NAME)
            .env("KITSULAN_ACME_DIRECTORY", directory)
            .env("KITSULAN_ACME_CA_ROOTS", roots.to_str().unwrap())
    };

    let port = free_port().await?;
    let pebble = Pebble::start(port, None).await?;
    let api_roots = std::fs::read(pebble.api_roots())?;

    // No CA reachable: no certificate, so the handshake fails with an alert; plain HTTP from
    // loopback still works and the server runs on.
    let unreachable = format!("https://127.0.0.1:{}/dir", free_port().await?);
    let mut waiting =
        TestServer::start_with(acme(free_port().await?, &unreachable, &pebble.api_roots())).await?;
    let err =
        tls(&client(&api_roots, &["http/1.1"]), waiting.addr(), NAME).await.expect_err("no certificate yet");
    assert!(format!("{err:#}").to_lowercase().contains("alert"), "{err:#}");
    assert_eq!(reqwest::get(format!("{}/readyz", waiting.url())).await?.status(), 200);
    assert!(waiting.is_running(), "the server survives a handshake without a certificate");
    drop(waiting);

    // The issuing root, from pebble's management API (itself over HTTPS with the API's root).
    let url = pebble.issuing_root_url();
    let authority = url.trim_start_matches("https://").split('/').next().unwrap().to_owned();
    let (status, root_pem) = get_h1(
        tls(&client(&api_roots, &["http/1.1"]), authority.parse()?, "127.0.0.1").await?,
        &authority,
        "/roots/0",
    )
    .await?;
    assert_eq!(status, 200);
    let trusting = client(&root_pem, &["h2", "http/1.1"]);

    let mut server = TestServer::start_with(acme(port, &pebble.directory(), &pebble.api_roots())).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let leaf = loop {
        match tls(&trusting, server.addr(), NAME).await {
            Ok(stream) => {
                let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned();
                let (status, _) = get_h2(stream, NAME, "/readyz").await?;
                assert_eq!(status, 200);
                break leaf;
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert!(server.is_running(), "the server died while waiting for its certificate: {e:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no certificate for {NAME} within 60 s: {e:#}\n{}", server.log_text()),
        }
    };
    let stored = std::fs::read(server.data_dir().join("tls/acme-cert.pem"))?;
    assert_eq!(CertificateDer::from_pem_slice(&stored)?, leaf, "the served certificate is the stored one");

    // A restart serves the stored certificate from the first handshake on: no new order.
    server.restart().await?;
    let stream = tls(&trusting, server.addr(), NAME).await.context("HTTPS right after the restart")?;
    assert_eq!(
        stream.get_ref().1.peer_certificates().unwrap()[0],
        leaf,
        "the same certificate after a restart"
    );
    let (status, _) = get_h1(stream, NAME, "/readyz").await?;
    assert_eq!(status, 200);
    assert_eq!(std::fs::read(server.data_dir().join("tls/acme-cert.pem"))?, stored, "no new certificate");
    Ok(())
}
