//! Conversations as a device uses them: `ConversationService` calls on [`Client`], and
//! end-to-end encrypted messages on [`E2eeDevice`]. The e2e tests and the load generator share
//! it.
//!
//! # Sending
//!
//! Each device keeps one outbound Megolm session per conversation, in its protocol machine
//! (`kitsulan_crypto::client::Machine`, see [`crate::e2ee`]). Before sending it learns the
//! members (`GetConversation`) and their verified devices (`QueryKeys`), opens Olm sessions
//! where needed (`ClaimKeys`), and the machine shares the session key over Olm with every
//! member device that lacks it (our own other devices too), bound to the conversation:
//! `0x02 || conversation id || session key`. The machine rotates when the set of member devices
//! changed since the session was used, after `Config::rotate_after_messages` messages or when
//! the session is too old. Then it encrypts and the device calls `SendMessage` with a fresh
//! UUIDv7, the Megolm message as `ciphertext` and the session id (ASCII) as `session_id`.
//!
//! [`E2eeDevice::send_to_conversation`] does all of that for each message;
//! [`E2eeDevice::send_prepared`] reuses the members and devices of the last
//! [`E2eeDevice::refresh_conversation`] (what the load generator does between membership
//! changes).
//!
//! # Reading
//!
//! [`E2eeDevice::read_history`] first fetches the device's to-device inbox (where room keys
//! arrive), then pages through `ListMessages` and has the machine decrypt each message with
//! the inbound session that its sending device shared for this conversation. A session whose
//! index was already used by another message id is a replay and is refused. Keys that messages
//! lacked are then asked of our own other devices, which answer on their next receive.

use anyhow::{Context as _, bail, ensure};
use kitsulan_proto::v1::{
    AcceptRequestRequest, AddMembersRequest, BlockRequest, BlockedAccount, Conversation, ConversationFilter,
    ConversationMode, CreateGroupRequest, DeclineRequestRequest, DeleteMessageRequest, EditMessageRequest,
    GetConversationRequest, HistoryDirection, LeaveConversationRequest, ListBlockedRequest,
    ListConversationsRequest, ListConversationsResponse, ListMessagesRequest, ListMessagesResponse,
    ListPinsRequest, MarkReadRequest, MarkReadResponse, MemberRole, Message, OpenDirectRequest,
    OpenDirectResponse, PinMessageRequest, ReactRequest, RemoveMemberRequest, RenameGroupRequest,
    SearchMessagesRequest, SearchMessagesResponse, SendMessageRequest, SetMemberRoleRequest,
    SetMessageTimerRequest, SystemEvent, UnblockRequest,
};
use tonic::Status;
use uuid::Uuid;

use crate::Client;
use kitsulan_crypto::client::GroupMessage;

use crate::e2ee::{E2eeDevice, id, now, outgoing};

/// The largest ciphertext `SendMessage` and `EditMessage` take.
pub const MAX_CIPHERTEXT: usize = 64 * 1024;
/// The longest session id they take.
pub const MAX_SESSION_ID: usize = 128;
/// The most messages one `ListMessages` page holds.
pub const MAX_PAGE: u32 = 100;

fn conversation_of(conversation: Option<Conversation>) -> Result<Conversation, Status> {
    conversation.ok_or_else(|| Status::internal("the server answered without a conversation"))
}

fn message_of(message: Option<Message>) -> Result<Message, Status> {
    message.ok_or_else(|| Status::internal("the server answered without a message"))
}

impl Client {
    /// `OpenDirect` with `account_id`.
    pub async fn open_direct(&self, account_id: &str) -> Result<OpenDirectResponse, Status> {
        let request = OpenDirectRequest { account_id: account_id.to_owned(), mode: 0 };
        Ok(self.conversations().open_direct(request).await?.into_inner())
    }

    /// `OpenDirect` for the pair's cloud conversation.
    pub async fn open_cloud_direct(&self, account_id: &str) -> Result<OpenDirectResponse, Status> {
        let request =
            OpenDirectRequest { account_id: account_id.to_owned(), mode: ConversationMode::Cloud.into() };
        Ok(self.conversations().open_direct(request).await?.into_inner())
    }

    /// `CreateGroup` in cloud mode.
    pub async fn create_cloud_group(&self, title: &str, member_ids: &[&str]) -> Result<Conversation, Status> {
        self.create_group_with(CreateGroupRequest {
            title: title.to_owned(),
            member_ids: member_ids.iter().map(|s| (*s).to_owned()).collect(),
            mode: ConversationMode::Cloud.into(),
        })
        .await
    }

    /// `SearchMessages` for `query` (every cloud conversation when `conversation_id` is empty).
    pub async fn search_messages(
        &self,
        query: &str,
        conversation_id: &str,
    ) -> Result<SearchMessagesResponse, Status> {
        let request = SearchMessagesRequest {
            query: query.to_owned(),
            conversation_id: conversation_id.to_owned(),
            ..SearchMessagesRequest::default()
        };
        Ok(self.conversations().search_messages(request).await?.into_inner())
    }

    /// `React`: adds (or with `remove` takes back) a reaction in a cloud conversation.
    pub async fn react(
        &self,
        conversation_id: &str,
        message_id: &str,
        emoji: &str,
        remove: bool,
    ) -> Result<Message, Status> {
        let request = ReactRequest {
            conversation_id: conversation_id.to_owned(),
            message_id: message_id.to_owned(),
            emoji: emoji.to_owned(),
            remove,
        };
        message_of(self.conversations().react(request).await?.into_inner().message)
    }

    /// `PinMessage` (or unpin).
    pub async fn pin_message(
        &self,
        conversation_id: &str,
        message_id: &str,
        pin: bool,
    ) -> Result<Message, Status> {
        let request = PinMessageRequest {
            conversation_id: conversation_id.to_owned(),
            message_id: message_id.to_owned(),
            unpin: !pin,
        };
        message_of(self.conversations().pin_message(request).await?.into_inner().message)
    }

    /// `ListPins`.
    pub async fn list_pins(&self, conversation_id: &str) -> Result<Vec<Message>, Status> {
        let request = ListPinsRequest { conversation_id: conversation_id.to_owned() };
        Ok(self.conversations().list_pins(request).await?.into_inner().messages)
    }

    /// `SetMessageTimer` (seconds; 0 off).
    pub async fn set_message_timer(
        &self,
        conversation_id: &str,
        seconds: u32,
    ) -> Result<Conversation, Status> {
        let request = SetMessageTimerRequest { conversation_id: conversation_id.to_owned(), seconds };
        conversation_of(self.conversations().set_message_timer(request).await?.into_inner().conversation)
    }

    /// `CreateGroup` in the default mode (E2EE).
    pub async fn create_group(&self, title: &str, member_ids: &[&str]) -> Result<Conversation, Status> {
        self.create_group_with(CreateGroupRequest {
            title: title.to_owned(),
            member_ids: member_ids.iter().map(|s| (*s).to_owned()).collect(),
            mode: 0,
        })
        .await
    }

    /// `CreateGroup` with every field under the caller's control.
    pub async fn create_group_with(&self, request: CreateGroupRequest) -> Result<Conversation, Status> {
        conversation_of(self.conversations().create_group(request).await?.into_inner().conversation)
    }

    /// Every conversation of the caller, requests included (`ListConversations`, following
    /// the pages).
    pub async fn list_conversations(&self) -> Result<Vec<Conversation>, Status> {
        self.list_all_conversations(ConversationFilter::Unspecified).await
    }

    /// One `ListConversations` page.
    pub async fn list_conversations_page(
        &self,
        filter: ConversationFilter,
        limit: u32,
        page_token: &str,
    ) -> Result<ListConversationsResponse, Status> {
        let request =
            ListConversationsRequest { filter: filter.into(), limit, page_token: page_token.to_owned() };
        Ok(self.conversations().list_conversations(request).await?.into_inner())
    }

    /// Every conversation `filter` selects, following `ListConversations` pages to the end.
    pub async fn list_all_conversations(
        &self,
        filter: ConversationFilter,
    ) -> Result<Vec<Conversation>, Status> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self.list_conversations_page(filter, 0, &token).await?;
            out.extend(page.conversations);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            token = page.next_page_token;
        }
    }

    /// `AcceptRequest`.
    pub async fn accept_request(&self, conversation_id: &str) -> Result<Conversation, Status> {
        let request = AcceptRequestRequest { conversation_id: conversation_id.to_owned() };
        conversation_of(self.conversations().accept_request(request).await?.into_inner().conversation)
    }

    /// `DeclineRequest`.
    pub async fn decline_request(&self, conversation_id: &str) -> Result<(), Status> {
        let request = DeclineRequestRequest { conversation_id: conversation_id.to_owned() };
        self.conversations().decline_request(request).await?;
        Ok(())
    }

    /// `Block`.
    pub async fn block(&self, account_id: &str) -> Result<(), Status> {
        self.conversations().block(BlockRequest { account_id: account_id.to_owned() }).await?;
        Ok(())
    }

    /// `Unblock`.
    pub async fn unblock(&self, account_id: &str) -> Result<(), Status> {
        self.conversations().unblock(UnblockRequest { account_id: account_id.to_owned() }).await?;
        Ok(())
    }

    /// `ListBlocked`.
    pub async fn list_blocked(&self) -> Result<Vec<BlockedAccount>, Status> {
        Ok(self.conversations().list_blocked(ListBlockedRequest {}).await?.into_inner().blocked)
    }

    /// Accepts the caller's request in `conversation_id` if it is one (what a person does
    /// before replying to someone new); does nothing for a conversation already accepted.
    pub async fn accept_if_request(&self, conversation_id: &str) -> Result<(), Status> {
        if self.get_conversation(conversation_id).await?.request {
            self.accept_request(conversation_id).await?;
        }
        Ok(())
    }

    /// `GetConversation`.
    pub async fn get_conversation(&self, conversation_id: &str) -> Result<Conversation, Status> {
        let request = GetConversationRequest { conversation_id: conversation_id.to_owned() };
        conversation_of(self.conversations().get_conversation(request).await?.into_inner().conversation)
    }

    /// `AddMembers`.
    pub async fn add_members(
        &self,
        conversation_id: &str,
        account_ids: &[&str],
    ) -> Result<Conversation, Status> {
        let request = AddMembersRequest {
            conversation_id: conversation_id.to_owned(),
            account_ids: account_ids.iter().map(|s| (*s).to_owned()).collect(),
        };
        conversation_of(self.conversations().add_members(request).await?.into_inner().conversation)
    }

    /// `RemoveMember`.
    pub async fn remove_member(
        &self,
        conversation_id: &str,
        account_id: &str,
    ) -> Result<Conversation, Status> {
        let request = RemoveMemberRequest {
            conversation_id: conversation_id.to_owned(),
            account_id: account_id.to_owned(),
        };
        conversation_of(self.conversations().remove_member(request).await?.into_inner().conversation)
    }

    /// `RenameGroup`.
    pub async fn rename_group(&self, conversation_id: &str, title: &str) -> Result<Conversation, Status> {
        let request =
            RenameGroupRequest { conversation_id: conversation_id.to_owned(), title: title.to_owned() };
        conversation_of(self.conversations().rename_group(request).await?.into_inner().conversation)
    }

    /// `SetMemberRole`.
    pub async fn set_member_role(
        &self,
        conversation_id: &str,
        account_id: &str,
        role: MemberRole,
    ) -> Result<Conversation, Status> {
        let request = SetMemberRoleRequest {
            conversation_id: conversation_id.to_owned(),
            account_id: account_id.to_owned(),
            role: role.into(),
        };
        conversation_of(self.conversations().set_member_role(request).await?.into_inner().conversation)
    }

    /// `LeaveConversation`.
    pub async fn leave_conversation(&self, conversation_id: &str) -> Result<(), Status> {
        let request = LeaveConversationRequest { conversation_id: conversation_id.to_owned() };
        self.conversations().leave_conversation(request).await?;
        Ok(())
    }

    /// `SendMessage` as given (no encryption: see [`E2eeDevice::send_to_conversation`]).
    pub async fn send_message(&self, request: SendMessageRequest) -> Result<Message, Status> {
        message_of(self.conversations().send_message(request).await?.into_inner().message)
    }

    /// `EditMessage` as given.
    pub async fn edit_message(&self, request: EditMessageRequest) -> Result<Message, Status> {
        message_of(self.conversations().edit_message(request).await?.into_inner().message)
    }

    /// `DeleteMessage`.
    pub async fn delete_message(&self, conversation_id: &str, message_id: &str) -> Result<Message, Status> {
        let request = DeleteMessageRequest {
            conversation_id: conversation_id.to_owned(),
            message_id: message_id.to_owned(),
        };
        message_of(self.conversations().delete_message(request).await?.into_inner().message)
    }

    /// One `ListMessages` page.
    pub async fn list_messages(
        &self,
        conversation_id: &str,
        cursor: u64,
        direction: HistoryDirection,
        limit: u32,
    ) -> Result<ListMessagesResponse, Status> {
        let request = ListMessagesRequest {
            conversation_id: conversation_id.to_owned(),
            cursor,
            direction: direction.into(),
            limit,
        };
        Ok(self.conversations().list_messages(request).await?.into_inner())
    }

    /// `MarkRead`.
    pub async fn mark_read(&self, conversation_id: &str, seq: u64) -> Result<MarkReadResponse, Status> {
        let request = MarkReadRequest { conversation_id: conversation_id.to_owned(), seq };
        Ok(self.conversations().mark_read(request).await?.into_inner())
    }

    /// The whole history in `direction`, by pages of `limit`, each page's cursor the last seq
    /// of the page before. Fails if the server's pages go the wrong way or never end.
    pub async fn all_messages(
        &self,
        conversation_id: &str,
        direction: HistoryDirection,
        limit: u32,
    ) -> anyhow::Result<Vec<Message>> {
        let mut out: Vec<Message> = Vec::new();
        let mut cursor = 0;
        loop {
            let page = self
                .list_messages(conversation_id, cursor, direction, limit)
                .await
                .with_context(|| format!("ListMessages after cursor {cursor}"))?;
            for message in &page.messages {
                if let Some(previous) = out.last() {
                    let in_order = match direction {
                        HistoryDirection::Backward => message.seq < previous.seq,
                        HistoryDirection::Forward => message.seq > previous.seq,
                    };
                    ensure!(in_order, "seq {} after seq {} going {direction:?}", message.seq, previous.seq);
                }
                out.push(message.clone());
            }
            match page.messages.last() {
                Some(last) if page.more => cursor = last.seq,
                None if page.more => bail!("an empty page says there are more (cursor {cursor})"),
                _ => return Ok(out),
            }
        }
    }
}

/// A message encrypted for a conversation, not sent yet.
#[derive(Clone, Debug)]
pub struct Encrypted {
    /// The conversation.
    pub conversation_id: String,
    /// The id chosen for it (UUIDv7).
    pub message_id: String,
    /// The Megolm session (its id, ASCII).
    pub session_id: String,
    /// Its index in that session.
    pub message_index: u32,
    /// The Megolm message.
    pub ciphertext: Vec<u8>,
}

impl Encrypted {
    /// The `SendMessage` request for it (`reply_to` may be empty).
    pub fn send_request(&self, reply_to: &str) -> SendMessageRequest {
        SendMessageRequest {
            conversation_id: self.conversation_id.clone(),
            message_id: self.message_id.clone(),
            ciphertext: self.ciphertext.clone(),
            session_id: self.session_id.as_bytes().to_vec(),
            reply_to: reply_to.to_owned(),
            attachment_ids: Vec::new(),
            content: None,
        }
    }

    /// The `EditMessage` request that replaces `message_id` with it.
    pub fn edit_request(&self, message_id: &str) -> EditMessageRequest {
        EditMessageRequest {
            conversation_id: self.conversation_id.clone(),
            message_id: message_id.to_owned(),
            ciphertext: self.ciphertext.clone(),
            session_id: self.session_id.as_bytes().to_vec(),
            content: None,
        }
    }
}

/// A message this device sent, as encrypted and as the server stored it.
#[derive(Clone, Debug)]
pub struct Posted {
    /// What was encrypted and sent.
    pub encrypted: Encrypted,
    /// What `SendMessage` returned.
    pub message: Message,
}

/// What a message of the history says to this device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Decrypted: the plaintext as it was encrypted (read it with [`crate::content::decode`],
    /// or [`HistoryEntry::decoded`]).
    Text(Vec<u8>),
    /// Deleted (no ciphertext any more).
    Deleted,
    /// Not readable by this device, and why.
    Undecryptable(String),
    /// A system entry the server wrote (a member added, removed or leaving, a role or the
    /// title changed).
    System(SystemEvent),
}

/// A message of the history with what this device made of it.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    /// The message as the server listed it.
    pub message: Message,
    /// Its content.
    pub content: Content,
}

impl HistoryEntry {
    /// What the decrypted plaintext says (typed Content, or a legacy text or attachment JSON);
    /// `None` when it did not decrypt.
    pub fn decoded(&self) -> Option<Result<crate::content::Decoded, crate::content::ContentError>> {
        match &self.content {
            Content::Text(plaintext) => Some(crate::content::decode(plaintext, &self.message.id)),
            _ => None,
        }
    }

    /// The text, if it decrypted to a text (typed, legacy, or an edit of this message).
    pub fn text(&self) -> Option<String> {
        self.decoded()?.ok()?.text().map(str::to_owned)
    }
}

impl E2eeDevice {
    /// The current outbound Megolm session id of `conversation_id`, if one was made.
    pub fn conversation_session_id(&self, conversation_id: &str) -> Option<String> {
        self.machine().outbound_session_id(id(conversation_id).ok()?)
    }

    /// The devices the current outbound session of `conversation_id` reached, sorted.
    pub fn conversation_shared_with(&self, conversation_id: &str) -> Vec<String> {
        let Ok(conversation) = id(conversation_id) else { return Vec::new() };
        let mut out: Vec<String> =
            self.machine().outbound_shared_with(conversation).iter().map(ToString::to_string).collect();
        out.sort();
        out
    }

    /// Learns the members of `conversation_id` and their devices (`GetConversation`,
    /// `QueryKeys`), and has the machine share the conversation's outbound session with every
    /// member device that lacks it (rotating first when the devices changed since it was used,
    /// or when it is due), opening Olm sessions where needed. Returns the member devices
    /// (without this one).
    pub async fn refresh_conversation(&mut self, conversation_id: &str) -> anyhow::Result<Vec<String>> {
        let conversation = self
            .client
            .get_conversation(conversation_id)
            .await
            .with_context(|| format!("GetConversation {conversation_id}"))?;
        let members: Vec<&str> = conversation.members.iter().map(|m| m.account_id.as_str()).collect();
        self.sync_devices(&members).await?;
        let ids = members.iter().map(|m| id(m)).collect::<anyhow::Result<Vec<_>>>()?;
        self.members.insert(conversation_id.to_owned(), ids);
        self.share(conversation_id).await?;
        Ok(self.devices_of(&members))
    }

    /// Shares the conversation's session with the member devices of the last refresh that lack
    /// it: Olm sessions opened where needed, the shares sent, then confirmed to the machine.
    async fn share(&mut self, conversation_id: &str) -> anyhow::Result<()> {
        let conversation = id(conversation_id)?;
        let members = self.members.get(conversation_id).cloned().unwrap_or_default();
        let mut accounts: Vec<String> = members.iter().map(ToString::to_string).collect();
        accounts.push(self.account_id().to_owned());
        let account_refs: Vec<&str> = accounts.iter().map(String::as_str).collect();
        let devices = self.devices_of(&account_refs);
        self.ensure_olm_sessions(&devices).await?;
        let made = self.machine_step(|m| m.share_room_key(conversation, &members, now()))?;
        ensure!(
            made.without_olm.is_empty(),
            "no Olm session with {:?} after claiming their keys",
            made.without_olm
        );
        if !made.messages.is_empty() {
            let messages = made.messages.iter().map(outgoing).collect();
            self.send_to_device(messages).await.context("SendToDevice (room keys)")?;
        }
        self.machine_step(|m| {
            m.confirm_room_key_share(&made);
            Ok(())
        })
    }

    /// Encrypts `plaintext` with the outbound session of `conversation_id` as it is (no
    /// sharing, no rotation) under a fresh message id. Fails when there is no session yet
    /// (share first) or it is due for rotation.
    pub fn encrypt_for_conversation(
        &mut self,
        conversation_id: &str,
        plaintext: &[u8],
    ) -> anyhow::Result<Encrypted> {
        let conversation = id(conversation_id)?;
        let made = self.machine_step(|m| m.encrypt(conversation, plaintext))?;
        Ok(Encrypted {
            conversation_id: conversation_id.to_owned(),
            message_id: Uuid::now_v7().to_string(),
            session_id: made.session_id,
            message_index: made.message_index,
            ciphertext: made.ciphertext,
        })
    }

    /// Sends `plaintext` to the member devices of the last [`E2eeDevice::refresh_conversation`]
    /// (refreshing first if there was none): shares the session where needed (rotating when
    /// due), encrypts, and calls `SendMessage` (`reply_to` may be empty).
    pub async fn send_prepared(
        &mut self,
        conversation_id: &str,
        plaintext: &[u8],
        reply_to: &str,
    ) -> anyhow::Result<Posted> {
        let encrypted = self.prepare_message(conversation_id, plaintext).await?;
        let message = self
            .client
            .send_message(encrypted.send_request(reply_to))
            .await
            .with_context(|| format!("SendMessage into {conversation_id}"))?;
        Ok(Posted { encrypted, message })
    }

    /// [`E2eeDevice::send_prepared`] without the `SendMessage`: shares as needed (rotating when
    /// due) and encrypts, so the caller can send (and, after a failure, resend with the same id
    /// and ciphertext: sends are idempotent). If sharing fails, nothing was encrypted: call
    /// again.
    pub async fn prepare_message(
        &mut self,
        conversation_id: &str,
        plaintext: &[u8],
    ) -> anyhow::Result<Encrypted> {
        if self.members.contains_key(conversation_id) {
            self.share(conversation_id).await?;
        } else {
            self.refresh_conversation(conversation_id).await?;
        }
        self.encrypt_for_conversation(conversation_id, plaintext)
    }

    /// What an app does to post into a conversation: refresh its members and their devices,
    /// rotate and share as needed, encrypt, send.
    pub async fn send_to_conversation(
        &mut self,
        conversation_id: &str,
        plaintext: &[u8],
    ) -> anyhow::Result<Posted> {
        self.reply_in_conversation(conversation_id, plaintext, "").await
    }

    /// [`E2eeDevice::send_to_conversation`] as a reply to `reply_to`.
    pub async fn reply_in_conversation(
        &mut self,
        conversation_id: &str,
        plaintext: &[u8],
        reply_to: &str,
    ) -> anyhow::Result<Posted> {
        self.refresh_conversation(conversation_id).await?;
        self.send_prepared(conversation_id, plaintext, reply_to).await
    }

    /// Replaces the content of our message `message_id` with `plaintext` (encrypted anew with
    /// the current session, after a refresh). Returns what was sent and what the server stored.
    pub async fn edit_in_conversation(
        &mut self,
        conversation_id: &str,
        message_id: &str,
        plaintext: &[u8],
    ) -> anyhow::Result<(Encrypted, Result<Message, Status>)> {
        self.refresh_conversation(conversation_id).await?;
        let encrypted = self.encrypt_for_conversation(conversation_id, plaintext)?;
        let result = self.client.edit_message(encrypted.edit_request(message_id)).await;
        Ok((encrypted, result))
    }

    /// Decrypts one message of a conversation's history through the machine: only with the
    /// session its sending device shared for this conversation (or one of our devices
    /// forwarded), and a second message on an index already used is a replay. (Room keys come
    /// in through [`E2eeDevice::receive`].) A message that does not decrypt is counted
    /// ([`E2eeDevice::undecryptable`]) and the key it lacks kept for
    /// [`E2eeDevice::request_missing_keys`].
    pub fn decrypt_message(&mut self, message: &Message) -> Content {
        if let Some(system) = &message.system {
            return Content::System(system.clone());
        }
        if message.deleted_at_ms != 0 {
            return if message.ciphertext.is_empty() {
                Content::Deleted
            } else {
                Content::Undecryptable("a deleted message still has its ciphertext".to_owned())
            };
        }
        let content = match self.decrypt_group_message(message) {
            Ok(content) => content,
            Err(e) => Content::Undecryptable(format!("{e:#}")),
        };
        let failure = match &content {
            Content::Undecryptable(why) => Some(why.clone()),
            _ => None,
        };
        self.note_decryption(&message.id, failure);
        content
    }

    fn decrypt_group_message(&mut self, message: &Message) -> anyhow::Result<Content> {
        let group = GroupMessage {
            message_id: id(&message.id)?,
            conversation_id: id(&message.conversation_id)?,
            sender_account_id: id(&message.sender_account_id)?,
            sender_device_id: id(&message.sender_device_id)?,
            session_id: &message.session_id,
            ciphertext: &message.ciphertext,
        };
        let decrypted = self.machine_step(|m| Ok(m.decrypt(&group)))?;
        Ok(match decrypted {
            Ok(d) => Content::Text(d.plaintext.to_vec()),
            Err(u) => {
                if let Some(missing) = u.missing.clone() {
                    self.note_missing(missing);
                }
                Content::Undecryptable(format!("{}: {}", u.reason.code(), u.reason))
            }
        })
    }

    /// Imports the room keys waiting in the inbox, then reads the whole history of
    /// `conversation_id` oldest first (pages of [`MAX_PAGE`]) and decrypts it, then asks our
    /// own devices for the keys messages lacked. Fails if the inbox held anything unreadable or
    /// the history is out of order or names another conversation.
    pub async fn read_history(&mut self, conversation_id: &str) -> anyhow::Result<Vec<HistoryEntry>> {
        let inbox = self.receive().await?;
        ensure!(
            inbox.failures.is_empty(),
            "{} could not read its inbox: {:?}",
            self.device_id(),
            inbox.failures
        );
        let messages = self.client.all_messages(conversation_id, HistoryDirection::Forward, MAX_PAGE).await?;
        let mut out = Vec::with_capacity(messages.len());
        for message in messages {
            ensure!(
                message.conversation_id == conversation_id,
                "message {} of conversation {} listed in {conversation_id}",
                message.id,
                message.conversation_id
            );
            let content = self.decrypt_message(&message);
            out.push(HistoryEntry { message, content });
        }
        self.request_missing_keys().await?;
        Ok(out)
    }
}

impl Client {
    /// `ExportAccount`: the chunks joined into the JSON document.
    pub async fn export_account(&self) -> Result<String, Status> {
        let mut stream =
            self.account().export_account(kitsulan_proto::v1::ExportAccountRequest {}).await?.into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await? {
            bytes.extend_from_slice(&chunk.json);
        }
        String::from_utf8(bytes).map_err(|_| Status::internal("the export is not UTF-8"))
    }

    /// `DeleteAccount` with the password (and a TOTP code, or "").
    pub async fn delete_account(
        &self,
        password: &str,
        totp_code: &str,
    ) -> Result<kitsulan_proto::v1::DeleteAccountResponse, Status> {
        let request = kitsulan_proto::v1::DeleteAccountRequest {
            password: password.to_owned(),
            totp_code: totp_code.to_owned(),
        };
        Ok(self.account().delete_account(request).await?.into_inner())
    }
}
