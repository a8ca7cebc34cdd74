//! Lite blob storage: files under `<data dir>/blobs/<kind>/<uuid>`, moved through URLs this
//! binary serves (`PUT`/`GET /v1/blobs/<kind>/<uuid>?…&expires=…&sig=…`).
//!
//! A URL carries an HMAC-SHA256 over the method, the key, the exact size (uploads) and the
//! expiry, with a key made on first start and kept in the data dir (`blob-key`, readable by this
//! user only), so nobody can forge, widen or extend one.
//!
//! An upload streams the request body to a temporary file under `blobs/.tmp/`, refusing the
//! first byte past the signed size, then fsyncs it and links it into place only if no blob is
//! there yet: a blob, once acknowledged, is never overwritten or half-written, and no upload is
//! ever held in memory. Temporary files left by a crash are removed on the next start.
//!
//! # Security
//! Signatures are compared in constant time (`hmac`'s `verify_slice`). Keys come from typed ids
//! ([`BlobKey`]), so a request can never name a path outside `blobs/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use async_trait::async_trait;
use base64::Engine as _;
use futures_util::{Stream, StreamExt as _};
use hmac::{KeyInit as _, Mac as _};
use tokio::io::AsyncWriteExt as _;
use zeroize::Zeroizing;

use super::{BlobError, BlobKey, BlobKind, BlobStore, SignedRequest, expiry_ms};
use crate::data_dir::private_dir;
use crate::ids::fill_random;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Blobs in the data dir.
pub struct DiskBlobs {
    root: PathBuf,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for DiskBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskBlobs").field("root", &self.root).field("key", &"***").finish()
    }
}

/// Why a signed URL is refused (HTTP 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Past its expiry.
    #[error("the URL has expired")]
    Expired,
    /// The signature does not match the method, key, size and expiry.
    #[error("the URL's signature is not valid")]
    Invalid,
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// More bytes than the signed size (HTTP 413).
    #[error("more than the {0} bytes this URL allows")]
    TooLarge(u64),
    /// The body ended before the signed size (HTTP 400).
    #[error("the body ended after {got} of {want} bytes")]
    Short {
        /// Received.
        got: u64,
        /// Signed.
        want: u64,
    },
    /// A blob is stored under this key already (HTTP 409).
    #[error("this blob was uploaded already")]
    Exists,
    /// Reading the body failed (the client went away).
    #[error("reading the upload failed: {0}")]
    Body(String),
    /// Writing the file failed (HTTP 500; logged).
    #[error("writing the blob failed: {0}")]
    Io(#[from] std::io::Error),
}

impl DiskBlobs {
    /// Opens (making it if needed) `<data_dir>/blobs/` and the URL key `<data_dir>/blob-key`,
    /// and removes temporary files a crash left behind.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let root = data_dir.join("blobs");
        for kind in [BlobKind::Attachment, BlobKind::Avatar] {
            let dir = root.join(kind.as_str());
            private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        private_dir(&root).with_context(|| format!("cannot create {}", root.display()))?;
        let tmp = root.join(".tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("cannot clear {}", tmp.display()))?;
        }
        private_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let key = stored_key(&data_dir.join("blob-key"))?;
        Ok(Self { root, key })
    }

    /// The directory blobs are kept in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        self.root.join(key.kind().as_str()).join(key.id.hyphenated().to_string())
    }

    fn mac(&self, method: &str, key: &BlobKey, size: Option<u64>, expires: i64) -> HmacSha256 {
        // An HMAC takes keys of any length; ours is 32 bytes.
        #[allow(clippy::expect_used)]
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        let size = size.map(|s| s.to_string()).unwrap_or_default();
        mac.update(format!("kitsulan-blob-v1\n{method}\n{key}\n{size}\n{expires}").as_bytes());
        mac
    }

    fn signed(&self, method: &'static str, key: &BlobKey, size: Option<u64>, ttl: Duration) -> SignedRequest {
        let expires_at_ms = expiry_ms(ttl);
        let expires = expires_at_ms.div_euclid(1000);
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.mac(method, key, size, expires).finalize().into_bytes());
        let (query, headers) = match size {
            Some(size) => (format!("size={size}&"), vec![("content-length".to_owned(), size.to_string())]),
            None => (String::new(), Vec::new()),
        };
        SignedRequest {
            url: format!("/v1/blobs/{key}?{query}expires={expires}&sig={sig}"),
            method,
            headers,
            expires_at_ms: expires * 1000,
        }
    }

    /// Checks a URL's signature and expiry (`size` for uploads, `None` for downloads).
    pub fn verify(
        &self,
        method: &str,
        key: &BlobKey,
        size: Option<u64>,
        expires: i64,
        sig: &str,
        now_ms: i64,
    ) -> Result<(), SignatureError> {
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig.trim())
            .map_err(|_| SignatureError::Invalid)?;
        self.mac(method, key, size, expires).verify_slice(&sig).map_err(|_| SignatureError::Invalid)?;
        if expires.saturating_mul(1000) <= now_ms {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }

    /// Stores exactly `size` bytes from `body` under `key`, streaming; see the module docs.
    pub async fn put<S, E>(&self, key: &BlobKey, size: u64, mut body: S) -> Result<(), PutError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self.path(key);
        if tokio::fs::try_exists(&path).await? {
            return Err(PutError::Exists);
        }
        let mut nonce = [0u8; 8];
        fill_random(&mut nonce);
        let tmp = self.root.join(".tmp").join(format!("{}-{}", key.id.simple(), u64::from_le_bytes(nonce)));
        let result = async {
            let mut options = tokio::fs::OpenOptions::new();
            options.write(true).create_new(true);
            // Readable by this user only; the blob is this very file, linked into place.
            #[cfg(unix)]
            options.mode(0o600);
            let mut file = options.open(&tmp).await?;
            let mut written: u64 = 0;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| PutError::Body(e.to_string()))?;
                written = written.saturating_add(chunk.len() as u64);
                if written > size {
                    return Err(PutError::TooLarge(size));
                }
                file.write_all(&chunk).await?;
            }
            if written != size {
                return Err(PutError::Short { got: written, want: size });
            }
            file.sync_all().await?;
            drop(file);
            // Link, not rename: it fails if the blob appeared meanwhile, so a stored blob is
            // never replaced.
            match tokio::fs::hard_link(&tmp, &path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(PutError::Exists),
                Err(e) => return Err(e.into()),
            }
            sync_dir(path.parent().unwrap_or(&self.root)).await?;
            Ok(())
        }
        .await;
        if let Err(e) = tokio::fs::remove_file(&tmp).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, path = %tmp.display(), "cannot remove a temporary upload");
        }
        result
    }

    /// Opens a blob for streaming, with its size; `None` if there is none.
    pub async fn open_blob(&self, key: &BlobKey) -> std::io::Result<Option<(tokio::fs::File, u64)>> {
        match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => {
                let size = file.metadata().await?.len();
                Ok(Some((file, size)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

fn unavailable(e: std::io::Error) -> BlobError {
    BlobError::Unavailable(e.to_string())
}

#[async_trait]
impl BlobStore for DiskBlobs {
    fn name(&self) -> &'static str {
        "disk"
    }

    async fn upload_request(
        &self,
        key: &BlobKey,
        size: u64,
        ttl: Duration,
    ) -> Result<SignedRequest, BlobError> {
        Ok(self.signed("PUT", key, Some(size), ttl))
    }

    async fn download_request(&self, key: &BlobKey, ttl: Duration) -> Result<SignedRequest, BlobError> {
        Ok(self.signed("GET", key, None, ttl))
    }

    async fn put_bytes(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        _content_type: &'static str,
    ) -> Result<(), BlobError> {
        let size = bytes.len() as u64;
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(bytes))]);
        self.put(key, size, body).await.map_err(|e| BlobError::Unavailable(e.to_string()))
    }

    async fn size(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn list_older(
        &self,
        kind: BlobKind,
        modified_before: SystemTime,
    ) -> Result<Vec<BlobKey>, BlobError> {
        let mut entries = tokio::fs::read_dir(self.root.join(kind.as_str())).await.map_err(unavailable)?;
        let mut older = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(unavailable)? {
            let Some(key) = entry.file_name().to_str().and_then(|name| BlobKey::parse(kind.as_str(), name))
            else {
                continue;
            };
            // A file deleted meanwhile is simply not listed.
            let Ok(meta) = entry.metadata().await else { continue };
            if meta.is_file() && meta.modified().map_err(unavailable)? < modified_before {
                older.push(key);
            }
        }
        Ok(older)
    }
}

/// The URL key kept in the data dir, made on first start.
fn stored_key(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    match crate::data_dir::read_private_file(path) {
        Ok(text) => {
            let key = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
                .filter(|k| k.len() == 32)
                .with_context(|| {
                    format!("{}: not a blob key; delete it to make a new one", path.display())
                })?;
            Ok(Zeroizing::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = Zeroizing::new(vec![0u8; 32]);
            fill_random(&mut key);
            let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*key));
            crate::data_dir::write_private_file(path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "made the key that signs blob URLs");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AttachmentId;

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin {
        futures_util::stream::iter(
            parts.iter().map(|p| Ok(bytes::Bytes::copy_from_slice(p))).collect::<Vec<_>>(),
        )
    }

    fn query(url: &str, name: &str) -> String {
        url.split(['?', '&']).find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap().to_owned()
    }

    #[tokio::test]
    async fn signatures_bind_method_key_size_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DiskBlobs::open(dir.path()).unwrap();
        let key = BlobKey::attachment(AttachmentId::generate());
        let put = blobs.upload_request(&key, 10, Duration::from_secs(60)).await.unwrap();
        let (expires, sig) = (query(&put.url, "expires").parse::<i64>().unwrap(), query(&put.url, "sig"));
        let now = crate::store::now_ms();
        assert_eq!(blobs.verify("PUT", &key, Some(10), expires, &sig, now), Ok(()));
        let other = BlobKey::attachment(AttachmentId::generate());
        let refused = [
            ("GET", &key, Some(10), expires),
            ("PUT", &other, Some(10), expires),
            ("PUT", &key, Some(11), expires),
            ("PUT", &key, None, expires),
            ("PUT", &key, Some(10), expires + 1),
        ];
        for (method, key, size, expires) in refused {
            assert_eq!(blobs.verify(method, key, size, expires, &sig, now), Err(SignatureError::Invalid));
        }
        assert_eq!(
            blobs.verify("PUT", &key, Some(10), expires, &sig, expires * 1000),
            Err(SignatureError::Expired)
        );
        // Another data dir has another key.
        let other_dir = tempfile::tempdir().unwrap();
        let other_blobs = DiskBlobs::open(other_dir.path()).unwrap();
        assert_eq!(
            other_blobs.verify("PUT", &key, Some(10), expires, &sig, now),
            Err(SignatureError::Invalid)
        );
        // The key survives a restart.
        let reopened = DiskBlobs::open(dir.path()).unwrap();
        assert_eq!(reopened.verify("PUT", &key, Some(10), expires, &sig, now), Ok(()));
    }

    #[tokio::test]
    async fn lists_blobs_written_before_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DiskBlobs::open(dir.path()).unwrap();
        let key = BlobKey::attachment(AttachmentId::generate());
        blobs.put(&key, 3, chunks(&[b"abc"])).await.unwrap();
        // Not ours: left out.
        std::fs::write(blobs.root().join("attachments").join("notes.txt"), b"x").unwrap();
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(blobs.list_older(BlobKind::Attachment, later).await.unwrap(), vec![key.clone()]);
        let earlier = SystemTime::now() - Duration::from_secs(60);
        assert!(blobs.list_older(BlobKind::Attachment, earlier).await.unwrap().is_empty());
        assert!(blobs.list_older(BlobKind::Avatar, later).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn uploads_store_exactly_the_signed_size_once() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DiskBlobs::open(dir.path()).unwrap();
        let key = BlobKey::attachment(AttachmentId::generate());
        assert!(matches!(blobs.put(&key, 5, chunks(&[b"abc", b"def"])).await, Err(PutError::TooLarge(5))));
        assert!(matches!(
            blobs.put(&key, 5, chunks(&[b"ab"])).await,
            Err(PutError::Short { got: 2, want: 5 })
        ));
        assert_eq!(blobs.size(&key).await.unwrap(), None, "refused uploads leave nothing");
        blobs.put(&key, 5, chunks(&[b"ab", b"cde"])).await.unwrap();
        assert_eq!(blobs.size(&key).await.unwrap(), Some(5));
        assert!(matches!(blobs.put(&key, 5, chunks(&[b"vwxyz"])).await, Err(PutError::Exists)));
        assert_eq!(std::fs::read(blobs.path(&key)).unwrap(), b"abcde", "never overwritten");
        assert_eq!(
            std::fs::read_dir(blobs.root().join(".tmp")).unwrap().count(),
            0,
            "no temporary files left"
        );
        blobs.delete(&key).await.unwrap();
        blobs.delete(&key).await.unwrap();
        assert_eq!(blobs.size(&key).await.unwrap(), None);
    }
}
