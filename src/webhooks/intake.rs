//! `POST /webhooks/greenhouse/{account_id}`: the endpoint a company registers in Greenhouse.
//!
//! Greenhouse counts anything but HTTP 200 as a failure and retries up to 7 attempts over
//! about 15 hours (after 1, 15, 60, 120, 240 and 480 minutes). So the response is 200 only
//! once the delivery is committed, and 503 when it could not be stored.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::timeout_at;

use super::signature::{self, SIGNATURE_HEADER, SignatureError};
use super::commit::DeliveryWriter;
use super::body::Body;
use super::store::VerifiedDelivery;
use crate::db::{Database, DbError, accounts};
use crate::server::error::ApiError;

/// Header that identifies a delivery; whether retries reuse it is undocumented.
pub const EVENT_ID_HEADER: &str = "Greenhouse-Event-ID";

/// Settings of the webhook endpoint.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Largest body accepted, in bytes; larger requests get 413.
    pub max_body_bytes: usize,
    /// Time allowed to receive the whole body once the handler starts reading it. A slower
    /// sender gets 408, so it cannot hold a connection open indefinitely.
    pub body_timeout: Duration,
}

/// Receives one delivery: limit, look up, verify, parse, store and apply, respond.
pub async fn receive(
    db: web::Data<Database>,
    writer: web::Data<DeliveryWriter>,
    settings: web::Data<WebhookSettings>,
    account: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let account_id = parse_account_id(&account)?;

    let deadline = tokio::time::Instant::now() + settings.body_timeout;
    let body = read_body(&request, payload, settings.max_body_bytes, deadline)
        .await
        .inspect_err(|error| log_unread_body(account_id, error))?;

    let now = Utc::now();
    let keys = db
        .run(move |conn| accounts::webhook_keys(conn, account_id, now).map_err(DbError::from))
        .await?;
    let keys = keys.ok_or_else(|| ApiError::not_found(format!("account {account_id} not found or disabled")))?;

    let header = request.headers().get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    let secrets = std::iter::once(keys.current.as_bytes()).chain(keys.previous.as_deref().map(str::as_bytes));
    signature::verify_any(secrets, &body, header).map_err(|error| reject_signature(account_id, error))?;

    let delivery = parse_delivery(account_id, &request, body)?;
    let action = delivery.action.clone();
    let stored = writer.store(delivery).await?;
    crate::metrics::webhook_stored(account_id, &action, stored.outcome.as_str(), started.elapsed());

    tracing::info!(
        account.id = account_id,
        delivery.id = stored.delivery_id,
        action = %action,
        outcome = stored.outcome.as_str(),
        written = stored.effects.written,
        deleted = stored.effects.deleted,
        duration_ms = started.elapsed().as_millis() as u64,
        "webhook delivery stored"
    );
    if let Some(error) = &stored.error {
        tracing::warn!(account.id = account_id, delivery.id = stored.delivery_id, error = %error, "webhook delivery failed to apply; stored for replay");
    }
    Ok(HttpResponse::Ok().json(stored))
}

/// Account ids are positive integers; anything else, such as a path traversal attempt,
/// names no account.
fn parse_account_id(raw: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::not_found(format!("account '{}' not found: account ids are positive integers", truncate(raw, 40)))),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// Reads the body up to `limit` bytes, stopping as soon as it is exceeded, so an oversized
/// or endless body is never buffered whole. A body that is not complete by `deadline` gets
/// 408, so a sender that trickles bytes cannot hold the request open.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    deadline: tokio::time::Instant,
) -> Result<web::Bytes, ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than the limit of {limit} bytes"));

    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        discard_rest(&mut payload, limit, deadline).await;
        return Err(too_large());
    }

    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    loop {
        let next = timeout_at(deadline, payload.next()).await.map_err(|_| body_timed_out(body.len()))?;
        let Some(chunk) = next else {
            break;
        };
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            discard_rest(&mut payload, limit, deadline).await;
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn body_timed_out(received: usize) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!("timed out reading the request body after {received} bytes; send the whole body without pausing"),
    )
}

/// Logs a body that timed out, with its account; other read failures are the client's to
/// see and are not logged.
fn log_unread_body(account_id: i64, error: &ApiError) {
    if error.status == StatusCode::REQUEST_TIMEOUT {
        tracing::warn!(account.id = account_id, error = %error, "webhook body read timed out");
    }
}

/// Reads and drops what remains of an oversized body, up to a few times the limit and until
/// `deadline`, one chunk at a time. A client that is still sending when the server responds
/// and closes gets a broken pipe instead of the 413, so the body is drained first when that
/// is cheap.
async fn discard_rest(payload: &mut web::Payload, limit: usize, deadline: tokio::time::Instant) {
    let mut discarded = 0usize;
    let budget = limit.saturating_mul(4);
    while discarded < budget {
        match timeout_at(deadline, payload.next()).await {
            Ok(Some(Ok(chunk))) => discarded += chunk.len(),
            _ => return,
        }
    }
}

fn reject_signature(account_id: i64, error: SignatureError) -> ApiError {
    tracing::warn!(account.id = account_id, reason = %error, "webhook delivery rejected: bad signature");
    ApiError::unauthorized(format!("{error}; sign the raw body with HMAC-SHA256 and send 'Signature: sha256 <hex>'"))
}

/// Reads the `action` of a body that must be a valid JSON object.
fn parse_head(body: &[u8]) -> Result<Option<Value>, ApiError> {
    match super::body::check(body) {
        Ok(Body::Object { action }) => Ok(action),
        Ok(Body::NotObject) => Err(ApiError::bad_request("body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("body is not valid JSON: {e}"))),
    }
}

/// Parses a verified body. It must be a JSON object with a string `action`.
fn parse_delivery(account_id: i64, request: &HttpRequest, body: web::Bytes) -> Result<VerifiedDelivery, ApiError> {
    let action = match parse_head(&body)? {
        // PostgreSQL text cannot hold NUL (`\u0000`), so storing such an action would fail
        // with 503 on every retry. No documented action name contains control characters.
        Some(Value::String(action)) if action.chars().any(char::is_control) => {
            return Err(ApiError::bad_request("'action' must not contain control characters such as \\u0000"));
        }
        Some(Value::String(action)) if !action.is_empty() => action,
        Some(_) => return Err(ApiError::bad_request("'action' must be a non-empty string")),
        None => return Err(ApiError::bad_request("body has no 'action' field")),
    };

    // serde_json rejects invalid UTF-8, so this error is a second line of defence.
    let body = String::from_utf8(body.to_vec()).map_err(|_| ApiError::bad_request("body is not valid UTF-8"))?;
    let event_id = request.headers().get(super::intake::EVENT_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);

    Ok(VerifiedDelivery { account_id, event_id, action, body, received_at: Utc::now() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(body: &str) -> String {
        match parse_head(body.as_bytes()) {
            Ok(action) => panic!("{body} was accepted with action {action:?}"),
            Err(error) => error.message,
        }
    }

    #[test]
    fn non_object_bodies_rejected() {
        assert!(rejection("action=ping").contains("not valid JSON"));
        assert!(rejection(r#"{"action": "ping""#).contains("not valid JSON"));
        assert_eq!(rejection(r#"["ping"]"#), "body must be a JSON object");
        assert_eq!(rejection("null"), "body must be a JSON object");
    }

    #[test]
    fn out_of_range_number_rejected() {
        assert!(rejection(r#"{"action": "ping", "payload": {"id": 1e400}}"#).contains("out of range"));
    }
}
