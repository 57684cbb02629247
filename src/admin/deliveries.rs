//! Delivery log routes: list with filters, show one, replay one, replay an account's failed
//! deliveries.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::replay::{ReplayError, replay};
use crate::db::deliveries::{self, DeliveryFilter, DeliverySummary, Outcome};
use crate::db::{Database, DbError, accounts};
use crate::server::error::ApiError;
use crate::webhooks::store::Stored;

/// Page size when `limit` is not given.
const DEFAULT_PAGE: i64 = 50;

/// Largest page, and the most deliveries one replay-failed call applies.
const MAX_PAGE: i64 = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/deliveries", web::get().to(list))
        .route("/deliveries/{id}", web::get().to(show))
        .route("/deliveries/{id}/replay", web::post().to(replay_one))
        .route("/accounts/{id}/deliveries/replay-failed", web::post().to(replay_failed));
}

/// Filters of `GET /admin/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub account_id: Option<i64>,
    /// Webhook action, such as `candidate_stage_change`.
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    /// Received at or after this RFC 3339 time.
    pub received_after: Option<DateTime<Utc>>,
    /// Received before this RFC 3339 time.
    pub received_before: Option<DateTime<Utc>>,
    /// Only deliveries with a smaller id: pass `next_before_id` of the previous page.
    pub before_id: Option<i64>,
    /// Page size, 1 to 500; default 50.
    pub limit: Option<i64>,
}

/// One page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliverySummary>,
    /// Pass as `before_id` to read the next page; absent on the last page.
    pub next_before_id: Option<i64>,
}

/// One delivery with its body.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliverySummary,
    /// The body as received, parsed; absent once retention removed it.
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
}

/// Result of replaying one delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResult {
    pub delivery_id: i64,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<Stored> for ReplayResult {
    fn from(stored: Stored) -> ReplayResult {
        ReplayResult { delivery_id: stored.delivery_id, outcome: stored.outcome, error: stored.error }
    }
}

/// Result of replaying an account's failed deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayBatch {
    pub results: Vec<ReplayResult>,
    pub applied: usize,
    pub still_failing: usize,
    /// Failed or unsupported deliveries left after this call, including those that failed
    /// again; call again to continue when more than `limit` were waiting.
    pub remaining: i64,
}

/// Query of the replay-failed route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReplayQuery {
    /// Most deliveries to replay in this call, oldest first, 1 to 500; default 500.
    pub limit: Option<i64>,
}

#[utoipa::path(
    get, path = "/admin/deliveries", tag = "deliveries",
    params(ListQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, description = "Invalid filter"))
)]
pub async fn list(db: web::Data<Database>, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_size(query.limit, DEFAULT_PAGE)?;
    let filter = DeliveryFilter {
        account_id: query.account_id,
        action: query.action,
        outcome: query.outcome,
        received_after: query.received_after,
        received_before: query.received_before,
        before_id: query.before_id,
        limit,
    };
    let page = db.run(move |conn| deliveries::list(conn, &filter).map_err(DbError::from)).await?;
    let next_before_id = if page.len() as i64 == limit { page.last().map(|d| d.id) } else { None };
    Ok(HttpResponse::Ok().json(DeliveryPage { deliveries: page, next_before_id }))
}

#[utoipa::path(
    get, path = "/admin/deliveries/{id}", tag = "deliveries",
    params(("id" = i64, Path, description = "Delivery id")),
    responses((status = 200, body = DeliveryDetail), (status = 404, description = "No such delivery"))
)]
pub async fn show(db: web::Data<Database>, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let delivery_id = path.into_inner();
    let found = db.run(move |conn| deliveries::find(conn, delivery_id, false).map_err(DbError::from)).await?;
    let stored = found.ok_or_else(|| ApiError::not_found(format!("delivery {delivery_id} not found")))?;
    // A body that is not JSON cannot have been stored, but showing it as text costs nothing.
    let body = stored.body.map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text)));
    Ok(HttpResponse::Ok().json(DeliveryDetail { delivery: stored.summary, body }))
}

#[utoipa::path(
    post, path = "/admin/deliveries/{id}/replay", tag = "deliveries",
    params(("id" = i64, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "Applied again; `outcome` is the new outcome", body = ReplayResult),
        (status = 404, description = "No such delivery"),
        (status = 409, description = "Not failed or unsupported, or its body was purged"),
    )
)]
pub async fn replay_one(db: web::Data<Database>, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let delivery_id = path.into_inner();
    let result = db.run(move |conn| replay(conn, delivery_id).map_err(replay_error)).await?;
    log_replay(&result);
    Ok(HttpResponse::Ok().json(ReplayResult::from(result)))
}

#[utoipa::path(
    post, path = "/admin/accounts/{id}/deliveries/replay-failed", tag = "deliveries",
    params(("id" = i64, Path, description = "Account id"), ReplayQuery),
    responses((status = 200, body = ReplayBatch), (status = 404, description = "No such account"))
)]
pub async fn replay_failed(
    db: web::Data<Database>,
    path: web::Path<i64>,
    query: web::Query<ReplayQuery>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    let limit = page_size(query.limit, MAX_PAGE)?;
    let ids = db
        .run(move |conn| {
            if accounts::find(conn, account_id).map_err(DbError::from)?.is_none() {
                return Ok(None);
            }
            deliveries::replayable_ids(conn, account_id, limit).map(Some).map_err(DbError::from)
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("account {account_id} not found")))?;

    // One transaction per delivery, so one that cannot be applied does not hold back the rest.
    let mut results = Vec::with_capacity(ids.len());
    for delivery_id in ids {
        match db.run(move |conn| replay(conn, delivery_id).map_err(replay_error)).await {
            Ok(stored) => {
                log_replay(&stored);
                results.push(ReplayResult::from(stored));
            }
            // Purged or replayed by a concurrent call in the meantime.
            Err(error) if error.status == StatusCode::CONFLICT => {}
            Err(error) => return Err(error),
        }
    }

    let remaining = db.run(move |conn| deliveries::count_replayable(conn, account_id).map_err(DbError::from)).await?;
    let applied = results.iter().filter(|r| r.outcome == Outcome::Applied).count();
    let still_failing = results.len() - applied;
    Ok(HttpResponse::Ok().json(ReplayBatch { results, applied, still_failing, remaining }))
}

fn log_replay(stored: &Stored) {
    tracing::info!(delivery.id = stored.delivery_id, outcome = stored.outcome.as_str(), "delivery replayed");
}

fn replay_error(error: ReplayError) -> ApiError {
    match error {
        ReplayError::NotFound(_) => ApiError::not_found(error.to_string()),
        ReplayError::NotReplayable { .. } => ApiError::new(StatusCode::CONFLICT, error.to_string()),
        ReplayError::Db(error) => ApiError::from(error),
    }
}

fn page_size(limit: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::bad_request(format!("limit {limit} is out of range; use 1 to {MAX_PAGE}"))),
    }
}
