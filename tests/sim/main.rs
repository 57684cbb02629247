//! Tests of greenhouse-sim over real HTTP on loopback ports.

mod acceptance;
mod binary;
mod common;
mod faults;
mod listing;
mod tokens;
mod truth;
mod webhooks;

// The server's own test harness, for the acceptance test against its webhook intake.
#[path = "../support/mod.rs"]
mod support;
