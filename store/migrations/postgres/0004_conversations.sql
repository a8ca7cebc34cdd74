-- Conversations (direct and group), their members and their messages. In e2ee mode a message
-- is Megolm ciphertext the server cannot read; deleting one removes the ciphertext.

CREATE TABLE conversations (
    id                  UUID   PRIMARY KEY,
    kind                TEXT   NOT NULL CHECK (kind IN ('direct', 'group')),
    mode                TEXT   NOT NULL CHECK (mode IN ('e2ee', 'cloud')),
    -- Groups only.
    title               TEXT,
    -- Direct only: both account ids, smaller first, so a pair has one conversation.
    direct_key          BYTEA  UNIQUE,
    created_by          UUID   NOT NULL,
    created_at_ms       BIGINT NOT NULL,
    -- The sequence number of the newest message; the next one gets last_seq + 1.
    last_seq            BIGINT NOT NULL DEFAULT 0,
    last_activity_at_ms BIGINT NOT NULL
);

CREATE TABLE conversation_members (
    conversation_id UUID   NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    account_id      UUID   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role            TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at_ms    BIGINT NOT NULL,
    -- Everything up to here has been read by this person (on any of their devices).
    read_seq        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, account_id)
);

CREATE INDEX conversation_members_account ON conversation_members (account_id);

CREATE TABLE messages (
    conversation_id   UUID   NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    -- Chosen by the sending device, so a retried send is stored once.
    id                UUID   NOT NULL UNIQUE,
    sender_account_id UUID   NOT NULL,
    sender_device_id  UUID   NOT NULL,
    -- NULL once deleted.
    ciphertext        BYTEA,
    session_id        BYTEA  NOT NULL,
    reply_to          UUID,
    sent_at_ms        BIGINT NOT NULL,
    edited_at_ms      BIGINT NOT NULL DEFAULT 0,
    deleted_at_ms     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, seq)
);
