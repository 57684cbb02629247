//! The webhook delivery log: every signed request, its outcome, and its body for replay.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use serde::Serialize;

use super::sql::{Sql, SqlValue, parse_time_text};
use super::{Backend, DbConnection};

/// Outcome of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
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

    /// Returns true for outcomes that leave a delivery to be replayed.
    pub fn is_replayable(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Unsupported)
    }

    fn parse(text: &str) -> Option<Outcome> {
        [Outcome::Applied, Outcome::Duplicate, Outcome::Failed, Outcome::Ignored, Outcome::Unsupported]
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
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

/// The outcome of a handled delivery, written with its row.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    pub outcome: Outcome,
    pub error: Option<&'a str>,
    pub applied_at: Option<DateTime<Utc>>,
}

/// Stores a delivery that has been handled, and returns its id.
pub fn insert(conn: &mut DbConnection, delivery: &NewDelivery<'_>, finished: &Finished<'_>) -> diesel::QueryResult<i64> {
    let mut sql = Sql::new(conn.backend());
    sql.reuse().push(
        "INSERT INTO webhook_deliveries \
         (account_id, event_id, action, received_at, body, body_sha256, outcome, error, applied_at) VALUES (",
    );
    sql.bind(SqlValue::Int(Some(delivery.account_id))).push(", ");
    sql.bind(SqlValue::Text(delivery.event_id.map(str::to_string))).push(", ");
    sql.bind(SqlValue::Text(Some(delivery.action.to_string()))).push(", ");
    sql.bind(SqlValue::Time(Some(delivery.received_at))).push(", ");
    sql.bind(SqlValue::Text(Some(delivery.body.to_string()))).push(", ");
    sql.bind(SqlValue::Text(Some(delivery.body_sha256.to_string()))).push(", ");
    sql.bind(SqlValue::Text(Some(finished.outcome.as_str().to_string()))).push(", ");
    sql.bind(SqlValue::Text(finished.error.map(str::to_string))).push(", ");
    sql.bind(SqlValue::Time(finished.applied_at));
    sql.push(") RETURNING id");
    let row = sql.first::<IdRow>(conn)?.ok_or(diesel::result::Error::NotFound)?;
    Ok(row.id)
}

/// Records the outcome of applying a stored delivery again.
fn set_outcome(
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
    sql.reuse().push("SELECT COUNT(*) AS id FROM webhook_deliveries WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
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

/// A stored delivery as the admin API lists it, without its body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliverySummary {
    pub id: i64,
    pub account_id: i64,
    /// The `Greenhouse-Event-ID` header, when one was sent.
    pub event_id: Option<String>,
    pub action: String,
    pub received_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    /// Reason applying failed, for `failed` deliveries.
    pub error: Option<String>,
    pub applied_at: Option<DateTime<Utc>>,
    /// Times the delivery was applied: 1 on receipt, plus one per replay.
    pub attempts: i32,
    /// True once retention has removed the body; such a delivery can no longer be replayed.
    pub body_purged: bool,
}

/// Filters of a delivery listing; `None` means no filter. Results come newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub account_id: Option<i64>,
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    pub received_after: Option<DateTime<Utc>>,
    pub received_before: Option<DateTime<Utc>>,
    /// Only deliveries with a smaller id: the `next_before_id` of the previous page.
    pub before_id: Option<i64>,
    pub limit: i64,
}

#[derive(QueryableByName)]
struct DeliveryRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    account_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    event_id: Option<String>,
    #[diesel(sql_type = Text)]
    action: String,
    #[diesel(sql_type = Nullable<Text>)]
    received_at: Option<String>,
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    applied_at: Option<String>,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    body: Option<String>,
}

impl DeliveryRow {
    fn summary(&self) -> DeliverySummary {
        DeliverySummary {
            id: self.id,
            account_id: self.account_id,
            event_id: self.event_id.clone(),
            action: self.action.clone(),
            received_at: self.received_at.as_deref().and_then(parse_time_text),
            outcome: Outcome::parse(&self.outcome),
            error: self.error.clone(),
            applied_at: self.applied_at.as_deref().and_then(parse_time_text),
            attempts: self.attempts,
            body_purged: self.body.is_none(),
        }
    }
}

/// Starts a select of deliveries; `with_body` reads the body, else only whether it is kept.
fn select_deliveries(backend: Backend, with_body: bool) -> Sql {
    let mut sql = Sql::new(backend);
    sql.push("SELECT id, account_id, event_id, action, ");
    sql.push_time_text("received_at").push(" AS received_at, outcome, error, ");
    sql.push_time_text("applied_at").push(" AS applied_at, attempts, ");
    if with_body {
        sql.push("body");
    } else {
        // The listing shows only whether a body is kept, without reading candidate data.
        sql.push("CASE WHEN body IS NULL THEN NULL ELSE '' END AS body");
    }
    sql.push(" FROM webhook_deliveries");
    sql
}

/// Lists deliveries matching `filter`, newest first.
pub fn list(conn: &mut DbConnection, filter: &DeliveryFilter) -> diesel::QueryResult<Vec<DeliverySummary>> {
    let mut sql = select_deliveries(conn.backend(), false);
    sql.push(" WHERE 1 = 1");
    if let Some(account_id) = filter.account_id {
        sql.push(" AND account_id = ").bind(SqlValue::Int(Some(account_id)));
    }
    if let Some(action) = &filter.action {
        sql.push(" AND action = ").bind(SqlValue::Text(Some(action.clone())));
    }
    if let Some(outcome) = filter.outcome {
        sql.push(" AND outcome = ").bind(SqlValue::Text(Some(outcome.as_str().to_string())));
    }
    if let Some(after) = filter.received_after {
        sql.push(" AND received_at >= ").bind(SqlValue::Time(Some(after)));
    }
    if let Some(before) = filter.received_before {
        sql.push(" AND received_at < ").bind(SqlValue::Time(Some(before)));
    }
    if let Some(before_id) = filter.before_id {
        sql.push(" AND id < ").bind(SqlValue::Int(Some(before_id)));
    }
    sql.push(" ORDER BY id DESC LIMIT ").bind(SqlValue::Int(Some(filter.limit)));
    Ok(sql.load::<DeliveryRow>(conn)?.iter().map(DeliveryRow::summary).collect())
}

/// A stored delivery with its raw body, `None` once purged.
#[derive(Debug, Clone)]
pub struct StoredDelivery {
    pub summary: DeliverySummary,
    pub body: Option<String>,
}

/// Finds one delivery with its body. On PostgreSQL the row stays locked until the
/// transaction ends, so two replays of one delivery run one after the other; SQLite's
/// `BEGIN IMMEDIATE` already serializes writers.
pub fn find(conn: &mut DbConnection, delivery_id: i64, lock: bool) -> diesel::QueryResult<Option<StoredDelivery>> {
    let mut sql = select_deliveries(conn.backend(), true);
    sql.push(" WHERE id = ").bind(SqlValue::Int(Some(delivery_id)));
    if lock && conn.backend() == Backend::Postgres {
        sql.push(" FOR UPDATE");
    }
    Ok(sql.first::<DeliveryRow>(conn)?.map(|row| StoredDelivery { summary: row.summary(), body: row.body }))
}

/// Returns the ids of an account's deliveries waiting for a replay, oldest first, so that
/// replaying them keeps their arrival order.
pub fn replayable_ids(conn: &mut DbConnection, account_id: i64, limit: i64) -> diesel::QueryResult<Vec<i64>> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT id FROM webhook_deliveries WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(" AND outcome IN ('failed', 'unsupported') AND body IS NOT NULL ORDER BY id LIMIT ");
    sql.bind(SqlValue::Int(Some(limit)));
    Ok(sql.load::<IdRow>(conn)?.into_iter().map(|row| row.id).collect())
}

/// Counts an account's deliveries waiting for a replay.
pub fn count_replayable(conn: &mut DbConnection, account_id: i64) -> diesel::QueryResult<i64> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT COUNT(*) AS id FROM webhook_deliveries WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(" AND outcome IN ('failed', 'unsupported') AND body IS NOT NULL");
    Ok(sql.first::<IdRow>(conn)?.map_or(0, |row| row.id))
}

/// Records the outcome of a replay and counts the attempt.
pub fn record_replay(
    conn: &mut DbConnection,
    delivery_id: i64,
    outcome: Outcome,
    error: Option<&str>,
    applied_at: Option<DateTime<Utc>>,
) -> diesel::QueryResult<()> {
    set_outcome(conn, delivery_id, outcome, error, applied_at)?;
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE webhook_deliveries SET attempts = attempts + 1 WHERE id = ").bind(SqlValue::Int(Some(delivery_id)));
    sql.execute(conn)?;
    Ok(())
}

/// Removes delivery bodies that retention no longer keeps and returns how many.
///
/// A body is kept for `period` after the delivery was applied, or after it was received
/// when it was never applied. A failed or unsupported delivery keeps its body for replay
/// until twice `period` after receipt; once replayed successfully the first rule applies.
/// The rows stay, with outcome and error, for metrics and audit.
pub fn purge_bodies(conn: &mut DbConnection, now: DateTime<Utc>, period: chrono::Duration) -> diesel::QueryResult<usize> {
    let cutoff = now - period;
    let replay_cutoff = now - period - period;
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE webhook_deliveries SET body = NULL WHERE body IS NOT NULL AND (");
    sql.push("(outcome IN ('failed', 'unsupported') AND received_at < ").bind(SqlValue::Time(Some(replay_cutoff)));
    sql.push(") OR (outcome NOT IN ('failed', 'unsupported') AND COALESCE(applied_at, received_at) < ");
    sql.bind(SqlValue::Time(Some(cutoff))).push("))");
    sql.execute(conn)
}
