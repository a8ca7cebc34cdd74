-- Cloud conversations (Telegram-style), reactions, mentions, pins, disappearing messages and
-- full-text search.
--
-- A cloud conversation's message keeps its Content (the protobuf, unencrypted) in `content` and
-- its words in `search_text`; an E2EE message keeps only `ciphertext`. Deleting or expiring a
-- message clears all three and its search entry (a tombstone row stays). Search on SQLite is
-- FTS5 over stems the store computes (Snowball: Russian for Cyrillic words, English for the
-- rest), so "кошками" finds "кошка".
--
-- `messages` is rebuilt: the CHECK on system_kind gains 'timer_changed' (SQLite cannot alter a
-- CHECK), and the table gets an explicit integer key (`rid`) the search index refers to, which
-- VACUUM never renumbers. Nothing refers to `messages` by a foreign key.
CREATE TABLE messages_new (
    rid               INTEGER PRIMARY KEY,
    conversation_id   BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    id                BLOB    NOT NULL CHECK (length(id) = 16),
    sender_account_id BLOB    NOT NULL,
    sender_device_id  BLOB    NOT NULL,
    -- E2EE: NULL once deleted.
    ciphertext        BLOB,
    session_id        BLOB    NOT NULL,
    reply_to          BLOB,
    sent_at_ms        INTEGER NOT NULL,
    edited_at_ms      INTEGER NOT NULL DEFAULT 0,
    deleted_at_ms     INTEGER NOT NULL DEFAULT 0,
    change_seq        INTEGER NOT NULL DEFAULT 0,
    system_kind       TEXT CHECK (system_kind IN ('member_added', 'member_removed', 'member_left',
                                                  'role_changed', 'title_changed', 'timer_changed')),
    system_target     BLOB,
    system_role       TEXT CHECK (system_role IN ('owner', 'admin', 'member')),
    system_title      TEXT,
    -- Timer changes: the new timer in seconds.
    system_timer      INTEGER,
    -- Cloud: the Content protobuf and its searchable words; NULL once deleted or expired.
    content           BLOB,
    search_text       TEXT,
    -- 0, or when the message disappears (the conversation's timer when it was sent).
    expires_at_ms     INTEGER NOT NULL DEFAULT 0,
    pinned_at_ms      INTEGER NOT NULL DEFAULT 0,
    pinned_by         BLOB,
    -- The last reaction or pin change (0: none): such a change reaches devices as an edit.
    updated_at_ms     INTEGER NOT NULL DEFAULT 0,
    -- Cloud: the reactions, summarised from message_reactions on every change (one line per
    -- emoji: "emoji TAB count TAB account ids separated by spaces"), so every path that reads a
    -- message (history, delivery, search) has them.
    reactions         TEXT,
    UNIQUE (conversation_id, seq),
    UNIQUE (conversation_id, id)
) STRICT;

INSERT INTO messages_new (conversation_id, seq, id, sender_account_id, sender_device_id, ciphertext,
                          session_id, reply_to, sent_at_ms, edited_at_ms, deleted_at_ms, change_seq,
                          system_kind, system_target, system_role, system_title)
SELECT conversation_id, seq, id, sender_account_id, sender_device_id, ciphertext,
       session_id, reply_to, sent_at_ms, edited_at_ms, deleted_at_ms, change_seq,
       system_kind, system_target, system_role, system_title
FROM messages ORDER BY conversation_id, seq;

DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE UNIQUE INDEX messages_changes ON messages (conversation_id, change_seq);
-- The sweeper's work: messages with a timer that have not gone yet, and (retention) the oldest.
CREATE INDEX messages_expiry ON messages (expires_at_ms) WHERE expires_at_ms > 0 AND deleted_at_ms = 0;
CREATE INDEX messages_age ON messages (sent_at_ms) WHERE deleted_at_ms = 0 AND system_kind IS NULL;
CREATE INDEX messages_pins ON messages (conversation_id, pinned_at_ms) WHERE pinned_at_ms > 0;

-- The disappearing-message timer in seconds (0: off).
ALTER TABLE conversations ADD COLUMN message_timer_s INTEGER NOT NULL DEFAULT 0;

-- Cloud reactions: one row per person, message and emoji.
CREATE TABLE message_reactions (
    conversation_id BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      BLOB    NOT NULL,
    account_id      BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    emoji           TEXT    NOT NULL,
    reacted_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, message_id, account_id, emoji)
) STRICT;

-- Cloud mentions: who a message names, for the mention count.
CREATE TABLE message_mentions (
    account_id      BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    conversation_id BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    PRIMARY KEY (account_id, conversation_id, seq)
) STRICT;

-- Stems of cloud messages' words; rowid = messages.rid.
CREATE VIRTUAL TABLE message_search USING fts5 (terms, tokenize = 'unicode61 remove_diacritics 0');
-- Deleting a row takes its terms out of the index at once (not at a later merge), so nothing of a
-- deleted or expired message stays behind in the index either.
INSERT INTO message_search (message_search, rank) VALUES ('secure-delete', 1);
