-- Conversations (direct and group), their members and their messages. In e2ee mode a message
-- is Megolm ciphertext the server cannot read; deleting one removes the ciphertext.

CREATE TABLE conversations (
    id                  BLOB    PRIMARY KEY CHECK (length(id) = 16),
    kind                TEXT    NOT NULL CHECK (kind IN ('direct', 'group')),
    mode                TEXT    NOT NULL CHECK (mode IN ('e2ee', 'cloud')),
    -- Groups only.
    title               TEXT,
    -- Direct only: both account ids, smaller first, so a pair has one conversation.
    direct_key          BLOB    UNIQUE,
    created_by          BLOB    NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    -- The sequence number of the newest message; the next one gets last_seq + 1.
    last_seq            INTEGER NOT NULL DEFAULT 0,
    last_activity_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE conversation_members (
    conversation_id BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    account_id      BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role            TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at_ms    INTEGER NOT NULL,
    -- Everything up to here has been read by this person (on any of their devices).
    read_seq        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, account_id)
) STRICT;

CREATE INDEX conversation_members_account ON conversation_members (account_id);

CREATE TABLE messages (
    conversation_id   BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    -- Chosen by the sending device, so a retried send is stored once.
    id                BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
    sender_account_id BLOB    NOT NULL,
    sender_device_id  BLOB    NOT NULL,
    -- NULL once deleted.
    ciphertext        BLOB,
    session_id        BLOB    NOT NULL,
    reply_to          BLOB,
    sent_at_ms        INTEGER NOT NULL,
    edited_at_ms      INTEGER NOT NULL DEFAULT 0,
    deleted_at_ms     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, seq)
) STRICT;
