CREATE TABLE orders (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL,
    product_id      INTEGER NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity > 0),
    total_cents     INTEGER NOT NULL,
    flow            TEXT    NOT NULL CHECK (flow IN ('sync', 'async')),
    status          TEXT    NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    -- Where the saga stands: reserve, charge, confirm, compensate, notify, done.
    saga_step       TEXT    NOT NULL,
    cancel_reason   TEXT,
    idempotency_key TEXT    UNIQUE,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX orders_saga_step ON orders (saga_step);

CREATE TABLE saga_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id  INTEGER NOT NULL REFERENCES orders (id),
    step      TEXT    NOT NULL,
    action    TEXT    NOT NULL CHECK (action IN ('execute', 'compensate')),
    -- failed: may have been applied (timeout, outage); rejected: certainly not.
    outcome   TEXT    NOT NULL CHECK (outcome IN ('started', 'succeeded', 'failed', 'rejected', 'skipped')),
    detail    TEXT,
    at        INTEGER NOT NULL
);
CREATE INDEX saga_log_order ON saga_log (order_id);
