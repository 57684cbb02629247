//! Backoff between retries and parsing of `Retry-After`.

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Returns the sleep before retry number `retry` (1 for the first retry): a random duration
/// between zero and `base * 2^(retry-1)`, capped at `max` ("full jitter"). The randomness
/// keeps the chains of one account from retrying in step after a shared outage.
pub(crate) fn backoff(retry: u32, base: Duration, max: Duration) -> Duration {
    let doublings = retry.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1u32 << doublings).min(max);
    let ceiling_ms = millis(ceiling);
    if ceiling_ms == 0 {
        return Duration::ZERO;
    }

    let sleep_ms = rand::rng().random_range(0..=ceiling_ms);
    Duration::from_millis(sleep_ms)
}

/// Reads `Retry-After` as a wait from now. The header is either a number of seconds or an
/// HTTP date (RFC 9110, section 10.2.3). Returns `None` when it is missing or unreadable,
/// and zero for a date in the past.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();

    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }

    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// Converts a duration to whole milliseconds for log fields, saturating at `u64::MAX`.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_stays_under_doubling_ceiling() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for _ in 0..200 {
            assert!(backoff(1, base, max) <= Duration::from_millis(100));
            assert!(backoff(3, base, max) <= Duration::from_millis(400));
            assert!(backoff(40, base, max) <= max);
        }
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_reads_http_date() {
        let later = SystemTime::now() + Duration::from_secs(120);
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&httpdate::fmt_http_date(later)).expect("header value");
        headers.insert(RETRY_AFTER, value);

        let wait = retry_after(&headers).expect("a wait");
        assert!(wait > Duration::from_secs(110), "wait {wait:?}");
        assert!(wait <= Duration::from_secs(120), "wait {wait:?}");
    }

    #[test]
    fn retry_after_past_date_is_zero() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_garbage_is_none() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
