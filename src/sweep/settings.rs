//! Sweep settings.

use std::time::Duration;

/// Settings of how sweeps read Harvest and how often they run.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// Records per page. Harvest allows at most 500; fewer records per page means more
    /// requests against the rate limit.
    pub per_page: u32,
    /// Cursor chains running at once per run, so also the maximum pages in flight and in
    /// memory. Two keep a 50 requests / 30 s limit busy while a page is being stored. More
    /// only add memory, about 1.5 MB per 500-record page.
    pub pages_in_flight: usize,
    /// Number of `created_at` slices for the large resources (candidates, applications,
    /// interviews, scorecards, offers) in a full run, so that several chains share the work.
    pub slices: usize,
    /// How far before the watermark an incremental run starts reading, to absorb clock
    /// differences and records committed late.
    pub overlap: Duration,
    /// Time between incremental runs of an account.
    pub incremental_interval: Duration,
    /// Time between full runs of an account, which also find deletions.
    pub full_interval: Duration,
    /// How long a sweep lease lasts without renewal. A replica that dies leaves the account
    /// to others after this long.
    pub lease: Duration,
    /// Time between targeted refreshes of records touched by webhooks.
    pub refresh_interval: Duration,
}

impl Default for SweepSettings {
    fn default() -> Self {
        SweepSettings {
            per_page: 500,
            pages_in_flight: 2,
            slices: 4,
            overlap: Duration::from_secs(3600),
            incremental_interval: Duration::from_secs(15 * 60),
            full_interval: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(60),
            refresh_interval: Duration::from_secs(5),
        }
    }
}
