-- The installation's identity: exactly one row, created on first start.
CREATE TABLE instance (
    singleton     INTEGER PRIMARY KEY CHECK (singleton = 1),
    id            BLOB    NOT NULL CHECK (length(id) = 16),
    created_at_ms INTEGER NOT NULL
) STRICT;
