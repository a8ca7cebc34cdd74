//! `kitsulan.v1.AvatarService`: account and group pictures (the image comes in the request;
//! downloads go through blob-store URLs).

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::avatar_service_server::AvatarService;
use tonic::{Request, Response, Status};

use super::attachment::blob_request;
use super::{Context, parse_id};
use crate::ids::{AccountId, AvatarId, ConversationId, GuildId};
use crate::services::avatars::{AvatarEvent, AvatarState};
use crate::services::{Error, ErrorReason};

pub struct AvatarApi(pub Context);

/// The wire form of an avatar's id and version.
pub fn avatar_info(avatar: Option<AvatarId>, version: i64) -> Option<pb::AvatarInfo> {
    Some(pb::AvatarInfo {
        avatar_id: avatar.map(|a| a.to_string()).unwrap_or_default(),
        avatar_version: u64::try_from(version).unwrap_or_default(),
    })
}

fn state(s: AvatarState) -> pb::SetAvatarResponse {
    pb::SetAvatarResponse { avatar: avatar_info(s.avatar, s.version) }
}

/// The gateway's form of an avatar event.
pub fn avatar_event(event: &AvatarEvent) -> pb::AvatarEvent {
    use pb::avatar_event::Owner;
    let owner = match (event.account, event.conversation) {
        (Some(account), _) => Some(Owner::AccountId(account.to_string())),
        (None, Some(group)) => Some(Owner::ConversationId(group.to_string())),
        (None, None) => None,
    };
    pb::AvatarEvent { owner, avatar: avatar_info(event.avatar, event.version) }
}

#[tonic::async_trait]
impl AvatarService for AvatarApi {
    async fn set_my_avatar(
        &self,
        request: Request<pb::SetMyAvatarRequest>,
    ) -> Result<Response<pb::SetAvatarResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let image = request.into_inner().image;
        let s = self.0.services.avatars.set_mine(&caller, image).await?;
        Ok(Response::new(state(s)))
    }

    async fn remove_my_avatar(
        &self,
        request: Request<pb::RemoveMyAvatarRequest>,
    ) -> Result<Response<pb::SetAvatarResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let s = self.0.services.avatars.remove_mine(&caller).await?;
        Ok(Response::new(state(s)))
    }

    async fn set_group_avatar(
        &self,
        request: Request<pb::SetGroupAvatarRequest>,
    ) -> Result<Response<pb::SetAvatarResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let conversation: ConversationId = parse_id(&r.conversation_id, "conversation_id")?;
        let s = self.0.services.avatars.set_group_avatar(&caller, conversation, r.image).await?;
        Ok(Response::new(state(s)))
    }

    async fn remove_group_avatar(
        &self,
        request: Request<pb::RemoveGroupAvatarRequest>,
    ) -> Result<Response<pb::SetAvatarResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let conversation: ConversationId = parse_id(&request.get_ref().conversation_id, "conversation_id")?;
        let s = self.0.services.avatars.remove_group_avatar(&caller, conversation).await?;
        Ok(Response::new(state(s)))
    }

    async fn set_guild_icon(
        &self,
        request: Request<pb::SetGuildIconRequest>,
    ) -> Result<Response<pb::SetAvatarResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let guild: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let s = self.0.services.avatars.set_guild_icon(&caller, guild, r.image).await?;
        Ok(Response::new(state(s)))
    }

    async fn remove_guild_icon(
        &self,
        request: Request<pb::RemoveGuildIconRequest>,
    ) -> Result<Response<pb::SetAvatarResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let guild: GuildId = parse_id(&request.get_ref().guild_id, "guild_id")?;
        let s = self.0.services.avatars.remove_guild_icon(&caller, guild).await?;
        Ok(Response::new(state(s)))
    }

    async fn get_avatar_url(
        &self,
        request: Request<pb::GetAvatarUrlRequest>,
    ) -> Result<Response<pb::GetAvatarUrlResponse>, Status> {
        use pb::get_avatar_url_request::Owner;
        let caller = self.0.caller(&request).await?;
        let avatars = &self.0.services.avatars;
        let (s, download) = match &request.get_ref().owner {
            Some(Owner::AccountId(id)) => {
                let account: AccountId = parse_id(id, "account_id")?;
                avatars.account_url(&caller, account).await?
            }
            Some(Owner::ConversationId(id)) => {
                let conversation: ConversationId = parse_id(id, "conversation_id")?;
                avatars.group_url(&caller, conversation).await?
            }
            Some(Owner::GuildId(id)) => {
                let guild: GuildId = parse_id(id, "guild_id")?;
                avatars.guild_url(&caller, guild).await?
            }
            None => {
                return Err(Error::invalid(
                    ErrorReason::IdInvalid,
                    "owner",
                    "give account_id, conversation_id or guild_id",
                )
                .into());
            }
        };
        Ok(Response::new(pb::GetAvatarUrlResponse {
            avatar: avatar_info(s.avatar, s.version),
            download: Some(blob_request(download)),
        }))
    }
}
