//! gRPC: our services from `proto/`, the standard `grpc.health.v1.Health` service and server
//! reflection (v1 and v1alpha), all reachable as native gRPC (HTTP/2) and as gRPC-Web from
//! browsers, on the same port as plain HTTP. Every handler that needs a session gets its caller
//! from [`Context::caller`] first.

mod account;
mod attachment;
mod auth;
mod avatar;
mod backup;
mod call;
mod context;
mod conversation;
mod decode_errors;
mod device;
mod errors;
mod export;
mod guild;
mod keys;
mod pairing;
mod push;
mod server_info;
mod to_device;
mod voice;

// Record-to-wire conversions the gateway shares.
pub use attachment::attachment_event;
pub use avatar::{avatar_event, avatar_info};
pub use conversation::{message, role, seq};
pub use to_device::to_device_message;

use std::collections::HashSet;

use axum::Router;
use kitsulan_proto::v1::account_service_server::AccountServiceServer;
use kitsulan_proto::v1::attachment_service_server::AttachmentServiceServer;
use kitsulan_proto::v1::auth_service_server::AuthServiceServer;
use kitsulan_proto::v1::avatar_service_server::AvatarServiceServer;
use kitsulan_proto::v1::call_service_server::CallServiceServer;
use kitsulan_proto::v1::conversation_service_server::ConversationServiceServer;
use kitsulan_proto::v1::device_service_server::DeviceServiceServer;
use kitsulan_proto::v1::guild_service_server::GuildServiceServer;
use kitsulan_proto::v1::key_backup_service_server::KeyBackupServiceServer;
use kitsulan_proto::v1::key_service_server::KeyServiceServer;
use kitsulan_proto::v1::pairing_service_server::PairingServiceServer;
use kitsulan_proto::v1::push_service_server::PushServiceServer;
use kitsulan_proto::v1::server_info_service_server::ServerInfoServiceServer;
use kitsulan_proto::v1::to_device_service_server::ToDeviceServiceServer;
use kitsulan_proto::v1::voice_service_server::VoiceServiceServer;
use prost::Message as _;
use tonic_health::server::HealthReporter;

use crate::services::{Error, ErrorReason};

pub use context::Context;

/// Flips the gRPC health status when the server stops taking traffic.
#[derive(Clone)]
pub struct HealthHandle(HealthReporter);

/// The names of our services, as health checks know them.
const SERVICE_NAMES: [&str; 15] = [
    "kitsulan.v1.ServerInfoService",
    "kitsulan.v1.AuthService",
    "kitsulan.v1.AccountService",
    "kitsulan.v1.DeviceService",
    "kitsulan.v1.KeyService",
    "kitsulan.v1.ToDeviceService",
    "kitsulan.v1.PairingService",
    "kitsulan.v1.ConversationService",
    "kitsulan.v1.CallService",
    "kitsulan.v1.AttachmentService",
    "kitsulan.v1.AvatarService",
    "kitsulan.v1.KeyBackupService",
    "kitsulan.v1.PushService",
    "kitsulan.v1.GuildService",
    "kitsulan.v1.VoiceService",
];

impl HealthHandle {
    /// Reports every service as NOT_SERVING (on shutdown, so balancers drain this node).
    pub async fn set_not_serving(&self) {
        for name in SERVICE_NAMES.into_iter().chain([""]) {
            self.0.set_service_status(name, tonic_health::ServingStatus::NotServing).await;
        }
    }
}

/// The most bytes one request message may have (besides avatar uploads): 4 MiB, tonic's
/// default, set explicitly so `REQUEST_TOO_LARGE` names the limit that applies.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Builds the gRPC API (our services and health, with gRPC-Web translation), with server
/// reflection when `with_reflection` (otherwise it goes on the admin address: [`reflection_router`]).
pub async fn router(context: Context, with_reflection: bool) -> anyhow::Result<(Router, HealthHandle)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in SERVICE_NAMES {
        reporter.set_service_status(name, tonic_health::ServingStatus::Serving).await;
    }
    let limits =
        decode_errors::RequestLimits { default: MAX_REQUEST_BYTES, avatar: avatar_request_limit(&context) };
    let max = MAX_REQUEST_BYTES;

    let router = tonic::service::Routes::new(
        ServerInfoServiceServer::new(server_info::ServerInfoApi(context.clone()))
            .max_decoding_message_size(max),
    )
    .add_service(AuthServiceServer::new(auth::AuthApi(context.clone())).max_decoding_message_size(max))
    .add_service(
        AccountServiceServer::new(account::AccountApi(context.clone())).max_decoding_message_size(max),
    )
    .add_service(DeviceServiceServer::new(device::DeviceApi(context.clone())).max_decoding_message_size(max))
    .add_service(KeyServiceServer::new(keys::KeyApi(context.clone())).max_decoding_message_size(max))
    .add_service(
        ToDeviceServiceServer::new(to_device::ToDeviceApi(context.clone())).max_decoding_message_size(max),
    )
    .add_service(
        PairingServiceServer::new(pairing::PairingApi(context.clone())).max_decoding_message_size(max),
    )
    .add_service(
        ConversationServiceServer::new(conversation::ConversationApi(context.clone()))
            .max_decoding_message_size(max),
    )
    .add_service(CallServiceServer::new(call::CallApi(context.clone())).max_decoding_message_size(max))
    .add_service(
        AttachmentServiceServer::new(attachment::AttachmentApi(context.clone()))
            .max_decoding_message_size(max),
    )
    // The image is in the request: room for the largest one allowed (and the framing), so an
    // oversized one reaches the service and gets AVATAR_TOO_LARGE.
    .add_service(
        AvatarServiceServer::new(avatar::AvatarApi(context.clone())).max_decoding_message_size(limits.avatar),
    )
    .add_service(
        KeyBackupServiceServer::new(backup::KeyBackupApi(context.clone())).max_decoding_message_size(max),
    )
    .add_service(PushServiceServer::new(push::PushApi(context.clone())).max_decoding_message_size(max))
    .add_service(GuildServiceServer::new(guild::GuildApi(context.clone())).max_decoding_message_size(max))
    .add_service(VoiceServiceServer::new(voice::VoiceApi(context.clone())).max_decoding_message_size(max))
    .add_service(health);
    let routes = if with_reflection {
        router.add_service(reflection().build_v1()?).add_service(reflection().build_v1alpha()?)
    } else {
        router
    };
    let router = routes
        .prepare()
        .into_axum_router()
        .layer(axum::middleware::from_fn(errors::log_failed_calls))
        // Inside the gRPC-Web translation, so browsers get the same clear errors.
        .layer(axum::middleware::from_fn_with_state(limits, decode_errors::clear_errors))
        .layer(tonic_web::GrpcWebLayer::new());
    Ok((router, HealthHandle(reporter)))
}

/// gRPC server reflection (v1 and v1alpha) alone, for the admin address. Like every tonic
/// router it answers unknown paths with gRPC `UNIMPLEMENTED`.
pub fn reflection_router() -> anyhow::Result<Router> {
    Ok(tonic::service::Routes::new(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .prepare()
        .into_axum_router()
        .layer(tonic_web::GrpcWebLayer::new()))
}

/// The largest AvatarService request taken: twice the avatar limit (so an image somewhat over
/// it still gets a clear AVATAR_TOO_LARGE), plus room for the other fields.
fn avatar_request_limit(context: &Context) -> usize {
    let max = context.services.avatars.max_upload_bytes();
    usize::try_from(max.saturating_mul(2).saturating_add(64 * 1024)).unwrap_or(usize::MAX)
}

/// Parses one id from a request field, or refuses the call with `ID_INVALID`.
fn parse_id<T: std::str::FromStr<Err = crate::ids::IdError>>(
    raw: &str,
    field: &'static str,
) -> Result<T, Error> {
    raw.trim().parse().map_err(|e| Error::invalid(ErrorReason::IdInvalid, field, format!("{field}: {e}")))
}

/// Parses a list of ids (see [`parse_id`]).
fn parse_ids<T: std::str::FromStr<Err = crate::ids::IdError>>(
    raw: &[String],
    field: &'static str,
) -> Result<Vec<T>, Error> {
    raw.iter().map(|id| parse_id(id, field)).collect()
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_service_in_the_schema_reports_health() {
        let methods = super::known_methods().unwrap();
        for method in methods.iter().filter(|m| m.starts_with("/kitsulan.")) {
            let service = method.trim_start_matches('/').split('/').next().unwrap();
            assert!(super::SERVICE_NAMES.contains(&service), "{service} is served but not in SERVICE_NAMES");
        }
    }
}
