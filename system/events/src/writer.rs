//! A database's one writing connection, held rather than pooled, and the
//! group commit that shares one transaction among concurrent writers.
//!
//! SQLite lets one writer at a time, so each service writes through one
//! connection. Kept in a pool of one, every checkout of it costs two round
//! trips to the connection's worker thread that do no work: a ping before
//! the pool hands it out and another, on a task of its own, when it comes
//! back. Held behind a fair mutex, taking it costs the lock, and a
//! transaction costs its own statements. Writers queue in arrival order,
//! as they did for the pool's one connection.
//!
//! A commit costs more than the statements before it: the changed pages go
//! to the WAL as frames (one copy of each page per commit, however many
//! rows on it changed), and every thousand pages a checkpoint copies them
//! back. [`Writer::transact`] is for the writes that arrive together, as a
//! consumer's handlers do under load: each is a piece of work, and the work
//! queued while a transaction runs is done in the next one, together, with
//! one commit. Nothing waits to fill a group (a lone write commits at
//! once); a group is what piled up behind the last commit, up to
//! [`GROUP_MAX`]. Each caller learns its outcome only once its work is
//! committed. Should any work in a group fail, the group is rolled back
//! and each piece is done again in a transaction of its own, so a failing
//! piece fails alone and never takes the others' effects with it.
//!
//! Work that can wait a little says so with [`lingering`], as a consumer
//! does around its handlers and an outbox relay around marking the rows it
//! published: a group made only of such work waits up to that long after
//! its first piece was queued for more to join it, like a Kafka producer's
//! `linger.ms`. The handlers of one fetched batch then share a commit even
//! at low rates, where none would pile up behind the last one. Work that
//! does not linger (an HTTP request's write) ends the wait the moment it
//! is queued.
//!
//! A pool still converts into a [`Writer`] (one connection at a time is the
//! caller's to arrange then), for code that has only a pool.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Database, Sqlite, SqliteConnection, SqlitePool, TransactionManager};
use tokio::sync::{mpsc, oneshot, Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};
use tokio::time::Instant;
use tracing::Instrument;

/// The most pieces of work one group commit takes: enough that a busy
/// consumer's handlers (32 in flight) share a commit, few enough that a
/// group holds the connection for milliseconds, not longer, before the
/// next writer's turn.
pub const GROUP_MAX: usize = 32;

type Manager = <Sqlite as Database>::TransactionManager;

tokio::task_local! {
    /// How long the work [`Writer::transact`] queues from this task may
    /// wait for company; see [`lingering`].
    static LINGER: Duration;
}

/// Runs `fut` with the work it queues through [`Writer::transact`] allowed
/// to wait up to `linger` for other work to share its commit (see the
/// module docs). Zero: no waiting, as outside.
pub async fn lingering<F: Future>(linger: Duration, fut: F) -> F::Output {
    LINGER.scope(linger, fut).await
}

/// The writing connection of one database; clones share it.
#[derive(Clone)]
pub struct Writer(Arc<Inner>);

struct Inner {
    source: Source,
    /// Where [`Writer::transact`] queues work for the committing task,
    /// started on first use. The task holds only `source`: once the last
    /// clone of the writer is gone, the queue closes and the task ends.
    groups: OnceLock<mpsc::UnboundedSender<Box<dyn Pending>>>,
}

#[derive(Clone)]
enum Source {
    /// `None` once closed.
    Held(Arc<Mutex<Option<SqliteConnection>>>),
    Pool(SqlitePool),
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.source {
            Source::Held(_) => f.write_str("Writer(held connection)"),
            Source::Pool(pool) => f.debug_tuple("Writer").field(pool).finish(),
        }
    }
}

impl From<SqlitePool> for Writer {
    fn from(pool: SqlitePool) -> Self {
        Self::from_source(Source::Pool(pool))
    }
}

impl Writer {
    /// Holds `conn` as the database's writing connection.
    pub fn new(conn: SqliteConnection) -> Self {
        Self::from_source(Source::Held(Arc::new(Mutex::new(Some(conn)))))
    }

    fn from_source(source: Source) -> Self {
        Self(Arc::new(Inner {
            source,
            groups: OnceLock::new(),
        }))
    }

    /// The connection, once the writers queued before this one are done
    /// with it; [`sqlx::Error::PoolClosed`] after [`Writer::close`].
    pub async fn acquire(&self) -> Result<WriteConn, sqlx::Error> {
        self.0.source.acquire().await
    }

    /// Runs `work` on `data` in a transaction that may be shared with
    /// other callers' work (see the module docs), and answers once that
    /// transaction has committed: `work`'s own answer, or the commit's
    /// error. `work` may run more than once (after a group is rolled back,
    /// alone), so all it does is in the database; an effect outside it
    /// (waking a relay, a call) belongs after this returns. Work that
    /// panics panics here, in the caller. A caller that stops waiting
    /// before its work has started takes it back: it is not done.
    ///
    /// Must be called within a tokio runtime; the first call starts the
    /// task that commits.
    pub async fn transact<D, T, E, F>(&self, data: D, work: F) -> Result<T, E>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
        F: for<'a> Fn(&'a D, &'a mut SqliteConnection) -> BoxFuture<'a, Result<T, E>>
            + Send
            + Sync
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let piece = Box::new(Piece {
            data,
            work,
            linger_until: LINGER
                .try_with(|linger| *linger)
                .ok()
                .filter(|linger| !linger.is_zero())
                .map(|linger| Instant::now() + linger),
            span: tracing::Span::current(),
            result: None,
            reply: Some(reply),
        });
        let groups = self.0.groups.get_or_init(|| {
            let (queue, pieces) = mpsc::unbounded_channel();
            tokio::spawn(commit_groups(self.0.source.clone(), pieces));
            queue
        });
        if groups.send(piece).is_err() {
            return Err(E::from(sqlx::Error::PoolClosed));
        }
        match answer.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            // The committing task is gone (its runtime is shutting down).
            Err(_) => Err(E::from(sqlx::Error::WorkerCrashed)),
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
        match &self.0.source {
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

impl Source {
    async fn acquire(&self) -> Result<WriteConn, sqlx::Error> {
        match self {
            Source::Held(conn) => {
                let guard = Arc::clone(conn).lock_owned().await;
                OwnedMutexGuard::try_map(guard, Option::as_mut)
                    .map(WriteConn::Held)
                    .map_err(|_| sqlx::Error::PoolClosed)
            }
            Source::Pool(pool) => pool.acquire().await.map(WriteConn::Pool),
        }
    }
}

/// What a panicking piece of work panicked with.
type Panic = Box<dyn Any + Send>;

/// A caller's work, as the committing task sees it.
trait Pending: Send {
    /// Runs the work inside the transaction open on `conn`; true if it
    /// succeeded (its answer is kept either way, for [`Pending::finish`]).
    fn run<'a>(&'a mut self, conn: &'a mut SqliteConnection) -> BoxFuture<'a, bool>;
    /// The transaction the work last ran in has ended: `Ok` if it
    /// committed (or was rolled back because the work failed), else why
    /// not. Answers the caller.
    fn finish(self: Box<Self>, ended: Result<(), sqlx::Error>);
    /// The caller stopped waiting.
    fn abandoned(&self) -> bool;
    /// Until when a group may wait for more work on this piece's account;
    /// `None`: it may not wait at all.
    fn linger_until(&self) -> Option<Instant>;
}

struct Piece<D, T, E, F> {
    data: D,
    work: F,
    linger_until: Option<Instant>,
    /// The caller's span, so what the work logs is logged where it was
    /// asked for.
    span: tracing::Span,
    result: Option<Result<Result<T, E>, Panic>>,
    reply: Option<oneshot::Sender<Result<Result<T, E>, Panic>>>,
}

impl<D, T, E, F> Pending for Piece<D, T, E, F>
where
    D: Send + Sync + 'static,
    T: Send + 'static,
    E: From<sqlx::Error> + Send + 'static,
    F: for<'a> Fn(&'a D, &'a mut SqliteConnection) -> BoxFuture<'a, Result<T, E>>
        + Send
        + Sync
        + 'static,
{
    fn run<'a>(&'a mut self, conn: &'a mut SqliteConnection) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let work = AssertUnwindSafe((self.work)(&self.data, conn)).catch_unwind();
            let result = work.instrument(self.span.clone()).await;
            let ok = matches!(result, Ok(Ok(_)));
            self.result = Some(result);
            ok
        })
    }

    fn finish(mut self: Box<Self>, ended: Result<(), sqlx::Error>) {
        let answer = match (self.result.take(), ended) {
            // The work's own failure (or panic) is the answer, whatever
            // became of the transaction.
            (Some(result @ (Ok(Err(_)) | Err(_))), _) => result,
            (Some(Ok(Ok(value))), Ok(())) => Ok(Ok(value)),
            (_, Err(e)) => Ok(Err(E::from(e))),
            (None, Ok(())) => Ok(Err(E::from(sqlx::Error::WorkerCrashed))),
        };
        if let Some(reply) = self.reply.take() {
            // A caller that stopped waiting no longer needs the answer.
            let _ = reply.send(answer);
        }
    }

    fn abandoned(&self) -> bool {
        self.reply.as_ref().is_none_or(oneshot::Sender::is_closed)
    }

    fn linger_until(&self) -> Option<Instant> {
        self.linger_until
    }
}

/// The committing task of one writer: takes what is queued, does it in one
/// transaction, answers, and again, until the writer is dropped.
async fn commit_groups(source: Source, mut queue: mpsc::UnboundedReceiver<Box<dyn Pending>>) {
    let mut group: Vec<Box<dyn Pending>> = Vec::with_capacity(GROUP_MAX);
    while let Some(first) = queue.recv().await {
        // The group may wait as long as its first piece allows, and only
        // while every piece in it allows waiting.
        let mut until = first.linger_until();
        group.push(first);
        while group.len() < GROUP_MAX {
            let piece = match queue.try_recv() {
                Ok(piece) => piece,
                Err(_) => {
                    let Some(deadline) = until else { break };
                    match tokio::time::timeout_at(deadline, queue.recv()).await {
                        Ok(Some(piece)) => piece,
                        Ok(None) | Err(_) => break,
                    }
                }
            };
            if piece.linger_until().is_none() {
                until = None;
            }
            group.push(piece);
        }
        group.retain(|piece| !piece.abandoned());
        if group.is_empty() {
            continue;
        }
        match source.acquire().await {
            Ok(mut conn) => commit_group(&mut conn, &mut group).await,
            Err(e) => {
                let reason = e.to_string();
                for piece in group.drain(..) {
                    piece.finish(Err(same_error(&e, &reason)));
                }
            }
        }
    }
}

/// Does `group` in one transaction; should any piece fail, or the commit,
/// rolls back and does each piece alone. Answers every piece.
async fn commit_group(conn: &mut SqliteConnection, group: &mut Vec<Box<dyn Pending>>) {
    if group.len() > 1 && together(conn, group).await {
        for piece in group.drain(..) {
            piece.finish(Ok(()));
        }
        return;
    }
    for mut piece in group.drain(..) {
        if piece.abandoned() {
            continue;
        }
        let ended = alone(conn, &mut *piece).await;
        piece.finish(ended);
    }
}

/// Every piece in one transaction, committed: true; else rolled back.
async fn together(conn: &mut SqliteConnection, group: &mut [Box<dyn Pending>]) -> bool {
    if Manager::begin(conn, None).await.is_err() {
        return false;
    }
    for piece in group.iter_mut() {
        if !piece.run(conn).await {
            roll_back(conn).await;
            return false;
        }
    }
    match Manager::commit(conn).await {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, pieces = group.len(), "a group commit failed; each piece again alone");
            roll_back(conn).await;
            false
        }
    }
}

/// One piece in a transaction of its own: committed if it succeeded,
/// rolled back if not. `Err` only if the transaction itself failed.
async fn alone(conn: &mut SqliteConnection, piece: &mut dyn Pending) -> Result<(), sqlx::Error> {
    Manager::begin(conn, None).await?;
    if !piece.run(conn).await {
        roll_back(conn).await;
        return Ok(());
    }
    if let Err(e) = Manager::commit(conn).await {
        roll_back(conn).await;
        return Err(e);
    }
    Ok(())
}

async fn roll_back(conn: &mut SqliteConnection) {
    if let Err(error) = Manager::rollback(conn).await {
        tracing::warn!(%error, "cannot roll back a write transaction");
    }
}

/// An error like `e` (which is not `Clone`), for each caller it answers.
fn same_error(e: &sqlx::Error, reason: &str) -> sqlx::Error {
    match e {
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        _ => sqlx::Error::Protocol(reason.to_string()),
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

    /// Inserts `v`; fails after inserting should `v` be `FAILS`.
    const FAILS: i64 = 2;

    struct Counted {
        v: i64,
        runs: std::sync::atomic::AtomicUsize,
        hold: Option<Arc<tokio::sync::Notify>>,
    }

    fn counted(v: i64) -> Arc<Counted> {
        Arc::new(Counted {
            v,
            runs: Default::default(),
            hold: None,
        })
    }

    async fn insert(w: &Writer, c: Arc<Counted>) -> Result<i64, sqlx::Error> {
        w.transact(c, |c, conn| {
            Box::pin(async move {
                c.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let Some(hold) = &c.hold {
                    hold.notified().await;
                }
                sqlx::query("INSERT INTO t VALUES (?)")
                    .bind(c.v)
                    .execute(&mut *conn)
                    .await?;
                if c.v == FAILS {
                    return Err(sqlx::Error::Protocol("refused".into()));
                }
                if c.v < 0 {
                    panic!("piece {} panics", c.v);
                }
                Ok(c.v)
            })
        })
        .await
    }

    async fn values(w: &Writer) -> Vec<i64> {
        let mut conn = w.acquire().await.expect("acquire");
        sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(&mut *conn)
            .await
            .expect("select")
    }

    /// Starts a piece that holds the committing task until `release`d, so
    /// what is sent meanwhile queues up as one group.
    async fn hold(w: &Writer) -> (Arc<tokio::sync::Notify>, tokio::task::JoinHandle<()>) {
        let release = Arc::new(tokio::sync::Notify::new());
        let piece = Arc::new(Counted {
            v: 100,
            runs: Default::default(),
            hold: Some(release.clone()),
        });
        let w = w.clone();
        let task = tokio::spawn(async move {
            insert(&w, piece).await.expect("the holding piece commits");
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        (release, task)
    }

    #[tokio::test]
    async fn what_queues_commits_together_and_a_failing_piece_fails_alone() {
        let w = writer().await;
        let (release, holding) = hold(&w).await;
        let pieces: Vec<_> = (0..6).map(counted).collect();
        let tasks: Vec<_> = pieces
            .iter()
            .map(|c| {
                tokio::spawn({
                    let (w, c) = (w.clone(), c.clone());
                    async move { insert(&w, c).await }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.notify_one();
        holding.await.expect("holding task");
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("task").map_err(|e| e.to_string()));
        }
        let expected: Vec<Result<i64, String>> = (0..6)
            .map(|v| {
                if v == FAILS {
                    Err(sqlx::Error::Protocol("refused".into()).to_string())
                } else {
                    Ok(v)
                }
            })
            .collect();
        assert_eq!(answers, expected);
        assert_eq!(values(&w).await, vec![0, 1, 3, 4, 5, 100]);
        let runs: Vec<usize> = pieces
            .iter()
            .map(|c| c.runs.load(std::sync::atomic::Ordering::SeqCst))
            .collect();
        // 0 to 2 ran together, rolled back at 2, then each alone; the
        // pieces after 2 never ran in the failed group.
        assert_eq!(runs, vec![2, 2, 2, 1, 1, 1]);
    }

    #[tokio::test]
    async fn a_lone_piece_commits_at_once_and_panics_reach_the_caller() {
        let w = writer().await;
        assert_eq!(insert(&w, counted(7)).await.expect("commits"), 7);
        assert_eq!(values(&w).await, vec![7]);

        let (release, holding) = hold(&w).await;
        let panicking = tokio::spawn({
            let w = w.clone();
            async move { insert(&w, counted(-1)).await }
        });
        let fine = tokio::spawn({
            let w = w.clone();
            async move { insert(&w, counted(8)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.notify_one();
        holding.await.expect("holding task");
        let panicked = panicking.await.expect_err("the caller panics");
        assert!(panicked.is_panic());
        assert_eq!(fine.await.expect("task").expect("commits"), 8);
        assert_eq!(values(&w).await, vec![7, 8, 100]);
    }

    #[tokio::test]
    async fn lingering_work_waits_for_company_and_other_work_ends_the_wait() {
        // Piece 1 lingers; piece 2 (failing) comes 20 ms later, within the
        // linger: they are one group, so 1 runs twice (together, rolled
        // back at 2, then alone).
        let w = writer().await;
        let linger = Duration::from_millis(500);
        let (one, two) = (counted(1), counted(FAILS));
        let first = tokio::spawn({
            let (w, c) = (w.clone(), one.clone());
            lingering(linger, async move { insert(&w, c).await })
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = lingering(linger, insert(&w, two.clone())).await;
        assert!(second.is_err(), "piece 2 fails");
        assert_eq!(first.await.expect("task").expect("commits"), 1);
        let runs = |c: &Counted| c.runs.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!((runs(&one), runs(&two)), (2, 2), "one group, then alone");

        // A lingering piece, then one that does not linger: the second
        // ends the wait, so both are answered long before the linger.
        let started = Instant::now();
        let first = tokio::spawn({
            let w = w.clone();
            lingering(Duration::from_secs(30), async move {
                insert(&w, counted(3)).await
            })
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(insert(&w, counted(4)).await.expect("commits"), 4);
        assert_eq!(first.await.expect("task").expect("commits"), 3);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(values(&w).await, vec![1, 3, 4]);

        // Alone, a lingering piece commits once its linger is up.
        let started = Instant::now();
        let alone = lingering(Duration::from_millis(100), insert(&w, counted(5))).await;
        assert_eq!(alone.expect("commits"), 5);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_takes_its_work_back_and_closed_is_an_error() {
        let w = writer().await;
        let (release, holding) = hold(&w).await;
        let gone = tokio::spawn({
            let w = w.clone();
            async move { insert(&w, counted(9)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        gone.abort();
        let _ = gone.await;
        release.notify_one();
        holding.await.expect("holding task");
        assert_eq!(values(&w).await, vec![100], "abandoned work is not done");

        w.close().await;
        assert!(matches!(
            insert(&w, counted(10)).await,
            Err(sqlx::Error::PoolClosed)
        ));
    }
}
