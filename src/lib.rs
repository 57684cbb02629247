//! greenhouse-sync keeps a SQL database in step with Greenhouse ATS accounts.
//!
//! Two paths write the local copy: signed webhooks (`webhooks`) and the reconciliation sweep
//! over Harvest API v3 (built on `greenhouse::harvest`). Both go through the guarded upserts
//! in `db::records`.

pub mod admin;
pub mod allocator;
pub mod changes;
pub mod cli;
pub mod db;
pub mod greenhouse;
pub mod metrics;
pub mod retention;
pub mod secrets;
pub mod server;
pub mod sim;
pub mod sweep;
pub mod webhooks;
