//! Sending one Harvest request under the budget, with token refresh, 429 waits and retries.

use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;
use serde_json::error::Category;
use tracing::{debug, info, warn};

use super::budget::BudgetPermit;
use super::client::HarvestClient;
use super::error::{HarvestError, json_error_detail, shorten};
use super::link::next_link;
use super::pages::RawRecord;
use super::retry::{backoff, millis, retry_after};
use super::token::AccessToken;

/// Records of one successful list response and its `rel="next"` link as written.
pub(crate) struct FetchedRecords {
    pub(crate) records: Vec<RawRecord>,
    pub(crate) next_link: Option<String>,
}

/// Result of one attempt, before the retry policy is applied.
enum Attempt {
    Done(FetchedRecords),
    Unauthorized,
    RateLimited(HeaderMap),
    Failed(HarvestError),
}

/// Counts of what went wrong so far in one call.
#[derive(Default)]
struct CallState {
    failures: u32,
    rate_limit_waits: u32,
    token_rejected: bool,
}

impl HarvestClient {
    /// GETs `url` and returns its records (a JSON array) and `next` link.
    ///
    /// Every attempt takes one request from the budget. A 401 drops the token and tries once
    /// more with a fresh one; a second 401 fails as `Authentication`. A 429 blocks the whole
    /// account for `Retry-After`. 5xx, timeouts, dropped connections and bodies that do not
    /// parse are retried with backoff up to `max_retries`. A 403 fails as `Forbidden` and
    /// other 4xx as `Status`, without retry.
    pub(crate) async fn fetch_records(
        &self,
        resource: &str,
        url: &Url,
    ) -> Result<FetchedRecords, HarvestError> {
        let mut call = CallState::default();
        loop {
            let token = self.inner.tokens.get().await?;
            let permit = self.inner.budget.acquire().await;
            if !permit.waited().is_zero() {
                debug!(
                    account.id = self.inner.account_id,
                    resource,
                    wait_ms = millis(permit.waited()),
                    "waited for room in the request budget"
                );
            }

            match self.attempt(resource, url, &token, permit).await {
                Attempt::Done(fetched) => return Ok(fetched),
                Attempt::Unauthorized => self.on_unauthorized(resource, &token, &mut call).await?,
                Attempt::RateLimited(headers) => self.on_rate_limited(resource, &headers, &mut call)?,
                Attempt::Failed(error) => self.on_failure(resource, error, &mut call).await?,
            }
        }
    }

    async fn attempt(
        &self,
        resource: &str,
        url: &Url,
        token: &AccessToken,
        permit: BudgetPermit,
    ) -> Attempt {
        let started = std::time::Instant::now();
        let sent = self.inner.http.get(url.clone()).bearer_auth(token.secret()).send().await;
        if sent.is_err() { crate::metrics::harvest_response(self.inner.account_id, resource, 0, started.elapsed(), self.inner.budget.remaining()); }
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Attempt::Failed(transport_error(resource, error)),
        };

        permit.observe(response.headers());
        let status = response.status();
        crate::metrics::harvest_response(self.inner.account_id, resource, status.as_u16(), started.elapsed(), self.inner.budget.remaining());
        match status {
            StatusCode::UNAUTHORIZED => return Attempt::Unauthorized,
            StatusCode::FORBIDDEN => {
                return Attempt::Failed(HarvestError::Forbidden { resource: resource.to_owned() });
            }
            StatusCode::TOO_MANY_REQUESTS => return Attempt::RateLimited(response.headers().clone()),
            _ => {}
        }
        if status.is_server_error() {
            return Attempt::Failed(HarvestError::ServerError {
                resource: resource.to_owned(),
                status: status.as_u16(),
            });
        }

        let next_link = next_link(response.headers());
        let body = match read_body(response).await {
            Ok(body) => body,
            Err(error) => return Attempt::Failed(transport_error(resource, error)),
        };

        if !status.is_success() {
            return Attempt::Failed(HarvestError::Status {
                resource: resource.to_owned(),
                status: status.as_u16(),
                message: harvest_error_message(&body),
            });
        }

        match parse_records(resource, &body) {
            Ok(records) => Attempt::Done(FetchedRecords { records, next_link }),
            Err(error) => Attempt::Failed(error),
        }
    }

    async fn on_unauthorized(
        &self,
        resource: &str,
        token: &AccessToken,
        call: &mut CallState,
    ) -> Result<(), HarvestError> {
        if call.token_rejected {
            return Err(HarvestError::Authentication {
                account_id: self.inner.account_id,
                detail: format!(
                    "Harvest responded with 401 for resource `{resource}` twice in a row, \
                     the second time with a freshly issued token"
                ),
            });
        }

        call.token_rejected = true;
        self.inner.tokens.invalidate(token).await;
        info!(
            account.id = self.inner.account_id,
            resource,
            token.generation = token.generation(),
            "Harvest responded with 401, fetching a new token and retrying once"
        );
        Ok(())
    }

    fn on_rate_limited(
        &self,
        resource: &str,
        headers: &HeaderMap,
        call: &mut CallState,
    ) -> Result<(), HarvestError> {
        // The block applies even when this call gives up, because the account's other
        // callers must respect it too.
        let max_wait = self.inner.settings.max_retry_after;
        let requested = retry_after(headers).map(|wait| wait.min(max_wait));
        let wait = self.inner.budget.block_after_rate_limit(requested);
        crate::metrics::harvest_rate_limited(self.inner.account_id);

        call.rate_limit_waits += 1;
        if call.rate_limit_waits > self.inner.settings.max_rate_limit_waits {
            return Err(HarvestError::RateLimitExhausted {
                resource: resource.to_owned(),
                waits: call.rate_limit_waits - 1,
            });
        }

        info!(
            account.id = self.inner.account_id,
            resource,
            attempt = call.rate_limit_waits,
            wait_ms = millis(wait),
            retry_after_given = requested.is_some(),
            "Harvest responded with 429, pausing all requests of this account"
        );
        Ok(())
    }

    async fn on_failure(
        &self,
        resource: &str,
        error: HarvestError,
        call: &mut CallState,
    ) -> Result<(), HarvestError> {
        if !error.is_retryable() {
            return Err(error);
        }

        call.failures += 1;
        let settings = &self.inner.settings;
        if call.failures > settings.max_retries {
            return Err(HarvestError::RetriesExhausted {
                resource: resource.to_owned(),
                attempts: call.failures,
                last: Box::new(error),
            });
        }

        self.inner.budget.count_retry();
        crate::metrics::harvest_retry(self.inner.account_id);
        let wait = backoff(call.failures, settings.backoff_base, settings.backoff_max);
        warn!(
            account.id = self.inner.account_id,
            resource,
            attempt = call.failures,
            wait_ms = millis(wait),
            error = %error,
            "Harvest request failed, retrying"
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// Reads a response body into one buffer, sized up front from `Content-Length` when there is
/// one. Collecting the chunks first and copying them into one buffer would hold a 1 MB page
/// twice.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    // A larger length than any page can have is not trusted for the first allocation.
    const MAX_PRESIZE_BYTES: u64 = 16 * 1024 * 1024;

    let expected = response.content_length().unwrap_or(0).min(MAX_PRESIZE_BYTES);
    let mut body = Vec::with_capacity(expected as usize);
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn transport_error(resource: &str, error: reqwest::Error) -> HarvestError {
    // The URL would show cursors and filter values in logs and messages.
    HarvestError::Transport { resource: resource.to_owned(), source: error.without_url() }
}

/// Parses a list body, which is a JSON array of records, keeping each record as its JSON
/// text. A body that does not parse, such as one cut short or an HTML error page from a
/// proxy, is retryable. Valid JSON that is not an array is not retryable.
///
/// Records stay text until they are stored, a few at a time: a parsed 500-record page takes
/// several times the memory of its text, and the sweep keeps several pages at once.
fn parse_records(resource: &str, body: &[u8]) -> Result<Vec<RawRecord>, HarvestError> {
    serde_json::from_slice(body).map_err(|error| {
        let not_an_array = error.classify() == Category::Data;
        let detail = if not_an_array {
            format!("expected a JSON array of records ({})", json_error_detail(&error))
        } else {
            json_error_detail(&error)
        };
        HarvestError::Decode { resource: resource.to_owned(), detail, retryable: !not_an_array }
    })
}

/// Extracts the error text of a Harvest 4xx body, `{"errors": ["..."]}` or
/// `{"message": "..."}`, shortened to 200 characters. Other bodies are not echoed.
fn harvest_error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<String>,
        #[serde(default)]
        errors: Vec<Value>,
    }

    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return "no error message in the response body".to_owned();
    };

    let mut parts: Vec<String> = parsed.message.into_iter().collect();
    for error in &parsed.errors {
        match error {
            Value::String(text) => parts.push(text.clone()),
            Value::Object(fields) => {
                if let Some(Value::String(text)) = fields.get("message") {
                    parts.push(text.clone());
                }
            }
            _ => {}
        }
    }

    if parts.is_empty() {
        return "no error message in the response body".to_owned();
    }
    shorten(&parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_array_becomes_message() {
        let body = br#"{"errors":["When passing a cursor, do not include other query params."]}"#;
        assert_eq!(
            harvest_error_message(body),
            "When passing a cursor, do not include other query params."
        );
    }

    #[test]
    fn message_field_becomes_message() {
        assert_eq!(harvest_error_message(br#"{"message":"Not found"}"#), "Not found");
    }

    #[test]
    fn html_body_not_echoed() {
        assert_eq!(
            harvest_error_message(b"<html>secret stuff</html>"),
            "no error message in the response body"
        );
    }

    #[test]
    fn truncated_array_is_retryable() {
        let error = parse_records("jobs", br#"[{"id": 1}, {"id""#).expect_err("truncated");
        assert!(error.is_retryable(), "{error:?}");
    }

    #[test]
    fn object_body_is_not_retryable() {
        let error = parse_records("jobs", br#"{"id": 1}"#).expect_err("not an array");
        assert!(!error.is_retryable(), "{error:?}");
    }
}
