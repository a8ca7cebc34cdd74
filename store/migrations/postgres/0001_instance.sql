-- The installation's identity: exactly one row, created on first start.
CREATE TABLE instance (
    singleton     SMALLINT PRIMARY KEY CHECK (singleton = 1),
    id            UUID     NOT NULL,
    created_at_ms BIGINT   NOT NULL
);
