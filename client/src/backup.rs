//! Key backup as a device uses it (docs/e2ee.md, "Backup and recovery"): `KeyBackupService`
//! calls on [`Client`]. What goes in is opaque to the server: the blobs the crypto crate's
//! backup key makes (crypto/FORMAT.md, "Key backup").

use kitsulan_proto::v1::key_backup_service_client::KeyBackupServiceClient;
use kitsulan_proto::v1::{
    BackupSession, BackupVersion, CreateBackupVersionRequest, DeleteBackupVersionRequest, GetBackupRequest,
    ListBackupSessionsRequest, ListBackupSessionsResponse, PutBackupSessionsRequest,
};
use tonic::Status;

use crate::client::{Authed, Client};

fn backup(version: Option<BackupVersion>) -> Result<BackupVersion, Status> {
    version.ok_or_else(|| Status::internal("no backup version in the answer"))
}

impl Client {
    /// `KeyBackupService`, as this device.
    pub fn backup(&self) -> KeyBackupServiceClient<Authed> {
        KeyBackupServiceClient::with_interceptor(self.channel(), self.headers())
    }

    /// `GetBackup`: the account's current backup version.
    pub async fn get_backup(&self) -> Result<BackupVersion, Status> {
        backup(self.backup().get_backup(GetBackupRequest {}).await?.into_inner().backup)
    }

    /// `CreateBackupVersion`: a new version, current from now on.
    pub async fn create_backup_version(
        &self,
        auth_data: Vec<u8>,
        identity: Vec<u8>,
    ) -> Result<BackupVersion, Status> {
        let request = CreateBackupVersionRequest { auth_data, identity };
        backup(self.backup().create_backup_version(request).await?.into_inner().backup)
    }

    /// `PutBackupSessions`: adds or replaces session keys of `version` (the current one); returns
    /// how many the version holds.
    pub async fn put_backup_sessions(
        &self,
        version: &str,
        sessions: Vec<BackupSession>,
    ) -> Result<u64, Status> {
        let request = PutBackupSessionsRequest { version: version.to_owned(), sessions };
        Ok(self.backup().put_backup_sessions(request).await?.into_inner().session_count)
    }

    /// `ListBackupSessions`: one page of `version`'s session keys after `after_session_id`.
    pub async fn list_backup_sessions(
        &self,
        version: &str,
        after_session_id: &str,
        limit: u32,
    ) -> Result<ListBackupSessionsResponse, Status> {
        let request = ListBackupSessionsRequest {
            version: version.to_owned(),
            after_session_id: after_session_id.to_owned(),
            limit,
        };
        Ok(self.backup().list_backup_sessions(request).await?.into_inner())
    }

    /// Every session key of `version`, page by page (`limit` at a time, 0 for the most).
    pub async fn all_backup_sessions(&self, version: &str, limit: u32) -> Result<Vec<BackupSession>, Status> {
        let mut all: Vec<BackupSession> = Vec::new();
        loop {
            let after = all.last().map(|s| s.session_id.clone()).unwrap_or_default();
            let page = self.list_backup_sessions(version, &after, limit).await?;
            let empty = page.sessions.is_empty();
            all.extend(page.sessions);
            if !page.more || empty {
                return Ok(all);
            }
        }
    }

    /// `DeleteBackupVersion`: an older version, or the current one with `delete_current`.
    pub async fn delete_backup_version(&self, version: &str, delete_current: bool) -> Result<(), Status> {
        let request = DeleteBackupVersionRequest { version: version.to_owned(), delete_current };
        self.backup().delete_backup_version(request).await?;
        Ok(())
    }
}
