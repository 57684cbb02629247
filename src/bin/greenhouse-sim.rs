//! greenhouse-sim: a local Greenhouse (Harvest API v3 and webhook sender) for tests, demos and
//! benchmarks. Prints `listening on http://ADDR` once it accepts connections.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use greenhouse_sync::sim::{self, FaultConfig, Impairments, SimConfig, Sizes, WebhookConfig};

/// A local stand-in for Greenhouse: Harvest API v3 lists with OAuth2 tokens, rate limits and
/// faults, a stream of changes, ground truth under /_sim/, and signed webhooks.
#[derive(Debug, Parser)]
#[command(name = "greenhouse-sim", version)]
struct Options {
    /// Address to listen on. Loopback by default; port 0 picks a free port.
    #[arg(long, env = "GREENHOUSE_SIM_LISTEN", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,

    /// Seed of the generated data: the same seed and sizes give the same records.
    #[arg(long, env = "GREENHOUSE_SIM_SEED", default_value_t = 1)]
    seed: u64,

    /// Candidates generated at start.
    #[arg(long, env = "GREENHOUSE_SIM_CANDIDATES", default_value_t = 300)]
    candidates: u64,

    /// Applications generated at start (candidates and prospects; about 5% have no job).
    #[arg(long, env = "GREENHOUSE_SIM_APPLICATIONS", default_value_t = 360)]
    applications: u64,

    /// Jobs generated at start; each has one job post and five interview stages.
    #[arg(long, env = "GREENHOUSE_SIM_JOBS", default_value_t = 20)]
    jobs: u64,

    /// Departments generated at start.
    #[arg(long, env = "GREENHOUSE_SIM_DEPARTMENTS", default_value_t = 12)]
    departments: u64,

    /// Offices generated at start.
    #[arg(long, env = "GREENHOUSE_SIM_OFFICES", default_value_t = 6)]
    offices: u64,

    /// Users generated at start.
    #[arg(long, env = "GREENHOUSE_SIM_USERS", default_value_t = 40)]
    users: u64,

    /// Offers generated at start, in pairs of versions 1 and 2 per application.
    #[arg(long, env = "GREENHOUSE_SIM_OFFERS", default_value_t = 60)]
    offers: u64,

    /// Interviews generated at start.
    #[arg(long, env = "GREENHOUSE_SIM_INTERVIEWS", default_value_t = 120)]
    interviews: u64,

    /// Scorecards generated at start.
    #[arg(long, env = "GREENHOUSE_SIM_SCORECARDS", default_value_t = 120)]
    scorecards: u64,

    /// Secret every client id must present at POST /token (HTTP Basic client_id:secret).
    #[arg(long, env = "GREENHOUSE_SIM_CLIENT_SECRET", default_value = "sim-secret", hide_env_values = true)]
    client_secret: String,

    /// Lifetime of access tokens, in seconds; set it low to exercise token refresh.
    #[arg(long, env = "GREENHOUSE_SIM_TOKEN_TTL_SECS", default_value_t = 3600)]
    token_ttl_secs: u64,

    /// Requests allowed per client id in each fixed 30-second window.
    #[arg(long, env = "GREENHOUSE_SIM_RATE_LIMIT", default_value_t = 50)]
    rate_limit: u32,

    /// Fixed delay added to every /v3 response, in milliseconds.
    #[arg(long, env = "GREENHOUSE_SIM_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,

    /// Delay added per record returned, in microseconds, so large pages are slower.
    #[arg(long, env = "GREENHOUSE_SIM_LATENCY_PER_RECORD_US", default_value_t = 0)]
    latency_per_record_us: u64,

    /// Fraction of /v3 requests that fail with 500, 502 or 503.
    #[arg(long, env = "GREENHOUSE_SIM_ERROR_RATE", default_value_t = 0.0)]
    error_rate: f64,

    /// Fraction of /v3 requests whose connection is dropped before the body is complete.
    #[arg(long, env = "GREENHOUSE_SIM_DROP_RATE", default_value_t = 0.0)]
    drop_rate: f64,

    /// Fraction of /v3 requests delayed by --slow-ms more.
    #[arg(long, env = "GREENHOUSE_SIM_SLOW_RATE", default_value_t = 0.0)]
    slow_rate: f64,

    /// Extra delay of a slow response, in milliseconds.
    #[arg(long, env = "GREENHOUSE_SIM_SLOW_MS", default_value_t = 5000)]
    slow_ms: u64,

    /// Resource whose list returns 403, as for a credential without that permission.
    #[arg(long, env = "GREENHOUSE_SIM_FORBIDDEN_RESOURCE")]
    forbidden_resource: Option<String>,

    /// Resource whose next cursor page returns its own cursor again in Link, once.
    #[arg(long, env = "GREENHOUSE_SIM_REPEAT_CURSOR")]
    repeat_cursor: Option<String>,

    /// Background mutations (creates, updates, deletes, merges) per second; 0 for none.
    #[arg(long, env = "GREENHOUSE_SIM_MUTATIONS_PER_SEC", default_value_t = 0.0)]
    mutations_per_sec: f64,

    /// URL that receives a webhook for every mutation, and a ping at start.
    #[arg(long, env = "GREENHOUSE_SIM_WEBHOOK_URL")]
    webhook_url: Option<String>,

    /// Secret key for the webhooks' Signature header.
    #[arg(long, env = "GREENHOUSE_SIM_WEBHOOK_SECRET", default_value = "sim-webhook-secret", hide_env_values = true)]
    webhook_secret: String,

    /// Divides Greenhouse's retry delays (1, 15, 60, 120, 240, 480 minutes); 60000 turns
    /// minutes into milliseconds.
    #[arg(long, env = "GREENHOUSE_SIM_RETRY_SCALE", default_value_t = 1.0)]
    retry_scale: f64,

    /// Timeout of one webhook delivery attempt, in seconds.
    #[arg(long, env = "GREENHOUSE_SIM_WEBHOOK_TIMEOUT_SECS", default_value_t = 30)]
    webhook_timeout_secs: u64,

    /// Fraction of webhooks never sent.
    #[arg(long, env = "GREENHOUSE_SIM_WEBHOOK_DROP_RATE", default_value_t = 0.0)]
    webhook_drop_rate: f64,

    /// Fraction of webhooks sent twice.
    #[arg(long, env = "GREENHOUSE_SIM_WEBHOOK_DUPLICATE_RATE", default_value_t = 0.0)]
    webhook_duplicate_rate: f64,

    /// Fraction of webhooks postponed by up to --webhook-max-delay-ms, so later ones overtake
    /// them.
    #[arg(long, env = "GREENHOUSE_SIM_WEBHOOK_DELAY_RATE", default_value_t = 0.0)]
    webhook_delay_rate: f64,

    /// Maximum delay of a postponed webhook, in milliseconds.
    #[arg(long, env = "GREENHOUSE_SIM_WEBHOOK_MAX_DELAY_MS", default_value_t = 2000)]
    webhook_max_delay_ms: u64,
}

impl Options {
    fn into_config(self) -> anyhow::Result<SimConfig> {
        let faults = FaultConfig {
            error_rate: self.error_rate,
            drop_rate: self.drop_rate,
            slow_rate: self.slow_rate,
            slow_ms: self.slow_ms,
            forbidden_resource: self.forbidden_resource,
            repeat_cursor: self.repeat_cursor,
            ..FaultConfig::default()
        };
        sim::faults::validate(&faults).map_err(|message| anyhow::anyhow!(message))?;

        let webhook = self.webhook_url.map(|url| WebhookConfig {
            url,
            secret: self.webhook_secret,
            retry_scale: self.retry_scale,
            timeout: Duration::from_secs(self.webhook_timeout_secs),
            impairments: Impairments {
                drop_rate: self.webhook_drop_rate,
                duplicate_rate: self.webhook_duplicate_rate,
                delay_rate: self.webhook_delay_rate,
                max_delay_ms: self.webhook_max_delay_ms,
            },
        });

        Ok(SimConfig {
            listen: self.listen,
            seed: self.seed,
            sizes: Sizes {
                departments: self.departments,
                offices: self.offices,
                users: self.users,
                jobs: self.jobs,
                candidates: self.candidates,
                applications: self.applications,
                offers: self.offers,
                interviews: self.interviews,
                scorecards: self.scorecards,
            },
            client_secret: self.client_secret,
            token_ttl: Duration::from_secs(self.token_ttl_secs),
            rate_limit: self.rate_limit,
            latency: Duration::from_millis(self.latency_ms),
            latency_per_record: Duration::from_micros(self.latency_per_record_us),
            faults,
            mutations_per_sec: self.mutations_per_sec,
            webhook,
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();

    let config = Options::parse().into_config()?;
    let running = sim::start(config).await?;
    println!("listening on http://{}", running.addr());

    tokio::signal::ctrl_c().await.context("failed to wait for Ctrl-C")?;
    running.stop().await;
    Ok(())
}
