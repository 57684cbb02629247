//! The webhook delivery log: every signed request, its outcome, and its body for replay.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use serde::Serialize;

use super::DbConnection;
use super::sql::{Sql, SqlValue};

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its changes were written.
    Applied,
    /// A retry of a delivery already handled (same event id and body); nothing written.
    Duplicate,
    /// Applying failed; the body is kept and the error recorded, so it can be replayed.
    Failed,
    /// A documented action with nothing to store, such as `ping`.
    Ignored,
    /// An action this version does not know; kept for replay after an upgrade.
    Unsupported,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Failed => "failed",
            Outcome::Ignored => "ignored",
            Outcome::Unsupported => "unsupported",
        }
    }
}

/// A verified delivery about to be stored.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub account_id: i64,
    pub event_id: Option<&'a str>,
    pub action: &'a str,
    pub received_at: DateTime<Utc>,
    pub body: &'a str,
    pub body_sha256: &'a str,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Stores a delivery with outcome `outcome` and returns its id.
pub fn insert(conn: &mut DbConnection, delivery: &NewDelivery<'_>, outcome: Outcome) -> diesel::QueryResult<i64> {
    let mut sql = Sql::new(conn.backend());
    sql.push("INSERT INTO webhook_deliveries (account_id, event_id, action, received_at, body, body_sha256, outcome) VALUES (");
    sql.bind(SqlValue::Int(Some(delivery.account_id))).push(", ");
    sql.bind(SqlValue::Text(delivery.event_id.map(str::to_string))).push(", ");
    sql.bind(SqlValue::Text(Some(delivery.action.to_string()))).push(", ");
    sql.bind(SqlValue::Time(Some(delivery.received_at))).push(", ");
    sql.bind(SqlValue::Text(Some(delivery.body.to_string()))).push(", ");
    sql.bind(SqlValue::Text(Some(delivery.body_sha256.to_string()))).push(", ");
    sql.bind(SqlValue::Text(Some(outcome.as_str().to_string())));
    sql.push(") RETURNING id");
    let row = sql.first::<IdRow>(conn)?.ok_or(diesel::result::Error::NotFound)?;
    Ok(row.id)
}

/// Records the outcome of applying a delivery.
pub fn set_outcome(
    conn: &mut DbConnection,
    delivery_id: i64,
    outcome: Outcome,
    error: Option<&str>,
    applied_at: Option<DateTime<Utc>>,
) -> diesel::QueryResult<()> {
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE webhook_deliveries SET outcome = ").bind(SqlValue::Text(Some(outcome.as_str().to_string())));
    sql.push(", error = ").bind(SqlValue::Text(error.map(str::to_string)));
    sql.push(", applied_at = ").bind(SqlValue::Time(applied_at));
    sql.push(" WHERE id = ").bind(SqlValue::Int(Some(delivery_id)));
    sql.execute(conn)?;
    Ok(())
}

/// Returns true when a delivery with this event id and the same body was already handled.
///
/// Whether Greenhouse reuses the event id on retries is undocumented, so the body hash must
/// match too. A new event id with the same body is applied again, which the guarded upserts
/// make harmless; de-duplicating on the body alone would wrongly drop a real change back to
/// an earlier state.
pub fn is_retry_of_handled(
    conn: &mut DbConnection,
    account_id: i64,
    event_id: &str,
    body_sha256: &str,
) -> diesel::QueryResult<bool> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT COUNT(*) AS id FROM webhook_deliveries WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(" AND event_id = ").bind(SqlValue::Text(Some(event_id.to_string())));
    sql.push(" AND body_sha256 = ").bind(SqlValue::Text(Some(body_sha256.to_string())));
    sql.push(" AND outcome IN ('applied', 'ignored')");
    let row = sql.first::<IdRow>(conn)?;
    Ok(row.is_some_and(|r| r.id > 0))
}

/// Counts the deliveries of an account, for tests and status pages.
pub fn count_for_account(conn: &mut DbConnection, account_id: i64) -> diesel::QueryResult<i64> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT COUNT(*) AS id FROM webhook_deliveries WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    Ok(sql.first::<IdRow>(conn)?.map_or(0, |r| r.id))
}
