//! The change feed's storage: appending changes in the writer's transaction, reading them
//! in sequence order, and purging old ones.
//!
//! Sequence numbers come from one counter row per account (`change_sequences`), raised by
//! the number of changes a transaction appends. On PostgreSQL the raise locks that row until
//! commit, so a second writer of the same account waits, and numbers become visible in the
//! order they were handed out: a reader never sees number N+1 while N is still uncommitted.
//! On SQLite `BEGIN IMMEDIATE` already lets only one writer run at a time. Every appending
//! transaction raises the counter as its last record-related statement, so it never holds the
//! counter lock while waiting for a record row that another writer holds.

pub mod stored;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use serde::Serialize;

use super::{Backend, DbConnection};
use super::sql::{Sql, SqlValue, parse_time_text};
use crate::greenhouse::Resource;

type QueryResult<T> = diesel::QueryResult<T>;

/// Rows per multi-row `INSERT`: 8 bound values each stays far below SQLite's 32,766.
const INSERT_CHUNK: usize = 500;

/// The channel PostgreSQL notifies, with the account id as payload, when changes commit.
pub const NOTIFY_CHANNEL: &str = "greenhouse_sync_changes";

/// Path that wrote a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Webhook,
    Refresh,
    Sweep,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Refresh => "refresh",
            Source::Sweep => "sweep",
        }
    }
}

/// Kind of change to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Created,
    Updated,
    Deleted,
    /// A candidate merged into another one: it is deleted and names the survivor in
    /// `merged_into_id`.
    Merged,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Created => "created",
            Kind::Updated => "updated",
            Kind::Deleted => "deleted",
            Kind::Merged => "merged",
        }
    }
}

/// One change not yet appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    pub resource: Resource,
    pub record_id: i64,
    pub kind: Kind,
    pub changed_fields: Vec<String>,
}

/// The changes a transaction collects while it writes records, appended together at its end.
#[derive(Debug)]
pub struct ChangeSet {
    pub account_id: i64,
    pub source: Source,
    entries: Vec<NewChange>,
}

impl ChangeSet {
    pub fn new(account_id: i64, source: Source) -> ChangeSet {
        ChangeSet { account_id, source, entries: Vec::new() }
    }

    pub fn push(&mut self, resource: Resource, record_id: i64, kind: Kind, changed_fields: Vec<String>) {
        self.entries.push(NewChange { resource, record_id, kind, changed_fields });
    }

    /// Moves the entries of `other`, a set of the same account, to the end of this one.
    pub fn absorb(&mut self, mut other: ChangeSet) {
        debug_assert_eq!(self.account_id, other.account_id, "change sets of one account only");
        self.entries.append(&mut other.entries);
    }

    pub fn entries(&self) -> &[NewChange] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the collected changes in the caller's transaction and empties the set.
    /// Returns the last sequence number used, or `None` when there was nothing to append.
    pub fn append(&mut self, conn: &mut DbConnection, now: DateTime<Utc>) -> QueryResult<Option<i64>> {
        let last = append(conn, self.account_id, self.source, &self.entries, now)?;
        self.entries.clear();
        Ok(last)
    }
}

#[derive(QueryableByName)]
struct LastSeqRow {
    #[diesel(sql_type = BigInt)]
    last_seq: i64,
}

/// Appends `changes` for the account in the caller's transaction, numbered after the
/// account's last change. Returns the last number used, or `None` when `changes` is empty.
///
/// On PostgreSQL it also queues a `NOTIFY` on `NOTIFY_CHANNEL`, which PostgreSQL delivers
/// only if the transaction commits.
pub fn append(
    conn: &mut DbConnection,
    account_id: i64,
    source: Source,
    changes: &[NewChange],
    now: DateTime<Utc>,
) -> QueryResult<Option<i64>> {
    if changes.is_empty() {
        return Ok(None);
    }
    let count = changes.len() as i64;

    // On PostgreSQL the first chunk goes with the counter's raise, so the rest starts after it.
    let (first_seq, rest) = match conn.backend() {
        Backend::Postgres => {
            let first_chunk = &changes[..changes.len().min(INSERT_CHUNK)];
            (reserve_and_insert_postgres(conn, account_id, source, first_chunk, count, now)?, first_chunk.len())
        }
        Backend::Sqlite => (reserve(conn, account_id, count)? - count + 1, 0),
    };

    for (chunk_index, chunk) in changes[rest..].chunks(INSERT_CHUNK).enumerate() {
        let chunk_first = first_seq + (rest + chunk_index * INSERT_CHUNK) as i64;
        insert_rows(conn, account_id, source, chunk, chunk_first, now)?;
    }

    let last_seq = first_seq + count - 1;
    crate::changes::note_appended(account_id, source, changes, last_seq);
    Ok(Some(last_seq))
}

/// Raises the account's counter by `count` and returns its new value, creating the counter
/// at the first change.
fn reserve(conn: &mut DbConnection, account_id: i64, count: i64) -> QueryResult<i64> {
    let mut sql = Sql::new(conn.backend());
    sql.reuse();
    push_reserve(&mut sql, account_id, count);
    Ok(sql.first::<LastSeqRow>(conn)?.ok_or(diesel::result::Error::NotFound)?.last_seq)
}

fn push_reserve(sql: &mut Sql, account_id: i64, count: i64) {
    sql.push("INSERT INTO change_sequences (account_id, last_seq) VALUES (").bind(SqlValue::Int(Some(account_id)));
    sql.push(", ").bind(SqlValue::Int(Some(count)));
    sql.push(
        ") ON CONFLICT (account_id) DO UPDATE SET last_seq = change_sequences.last_seq + excluded.last_seq \
         RETURNING last_seq",
    );
}

#[derive(QueryableByName)]
struct SeqRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

/// Raises the counter by `count`, inserts `chunk` (the first changes of the `count`) and
/// queues the notification, in one statement: a webhook delivery appends one change, and
/// each statement saved is a round trip to the server. Returns the first number taken.
///
/// The counter row stays locked until the transaction ends. PostgreSQL runs the CTE that
/// notifies because it is volatile; several notifications with the same payload in one
/// transaction arrive as one.
fn reserve_and_insert_postgres(
    conn: &mut DbConnection,
    account_id: i64,
    source: Source,
    chunk: &[NewChange],
    count: i64,
    now: DateTime<Utc>,
) -> QueryResult<i64> {
    let mut sql = Sql::new(conn.backend());
    if chunk.len() == 1 {
        sql.reuse();
    }
    sql.push("WITH reserved AS (");
    push_reserve(&mut sql, account_id, count);
    sql.push(&format!("), notified AS (SELECT pg_notify('{NOTIFY_CHANNEL}', "));
    sql.bind(SqlValue::Text(Some(account_id.to_string())));
    sql.push(
        ")) INSERT INTO changes (account_id, seq, resource, record_id, kind, changed_fields, source, changed_at) \
         SELECT ",
    );
    sql.bind(SqlValue::Int(Some(account_id))).push(", reserved.last_seq - ").bind(SqlValue::Int(Some(count)));
    sql.push(
        " + v.n, v.resource, v.record_id, v.kind, v.changed_fields, v.source, v.changed_at \
         FROM reserved, notified, (VALUES ",
    );
    for (offset, change) in chunk.iter().enumerate() {
        if offset > 0 {
            sql.push(", ");
        }
        sql.push(&format!("({}", offset + 1));
        push_change_values(&mut sql, change, source, now);
        sql.push(")");
    }
    sql.push(") AS v (n, resource, record_id, kind, changed_fields, source, changed_at) RETURNING seq");

    let seqs = sql.load::<SeqRow>(conn)?;
    seqs.iter().map(|row| row.seq).min().ok_or(diesel::result::Error::NotFound)
}

fn insert_rows(
    conn: &mut DbConnection,
    account_id: i64,
    source: Source,
    changes: &[NewChange],
    first_seq: i64,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let mut sql = Sql::new(conn.backend());
    if changes.len() == 1 {
        sql.reuse();
    }
    sql.push("INSERT INTO changes (account_id, seq, resource, record_id, kind, changed_fields, source, changed_at) VALUES ");
    for (offset, change) in changes.iter().enumerate() {
        if offset > 0 {
            sql.push(", ");
        }
        sql.push("(").bind(SqlValue::Int(Some(account_id)));
        sql.push(", ").bind(SqlValue::Int(Some(first_seq + offset as i64)));
        push_change_values(&mut sql, change, source, now);
        sql.push(")");
    }
    sql.execute(conn)?;
    Ok(())
}

/// Pushes a change's resource, record id, kind, changed fields, source and time, each
/// after a comma.
fn push_change_values(sql: &mut Sql, change: &NewChange, source: Source, now: DateTime<Utc>) {
    let fields = serde_json::to_string(&change.changed_fields).unwrap_or_else(|_| "[]".to_string());
    sql.push(", ").bind(SqlValue::Text(Some(change.resource.name().to_string())));
    sql.push(", ").bind(SqlValue::Int(Some(change.record_id)));
    sql.push(", ").bind(SqlValue::Text(Some(change.kind.as_str().to_string())));
    sql.push(", ").bind(SqlValue::Json(fields));
    sql.push(", ").bind(SqlValue::Text(Some(source.as_str().to_string())));
    sql.push(", ").bind(SqlValue::Time(Some(now)));
}

/// A stored change, as the feed returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub seq: i64,
    pub resource: String,
    pub record_id: i64,
    pub kind: String,
    pub changed_fields: Vec<String>,
    pub source: String,
    pub changed_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct ChangeRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    resource: String,
    #[diesel(sql_type = BigInt)]
    record_id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    changed_fields: String,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Nullable<Text>)]
    changed_at: Option<String>,
}

impl From<ChangeRow> for Change {
    fn from(row: ChangeRow) -> Change {
        Change {
            seq: row.seq,
            resource: row.resource,
            record_id: row.record_id,
            kind: row.kind,
            changed_fields: serde_json::from_str(&row.changed_fields).unwrap_or_default(),
            source: row.source,
            changed_at: row.changed_at.as_deref().and_then(parse_time_text),
        }
    }
}

/// Reads up to `limit` changes of the account numbered above `after`, in sequence order.
pub fn read_after(conn: &mut DbConnection, account_id: i64, after: i64, limit: i64) -> QueryResult<Vec<Change>> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT seq, resource, record_id, kind, ").push_json_text("changed_fields");
    sql.push(" AS changed_fields, source, ").push_time_text("changed_at").push(" AS changed_at FROM changes");
    sql.push(" WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(" AND seq > ").bind(SqlValue::Int(Some(after)));
    sql.push(" ORDER BY seq LIMIT ").bind(SqlValue::Int(Some(limit)));
    Ok(sql.load::<ChangeRow>(conn)?.into_iter().map(Change::from).collect())
}

#[derive(QueryableByName)]
struct BoundsRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    oldest: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    newest: Option<i64>,
}

/// The range of sequence numbers an account's feed can still serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bounds {
    /// The smallest stored number; one past `newest` when every change was purged.
    pub oldest_available: i64,
    /// The last number handed out, 0 before the first change.
    pub newest: i64,
}

/// Reads the account's feed bounds in one statement, so that both come from one snapshot.
pub fn bounds(conn: &mut DbConnection, account_id: i64) -> QueryResult<Bounds> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT (SELECT MIN(seq) FROM changes WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(") AS oldest, (SELECT last_seq FROM change_sequences WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(") AS newest");
    let row = sql.first::<BoundsRow>(conn)?;
    let newest = row.as_ref().and_then(|r| r.newest).unwrap_or(0);
    let oldest_available = row.and_then(|r| r.oldest).unwrap_or(newest + 1);
    Ok(Bounds { oldest_available, newest })
}

#[derive(QueryableByName)]
struct AccountSeqRow {
    #[diesel(sql_type = BigInt)]
    account_id: i64,
    #[diesel(sql_type = BigInt)]
    last_seq: i64,
}

/// Returns every account's last sequence number, for metrics.
pub fn newest_per_account(conn: &mut DbConnection) -> QueryResult<Vec<(i64, i64)>> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT account_id, last_seq FROM change_sequences ORDER BY account_id");
    Ok(sql.load::<AccountSeqRow>(conn)?.into_iter().map(|row| (row.account_id, row.last_seq)).collect())
}

/// Deletes each account's changes up to its newest one made before `cutoff`, and returns how
/// many rows went.
///
/// Changes are cut by sequence number rather than by time alone: two concurrent writers may
/// stamp times out of sequence order, and deleting by time could then leave a hole that a
/// reader would silently step over. What remains is always an unbroken range per account.
pub fn purge_before(conn: &mut DbConnection, cutoff: DateTime<Utc>) -> QueryResult<usize> {
    let mut purged = 0;
    for (account_id, _) in newest_per_account(conn)? {
        let mut sql = Sql::new(conn.backend());
        sql.push("SELECT MAX(seq) AS seq FROM changes WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
        sql.push(" AND changed_at < ").bind(SqlValue::Time(Some(cutoff)));
        let Some(last_old) = sql.first::<MaxRow>(conn)?.and_then(|row| row.seq) else {
            continue;
        };

        let mut sql = Sql::new(conn.backend());
        sql.push("DELETE FROM changes WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
        sql.push(" AND seq <= ").bind(SqlValue::Int(Some(last_old)));
        purged += sql.execute(conn)?;
    }
    Ok(purged)
}

#[derive(QueryableByName)]
struct MaxRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    seq: Option<i64>,
}
