//! Settings of the Harvest v3 client, with defaults that work against the real Greenhouse.

use std::time::Duration;

/// Harvest v3 base URL. Some Greenhouse pages show `https://api.greenhouse.io/v3` instead,
/// which is why the base URL is a setting.
pub const DEFAULT_BASE_URL: &str = "https://harvest.greenhouse.io/v3";

/// Greenhouse's OAuth2 token endpoint for Harvest v3 client credentials.
pub const DEFAULT_TOKEN_URL: &str = "https://auth.greenhouse.io/token";

/// Greenhouse counts requests in fixed 30-second windows per credential.
pub const DEFAULT_BUDGET_WINDOW: Duration = Duration::from_secs(30);

/// Greenhouse does not publish its ceiling. 50 requests per 30 s is the common starting point,
/// and the budget learns the real limit from the `X-RateLimit-Limit` response header.
pub const DEFAULT_BUDGET_LIMIT: u32 = 50;

/// Configuration of a `HarvestClient`. `Default` gives the real Greenhouse hosts.
#[derive(Debug, Clone)]
pub struct HarvestSettings {
    /// Harvest v3 base URL; a resource path such as `candidates` is appended to it.
    pub base_url: String,

    /// OAuth2 token endpoint that takes client credentials.
    pub token_url: String,

    /// Maximum time for one request, body included. Default 30 s. A shorter timeout fails
    /// slow pages sooner, but a page of 500 records can take several seconds on Greenhouse.
    pub request_timeout: Duration,

    /// Maximum time to open a connection. Default 10 s.
    pub connect_timeout: Duration,

    /// Retries after a 5xx, timeout, dropped connection or unparsable body before the call
    /// fails. Default 5. The 429 waits and the one token refresh after a 401 do not count.
    pub max_retries: u32,

    /// Base of the exponential backoff between retries. Default 500 ms. Retry `n` sleeps a
    /// random time between zero and `backoff_base * 2^(n-1)` (full jitter).
    pub backoff_base: Duration,

    /// Maximum backoff sleep between two retries. Default 30 s, one rate-limit window.
    pub backoff_max: Duration,

    /// Maximum number of 429 responses that one call waits out before it fails. Default 10.
    pub max_rate_limit_waits: u32,

    /// Maximum wait after a 429, applied when `Retry-After` requests a longer one. Without
    /// `Retry-After` the budget waits for the end of its window. Default 5 min, so that a
    /// wrong header cannot pause an account for hours.
    pub max_retry_after: Duration,

    /// Requests allowed per window before the first response reports the real limit.
    /// Default 50.
    pub budget_limit: u32,

    /// Length of one rate-limit window. Default 30 s, as Greenhouse counts; tests shorten it.
    pub budget_window: Duration,

    /// How long before its expiry an access token is replaced. Default 60 s, so that a token
    /// does not expire while a slow request is on its way.
    pub token_refresh_margin: Duration,

    /// Value of the `User-Agent` header.
    pub user_agent: String,
}

impl Default for HarvestSettings {
    fn default() -> Self {
        HarvestSettings {
            base_url: DEFAULT_BASE_URL.to_owned(),
            token_url: DEFAULT_TOKEN_URL.to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_rate_limit_waits: 10,
            max_retry_after: Duration::from_secs(300),
            budget_limit: DEFAULT_BUDGET_LIMIT,
            budget_window: DEFAULT_BUDGET_WINDOW,
            token_refresh_margin: Duration::from_secs(60),
            user_agent: concat!("greenhouse-sync/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}
