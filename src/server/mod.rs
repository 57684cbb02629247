//! The HTTP server: routes and start-up.

pub mod error;
pub mod health;
pub mod request_id;
pub mod shutdown;

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::admin::{self, AdminSettings, AdminToken};
use crate::db::Database;
use crate::metrics;
use crate::sweep::SweepService;
use crate::webhooks::commit::DeliveryWriter;
use crate::webhooks::intake::{self, WebhookSettings};

/// Time allowed for a client to send a request's head (request line and headers); a slower
/// one gets 408 from actix before any handler runs. The body has its own deadline,
/// `WebhookSettings::body_timeout`.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the server needs to start.
#[derive(Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub webhooks: WebhookSettings,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Sweeps of Harvest v3, for the admin sync routes. With `None` those routes respond
    /// with 503.
    pub sweeps: Option<SweepService>,
    /// Bearer token of the admin API; with `None` every admin route returns 503.
    pub admin_token: Option<String>,
    pub admin: AdminSettings,
    /// How long a stopping server waits for requests in flight before closing them.
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    /// Loopback on port 8080, no sweeps, no admin token, 30 s to finish requests at shutdown.
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".to_string(),
            webhooks: WebhookSettings {
                max_body_bytes: 10 * 1024 * 1024,
                body_timeout: Duration::from_secs(30),
            },
            workers: 0,
            sweeps: None,
            admin_token: None,
            admin: AdminSettings::default(),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("workers", &self.workers)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

/// Registers every route on an actix `ServiceConfig`, so tests and `serve` build the same app.
pub fn routes(db: Database, config: &ServerConfig) -> impl FnOnce(&mut web::ServiceConfig) + Clone + use<> {
    let webhooks = config.webhooks.clone();
    let sweeps = config.sweeps.clone();
    let admin_token = AdminToken::new(config.admin_token.as_deref());
    let admin_settings = config.admin.clone();
    // Built once here, not per worker, so that every worker shares SQLite's one writer.
    let writer = web::Data::new(DeliveryWriter::for_database(&db));
    move |cfg: &mut web::ServiceConfig| {
        if let Some(sweeps) = sweeps {
            cfg.app_data(web::Data::new(sweeps));
        }
        cfg.app_data(web::Data::new(db))
            .app_data(web::Data::new(webhooks))
            .app_data(writer)
            .app_data(web::Data::new(admin_token))
            .app_data(web::Data::new(admin_settings))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/metrics", web::get().to(metrics::scrape::serve_metrics))
            .service(
                web::resource("/webhooks/greenhouse/{account_id}")
                    .wrap(from_fn(metrics::webhooks::observe_webhook))
                    .route(web::post().to(intake::receive)),
            )
            .configure(admin::configure);
    }
}

/// Binds the listener and returns the server with its address; the caller awaits it.
pub fn start(db: Database, config: &ServerConfig) -> std::io::Result<(Server, Vec<SocketAddr>)> {
    let configure = routes(db, config);
    let mut server = HttpServer::new(move || App::new().wrap(from_fn(request_id::trace_request)).configure(configure.clone()))
        .client_request_timeout(REQUEST_HEAD_TIMEOUT)
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        // `shutdown::stop_on_signal` handles SIGTERM and SIGINT, so that background tasks
        // hear about the shutdown at the same moment as the HTTP server.
        .disable_signals();
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    let server = server.bind(&config.listen)?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}
