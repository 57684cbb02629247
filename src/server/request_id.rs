//! Request ids: every request runs in a tracing span that carries an id. The id comes from
//! the caller's `X-Request-Id` when it is well formed and is generated otherwise. The
//! response echoes it, so one id ties a caller's request to every log line it caused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Maximum length of a request id taken from a caller; longer ones are replaced.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// Maximum length of a path written to the log, so that a hostile path cannot flood it.
const MAX_LOGGED_PATH_CHARS: usize = 200;

/// Requests of this process whose handling has started and not finished, all servers
/// together. Shutdown waits for it to reach zero.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Counts one request in flight until dropped, also when the request's future is dropped.
struct InFlightGuard;

impl InFlightGuard {
    fn enter() -> InFlightGuard {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlightGuard
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Returns the number of requests being handled now.
pub fn requests_in_flight() -> usize {
    IN_FLIGHT.load(Ordering::SeqCst)
}

/// Waits until no request is being handled, or `timeout` passes. Returns the number still
/// in flight.
pub async fn wait_for_requests(timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    while requests_in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    requests_in_flight()
}

pub async fn trace_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_valid_request_id(id))
        .map_or_else(generate_request_id, str::to_string);

    // The query string is left out: it is not needed to follow a request and may carry
    // filter values.
    let path: String = request.path().chars().take(MAX_LOGGED_PATH_CHARS).collect();
    let span = tracing::info_span!("request", request.id = %request_id, method = %request.method(), path = %path);
    let started = Instant::now();
    let in_flight = InFlightGuard::enter();

    let mut response = next.call(request).instrument(span.clone()).await?;
    drop(in_flight);

    span.in_scope(|| {
        tracing::debug!(status = response.status().as_u16(), duration_ms = started.elapsed().as_millis() as u64, "request finished");
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(response)
}

/// Accepts ids of letters, digits, `-`, `_` and `.`, as UUIDs and most tracing systems use.
fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_CHARS
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn generate_request_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_valid() {
        assert!(is_valid_request_id("0f8fad5b-d9cb-469f-a165-70867728950e"));
    }

    #[test]
    fn spaces_and_newlines_rejected() {
        assert!(!is_valid_request_id("a b"));
        assert!(!is_valid_request_id("a\nb"));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id(&"a".repeat(129)));
    }

    #[test]
    fn generated_id_is_valid() {
        assert!(is_valid_request_id(&generate_request_id()));
    }
}
