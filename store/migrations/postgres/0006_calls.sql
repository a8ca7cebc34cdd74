-- Calls: which conversation has a call going, and which devices are in it. Media never touches
-- the server; this is only what signalling needs (one call per conversation, at most six
-- devices, unanswered calls end).

CREATE TABLE calls (
    id                UUID    PRIMARY KEY,
    conversation_id   UUID    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    caller_account_id UUID    NOT NULL,
    caller_device_id  UUID    NOT NULL,
    video             BOOLEAN NOT NULL,
    created_at_ms     BIGINT  NOT NULL,
    -- 0 until a second device joins.
    answered_at_ms    BIGINT  NOT NULL DEFAULT 0,
    -- 0 while it goes on.
    ended_at_ms       BIGINT  NOT NULL DEFAULT 0
);

-- At most one call going on per conversation.
CREATE UNIQUE INDEX calls_one_per_conversation ON calls (conversation_id) WHERE ended_at_ms = 0;

CREATE TABLE call_participants (
    call_id      UUID    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    device_id    UUID    NOT NULL,
    account_id   UUID    NOT NULL,
    joined_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (call_id, device_id)
);

CREATE INDEX call_participants_device ON call_participants (device_id);
