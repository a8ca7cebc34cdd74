-- Avatars: account and group pictures, unencrypted, in the blob store under `avatars/<id>`
-- (data dir or S3). The row holds which blob is current and a version that goes up with every
-- change (set or removal), so clients know when to fetch again. NULL: no avatar.

ALTER TABLE accounts ADD COLUMN avatar_id BLOB CHECK (avatar_id IS NULL OR length(avatar_id) = 16);
ALTER TABLE accounts ADD COLUMN avatar_version INTEGER NOT NULL DEFAULT 0;

ALTER TABLE conversations ADD COLUMN avatar_id BLOB CHECK (avatar_id IS NULL OR length(avatar_id) = 16);
ALTER TABLE conversations ADD COLUMN avatar_version INTEGER NOT NULL DEFAULT 0;
