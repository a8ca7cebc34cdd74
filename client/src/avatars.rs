//! Avatars as a device uses them (docs/attachments.md, "Avatars"): `AvatarService` calls on
//! [`Client`], and fetching the PNG from the URL `GetAvatarUrl` hands out.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use kitsulan_proto::v1::avatar_service_client::AvatarServiceClient;
use kitsulan_proto::v1::{
    AvatarInfo, GetAvatarUrlRequest, GetAvatarUrlResponse, GetProfilesRequest, Profile,
    RemoveGroupAvatarRequest, RemoveMyAvatarRequest, SetGroupAvatarRequest, SetMyAvatarRequest,
    get_avatar_url_request,
};
use tonic::Status;

use crate::attachments::blob_url;
use crate::client::{Authed, Client};

fn info(avatar: Option<AvatarInfo>) -> Result<AvatarInfo, Status> {
    avatar.ok_or_else(|| Status::internal("no avatar in the answer"))
}

impl Client {
    /// `AvatarService`, as this device.
    pub fn avatars(&self) -> AvatarServiceClient<Authed> {
        AvatarServiceClient::with_interceptor(self.channel(), self.headers())
    }

    /// `SetMyAvatar`.
    pub async fn set_my_avatar(&self, image: Vec<u8>) -> Result<AvatarInfo, Status> {
        info(self.avatars().set_my_avatar(SetMyAvatarRequest { image }).await?.into_inner().avatar)
    }

    /// `RemoveMyAvatar`.
    pub async fn remove_my_avatar(&self) -> Result<AvatarInfo, Status> {
        info(self.avatars().remove_my_avatar(RemoveMyAvatarRequest {}).await?.into_inner().avatar)
    }

    /// `SetGroupAvatar`.
    pub async fn set_group_avatar(
        &self,
        conversation_id: &str,
        image: Vec<u8>,
    ) -> Result<AvatarInfo, Status> {
        let request = SetGroupAvatarRequest { conversation_id: conversation_id.to_owned(), image };
        info(self.avatars().set_group_avatar(request).await?.into_inner().avatar)
    }

    /// `RemoveGroupAvatar`.
    pub async fn remove_group_avatar(&self, conversation_id: &str) -> Result<AvatarInfo, Status> {
        let request = RemoveGroupAvatarRequest { conversation_id: conversation_id.to_owned() };
        info(self.avatars().remove_group_avatar(request).await?.into_inner().avatar)
    }

    /// `GetAvatarUrl` for an account.
    pub async fn account_avatar_url(&self, account_id: &str) -> Result<GetAvatarUrlResponse, Status> {
        let owner = Some(get_avatar_url_request::Owner::AccountId(account_id.to_owned()));
        Ok(self.avatars().get_avatar_url(GetAvatarUrlRequest { owner }).await?.into_inner())
    }

    /// `GetAvatarUrl` for a group.
    pub async fn group_avatar_url(&self, conversation_id: &str) -> Result<GetAvatarUrlResponse, Status> {
        let owner = Some(get_avatar_url_request::Owner::ConversationId(conversation_id.to_owned()));
        Ok(self.avatars().get_avatar_url(GetAvatarUrlRequest { owner }).await?.into_inner())
    }

    /// `SetGuildIcon`.
    pub async fn set_guild_icon(&self, guild_id: &str, image: Vec<u8>) -> Result<AvatarInfo, Status> {
        let request = kitsulan_proto::v1::SetGuildIconRequest { guild_id: guild_id.to_owned(), image };
        info(self.avatars().set_guild_icon(request).await?.into_inner().avatar)
    }

    /// `RemoveGuildIcon`.
    pub async fn remove_guild_icon(&self, guild_id: &str) -> Result<AvatarInfo, Status> {
        let request = kitsulan_proto::v1::RemoveGuildIconRequest { guild_id: guild_id.to_owned() };
        info(self.avatars().remove_guild_icon(request).await?.into_inner().avatar)
    }

    /// `GetAvatarUrl` of a guild's icon.
    pub async fn guild_icon_url(&self, guild_id: &str) -> Result<GetAvatarUrlResponse, Status> {
        let owner = Some(get_avatar_url_request::Owner::GuildId(guild_id.to_owned()));
        Ok(self.avatars().get_avatar_url(GetAvatarUrlRequest { owner }).await?.into_inner())
    }

    /// `GetProfiles` of one account.
    pub async fn profile(&self, account_id: &str) -> Result<Profile, Status> {
        let request = GetProfilesRequest { account_ids: vec![account_id.to_owned()] };
        let profiles = self.account().get_profiles(request).await?.into_inner().profiles;
        profiles.into_iter().next().ok_or_else(|| Status::not_found("no such profile"))
    }
}

/// A downloaded avatar: its content type and bytes.
#[derive(Debug)]
pub struct Fetched {
    /// `content-type` of the answer.
    pub content_type: String,
    /// The image.
    pub bytes: Vec<u8>,
}

/// GETs the avatar a `GetAvatarUrl` answer points at (S3 or this server); fails unless 200.
pub async fn fetch_avatar(server_url: &str, answer: &GetAvatarUrlResponse) -> anyhow::Result<Fetched> {
    let request = answer.download.as_ref().context("no download in the answer")?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let response = client.get(blob_url(server_url, request)).send().await.context("GET the avatar")?;
    ensure!(response.status().as_u16() == 200, "GET the avatar: HTTP {}", response.status());
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(Fetched { content_type, bytes: response.bytes().await?.to_vec() })
}
