//! Flags shared by the commands that read Harvest v3: `serve`, `reconcile` and `demo`.

use std::time::Duration;

use clap::Args;

use crate::greenhouse::harvest::{DEFAULT_BASE_URL, DEFAULT_BUDGET_LIMIT, DEFAULT_TOKEN_URL, HarvestSettings};
use crate::sweep::SweepSettings;

#[derive(Debug, Clone, Args)]
pub struct HarvestArgs {
    /// Harvest v3 base URL. Some Greenhouse pages show `https://api.greenhouse.io/v3`.
    #[arg(long, env = "GREENHOUSE_SYNC_HARVEST_BASE_URL", default_value = DEFAULT_BASE_URL)]
    pub harvest_base_url: String,

    /// OAuth2 token endpoint for Harvest v3 client credentials.
    #[arg(long, env = "GREENHOUSE_SYNC_HARVEST_TOKEN_URL", default_value = DEFAULT_TOKEN_URL)]
    pub harvest_token_url: String,

    /// Requests per 30-second window each account may send before Greenhouse's headers tell
    /// the real limit. Greenhouse does not publish it; 50 is the common starting point.
    #[arg(long, env = "GREENHOUSE_SYNC_HARVEST_BUDGET", default_value_t = DEFAULT_BUDGET_LIMIT)]
    pub harvest_budget: u32,

    /// Retries of a Harvest request after a 5xx, a timeout or a dropped connection.
    #[arg(long, env = "GREENHOUSE_SYNC_HARVEST_MAX_RETRIES", default_value_t = 5)]
    pub harvest_max_retries: u32,
}

impl HarvestArgs {
    pub fn settings(&self) -> HarvestSettings {
        HarvestSettings {
            base_url: self.harvest_base_url.clone(),
            token_url: self.harvest_token_url.clone(),
            budget_limit: self.harvest_budget.max(1),
            max_retries: self.harvest_max_retries,
            ..HarvestSettings::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Records per Harvest page (1 to 500). Fewer records per page cost more requests.
    #[arg(long, env = "GREENHOUSE_SYNC_SWEEP_PER_PAGE", default_value_t = 500)]
    pub sweep_per_page: u32,

    /// Cursor chains read at once per sweep, so also the pages held in memory at once.
    #[arg(long, env = "GREENHOUSE_SYNC_SWEEP_PAGES_IN_FLIGHT", default_value_t = 2)]
    pub sweep_pages_in_flight: usize,

    /// `created_at` slices per large resource in a full sweep, read as separate chains.
    #[arg(long, env = "GREENHOUSE_SYNC_SWEEP_SLICES", default_value_t = 4)]
    pub sweep_slices: usize,

    /// Seconds an incremental sweep reads before its watermark, to absorb clock skew.
    #[arg(long, env = "GREENHOUSE_SYNC_SWEEP_OVERLAP_SECS", default_value_t = 3600)]
    pub sweep_overlap_secs: u64,

    /// Seconds between scheduled incremental sweeps of an account.
    #[arg(long, env = "GREENHOUSE_SYNC_SWEEP_INCREMENTAL_INTERVAL_SECS", default_value_t = 900)]
    pub sweep_incremental_interval_secs: u64,

    /// Seconds between scheduled full sweeps of an account, which also find deletions.
    #[arg(long, env = "GREENHOUSE_SYNC_SWEEP_FULL_INTERVAL_SECS", default_value_t = 86_400)]
    pub sweep_full_interval_secs: u64,

    /// Seconds a sweep lease lasts without renewal; a dead replica's account passes to another
    /// after this long.
    #[arg(long, env = "GREENHOUSE_SYNC_SWEEP_LEASE_SECS", default_value_t = 60)]
    pub sweep_lease_secs: u64,

    /// Seconds between targeted refreshes of records touched by webhooks.
    #[arg(long, env = "GREENHOUSE_SYNC_REFRESH_INTERVAL_SECS", default_value_t = 5)]
    pub refresh_interval_secs: u64,
}

impl SweepArgs {
    pub fn settings(&self) -> SweepSettings {
        SweepSettings {
            per_page: self.sweep_per_page.clamp(1, 500),
            pages_in_flight: self.sweep_pages_in_flight.max(1),
            slices: self.sweep_slices.max(1),
            overlap: Duration::from_secs(self.sweep_overlap_secs),
            incremental_interval: Duration::from_secs(self.sweep_incremental_interval_secs.max(1)),
            full_interval: Duration::from_secs(self.sweep_full_interval_secs.max(1)),
            lease: Duration::from_secs(self.sweep_lease_secs.max(3)),
            refresh_interval: Duration::from_secs(self.refresh_interval_secs.max(1)),
        }
    }
}
