//! `kitsulan.v1.VoiceService`: joining and leaving voice channels on the SFU.

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::voice_service_server::VoiceService;
use tonic::{Request, Response, Status};

use super::{Context, parse_id};
use crate::ids::ConversationId;

pub struct VoiceApi(pub Context);

#[tonic::async_trait]
impl VoiceService for VoiceApi {
    async fn join_voice(
        &self,
        request: Request<pb::JoinVoiceRequest>,
    ) -> Result<Response<pb::JoinVoiceResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: ConversationId = parse_id(&r.conversation_id, "conversation_id")?;
        let answer_sdp = self.0.services.voice.join(&caller, id, r.offer_sdp).await?;
        Ok(Response::new(pb::JoinVoiceResponse { answer_sdp }))
    }

    async fn leave_voice(
        &self,
        request: Request<pb::LeaveVoiceRequest>,
    ) -> Result<Response<pb::LeaveVoiceResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: ConversationId = parse_id(&request.into_inner().conversation_id, "conversation_id")?;
        self.0.services.voice.leave(&caller, id).await?;
        Ok(Response::new(pb::LeaveVoiceResponse {}))
    }
}
