//! A person's data, theirs to take and to delete (`AccountService.ExportAccount` and
//! `DeleteAccount`; docs/admin.md, "Deleting accounts and exports").
//!
//! # Security
//! Both act on the caller's own account only. Deleting needs the password (and TOTP code), as a
//! password change does: a thief with a copied access token cannot delete the account, and
//! wrong passwords spend the sign-in failure budget. An export reads only what the caller may
//! read anyway (their profile and devices, the conversations they are in, the messages of their
//! cloud conversations) and is limited per account and hour, since it reads a lot.

use std::time::Duration;

use super::Error;
use super::accounts::Accounts;
use super::auth::{Caller, ClientAddr};
use super::rate_limits::Limit;
use crate::bus::Notice;
use crate::store::{
    AccountRecord, ConversationFilter, ConversationRecord, DeviceRecord, GuildRecord, MemberRecord,
    MessageRecord, now_ms,
};

/// Exports one account may ask for per hour.
const EXPORTS: Limit = Limit::new(3, Duration::from_secs(3600));
/// Messages read per page of an export.
const EXPORT_PAGE: i64 = 500;

/// A piece of an export, in the order the document lists them.
#[derive(Debug)]
pub enum ExportPart {
    /// The account (first).
    Account(AccountRecord),
    /// Its devices.
    Devices(Vec<DeviceRecord>),
    /// The guilds it is a member of (after the devices, before the conversations).
    Guilds(Vec<ExportedGuild>),
    /// A conversation and its members; its messages follow (cloud ones only).
    Conversation(ConversationRecord, Vec<MemberRecord>),
    /// The next messages of the conversation last named, oldest first.
    Messages(Vec<MessageRecord>),
}

/// A guild in an export: the guild, when the account joined, and the names of its roles there.
#[derive(Debug)]
pub struct ExportedGuild {
    /// The guild.
    pub guild: GuildRecord,
    /// When the account joined (ms).
    pub joined_at_ms: i64,
    /// The names of its roles besides `@everyone`.
    pub roles: Vec<String>,
}

/// What deleting an account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Conversations it left.
    pub conversations: usize,
    /// Messages whose content went.
    pub messages: u64,
}

impl Accounts {
    /// Deletes the caller's account after its owner's factors.
    pub async fn delete_account(
        &self,
        caller: &Caller,
        client: ClientAddr,
        password: &str,
        totp_code: &str,
    ) -> Result<Deleted, Error> {
        let core = &self.auth.core;
        let account = core.store.account(caller.account_id).await?.ok_or(Error::SessionInvalid)?;
        core.confirm_owner(&account, client, password, totp_code).await?;
        let done = core
            .store
            .delete_account(caller.account_id, self.delete_messages_with_account, now_ms())
            .await?
            .ok_or(Error::SessionInvalid)?;
        // Members hear of the leaving and the lines it wrote; the devices are signed out.
        let mut members = Vec::new();
        for id in &done.conversations {
            members.extend(core.store.members(*id).await?.into_iter().map(|m| m.account_id));
            core.delivery.publish(Notice::Left { conversation: *id, account: caller.account_id }).await;
        }
        members.sort_unstable();
        members.dedup();
        core.delivery.publish(Notice::Accounts(members)).await;
        for changed in done.changed {
            core.delivery.publish(Notice::Message(std::sync::Arc::new(changed))).await;
        }
        core.delivery.devices_gone(caller.account_id, &done.devices).await;
        tracing::info!(
            account = %caller.account_id,
            conversations = done.conversations.len(),
            messages_deleted = done.messages_deleted,
            "account deleted by its owner"
        );
        Ok(Deleted { conversations: done.conversations.len(), messages: done.messages_deleted })
    }

    /// Hands the caller's data to `out`, piece by piece; stops early if `out` is closed.
    pub async fn export(
        &self,
        caller: &Caller,
        out: tokio::sync::mpsc::Sender<Result<ExportPart, Error>>,
    ) -> Result<(), Error> {
        let core = &self.auth.core;
        core.limiter.take(&EXPORTS, &format!("export:{}", caller.account_id)).await?;
        let account = core.store.account(caller.account_id).await?.ok_or(Error::SessionInvalid)?;
        let send = |part| {
            let out = out.clone();
            async move { out.send(Ok(part)).await.is_ok() }
        };
        if !send(ExportPart::Account(account)).await {
            return Ok(());
        }
        if !send(ExportPart::Devices(core.store.list_devices(caller.account_id).await?)).await {
            return Ok(());
        }
        let mut guilds = Vec::new();
        for guild in core.store.guilds_of(caller.account_id).await? {
            let Some(me) = core.store.guild_member(guild.id, caller.account_id).await? else { continue };
            let roles = core.store.guild_roles(guild.id).await?;
            let roles =
                me.roles.iter().filter_map(|r| roles.iter().find(|x| x.id == *r)).map(|r| r.name.clone());
            guilds.push(ExportedGuild { joined_at_ms: me.joined_at_ms, roles: roles.collect(), guild });
        }
        if !send(ExportPart::Guilds(guilds)).await {
            return Ok(());
        }
        let mut after = None;
        loop {
            let page =
                core.store.conversations_of(caller.account_id, ConversationFilter::All, after, 100).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.last_activity_at_ms, last.id));
            for conversation in page {
                let (id, cloud) = (conversation.id, !conversation.e2ee);
                let members = core.store.members(id).await?;
                if !send(ExportPart::Conversation(conversation, members)).await {
                    return Ok(());
                }
                if !cloud {
                    continue;
                }
                let mut cursor = 0;
                loop {
                    let messages = core.store.list_messages(id, cursor, true, EXPORT_PAGE).await?;
                    let Some(last) = messages.last() else { break };
                    cursor = last.seq;
                    let full = messages.len() as i64 == EXPORT_PAGE;
                    if !send(ExportPart::Messages(messages)).await {
                        return Ok(());
                    }
                    if !full {
                        break;
                    }
                }
            }
        }
        tracing::info!(account = %caller.account_id, "account exported");
        Ok(())
    }
}
