//! Command line: `serve`, `migrate` and `accounts`.
//!
//! Every flag can also be set from the environment variable named in its help.

mod accounts;
mod demo;
mod healthcheck;
mod reconcile;
mod serve;
pub mod sync_args;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::db::{self, Database, PoolSettings};

#[derive(Debug, Parser)]
#[command(name = "greenhouse-sync", version, about = "Keeps a SQL database in step with Greenhouse ATS accounts")]
pub struct Cli {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub logging: LoggingArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (webhooks, health checks).
    Serve(serve::ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Run one reconciliation sweep of an account in the foreground.
    Reconcile(reconcile::ReconcileArgs),
    /// Run greenhouse-sim and the server together and show a sync repairing lost webhooks.
    Demo(demo::DemoArgs),
    /// Check that the local server returns 200 from /healthz; exits 0 when it does.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Manage accounts (tenants).
    #[command(subcommand)]
    Accounts(accounts::AccountsCommand),
}

#[derive(Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `postgres://user@host/db`, or a SQLite file as `sqlite://path` or a plain
    /// path. The default, a SQLite file in the working directory, needs no set-up.
    #[arg(long, env = "DATABASE_URL", default_value = db::DEFAULT_DATABASE_URL, global = true, hide_env_values = true)]
    pub database_url: String,

    /// Maximum connections in the pool. PostgreSQL allows about 100 connections in all by
    /// default, shared by every replica.
    #[arg(long, env = "GREENHOUSE_SYNC_DB_POOL_SIZE", default_value_t = 10, global = true)]
    pub db_pool_size: u32,

    /// Seconds a request waits for a free database connection before failing with 503.
    #[arg(long, env = "GREENHOUSE_SYNC_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 5, global = true)]
    pub db_acquire_timeout_secs: u64,

    /// SQLite page cache per pooled connection, in KiB. Larger caches speed up large sweeps
    /// a little and cost up to this much memory per connection.
    #[arg(long, env = "GREENHOUSE_SYNC_SQLITE_CACHE_KIB", default_value_t = 512, global = true)]
    pub sqlite_cache_kib: u32,

    /// Master key that encrypts the stored webhook secrets and Harvest client secrets: 32
    /// random bytes in base64 (`openssl rand -base64 32`). Every replica needs the same key.
    /// Without it or `--master-key-file`, a SQLite database uses a key file beside it,
    /// created on first start; PostgreSQL refuses to start.
    #[arg(long, env = "GREENHOUSE_SYNC_MASTER_KEY", global = true, hide_env_values = true, conflicts_with = "master_key_file")]
    pub master_key: Option<String>,

    /// File holding the master key in base64, such as a mounted Kubernetes secret.
    #[arg(long, env = "GREENHOUSE_SYNC_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<std::path::PathBuf>,
}

impl DatabaseArgs {
    pub fn open(&self) -> Database {
        let settings = PoolSettings {
            max_connections: self.db_pool_size.max(1),
            acquire_timeout: std::time::Duration::from_secs(self.db_acquire_timeout_secs.max(1)),
            sqlite: db::SqliteOptions { cache_kib: self.sqlite_cache_kib, ..db::SqliteOptions::default() },
        };
        Database::open(&self.database_url, &settings)
    }

    /// Loads and installs the master key for this database.
    pub fn install_master_key(&self) -> anyhow::Result<()> {
        let source = crate::secrets::KeySource { key: self.master_key.clone(), key_file: self.master_key_file.clone() };
        crate::secrets::install_for_database(&source, &self.database_url)?;
        Ok(())
    }
}

impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field("database_url", &db::redact_url(&self.database_url))
            .field("db_pool_size", &self.db_pool_size)
            .field("master_key", &self.master_key.as_ref().map(|_| "***"))
            .field("master_key_file", &self.master_key_file)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct LoggingArgs {
    /// Log line format: `text` for people, `json` for log collectors. Levels come from
    /// `RUST_LOG` (default `info`).
    #[arg(long, env = "GREENHOUSE_SYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// Installs the tracing subscriber. Logs go to stderr so that stdout stays machine-readable.
fn init_logging(args: &LoggingArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only help a person at a terminal; in files and log collectors they are noise.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    let installed = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A subscriber may already be installed when running inside tests.
    drop(installed);
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.logging);

    let outcome = match &cli.command {
        Command::Serve(args) => serve::run(&cli.database, args),
        Command::Migrate => migrate(&cli.database),
        Command::Reconcile(args) => reconcile::run(&cli.database, args),
        Command::Demo(args) => demo::run(args),
        Command::Accounts(command) => accounts::run(&cli.database, command),
        Command::Healthcheck(args) => healthcheck::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the database, applies pending migrations and installs the master key, encrypting
/// secrets still stored as plaintext.
fn open_migrated(args: &DatabaseArgs) -> anyhow::Result<Database> {
    use anyhow::Context;

    let database = migrated(args)?;
    args.install_master_key()?;
    let mut conn = database.get()?;
    let sealed = db::accounts::seal_plaintext_secrets(&mut conn, chrono::Utc::now())
        .context("could not read the stored secrets with this master key; use the key they were stored with")?;
    if sealed > 0 {
        tracing::info!(accounts = sealed, "plaintext secrets encrypted with the master key");
    }
    Ok(database)
}

/// Opens the database and applies pending migrations.
fn migrated(args: &DatabaseArgs) -> anyhow::Result<Database> {
    use anyhow::Context;

    let database = args.open();
    let target = db::redact_url(&args.database_url);
    let mut conn = database.get().with_context(|| format!("could not connect to database {target}"))?;
    let applied = db::migrations::run_pending(&mut conn).with_context(|| format!("could not migrate database {target}"))?;
    if applied > 0 {
        tracing::info!(migrations = applied, database = %target, "database migrations applied");
    }
    Ok(database)
}

fn migrate(args: &DatabaseArgs) -> anyhow::Result<()> {
    // Migrating needs no master key, so a migration job can run without one.
    migrated(args)?;
    tracing::info!("database schema is current");
    Ok(())
}
