-- A message id (chosen by the sending device) is unique within its conversation, not across
-- the server: a device that picks an id already used in a conversation it is not in must not
-- learn that the id exists there (it used to get MESSAGE_ID_TAKEN). A retried send still finds
-- its first copy, which is in the same conversation.
--
-- SQLite cannot drop a column's UNIQUE constraint, so the table is rebuilt; nothing refers to
-- `messages` by a foreign key.
CREATE TABLE messages_new (
    conversation_id   BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    id                BLOB    NOT NULL CHECK (length(id) = 16),
    sender_account_id BLOB    NOT NULL,
    sender_device_id  BLOB    NOT NULL,
    -- NULL once deleted.
    ciphertext        BLOB,
    session_id        BLOB    NOT NULL,
    reply_to          BLOB,
    sent_at_ms        INTEGER NOT NULL,
    edited_at_ms      INTEGER NOT NULL DEFAULT 0,
    deleted_at_ms     INTEGER NOT NULL DEFAULT 0,
    change_seq        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, id)
) STRICT;

INSERT INTO messages_new (conversation_id, seq, id, sender_account_id, sender_device_id, ciphertext,
                          session_id, reply_to, sent_at_ms, edited_at_ms, deleted_at_ms, change_seq)
SELECT conversation_id, seq, id, sender_account_id, sender_device_id, ciphertext,
       session_id, reply_to, sent_at_ms, edited_at_ms, deleted_at_ms, change_seq
FROM messages;

DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE UNIQUE INDEX messages_changes ON messages (conversation_id, change_seq);
