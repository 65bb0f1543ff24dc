-- The transactional outbox: events written in the same transaction as the
-- state change they announce, published by the relay.
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- Events already applied, recorded in the same transaction as their effect.
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT NOT NULL,
    consumer TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (event_id, consumer)
);

-- When an order reached its terminal state, for end-to-end timings.
ALTER TABLE orders ADD COLUMN settled_at INTEGER;
