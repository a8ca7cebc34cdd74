//! Attachments as a device uses them (docs/attachments.md): `AttachmentService` calls on
//! [`Client`], files encrypted with kitsulan-crypto's [`AttachmentEncryptor`] and streamed to
//! the upload URL, downloaded streaming and decrypted with the hash check, and [`S3sFs`], a real
//! S3 server (s3s-fs) for the Pro setup.
//!
//! Files are made by [`FileSource`]: a deterministic pseudo-random stream of any length, so a
//! 200 MB file is never held in memory by the test either, and its SHA-256 is known without
//! keeping it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use futures_util::StreamExt as _;
use kitsulan_crypto::OsRng;
use kitsulan_crypto::attachment::{AttachmentDecryptor, AttachmentEncryptor, AttachmentSecrets};
use kitsulan_proto::v1::attachment_service_client::AttachmentServiceClient;
use kitsulan_proto::v1::{
    Attachment, BlobRequest, CompleteUploadRequest, CreateUploadRequest, CreateUploadResponse,
    DeleteAttachmentRequest, Download, GetDownloadUrlRequest, GetDownloadUrlResponse, ListDownloadsRequest,
    ReportDownloadedRequest,
};
use sha2::{Digest as _, Sha256};
use tokio::process::{Child, Command};
use tonic::Status;

use crate::client::{Authed, Client};
use crate::people::start_with;
use crate::{Database, Options, TestServer};

/// Bytes per chunk the test streams.
pub const CHUNK: usize = 64 * 1024;

impl Client {
    /// `AttachmentService`, as this device.
    pub fn attachments(&self) -> AttachmentServiceClient<Authed> {
        AttachmentServiceClient::with_interceptor(self.channel(), self.headers())
    }

    /// `CreateUpload`.
    pub async fn create_upload(
        &self,
        conversation_id: &str,
        size: u64,
        ttl_seconds: u32,
    ) -> Result<CreateUploadResponse, Status> {
        let request = CreateUploadRequest { conversation_id: conversation_id.to_owned(), size, ttl_seconds };
        Ok(self.attachments().create_upload(request).await?.into_inner())
    }

    /// `CompleteUpload`.
    pub async fn complete_upload(&self, attachment_id: &str) -> Result<Attachment, Status> {
        let request = CompleteUploadRequest { attachment_id: attachment_id.to_owned() };
        let response = self.attachments().complete_upload(request).await?.into_inner();
        response.attachment.ok_or_else(|| Status::internal("no attachment in the answer"))
    }

    /// `GetDownloadUrl`.
    pub async fn download_url(&self, attachment_id: &str) -> Result<GetDownloadUrlResponse, Status> {
        let request = GetDownloadUrlRequest { attachment_id: attachment_id.to_owned() };
        Ok(self.attachments().get_download_url(request).await?.into_inner())
    }

    /// `ReportDownloaded`.
    pub async fn report_downloaded(&self, attachment_id: &str) -> Result<(), Status> {
        let request = ReportDownloadedRequest { attachment_id: attachment_id.to_owned() };
        self.attachments().report_downloaded(request).await?;
        Ok(())
    }

    /// `ListDownloads`.
    pub async fn list_downloads(&self, attachment_id: &str) -> Result<Vec<Download>, Status> {
        let request = ListDownloadsRequest { attachment_id: attachment_id.to_owned() };
        Ok(self.attachments().list_downloads(request).await?.into_inner().downloads)
    }

    /// `DeleteAttachment`.
    pub async fn delete_attachment(&self, attachment_id: &str) -> Result<(), Status> {
        let request = DeleteAttachmentRequest { attachment_id: attachment_id.to_owned() };
        self.attachments().delete_attachment(request).await?;
        Ok(())
    }
}

/// A deterministic pseudo-random file of `len` bytes (xorshift from `seed`), made chunk by
/// chunk.
#[derive(Debug, Clone)]
pub struct FileSource {
    state: u64,
    left: u64,
}

impl FileSource {
    /// A file of `len` bytes.
    pub fn new(seed: u64, len: u64) -> Self {
        Self { state: seed | 1, left: len }
    }

    /// The next chunk (at most [`CHUNK`] bytes), or `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if self.left == 0 {
            return None;
        }
        let n = usize::try_from(self.left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let mut chunk = Vec::with_capacity(n);
        while chunk.len() < n {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.extend_from_slice(&self.state.to_le_bytes());
        }
        chunk.truncate(n);
        self.left -= n as u64;
        Some(chunk)
    }

    /// The whole file (small files only).
    pub fn collect(mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next_chunk() {
            all.extend_from_slice(&chunk);
        }
        all
    }

    /// The SHA-256 of the whole file, streamed.
    pub fn sha256(mut self) -> [u8; 32] {
        let mut hash = Sha256::new();
        while let Some(chunk) = self.next_chunk() {
            hash.update(&chunk);
        }
        hash.finalize().into()
    }
}

/// The URL of a blob request: absolute (S3) or relative to the server (Lite).
pub fn blob_url(server_url: &str, request: &BlobRequest) -> String {
    if request.url.starts_with('/') { format!("{server_url}{}", request.url) } else { request.url.clone() }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// A file encrypted on the fly and streamed to an upload URL.
pub struct Uploaded {
    /// HTTP status of the PUT.
    pub status: u16,
    /// Key, IV and ciphertext hash (when the whole file was sent).
    pub secrets: Option<AttachmentSecrets>,
}

/// Encrypts `file` chunk by chunk and streams the ciphertext to `request` (with its headers),
/// never holding the file.
pub async fn upload_encrypted(
    server_url: &str,
    request: &BlobRequest,
    file: FileSource,
) -> anyhow::Result<Uploaded> {
    let encryptor = Arc::new(Mutex::new(Some(AttachmentEncryptor::new(&mut OsRng::new()))));
    let source = Arc::new(Mutex::new(file));
    let (enc, src) = (encryptor.clone(), source.clone());
    let stream = futures_util::stream::iter(std::iter::from_fn(move || {
        let mut chunk = src.lock().ok()?.next_chunk()?;
        if let Ok(mut guard) = enc.lock()
            && let Some(encryptor) = guard.as_mut()
        {
            encryptor.update_in_place(&mut chunk);
        }
        Some(Ok::<_, std::io::Error>(chunk))
    }));
    let status = put(server_url, request, reqwest::Body::wrap_stream(stream)).await?;
    let secrets = encryptor.lock().ok().and_then(|mut guard| guard.take()).map(AttachmentEncryptor::finish);
    Ok(Uploaded { status, secrets })
}

/// PUTs `body` to a blob request with its signed headers; returns the HTTP status.
pub async fn put(server_url: &str, request: &BlobRequest, body: reqwest::Body) -> anyhow::Result<u16> {
    let mut put = http().put(blob_url(server_url, request)).body(body);
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("host") {
            put = put.header(name, value);
        }
    }
    Ok(put.send().await.context("PUT to the upload URL")?.status().as_u16())
}

/// PUTs raw bytes (with `content-length` as given, which may differ from the signed one).
pub async fn put_bytes(server_url: &str, request: &BlobRequest, bytes: Vec<u8>) -> anyhow::Result<u16> {
    let mut put = http().put(blob_url(server_url, request));
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
            put = put.header(name, value);
        }
    }
    Ok(put.body(bytes).send().await.context("PUT to the upload URL")?.status().as_u16())
}

/// The HTTP status of a GET (the body is read and dropped).
pub async fn get_status(url: &str) -> anyhow::Result<u16> {
    let response = http().get(url).send().await.context("GET")?;
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    Ok(status)
}

/// What downloading and decrypting a file gave.
#[derive(Debug)]
pub struct Downloaded {
    /// Bytes received.
    pub len: u64,
    /// SHA-256 of the decrypted plaintext.
    pub plaintext_sha256: [u8; 32],
}

/// Downloads `url` streaming, decrypts with `secrets` and checks the ciphertext hash (as a
/// receiving app does before it shows anything). Fails on a non-200 answer or a hash mismatch.
pub async fn download_decrypt(url: &str, secrets: &AttachmentSecrets) -> anyhow::Result<Downloaded> {
    let response = http().get(url).send().await.context("GET the download URL")?;
    ensure!(response.status().as_u16() == 200, "GET {url}: HTTP {}", response.status());
    let mut decryptor = AttachmentDecryptor::new(secrets);
    let mut hash = Sha256::new();
    let mut len = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.context("reading the download")?.to_vec();
        len += chunk.len() as u64;
        decryptor.update_in_place(&mut chunk);
        hash.update(&chunk);
    }
    decryptor.finish().map_err(|e| anyhow::anyhow!("the ciphertext hash does not match: {e:?}"))?;
    Ok(Downloaded { len, plaintext_sha256: hash.finalize().into() })
}

/// Where the s3s-fs binary is: `KITSULAN_S3S_FS`, else `~/.cache/kitsulan/tools/bin/s3s-fs`
/// (where `.ci/run` installs it).
pub fn s3s_fs_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("KITSULAN_S3S_FS") {
        return Ok(PathBuf::from(path));
    }
    let home = std::env::var("HOME").context("HOME is not set")?;
    let path = Path::new(&home).join(".cache/kitsulan/tools/bin/s3s-fs");
    ensure!(
        path.is_file(),
        "{} is missing: run .ci/run, or `cargo install s3s-fs --version 0.14.1 --features binary --root ~/.cache/kitsulan/tools`, or set KITSULAN_S3S_FS",
        path.display()
    );
    Ok(path)
}

/// A real S3 server (s3s-fs, objects as files under a temporary directory) on a free loopback
/// port, killed when dropped.
pub struct S3sFs {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl S3sFs {
    /// Starts it and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("kitsulan-s3-").tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let (access_key, secret_key) =
            ("kitsulan-test-key".to_owned(), "kitsulan-test-secret-0123456789".to_owned());
        let child = Command::new(s3s_fs_binary()?)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting s3s-fs")?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                bail!("s3s-fs did not listen on {addr} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, addr, dir, access_key, secret_key })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The directory holding its buckets (one subdirectory each, objects as files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server settings that point KitsuLAN at `bucket` here.
    pub fn server_env(&self, bucket: &str) -> Vec<(String, String)> {
        [
            ("KITSULAN_BLOBS", "s3"),
            ("KITSULAN_S3_ENDPOINT", &self.endpoint()),
            ("KITSULAN_S3_REGION", "us-east-1"),
            ("KITSULAN_S3_BUCKET", bucket),
            ("KITSULAN_S3_ACCESS_KEY_ID", &self.access_key),
            ("KITSULAN_S3_SECRET_ACCESS_KEY", &self.secret_key),
            ("KITSULAN_S3_PATH_STYLE", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Which blob store a test server keeps attachments and avatars in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// The data dir, on SQLite (Lite).
    Disk,
    /// A real S3 server (s3s-fs), on a fresh PostgreSQL database (Pro).
    S3,
}

/// A server on one blob store, with its S3 server when there is one. Dropping it stops both.
pub struct BlobServer {
    /// The KitsuLAN server.
    pub server: TestServer,
    /// The S3 server ([`Store::S3`]).
    pub s3: Option<S3sFs>,
}

impl BlobServer {
    /// Starts the server on `store` (S3: in `bucket`) with `env` on top of the test settings.
    /// Panics if something does not start.
    pub async fn start(store: Store, bucket: &str, env: &[(&str, &str)]) -> Self {
        let (mut options, s3) = match store {
            Store::Disk => (Options::new(Database::Sqlite), None),
            Store::S3 => {
                let s3 = S3sFs::start().await.unwrap_or_else(|e| panic!("starting s3s-fs: {e:#}"));
                let mut options = Options::new(Database::FreshPostgres);
                for (k, v) in s3.server_env(bucket) {
                    options = options.env(&k, &v);
                }
                (options, Some(s3))
            }
        };
        for (k, v) in env {
            options = options.env(k, v);
        }
        Self { server: start_with(options).await, s3 }
    }

    /// The server's base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Where blobs are kept: the data dir's `blobs/`, or the S3 server's directory.
    pub fn blob_dir(&self) -> PathBuf {
        match &self.s3 {
            Some(s3) => s3.dir().to_owned(),
            None => self.server.data_dir().join("blobs"),
        }
    }
}

/// Every regular file under `dir` whose name contains `name` (e.g. an attachment id).
pub fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n.to_string_lossy().contains(name)) {
                found.push(path);
            }
        }
    }
    found
}

/// The peak resident set (`VmHWM`) and current one (`VmRSS`) of a process, in KiB.
pub fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .with_context(|| format!("{name} in /proc/{pid}/status"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}
