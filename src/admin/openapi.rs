//! The OpenAPI 3.1 document of the admin API, generated from the handlers' annotations and
//! served at `/admin/openapi.json`.

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{accounts, deliveries};
use crate::db::accounts::Account;
use crate::db::deliveries::{DeliverySummary, Outcome};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "greenhouse-sync admin API",
        description = "Accounts, the webhook delivery log, sweeps and the change feed. Every route needs `Authorization: Bearer <admin token>`; errors are `{\"error\": \"...\"}`."
    ),
    paths(
        accounts::create,
        accounts::list,
        accounts::show,
        accounts::delete,
        accounts::set_credentials,
        accounts::clear_credentials,
        accounts::rotate_secret,
        accounts::disable,
        accounts::enable,
        accounts::disable_refresh,
        accounts::enable_refresh,
        deliveries::list,
        deliveries::show,
        deliveries::replay_one,
        deliveries::replay_failed,
        reconcile,
        sync_status,
        changes,
        changes_stream,
        serve,
    ),
    components(schemas(
        Account,
        accounts::AccountWithSecret,
        accounts::CreateAccount,
        accounts::SetCredentials,
        accounts::RotateSecret,
        DeliverySummary,
        Outcome,
        deliveries::DeliveryPage,
        deliveries::DeliveryDetail,
        deliveries::ReplayResult,
        deliveries::ReplayBatch,
        ReconcileBody,
        RunStarted,
        ErrorBody,
    )),
    modifiers(&BearerToken),
    security(("bearer" = [])),
)]
pub struct AdminApi;

/// Adds the bearer scheme that `security` refers to.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("The admin token")).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// Body of `POST /admin/accounts/{id}/reconcile`.
#[derive(Serialize, ToSchema)]
pub struct ReconcileBody {
    /// `incremental` (records updated since the watermark) or `full` (everything, and
    /// deletions).
    #[schema(example = "full")]
    pub mode: String,
}

/// A sweep run started in the background.
#[derive(Serialize, ToSchema)]
pub struct RunStarted {
    pub run_id: i64,
    pub mode: String,
}

// The sync routes live in `sync.rs`; these annotated stubs describe them here so that the
// document covers every route.

#[utoipa::path(
    post, path = "/admin/accounts/{id}/reconcile", tag = "sync",
    params(("id" = i64, Path, description = "Account id")),
    request_body = ReconcileBody,
    responses(
        (status = 202, description = "Run started (or the unfinished run resumed)", body = RunStarted),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The account is being swept", body = ErrorBody),
        (status = 422, description = "Disabled or without Harvest credentials", body = ErrorBody),
        (status = 503, description = "Sweeps are not configured in this process", body = ErrorBody),
    )
)]
#[expect(dead_code, reason = "documents the handler in sync.rs for the OpenAPI document")]
fn reconcile() {}

#[utoipa::path(
    get, path = "/admin/accounts/{id}/sync", tag = "sync",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "Watermark and last run per resource, recent runs, and the running run's chains, counts and estimated time left", body = Object),
        (status = 404, description = "No such account", body = ErrorBody),
    )
)]
#[expect(dead_code, reason = "documents the handler in sync.rs for the OpenAPI document")]
fn sync_status() {}

// The change feed's handlers are in `crate::changes::http` and `crate::changes::stream`.
// docs/CHANGES.md describes the feed in full.

#[utoipa::path(
    get, path = "/admin/accounts/{id}/changes", tag = "changes",
    params(
        ("id" = i64, Path, description = "Account id"),
        ("after" = Option<i64>, Query, description = "Last sequence number processed; 0 by default"),
        ("limit" = Option<i64>, Query, description = "Changes per response, 1 to 1000; 100 by default"),
        ("wait" = Option<u64>, Query, description = "Seconds, up to 60, to wait when no change is there yet"),
        ("include" = Option<String>, Query, description = "`record` adds each record's current row"),
    ),
    responses(
        (status = 200, description = "`{\"changes\": [...], \"next_after\": SEQ}`; pass `next_after` as `after` next time", body = Object),
        (status = 400, description = "An invalid or unknown parameter", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "`after` is beyond the newest change; `newest_seq` gives the end", body = Object),
        (status = 410, description = "Changes after `after` were purged; `oldest_available_seq` gives the oldest kept", body = Object),
    )
)]
#[expect(dead_code, reason = "documents the handler in changes/http.rs for the OpenAPI document")]
fn changes() {}

#[utoipa::path(
    get, path = "/admin/accounts/{id}/changes/stream", tag = "changes",
    params(
        ("id" = i64, Path, description = "Account id"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this sequence number; wins over `after`"),
        ("after" = Option<i64>, Query, description = "Last sequence number processed; 0 by default"),
        ("include" = Option<String>, Query, description = "`record` adds each record's current row"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `event: change` with the change as `data`, one `event: error` before closing on failure", content_type = "text/event-stream"),
        (status = 400, description = "An invalid or unknown parameter, or an invalid Last-Event-ID", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The cursor is beyond the newest change", body = Object),
        (status = 410, description = "Changes after the cursor were purged", body = Object),
    )
)]
#[expect(dead_code, reason = "documents the handler in changes/stream.rs for the OpenAPI document")]
fn changes_stream() {}

#[utoipa::path(
    get, path = "/admin/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", body = Object))
)]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(AdminApi::openapi())
}
