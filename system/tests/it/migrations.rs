//! The migrations that rebuild a table which may already hold rows.

use gauntlet_events::processed::first_time;
use sqlx::{Connection, SqliteConnection};

/// `processed_events` as every consuming service made it before it became
/// a table without rowids.
const ROWID_TABLE: &str = "\
CREATE TABLE processed_events (
    event_id TEXT NOT NULL,
    consumer TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (event_id, consumer)
);
";

/// The migration that makes it one, as each consuming service ships it.
const KEYED: [(&str, &str); 5] = [
    (
        "orders",
        include_str!("../../migrations/orders/0004_processed_keyed.sql"),
    ),
    (
        "catalog",
        include_str!("../../migrations/catalog/0004_processed_keyed.sql"),
    ),
    (
        "payments",
        include_str!("../../migrations/payments/0004_processed_keyed.sql"),
    ),
    (
        "analytics",
        include_str!("../../migrations/analytics/0003_processed_keyed.sql"),
    ),
    (
        "notifications",
        include_str!("../../migrations/notifications/0003_processed_keyed.sql"),
    ),
];

#[tokio::test]
async fn processed_events_keep_their_rows_and_their_key_when_the_key_becomes_the_table() {
    let marked = [("e1", "a", 1), ("e1", "b", 2), ("e2", "a", 3)];
    for (service, migration) in KEYED {
        let mut conn = SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("in-memory database");
        sqlx::raw_sql(ROWID_TABLE)
            .execute(&mut conn)
            .await
            .expect("the table as it was");
        for (event, consumer, at) in marked {
            sqlx::query("INSERT INTO processed_events (event_id, consumer, at) VALUES (?, ?, ?)")
                .bind(event)
                .bind(consumer)
                .bind(at)
                .execute(&mut conn)
                .await
                .expect("a marked event");
        }

        sqlx::raw_sql(migration)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{service}'s migration: {e}"));

        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT event_id, consumer, at FROM processed_events ORDER BY event_id, consumer",
        )
        .fetch_all(&mut conn)
        .await
        .expect("the rows");
        let rows: Vec<(&str, &str, i64)> = rows
            .iter()
            .map(|(e, c, at)| (e.as_str(), c.as_str(), *at))
            .collect();
        assert_eq!(rows, marked, "{service}: every marked event is kept");
        let ddl: String = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'processed_events'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("the table's definition");
        assert!(ddl.contains("WITHOUT ROWID"), "{service}: {ddl}");
        // The key still deduplicates: a marked pair is not new, an unmarked one is.
        assert!(!first_time(&mut conn, "e1", "a").await.expect("insert"));
        assert!(first_time(&mut conn, "e2", "b").await.expect("insert"));
    }
}
