//! gRPC: our services from `proto/`, the standard `grpc.health.v1.Health` service and server
//! reflection (v1 and v1alpha), all reachable as native gRPC (HTTP/2) and as gRPC-Web from
//! browsers, on the same port as plain HTTP.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use kitsulan_proto::v1::server_info_service_server::{ServerInfoService, ServerInfoServiceServer};
use kitsulan_proto::v1::{DatabaseBackend, GetServerInfoRequest, GetServerInfoResponse, StorageBackend};
use prost::Message as _;
use tonic::{Request, Response, Status};
use tonic_health::server::HealthReporter;

use crate::services::{self, Services};
use crate::store::Backend;

/// Flips the gRPC health status when the server stops taking traffic.
#[derive(Clone)]
pub struct HealthHandle(HealthReporter);

impl HealthHandle {
    /// Reports every service as NOT_SERVING (on shutdown, so balancers drain this node).
    pub async fn set_not_serving(&self) {
        self.0.set_not_serving::<ServerInfoServiceServer<ServerInfoApi>>().await;
        self.0.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    }
}

/// Builds the gRPC part of the router (with gRPC-Web translation).
pub async fn router(services: Arc<Services>) -> anyhow::Result<(Router, HealthHandle)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<ServerInfoServiceServer<ServerInfoApi>>().await;

    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let router = tonic::service::Routes::new(ServerInfoServiceServer::new(ServerInfoApi { services }))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .prepare()
        .into_axum_router()
        .layer(tonic_web::GrpcWebLayer::new());
    Ok((router, HealthHandle(reporter)))
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kitsulan_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// Every RPC path we serve (`/package.Service/Method`), read from the descriptor sets.
pub fn known_methods() -> anyhow::Result<HashSet<String>> {
    let mut methods = HashSet::new();
    for encoded in [kitsulan_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET] {
        let set = prost_types::FileDescriptorSet::decode(encoded)?;
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let name = service.name.unwrap_or_default();
                for method in service.method {
                    methods.insert(format!("/{package}.{name}/{}", method.name.unwrap_or_default()));
                }
            }
        }
    }
    for version in ["v1", "v1alpha"] {
        methods.insert(format!("/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"));
    }
    Ok(methods)
}

/// `kitsulan.v1.ServerInfoService`.
pub struct ServerInfoApi {
    services: Arc<Services>,
}

#[tonic::async_trait]
impl ServerInfoService for ServerInfoApi {
    async fn get_server_info(
        &self,
        _request: Request<GetServerInfoRequest>,
    ) -> Result<Response<GetServerInfoResponse>, Status> {
        let info = &self.services.server_info;
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
            }
            .into(),
        }))
    }
}
