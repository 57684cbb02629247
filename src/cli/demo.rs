//! `greenhouse-sync demo`: the whole loop on one machine, with no Greenhouse account.
//!
//! Starts greenhouse-sim with a realistic account and the server on a fresh SQLite file, adds
//! the account and runs the first full sync with progress. Then the simulated account
//! changes while its webhooks arrive with a fifth of them dropped, and the next sweeps repair
//! what was lost.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::sync_args::SweepArgs;
use crate::db::accounts::{self, NewAccount};
use crate::db::{Database, PoolSettings, migrations, sweeps};
use crate::greenhouse::Resource;
use crate::greenhouse::harvest::HarvestSettings;
use crate::server::{self, ServerConfig};
use crate::sim::{self, Impairments, SimConfig, Sizes, WebhookConfig};
use crate::sweep::{Mode, Progress, SweepService};
use crate::webhooks::intake::WebhookSettings;

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address of the demo server.
    #[arg(long, env = "GREENHOUSE_SYNC_DEMO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Candidates in the simulated account; applications are 1.2 times as many.
    #[arg(long, env = "GREENHOUSE_SYNC_DEMO_CANDIDATES", default_value_t = 5_000)]
    pub candidates: u64,

    /// Requests per 30 s the simulated Harvest allows.
    #[arg(long, env = "GREENHOUSE_SYNC_DEMO_RATE_LIMIT", default_value_t = 200)]
    pub rate_limit: u32,

    /// Changes the simulated account makes while webhooks flow.
    #[arg(long, env = "GREENHOUSE_SYNC_DEMO_CHANGES", default_value_t = 300)]
    pub changes: u32,

    /// Fraction of webhooks the simulated sender drops.
    #[arg(long, env = "GREENHOUSE_SYNC_DEMO_DROP_RATE", default_value_t = 0.2)]
    pub drop_rate: f64,

    /// Stop after the repair instead of serving until Ctrl-C.
    #[arg(long, env = "GREENHOUSE_SYNC_DEMO_EXIT")]
    pub exit: bool,

    #[command(flatten)]
    pub sweep: SweepArgs,
}

const HOOK_SECRET: &str = "demo-webhook-secret";
const CLIENT_SECRET: &str = "sim-secret";

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("greenhouse-sync-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let database_url = dir.join("demo.db").display().to_string();
    println!("database: {database_url}");

    crate::secrets::install_for_database(&crate::secrets::KeySource::default(), &database_url)?;
    // The demo's key file lands beside its database, like a first start of `serve` on SQLite.
    let no_key = crate::secrets::KeySource { key: None, key_file: None };
    crate::secrets::install_for_database(&no_key, &database_url)?;
    let db = Database::open(&database_url, &PoolSettings::default());
    let mut conn = db.get()?;
    migrations::run_pending(&mut conn)?;
    let account = accounts::create(&mut conn, &demo_account(), chrono::Utc::now())?;
    drop(conn);

    actix_web::rt::System::new().block_on(demo(args, db, account.id))
}

fn demo_account() -> NewAccount {
    NewAccount {
        name: "Demo Company".to_string(),
        webhook_secret: HOOK_SECRET.to_string(),
        harvest_client_id: Some("demo-client".to_string()),
        harvest_client_secret: Some(CLIENT_SECRET.to_string()),
        harvest_user_id: None,
    }
}

async fn demo(args: &DemoArgs, db: Database, account_id: i64) -> anyhow::Result<()> {
    let webhook_settings = WebhookSettings { max_body_bytes: 10 * 1024 * 1024, body_timeout: Duration::from_secs(30) };
    let config = ServerConfig { listen: args.listen.clone(), webhooks: webhook_settings, workers: 2, sweeps: None, ..ServerConfig::default() };
    let (server, addrs) = server::start(db.clone(), &config).with_context(|| format!("could not listen on {}", args.listen))?;
    let server_url = format!("http://{}", addrs[0]);
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let sim = sim::start(sim_config(args, &server_url, account_id)).await?;
    println!("greenhouse-sim: {} (Harvest v3 at {}/v3)", sim.base_url(), sim.base_url());
    println!("greenhouse-sync: {server_url}, account {account_id}, webhooks at /webhooks/greenhouse/{account_id}");

    let harvest = HarvestSettings {
        base_url: format!("{}/v3", sim.base_url()),
        token_url: sim.token_url(),
        budget_limit: args.rate_limit,
        ..HarvestSettings::default()
    };
    let service = SweepService::new(db.clone(), harvest, args.sweep.settings())?;

    println!("\n1. First full sync");
    sweep_with_progress(&service, account_id, Mode::Full).await?;
    print_comparison(&sim, &db, account_id).await?;

    println!("\n2. The account changes {} times; webhooks arrive with {:.0}% dropped", args.changes, args.drop_rate * 100.0);
    sim.state().mutate(args.changes, None);
    wait_for_webhooks(&sim).await;
    if let Some(sender) = &sim.state().webhooks {
        let stats = sender.stats();
        println!("   webhooks: {} sent, {} delivered, {} dropped, {} duplicated", stats.events, stats.delivered, stats.dropped, stats.duplicated);
    }
    print_comparison(&sim, &db, account_id).await?;

    println!("\n3. Incremental sweep, then full sweep (deletions and merges)");
    sweep_with_progress(&service, account_id, Mode::Incremental).await?;
    sweep_with_progress(&service, account_id, Mode::Full).await?;
    print_comparison(&sim, &db, account_id).await?;

    println!("\nLook around:");
    println!("   health:   {server_url}/healthz");
    println!("   metrics:  {server_url}/metrics");
    println!("   database: the SQLite file above (tables jobs, candidates, applications, ...)");
    println!("   truth:    {}/_sim/truth", sim.base_url());
    if args.exit {
        handle.stop(true).await;
        sim.stop().await;
        return Ok(());
    }
    println!("Serving until Ctrl-C.");
    tokio::signal::ctrl_c().await.context("could not wait for Ctrl-C")?;
    handle.stop(true).await;
    sim.stop().await;
    Ok(())
}

fn sim_config(args: &DemoArgs, server_url: &str, account_id: i64) -> SimConfig {
    let mut webhook = WebhookConfig::new(format!("{server_url}/webhooks/greenhouse/{account_id}"), HOOK_SECRET);
    // Greenhouse retries after minutes; here after milliseconds.
    webhook.retry_scale = 60_000.0;
    webhook.impairments = Impairments { drop_rate: args.drop_rate, duplicate_rate: 0.05, delay_rate: 0.1, max_delay_ms: 500 };
    let candidates = args.candidates.max(10);
    SimConfig {
        sizes: Sizes { candidates, applications: candidates * 6 / 5, ..Sizes::default() },
        rate_limit: args.rate_limit,
        latency: Duration::from_millis(50),
        latency_per_record: Duration::from_micros(200),
        client_secret: CLIENT_SECRET.to_string(),
        webhook: Some(webhook),
        ..SimConfig::default()
    }
}

async fn sweep_with_progress(service: &SweepService, account_id: i64, mode: Mode) -> anyhow::Result<()> {
    let client = service.client(account_id).await?;
    let progress = Arc::new(Progress::default());
    let bar = indicatif::ProgressBar::new_spinner();
    let shown = bar.clone();
    let watched = progress.clone();
    let ticker = tokio::spawn(async move {
        loop {
            shown.set_message(format!("{} sweep: {} pages, {} records", mode.as_str(), watched.pages(), watched.records()));
            shown.tick();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let report = crate::sweep::run(service.database(), &client, service.settings(), "demo", mode, progress).await;
    ticker.abort();
    bar.finish_and_clear();

    let report = report?;
    println!(
        "   {} sweep {}: {} pages, {} records, {} marked deleted",
        mode.as_str(),
        report.status,
        report.pages,
        report.records,
        report.deleted
    );
    Ok(())
}

async fn wait_for_webhooks(sim: &sim::RunningSim) {
    let Some(sender) = &sim.state().webhooks else { return };
    for _ in 0..600 {
        if sender.stats().pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prints, per resource, the simulator's record count beside the live local rows.
async fn print_comparison(sim: &sim::RunningSim, db: &Database, account_id: i64) -> anyhow::Result<()> {
    let truth: serde_json::Value = reqwest::get(format!("{}/_sim/truth", sim.base_url())).await?.json().await?;
    let db = db.clone();
    let local = db
        .run(move |conn| {
            Resource::ALL
                .iter()
                .map(|resource| sweeps::count_live(conn, account_id, *resource).map(|count| (*resource, count)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(crate::db::DbError::from)
        })
        .await?;
    let mut differing = 0;
    for (resource, stored) in local {
        let expected = truth[resource.name()]["count"].as_i64().unwrap_or(0);
        if expected != stored {
            differing += 1;
            println!("   {resource}: Greenhouse {expected}, local {stored}");
        }
    }
    if differing == 0 {
        println!("   every resource's count matches Greenhouse");
    }
    Ok(())
}
