-- Each outbox row keeps the W3C traceparent of the transaction that wrote
-- it, so the relay's publish continues that trace; each order keeps the
-- trace id of the request that placed it (GET /orders/{id} shows it).
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
ALTER TABLE orders ADD COLUMN trace_id TEXT;
