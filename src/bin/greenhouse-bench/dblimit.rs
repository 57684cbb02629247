//! The database's own limit for the transaction a webhook delivery runs: store the delivery,
//! upsert one candidate inside a savepoint, record the outcome, commit. On SQLite a loop in
//! this process runs it; on PostgreSQL pgbench does, with an equivalent script.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection};
use serde::Serialize;
use serde_json::Value;

use crate::Backend;
use crate::database::{AnyConnection, FreshDatabase};
use crate::procs::{self, BenchContext};

/// Columns of `candidates` that an `update_candidate` webhook fills, besides the JSON.
const CANDIDATE_UPSERT: &str = "INSERT INTO candidates (account_id, id, first_name, last_name, company, title, \
     data, version_at, last_seen_run_id, written_at) VALUES ";

const CANDIDATE_CONFLICT: &str = " ON CONFLICT (account_id, id) DO UPDATE SET first_name = excluded.first_name, \
     last_name = excluded.last_name, company = excluded.company, title = excluded.title, data = excluded.data, \
     version_at = COALESCE(excluded.version_at, candidates.version_at), \
     last_seen_run_id = COALESCE(excluded.last_seen_run_id, candidates.last_seen_run_id), \
     written_at = excluded.written_at \
     WHERE candidates.deleted_at IS NULL \
     AND (excluded.version_at IS NULL OR candidates.version_at IS NULL OR excluded.version_at >= candidates.version_at)";

/// The change feed's part of a delivery: take the account's next sequence number, which
/// locks the account's counter row until the commit, and append one change.
const RESERVE_SEQ: &str = "INSERT INTO change_sequences (account_id, last_seq) VALUES ";
const RESERVE_CONFLICT: &str =
    " ON CONFLICT (account_id) DO UPDATE SET last_seq = change_sequences.last_seq + excluded.last_seq RETURNING last_seq";
const CHANGE_INSERT: &str =
    "INSERT INTO changes (account_id, seq, resource, record_id, kind, changed_fields, source, changed_at) VALUES ";

#[derive(Debug, Clone, Args)]
pub struct DbLimitArgs {
    /// Database backends, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub backends: Vec<Backend>,

    /// How long each backend runs the transaction, in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,

    /// pgbench clients (connections). The server's pool has 10 connections by default.
    #[arg(long, default_value_t = 10)]
    pub pg_clients: u32,

    /// Webhook fixture whose body is stored and whose candidate is upserted.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/greenhouse/webhooks/update_candidate.json"))]
    pub fixture: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct DbLimitResult {
    pub benchmark: &'static str,
    pub backend: Backend,
    /// `rust loop (1 connection)` or `pgbench (N clients)`.
    pub driver: String,
    pub transactions: u64,
    pub seconds: f64,
    pub transactions_per_sec: f64,
}

pub fn run(context: &BenchContext, args: &DbLimitArgs) -> anyhow::Result<()> {
    let args = if context.tiny { DbLimitArgs { seconds: 2.0, ..args.clone() } } else { args.clone() };
    let body = std::fs::read_to_string(&args.fixture).with_context(|| format!("could not read {}", args.fixture.display()))?;
    let payload: Value = serde_json::from_str(&body).with_context(|| format!("{} is not JSON", args.fixture.display()))?;
    let candidate = payload["payload"]["candidate"].to_string();

    println!("| backend | driver | transactions | seconds | transactions/s |");
    println!("|---|---|---:|---:|---:|");
    for &backend in &args.backends {
        let database = FreshDatabase::create(context, backend, "dblimit")?;
        let account_id = procs::add_account(context, &database.url, false)?;
        let result = match backend {
            Backend::Sqlite => sqlite_loop(&database, account_id, &body, &candidate, args.seconds)?,
            Backend::Postgres => pgbench(context, &database, account_id, &body, &candidate, &args)?,
        };
        println!(
            "| {} | {} | {} | {:.1} | {:.0} |",
            backend.name(),
            result.driver,
            result.transactions,
            result.seconds,
            result.transactions_per_sec
        );
        context.record(&result)?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct SeqRow {
    #[diesel(sql_type = BigInt)]
    last_seq: i64,
}

/// Runs the transaction in a loop on one connection with the server's SQLite settings, until
/// `seconds` have passed. SQLite has a single writer, so one connection shows its limit.
fn sqlite_loop(database: &FreshDatabase, account_id: i64, body: &str, candidate: &str, seconds: f64) -> anyhow::Result<DbLimitResult> {
    let AnyConnection::Sqlite(mut conn) = AnyConnection::open(database)? else {
        bail!("expected a SQLite database");
    };
    // The same settings greenhouse-sync gives each SQLite connection.
    conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .context("could not configure SQLite")?;

    let deadline = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut transactions = 0u64;
    while started.elapsed() < deadline {
        let candidate_id = 1_000_000 + transactions as i64;
        sqlite_transaction(&mut conn, account_id, candidate_id, body, candidate)
            .with_context(|| format!("SQLite transaction {transactions} failed"))?;
        transactions += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(DbLimitResult {
        benchmark: "db-limit",
        backend: Backend::Sqlite,
        driver: "rust loop (1 connection)".to_string(),
        transactions,
        seconds: elapsed,
        transactions_per_sec: transactions as f64 / elapsed,
    })
}

fn sqlite_transaction(conn: &mut SqliteConnection, account_id: i64, candidate_id: i64, body: &str, candidate: &str) -> anyhow::Result<()> {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    conn.batch_execute("BEGIN IMMEDIATE")?;

    let delivery: IdRow = diesel::sql_query(
        "INSERT INTO webhook_deliveries (account_id, event_id, action, received_at, body, body_sha256, outcome) \
         VALUES (?, NULL, 'update_candidate', ?, ?, 'bench', 'failed') RETURNING id",
    )
    .bind::<BigInt, _>(account_id)
    .bind::<Text, _>(&now)
    .bind::<Text, _>(body)
    .get_result(conn)?;

    conn.batch_execute("SAVEPOINT apply")?;
    diesel::sql_query(format!("{CANDIDATE_UPSERT}(?, ?, 'Johnny', 'Smith', 'Greenhouse', 'Engineer', ?, NULL, NULL, ?){CANDIDATE_CONFLICT}"))
        .bind::<BigInt, _>(account_id)
        .bind::<BigInt, _>(candidate_id)
        .bind::<Text, _>(candidate)
        .bind::<Text, _>(&now)
        .execute(conn)?;
    let seq: SeqRow = diesel::sql_query(format!("{RESERVE_SEQ}(?, 1){RESERVE_CONFLICT}")).bind::<BigInt, _>(account_id).get_result(conn)?;
    diesel::sql_query(format!("{CHANGE_INSERT}(?, ?, 'candidates', ?, 'updated', '[\"first_name\"]', 'webhook', ?)"))
        .bind::<BigInt, _>(account_id)
        .bind::<BigInt, _>(seq.last_seq)
        .bind::<BigInt, _>(candidate_id)
        .bind::<Text, _>(&now)
        .execute(conn)?;
    conn.batch_execute("RELEASE SAVEPOINT apply")?;

    diesel::sql_query("UPDATE webhook_deliveries SET outcome = 'applied', error = NULL, applied_at = ? WHERE id = ?")
        .bind::<Text, _>(&now)
        .bind::<BigInt, _>(delivery.id)
        .execute(conn)?;
    conn.batch_execute("COMMIT")?;
    Ok(())
}

/// Runs the equivalent pgbench script. The body and candidate JSON are read from a one-row
/// table, because pgbench would take `:name` inside the JSON text for its own variables.
fn pgbench(
    context: &BenchContext,
    database: &FreshDatabase,
    account_id: i64,
    body: &str,
    candidate: &str,
    args: &DbLimitArgs,
) -> anyhow::Result<DbLimitResult> {
    let AnyConnection::Postgres(mut conn) = AnyConnection::open(database)? else {
        bail!("expected a PostgreSQL database");
    };
    conn.batch_execute("CREATE TABLE bench_body (body TEXT NOT NULL, data JSONB NOT NULL)")?;
    diesel::sql_query("INSERT INTO bench_body (body, data) VALUES ($1, $2::jsonb)")
        .bind::<Text, _>(body)
        .bind::<Text, _>(candidate)
        .execute(&mut conn)
        .context("could not store the body for pgbench")?;

    let script_path = context.work_dir.join("dblimit.pgbench.sql");
    std::fs::write(&script_path, pgbench_script(account_id)).with_context(|| format!("could not write {}", script_path.display()))?;

    let seconds = args.seconds.ceil().max(1.0) as u64;
    let output = Command::new("pgbench")
        .args(["--no-vacuum", "--protocol", "prepared", "--jobs", "2"])
        .arg("--client")
        .arg(args.pg_clients.to_string())
        .arg("--time")
        .arg(seconds.to_string())
        .arg("--file")
        .arg(&script_path)
        .arg(&database.url)
        .stdin(Stdio::null())
        .output()
        .context("could not run pgbench; install postgresql-client or postgresql-contrib")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed with {}: {}{}", output.status, stdout, String::from_utf8_lossy(&output.stderr));
    }

    let transactions = pgbench_number(&stdout, "number of transactions actually processed:")?;
    let tps = pgbench_number(&stdout, "tps = ")?;
    Ok(DbLimitResult {
        benchmark: "db-limit",
        backend: Backend::Postgres,
        driver: format!("pgbench ({} clients)", args.pg_clients),
        transactions: transactions as u64,
        seconds: seconds as f64,
        transactions_per_sec: tps,
    })
}

fn pgbench_script(account_id: i64) -> String {
    format!(
        "\\set candidate_id random(1000000, 1000000000)\n\
         BEGIN;\n\
         INSERT INTO webhook_deliveries (account_id, event_id, action, received_at, body, body_sha256, outcome) \
         SELECT {account_id}, NULL, 'update_candidate', now(), body, 'bench', 'failed' FROM bench_body \
         RETURNING id AS delivery_id \\gset\n\
         SAVEPOINT apply;\n\
         {CANDIDATE_UPSERT}({account_id}, :candidate_id, 'Johnny', 'Smith', 'Greenhouse', 'Engineer', \
         (SELECT data FROM bench_body), NULL, NULL, now()){CANDIDATE_CONFLICT};\n\
         {RESERVE_SEQ}({account_id}, 1){RESERVE_CONFLICT} \\gset\n\
         {CHANGE_INSERT}({account_id}, :last_seq, 'candidates', :candidate_id, 'updated', '[\"first_name\"]', \
         'webhook', now());\n\
         RELEASE SAVEPOINT apply;\n\
         UPDATE webhook_deliveries SET outcome = 'applied', error = NULL, applied_at = now() WHERE id = :delivery_id;\n\
         COMMIT;\n"
    )
}

/// Reads the number after `label` in pgbench's summary.
fn pgbench_number(output: &str, label: &str) -> anyhow::Result<f64> {
    let line = output.lines().find(|line| line.contains(label)).with_context(|| format!("no {label:?} in pgbench output: {output}"))?;
    let rest = &line[line.find(label).map_or(0, |at| at + label.len())..];
    let number: String = rest.trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    number.parse().with_context(|| format!("could not read a number after {label:?} in {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_summary_is_read() {
        let output = "number of transactions actually processed: 1234\ntps = 61.700000 (without initial connection time)\n";
        assert_eq!(pgbench_number(output, "number of transactions actually processed:").ok(), Some(1234.0));
        assert_eq!(pgbench_number(output, "tps = ").ok(), Some(61.7));
    }
}
