-- The E2EE key directory, to-device inboxes and device pairing. Public keys and opaque
-- ciphertext only: the server never holds a private key or a plaintext.

-- The person's account key (Ed25519 public key) and a counter that moves whenever their
-- device list changes, so contacts know to re-query keys and re-share sessions.
ALTER TABLE accounts ADD COLUMN account_key BLOB CHECK (account_key IS NULL OR length(account_key) = 32);
ALTER TABLE accounts ADD COLUMN device_list_version INTEGER NOT NULL DEFAULT 0;

-- A device's identity keys, inside the certificate the account key signed.
CREATE TABLE device_keys (
    device_id      BLOB    PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    account_id     BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    certificate    BLOB    NOT NULL,
    ed25519        BLOB    NOT NULL CHECK (length(ed25519) = 32),
    curve25519     BLOB    NOT NULL CHECK (length(curve25519) = 32),
    uploaded_at_ms INTEGER NOT NULL
) STRICT;

CREATE INDEX device_keys_account ON device_keys (account_id);

-- Signed one-time keys: each is handed out once, then deleted.
CREATE TABLE one_time_keys (
    device_id  BLOB    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key_id     INTEGER NOT NULL,
    public_key BLOB    NOT NULL CHECK (length(public_key) = 32),
    signature  BLOB    NOT NULL CHECK (length(signature) = 64),
    PRIMARY KEY (device_id, key_id)
) STRICT;

-- The signed fallback key, used when the one-time keys ran out; replaced, never consumed.
CREATE TABLE fallback_keys (
    device_id  BLOB    PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    key_id     INTEGER NOT NULL,
    public_key BLOB    NOT NULL CHECK (length(public_key) = 32),
    signature  BLOB    NOT NULL CHECK (length(signature) = 64)
) STRICT;

-- Device list changes: a device appears (uploads identity keys), changes them, or goes.
CREATE TRIGGER device_keys_added AFTER INSERT ON device_keys BEGIN
    UPDATE accounts SET device_list_version = device_list_version + 1 WHERE id = NEW.account_id;
END;
CREATE TRIGGER device_keys_changed AFTER UPDATE OF ed25519, curve25519 ON device_keys BEGIN
    UPDATE accounts SET device_list_version = device_list_version + 1 WHERE id = NEW.account_id;
END;
CREATE TRIGGER device_removed AFTER DELETE ON devices BEGIN
    UPDATE accounts SET device_list_version = device_list_version + 1 WHERE id = OLD.account_id;
END;

-- Opaque messages to one device, kept until that device acknowledges them.
CREATE TABLE to_device_messages (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient_device_id BLOB    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- Chosen by the sender, so a retried send is stored once.
    message_id          BLOB    NOT NULL CHECK (length(message_id) = 16),
    sender_account_id   BLOB    NOT NULL,
    sender_device_id    BLOB    NOT NULL,
    ciphertext          BLOB    NOT NULL,
    sent_at_ms          INTEGER NOT NULL,
    expires_at_ms       INTEGER NOT NULL,
    UNIQUE (recipient_device_id, message_id)
) STRICT;

CREATE INDEX to_device_inbox ON to_device_messages (recipient_device_id, seq);
CREATE INDEX to_device_expiry ON to_device_messages (expires_at_ms);

-- Linking a new device: the new device's ECIES public key, the PIN and secret as hashes, and
-- the existing device that took the pairing.
CREATE TABLE pairings (
    id                  BLOB    PRIMARY KEY CHECK (length(id) = 16),
    public_key          BLOB    NOT NULL CHECK (length(public_key) = 32),
    pin_hash            BLOB    NOT NULL UNIQUE,
    secret_hash         BLOB    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('open', 'claimed', 'approved', 'completed', 'cancelled')),
    claimant_account_id BLOB    REFERENCES accounts (id) ON DELETE CASCADE,
    claimant_device_id  BLOB,
    new_device_id       BLOB,
    created_at_ms       INTEGER NOT NULL,
    expires_at_ms       INTEGER NOT NULL
) STRICT;

CREATE TABLE pairing_messages (
    pairing_id      BLOB    NOT NULL REFERENCES pairings (id) ON DELETE CASCADE,
    idx             INTEGER NOT NULL,
    from_new_device INTEGER NOT NULL CHECK (from_new_device IN (0, 1)),
    payload         BLOB    NOT NULL,
    PRIMARY KEY (pairing_id, idx)
) STRICT;
