//! Stores verified deliveries and applies them, each delivery with its effects in one
//! transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::apply::{Effects, apply_operations};
use crate::db::changes::{ChangeSet, Source};
use crate::db::deliveries::{self, NewDelivery, Outcome};
use crate::db::{DbConnection, DbError};
use crate::greenhouse::webhook_payload::{Plan, plan};

/// A delivery that passed the signature check and parses as JSON with an `action`.
#[derive(Debug, Clone)]
pub struct VerifiedDelivery {
    pub account_id: i64,
    pub event_id: Option<String>,
    pub action: String,
    pub body: String,
    pub payload: Value,
    pub received_at: DateTime<Utc>,
}

/// Result of storing a delivery.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    pub delivery_id: i64,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub effects: Effects,
}

/// Stores the delivery and applies it in one transaction.
///
/// An `Err` means nothing was stored, so the caller must respond with a status that makes
/// Greenhouse retry. When only applying fails, the delivery is still stored, marked failed
/// with the error, and the call succeeds: the body can be replayed later.
pub fn store_and_apply(conn: &mut DbConnection, delivery: &VerifiedDelivery) -> Result<Stored, DbError> {
    let stored = conn.write_transaction(|conn| {
        let mut changes = ChangeSet::new(delivery.account_id, Source::Webhook);
        let stored = store_in_transaction(conn, delivery, &mut changes)?;
        changes.append(conn, Utc::now())?;
        Ok(stored)
    });
    crate::changes::publish_pending();
    stored
}

/// Stores and applies several deliveries in one transaction, in order. Any database error
/// rolls back all of them: such errors (a full disk, a lost connection) are not particular
/// to one delivery, and after some of them SQLite has already ended the transaction.
///
/// The changes are appended to the feed after every delivery is applied, one account after
/// another in id order. Appending takes the account's next sequence numbers, so doing it
/// last keeps the sequence row locked only for the end of the batch.
pub fn store_all(conn: &mut DbConnection, deliveries: &[VerifiedDelivery]) -> Result<Vec<Stored>, DbError> {
    let stored = conn.write_transaction(|conn| {
        let mut changes: BTreeMap<i64, ChangeSet> = BTreeMap::new();
        let mut stored = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let account_changes = changes.entry(delivery.account_id).or_insert_with(|| ChangeSet::new(delivery.account_id, Source::Webhook));
            stored.push(store_in_transaction(conn, delivery, account_changes)?);
        }

        let now = Utc::now();
        for account_changes in changes.values_mut() {
            account_changes.append(conn, now)?;
        }
        Ok(stored)
    });
    crate::changes::publish_pending();
    stored
}

/// Stores one delivery and applies it inside the caller's transaction, adding what it
/// changed to `changes` for the caller to append.
fn store_in_transaction(conn: &mut DbConnection, delivery: &VerifiedDelivery, changes: &mut ChangeSet) -> Result<Stored, DbError> {
    let body_sha256 = hex::encode(Sha256::digest(delivery.body.as_bytes()));
    let new = NewDelivery {
        account_id: delivery.account_id,
        event_id: delivery.event_id.as_deref(),
        action: &delivery.action,
        received_at: delivery.received_at,
        body: &delivery.body,
        body_sha256: &body_sha256,
    };

    if let Some(event_id) = new.event_id
        && deliveries::is_retry_of_handled(conn, new.account_id, event_id, &body_sha256)?
    {
        let delivery_id = deliveries::insert(conn, &new, Outcome::Duplicate)?;
        return Ok(Stored { delivery_id, outcome: Outcome::Duplicate, error: None, effects: Effects::default() });
    }

    let delivery_id = deliveries::insert(conn, &new, Outcome::Failed)?;
    let stored = apply_collecting(conn, delivery_id, delivery, changes)?;
    let applied_at = (stored.outcome == Outcome::Applied).then(Utc::now);
    deliveries::set_outcome(conn, delivery_id, stored.outcome, stored.error.as_deref(), applied_at)?;
    Ok(stored)
}

/// Applies an already stored delivery inside a savepoint, so a failure undoes only its
/// partial writes and leaves the delivery row in place. Its changes are appended to the
/// feed before this returns.
pub fn apply_stored(conn: &mut DbConnection, delivery_id: i64, delivery: &VerifiedDelivery) -> Result<Stored, DbError> {
    let mut changes = ChangeSet::new(delivery.account_id, Source::Webhook);
    let stored = apply_collecting(conn, delivery_id, delivery, &mut changes)?;
    changes.append(conn, Utc::now())?;
    Ok(stored)
}

/// Applies a stored delivery inside a savepoint and adds its changes to `changes` only if
/// it applied: a rolled-back savepoint changed nothing.
fn apply_collecting(
    conn: &mut DbConnection,
    delivery_id: i64,
    delivery: &VerifiedDelivery,
    changes: &mut ChangeSet,
) -> Result<Stored, DbError> {
    let operations = match plan(&delivery.action, &delivery.payload) {
        Ok(Plan::Apply(operations)) => operations,
        Ok(Plan::Ignore) => return Ok(stored(delivery_id, Outcome::Ignored, None, Effects::default())),
        Ok(Plan::Unsupported) => return Ok(stored(delivery_id, Outcome::Unsupported, None, Effects::default())),
        Err(error) => return Ok(stored(delivery_id, Outcome::Failed, Some(error.to_string()), Effects::default())),
    };

    let now = Utc::now();
    let mut own_changes = ChangeSet::new(delivery.account_id, Source::Webhook);
    let applied = conn.write_transaction(|conn| apply_operations(conn, delivery.account_id, &operations, now, &mut own_changes));
    match applied {
        Ok(effects) => {
            changes.absorb(own_changes);
            Ok(stored(delivery_id, Outcome::Applied, None, effects))
        }
        Err(error) => Ok(stored(delivery_id, Outcome::Failed, Some(error.to_string()), Effects::default())),
    }
}

fn stored(delivery_id: i64, outcome: Outcome, error: Option<String>, effects: Effects) -> Stored {
    Stored { delivery_id, outcome, error, effects }
}
