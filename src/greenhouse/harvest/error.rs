//! Errors of the Harvest v3 client.
//!
//! Messages name the account or resource and what to do next. They never contain an access
//! token, a client secret, a request URL (cursors and filters) or record data.

/// Failure of a Harvest v3 request, a token request or a paging chain.
#[derive(Debug, thiserror::Error)]
pub enum HarvestError {
    /// The token endpoint rejected the credentials, or Harvest responded with 401 twice in a row.
    #[error(
        "Greenhouse rejected the credentials of account {account_id} ({detail}); \
         check the client id, client secret and user id configured for this account"
    )]
    Authentication { account_id: i64, detail: String },

    /// Harvest responded with 403 because the credentials lack permission for this resource.
    #[error(
        "Harvest responded with 403 Forbidden for resource `{resource}`; grant the API credentials \
         read access to it in Greenhouse, or leave the resource out"
    )]
    Forbidden { resource: String },

    /// Harvest still responded with 429 after the budget waited for `Retry-After` this many times.
    #[error(
        "Harvest still responded with 429 Too Many Requests for resource `{resource}` after {waits} \
         waits; lower the request budget or stop other clients using these credentials"
    )]
    RateLimitExhausted { resource: String, waits: u32 },

    /// A retryable fault (5xx, timeout, dropped connection, unparsable body) outlasted the
    /// configured number of retries.
    #[error(
        "request for resource `{resource}` still failed after {attempts} attempts; \
         check Harvest's status and the network, then run again"
    )]
    RetriesExhausted {
        resource: String,
        attempts: u32,
        #[source]
        last: Box<HarvestError>,
    },

    /// Harvest responded with a 4xx status other than 401, 403 and 429, which a retry cannot fix.
    #[error("Harvest responded with {status} for resource `{resource}`: {message}")]
    Status { resource: String, status: u16, message: String },

    /// Harvest responded with a 5xx status (retryable).
    #[error("Harvest responded with server error {status} for resource `{resource}`")]
    ServerError { resource: String, status: u16 },

    /// The request timed out, the connection failed or dropped, or the body could not be read
    /// (retryable).
    #[error("request for resource `{resource}` failed: {}", transport_summary(source))]
    Transport {
        resource: String,
        #[source]
        source: reqwest::Error,
    },

    /// The body was not the expected JSON. A body that does not parse (for example one cut
    /// short) is retryable; JSON of the wrong shape is not.
    #[error("response for resource `{resource}` is not valid: {detail}")]
    Decode {
        resource: String,
        detail: String,
        retryable: bool,
    },

    /// A `Link rel="next"` URL repeated one already followed in this chain, which would loop.
    #[error(
        "Harvest returned a next-page cursor for resource `{resource}` that this chain already \
         followed; the listing would loop, so the chain stops"
    )]
    CursorRepeated { resource: String },

    /// A page started with the same record as the page before it.
    #[error(
        "page of resource `{resource}` starts with record {first_id} like the page before; \
         the listing does not advance, so the chain stops"
    )]
    PageDidNotAdvance { resource: String, first_id: i64 },

    /// A next-page URL (from `Link` or a stored checkpoint) is unusable, for example on
    /// another host than the configured base URL, where the bearer token must not go.
    #[error("next-page URL for resource `{resource}` is not usable: {reason}")]
    InvalidNextUrl { resource: String, reason: String },

    /// More ids than Harvest's `ids` filter accepts in one request.
    #[error(
        "{count} ids requested for resource `{resource}`, but the `ids` filter takes at most \
         {max}; split the ids into batches"
    )]
    TooManyIds { resource: String, count: usize, max: usize },

    /// A setting cannot be used (for example an unparsable base URL).
    #[error("invalid Harvest client setting `{setting}`: {reason}")]
    InvalidSetting { setting: &'static str, reason: String },
}

impl HarvestError {
    /// Returns whether the same request may succeed if sent again after a backoff.
    pub fn is_retryable(&self) -> bool {
        match self {
            HarvestError::ServerError { .. } | HarvestError::Transport { .. } => true,
            HarvestError::Decode { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Returns whether the error concerns only this resource (Harvest responded with 403), so that a sweep
    /// can skip the resource and carry on with the others.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, HarvestError::Forbidden { .. })
    }
}


/// Names the kind of a transport failure and its innermost cause, such as
/// "connection failed: Connection refused (os error 111)". reqwest's own message alone
/// ("error sending request") does not say what went wrong.
fn transport_summary(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "response body could not be read"
    } else {
        "request failed"
    };

    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    format!("{kind}: {cause}")
}

/// Describes a JSON parse failure by its kind and position only, because serde_json's own
/// message can quote values from the body.
pub(crate) fn json_error_detail(error: &serde_json::Error) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Eof => "body ends early",
        serde_json::error::Category::Syntax => "invalid JSON syntax",
        serde_json::error::Category::Data => "unexpected JSON value",
        serde_json::error::Category::Io => "read failure",
    };
    format!("{kind} at line {} column {}", error.line(), error.column())
}

/// Cuts a server-provided message to 200 characters.
pub(crate) fn shorten(message: &str) -> String {
    const MAX_CHARS: usize = 200;
    if message.chars().count() <= MAX_CHARS {
        return message.to_owned();
    }
    let cut: String = message.chars().take(MAX_CHARS).collect();
    format!("{cut}...")
}
