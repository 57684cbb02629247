//! State shared by every request handler of one simulator instance.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::auth::Tokens;
use super::config::{FaultConfig, SimConfig};
use super::generate::Generator;
use super::mutate::{Applied, MutationKind, Mutator};
use super::rate_limit::RateLimiter;
use super::store::Store;
use super::webhook::WebhookSender;

/// Settings that do not change while the simulator runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub client_secret: String,
    pub token_ttl: Duration,
    pub latency: Duration,
    pub latency_per_record: Duration,
}

/// Everything the handlers share. Each lock guards one concern and is held only briefly.
#[derive(Debug)]
pub struct SimState {
    pub settings: Settings,
    pub store: Mutex<Store>,
    pub tokens: Mutex<Tokens>,
    pub limiter: Mutex<RateLimiter>,
    pub faults: Mutex<FaultConfig>,
    pub mutator: Mutex<Mutator>,
    pub webhooks: Option<WebhookSender>,
}

impl SimState {
    /// Builds the state of a new instance.
    pub fn new(config: &SimConfig, webhooks: Option<WebhookSender>) -> Self {
        let settings = Settings {
            client_secret: config.client_secret.clone(),
            token_ttl: config.token_ttl,
            latency: config.latency,
            latency_per_record: config.latency_per_record,
        };
        SimState {
            settings,
            store: Mutex::new(Store::new(Generator::new(config.seed, config.sizes))),
            tokens: Mutex::new(Tokens::default()),
            limiter: Mutex::new(RateLimiter::new(config.rate_limit)),
            faults: Mutex::new(config.faults.clone()),
            mutator: Mutex::new(Mutator::new(config.seed)),
            webhooks,
        }
    }

    /// Locks a mutex. A handler that panicked while holding a lock cannot leave the
    /// simulator's data half-written in a way that matters to a test, so poisoning is ignored.
    pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `count` mutations now and queues their webhooks; returns what changed.
    pub fn mutate(&self, count: u32, kind: Option<MutationKind>) -> Vec<Applied> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut applied = Vec::with_capacity(count as usize);
        {
            let mut store = Self::lock(&self.store);
            let mut mutator = Self::lock(&self.mutator);
            for _ in 0..count {
                if let Some(change) = mutator.apply(&mut store, kind, now_ms) {
                    applied.push(change);
                }
            }
        }

        if let Some(webhooks) = &self.webhooks {
            for event in applied.iter().flat_map(|change| change.events.iter()) {
                webhooks.send(event.clone());
            }
        }
        applied
    }
}
