//! Each service's own SQLite database: one file per service in the run
//! directory, WAL mode, migrations embedded in the binary.
//!
//! SQLite allows one writer at a time. Rather than let concurrent write
//! transactions race for the lock (and fail with `SQLITE_BUSY` when a read
//! transaction tries to upgrade), every write goes through one held
//! connection (a [`Writer`]: writers queue for it), and reads through a
//! pool that WAL lets run alongside. The writes that arrive together (the
//! event handlers', an async order's, a charge's) go through
//! [`Writer::transact`], which lets them share a commit.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use gauntlet_events::Writer;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};

/// How long a statement waits for the database lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent readers per service; WAL lets them run beside the writer.
const READERS: u32 = 4;
/// Page cache of the writing connection, KiB. SQLite's default is 2 MiB a
/// connection: with seven databases' writers and readers that is up to
/// 70 MiB, reached only once each database is that large, so a steady
/// run's memory grew for many minutes. These fill within a minute or so
/// of steady load and then stay; the pages a write touches (the newest
/// rows, the indexes' edges) fit many times over.
const WRITER_CACHE_KIB: u32 = 1024;
/// Page cache of each reading connection, KiB.
const READER_CACHE_KIB: u32 = 256;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("cannot migrate database {path}: {source}")]
    Migrate {
        path: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
}

/// A service's database: one writer connection, a few readers.
#[derive(Clone, Debug)]
pub struct Db {
    pub write: Writer,
    pub read: SqlitePool,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) `<dir>/<service>.db` and applies `migrator`.
    pub async fn open(dir: &Path, service: &str, migrator: &Migrator) -> Result<Self, DbError> {
        let path = dir.join(format!("{service}.db"));
        let open_err = |source| DbError::Open {
            path: path.clone(),
            source,
        };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let cache = |kib: u32| format!("-{kib}");
        let mut write = options
            .clone()
            .pragma("cache_size", cache(WRITER_CACHE_KIB))
            .connect()
            .await
            .map_err(open_err)?;
        migrator
            .run(&mut write)
            .await
            .map_err(|source| DbError::Migrate {
                path: path.clone(),
                source,
            })?;
        // A file's connection does not drop out from under us: no ping
        // (a round trip to the connection's thread) before each use.
        let read = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .connect_with(
                options
                    .read_only(true)
                    .pragma("cache_size", cache(READER_CACHE_KIB)),
            )
            .await
            .map_err(open_err)?;
        Ok(Self {
            write: Writer::new(write),
            read,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes both pools, so the files can be reopened by a restarted service.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// A cheap liveness query, for `/health`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map(|_| ())
    }
}

/// Milliseconds since the Unix epoch, as stored in every `*_at` column.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
