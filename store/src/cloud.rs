//! What messages have beyond their bytes: search over cloud conversations, reactions in cloud
//! conversations, pins, the disappearing-message timer and the sweep that deletes expired and
//! (with a retention setting) old content. Migration 0016.
//!
//! A cloud message's words are indexed where it is stored (`index_cloud_body!`, in the send's
//! transaction) and unindexed wherever its content goes (`clear_message!`: deletion, expiry,
//! retention), so search never finds what was deleted.

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use crate::conversations::{
    CloudBody, MESSAGE_COLUMNS, MessageRecord, ReactionGroup, Role, SystemEntry, decode, decode_all,
};
use crate::ids::{AccountId, ConversationId, DeviceId, MessageId};

/// Indexes a cloud message's words inside a transaction: PostgreSQL keeps a generated tsvector
/// of `search_text`, so only SQLite has work here (its FTS5 row, keyed by the message's `rid`),
/// and every backend records whom it mentions.
macro_rules! index_cloud_body {
    ($tx:expr, $backend:expr, $conversation:expr, $seq:expr, $cloud:expr) => {{
        let (conversation, seq, cloud): (ConversationId, i64, &crate::conversations::CloudBody) =
            ($conversation, $seq, $cloud);
        if $backend == crate::Backend::Sqlite {
            sqlx::query(
                "INSERT INTO message_search (rowid, terms) \
                 SELECT rid, $3 FROM messages WHERE conversation_id = $1 AND seq = $2",
            )
            .bind(conversation.as_uuid())
            .bind(seq)
            .bind(crate::search::index_terms(&cloud.search_text))
            .execute(&mut *$tx)
            .await?;
        }
        for account in &cloud.mentions {
            sqlx::query(
                "INSERT INTO message_mentions (account_id, conversation_id, seq) \
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = $1) \
                 ON CONFLICT (account_id, conversation_id, seq) DO NOTHING",
            )
            .bind(account.as_uuid())
            .bind(conversation.as_uuid())
            .bind(seq)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}
pub(crate) use index_cloud_body;

/// A live message (not deleted, not a system entry) inside a transaction, or `None`.
macro_rules! live_message {
    ($tx:expr, $conversation:expr, $id:expr) => {{
        let row = sqlx::query(&format!(
            "SELECT {} FROM messages WHERE id = $1 AND conversation_id = $2 \
             AND deleted_at_ms = 0 AND system_kind IS NULL",
            crate::conversations::MESSAGE_COLUMNS
        ))
        .bind($id.as_uuid())
        .bind($conversation.as_uuid())
        .fetch_optional(&mut *$tx)
        .await?;
        match row {
            Some(row) => Some(crate::conversations::decode!(message row)),
            None => None,
        }
    }};
}

/// Takes a message's words out of the search index and its mentions out of the count.
macro_rules! unindex {
    ($tx:expr, $backend:expr, $conversation:expr, $seq:expr) => {{
        let (conversation, seq): (ConversationId, i64) = ($conversation, $seq);
        if $backend == crate::Backend::Sqlite {
            sqlx::query(
                "DELETE FROM message_search WHERE rowid = \
                 (SELECT rid FROM messages WHERE conversation_id = $1 AND seq = $2)",
            )
            .bind(conversation.as_uuid())
            .bind(seq)
            .execute(&mut *$tx)
            .await?;
        }
        sqlx::query("DELETE FROM message_mentions WHERE conversation_id = $1 AND seq = $2")
            .bind(conversation.as_uuid())
            .bind(seq)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// Deletes a live message's ciphertext or content inside a transaction, with change number
/// `$change`: the tombstone keeps its place (seq, sender, times), loses its words from the
/// index, its reactions, mentions and pin, and its attachments expire. Evaluates to the
/// tombstone, or `None` when the message is absent, deleted before or a system entry.
macro_rules! clear_message {
    ($tx:expr, $backend:expr, $conversation:expr, $id:expr, $change:expr, $now_ms:expr) => {{
        let (conversation, id, change, now_ms): (ConversationId, MessageId, i64, i64) =
            ($conversation, $id, $change, $now_ms);
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM messages WHERE id = $1 AND conversation_id = $2 AND deleted_at_ms = 0 \
             AND system_kind IS NULL",
        )
        .bind(id.as_uuid())
        .bind(conversation.as_uuid())
        .fetch_optional(&mut *$tx)
        .await?;
        match seq {
            None => None,
            Some(seq) => {
                crate::cloud::unindex!($tx, $backend, conversation, seq);
                sqlx::query("DELETE FROM message_reactions WHERE conversation_id = $1 AND message_id = $2")
                    .bind(conversation.as_uuid())
                    .bind(id.as_uuid())
                    .execute(&mut *$tx)
                    .await?;
                let row = sqlx::query(&format!(
                    "UPDATE messages SET ciphertext = NULL, content = NULL, search_text = NULL, reactions = NULL, \
                     pinned_at_ms = 0, pinned_by = NULL, deleted_at_ms = $3, change_seq = $4 \
                     WHERE id = $1 AND conversation_id = $2 RETURNING {}",
                    crate::conversations::MESSAGE_COLUMNS
                ))
                .bind(id.as_uuid())
                .bind(conversation.as_uuid())
                .bind(now_ms)
                .bind(change)
                .fetch_one(&mut *$tx)
                .await?;
                crate::attachments::expire_attachments_of!($tx, conversation, id, now_ms);
                Some(crate::conversations::decode!(message row))
            }
        }
    }};
}
pub(crate) use clear_message;
pub(crate) use unindex;

/// A search of the cloud conversations `account` is in.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// Who searches (only conversations they are a member of are searched).
    pub account: AccountId,
    /// The words (see [`crate::search`]); at least one.
    pub text: String,
    /// Only this conversation.
    pub conversation: Option<ConversationId>,
    /// `conversation` is a guild's cloud channel the server found the account may read (a
    /// channel has no member rows to find it by).
    pub channel: bool,
    /// Only messages from this account.
    pub sender: Option<AccountId>,
    /// Only messages sent at or after this time (ms; 0: no bound).
    pub after_ms: i64,
    /// Only messages sent before this time (ms; 0: no bound).
    pub before_ms: i64,
    /// Only messages older than this one (sent time, conversation and id): the previous
    /// page's last.
    pub older_than: Option<(i64, ConversationId, MessageId)>,
    /// At most this many.
    pub limit: i64,
}

/// One person's reaction to a message, added or taken back.
#[derive(Debug, Clone, Copy)]
pub struct ReactionChange<'a> {
    /// Where.
    pub conversation: ConversationId,
    /// The message.
    pub message: MessageId,
    /// Who reacts.
    pub account: AccountId,
    /// The emoji.
    pub emoji: &'a str,
    /// Taken back.
    pub remove: bool,
}

/// What a reaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReactOutcome {
    /// Added or taken back: the message with its new reactions (and a new change number).
    Changed(MessageRecord),
    /// Already so (added twice, or taking back one that is not there): nothing changed.
    Unchanged(MessageRecord),
    /// The person already has the most different reactions on this message.
    TooMany,
    /// No such live message (absent, deleted, a system entry).
    NotFound,
}

/// What pinning or unpinning did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinOutcome {
    /// Pinned or unpinned now.
    Changed(MessageRecord),
    /// It already was.
    Unchanged(MessageRecord),
    /// The conversation already has the most pins.
    TooMany,
    /// No such live message.
    NotFound,
}

/// Search, reactions, pins, timers and the sweep.
#[async_trait]
pub trait MessageExtrasStore: Send + Sync {
    /// Replaces a live cloud message's content (and its words, and whom it mentions). `None` if
    /// it is deleted or absent.
    async fn edit_cloud_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
        body: &CloudBody,
        now_ms: i64,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// Live cloud messages matching every word of the query, newest first.
    async fn search_messages(&self, query: &SearchQuery) -> Result<Vec<MessageRecord>, StoreError>;
    /// `account` adds (or with `remove` takes back) a reaction; it may hold at most
    /// `max_per_person` different ones on one message.
    async fn react(
        &self,
        change: ReactionChange<'_>,
        max_per_person: i64,
        now_ms: i64,
    ) -> Result<ReactOutcome, StoreError>;
    /// `by` pins (or unpins) a live message; a conversation holds at most `max_pins`.
    async fn pin_message(
        &self,
        conversation: ConversationId,
        message: MessageId,
        by: AccountId,
        pin: bool,
        max_pins: i64,
        now_ms: i64,
    ) -> Result<PinOutcome, StoreError>;
    /// The pinned messages, most recently pinned first.
    async fn pins(&self, conversation: ConversationId) -> Result<Vec<MessageRecord>, StoreError>;
    /// `by` sets the disappearing-message timer (seconds, 0: off) and writes the system entry;
    /// `None` if the conversation is absent or the timer was that already.
    async fn set_message_timer(
        &self,
        conversation: ConversationId,
        by: AccountId,
        seconds: i64,
        now_ms: i64,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// Deletes the content of up to `limit` messages whose timer ran out by `now_ms`, and (with
    /// `sent_before_ms`) of messages sent before then; returns the tombstones.
    async fn sweep_messages(
        &self,
        now_ms: i64,
        sent_before_ms: Option<i64>,
        limit: i64,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// Messages after the member's read mark that mention them (cloud conversations).
    async fn mention_count(
        &self,
        conversation: ConversationId,
        account: AccountId,
    ) -> Result<i64, StoreError>;
}

/// Rebuilds the summary of a message's reactions from its rows.
fn summarise(rows: Vec<(String, Uuid)>) -> Vec<ReactionGroup> {
    let mut groups: Vec<ReactionGroup> = Vec::new();
    for (emoji, account) in rows {
        let account = AccountId::from_uuid(account);
        match groups.iter_mut().find(|g| g.emoji == emoji) {
            Some(g) => {
                g.count += 1;
                if g.accounts.len() < ReactionGroup::MAX_NAMED {
                    g.accounts.push(account);
                }
            }
            None => groups.push(ReactionGroup { emoji, count: 1, accounts: vec![account] }),
        }
    }
    // Most used first; among equals, the first reacted (the order rows came in) first.
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    groups
}

impl_for_backends! {
    impl MessageExtrasStore {
        async fn edit_cloud_message(
            &self,
            conversation: ConversationId,
            id: MessageId,
            body: &CloudBody,
            now_ms: i64,
        ) -> Result<Option<MessageRecord>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let Some(change) = crate::conversations::next_change!(tx, conversation) else { return Ok(None) };
            let row = sqlx::query(&format!(
                "UPDATE messages SET content = $3, search_text = $4, edited_at_ms = $5, change_seq = $6 \
                 WHERE id = $1 AND conversation_id = $2 AND deleted_at_ms = 0 AND system_kind IS NULL \
                 AND content IS NOT NULL RETURNING {MESSAGE_COLUMNS}"
            ))
            .bind(id.as_uuid())
            .bind(conversation.as_uuid())
            .bind(&body.content)
            .bind(&body.search_text)
            .bind(now_ms)
            .bind(change)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(None);
            };
            let edited = decode!(message row);
            unindex!(tx, Self::BACKEND, conversation, edited.seq);
            index_cloud_body!(tx, Self::BACKEND, conversation, edited.seq, body);
            tx.commit().await?;
            Ok(Some(edited))
        }

        async fn search_messages(&self, q: &SearchQuery) -> Result<Vec<MessageRecord>, StoreError> {
            let stems = crate::search::query_stems(&q.text);
            if stems.is_empty() {
                return Ok(Vec::new());
            }
            // Newest first, stopping at the page's end rather than sorting every match (a common
            // word matches a sixth of a million messages): SQLite walks the FTS5 index backwards
            // by rowid, which is the order messages were stored in; PostgreSQL may walk the
            // partial index on sent_at_ms backwards and test each row (its planner chooses).
            let filters = "(conversation_id IN (SELECT conversation_id FROM conversation_members WHERE account_id = $1) \
                 OR ($11 AND conversation_id = $3)) \
                 AND search_text IS NOT NULL AND deleted_at_ms = 0 AND system_kind IS NULL \
                 AND ($3 IS NULL OR conversation_id = $3) AND ($4 IS NULL OR sender_account_id = $4) \
                 AND sent_at_ms >= $5 AND sent_at_ms < $6";
            let (sql, text) = match Self::BACKEND {
                crate::Backend::Sqlite => (
                    format!(
                        "SELECT {MESSAGE_COLUMNS} FROM message_search s JOIN messages m ON m.rid = s.rowid \
                         WHERE message_search MATCH $2 AND {filters} \
                         AND s.rowid < COALESCE((SELECT rid FROM messages WHERE conversation_id = $10 AND id = $8), \
                         9223372036854775807) \
                         ORDER BY s.rowid DESC LIMIT $9"
                    ),
                    crate::search::fts5_query(&stems),
                ),
                crate::Backend::Postgres => (
                    format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE search @@ plainto_tsquery('russian', $2) \
                         AND {filters} AND (sent_at_ms, conversation_id, id) < ($7, $10, $8) \
                         ORDER BY sent_at_ms DESC, conversation_id DESC, id DESC LIMIT $9"
                    ),
                    q.text.clone(),
                ),
            };
            let (older_at, older_in, older_id) = q
                .older_than
                .map_or((i64::MAX, None, Uuid::max()), |(at, c, id)| (at, Some(c.as_uuid()), id.as_uuid()));
            let rows = sqlx::query(&sql)
            .bind(q.account.as_uuid())
            .bind(text)
            .bind(q.conversation.map(|c| c.as_uuid()))
            .bind(q.sender.map(|s| s.as_uuid()))
            .bind(q.after_ms)
            .bind(if q.before_ms > 0 { q.before_ms } else { i64::MAX })
            .bind(older_at)
            .bind(older_id)
            .bind(q.limit)
            .bind(older_in)
            .bind(q.channel && q.conversation.is_some())
            .fetch_all(&self.pool)
            .await?;
            Ok(decode_all!(message rows))
        }

        async fn react(
            &self,
            change_of: ReactionChange<'_>,
            max_per_person: i64,
            now_ms: i64,
        ) -> Result<ReactOutcome, StoreError> {
            let ReactionChange { conversation, message, account, emoji, remove } = change_of;
            let mut tx = self.pool.begin().await?;
            let Some(change) = crate::conversations::next_change!(tx, conversation) else {
                return Ok(ReactOutcome::NotFound);
            };
            let Some(current) = live_message!(tx, conversation, message) else {
                tx.rollback().await?;
                return Ok(ReactOutcome::NotFound);
            };
            let changed = if remove {
                sqlx::query(
                    "DELETE FROM message_reactions WHERE conversation_id = $1 AND message_id = $2 \
                     AND account_id = $3 AND emoji = $4",
                )
                .bind(conversation.as_uuid())
                .bind(message.as_uuid())
                .bind(account.as_uuid())
                .bind(emoji)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0
            } else {
                let mine: Vec<String> = sqlx::query_scalar(
                    "SELECT emoji FROM message_reactions WHERE conversation_id = $1 AND message_id = $2 \
                     AND account_id = $3",
                )
                .bind(conversation.as_uuid())
                .bind(message.as_uuid())
                .bind(account.as_uuid())
                .fetch_all(&mut *tx)
                .await?;
                if mine.iter().any(|e| e == emoji) {
                    false
                } else if i64::try_from(mine.len()).unwrap_or(i64::MAX) >= max_per_person {
                    tx.rollback().await?;
                    return Ok(ReactOutcome::TooMany);
                } else {
                    sqlx::query(
                        "INSERT INTO message_reactions (conversation_id, message_id, account_id, emoji, reacted_at_ms) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(conversation.as_uuid())
                    .bind(message.as_uuid())
                    .bind(account.as_uuid())
                    .bind(emoji)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                    true
                }
            };
            if !changed {
                tx.rollback().await?;
                return Ok(ReactOutcome::Unchanged(current));
            }
            let rows: Vec<(String, Uuid)> = sqlx::query_as(
                "SELECT emoji, account_id FROM message_reactions WHERE conversation_id = $1 AND message_id = $2 \
                 ORDER BY reacted_at_ms, account_id, emoji",
            )
            .bind(conversation.as_uuid())
            .bind(message.as_uuid())
            .fetch_all(&mut *tx)
            .await?;
            let row = sqlx::query(&format!(
                "UPDATE messages SET reactions = $3, change_seq = $4, updated_at_ms = $5 \
                 WHERE id = $1 AND conversation_id = $2 RETURNING {MESSAGE_COLUMNS}"
            ))
            .bind(message.as_uuid())
            .bind(conversation.as_uuid())
            .bind(ReactionGroup::encode_all(&summarise(rows)))
            .bind(change)
            .bind(now_ms.max(1))
            .fetch_one(&mut *tx)
            .await?;
            let updated = decode!(message row);
            tx.commit().await?;
            Ok(ReactOutcome::Changed(updated))
        }

        async fn pin_message(
            &self,
            conversation: ConversationId,
            message: MessageId,
            by: AccountId,
            pin: bool,
            max_pins: i64,
            now_ms: i64,
        ) -> Result<PinOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            let Some(change) = crate::conversations::next_change!(tx, conversation) else {
                return Ok(PinOutcome::NotFound);
            };
            let Some(current) = live_message!(tx, conversation, message) else {
                tx.rollback().await?;
                return Ok(PinOutcome::NotFound);
            };
            if (current.pinned_at_ms > 0) == pin {
                tx.rollback().await?;
                return Ok(PinOutcome::Unchanged(current));
            }
            if pin {
                let pinned: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND pinned_at_ms > 0",
                )
                .bind(conversation.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
                if pinned >= max_pins {
                    tx.rollback().await?;
                    return Ok(PinOutcome::TooMany);
                }
            }
            let row = sqlx::query(&format!(
                "UPDATE messages SET pinned_at_ms = $3, pinned_by = $4, change_seq = $5, updated_at_ms = $6 \
                 WHERE id = $1 AND conversation_id = $2 RETURNING {MESSAGE_COLUMNS}"
            ))
            .bind(message.as_uuid())
            .bind(conversation.as_uuid())
            .bind(if pin { now_ms.max(1) } else { 0 })
            .bind(pin.then(|| by.as_uuid()))
            .bind(change)
            .bind(now_ms.max(1))
            .fetch_one(&mut *tx)
            .await?;
            let updated = decode!(message row);
            tx.commit().await?;
            Ok(PinOutcome::Changed(updated))
        }

        async fn pins(&self, conversation: ConversationId) -> Result<Vec<MessageRecord>, StoreError> {
            let rows = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND pinned_at_ms > 0 \
                 ORDER BY pinned_at_ms DESC, seq DESC"
            ))
            .bind(conversation.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            Ok(decode_all!(message rows))
        }

        async fn set_message_timer(
            &self,
            conversation: ConversationId,
            by: AccountId,
            seconds: i64,
            now_ms: i64,
        ) -> Result<Option<MessageRecord>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE conversations SET message_timer_s = $2 WHERE id = $1 AND message_timer_s <> $2",
            )
            .bind(conversation.as_uuid())
            .bind(seconds)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            let entry = crate::conversations::system_entry!(tx, conversation, by, SystemEntry::TimerChanged(seconds), now_ms);
            tx.commit().await?;
            Ok(Some(entry))
        }

        async fn sweep_messages(
            &self,
            now_ms: i64,
            sent_before_ms: Option<i64>,
            limit: i64,
        ) -> Result<Vec<MessageRecord>, StoreError> {
            let mut due: Vec<(Uuid, Uuid)> = sqlx::query_as(
                "SELECT conversation_id, id FROM messages WHERE expires_at_ms > 0 AND deleted_at_ms = 0 \
                 AND expires_at_ms <= $1 ORDER BY expires_at_ms LIMIT $2",
            )
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            if let Some(before) = sent_before_ms {
                let room = limit - i64::try_from(due.len()).unwrap_or(limit);
                if room > 0 {
                    let old: Vec<(Uuid, Uuid)> = sqlx::query_as(
                        "SELECT conversation_id, id FROM messages WHERE deleted_at_ms = 0 AND system_kind IS NULL \
                         AND sent_at_ms < $1 ORDER BY sent_at_ms LIMIT $2",
                    )
                    .bind(before)
                    .bind(room)
                    .fetch_all(&self.pool)
                    .await?;
                    for pair in old {
                        if !due.contains(&pair) {
                            due.push(pair);
                        }
                    }
                }
            }
            let mut gone = Vec::with_capacity(due.len());
            // One transaction for the batch: its messages go together, each with its own change.
            let mut tx = self.pool.begin().await?;
            for (conversation, id) in due {
                let (conversation, id) = (ConversationId::from_uuid(conversation), MessageId::from_uuid(id));
                let Some(change) = crate::conversations::next_change!(tx, conversation) else { continue };
                if let Some(tombstone) = clear_message!(tx, Self::BACKEND, conversation, id, change, now_ms) {
                    gone.push(tombstone);
                }
            }
            tx.commit().await?;
            Ok(gone)
        }

        async fn mention_count(&self, conversation: ConversationId, account: AccountId) -> Result<i64, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM message_mentions WHERE account_id = $2 AND conversation_id = $1 AND seq > \
                 COALESCE((SELECT read_seq FROM conversation_members WHERE conversation_id = $1 AND account_id = $2), 0)",
            )
            .bind(conversation.as_uuid())
            .bind(account.as_uuid())
            .fetch_one(&self.pool)
            .await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_survives_its_stored_form() {
        let a = AccountId::from_uuid(Uuid::from_u128(1));
        let b = AccountId::from_uuid(Uuid::from_u128(2));
        let groups = summarise(vec![
            ("👍".into(), a.as_uuid()),
            ("🎉".into(), a.as_uuid()),
            ("🎉".into(), b.as_uuid()),
        ]);
        assert_eq!(groups[0].emoji, "🎉");
        assert_eq!(groups[0].count, 2);
        let stored = ReactionGroup::encode_all(&groups);
        assert_eq!(ReactionGroup::decode_all(stored.as_deref()).unwrap(), groups);
        assert_eq!(ReactionGroup::encode_all(&[]), None);
    }
}
