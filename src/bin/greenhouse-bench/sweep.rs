//! Sweep benchmark: `greenhouse-sync reconcile --full` against greenhouse-sim, timed and
//! measured from outside, then the stored copy compared with the simulator's ground truth.

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::Backend;
use crate::database::{FreshDatabase, ResourceComparison, compare_with_truth};
use crate::procs::{self, BenchContext, Finished, Sim, SimOptions};

/// Length of the simulator's rate-limit window, in seconds.
const WINDOW_SECS: f64 = 30.0;

/// Simulator defaults for 300 candidates, scaled with the candidate count so that every
/// account size has the same mix of resources.
const DEFAULT_SIZES_PER_300_CANDIDATES: [(&str, u64); 7] =
    [("departments", 12), ("offices", 6), ("users", 40), ("jobs", 20), ("offers", 60), ("interviews", 120), ("scorecards", 120)];

#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Candidate counts of the accounts to sweep, comma-separated. Applications and the other
    /// resources scale with them.
    #[arg(long, value_delimiter = ',', default_value = "10000,50000,100000")]
    pub candidates: Vec<u64>,

    /// Applications generated per candidate.
    #[arg(long, default_value_t = 1.2)]
    pub applications_per_candidate: f64,

    /// Concurrency modes, comma-separated: `single` (one page at a time), `naive` (many
    /// chains at once, see --naive-pages-in-flight) and `default` (greenhouse-sync's defaults).
    #[arg(long, value_delimiter = ',', default_value = "single,naive,default")]
    pub modes: Vec<SweepMode>,

    /// Database backends, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sqlite")]
    pub backends: Vec<Backend>,

    /// Requests the simulator allows per 30-second window.
    #[arg(long, default_value_t = 50)]
    pub rate_limit: u32,

    /// Fixed delay of every simulated Harvest response, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub latency_ms: u64,

    /// Delay added per record in a simulated Harvest response, in microseconds.
    #[arg(long, default_value_t = 1000)]
    pub latency_per_record_us: u64,

    /// Pages in flight in the `naive` mode.
    #[arg(long, default_value_t = 64)]
    pub naive_pages_in_flight: usize,

    /// `created_at` slices per large resource in the `naive` mode. Each slice is a cursor
    /// chain, and pages of one chain can only be read one after another, so slices decide
    /// how many pages can really be in flight.
    #[arg(long, default_value_t = 16)]
    pub naive_slices: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepMode {
    Single,
    Naive,
    Default,
}

impl SweepMode {
    fn name(self) -> &'static str {
        match self {
            SweepMode::Single => "single",
            SweepMode::Naive => "naive",
            SweepMode::Default => "default",
        }
    }

    /// Flags of `greenhouse-sync reconcile` that select this mode.
    fn reconcile_args(self, args: &SweepArgs) -> Vec<String> {
        match self {
            SweepMode::Single => vec!["--sweep-pages-in-flight".into(), "1".into(), "--sweep-slices".into(), "1".into()],
            SweepMode::Naive => vec![
                "--sweep-pages-in-flight".into(),
                args.naive_pages_in_flight.to_string(),
                "--sweep-slices".into(),
                args.naive_slices.to_string(),
            ],
            SweepMode::Default => Vec::new(),
        }
    }
}

/// One measured sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepResult {
    pub benchmark: &'static str,
    pub backend: Backend,
    pub mode: SweepMode,
    pub sim: SimOptions,
    pub truth_records: usize,
    pub status: String,
    pub exit: String,
    /// Harvest list requests, from the sweep report's page count.
    pub pages: u64,
    pub records: u64,
    pub wall_secs: f64,
    /// Pages x 30 s / rate limit: the least time the rate limit allows.
    pub floor_secs: f64,
    pub ratio_to_floor: f64,
    pub records_per_sec: f64,
    pub peak_rss_kb: u64,
    pub cpu_secs: f64,
    pub matches_truth: bool,
    pub comparisons: Vec<ResourceComparison>,
}

pub fn run(context: &BenchContext, args: &SweepArgs) -> anyhow::Result<()> {
    let args = if context.tiny { tiny(args) } else { args.clone() };
    println!("| backend | mode | candidates | records | pages | wall s | floor s | ratio | peak RSS MB | CPU s | records/s | equals truth |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");

    let mut failures = Vec::new();
    for &backend in &args.backends {
        for &candidates in &args.candidates {
            for &mode in &args.modes {
                let result = run_one(context, &args, backend, candidates, mode)?;
                print_row(&result);
                context.record(&result)?;
                if result.status != "completed" || !result.matches_truth {
                    failures.push(format!("{} {} {candidates}", backend.name(), mode.name()));
                }
            }
        }
    }
    if !failures.is_empty() {
        anyhow::bail!("sweeps that did not complete or did not match the ground truth: {}", failures.join(", "));
    }
    Ok(())
}

fn tiny(args: &SweepArgs) -> SweepArgs {
    SweepArgs { candidates: vec![300], rate_limit: 1000, latency_ms: 0, latency_per_record_us: 0, ..args.clone() }
}

/// Account sizes for `candidates`, with the other resources scaled from the defaults.
pub fn sizes(candidates: u64, applications_per_candidate: f64) -> Vec<(&'static str, u64)> {
    let scale = candidates as f64 / 300.0;
    let applications = (candidates as f64 * applications_per_candidate).round() as u64;
    let mut sizes = vec![("candidates", candidates), ("applications", applications)];
    for (flag, count) in DEFAULT_SIZES_PER_300_CANDIDATES {
        sizes.push((flag, ((count as f64 * scale).round() as u64).max(1)));
    }
    sizes
}

fn run_one(context: &BenchContext, args: &SweepArgs, backend: Backend, candidates: u64, mode: SweepMode) -> anyhow::Result<SweepResult> {
    let name = context.unique_name(&format!("sweep_{}_{}_{candidates}", backend.name(), mode.name()));
    let options = SimOptions {
        sizes: sizes(candidates, args.applications_per_candidate),
        rate_limit: args.rate_limit,
        latency_ms: args.latency_ms,
        latency_per_record_us: args.latency_per_record_us,
    };
    eprintln!("greenhouse-bench: sweep {name} starting");

    let sim = Sim::start(context, &options, &name)?;
    let database = FreshDatabase::create(context, backend, "sweep")?;
    let account_id = procs::add_account(context, &database.url, true)?;

    let finished = reconcile(context, args, &database, &sim, account_id, mode, &name)?;
    let report: serde_json::Value = serde_json::from_str(&finished.stdout).unwrap_or_default();
    let comparisons = compare_with_truth(&database, account_id, &sim.base_url).context("could not compare with the ground truth")?;
    Ok(summarise(backend, mode, options, &finished, &report, comparisons))
}

fn reconcile(
    context: &BenchContext,
    args: &SweepArgs,
    database: &FreshDatabase,
    sim: &Sim,
    account_id: i64,
    mode: SweepMode,
    name: &str,
) -> anyhow::Result<Finished> {
    let mut command = context.sync_command();
    command.args(["--database-url", &database.url, "reconcile", "--account", &account_id.to_string(), "--full"]);
    command.args(sim.harvest_args());
    command.args(["--harvest-budget", &args.rate_limit.to_string()]);
    command.args(mode.reconcile_args(args));
    command.env("RUST_LOG", "info");

    let stdout_path = context.work_dir.join(format!("{name}.reconcile.out"));
    let (_, stderr) = context.log_file(&format!("{name}.reconcile.log"))?;
    procs::run_measured(command, &stdout_path, stderr)
}

fn summarise(
    backend: Backend,
    mode: SweepMode,
    sim: SimOptions,
    finished: &Finished,
    report: &serde_json::Value,
    comparisons: Vec<ResourceComparison>,
) -> SweepResult {
    let pages = report["pages"].as_u64().unwrap_or(0);
    let records = report["records"].as_u64().unwrap_or(0);
    let wall_secs = finished.wall.as_secs_f64();
    let floor_secs = pages as f64 * WINDOW_SECS / f64::from(sim.rate_limit.max(1));
    let matches_truth = comparisons.iter().all(|c| c.same_ids);
    SweepResult {
        benchmark: "sweep",
        backend,
        mode,
        truth_records: comparisons.iter().map(|c| c.truth_count).sum(),
        sim,
        status: report["status"].as_str().unwrap_or("no report").to_string(),
        exit: finished.exit.clone(),
        pages,
        records,
        wall_secs,
        floor_secs,
        ratio_to_floor: if floor_secs > 0.0 { wall_secs / floor_secs } else { 0.0 },
        records_per_sec: if wall_secs > 0.0 { records as f64 / wall_secs } else { 0.0 },
        peak_rss_kb: finished.peak_rss_kb,
        cpu_secs: finished.cpu_secs,
        matches_truth,
        comparisons,
    }
}

fn print_row(result: &SweepResult) {
    let candidates = result.sim.sizes.iter().find(|(flag, _)| *flag == "candidates").map_or(0, |(_, count)| *count);
    println!(
        "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.0} | {} |",
        result.backend.name(),
        result.mode.name(),
        candidates,
        result.records,
        result.pages,
        result.wall_secs,
        result.floor_secs,
        result.ratio_to_floor,
        result.peak_rss_kb as f64 / 1024.0,
        result.cpu_secs,
        result.records_per_sec,
        if result.matches_truth { "yes" } else { "NO" },
    );
}
