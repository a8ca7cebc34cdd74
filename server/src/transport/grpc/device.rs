//! `kitsulan.v1.DeviceService`: the caller's own devices.

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::device_service_server::DeviceService;
use tonic::{Request, Response, Status};

use super::{Context, parse_id};
use crate::ids::DeviceId;
use crate::services::Caller;
use crate::store::DeviceRecord;

pub struct DeviceApi(pub Context);

fn device(d: DeviceRecord, caller: &Caller) -> pb::Device {
    pb::Device {
        current: d.id == caller.device_id,
        id: d.id.to_string(),
        name: d.name,
        created_at_ms: d.created_at_ms,
        last_seen_at_ms: d.last_seen_at_ms,
    }
}

#[tonic::async_trait]
impl DeviceService for DeviceApi {
    async fn list_devices(
        &self,
        request: Request<pb::ListDevicesRequest>,
    ) -> Result<Response<pb::ListDevicesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let devices = self.0.services.devices.list(&caller).await?;
        Ok(Response::new(pb::ListDevicesResponse {
            devices: devices.into_iter().map(|d| device(d, &caller)).collect(),
        }))
    }

    async fn rename_device(
        &self,
        request: Request<pb::RenameDeviceRequest>,
    ) -> Result<Response<pb::RenameDeviceResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id: DeviceId = parse_id(&r.device_id, "device_id")?;
        let d = self.0.services.devices.rename(&caller, id, &r.name).await?;
        Ok(Response::new(pb::RenameDeviceResponse { device: Some(device(d, &caller)) }))
    }

    async fn sign_out_device(
        &self,
        request: Request<pb::SignOutDeviceRequest>,
    ) -> Result<Response<pb::SignOutDeviceResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: DeviceId = parse_id(&request.get_ref().device_id, "device_id")?;
        self.0.services.devices.sign_out_other(&caller, id).await?;
        Ok(Response::new(pb::SignOutDeviceResponse {}))
    }
}
