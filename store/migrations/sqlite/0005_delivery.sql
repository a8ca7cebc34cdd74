-- Delivery: what each device has received, so a reconnect (even after a restart or `kill -9`)
-- resumes exactly where the device stopped. Messages are stored once per conversation; each
-- change to a conversation (a new, edited or deleted message) takes the next `change_seq` of
-- that conversation, and a device keeps one cursor per conversation. Events that concern one
-- account (membership, receipts, device lists) are kept as the latest state per key, numbered
-- per account, so that stream stays as small as the set of keys.

ALTER TABLE conversations ADD COLUMN last_change INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET change_seq = seq;
UPDATE conversations SET last_change = last_seq;
CREATE UNIQUE INDEX messages_changes ON messages (conversation_id, change_seq);

-- At least one of the member's devices has everything up to here.
ALTER TABLE conversation_members ADD COLUMN delivered_seq INTEGER NOT NULL DEFAULT 0;

-- Per device and conversation: every change up to here has been acknowledged. A row exists
-- exactly while the device's account is a member; it starts at the conversation's position
-- when the device was made or the account joined.
CREATE TABLE device_cursors (
    device_id       BLOB    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    conversation_id BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    change_seq      INTEGER NOT NULL,
    PRIMARY KEY (device_id, conversation_id)
) STRICT;

CREATE INDEX device_cursors_conversation ON device_cursors (conversation_id);

INSERT INTO device_cursors (device_id, conversation_id, change_seq)
SELECT d.id, m.conversation_id, c.last_change
FROM devices d
JOIN conversation_members m ON m.account_id = d.account_id
JOIN conversations c ON c.id = m.conversation_id;

-- The account stream: the newest position handed out, and each device's acknowledged one.
ALTER TABLE accounts ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN event_cursor INTEGER NOT NULL DEFAULT 0;

-- The latest event per (account, kind, conversation, subject). `kind` is 'member' (subject
-- joined, changed role or left: `role` NULL), 'receipt' (subject's delivered and read marks)
-- or 'devices' (subject's device list changed; conversation_id is all zeros).
CREATE TABLE account_events (
    account_id      BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL CHECK (kind IN ('member', 'receipt', 'devices')),
    conversation_id BLOB    NOT NULL,
    subject_id      BLOB    NOT NULL,
    position        INTEGER NOT NULL,
    role            TEXT    CHECK (role IN ('owner', 'admin', 'member')),
    delivered_seq   INTEGER NOT NULL DEFAULT 0,
    read_seq        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, kind, conversation_id, subject_id)
) STRICT;

CREATE UNIQUE INDEX account_events_position ON account_events (account_id, position);

-- Devices signed out, revoked or whose account was disabled, for every node (and the admin
-- command, another process) to close their gateway connections at once. Pruned after an hour.
CREATE TABLE device_revocations (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id BLOB    NOT NULL,
    at_ms     INTEGER NOT NULL
) STRICT;

CREATE INDEX device_revocations_at ON device_revocations (at_ms);
