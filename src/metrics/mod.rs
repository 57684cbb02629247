//! Prometheus metrics, served as text at `/metrics`.
//!
//! Names start with `greenhouse_sync_` and carry their unit. Labels stay bounded: account
//! id, action (documented actions, others as `other`), outcome, resource, mode and status
//! class, never a record id. The recording functions below are one-line calls for the code
//! paths that observe something; values read from the database (queue depth, last sweep
//! times, pool state) are refreshed at each scrape by `scrape`.

pub mod changes;
mod registry;
pub mod scrape;
pub mod webhooks;

use std::time::Duration;

use registry::metrics;

pub use registry::encode_text;

/// Label value used where the account is not known to exist, so that requests for made-up
/// account ids cannot create new series.
pub const UNKNOWN_ACCOUNT: &str = "unknown";

fn account_label(account_id: i64) -> String {
    account_id.to_string()
}

/// Maps an action to a label value: documented actions and `ping` as they are, anything
/// else as `other`, because a signed sender could otherwise create a series per name.
pub fn action_label(action: &str) -> &str {
    if action == "ping" || crate::greenhouse::webhook_payload::is_known(action) { action } else { "other" }
}

/// Maps an HTTP status to its class (`2xx` ... `5xx`); 0 stands for no response at all.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "error",
    }
}

/// Records a delivery that was stored, with its outcome and the time from the start of
/// handling to the commit.
pub fn webhook_stored(account_id: i64, action: &str, outcome: &str, since_start: Duration) {
    let m = metrics();
    m.webhook_deliveries.with_label_values(&[&account_label(account_id), action_label(action), outcome]).inc();
    m.webhook_commit_lag.observe(since_start.as_secs_f64());
}

/// Records how many deliveries one group commit stored.
pub fn webhook_batch(deliveries: usize) {
    metrics().webhook_batch_size.observe(deliveries as f64);
}

/// Records a delivery rejected before it was stored, such as one with a bad signature.
pub fn webhook_rejected(account: &str, outcome: &str) {
    metrics().webhook_deliveries.with_label_values(&[account, "none", outcome]).inc();
}

/// Records the replay of a stored delivery.
pub fn webhook_replayed(account_id: i64, outcome: &str) {
    metrics().webhook_replays.with_label_values(&[&account_label(account_id), outcome]).inc();
}

/// Records delivery bodies removed by retention.
pub fn webhook_bodies_purged(count: usize) {
    metrics().webhook_bodies_purged.inc_by(count as u64);
}

/// Records one page of a sweep stored with its records.
pub fn sweep_page_stored(account_id: i64, resource: impl std::fmt::Display, records: usize) {
    let (m, account, resource) = (metrics(), account_label(account_id), resource.to_string());
    m.sweep_pages.with_label_values(&[&account, &resource]).inc();
    m.sweep_records.with_label_values(&[&account, &resource]).inc_by(records as u64);
}

/// Records the end of a sweep run: `status` is `completed`, `failed` or `interrupted`.
pub fn sweep_finished(account_id: i64, mode: &str, status: &str, deleted: usize, duration: Duration) {
    let (m, account) = (metrics(), account_label(account_id));
    m.sweep_runs.with_label_values(&[&account, mode, status]).inc();
    m.sweep_deletions.with_label_values(&[&account]).inc_by(deleted as u64);
    m.sweep_run_duration.with_label_values(&[mode, status]).observe(duration.as_secs_f64());
}

/// Records one Harvest response (`status` 0 when no response came) and what is left of the
/// account's request budget.
pub fn harvest_response(account_id: i64, resource: &str, status: u16, duration: Duration, budget_remaining: u32) {
    let (m, account) = (metrics(), account_label(account_id));
    m.harvest_requests.with_label_values(&[&account, resource, status_class(status)]).inc();
    m.harvest_request_duration.with_label_values(&[resource]).observe(duration.as_secs_f64());
    m.harvest_rate_limit_remaining.with_label_values(&[&account]).set(i64::from(budget_remaining));
    // Start the account's 429 and retry counters at zero, so that `increase()` in alerts
    // counts their first event.
    m.harvest_rate_limited.with_label_values(&[&account]).inc_by(0);
    m.harvest_retries.with_label_values(&[&account]).inc_by(0);
}

/// Records a 429 from Harvest.
pub fn harvest_rate_limited(account_id: i64) {
    metrics().harvest_rate_limited.with_label_values(&[&account_label(account_id)]).inc();
}

/// Records a Harvest request retried after a 5xx, a timeout or a dropped connection.
pub fn harvest_retry(account_id: i64) {
    metrics().harvest_retries.with_label_values(&[&account_label(account_id)]).inc();
}

/// Records a failed database call; `kind` names the `DbError` variant.
pub fn database_error(kind: &str) {
    metrics().db_errors.with_label_values(&[kind]).inc();
}
