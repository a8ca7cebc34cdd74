-- Key backup (KeyBackupService): a person's E2EE keys, encrypted on their devices under a
-- backup key the server never sees. Opaque blobs only: what a device needs to check the
-- recovery key (`auth_data`), the account key (`identity`) and one entry per Megolm session.
-- The size rules mirror backup.proto (the service refuses bigger ones first).

-- The account's current backup version (NULL: none). Every backup write updates this row
-- first, so writes of one account take turns and a rotation cannot race a put.
ALTER TABLE accounts ADD COLUMN backup_version BLOB CHECK (backup_version IS NULL OR length(backup_version) = 16);

CREATE TABLE backup_versions (
    version       BLOB    PRIMARY KEY CHECK (length(version) = 16),
    account_id    BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    auth_data     BLOB    NOT NULL CHECK (length(auth_data) BETWEEN 1 AND 1024),
    identity      BLOB    NOT NULL CHECK (length(identity) BETWEEN 1 AND 1024),
    -- Rows in backup_sessions of this version, kept by every put.
    session_count INTEGER NOT NULL DEFAULT 0 CHECK (session_count >= 0),
    created_at_ms INTEGER NOT NULL,
    UNIQUE (account_id, version)
) STRICT;

-- One entry per session id (its UTF-8 bytes, so pages run in byte order on both databases).
CREATE TABLE backup_sessions (
    account_id BLOB NOT NULL,
    version    BLOB NOT NULL,
    session_id BLOB NOT NULL CHECK (length(session_id) BETWEEN 1 AND 128),
    data       BLOB NOT NULL CHECK (length(data) BETWEEN 1 AND 4096),
    PRIMARY KEY (account_id, version, session_id),
    FOREIGN KEY (account_id, version) REFERENCES backup_versions (account_id, version) ON DELETE CASCADE
) STRICT;
