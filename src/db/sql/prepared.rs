//! Statements that PostgreSQL keeps prepared on each connection.
//!
//! A statement sent with its values and no name is parsed and planned again every time.
//! For the short statements of a webhook delivery that is a large share of PostgreSQL's
//! work: pgbench ran the delivery's transaction 1,580 times a second prepared and 1,004
//! times a second unnamed (docs/BENCHMARKS.md). Diesel keeps a statement prepared on its
//! connection, keyed by the statement's text, when the query allows it. `sql_query` never
//! allows it, because its text could be anything. `Prepared` does, for statements built
//! with `Sql::reuse`.
//!
//! A prepared statement stays on its connection, on both sides, until the connection
//! closes, and some reused texts depend on the payload (the columns a webhook names). So
//! the process prepares at most `MAX_TEXTS` different texts; any text after that runs
//! unnamed, as before.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::{Mutex, OnceLock};

use diesel::QueryResult;
use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDsl;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz, Untyped};

use super::{Sql, SqlValue};

/// Different statement texts the process lets PostgreSQL keep prepared. A connection keeps
/// one prepared statement per text it has run, each an estimated few KiB on the server.
const MAX_TEXTS: usize = 128;

/// Returns true when `text` may be prepared: it was admitted before, or there is room.
pub(super) fn admit(text: &str) -> bool {
    static ADMITTED: OnceLock<Mutex<HashSet<u64>>> = OnceLock::new();

    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let key = hasher.finish();

    let admitted = ADMITTED.get_or_init(|| Mutex::new(HashSet::new()));
    // The set is only ever extended, so a panic elsewhere cannot leave it inconsistent.
    let mut admitted = admitted
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if admitted.contains(&key) {
        return true;
    }
    admitted.len() < MAX_TEXTS && admitted.insert(key)
}

/// A PostgreSQL statement that Diesel may cache, with the values to bind.
pub(super) struct Prepared {
    text: String,
    values: Vec<SqlValue>,
    placeholders: Vec<Range<usize>>,
}

impl From<Sql> for Prepared {
    fn from(sql: Sql) -> Prepared {
        Prepared {
            text: sql.text,
            values: sql.values,
            placeholders: sql.placeholders,
        }
    }
}

impl QueryFragment<Pg> for Prepared {
    /// Writes the text with Diesel's own placeholders in place of ours. Both number the
    /// values from `$1` in order, so the text comes out the same.
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut written = 0;
        for (value, placeholder) in self.values.iter().zip(&self.placeholders) {
            out.push_sql(&self.text[written..placeholder.start]);
            match value {
                SqlValue::Int(v) => out.push_bind_param::<Nullable<BigInt>, _>(v)?,
                SqlValue::Text(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                SqlValue::Bool(v) => out.push_bind_param::<Nullable<Bool>, _>(v)?,
                SqlValue::Time(v) => out.push_bind_param::<Nullable<Timestamptz>, _>(v)?,
                SqlValue::Json(v) => out.push_bind_param::<Text, _>(v)?,
            }
            written = placeholder.end;
        }
        out.push_sql(&self.text[written..]);
        Ok(())
    }
}

/// No static id: Diesel then keys its statement cache by the text and the value types.
impl QueryId for Prepared {
    type QueryId = ();

    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared {
    type SqlType = Untyped;
}

impl RunQueryDsl<PgConnection> for Prepared {}
