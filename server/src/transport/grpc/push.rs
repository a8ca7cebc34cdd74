//! `kitsulan.v1.PushService`: the calling device's Web Push subscription.

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::push_service_server::PushService;
use tonic::{Request, Response, Status};

use super::Context;

pub struct PushApi(pub Context);

#[tonic::async_trait]
impl PushService for PushApi {
    async fn get_push_config(
        &self,
        request: Request<pb::GetPushConfigRequest>,
    ) -> Result<Response<pb::GetPushConfigResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let config = self.0.services.push.config(&caller).await?;
        Ok(Response::new(pb::GetPushConfigResponse {
            enabled: config.enabled,
            vapid_public_key: config.public_key,
            subscribed: config.subscribed,
        }))
    }

    async fn set_push_subscription(
        &self,
        request: Request<pb::SetPushSubscriptionRequest>,
    ) -> Result<Response<pb::SetPushSubscriptionResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        self.0.services.push.subscribe(&caller, &r.endpoint, &r.p256dh, &r.auth).await?;
        Ok(Response::new(pb::SetPushSubscriptionResponse {}))
    }

    async fn delete_push_subscription(
        &self,
        request: Request<pb::DeletePushSubscriptionRequest>,
    ) -> Result<Response<pb::DeletePushSubscriptionResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        self.0.services.push.unsubscribe(&caller).await?;
        Ok(Response::new(pb::DeletePushSubscriptionResponse {}))
    }
}
