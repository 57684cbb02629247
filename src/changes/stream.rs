//! `GET /accounts/{id}/changes/stream`: the feed as Server-Sent Events.
//!
//! Each change is one event, `id: <seq>`, `event: change`, `data: <change as JSON>`, so a
//! client that reconnects with `Last-Event-ID` continues after the last change it received.
//! A comment line goes out after `KEEP_ALIVE` without events, which keeps proxies from
//! closing the connection and lets the server notice a client that went away.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream;
use serde_json::json;
use tokio::sync::watch;

use super::http::{self, ClientGuard, POLL_PERIOD};
use super::page::{FeedChange, PageRead};
use crate::db::Database;
use crate::server::error::ApiError;

/// Silence after which a comment line is sent.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Changes read per query while catching up.
const BATCH: i64 = http::DEFAULT_LIMIT;

/// State of one open stream between two events.
struct StreamState {
    db: Database,
    account_id: i64,
    after: i64,
    include_record: bool,
    newest: watch::Receiver<i64>,
    /// First page, read before the response starts so that a purged cursor gets a 410 status.
    first: Option<Vec<FeedChange>>,
    last_sent: Instant,
    finished: bool,
    _guard: ClientGuard,
}

pub(super) async fn stream_changes(
    request: HttpRequest,
    db: web::Data<Database>,
    path: web::Path<i64>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let account_id = path.into_inner();
    let params = http::parse_params(&query, &["after", "include"])?;
    // A reconnecting client sends the last id it received, which wins over the URL's `after`.
    let after = http::last_event_id(&request)?.unwrap_or(params.after);
    http::require_account(&db, account_id).await?;

    let newest = super::subscribe(account_id);
    let read = http::read_page(&db, account_id, after, BATCH, params.include_record).await?;
    let first = match http::changes_or_response(account_id, after, read) {
        Ok(changes) => changes,
        Err(response) => return Ok(response),
    };

    let state = StreamState {
        db: db.get_ref().clone(),
        account_id,
        after,
        include_record: params.include_record,
        newest,
        first: Some(first),
        last_sent: Instant::now(),
        finished: false,
        _guard: ClientGuard::new("stream"),
    };
    let events = stream::unfold(state, |mut state| async move {
        let chunk = next_chunk(&mut state).await?;
        Some((Ok::<_, actix_web::Error>(chunk), state))
    });

    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        // Tells nginx not to buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}

/// Waits for the next bytes to send: events, a keep-alive comment, or a last `error`
/// event. Returns `None` once the stream has ended.
async fn next_chunk(state: &mut StreamState) -> Option<Bytes> {
    if state.finished {
        return None;
    }
    if let Some(first) = state.first.take()
        && !first.is_empty()
    {
        return Some(encode_changes(state, &first));
    }

    loop {
        state.newest.borrow_and_update();
        let read = http::read_page(&state.db, state.account_id, state.after, BATCH, state.include_record).await;
        match read {
            Ok(PageRead::Changes(changes)) if !changes.is_empty() => return Some(encode_changes(state, &changes)),
            Ok(PageRead::Changes(_)) => {}
            Ok(PageRead::Purged { oldest_available_seq }) => {
                let data = json!({
                    "error": "the changes after the last event were purged; read the tables again",
                    "oldest_available_seq": oldest_available_seq,
                });
                return Some(finish_with_error(state, data));
            }
            Ok(PageRead::Ahead { newest_seq }) => {
                let data = json!({
                    "error": "the cursor is beyond the newest change; read the tables again",
                    "newest_seq": newest_seq,
                });
                return Some(finish_with_error(state, data));
            }
            Err(error) => {
                tracing::warn!(account.id = state.account_id, error = %error, "change stream stopped: reading the feed failed");
                let data = json!({ "error": "reading the feed failed; reconnect to resume" });
                return Some(finish_with_error(state, data));
            }
        }

        if state.last_sent.elapsed() >= KEEP_ALIVE {
            state.last_sent = Instant::now();
            return Some(Bytes::from_static(b": keep-alive\n\n"));
        }
        if let Ok(Err(_)) = tokio::time::timeout(POLL_PERIOD, state.newest.changed()).await {
            // The sender lives as long as the process; sleeping avoids a busy loop anyway.
            tokio::time::sleep(POLL_PERIOD).await;
        }
    }
}

fn encode_changes(state: &mut StreamState, changes: &[FeedChange]) -> Bytes {
    let mut text = String::new();
    for change in changes {
        let data = serde_json::to_string(change).unwrap_or_else(|_| "{}".to_string());
        text.push_str(&format!("id: {}\nevent: change\ndata: {data}\n\n", change.change.seq));
        state.after = change.change.seq;
    }
    state.last_sent = Instant::now();
    Bytes::from(text)
}

/// Ends the stream with an `error` event carrying `data`.
fn finish_with_error(state: &mut StreamState, data: serde_json::Value) -> Bytes {
    state.finished = true;
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}
