//! Graceful shutdown: on SIGTERM or SIGINT the server stops accepting connections and
//! finishes the requests in flight, while background tasks (scheduled sweeps, refreshes,
//! retention) see the shutdown signal and stop at their next checkpoint.

use std::sync::Arc;

use actix_web::dev::ServerHandle;
use tokio::sync::watch;

/// Tells background tasks that the process is stopping. Cheap to clone; every clone
/// triggers and observes the same signal.
///
/// A task keeps a receiver from `subscribe` and selects on `changed()`, or checks
/// `*receiver.borrow()`, and returns when it turns true.
#[derive(Clone)]
pub struct ShutdownSignal {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for ShutdownSignal {
    fn default() -> Self {
        ShutdownSignal::new()
    }
}

impl ShutdownSignal {
    pub fn new() -> ShutdownSignal {
        ShutdownSignal { sender: Arc::new(watch::Sender::new(false)) }
    }

    /// Returns a receiver whose value turns true once the shutdown starts.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.sender.subscribe()
    }

    /// Starts the shutdown; later calls do nothing.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Waits until the shutdown starts.
    pub async fn triggered(&self) {
        let mut receiver = self.subscribe();
        // An error means every sender is gone, which cannot happen while `self` keeps one.
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }
}

/// Waits for SIGTERM or SIGINT, or for `signal` to be triggered another way, and then
/// triggers `signal`.
pub async fn termination_requested(signal: &ShutdownSignal) {
    tokio::select! {
        name = termination() => tracing::info!(signal = name, "shutdown requested; stopping background work and finishing requests in flight"),
        () = signal.triggered() => {}
    }
    signal.trigger();
}

/// Waits for the shutdown (`termination_requested`), then stops `server` gracefully: no new
/// connections, and requests in flight finish within the server's shutdown timeout.
pub async fn stop_on_signal(server: ServerHandle, signal: ShutdownSignal) {
    termination_requested(&signal).await;
    server.stop(true).await;
}

#[cfg(unix)]
async fn termination() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};

    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut terminate), Ok(mut interrupt)) => tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        },
        _ => {
            tracing::warn!("could not listen for SIGTERM; only Ctrl-C stops the server gracefully");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn termination() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_reaches_subscribers() {
        let signal = ShutdownSignal::new();
        let mut receiver = signal.subscribe();
        assert!(!signal.is_triggered());

        signal.clone().trigger();
        receiver.changed().await.expect("sender alive");
        assert!(*receiver.borrow());
        signal.triggered().await;
    }
}
