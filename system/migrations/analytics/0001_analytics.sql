-- One row per order outcome: a redelivered outcome changes nothing.
CREATE TABLE order_outcomes (
    order_id     INTEGER PRIMARY KEY,
    status       TEXT    NOT NULL CHECK (status IN ('CONFIRMED', 'CANCELLED')),
    product_id   INTEGER NOT NULL,
    quantity     INTEGER NOT NULL,
    total_cents  INTEGER NOT NULL,
    at           INTEGER NOT NULL
);
