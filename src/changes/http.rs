//! The feed's HTTP routes, relative to the authenticated `/admin` scope.
//!
//! `GET /accounts/{id}/changes?after=SEQ&limit=N&wait=SECONDS&include=record` returns
//! `{"changes": [...], "next_after": SEQ}`. `GET /accounts/{id}/changes/stream` sends the same
//! changes as Server-Sent Events, resuming after `Last-Event-ID` or `after`. A cursor whose
//! following changes were purged gets 410 with `oldest_available_seq`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::page::{self, FeedChange, PageRead};
use super::stream;
use crate::db::{Database, DbError, accounts};
use crate::metrics::changes as metrics;
use crate::server::error::ApiError;

/// Changes per response when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest `limit` accepted.
pub const MAX_LIMIT: i64 = 1000;
/// Longest `wait` accepted, in seconds; proxies commonly close idle requests after 60 s.
pub const MAX_WAIT_SECS: u64 = 60;
/// How often a waiting reader looks again without a wake, so that changes committed by
/// another replica reach it within about this time.
pub(super) const POLL_PERIOD: Duration = Duration::from_secs(1);

/// Counts one connected client in the feed's client gauge while alive.
pub(super) struct ClientGuard(&'static str);

impl ClientGuard {
    /// Counts a client of `mode`: `long_poll` or `stream`.
    pub(super) fn new(mode: &'static str) -> ClientGuard {
        metrics::client_connected(mode, 1);
        ClientGuard(mode)
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        metrics::client_connected(self.0, -1);
    }
}

/// Registers the routes, relative to the authenticated `/admin` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    metrics::register();
    cfg.route("/accounts/{id}/changes", web::get().to(list_changes))
        .route("/accounts/{id}/changes/stream", web::get().to(stream::stream_changes));
}

/// Query parameters of both routes, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedParams {
    pub after: i64,
    pub limit: i64,
    pub wait: Duration,
    pub include_record: bool,
}

/// Checks the query parameters. `allowed` lists the names the route takes.
pub fn parse_params(query: &HashMap<String, String>, allowed: &[&str]) -> Result<FeedParams, ApiError> {
    if let Some(unknown) = query.keys().find(|name| !allowed.contains(&name.as_str())) {
        return Err(ApiError::bad_request(format!("unknown query parameter '{unknown}'; expected one of {}", allowed.join(", "))));
    }

    let after = match query.get("after") {
        Some(text) => parse_after(text, "after")?,
        None => 0,
    };
    let limit = match query.get("limit") {
        Some(text) => match text.parse::<i64>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => return Err(ApiError::bad_request(format!("invalid limit '{text}'; expected an integer from 1 to {MAX_LIMIT}"))),
        },
        None => DEFAULT_LIMIT,
    };
    let wait = match query.get("wait") {
        Some(text) => match text.parse::<u64>() {
            Ok(secs) if secs <= MAX_WAIT_SECS => Duration::from_secs(secs),
            _ => return Err(ApiError::bad_request(format!("invalid wait '{text}'; expected whole seconds from 0 to {MAX_WAIT_SECS}"))),
        },
        None => Duration::ZERO,
    };
    let include_record = match query.get("include").map(String::as_str) {
        None | Some("") => false,
        Some("record") => true,
        Some(other) => return Err(ApiError::bad_request(format!("invalid include '{other}'; the only value is 'record'"))),
    };
    Ok(FeedParams { after, limit, wait, include_record })
}

/// Parses a sequence number a consumer sends back: `after` or `Last-Event-ID`.
pub fn parse_after(text: &str, name: &str) -> Result<i64, ApiError> {
    match text.trim().parse::<i64>() {
        Ok(after) if after >= 0 => Ok(after),
        _ => Err(ApiError::bad_request(format!("invalid {name} '{text}'; expected a sequence number (an integer, 0 or more)"))),
    }
}

pub(super) async fn require_account(db: &Database, account_id: i64) -> Result<(), ApiError> {
    let found = db.run(move |conn| accounts::find(conn, account_id).map_err(DbError::from)).await?;
    match found {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!("account {account_id} not found"))),
    }
}

/// Reads one page on the blocking pool.
pub(super) async fn read_page(db: &Database, account_id: i64, after: i64, limit: i64, include_record: bool) -> Result<PageRead, DbError> {
    db.run(move |conn| page::read(conn, account_id, after, limit, include_record)).await
}

/// Returns the changes read, or the error response for a cursor the feed cannot continue
/// from.
pub(super) fn changes_or_response(account_id: i64, after: i64, read: PageRead) -> Result<Vec<FeedChange>, HttpResponse> {
    match read {
        PageRead::Changes(changes) => Ok(changes),
        PageRead::Purged { oldest_available_seq } => Err(HttpResponse::build(StatusCode::GONE).json(json!({
            "error": format!(
                "changes of account {account_id} after {after} were purged; the oldest available is {oldest_available_seq}, so read the tables again and continue from the feed's newest number"
            ),
            "oldest_available_seq": oldest_available_seq,
        }))),
        PageRead::Ahead { newest_seq } => Err(HttpResponse::build(StatusCode::CONFLICT).json(json!({
            "error": format!(
                "after {after} is beyond account {account_id}'s newest change {newest_seq}; the cursor belongs to another database, so read the tables again"
            ),
            "newest_seq": newest_seq,
        }))),
    }
}

async fn list_changes(
    db: web::Data<Database>,
    path: web::Path<i64>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    let params = parse_params(&query, &["after", "limit", "wait", "include"])?;
    require_account(&db, account_id).await?;

    let read = wait_for_changes(&db, account_id, params).await?;
    let changes = match changes_or_response(account_id, params.after, read) {
        Ok(changes) => changes,
        Err(response) => return Ok(response),
    };
    let next_after = changes.last().map_or(params.after, |last: &FeedChange| last.change.seq);
    Ok(HttpResponse::Ok().json(json!({ "changes": changes, "next_after": next_after })))
}

/// Reads after the cursor, and while nothing is there and `wait` has not passed, waits for
/// a commit in this process or for the next `POLL_PERIOD`, then reads again.
async fn wait_for_changes(db: &Database, account_id: i64, params: FeedParams) -> Result<PageRead, DbError> {
    let deadline = Instant::now() + params.wait;
    // Subscribing before the first read means a commit between that read and the wait
    // still wakes the wait.
    let mut newest = super::subscribe(account_id);
    let mut guard = None;
    loop {
        newest.borrow_and_update();
        let read = read_page(db, account_id, params.after, params.limit, params.include_record).await?;
        let empty = matches!(&read, PageRead::Changes(changes) if changes.is_empty());
        let now = Instant::now();
        if !empty || now >= deadline {
            return Ok(read);
        }

        guard.get_or_insert_with(|| ClientGuard::new("long_poll"));
        let pause = (deadline - now).min(POLL_PERIOD);
        if let Ok(Err(_)) = tokio::time::timeout(pause, newest.changed()).await {
            // The sender lives as long as the process, so a closed channel is not expected.
            // Sleeping keeps one from turning this loop into a busy loop.
            tokio::time::sleep(pause).await;
        }
    }
}

/// Returns the `Last-Event-ID` header, if the client sent one.
pub(super) fn last_event_id(request: &HttpRequest) -> Result<Option<i64>, ApiError> {
    match request.headers().get("Last-Event-ID") {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().map_err(|_| ApiError::bad_request("invalid Last-Event-ID; expected a sequence number"))?;
            parse_after(text, "Last-Event-ID").map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const ALL: &[&str] = &["after", "limit", "wait", "include"];

    #[test]
    fn defaults_apply_without_parameters() {
        let params = parse_params(&query(&[]), ALL).expect("valid");
        assert_eq!(params, FeedParams { after: 0, limit: DEFAULT_LIMIT, wait: Duration::ZERO, include_record: false });
    }

    #[test]
    fn limit_outside_range_is_rejected() {
        for bad in ["0", "1001", "-5", "ten"] {
            let error = parse_params(&query(&[("limit", bad)]), ALL).expect_err(bad);
            assert!(error.message.contains("limit"), "{}", error.message);
        }
    }

    #[test]
    fn negative_after_is_rejected() {
        let error = parse_params(&query(&[("after", "-1")]), ALL).expect_err("negative");
        assert!(error.message.contains("after '-1'"), "{}", error.message);
    }

    #[test]
    fn long_wait_is_rejected() {
        assert!(parse_params(&query(&[("wait", "61")]), ALL).is_err());
        assert_eq!(parse_params(&query(&[("wait", "60")]), ALL).expect("valid").wait, Duration::from_secs(60));
    }

    #[test]
    fn unknown_parameter_is_rejected() {
        let error = parse_params(&query(&[("wait", "1")]), &["after", "include"]).expect_err("stream takes no wait");
        assert!(error.message.contains("'wait'"), "{}", error.message);
    }

    #[test]
    fn include_takes_only_record() {
        assert!(parse_params(&query(&[("include", "record")]), ALL).expect("valid").include_record);
        assert!(parse_params(&query(&[("include", "everything")]), ALL).is_err());
    }
}
