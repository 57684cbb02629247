//! Tests of greenhouse-sim over real HTTP on loopback ports.

mod binary;
mod common;
mod faults;
mod listing;
mod tokens;
mod truth;
mod webhooks;
