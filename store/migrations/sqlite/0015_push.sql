-- Web Push (PushService): where the server sends a content-free "new message" to a device
-- whose app is closed. One subscription per device (the browser's PushSubscription: the push
-- service's endpoint URL and the keys the payload is encrypted to, RFC 8291); it goes with the
-- device (sign-out, revocation) and when the push service says it is gone (404, 410).
-- The size rules mirror the service's (which refuses bad ones first).
CREATE TABLE push_subscriptions (
    device_id     BLOB    PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    endpoint      TEXT    NOT NULL CHECK (length(endpoint) BETWEEN 9 AND 2048),
    -- The browser's P-256 public key, uncompressed (65 bytes), and its 16-byte auth secret.
    p256dh        BLOB    NOT NULL CHECK (length(p256dh) = 65),
    auth          BLOB    NOT NULL CHECK (length(auth) = 16),
    created_at_ms INTEGER NOT NULL
) STRICT;
