-- Events already applied, recorded in the same transaction as their effect.
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT NOT NULL,
    consumer TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (event_id, consumer)
);
