//! Embedded migrations, one set per backend, applied at start-up and by `migrate`.

use diesel::connection::SimpleConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DbConnection, DbError};

const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Advisory lock key that serialises migration runs of several replicas. Without it, replicas
/// starting together race on the same DDL and fail with duplicate key errors.
const MIGRATION_LOCK_KEY: i64 = 0x6768_7379_6e63; // "ghsync"

/// Applies pending migrations and returns how many ran.
pub fn run_pending(conn: &mut DbConnection) -> Result<usize, DbError> {
    match conn {
        DbConnection::Postgres(pg) => {
            pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
            let outcome = pg.run_pending_migrations(POSTGRES).map(|done| done.len());
            pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
            outcome.map_err(|e| DbError::Migration(e.to_string()))
        }
        DbConnection::Sqlite(sqlite) => {
            sqlite.run_pending_migrations(SQLITE).map(|done| done.len()).map_err(|e| DbError::Migration(e.to_string()))
        }
    }
}

/// Returns true when no migration is pending, for the readiness check.
pub fn is_current(conn: &mut DbConnection) -> Result<bool, DbError> {
    let pending = match conn {
        DbConnection::Postgres(pg) => pg.has_pending_migration(POSTGRES),
        DbConnection::Sqlite(sqlite) => sqlite.has_pending_migration(SQLITE),
    };
    pending.map(|p| !p).map_err(|e| DbError::Migration(e.to_string()))
}
