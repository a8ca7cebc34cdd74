-- Consent before contact: a stranger who opens a direct conversation with someone, or adds them
-- to a group, makes a request that person accepts, declines or blocks. Memberships that exist
-- already count as accepted. See docs/conversations.md.

-- TRUE while the member has not accepted (a message request); FALSE once accepted or when the
-- member started the conversation or was added by a contact.
ALTER TABLE conversation_members ADD COLUMN request BOOLEAN NOT NULL DEFAULT FALSE;
-- Who added the member (the other member of a direct conversation, the group member who added
-- them); NULL for the one who started the conversation.
ALTER TABLE conversation_members ADD COLUMN added_by UUID;

-- A member event tells the member itself whether its membership is a request.
ALTER TABLE account_events ADD COLUMN request BOOLEAN NOT NULL DEFAULT FALSE;

-- Who blocked whom: messages, calls, requests and to-device messages from `blocked_id` no longer
-- reach `blocker_id`.
CREATE TABLE blocks (
    blocker_id    UUID   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    blocked_id    UUID   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);

CREATE INDEX blocks_blocked ON blocks (blocked_id);
