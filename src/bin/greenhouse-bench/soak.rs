//! Memory over time: webhooks at a steady rate for many minutes while the server's own
//! schedule runs full sweeps, with the server's RSS sampled at a fixed period.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use crate::Backend;
use crate::database::FreshDatabase;
use crate::load::{self, Deliveries, LoadOutcome, Pace};
use crate::plot::{self, MemoryPlot};
use crate::procs::{self, BenchContext, Server, Sim, SimOptions, WEBHOOK_SECRET};

#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Length of the soak, in minutes.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,

    /// Webhook deliveries per second.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,

    /// Seconds between full sweeps, given to the server as its full and incremental sweep
    /// intervals. The server checks its schedule every 30 s, so sweeps start up to 30 s late.
    #[arg(long, default_value_t = 300)]
    pub sweep_every_secs: u64,

    /// Seconds between RSS samples.
    #[arg(long, default_value_t = 10.0)]
    pub sample_secs: f64,

    /// Database backend.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: Backend,

    /// Candidates in the simulated account that the sweeps read; the other resources scale
    /// with it as in the sweep benchmark.
    #[arg(long, default_value_t = 10_000)]
    pub candidates: u64,

    /// Requests the simulator allows per 30-second window.
    #[arg(long, default_value_t = 50)]
    pub rate_limit: u32,

    /// Fixed delay of every simulated Harvest response, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub latency_ms: u64,

    /// Delay added per record in a simulated Harvest response, in microseconds.
    #[arg(long, default_value_t = 1000)]
    pub latency_per_record_us: u64,

    /// PNG file for the plot; defaults to soak-rss.png in the work directory.
    #[arg(long)]
    pub plot: Option<PathBuf>,

    /// CSV file for the samples; defaults to soak-rss.csv in the work directory.
    #[arg(long)]
    pub csv: Option<PathBuf>,

    /// TrueType font for the plot's text.
    #[arg(long, default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
    pub font: PathBuf,

    /// Webhook fixtures sent in turn, comma-separated file names without `.json`.
    #[arg(long, value_delimiter = ',', default_value = "update_candidate,candidate_stage_change,new_candidate_application")]
    pub fixtures: Vec<String>,

    /// Directory of the webhook fixtures.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/greenhouse/webhooks"))]
    pub fixtures_dir: PathBuf,
}

/// One RSS sample of the server.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    pub seconds: f64,
    pub rss_kb: u64,
    pub anon_kb: u64,
    pub file_kb: u64,
    /// Memory from the server's metrics: SQLite's heap (0 on PostgreSQL), and the C heap's
    /// bytes in use by live allocations and free but kept by glibc.
    pub sqlite_kb: u64,
    pub heap_in_use_kb: u64,
    pub heap_free_kb: u64,
    pub peak_rss_kb: u64,
    pub cpu_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakResult {
    pub benchmark: &'static str,
    pub backend: Backend,
    pub minutes: f64,
    pub rate: f64,
    pub sweep_every_secs: u64,
    pub sim: SimOptions,
    pub load: LoadOutcome,
    /// Sweeps that started and finished during the soak, as `(start, end)` in seconds.
    pub sweeps: Vec<(f64, f64)>,
    pub first_rss_kb: u64,
    pub last_rss_kb: u64,
    pub min_rss_kb: u64,
    pub max_rss_kb: u64,
    /// Least-squares slope of RSS over the second half of the soak, in MB per hour.
    pub second_half_slope_mb_per_hour: f64,
    pub samples: Vec<Sample>,
}

pub fn run(context: &BenchContext, args: &SoakArgs) -> anyhow::Result<()> {
    let args = if context.tiny { tiny(args) } else { args.clone() };
    plot::register_font(&args.font)?;
    let name = context.unique_name(&format!("soak_{}", args.backend.name()));
    eprintln!("greenhouse-bench: soak {name} starting for {} minutes", args.minutes);

    let options = SimOptions {
        sizes: crate::sweep::sizes(args.candidates, 1.2),
        rate_limit: args.rate_limit,
        latency_ms: args.latency_ms,
        latency_per_record_us: args.latency_per_record_us,
    };
    let sim = Sim::start(context, &options, &name)?;
    let database = FreshDatabase::create(context, args.backend, "soak")?;
    let account_id = procs::add_account(context, &database.url, true)?;
    let server = start_server(context, &args, &database, &sim, &name)?;

    let started_at = Utc::now();
    let (samples, load) = drive(&args, &server, account_id)?;
    let sweeps = sweep_periods(&server.log_path, started_at)?;

    let result = summarise(&args, options, load, sweeps, samples);
    write_outputs(context, &args, &result)?;
    print_summary(&result);
    context.record(&result)?;
    Ok(())
}

fn tiny(args: &SoakArgs) -> SoakArgs {
    SoakArgs {
        minutes: 0.25,
        rate: 20.0,
        sample_secs: 1.0,
        candidates: 300,
        rate_limit: 1000,
        latency_ms: 0,
        latency_per_record_us: 0,
        ..args.clone()
    }
}

fn start_server(context: &BenchContext, args: &SoakArgs, database: &FreshDatabase, sim: &Sim, name: &str) -> anyhow::Result<Server> {
    let interval = args.sweep_every_secs.to_string();
    let mut serve_args = sim.harvest_args();
    serve_args.extend(["--harvest-budget".to_string(), args.rate_limit.to_string()]);
    serve_args.extend(["--sweep-full-interval-secs".to_string(), interval.clone()]);
    serve_args.extend(["--sweep-incremental-interval-secs".to_string(), interval]);
    Server::start(context, &database.url, &serve_args, name)
}

/// Sends the webhooks from a thread of its own and samples the server until they are done.
fn drive(args: &SoakArgs, server: &Server, account_id: i64) -> anyhow::Result<(Vec<Sample>, LoadOutcome)> {
    let url = format!("{}/webhooks/greenhouse/{account_id}", server.base_url);
    let deliveries = Arc::new(Deliveries::load(&args.fixtures_dir, &args.fixtures, url, WEBHOOK_SECRET, 2_000_000_000)?);
    let pace = Pace {
        count: (args.rate * args.minutes * 60.0).round() as u64,
        interval: Duration::from_secs_f64(1.0 / args.rate.max(0.001)),
        max_in_flight: 512,
        // A soak keeps its length even when the server falls behind the rate.
        send_deadline: Duration::from_secs_f64(args.minutes * 60.0),
    };
    let sender = std::thread::spawn(move || -> anyhow::Result<LoadOutcome> { load::runtime()?.block_on(load::send(deliveries, pace)) });

    let started = Instant::now();
    let period = Duration::from_secs_f64(args.sample_secs.max(0.1));
    let mut samples = Vec::new();
    let mut next = started;
    while !sender.is_finished() {
        let now = server.sample().context("could not sample the server; did it exit?")?;
        let heap = heap_gauges(&server.base_url)?;
        samples.push(Sample {
            seconds: started.elapsed().as_secs_f64(),
            rss_kb: now.rss_kb,
            anon_kb: now.anon_kb,
            file_kb: now.file_kb,
            sqlite_kb: heap.sqlite_kb,
            heap_in_use_kb: heap.in_use_kb,
            heap_free_kb: heap.free_kb,
            peak_rss_kb: now.peak_rss_kb,
            cpu_secs: now.cpu_secs,
        });
        next += period;
        // Sleep in short steps, so that sampling stops soon after the sender does.
        while Instant::now() < next && !sender.is_finished() {
            std::thread::sleep(Duration::from_millis(200).min(next.saturating_duration_since(Instant::now())));
        }
    }
    let load = sender.join().map_err(|_| anyhow::anyhow!("the webhook sender thread panicked"))??;
    Ok((samples, load))
}

/// The server's heap gauges, in KiB.
struct HeapGauges {
    sqlite_kb: u64,
    in_use_kb: u64,
    free_kb: u64,
}

/// Scrapes the server's metrics for its heap gauges.
fn heap_gauges(base_url: &str) -> anyhow::Result<HeapGauges> {
    let text = load::get_text(&format!("{base_url}/metrics"))?;
    let kib = |series: &str| -> anyhow::Result<u64> {
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .with_context(|| format!("the server's metrics have no {series}"))?;
        Ok(value.trim().parse::<u64>().with_context(|| format!("{series} is not a whole number: {value}"))? / 1024)
    };
    Ok(HeapGauges {
        sqlite_kb: kib("greenhouse_sync_sqlite_heap_bytes")?,
        in_use_kb: kib("greenhouse_sync_heap_bytes{state=\"in_use\"}")?,
        free_kb: kib("greenhouse_sync_heap_bytes{state=\"free\"}")?,
    })
}

/// Reads sweep start and finish times from the server's JSON log, in seconds since `since`.
fn sweep_periods(log_path: &std::path::Path, since: DateTime<Utc>) -> anyhow::Result<Vec<(f64, f64)>> {
    let text = std::fs::read_to_string(log_path).with_context(|| format!("could not read {}", log_path.display()))?;
    let mut periods = Vec::new();
    let mut open: Option<f64> = None;
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let message = event["message"].as_str().unwrap_or_default();
        let Some(at) = event["timestamp"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok()) else {
            continue;
        };
        let seconds = (at - since).num_milliseconds() as f64 / 1000.0;
        match message {
            "sweep started" => open = Some(seconds),
            "sweep finished" => {
                if let Some(start) = open.take() {
                    periods.push((start, seconds));
                }
            }
            _ => {}
        }
    }
    Ok(periods)
}

fn summarise(args: &SoakArgs, sim: SimOptions, load: LoadOutcome, sweeps: Vec<(f64, f64)>, samples: Vec<Sample>) -> SoakResult {
    let rss: Vec<u64> = samples.iter().map(|s| s.rss_kb).collect();
    let half = samples.len() / 2;
    SoakResult {
        benchmark: "soak",
        backend: args.backend,
        minutes: samples.last().map_or(0.0, |s| s.seconds / 60.0),
        rate: args.rate,
        sweep_every_secs: args.sweep_every_secs,
        sim,
        load,
        sweeps,
        first_rss_kb: rss.first().copied().unwrap_or(0),
        last_rss_kb: rss.last().copied().unwrap_or(0),
        min_rss_kb: rss.iter().copied().min().unwrap_or(0),
        max_rss_kb: rss.iter().copied().max().unwrap_or(0),
        second_half_slope_mb_per_hour: slope_mb_per_hour(&samples[half..]),
        samples,
    }
}

/// Least-squares slope of RSS against time, in MB per hour; 0 with fewer than two samples.
fn slope_mb_per_hour(samples: &[Sample]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.seconds).sum::<f64>() / n;
    let mean_mb = samples.iter().map(|s| s.rss_kb as f64 / 1024.0).sum::<f64>() / n;
    let covariance: f64 = samples.iter().map(|s| (s.seconds - mean_t) * (s.rss_kb as f64 / 1024.0 - mean_mb)).sum();
    let variance: f64 = samples.iter().map(|s| (s.seconds - mean_t).powi(2)).sum();
    if variance == 0.0 { 0.0 } else { covariance / variance * 3600.0 }
}

fn write_outputs(context: &BenchContext, args: &SoakArgs, result: &SoakResult) -> anyhow::Result<()> {
    let csv_path = args.csv.clone().unwrap_or_else(|| context.work_dir.join("soak-rss.csv"));
    let mut csv = std::fs::File::create(&csv_path).with_context(|| format!("could not create {}", csv_path.display()))?;
    writeln!(csv, "seconds,rss_kb,anon_kb,file_kb,sqlite_kb,heap_in_use_kb,heap_free_kb,peak_rss_kb,cpu_secs")?;
    for s in &result.samples {
        let heap = (s.sqlite_kb, s.heap_in_use_kb, s.heap_free_kb);
        writeln!(csv, "{:.1},{},{},{},{},{},{},{},{:.2}", s.seconds, s.rss_kb, s.anon_kb, s.file_kb, heap.0, heap.1, heap.2, s.peak_rss_kb, s.cpu_secs)?;
    }

    let plot_path = args.plot.clone().unwrap_or_else(|| context.work_dir.join("soak-rss.png"));
    let points: Vec<plot::Point> = result.samples.iter().map(|s| (s.seconds / 60.0, s.rss_kb as f64 / 1024.0)).collect();
    let heap: Vec<plot::Point> = result.samples.iter().map(|s| (s.seconds / 60.0, s.heap_in_use_kb as f64 / 1024.0)).collect();
    let sweeps: Vec<(f64, f64)> = result.sweeps.iter().map(|(start, end)| (start / 60.0, end / 60.0)).collect();
    let title = format!(
        "greenhouse-sync memory: {:.0} webhooks/s on {}, full sweeps every {} s (shaded)",
        result.rate,
        result.backend.name(),
        result.sweep_every_secs
    );
    plot::draw(&plot_path, &MemoryPlot { title: &title, rss: &points, heap_in_use: &heap, sweeps: &sweeps })?;
    eprintln!("greenhouse-bench: samples in {}, plot in {}", csv_path.display(), plot_path.display());
    Ok(())
}

fn print_summary(result: &SoakResult) {
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!("| backend | minutes | webhooks sent | errors | p99 ms | sweeps | first RSS MB | min | max | last | slope, 2nd half (MB/h) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.1} | {} | {} | {:.2} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
        result.backend.name(),
        result.minutes,
        result.load.sent,
        result.load.errors,
        result.load.p99_ms,
        result.sweeps.len(),
        mb(result.first_rss_kb),
        mb(result.min_rss_kb),
        mb(result.max_rss_kb),
        mb(result.last_rss_kb),
        result.second_half_slope_mb_per_hour,
    );
}
