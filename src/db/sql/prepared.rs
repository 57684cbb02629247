//! Statements that the database keeps prepared on each connection.
//!
//! A statement sent with its values and no name is parsed and planned again every time.
//! For the short statements of a webhook delivery that is a large share of the work. pgbench
//! ran the delivery's transaction 1,580 times a second prepared and 1,004 times a second
//! unnamed. SQLite's parser was the largest item in a profile of the SQLite writer thread
//! (docs/BENCHMARKS.md). Diesel keeps a statement prepared on its connection,
//! keyed by the statement's text, when the query allows it. `sql_query` never allows it,
//! because its text could be anything. `Prepared` does, for statements built with
//! `Sql::reuse`.
//!
//! A prepared statement stays on its connection until the connection closes, and some
//! reused texts depend on the payload (the columns a webhook names). So the process
//! prepares at most `MAX_TEXTS` different texts; any text after that runs unnamed.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDsl;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Nullable, Text, Timestamptz, Untyped};
use diesel::sqlite::{Sqlite, SqliteConnection};

use super::{Sql, SqlValue, sqlite_time};

/// Different statement texts the process lets the database keep prepared. A connection
/// keeps one prepared statement per text it has run, an estimated few KiB each.
const MAX_TEXTS: usize = 128;

/// Returns true when `text` may be prepared: it was admitted before, or there is room.
pub(super) fn admit(text: &str) -> bool {
    static ADMITTED: OnceLock<Mutex<HashSet<u64>>> = OnceLock::new();

    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let key = hasher.finish();

    let admitted = ADMITTED.get_or_init(|| Mutex::new(HashSet::new()));
    // The set is only ever extended, so a panic elsewhere cannot leave it inconsistent.
    let mut admitted = admitted.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if admitted.contains(&key) {
        return true;
    }
    admitted.len() < MAX_TEXTS && admitted.insert(key)
}

/// A statement that Diesel may cache, with the values to bind.
pub(super) struct Prepared {
    text: String,
    values: Vec<SqlValue>,
    placeholders: Vec<Range<usize>>,
}

impl From<Sql> for Prepared {
    /// Takes the statement's text and values. SQLite stores times as text, so they are
    /// formatted here, as `bind_sqlite` formats them for an unnamed statement.
    fn from(sql: Sql) -> Prepared {
        let values = match sql.backend {
            super::Backend::Postgres => sql.values,
            super::Backend::Sqlite => sql.values.into_iter().map(time_as_text).collect(),
        };
        Prepared { text: sql.text, values, placeholders: sql.placeholders }
    }
}

fn time_as_text(value: SqlValue) -> SqlValue {
    match value {
        SqlValue::Time(time) => SqlValue::Text(time.map(sqlite_time)),
        other => other,
    }
}

impl Prepared {
    /// Writes the text with Diesel's own placeholders in place of ours. Both number the
    /// values in order (`$1` on PostgreSQL, `?` on SQLite), so the text comes out the same.
    /// `bind_time` binds a time value, which the two backends store differently.
    fn walk<'b, DB>(
        &'b self,
        mut out: AstPass<'_, 'b, DB>,
        bind_time: impl Fn(&mut AstPass<'_, 'b, DB>, &'b Option<DateTime<Utc>>) -> QueryResult<()>,
    ) -> QueryResult<()>
    where
        DB: Backend + HasSqlType<BigInt> + HasSqlType<Text> + HasSqlType<Bool>,
        Option<i64>: ToSql<Nullable<BigInt>, DB>,
        Option<String>: ToSql<Nullable<Text>, DB>,
        Option<bool>: ToSql<Nullable<Bool>, DB>,
        String: ToSql<Text, DB>,
    {
        let mut written = 0;
        for (value, placeholder) in self.values.iter().zip(&self.placeholders) {
            out.push_sql(&self.text[written..placeholder.start]);
            match value {
                SqlValue::Int(v) => out.push_bind_param::<Nullable<BigInt>, _>(v)?,
                SqlValue::Text(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                SqlValue::Bool(v) => out.push_bind_param::<Nullable<Bool>, _>(v)?,
                SqlValue::Time(v) => bind_time(&mut out, v)?,
                SqlValue::Json(v) => out.push_bind_param::<Text, _>(v)?,
            }
            written = placeholder.end;
        }
        out.push_sql(&self.text[written..]);
        Ok(())
    }
}

impl QueryFragment<Pg> for Prepared {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.walk(out, |out, time| out.push_bind_param::<Nullable<Timestamptz>, _>(time))
    }
}

impl QueryFragment<Sqlite> for Prepared {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        // `from` turned every time into text, so none is left to bind here.
        self.walk(out, |_, _| Err(diesel::result::Error::QueryBuilderError("a time value was not formatted for SQLite".into())))
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

impl RunQueryDsl<SqliteConnection> for Prepared {}
