//! `kitsulan.v1.ToDeviceService`: opaque messages between devices.

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::to_device_service_server::ToDeviceService;
use tonic::{Request, Response, Status};

use super::{Context, parse_id, parse_ids};
use crate::store::{NewToDevice, ToDeviceRecord};

pub struct ToDeviceApi(pub Context);

#[tonic::async_trait]
impl ToDeviceService for ToDeviceApi {
    async fn send_to_device(
        &self,
        request: Request<pb::SendToDeviceRequest>,
    ) -> Result<Response<pb::SendToDeviceResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let messages = request
            .into_inner()
            .messages
            .into_iter()
            .map(|m| {
                Ok(NewToDevice {
                    message_id: parse_id(&m.message_id, "message_id")?,
                    recipient: parse_id(&m.recipient_device_id, "recipient_device_id")?,
                    ciphertext: m.ciphertext,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        self.0.services.to_device.send(&caller, messages).await?;
        Ok(Response::new(pb::SendToDeviceResponse {}))
    }

    async fn fetch_to_device(
        &self,
        request: Request<pb::FetchToDeviceRequest>,
    ) -> Result<Response<pb::FetchToDeviceResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let (messages, more) = self.0.services.to_device.fetch(&caller, request.get_ref().limit).await?;
        Ok(Response::new(pb::FetchToDeviceResponse {
            more,
            messages: messages.into_iter().map(to_device_message).collect(),
        }))
    }

    async fn ack_to_device(
        &self,
        request: Request<pb::AckToDeviceRequest>,
    ) -> Result<Response<pb::AckToDeviceResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let ids = parse_ids(&request.get_ref().message_ids, "message_ids")?;
        self.0.services.to_device.ack(&caller, &ids).await?;
        Ok(Response::new(pb::AckToDeviceResponse {}))
    }
}

/// A queued message as the device sees it (here and on the gateway).
pub fn to_device_message(m: ToDeviceRecord) -> pb::ToDeviceMessage {
    pb::ToDeviceMessage {
        message_id: m.message_id.to_string(),
        sender_account_id: m.sender_account_id.to_string(),
        sender_device_id: m.sender_device_id.to_string(),
        ciphertext: m.ciphertext,
        sent_at_ms: m.sent_at_ms,
    }
}
