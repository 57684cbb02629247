//! Settings of a simulator instance.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::resource::Resource;

/// Everything a simulator instance needs to start. `Default` gives a small account on an
/// ephemeral loopback port, which is what most tests want.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to bind. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Seed of the generated data: the same seed and sizes give the same records.
    pub seed: u64,
    /// Number of records generated per resource at start.
    pub sizes: Sizes,
    /// Secret that every client id must present at `POST /token`.
    pub client_secret: String,
    /// Lifetime of issued access tokens.
    pub token_ttl: Duration,
    /// Requests allowed per client id in each fixed 30-second window.
    pub rate_limit: u32,
    /// Delay added to every `/v3` response.
    pub latency: Duration,
    /// Delay added per record returned, so that large pages are slower than small ones.
    pub latency_per_record: Duration,
    /// Faults injected from the start; `POST /_sim/faults` replaces them at run time.
    pub faults: FaultConfig,
    /// Background mutations per second; 0 leaves the data still until `POST /_sim/mutate`.
    pub mutations_per_sec: f64,
    /// Webhook target and delivery settings, or `None` to send no webhooks.
    pub webhook: Option<WebhookConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            sizes: Sizes::default(),
            client_secret: "sim-secret".to_owned(),
            token_ttl: Duration::from_secs(3600),
            rate_limit: 50,
            latency: Duration::ZERO,
            latency_per_record: Duration::ZERO,
            faults: FaultConfig::default(),
            mutations_per_sec: 0.0,
            webhook: None,
        }
    }
}

/// Number of records generated per resource. Job posts and interview stages follow from the
/// number of jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    pub departments: u64,
    pub offices: u64,
    pub users: u64,
    pub jobs: u64,
    pub candidates: u64,
    pub applications: u64,
    pub offers: u64,
    pub interviews: u64,
    pub scorecards: u64,
}

/// Interview stages generated for every job.
pub const STAGES_PER_JOB: u64 = 5;

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            departments: 12,
            offices: 6,
            users: 40,
            jobs: 20,
            candidates: 300,
            applications: 360,
            offers: 60,
            interviews: 120,
            scorecards: 120,
        }
    }
}

impl Sizes {
    /// Number of records generated at start for `resource`.
    pub fn count(&self, resource: Resource) -> u64 {
        match resource {
            Resource::Departments => self.departments,
            Resource::Offices => self.offices,
            Resource::Users => self.users,
            Resource::Jobs => self.jobs,
            Resource::JobPosts => self.jobs,
            Resource::JobInterviewStages => self.jobs * STAGES_PER_JOB,
            Resource::Candidates => self.candidates,
            Resource::Applications => self.applications,
            Resource::Offers => self.offers,
            Resource::Interviews => self.interviews,
            Resource::Scorecards => self.scorecards,
        }
    }

    /// Checks that children have parents to point at.
    pub fn validate(&self) -> Result<(), String> {
        let parents = [
            ("departments", self.departments),
            ("offices", self.offices),
            ("users", self.users),
            ("jobs", self.jobs),
            ("candidates", self.candidates),
        ];
        for (name, count) in parents {
            if count == 0 {
                return Err(format!("--{name} must be at least 1 because other records refer to them"));
            }
        }
        if self.applications == 0 && (self.offers + self.interviews + self.scorecards) > 0 {
            return Err("--applications must be at least 1 when offers, interviews or scorecards are generated".to_owned());
        }
        Ok(())
    }
}

/// Faults injected into `/v3` responses. Fractions are probabilities in `0.0..=1.0`
/// drawn per request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Fraction of requests that fail with 500, 502 or 503 (in equal parts).
    pub error_rate: f64,
    /// Fraction of requests whose connection is closed before the response is complete.
    pub drop_rate: f64,
    /// Fraction of requests delayed by `slow_ms` on top of the configured latency.
    pub slow_rate: f64,
    /// Extra delay of a slow response, in milliseconds.
    pub slow_ms: u64,
    /// The next `count` `/v3` requests fail with `status`, after authentication and
    /// rate limiting. Deterministic, unlike `error_rate`.
    pub fail_next: Option<FailNext>,
    /// A resource whose list returns 403, as when the credential lacks that permission.
    pub forbidden_resource: Option<String>,
    /// A resource whose next cursor page returns its own cursor again in `Link`, once. A client
    /// that follows links blindly then loops.
    pub repeat_cursor: Option<String>,
    /// When true at the moment the faults are set, every issued token is revoked, so every
    /// client's next request gets 401 until it fetches a new token.
    pub revoke_tokens: bool,
}

/// A run of identical failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailNext {
    pub count: u32,
    pub status: u16,
}

/// Webhook target and delivery impairments.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Endpoint that receives every webhook.
    pub url: String,
    /// Secret key used for the `Signature` header.
    pub secret: String,
    /// Factor that divides Greenhouse's retry delays; 60000 turns minutes into milliseconds.
    pub retry_scale: f64,
    /// Timeout of one delivery attempt; Greenhouse counts a timeout as a failure.
    pub timeout: Duration,
    /// Delivery impairments applied to every event.
    pub impairments: Impairments,
}

impl WebhookConfig {
    /// Creates a target with Greenhouse's retry timing and no impairments.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            secret: secret.into(),
            retry_scale: 1.0,
            timeout: Duration::from_secs(30),
            impairments: Impairments::default(),
        }
    }
}

/// Ways the sender deviates from an ideal delivery, each a fraction per event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Impairments {
    /// Fraction of events never sent at all.
    pub drop_rate: f64,
    /// Fraction of events sent twice.
    pub duplicate_rate: f64,
    /// Fraction of events postponed by up to `max_delay_ms`, so later events overtake them.
    pub delay_rate: f64,
    /// Maximum delay of a postponed event, in milliseconds.
    pub max_delay_ms: u64,
}
