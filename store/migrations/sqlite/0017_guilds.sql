-- Guilds: communities with channels, roles, invites, bans and an audit log.
--
-- A guild's text, announcement and voice channels are conversations of kind 'channel' (with the
-- channel's id), so messages, reactions, pins, search and calls work in them as in groups;
-- categories are only rows of `guild_channels`. Who may see or do what in a channel is computed
-- from roles and overwrites by the server (services/guilds/permissions.rs), not stored per
-- member: a cloud channel has no `conversation_members` rows at all, only a read mark per
-- member who has read it (`guild_reads`). A private E2EE channel keeps `conversation_members`
-- rows, because its messages are encrypted to its members' devices.
--
-- `conversations` is rebuilt, because SQLite cannot alter its CHECK on `kind`. Migrations run
-- with foreign keys off (`SqliteStore::run_migrator`, SQLite's documented procedure), so
-- dropping the old table deletes no member or message through ON DELETE CASCADE.

CREATE TABLE guilds (
    id            BLOB    PRIMARY KEY CHECK (length(id) = 16),
    name          TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    -- Not a foreign key: deleting the owner's account hands the guild on first (deletion.rs).
    owner_id      BLOB    NOT NULL,
    icon_id       BLOB    CHECK (icon_id IS NULL OR length(icon_id) = 16),
    icon_version  INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE conversations_new (
    id                  BLOB    PRIMARY KEY CHECK (length(id) = 16),
    kind                TEXT    NOT NULL CHECK (kind IN ('direct', 'group', 'channel')),
    mode                TEXT    NOT NULL CHECK (mode IN ('e2ee', 'cloud')),
    -- Groups and channels.
    title               TEXT,
    -- Direct only: both account ids, smaller first, so a pair has one conversation.
    direct_key          BLOB    UNIQUE,
    created_by          BLOB    NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    -- The sequence number of the newest message; the next one gets last_seq + 1.
    last_seq            INTEGER NOT NULL DEFAULT 0,
    last_activity_at_ms INTEGER NOT NULL,
    last_change         INTEGER NOT NULL DEFAULT 0,
    avatar_id           BLOB    CHECK (avatar_id IS NULL OR length(avatar_id) = 16),
    avatar_version      INTEGER NOT NULL DEFAULT 0,
    message_timer_s     INTEGER NOT NULL DEFAULT 0,
    -- Channels only: the guild they belong to.
    guild_id            BLOB    REFERENCES guilds (id) ON DELETE CASCADE,
    CHECK ((kind = 'channel') = (guild_id IS NOT NULL))
) STRICT;

INSERT INTO conversations_new (id, kind, mode, title, direct_key, created_by, created_at_ms, last_seq,
                               last_activity_at_ms, last_change, avatar_id, avatar_version, message_timer_s)
SELECT id, kind, mode, title, direct_key, created_by, created_at_ms, last_seq,
       last_activity_at_ms, last_change, avatar_id, avatar_version, message_timer_s
FROM conversations;

DROP TABLE conversations;
ALTER TABLE conversations_new RENAME TO conversations;
CREATE INDEX conversations_guild ON conversations (guild_id) WHERE guild_id IS NOT NULL;

-- Roles. `@everyone` has the guild's id and position 0; the others 1, 2, … (higher is above).
CREATE TABLE guild_roles (
    id            BLOB    PRIMARY KEY CHECK (length(id) = 16),
    guild_id      BLOB    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    -- 0xRRGGBB, or 0 for none.
    color         INTEGER NOT NULL DEFAULT 0,
    position      INTEGER NOT NULL,
    permissions   INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX guild_roles_guild ON guild_roles (guild_id, position);

CREATE TABLE guild_members (
    guild_id           BLOB    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    account_id         BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    joined_at_ms       INTEGER NOT NULL,
    -- 0, or until when the member is in a timeout (ms).
    timed_out_until_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, account_id)
) STRICT;
CREATE INDEX guild_members_account ON guild_members (account_id);

CREATE TABLE guild_member_roles (
    guild_id   BLOB NOT NULL,
    account_id BLOB NOT NULL,
    role_id    BLOB NOT NULL REFERENCES guild_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (guild_id, account_id, role_id),
    FOREIGN KEY (guild_id, account_id) REFERENCES guild_members (guild_id, account_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX guild_member_roles_role ON guild_member_roles (role_id);

-- Channels and categories, in order: categories by position; channels by position within their
-- category (or at the top, without one).
CREATE TABLE guild_channels (
    id            BLOB    PRIMARY KEY CHECK (length(id) = 16),
    guild_id      BLOB    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL CHECK (kind IN ('category', 'text', 'announcement', 'voice')),
    parent_id     BLOB    REFERENCES guild_channels (id) ON DELETE SET NULL,
    position      INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    topic         TEXT    NOT NULL DEFAULT '',
    -- Seconds a member waits between messages (0: no slow mode).
    slow_mode_s   INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    CHECK (kind <> 'category' OR parent_id IS NULL)
) STRICT;
CREATE INDEX guild_channels_guild ON guild_channels (guild_id, position);

-- Per-channel overwrites, for a role (`role_id`) or a member (`account_id`).
CREATE TABLE guild_overwrites (
    channel_id BLOB    NOT NULL REFERENCES guild_channels (id) ON DELETE CASCADE,
    role_id    BLOB    REFERENCES guild_roles (id) ON DELETE CASCADE,
    account_id BLOB,
    allow      INTEGER NOT NULL,
    deny       INTEGER NOT NULL,
    CHECK ((role_id IS NULL) <> (account_id IS NULL))
) STRICT;
CREATE UNIQUE INDEX guild_overwrites_role ON guild_overwrites (channel_id, role_id) WHERE role_id IS NOT NULL;
CREATE UNIQUE INDEX guild_overwrites_member ON guild_overwrites (channel_id, account_id) WHERE account_id IS NOT NULL;

-- A member's read mark and unread mentions in a channel, written when they read it.
CREATE TABLE guild_reads (
    channel_id BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    account_id BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    read_seq   INTEGER NOT NULL,
    PRIMARY KEY (channel_id, account_id)
) STRICT;

-- Invites. The code is shown once, to its maker; only its SHA-256 is kept (`code_hash`), with
-- its first characters (`code_hint`) so a list of invites can tell them apart.
CREATE TABLE guild_invites (
    id            BLOB    PRIMARY KEY CHECK (length(id) = 16),
    guild_id      BLOB    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    code_hash     BLOB    NOT NULL UNIQUE CHECK (length(code_hash) = 32),
    code_hint     TEXT    NOT NULL,
    created_by    BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    -- 0: never.
    expires_at_ms INTEGER NOT NULL DEFAULT 0,
    -- 0: no limit.
    max_uses      INTEGER NOT NULL DEFAULT 0,
    uses          INTEGER NOT NULL DEFAULT 0,
    revoked_at_ms INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX guild_invites_guild ON guild_invites (guild_id);

CREATE TABLE guild_bans (
    guild_id      BLOB    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    account_id    BLOB    NOT NULL,
    banned_by     BLOB    NOT NULL,
    reason        TEXT    NOT NULL DEFAULT '',
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (guild_id, account_id)
) STRICT;

-- Every moderation and settings change: who, what (`action`, and its `target` and `detail`),
-- when. Written in the transaction that makes the change.
CREATE TABLE guild_audit_log (
    id         BLOB    PRIMARY KEY CHECK (length(id) = 16),
    guild_id   BLOB    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    actor_id   BLOB    NOT NULL,
    action     TEXT    NOT NULL,
    target_id  BLOB,
    detail     TEXT    NOT NULL DEFAULT '',
    at_ms      INTEGER NOT NULL
) STRICT;
CREATE INDEX guild_audit_log_guild ON guild_audit_log (guild_id, id);

