//! Lite blob URLs: `PUT` and `GET /v1/blobs/<kind>/<uuid>?…&expires=…&sig=…`, signed by
//! [`DiskBlobs`] and streamed to and from the data dir (never a whole file in memory).
//!
//! Answers: 200 stored / the blob; 400 malformed or short body; 403 expired or bad signature,
//! or an upload to anything but an attachment; 404 no such blob; 409 already uploaded; 410 the
//! attachment was deleted or has expired; 413 more bytes than the URL allows; 503 the database
//! cannot be asked. Only present when the server keeps blobs on disk (with S3, clients talk to
//! S3 directly).
//!
//! # Security
//! A valid signature is not enough to store anything: an upload URL stays valid for its TTL
//! after its attachment is deleted (which gives its quota back), so the attachment row is
//! checked before a byte is read (live, not expired, not yet uploaded) and again after the
//! blob is in place (an attachment deleted meanwhile takes the new blob with it).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;

use crate::blobs::{BlobKey, BlobKind, BlobStore as _, DiskBlobs, PutError, SignatureError};
use crate::services::{Attachments, UploadGate};
use crate::store::now_ms;

/// Reads are streamed in pieces of this size.
const READ_CHUNK: usize = 64 * 1024;

/// What the handlers need: the files, and the attachments service to ask whether an upload
/// is still wanted.
#[derive(Clone)]
struct Blobs {
    disk: Arc<DiskBlobs>,
    attachments: Attachments,
}

pub fn router(disk: Arc<DiskBlobs>, attachments: Attachments) -> Router {
    Router::new()
        .route("/v1/blobs/{kind}/{id}", put(upload).get(download))
        // The size is capped by the signed URL, streaming, in `DiskBlobs::put`.
        .layer(DefaultBodyLimit::disable())
        .with_state(Blobs { disk, attachments })
}

/// The answer to an upload whose attachment is not waiting for it, if it is not.
async fn gate(attachments: &Attachments, key: &BlobKey, size: u64) -> Option<Response> {
    let Some(id) = key.attachment_id() else {
        return Some(refuse(StatusCode::FORBIDDEN, "only attachments are uploaded here\n"));
    };
    match attachments.upload_gate(id, size).await {
        Ok(UploadGate::Open) => None,
        Ok(UploadGate::Gone) => {
            Some(refuse(StatusCode::GONE, "this attachment was deleted or has expired\n"))
        }
        Ok(UploadGate::Uploaded) => Some(refuse(StatusCode::CONFLICT, "this blob was uploaded already\n")),
        Err(e) => {
            tracing::warn!(error = %e, %key, "cannot check an upload against its attachment");
            Some(refuse(StatusCode::SERVICE_UNAVAILABLE, "cannot check this upload now; try again\n"))
        }
    }
}

fn refuse(code: StatusCode, text: &'static str) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// The key and the checked signature, or the answer to send.
fn check(
    blobs: &DiskBlobs,
    method: &str,
    (kind, id): (&str, &str),
    query: &HashMap<String, String>,
    with_size: bool,
) -> Result<(BlobKey, Option<u64>), (StatusCode, &'static str)> {
    let key = BlobKey::parse(kind, id).ok_or((StatusCode::NOT_FOUND, "no such blob\n"))?;
    let expires = query.get("expires").and_then(|e| e.parse::<i64>().ok());
    let sig = query.get("sig");
    let size = if with_size {
        Some(
            query
                .get("size")
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or((StatusCode::FORBIDDEN, "this URL is not signed for uploads\n"))?,
        )
    } else {
        None
    };
    let (Some(expires), Some(sig)) = (expires, sig) else {
        return Err((StatusCode::FORBIDDEN, "this URL is not signed\n"));
    };
    match blobs.verify(method, &key, size, expires, sig, now_ms()) {
        Ok(()) => Ok((key, size)),
        Err(SignatureError::Expired) => Err((StatusCode::FORBIDDEN, "this URL has expired\n")),
        Err(SignatureError::Invalid) => Err((StatusCode::FORBIDDEN, "this URL's signature is not valid\n")),
    }
}

async fn upload(
    State(Blobs { disk: blobs, attachments }): State<Blobs>,
    Path((kind, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (key, size) = match check(&blobs, "PUT", (&kind, &id), &query, true) {
        Ok(checked) => checked,
        Err((code, text)) => return refuse(code, text),
    };
    let size = size.unwrap_or_default();
    // A declared length that does not match is refused before a byte is read.
    if let Some(length) =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        if length > size {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "more bytes than this URL allows\n");
        }
        if length < size {
            return refuse(StatusCode::BAD_REQUEST, "fewer bytes than this URL is signed for\n");
        }
    }
    if let Some(refused) = gate(&attachments, &key, size).await {
        return refused;
    }
    match blobs.put(&key, size, body.into_data_stream()).await {
        Ok(()) => {
            // Deleted while the bytes came in: the blob goes too, at once (else the stray sweep
            // would, after its grace).
            let id = key.attachment_id();
            let gone = match id {
                Some(id) => matches!(attachments.upload_gate(id, size).await, Ok(UploadGate::Gone)),
                None => false,
            };
            if !gone {
                return StatusCode::OK.into_response();
            }
            if let Err(e) = blobs.delete(&key).await {
                tracing::warn!(error = %e, %key, "cannot delete the blob of an attachment deleted during its upload");
            }
            refuse(StatusCode::GONE, "this attachment was deleted or has expired\n")
        }
        Err(PutError::TooLarge(_)) => {
            refuse(StatusCode::PAYLOAD_TOO_LARGE, "more bytes than this URL allows\n")
        }
        Err(PutError::Short { .. }) => refuse(StatusCode::BAD_REQUEST, "the upload ended early\n"),
        Err(PutError::Exists) => refuse(StatusCode::CONFLICT, "this blob was uploaded already\n"),
        Err(PutError::Body(e)) => {
            tracing::debug!(error = %e, %key, "an upload broke off");
            refuse(StatusCode::BAD_REQUEST, "the upload broke off\n")
        }
        Err(PutError::Io(e)) => {
            tracing::error!(error = %e, %key, "cannot store a blob");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the blob\n")
        }
    }
}

async fn download(
    State(Blobs { disk: blobs, .. }): State<Blobs>,
    Path((kind, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let key = match check(&blobs, "GET", (&kind, &id), &query, false) {
        Ok((key, _)) => key,
        Err((code, text)) => return refuse(code, text),
    };
    match blobs.open_blob(&key).await {
        Ok(Some((file, size))) => {
            let stream = tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK);
            // Avatars are PNGs the server made itself; everything else is ciphertext.
            let content_type = match key.kind() {
                BlobKind::Avatar => "image/png",
                BlobKind::Attachment => "application/octet-stream",
            };
            (
                [
                    (header::CONTENT_TYPE, content_type.to_owned()),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                    (header::CONTENT_LENGTH, size.to_string()),
                    (header::CACHE_CONTROL, "private, no-store".to_owned()),
                ],
                Body::from_stream(stream),
            )
                .into_response()
        }
        Ok(None) => refuse(StatusCode::NOT_FOUND, "no such blob\n"),
        Err(e) => {
            tracing::error!(error = %e, %key, "cannot read a blob");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the blob\n")
        }
    }
}
