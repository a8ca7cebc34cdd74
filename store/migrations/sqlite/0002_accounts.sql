-- People, their devices (one per sign-in, each with its own session) and what sign-in needs.

CREATE TABLE accounts (
    id                  BLOB    PRIMARY KEY CHECK (length(id) = 16),
    -- Normalised (trimmed, lower-case ASCII); see docs/api.md.
    username            TEXT    NOT NULL UNIQUE,
    display_name        TEXT    NOT NULL,
    email               TEXT,
    email_verified      INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    -- Argon2id PHC string.
    password_hash       TEXT    NOT NULL,
    -- RFC 6238 shared secrets: the active one and one being enrolled.
    totp_secret         BLOB,
    totp_pending_secret BLOB,
    -- The last TOTP time step accepted: a code is never accepted twice.
    totp_last_step      INTEGER,
    disabled            INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at_ms       INTEGER NOT NULL
) STRICT;

-- A verified email address belongs to one account; unverified ones may repeat.
CREATE UNIQUE INDEX accounts_verified_email ON accounts (email) WHERE email_verified = 1;

CREATE TABLE devices (
    id                      BLOB    PRIMARY KEY CHECK (length(id) = 16),
    account_id              BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                    TEXT    NOT NULL,
    created_at_ms           INTEGER NOT NULL,
    last_seen_at_ms         INTEGER NOT NULL,
    -- SHA-256 of the current tokens; the tokens themselves are never stored.
    access_hash             BLOB    NOT NULL UNIQUE,
    access_expires_at_ms    INTEGER NOT NULL,
    refresh_hash            BLOB    NOT NULL UNIQUE,
    refresh_expires_at_ms   INTEGER NOT NULL,
    -- After a sign-in with a one-time code: a new password may be set without the old one.
    password_reset_until_ms INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX devices_account ON devices (account_id);

-- Refresh tokens already exchanged: presenting one again means it was stolen.
CREATE TABLE used_refresh_tokens (
    hash          BLOB    PRIMARY KEY,
    device_id     BLOB    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    expires_at_ms INTEGER NOT NULL
) STRICT;

CREATE INDEX used_refresh_tokens_device ON used_refresh_tokens (device_id);

-- One-time codes (emailed or printed by the admin); at most one live code per purpose.
CREATE TABLE one_time_codes (
    id            BLOB    PRIMARY KEY CHECK (length(id) = 16),
    account_id    BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose       TEXT    NOT NULL CHECK (purpose IN ('email_sign_in', 'email_verify', 'admin_sign_in')),
    -- The address the code was sent to (email purposes).
    email         TEXT,
    -- Argon2id PHC string.
    code_hash     TEXT    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    UNIQUE (account_id, purpose)
) STRICT;

-- Rate limits (GCRA): per key, the "theoretical arrival time" of the next request.
CREATE TABLE rate_limits (
    key    TEXT    PRIMARY KEY,
    tat_ms INTEGER NOT NULL
) STRICT;
