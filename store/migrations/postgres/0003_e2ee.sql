-- The E2EE key directory, to-device inboxes and device pairing. Public keys and opaque
-- ciphertext only: the server never holds a private key or a plaintext.

-- The person's account key (Ed25519 public key) and a counter that moves whenever their
-- device list changes, so contacts know to re-query keys and re-share sessions.
ALTER TABLE accounts ADD COLUMN account_key BYTEA CHECK (account_key IS NULL OR length(account_key) = 32);
ALTER TABLE accounts ADD COLUMN device_list_version BIGINT NOT NULL DEFAULT 0;

-- A device's identity keys, inside the certificate the account key signed.
CREATE TABLE device_keys (
    device_id      UUID   PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    account_id     UUID   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    certificate    BYTEA  NOT NULL,
    ed25519        BYTEA  NOT NULL CHECK (length(ed25519) = 32),
    curve25519     BYTEA  NOT NULL CHECK (length(curve25519) = 32),
    uploaded_at_ms BIGINT NOT NULL
);

CREATE INDEX device_keys_account ON device_keys (account_id);

-- Signed one-time keys: each is handed out once, then deleted.
CREATE TABLE one_time_keys (
    device_id  UUID   NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key_id     BIGINT NOT NULL,
    public_key BYTEA  NOT NULL CHECK (length(public_key) = 32),
    signature  BYTEA  NOT NULL CHECK (length(signature) = 64),
    PRIMARY KEY (device_id, key_id)
);

-- The signed fallback key, used when the one-time keys ran out; replaced, never consumed.
CREATE TABLE fallback_keys (
    device_id  UUID   PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    key_id     BIGINT NOT NULL,
    public_key BYTEA  NOT NULL CHECK (length(public_key) = 32),
    signature  BYTEA  NOT NULL CHECK (length(signature) = 64)
);

-- Device list changes: a device appears (uploads identity keys), changes them, or goes.
CREATE FUNCTION bump_device_list_version() RETURNS trigger AS $$
BEGIN
    UPDATE accounts SET device_list_version = device_list_version + 1
    WHERE id = (CASE WHEN TG_OP = 'DELETE' THEN OLD.account_id ELSE NEW.account_id END);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER device_keys_added AFTER INSERT ON device_keys
    FOR EACH ROW EXECUTE FUNCTION bump_device_list_version();
CREATE TRIGGER device_keys_changed AFTER UPDATE OF ed25519, curve25519 ON device_keys
    FOR EACH ROW EXECUTE FUNCTION bump_device_list_version();
CREATE TRIGGER device_removed AFTER DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION bump_device_list_version();

-- Opaque messages to one device, kept until that device acknowledges them.
CREATE TABLE to_device_messages (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient_device_id UUID   NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- Chosen by the sender, so a retried send is stored once.
    message_id          UUID   NOT NULL,
    sender_account_id   UUID   NOT NULL,
    sender_device_id    UUID   NOT NULL,
    ciphertext          BYTEA  NOT NULL,
    sent_at_ms          BIGINT NOT NULL,
    expires_at_ms       BIGINT NOT NULL,
    UNIQUE (recipient_device_id, message_id)
);

CREATE INDEX to_device_inbox ON to_device_messages (recipient_device_id, seq);
CREATE INDEX to_device_expiry ON to_device_messages (expires_at_ms);

-- Linking a new device: the new device's ECIES public key, the PIN and secret as hashes, and
-- the existing device that took the pairing.
CREATE TABLE pairings (
    id                  UUID   PRIMARY KEY,
    public_key          BYTEA  NOT NULL CHECK (length(public_key) = 32),
    pin_hash            BYTEA  NOT NULL UNIQUE,
    secret_hash         BYTEA  NOT NULL,
    state               TEXT   NOT NULL CHECK (state IN ('open', 'claimed', 'approved', 'completed', 'cancelled')),
    claimant_account_id UUID   REFERENCES accounts (id) ON DELETE CASCADE,
    claimant_device_id  UUID,
    new_device_id       UUID,
    created_at_ms       BIGINT NOT NULL,
    expires_at_ms       BIGINT NOT NULL
);

CREATE TABLE pairing_messages (
    pairing_id      UUID    NOT NULL REFERENCES pairings (id) ON DELETE CASCADE,
    idx             BIGINT  NOT NULL,
    from_new_device BOOLEAN NOT NULL,
    payload         BYTEA   NOT NULL,
    PRIMARY KEY (pairing_id, idx)
);
