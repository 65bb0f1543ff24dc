-- The processed events are looked up and written only by their key, so the
-- key is the table: WITHOUT ROWID keeps one b-tree (the key's) where a
-- rowid table kept two (the rows, and an index for the key), and marking
-- an event changes one page, not two.
CREATE TABLE processed_events_keyed (
    event_id TEXT NOT NULL,
    consumer TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (event_id, consumer)
) WITHOUT ROWID;
INSERT INTO processed_events_keyed (event_id, consumer, at)
    SELECT event_id, consumer, at FROM processed_events;
DROP TABLE processed_events;
ALTER TABLE processed_events_keyed RENAME TO processed_events;
