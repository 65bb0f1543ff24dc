-- Each outbox row keeps the W3C traceparent of the transaction that wrote
-- it, so the relay's publish continues that trace.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
