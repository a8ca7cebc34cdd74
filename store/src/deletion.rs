//! Deleting an account for good (`AccountService.DeleteAccount`): one transaction that takes
//! it out of every conversation as leaving does (a group passes to its next owner, the others
//! see a system entry), hands each guild it owns to its next owner, signs every device out on every node, expires its attachments, deletes
//! or keeps (without a name: the account is gone) the messages it sent, and deletes the account
//! row, which takes its devices, keys, backups, memberships, reactions, mentions and blocks with
//! it (every table refers to `accounts` with `ON DELETE CASCADE`).

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use crate::MessageRecord;
use crate::conversations::{MESSAGE_COLUMNS, Role, SystemEntry, decode, leave_conversation, system_entry};
use crate::delivery::AccountEvent;
use crate::ids::{AccountId, ConversationId, DeviceId, MessageId};

/// What deleting an account did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountDeletion {
    /// The conversations it left.
    pub conversations: Vec<ConversationId>,
    /// The devices signed out.
    pub devices: Vec<DeviceId>,
    /// The system entries written (in groups it left) and the tombstones of messages deleted,
    /// for members' devices.
    pub changed: Vec<MessageRecord>,
    /// How many of its messages lost their content.
    pub messages_deleted: u64,
}

/// Account deletion.
#[async_trait]
pub trait AccountDeletionStore: Send + Sync {
    /// Deletes `account` (see the module); with `delete_messages` the ciphertext or content of
    /// every message it sent goes too. `None` if there is no such account.
    async fn delete_account(
        &self,
        account: AccountId,
        delete_messages: bool,
        now_ms: i64,
    ) -> Result<Option<AccountDeletion>, StoreError>;
}

impl_for_backends! {
    impl AccountDeletionStore {
        async fn delete_account(
            &self,
            account: AccountId,
            delete_messages: bool,
            now_ms: i64,
        ) -> Result<Option<AccountDeletion>, StoreError> {
            let mut tx = self.pool.begin().await?;
            // PostgreSQL: one deletion at a time. Two people leaving one group together each
            // write rows naming the other (the lines and events they leave), then delete their
            // own account row, which waits for the other's rows: a deadlock. Deletions are rare;
            // taking turns costs nothing. (The two-key form: no account's lock shares its key.)
            if Self::BACKEND == crate::Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock(1, 0)").execute(&mut *tx).await?;
            }
            crate::delivery::lock_memberships!(tx, vec![account]);
            // A write first, so SQLite takes its write lock at once: a read that later upgrades
            // to a write fails with "database is locked" when another writer came in between.
            let exists: Option<i32> =
                sqlx::query_scalar("UPDATE accounts SET display_name = display_name WHERE id = $1 RETURNING 1")
                    .bind(account.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                return Ok(None);
            }
            let mut done = AccountDeletion::default();
            let memberships = sqlx::query(
                "SELECT c.id, c.kind FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id \
                 WHERE m.account_id = $1 ORDER BY c.id",
            )
            .bind(account.as_uuid())
            .fetch_all(&mut *tx)
            .await?;
            for row in memberships {
                let id = ConversationId::from_uuid(row.try_get::<Uuid, _>("id")?);
                // A group or a private E2EE channel (a cloud channel has no member rows).
                let group = row.try_get::<String, _>("kind")? != "direct";
                let Some(new_owner) = leave_conversation!(tx, id, account) else { continue };
                if group {
                    done.changed.push(system_entry!(tx, id, account, SystemEntry::MemberLeft, now_ms));
                    if let Some(owner) = new_owner {
                        let entry = SystemEntry::RoleChanged(owner, Role::Owner);
                        done.changed.push(system_entry!(tx, id, account, entry, now_ms));
                    }
                }
                done.conversations.push(id);
            }
            // A guild it owns passes to the member with the highest role (the longest-standing
            // among equals), recorded in its audit log; one with nobody else in it goes with it.
            let owned: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM guilds WHERE owner_id = $1 ORDER BY id")
                .bind(account.as_uuid())
                .fetch_all(&mut *tx)
                .await?;
            for guild in owned {
                let heir: Option<Uuid> = sqlx::query_scalar(
                    "SELECT m.account_id FROM guild_members m \
                     LEFT JOIN guild_member_roles mr ON mr.guild_id = m.guild_id AND mr.account_id = m.account_id \
                     LEFT JOIN guild_roles r ON r.id = mr.role_id \
                     WHERE m.guild_id = $1 AND m.account_id <> $2 GROUP BY m.account_id, m.joined_at_ms \
                     ORDER BY COALESCE(MAX(r.position), 0) DESC, m.joined_at_ms, m.account_id LIMIT 1",
                )
                .bind(guild)
                .bind(account.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
                match heir {
                    Some(heir) => {
                        sqlx::query("UPDATE guilds SET owner_id = $2 WHERE id = $1")
                            .bind(guild)
                            .bind(heir)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(
                            "INSERT INTO guild_audit_log (id, guild_id, actor_id, action, target_id, detail, at_ms) \
                             VALUES ($1, $2, $3, 'ownership_transferred', $4, 'the owner deleted their account', $5)",
                        )
                        .bind(Uuid::now_v7())
                        .bind(guild)
                        .bind(account.as_uuid())
                        .bind(heir)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM guilds WHERE id = $1").bind(guild).execute(&mut *tx).await?;
                    }
                }
            }
            if delete_messages {
                let sent: Vec<(Uuid, Uuid)> = sqlx::query_as(
                    "SELECT conversation_id, id FROM messages WHERE sender_account_id = $1 AND deleted_at_ms = 0 \
                     AND system_kind IS NULL ORDER BY conversation_id, seq",
                )
                .bind(account.as_uuid())
                .fetch_all(&mut *tx)
                .await?;
                for (conversation, id) in sent {
                    let (conversation, id) = (ConversationId::from_uuid(conversation), MessageId::from_uuid(id));
                    let Some(change) = crate::conversations::next_change!(tx, conversation) else { continue };
                    if let Some(tombstone) = crate::cloud::clear_message!(tx, Self::BACKEND, conversation, id, change, now_ms) {
                        done.changed.push(tombstone);
                        done.messages_deleted += 1;
                    }
                }
            }
            sqlx::query(
                "UPDATE attachments SET expires_at_ms = $2 WHERE uploader_account_id = $1 \
                 AND (expires_at_ms = 0 OR expires_at_ms > $2)",
            )
            .bind(account.as_uuid())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            let devices: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM devices WHERE account_id = $1")
                .bind(account.as_uuid())
                .fetch_all(&mut *tx)
                .await?;
            for device in &devices {
                // Every node closes the device's gateway connections when it sees this.
                sqlx::query("INSERT INTO device_revocations (device_id, at_ms) VALUES ($1, $2)")
                    .bind(device)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
            }
            done.devices = devices.into_iter().map(DeviceId::from_uuid).collect();
            sqlx::query("DELETE FROM accounts WHERE id = $1").bind(account.as_uuid()).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Some(done))
        }
    }
}
