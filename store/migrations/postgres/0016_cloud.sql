-- Cloud conversations (Telegram-style), reactions, mentions, pins, disappearing messages and
-- full-text search.
--
-- A cloud conversation's message keeps its Content (the protobuf, unencrypted) in `content` and
-- its words in `search_text`; an E2EE message keeps only `ciphertext`. Deleting or expiring a
-- message clears all three (a tombstone row stays). Search on PostgreSQL is its own full-text
-- search with the `russian` configuration, which stems Cyrillic words as Russian and the rest as
-- English, so "кошками" finds "кошка".
ALTER TABLE messages DROP CONSTRAINT messages_system_kind_check;
ALTER TABLE messages ADD CONSTRAINT messages_system_kind_check
    CHECK (system_kind IN ('member_added', 'member_removed', 'member_left', 'role_changed',
                           'title_changed', 'timer_changed'));
-- Timer changes: the new timer in seconds.
ALTER TABLE messages ADD COLUMN system_timer BIGINT;
-- Cloud: the Content protobuf and its searchable words; NULL once deleted or expired.
ALTER TABLE messages ADD COLUMN content BYTEA;
ALTER TABLE messages ADD COLUMN search_text TEXT;
ALTER TABLE messages ADD COLUMN search TSVECTOR
    GENERATED ALWAYS AS (to_tsvector('russian', COALESCE(search_text, ''))) STORED;
-- 0, or when the message disappears (the conversation's timer when it was sent).
ALTER TABLE messages ADD COLUMN expires_at_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN pinned_at_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN pinned_by UUID;
-- The last reaction or pin change (0: none): such a change reaches devices as an edit.
ALTER TABLE messages ADD COLUMN updated_at_ms BIGINT NOT NULL DEFAULT 0;
-- Cloud: the reactions, summarised from message_reactions on every change (one line per emoji:
-- "emoji TAB count TAB account ids separated by spaces"), so every path that reads a message
-- (history, delivery, search) has them.
ALTER TABLE messages ADD COLUMN reactions TEXT;

CREATE INDEX messages_search ON messages USING GIN (search) WHERE search_text IS NOT NULL;
CREATE INDEX messages_expiry ON messages (expires_at_ms) WHERE expires_at_ms > 0 AND deleted_at_ms = 0;
CREATE INDEX messages_age ON messages (sent_at_ms) WHERE deleted_at_ms = 0 AND system_kind IS NULL;
CREATE INDEX messages_pins ON messages (conversation_id, pinned_at_ms) WHERE pinned_at_ms > 0;

-- The disappearing-message timer in seconds (0: off).
ALTER TABLE conversations ADD COLUMN message_timer_s BIGINT NOT NULL DEFAULT 0;

-- Cloud reactions: one row per person, message and emoji.
CREATE TABLE message_reactions (
    conversation_id UUID   NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      UUID   NOT NULL,
    account_id      UUID   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    emoji           TEXT   NOT NULL,
    reacted_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, message_id, account_id, emoji)
);

-- Cloud mentions: who a message names, for the mention count.
CREATE TABLE message_mentions (
    account_id      UUID   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    conversation_id UUID   NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    PRIMARY KEY (account_id, conversation_id, seq)
);
