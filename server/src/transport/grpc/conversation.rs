//! `kitsulan.v1.ConversationService`: conversations, members and messages.

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::conversation_service_server::ConversationService;
use tonic::{Request, Response, Status};

use super::{Context, parse_id, parse_ids};
use crate::ids::MessageId;
use crate::services::conversations::{ConversationView, Draft};
use crate::services::{Error, ErrorReason};
use crate::store::{ConversationFilter, ConversationKind, MessageRecord, Role, SystemEntry};

pub struct ConversationApi(pub Context);

pub fn role(r: Role) -> pb::MemberRole {
    match r {
        Role::Owner => pb::MemberRole::Owner,
        Role::Admin => pb::MemberRole::Admin,
        Role::Member => pb::MemberRole::Member,
    }
}

pub fn seq(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

fn conversation(v: ConversationView) -> Option<pb::Conversation> {
    let c = v.conversation;
    Some(pb::Conversation {
        id: c.id.to_string(),
        kind: match c.kind {
            ConversationKind::Direct => pb::ConversationKind::Direct,
            ConversationKind::Group => pb::ConversationKind::Group,
        }
        .into(),
        mode: if c.e2ee { pb::ConversationMode::E2ee } else { pb::ConversationMode::Cloud }.into(),
        title: c.title.unwrap_or_default(),
        members: v
            .members
            .into_iter()
            .map(|m| pb::Member {
                account_id: m.account_id.to_string(),
                role: role(m.role).into(),
                joined_at_ms: m.joined_at_ms,
                read_seq: seq(m.read_seq),
            })
            .collect(),
        last_seq: seq(c.last_seq),
        last_activity_at_ms: c.last_activity_at_ms,
        created_at_ms: c.created_at_ms,
        unread_count: u32::try_from(v.unread_count).unwrap_or(u32::MAX),
        avatar: super::avatar_info(c.avatar_id, c.avatar_version),
        request: v.request,
        requested_by: v.requested_by.map(|a| a.to_string()).unwrap_or_default(),
    })
}

pub fn message(m: MessageRecord) -> pb::Message {
    pb::Message {
        id: m.id.to_string(),
        conversation_id: m.conversation_id.to_string(),
        seq: seq(m.seq),
        sender_account_id: m.sender_account_id.to_string(),
        sender_device_id: m.sender_device_id.to_string(),
        ciphertext: m.ciphertext.unwrap_or_default(),
        session_id: m.session_id,
        reply_to: m.reply_to.map(|r| r.to_string()).unwrap_or_default(),
        sent_at_ms: m.sent_at_ms,
        edited_at_ms: m.edited_at_ms,
        deleted_at_ms: m.deleted_at_ms,
        system: m.system.map(|entry| pb::SystemEvent {
            kind: match entry {
                SystemEntry::MemberAdded(_) => pb::SystemEventKind::MemberAdded,
                SystemEntry::MemberRemoved(_) => pb::SystemEventKind::MemberRemoved,
                SystemEntry::MemberLeft => pb::SystemEventKind::MemberLeft,
                SystemEntry::RoleChanged(..) => pb::SystemEventKind::RoleChanged,
                SystemEntry::TitleChanged(_) => pb::SystemEventKind::TitleChanged,
            }
            .into(),
            actor_account_id: m.sender_account_id.to_string(),
            target_account_id: entry.target().map(|t| t.to_string()).unwrap_or_default(),
            role: entry.role().map_or(pb::MemberRole::Unspecified, role).into(),
            title: entry.title().unwrap_or_default().to_owned(),
        }),
    }
}

fn seq_in(n: u64, field: &'static str) -> Result<i64, Error> {
    i64::try_from(n)
        .map_err(|_| Error::invalid(ErrorReason::SeqInvalid, field, "sequence number out of range"))
}

#[tonic::async_trait]
impl ConversationService for ConversationApi {
    async fn open_direct(
        &self,
        request: Request<pb::OpenDirectRequest>,
    ) -> Result<Response<pb::OpenDirectResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let other = parse_id(&request.get_ref().account_id, "account_id")?;
        let (view, created) = self.0.services.conversations.open_direct(&caller, other).await?;
        Ok(Response::new(pb::OpenDirectResponse { conversation: conversation(view), created }))
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::CreateGroupResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        if r.mode() == pb::ConversationMode::Cloud {
            return Err(Error::precondition(
                ErrorReason::ModeUnavailable,
                "cloud conversations are not available yet; groups are end-to-end encrypted",
            )
            .into());
        }
        let members = parse_ids(&r.member_ids, "member_ids")?;
        let view = self.0.services.conversations.create_group(&caller, &r.title, &members).await?;
        Ok(Response::new(pb::CreateGroupResponse { conversation: conversation(view) }))
    }

    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let filter = match r.filter() {
            pb::ConversationFilter::Unspecified => ConversationFilter::All,
            pb::ConversationFilter::Accepted => ConversationFilter::Accepted,
            pb::ConversationFilter::Requests => ConversationFilter::Requests,
        };
        let (views, next) =
            self.0.services.conversations.list(&caller, filter, r.limit, &r.page_token).await?;
        Ok(Response::new(pb::ListConversationsResponse {
            conversations: views.into_iter().filter_map(conversation).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id = parse_id(&request.get_ref().conversation_id, "conversation_id")?;
        let view = self.0.services.conversations.get(&caller, id).await?;
        Ok(Response::new(pb::GetConversationResponse { conversation: conversation(view) }))
    }

    async fn add_members(
        &self,
        request: Request<pb::AddMembersRequest>,
    ) -> Result<Response<pb::AddMembersResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let accounts = parse_ids(&r.account_ids, "account_ids")?;
        let view = self.0.services.conversations.add_members(&caller, id, &accounts).await?;
        Ok(Response::new(pb::AddMembersResponse { conversation: conversation(view) }))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let account = parse_id(&r.account_id, "account_id")?;
        let view = self.0.services.conversations.remove_member(&caller, id, account).await?;
        Ok(Response::new(pb::RemoveMemberResponse { conversation: conversation(view) }))
    }

    async fn set_member_role(
        &self,
        request: Request<pb::SetMemberRoleRequest>,
    ) -> Result<Response<pb::SetMemberRoleResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let account = parse_id(&r.account_id, "account_id")?;
        let new_role = match r.role() {
            pb::MemberRole::Admin => Role::Admin,
            pb::MemberRole::Member => Role::Member,
            _ => {
                return Err(Error::invalid(
                    ErrorReason::RoleInvalid,
                    "role",
                    "roles can be set to admin or member",
                )
                .into());
            }
        };
        let view = self.0.services.conversations.set_role(&caller, id, account, new_role).await?;
        Ok(Response::new(pb::SetMemberRoleResponse { conversation: conversation(view) }))
    }

    async fn leave_conversation(
        &self,
        request: Request<pb::LeaveConversationRequest>,
    ) -> Result<Response<pb::LeaveConversationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id = parse_id(&request.get_ref().conversation_id, "conversation_id")?;
        self.0.services.conversations.leave(&caller, id).await?;
        Ok(Response::new(pb::LeaveConversationResponse {}))
    }

    async fn rename_group(
        &self,
        request: Request<pb::RenameGroupRequest>,
    ) -> Result<Response<pb::RenameGroupResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let view = self.0.services.conversations.rename(&caller, id, &r.title).await?;
        Ok(Response::new(pb::RenameGroupResponse { conversation: conversation(view) }))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let message_id = parse_id(&r.message_id, "message_id")?;
        let reply_to: Option<MessageId> =
            if r.reply_to.is_empty() { None } else { Some(parse_id(&r.reply_to, "reply_to")?) };
        let attachments = parse_ids(&r.attachment_ids, "attachment_ids")?;
        let draft =
            Draft { message_id, ciphertext: r.ciphertext, session_id: r.session_id, reply_to, attachments };
        let stored = self.0.services.conversations.send(&caller, id, draft).await?;
        Ok(Response::new(pb::SendMessageResponse { message: Some(message(stored)) }))
    }

    async fn edit_message(
        &self,
        request: Request<pb::EditMessageRequest>,
    ) -> Result<Response<pb::EditMessageResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let message_id = parse_id(&r.message_id, "message_id")?;
        let edited =
            self.0.services.conversations.edit(&caller, id, message_id, &r.ciphertext, &r.session_id).await?;
        Ok(Response::new(pb::EditMessageResponse { message: Some(message(edited)) }))
    }

    async fn delete_message(
        &self,
        request: Request<pb::DeleteMessageRequest>,
    ) -> Result<Response<pb::DeleteMessageResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let message_id = parse_id(&r.message_id, "message_id")?;
        let deleted = self.0.services.conversations.delete(&caller, id, message_id).await?;
        Ok(Response::new(pb::DeleteMessageResponse { message: Some(message(deleted)) }))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let forward = r.direction() == pb::HistoryDirection::Forward;
        let cursor = seq_in(r.cursor, "cursor")?;
        let (page, more) =
            self.0.services.conversations.history(&caller, id, cursor, forward, r.limit).await?;
        Ok(Response::new(pb::ListMessagesResponse {
            messages: page.into_iter().map(message).collect(),
            more,
        }))
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let (read, unread) =
            self.0.services.conversations.mark_read(&caller, id, seq_in(r.seq, "seq")?).await?;
        Ok(Response::new(pb::MarkReadResponse {
            read_seq: seq(read),
            unread_count: u32::try_from(unread).unwrap_or(u32::MAX),
        }))
    }

    async fn accept_request(
        &self,
        request: Request<pb::AcceptRequestRequest>,
    ) -> Result<Response<pb::AcceptRequestResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id = parse_id(&request.get_ref().conversation_id, "conversation_id")?;
        let view = self.0.services.conversations.accept_request(&caller, id).await?;
        Ok(Response::new(pb::AcceptRequestResponse { conversation: conversation(view) }))
    }

    async fn decline_request(
        &self,
        request: Request<pb::DeclineRequestRequest>,
    ) -> Result<Response<pb::DeclineRequestResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id = parse_id(&request.get_ref().conversation_id, "conversation_id")?;
        self.0.services.conversations.decline_request(&caller, id).await?;
        Ok(Response::new(pb::DeclineRequestResponse {}))
    }

    async fn block(&self, request: Request<pb::BlockRequest>) -> Result<Response<pb::BlockResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let account = parse_id(&request.get_ref().account_id, "account_id")?;
        self.0.services.conversations.block(&caller, account).await?;
        Ok(Response::new(pb::BlockResponse {}))
    }

    async fn unblock(
        &self,
        request: Request<pb::UnblockRequest>,
    ) -> Result<Response<pb::UnblockResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let account = parse_id(&request.get_ref().account_id, "account_id")?;
        self.0.services.conversations.unblock(&caller, account).await?;
        Ok(Response::new(pb::UnblockResponse {}))
    }

    async fn list_blocked(
        &self,
        request: Request<pb::ListBlockedRequest>,
    ) -> Result<Response<pb::ListBlockedResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let blocked = self.0.services.conversations.blocked(&caller).await?;
        Ok(Response::new(pb::ListBlockedResponse {
            blocked: blocked
                .into_iter()
                .map(|(account, at)| pb::BlockedAccount {
                    account_id: account.to_string(),
                    blocked_at_ms: at,
                })
                .collect(),
        }))
    }
}
