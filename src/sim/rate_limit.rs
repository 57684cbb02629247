//! Fixed-window rate limiting per client id, as Harvest v3 applies it.
//!
//! A window opens with a client's first request and lasts 30 seconds. `X-RateLimit-Reset` is
//! its end in epoch seconds.

use std::collections::HashMap;

/// Length of a rate-limit window, in milliseconds.
pub const WINDOW_MS: i64 = 30_000;

/// The rate-limit headers of one response, and whether the request is over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub limit: u32,
    pub remaining: u32,
    /// End of the window, in seconds since the epoch.
    pub reset_epoch_secs: i64,
    /// Seconds to wait, when the request is over the limit.
    pub retry_after_secs: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: i64,
    used: u32,
}

/// Request counts per client id.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    windows: HashMap<String, Window>,
}

impl RateLimiter {
    /// Creates a limiter allowing `limit` requests per client id per window.
    pub fn new(limit: u32) -> Self {
        RateLimiter { limit, windows: HashMap::new() }
    }

    /// Counts one request of `client_id` at `now_ms` and returns the decision.
    ///
    /// A request over the limit is not counted, so waiting for the reset always suffices.
    pub fn check(&mut self, client_id: &str, now_ms: i64) -> Decision {
        let window = self.windows.entry(client_id.to_owned()).or_insert(Window { start_ms: now_ms, used: 0 });
        if now_ms >= window.start_ms + WINDOW_MS {
            *window = Window { start_ms: now_ms, used: 0 };
        }
        let end_ms = window.start_ms + WINDOW_MS;
        let reset_epoch_secs = ceil_secs(end_ms);

        if window.used >= self.limit {
            let wait_secs = ceil_secs(end_ms - now_ms).max(1);
            return Decision { limit: self.limit, remaining: 0, reset_epoch_secs, retry_after_secs: Some(wait_secs) };
        }
        window.used += 1;
        Decision { limit: self.limit, remaining: self.limit - window.used, reset_epoch_secs, retry_after_secs: None }
    }

    /// Returns the headers of a response that belongs to no client (a request without a valid token).
    pub fn untracked(&self, now_ms: i64) -> Decision {
        Decision { limit: self.limit, remaining: self.limit, reset_epoch_secs: ceil_secs(now_ms + WINDOW_MS), retry_after_secs: None }
    }
}

/// Converts milliseconds to whole seconds, rounding up.
fn ceil_secs(ms: i64) -> i64 {
    (ms + 999).div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_then_reset() {
        let mut limiter = RateLimiter::new(2);
        assert_eq!(limiter.check("a", 1_000).remaining, 1);
        assert_eq!(limiter.check("a", 2_000).remaining, 0);
        let over = limiter.check("a", 3_000);
        assert_eq!(over.retry_after_secs, Some(28));
        assert_eq!(over.reset_epoch_secs, 31);
        assert_eq!(limiter.check("b", 3_000).retry_after_secs, None);
        assert_eq!(limiter.check("a", 31_000).remaining, 1);
    }
}
