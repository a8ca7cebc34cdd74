-- Attachments: ciphertext blobs in the blob store (data dir or S3) and what the server needs to
-- hand out URLs, enforce limits and delete them on time. Never a file name or type: those are
-- inside the E2EE message. No foreign keys to conversations or accounts: a row must only go
-- after its blob, which housekeeping deletes first.

CREATE TABLE attachments (
    id                  UUID    PRIMARY KEY,
    conversation_id     UUID    NOT NULL,
    uploader_account_id UUID    NOT NULL,
    uploader_device_id  UUID    NOT NULL,
    -- Bytes of ciphertext, declared at CreateUpload and checked at CompleteUpload.
    size                BIGINT  NOT NULL CHECK (size > 0),
    created_at_ms       BIGINT  NOT NULL,
    -- 0 until the blob was checked (CompleteUpload).
    uploaded_at_ms      BIGINT  NOT NULL DEFAULT 0,
    -- The message that carries it (NULL until linked).
    message_id          UUID,
    -- 0: no TTL. Otherwise when housekeeping deletes blob and row (also set to "now" when the
    -- message is deleted or the uploader deletes it).
    expires_at_ms       BIGINT  NOT NULL DEFAULT 0
);

-- Quota: the sum of an uploader's sizes.
CREATE INDEX attachments_uploader ON attachments (uploader_account_id);
CREATE INDEX attachments_message ON attachments (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX attachments_expiry ON attachments (expires_at_ms) WHERE expires_at_ms > 0;
-- Orphans: never linked to a message.
CREATE INDEX attachments_unlinked ON attachments (created_at_ms) WHERE message_id IS NULL;

-- Who downloaded what (reported by the recipient after the hash check), for the uploader.
CREATE TABLE attachment_downloads (
    attachment_id    UUID    NOT NULL REFERENCES attachments (id) ON DELETE CASCADE,
    account_id       UUID    NOT NULL,
    downloaded_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (attachment_id, account_id)
);
