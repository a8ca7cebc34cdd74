//! `kitsulan.v1.AttachmentService`: upload and download URLs, download reports (the blobs
//! themselves go to S3 or through `transport::blobs`).

use std::time::Duration;

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::attachment_service_server::AttachmentService;
use tonic::{Request, Response, Status};

use super::{Context, parse_id};
use crate::blobs::SignedRequest;
use crate::ids::AttachmentId;
use crate::services::attachments::{AttachmentChange, AttachmentEvent};
use crate::store::AttachmentRecord;

pub struct AttachmentApi(pub Context);

fn attachment(r: AttachmentRecord) -> pb::Attachment {
    pb::Attachment {
        id: r.id.to_string(),
        conversation_id: r.conversation_id.to_string(),
        uploader_account_id: r.uploader.0.to_string(),
        size: u64::try_from(r.size).unwrap_or_default(),
        created_at_ms: r.created_at_ms,
        uploaded_at_ms: r.uploaded_at_ms,
        message_id: r.message_id.map(|m| m.to_string()).unwrap_or_default(),
        expires_at_ms: r.expires_at_ms,
    }
}

pub(super) fn blob_request(r: SignedRequest) -> pb::BlobRequest {
    pb::BlobRequest {
        url: r.url,
        method: r.method.to_owned(),
        headers: r.headers.into_iter().collect(),
        expires_at_ms: r.expires_at_ms,
    }
}

/// The gateway's form of an attachment event.
pub fn attachment_event(event: &AttachmentEvent) -> pb::AttachmentEvent {
    pb::AttachmentEvent {
        attachment_id: event.attachment.to_string(),
        conversation_id: event.conversation.to_string(),
        change: match event.change {
            AttachmentChange::Downloaded => pb::AttachmentChange::Downloaded,
            AttachmentChange::Expired => pb::AttachmentChange::Expired,
        }
        .into(),
        account_id: event.account.map(|a| a.to_string()).unwrap_or_default(),
        at_ms: event.at_ms,
    }
}

#[tonic::async_trait]
impl AttachmentService for AttachmentApi {
    async fn create_upload(
        &self,
        request: Request<pb::CreateUploadRequest>,
    ) -> Result<Response<pb::CreateUploadResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let conversation = parse_id(&r.conversation_id, "conversation_id")?;
        let ttl = Duration::from_secs(u64::from(r.ttl_seconds));
        let (record, upload) =
            self.0.services.attachments.create_upload(&caller, conversation, r.size, ttl).await?;
        Ok(Response::new(pb::CreateUploadResponse {
            attachment: Some(attachment(record)),
            upload: Some(blob_request(upload)),
        }))
    }

    async fn complete_upload(
        &self,
        request: Request<pb::CompleteUploadRequest>,
    ) -> Result<Response<pb::CompleteUploadResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: AttachmentId = parse_id(&request.get_ref().attachment_id, "attachment_id")?;
        let record = self.0.services.attachments.complete_upload(&caller, id).await?;
        Ok(Response::new(pb::CompleteUploadResponse { attachment: Some(attachment(record)) }))
    }

    async fn get_download_url(
        &self,
        request: Request<pb::GetDownloadUrlRequest>,
    ) -> Result<Response<pb::GetDownloadUrlResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: AttachmentId = parse_id(&request.get_ref().attachment_id, "attachment_id")?;
        let (record, download) = self.0.services.attachments.download_url(&caller, id).await?;
        Ok(Response::new(pb::GetDownloadUrlResponse {
            attachment: Some(attachment(record)),
            download: Some(blob_request(download)),
        }))
    }

    async fn report_downloaded(
        &self,
        request: Request<pb::ReportDownloadedRequest>,
    ) -> Result<Response<pb::ReportDownloadedResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: AttachmentId = parse_id(&request.get_ref().attachment_id, "attachment_id")?;
        self.0.services.attachments.report_downloaded(&caller, id).await?;
        Ok(Response::new(pb::ReportDownloadedResponse {}))
    }

    async fn list_downloads(
        &self,
        request: Request<pb::ListDownloadsRequest>,
    ) -> Result<Response<pb::ListDownloadsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: AttachmentId = parse_id(&request.get_ref().attachment_id, "attachment_id")?;
        let downloads = self.0.services.attachments.downloads(&caller, id).await?;
        Ok(Response::new(pb::ListDownloadsResponse {
            downloads: downloads
                .into_iter()
                .map(|(account, at)| pb::Download { account_id: account.to_string(), downloaded_at_ms: at })
                .collect(),
        }))
    }

    async fn delete_attachment(
        &self,
        request: Request<pb::DeleteAttachmentRequest>,
    ) -> Result<Response<pb::DeleteAttachmentResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: AttachmentId = parse_id(&request.get_ref().attachment_id, "attachment_id")?;
        self.0.services.attachments.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteAttachmentResponse {}))
    }
}
