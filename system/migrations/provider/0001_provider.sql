-- The external gateway's own ledger. A key seen first in a refund is VOIDED
-- (a tombstone): a charge arriving later under that key is refused.
CREATE TABLE charges (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    order_id        INTEGER,
    amount_cents    INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('CHARGED', 'REFUNDED', 'VOIDED')),
    requests        INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX charges_order ON charges (order_id);
