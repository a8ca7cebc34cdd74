//! Search, reactions, pins and disappearing messages: what every conversation offers beyond
//! sending (`ConversationService.SearchMessages`, `React`, `PinMessage`, `ListPins`,
//! `SetMessageTimer`), and the sweep that deletes expired content and, with
//! `KITSULAN_RETENTION_DAYS`, old content.
//!
//! # Security
//! Each call starts from the caller's membership, so a conversation the caller is not in is
//! `CONVERSATION_NOT_FOUND` as everywhere. Search reads cloud conversations only (the server
//! has no words of an E2EE one) and only those the caller is in. Reactions are server-side in
//! cloud conversations alone: in an E2EE one they travel encrypted, and a server-side reaction
//! would show the server who reacted with what. Pins hold message ids, never content, so they
//! work in both. Everything one person can add is capped: reactions per message, pins per
//! conversation, the length of a query.

use std::time::Duration;

use super::guilds::permissions::Permissions;
use super::{Caller, Conversations, Error, ErrorReason};
use crate::bus::Notice;
use crate::ids::{AccountId, ConversationId, MessageId};
use crate::store::search::{MAX_QUERY_CHARS, query_stems, stem, words};
use crate::store::{
    ConversationKind, MessageRecord, PinOutcome, ReactOutcome, ReactionChange, Role, SearchQuery, now_ms,
};

/// Different reactions one person may leave on one message.
pub const MAX_REACTIONS_PER_PERSON: i64 = 20;
/// Pinned messages one conversation holds.
pub const MAX_PINS: i64 = 50;
/// The shortest disappearing-message timer (seconds).
pub const MIN_TIMER_SECONDS: u32 = 30;
/// The longest (365 days).
pub const MAX_TIMER_SECONDS: u32 = 365 * 24 * 3600;
/// The largest search page.
pub const MAX_SEARCH_PAGE: u32 = 50;
/// A search page when the client names no size.
pub const DEFAULT_SEARCH_PAGE: u32 = 20;
/// Messages one sweep deletes at most per transaction.
const SWEEP_BATCH: i64 = 500;

/// A search as the caller asked it.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// The words.
    pub query: String,
    /// Only this conversation.
    pub conversation: Option<ConversationId>,
    /// Only from this account.
    pub sender: Option<AccountId>,
    /// Sent at or after (ms; 0: no bound).
    pub after_ms: i64,
    /// Sent before (ms; 0: no bound).
    pub before_ms: i64,
    /// Page size (0: the default).
    pub limit: u32,
    /// The previous page's `next_page_token` (empty: the first page).
    pub page_token: String,
}

fn page_token_invalid() -> Error {
    Error::invalid(ErrorReason::PageTokenInvalid, "page_token", "use the next_page_token of the page before")
}

impl Conversations {
    /// A page of cloud messages matching every word of the query, newest first, and the next
    /// page's token.
    pub async fn search(
        &self,
        caller: &Caller,
        search: Search,
    ) -> Result<(Vec<MessageRecord>, Option<String>), Error> {
        if search.query.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::invalid(
                ErrorReason::SearchQueryInvalid,
                "query",
                format!("a search is at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        if query_stems(&search.query).is_empty() {
            return Err(Error::invalid(
                ErrorReason::SearchQueryInvalid,
                "query",
                "search for at least one word",
            ));
        }
        let limit = match search.limit {
            0 => DEFAULT_SEARCH_PAGE,
            n if n <= MAX_SEARCH_PAGE => n,
            _ => {
                return Err(Error::invalid(
                    ErrorReason::LimitInvalid,
                    "limit",
                    format!("pages are 1 to {MAX_SEARCH_PAGE} results"),
                ));
            }
        };
        let channel = match search.conversation {
            Some(id) => {
                matches!(self.membership(caller, id).await?.1, super::conversations::Standing::Channel(_))
            }
            None => false,
        };
        let older_than = if search.page_token.is_empty() {
            None
        } else {
            let mut parts = search.page_token.splitn(3, '.');
            let (Some(at), Some(conversation), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(page_token_invalid());
            };
            Some((
                at.parse().map_err(|_| page_token_invalid())?,
                conversation.parse().map_err(|_| page_token_invalid())?,
                id.parse().map_err(|_| page_token_invalid())?,
            ))
        };
        let mut page = self
            .store
            .search_messages(&SearchQuery {
                account: caller.account_id,
                text: search.query,
                conversation: search.conversation,
                channel,
                sender: search.sender,
                after_ms: search.after_ms.max(0),
                before_ms: search.before_ms.max(0),
                older_than,
                limit: i64::from(limit) + 1,
            })
            .await?;
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        let next = match page.last() {
            Some(last) if more => Some(format!("{}.{}.{}", last.sent_at_ms, last.conversation_id, last.id)),
            _ => None,
        };
        Ok((page, next))
    }

    /// Adds or takes back the caller's reaction to a cloud message.
    pub async fn react(
        &self,
        caller: &Caller,
        id: ConversationId,
        message: MessageId,
        emoji: &str,
        remove: bool,
    ) -> Result<MessageRecord, Error> {
        let (conversation, me) = self.membership(caller, id).await?;
        me.require(Permissions::ADD_REACTIONS, "add reactions")?;
        if conversation.e2ee {
            return Err(Error::invalid(
                ErrorReason::WrongMode,
                "conversation_id",
                "reactions in an end-to-end encrypted conversation are sent encrypted, as a message",
            ));
        }
        if let Some(problem) = kitsulan_content::emoji::problem(emoji) {
            return Err(Error::invalid(
                ErrorReason::ReactionInvalid,
                "emoji",
                format!("a reaction is exactly one emoji ({})", problem.reason()),
            ));
        }
        let outcome = self
            .store
            .react(
                ReactionChange { conversation: id, message, account: caller.account_id, emoji, remove },
                MAX_REACTIONS_PER_PERSON,
                now_ms(),
            )
            .await?;
        match outcome {
            ReactOutcome::Changed(updated) => Ok(self.published(updated).await),
            ReactOutcome::Unchanged(current) => Ok(current),
            ReactOutcome::TooMany => Err(Error::limit(
                ErrorReason::TooManyReactions,
                format!(
                    "one person leaves at most {MAX_REACTIONS_PER_PERSON} different reactions on a message"
                ),
            )),
            ReactOutcome::NotFound => Err(message_not_found()),
        }
    }

    /// Pins or unpins a message (any member of a direct conversation; a group's owner and
    /// admins).
    pub async fn pin(
        &self,
        caller: &Caller,
        id: ConversationId,
        message: MessageId,
        pin: bool,
    ) -> Result<MessageRecord, Error> {
        let (conversation, me) = self.membership(caller, id).await?;
        if conversation.kind == ConversationKind::Group && me.role() == Role::Member {
            return Err(Error::Forbidden {
                reason: ErrorReason::NotAllowed,
                message: "only the group's owner and admins may pin messages".into(),
            });
        }
        me.require(Permissions::MANAGE_MESSAGES, "pin messages")?;
        match self.store.pin_message(id, message, caller.account_id, pin, MAX_PINS, now_ms()).await? {
            PinOutcome::Changed(updated) => Ok(self.published(updated).await),
            PinOutcome::Unchanged(current) => Ok(current),
            PinOutcome::TooMany => Err(Error::limit(
                ErrorReason::TooManyPins,
                format!("a conversation holds at most {MAX_PINS} pinned messages; unpin one first"),
            )),
            PinOutcome::NotFound => Err(message_not_found()),
        }
    }

    /// The pinned messages, most recently pinned first.
    pub async fn pins(&self, caller: &Caller, id: ConversationId) -> Result<Vec<MessageRecord>, Error> {
        self.membership(caller, id).await?;
        Ok(self.store.pins(id).await?)
    }

    /// Sets the disappearing-message timer (any member of a direct conversation; a group's
    /// owner and admins). The same value again changes nothing.
    pub async fn set_timer(
        &self,
        caller: &Caller,
        id: ConversationId,
        seconds: u32,
    ) -> Result<super::conversations::ConversationView, Error> {
        if seconds != 0 && !(MIN_TIMER_SECONDS..=MAX_TIMER_SECONDS).contains(&seconds) {
            return Err(Error::invalid(
                ErrorReason::TimerInvalid,
                "seconds",
                format!("a timer is 0 (off) or {MIN_TIMER_SECONDS} seconds to 365 days"),
            ));
        }
        let (conversation, me) = self.membership(caller, id).await?;
        if conversation.kind == ConversationKind::Group && me.role() == Role::Member {
            return Err(Error::Forbidden {
                reason: ErrorReason::NotAllowed,
                message: "only the group's owner and admins may set the disappearing-message timer".into(),
            });
        }
        me.require(Permissions::MANAGE_CHANNELS, "set the disappearing-message timer")?;
        if let Some(entry) =
            self.store.set_message_timer(id, caller.account_id, i64::from(seconds), now_ms()).await?
        {
            self.published(entry).await;
            tracing::info!(conversation = %id, by = %caller.account_id, seconds, "message timer set");
        }
        let conversation = self
            .store
            .conversation(id)
            .await?
            .ok_or_else(|| Error::not_found(ErrorReason::ConversationNotFound, "no such conversation"))?;
        self.view(caller, conversation).await
    }

    /// Deletes the content of every message whose timer ran out, and of messages older than the
    /// retention period; members' devices hear of each as a deletion. Returns how many.
    pub async fn sweep(&self) -> Result<usize, Error> {
        let mut swept = 0;
        loop {
            let now = now_ms();
            let before = self
                .settings
                .retention
                .map(|keep| now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX)));
            let gone = self.store.sweep_messages(now, before, SWEEP_BATCH).await?;
            let n = gone.len();
            for tombstone in gone {
                self.delivery.publish(Notice::Message(std::sync::Arc::new(tombstone))).await;
            }
            swept += n;
            if (n as i64) < SWEEP_BATCH {
                return Ok(swept);
            }
            // A first retention sweep over years of history: let sends between the batches.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs [`Conversations::sweep`] every `every`.
    pub async fn housekeeping(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "deleted the content of expired messages"),
                Err(e) => tracing::warn!(error = %e, "message sweep failed"),
            }
        }
    }
}

fn message_not_found() -> Error {
    Error::not_found(ErrorReason::MessageNotFound, "no such message in this conversation")
}

/// About 160 characters of `text` around the first word that matches `query`, and where the
/// matching words are in it (UTF-16 code units, as the browser counts).
pub fn snippet(text: &str, query: &str) -> (String, Vec<(u32, u32)>) {
    const BEFORE: usize = 40;
    const LENGTH: usize = 160;
    let stems = query_stems(query);
    let matched: Vec<(usize, usize)> = words(text)
        .filter(|(_, word)| stems.contains(&stem(word)))
        .map(|(at, word)| (at, at + word.len()))
        .collect();
    let first = matched.first().map_or(0, |m| m.0);
    // Start a little before the first match, at a character boundary.
    let start = text[..first].char_indices().rev().nth(BEFORE.saturating_sub(1)).map_or(0, |(i, _)| i);
    let end = text[start..].char_indices().nth(LENGTH).map_or(text.len(), |(i, _)| start + i);
    let lead = if start > 0 { "…" } else { "" };
    let tail = if end < text.len() { "…" } else { "" };
    let snippet = format!("{lead}{}{tail}", &text[start..end]);
    let utf16 = |s: &str| u32::try_from(s.encode_utf16().count()).unwrap_or(u32::MAX);
    let offset = utf16(lead);
    let highlights = matched
        .into_iter()
        .filter(|&(a, b)| a >= start && b <= end)
        .map(|(a, b)| (offset + utf16(&text[start..a]), offset + utf16(&text[start..b])))
        .collect();
    (snippet, highlights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snippet_highlights_every_inflected_match() {
        let (text, marks) = snippet("Вчера мы видели кошку, а кошки видели нас", "кошками");
        assert_eq!(text, "Вчера мы видели кошку, а кошки видели нас");
        let words: Vec<String> = marks
            .iter()
            .map(|&(a, b)| {
                String::from_utf16(&text.encode_utf16().collect::<Vec<_>>()[a as usize..b as usize]).unwrap()
            })
            .collect();
        assert_eq!(words, vec!["кошку", "кошки"]);
    }

    #[test]
    fn a_long_text_is_cut_around_the_match() {
        let text = format!("{} needle {}", "hay ".repeat(100), "straw ".repeat(100));
        let (cut, marks) = snippet(&text, "needles");
        assert!(cut.starts_with('…') && cut.ends_with('…'));
        assert!(cut.chars().count() <= 162);
        let utf16: Vec<u16> = cut.encode_utf16().collect();
        assert_eq!(String::from_utf16(&utf16[marks[0].0 as usize..marks[0].1 as usize]).unwrap(), "needle");
    }

    #[test]
    fn no_match_gives_the_start() {
        let (cut, marks) = snippet("short text", "absent");
        assert_eq!((cut.as_str(), marks.len()), ("short text", 0));
    }
}
