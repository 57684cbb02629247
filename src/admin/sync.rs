//! Sync routes: start a sweep, and report an account's sync state and running run.
//!
//! `POST /admin/accounts/{id}/reconcile` with `{"mode": "incremental" | "full"}` responds 202
//! with the run id, or 409 while the account is being swept. `GET /admin/accounts/{id}/sync`
//! reports per resource the watermark and last completed run, the recent runs, and for a
//! running run its chains, counts and an estimate of the time left.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::db::sweeps::{self, Chain, Run, SyncState};
use crate::db::{Database, DbError, accounts};
use crate::greenhouse::Resource;
use crate::server::error::ApiError;
use crate::sweep::{Mode, SweepError, SweepService};

/// Registers the routes, relative to the authenticated `/admin` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts/{id}/reconcile", web::post().to(reconcile))
        .route("/accounts/{id}/sync", web::get().to(sync_status));
}

/// Body of `POST /admin/accounts/{id}/reconcile`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    pub mode: Mode,
}

#[derive(Debug, Serialize)]
struct Started {
    run_id: i64,
    mode: Mode,
}

fn service(sweeps: Option<web::Data<SweepService>>) -> Result<web::Data<SweepService>, ApiError> {
    sweeps.ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "sweeps are not configured in this process"))
}

async fn require_account(db: &Database, account_id: i64) -> Result<(), ApiError> {
    let found = db.run(move |conn| accounts::find(conn, account_id).map_err(DbError::from)).await?;
    match found {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!("account {account_id} not found"))),
    }
}

async fn reconcile(
    sweeps: Option<web::Data<SweepService>>,
    db: web::Data<Database>,
    path: web::Path<i64>,
    body: web::Json<ReconcileRequest>,
) -> Result<HttpResponse, ApiError> {
    let sweeps = service(sweeps)?;
    let account_id = path.into_inner();
    require_account(&db, account_id).await?;

    match sweeps.start(account_id, body.mode).await {
        Ok(run_id) => Ok(HttpResponse::Accepted().json(Started { run_id, mode: body.mode })),
        Err(SweepError::Busy(_)) => Err(ApiError::new(StatusCode::CONFLICT, format!("account {account_id} is already being swept"))),
        Err(SweepError::NoCredentials(_)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("account {account_id} is disabled or has no Harvest credentials; set its client id and secret first"),
        )),
        Err(SweepError::Db(error)) => Err(error.into()),
        Err(error) => {
            tracing::warn!(account.id = account_id, error = %error, "sweep could not start");
            Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("sweep could not start: {error}")))
        }
    }
}

/// Status of an account's sync.
#[derive(Debug, Serialize)]
struct SyncReport {
    account_id: i64,
    resources: Vec<SyncState>,
    recent_runs: Vec<Run>,
    running: Option<RunningReport>,
}

#[derive(Debug, Serialize)]
struct RunningReport {
    run: Run,
    chains: Vec<Chain>,
    records_per_second: f64,
    /// Time left if the account has as many records as are stored now; `None` before the
    /// first full sync, when the total is unknown.
    estimated_seconds_left: Option<f64>,
}

async fn sync_status(sweeps: Option<web::Data<SweepService>>, db: web::Data<Database>, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    require_account(&db, account_id).await?;
    let local_rate = sweeps.and_then(|s| s.progress(account_id)).map(|p| p.records_per_second());

    let report = db
        .run(move |conn| {
            let resources = sweeps::sync_states(conn, account_id)?;
            let recent_runs = sweeps::recent_runs(conn, account_id, 5)?;
            let running = match sweeps::find_unfinished_run(conn, account_id)? {
                Some(run) => {
                    let chains = sweeps::load_chains(conn, run.id)?;
                    let stored: i64 = Resource::ALL.iter().map(|r| sweeps::count_live(conn, account_id, *r)).sum::<Result<i64, _>>()?;
                    Some(running_report(run, chains, stored, local_rate))
                }
                None => None,
            };
            Ok::<_, DbError>(SyncReport { account_id, resources, recent_runs, running })
        })
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

fn running_report(run: Run, chains: Vec<Chain>, stored_records: i64, local_rate: Option<f64>) -> RunningReport {
    let elapsed = run.started_at.map(|at| (Utc::now() - at).num_milliseconds() as f64 / 1000.0).unwrap_or(0.0);
    let rate = local_rate.unwrap_or(if elapsed > 0.0 { run.records as f64 / elapsed } else { 0.0 });
    let left = (stored_records - run.records).max(0) as f64;
    let estimated_seconds_left = (stored_records > 0 && rate > 0.0).then(|| left / rate);
    RunningReport { run, chains, records_per_second: rate, estimated_seconds_left }
}
