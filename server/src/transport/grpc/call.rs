//! `kitsulan.v1.CallService`: TURN credentials (signalling rides the gateway).

use std::time::UNIX_EPOCH;

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::call_service_server::CallService;
use tonic::{Request, Response, Status};

use super::Context;

pub struct CallApi(pub Context);

#[tonic::async_trait]
impl CallService for CallApi {
    async fn get_turn_credentials(
        &self,
        request: Request<pb::GetTurnCredentialsRequest>,
    ) -> Result<Response<pb::GetTurnCredentialsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let credentials = self.0.services.calls.turn_credentials(&caller)?;
        let expires_at_ms = credentials
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        Ok(Response::new(pb::GetTurnCredentialsResponse {
            ttl_seconds: u32::try_from(credentials.ttl.as_secs()).unwrap_or(u32::MAX),
            expires_at_ms,
            username: credentials.username,
            password: credentials.password,
            urls: credentials.urls,
        }))
    }
}
