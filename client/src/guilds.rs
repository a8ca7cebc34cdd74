//! Guilds (`GuildService`): communities with channels, roles, invites and moderation.

use kitsulan_proto::v1::guild_service_client::GuildServiceClient;
use kitsulan_proto::v1::{
    CreateChannelRequest, CreateGuildRequest, CreateInviteRequest, CreateInviteResponse, CreateRoleRequest,
    GetGuildRequest, GetGuildResponse, Guild, GuildChannel, GuildChannelKind, GuildRole, JoinGuildRequest,
    JoinGuildResponse, SetMemberRolesRequest,
};
use tonic::Status;

use crate::client::{Authed, Client};

fn present<T>(value: Option<T>, what: &str) -> Result<T, Status> {
    value.ok_or_else(|| Status::internal(format!("no {what} in the answer")))
}

impl Client {
    /// `GuildService`, as this device.
    pub fn guilds(&self) -> GuildServiceClient<Authed> {
        GuildServiceClient::with_interceptor(self.channel(), self.headers())
    }

    /// `CreateGuild`.
    pub async fn create_guild(&self, name: &str) -> Result<Guild, Status> {
        let request = CreateGuildRequest { name: name.to_owned(), description: String::new() };
        present(self.guilds().create_guild(request).await?.into_inner().guild, "guild")
    }

    /// `GetGuild`.
    pub async fn get_guild(&self, guild_id: &str) -> Result<GetGuildResponse, Status> {
        Ok(self.guilds().get_guild(GetGuildRequest { guild_id: guild_id.to_owned() }).await?.into_inner())
    }

    /// `CreateChannel` (`private`: hidden from `@everyone`).
    pub async fn create_channel(
        &self,
        guild_id: &str,
        kind: GuildChannelKind,
        name: &str,
        parent_id: &str,
        private: bool,
    ) -> Result<GuildChannel, Status> {
        let request = CreateChannelRequest {
            guild_id: guild_id.to_owned(),
            kind: kind.into(),
            name: name.to_owned(),
            topic: String::new(),
            parent_id: parent_id.to_owned(),
            private,
            e2ee: false,
        };
        present(self.guilds().create_channel(request).await?.into_inner().channel, "channel")
    }

    /// `CreateChannel` of a private end-to-end encrypted text channel, with the caller its
    /// first member.
    pub async fn create_e2ee_channel(
        &self,
        guild_id: &str,
        name: &str,
        parent_id: &str,
    ) -> Result<GuildChannel, Status> {
        let request = CreateChannelRequest {
            guild_id: guild_id.to_owned(),
            kind: GuildChannelKind::Text.into(),
            name: name.to_owned(),
            topic: String::new(),
            parent_id: parent_id.to_owned(),
            private: true,
            e2ee: true,
        };
        present(self.guilds().create_channel(request).await?.into_inner().channel, "channel")
    }

    /// `CreateRole`.
    pub async fn create_role(
        &self,
        guild_id: &str,
        name: &str,
        permissions: u64,
    ) -> Result<GuildRole, Status> {
        let request =
            CreateRoleRequest { guild_id: guild_id.to_owned(), name: name.to_owned(), color: 0, permissions };
        present(self.guilds().create_role(request).await?.into_inner().role, "role")
    }

    /// `SetMemberRoles`.
    pub async fn set_member_roles(
        &self,
        guild_id: &str,
        account_id: &str,
        role_ids: &[&str],
    ) -> Result<(), Status> {
        let request = SetMemberRolesRequest {
            guild_id: guild_id.to_owned(),
            account_id: account_id.to_owned(),
            role_ids: role_ids.iter().map(|r| (*r).to_owned()).collect(),
        };
        self.guilds().set_member_roles(request).await?;
        Ok(())
    }

    /// `CreateInvite` (`expires_in_s` 0: never; `max_uses` 0: any number).
    pub async fn create_invite(
        &self,
        guild_id: &str,
        expires_in_s: u32,
        max_uses: u32,
    ) -> Result<CreateInviteResponse, Status> {
        let request = CreateInviteRequest { guild_id: guild_id.to_owned(), expires_in_s, max_uses };
        Ok(self.guilds().create_invite(request).await?.into_inner())
    }

    /// `JoinGuild`.
    pub async fn join_guild(&self, code: &str) -> Result<JoinGuildResponse, Status> {
        Ok(self.guilds().join_guild(JoinGuildRequest { code: code.to_owned() }).await?.into_inner())
    }
}
