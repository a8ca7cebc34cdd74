-- Quotas of to-device inboxes (docs/e2ee.md, "Limits against draining and flooding"): each
-- sender account may have only so many messages waiting in one inbox, and strangers (senders
-- that neither own the device nor share a conversation with its owner) together only a part of
-- it, so a flood cannot block the key shares of the device's own account and its contacts.

-- Whether the sender was a stranger to the recipient's owner when it sent the message.
ALTER TABLE to_device_messages ADD COLUMN from_stranger INTEGER NOT NULL DEFAULT 0 CHECK (from_stranger IN (0, 1));
