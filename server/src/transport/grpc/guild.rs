//! `kitsulan.v1.GuildService`: guilds, channels, roles, invites and moderation
//! (`services::guilds`).

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::guild_service_server::GuildService;
use tonic::{Request, Response, Status};

use super::{Context, parse_id, parse_ids};
use crate::ids::{AccountId, ChannelId, GuildId, RoleId};
use crate::services::guilds::{ChannelSpec, ChannelView, MemberPage};
use crate::services::{Error, ErrorReason};
use crate::store::{
    AuditAction, AuditRecord, BanRecord, ChannelRecord, GuildChannelKind, GuildMemberRecord, GuildRecord,
    GuildRoleRecord, InviteRecord, OverwriteRecord, OverwriteTarget,
};

pub struct GuildApi(pub Context);

fn guild(g: GuildRecord) -> pb::Guild {
    pb::Guild {
        id: g.id.to_string(),
        name: g.name,
        description: g.description,
        owner_id: g.owner.to_string(),
        member_count: u64::try_from(g.member_count).unwrap_or_default(),
        created_at_ms: g.created_at_ms,
        icon_id: g.icon_id.map(|i| i.to_string()).unwrap_or_default(),
        icon_version: u64::try_from(g.icon_version).unwrap_or_default(),
    }
}

fn kind(k: GuildChannelKind) -> pb::GuildChannelKind {
    match k {
        GuildChannelKind::Category => pb::GuildChannelKind::Category,
        GuildChannelKind::Text => pb::GuildChannelKind::Text,
        GuildChannelKind::Announcement => pb::GuildChannelKind::Announcement,
        GuildChannelKind::Voice => pb::GuildChannelKind::Voice,
    }
}

fn overwrite(o: &OverwriteRecord) -> pb::PermissionOverwrite {
    use pb::permission_overwrite::Target;
    pb::PermissionOverwrite {
        target: Some(match o.target {
            OverwriteTarget::Role(role) => Target::RoleId(role.to_string()),
            OverwriteTarget::Member(account) => Target::AccountId(account.to_string()),
        }),
        allow: o.allow,
        deny: o.deny,
    }
}

fn channel(
    c: ChannelRecord,
    permissions: u64,
    read_seq: i64,
    mention_count: i64,
    private: bool,
) -> pb::GuildChannel {
    pb::GuildChannel {
        id: c.id.to_string(),
        kind: kind(c.kind).into(),
        e2ee: c.e2ee,
        parent_id: c.parent.map(|p| p.to_string()).unwrap_or_default(),
        position: c.position,
        name: c.name,
        topic: c.topic,
        slow_mode_s: u32::try_from(c.slow_mode_s).unwrap_or_default(),
        overwrites: c.overwrites.iter().map(overwrite).collect(),
        permissions,
        last_seq: c.last_seq,
        read_seq,
        mention_count: u32::try_from(mention_count).unwrap_or(u32::MAX),
        private,
        voice_account_ids: Vec::new(),
    }
}

fn channel_view(v: ChannelView) -> pb::GuildChannel {
    let voice = v.voice.iter().map(ToString::to_string).collect();
    pb::GuildChannel {
        voice_account_ids: voice,
        ..channel(v.channel, v.permissions.bits(), v.read_seq, v.mention_count, v.private)
    }
}

fn role(r: GuildRoleRecord) -> pb::GuildRole {
    pb::GuildRole {
        id: r.id.to_string(),
        name: r.name,
        color: r.color,
        position: r.position,
        permissions: r.permissions,
    }
}

fn member(m: GuildMemberRecord, online: bool) -> pb::GuildMember {
    pb::GuildMember {
        account_id: m.account_id.to_string(),
        role_ids: m.roles.iter().map(ToString::to_string).collect(),
        joined_at_ms: m.joined_at_ms,
        timed_out_until_ms: m.timed_out_until_ms,
        online,
    }
}

fn invite(i: InviteRecord) -> pb::GuildInvite {
    pb::GuildInvite {
        id: i.id.to_string(),
        code_hint: i.code_hint,
        created_by: i.created_by.to_string(),
        created_at_ms: i.created_at_ms,
        expires_at_ms: i.expires_at_ms,
        max_uses: u32::try_from(i.max_uses).unwrap_or_default(),
        uses: u32::try_from(i.uses).unwrap_or_default(),
        revoked: i.revoked_at_ms != 0,
    }
}

fn ban(b: BanRecord) -> pb::GuildBan {
    pb::GuildBan {
        account_id: b.account_id.to_string(),
        banned_by: b.banned_by.to_string(),
        reason: b.reason,
        created_at_ms: b.created_at_ms,
    }
}

fn action(a: AuditAction) -> pb::AuditAction {
    use pb::AuditAction as W;
    match a {
        AuditAction::GuildCreated => W::GuildCreated,
        AuditAction::GuildUpdated => W::GuildUpdated,
        AuditAction::OwnershipTransferred => W::OwnershipTransferred,
        AuditAction::ChannelCreated => W::ChannelCreated,
        AuditAction::ChannelUpdated => W::ChannelUpdated,
        AuditAction::ChannelDeleted => W::ChannelDeleted,
        AuditAction::ChannelsArranged => W::ChannelsArranged,
        AuditAction::OverwriteSet => W::OverwriteSet,
        AuditAction::OverwriteRemoved => W::OverwriteRemoved,
        AuditAction::RoleCreated => W::RoleCreated,
        AuditAction::RoleUpdated => W::RoleUpdated,
        AuditAction::RoleDeleted => W::RoleDeleted,
        AuditAction::RolesArranged => W::RolesArranged,
        AuditAction::MemberRolesChanged => W::MemberRolesChanged,
        AuditAction::MemberKicked => W::MemberKicked,
        AuditAction::MemberBanned => W::MemberBanned,
        AuditAction::MemberUnbanned => W::MemberUnbanned,
        AuditAction::MemberTimedOut => W::MemberTimedOut,
        AuditAction::InviteCreated => W::InviteCreated,
        AuditAction::InviteRevoked => W::InviteRevoked,
        AuditAction::MessageDeleted => W::MessageDeleted,
    }
}

fn audit_entry(r: AuditRecord) -> pb::AuditLogEntry {
    pb::AuditLogEntry {
        id: r.id.to_string(),
        actor_id: r.entry.actor.to_string(),
        action: action(r.entry.action).into(),
        target_id: r.entry.target.map(|t| t.to_string()).unwrap_or_default(),
        detail: r.entry.detail,
        at_ms: r.entry.at_ms,
    }
}

fn channel_kind(raw: i32) -> Result<GuildChannelKind, Error> {
    match pb::GuildChannelKind::try_from(raw) {
        Ok(pb::GuildChannelKind::Category) => Ok(GuildChannelKind::Category),
        Ok(pb::GuildChannelKind::Text) => Ok(GuildChannelKind::Text),
        Ok(pb::GuildChannelKind::Announcement) => Ok(GuildChannelKind::Announcement),
        Ok(pb::GuildChannelKind::Voice) => Ok(GuildChannelKind::Voice),
        _ => Err(Error::invalid(
            ErrorReason::ChannelKindInvalid,
            "kind",
            "a channel is a category, text, announcement or voice",
        )),
    }
}

fn optional_id<T: std::str::FromStr<Err = crate::ids::IdError>>(
    raw: &str,
    field: &'static str,
) -> Result<Option<T>, Error> {
    if raw.trim().is_empty() { Ok(None) } else { parse_id(raw, field).map(Some) }
}

fn overwrite_target(
    role_id: Option<&str>,
    account_id: Option<&str>,
    field: &'static str,
) -> Result<OverwriteTarget, Error> {
    match (role_id, account_id) {
        (Some(role), None) => Ok(OverwriteTarget::Role(parse_id(role, "role_id")?)),
        (None, Some(account)) => Ok(OverwriteTarget::Member(parse_id(account, "account_id")?)),
        _ => Err(Error::invalid(ErrorReason::IdInvalid, field, "give role_id or account_id")),
    }
}

#[tonic::async_trait]
impl GuildService for GuildApi {
    async fn create_guild(
        &self,
        request: Request<pb::CreateGuildRequest>,
    ) -> Result<Response<pb::CreateGuildResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let g = self.0.services.guilds.create(&caller, &r.name, &r.description).await?;
        Ok(Response::new(pb::CreateGuildResponse { guild: Some(guild(g)) }))
    }

    async fn list_guilds(
        &self,
        request: Request<pb::ListGuildsRequest>,
    ) -> Result<Response<pb::ListGuildsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let guilds = self.0.services.guilds.list(&caller).await?;
        Ok(Response::new(pb::ListGuildsResponse { guilds: guilds.into_iter().map(guild).collect() }))
    }

    async fn get_guild(
        &self,
        request: Request<pb::GetGuildRequest>,
    ) -> Result<Response<pb::GetGuildResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: GuildId = parse_id(&request.get_ref().guild_id, "guild_id")?;
        let details = self.0.services.guilds.details(&caller, id).await?;
        let view = details.view;
        Ok(Response::new(pb::GetGuildResponse {
            my_role_ids: view.me.roles.iter().map(ToString::to_string).collect(),
            my_timed_out_until_ms: view.me.timed_out_until_ms,
            my_permissions: details.permissions.bits(),
            channels: details.channels.into_iter().map(channel_view).collect(),
            roles: view.roles.into_iter().map(role).collect(),
            guild: Some(guild(view.guild)),
        }))
    }

    async fn update_guild(
        &self,
        request: Request<pb::UpdateGuildRequest>,
    ) -> Result<Response<pb::UpdateGuildResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let g = self.0.services.guilds.update(&caller, id, &r.name, &r.description).await?;
        Ok(Response::new(pb::UpdateGuildResponse { guild: Some(guild(g)) }))
    }

    async fn delete_guild(
        &self,
        request: Request<pb::DeleteGuildRequest>,
    ) -> Result<Response<pb::DeleteGuildResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        self.0.services.guilds.delete(&caller, id, &r.confirm_name).await?;
        Ok(Response::new(pb::DeleteGuildResponse {}))
    }

    async fn leave_guild(
        &self,
        request: Request<pb::LeaveGuildRequest>,
    ) -> Result<Response<pb::LeaveGuildResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: GuildId = parse_id(&request.get_ref().guild_id, "guild_id")?;
        self.0.services.guilds.leave(&caller, id).await?;
        Ok(Response::new(pb::LeaveGuildResponse {}))
    }

    async fn transfer_guild(
        &self,
        request: Request<pb::TransferGuildRequest>,
    ) -> Result<Response<pb::TransferGuildResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let to: AccountId = parse_id(&r.account_id, "account_id")?;
        self.0.services.guilds.transfer(&caller, id, to).await?;
        Ok(Response::new(pb::TransferGuildResponse {}))
    }

    async fn create_channel(
        &self,
        request: Request<pb::CreateChannelRequest>,
    ) -> Result<Response<pb::CreateChannelResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let kind = channel_kind(r.kind)?;
        let parent: Option<ChannelId> = optional_id(&r.parent_id, "parent_id")?;
        let spec =
            ChannelSpec { kind, name: r.name, topic: r.topic, parent, private: r.private, e2ee: r.e2ee };
        let c = self.0.services.guilds.create_channel(&caller, id, spec).await?;
        Ok(Response::new(pb::CreateChannelResponse { channel: Some(channel_view(c)) }))
    }

    async fn update_channel(
        &self,
        request: Request<pb::UpdateChannelRequest>,
    ) -> Result<Response<pb::UpdateChannelResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: ChannelId = parse_id(&r.channel_id, "channel_id")?;
        let c = self.0.services.guilds.update_channel(&caller, id, &r.name, &r.topic, r.slow_mode_s).await?;
        Ok(Response::new(pb::UpdateChannelResponse { channel: Some(channel_view(c)) }))
    }

    async fn delete_channel(
        &self,
        request: Request<pb::DeleteChannelRequest>,
    ) -> Result<Response<pb::DeleteChannelResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: ChannelId = parse_id(&request.get_ref().channel_id, "channel_id")?;
        self.0.services.guilds.delete_channel(&caller, id).await?;
        Ok(Response::new(pb::DeleteChannelResponse {}))
    }

    async fn arrange_channels(
        &self,
        request: Request<pb::ArrangeChannelsRequest>,
    ) -> Result<Response<pb::ArrangeChannelsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let layout = r
            .layout
            .iter()
            .map(|p| {
                Ok((
                    parse_id(&p.channel_id, "layout.channel_id")?,
                    optional_id(&p.parent_id, "layout.parent_id")?,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.0.services.guilds.arrange_channels(&caller, id, &layout).await?;
        Ok(Response::new(pb::ArrangeChannelsResponse {}))
    }

    async fn set_channel_overwrite(
        &self,
        request: Request<pb::SetChannelOverwriteRequest>,
    ) -> Result<Response<pb::SetChannelOverwriteResponse>, Status> {
        use pb::permission_overwrite::Target;
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: ChannelId = parse_id(&r.channel_id, "channel_id")?;
        let o = r.overwrite.unwrap_or_default();
        let target = match &o.target {
            Some(Target::RoleId(role)) => overwrite_target(Some(role), None, "overwrite.target")?,
            Some(Target::AccountId(account)) => overwrite_target(None, Some(account), "overwrite.target")?,
            None => overwrite_target(None, None, "overwrite.target")?,
        };
        let record = OverwriteRecord { target, allow: o.allow, deny: o.deny };
        self.0.services.guilds.set_overwrite(&caller, id, record).await?;
        Ok(Response::new(pb::SetChannelOverwriteResponse {}))
    }

    async fn remove_channel_overwrite(
        &self,
        request: Request<pb::RemoveChannelOverwriteRequest>,
    ) -> Result<Response<pb::RemoveChannelOverwriteResponse>, Status> {
        use pb::remove_channel_overwrite_request::Target;
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: ChannelId = parse_id(&r.channel_id, "channel_id")?;
        let target = match &r.target {
            Some(Target::RoleId(role)) => overwrite_target(Some(role), None, "target")?,
            Some(Target::AccountId(account)) => overwrite_target(None, Some(account), "target")?,
            None => overwrite_target(None, None, "target")?,
        };
        self.0.services.guilds.remove_overwrite(&caller, id, target).await?;
        Ok(Response::new(pb::RemoveChannelOverwriteResponse {}))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let created =
            self.0.services.guilds.create_role(&caller, id, &r.name, r.color, r.permissions).await?;
        Ok(Response::new(pb::CreateRoleResponse { role: Some(role(created)) }))
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::UpdateRoleResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let role_id: RoleId = parse_id(&r.role_id, "role_id")?;
        self.0.services.guilds.update_role(&caller, id, role_id, &r.name, r.color, r.permissions).await?;
        Ok(Response::new(pb::UpdateRoleResponse {}))
    }

    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let role_id: RoleId = parse_id(&r.role_id, "role_id")?;
        self.0.services.guilds.delete_role(&caller, id, role_id).await?;
        Ok(Response::new(pb::DeleteRoleResponse {}))
    }

    async fn arrange_roles(
        &self,
        request: Request<pb::ArrangeRolesRequest>,
    ) -> Result<Response<pb::ArrangeRolesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let roles: Vec<RoleId> = parse_ids(&r.role_ids, "role_ids")?;
        self.0.services.guilds.arrange_roles(&caller, id, &roles).await?;
        Ok(Response::new(pb::ArrangeRolesResponse {}))
    }

    async fn set_member_roles(
        &self,
        request: Request<pb::SetMemberRolesRequest>,
    ) -> Result<Response<pb::SetMemberRolesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let account: AccountId = parse_id(&r.account_id, "account_id")?;
        let roles: Vec<RoleId> = parse_ids(&r.role_ids, "role_ids")?;
        self.0.services.guilds.set_member_roles(&caller, id, account, &roles).await?;
        Ok(Response::new(pb::SetMemberRolesResponse {}))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let after: Option<AccountId> = optional_id(&r.after, "after")?;
        let page = MemberPage { after, limit: r.limit, online_only: r.online_only };
        let members = self.0.services.guilds.members(&caller, id, page).await?;
        let members = members.into_iter().map(|(m, online)| member(m, online)).collect();
        Ok(Response::new(pb::ListMembersResponse { members }))
    }

    async fn kick_member(
        &self,
        request: Request<pb::KickMemberRequest>,
    ) -> Result<Response<pb::KickMemberResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let account: AccountId = parse_id(&r.account_id, "account_id")?;
        self.0.services.guilds.kick(&caller, id, account, &r.reason).await?;
        Ok(Response::new(pb::KickMemberResponse {}))
    }

    async fn ban_member(
        &self,
        request: Request<pb::BanMemberRequest>,
    ) -> Result<Response<pb::BanMemberResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let account: AccountId = parse_id(&r.account_id, "account_id")?;
        let delete = std::time::Duration::from_secs(u64::from(r.delete_messages_s));
        self.0.services.guilds.ban(&caller, id, account, &r.reason, delete).await?;
        Ok(Response::new(pb::BanMemberResponse {}))
    }

    async fn unban_member(
        &self,
        request: Request<pb::UnbanMemberRequest>,
    ) -> Result<Response<pb::UnbanMemberResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let account: AccountId = parse_id(&r.account_id, "account_id")?;
        self.0.services.guilds.unban(&caller, id, account).await?;
        Ok(Response::new(pb::UnbanMemberResponse {}))
    }

    async fn list_bans(
        &self,
        request: Request<pb::ListBansRequest>,
    ) -> Result<Response<pb::ListBansResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: GuildId = parse_id(&request.get_ref().guild_id, "guild_id")?;
        let bans = self.0.services.guilds.bans(&caller, id).await?;
        Ok(Response::new(pb::ListBansResponse { bans: bans.into_iter().map(ban).collect() }))
    }

    async fn time_out_member(
        &self,
        request: Request<pb::TimeOutMemberRequest>,
    ) -> Result<Response<pb::TimeOutMemberResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let account: AccountId = parse_id(&r.account_id, "account_id")?;
        let until = self.0.services.guilds.time_out(&caller, id, account, r.duration_s, &r.reason).await?;
        Ok(Response::new(pb::TimeOutMemberResponse { timed_out_until_ms: until }))
    }

    async fn create_invite(
        &self,
        request: Request<pb::CreateInviteRequest>,
    ) -> Result<Response<pb::CreateInviteResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let (made, code) =
            self.0.services.guilds.create_invite(&caller, id, r.expires_in_s, r.max_uses).await?;
        Ok(Response::new(pb::CreateInviteResponse { invite: Some(invite(made)), code }))
    }

    async fn list_invites(
        &self,
        request: Request<pb::ListInvitesRequest>,
    ) -> Result<Response<pb::ListInvitesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id: GuildId = parse_id(&request.get_ref().guild_id, "guild_id")?;
        let invites = self.0.services.guilds.invites(&caller, id).await?;
        Ok(Response::new(pb::ListInvitesResponse { invites: invites.into_iter().map(invite).collect() }))
    }

    async fn revoke_invite(
        &self,
        request: Request<pb::RevokeInviteRequest>,
    ) -> Result<Response<pb::RevokeInviteResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let invite_id = parse_id(&r.invite_id, "invite_id")?;
        self.0.services.guilds.revoke_invite(&caller, id, invite_id).await?;
        Ok(Response::new(pb::RevokeInviteResponse {}))
    }

    async fn get_invite(
        &self,
        request: Request<pb::GetInviteRequest>,
    ) -> Result<Response<pb::GetInviteResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let (g, i, member) = self.0.services.guilds.invite_preview(&caller, &request.get_ref().code).await?;
        Ok(Response::new(pb::GetInviteResponse {
            guild_id: g.id.to_string(),
            guild_name: g.name,
            guild_description: g.description,
            member_count: u64::try_from(g.member_count).unwrap_or_default(),
            member,
            expires_at_ms: i.expires_at_ms,
        }))
    }

    async fn join_guild(
        &self,
        request: Request<pb::JoinGuildRequest>,
    ) -> Result<Response<pb::JoinGuildResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let (g, joined) = self.0.services.guilds.join(&caller, &request.get_ref().code).await?;
        Ok(Response::new(pb::JoinGuildResponse { guild: Some(guild(g)), joined }))
    }

    async fn list_audit_log(
        &self,
        request: Request<pb::ListAuditLogRequest>,
    ) -> Result<Response<pb::ListAuditLogResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id: GuildId = parse_id(&r.guild_id, "guild_id")?;
        let before = optional_id(&r.before, "before")?;
        let entries = self.0.services.guilds.audit_log(&caller, id, before, r.limit).await?;
        Ok(Response::new(pb::ListAuditLogResponse {
            entries: entries.into_iter().map(audit_entry).collect(),
        }))
    }
}
