//! `greenhouse-sync serve`.

use anyhow::Context;
use clap::Args;

use super::sync_args::{HarvestArgs, SweepArgs};
use super::{DatabaseArgs, open_migrated};
use crate::admin::AdminSettings;
use crate::changes;
use crate::retention::{self, RetentionSettings};
use crate::server::shutdown::{self, ShutdownSignal};
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

    /// Bearer token for the admin API under `/admin`. Without it every admin route returns
    /// 503. Use a long random value, such as `openssl rand -hex 32`.
    #[arg(long, env = "GREENHOUSE_SYNC_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Seconds the webhook secret replaced by a rotation keeps verifying deliveries, so none
    /// fails while the new secret is being entered in Greenhouse.
    #[arg(long, env = "GREENHOUSE_SYNC_SECRET_GRACE_PERIOD_SECS", default_value_t = 24 * 3600)]
    pub secret_grace_period_secs: u64,

    /// Days a webhook delivery's body (candidate data) is kept after it was applied; failed
    /// deliveries keep theirs for replay up to twice as long. The delivery rows stay.
    #[arg(long, env = "GREENHOUSE_SYNC_DELIVERY_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub delivery_retention_days: u64,

    /// Days a change stays readable in the change feed; a consumer further behind gets 410
    /// and reads the tables again. Longer keeps more rows in the `changes` table.
    #[arg(long, env = "GREENHOUSE_SYNC_CHANGES_RETENTION_DAYS", default_value_t = crate::changes::retention::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub changes_retention_days: u64,

    /// Seconds a stopping server (SIGTERM, SIGINT) gives running sweeps, and then requests in
    /// flight, to finish. Sweeps stop at their next page and resume at the next start.
    #[arg(long, env = "GREENHOUSE_SYNC_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,

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
        admin_token: args.admin_token.clone(),
        admin: AdminSettings { secret_grace_period: std::time::Duration::from_secs(args.secret_grace_period_secs) },
        shutdown_timeout: std::time::Duration::from_secs(args.shutdown_timeout_secs),
    };
    if config.admin_token.is_none() {
        tracing::info!("no admin token configured; the admin API returns 503 until --admin-token is set");
    }
    let retention = RetentionSettings {
        period: std::time::Duration::from_secs(args.delivery_retention_days * 24 * 3600),
        ..RetentionSettings::default()
    };
    let changes_retention = std::time::Duration::from_secs(args.changes_retention_days * 24 * 3600);
    let sweeps = SweepService::new(db.clone(), args.harvest.settings(), args.sweep.settings())
        .context("invalid Harvest settings")?;
    let config = ServerConfig { sweeps: Some(sweeps.clone()), ..config };
    let schedule = args.schedule;

    actix_web::rt::System::new().block_on(async move {
        // Sweeps started by admin requests run here, on the main runtime, not on the
        // HTTP worker that handled the request.
        sweeps.run_on(tokio::runtime::Handle::current());
        let (server, addrs) = server::start(db.clone(), &config).with_context(|| format!("could not listen on {}", config.listen))?;
        for addr in &addrs {
            tracing::info!(
                address = %addr,
                backend = ?db.backend(),
                startup_ms = started.elapsed().as_millis() as u64,
                "greenhouse-sync listening"
            );
        }
        let shutdown = ShutdownSignal::new();
        let stopped = shutdown.subscribe();
        tokio::spawn(stop_gracefully(server.handle(), shutdown.clone(), sweeps.clone(), config.shutdown_timeout));
        tokio::spawn(retention::run_periodically(db.clone(), retention, stopped.clone()));
        tokio::spawn(changes::retention::run_purges(db.clone(), changes_retention, stopped.clone()));
        if schedule {
            tokio::spawn(sweeps.clone().run_schedule(SCHEDULE_TICK, stopped.clone()));
            tokio::spawn(sweeps.clone().run_refreshes(stopped));
        }

        server.await.context("server stopped with an error")?;

        // Sweeps stop at their next page and stay resumable; the next start continues them.
        shutdown.trigger();
        sweeps.cancel_all();
        sweeps.wait_idle(config.shutdown_timeout).await;
        tracing::info!("greenhouse-sync stopped");
        Ok(())
    })
}

/// On SIGTERM or SIGINT: stops the running sweeps at their next page, where they stay
/// resumable, then stops accepting connections, waits for the requests in flight, and stops
/// the HTTP server. Sweeps come first because a run started through the admin API runs on an
/// HTTP worker thread, which stops with the server. Each wait lasts at most `timeout`.
///
/// The requests are awaited here rather than by actix's graceful stop: in actix-server 2.6 a
/// worker that notices the accept thread ending before its stop message exits at once and
/// drops its connections, which lost a webhook in flight in about half the tries.
async fn stop_gracefully(
    server: actix_web::dev::ServerHandle,
    shutdown: ShutdownSignal,
    sweeps: SweepService,
    timeout: std::time::Duration,
) {
    shutdown::termination_requested(&shutdown).await;
    sweeps.cancel_all();
    sweeps.wait_idle(timeout).await;

    server.pause().await;
    let left = server::request_id::wait_for_requests(timeout).await;
    if left > 0 {
        tracing::warn!(requests = left, "shutdown timeout reached; closing requests still in flight");
    }
    server.stop(true).await;
}
