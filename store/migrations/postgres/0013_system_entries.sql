-- System entries: the server writes a line into a group's history when its membership, a role
-- or its title changes ("Alice removed Carol"), so every member sees it, on every device, also
-- one that was offline or is new. An entry is a row of `messages` with its own seq and change
-- number, no ciphertext (and no deletion: `deleted_at_ms` stays 0), the actor as sender and
-- the nil device. It carries no message content: only what the server knows anyway.
ALTER TABLE messages ADD COLUMN system_kind TEXT
    CHECK (system_kind IN ('member_added', 'member_removed', 'member_left', 'role_changed', 'title_changed'));
-- Whom it is about (added, removed, role changed).
ALTER TABLE messages ADD COLUMN system_target UUID;
-- Role changes: the new role.
ALTER TABLE messages ADD COLUMN system_role TEXT CHECK (system_role IN ('owner', 'admin', 'member'));
-- Title changes: the new title.
ALTER TABLE messages ADD COLUMN system_title TEXT;
