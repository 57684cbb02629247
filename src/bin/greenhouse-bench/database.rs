//! Fresh databases for benchmark runs, and reading what a run stored.

use std::path::PathBuf;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection};
use greenhouse_sync::greenhouse::Resource;

use crate::Backend;
use crate::procs::BenchContext;

/// A database that exists for one benchmark run. A PostgreSQL database is dropped with it;
/// a SQLite file stays in the work directory for inspection.
pub struct FreshDatabase {
    pub backend: Backend,
    pub url: String,
    postgres: Option<(String, String)>,
}

impl FreshDatabase {
    pub fn create(context: &BenchContext, backend: Backend, label: &str) -> anyhow::Result<FreshDatabase> {
        let name = context.unique_name(&format!("ghbench_{label}"));
        match backend {
            Backend::Sqlite => {
                let path: PathBuf = context.work_dir.join(format!("{name}.db"));
                Ok(FreshDatabase { backend, url: path.display().to_string(), postgres: None })
            }
            Backend::Postgres => {
                let admin_url = format!("{}/postgres", context.postgres_url);
                let mut admin = PgConnection::establish(&admin_url)
                    .with_context(|| format!("could not connect to PostgreSQL at {admin_url}; is it running?"))?;
                admin.batch_execute(&format!("CREATE DATABASE {name}")).with_context(|| format!("could not create database {name}"))?;
                let url = format!("{}/{name}", context.postgres_url);
                Ok(FreshDatabase { backend, url, postgres: Some((admin_url, name)) })
            }
        }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.postgres
            && let Ok(mut admin) = PgConnection::establish(admin_url)
            && let Err(error) = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        {
            eprintln!("greenhouse-bench: could not drop database {name}: {error}");
        }
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Connection to a benchmark database, on either backend.
pub enum AnyConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl AnyConnection {
    pub fn open(database: &FreshDatabase) -> anyhow::Result<AnyConnection> {
        let url = &database.url;
        Ok(match database.backend {
            Backend::Sqlite => {
                AnyConnection::Sqlite(SqliteConnection::establish(url).with_context(|| format!("could not open SQLite file {url}"))?)
            }
            Backend::Postgres => {
                AnyConnection::Postgres(PgConnection::establish(url).with_context(|| format!("could not connect to {url}"))?)
            }
        })
    }

    /// Returns the ids of the account's rows of `resource` that are not marked deleted,
    /// in ascending order.
    pub fn live_ids(&mut self, account_id: i64, resource: Resource) -> anyhow::Result<Vec<i64>> {
        let table = resource.name();
        let sql = format!("SELECT id FROM {table} WHERE account_id = {account_id} AND deleted_at IS NULL ORDER BY id");
        let query = diesel::sql_query(&sql);
        let rows: Vec<IdRow> = match self {
            AnyConnection::Sqlite(conn) => query.load(conn),
            AnyConnection::Postgres(conn) => query.load(conn),
        }
        .with_context(|| format!("could not read ids from {table}"))?;
        Ok(rows.into_iter().map(|row| row.id).collect())
    }
}

/// Comparison of the stored copy of one resource with the simulator's ground truth.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResourceComparison {
    pub resource: &'static str,
    pub truth_count: usize,
    pub stored_count: usize,
    /// True when the stored live ids are exactly the simulator's ids.
    pub same_ids: bool,
}

/// Compares the ids of every resource's live rows with `GET /_sim/truth/<resource>`.
pub fn compare_with_truth(
    database: &FreshDatabase,
    account_id: i64,
    sim_base_url: &str,
) -> anyhow::Result<Vec<ResourceComparison>> {
    let mut conn = AnyConnection::open(database)?;
    let mut comparisons = Vec::new();
    for resource in Resource::ALL {
        let truth_ids = truth_ids(sim_base_url, resource)?;
        let stored_ids = conn.live_ids(account_id, resource)?;
        comparisons.push(ResourceComparison {
            resource: resource.name(),
            truth_count: truth_ids.len(),
            stored_count: stored_ids.len(),
            same_ids: truth_ids == stored_ids,
        });
    }
    Ok(comparisons)
}

/// Returns the ids of the simulator's existing records of `resource`, in ascending order.
fn truth_ids(sim_base_url: &str, resource: Resource) -> anyhow::Result<Vec<i64>> {
    let url = format!("{sim_base_url}/_sim/truth/{}", resource.name());
    let versions: Vec<(i64, serde_json::Value)> = crate::load::get_json(&url)?;
    Ok(versions.into_iter().map(|(id, _)| id).collect())
}
