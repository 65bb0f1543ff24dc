//! Idempotent consumers: a table of the events a consumer has already
//! applied, written in the same transaction as the effect.
//!
//! ```text
//! BEGIN
//!   first_time(event_id, "payments")?  -- false: a redelivery, skip
//!   ... the effect ...
//! COMMIT                               -- both, or neither
//! ```
//!
//! If the transaction commits, the event is marked and the effect is done;
//! if it fails, neither is, and the redelivered event is applied then.

use sqlx::SqliteConnection;

use crate::event::now_ms;

/// The table, for a service's migrations (include the same text) or for
/// [`create_table`].
///
/// The key is the pair (event, consumer), not the event alone: two consumers
/// living in one service's database may each apply the same event once.
/// The table is its key (`WITHOUT ROWID`): one b-tree, so marking an event
/// changes one page of it, not a page of the rows and one of the key's
/// index.
pub const PROCESSED_DDL: &str = "\
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT NOT NULL,
    consumer TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (event_id, consumer)
) WITHOUT ROWID;
";

/// Creates the table if it does not exist.
pub async fn create_table(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(PROCESSED_DDL).execute(conn).await.map(|_| ())
}

/// Marks `event_id` as applied by `consumer`, inside the caller's
/// transaction. True the first time; false if it was marked before (the
/// caller then skips the effect).
pub async fn first_time(
    tx: &mut SqliteConnection,
    event_id: &str,
    consumer: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO processed_events (event_id, consumer, at) VALUES (?, ?, ?) \
         ON CONFLICT (event_id, consumer) DO NOTHING",
    )
    .bind(event_id)
    .bind(consumer)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    #[tokio::test]
    async fn second_time_is_false_and_rollback_forgets() {
        let mut conn = SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("in-memory database");
        create_table(&mut conn).await.expect("ddl");
        create_table(&mut conn).await.expect("ddl is idempotent");

        let mut tx = conn.begin().await.expect("begin");
        assert!(first_time(&mut tx, "e1", "a").await.expect("insert"));
        tx.rollback().await.expect("rollback");

        let mut tx = conn.begin().await.expect("begin");
        assert!(first_time(&mut tx, "e1", "a").await.expect("insert"));
        assert!(!first_time(&mut tx, "e1", "a").await.expect("insert"));
        assert!(first_time(&mut tx, "e1", "b").await.expect("insert"));
        tx.commit().await.expect("commit");

        let mut tx = conn.begin().await.expect("begin");
        assert!(!first_time(&mut tx, "e1", "a").await.expect("insert"));
        tx.commit().await.expect("commit");
    }
}
