//! Starting and stopping a simulator instance.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio::task::JoinHandle;

use super::config::SimConfig;
use super::state::SimState;
use super::webhook::WebhookSender;
use super::{admin, harvest};

/// HTTP worker threads. Two keep a paging client and admin calls from waiting on each other
/// without spending memory on a thread per core.
const WORKERS: usize = 2;

/// A simulator serving on a loopback port. Dropping it leaves the server running until the
/// runtime ends; call `stop` to shut it down.
#[derive(Debug)]
pub struct RunningSim {
    addr: SocketAddr,
    handle: ServerHandle,
    state: Arc<SimState>,
    background: Vec<JoinHandle<()>>,
}

impl RunningSim {
    /// Returns the bound address, with the real port when port 0 was requested.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL of the Harvest API, for example `http://127.0.0.1:41234`; list paths are
    /// `{base_url}/v3/<resource>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// URL of the token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// Returns the shared state, for in-process tests that mutate or inspect it directly.
    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }

    /// Stops serving and ends the background tasks; waits for open requests to finish.
    pub async fn stop(self) {
        // The HTTP server stops first: its task drives it, so a stop sent after that task is
        // aborted can wait for a reply that never comes. The bound covers a request that
        // does not finish.
        let stopped = tokio::time::timeout(STOP_TIMEOUT, self.handle.stop(true)).await;
        if stopped.is_err() {
            tracing::warn!(timeout_secs = STOP_TIMEOUT.as_secs(), "greenhouse-sim did not stop in time; its tasks are aborted");
        }
        for task in &self.background {
            task.abort();
        }
    }
}

/// Maximum wait for the simulator's HTTP server to finish its requests when it stops.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts a simulator on the current Tokio runtime and returns once it accepts connections.
pub async fn start(config: SimConfig) -> anyhow::Result<RunningSim> {
    config.sizes.validate().map_err(|message| anyhow::anyhow!(message))?;

    let webhooks = match &config.webhook {
        Some(webhook) => Some(WebhookSender::start(webhook.clone())?),
        None => None,
    };
    let state = Arc::new(SimState::new(&config, webhooks.clone()));

    let app_state = web::Data::from(state.clone());
    let server = HttpServer::new(move || App::new().app_data(app_state.clone()).configure(routes))
        .workers(WORKERS)
        .disable_signals()
        // A stopping simulator gives requests in flight one second, so tests end quickly.
        .shutdown_timeout(1)
        .bind(config.listen)
        .with_context(|| format!("failed to bind {}", config.listen))?;
    let addr = *server.addrs().first().context("the server bound no address")?;
    let server = server.run();
    let handle = server.handle();

    let mut background = vec![tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%error, "simulator HTTP server failed");
        }
    })];
    if config.mutations_per_sec > 0.0 {
        background.push(tokio::spawn(mutation_stream(state.clone(), config.mutations_per_sec)));
    }
    if let Some(webhooks) = webhooks {
        webhooks.send_ping();
    }

    tracing::info!(%addr, "greenhouse-sim started");
    Ok(RunningSim { addr, handle, state, background })
}

/// Applies mutations at `per_sec` on average, in ticks of at most 10 per second.
async fn mutation_stream(state: Arc<SimState>, per_sec: f64) {
    let ticks_per_sec = per_sec.min(10.0);
    let per_tick = per_sec / ticks_per_sec;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / ticks_per_sec));
    let mut owed = 0.0;
    loop {
        interval.tick().await;
        owed += per_tick;
        let count = owed.floor();
        owed -= count;
        state.mutate(count as u32, None);
    }
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/token", web::post().to(harvest::token))
        .route("/v3/{resource}", web::get().to(harvest::list_resource))
        .route("/_sim/truth", web::get().to(admin::truth_all))
        .route("/_sim/truth/{resource}", web::get().to(admin::truth_one))
        .route("/_sim/dump/{resource}", web::get().to(admin::dump))
        .route("/_sim/mutate", web::post().to(admin::mutate))
        .route("/_sim/faults", web::get().to(admin::faults_get))
        .route("/_sim/faults", web::post().to(admin::faults_set))
        .route("/_sim/webhooks", web::get().to(admin::webhooks_get))
        .route("/_sim/webhooks", web::post().to(admin::webhooks_set));
}
