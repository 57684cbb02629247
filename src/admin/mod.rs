//! The admin API under `/admin`: accounts, the delivery log with replay, sweeps, and the
//! OpenAPI document describing them. Every route needs `Authorization: Bearer <token>`.
//!
//! Requests and responses are JSON. Errors are `{"error": "..."}` with the usual status:
//! 400 for invalid input, 401 for a missing or wrong token, 404 for an unknown id, 409 when
//! the current state forbids the change, 503 when the database or the admin token is
//! missing.

pub mod accounts;
pub mod auth;
pub mod changes;
pub mod deliveries;
pub mod openapi;
pub mod replay;
pub mod sync;

use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};

pub use auth::AdminToken;

use crate::server::error::ApiError;

/// Largest JSON body an admin route accepts. Admin bodies hold a name and a few secrets.
const MAX_ADMIN_BODY_BYTES: usize = 64 * 1024;

/// Admin settings, stored as app data beside the `AdminToken`.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// How long the webhook secret replaced by a rotation keeps verifying deliveries.
    pub secret_grace_period: Duration,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings { secret_grace_period: Duration::from_secs(24 * 3600) }
    }
}

/// Registers the `/admin` scope. The app must provide `web::Data<AdminToken>` and
/// `web::Data<AdminSettings>`; without a token every admin route responds with 503.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(auth::require_token))
            .app_data(web::JsonConfig::default().limit(MAX_ADMIN_BODY_BYTES).error_handler(|error, _| {
                ApiError::bad_request(format!("invalid JSON body: {error}")).into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                ApiError::bad_request(format!("invalid query string: {error}")).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|error, _| {
                ApiError::not_found(format!("invalid id in the path: {error}")).into()
            }))
            .configure(accounts::configure)
            .configure(deliveries::configure)
            .configure(sync::configure)
            .configure(changes::configure)
            .route("/openapi.json", web::get().to(openapi::serve))
            .default_service(web::to(no_such_route)),
    );
}

async fn no_such_route(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no admin route for {} {}; GET /admin/openapi.json lists the routes",
        request.method(),
        request.path()
    )))
}
