//! The foundation, tested from outside: the real `kitsulan` binary on SQLite and PostgreSQL,
//! reached over plain HTTP, native gRPC (HTTP/2) and gRPC-Web (HTTP/1.1), as operators and
//! clients reach it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::time::Duration;

use anyhow::Context as _;
use kitsulan_client::{Database, Options, TestServer};
use kitsulan_proto::v1::server_info_service_client::ServerInfoServiceClient;
use kitsulan_proto::v1::{DatabaseBackend, GetServerInfoRequest, GetServerInfoResponse, StorageBackend};
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

async fn server_info(server: &TestServer) -> anyhow::Result<GetServerInfoResponse> {
    let mut client = ServerInfoServiceClient::new(server.channel().await?);
    Ok(client.get_server_info(GetServerInfoRequest {}).await?.into_inner())
}

#[tokio::test]
async fn healthz_readyz_and_metrics_on_sqlite() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let client = http();

    let health = client.get(format!("{}/healthz", server.url())).send().await?;
    assert_eq!(health.status(), 200);

    let ready = client.get(format!("{}/readyz", server.url())).send().await?;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await?;
    assert_eq!(body["database"], "sqlite");

    // The Lite default: a SQLite database in WAL mode inside the data dir.
    assert!(server.data_dir().join("kitsulan.db").is_file());
    assert!(server.data_dir().join("kitsulan.db-wal").exists());

    server_info(&server).await?;
    let metrics = client.get(format!("{}/metrics", server.url())).send().await?.text().await?;
    for expected in [
        r#"kitsulan_http_requests_total{method="GET",route="/healthz",status="200"} 1"#,
        r#"kitsulan_http_requests_total{method="POST",route="/kitsulan.v1.ServerInfoService/GetServerInfo",status="200"} 1"#,
        r#"kitsulan_http_request_duration_seconds_count{method="GET",route="/readyz"} 1"#,
        "kitsulan_build_info{version=",
    ] {
        assert!(metrics.contains(expected), "missing {expected} in:\n{metrics}");
    }
    Ok(())
}

#[tokio::test]
async fn server_info_over_native_grpc_on_both_databases() -> anyhow::Result<()> {
    for (database, want) in
        [(Database::Sqlite, DatabaseBackend::Sqlite), (Database::FreshPostgres, DatabaseBackend::Postgres)]
    {
        let server = TestServer::start(database).await?;
        let info = server_info(&server).await?;
        assert_eq!(info.name, "KitsuLAN");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.database(), want);
        assert_eq!(info.storage(), StorageBackend::Local);
        // Plain HTTP, no local CA: nothing to compare (the party screen shows no "Trust" block).
        assert_eq!(info.local_ca_sha256, "");
        let id = uuid::Uuid::parse_str(&info.instance_id)?;
        assert_eq!(id.get_version_num(), 7);
        // The identity is stable: asking again gives the same answer.
        assert_eq!(server_info(&server).await?.instance_id, info.instance_id);
    }
    Ok(())
}

/// One gRPC-Web request body: a data frame around the encoded message.
fn grpc_web_frame(message: &impl prost::Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// Splits a gRPC-Web response body into its data payloads and its trailer text.
fn grpc_web_frames(mut body: &[u8]) -> anyhow::Result<(Vec<Vec<u8>>, String)> {
    let (mut data, mut trailers) = (Vec::new(), String::new());
    while !body.is_empty() {
        anyhow::ensure!(body.len() >= 5, "truncated frame header");
        let len = u32::from_be_bytes(body[1..5].try_into()?) as usize;
        let payload = body.get(5..5 + len).context("truncated frame")?.to_vec();
        if body[0] & 0x80 != 0 {
            trailers.push_str(&String::from_utf8(payload)?);
        } else {
            data.push(payload);
        }
        body = &body[5 + len..];
    }
    Ok((data, trailers))
}

#[tokio::test]
async fn server_info_over_grpc_web() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let response = http()
        .post(format!("{}/kitsulan.v1.ServerInfoService/GetServerInfo", server.url()))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(grpc_web_frame(&GetServerInfoRequest {}))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert!(
        response.headers()["content-type"].to_str()?.starts_with("application/grpc-web"),
        "{:?}",
        response.headers()
    );
    let (data, trailers) = grpc_web_frames(&response.bytes().await?)?;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let info = GetServerInfoResponse::decode(data.first().context("no data frame")?.as_slice())?;
    assert_eq!(info.name, "KitsuLAN");
    assert_eq!(info.database(), DatabaseBackend::Sqlite);
    Ok(())
}

#[tokio::test]
async fn reflection_lists_the_services() -> anyhow::Result<()> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start(Database::Sqlite).await?;
    let mut client = ServerReflectionClient::new(server.channel().await?);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client.server_reflection_info(tokio_stream_once(request)).await?.into_inner();
    let response = stream.message().await?.context("no reflection response")?;
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        anyhow::bail!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["kitsulan.v1.ServerInfoService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not in {names:?}");
    }

    // v1alpha too: Python's grpcio-reflection and older grpcurl only speak that.
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    let mut alpha = AlphaClient::new(server.channel().await?);
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut stream = alpha.server_reflection_info(tokio_stream_once(request)).await?.into_inner();
    assert!(stream.message().await?.is_some());
    Ok(())
}

/// A request stream of exactly one message.
fn tokio_stream_once<T: Send + 'static>(item: T) -> impl tonic::IntoStreamingRequest<Message = T> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let _ = tx.try_send(item);
    ReceiverStream(rx)
}

struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> tonic::codegen::tokio_stream::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

#[tokio::test]
async fn health_reports_serving() -> anyhow::Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let server = TestServer::start(Database::Sqlite).await?;
    let mut client = HealthClient::new(server.channel().await?);
    for service in ["", "kitsulan.v1.ServerInfoService"] {
        let status =
            client.check(HealthCheckRequest { service: service.to_owned() }).await?.into_inner().status();
        assert_eq!(status, ServingStatus::Serving, "service {service:?}");
    }
    let unknown = client.check(HealthCheckRequest { service: "no.such.Service".into() }).await;
    assert_eq!(unknown.map_err(|s| s.code()).err(), Some(tonic::Code::NotFound));
    Ok(())
}

/// A TCP forwarder to PostgreSQL that the test can cut and restore, to make the database
/// unreachable for one server without touching the shared PostgreSQL.
struct CuttableProxy {
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl CuttableProxy {
    async fn start(port: u16) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self { port, task: Some(task) })
    }

    /// Closes the listener and every forwarded connection (the JoinSet aborts them on drop).
    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

#[tokio::test]
async fn readyz_is_503_while_postgres_is_unreachable() -> anyhow::Result<()> {
    let db = kitsulan_client::postgres::TestDatabase::create().await?;
    let mut proxy = CuttableProxy::start(0).await?;
    let via_proxy = db.url().replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port), 1);
    anyhow::ensure!(
        via_proxy != db.url(),
        "KITSULAN_TEST_POSTGRES_URL must point at 127.0.0.1:5432 for this test"
    );
    let server = TestServer::start(Database::Url(via_proxy)).await?;
    let client = http();
    let readyz = format!("{}/readyz", server.url());
    assert_eq!(client.get(&readyz).send().await?.status(), 200);

    proxy.cut().await;
    let response = client.get(&readyz).send().await?;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["status"], "unavailable");
    assert!(body["reason"].as_str().unwrap_or_default().starts_with("database"), "{body}");
    // The process itself is still alive.
    assert_eq!(client.get(format!("{}/healthz", server.url())).send().await?.status(), 200);

    // When the database comes back, so does readiness.
    let _proxy = CuttableProxy::start(proxy.port).await?;
    let mut status = 0;
    for _ in 0..50 {
        status = client.get(&readyz).send().await?.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn the_app_is_served_with_a_fallback_and_unknown_rpcs_are_unimplemented() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let client = http();
    let index = client.get(server.url()).send().await?;
    assert_eq!(index.status(), 200);
    assert!(index.headers()["content-type"].to_str()?.starts_with("text/html"));
    let index = index.text().await?;
    assert!(index.contains("KitsuLAN"));

    // A client-side route gets the app; a missing file does not.
    let deep = client.get(format!("{}/conversations/some-id", server.url())).send().await?;
    assert_eq!(deep.status(), 200);
    assert_eq!(deep.text().await?, index);
    let missing = client.get(format!("{}/missing-file.js", server.url())).send().await?;
    assert_eq!(missing.status(), 404);

    let unknown = http()
        .post(format!("{}/no.such.Service/Method", server.url()))
        .header("content-type", "application/grpc-web+proto")
        .body(grpc_web_frame(&GetServerInfoRequest {}))
        .send()
        .await?;
    assert_eq!(unknown.headers().get("grpc-status").map(|v| v.as_bytes()), Some(&b"12"[..]));
    Ok(())
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_exits_cleanly() -> anyhow::Result<()> {
    let mut server = TestServer::start(Database::Sqlite).await?;
    let body = grpc_web_frame(&GetServerInfoRequest {});
    let mut socket = TcpStream::connect(server.addr()).await?;
    let head = format!(
        "POST /kitsulan.v1.ServerInfoService/GetServerInfo HTTP/1.1\r\nhost: {}\r\n\
         content-type: application/grpc-web+proto\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        server.addr(),
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(&body[..2]).await?;
    socket.flush().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // SIGTERM while the request is half sent: the server must wait for it.
    server.terminate()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.is_running(), "the server quit with a request in flight");
    socket.write_all(&body[2..]).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut response)).await??;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("grpc-status:0"), "{response}");

    let status = server.wait_exit(Duration::from_secs(15)).await?;
    assert!(status.success(), "exit status {status}");
    assert!(server.log_text().contains("shutdown complete"), "{}", server.log_text());
    // New connections are refused once it is gone.
    assert!(TcpStream::connect(server.addr()).await.is_err());
    Ok(())
}

#[tokio::test]
async fn settings_come_from_flags_then_environment_then_dotenv() -> anyhow::Result<()> {
    let dotenv = "# written by the test\nKITSULAN_SERVER_NAME=\"From dotenv\"\n";
    let cases = [
        (Options::new(Database::Sqlite).dotenv(dotenv), "From dotenv"),
        (Options::new(Database::Sqlite).dotenv(dotenv).env("KITSULAN_SERVER_NAME", "From env"), "From env"),
        (
            Options::new(Database::Sqlite)
                .dotenv(dotenv)
                .env("KITSULAN_SERVER_NAME", "From env")
                .arg("--server-name=From flag"),
            "From flag",
        ),
    ];
    for (options, want) in cases {
        let server = TestServer::start_with(options).await?;
        assert_eq!(server_info(&server).await?.name, want);
    }
    Ok(())
}

/// Runs the binary to completion with the given environment, in an empty directory.
async fn run_kitsulan(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<std::process::Output> {
    let dir = tempfile::tempdir()?;
    let mut cmd = tokio::process::Command::new(kitsulan_client::server::binary()?);
    for (key, _) in std::env::vars() {
        if key.starts_with("KITSULAN_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).current_dir(dir.path()).env("KITSULAN_DATA_DIR", dir.path().join("data"));
    for (key, value) in env {
        cmd.env(key, value);
    }
    Ok(cmd.output().await?)
}

#[tokio::test]
async fn an_invalid_setting_stops_start_up_with_one_line_naming_it() -> anyhow::Result<()> {
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("KITSULAN_LISTEN", "not-an-address")], "invalid setting KITSULAN_LISTEN (--listen)"),
        (&[("KITSULAN_LOG_FORMAT", "xml")], "invalid setting KITSULAN_LOG_FORMAT (--log-format)"),
        (&[("KITSULAN_DB_MAX_CONNECTIONS", "0")], "invalid setting KITSULAN_DB_MAX_CONNECTIONS"),
        (&[("DATABASE_URL", "mysql://root:hunter2@db/kitsulan")], "invalid setting DATABASE_URL"),
    ];
    for (env, want) in cases {
        let output = run_kitsulan(&["serve"], env).await?;
        let stderr = String::from_utf8(output.stderr)?;
        assert_eq!(output.status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{env:?}: {stderr}");
        assert!(stderr.contains(want), "{env:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    }
    Ok(())
}

#[tokio::test]
async fn migrate_applies_once_and_reports_on_both_databases() -> anyhow::Result<()> {
    let db = kitsulan_client::postgres::TestDatabase::create().await?;
    for env in [vec![], vec![("DATABASE_URL", db.url())]] {
        let dir = tempfile::tempdir()?;
        let data = dir.path().to_str().context("temp path")?.to_owned();
        let mut env = env.clone();
        env.push(("KITSULAN_DATA_DIR", &data));
        let first = run_kitsulan(&["migrate"], &env).await?;
        assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
        let stdout = String::from_utf8(first.stdout)?;
        assert!(stdout.contains("Applied") && stdout.contains("0001 instance"), "{stdout}");
        let second = run_kitsulan(&["migrate"], &env).await?;
        assert!(String::from_utf8(second.stdout)?.contains("up to date"));
    }
    Ok(())
}

#[tokio::test]
async fn admin_help_lists_user_and_device_commands() -> anyhow::Result<()> {
    let output = run_kitsulan(&["admin", "--help"], &[]).await?;
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout)?;
    assert!(help.contains("Usage: kitsulan admin"), "{help}");
    assert!(help.contains("user") && help.contains("device"), "{help}");
    Ok(())
}
