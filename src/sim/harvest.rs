//! The Harvest v3 endpoints: `POST /token` and `GET /v3/<resource>`.

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::SecondsFormat;
use serde_json::json;

use super::auth;
use super::faults::{self, FaultPlan};
use super::http::{dropped_connection, error, parse_pairs, with_rate_headers};
use super::list::{Page, list};
use super::query::ListQuery;
use super::resource::Resource;
use super::state::SimState;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn header(request: &HttpRequest, name: actix_web::http::header::HeaderName) -> Option<&str> {
    request.headers().get(name).and_then(|value| value.to_str().ok())
}

/// `POST /token`: OAuth2 client credentials with HTTP Basic `client_id:client_secret` and the
/// form `grant_type=client_credentials` (plus an optional `sub`, the Greenhouse user id the
/// token acts for, which the simulator accepts and ignores).
pub async fn token(request: HttpRequest, body: web::Bytes, state: web::Data<SimState>) -> HttpResponse {
    let decision = SimState::lock(&state.limiter).untracked(now_ms());

    let client_id = match auth::check_basic(header(&request, AUTHORIZATION), &state.settings.client_secret) {
        Ok(client_id) => client_id,
        Err(rejection) => {
            return with_rate_headers(StatusCode::UNAUTHORIZED, &decision)
                .json(json!({ "error": "invalid_client", "error_description": rejection.to_string() }));
        }
    };

    let form = std::str::from_utf8(&body).map_err(|_| "form body is not UTF-8".to_owned()).and_then(parse_pairs);
    let grant_type = form.as_ref().ok().and_then(|pairs| pairs.iter().find(|(key, _)| key == "grant_type")).map(|(_, value)| value.as_str());
    if grant_type != Some("client_credentials") {
        let description = format!("unsupported grant_type {grant_type:?}: expected the form field grant_type=client_credentials");
        return with_rate_headers(StatusCode::BAD_REQUEST, &decision)
            .json(json!({ "error": "unsupported_grant_type", "error_description": description }));
    }

    let (access_token, expires_at) = SimState::lock(&state.tokens).issue(&client_id, state.settings.token_ttl);
    with_rate_headers(StatusCode::OK, &decision).json(json!({
        "token_type": "Bearer",
        "access_token": access_token,
        "expires_at": expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }))
}

/// `GET /v3/<resource>`: authenticate, rate-limit, inject faults, validate, page, wait out
/// the configured latency, respond.
pub async fn list_resource(request: HttpRequest, path: web::Path<String>, state: web::Data<SimState>) -> HttpResponse {
    let now = now_ms();
    let untracked = SimState::lock(&state.limiter).untracked(now);
    let Ok(resource) = path.parse::<Resource>() else {
        return error(StatusCode::NOT_FOUND, &untracked, format!("no such resource: /v3/{path}"));
    };

    let client_id = match SimState::lock(&state.tokens).check(header(&request, AUTHORIZATION)) {
        Ok(client_id) => client_id,
        Err(rejection) => return error(StatusCode::UNAUTHORIZED, &untracked, rejection),
    };

    let decision = SimState::lock(&state.limiter).check(&client_id, now);
    if decision.retry_after_secs.is_some() {
        return error(StatusCode::TOO_MANY_REQUESTS, &decision, format!("rate limit of {} requests per 30 seconds exceeded for client '{client_id}'", decision.limit));
    }

    let params = match parse_pairs(request.query_string()) {
        Ok(params) => params,
        Err(message) => return error(StatusCode::UNPROCESSABLE_ENTITY, &decision, message),
    };
    let cursor = params.iter().find(|(key, _)| key == "cursor").map(|(_, value)| value.clone());
    let plan = faults::draw(&mut SimState::lock(&state.faults), resource, cursor.is_some());
    tokio::time::sleep(state.settings.latency + plan.extra_delay).await;
    if let Some(response) = fault_response(&plan, resource, &decision) {
        return response;
    }

    let query = match ListQuery::parse(resource, &params) {
        Ok(query) => query,
        Err(invalid) => return error(StatusCode::UNPROCESSABLE_ENTITY, &decision, invalid),
    };
    let page = match list(&SimState::lock(&state.store), resource, &query) {
        Ok(page) => page,
        Err(invalid) => return error(StatusCode::UNPROCESSABLE_ENTITY, &decision, invalid),
    };

    let per_record = state.settings.latency_per_record.saturating_mul(page.records.len() as u32);
    tokio::time::sleep(per_record).await;

    let next_cursor = if plan.repeat_cursor { cursor } else { page.next_cursor.clone() };
    page_response(&request, resource, page, next_cursor, &decision)
}

/// Returns the response that replaces the page because of a drawn fault, if any.
fn fault_response(plan: &FaultPlan, resource: Resource, decision: &super::rate_limit::Decision) -> Option<HttpResponse> {
    if plan.drop_connection {
        return Some(dropped_connection());
    }
    if let Some(status) = plan.status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Some(error(status, decision, format!("simulated {} from fault injection", status.as_u16())));
    }
    if plan.forbidden {
        return Some(error(StatusCode::FORBIDDEN, decision, format!("this credential has no permission to list /v3/{resource}")));
    }
    None
}

fn page_response(request: &HttpRequest, resource: Resource, page: Page, next_cursor: Option<String>, decision: &super::rate_limit::Decision) -> HttpResponse {
    // Harvest sends an empty Link header on the last page rather than none.
    let link = match next_cursor {
        Some(cursor) => {
            let host = request.connection_info().host().to_owned();
            format!("<http://{host}/v3/{resource}?cursor={cursor}>; rel=\"next\"")
        }
        None => String::new(),
    };
    with_rate_headers(StatusCode::OK, decision)
        .insert_header(("Link", link))
        .json(page.records)
}

