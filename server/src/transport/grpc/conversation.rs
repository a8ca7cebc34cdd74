//! `kitsulan.v1.ConversationService`: conversations, members and messages.

use kitsulan_content::rules;
use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::conversation_service_server::ConversationService;
use prost::Message as _;
use tonic::{Request, Response, Status};

use super::{Context, parse_id, parse_ids};
use crate::ids::MessageId;
use crate::services::conversations::{CloudDraft, ConversationView, Draft, Payload};
use crate::services::message_extras::{Search, snippet};
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
            ConversationKind::Channel => pb::ConversationKind::Channel,
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
        mention_count: u32::try_from(v.mention_count).unwrap_or(u32::MAX),
        message_timer_seconds: u32::try_from(c.message_timer_s).unwrap_or(0),
    })
}

pub fn message(m: MessageRecord) -> pb::Message {
    // The server wrote these bytes from a Content it decoded (`cloud_draft`), so they decode.
    let content =
        m.content.as_deref().and_then(|bytes| kitsulan_content::Content::decode(bytes).ok()).map(Box::new);
    pb::Message {
        content,
        expires_at_ms: m.expires_at_ms,
        pinned_at_ms: m.pinned_at_ms,
        updated_at_ms: m.updated_at_ms,
        pinned_by: m.pinned_by.map(|a| a.to_string()).unwrap_or_default(),
        reactions: m
            .reactions
            .into_iter()
            .map(|g| pb::ReactionCount {
                emoji: g.emoji,
                count: u32::try_from(g.count).unwrap_or(u32::MAX),
                account_ids: g.accounts.iter().map(ToString::to_string).collect(),
            })
            .collect(),
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
                SystemEntry::TimerChanged(_) => pb::SystemEventKind::TimerChanged,
            }
            .into(),
            actor_account_id: m.sender_account_id.to_string(),
            target_account_id: entry.target().map(|t| t.to_string()).unwrap_or_default(),
            role: entry.role().map_or(pb::MemberRole::Unspecified, role).into(),
            title: entry.title().unwrap_or_default().to_owned(),
            timer_seconds: entry.timer().map_or(0, |s| u32::try_from(s).unwrap_or(0)),
        }),
    }
}

/// The largest Content of a cloud message, encoded.
const MAX_CONTENT: usize = 64 * 1024;

fn content_invalid(message: impl Into<String>) -> Error {
    Error::invalid(ErrorReason::ContentInvalid, "content", message)
}

/// `CONTENT_INVALID` for a text or file that breaks the rules devices write by.
fn problem(p: rules::Problem) -> Error {
    content_invalid(match p {
        rules::Problem::TextTooLong => format!("a text is at most {} characters", rules::MAX_TEXT_LENGTH),
        rules::Problem::InvalidSpan => "a formatting span is empty, unknown or outside the text".to_owned(),
        rules::Problem::Missing(what) => {
            format!("no {what}: a file names its attachment and the secrets that open it")
        }
        rules::Problem::TooManyMentions => {
            format!("a message mentions at most {} people", rules::MAX_MENTIONS)
        }
        rules::Problem::InvalidMention => {
            "a mention is empty, names nobody or lies outside the text".to_owned()
        }
        rules::Problem::QuoteTooLong => format!("a quote is at most {} characters", rules::MAX_QUOTE_LENGTH),
    })
}

/// Reads a cloud message's Content: a text (at most 16,000 characters, spans and mentions
/// inside it) or a file (its attachment and secrets named), a quote of at most 1,000
/// characters, at most 64 KiB encoded. `edit`: an edit's new content, text only.
fn cloud_draft(content: Option<kitsulan_content::Content>, edit: bool) -> Result<Payload, Error> {
    use kitsulan_content::content::Body;
    let mut content = content.ok_or_else(|| content_invalid("a cloud message needs content"))?;
    content.version = content.version.max(1);
    let (text, mentions) = match &content.body {
        Some(Body::Text(t)) => {
            if t.body.trim().is_empty() {
                return Err(content_invalid("a text message needs text"));
            }
            // The rules a device's codec writes by, then what only the server checks.
            rules::check_text(t).map_err(problem)?;
            let mentions = t
                .mentions
                .iter()
                .map(|m| parse_id(&m.account_id, "content.text.mentions.account_id"))
                .collect::<Result<Vec<_>, _>>()?;
            (t.body.clone(), mentions)
        }
        Some(Body::File(f)) if !edit => {
            rules::check_file(f).map_err(problem)?;
            (f.name.clone(), Vec::new())
        }
        _ if edit => return Err(content_invalid("an edit replaces a text with a text")),
        _ => {
            return Err(content_invalid(
                "a cloud message is a text or a file (reactions: React; edits: EditMessage; deletions: DeleteMessage)",
            ));
        }
    };
    let reply_to = match &content.reply {
        Some(reply) if !edit => {
            rules::check_quote(&reply.quote).map_err(problem)?;
            Some(parse_id(&reply.message_id, "content.reply.message_id")?)
        }
        _ => None,
    };
    if edit {
        content.reply = None;
        content.forwarded = None;
    }
    let encoded = prost::Message::encode_to_vec(&content);
    if encoded.len() > MAX_CONTENT {
        return Err(content_invalid(format!("a message's content is at most {} KiB", MAX_CONTENT / 1024)));
    }
    Ok(Payload::Cloud(CloudDraft { content: encoded, text, mentions, reply_to }))
}

/// Ciphertext or content, whichever the request carries (both: refused).
fn payload(
    ciphertext: Vec<u8>,
    session_id: Vec<u8>,
    content: Option<kitsulan_content::Content>,
    edit: bool,
) -> Result<Payload, Error> {
    match content {
        Some(_) if !ciphertext.is_empty() || !session_id.is_empty() => {
            Err(content_invalid("a message carries ciphertext or content, not both"))
        }
        Some(_) => cloud_draft(content, edit),
        None => Ok(Payload::Ciphertext { ciphertext, session_id }),
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
        let r = request.get_ref();
        let other = parse_id(&r.account_id, "account_id")?;
        let e2ee = r.mode() != pb::ConversationMode::Cloud;
        let (view, created) = self.0.services.conversations.open_direct(&caller, other, e2ee).await?;
        Ok(Response::new(pb::OpenDirectResponse { conversation: conversation(view), created }))
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::CreateGroupResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let e2ee = r.mode() != pb::ConversationMode::Cloud;
        let members = parse_ids(&r.member_ids, "member_ids")?;
        let view = self.0.services.conversations.create_group(&caller, &r.title, &members, e2ee).await?;
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
        let payload = payload(r.ciphertext, r.session_id, r.content, false)?;
        let draft = Draft { message_id, payload, reply_to, attachments };
        let stored = self.0.services.conversations.send(&caller, id, draft).await?;
        Ok(Response::new(pb::SendMessageResponse { message: Some(message(stored)) }))
    }

    async fn edit_message(
        &self,
        request: Request<pb::EditMessageRequest>,
    ) -> Result<Response<pb::EditMessageResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let message_id = parse_id(&r.message_id, "message_id")?;
        let payload = payload(r.ciphertext, r.session_id, r.content, true)?;
        let edited = self.0.services.conversations.edit(&caller, id, message_id, payload).await?;
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

    async fn search_messages(
        &self,
        request: Request<pb::SearchMessagesRequest>,
    ) -> Result<Response<pb::SearchMessagesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.into_inner();
        let conversation = if r.conversation_id.is_empty() {
            None
        } else {
            Some(parse_id(&r.conversation_id, "conversation_id")?)
        };
        let sender = if r.sender_account_id.is_empty() {
            None
        } else {
            Some(parse_id(&r.sender_account_id, "sender_account_id")?)
        };
        let search = Search {
            conversation,
            sender,
            query: r.query,
            after_ms: r.after_ms,
            before_ms: r.before_ms,
            limit: r.limit,
            page_token: r.page_token,
        };
        let query = search.query.clone();
        let (page, next) = self.0.services.conversations.search(&caller, search).await?;
        let hits = page
            .into_iter()
            .map(|m| {
                let message = message(m);
                let text = match message.content.as_ref().and_then(|c| c.body.as_ref()) {
                    Some(kitsulan_content::content::Body::Text(t)) => t.body.as_str(),
                    Some(kitsulan_content::content::Body::File(f)) => f.name.as_str(),
                    _ => "",
                };
                let (snippet, highlights) = snippet(text, &query);
                pb::SearchHit {
                    snippet,
                    highlights: highlights
                        .into_iter()
                        .map(|(start, end)| pb::TextRange { start, end })
                        .collect(),
                    message: Some(message),
                }
            })
            .collect();
        Ok(Response::new(pb::SearchMessagesResponse { hits, next_page_token: next.unwrap_or_default() }))
    }

    async fn react(&self, request: Request<pb::ReactRequest>) -> Result<Response<pb::ReactResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let message_id = parse_id(&r.message_id, "message_id")?;
        let updated =
            self.0.services.conversations.react(&caller, id, message_id, &r.emoji, r.remove).await?;
        Ok(Response::new(pb::ReactResponse { message: Some(message(updated)) }))
    }

    async fn pin_message(
        &self,
        request: Request<pb::PinMessageRequest>,
    ) -> Result<Response<pb::PinMessageResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let message_id = parse_id(&r.message_id, "message_id")?;
        let updated = self.0.services.conversations.pin(&caller, id, message_id, !r.unpin).await?;
        Ok(Response::new(pb::PinMessageResponse { message: Some(message(updated)) }))
    }

    async fn list_pins(
        &self,
        request: Request<pb::ListPinsRequest>,
    ) -> Result<Response<pb::ListPinsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id = parse_id(&request.get_ref().conversation_id, "conversation_id")?;
        let pins = self.0.services.conversations.pins(&caller, id).await?;
        Ok(Response::new(pb::ListPinsResponse { messages: pins.into_iter().map(message).collect() }))
    }

    async fn set_message_timer(
        &self,
        request: Request<pb::SetMessageTimerRequest>,
    ) -> Result<Response<pb::SetMessageTimerResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let id = parse_id(&r.conversation_id, "conversation_id")?;
        let view = self.0.services.conversations.set_timer(&caller, id, r.seconds).await?;
        Ok(Response::new(pb::SetMessageTimerResponse { conversation: conversation(view) }))
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
