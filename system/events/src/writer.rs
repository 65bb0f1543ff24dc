//! A database's one writing connection, held rather than pooled.
//!
//! SQLite lets one writer at a time, so each service writes through one
//! connection. Kept in a pool of one, every checkout of it costs two round
//! trips to the connection's worker thread that do no work: a ping before
//! the pool hands it out and another, on a task of its own, when it comes
//! back. Held behind a fair mutex, taking it costs the lock, and a
//! transaction costs its own statements. Writers queue in arrival order,
//! as they did for the pool's one connection.
//!
//! A pool still converts into a [`Writer`] (one connection at a time is the
//! caller's to arrange then), for code that has only a pool.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Database, Sqlite, SqliteConnection, SqlitePool, TransactionManager};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

type Manager = <Sqlite as Database>::TransactionManager;

/// The writing connection of one database; clones share it.
#[derive(Clone)]
pub struct Writer(Source);

#[derive(Clone)]
enum Source {
    /// `None` once closed.
    Held(Arc<Mutex<Option<SqliteConnection>>>),
    Pool(SqlitePool),
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Held(_) => f.write_str("Writer(held connection)"),
            Source::Pool(pool) => f.debug_tuple("Writer").field(pool).finish(),
        }
    }
}

impl From<SqlitePool> for Writer {
    fn from(pool: SqlitePool) -> Self {
        Self(Source::Pool(pool))
    }
}

impl Writer {
    /// Holds `conn` as the database's writing connection.
    pub fn new(conn: SqliteConnection) -> Self {
        Self(Source::Held(Arc::new(Mutex::new(Some(conn)))))
    }

    /// The connection, once the writers queued before this one are done
    /// with it; [`sqlx::Error::PoolClosed`] after [`Writer::close`].
    pub async fn acquire(&self) -> Result<WriteConn, sqlx::Error> {
        match &self.0 {
            Source::Held(conn) => {
                let guard = Arc::clone(conn).lock_owned().await;
                OwnedMutexGuard::try_map(guard, Option::as_mut)
                    .map(WriteConn::Held)
                    .map_err(|_| sqlx::Error::PoolClosed)
            }
            Source::Pool(pool) => pool.acquire().await.map(WriteConn::Pool),
        }
    }

    /// Begins a transaction on the connection; it holds the connection
    /// until committed, rolled back or dropped (dropped: rolled back).
    pub async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        Manager::begin(&mut conn, None).await?;
        Ok(WriteTx { conn, open: true })
    }

    /// Closes the connection once the writers queued before are done, so
    /// the file can be opened again (a restarted service). Closing twice
    /// is harmless.
    pub async fn close(&self) {
        match &self.0 {
            Source::Held(conn) => {
                let taken = conn.lock().await.take();
                if let Some(conn) = taken {
                    if let Err(error) = conn.close().await {
                        tracing::debug!(%error, "closing a database's writer");
                    }
                }
            }
            Source::Pool(pool) => pool.close().await,
        }
    }
}

/// The writing connection, taken; others wait until it is dropped.
pub enum WriteConn {
    Held(OwnedMappedMutexGuard<Option<SqliteConnection>, SqliteConnection>),
    Pool(PoolConnection<Sqlite>),
}

impl Deref for WriteConn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            WriteConn::Held(conn) => conn,
            WriteConn::Pool(conn) => conn,
        }
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            WriteConn::Held(conn) => conn,
            WriteConn::Pool(conn) => conn,
        }
    }
}

/// A transaction on the writing connection, as `sqlx::Transaction` is on a
/// pooled one: pass `&mut *tx` (or `&mut tx`) as the connection, then
/// [`WriteTx::commit`]. Dropped uncommitted, it is rolled back before the
/// connection's next statement.
pub struct WriteTx {
    conn: WriteConn,
    open: bool,
}

impl WriteTx {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        Manager::commit(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        Manager::rollback(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            // Queued on the connection's worker ahead of anything the next
            // holder sends, as `sqlx::Transaction` does on drop.
            Manager::start_rollback(&mut self.conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn writer() -> Writer {
        let mut conn = SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("in-memory database");
        sqlx::raw_sql("CREATE TABLE t (v INTEGER NOT NULL)")
            .execute(&mut conn)
            .await
            .expect("ddl");
        Writer::new(conn)
    }

    async fn count(w: &Writer) -> i64 {
        let mut conn = w.acquire().await.expect("acquire");
        sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut *conn)
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn commit_keeps_and_drop_or_rollback_forgets() {
        let w = writer().await;
        let mut tx = w.begin().await.expect("begin");
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        assert_eq!(count(&w).await, 1);

        let mut tx = w.begin().await.expect("begin");
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        drop(tx);
        assert_eq!(count(&w).await, 1, "a dropped transaction is rolled back");

        let mut tx = w.begin().await.expect("begin");
        sqlx::query("INSERT INTO t VALUES (3)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.rollback().await.expect("rollback");
        assert_eq!(count(&w).await, 1);
    }

    #[tokio::test]
    async fn writers_take_turns_and_closed_is_an_error() {
        let w = writer().await;
        let tx = w.begin().await.expect("begin");
        let other = w.clone();
        let mut waiting = tokio::spawn(async move { other.begin().await.map(|_| ()) });
        let early = tokio::time::timeout(Duration::from_millis(100), &mut waiting).await;
        assert!(early.is_err(), "a second writer waits for the first");
        tx.commit().await.expect("commit");
        waiting.await.expect("task").expect("second writer's turn");

        w.close().await;
        w.close().await;
        assert!(matches!(w.acquire().await, Err(sqlx::Error::PoolClosed)));
    }
}
