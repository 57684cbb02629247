//! One read of the feed: the next changes after a cursor, or the reason there are none to
//! give.

use serde::Serialize;
use serde_json::Value;

use crate::db::changes::{self, Change};
use crate::db::records::{self, WriteError};
use crate::db::{DbConnection, DbError};
use crate::greenhouse::Resource;

/// A change as the feed sends it, with the record's current row when asked for.
#[derive(Debug, Clone, Serialize)]
pub struct FeedChange {
    #[serde(flatten)]
    pub change: Change,
    /// The record's row as stored now (not as it was at the change), `null` if it is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Value>,
}

/// The result of reading after a cursor.
#[derive(Debug)]
pub enum PageRead {
    /// The next changes, possibly none yet.
    Changes(Vec<FeedChange>),
    /// Changes after the cursor were purged; the consumer must resync.
    Purged { oldest_available_seq: i64 },
    /// The cursor is beyond the newest change, so it belongs to another database (a restored
    /// backup, a reset account); the consumer must resync.
    Ahead { newest_seq: i64 },
}

/// Reads up to `limit` changes after `after`.
///
/// Sequence numbers have no gaps, so a first change other than `after + 1` means the range
/// in between was purged. Checking the rows read, rather than the bounds beforehand, keeps a
/// purge running between two statements from hiding changes.
pub fn read(conn: &mut DbConnection, account_id: i64, after: i64, limit: i64, include_record: bool) -> Result<PageRead, DbError> {
    let found = changes::read_after(conn, account_id, after, limit)?;

    match found.first() {
        Some(first) if first.seq != after + 1 => return Ok(PageRead::Purged { oldest_available_seq: first.seq }),
        Some(_) => {}
        None => {
            let bounds = changes::bounds(conn, account_id)?;
            if after < bounds.oldest_available - 1 {
                return Ok(PageRead::Purged { oldest_available_seq: bounds.oldest_available });
            }
            if after > bounds.newest {
                return Ok(PageRead::Ahead { newest_seq: bounds.newest });
            }
        }
    }

    let mut page = Vec::with_capacity(found.len());
    for change in found {
        let record = if include_record { Some(current_record(conn, account_id, &change)?) } else { None };
        page.push(FeedChange { change, record });
    }
    Ok(PageRead::Changes(page))
}

fn current_record(conn: &mut DbConnection, account_id: i64, change: &Change) -> Result<Value, DbError> {
    let Ok(resource) = change.resource.parse::<Resource>() else {
        return Ok(Value::Null);
    };
    match records::fetch_record(conn, account_id, resource, change.record_id) {
        Ok(record) => Ok(record.unwrap_or(Value::Null)),
        Err(WriteError::Query(error)) => Err(DbError::from(error)),
        // fetch_record only reads, so it fails with query errors alone.
        Err(other) => Err(DbError::Task(other.to_string())),
    }
}
