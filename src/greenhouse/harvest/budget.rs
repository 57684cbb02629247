//! Request budget of one Greenhouse account, shared by every caller that uses its credentials.
//!
//! Greenhouse counts Harvest requests in fixed 30-second windows per credential and reports
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds) on
//! every response. Past the limit it responds with 429 and `Retry-After`. The ceiling is not
//! published, so the budget starts from a configured limit and learns the real one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;

use super::settings::{DEFAULT_BUDGET_LIMIT, DEFAULT_BUDGET_WINDOW};

/// Rate-limit budget of one account: at most `limit` requests per window, one
/// `Arc<Budget>` shared by all chains and refreshes of that account.
///
/// A window starts with the first request after the previous one ended. Responses can only
/// lower what is left in the current window (other clients may share the credentials), and a
/// learned limit applies fully from the next window on.
///
/// NOTE: local windows are not aligned with Greenhouse's. When a local window opens, the
/// requests sent before its first response arrives can exceed what the server's window still
/// allows. Such a request gets 429 and waits like any other.
#[derive(Debug)]
pub struct Budget {
    window: Duration,
    state: Mutex<WindowState>,
    requests_sent: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
}

#[derive(Debug)]
struct WindowState {
    limit: u32,
    remaining: u32,
    sent_in_window: u32,
    window_id: u64,
    window_ends: Instant,
    blocked_until: Option<Instant>,
    in_flight: u32,
}

/// Counters and current state of a budget, for metrics and status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSnapshot {
    /// Requests allowed per window: the configured limit until a response reports the real one.
    pub limit: u32,
    /// Requests still allowed in the current window.
    pub remaining: u32,
    /// Requests sent since the budget was created, retries included.
    pub requests_sent: u64,
    /// 429 responses received.
    pub rate_limited: u64,
    /// Retries after 5xx, timeouts, dropped connections and unparsable bodies.
    pub retries: u64,
}

/// Permission to send one request, taken from the budget by `Budget::acquire`.
/// Pass the response headers to `observe`; dropping the permit without them (the request
/// failed) is fine.
#[derive(Debug)]
pub struct BudgetPermit {
    budget: Arc<Budget>,
    window_id: u64,
    waited: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::with_window(DEFAULT_BUDGET_LIMIT, DEFAULT_BUDGET_WINDOW)
    }
}

impl Budget {
    /// Creates a budget of `limit` requests per 30-second window, Greenhouse's window length.
    pub fn new(limit: u32) -> Self {
        Budget::with_window(limit, DEFAULT_BUDGET_WINDOW)
    }

    /// Creates a budget of `limit` requests per `window`. A limit of zero is raised to one,
    /// because a budget that never allows a request would block its callers forever.
    pub fn with_window(limit: u32, window: Duration) -> Self {
        let limit = limit.max(1);
        let state = WindowState {
            limit,
            remaining: limit,
            sent_in_window: 0,
            window_id: 0,
            // Already over, so the first request opens a fresh window.
            window_ends: Instant::now(),
            blocked_until: None,
            in_flight: 0,
        };

        Budget {
            window,
            state: Mutex::new(state),
            requests_sent: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    /// Returns the length of one window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Waits until the current window has room (and any 429 block has passed), then takes
    /// one request from it. Sleeps on the tokio timer between checks, never spins.
    pub async fn acquire(self: &Arc<Self>) -> BudgetPermit {
        let started = Instant::now();
        loop {
            let wake_at = match self.try_take() {
                Ok(window_id) => {
                    self.requests_sent.fetch_add(1, Ordering::Relaxed);
                    return BudgetPermit {
                        budget: Arc::clone(self),
                        window_id,
                        waited: started.elapsed(),
                    };
                }
                Err(wake_at) => wake_at,
            };

            tokio::time::sleep_until(wake_at.into()).await;
        }
    }

    /// Takes one request from the current window, or returns when to check again.
    fn try_take(&self) -> Result<u64, Instant> {
        let mut state = self.lock();
        let now = Instant::now();

        if let Some(blocked_until) = state.blocked_until {
            if now < blocked_until {
                return Err(blocked_until);
            }
            state.blocked_until = None;
            state.window_ends = now;
        }

        if now >= state.window_ends {
            state.open_window(now, self.window);
        }

        if state.remaining == 0 {
            return Err(state.window_ends);
        }

        state.remaining -= 1;
        state.sent_in_window += 1;
        state.in_flight += 1;
        Ok(state.window_id)
    }

    /// Blocks every caller of this account for `wait` after a 429, and spends the rest of
    /// the current window. Without a usable `Retry-After`, pass `None` to wait for the end
    /// of the current window. Returns the wait applied.
    pub fn block_after_rate_limit(&self, wait: Option<Duration>) -> Duration {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);

        let mut state = self.lock();
        let now = Instant::now();
        let wait = wait.unwrap_or_else(|| state.time_left_in_window(now, self.window));
        let until = now + wait;

        state.blocked_until = Some(state.blocked_until.map_or(until, |earlier| earlier.max(until)));
        state.remaining = 0;
        wait
    }

    /// Counts one retry for the metrics.
    pub fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns the number of requests still allowed in the current window.
    pub fn remaining(&self) -> u32 {
        self.snapshot().remaining
    }

    /// Returns the current limit, remaining count and counters.
    pub fn snapshot(&self) -> BudgetSnapshot {
        let state = self.lock();
        let now = Instant::now();
        let blocked = state.blocked_until.is_some_and(|until| now < until);
        let remaining = if blocked {
            0
        } else if now >= state.window_ends || state.blocked_until.is_some() {
            // The next request opens a fresh window.
            state.limit
        } else {
            state.remaining
        };

        BudgetSnapshot {
            limit: state.limit,
            remaining,
            requests_sent: self.requests_sent.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WindowState> {
        // The state stays consistent even if a holder panicked: every update is one
        // assignment of plain numbers.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl WindowState {
    fn open_window(&mut self, now: Instant, window: Duration) {
        self.window_id += 1;
        self.remaining = self.limit;
        self.sent_in_window = 0;
        self.window_ends = now + window;
    }

    fn time_left_in_window(&self, now: Instant, window: Duration) -> Duration {
        let left = self.window_ends.saturating_duration_since(now);
        if left.is_zero() { window } else { left }
    }

    /// Applies the `X-RateLimit-*` headers of a response to a request sent in this window.
    fn learn(&mut self, headers: &RateLimitHeaders, now: Instant) {
        if let Some(limit) = headers.limit.filter(|limit| *limit > 0) {
            self.limit = limit;
            let left_under_limit = limit.saturating_sub(self.sent_in_window);
            self.remaining = self.remaining.min(left_under_limit);
        }

        if let Some(server_remaining) = headers.remaining {
            // Requests still in flight were counted here but may not have reached Greenhouse
            // yet, so they come off what the server reports.
            let others_in_flight = self.in_flight.saturating_sub(1);
            self.remaining = self.remaining.min(server_remaining.saturating_sub(others_in_flight));
        }

        if let Some(reset) = headers.reset_at(now) {
            // Only an earlier end is taken: the server's window started before ours. Greenhouse
            // has been recorded sending `Reset` = response time + 30 s, which is no window
            // boundary at all, and a later end would only slow the sweep down.
            if reset > now && reset < self.window_ends {
                self.window_ends = reset;
            }
        }
    }
}

impl BudgetPermit {
    /// Returns the time spent in `acquire` waiting for room in the budget.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Learns the limit, remaining count and reset time from a response's `X-RateLimit-*`
    /// headers. Headers of a request sent in an earlier window are ignored for the counts,
    /// because they describe a window that is over, but its limit is still learned.
    pub fn observe(self, headers: &HeaderMap) {
        let parsed = RateLimitHeaders::parse(headers);
        let mut state = self.budget.lock();
        let now = Instant::now();

        if self.window_id == state.window_id {
            state.learn(&parsed, now);
        } else if let Some(limit) = parsed.limit.filter(|limit| *limit > 0) {
            state.limit = limit;
        }
    }
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        let mut state = self.budget.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
    }
}

/// The `X-RateLimit-*` values of one response; each is `None` when missing or unreadable.
#[derive(Debug, Default, Clone, Copy)]
struct RateLimitHeaders {
    limit: Option<u32>,
    remaining: Option<u32>,
    reset_epoch_seconds: Option<u64>,
}

impl RateLimitHeaders {
    fn parse(headers: &HeaderMap) -> Self {
        // Header names are case-insensitive; Greenhouse sends `X-Ratelimit-Limit`.
        RateLimitHeaders {
            limit: header_number(headers, "x-ratelimit-limit"),
            remaining: header_number(headers, "x-ratelimit-remaining"),
            reset_epoch_seconds: header_number(headers, "x-ratelimit-reset"),
        }
    }

    /// Converts the reset time to an `Instant`, rounded up by one second because the header
    /// has whole seconds. Returns `None` for a time in the past or more than an hour away,
    /// which would point to a wrong clock rather than a real window.
    fn reset_at(&self, now: Instant) -> Option<Instant> {
        let reset = UNIX_EPOCH + Duration::from_secs(self.reset_epoch_seconds?);
        let until_reset = reset.duration_since(SystemTime::now()).ok()?;
        if until_reset > Duration::from_secs(3600) {
            return None;
        }
        Some(now + until_reset + Duration::from_secs(1))
    }
}

fn header_number<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn rate_headers(limit: &'static str, remaining: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("X-Ratelimit-Limit", HeaderValue::from_static(limit));
        headers.insert("X-Ratelimit-Remaining", HeaderValue::from_static(remaining));
        headers
    }

    #[tokio::test]
    async fn remaining_lowered_by_server_count() {
        let budget = Arc::new(Budget::with_window(10, Duration::from_secs(60)));
        let permit = budget.acquire().await;
        permit.observe(&rate_headers("10", "3"));

        let snapshot = budget.snapshot();
        assert_eq!(snapshot.limit, 10);
        assert_eq!(snapshot.remaining, 3);
        assert_eq!(snapshot.requests_sent, 1);
    }

    #[tokio::test]
    async fn higher_server_count_not_taken() {
        let budget = Arc::new(Budget::with_window(5, Duration::from_secs(60)));
        let permit = budget.acquire().await;
        permit.observe(&rate_headers("150", "148"));

        let snapshot = budget.snapshot();
        assert_eq!(snapshot.limit, 150);
        assert_eq!(snapshot.remaining, 4);
    }

    #[tokio::test]
    async fn in_flight_requests_come_off_server_count() {
        let budget = Arc::new(Budget::with_window(10, Duration::from_secs(60)));
        let first = budget.acquire().await;
        let _second = budget.acquire().await;
        let _third = budget.acquire().await;
        first.observe(&rate_headers("10", "5"));

        assert_eq!(budget.remaining(), 3);
    }

    #[tokio::test]
    async fn rate_limit_block_delays_acquire() {
        let budget = Arc::new(Budget::with_window(10, Duration::from_secs(60)));
        drop(budget.acquire().await);
        budget.block_after_rate_limit(Some(Duration::from_millis(150)));

        let started = Instant::now();
        drop(budget.acquire().await);
        assert!(started.elapsed() >= Duration::from_millis(140));
        assert_eq!(budget.snapshot().rate_limited, 1);
    }
}
