//! The HTTP server: routes and start-up.

pub mod error;
pub mod health;

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::db::Database;
use crate::sweep::SweepService;
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
    /// Sweeps of Harvest v3, for the admin sync routes; `None` leaves those routes
    /// answering 503.
    pub sweeps: Option<SweepService>,
}

/// Registers every route on an actix `ServiceConfig`, so tests and `serve` build the same app.
pub fn routes(
    db: Database,
    webhooks: WebhookSettings,
    sweeps: Option<SweepService>,
) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        if let Some(sweeps) = sweeps {
            cfg.app_data(web::Data::new(sweeps));
        }
        cfg.app_data(web::Data::new(db))
            .app_data(web::Data::new(webhooks))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/webhooks/greenhouse/{account_id}", web::post().to(intake::receive));
    }
}

/// Binds the listener and returns the server with its address; the caller awaits it.
pub fn start(db: Database, config: &ServerConfig) -> std::io::Result<(Server, Vec<SocketAddr>)> {
    let configure = routes(db, config.webhooks.clone(), config.sweeps.clone());
    let mut server = HttpServer::new(move || App::new().configure(configure.clone()))
        .client_request_timeout(REQUEST_HEAD_TIMEOUT);
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    let server = server.bind(&config.listen)?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}
