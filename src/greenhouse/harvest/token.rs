//! OAuth2 client-credentials tokens for Harvest v3, cached per account.
//!
//! Greenhouse issues a token for `POST <token URL>` with HTTP Basic `client_id:client_secret`
//! and the form `grant_type=client_credentials&sub=<greenhouse user id>`. Its response contains
//! `access_token` and `expires_at` (RFC 3339), for example
//! `{"token_type":"Bearer","access_token":"...","expires_at":"2026-05-11T14:54:09Z"}`.
//! Requests then send `Authorization: Bearer <access_token>`.
//!
//! Token requests do not take from the Harvest budget: the token endpoint is another host with
//! its own counters (a recorded token response reported a limit of 60 where Harvest reported 150).

use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::credentials::Credentials;
use super::error::{HarvestError, json_error_detail, shorten};
use super::retry::{backoff, millis};
use super::settings::HarvestSettings;

/// Lifetime assumed when the token response has neither `expires_at` nor `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Resource name used in errors and logs about the token endpoint.
const TOKEN_RESOURCE: &str = "oauth token";

/// Bearer token for Harvest requests. `Debug` prints `***`.
#[derive(Clone)]
pub struct AccessToken {
    secret: String,
    generation: u64,
}

impl AccessToken {
    /// Returns the token value for the `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Returns the number of the token fetch that produced this token (1 for the first).
    /// `TokenCache::invalidate` compares it after a 401.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"***")
            .field("generation", &self.generation)
            .finish()
    }
}

/// Token cache of one account. Concurrent callers share one token request, because the
/// refresh happens while the cache's lock is held.
pub struct TokenCache {
    http: reqwest::Client,
    settings: HarvestSettings,
    account_id: i64,
    credentials: Credentials,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    token: Option<CachedToken>,
    fetches: u64,
}

struct CachedToken {
    token: AccessToken,
    refresh_at: Instant,
}

/// The token endpoint's JSON response. Unknown fields (such as `token_type`) are ignored.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_at: Option<String>,
    expires_in: Option<u64>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("account_id", &self.account_id)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// Creates an empty cache; the first `get` fetches a token.
    pub fn new(
        http: reqwest::Client,
        settings: HarvestSettings,
        account_id: i64,
        credentials: Credentials,
    ) -> Self {
        TokenCache {
            http,
            settings,
            account_id,
            credentials,
            state: Mutex::new(CacheState::default()),
        }
    }

    /// Returns the cached token, or fetches a new one when there is none or it is within the
    /// refresh margin of its expiry.
    pub async fn get(&self) -> Result<AccessToken, HarvestError> {
        let mut state = self.state.lock().await;
        if let Some(cached) = &state.token {
            if Instant::now() < cached.refresh_at {
                return Ok(cached.token.clone());
            }
        }

        let (secret, lifetime) = self.fetch_with_retries().await?;
        state.fetches += 1;
        let token = AccessToken { secret, generation: state.fetches };
        let refresh_at = Instant::now() + self.refresh_after(lifetime);
        state.token = Some(CachedToken { token: token.clone(), refresh_at });

        info!(
            account.id = self.account_id,
            token.generation = token.generation,
            lifetime_s = lifetime.as_secs(),
            "fetched Harvest access token"
        );
        Ok(token)
    }

    /// Drops the cached token after Harvest rejected it with 401, unless a newer token has
    /// replaced it already. Passing the generation keeps several callers that saw the same
    /// 401 from fetching one new token each.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        let mut state = self.state.lock().await;
        let is_current = state
            .token
            .as_ref()
            .is_some_and(|cached| cached.token.generation == rejected.generation);
        if is_current {
            state.token = None;
        }
    }

    /// Time after which the token is replaced: its lifetime minus the margin, but at least
    /// half the lifetime, so that a short-lived token is not fetched again for every request.
    fn refresh_after(&self, lifetime: Duration) -> Duration {
        let with_margin = lifetime.saturating_sub(self.settings.token_refresh_margin);
        with_margin.max(lifetime / 2)
    }

    /// Requests a token, retrying server errors, timeouts and dropped connections like
    /// Harvest requests. A 4xx response is final.
    async fn fetch_with_retries(&self) -> Result<(String, Duration), HarvestError> {
        let mut failures = 0;
        loop {
            let error = match self.fetch_once().await {
                Ok(token) => return Ok(token),
                Err(error) if error.is_retryable() => error,
                Err(error) => return Err(error),
            };

            failures += 1;
            if failures > self.settings.max_retries {
                return Err(HarvestError::RetriesExhausted {
                    resource: TOKEN_RESOURCE.to_owned(),
                    attempts: failures,
                    last: Box::new(error),
                });
            }

            let wait = backoff(failures, self.settings.backoff_base, self.settings.backoff_max);
            warn!(
                account.id = self.account_id,
                resource = TOKEN_RESOURCE,
                attempt = failures,
                wait_ms = millis(wait),
                error = %error,
                "token request failed, retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn fetch_once(&self) -> Result<(String, Duration), HarvestError> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(user_id) = &self.credentials.user_id {
            form.push(("sub", user_id.as_str()));
        }

        let response = self
            .http
            .post(&self.settings.token_url)
            .basic_auth(&self.credentials.client_id, Some(&self.credentials.client_secret))
            .form(&form)
            .send()
            .await
            .map_err(transport_error)?;

        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;

        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(HarvestError::ServerError {
                resource: TOKEN_RESOURCE.to_owned(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(HarvestError::Authentication {
                account_id: self.account_id,
                detail: format!(
                    "token endpoint responded with {}: {}",
                    status.as_u16(),
                    oauth_error_message(&body)
                ),
            });
        }

        parse_token_response(&body)
    }
}

fn transport_error(error: reqwest::Error) -> HarvestError {
    HarvestError::Transport { resource: TOKEN_RESOURCE.to_owned(), source: error.without_url() }
}

/// Reads the token and its lifetime: `expires_at` (RFC 3339) wins over `expires_in`
/// (seconds), and without either the token is assumed to last one hour.
fn parse_token_response(body: &[u8]) -> Result<(String, Duration), HarvestError> {
    let parsed: TokenResponse = serde_json::from_slice(body).map_err(|error| {
        // A body cut short is retried; a complete body of the wrong shape is not.
        let retryable = error.is_eof() || error.is_syntax();
        HarvestError::Decode {
            resource: TOKEN_RESOURCE.to_owned(),
            detail: format!("token response is not the expected JSON: {}", json_error_detail(&error)),
            retryable,
        }
    })?;

    if parsed.access_token.is_empty() {
        return Err(HarvestError::Decode {
            resource: TOKEN_RESOURCE.to_owned(),
            detail: "token response has an empty `access_token`".to_owned(),
            retryable: false,
        });
    }

    let lifetime = token_lifetime(&parsed)?;
    Ok((parsed.access_token, lifetime))
}

fn token_lifetime(parsed: &TokenResponse) -> Result<Duration, HarvestError> {
    if let Some(expires_at) = &parsed.expires_at {
        let expires_at = DateTime::parse_from_rfc3339(expires_at).map_err(|error| {
            HarvestError::Decode {
                resource: TOKEN_RESOURCE.to_owned(),
                detail: format!("`expires_at` {expires_at:?} is not an RFC 3339 time: {error}"),
                retryable: false,
            }
        })?;
        let left = expires_at.with_timezone(&Utc) - Utc::now();
        return Ok(left.to_std().unwrap_or(Duration::ZERO));
    }

    if let Some(seconds) = parsed.expires_in {
        return Ok(Duration::from_secs(seconds));
    }

    Ok(DEFAULT_TOKEN_LIFETIME)
}

/// Extracts the OAuth2 `error` and `error_description` fields (RFC 6749, section 5.2) for an
/// error message. The raw body is never echoed, since it could contain anything.
fn oauth_error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: Option<String>,
        error_description: Option<String>,
    }

    let Ok(parsed) = serde_json::from_slice::<OAuthError>(body) else {
        return "no OAuth error in the body".to_owned();
    };
    match (parsed.error, parsed.error_description) {
        (Some(error), Some(description)) => shorten(&format!("{error}: {description}")),
        (Some(error), None) => shorten(&error),
        (None, Some(description)) => shorten(&description),
        (None, None) => "no OAuth error in the body".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_at_sets_lifetime() {
        let expires_at = (Utc::now() + chrono::Duration::seconds(600)).to_rfc3339();
        let body = format!(r#"{{"token_type":"Bearer","access_token":"t","expires_at":"{expires_at}"}}"#);
        let (token, lifetime) = parse_token_response(body.as_bytes()).expect("token");
        assert_eq!(token, "t");
        assert!(lifetime > Duration::from_secs(590), "lifetime {lifetime:?}");
        assert!(lifetime <= Duration::from_secs(600), "lifetime {lifetime:?}");
    }

    #[test]
    fn expires_in_sets_lifetime() {
        let body = br#"{"access_token":"t","expires_in":120}"#;
        let (_, lifetime) = parse_token_response(body).expect("token");
        assert_eq!(lifetime, Duration::from_secs(120));
    }

    #[test]
    fn missing_expiry_assumes_one_hour() {
        let (_, lifetime) = parse_token_response(br#"{"access_token":"t"}"#).expect("token");
        assert_eq!(lifetime, DEFAULT_TOKEN_LIFETIME);
    }

    #[test]
    fn bad_expires_at_is_decode_error() {
        let error = parse_token_response(br#"{"access_token":"t","expires_at":"tomorrow"}"#)
            .expect_err("invalid expires_at");
        assert!(matches!(error, HarvestError::Decode { retryable: false, .. }), "{error:?}");
    }

    #[test]
    fn truncated_token_body_is_retryable() {
        let error = parse_token_response(br#"{"access_token":"t"#).expect_err("truncated");
        assert!(error.is_retryable(), "{error:?}");
    }

    #[test]
    fn oauth_error_fields_in_message() {
        let body = br#"{"error":"invalid_client","error_description":"unknown client"}"#;
        assert_eq!(oauth_error_message(body), "invalid_client: unknown client");
    }

    #[test]
    fn token_debug_hides_secret() {
        let token = AccessToken { secret: "s3cr3t".to_owned(), generation: 1 };
        assert!(!format!("{token:?}").contains("s3cr3t"));
    }
}
