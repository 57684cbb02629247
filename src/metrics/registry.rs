//! The process's metric families, registered once.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric this process exports.
pub(super) struct Metrics {
    pub registry: Registry,

    pub webhook_deliveries: IntCounterVec,
    pub webhook_handling_duration: HistogramVec,
    pub webhook_commit_lag: Histogram,
    pub webhook_batch_size: Histogram,
    pub webhook_replays: IntCounterVec,
    pub webhook_bodies_purged: IntCounter,

    pub sweep_runs: IntCounterVec,
    pub sweep_pages: IntCounterVec,
    pub sweep_records: IntCounterVec,
    pub sweep_deletions: IntCounterVec,
    pub sweep_run_duration: HistogramVec,
    pub sweep_last_success: IntGaugeVec,
    pub refresh_queue: IntGauge,

    pub harvest_requests: IntCounterVec,
    pub harvest_request_duration: HistogramVec,
    pub harvest_rate_limit_remaining: IntGaugeVec,
    pub harvest_rate_limited: IntCounterVec,
    pub harvest_retries: IntCounterVec,

    pub db_pool_connections: IntGaugeVec,
    pub db_errors: IntCounterVec,
    pub database_ready: IntGauge,
    pub sqlite_heap: IntGauge,
    pub heap: IntGaugeVec,
}

/// Buckets for request handling, from 1 ms to 10 s.
const REQUEST_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Buckets for sweep runs, from 1 s to 8 h: a first full sync of a large account under a
/// 50-requests-per-30-s budget takes hours.
const RUN_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::register);

pub(super) fn metrics() -> &'static Metrics {
    &METRICS
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter definition");
    registry.register(Box::new(metric.clone())).expect("metric registered once");
    metric
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge definition");
    registry.register(Box::new(metric.clone())).expect("metric registered once");
    metric
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let metric = HistogramVec::new(opts, labels).expect("valid histogram definition");
    registry.register(Box::new(metric.clone())).expect("metric registered once");
    metric
}

// The definitions are constants, so the `expect`s in this file can only fail on a
// programming error (a bad name or a name registered twice), which any test that records a
// metric shows.
impl Metrics {
    fn register() -> Metrics {
        let r = Registry::new();
        let webhook_commit_lag = Histogram::with_opts(
            HistogramOpts::new(
                "greenhouse_sync_webhook_commit_lag_seconds",
                "Time from the start of handling a webhook delivery to the commit of its changes",
            )
            .buckets(REQUEST_BUCKETS.to_vec()),
        )
        .expect("valid histogram definition");
        r.register(Box::new(webhook_commit_lag.clone())).expect("metric registered once");
        let webhook_batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "greenhouse_sync_webhook_batch_deliveries",
                "Deliveries stored in one transaction by SQLite's group commit",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )
        .expect("valid histogram definition");
        r.register(Box::new(webhook_batch_size.clone())).expect("metric registered once");
        let webhook_bodies_purged = IntCounter::new(
            "greenhouse_sync_webhook_bodies_purged_total",
            "Webhook delivery bodies removed by retention; the delivery rows are kept",
        )
        .expect("valid counter definition");
        r.register(Box::new(webhook_bodies_purged.clone())).expect("metric registered once");
        let refresh_queue = IntGauge::new(
            "greenhouse_sync_refresh_queue_records",
            "Records touched by webhooks and waiting to be re-read from Harvest, all accounts",
        )
        .expect("valid gauge definition");
        r.register(Box::new(refresh_queue.clone())).expect("metric registered once");
        let database_ready = IntGauge::new(
            "greenhouse_sync_database_ready",
            "1 when the last scrape reached the database and found its migrations applied, as /readyz checks; else 0",
        )
        .expect("valid gauge definition");
        r.register(Box::new(database_ready.clone())).expect("metric registered once");
        let sqlite_heap = IntGauge::new(
            "greenhouse_sync_sqlite_heap_bytes",
            "Bytes of memory SQLite holds for this process (page caches and prepared statements of every connection); 0 on PostgreSQL",
        )
        .expect("valid gauge definition");
        r.register(Box::new(sqlite_heap.clone())).expect("metric registered once");
        register_process_collector(&r);

        Metrics {
            webhook_deliveries: counter_vec(
                &r,
                "greenhouse_sync_webhook_deliveries_total",
                "Webhook deliveries by outcome: applied, duplicate, failed, ignored, unsupported, or rejected_* and unavailable when not stored",
                &["account_id", "action", "outcome"],
            ),
            webhook_handling_duration: histogram_vec(
                &r,
                "greenhouse_sync_webhook_handling_duration_seconds",
                "Time to handle a webhook request, from routing to the response",
                REQUEST_BUCKETS,
                &["status_class"],
            ),
            webhook_commit_lag,
            webhook_batch_size,
            webhook_replays: counter_vec(
                &r,
                "greenhouse_sync_webhook_replays_total",
                "Stored deliveries replayed through the admin API, by their new outcome",
                &["account_id", "outcome"],
            ),
            webhook_bodies_purged,
            sweep_runs: counter_vec(
                &r,
                "greenhouse_sync_sweep_runs_total",
                "Sweep runs ended, by mode and outcome (completed, failed, interrupted)",
                &["account_id", "mode", "outcome"],
            ),
            sweep_pages: counter_vec(&r, "greenhouse_sync_sweep_pages_total", "Harvest pages stored by sweeps", &["account_id", "resource"]),
            sweep_records: counter_vec(
                &r,
                "greenhouse_sync_sweep_records_total",
                "Records read from Harvest and stored by sweeps",
                &["account_id", "resource"],
            ),
            sweep_deletions: counter_vec(
                &r,
                "greenhouse_sync_sweep_deletions_total",
                "Records marked deleted because a full sweep no longer found them",
                &["account_id"],
            ),
            sweep_run_duration: histogram_vec(
                &r,
                "greenhouse_sync_sweep_run_duration_seconds",
                "Duration of sweep runs from their first start to their end",
                RUN_BUCKETS,
                &["mode", "outcome"],
            ),
            sweep_last_success: gauge_vec(
                &r,
                "greenhouse_sync_sweep_last_success_timestamp_seconds",
                "Unix time when a sweep last completed a resource of an account, read from the database",
                &["account_id", "resource"],
            ),
            refresh_queue,
            harvest_requests: counter_vec(
                &r,
                "greenhouse_sync_harvest_requests_total",
                "Harvest API responses by resource and status class; `error` when no response came",
                &["account_id", "resource", "status_class"],
            ),
            harvest_request_duration: histogram_vec(
                &r,
                "greenhouse_sync_harvest_request_duration_seconds",
                "Time from sending a Harvest API request to its response headers",
                REQUEST_BUCKETS,
                &["resource"],
            ),
            harvest_rate_limit_remaining: gauge_vec(
                &r,
                "greenhouse_sync_harvest_rate_limit_remaining_requests",
                "Requests left in the account's current Harvest rate-limit window",
                &["account_id"],
            ),
            harvest_rate_limited: counter_vec(
                &r,
                "greenhouse_sync_harvest_rate_limited_total",
                "Harvest responses with status 429",
                &["account_id"],
            ),
            harvest_retries: counter_vec(
                &r,
                "greenhouse_sync_harvest_retries_total",
                "Harvest requests retried after a 5xx, a timeout, a dropped connection or an unreadable body",
                &["account_id"],
            ),
            db_pool_connections: gauge_vec(
                &r,
                "greenhouse_sync_db_pool_connections",
                "Database connections of this process, by state (in_use, idle)",
                &["state"],
            ),
            db_errors: counter_vec(
                &r,
                "greenhouse_sync_db_errors_total",
                "Failed database calls by kind (unavailable, query, migration, task)",
                &["kind"],
            ),
            database_ready,
            sqlite_heap,
            heap: gauge_vec(
                &r,
                "greenhouse_sync_heap_bytes",
                "Bytes of the C heap (glibc malloc, which Rust and SQLite share): in_use by live allocations, free but kept by the allocator",
                &["state"],
            ),
            registry: r,
        }
        .with_zero_series()
    }

    /// Creates the series whose label values are known in advance at zero, so they appear
    /// before their first event.
    fn with_zero_series(self) -> Metrics {
        for kind in ["unavailable", "query", "migration", "task", "busy"] {
            self.db_errors.with_label_values(&[kind]).inc_by(0);
        }
        for state in ["in_use", "idle"] {
            self.db_pool_connections.with_label_values(&[state]).set(0);
        }
        self
    }
}

/// Registers resident memory, CPU time and open file descriptors of this process, read from
/// /proc at each scrape. The collector exists on Linux only; elsewhere these are absent.
fn register_process_collector(registry: &Registry) {
    #[cfg(target_os = "linux")]
    {
        let collector = prometheus::process_collector::ProcessCollector::new(std::process::id() as i32, "greenhouse_sync");
        if let Err(error) = registry.register(Box::new(collector)) {
            tracing::warn!(error = %error, "process metrics not available");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
}

/// Returns every metric in the Prometheus text format.
pub fn encode_text() -> Result<String, prometheus::Error> {
    let families = metrics().registry.gather();
    let mut buffer = Vec::with_capacity(16 * 1024);
    TextEncoder::new().encode(&families, &mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}
