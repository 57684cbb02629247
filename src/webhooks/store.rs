//! Stores verified deliveries and applies them, each delivery with its effects in one
//! transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::apply::{Effects, apply_operations};
use crate::db::changes::{ChangeSet, Source};
use crate::db::deliveries::{self, NewDelivery, Outcome};
use crate::db::{DbConnection, DbError};
use crate::greenhouse::webhook_payload::{Operation, Plan, plan};

/// A delivery that passed the signature check and parses as JSON with an `action`.
///
/// It keeps the body as text only. The payload is parsed again when the delivery is
/// applied, so a delivery waiting for the writer costs the size of its body and not that of
/// a parsed document, which is several times larger.
#[derive(Debug, Clone)]
pub struct VerifiedDelivery {
    pub account_id: i64,
    pub event_id: Option<String>,
    pub action: String,
    pub body: String,
    pub received_at: DateTime<Utc>,
}

/// The part of a delivery body that applying reads. The action is already known.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    payload: Value,
}

impl VerifiedDelivery {
    /// Parses the body's `payload`. A body without one has a null payload.
    pub fn payload(&self) -> Result<Value, serde_json::Error> {
        Ok(serde_json::from_str::<Envelope>(&self.body)?.payload)
    }

    fn body_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.body.as_bytes()))
    }

    fn new_row<'a>(&'a self, body_sha256: &'a str) -> NewDelivery<'a> {
        NewDelivery {
            account_id: self.account_id,
            event_id: self.event_id.as_deref(),
            action: &self.action,
            received_at: self.received_at,
            body: &self.body,
            body_sha256,
        }
    }
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

/// The outcome of applying a delivery, before its row is written.
struct Applied {
    outcome: Outcome,
    error: Option<String>,
    effects: Effects,
}

impl Applied {
    fn new(outcome: Outcome, error: Option<String>, effects: Effects) -> Applied {
        Applied { outcome, error, effects }
    }

    /// An outcome that wrote no record.
    fn nothing_written(outcome: Outcome, error: Option<String>) -> Applied {
        Applied::new(outcome, error, Effects::default())
    }
}

/// The reason the first attempt of `store_and_apply` rolled back.
enum Attempt {
    /// Applying the payload failed: store the delivery as failed in a new transaction.
    ApplyFailed(String),
    /// Storing failed: nothing is stored and the caller responds with 503.
    Store(DbError),
}

impl From<diesel::result::Error> for Attempt {
    fn from(error: diesel::result::Error) -> Attempt {
        Attempt::Store(DbError::from(error))
    }
}

/// Stores the delivery and applies it in one transaction.
///
/// An `Err` means nothing was stored, so the caller must respond with a status that makes
/// Greenhouse retry. When only applying fails, the delivery is still stored, marked failed
/// with the error, and the call succeeds: the body can be replayed later.
///
/// Applying usually succeeds, so it runs without a savepoint, and the delivery's row is
/// written once, with its outcome. That saves three statements, each a round trip to
/// PostgreSQL. When applying fails the transaction rolls back, and a second one stores the
/// delivery as failed.
pub fn store_and_apply(conn: &mut DbConnection, delivery: &VerifiedDelivery) -> Result<Stored, DbError> {
    let body_sha256 = delivery.body_sha256();
    let first = conn.write_transaction(|conn| {
        if let Some(duplicate) = store_if_retry(conn, delivery, &body_sha256)? {
            return Ok(duplicate);
        }
        let mut changes = ChangeSet::new(delivery.account_id, Source::Webhook);
        let applied = match planned(delivery) {
            Planned::Apply(operations) => {
                let effects = apply_operations(conn, delivery.account_id, &operations, Utc::now(), &mut changes)
                    .map_err(|error| Attempt::ApplyFailed(error.to_string()))?;
                Applied::new(Outcome::Applied, None, effects)
            }
            Planned::Done(applied) => applied,
        };
        let stored = insert_row(conn, delivery, &body_sha256, applied)?;
        // Appending locks the account's sequence row until the commit, and every delivery
        // of the account waits for that lock, so it comes last.
        changes.append(conn, Utc::now())?;
        Ok(stored)
    });

    let stored = match first {
        Ok(stored) => Ok(stored),
        Err(Attempt::Store(error)) => Err(error),
        Err(Attempt::ApplyFailed(error)) => {
            let failed = Applied::nothing_written(Outcome::Failed, Some(error));
            conn.write_transaction(|conn| insert_row(conn, delivery, &body_sha256, failed).map_err(DbError::from))
        }
    };
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
/// changed to `changes` for the caller to append. Applying runs in a savepoint, because
/// the other deliveries of the transaction must be kept when this one fails.
fn store_in_transaction(conn: &mut DbConnection, delivery: &VerifiedDelivery, changes: &mut ChangeSet) -> Result<Stored, DbError> {
    let body_sha256 = delivery.body_sha256();
    if let Some(duplicate) = store_if_retry(conn, delivery, &body_sha256)? {
        return Ok(duplicate);
    }
    let applied = apply_collecting(conn, delivery, changes);
    Ok(insert_row(conn, delivery, &body_sha256, applied)?)
}

/// Stores the delivery as a duplicate when it repeats one already handled (same event id
/// and body), and returns `None` otherwise.
fn store_if_retry(conn: &mut DbConnection, delivery: &VerifiedDelivery, body_sha256: &str) -> diesel::QueryResult<Option<Stored>> {
    let Some(event_id) = delivery.event_id.as_deref() else {
        return Ok(None);
    };
    if !deliveries::is_retry_of_handled(conn, delivery.account_id, event_id, body_sha256)? {
        return Ok(None);
    }
    let duplicate = Applied::nothing_written(Outcome::Duplicate, None);
    Ok(Some(insert_row(conn, delivery, body_sha256, duplicate)?))
}

/// Writes the delivery's row with how applying it ended.
fn insert_row(conn: &mut DbConnection, delivery: &VerifiedDelivery, body_sha256: &str, applied: Applied) -> diesel::QueryResult<Stored> {
    let applied_at = (applied.outcome == Outcome::Applied).then(Utc::now);
    let finished = deliveries::Finished { outcome: applied.outcome, error: applied.error.as_deref(), applied_at };
    let delivery_id = deliveries::insert(conn, &delivery.new_row(body_sha256), &finished)?;
    Ok(Stored { delivery_id, outcome: applied.outcome, error: applied.error, effects: applied.effects })
}

/// Applies an already stored delivery inside a savepoint, so a failure undoes only its
/// partial writes and leaves the delivery row in place. Its changes are appended to the
/// feed before this returns.
pub fn apply_stored(conn: &mut DbConnection, delivery_id: i64, delivery: &VerifiedDelivery) -> Result<Stored, DbError> {
    let mut changes = ChangeSet::new(delivery.account_id, Source::Webhook);
    let applied = apply_collecting(conn, delivery, &mut changes);
    changes.append(conn, Utc::now())?;
    Ok(Stored { delivery_id, outcome: applied.outcome, error: applied.error, effects: applied.effects })
}

/// The work a delivery's action calls for: operations to apply, or an outcome without any.
enum Planned {
    Apply(Vec<Operation>),
    Done(Applied),
}

fn planned(delivery: &VerifiedDelivery) -> Planned {
    let payload = match delivery.payload() {
        Ok(payload) => payload,
        Err(error) => {
            let error = format!("payload is not valid JSON: {error}");
            return Planned::Done(Applied::nothing_written(Outcome::Failed, Some(error)));
        }
    };
    match plan(&delivery.action, &payload) {
        Ok(Plan::Apply(operations)) => Planned::Apply(operations),
        Ok(Plan::Ignore) => Planned::Done(Applied::nothing_written(Outcome::Ignored, None)),
        Ok(Plan::Unsupported) => Planned::Done(Applied::nothing_written(Outcome::Unsupported, None)),
        Err(error) => Planned::Done(Applied::nothing_written(Outcome::Failed, Some(error.to_string()))),
    }
}

/// Applies a delivery inside a savepoint and adds its changes to `changes` only if it
/// applied: a rolled-back savepoint changed nothing.
fn apply_collecting(conn: &mut DbConnection, delivery: &VerifiedDelivery, changes: &mut ChangeSet) -> Applied {
    let operations = match planned(delivery) {
        Planned::Apply(operations) => operations,
        Planned::Done(applied) => return applied,
    };

    let now = Utc::now();
    let mut own_changes = ChangeSet::new(delivery.account_id, Source::Webhook);
    let applied = conn.write_transaction(|conn| apply_operations(conn, delivery.account_id, &operations, now, &mut own_changes));
    match applied {
        Ok(effects) => {
            changes.absorb(own_changes);
            Applied::new(Outcome::Applied, None, effects)
        }
        Err(error) => Applied::nothing_written(Outcome::Failed, Some(error.to_string())),
    }
}
