//! greenhouse-sim: a local stand-in for Harvest API v3 and Greenhouse's webhook sender.
//!
//! Records are generated on demand from a seed, so an account of 100,000 candidates costs
//! little memory. Mutations change the account over time, and `/_sim/truth` reports what it
//! contains, so a test can check that a synced copy matches. Start one in-process with
//! [`start`].

pub mod admin;
pub mod auth;
pub mod config;
pub mod faults;
pub mod generate;
pub mod harvest;
mod http;
pub mod list;
pub mod mutate;
pub mod query;
pub mod rate_limit;
pub mod resource;
pub mod rng;
pub mod server;
pub mod state;
pub mod store;
pub mod truth;
pub mod webhook;

pub use config::{FailNext, FaultConfig, Impairments, SimConfig, Sizes, WebhookConfig};
pub use mutate::MutationKind;
pub use resource::Resource;
pub use server::{RunningSim, start};
