//! A run through every observable path of the server, shared by the metrics and log tests.
//! It creates and rotates an account through the admin API, posts every webhook fixture and
//! some rejected and failing deliveries, replays, and sweeps greenhouse-sim through a 429
//! and a 500.

#![allow(dead_code, reason = "each test target uses a different part of the scenario")]

use std::time::Duration;

use greenhouse_sync::greenhouse::harvest::HarvestSettings;
use greenhouse_sync::sim::{self, RunningSim, SimConfig, Sizes};
use greenhouse_sync::sweep::{SweepService, SweepSettings};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestServer, greenhouse_bytes, webhook_fixture, webhook_fixture_names};

/// Secrets used by the scenario, distinctive so that a test can search logs for them.
pub const WEBHOOK_SECRET: &str = "scenario-webhook-secret-4c1d";
pub const ROTATED_SECRET: &str = "scenario-rotated-secret-9e2b";
pub const CLIENT_SECRET: &str = "scenario-harvest-client-secret-7f3a";

/// A server with sweeps, the simulator it reads, and the account the scenario created.
pub struct Scenario {
    pub server: TestServer,
    pub sim: RunningSim,
    pub account_id: i64,
}

fn sim_config() -> SimConfig {
    SimConfig {
        sizes: Sizes { candidates: 60, applications: 80, offers: 10, interviews: 10, scorecards: 10, ..Sizes::default() },
        rate_limit: 100_000,
        client_secret: CLIENT_SECRET.to_string(),
        ..SimConfig::default()
    }
}

/// Starts the simulator and a server whose sweeps read it. No schedule runs: the scenario
/// starts each sweep through the admin API.
pub async fn start() -> (TestServer, RunningSim) {
    let sim = sim::start(sim_config()).await.expect("start simulator");
    let harvest = HarvestSettings {
        base_url: format!("{}/v3", sim.base_url()),
        token_url: sim.token_url(),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        max_retry_after: Duration::from_millis(200),
        budget_limit: 100_000,
        // A 429 without `Retry-After` blocks the account until the window ends.
        budget_window: Duration::from_secs(1),
        ..HarvestSettings::default()
    };
    let settings = SweepSettings { per_page: 50, pages_in_flight: 2, slices: 2, ..SweepSettings::default() };
    let server = TestServer::start_with(move |config, db| {
        config.sweeps = Some(SweepService::new(db.clone(), harvest, settings).expect("sweep service"));
    })
    .await;
    (server, sim)
}

/// Runs the whole scenario and returns the server, still running, for inspection.
pub async fn run() -> Scenario {
    let (server, sim) = start().await;
    let account_id = create_account(&server).await;
    post_every_fixture(&server, account_id, WEBHOOK_SECRET).await;
    post_rejected(&server, account_id).await;
    replay_failed(&server, account_id).await;
    rotate_secret(&server, account_id).await;
    post_every_fixture(&server, account_id, ROTATED_SECRET).await;

    set_faults(&server, &sim, json!({"fail_next": {"status": 429, "count": 1}})).await;
    sweep(&server, account_id, "full").await;
    set_faults(&server, &sim, json!({"fail_next": {"status": 500, "count": 1}})).await;
    sweep(&server, account_id, "incremental").await;
    Scenario { server, sim, account_id }
}

async fn create_account(server: &TestServer) -> i64 {
    let body = json!({
        "name": "Scenario",
        "webhook_secret": WEBHOOK_SECRET,
        "harvest_client_id": "scenario-client",
        "harvest_client_secret": CLIENT_SECRET,
        "harvest_user_id": "42",
    });
    let response = server.admin(Method::POST, "/admin/accounts").json(&body).send().await.expect("send");
    assert_eq!(response.status(), 201);
    let account: Value = response.json().await.expect("account JSON");
    account["id"].as_i64().expect("account id")
}

pub async fn post_every_fixture(server: &TestServer, account_id: i64, secret: &str) {
    for name in webhook_fixture_names() {
        let response = server.post_signed(account_id, secret, &greenhouse_bytes(&webhook_fixture(&name))).await;
        assert_eq!(response.status(), 200, "{name}");
    }
}

/// Posts a wrong signature, an unknown account, and a signed payload that fails to apply.
async fn post_rejected(server: &TestServer, account_id: i64) {
    let body = greenhouse_bytes(&webhook_fixture("update_candidate"));
    assert_eq!(server.post_signed(account_id, "not-the-secret", &body).await.status(), 401);
    assert_eq!(server.post_signed(999_999, WEBHOOK_SECRET, &body).await.status(), 404);
    let failing = br#"{"action":"update_candidate","payload":{"candidate":5}}"#;
    assert_eq!(server.post_signed(account_id, WEBHOOK_SECRET, failing).await.status(), 200);
}

async fn replay_failed(server: &TestServer, account_id: i64) {
    let path = format!("/admin/accounts/{account_id}/deliveries/replay-failed");
    let response = server.admin(Method::POST, &path).send().await.expect("send");
    assert_eq!(response.status(), 200);
}

async fn rotate_secret(server: &TestServer, account_id: i64) {
    let path = format!("/admin/accounts/{account_id}/webhook-secret/rotate");
    let response = server.admin(Method::POST, &path).json(&json!({"webhook_secret": ROTATED_SECRET})).send().await.expect("send");
    assert_eq!(response.status(), 200);
}

async fn set_faults(server: &TestServer, sim: &RunningSim, faults: Value) {
    let url = format!("{}/_sim/faults", sim.base_url());
    let response = server.http.post(url).json(&faults).send().await.expect("faults");
    assert_eq!(response.status(), 200);
}

/// Starts a sweep through the admin API and waits until it completes.
pub async fn sweep(server: &TestServer, account_id: i64, mode: &str) {
    let path = format!("/admin/accounts/{account_id}/reconcile");
    let response = server.admin(Method::POST, &path).json(&json!({"mode": mode})).send().await.expect("send");
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap_or_default());
    let started: Value = response.json().await.expect("run JSON");
    let run_id = started["run_id"].as_i64().expect("run id");

    let status_path = format!("/admin/accounts/{account_id}/sync");
    for _ in 0..300 {
        let status: Value = server.admin(Method::GET, &status_path).send().await.expect("send").json().await.expect("JSON");
        let run = status["recent_runs"].as_array().and_then(|runs| runs.iter().find(|r| r["id"] == run_id).cloned());
        match run.as_ref().and_then(|r| r["status"].as_str()) {
            Some("completed") => return,
            Some("running") | None => tokio::time::sleep(Duration::from_millis(100)).await,
            Some(other) => panic!("sweep {run_id} ended {other}: {run:?}"),
        }
    }
    panic!("sweep {run_id} did not finish within 30 s");
}
