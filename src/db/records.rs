//! Writes and reads of synced records (jobs, candidates, applications, ...).
//!
//! Every write goes through the guarded upsert: a row is overwritten only by data at least as
//! new as what is stored (`version_at`), and a row marked deleted is never brought back.
//! Webhooks and the sweep share it, so they can arrive in any order.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::changes::stored::{self, StoredRow};
use super::changes::{ChangeSet, Kind};
use super::sql::{Sql, SqlValue};
use super::{Backend, DbConnection};
use crate::greenhouse::harvest::record_id;
use crate::greenhouse::resource::{Column, ColumnKind, Resource};

/// Error of a record write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The record's JSON does not have the shape its column needs. Not retryable as is.
    #[error("{resource} {id}: field '{field}' {problem}")]
    InvalidField { resource: Resource, id: i64, field: &'static str, problem: String },
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// Rule for combining the stored JSON with the incoming fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Webhook payloads are partial: present fields overwrite, absent fields stay.
    Partial,
    /// Harvest v3 objects are complete: the stored JSON is replaced.
    Replace,
}

/// One record to upsert, in Harvest v3 field names.
#[derive(Debug, Clone)]
pub struct RecordWrite<'a> {
    pub resource: Resource,
    pub id: i64,
    pub fields: &'a Map<String, Value>,
    pub merge: Merge,
    /// The full sweep run that read this record, if any.
    pub seen_by_run: Option<i64>,
}

/// Upserts one record under the version and deletion guards, adding a change to `changes`
/// when a stored value changes.
///
/// Returns false when a guard kept the stored row: it is newer, or it is deleted.
/// Where the incoming record has no version timestamp (most webhook payloads), the write
/// applies in arrival order and keeps the stored version. A write that would change nothing
/// is skipped and returns true.
pub fn upsert_record(
    conn: &mut DbConnection,
    account_id: i64,
    write: &RecordWrite<'_>,
    changes: &mut ChangeSet,
    now: DateTime<Utc>,
) -> Result<bool, WriteError> {
    let stored = stored::load(conn, account_id, write.resource, &[write.id])?.remove(&write.id);
    let outcome = upsert_over(conn, account_id, write, stored.as_ref(), changes, now)?;
    Ok(outcome != Outcome::Kept)
}

/// Result of one upsert.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The row was inserted or updated, and `changes` has an entry for it.
    Written,
    /// The row already held these values; nothing was written.
    Unchanged,
    /// A guard kept the stored row.
    Kept,
}

/// Upserts one record whose stored row (locked by the caller's read) is `stored`.
fn upsert_over(
    conn: &mut DbConnection,
    account_id: i64,
    write: &RecordWrite<'_>,
    stored: Option<&StoredRow>,
    changes: &mut ChangeSet,
    now: DateTime<Utc>,
) -> Result<Outcome, WriteError> {
    let columns = typed_values(write)?;
    let version = version_of(write)?;

    let (kind, changed_fields) = match stored {
        None => {
            let mut fields: Vec<String> = write.fields.keys().cloned().collect();
            fields.sort();
            (Kind::Created, fields)
        }
        // The deletion guard would keep the row; skipping the statement changes nothing.
        Some(row) if row.deleted => return Ok(Outcome::Kept),
        Some(row) => {
            // A complete record is compared as it is; only a partial one needs the merge.
            let changed = match write.merge {
                Merge::Partial => stored::patched_fields(&row.data, write.fields),
                Merge::Replace => stored::changed_fields(&row.data, write.fields),
            };
            if changed.is_empty() {
                return Ok(Outcome::Unchanged);
            }
            (Kind::Updated, changed)
        }
    };

    if execute_upsert(conn, account_id, write, columns, version, now)? {
        changes.push(write.resource, write.id, kind, changed_fields);
        Ok(Outcome::Written)
    } else {
        Ok(Outcome::Kept)
    }
}

/// Runs the guarded `INSERT ... ON CONFLICT DO UPDATE ... WHERE`. Returns false when a guard
/// kept the stored row.
fn execute_upsert(
    conn: &mut DbConnection,
    account_id: i64,
    write: &RecordWrite<'_>,
    columns: Vec<(Column, SqlValue)>,
    version: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<bool, WriteError> {
    let table = write.resource.name();

    let mut sql = Sql::new(conn.backend());
    if write.merge == Merge::Partial {
        // A webhook action names the same fields every time, so its text recurs. Sweeps
        // are left out: their prepared statements would add to a sweep's memory on SQLite.
        sql.reuse();
    }
    sql.push(&format!("INSERT INTO {table} (account_id, id"));
    for (column, _) in &columns {
        sql.push(", ").push(column.name);
    }
    sql.push(", data, version_at, last_seen_run_id, written_at) VALUES (");
    sql.bind(SqlValue::Int(Some(account_id))).push(", ").bind(SqlValue::Int(Some(write.id)));
    for (_, value) in &columns {
        sql.push(", ").bind(value.clone());
    }
    sql.push(", ").bind(SqlValue::Json(json_text(write.fields)));
    sql.push(", ").bind(SqlValue::Time(version));
    sql.push(", ").bind(SqlValue::Int(write.seen_by_run));
    sql.push(", ").bind(SqlValue::Time(Some(now)));

    sql.push(") ON CONFLICT (account_id, id) DO UPDATE SET ");
    for (column, _) in &columns {
        sql.push(&format!("{0} = excluded.{0}, ", column.name));
    }
    sql.push("data = ");
    match write.merge {
        Merge::Replace => {
            sql.push("excluded.data");
        }
        Merge::Partial => push_json_merge(&mut sql, &format!("{table}.data"), write.fields),
    }
    sql.push(&format!(
        ", version_at = COALESCE(excluded.version_at, {table}.version_at), \
         last_seen_run_id = COALESCE(excluded.last_seen_run_id, {table}.last_seen_run_id), \
         written_at = excluded.written_at \
         WHERE {table}.deleted_at IS NULL \
         AND (excluded.version_at IS NULL OR {table}.version_at IS NULL \
         OR excluded.version_at >= {table}.version_at)"
    ));

    Ok(sql.execute(conn)? == 1)
}

/// Marks a record deleted, inserting a tombstone when it was never stored, so that a late
/// update about it cannot create it. Returns false when it was already deleted.
pub fn mark_deleted(
    conn: &mut DbConnection,
    account_id: i64,
    resource: Resource,
    id: i64,
    changes: &mut ChangeSet,
    now: DateTime<Utc>,
) -> Result<bool, WriteError> {
    let deleted = set_deleted(conn, account_id, resource, id, now)?;
    if deleted {
        changes.push(resource, id, Kind::Deleted, vec!["deleted_at".to_string()]);
    }
    Ok(deleted)
}

fn set_deleted(conn: &mut DbConnection, account_id: i64, resource: Resource, id: i64, now: DateTime<Utc>) -> Result<bool, WriteError> {
    let table = resource.name();
    let mut sql = Sql::new(conn.backend());
    sql.reuse().push(&format!("INSERT INTO {table} (account_id, id, deleted_at, written_at) VALUES ("));
    sql.bind(SqlValue::Int(Some(account_id))).push(", ").bind(SqlValue::Int(Some(id)));
    sql.push(", ").bind(SqlValue::Time(Some(now))).push(", ").bind(SqlValue::Time(Some(now)));
    sql.push(&format!(
        ") ON CONFLICT (account_id, id) DO UPDATE SET deleted_at = excluded.deleted_at, \
         written_at = excluded.written_at WHERE {table}.deleted_at IS NULL"
    ));
    Ok(sql.execute(conn)? == 1)
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Marks every live application of a candidate deleted. Returns how many were.
pub fn delete_applications_of_candidate(
    conn: &mut DbConnection,
    account_id: i64,
    candidate_id: i64,
    changes: &mut ChangeSet,
    now: DateTime<Utc>,
) -> Result<usize, WriteError> {
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE applications SET deleted_at = ").bind(SqlValue::Time(Some(now)));
    sql.push(", written_at = ").bind(SqlValue::Time(Some(now)));
    sql.push(" WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(" AND candidate_id = ").bind(SqlValue::Int(Some(candidate_id)));
    sql.push(" AND deleted_at IS NULL RETURNING id");
    let deleted = sql.load::<IdRow>(conn)?;
    for row in &deleted {
        changes.push(Resource::Applications, row.id, Kind::Deleted, vec!["deleted_at".to_string()]);
    }
    Ok(deleted.len())
}

/// Records that Greenhouse merged candidate `old_id` into `new_id`: the old candidate is
/// marked deleted with `merged_into_id`, and its applications now belong to the new one.
/// Returns how many applications moved.
pub fn merge_candidate(
    conn: &mut DbConnection,
    account_id: i64,
    old_id: i64,
    new_id: i64,
    changes: &mut ChangeSet,
    now: DateTime<Utc>,
) -> Result<usize, WriteError> {
    let mut merged_fields = Vec::new();
    if set_deleted(conn, account_id, Resource::Candidates, old_id, now)? {
        merged_fields.push("deleted_at".to_string());
    }

    // Only a different survivor is a change, so a repeated merge appends nothing.
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE candidates SET merged_into_id = ").bind(SqlValue::Int(Some(new_id)));
    sql.push(" WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(" AND id = ").bind(SqlValue::Int(Some(old_id)));
    sql.push(" AND (merged_into_id IS NULL OR merged_into_id <> ").bind(SqlValue::Int(Some(new_id))).push(")");
    if sql.execute(conn)? == 1 {
        merged_fields.push("merged_into_id".to_string());
    }
    if !merged_fields.is_empty() {
        changes.push(Resource::Candidates, old_id, Kind::Merged, merged_fields);
    }

    let mut moved = Map::new();
    moved.insert("candidate_id".to_string(), Value::from(new_id));
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE applications SET candidate_id = ").bind(SqlValue::Int(Some(new_id)));
    sql.push(", data = ");
    push_json_merge(&mut sql, "data", &moved);
    sql.push(", written_at = ").bind(SqlValue::Time(Some(now)));
    sql.push(" WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(" AND candidate_id = ").bind(SqlValue::Int(Some(old_id)));
    sql.push(" RETURNING id");
    let moved = sql.load::<IdRow>(conn)?;
    for row in &moved {
        changes.push(Resource::Applications, row.id, Kind::Updated, vec!["candidate_id".to_string()]);
    }
    Ok(moved.len())
}

/// Overwrites fields of a stored record in place, deleted or not, without creating it and
/// without touching its version. Used for anonymization, which must reach every copy.
/// Returns false when no such record is stored.
pub fn overwrite_fields(
    conn: &mut DbConnection,
    account_id: i64,
    resource: Resource,
    id: i64,
    fields: &Map<String, Value>,
    changes: &mut ChangeSet,
    now: DateTime<Utc>,
) -> Result<bool, WriteError> {
    let write = RecordWrite { resource, id, fields, merge: Merge::Partial, seen_by_run: None };
    let columns = typed_values(&write)?;
    let Some(row) = stored::load(conn, account_id, resource, &[id])?.remove(&id) else {
        return Ok(false);
    };
    let changed = stored::patched_fields(&row.data, fields);
    if changed.is_empty() {
        return Ok(true);
    }

    let table = resource.name();
    let mut sql = Sql::new(conn.backend());
    sql.push(&format!("UPDATE {table} SET "));
    for (column, value) in columns {
        sql.push(column.name).push(" = ").bind(value).push(", ");
    }
    sql.push("data = ");
    push_json_merge(&mut sql, "data", fields);
    sql.push(", written_at = ").bind(SqlValue::Time(Some(now)));
    sql.push(" WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(" AND id = ").bind(SqlValue::Int(Some(id)));
    let written = sql.execute(conn)? == 1;
    if written {
        changes.push(resource, id, Kind::Updated, changed);
    }
    Ok(written)
}

/// Appends an expression that merges `fields` into the JSON object in `base` at top level,
/// keeping explicit nulls.
///
/// PostgreSQL's `jsonb ||` does exactly that. SQLite's `json_patch` would delete keys whose
/// value is null (RFC 7396), so SQLite sets each key with `json_set` instead.
fn push_json_merge(sql: &mut Sql, base: &str, fields: &Map<String, Value>) {
    match sql.backend() {
        Backend::Postgres => {
            sql.push(&format!("{base} || "));
            sql.bind(SqlValue::Json(json_text(fields)));
        }
        Backend::Sqlite => {
            sql.push(&format!("json_set({base}"));
            for (key, value) in fields {
                sql.push(", ").bind(SqlValue::Text(Some(json_path(key))));
                sql.push(", json(").bind(SqlValue::Text(Some(value.to_string()))).push(")");
            }
            sql.push(")");
        }
    }
}

/// Serializes fields as one JSON object, with the same text `Value::Object` would give, but
/// without copying the map first.
fn json_text(fields: &Map<String, Value>) -> String {
    // A map of JSON values with string keys always serializes.
    serde_json::to_string(fields).expect("a JSON object serializes")
}

/// Builds a SQLite JSON path naming one top-level key, quoted so keys such as `content-type` work.
fn json_path(key: &str) -> String {
    let escaped = key.replace('\\', "\\\\").replace('"', "\\\"");
    format!("$.\"{escaped}\"")
}

/// Converts the typed columns present in the record's fields to bound values.
fn typed_values(write: &RecordWrite<'_>) -> Result<Vec<(Column, SqlValue)>, WriteError> {
    let mut values = Vec::new();
    for column in write.resource.columns() {
        if let Some(json) = write.fields.get(column.name) {
            let value = column_value(column, json).map_err(|problem| WriteError::InvalidField {
                resource: write.resource,
                id: write.id,
                field: column.name,
                problem,
            })?;
            values.push((*column, value));
        }
    }
    Ok(values)
}

fn version_of(write: &RecordWrite<'_>) -> Result<Option<DateTime<Utc>>, WriteError> {
    let field = write.resource.version_field();
    match write.fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_time(text).map(Some).map_err(|problem| WriteError::InvalidField {
            resource: write.resource,
            id: write.id,
            field: if field == "updated_at" { "updated_at" } else { "last_activity_at" },
            problem,
        }),
        Some(_) => Err(WriteError::InvalidField {
            resource: write.resource,
            id: write.id,
            field: if field == "updated_at" { "updated_at" } else { "last_activity_at" },
            problem: "must be a timestamp string".to_string(),
        }),
    }
}

/// Converts a JSON field to its column's value. `Err` names what was expected.
fn column_value(column: &Column, json: &Value) -> Result<SqlValue, String> {
    match (column.kind, json) {
        (ColumnKind::Int, Value::Null) => Ok(SqlValue::Int(None)),
        (ColumnKind::Int, Value::Number(n)) => {
            n.as_i64().map(|v| SqlValue::Int(Some(v))).ok_or_else(|| format!("must be a 64-bit integer, got {n}"))
        }
        (ColumnKind::Int, other) => Err(format!("must be an integer, got {}", json_type(other))),
        (ColumnKind::Text, Value::Null) => Ok(SqlValue::Text(None)),
        (ColumnKind::Text, Value::String(s)) => Ok(SqlValue::Text(Some(s.clone()))),
        (ColumnKind::Text, Value::Number(n)) => Ok(SqlValue::Text(Some(n.to_string()))),
        (ColumnKind::Text, Value::Bool(b)) => Ok(SqlValue::Text(Some(b.to_string()))),
        (ColumnKind::Text, other) => Err(format!("must be a string, got {}", json_type(other))),
        (ColumnKind::Bool, Value::Null) => Ok(SqlValue::Bool(None)),
        (ColumnKind::Bool, Value::Bool(b)) => Ok(SqlValue::Bool(Some(*b))),
        (ColumnKind::Bool, other) => Err(format!("must be a boolean, got {}", json_type(other))),
        (ColumnKind::Time, Value::Null) => Ok(SqlValue::Time(None)),
        (ColumnKind::Time, Value::String(s)) => parse_time(s).map(|t| SqlValue::Time(Some(t))),
        (ColumnKind::Time, other) => Err(format!("must be a timestamp string, got {}", json_type(other))),
    }
}

/// Parses an RFC 3339 timestamp, with or without fractions and offset, into UTC.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z".to_string())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(QueryableByName)]
struct RowJson {
    #[diesel(sql_type = Nullable<Text>)]
    row: Option<String>,
}

/// Reads one stored row, typed columns and bookkeeping included, as a JSON object.
///
/// Timestamps come back as RFC 3339 text in UTC and booleans as JSON booleans on both
/// backends. Returns `None` when no row exists, deleted rows included.
pub fn fetch_record(
    conn: &mut DbConnection,
    account_id: i64,
    resource: Resource,
    id: i64,
) -> Result<Option<Value>, WriteError> {
    let mut sql = Sql::new(conn.backend());
    let object_fn = match conn.backend() {
        Backend::Postgres => "json_build_object",
        Backend::Sqlite => "json_object",
    };
    sql.push(&format!("SELECT CAST({object_fn}('account_id', account_id, 'id', id"));
    for column in resource.columns() {
        sql.push(&format!(", '{}', ", column.name));
        push_column_read(&mut sql, column);
    }
    if resource == Resource::Candidates {
        sql.push(", 'merged_into_id', merged_into_id");
    }
    sql.push(", 'data', ");
    match conn.backend() {
        Backend::Postgres => sql.push("data"),
        Backend::Sqlite => sql.push("json(data)"),
    };
    for column in ["version_at", "deleted_at", "written_at"] {
        sql.push(&format!(", '{column}', "));
        sql.push_time_text(column);
    }
    sql.push(", 'last_seen_run_id', last_seen_run_id) AS TEXT) AS row FROM ");
    sql.push(resource.name());
    sql.push(" WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(" AND id = ").bind(SqlValue::Int(Some(id)));

    let Some(found) = sql.first::<RowJson>(conn)? else {
        return Ok(None);
    };
    let text = found.row.unwrap_or_default();
    let value = serde_json::from_str(&text)
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
    Ok(Some(value))
}

fn push_column_read(sql: &mut Sql, column: &Column) {
    match (column.kind, sql.backend()) {
        (ColumnKind::Time, _) => {
            sql.push_time_text(column.name);
        }
        // SQLite stores booleans as 0 and 1; json() of 'true' or 'false' makes them JSON booleans.
        (ColumnKind::Bool, Backend::Sqlite) => {
            sql.push(&format!(
                "json(CASE {0} WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE 'null' END)",
                column.name
            ));
        }
        _ => {
            sql.push(column.name);
        }
    }
}

/// Counts of a page write.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PageWrites {
    /// Records inserted or changed.
    pub written: usize,
    /// Records already stored with the same values, left as they were.
    pub unchanged: usize,
    /// Records a guard kept: the stored row is newer, or deleted.
    pub kept: usize,
}

/// Upserts complete Harvest v3 records, such as one page of a list, replacing the stored
/// JSON of each under the version and deletion guards, adding each change to `changes`. The
/// caller owns the transaction and appends what is left in `changes` before committing.
///
/// Each chunk's stored rows are read (and on PostgreSQL locked) with one query, and records
/// whose values did not change are not written, so re-reading an unchanged account writes
/// nothing but the `last_seen_run_id` stamps.
pub fn upsert_v3_records(
    conn: &mut DbConnection,
    account_id: i64,
    resource: Resource,
    records: &[Box<RawValue>],
    seen_by_run: Option<i64>,
    changes: &mut ChangeSet,
    now: DateTime<Utc>,
) -> Result<PageWrites, WriteError> {
    let mut writes = PageWrites::default();
    for chunk in in_id_order(resource, records)?.chunks(RECORDS_PER_CHUNK) {
        let parsed = parse_v3_records(resource, chunk)?;
        let chunk_writes = upsert_v3_chunk(conn, account_id, resource, parsed, seen_by_run, changes, now)?;
        // On SQLite, appending per chunk keeps the change list of a first sweep (every field
        // name of 500 new records) from growing with the page. On PostgreSQL the append locks
        // the account's sequence row until the commit. Locking it before the next chunk's rows
        // could deadlock with a webhook that holds one of those rows and waits for the
        // sequence, so there the caller appends once, after the whole page.
        if conn.backend() == Backend::Sqlite {
            changes.append(conn, now)?;
        }
        writes.written += chunk_writes.written;
        writes.unchanged += chunk_writes.unchanged;
        writes.kept += chunk_writes.kept;
    }
    Ok(writes)
}

/// Records parsed at once while a page is stored. Parsed JSON takes several times the room
/// of its text, so a 500-record page is parsed in chunks of 50. That keeps a sweep's memory
/// small and adds one query per chunk.
const RECORDS_PER_CHUNK: usize = 50;

/// Orders a page by id (keeping the order of two copies of one record). Two pages written
/// at once on PostgreSQL then lock the rows they share in the same order, which avoids a
/// deadlock between them.
fn in_id_order(resource: Resource, records: &[Box<RawValue>]) -> Result<Vec<(i64, &RawValue)>, WriteError> {
    let mut ordered = records
        .iter()
        .map(|record| {
            let id = record_id(record).ok_or_else(|| invalid_id(resource, "must be a 64-bit integer in a JSON object"))?;
            Ok((id, record.as_ref()))
        })
        .collect::<Result<Vec<_>, WriteError>>()?;
    ordered.sort_by_key(|(id, _)| *id);
    Ok(ordered)
}

fn upsert_v3_chunk(
    conn: &mut DbConnection,
    account_id: i64,
    resource: Resource,
    parsed: Vec<(i64, Map<String, Value>)>,
    seen_by_run: Option<i64>,
    changes: &mut ChangeSet,
    now: DateTime<Utc>,
) -> Result<PageWrites, WriteError> {
    let ids: Vec<i64> = parsed.iter().map(|(id, _)| *id).collect();
    let mut stored_rows = stored::load(conn, account_id, resource, &ids)?;

    let mut writes = PageWrites::default();
    let mut seen_unwritten = Vec::new();
    for (id, fields) in parsed {
        let write = RecordWrite { resource, id, fields: &fields, merge: Merge::Replace, seen_by_run };
        match upsert_over(conn, account_id, &write, stored_rows.get(&id), changes, now)? {
            Outcome::Written => {
                writes.written += 1;
                // A page may list a record twice; the second copy compares with the first.
                stored_rows.insert(id, StoredRow { data: fields, deleted: false });
            }
            Outcome::Unchanged => {
                writes.unchanged += 1;
                seen_unwritten.push(id);
            }
            Outcome::Kept => {
                writes.kept += 1;
                seen_unwritten.push(id);
            }
        }
    }

    if let Some(run_id) = seen_by_run {
        stamp_seen(conn, account_id, resource, &seen_unwritten, run_id)?;
    }
    Ok(writes)
}

/// Parses a chunk of records into their fields. Each must be a JSON object.
fn parse_v3_records(resource: Resource, chunk: &[(i64, &RawValue)]) -> Result<Vec<(i64, Map<String, Value>)>, WriteError> {
    chunk
        .iter()
        .map(|(id, record)| match serde_json::from_str(record.get()) {
            Ok(Value::Object(fields)) => Ok((*id, fields)),
            _ => Err(invalid_id(resource, "must be a 64-bit integer in a JSON object")),
        })
        .collect()
}

fn invalid_id(resource: Resource, problem: &str) -> WriteError {
    WriteError::InvalidField { resource, id: 0, field: "id", problem: problem.to_string() }
}

/// Records that a full run read records it did not write (unchanged, or kept by a guard),
/// so that the run's deletion pass does not take them for deleted.
fn stamp_seen(conn: &mut DbConnection, account_id: i64, resource: Resource, ids: &[i64], run_id: i64) -> Result<(), WriteError> {
    for chunk in ids.chunks(stored::IDS_PER_STATEMENT) {
        let mut sql = Sql::new(conn.backend());
        sql.push(&format!("UPDATE {} SET last_seen_run_id = ", resource.name())).bind(SqlValue::Int(Some(run_id)));
        sql.push(" WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
        stored::push_id_list(&mut sql, chunk);
        sql.execute(conn)?;
    }
    Ok(())
}
