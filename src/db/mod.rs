//! Storage: connections, pooling, migrations and every query.
//!
//! Both backends share one schema shape. Statements are written once in `sql` with the few
//! backend differences (placeholders, JSON merge, timestamp text) kept in `sql::Dialect`, and
//! run on the concrete connection inside each query function.

pub mod accounts;
pub mod changes;
pub mod connection;
pub mod deliveries;
pub mod migrations;
pub mod records;
pub mod sql;
pub mod sweeps;

use std::time::Duration;

use diesel::r2d2::Pool;

pub use connection::{ConnectionManager, DbConnection, PoolEntry, SqliteOptions};

/// Default database when none is configured: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "greenhouse-sync.db";

/// The database products supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(#[from] diesel::r2d2::PoolError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database task stopped before finishing: {0}")]
    Task(String),
    /// Work waited too long for its turn to write, such as deliveries queued behind
    /// SQLite's one writer.
    #[error("database busy: {0}")]
    Busy(String),
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a caller waits for a free connection before failing.
    pub acquire_timeout: Duration,
    pub sqlite: SqliteOptions,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings { max_connections: 10, acquire_timeout: Duration::from_secs(5), sqlite: SqliteOptions::default() }
    }
}

/// A connection pool and the backend it talks to.
#[derive(Clone)]
pub struct Database {
    pool: Pool<ConnectionManager>,
    backend: Backend,
}

impl Database {
    /// Opens a pool for `url` (`postgres://...`, `sqlite://path` or a plain file path).
    ///
    /// The pool is built lazily, so an unreachable PostgreSQL does not stop start-up: callers
    /// get `DbError::Unavailable` until it comes back.
    pub fn open(url: &str, settings: &PoolSettings) -> Database {
        let (backend, target) = parse_url(url);
        let manager = ConnectionManager::new(backend, target, settings.sqlite);
        let pool = Pool::builder()
            .max_size(settings.max_connections)
            // Open connections only on demand. A connection still being opened in the
            // background when a short command such as `accounts add` exits races with the
            // process's exit (one such run ended without an error message).
            .min_idle(Some(0))
            .connection_timeout(settings.acquire_timeout)
            .build_unchecked(manager);
        Database { pool, backend }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs blocking database work on tokio's blocking thread pool, so Diesel calls never
    /// stall the async executor.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(DbError::from)?;
            work(&mut conn)
        });
        match task.await {
            Ok(result) => result,
            Err(join_error) => Err(E::from(DbError::Task(join_error.to_string()))),
        }
    }

    /// Returns how long a caller waits for a free connection before failing.
    pub fn acquire_timeout(&self) -> Duration {
        self.pool.connection_timeout()
    }

    /// Takes a connection for blocking callers (command line, migrations).
    pub fn get(&self) -> Result<diesel::r2d2::PooledConnection<ConnectionManager>, DbError> {
        Ok(self.pool.get()?)
    }

    /// Connections in use and idle, for metrics.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections - state.idle_connections, state.idle_connections)
    }
}

/// Splits a database URL into its backend and the string the driver expects.
pub fn parse_url(url: &str) -> (Backend, String) {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return (Backend::Postgres, url.to_string());
    }
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    (Backend::Sqlite, path.to_string())
}

/// Returns `url` with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_path_is_sqlite() {
        assert_eq!(parse_url("data/gs.db"), (Backend::Sqlite, "data/gs.db".to_string()));
    }

    #[test]
    fn sqlite_scheme_is_stripped() {
        assert_eq!(parse_url("sqlite:///tmp/gs.db"), (Backend::Sqlite, "/tmp/gs.db".to_string()));
    }

    #[test]
    fn postgres_url_is_kept() {
        let url = "postgres://u@127.0.0.1:5432/db";
        assert_eq!(parse_url(url), (Backend::Postgres, url.to_string()));
    }

    #[test]
    fn password_is_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
