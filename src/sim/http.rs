//! Small helpers for building responses.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder, web};
use serde_json::json;

use super::rate_limit::Decision;

/// Starts a response with `status` and the rate-limit headers of `decision`.
pub fn with_rate_headers(status: StatusCode, decision: &Decision) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header(("X-RateLimit-Limit", decision.limit.to_string()))
        .insert_header(("X-RateLimit-Remaining", decision.remaining.to_string()))
        .insert_header(("X-RateLimit-Reset", decision.reset_epoch_secs.to_string()));
    if let Some(wait) = decision.retry_after_secs {
        builder.insert_header(("Retry-After", wait.to_string()));
    }
    builder
}

/// Builds an error response with a JSON body `{"error": message}`.
pub fn error(status: StatusCode, decision: &Decision, message: impl std::fmt::Display) -> HttpResponse {
    with_rate_headers(status, decision).json(json!({ "error": message.to_string() }))
}

/// Builds a response whose connection closes before the body is complete, which is how a
/// dropped connection looks to a client. The status line may arrive, the body never does.
pub fn dropped_connection() -> HttpResponse {
    let failing = futures_util::stream::once(async {
        Err::<web::Bytes, std::io::Error>(std::io::Error::other("connection dropped by fault injection"))
    });
    HttpResponse::Ok().content_type("application/json").streaming(failing)
}

/// Parses a query string or form body into its pairs, keeping repeated keys.
pub fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    web::Query::<Vec<(String, String)>>::from_query(text)
        .map(web::Query::into_inner)
        .map_err(|error| format!("invalid query string or form body: {error}"))
}
