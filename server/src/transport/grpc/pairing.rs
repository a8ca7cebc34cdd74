//! `kitsulan.v1.PairingService`: linking a new device by QR code or PIN.

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::pairing_service_server::PairingService;
use tonic::{Request, Response, Status};

use super::auth::session;
use super::{Context, parse_id};
use crate::services::pairing::{PairingState, Side};

pub struct PairingApi(pub Context);

impl PairingApi {
    /// The new device when it sends its secret, otherwise a signed-in device.
    async fn side<'a, T>(&self, request: &Request<T>, secret: &'a str) -> Result<Side<'a>, Status> {
        if secret.is_empty() {
            Ok(Side::Existing(self.0.caller(request).await?))
        } else {
            Ok(Side::NewDevice(secret))
        }
    }
}

fn pb_state(state: PairingState) -> pb::PairingState {
    match state {
        PairingState::Open => pb::PairingState::Open,
        PairingState::Claimed => pb::PairingState::Claimed,
        PairingState::Approved => pb::PairingState::Approved,
        PairingState::Completed => pb::PairingState::Completed,
        PairingState::Cancelled => pb::PairingState::Cancelled,
        PairingState::Expired => pb::PairingState::Expired,
    }
}

fn index(i: i64) -> u32 {
    u32::try_from(i).unwrap_or_default()
}

#[tonic::async_trait]
impl PairingService for PairingApi {
    async fn create_pairing(
        &self,
        request: Request<pb::CreatePairingRequest>,
    ) -> Result<Response<pb::CreatePairingResponse>, Status> {
        let client = self.0.client(&request);
        let r = request.get_ref();
        let id = parse_id(&r.pairing_id, "pairing_id")?;
        let opened = self.0.services.pairing.create(client, id, &r.public_key).await?;
        Ok(Response::new(pb::CreatePairingResponse {
            pin: opened.pin,
            secret: opened.secret,
            expires_at_ms: opened.expires_at_ms,
        }))
    }

    async fn find_pairing(
        &self,
        request: Request<pb::FindPairingRequest>,
    ) -> Result<Response<pb::FindPairingResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.client(&request);
        let found = self.0.services.pairing.find(&caller, client, &request.get_ref().pin).await?;
        Ok(Response::new(pb::FindPairingResponse {
            pairing_id: found.id.to_string(),
            public_key: found.public_key,
            expires_at_ms: found.expires_at_ms,
        }))
    }

    async fn post_pairing_message(
        &self,
        request: Request<pb::PostPairingMessageRequest>,
    ) -> Result<Response<pb::PostPairingMessageResponse>, Status> {
        let r = request.get_ref();
        let id = parse_id(&r.pairing_id, "pairing_id")?;
        let side = self.side(&request, &r.secret).await?;
        let i = self.0.services.pairing.post(side, id, &r.payload).await?;
        Ok(Response::new(pb::PostPairingMessageResponse { index: index(i) }))
    }

    async fn get_pairing(
        &self,
        request: Request<pb::GetPairingRequest>,
    ) -> Result<Response<pb::GetPairingResponse>, Status> {
        let r = request.get_ref();
        let id = parse_id(&r.pairing_id, "pairing_id")?;
        let side = self.side(&request, &r.secret).await?;
        let view = self.0.services.pairing.get(side, id, i64::from(r.after_index)).await?;
        Ok(Response::new(pb::GetPairingResponse {
            state: pb_state(view.state).into(),
            messages: view
                .messages
                .into_iter()
                .map(|(i, payload)| pb::PairingMessage { index: index(i), payload })
                .collect(),
            expires_at_ms: view.expires_at_ms,
            session: view.session.map(session),
        }))
    }

    async fn approve_pairing(
        &self,
        request: Request<pb::ApprovePairingRequest>,
    ) -> Result<Response<pb::ApprovePairingResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.pairing_id, "pairing_id")?;
        let device = self.0.services.pairing.approve(&caller, id, &r.device_name).await?;
        Ok(Response::new(pb::ApprovePairingResponse { device_id: device.to_string() }))
    }

    async fn cancel_pairing(
        &self,
        request: Request<pb::CancelPairingRequest>,
    ) -> Result<Response<pb::CancelPairingResponse>, Status> {
        let r = request.get_ref();
        let id = parse_id(&r.pairing_id, "pairing_id")?;
        let side = self.side(&request, &r.secret).await?;
        self.0.services.pairing.cancel(side, id).await?;
        Ok(Response::new(pb::CancelPairingResponse {}))
    }
}
