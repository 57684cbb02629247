//! Applies planned operations to the database.

use chrono::{DateTime, Utc};

use crate::db::DbConnection;
use crate::db::changes::ChangeSet;
use crate::db::records::{self, Merge, RecordWrite, WriteError};
use crate::db::sweeps;
use crate::greenhouse::Resource;
use crate::greenhouse::webhook_payload::Operation;

/// Counts of what a delivery changed, for logs and the response.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Effects {
    /// Records inserted or updated.
    pub written: usize,
    /// Writes a guard declined: the stored row is newer, or deleted.
    pub kept: usize,
    /// Records newly marked deleted (merged candidates included).
    pub deleted: usize,
}

/// Applies `operations` in order on `conn` and adds what they changed to `changes`, which
/// the caller appends to the feed. The caller owns the transaction.
pub fn apply_operations(
    conn: &mut DbConnection,
    account_id: i64,
    operations: &[Operation],
    now: DateTime<Utc>,
    changes: &mut ChangeSet,
) -> Result<Effects, WriteError> {
    let mut effects = Effects::default();
    for operation in operations {
        apply_one(conn, account_id, operation, now, changes, &mut effects)?;
    }
    Ok(effects)
}

fn apply_one(
    conn: &mut DbConnection,
    account_id: i64,
    operation: &Operation,
    now: DateTime<Utc>,
    changes: &mut ChangeSet,
    effects: &mut Effects,
) -> Result<(), WriteError> {
    match operation {
        Operation::Upsert { resource, id, fields } => {
            let write = RecordWrite { resource: *resource, id: *id, fields, merge: Merge::Partial, seen_by_run: None };
            if records::upsert_record(conn, account_id, &write, changes, now)? {
                effects.written += 1;
                // The payload may be partial or stale: re-read the complete record soon.
                sweeps::queue_refresh(conn, account_id, *resource, *id, now)?;
            } else {
                effects.kept += 1;
            }
        }
        Operation::Delete { resource, id } => {
            effects.deleted += usize::from(records::mark_deleted(conn, account_id, *resource, *id, changes, now)?);
        }
        Operation::DeleteCandidate { id, application_ids } => {
            effects.deleted += usize::from(records::mark_deleted(conn, account_id, Resource::Candidates, *id, changes, now)?);
            for application_id in application_ids {
                let deleted = records::mark_deleted(conn, account_id, Resource::Applications, *application_id, changes, now)?;
                effects.deleted += usize::from(deleted);
            }
            // Applications Greenhouse did not list still belonged to the deleted candidate.
            effects.deleted += records::delete_applications_of_candidate(conn, account_id, *id, changes, now)?;
        }
        Operation::MergeCandidate { old_id, new_id } => {
            let moved = records::merge_candidate(conn, account_id, *old_id, *new_id, changes, now)?;
            sweeps::queue_refresh(conn, account_id, Resource::Candidates, *new_id, now)?;
            effects.deleted += 1;
            effects.written += moved;
        }
        Operation::AnonymizeCandidate { id, fields, unknown } => {
            if !unknown.is_empty() {
                tracing::warn!(account.id = account_id, candidate.id = id, fields = ?unknown, "anonymized fields not recognised; nothing stored for them");
            }
            if records::overwrite_fields(conn, account_id, Resource::Candidates, *id, fields, changes, now)? {
                effects.written += 1;
            }
        }
    }
    Ok(())
}
