//! `kitsulan.v1.KeyBackupService`: key backups, opaque blobs of the caller's own account.

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::key_backup_service_server::KeyBackupService;
use tonic::{Request, Response, Status};

use super::{Context, parse_id};
use crate::store::{BackupSessionRecord, BackupVersionRecord};

pub struct KeyBackupApi(pub Context);

fn version(record: BackupVersionRecord) -> pb::BackupVersion {
    pb::BackupVersion {
        version: record.version.to_string(),
        auth_data: record.auth_data,
        identity: record.identity,
        session_count: u64::try_from(record.session_count).unwrap_or_default(),
        created_at_ms: record.created_at_ms,
    }
}

#[tonic::async_trait]
impl KeyBackupService for KeyBackupApi {
    async fn get_backup(
        &self,
        request: Request<pb::GetBackupRequest>,
    ) -> Result<Response<pb::GetBackupResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let backup = self.0.services.backup.current(&caller).await?;
        Ok(Response::new(pb::GetBackupResponse { backup: Some(version(backup)) }))
    }

    async fn create_backup_version(
        &self,
        request: Request<pb::CreateBackupVersionRequest>,
    ) -> Result<Response<pb::CreateBackupVersionResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let backup = self.0.services.backup.create_version(&caller, &r.auth_data, &r.identity).await?;
        Ok(Response::new(pb::CreateBackupVersionResponse { backup: Some(version(backup)) }))
    }

    async fn put_backup_sessions(
        &self,
        request: Request<pb::PutBackupSessionsRequest>,
    ) -> Result<Response<pb::PutBackupSessionsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let version = parse_id(&r.version, "version")?;
        let sessions: Vec<BackupSessionRecord> = r
            .sessions
            .into_iter()
            .map(|s| BackupSessionRecord { session_id: s.session_id, data: s.data })
            .collect();
        let session_count = self.0.services.backup.put_sessions(&caller, version, &sessions).await?;
        Ok(Response::new(pb::PutBackupSessionsResponse { session_count }))
    }

    async fn list_backup_sessions(
        &self,
        request: Request<pb::ListBackupSessionsRequest>,
    ) -> Result<Response<pb::ListBackupSessionsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let version = parse_id(&r.version, "version")?;
        let page =
            self.0.services.backup.list_sessions(&caller, version, &r.after_session_id, r.limit).await?;
        Ok(Response::new(pb::ListBackupSessionsResponse {
            sessions: page
                .sessions
                .into_iter()
                .map(|s| pb::BackupSession { session_id: s.session_id, data: s.data })
                .collect(),
            more: page.more,
        }))
    }

    async fn delete_backup_version(
        &self,
        request: Request<pb::DeleteBackupVersionRequest>,
    ) -> Result<Response<pb::DeleteBackupVersionResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let version = parse_id(&r.version, "version")?;
        self.0.services.backup.delete_version(&caller, version, r.delete_current).await?;
        Ok(Response::new(pb::DeleteBackupVersionResponse {}))
    }
}
