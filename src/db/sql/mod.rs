//! A small SQL builder that binds values in a loop and runs on either backend.
//!
//! Diesel's typed DSL cannot express a statement whose column list depends on the payload
//! (partial webhook updates), and its multi-backend connection does not compile `ON CONFLICT`.
//! So statements are assembled here as text with bound values, and every backend difference
//! lives in the methods below.

use std::ops::Range;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::query_dsl::RunQueryDsl;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, QueryableByName, sql_query};

use super::{Backend, DbConnection};
use prepared::Prepared;

mod prepared;

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
    /// JSON document as text; stored as `jsonb` on PostgreSQL and `TEXT` on SQLite.
    Json(String),
}

/// Formats a timestamp the way SQLite columns store it: fixed-width UTC with microseconds,
/// so that text order is time order.
pub fn sqlite_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A statement being built for one backend.
pub struct Sql {
    backend: Backend,
    text: String,
    values: Vec<SqlValue>,
    /// Byte range of each value's placeholder in `text`, in the order of `values`.
    placeholders: Vec<Range<usize>>,
    reuse: bool,
}

impl Sql {
    pub fn new(backend: Backend) -> Sql {
        Sql { backend, text: String::with_capacity(256), values: Vec::new(), placeholders: Vec::new(), reuse: false }
    }

    /// Marks the statement as one whose text recurs, such as a webhook's statements, so
    /// that the database may keep it prepared (see `prepared`).
    pub fn reuse(&mut self) -> &mut Sql {
        self.reuse = true;
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: SqlValue) -> &mut Sql {
        let is_json = matches!(value, SqlValue::Json(_));
        self.values.push(value);
        let start = self.text.len();
        match self.backend {
            Backend::Postgres => self.text.push_str(&format!("${}", self.values.len())),
            Backend::Sqlite => self.text.push('?'),
        }
        self.placeholders.push(start..self.text.len());
        if is_json && self.backend == Backend::Postgres {
            self.text.push_str("::jsonb");
        }
        self
    }

    /// Appends an expression that reads timestamp column `column` as RFC 3339 text in UTC.
    pub fn push_time_text(&mut self, column: &str) -> &mut Sql {
        match self.backend {
            Backend::Postgres => self.push(&format!(
                "to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
            )),
            Backend::Sqlite => self.push(column),
        }
    }

    /// Appends an expression that reads JSON column `column` as text.
    pub fn push_json_text(&mut self, column: &str) -> &mut Sql {
        match self.backend {
            Backend::Postgres => self.push(&format!("{column}::text")),
            Backend::Sqlite => self.push(column),
        }
    }

    /// Runs the statement and returns the number of rows it touched.
    pub fn execute(self, conn: &mut DbConnection) -> QueryResult<usize> {
        let prepare = self.prepare();
        match conn {
            DbConnection::Postgres(c) if prepare => Prepared::from(self).execute(c),
            DbConnection::Sqlite(c) if prepare => Prepared::from(self).execute(c),
            DbConnection::Postgres(c) => bind_postgres(sql_query(self.text).into_boxed(), self.values).execute(c),
            DbConnection::Sqlite(c) => bind_sqlite(sql_query(self.text).into_boxed(), self.values).execute(c),
        }
    }

    /// Runs the statement and reads its rows.
    pub fn load<T>(self, conn: &mut DbConnection) -> QueryResult<Vec<T>>
    where
        T: QueryableByName<Pg> + QueryableByName<Sqlite> + 'static,
    {
        let prepare = self.prepare();
        match conn {
            DbConnection::Postgres(c) if prepare => Prepared::from(self).load(c),
            DbConnection::Sqlite(c) if prepare => Prepared::from(self).load(c),
            DbConnection::Postgres(c) => bind_postgres(sql_query(self.text).into_boxed(), self.values).load(c),
            DbConnection::Sqlite(c) => bind_sqlite(sql_query(self.text).into_boxed(), self.values).load(c),
        }
    }

    /// Returns true when the statement is to run prepared: it was marked with `reuse`, and
    /// its text is within the process's limit of prepared texts.
    fn prepare(&self) -> bool {
        self.reuse && prepared::admit(&self.text)
    }

    /// Runs the statement and reads at most one row.
    pub fn first<T>(self, conn: &mut DbConnection) -> QueryResult<Option<T>>
    where
        T: QueryableByName<Pg> + QueryableByName<Sqlite> + 'static,
    {
        Ok(self.load(conn)?.into_iter().next())
    }
}

fn bind_postgres(mut query: BoxedSqlQuery<'static, Pg, SqlQuery>, values: Vec<SqlValue>) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    for value in values {
        query = match value {
            SqlValue::Int(v) => query.bind::<Nullable<BigInt>, _>(v),
            SqlValue::Text(v) => query.bind::<Nullable<Text>, _>(v),
            SqlValue::Bool(v) => query.bind::<Nullable<Bool>, _>(v),
            SqlValue::Time(v) => query.bind::<Nullable<Timestamptz>, _>(v),
            SqlValue::Json(v) => query.bind::<Text, _>(v),
        };
    }
    query
}

fn bind_sqlite(
    mut query: BoxedSqlQuery<'static, Sqlite, SqlQuery>,
    values: Vec<SqlValue>,
) -> BoxedSqlQuery<'static, Sqlite, SqlQuery> {
    for value in values {
        query = match value {
            SqlValue::Int(v) => query.bind::<Nullable<BigInt>, _>(v),
            SqlValue::Text(v) => query.bind::<Nullable<Text>, _>(v),
            SqlValue::Bool(v) => query.bind::<Nullable<Bool>, _>(v),
            SqlValue::Time(v) => query.bind::<Nullable<Text>, _>(v.map(sqlite_time)),
            SqlValue::Json(v) => query.bind::<Text, _>(v),
        };
    }
    query
}

/// Parses a timestamp read through `push_time_text`.
pub fn parse_time_text(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// One `COUNT(*)`-style number read back from a query.
#[derive(QueryableByName, Debug)]
pub struct CountRow {
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}
