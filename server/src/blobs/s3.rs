//! Pro blob storage: one bucket of any S3 API. Clients upload and download with presigned URLs
//! (SigV4, `content-length` signed into uploads), so blob bytes never pass through this server;
//! the server only presigns, checks sizes (HEAD), and deletes.
//!
//! Settings are for third-party stores as much as AWS: a configurable endpoint and region,
//! path-style addressing (`https://host/bucket/key`, what Garage, MinIO and s3s expect), and
//! checksums only when an operation requires them (newer SDK defaults add CRC headers that
//! other stores refuse). The bucket is made on start-up when it does not exist.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::presigning::PresigningConfig;

use super::{BlobError, BlobKey, BlobKind, BlobStore, SignedRequest};
use crate::config::Secret;

/// Where the bucket is and how to reach it.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `https://s3.example.org` (or `http://127.0.0.1:3900` for a local store).
    pub endpoint: String,
    /// The region the store expects (`us-east-1`, `garage`, …).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (never logged).
    pub secret_access_key: Secret,
    /// `https://host/bucket/key` rather than `https://bucket.host/key`.
    pub path_style: bool,
}

impl S3Settings {
    /// The origin browsers fetch presigned URLs from (`scheme://host[:port]`, with the bucket in
    /// the host for virtual-hosted style), for the web app's Content-Security-Policy.
    pub fn browser_origin(&self) -> Option<String> {
        let (scheme, rest) = self.endpoint.trim().split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next().filter(|a| !a.is_empty())?;
        let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        Some(if self.path_style {
            format!("{scheme}://{authority}")
        } else {
            format!("{scheme}://{}.{authority}", self.bucket)
        })
    }
}

/// Blobs in an S3 bucket.
pub struct S3Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl std::fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Blobs").field("bucket", &self.bucket).finish_non_exhaustive()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Debug) -> BlobError {
    // The SDK's Display says only "service error"; Debug carries the code and the status.
    BlobError::Unavailable(format!("S3 {what}: {e:?}"))
}

impl S3Blobs {
    /// A client for the bucket; makes the bucket when it does not exist (which also checks the
    /// endpoint and the keys at start-up).
    pub async fn connect(settings: &S3Settings) -> Result<Self, BlobError> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let credentials = Credentials::new(
            settings.access_key_id.clone(),
            settings.secret_access_key.expose().to_owned(),
            None,
            None,
            "kitsulan-settings",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .endpoint_url(settings.endpoint.clone())
            .force_path_style(settings.path_style)
            .credentials_provider(credentials)
            .http_client(http)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        let blobs = Self { client: aws_sdk_s3::Client::from_conf(config), bucket: settings.bucket.clone() };
        blobs.ensure_bucket().await?;
        Ok(blobs)
    }

    async fn ensure_bucket(&self) -> Result<(), BlobError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) || status(&e) == Some(404) => {
                self.client
                    .create_bucket()
                    .bucket(&self.bucket)
                    .send()
                    .await
                    .map_err(|e| unavailable("CreateBucket", e))?;
                tracing::info!(bucket = %self.bucket, "made the S3 bucket");
                Ok(())
            }
            Err(e) => Err(unavailable("HeadBucket", e)),
        }
    }

    fn presigning(ttl: Duration) -> Result<PresigningConfig, BlobError> {
        PresigningConfig::expires_in(ttl).map_err(|e| unavailable("presigning", e))
    }
}

fn status<E>(e: &aws_sdk_s3::error::SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn request(
    presigned: &aws_sdk_s3::presigning::PresignedRequest,
    method: &'static str,
    ttl: Duration,
) -> SignedRequest {
    SignedRequest {
        url: presigned.uri().to_owned(),
        method,
        headers: presigned.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
        expires_at_ms: super::expiry_ms(ttl),
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    fn name(&self) -> &'static str {
        "s3"
    }

    async fn upload_request(
        &self,
        key: &BlobKey,
        size: u64,
        ttl: Duration,
    ) -> Result<SignedRequest, BlobError> {
        let length = i64::try_from(size).map_err(|_| unavailable("PutObject", "size out of range"))?;
        let presigned = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.to_string())
            .content_length(length)
            .presigned(Self::presigning(ttl)?)
            .await
            .map_err(|e| unavailable("presigning PutObject", e))?;
        let mut signed = request(&presigned, "PUT", ttl);
        if !signed.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-length")) {
            signed.headers.push(("content-length".to_owned(), size.to_string()));
        }
        Ok(signed)
    }

    async fn download_request(&self, key: &BlobKey, ttl: Duration) -> Result<SignedRequest, BlobError> {
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.to_string())
            .presigned(Self::presigning(ttl)?)
            .await
            .map_err(|e| unavailable("presigning GetObject", e))?;
        Ok(request(&presigned, "GET", ttl))
    }

    async fn put_bytes(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        content_type: &'static str,
    ) -> Result<(), BlobError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.to_string())
            .content_type(content_type)
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| unavailable("PutObject", e))?;
        Ok(())
    }

    async fn size(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        match self.client.head_object().bucket(&self.bucket).key(key.to_string()).send().await {
            Ok(head) => Ok(Some(head.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0))),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) || status(&e) == Some(404) => {
                Ok(None)
            }
            Err(e) => Err(unavailable("HeadObject", e)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match self.client.delete_object().bucket(&self.bucket).key(key.to_string()).send().await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(unavailable("DeleteObject", e)),
        }
    }

    async fn list_older(
        &self,
        kind: BlobKind,
        modified_before: SystemTime,
    ) -> Result<Vec<BlobKey>, BlobError> {
        let prefix = format!("{}/", kind.as_str());
        let mut older = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| unavailable("ListObjectsV2", e))?;
            for object in page.contents() {
                let Some(key) = object
                    .key()
                    .and_then(|k| k.strip_prefix(&prefix))
                    .and_then(|id| BlobKey::parse(kind.as_str(), id))
                else {
                    continue;
                };
                // No date: treat as old (S3 always sends one).
                let modified = object.last_modified().and_then(|d| SystemTime::try_from(*d).ok());
                if modified.is_none_or(|m| m < modified_before) {
                    older.push(key);
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(older),
            }
        }
    }
}
