-- People, their devices (one per sign-in, each with its own session) and what sign-in needs.

CREATE TABLE accounts (
    id                  UUID    PRIMARY KEY,
    -- Normalised (trimmed, lower-case ASCII); see docs/api.md.
    username            TEXT    NOT NULL CONSTRAINT accounts_username_unique UNIQUE,
    display_name        TEXT    NOT NULL,
    email               TEXT,
    email_verified      BOOLEAN NOT NULL DEFAULT FALSE,
    -- Argon2id PHC string.
    password_hash       TEXT    NOT NULL,
    -- RFC 6238 shared secrets: the active one and one being enrolled.
    totp_secret         BYTEA,
    totp_pending_secret BYTEA,
    -- The last TOTP time step accepted: a code is never accepted twice.
    totp_last_step      BIGINT,
    disabled            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms       BIGINT  NOT NULL
);

-- A verified email address belongs to one account; unverified ones may repeat.
CREATE UNIQUE INDEX accounts_verified_email ON accounts (email) WHERE email_verified;

CREATE TABLE devices (
    id                      UUID   PRIMARY KEY,
    account_id              UUID   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                    TEXT   NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    last_seen_at_ms         BIGINT NOT NULL,
    -- SHA-256 of the current tokens; the tokens themselves are never stored.
    access_hash             BYTEA  NOT NULL UNIQUE,
    access_expires_at_ms    BIGINT NOT NULL,
    refresh_hash            BYTEA  NOT NULL UNIQUE,
    refresh_expires_at_ms   BIGINT NOT NULL,
    -- After a sign-in with a one-time code: a new password may be set without the old one.
    password_reset_until_ms BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX devices_account ON devices (account_id);

-- Refresh tokens already exchanged: presenting one again means it was stolen.
CREATE TABLE used_refresh_tokens (
    hash          BYTEA  PRIMARY KEY,
    device_id     UUID   NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    expires_at_ms BIGINT NOT NULL
);

CREATE INDEX used_refresh_tokens_device ON used_refresh_tokens (device_id);

-- One-time codes (emailed or printed by the admin); at most one live code per purpose.
CREATE TABLE one_time_codes (
    id            UUID    PRIMARY KEY,
    account_id    UUID    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose       TEXT    NOT NULL CHECK (purpose IN ('email_sign_in', 'email_verify', 'admin_sign_in')),
    -- The address the code was sent to (email purposes).
    email         TEXT,
    -- Argon2id PHC string.
    code_hash     TEXT    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at_ms BIGINT  NOT NULL,
    expires_at_ms BIGINT  NOT NULL,
    UNIQUE (account_id, purpose)
);

-- Rate limits (GCRA): per key, the "theoretical arrival time" of the next request.
CREATE TABLE rate_limits (
    key    TEXT   PRIMARY KEY,
    tat_ms BIGINT NOT NULL
);
