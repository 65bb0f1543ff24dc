-- One row per order: the order's idempotency key is its primary key.
CREATE TABLE charges (
    order_id           INTEGER PRIMARY KEY,
    idempotency_key    TEXT    NOT NULL UNIQUE,
    amount_cents       INTEGER NOT NULL CHECK (amount_cents >= 0),
    status             TEXT    NOT NULL CHECK (status IN ('PENDING', 'CHARGED', 'FAILED', 'REFUNDED', 'VOIDED')),
    provider_charge_id INTEGER,
    attempts           INTEGER NOT NULL DEFAULT 0,
    error              TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
