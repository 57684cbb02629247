//! greenhouse-bench: benchmarks of greenhouse-sync against greenhouse-sim.
//!
//! Every benchmark starts greenhouse-sim and greenhouse-sync as separate processes on loopback
//! ports, with a fresh SQLite file or a fresh PostgreSQL database, and measures the
//! greenhouse-sync process from the outside (`/proc` and `wait4`). docs/BENCHMARKS.md lists
//! the commands and the figures they produced.

mod database;
mod dblimit;
mod load;
mod plot;
mod procs;
mod soak;
mod sweep;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "greenhouse-bench", about = "Benchmarks of greenhouse-sync against greenhouse-sim")]
struct Cli {
    #[command(flatten)]
    common: Common,

    #[command(subcommand)]
    command: Command,
}

/// Settings shared by every benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Directory containing the greenhouse-sim and greenhouse-sync binaries. Defaults to the
    /// directory of this binary, which `cargo build --release --bins` fills.
    #[arg(long, global = true)]
    pub bin_dir: Option<PathBuf>,

    /// PostgreSQL server on which fresh databases are created and dropped, as a URL without
    /// a database name. The user must be allowed to create databases.
    #[arg(long, global = true, env = "BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    pub postgres_url: String,

    /// Directory for SQLite files and process logs. A new subdirectory is made per
    /// invocation; defaults to the system temporary directory.
    #[arg(long, global = true)]
    pub work_dir: Option<PathBuf>,

    /// File to which every result is appended as one JSON line.
    #[arg(long, global = true)]
    pub results: Option<PathBuf>,

    /// Replace sizes, rates and durations by ones that finish in seconds, to check in CI
    /// that the benchmarks still run. Figures from a tiny run mean nothing.
    #[arg(long, global = true)]
    pub tiny: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Full sweeps of accounts of several sizes, in three concurrency modes.
    Sweep(sweep::SweepArgs),
    /// Steady webhook rates and a burst, sent by a load generator in this process.
    Webhooks(webhooks::WebhookArgs),
    /// The database's own rate for the transaction a webhook delivery runs.
    DbLimit(dblimit::DbLimitArgs),
    /// Webhooks at a steady rate with scheduled sweeps, sampling the server's memory.
    Soak(soak::SoakArgs),
    /// Every benchmark with its default settings, one after the other (use with --tiny).
    All,
}

/// Database backend a benchmark runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    // reqwest is built without a default TLS provider; it needs one even for plain HTTP.
    greenhouse_sync::greenhouse::harvest::install_crypto_provider();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let context = procs::BenchContext::new(&cli.common).context("could not prepare the benchmark")?;
    match &cli.command {
        Command::Sweep(args) => sweep::run(&context, args),
        Command::Webhooks(args) => webhooks::run(&context, args),
        Command::DbLimit(args) => dblimit::run(&context, args),
        Command::Soak(args) => soak::run(&context, args),
        Command::All => run_all(&context),
    }
}

/// Runs each benchmark with its defaults; a failure stops the sequence and is returned.
fn run_all(context: &procs::BenchContext) -> anyhow::Result<()> {
    sweep::run(context, &default_args()?)?;
    webhooks::run(context, &default_args()?)?;
    dblimit::run(context, &default_args()?)?;
    soak::run(context, &default_args()?)?;
    Ok(())
}

/// Returns a subcommand's arguments as if it were given no flags.
fn default_args<T: clap::Args + clap::FromArgMatches>() -> anyhow::Result<T> {
    let command = T::augment_args(clap::Command::new("defaults"));
    let matches = command.try_get_matches_from(["defaults"]).context("invalid default arguments")?;
    Ok(T::from_arg_matches(&matches)?)
}
