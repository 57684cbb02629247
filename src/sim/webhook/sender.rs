//! Delivers webhooks the way Greenhouse does.
//!
//! Greenhouse signs each body with HMAC-SHA256 (`Signature: sha256 <hex>`), sends a
//! `Greenhouse-Event-ID`, counts anything but HTTP 200 (and timeouts) as a failure, and tries
//! up to 7 times in all, waiting 1, 15, 60, 120, 240 and 480 minutes between attempts.
//! `retry_scale` divides those waits so tests can run the whole schedule in milliseconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::sim::config::{Impairments, WebhookConfig};
use crate::webhooks::signature;

use super::payload::{self, Event};

/// Minutes Greenhouse waits before each retry.
const RETRY_MINUTES: [u64; 6] = [1, 15, 60, 120, 240, 480];

/// Counters of what the sender did, for tests and the `/_sim/webhooks` endpoint.
#[derive(Debug, Default)]
struct Counters {
    events: AtomicU64,
    attempts: AtomicU64,
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
    gave_up: AtomicU64,
    pending: AtomicU64,
}

/// A snapshot of the sender's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WebhookStats {
    /// Events produced by mutations (and the ping).
    pub events: u64,
    /// HTTP requests made, retries and duplicates included.
    pub attempts: u64,
    /// Deliveries that got HTTP 200.
    pub delivered: u64,
    /// Attempts that got another status, failed to connect or timed out.
    pub failed_attempts: u64,
    /// Events never sent because of the drop impairment.
    pub dropped: u64,
    /// Events sent a second time because of the duplicate impairment.
    pub duplicated: u64,
    /// Events postponed by the delay impairment.
    pub delayed: u64,
    /// Deliveries abandoned after the last retry.
    pub gave_up: u64,
    /// Deliveries not yet finished (waiting, in flight or between retries).
    pub pending: u64,
}

/// Sends webhooks in the background. Cloning shares the same queue and counters.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    queue: mpsc::UnboundedSender<Event>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: WebhookConfig,
    impairments: Mutex<Impairments>,
    counters: Counters,
    client: reqwest::Client,
    next_event_id: AtomicU64,
}

/// One signed body ready to send, possibly several times.
#[derive(Debug, Clone)]
struct Delivery {
    event_id: String,
    action: &'static str,
    body: Arc<Vec<u8>>,
    signature: String,
}

impl WebhookSender {
    /// Starts the sender on the current Tokio runtime.
    pub fn start(config: WebhookConfig) -> anyhow::Result<Self> {
        // Building a reqwest client panics until a rustls provider is installed, even for
        // plain-HTTP targets.
        crate::greenhouse::harvest::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|error| anyhow::anyhow!("failed to build the webhook HTTP client: {error}"))?;
        let shared = Arc::new(Shared {
            impairments: Mutex::new(config.impairments.clone()),
            config,
            counters: Counters::default(),
            client,
            next_event_id: AtomicU64::new(1),
        });

        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_queue(shared.clone(), receiver));
        Ok(WebhookSender { queue, shared })
    }

    /// Queues an event for delivery. Events leave in the order they were queued unless the
    /// delay impairment postpones some.
    pub fn send(&self, event: Event) {
        self.shared.counters.events.fetch_add(1, Ordering::Relaxed);
        self.shared.counters.pending.fetch_add(1, Ordering::Relaxed);
        if self.queue.send(event).is_err() {
            // The queue task only ends with the runtime, when nothing is delivered anyway.
            self.shared.counters.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Sends the `ping` Greenhouse sends when a webhook is saved.
    pub fn send_ping(&self) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.send(Event::new("ping", payload::ping(&self.shared.config.url, &now)));
    }

    /// Replaces the impairments applied to events queued from now on.
    pub fn set_impairments(&self, impairments: Impairments) {
        *self.shared.impairments.lock().expect("impairments lock is never poisoned") = impairments;
    }

    /// Returns the impairments in force.
    pub fn impairments(&self) -> Impairments {
        self.shared.impairments.lock().expect("impairments lock is never poisoned").clone()
    }

    /// Returns the counters now.
    pub fn stats(&self) -> WebhookStats {
        let c = &self.shared.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WebhookStats {
            events: read(&c.events),
            attempts: read(&c.attempts),
            delivered: read(&c.delivered),
            failed_attempts: read(&c.failed_attempts),
            dropped: read(&c.dropped),
            duplicated: read(&c.duplicated),
            delayed: read(&c.delayed),
            gave_up: read(&c.gave_up),
            pending: read(&c.pending),
        }
    }
}

/// Takes events in order, applies impairments and makes each event's first attempt before
/// taking the next, so that without impairments deliveries arrive in mutation order.
async fn run_queue(shared: Arc<Shared>, mut receiver: mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = receiver.recv().await {
        let delivery = shared.prepare(&event);
        let impairments = shared.impairments.lock().expect("impairments lock is never poisoned").clone();

        if rand::random::<f64>() < impairments.drop_rate {
            tracing::debug!(event.id = %delivery.event_id, action = delivery.action, "webhook dropped by impairment");
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            shared.counters.pending.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        if rand::random::<f64>() < impairments.duplicate_rate {
            shared.counters.duplicated.fetch_add(1, Ordering::Relaxed);
            shared.counters.pending.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(shared.clone().deliver(delivery.clone()));
        }
        if rand::random::<f64>() < impairments.delay_rate {
            let hold = Duration::from_millis(rand::random_range(0..=impairments.max_delay_ms));
            shared.counters.delayed.fetch_add(1, Ordering::Relaxed);
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                shared.deliver(delivery).await;
            });
            continue;
        }

        // The first attempt is awaited here; retries continue in their own task.
        if !shared.attempt(&delivery).await {
            tokio::spawn(shared.clone().retry(delivery, 1));
        } else {
            shared.counters.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Shared {
    fn prepare(&self, event: &Event) -> Delivery {
        let body = payload::body(event);
        let signature = signature::sign(self.config.secret.as_bytes(), &body);
        let serial = self.next_event_id.fetch_add(1, Ordering::Relaxed);
        Delivery {
            event_id: format!("sim-{serial:08}-{:08x}", rand::random::<u32>()),
            action: event.action,
            body: Arc::new(body),
            signature,
        }
    }

    /// Delivers with the full retry schedule.
    async fn deliver(self: Arc<Self>, delivery: Delivery) {
        if self.attempt(&delivery).await {
            self.counters.pending.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.retry(delivery, 1).await;
        }
    }

    /// Retries after failed attempt number `failed` (1-based) until success or the seventh
    /// attempt.
    async fn retry(self: Arc<Self>, delivery: Delivery, mut failed: usize) {
        while failed <= RETRY_MINUTES.len() {
            tokio::time::sleep(self.retry_delay(failed)).await;
            if self.attempt(&delivery).await {
                self.counters.pending.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            failed += 1;
        }
        tracing::warn!(event.id = %delivery.event_id, action = delivery.action, attempts = failed, "webhook delivery abandoned after the last retry");
        self.counters.gave_up.fetch_add(1, Ordering::Relaxed);
        self.counters.pending.fetch_sub(1, Ordering::Relaxed);
    }

    fn retry_delay(&self, failed: usize) -> Duration {
        let minutes = RETRY_MINUTES[failed - 1];
        let scale = if self.config.retry_scale > 0.0 { self.config.retry_scale } else { 1.0 };
        Duration::from_secs_f64(minutes as f64 * 60.0 / scale)
    }

    /// Makes one HTTP request and returns true when its status is exactly 200.
    async fn attempt(&self, delivery: &Delivery) -> bool {
        self.counters.attempts.fetch_add(1, Ordering::Relaxed);
        let result = self
            .client
            .post(&self.config.url)
            .header("Content-Type", "application/json")
            .header(signature::SIGNATURE_HEADER, &delivery.signature)
            .header("Greenhouse-Event-ID", &delivery.event_id)
            .header("User-Agent", "greenhouse-sim")
            .body(delivery.body.as_ref().clone())
            .send()
            .await;

        let outcome = match result {
            Ok(response) if response.status().as_u16() == 200 => return self.record_success(),
            Ok(response) => format!("HTTP {}", response.status().as_u16()),
            Err(error) => error.to_string(),
        };
        tracing::info!(event.id = %delivery.event_id, action = delivery.action, outcome = %outcome, "webhook attempt failed");
        self.counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
        false
    }

    fn record_success(&self) -> bool {
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        true
    }
}
