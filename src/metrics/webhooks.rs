//! Metrics of the webhook endpoint that only the HTTP response shows: handling time, and
//! deliveries rejected before they were stored.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;

use super::registry::metrics;
use super::{UNKNOWN_ACCOUNT, status_class, webhook_rejected};

/// Middleware for the webhook route. Stored deliveries are counted by the handler, with
/// their outcome; this counts the others by the status they got.
pub async fn observe_webhook(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let account_id = request.match_info().get("account_id").and_then(|raw| raw.parse::<i64>().ok());

    let response = next.call(request).await?;

    let status = response.status();
    metrics()
        .webhook_handling_duration
        .with_label_values(&[status_class(status.as_u16())])
        .observe(started.elapsed().as_secs_f64());
    if let Some(outcome) = rejection_outcome(status) {
        // Only a 401 proves the account exists: the signature is checked after the lookup.
        // Other rejections may name any id, which must not become a label value.
        let account = match (status, account_id) {
            (StatusCode::UNAUTHORIZED, Some(id)) => id.to_string(),
            _ => UNKNOWN_ACCOUNT.to_string(),
        };
        webhook_rejected(&account, outcome);
    }
    Ok(response)
}

/// Names the outcome of a delivery that was not stored, or `None` for a stored one.
fn rejection_outcome(status: StatusCode) -> Option<&'static str> {
    match status {
        status if status.is_success() => None,
        StatusCode::UNAUTHORIZED => Some("rejected_signature"),
        StatusCode::NOT_FOUND => Some("rejected_unknown_account"),
        StatusCode::PAYLOAD_TOO_LARGE => Some("rejected_too_large"),
        StatusCode::REQUEST_TIMEOUT => Some("rejected_timeout"),
        StatusCode::SERVICE_UNAVAILABLE => Some("unavailable"),
        status if status.is_client_error() => Some("rejected_invalid"),
        _ => Some("error"),
    }
}
