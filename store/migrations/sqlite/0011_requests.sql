-- Consent before contact: a stranger who opens a direct conversation with someone, or adds them
-- to a group, makes a request that person accepts, declines or blocks. Memberships that exist
-- already count as accepted. See docs/conversations.md.

-- 1 while the member has not accepted (a message request); 0 once accepted or when the member
-- started the conversation or was added by a contact.
ALTER TABLE conversation_members ADD COLUMN request INTEGER NOT NULL DEFAULT 0 CHECK (request IN (0, 1));
-- Who added the member (the other member of a direct conversation, the group member who added
-- them); NULL for the one who started the conversation.
ALTER TABLE conversation_members ADD COLUMN added_by BLOB;

-- A member event tells the member itself whether its membership is a request.
ALTER TABLE account_events ADD COLUMN request INTEGER NOT NULL DEFAULT 0 CHECK (request IN (0, 1));

-- Who blocked whom: messages, calls, requests and to-device messages from `blocked_id` no longer
-- reach `blocker_id`.
CREATE TABLE blocks (
    blocker_id    BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    blocked_id    BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
) STRICT;

CREATE INDEX blocks_blocked ON blocks (blocked_id);
