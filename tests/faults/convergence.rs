//! Reading the local copy and the simulator's ground truth, and comparing them. The tests
//! read the database through their own small pool, beside the server under test.

use std::collections::BTreeMap;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use greenhouse_sync::db::sql::{Sql, SqlValue, parse_time_text};
use greenhouse_sync::db::sweeps::{self, Chain, Run};
use greenhouse_sync::db::{Database, PoolSettings};
use greenhouse_sync::greenhouse::Resource;
use greenhouse_sync::sim::RunningSim;

/// Opens a pool of two connections for the test's own reads and set-up statements.
pub fn open_reader(url: &str) -> Database {
    let settings = PoolSettings { max_connections: 2, ..PoolSettings::default() };
    Database::open(url, &settings)
}

/// Fetches the simulator's live records of a resource: id and `updated_at`.
pub async fn truth(http: &reqwest::Client, sim: &RunningSim, resource: Resource) -> BTreeMap<i64, String> {
    let url = format!("{}/_sim/truth/{}", sim.base_url(), resource.name());
    let pairs: Vec<(i64, String)> = http.get(url).send().await.expect("truth").json().await.expect("truth JSON");
    pairs.into_iter().collect()
}

/// Counts the live records in the simulator, over every resource.
pub async fn truth_total(http: &reqwest::Client, sim: &RunningSim) -> i64 {
    let mut total = 0;
    for resource in Resource::ALL {
        total += truth(http, sim, resource).await.len() as i64;
    }
    total
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    updated_at: Option<String>,
}

/// Reads the live local rows of a resource: id and `updated_at`.
pub fn local(db: &Database, account_id: i64, resource: Resource) -> BTreeMap<i64, String> {
    let mut conn = db.get().expect("connection");
    let mut sql = Sql::new(db.backend());
    sql.push("SELECT id, ").push_time_text("updated_at").push(" AS updated_at FROM ").push(resource.name());
    sql.push(" WHERE deleted_at IS NULL AND account_id = ").bind(SqlValue::Int(Some(account_id)));
    let rows = sql.load::<VersionRow>(&mut conn).expect("local rows");
    rows.into_iter().map(|row| (row.id, row.updated_at.unwrap_or_default())).collect()
}

/// Describes the first difference between the local copy and the simulator's records and
/// versions, or returns `None` when they are equal.
pub async fn difference(http: &reqwest::Client, sim: &RunningSim, db: &Database, account_id: i64) -> Option<String> {
    for resource in Resource::ALL {
        let truth = truth(http, sim, resource).await;
        let local = local(db, account_id, resource);
        let missing: Vec<_> = truth.keys().filter(|id| !local.contains_key(id)).take(5).collect();
        if !missing.is_empty() {
            return Some(format!("{resource}: missing locally, for example {missing:?}"));
        }
        let extra: Vec<_> = local.keys().filter(|id| !truth.contains_key(id)).take(5).collect();
        if !extra.is_empty() {
            return Some(format!("{resource}: stored but not in Greenhouse, for example {extra:?}"));
        }
        let stale = truth.iter().find(|(id, updated_at)| parse_time_text(&local[id]) != parse_time_text(updated_at));
        if let Some((id, updated_at)) = stale {
            return Some(format!("{resource} {id}: stored version {} differs from {updated_at}", local[id]));
        }
    }
    None
}

/// Asserts that every resource's live rows equal the simulator's records and versions.
pub async fn assert_converged(http: &reqwest::Client, sim: &RunningSim, db: &Database, account_id: i64) {
    let difference = difference(http, sim, db, account_id).await;
    assert_eq!(difference, None, "the local copy differs from the simulator's ground truth");
}

/// Reads the watermark per resource, as text so two snapshots compare exactly.
pub fn watermarks(db: &Database, account_id: i64) -> BTreeMap<String, Option<String>> {
    let mut conn = db.get().expect("connection");
    let states = sweeps::sync_states(&mut conn, account_id).expect("sync state");
    states.into_iter().map(|state| (state.resource, state.watermark.map(|at| at.to_rfc3339()))).collect()
}

/// Loads the account's runs, newest first.
pub fn runs(db: &Database, account_id: i64) -> Vec<Run> {
    let mut conn = db.get().expect("connection");
    sweeps::recent_runs(&mut conn, account_id, 1000).expect("runs")
}

/// Loads the chains of a run with their checkpoints.
pub fn chains(db: &Database, run_id: i64) -> Vec<Chain> {
    let mut conn = db.get().expect("connection");
    sweeps::load_chains(&mut conn, run_id).expect("chains")
}

/// Runs one statement without results, such as removing a dead process's lease.
pub fn execute(db: &Database, statement: &str) {
    let mut conn = db.get().expect("connection");
    let mut sql = Sql::new(db.backend());
    sql.push(statement);
    sql.execute(&mut conn).expect("statement");
}
