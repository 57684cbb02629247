//! Reconciliation sweeps against greenhouse-sim over real HTTP, on SQLite by default and on
//! PostgreSQL when `TEST_DATABASE_URL` is set. The check is always the same: the local copy
//! equals the simulator's ground truth, record for record.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use greenhouse_sync::db::accounts::{self, NewAccount};
use greenhouse_sync::db::sql::{Sql, SqlValue, parse_time_text};
use greenhouse_sync::greenhouse::Resource;
use greenhouse_sync::greenhouse::harvest::{Credentials, HarvestClient, HarvestSettings};
use greenhouse_sync::sim::{self, RunningSim, SimConfig, Sizes};
use greenhouse_sync::sweep::{self, Mode, Progress, SweepService, SweepSettings};
use serde_json::{Value, json};
use support::TestDatabase;

const SIM_SECRET: &str = "sim-secret";

/// Returns a small account with every resource, a rate limit that never interferes and no latency.
fn sim_config() -> SimConfig {
    SimConfig {
        sizes: Sizes { candidates: 400, applications: 480, offers: 60, interviews: 80, scorecards: 80, ..Sizes::default() },
        rate_limit: 100_000,
        ..SimConfig::default()
    }
}

/// Small pages and several slices, so that every run crosses many page boundaries.
fn sweep_settings() -> SweepSettings {
    SweepSettings { per_page: 50, pages_in_flight: 3, slices: 3, lease: Duration::from_secs(30), ..SweepSettings::default() }
}

struct Fixture {
    sim: RunningSim,
    database: TestDatabase,
    account_id: i64,
    client: HarvestClient,
    http: reqwest::Client,
}

async fn fixture(config: SimConfig) -> Fixture {
    let sim = sim::start(config).await.expect("start simulator");
    let database = TestDatabase::create();
    let account_id = {
        let mut conn = database.db.get().expect("connection");
        let new = NewAccount {
            name: "Simulated".to_string(),
            webhook_secret: "hook-secret".to_string(),
            harvest_client_id: Some("sync-client".to_string()),
            harvest_client_secret: Some(SIM_SECRET.to_string()),
            harvest_user_id: Some("42".to_string()),
        };
        accounts::create(&mut conn, &new, chrono::Utc::now()).expect("account").id
    };
    let settings = HarvestSettings {
        base_url: format!("{}/v3", sim.base_url()),
        token_url: sim.token_url(),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        // The simulator's limit is far higher; starting low would only make tests wait.
        budget_limit: 100_000,
        ..HarvestSettings::default()
    };
    let credentials = Credentials {
        client_id: "sync-client".to_string(),
        client_secret: SIM_SECRET.to_string(),
        user_id: Some("42".to_string()),
    };
    let client = HarvestClient::new(settings, account_id, credentials).expect("client");
    Fixture { sim, database, account_id, client, http: reqwest::Client::new() }
}

impl Fixture {
    async fn sweep(&self, mode: Mode) -> sweep::RunReport {
        self.sweep_with(mode, Arc::new(Progress::default())).await.expect("sweep runs")
    }

    async fn sweep_with(&self, mode: Mode, progress: Arc<Progress>) -> Result<sweep::RunReport, sweep::SweepError> {
        sweep::run(&self.database.db, &self.client, &sweep_settings(), "test-owner", mode, progress).await
    }

    async fn mutate(&self, count: u32) {
        let url = format!("{}/_sim/mutate", self.sim.base_url());
        let response = self.http.post(url).json(&json!({ "count": count })).send().await.expect("mutate");
        assert_eq!(response.status(), 200);
    }

    async fn set_faults(&self, faults: Value) {
        let url = format!("{}/_sim/faults", self.sim.base_url());
        let response = self.http.post(url).json(&faults).send().await.expect("faults");
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    }

    async fn truth(&self, resource: Resource) -> BTreeMap<i64, String> {
        truth(&self.http, &self.sim, resource).await
    }

    fn local(&self, resource: Resource) -> BTreeMap<i64, String> {
        local(&self.database, self.account_id, resource)
    }

    async fn assert_converged(&self) {
        assert_converged(&self.http, &self.sim, &self.database, self.account_id).await;
    }
}

async fn truth(http: &reqwest::Client, sim: &RunningSim, resource: Resource) -> BTreeMap<i64, String> {
    let url = format!("{}/_sim/truth/{}", sim.base_url(), resource.name());
    let pairs: Vec<(i64, String)> = http.get(url).send().await.expect("truth").json().await.expect("truth JSON");
    pairs.into_iter().collect()
}

/// Live local rows of a resource: id and `updated_at`.
fn local(database: &TestDatabase, account_id: i64, resource: Resource) -> BTreeMap<i64, String> {
    let mut conn = database.db.get().expect("connection");
    let mut sql = Sql::new(database.db.backend());
    sql.push("SELECT id, ").push_time_text("updated_at").push(" AS updated_at FROM ").push(resource.name());
    sql.push(" WHERE deleted_at IS NULL AND account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.load::<VersionRow>(&mut conn).expect("local rows").into_iter().map(|row| (row.id, row.updated_at.unwrap_or_default())).collect()
}

/// Asserts that every resource's live rows equal the simulator's records and versions.
async fn assert_converged(http: &reqwest::Client, sim: &RunningSim, database: &TestDatabase, account_id: i64) {
    for resource in Resource::ALL {
        let truth = truth(http, sim, resource).await;
        let local = local(database, account_id, resource);
        let missing: Vec<_> = truth.keys().filter(|id| !local.contains_key(id)).take(5).collect();
        let extra: Vec<_> = local.keys().filter(|id| !truth.contains_key(id)).take(5).collect();
        assert!(missing.is_empty(), "{resource}: missing locally, for example {missing:?}");
        assert!(extra.is_empty(), "{resource}: stored but not in Greenhouse, for example {extra:?}");
        for (id, updated_at) in &truth {
            let stored = parse_time_text(&local[id]);
            let expected = parse_time_text(updated_at);
            assert_eq!(stored, expected, "{resource} {id}: stored version differs");
        }
    }
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    updated_at: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sweep_copies_every_record() {
    let fixture = fixture(sim_config()).await;
    let report = fixture.sweep(Mode::Full).await;

    assert_eq!(report.status, "completed", "{report:?}");
    assert_eq!(report.deleted, 0);
    assert!(report.pages > 11, "small pages: {}", report.pages);
    fixture.assert_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sweep_finds_deletions_and_merges() {
    let fixture = fixture(sim_config()).await;
    fixture.sweep(Mode::Full).await;
    fixture.mutate(150).await;

    let report = fixture.sweep(Mode::Full).await;
    assert_eq!(report.status, "completed", "{report:?}");
    assert!(report.deleted > 0, "150 mutations include deletions and merges");
    fixture.assert_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sweep_reads_changes_only() {
    let fixture = fixture(sim_config()).await;
    let full = fixture.sweep(Mode::Full).await;
    // Updates only: an incremental run cannot see deletions.
    let url = format!("{}/_sim/mutate", fixture.sim.base_url());
    fixture.http.post(&url).json(&json!({"count": 40, "kind": "update_candidate"})).send().await.expect("mutate");
    fixture.http.post(&url).json(&json!({"count": 40, "kind": "update_application"})).send().await.expect("mutate");

    let incremental = fixture.sweep(Mode::Incremental).await;
    assert_eq!(incremental.status, "completed", "{incremental:?}");
    assert!(incremental.records < full.records, "{} records read, full read {}", incremental.records, full.records);
    fixture.assert_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_resource_is_skipped_without_deletions() {
    let fixture = fixture(sim_config()).await;
    fixture.sweep(Mode::Full).await;
    fixture.set_faults(json!({"forbidden_resource": "scorecards"})).await;

    let report = fixture.sweep(Mode::Full).await;
    assert_eq!(report.status, "completed", "{report:?}");
    assert!(report.notes.iter().any(|n| n.starts_with("scorecards")), "{:?}", report.notes);
    let stored = fixture.local(Resource::Scorecards).len();
    assert_eq!(stored, fixture.truth(Resource::Scorecards).await.len(), "no scorecard was deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_sweep_resumes_from_checkpoint() {
    let fixture = fixture(sim_config()).await;
    let progress = Arc::new(Progress::default());
    let watcher = {
        let progress = progress.clone();
        tokio::spawn(async move {
            while progress.pages() < 8 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            progress.cancel();
        })
    };
    let first = fixture.sweep_with(Mode::Full, progress).await.expect("first part");
    watcher.await.expect("watcher");
    assert_eq!(first.status, "interrupted");

    let resumed = fixture.sweep(Mode::Incremental).await;
    assert_eq!(resumed.run_id, first.run_id, "the unfinished run is resumed, not replaced");
    assert_eq!(resumed.mode, Mode::Full);
    assert_eq!(resumed.status, "completed");
    fixture.assert_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sweep_deletes_nothing_and_keeps_watermark() {
    let fixture = fixture(sim_config()).await;
    fixture.sweep(Mode::Full).await;
    let before: usize = Resource::ALL.iter().map(|r| fixture.local(*r).len()).sum();
    fixture.mutate(100).await;
    fixture.set_faults(json!({"error_rate": 1.0})).await;

    let report = fixture.sweep(Mode::Full).await;
    assert_eq!(report.status, "failed", "{report:?}");
    assert_eq!(report.deleted, 0);
    let after: usize = Resource::ALL.iter().map(|r| fixture.local(*r).len()).sum();
    assert_eq!(after, before, "a failed run marks nothing deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sweep_of_account_is_busy() {
    let fixture = fixture(sim_config()).await;
    let mut conn = fixture.database.db.get().expect("connection");
    let now = chrono::Utc::now();
    let held = greenhouse_sync::db::sweeps::acquire_lease(&mut conn, fixture.account_id, "other-replica", None, now + chrono::Duration::seconds(60), now)
        .expect("lease");
    assert!(held);

    let outcome = fixture.sweep_with(Mode::Full, Arc::new(Progress::default())).await;
    assert!(matches!(outcome, Err(sweep::SweepError::Busy(_))), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_repairs_stale_webhook() {
    use greenhouse_sync::webhooks::store::{VerifiedDelivery, store_and_apply};

    let fixture = fixture(sim_config()).await;
    fixture.sweep(Mode::Full).await;
    let url = format!("{}/_sim/dump/candidates", fixture.sim.base_url());
    let dump: Vec<Value> = fixture.http.get(url).send().await.expect("dump").json().await.expect("dump JSON");
    let candidate = &dump[0];
    let id = candidate["id"].as_i64().expect("id");

    // A late delivery carrying an old name, without a version timestamp, overwrites the name.
    let payload = json!({"candidate": {"id": id, "first_name": "Stale"}});
    let delivery = VerifiedDelivery {
        account_id: fixture.account_id,
        event_id: None,
        action: "update_candidate".to_string(),
        body: json!({"action": "update_candidate", "payload": payload}).to_string(),
        received_at: chrono::Utc::now(),
    };
    let mut conn = fixture.database.db.get().expect("connection");
    store_and_apply(&mut conn, &delivery).expect("stored");
    drop(conn);
    let stale = fixture.database.record(fixture.account_id, Resource::Candidates, id).expect("row");
    assert_eq!(stale["first_name"], "Stale");

    let service = SweepService::new(fixture.database.db.clone(), fixture.client.settings().clone(), sweep_settings()).expect("service");
    let refreshed = greenhouse_sync::sweep::refresh::refresh_account(&service, fixture.account_id).await.expect("refresh");
    assert_eq!(refreshed, 1);

    let repaired = fixture.database.record(fixture.account_id, Resource::Candidates, id).expect("row");
    assert_eq!(repaired["first_name"], candidate["first_name"]);
    let queued = fixture.database.count("SELECT COUNT(*) AS count FROM refresh_queue");
    assert_eq!(queued, 0, "refreshed ids leave the queue");
}

/// The scenario the sweep exists for: webhooks from Greenhouse's sender with 20% dropped,
/// some duplicated and some delayed past later ones, then one incremental and one full sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_with_losses_then_sweeps_converge() {
    use greenhouse_sync::sim::{Impairments, WebhookConfig};

    const HOOK_SECRET: &str = "convergence-hook-secret";
    let server = support::TestServer::start().await;
    let account_id = {
        let mut conn = server.database.db.get().expect("connection");
        let new = NewAccount {
            name: "Converging".to_string(),
            webhook_secret: HOOK_SECRET.to_string(),
            harvest_client_id: Some("sync-client".to_string()),
            harvest_client_secret: Some(SIM_SECRET.to_string()),
            harvest_user_id: None,
        };
        accounts::create(&mut conn, &new, chrono::Utc::now()).expect("account").id
    };

    let mut webhook = WebhookConfig::new(server.url(&format!("/webhooks/greenhouse/{account_id}")), HOOK_SECRET);
    webhook.retry_scale = 60_000.0;
    webhook.impairments = Impairments { drop_rate: 0.2, duplicate_rate: 0.1, delay_rate: 0.2, max_delay_ms: 300 };
    let sim = sim::start(SimConfig { webhook: Some(webhook), ..sim_config() }).await.expect("start simulator");

    let settings = HarvestSettings {
        base_url: format!("{}/v3", sim.base_url()),
        token_url: sim.token_url(),
        budget_limit: 100_000,
        ..HarvestSettings::default()
    };
    let credentials = Credentials { client_id: "sync-client".to_string(), client_secret: SIM_SECRET.to_string(), user_id: None };
    let client = HarvestClient::new(settings, account_id, credentials).expect("client");
    let db = &server.database.db;
    let http = reqwest::Client::new();

    let first = sweep::run(db, &client, &sweep_settings(), "test-owner", Mode::Full, Arc::new(Progress::default())).await.expect("full");
    assert_eq!(first.status, "completed");

    let mutate_url = format!("{}/_sim/mutate", sim.base_url());
    for _ in 0..4 {
        http.post(&mutate_url).json(&json!({"count": 50})).send().await.expect("mutate");
    }
    let sender = sim.state().webhooks.clone().expect("sender");
    for _ in 0..200 {
        if sender.stats().pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = sender.stats();
    assert_eq!(stats.pending, 0, "the sender drains: {stats:?}");
    assert!(stats.dropped > 0, "some deliveries were dropped: {stats:?}");
    assert!(stats.delivered > 0, "the server accepted deliveries: {stats:?}");
    assert_eq!(stats.gave_up, 0, "no delivery was refused for good: {stats:?}");

    let incremental = sweep::run(db, &client, &sweep_settings(), "test-owner", Mode::Incremental, Arc::new(Progress::default())).await.expect("incremental");
    assert_eq!(incremental.status, "completed");
    let full = sweep::run(db, &client, &sweep_settings(), "test-owner", Mode::Full, Arc::new(Progress::default())).await.expect("full");
    assert_eq!(full.status, "completed");

    assert_converged(&http, &sim, &server.database, account_id).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reconcile_runs_and_reports() {
    let sim = sim::start(SimConfig { latency: Duration::from_millis(20), ..sim_config() }).await.expect("start simulator");
    let harvest = HarvestSettings {
        base_url: format!("{}/v3", sim.base_url()),
        token_url: sim.token_url(),
        budget_limit: 100_000,
        ..HarvestSettings::default()
    };
    let server = support::TestServer::start_with(|config, db| {
        config.sweeps = Some(SweepService::new(db.clone(), harvest, sweep_settings()).expect("service"));
    })
    .await;
    let account_id = {
        let mut conn = server.database.db.get().expect("connection");
        let new = NewAccount {
            name: "Admin".to_string(),
            webhook_secret: "hook".to_string(),
            harvest_client_id: Some("sync-client".to_string()),
            harvest_client_secret: Some(SIM_SECRET.to_string()),
            harvest_user_id: None,
        };
        accounts::create(&mut conn, &new, chrono::Utc::now()).expect("account").id
    };
    let without_credentials = server.database.add_account("No Harvest", "hook");
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(server.url(&path)).bearer_auth(support::TEST_ADMIN_TOKEN).json(&body).send()
    };

    let started = post(format!("/admin/accounts/{account_id}/reconcile"), json!({"mode": "full"})).await.expect("send");
    assert_eq!(started.status(), 202);
    let started: Value = started.json().await.expect("JSON");
    let run_id = started["run_id"].as_i64().expect("run id");
    let again = post(format!("/admin/accounts/{account_id}/reconcile"), json!({"mode": "incremental"})).await.expect("send");
    assert_eq!(again.status(), 409, "a second run of the account is refused while the first runs");

    let missing = post(format!("/admin/accounts/{}/reconcile", without_credentials.id), json!({"mode": "full"})).await.expect("send");
    assert_eq!(missing.status(), 422);
    let unknown = post("/admin/accounts/999999/reconcile".to_string(), json!({"mode": "full"})).await.expect("send");
    assert_eq!(unknown.status(), 404);
    let bad_mode = post(format!("/admin/accounts/{account_id}/reconcile"), json!({"mode": "sideways"})).await.expect("send");
    assert_eq!(bad_mode.status(), 400);

    let mut status = Value::Null;
    for _ in 0..300 {
        status = http
            .get(server.url(&format!("/admin/accounts/{account_id}/sync")))
            .bearer_auth(support::TEST_ADMIN_TOKEN)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("JSON");
        if status["recent_runs"][0]["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["recent_runs"][0]["id"].as_i64(), Some(run_id));
    assert_eq!(status["recent_runs"][0]["status"], "completed", "{status}");
    assert_eq!(status["running"], Value::Null);
    let resources = status["resources"].as_array().expect("resources");
    assert_eq!(resources.len(), Resource::ALL.len(), "every resource has a watermark");

    assert_converged(&http, &sim, &server.database, account_id).await;
    sim.stop().await;
}
