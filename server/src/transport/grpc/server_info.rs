//! `kitsulan.v1.ServerInfoService`: what the server is, before anyone signs in.

use kitsulan_proto::v1::server_info_service_server::ServerInfoService;
use kitsulan_proto::v1::{
    DatabaseBackend, DeletedAccountMessages, GetServerInfoRequest, GetServerInfoResponse, StorageBackend,
};
use tonic::{Request, Response, Status};

use super::Context;
use crate::services;
use crate::store::Backend;

pub struct ServerInfoApi(pub Context);

#[tonic::async_trait]
impl ServerInfoService for ServerInfoApi {
    async fn get_server_info(
        &self,
        _request: Request<GetServerInfoRequest>,
    ) -> Result<Response<GetServerInfoResponse>, Status> {
        let info = &self.0.services.server_info;
        Ok(Response::new(GetServerInfoResponse {
            name: info.name.clone(),
            version: info.version.to_owned(),
            instance_id: info.instance_id.to_string(),
            database: match info.database {
                Backend::Sqlite => DatabaseBackend::Sqlite,
                Backend::Postgres => DatabaseBackend::Postgres,
            }
            .into(),
            storage: match info.storage {
                services::StorageBackend::Local => StorageBackend::Local,
                services::StorageBackend::S3 => StorageBackend::S3,
            }
            .into(),
            attachment_ttl_choices_seconds: info.attachment_ttl_choices.clone(),
            local_ca_sha256: info.local_ca_sha256.clone().unwrap_or_default(),
            retention_days: info.retention_days.unwrap_or(0),
            deleted_account_messages: if info.delete_messages_with_account {
                DeletedAccountMessages::Delete
            } else {
                DeletedAccountMessages::Anonymize
            }
            .into(),
        }))
    }
}
