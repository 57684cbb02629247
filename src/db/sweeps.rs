//! Sweep bookkeeping: runs, their cursor chains and checkpoints, watermarks, leases.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use serde::Serialize;

use super::{Backend, DbConnection};
use super::changes::stored::push_id_list;
use super::changes::{ChangeSet, Kind, Source};
use super::sql::{Sql, SqlValue, parse_time_text};
use crate::greenhouse::Resource;

type QueryResult<T> = diesel::QueryResult<T>;

fn int(value: i64) -> SqlValue {
    SqlValue::Int(Some(value))
}

fn text(value: &str) -> SqlValue {
    SqlValue::Text(Some(value.to_string()))
}

fn time(value: DateTime<Utc>) -> SqlValue {
    SqlValue::Time(Some(value))
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Creates a run in status `running` and returns its id.
pub fn create_run(conn: &mut DbConnection, account_id: i64, mode: &str, started_at: DateTime<Utc>) -> QueryResult<i64> {
    let mut sql = Sql::new(conn.backend());
    sql.push("INSERT INTO sweep_runs (account_id, mode, status, started_at, window_end) VALUES (");
    sql.bind(int(account_id)).push(", ").bind(text(mode)).push(", 'running', ");
    sql.bind(time(started_at)).push(", ").bind(time(started_at)).push(") RETURNING id");
    Ok(sql.first::<IdRow>(conn)?.ok_or(diesel::result::Error::NotFound)?.id)
}

/// A chain to read: one resource, optionally bounded by `created_at` and `updated_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainPlan {
    pub resource: Resource,
    pub created_from: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub updated_from: Option<DateTime<Utc>>,
    pub updated_to: Option<DateTime<Utc>>,
}

/// Status of one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainStatus {
    Pending,
    Done,
    /// Harvest responded with 403 for the resource.
    Skipped,
    Failed,
}

impl ChainStatus {
    fn as_str(self) -> &'static str {
        match self {
            ChainStatus::Pending => "pending",
            ChainStatus::Done => "done",
            ChainStatus::Skipped => "skipped",
            ChainStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> ChainStatus {
        match text {
            "done" => ChainStatus::Done,
            "skipped" => ChainStatus::Skipped,
            "failed" => ChainStatus::Failed,
            _ => ChainStatus::Pending,
        }
    }
}

/// A stored chain with its checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    pub position: i32,
    #[serde(flatten)]
    pub plan: ChainPlan,
    #[serde(skip)]
    pub next_url: Option<String>,
    pub status: ChainStatus,
    pub pages: i64,
    pub records: i64,
    pub error: Option<String>,
}

/// Stores the chains of a new run, in order of position.
pub fn add_chains(conn: &mut DbConnection, run_id: i64, plans: &[ChainPlan]) -> QueryResult<()> {
    add_chains_from(conn, run_id, 0, plans)
}

/// Stores more chains of a run, numbered from position `first`.
pub fn add_chains_from(conn: &mut DbConnection, run_id: i64, first: usize, plans: &[ChainPlan]) -> QueryResult<()> {
    for (offset, plan) in plans.iter().enumerate() {
        let position = first + offset;
        let mut sql = Sql::new(conn.backend());
        sql.push(
            "INSERT INTO sweep_chains (run_id, position, resource, created_from, created_before, \
             updated_from, updated_to, status) VALUES (",
        );
        sql.bind(int(run_id)).push(", ").bind(SqlValue::Int(Some(position as i64))).push(", ");
        sql.bind(text(plan.resource.name())).push(", ");
        sql.bind(SqlValue::Time(plan.created_from)).push(", ").bind(SqlValue::Time(plan.created_before)).push(", ");
        sql.bind(SqlValue::Time(plan.updated_from)).push(", ").bind(SqlValue::Time(plan.updated_to));
        sql.push(", 'pending')");
        sql.execute(conn)?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct ChainRow {
    #[diesel(sql_type = Integer)]
    position: i32,
    #[diesel(sql_type = Text)]
    resource: String,
    #[diesel(sql_type = Nullable<Text>)]
    created_from: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    created_before: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    updated_from: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    updated_to: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    next_url: Option<String>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    pages: i64,
    #[diesel(sql_type = BigInt)]
    records: i64,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
}

/// Loads the chains of a run in order. Chains naming a resource this version does not know
/// are left out.
pub fn load_chains(conn: &mut DbConnection, run_id: i64) -> QueryResult<Vec<Chain>> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT position, resource, ");
    for column in ["created_from", "created_before", "updated_from", "updated_to"] {
        sql.push_time_text(column).push(&format!(" AS {column}, "));
    }
    sql.push("next_url, status, pages, records, error FROM sweep_chains WHERE run_id = ").bind(int(run_id));
    sql.push(" ORDER BY position");

    let rows = sql.load::<ChainRow>(conn)?;
    let parse = |value: &Option<String>| value.as_deref().and_then(parse_time_text);
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let resource = row.resource.parse::<Resource>().ok()?;
            Some(Chain {
                position: row.position,
                plan: ChainPlan {
                    resource,
                    created_from: parse(&row.created_from),
                    created_before: parse(&row.created_before),
                    updated_from: parse(&row.updated_from),
                    updated_to: parse(&row.updated_to),
                },
                next_url: row.next_url,
                status: ChainStatus::parse(&row.status),
                pages: row.pages,
                records: row.records,
                error: row.error,
            })
        })
        .collect())
}

/// Checkpoints a chain after a page was stored: the next URL to request (`None` when the
/// chain is done) and the counts. Runs in the page's transaction, so a resumed chain never
/// skips a stored page nor loses one.
pub fn checkpoint_page(
    conn: &mut DbConnection,
    run_id: i64,
    position: i32,
    next_url: Option<&str>,
    records: usize,
) -> QueryResult<()> {
    let status = if next_url.is_some() { ChainStatus::Pending } else { ChainStatus::Done };
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE sweep_chains SET next_url = ").bind(SqlValue::Text(next_url.map(str::to_string)));
    sql.push(", status = ").bind(text(status.as_str()));
    sql.push(", pages = pages + 1, records = records + ").bind(int(records as i64));
    sql.push(" WHERE run_id = ").bind(int(run_id)).push(" AND position = ").bind(SqlValue::Int(Some(position.into())));
    sql.execute(conn)?;

    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE sweep_runs SET pages = pages + 1, records = records + ").bind(int(records as i64));
    sql.push(" WHERE id = ").bind(int(run_id));
    sql.execute(conn)?;
    Ok(())
}

/// Marks a chain skipped or failed, with the error that stopped it.
pub fn set_chain_status(
    conn: &mut DbConnection,
    run_id: i64,
    position: i32,
    status: ChainStatus,
    error: Option<&str>,
) -> QueryResult<()> {
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE sweep_chains SET status = ").bind(text(status.as_str()));
    sql.push(", error = ").bind(SqlValue::Text(error.map(str::to_string)));
    sql.push(" WHERE run_id = ").bind(int(run_id)).push(" AND position = ").bind(SqlValue::Int(Some(position.into())));
    sql.execute(conn)?;
    Ok(())
}

/// Records how a run ended.
pub fn finish_run(
    conn: &mut DbConnection,
    run_id: i64,
    status: &str,
    deleted: usize,
    notes: &[String],
    error: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let notes = serde_json::to_string(notes).unwrap_or_else(|_| "[]".to_string());
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE sweep_runs SET status = ").bind(text(status));
    sql.push(", finished_at = ").bind(time(now));
    sql.push(", deleted = ").bind(int(deleted as i64));
    sql.push(", notes = ").bind(SqlValue::Text(Some(notes)));
    sql.push(", error = ").bind(SqlValue::Text(error.map(str::to_string)));
    sql.push(" WHERE id = ").bind(int(run_id));
    sql.execute(conn)?;
    Ok(())
}

/// A run as shown in status reports.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: i64,
    pub account_id: i64,
    pub mode: String,
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub pages: i64,
    pub records: i64,
    pub deleted: i64,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

#[derive(QueryableByName)]
struct RunRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    account_id: i64,
    #[diesel(sql_type = Text)]
    mode: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    started_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    finished_at: Option<String>,
    #[diesel(sql_type = BigInt)]
    pages: i64,
    #[diesel(sql_type = BigInt)]
    records: i64,
    #[diesel(sql_type = BigInt)]
    deleted: i64,
    #[diesel(sql_type = Text)]
    notes: String,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
}

impl From<RunRow> for Run {
    fn from(row: RunRow) -> Run {
        Run {
            id: row.id,
            account_id: row.account_id,
            mode: row.mode,
            status: row.status,
            started_at: row.started_at.as_deref().and_then(parse_time_text),
            finished_at: row.finished_at.as_deref().and_then(parse_time_text),
            pages: row.pages,
            records: row.records,
            deleted: row.deleted,
            notes: serde_json::from_str(&row.notes).unwrap_or_default(),
            error: row.error,
        }
    }
}

fn select_runs(conn: &DbConnection) -> Sql {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT id, account_id, mode, status, ");
    sql.push_time_text("started_at").push(" AS started_at, ");
    sql.push_time_text("finished_at").push(" AS finished_at, ");
    sql.push("pages, records, deleted, notes, error FROM sweep_runs");
    sql
}

/// Finds one run by id.
pub fn find_run(conn: &mut DbConnection, run_id: i64) -> QueryResult<Option<Run>> {
    let mut sql = select_runs(conn);
    sql.push(" WHERE id = ").bind(int(run_id));
    Ok(sql.first::<RunRow>(conn)?.map(Run::from))
}

/// Finds the account's unfinished run, if any: one still running, or one whose process died.
pub fn find_unfinished_run(conn: &mut DbConnection, account_id: i64) -> QueryResult<Option<Run>> {
    let mut sql = select_runs(conn);
    sql.push(" WHERE account_id = ").bind(int(account_id));
    sql.push(" AND status = 'running' ORDER BY id DESC");
    Ok(sql.first::<RunRow>(conn)?.map(Run::from))
}

/// Lists the account's most recent runs, newest first.
pub fn recent_runs(conn: &mut DbConnection, account_id: i64, limit: i64) -> QueryResult<Vec<Run>> {
    let mut sql = select_runs(conn);
    sql.push(" WHERE account_id = ").bind(int(account_id));
    sql.push(" ORDER BY id DESC LIMIT ").bind(int(limit));
    Ok(sql.load::<RunRow>(conn)?.into_iter().map(Run::from).collect())
}

/// Rows marked deleted per transaction of the deletion pass, which bounds its memory.
const DELETION_CHUNK: i64 = 1000;

/// Maximum pause between two chunks of the deletion pass on SQLite.
const MAX_DELETION_PAUSE: Duration = Duration::from_millis(100);

/// The unseen-row conditions of the deletion pass.
#[derive(Clone, Copy)]
struct Unseen {
    account_id: i64,
    resource: Resource,
    run_id: i64,
    run_started_at: DateTime<Utc>,
}

impl Unseen {
    fn push_where(&self, sql: &mut Sql) {
        sql.push(" WHERE account_id = ").bind(int(self.account_id));
        sql.push(" AND deleted_at IS NULL AND (last_seen_run_id IS NULL OR last_seen_run_id <> ").bind(int(self.run_id));
        sql.push(") AND written_at < ").bind(time(self.run_started_at));
    }
}

/// Marks deleted the account's live rows of `resource` that the full run did not read and
/// that nothing wrote since the run began, appending a `deleted` change for each. Returns
/// how many rows it marked.
///
/// The `written_at` condition protects records that a webhook created or changed during the
/// run: a page fetched before that write does not list them. Rows go in chunks, each in a
/// transaction of its own with its changes, so the pass never keeps the whole table's ids in memory.
///
/// Each chunk's ids are read before its write transaction, so the scan does not hold
/// SQLite's write lock. On SQLite the pass then pauses as long as the chunk's transaction
/// took. A writer that waits for the lock polls with growing sleeps, so a pass that began
/// its next chunk at once kept webhook deliveries waiting for up to 850 ms in a soak
/// benchmark.
pub fn mark_unseen_deleted(
    conn: &mut DbConnection,
    account_id: i64,
    resource: Resource,
    run_id: i64,
    run_started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let unseen = Unseen { account_id, resource, run_id, run_started_at };
    let mut deleted = 0;
    let mut after_id = None;
    loop {
        let ids = unseen_ids(conn, unseen, after_id)?;
        let Some(&last_id) = ids.last() else {
            return Ok(deleted);
        };

        let started = Instant::now();
        let chunk = conn.write_transaction(|conn| mark_chunk_deleted(conn, unseen, &ids, now));
        crate::changes::publish_pending();
        deleted += chunk?;
        after_id = Some(last_id);

        // NOTE: only this pass yields the lock. A sweep's page stores also run back to back when
        // Harvest's rate limit is high, and a fair queue for every SQLite write transaction of
        // the process would cover them as well.
        if conn.backend() == Backend::Sqlite {
            std::thread::sleep(started.elapsed().min(MAX_DELETION_PAUSE));
        }
    }
}

/// Reads the ids of up to `DELETION_CHUNK` unseen rows above `after_id`, in id order.
///
/// Each chunk starts after the previous one's last id. Starting from the first id every
/// time would read the rows already passed again.
fn unseen_ids(conn: &mut DbConnection, unseen: Unseen, after_id: Option<i64>) -> QueryResult<Vec<i64>> {
    let mut select = Sql::new(conn.backend());
    select.push(&format!("SELECT id FROM {}", unseen.resource.name()));
    unseen.push_where(&mut select);
    if let Some(after_id) = after_id {
        select.push(" AND id > ").bind(int(after_id));
    }
    select.push(" ORDER BY id LIMIT ").bind(int(DELETION_CHUNK));
    Ok(select.load::<IdRow>(conn)?.into_iter().map(|row| row.id).collect())
}

/// Marks the rows of `ids` deleted that are still unseen, appends their changes, and
/// returns how many it marked. The conditions are checked again because a webhook may have
/// written one of the rows since its id was read, and such a row stays live.
fn mark_chunk_deleted(conn: &mut DbConnection, unseen: Unseen, ids: &[i64], now: DateTime<Utc>) -> QueryResult<usize> {
    let mut update = Sql::new(conn.backend());
    update.push(&format!("UPDATE {} SET deleted_at = ", unseen.resource.name())).bind(time(now));
    update.push(", written_at = ").bind(time(now));
    unseen.push_where(&mut update);
    push_id_list(&mut update, ids);
    update.push(" RETURNING id");
    let deleted = update.load::<IdRow>(conn)?;

    let mut changes = ChangeSet::new(unseen.account_id, Source::Sweep);
    for row in &deleted {
        changes.push(unseen.resource, row.id, Kind::Deleted, vec!["deleted_at".to_string()]);
    }
    changes.append(conn, now)?;
    Ok(deleted.len())
}

/// Counts the account's live rows of `resource`.
pub fn count_live(conn: &mut DbConnection, account_id: i64, resource: Resource) -> QueryResult<i64> {
    let mut sql = Sql::new(conn.backend());
    sql.push(&format!("SELECT COUNT(*) AS id FROM {} WHERE account_id = ", resource.name())).bind(int(account_id));
    sql.push(" AND deleted_at IS NULL");
    Ok(sql.first::<IdRow>(conn)?.map_or(0, |row| row.id))
}

/// Per-resource sync position of an account.
#[derive(Debug, Clone, Serialize)]
pub struct SyncState {
    pub resource: String,
    pub watermark: Option<DateTime<Utc>>,
    pub last_run_id: Option<i64>,
    pub last_completed_at: Option<DateTime<Utc>>,
    pub last_full_completed_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct SyncStateRow {
    #[diesel(sql_type = Text)]
    resource: String,
    #[diesel(sql_type = Nullable<Text>)]
    watermark: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last_run_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    last_completed_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_full_completed_at: Option<String>,
}

/// Reads the account's sync position for every resource it has one for.
pub fn sync_states(conn: &mut DbConnection, account_id: i64) -> QueryResult<Vec<SyncState>> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT resource, ");
    sql.push_time_text("watermark").push(" AS watermark, last_run_id, ");
    sql.push_time_text("last_completed_at").push(" AS last_completed_at, ");
    sql.push_time_text("last_full_completed_at").push(" AS last_full_completed_at FROM sync_state WHERE account_id = ");
    sql.bind(int(account_id)).push(" ORDER BY resource");
    let parse = |value: Option<String>| value.as_deref().and_then(parse_time_text);
    Ok(sql
        .load::<SyncStateRow>(conn)?
        .into_iter()
        .map(|row| SyncState {
            resource: row.resource,
            watermark: parse(row.watermark),
            last_run_id: row.last_run_id,
            last_completed_at: parse(row.last_completed_at),
            last_full_completed_at: parse(row.last_full_completed_at),
        })
        .collect())
}

/// Records that a run completed `resource`: the watermark moves to the run's start.
pub fn advance_watermark(
    conn: &mut DbConnection,
    account_id: i64,
    resource: Resource,
    run_id: i64,
    watermark: DateTime<Utc>,
    full: bool,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let full_completed = if full { Some(now) } else { None };
    let mut sql = Sql::new(conn.backend());
    sql.push("INSERT INTO sync_state (account_id, resource, watermark, last_run_id, last_completed_at, last_full_completed_at) VALUES (");
    sql.bind(int(account_id)).push(", ").bind(text(resource.name())).push(", ").bind(time(watermark)).push(", ");
    sql.bind(int(run_id)).push(", ").bind(time(now)).push(", ").bind(SqlValue::Time(full_completed));
    sql.push(
        ") ON CONFLICT (account_id, resource) DO UPDATE SET watermark = excluded.watermark, \
         last_run_id = excluded.last_run_id, last_completed_at = excluded.last_completed_at, \
         last_full_completed_at = COALESCE(excluded.last_full_completed_at, sync_state.last_full_completed_at)",
    );
    sql.execute(conn)?;
    Ok(())
}

/// Takes or renews the account's sweep lease for `owner` until `expires_at`. Returns false
/// while another owner holds an unexpired lease.
pub fn acquire_lease(
    conn: &mut DbConnection,
    account_id: i64,
    owner: &str,
    run_id: Option<i64>,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let mut sql = Sql::new(conn.backend());
    sql.push("INSERT INTO sweep_leases (account_id, owner, run_id, expires_at) VALUES (");
    sql.bind(int(account_id)).push(", ").bind(text(owner)).push(", ").bind(SqlValue::Int(run_id)).push(", ").bind(time(expires_at));
    sql.push(
        ") ON CONFLICT (account_id) DO UPDATE SET owner = excluded.owner, run_id = excluded.run_id, \
         expires_at = excluded.expires_at WHERE sweep_leases.owner = excluded.owner OR sweep_leases.expires_at < ",
    );
    sql.bind(time(now));
    Ok(sql.execute(conn)? == 1)
}

/// Gives up the lease if `owner` holds it.
pub fn release_lease(conn: &mut DbConnection, account_id: i64, owner: &str) -> QueryResult<()> {
    let mut sql = Sql::new(conn.backend());
    sql.push("DELETE FROM sweep_leases WHERE account_id = ").bind(int(account_id));
    sql.push(" AND owner = ").bind(text(owner));
    sql.execute(conn)?;
    Ok(())
}

/// Queues a record for a targeted refresh, unless the account's refresh is turned off.
/// Queuing it again keeps one entry.
pub fn queue_refresh(conn: &mut DbConnection, account_id: i64, resource: Resource, id: i64, now: DateTime<Utc>) -> QueryResult<()> {
    let mut sql = Sql::new(conn.backend());
    sql.reuse().push("INSERT INTO refresh_queue (account_id, resource, id, queued_at) SELECT ");
    sql.bind(int(account_id)).push(", ").bind(text(resource.name())).push(", ").bind(int(id)).push(", ").bind(time(now));
    // Accounts with the refresh turned off queue nothing. The WHERE clause also lets SQLite
    // read the ON CONFLICT below as part of the INSERT rather than of the SELECT.
    sql.push(" WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ").bind(int(account_id)).push(" AND refresh_enabled)");
    sql.push(" ON CONFLICT (account_id, resource, id) DO NOTHING");
    sql.execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct QueuedRow {
    #[diesel(sql_type = Text)]
    resource: String,
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Returns up to `limit` queued records of the account queued at or before `before`,
/// oldest first.
pub fn queued_refreshes(
    conn: &mut DbConnection,
    account_id: i64,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<(Resource, i64)>> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT resource, id FROM refresh_queue WHERE account_id = ").bind(int(account_id));
    sql.push(" AND queued_at <= ").bind(time(before));
    sql.push(" ORDER BY queued_at, resource, id LIMIT ").bind(int(limit));
    Ok(sql
        .load::<QueuedRow>(conn)?
        .into_iter()
        .filter_map(|row| row.resource.parse::<Resource>().ok().map(|resource| (resource, row.id)))
        .collect())
}

/// Removes refreshed records from the queue.
pub fn dequeue_refreshes(conn: &mut DbConnection, account_id: i64, resource: Resource, ids: &[i64]) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(conn.backend());
    sql.push("DELETE FROM refresh_queue WHERE account_id = ").bind(int(account_id));
    sql.push(" AND resource = ").bind(text(resource.name())).push(" AND id IN (");
    for (n, id) in ids.iter().enumerate() {
        if n > 0 {
            sql.push(", ");
        }
        sql.bind(int(*id));
    }
    sql.push(")");
    sql.execute(conn)?;
    Ok(())
}

/// Counts queued refreshes of all accounts, for metrics.
pub fn refresh_queue_depth(conn: &mut DbConnection) -> QueryResult<i64> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT COUNT(*) AS id FROM refresh_queue");
    Ok(sql.first::<IdRow>(conn)?.map_or(0, |row| row.id))
}

#[derive(QueryableByName)]
struct TimeRow {
    #[diesel(sql_type = Nullable<Text>)]
    at: Option<String>,
}

/// Returns `created_at` values that cut the account's live rows of `resource` into `slices`
/// parts of about equal size, oldest first, or nothing when fewer than `min_rows` rows have
/// a `created_at`.
pub fn created_at_quantiles(
    conn: &mut DbConnection,
    account_id: i64,
    resource: Resource,
    slices: usize,
    min_rows: i64,
) -> QueryResult<Vec<DateTime<Utc>>> {
    let table = resource.name();
    let mut sql = Sql::new(conn.backend());
    sql.push(&format!("SELECT COUNT(*) AS id FROM {table} WHERE account_id = ")).bind(int(account_id));
    sql.push(" AND created_at IS NOT NULL");
    let rows = sql.first::<IdRow>(conn)?.map_or(0, |row| row.id);
    if rows < min_rows || slices < 2 {
        return Ok(Vec::new());
    }

    let mut edges = Vec::new();
    for k in 1..slices {
        let offset = rows * k as i64 / slices as i64;
        let mut sql = Sql::new(conn.backend());
        sql.push("SELECT ").push_time_text("created_at").push(&format!(" AS at FROM {table} WHERE account_id = "));
        sql.bind(int(account_id)).push(" AND created_at IS NOT NULL ORDER BY created_at LIMIT 1 OFFSET ").bind(int(offset));
        if let Some(at) = sql.first::<TimeRow>(conn)?.and_then(|row| row.at).as_deref().and_then(parse_time_text) {
            edges.push(at);
        }
    }
    edges.dedup();
    Ok(edges)
}

/// Returns the earliest `created_at` among the account's jobs, the start of its history.
pub fn earliest_job(conn: &mut DbConnection, account_id: i64) -> QueryResult<Option<DateTime<Utc>>> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT ").push_time_text("MIN(created_at)").push(" AS at FROM jobs WHERE account_id = ").bind(int(account_id));
    Ok(sql.first::<TimeRow>(conn)?.and_then(|row| row.at).as_deref().and_then(parse_time_text))
}

/// Returns when the account's last run of `mode` completed.
pub fn last_completed(conn: &mut DbConnection, account_id: i64, mode: &str) -> QueryResult<Option<DateTime<Utc>>> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT ").push_time_text("MAX(finished_at)").push(" AS at FROM sweep_runs WHERE account_id = ").bind(int(account_id));
    sql.push(" AND mode = ").bind(text(mode)).push(" AND status = 'completed'");
    Ok(sql.first::<TimeRow>(conn)?.and_then(|row| row.at).as_deref().and_then(parse_time_text))
}

/// Empties the account's refresh queue, for accounts that cannot be refreshed.
pub fn clear_refresh_queue(conn: &mut DbConnection, account_id: i64) -> QueryResult<()> {
    let mut sql = Sql::new(conn.backend());
    sql.push("DELETE FROM refresh_queue WHERE account_id = ").bind(int(account_id));
    sql.execute(conn)?;
    Ok(())
}
