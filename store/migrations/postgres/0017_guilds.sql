-- Guilds: communities with channels, roles, invites, bans and an audit log.
--
-- A guild's text, announcement and voice channels are conversations of kind 'channel' (with the
-- channel's id), so messages, reactions, pins, search and calls work in them as in groups;
-- categories are only rows of `guild_channels`. Who may see or do what in a channel is computed
-- from roles and overwrites by the server (services/guilds/permissions.rs), not stored per
-- member: a cloud channel has no `conversation_members` rows at all, only a read mark per
-- member who has read it (`guild_reads`). A private E2EE channel keeps `conversation_members`
-- rows, because its messages are encrypted to its members' devices.

CREATE TABLE guilds (
    id            UUID    PRIMARY KEY,
    name          TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    -- Not a foreign key: deleting the owner's account hands the guild on first (deletion.rs).
    owner_id      UUID    NOT NULL,
    icon_id       UUID,
    icon_version  BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL
);

-- Conversations gain the kind 'channel' and, for channels, their guild.
ALTER TABLE conversations DROP CONSTRAINT conversations_kind_check;
ALTER TABLE conversations ADD CONSTRAINT conversations_kind_check CHECK (kind IN ('direct', 'group', 'channel'));
-- Channels only: the guild they belong to.
ALTER TABLE conversations ADD COLUMN guild_id UUID REFERENCES guilds (id) ON DELETE CASCADE;
ALTER TABLE conversations ADD CONSTRAINT conversations_guild_check CHECK ((kind = 'channel') = (guild_id IS NOT NULL));
CREATE INDEX conversations_guild ON conversations (guild_id) WHERE guild_id IS NOT NULL;

-- Roles. `@everyone` has the guild's id and position 0; the others 1, 2, … (higher is above).
CREATE TABLE guild_roles (
    id            UUID    PRIMARY KEY,
    guild_id      UUID    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    -- 0xRRGGBB, or 0 for none.
    color         BIGINT NOT NULL DEFAULT 0,
    position      BIGINT NOT NULL,
    permissions   BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX guild_roles_guild ON guild_roles (guild_id, position);

CREATE TABLE guild_members (
    guild_id           UUID    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    account_id         UUID    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    joined_at_ms       BIGINT NOT NULL,
    -- 0, or until when the member is in a timeout (ms).
    timed_out_until_ms BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, account_id)
);
CREATE INDEX guild_members_account ON guild_members (account_id);

CREATE TABLE guild_member_roles (
    guild_id   UUID NOT NULL,
    account_id UUID NOT NULL,
    role_id    UUID NOT NULL REFERENCES guild_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (guild_id, account_id, role_id),
    FOREIGN KEY (guild_id, account_id) REFERENCES guild_members (guild_id, account_id) ON DELETE CASCADE
);
CREATE INDEX guild_member_roles_role ON guild_member_roles (role_id);

-- Channels and categories, in order: categories by position; channels by position within their
-- category (or at the top, without one).
CREATE TABLE guild_channels (
    id            UUID    PRIMARY KEY,
    guild_id      UUID    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL CHECK (kind IN ('category', 'text', 'announcement', 'voice')),
    parent_id     UUID    REFERENCES guild_channels (id) ON DELETE SET NULL,
    position      BIGINT NOT NULL,
    name          TEXT    NOT NULL,
    topic         TEXT    NOT NULL DEFAULT '',
    -- Seconds a member waits between messages (0: no slow mode).
    slow_mode_s   BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    CHECK (kind <> 'category' OR parent_id IS NULL)
);
CREATE INDEX guild_channels_guild ON guild_channels (guild_id, position);

-- Per-channel overwrites, for a role (`role_id`) or a member (`account_id`).
CREATE TABLE guild_overwrites (
    channel_id UUID    NOT NULL REFERENCES guild_channels (id) ON DELETE CASCADE,
    role_id    UUID    REFERENCES guild_roles (id) ON DELETE CASCADE,
    account_id UUID,
    allow      BIGINT NOT NULL,
    deny       BIGINT NOT NULL,
    CHECK ((role_id IS NULL) <> (account_id IS NULL))
);
CREATE UNIQUE INDEX guild_overwrites_role ON guild_overwrites (channel_id, role_id) WHERE role_id IS NOT NULL;
CREATE UNIQUE INDEX guild_overwrites_member ON guild_overwrites (channel_id, account_id) WHERE account_id IS NOT NULL;

-- A member's read mark and unread mentions in a channel, written when they read it.
CREATE TABLE guild_reads (
    channel_id UUID    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    account_id UUID    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    read_seq   BIGINT NOT NULL,
    PRIMARY KEY (channel_id, account_id)
);

-- Invites. The code is shown once, to its maker; only its SHA-256 is kept (`code_hash`), with
-- its first characters (`code_hint`) so a list of invites can tell them apart.
CREATE TABLE guild_invites (
    id            UUID    PRIMARY KEY,
    guild_id      UUID    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    code_hash     BYTEA   NOT NULL UNIQUE CHECK (length(code_hash) = 32),
    code_hint     TEXT    NOT NULL,
    created_by    UUID    NOT NULL,
    created_at_ms BIGINT NOT NULL,
    -- 0: never.
    expires_at_ms BIGINT NOT NULL DEFAULT 0,
    -- 0: no limit.
    max_uses      BIGINT NOT NULL DEFAULT 0,
    uses          BIGINT NOT NULL DEFAULT 0,
    revoked_at_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX guild_invites_guild ON guild_invites (guild_id);

CREATE TABLE guild_bans (
    guild_id      UUID    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    account_id    UUID    NOT NULL,
    banned_by     UUID    NOT NULL,
    reason        TEXT    NOT NULL DEFAULT '',
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (guild_id, account_id)
);

-- Every moderation and settings change: who, what (`action`, and its `target` and `detail`),
-- when. Written in the transaction that makes the change.
CREATE TABLE guild_audit_log (
    id         UUID    PRIMARY KEY,
    guild_id   UUID    NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    actor_id   UUID    NOT NULL,
    action     TEXT    NOT NULL,
    target_id  UUID,
    detail     TEXT    NOT NULL DEFAULT '',
    at_ms      BIGINT NOT NULL
);
CREATE INDEX guild_audit_log_guild ON guild_audit_log (guild_id, id);

