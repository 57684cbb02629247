//! Replaying stored deliveries: the stored body is applied again, as on receipt, and the
//! delivery's outcome is updated.

use chrono::Utc;

use crate::db::deliveries::{self, Outcome};
use crate::db::{DbConnection, DbError};
use crate::webhooks::store::{Stored, VerifiedDelivery, apply_stored};

/// Reason a delivery was not replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("delivery {0} not found")]
    NotFound(i64),
    #[error("delivery {id} is not replayable: {reason}")]
    NotReplayable { id: i64, reason: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ReplayError {
    fn from(error: diesel::result::Error) -> ReplayError {
        ReplayError::Db(DbError::from(error))
    }
}

/// Applies a failed or unsupported delivery again and records the new outcome, in one write
/// transaction.
///
/// Deliveries with other outcomes are refused: most payloads carry no version timestamp, so
/// applying an old, already applied payload again could overwrite newer data.
pub fn replay(conn: &mut DbConnection, delivery_id: i64) -> Result<Stored, ReplayError> {
    let replayed = replay_in_transaction(conn, delivery_id);
    // Wakes change-feed readers in this process now that the changes are committed.
    crate::changes::publish_pending();
    replayed
}

fn replay_in_transaction(conn: &mut DbConnection, delivery_id: i64) -> Result<Stored, ReplayError> {
    conn.write_transaction(|conn| {
        let stored = deliveries::find(conn, delivery_id, true)?.ok_or(ReplayError::NotFound(delivery_id))?;
        let not_replayable = |reason: String| ReplayError::NotReplayable { id: delivery_id, reason };

        let outcome = stored.summary.outcome;
        if !outcome.is_some_and(Outcome::is_replayable) {
            let shown = outcome.map_or("unknown", Outcome::as_str);
            return Err(not_replayable(format!(
                "its outcome is {shown}; only failed and unsupported deliveries are applied again"
            )));
        }
        let body = stored.body.ok_or_else(|| not_replayable("its body was removed by retention".to_string()))?;
        let delivery = verified_delivery(&stored.summary, body).map_err(not_replayable)?;

        let result = apply_stored(conn, delivery_id, &delivery)?;
        let applied_at = (result.outcome == Outcome::Applied).then(Utc::now);
        deliveries::record_replay(conn, delivery_id, result.outcome, result.error.as_deref(), applied_at)?;
        crate::metrics::webhook_replayed(delivery.account_id, result.outcome.as_str());
        Ok(result)
    })
}

/// Rebuilds the delivery from its stored body, which passed the signature check on receipt.
fn verified_delivery(summary: &deliveries::DeliverySummary, body: String) -> Result<VerifiedDelivery, String> {
    serde_json::from_str::<serde::de::IgnoredAny>(&body).map_err(|error| format!("its stored body is not JSON: {error}"))?;
    Ok(VerifiedDelivery {
        account_id: summary.account_id,
        event_id: summary.event_id.clone(),
        action: summary.action.clone(),
        body,
        received_at: summary.received_at.unwrap_or_else(Utc::now),
    })
}
