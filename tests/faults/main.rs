//! Fault tests: the database stopping or running out of connections, the server process
//! killed with SIGKILL, and Harvest misbehaving. Each test ends by checking that nothing
//! accepted was lost and, where data moved, that the local copy equals greenhouse-sim's
//! ground truth.
//!
//! The default variants fit in CI. `GREENHOUSE_SYNC_LONG_FAULTS=1` repeats the kills more
//! often. Each test prints one `fault figures:` line with what it injected and counted; run
//! with `-- --nocapture` to see them.

#[path = "../support/mod.rs"]
mod support;

mod child;
mod cluster;
mod convergence;
mod database;
mod deliveries;
mod harvest;
mod process;

/// Returns whether the long variants were requested with `GREENHOUSE_SYNC_LONG_FAULTS=1`.
pub fn long_variant() -> bool {
    std::env::var("GREENHOUSE_SYNC_LONG_FAULTS").is_ok_and(|value| value == "1")
}

/// Prints one line of figures for docs/RELIABILITY.md, such as `kills=20 lost=0`.
pub fn report_figures(test: &str, figures: &[(&str, u64)]) {
    let pairs: Vec<String> = figures.iter().map(|(name, value)| format!("{name}={value}")).collect();
    println!("fault figures: {test} {}", pairs.join(" "));
}

/// Builds an HTTP client for the tests. reqwest panics without a rustls crypto provider,
/// even for plain HTTP, so one is installed first.
pub fn http_client() -> reqwest::Client {
    greenhouse_sync::greenhouse::harvest::install_crypto_provider();
    reqwest::Client::new()
}
