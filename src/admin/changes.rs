//! Change feed routes: `GET /admin/accounts/{id}/changes` (with long polling) and
//! `GET /admin/accounts/{id}/changes/stream` (Server-Sent Events). The handlers live in
//! `crate::changes::http`, beside the rest of the feed.

use actix_web::web;

/// Registers the routes, relative to the authenticated `/admin` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::changes::http::configure(cfg);
}
