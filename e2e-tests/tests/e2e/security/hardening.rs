//! Points 9-12 of the hardening issue, each as the attack against the real binary:
//!
//! - 9: the web app is served with a strict Content-Security-Policy and friends, and blobs
//!   never render as pages;
//! - 10: a copy of the data dir or the database does not give TOTP secrets away, the files are
//!   this user's only, and the bus password never reaches the log;
//! - 11: garbage or oversized gRPC frames get a clear `INVALID_ARGUMENT` / `RESOURCE_EXHAUSTED`
//!   with a reason, over native gRPC and gRPC-Web, and change nothing;
//! - 12: invisible and bidi characters in group titles, `/metrics` and reflection moved to an
//!   admin address, a download URL outliving a removal, and `MESSAGE_ID_TAKEN` as an oracle.

use std::path::Path;
use std::time::Duration;

use kitsulan_client::attachments::{blob_url, get_status, put_bytes};
use kitsulan_client::people::{PASSWORD, roomy};
use kitsulan_client::scan::{scan_database_rows, scan_for_plaintexts};
use kitsulan_client::{Authenticator, Client, Database, Options, TestServer, assert_refused};
use kitsulan_proto::v1::server_info_service_client::ServerInfoServiceClient;
use kitsulan_proto::v1::{GetServerInfoRequest, HistoryDirection, SendMessageRequest, SignInRequest};
use prost::Message as _;
use tonic::Code;
use tonic_types::StatusExt as _;

async fn start(options: Options) -> TestServer {
    TestServer::start_with(roomy(options)).await.unwrap_or_else(|e| panic!("starting the server: {e:#}"))
}

async fn signed_up(server: &TestServer, username: &str) -> (Client, String) {
    let mut client = Client::connect(&server.url()).await.unwrap();
    let session = client.sign_up(username, PASSWORD).await.unwrap();
    (client, session.account_id)
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis())
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// A group of `owner` alone (or with `members`), and its id.
async fn group(owner: &Client, title: &str, members: &[&str]) -> String {
    owner.create_group(title, members).await.unwrap().id
}

/// An uploaded attachment of `size` bytes in `conversation`, by `uploader`.
async fn uploaded(server: &TestServer, uploader: &Client, conversation: &str, size: u64) -> String {
    let created = uploader.create_upload(conversation, size, 3600).await.unwrap();
    let (attachment, upload) = (created.attachment.unwrap(), created.upload.unwrap());
    assert_eq!(put_bytes(&server.url(), &upload, vec![7u8; size as usize]).await.unwrap(), 200);
    uploader.complete_upload(&attachment.id).await.unwrap();
    attachment.id
}

// ---- 9. Web app headers ---------------------------------------------------------------------

#[tokio::test]
async fn the_web_app_forbids_inline_script_framing_and_foreign_connections() {
    let server = start(Options::new(Database::Sqlite)).await;
    for path in ["/", "/index.html", "/some/client/route"] {
        let response = http().get(format!("{}{path}", server.url())).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{path}: no {name}"))
                .to_owned()
        };
        let csp = header("content-security-policy");
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for want in [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "style-src 'self'",
            "connect-src 'self' blob:",
            "img-src 'self' blob: data:",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ] {
            assert!(directives.contains(&want), "{path}: {want:?} missing from {csp:?}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"), "{csp}");
        assert_eq!(header("referrer-policy"), "no-referrer");
        let permissions = header("permissions-policy");
        for want in ["camera=(self)", "microphone=(self)", "display-capture=(self)"] {
            assert!(permissions.contains(want), "{permissions}");
        }
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("x-frame-options"), "DENY");
        // The page itself carries no inline script for the policy to break.
        let page = response.text().await.unwrap();
        assert!(!page.contains("<script>") && !page.contains("style=\""), "inline script or style in {path}");
    }

    // A blob is never a page: ciphertext comes as octet-stream and must not be sniffed.
    let (alice, _) = signed_up(&server, "alice").await;
    let conversation = group(&alice, "Files", &[]).await;
    let attachment = uploaded(&server, &alice, &conversation, 64).await;
    let download = alice.download_url(&attachment).await.unwrap().download.unwrap();
    let response = http().get(blob_url(&server.url(), &download)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/octet-stream");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

// ---- 10. Data at rest -------------------------------------------------------------------------

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[cfg(unix)]
fn loosen(path: &Path, to: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(to)).unwrap();
}

#[cfg(unix)]
fn assert_private(data: &Path) {
    assert_eq!(mode(data), 0o700, "the data dir");
    for file in ["kitsulan.db", "kitsulan.db-wal", "kitsulan.db-shm", "blob-key", "totp-key", "turn-secret"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    for dir in ["blobs", "blobs/attachments", "blobs/avatars", "blobs/.tmp"] {
        assert_eq!(mode(&data.join(dir)), 0o700, "{dir}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn another_local_user_cannot_read_the_data_dir_database_keys_or_blobs() {
    // A data dir the server makes itself, under a parent others may read (as /var/lib is).
    let parent = tempfile::tempdir().unwrap();
    loosen(parent.path(), 0o755);
    let data = parent.path().join("kitsulan-data");
    let mut server =
        start(Options::new(Database::Sqlite).env("KITSULAN_DATA_DIR", data.to_str().unwrap())).await;
    let (alice, _) = signed_up(&server, "alice").await;
    let conversation = group(&alice, "Files", &[]).await;
    let attachment = uploaded(&server, &alice, &conversation, 32).await;
    assert_private(&data);
    let blob = data.join("blobs/attachments").join(&attachment);
    assert_eq!(mode(&blob), 0o600, "the blob");

    // What an older version (or a careless restore) left readable is tightened on start.
    server.kill().await.unwrap();
    loosen(&data, 0o755);
    for file in ["kitsulan.db", "blob-key", "totp-key"] {
        loosen(&data.join(file), 0o644);
    }
    loosen(&data.join("blobs"), 0o755);
    server.restart().await.unwrap();
    assert_private(&data);
    // And the server works on it as before.
    let mut again = Client::connect(&server.url()).await.unwrap();
    again.sign_in("alice", PASSWORD).await.unwrap();
}

/// Enrols TOTP for `client` and returns the authenticator and the raw secret.
async fn enrol_totp(client: &Client) -> (Authenticator, Vec<u8>, String) {
    let (app, base32) = Authenticator::enrol(client, PASSWORD).await.unwrap();
    let raw = totp_rs::Secret::try_from_base32(&base32).unwrap().as_bytes().to_vec();
    (app, raw, base32)
}

async fn sign_in_with_totp(server: &TestServer, username: &str, app: &mut Authenticator) {
    let mut device = Client::connect(&server.url()).await.unwrap();
    let totp_code = app.fresh_code().await;
    device
        .sign_in_with(SignInRequest {
            username: username.into(),
            password: PASSWORD.into(),
            device_name: "Phone".into(),
            totp_code,
        })
        .await
        .unwrap_or_else(|e| panic!("TOTP sign-in of {username}: {e:?}"));
}

/// Puts `secret` into the account's row in plaintext, as versions before sealing stored it.
async fn store_plaintext_totp(server: &TestServer, account_id: &str, secret: &[u8]) {
    let id = uuid::Uuid::parse_str(account_id).unwrap();
    match server.database_url() {
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query("UPDATE accounts SET totp_secret = $1, totp_last_step = NULL WHERE id = $2")
                .bind(secret)
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        None => {
            let url = format!("sqlite://{}", server.data_dir().join("kitsulan.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query("UPDATE accounts SET totp_secret = $1, totp_last_step = NULL WHERE id = $2")
                .bind(secret)
                .bind(id.as_bytes().as_slice())
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

async fn totp_secrets_are_sealed_at_rest(database: Database) {
    let mut server = start(Options::new(database)).await;
    let (alice, _) = signed_up(&server, "alice").await;
    let (mut app, raw, base32) = enrol_totp(&alice).await;
    // The thief with a copy of the database (or the whole data dir but the key) finds no secret.
    let findings = scan_for_plaintexts(&server, &[&raw, base32.as_bytes()]).await.unwrap();
    assert!(findings.is_empty(), "a TOTP secret is stored in plaintext: {findings:?}");
    // The owner still signs in with their authenticator.
    sign_in_with_totp(&server, "alice", &mut app).await;

    // A secret an earlier version stored in plaintext is sealed on the next start, and works.
    let (bob, bob_id) = signed_up(&server, "bob").await;
    let (_, _, _) = enrol_totp(&bob).await;
    let old = kitsulan_client::totp::Authenticator::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
    let old_raw =
        totp_rs::Secret::try_from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap().as_bytes().to_vec();
    server.kill().await.unwrap();
    store_plaintext_totp(&server, &bob_id, &old_raw).await;
    assert!(!scan_database_rows(&server, &[&old_raw]).await.unwrap().is_empty(), "the scan sees plaintext");
    server.restart().await.unwrap();
    let findings = scan_database_rows(&server, &[&old_raw]).await.unwrap();
    assert!(findings.is_empty(), "the plaintext secret was not sealed on start: {findings:?}");
    let mut old = old;
    sign_in_with_totp(&server, "bob", &mut old).await;
    sign_in_with_totp(&server, "alice", &mut app).await;
}

#[tokio::test]
async fn a_database_copy_holds_no_totp_secret_on_sqlite() {
    totp_secrets_are_sealed_at_rest(Database::Sqlite).await;
}

#[tokio::test]
async fn a_database_copy_holds_no_totp_secret_on_postgres() {
    totp_secrets_are_sealed_at_rest(Database::FreshPostgres).await;
}

/// A NATS server on a free port that wants a user and password.
struct Nats {
    child: tokio::process::Child,
    port: u16,
}

impl Nats {
    async fn start(user: &str, password: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--user", user, "--pass", password])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server (apt install nats-server)");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "nats-server did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, port }
    }
}

#[tokio::test]
async fn the_bus_password_never_reaches_the_log() {
    const PASSWORD_IN_URL: &str = "nats-pw-4f9c2e71";
    let mut nats = Nats::start("kitsu", PASSWORD_IN_URL).await;
    let url = format!("nats://kitsu:{PASSWORD_IN_URL}@127.0.0.1:{}", nats.port);
    let server = start(Options::new(Database::Sqlite).env("KITSULAN_BUS_URL", &url)).await;
    // It did connect with the password (a wrong one would not start)...
    let log = server.log_text();
    assert!(log.contains("bus connected"), "{log}");
    // ...and the log names the bus without it.
    assert!(!log.contains(PASSWORD_IN_URL), "the NATS password is in the log");
    assert!(log.contains(&format!("nats://***@127.0.0.1:{}", nats.port)), "{log}");
    drop(server);
    let _ = nats.child.start_kill();
}

// ---- 11. Clear errors for malformed and oversized requests ------------------------------------

/// One gRPC frame: flag, big-endian length as declared, then `payload` (maybe shorter).
fn frame(declared_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&declared_len.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The status of a raw gRPC or gRPC-Web call: from the headers (a trailers-only answer) or
/// the gRPC-Web trailer frame.
async fn raw_call(url: &str, path: &str, web: bool, body: Vec<u8>) -> tonic::Status {
    let client = if web {
        reqwest::Client::builder().http1_only().build().unwrap()
    } else {
        reqwest::Client::builder().http2_prior_knowledge().build().unwrap()
    };
    let content_type = if web { "application/grpc-web+proto" } else { "application/grpc" };
    let response = client
        .post(format!("{url}{path}"))
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut headers = response.headers().clone();
    if !headers.contains_key("grpc-status") {
        let bytes = response.bytes().await.unwrap();
        let mut rest = &bytes[..];
        while rest.len() >= 5 {
            let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
            let payload = &rest[5..5 + len];
            if rest[0] & 0x80 != 0 {
                for line in String::from_utf8_lossy(payload).split("\r\n") {
                    if let Some((name, value)) = line.split_once(':') {
                        headers.insert(
                            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                            value.trim().parse().unwrap(),
                        );
                    }
                }
            }
            rest = &rest[5 + len..];
        }
    }
    tonic::Status::from_header_map(&headers).unwrap_or_else(|| panic!("no grpc-status in {headers:?}"))
}

fn reason(status: &tonic::Status) -> String {
    status.get_details_error_info().map(|info| info.reason).unwrap_or_default()
}

#[tokio::test]
async fn garbage_and_oversized_frames_get_clear_errors_over_grpc_and_grpc_web() {
    let server = start(Options::new(Database::Sqlite)).await;
    let url = server.url();
    const SIGN_IN: &str = "/kitsulan.v1.AuthService/SignIn";
    // A length-delimited field that claims 5 bytes and has 2; varints that never end.
    let garbage: [&[u8]; 2] = [b"\x0a\x05ab", &[0xff; 11]];
    for web in [false, true] {
        let transport = if web { "gRPC-Web" } else { "gRPC" };
        for payload in garbage {
            let status = raw_call(&url, SIGN_IN, web, frame(payload.len() as u32, payload)).await;
            assert_eq!(status.code(), Code::InvalidArgument, "{transport}: {status:?}");
            assert_eq!(reason(&status), "MALFORMED_REQUEST", "{transport}: {status:?}");
        }
        // A frame cut short: the header promises 100 bytes, 3 come.
        let status = raw_call(&url, SIGN_IN, web, frame(100, b"abc")).await;
        assert_eq!((status.code(), reason(&status).as_str()), (Code::InvalidArgument, "MALFORMED_REQUEST"));
        // A frame announcing 5 MiB is refused at its header, with the limit in the message.
        let status = raw_call(&url, SIGN_IN, web, frame(5 * 1024 * 1024, b"abc")).await;
        assert_eq!(status.code(), Code::ResourceExhausted, "{transport}: {status:?}");
        assert_eq!(reason(&status), "REQUEST_TOO_LARGE", "{transport}: {status:?}");
        assert!(status.message().contains("4194304"), "{transport}: the limit in {:?}", status.message());
        // The real thing still works, and the server is healthy. (A native gRPC success ends
        // with trailers, which a plain HTTP client cannot read: there, tonic's client asks.)
        if web {
            let payload = GetServerInfoRequest {}.encode_to_vec();
            let ok = raw_call(
                &url,
                "/kitsulan.v1.ServerInfoService/GetServerInfo",
                web,
                frame(payload.len() as u32, &payload),
            )
            .await;
            assert_eq!(ok.code(), Code::Ok, "{transport}: {ok:?}");
        } else {
            let mut info = ServerInfoServiceClient::new(server.channel().await.unwrap());
            assert_eq!(
                info.get_server_info(GetServerInfoRequest {}).await.unwrap().into_inner().name,
                "KitsuLAN"
            );
        }
        let wrong = SignInRequest {
            username: "nobody".into(),
            password: "wrong password".into(),
            device_name: "Laptop".into(),
            totp_code: String::new(),
        };
        let payload = wrong.encode_to_vec();
        let status = raw_call(&url, SIGN_IN, web, frame(payload.len() as u32, &payload)).await;
        assert_eq!(reason(&status), "INVALID_CREDENTIALS", "{transport}: {status:?}");
    }
    assert_eq!(get_status(&format!("{url}/readyz")).await.unwrap(), 200);
}

// ---- 12. Smaller leaks ------------------------------------------------------------------------

#[tokio::test]
async fn group_titles_cannot_hide_or_reverse_text() {
    let server = start(Options::new(Database::Sqlite)).await;
    let (mallory, _) = signed_up(&server, "mallory").await;
    for title in
        ["Admins\u{202E}nimdA", "Family\u{200B}", "IT \u{2066}support\u{2069}", "tab\there", "\u{FEFF}"]
    {
        assert_refused(mallory.create_group(title, &[]).await, "TITLE_INVALID");
    }
    assert!(mallory.list_conversations().await.unwrap().is_empty(), "nothing was created");
    let made = mallory.create_group("  LAN party 🦊 Ünïcödé ", &[]).await.unwrap();
    assert_eq!(made.title, "LAN party 🦊 Ünïcödé");
}

fn reflection_path() -> &'static str {
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
}

#[tokio::test]
async fn metrics_and_reflection_can_move_off_the_public_port() {
    let server = start(Options::new(Database::Sqlite).env("KITSULAN_ADMIN_LISTEN", "127.0.0.1:0")).await;
    let admin: String = server
        .find_log(|event| {
            (event.get("message")?.as_str()?.starts_with("admin listening"))
                .then(|| event.get("addr")?.as_str().map(str::to_owned))
                .flatten()
        })
        .expect("the admin address in the log");
    let admin = format!("http://{admin}");
    // A stranger on the public port gets neither.
    let public = http().get(format!("{}/metrics", server.url())).send().await.unwrap();
    assert_eq!(public.status(), 404);
    assert!(!public.text().await.unwrap().contains("kitsulan_"), "metrics on the public port");
    let status = raw_call(&server.url(), reflection_path(), false, frame(0, b"")).await;
    assert_eq!(status.code(), Code::Unimplemented, "reflection on the public port: {status:?}");
    // The operator gets both on the admin address; health answers on both.
    let metrics = http().get(format!("{admin}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("kitsulan_"));
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_response::MessageResponse};
    let channel = tonic::transport::Channel::from_shared(admin.clone()).unwrap().connect().await.unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = stream.message().await.unwrap().unwrap();
    assert!(matches!(answer.message_response, Some(MessageResponse::ListServicesResponse(_))), "{answer:?}");
    for base in [&server.url(), &admin] {
        assert_eq!(get_status(&format!("{base}/readyz")).await.unwrap(), 200, "{base}");
    }
    // Clients are unaffected.
    signed_up(&server, "alice").await;
}

#[tokio::test]
async fn a_download_url_dies_within_a_minute_of_its_holder_being_removed() {
    let server = start(Options::new(Database::Sqlite)).await;
    let (alice, _) = signed_up(&server, "alice").await;
    let (bob, bob_id) = signed_up(&server, "bob").await;
    let conversation = group(&alice, "Holiday", &[&bob_id]).await;
    let attachment = uploaded(&server, &alice, &conversation, 1000).await;
    // Bob, a member, gets a URL and downloads: what the app does, at once.
    let download = bob.download_url(&attachment).await.unwrap().download.unwrap();
    let url = blob_url(&server.url(), &download);
    assert_eq!(get_status(&url).await.unwrap(), 200);
    assert!(download.expires_at_ms <= now_ms() + 60_000, "the URL lives past a minute: {download:?}");
    // Alice removes him; he keeps the URL he was handed and asks for no new one (he cannot).
    alice.remove_member(&conversation, &bob_id).await.unwrap();
    assert_refused(bob.download_url(&attachment).await, "ATTACHMENT_NOT_FOUND");
    let wait = u64::try_from(download.expires_at_ms - now_ms() + 1000).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_eq!(get_status(&url).await.unwrap(), 403, "the old URL still works");
    // Alice, still a member, gets a fresh one that works.
    let fresh = alice.download_url(&attachment).await.unwrap().download.unwrap();
    assert_eq!(get_status(&blob_url(&server.url(), &fresh)).await.unwrap(), 200);
}

fn send_request(conversation: &str, message_id: &str, byte: u8) -> SendMessageRequest {
    SendMessageRequest {
        conversation_id: conversation.to_owned(),
        message_id: message_id.to_owned(),
        ciphertext: vec![byte; 32],
        session_id: b"session".to_vec(),
        reply_to: String::new(),
        attachment_ids: Vec::new(),
        content: None,
    }
}

#[tokio::test]
async fn a_message_id_does_not_tell_a_stranger_it_exists_elsewhere() {
    let server = start(Options::new(Database::Sqlite)).await;
    let (alice, _) = signed_up(&server, "alice").await;
    let (mallory, _) = signed_up(&server, "mallory").await;
    let private = group(&alice, "Private", &[]).await;
    let id = uuid::Uuid::now_v7().to_string();
    let first = alice.send_message(send_request(&private, &id, 1)).await.unwrap();
    // Mallory, who is not in Alice's conversation, tries the id in her own: she learns nothing,
    // her message is stored like any other.
    let own = group(&mallory, "Mine", &[]).await;
    let hers = mallory.send_message(send_request(&own, &id, 2)).await.unwrap();
    assert_eq!((hers.id.as_str(), hers.conversation_id.as_str(), hers.seq), (id.as_str(), own.as_str(), 1));
    // Alice's message is untouched, her retry is still recognised, and a clash within her own
    // conversation is still refused.
    let history = alice.all_messages(&private, HistoryDirection::Forward, 10).await.unwrap();
    let seen: Vec<(&str, &[u8])> = history.iter().map(|m| (m.id.as_str(), m.ciphertext.as_slice())).collect();
    assert_eq!(seen, [(id.as_str(), &[1u8; 32][..])]);
    assert_eq!(alice.send_message(send_request(&private, &id, 1)).await.unwrap().seq, first.seq);
    assert_refused(alice.send_message(send_request(&private, &id, 3)).await, "MESSAGE_ID_TAKEN");
}
