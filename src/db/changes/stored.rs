//! Change detection: reading the stored rows a write replaces, and naming the fields that differ.
//!
//! Typed columns are copies of JSON fields, so comparing a row's JSON (plus its deletion
//! state, which the deleting paths report themselves) finds every change.

use std::collections::HashMap;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use serde_json::{Map, Value};

use crate::db::sql::{Sql, SqlValue};
use crate::db::{Backend, DbConnection};
use crate::greenhouse::Resource;

/// Ids per `IN (...)` list, well under both backends' bind limits.
pub const IDS_PER_STATEMENT: usize = 500;

/// A stored row as far as change detection needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub data: Map<String, Value>,
    pub deleted: bool,
}

#[derive(QueryableByName)]
struct StoredRowText {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    data: String,
    #[diesel(sql_type = BigInt)]
    deleted: i64,
}

/// Reads the stored rows among `ids`, keyed by id. On PostgreSQL the rows stay locked until
/// the transaction ends, so no other writer changes them between this read and the write
/// that follows. SQLite's `BEGIN IMMEDIATE` already excludes other writers.
pub fn load(
    conn: &mut DbConnection,
    account_id: i64,
    resource: Resource,
    ids: &[i64],
) -> diesel::QueryResult<HashMap<i64, StoredRow>> {
    let mut rows = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let mut sql = Sql::new(conn.backend());
        if chunk.len() == 1 {
            // One id is what a webhook reads; longer lists vary in length and are rarer.
            sql.reuse();
        }
        sql.push("SELECT id, ").push_json_text("data");
        sql.push(" AS data, CAST(CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS deleted FROM ").push(resource.name());
        sql.push(" WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
        push_id_list(&mut sql, chunk);
        // Locking in id order keeps two writers of overlapping pages from deadlocking.
        sql.push(" ORDER BY id");
        if conn.backend() == Backend::Postgres {
            sql.push(" FOR UPDATE");
        }
        for row in sql.load::<StoredRowText>(conn)? {
            let data = match serde_json::from_str(&row.data) {
                Ok(Value::Object(data)) => data,
                // A stored document is always an object; anything else compares as empty, so
                // the write that follows replaces it and reports every field.
                _ => Map::new(),
            };
            rows.insert(row.id, StoredRow { data, deleted: row.deleted != 0 });
        }
    }
    Ok(rows)
}

/// Appends ` AND id IN (...)` for `ids`, which must not be empty.
pub fn push_id_list(sql: &mut Sql, ids: &[i64]) {
    sql.push(" AND id IN (");
    for (n, id) in ids.iter().enumerate() {
        if n > 0 {
            sql.push(", ");
        }
        sql.bind(SqlValue::Int(Some(*id)));
    }
    sql.push(")");
}

/// Names, sorted, the fields of a partial write that would change the stored JSON.
///
/// A partial write merges `incoming` into `stored` at top level and never removes a key, so
/// only its own fields can differ. Comparing them directly spares a copy of the stored row.
pub fn patched_fields(stored: &Map<String, Value>, incoming: &Map<String, Value>) -> Vec<String> {
    let mut changed: Vec<String> = incoming
        .iter()
        .filter(|(key, value)| stored.get(*key) != Some(*value))
        .map(|(key, _)| key.clone())
        .collect();
    changed.sort();
    changed
}

/// Names, sorted, the top-level fields whose value differs between `before` and `after`,
/// including fields present in only one of them.
pub fn changed_fields(before: &Map<String, Value>, after: &Map<String, Value>) -> Vec<String> {
    let mut changed: Vec<String> = after
        .iter()
        .filter(|(key, value)| before.get(*key) != Some(*value))
        .map(|(key, _)| key.clone())
        .collect();
    changed.extend(before.keys().filter(|key| !after.contains_key(*key)).cloned());
    changed.sort();
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn equal_documents_change_nothing() {
        let row = object(json!({"id": 1, "name": "A", "tags": [1, 2]}));
        assert!(changed_fields(&row, &row.clone()).is_empty());
    }

    #[test]
    fn changed_added_and_removed_fields_are_named() {
        let before = object(json!({"id": 1, "name": "A", "gone": true}));
        let after = object(json!({"id": 1, "name": "B", "new": null}));
        assert_eq!(changed_fields(&before, &after), vec!["gone", "name", "new"]);
    }

    #[test]
    fn partial_write_names_only_its_differing_fields() {
        let stored = object(json!({"id": 1, "name": "A", "title": "T"}));
        let incoming = object(json!({"title": null, "name": "A", "new": 2}));
        assert_eq!(patched_fields(&stored, &incoming), vec!["new", "title"]);
        assert!(patched_fields(&stored, &object(json!({"name": "A"}))).is_empty());
    }

    #[test]
    fn nested_difference_names_top_level_field() {
        let before = object(json!({"candidate": {"id": 1, "first_name": "A"}}));
        let after = object(json!({"candidate": {"id": 1, "first_name": "B"}}));
        assert_eq!(changed_fields(&before, &after), vec!["candidate"]);
    }
}
