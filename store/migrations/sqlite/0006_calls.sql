-- Calls: which conversation has a call going, and which devices are in it. Media never touches
-- the server; this is only what signalling needs (one call per conversation, at most six
-- devices, unanswered calls end).

CREATE TABLE calls (
    id                BLOB    PRIMARY KEY CHECK (length(id) = 16),
    conversation_id   BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    caller_account_id BLOB    NOT NULL,
    caller_device_id  BLOB    NOT NULL,
    video             INTEGER NOT NULL,
    created_at_ms     INTEGER NOT NULL,
    -- 0 until a second device joins.
    answered_at_ms    INTEGER NOT NULL DEFAULT 0,
    -- 0 while it goes on.
    ended_at_ms       INTEGER NOT NULL DEFAULT 0
) STRICT;

-- At most one call going on per conversation.
CREATE UNIQUE INDEX calls_one_per_conversation ON calls (conversation_id) WHERE ended_at_ms = 0;

CREATE TABLE call_participants (
    call_id      BLOB    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    device_id    BLOB    NOT NULL,
    account_id   BLOB    NOT NULL,
    joined_at_ms INTEGER NOT NULL,
    PRIMARY KEY (call_id, device_id)
) STRICT;

CREATE INDEX call_participants_device ON call_participants (device_id);
