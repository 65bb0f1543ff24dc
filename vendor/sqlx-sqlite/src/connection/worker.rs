use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_intrusive::sync::{Mutex, MutexGuard};

use sqlx_core::describe::Describe;
use sqlx_core::error::Error;
use sqlx_core::transaction::{
    begin_ansi_transaction_sql, commit_ansi_transaction_sql, rollback_ansi_transaction_sql,
};
use sqlx_core::Either;

use crate::connection::describe::describe;
use crate::connection::establish::EstablishParams;
use crate::connection::execute;
use crate::connection::ConnectionState;
use crate::{Sqlite, SqliteArguments, SqliteQueryResult, SqliteRow, SqliteStatement};

use super::serialize::{deserialize, serialize, SchemaName, SqliteOwnedBuf};

// Patched (see the workspace's vendor/README.md): every command runs on the
// calling thread, under the connection's lock, instead of being sent to a
// thread of the connection's own and its answer sent back. Each statement
// used to cost two hand-offs between threads (the command, then its rows
// and result), a wake-up and a context switch each, which is most of what
// a short statement costs. The API is unchanged; a statement now blocks
// the caller for as long as SQLite takes to run it, as any synchronous
// SQLite binding does.

pub(crate) struct ConnectionWorker {
    /// Mutex for locking access to the database.
    pub(crate) shared: Arc<WorkerSharedState>,
}

pub(crate) struct WorkerSharedState {
    transaction_depth: AtomicUsize,
    cached_statements_size: AtomicUsize,
    pub(crate) conn: Mutex<ConnectionState>,
}

impl WorkerSharedState {
    pub(crate) fn get_transaction_depth(&self) -> usize {
        self.transaction_depth.load(Ordering::Acquire)
    }

    pub(crate) fn get_cached_statements_size(&self) -> usize {
        self.cached_statements_size.load(Ordering::Acquire)
    }
}

impl ConnectionWorker {
    pub(crate) async fn establish(params: EstablishParams) -> Result<Self, Error> {
        let conn = params.establish()?;
        Ok(Self {
            shared: Arc::new(WorkerSharedState {
                transaction_depth: AtomicUsize::new(0),
                cached_statements_size: AtomicUsize::new(0),
                conn: Mutex::new(conn, true),
            }),
        })
    }

    /// The connection.
    ///
    /// Every command takes `&mut self`, and the only other holder of the
    /// lock is a `LockedSqliteHandle`, which borrows the connection
    /// mutably too, so the lock is always free here.
    fn conn(&self) -> Result<MutexGuard<'_, ConnectionState>, Error> {
        self.shared.conn.try_lock().ok_or(Error::WorkerCrashed)
    }

    fn rollback_locked(&self, conn: &mut ConnectionState) -> Result<(), Error> {
        let depth = self.shared.transaction_depth.load(Ordering::Acquire);
        if depth == 0 {
            return Ok(());
        }
        conn.handle
            .exec(rollback_ansi_transaction_sql(depth))
            .map(|_| {
                self.shared
                    .transaction_depth
                    .fetch_sub(1, Ordering::Release);
            })
    }

    fn update_cached_statements_size(&self, conn: &ConnectionState) {
        self.shared
            .cached_statements_size
            .store(conn.statements.len(), Ordering::Release);
    }

    pub(crate) async fn prepare(&mut self, query: &str) -> Result<SqliteStatement<'static>, Error> {
        let mut conn = self.conn()?;
        let prepared = prepare(&mut conn, query)?;
        self.update_cached_statements_size(&conn);
        Ok(prepared)
    }

    pub(crate) async fn describe(&mut self, query: &str) -> Result<Describe<Sqlite>, Error> {
        let mut conn = self.conn()?;
        describe(&mut conn, query)
    }

    /// Runs the statement to its end (or to `limit` rows) now; the
    /// receiver holds its rows and results, ready.
    pub(crate) async fn execute(
        &mut self,
        query: &str,
        args: Option<SqliteArguments<'_>>,
        _chan_size: usize,
        persistent: bool,
        limit: Option<usize>,
    ) -> Result<flume::Receiver<Result<Either<SqliteQueryResult, SqliteRow>, Error>>, Error> {
        let (tx, rx) = flume::unbounded();
        let mut conn = self.conn()?;
        {
            let iter = match execute::iter(&mut conn, query, args, persistent) {
                Ok(iter) => iter,
                Err(e) => {
                    tx.send(Err(e)).ok();
                    return Ok(rx);
                }
            };
            let mut rows_returned = 0;
            for res in iter {
                let is_row = matches!(res, Ok(Either::Right(_)));
                let has_error = res.is_err();
                tx.send(res).ok();
                if has_error {
                    break;
                }
                if is_row {
                    rows_returned += 1;
                    if limit.is_some_and(|limit| rows_returned >= limit) {
                        break;
                    }
                }
            }
        }
        self.update_cached_statements_size(&conn);
        Ok(rx)
    }

    pub(crate) async fn begin(
        &mut self,
        statement: Option<Cow<'static, str>>,
    ) -> Result<(), Error> {
        let mut conn = self.conn()?;
        let depth = self.shared.transaction_depth.load(Ordering::Acquire);
        let statement = match statement {
            // custom `BEGIN` statements are not allowed if we're already in
            // a transaction (we need to issue a `SAVEPOINT` instead)
            Some(_) if depth > 0 => return Err(Error::InvalidSavePointStatement),
            Some(statement) => statement,
            None => begin_ansi_transaction_sql(depth),
        };
        conn.handle.exec(statement).map(|_| {
            self.shared
                .transaction_depth
                .fetch_add(1, Ordering::Release);
        })
    }

    pub(crate) async fn commit(&mut self) -> Result<(), Error> {
        let mut conn = self.conn()?;
        let depth = self.shared.transaction_depth.load(Ordering::Acquire);
        if depth == 0 {
            return Ok(());
        }
        conn.handle
            .exec(commit_ansi_transaction_sql(depth))
            .map(|_| {
                self.shared
                    .transaction_depth
                    .fetch_sub(1, Ordering::Release);
            })
    }

    pub(crate) async fn rollback(&mut self) -> Result<(), Error> {
        let mut conn = self.conn()?;
        self.rollback_locked(&mut conn)
    }

    /// A transaction dropped uncommitted: rolled back now.
    pub(crate) fn start_rollback(&mut self) -> Result<(), Error> {
        let mut conn = self.conn()?;
        self.rollback_locked(&mut conn).inspect_err(|error| {
            tracing::error!(%error, "failed to rollback dropped transaction");
        })
    }

    pub(crate) async fn ping(&mut self) -> Result<(), Error> {
        self.conn().map(|_| ())
    }

    pub(crate) async fn deserialize(
        &mut self,
        schema: Option<SchemaName>,
        data: SqliteOwnedBuf,
        read_only: bool,
    ) -> Result<(), Error> {
        let mut conn = self.conn()?;
        deserialize(&mut conn, schema, data, read_only)
    }

    pub(crate) async fn serialize(
        &mut self,
        schema: Option<SchemaName>,
    ) -> Result<SqliteOwnedBuf, Error> {
        let mut conn = self.conn()?;
        serialize(&mut conn, schema)
    }

    pub(crate) async fn clear_cache(&mut self) -> Result<(), Error> {
        let mut conn = self.conn()?;
        conn.statements.clear();
        self.update_cached_statements_size(&conn);
        Ok(())
    }

    pub(crate) async fn unlock_db(&mut self) -> Result<MutexGuard<'_, ConnectionState>, Error> {
        self.conn()
    }

    /// Nothing to stop: the database is closed when the connection (the
    /// last holder of its state) is dropped.
    pub(crate) fn shutdown(&mut self) -> impl Future<Output = Result<(), Error>> {
        std::future::ready(Ok(()))
    }
}

fn prepare(conn: &mut ConnectionState, query: &str) -> Result<SqliteStatement<'static>, Error> {
    // prepare statement object (or checkout from cache)
    let statement = conn.statements.get(query, true)?;

    let mut parameters = 0;
    let mut columns = None;
    let mut column_names = None;

    while let Some(statement) = statement.prepare_next(&mut conn.handle)? {
        parameters += statement.handle.bind_parameter_count();

        // the first non-empty statement is chosen as the statement we pull columns from
        if !statement.columns.is_empty() && columns.is_none() {
            columns = Some(Arc::clone(statement.columns));
            column_names = Some(Arc::clone(statement.column_names));
        }
    }

    Ok(SqliteStatement {
        sql: Cow::Owned(query.to_string()),
        columns: columns.unwrap_or_default(),
        column_names: column_names.unwrap_or_default(),
        parameters,
    })
}
