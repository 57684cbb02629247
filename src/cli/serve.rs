//! `greenhouse-sync serve`.

use anyhow::Context;
use clap::Args;

use super::sync_args::{HarvestArgs, SweepArgs};
use super::{DatabaseArgs, open_migrated};
use crate::server::{self, ServerConfig};
use crate::sweep::SweepService;
use crate::webhooks::intake::WebhookSettings;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "GREENHOUSE_SYNC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Largest webhook body accepted, in bytes; larger ones get 413. A candidate with long
    /// notes and many attachments stays well under the 10 MiB default.
    #[arg(long, env = "GREENHOUSE_SYNC_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds allowed to receive a webhook body once its headers have arrived; a slower
    /// sender gets 408. Greenhouse sends each body at once, so only a stalled or hostile
    /// client comes near the 30 s default.
    #[arg(long, env = "GREENHOUSE_SYNC_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,

    /// HTTP worker threads; 0 starts one per CPU core.
    #[arg(long, env = "GREENHOUSE_SYNC_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Run scheduled sweeps and targeted refreshes in this process. Turn off to run sweeps
    /// only through `reconcile` or the admin API.
    #[arg(long, env = "GREENHOUSE_SYNC_SCHEDULE", default_value_t = true, action = clap::ArgAction::Set)]
    pub schedule: bool,

    #[command(flatten)]
    pub harvest: HarvestArgs,

    #[command(flatten)]
    pub sweep: SweepArgs,
}

/// How often the schedule looks for accounts whose sweep is due.
const SCHEDULE_TICK: std::time::Duration = std::time::Duration::from_secs(30);

pub fn run(database: &DatabaseArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let db = open_migrated(database)?;
    let config = ServerConfig {
        listen: args.listen.clone(),
        webhooks: WebhookSettings {
            max_body_bytes: args.max_body_bytes,
            body_timeout: std::time::Duration::from_secs(args.body_timeout_secs),
        },
        workers: args.workers,
        sweeps: None,
    };
    let sweeps = SweepService::new(db.clone(), args.harvest.settings(), args.sweep.settings())
        .context("invalid Harvest settings")?;
    let config = ServerConfig { sweeps: Some(sweeps.clone()), ..config };
    let schedule = args.schedule;

    actix_web::rt::System::new().block_on(async move {
        let (server, addrs) = server::start(db.clone(), &config).with_context(|| format!("could not listen on {}", config.listen))?;
        for addr in &addrs {
            tracing::info!(
                address = %addr,
                backend = ?db.backend(),
                startup_ms = started.elapsed().as_millis() as u64,
                "greenhouse-sync listening"
            );
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        if schedule {
            tokio::spawn(sweeps.clone().run_schedule(SCHEDULE_TICK, stopped.clone()));
            tokio::spawn(sweeps.clone().run_refreshes(stopped));
        }

        server.await.context("server stopped with an error")?;

        // Sweeps stop at their next page and stay resumable; the next start continues them.
        let _ = stop.send(true);
        sweeps.cancel_all();
        sweeps.wait_idle(std::time::Duration::from_secs(10)).await;
        tracing::info!("greenhouse-sync stopped");
        Ok(())
    })
}
