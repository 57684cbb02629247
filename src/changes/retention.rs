//! Retention of the change feed: changes older than the configured period are purged.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::db::changes;
use crate::db::{Database, DbError};

/// Default time a change stays readable.
pub const DEFAULT_RETENTION_DAYS: u64 = 7;

/// How often the purge runs. Changes live for days, so an hour late costs little.
pub const PURGE_PERIOD: Duration = Duration::from_secs(3600);

/// Deletes the changes older than `retention`. Returns how many rows went.
pub async fn purge(db: &Database, retention: Duration) -> Result<usize, DbError> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now().checked_sub_signed(retention).unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    db.run(move |conn| changes::purge_before(conn, cutoff).map_err(DbError::from)).await
}

/// Purges every `PURGE_PERIOD`, starting at once, until `stop` turns true. Failures are
/// logged and retried at the next period.
pub async fn run_purges(db: Database, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match purge(&db, retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, retention_secs = retention.as_secs(), "purged old changes"),
            Err(error) => tracing::warn!(error = %error, "purging old changes failed; retrying at the next period"),
        }

        tokio::select! {
            _ = tokio::time::sleep(PURGE_PERIOD) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}
