//! One connection type over both backends, and the r2d2 manager that opens it.
//!
//! The backend comes from the URL scheme at run time. Diesel's own multi-backend manager
//! reports "invalid connection url" for every failure, which hides a refused connection, so
//! this manager opens the concrete connection itself and returns its real error.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError, QueryResult};

use super::Backend;

/// A live connection to either supported backend.
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl DbConnection {
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Postgres(_) => Backend::Postgres,
            DbConnection::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs `work` in a write transaction: committed when it returns `Ok`, rolled back
    /// otherwise. Called inside another transaction it uses a savepoint.
    ///
    /// On SQLite the outer transaction starts with `BEGIN IMMEDIATE`, so it takes the write
    /// lock up front. A deferred transaction that reads and then writes can fail with
    /// "database is locked" even with a busy timeout, because SQLite cannot upgrade a read
    /// lock while another writer waits.
    pub fn write_transaction<T, E>(&mut self, work: impl FnOnce(&mut Self) -> Result<T, E>) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        self.begin()?;
        match work(self) {
            Ok(value) => {
                self.commit()?;
                Ok(value)
            }
            Err(error) => {
                // The work's error matters more than a failed rollback, which leaves the
                // connection marked broken so the pool discards it.
                let _ = self.rollback();
                Err(error)
            }
        }
    }

    fn begin(&mut self) -> QueryResult<()> {
        match self {
            DbConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c),
            DbConnection::Sqlite(c) => {
                let depth = AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?;
                if depth.is_none() {
                    AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
                } else {
                    AnsiTransactionManager::begin_transaction(c)
                }
            }
        }
    }

    fn commit(&mut self) -> QueryResult<()> {
        match self {
            DbConnection::Postgres(c) => AnsiTransactionManager::commit_transaction(c),
            DbConnection::Sqlite(c) => AnsiTransactionManager::commit_transaction(c),
        }
    }

    fn rollback(&mut self) -> QueryResult<()> {
        match self {
            DbConnection::Postgres(c) => AnsiTransactionManager::rollback_transaction(c),
            DbConnection::Sqlite(c) => AnsiTransactionManager::rollback_transaction(c),
        }
    }

    fn is_broken(&mut self) -> bool {
        match self {
            DbConnection::Postgres(c) => AnsiTransactionManager::is_broken_transaction_manager(c),
            DbConnection::Sqlite(c) => AnsiTransactionManager::is_broken_transaction_manager(c),
        }
    }

    fn ping(&mut self) -> QueryResult<()> {
        match self {
            DbConnection::Postgres(c) => c.batch_execute("SELECT 1"),
            DbConnection::Sqlite(c) => c.batch_execute("SELECT 1"),
        }
    }
}

/// A connection in the pool, and when it last went back to it.
pub struct PoolEntry {
    conn: DbConnection,
    returned_at: Option<Instant>,
}

impl Deref for PoolEntry {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl DerefMut for PoolEntry {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

/// A connection back in the pool for less than this is handed out without a test query.
/// The test is a round trip to PostgreSQL, and a webhook delivery makes only about eight,
/// so testing every checkout would cost a tenth of the webhook rate. Under load every
/// connection comes back within milliseconds, so the window is short: a connection idle for
/// longer, as through a database restart, is tested first. A connection that failed while
/// in use does not come back at all: Diesel marks it broken once libpq reports its
/// transaction state as unknown, and `has_broken` then drops it (tested in
/// `tests/faults/database.rs`).
const TRUSTED_AFTER_RETURN: Duration = Duration::from_millis(250);

/// Opens connections for r2d2, choosing the backend from the URL.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    backend: Backend,
    url: String,
    sqlite: SqliteOptions,
}

/// Per-connection SQLite settings.
#[derive(Debug, Clone, Copy)]
pub struct SqliteOptions {
    /// How long a statement waits for another connection's write lock.
    pub busy_timeout_ms: u64,
    /// Page cache of each connection, in KiB. SQLite's default is about 2 MB per connection,
    /// which ten pooled connections can fill at 20 MB; pages not in the cache come from the
    /// operating system's file cache.
    pub cache_kib: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { busy_timeout_ms: 10_000, cache_kib: 512 }
    }
}

impl ConnectionManager {
    pub fn new(backend: Backend, url: String, sqlite: SqliteOptions) -> Self {
        ConnectionManager { backend, url, sqlite }
    }
}

impl diesel::r2d2::ManageConnection for ConnectionManager {
    type Connection = PoolEntry;
    type Error = ConnectionError;

    fn connect(&self) -> Result<PoolEntry, ConnectionError> {
        let conn = self.open()?;
        Ok(PoolEntry { conn, returned_at: None })
    }

    /// Tests a connection that has been idle for a while with a query, because the server
    /// may have closed it meanwhile (a restart, an idle timeout).
    fn is_valid(&self, entry: &mut PoolEntry) -> Result<(), ConnectionError> {
        if entry.returned_at.is_some_and(|at| at.elapsed() < TRUSTED_AFTER_RETURN) {
            return Ok(());
        }
        entry.conn.ping().map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, entry: &mut PoolEntry) -> bool {
        entry.returned_at = Some(Instant::now());
        entry.conn.is_broken()
    }
}

impl ConnectionManager {
    fn open(&self) -> Result<DbConnection, ConnectionError> {
        match self.backend {
            Backend::Postgres => PgConnection::establish(&self.url).map(DbConnection::Postgres),
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.url)?;
                configure_sqlite(&mut conn, self.sqlite)
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// Sets the per-connection SQLite options.
///
/// `busy_timeout` comes first, so that the statements after it wait for locks. WAL lets
/// readers run beside the one writer, and it is a property of the database file, so only the
/// first connection switches to it: switching takes an exclusive lock that a busy writer
/// refuses without waiting. `synchronous=FULL` syncs the WAL at every commit, so a delivery
/// acknowledged with 200 survives a power loss, not only a process crash.
fn configure_sqlite(conn: &mut SqliteConnection, options: SqliteOptions) -> QueryResult<()> {
    conn.batch_execute(&format!("PRAGMA busy_timeout = {};", options.busy_timeout_ms))?;
    // A negative cache size is in KiB rather than in pages.
    conn.batch_execute(&format!("PRAGMA cache_size = -{};", options.cache_kib.max(64)))?;
    if journal_mode(conn)?.to_ascii_lowercase() != "wal" {
        conn.batch_execute("PRAGMA journal_mode = WAL;")?;
    }
    conn.batch_execute("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
}

#[derive(diesel::QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = diesel::sql_types::Text)]
    journal_mode: String,
}

fn journal_mode(conn: &mut SqliteConnection) -> QueryResult<String> {
    use diesel::RunQueryDsl;
    let rows = diesel::sql_query("PRAGMA journal_mode").load::<JournalMode>(conn)?;
    Ok(rows.into_iter().next().map(|row| row.journal_mode).unwrap_or_default())
}

/// Returns the bytes of heap the bundled SQLite library uses, summed over every connection
/// of the process, or 0 when no SQLite database was opened.
pub fn sqlite_heap_bytes() -> i64 {
    // SAFETY: sqlite3_memory_used only reads SQLite's global counter, under its own mutex,
    // and may be called whether or not SQLite was initialised.
    unsafe { libsqlite3_sys::sqlite3_memory_used() }
}
