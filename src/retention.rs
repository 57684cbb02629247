//! Retention of webhook delivery bodies. Bodies hold candidate data, so they are removed
//! once they are no longer needed for replay; the delivery rows stay for metrics and audit.
//! The rules are in `db::deliveries::purge_bodies`.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::db::{Database, DbError, deliveries};

/// How long delivery bodies are kept, and how often the purge runs.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// Bodies are kept this long after a delivery was applied or received; failed ones,
    /// twice as long unless replayed.
    pub period: Duration,
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings { period: Duration::from_secs(30 * 24 * 3600), interval: Duration::from_secs(3600) }
    }
}

/// Removes the bodies that retention no longer keeps and returns how many.
pub async fn purge_once(db: &Database, period: Duration) -> Result<usize, DbError> {
    let period = chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX);
    let purged = db.run(move |conn| deliveries::purge_bodies(conn, Utc::now(), period).map_err(DbError::from)).await?;
    crate::metrics::webhook_bodies_purged(purged);
    if purged > 0 {
        tracing::info!(bodies = purged, "delivery bodies removed by retention");
    }
    Ok(purged)
}

/// Purges at start and then every `interval` until `stop` turns true. A failed purge is
/// logged and tried again at the next interval.
pub async fn run_periodically(db: Database, settings: RetentionSettings, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(error) = purge_once(&db, settings.period).await {
            tracing::warn!(error = %error, "delivery retention purge failed; retrying at the next interval");
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.interval) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}
