//! Account routes: create, list, show, update Harvest credentials, rotate the webhook
//! secret, disable and enable, turn the targeted refresh off and on, delete.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AdminSettings;
use crate::db::accounts::{self, Account, HarvestCredentials, NewAccount};
use crate::db::{Database, DbError};
use crate::server::error::ApiError;
use crate::sweep::SweepService;

/// Maximum length of an account name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// Maximum length of a secret, in bytes; Greenhouse's own secret keys are far shorter.
const MAX_SECRET_BYTES: usize = 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts", web::post().to(create))
        .route("/accounts", web::get().to(list))
        .route("/accounts/{id}", web::get().to(show))
        .route("/accounts/{id}", web::delete().to(delete))
        .route("/accounts/{id}/credentials", web::put().to(set_credentials))
        .route("/accounts/{id}/credentials", web::delete().to(clear_credentials))
        .route("/accounts/{id}/webhook-secret/rotate", web::post().to(rotate_secret))
        .route("/accounts/{id}/disable", web::post().to(disable))
        .route("/accounts/{id}/enable", web::post().to(enable))
        .route("/accounts/{id}/refresh/disable", web::post().to(disable_refresh))
        .route("/accounts/{id}/refresh/enable", web::post().to(enable_refresh));
}

/// Body of `POST /admin/accounts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Display name of the company.
    pub name: String,
    /// Secret key to enter in Greenhouse's web hook form. Omit it to have one generated; it
    /// is then returned once, in this response only.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Harvest v3 OAuth client id; requires `harvest_client_secret`.
    #[serde(default)]
    pub harvest_client_id: Option<String>,
    #[serde(default)]
    pub harvest_client_secret: Option<String>,
    /// Greenhouse user id sent as `sub` when requesting Harvest tokens.
    #[serde(default)]
    pub harvest_user_id: Option<String>,
}

/// An account with, right after creation or rotation, the generated webhook secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountWithSecret {
    #[serde(flatten)]
    pub account: Account,
    /// The generated webhook secret. Present only when the server generated it; no later
    /// response shows it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// Body of `PUT /admin/accounts/{id}/credentials`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCredentials {
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub user_id: Option<String>,
}

/// Body of `POST /admin/accounts/{id}/webhook-secret/rotate`; both fields are optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// The new secret; omit it to have one generated and returned once.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Seconds the replaced secret keeps verifying deliveries; the server's
    /// `--secret-grace-period-secs` when omitted.
    #[serde(default)]
    pub grace_period_secs: Option<u64>,
}

#[utoipa::path(
    post, path = "/admin/accounts", tag = "accounts",
    request_body = CreateAccount,
    responses(
        (status = 201, description = "Account created; register `webhook_path` in Greenhouse", body = AccountWithSecret),
        (status = 400, description = "Invalid field"),
    )
)]
pub async fn create(db: web::Data<Database>, body: web::Json<CreateAccount>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = valid_name(&body.name)?;
    let (webhook_secret, generated) = secret_or_generated(body.webhook_secret)?;
    let credentials = optional_credentials(body.harvest_client_id, body.harvest_client_secret, body.harvest_user_id)?;

    let new = NewAccount {
        name,
        webhook_secret,
        harvest_client_id: credentials.as_ref().map(|c| c.client_id.clone()),
        harvest_client_secret: credentials.as_ref().map(|c| c.client_secret.clone()),
        harvest_user_id: credentials.and_then(|c| c.user_id),
    };
    let account = db.run(move |conn| accounts::create(conn, &new, Utc::now()).map_err(DbError::from)).await?;
    tracing::info!(account.id = account.id, "account created through the admin API");

    let created = AccountWithSecret { account, webhook_secret: generated };
    Ok(HttpResponse::Created().json(created))
}

#[utoipa::path(
    get, path = "/admin/accounts", tag = "accounts",
    responses((status = 200, description = "Every account, oldest first", body = Vec<Account>))
)]
pub async fn list(db: web::Data<Database>) -> Result<HttpResponse, ApiError> {
    let all = db.run(|conn| accounts::list(conn).map_err(DbError::from)).await?;
    Ok(HttpResponse::Ok().json(all))
}

#[utoipa::path(
    get, path = "/admin/accounts/{id}", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses((status = 200, body = Account), (status = 404, description = "No such account"))
)]
pub async fn show(db: web::Data<Database>, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let account = find_account(&db, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(account))
}

#[utoipa::path(
    delete, path = "/admin/accounts/{id}", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 204, description = "Account deleted with its records, deliveries and sweep state"),
        (status = 404, description = "No such account"),
    )
)]
pub async fn delete(
    db: web::Data<Database>,
    sweeps: Option<web::Data<SweepService>>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    stop_sweep(sweeps.as_ref().map(|data| data.get_ref()), account_id);
    let deleted = db.run(move |conn| accounts::delete(conn, account_id).map_err(DbError::from)).await?;
    if !deleted {
        return Err(account_not_found(account_id));
    }
    tracing::info!(account.id = account_id, "account deleted with its data");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    put, path = "/admin/accounts/{id}/credentials", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    request_body = SetCredentials,
    responses((status = 200, body = Account), (status = 400, description = "Invalid field"), (status = 404, description = "No such account"))
)]
pub async fn set_credentials(
    db: web::Data<Database>,
    path: web::Path<i64>,
    body: web::Json<SetCredentials>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    let body = body.into_inner();
    let credentials = optional_credentials(Some(body.client_id), Some(body.client_secret), body.user_id)?;
    let updated = db
        .run(move |conn| accounts::set_harvest_credentials(conn, account_id, credentials.as_ref(), Utc::now()).map_err(DbError::from))
        .await?;
    finish_update(&db, account_id, updated, "Harvest credentials updated").await
}

#[utoipa::path(
    delete, path = "/admin/accounts/{id}/credentials", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses((status = 200, description = "Credentials removed; sweeps stop for this account", body = Account), (status = 404, description = "No such account"))
)]
pub async fn clear_credentials(db: web::Data<Database>, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    let updated = db
        .run(move |conn| accounts::set_harvest_credentials(conn, account_id, None, Utc::now()).map_err(DbError::from))
        .await?;
    finish_update(&db, account_id, updated, "Harvest credentials removed").await
}

#[utoipa::path(
    post, path = "/admin/accounts/{id}/webhook-secret/rotate", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    request_body(content = RotateSecret, description = "Optional; an empty body generates a secret"),
    responses(
        (status = 200, description = "New secret in force; the old one verifies deliveries until `previous_secret_expires_at`", body = AccountWithSecret),
        (status = 404, description = "No such account"),
    )
)]
pub async fn rotate_secret(
    db: web::Data<Database>,
    settings: web::Data<AdminSettings>,
    path: web::Path<i64>,
    body: Option<web::Json<RotateSecret>>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let (secret, generated) = secret_or_generated(body.webhook_secret)?;
    let grace_secs = body.grace_period_secs.unwrap_or(settings.secret_grace_period.as_secs());
    let grace = chrono::Duration::try_seconds(i64::try_from(grace_secs).unwrap_or(i64::MAX))
        .filter(|grace| *grace <= chrono::Duration::days(366))
        .ok_or_else(|| ApiError::bad_request(format!("grace_period_secs {grace_secs} is too long; use at most one year")))?;

    let now = Utc::now();
    let rotated = db
        .run(move |conn| accounts::rotate_webhook_secret(conn, account_id, &secret, now + grace, now).map_err(DbError::from))
        .await?;
    if !rotated {
        return Err(account_not_found(account_id));
    }
    tracing::info!(account.id = account_id, grace_secs, "webhook secret rotated");
    let account = find_account(&db, account_id).await?;
    Ok(HttpResponse::Ok().json(AccountWithSecret { account, webhook_secret: generated }))
}

#[utoipa::path(
    post, path = "/admin/accounts/{id}/disable", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses((status = 200, description = "Deliveries now get 404 and sweeps stop", body = Account), (status = 404, description = "No such account"))
)]
pub async fn disable(
    db: web::Data<Database>,
    sweeps: Option<web::Data<SweepService>>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    stop_sweep(sweeps.as_ref().map(|data| data.get_ref()), account_id);
    set_disabled(db, account_id, true).await
}

/// Asks the account's sweep running in this process, if any, to stop at its next page. A
/// sweep on another replica stops when it next fails to read the account's credentials.
fn stop_sweep(sweeps: Option<&SweepService>, account_id: i64) {
    if let Some(progress) = sweeps.and_then(|sweeps| sweeps.progress(account_id)) {
        progress.cancel();
        tracing::info!(account.id = account_id, "running sweep asked to stop");
    }
}

#[utoipa::path(
    post, path = "/admin/accounts/{id}/enable", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses((status = 200, body = Account), (status = 404, description = "No such account"))
)]
pub async fn enable(db: web::Data<Database>, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    set_disabled(db, path.into_inner(), false).await
}

#[utoipa::path(
    post, path = "/admin/accounts/{id}/refresh/disable", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "Webhooks no longer queue targeted refreshes, and the queue is emptied", body = Account),
        (status = 404, description = "No such account")
    )
)]
pub async fn disable_refresh(db: web::Data<Database>, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    set_refresh(db, path.into_inner(), false).await
}

#[utoipa::path(
    post, path = "/admin/accounts/{id}/refresh/enable", tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses((status = 200, description = "Records touched by webhooks are re-read from Harvest again", body = Account), (status = 404, description = "No such account"))
)]
pub async fn enable_refresh(db: web::Data<Database>, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    set_refresh(db, path.into_inner(), true).await
}

async fn set_refresh(db: web::Data<Database>, account_id: i64, enabled: bool) -> Result<HttpResponse, ApiError> {
    let updated = db
        .run(move |conn| conn.write_transaction(|conn| accounts::set_refresh(conn, account_id, enabled, Utc::now())).map_err(DbError::from))
        .await?;
    let message = if enabled { "targeted refresh turned on" } else { "targeted refresh turned off" };
    finish_update(&db, account_id, updated, message).await
}

async fn set_disabled(db: web::Data<Database>, account_id: i64, disabled: bool) -> Result<HttpResponse, ApiError> {
    let updated = db
        .run(move |conn| accounts::set_disabled(conn, account_id, disabled, Utc::now()).map_err(DbError::from))
        .await?;
    finish_update(&db, account_id, updated, if disabled { "account disabled" } else { "account enabled" }).await
}

/// Returns the account as it is after an update, or 404 when no row was updated.
async fn finish_update(db: &Database, account_id: i64, updated: bool, message: &'static str) -> Result<HttpResponse, ApiError> {
    if !updated {
        return Err(account_not_found(account_id));
    }
    tracing::info!(account.id = account_id, "{message}");
    Ok(HttpResponse::Ok().json(find_account(db, account_id).await?))
}

async fn find_account(db: &Database, account_id: i64) -> Result<Account, ApiError> {
    let found = db.run(move |conn| accounts::find(conn, account_id).map_err(DbError::from)).await?;
    found.ok_or_else(|| account_not_found(account_id))
}

fn account_not_found(account_id: i64) -> ApiError {
    ApiError::not_found(format!("account {account_id} not found"))
}

fn valid_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "'name' must be 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(name.to_string())
}

/// Returns the given secret after checking it, or a generated one, which is also returned
/// as the second value so the caller can show it once.
fn secret_or_generated(given: Option<String>) -> Result<(String, Option<String>), ApiError> {
    match given {
        Some(secret) => Ok((valid_secret("webhook_secret", secret)?, None)),
        None => {
            let secret = hex::encode(rand::random::<[u8; 32]>());
            Ok((secret.clone(), Some(secret)))
        }
    }
}

fn valid_secret(field: &str, secret: String) -> Result<String, ApiError> {
    if secret.is_empty() || secret.len() > MAX_SECRET_BYTES || secret.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "'{field}' must be 1 to {MAX_SECRET_BYTES} bytes without control characters"
        )));
    }
    Ok(secret)
}

/// Checks Harvest credentials given as optional fields: both id and secret, or neither.
fn optional_credentials(
    client_id: Option<String>,
    client_secret: Option<String>,
    user_id: Option<String>,
) -> Result<Option<HarvestCredentials>, ApiError> {
    match (client_id, client_secret) {
        (None, None) if user_id.is_none() => Ok(None),
        (Some(client_id), Some(client_secret)) => {
            let client_id = valid_secret("client_id", client_id.trim().to_string())?;
            let client_secret = valid_secret("client_secret", client_secret)?;
            let user_id = user_id.map(|id| id.trim().to_string()).filter(|id| !id.is_empty());
            Ok(Some(HarvestCredentials { client_id, client_secret, user_id }))
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Harvest credentials need both a client id and a client secret (and the user id only with them)",
        )),
    }
}
