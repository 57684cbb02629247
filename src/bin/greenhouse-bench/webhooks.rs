//! Webhook benchmark: steady rates and a burst against `greenhouse-sync serve`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::Backend;
use crate::database::FreshDatabase;
use crate::load::{self, Deliveries, LoadOutcome, Pace};
use crate::procs::{self, BenchContext, ProcSample, Server, WEBHOOK_SECRET};

/// Ids given to generated records start here, above the fixtures' own ids, and each load run
/// gets its own range so no two deliveries write the same row.
const FIRST_GENERATED_ID: i64 = 1_000_000_000;
const IDS_PER_RUN: i64 = 100_000_000;

/// A steady run stops sending after this many times its planned length, when the server
/// cannot keep the rate.
const STEADY_DEADLINE_FACTOR: f64 = 1.5;

/// A burst stops sending after this long.
const BURST_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Database backends, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub backends: Vec<Backend>,

    /// Steady rates to run one after the other, in deliveries per second, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,500,2000")]
    pub rates: Vec<f64>,

    /// Length of each steady run, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,

    /// Deliveries of the burst, sent as fast as the generator can; 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    pub burst: u64,

    /// Deliveries that may wait for a response at once. A sender that can no longer keep its
    /// rate shows it as start lag.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,

    /// Webhook fixtures sent in turn, comma-separated file names without `.json`.
    #[arg(long, value_delimiter = ',', default_value = "update_candidate,candidate_stage_change,new_candidate_application")]
    pub fixtures: Vec<String>,

    /// Directory of the webhook fixtures.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/greenhouse/webhooks"))]
    pub fixtures_dir: PathBuf,

    /// HTTP worker threads of the server; 0 starts one per CPU core.
    #[arg(long, default_value_t = 0)]
    pub server_workers: usize,
}

/// One measured load run.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookResult {
    pub benchmark: &'static str,
    pub backend: Backend,
    /// `steady` or `burst`.
    pub kind: &'static str,
    /// Planned deliveries per second; 0 for the burst.
    pub target_per_sec: f64,
    #[serde(flatten)]
    pub load: LoadOutcome,
    /// The server's peak RSS so far, read after the run.
    pub server_peak_rss_kb: u64,
    /// CPU seconds the server spent during the run.
    pub server_cpu_secs: f64,
}

pub fn run(context: &BenchContext, args: &WebhookArgs) -> anyhow::Result<()> {
    let args = if context.tiny { tiny(args) } else { args.clone() };
    println!("| backend | run | target/s | planned | sent | achieved/s | p50 ms | p99 ms | max ms | errors | start lag ms | server peak RSS MB | server CPU s |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");

    let mut failed = Vec::new();
    for &backend in &args.backends {
        run_backend(context, &args, backend, &mut failed)?;
    }
    if !failed.is_empty() {
        anyhow::bail!("load runs in which no delivery succeeded: {}", failed.join(", "));
    }
    Ok(())
}

fn tiny(args: &WebhookArgs) -> WebhookArgs {
    WebhookArgs { rates: vec![50.0], seconds: 2.0, burst: 200, ..args.clone() }
}

/// Runs every steady rate and then the burst against one server on a fresh database,
/// printing each result as it comes. Runs in which no delivery succeeded are added to
/// `failed`.
fn run_backend(context: &BenchContext, args: &WebhookArgs, backend: Backend, failed: &mut Vec<String>) -> anyhow::Result<()> {
    let name = context.unique_name(&format!("webhooks_{}", backend.name()));
    eprintln!("greenhouse-bench: webhooks {name} starting");
    let database = FreshDatabase::create(context, backend, "webhooks")?;
    let account_id = procs::add_account(context, &database.url, false)?;

    // Without the schedule the server runs no sweeps or refreshes, so only the webhook path
    // is measured.
    let mut serve_args = vec!["--schedule".to_string(), "false".to_string()];
    serve_args.extend(["--workers".to_string(), args.server_workers.to_string()]);
    let server = Server::start(context, &database.url, &serve_args, &name)?;
    let url = format!("{}/webhooks/greenhouse/{account_id}", server.base_url);

    let runtime = load::runtime()?;
    let mut runs: Vec<(&'static str, f64)> = args.rates.iter().map(|&rate| ("steady", rate)).collect();
    if args.burst > 0 {
        runs.push(("burst", 0.0));
    }
    for (index, (kind, rate)) in runs.into_iter().enumerate() {
        let first_id = FIRST_GENERATED_ID + index as i64 * IDS_PER_RUN;
        let deliveries = Arc::new(Deliveries::load(&args.fixtures_dir, &args.fixtures, url.clone(), WEBHOOK_SECRET, first_id)?);
        let pace = match kind {
            "steady" => Pace {
                count: (rate * args.seconds).round() as u64,
                interval: Duration::from_secs_f64(1.0 / rate.max(0.001)),
                max_in_flight: args.max_in_flight,
                send_deadline: Duration::from_secs_f64(args.seconds * STEADY_DEADLINE_FACTOR),
            },
            _ => Pace { count: args.burst, interval: Duration::ZERO, max_in_flight: args.max_in_flight, send_deadline: BURST_DEADLINE },
        };

        let before = server.sample()?;
        let outcome = runtime.block_on(load::send(deliveries, pace))?;
        let after = server.sample()?;

        let result = result(backend, kind, rate, outcome, before, after);
        print_row(&result);
        context.record(&result)?;
        if result.load.ok == 0 {
            failed.push(format!("{} {} {}", backend.name(), result.kind, result.target_per_sec));
        }
    }
    Ok(())
}

fn result(backend: Backend, kind: &'static str, rate: f64, load: LoadOutcome, before: ProcSample, after: ProcSample) -> WebhookResult {
    WebhookResult {
        benchmark: "webhooks",
        backend,
        kind,
        target_per_sec: rate,
        load,
        server_peak_rss_kb: after.peak_rss_kb,
        server_cpu_secs: after.cpu_secs - before.cpu_secs,
    }
}

fn print_row(result: &WebhookResult) {
    let load = &result.load;
    println!(
        "| {} | {} | {:.0} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {:.1} | {:.1} | {:.1} |",
        result.backend.name(),
        result.kind,
        result.target_per_sec,
        load.planned,
        load.sent,
        load.achieved_per_sec,
        load.p50_ms,
        load.p99_ms,
        load.max_ms,
        load.errors,
        load.max_start_lag_ms,
        result.server_peak_rss_kb as f64 / 1024.0,
        result.server_cpu_secs,
    );
    if load.errors > 0 {
        println!("<!-- {} {}: answers by status: {:?} -->", result.backend.name(), result.kind, load.statuses);
    }
}
