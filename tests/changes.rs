//! The change feed over real HTTP, on SQLite by default and on PostgreSQL when
//! `TEST_DATABASE_URL` is set: a consumer that only reads the feed ends up with the same
//! records as the database, and sequence numbers never skip or repeat.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer, web};
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use greenhouse_sync::db::accounts::{self, NewAccount};
use greenhouse_sync::db::changes;
use greenhouse_sync::db::sql::{Sql, SqlValue};
use greenhouse_sync::db::{Database, PoolSettings, records};
use greenhouse_sync::greenhouse::Resource;
use greenhouse_sync::greenhouse::harvest::{Credentials, HarvestClient, HarvestSettings};
use greenhouse_sync::sim::{self, RunningSim, SimConfig, Sizes, WebhookConfig};
use greenhouse_sync::sweep::{self, Mode, Progress, SweepService, SweepSettings};
use greenhouse_sync::webhooks::commit::DeliveryWriter;
use greenhouse_sync::webhooks::intake::{self, WebhookSettings};
use greenhouse_sync::webhooks::signature;
use greenhouse_sync::webhooks::store::{VerifiedDelivery, store_and_apply};
use serde_json::{Value, json};
use support::TestDatabase;

const SIM_SECRET: &str = "sim-secret";
const HOOK_SECRET: &str = "hook-secret";

/// Bookkeeping columns that change without a change of the record's values.
const BOOKKEEPING: &[&str] = &["last_seen_run_id", "written_at"];

/// A server with the webhook endpoint and the feed routes, without admin authentication,
/// which the admin scope adds in `serve`.
struct FeedServer {
    base_url: String,
    http: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FeedServer {
    fn start(db: Database) -> FeedServer {
        greenhouse_sync::greenhouse::harvest::install_crypto_provider();
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let settings = WebhookSettings { max_body_bytes: 1024 * 1024, body_timeout: Duration::from_secs(5) };
                let writer = web::Data::new(DeliveryWriter::for_database(&db));
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::new(db.clone()))
                        .app_data(web::Data::new(settings.clone()))
                        .app_data(writer.clone())
                        .route("/webhooks/greenhouse/{account_id}", web::post().to(intake::receive))
                        .service(web::scope("/admin").configure(greenhouse_sync::changes::http::configure))
                })
                .workers(2)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .expect("bind feed server");
                let addr = server.addrs()[0];
                let server = server.run();
                sender.send((server.handle(), addr)).expect("report address");
                let _ = server.await;
            });
        });
        let (handle, addr) = receiver.recv().expect("feed server started");
        FeedServer { base_url: format!("http://{addr}"), http: reqwest::Client::new(), handle, thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("feed request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts a signed webhook with an event id and returns the response body.
    async fn post_webhook(&self, account_id: i64, body: &Value, event_id: &str) -> Value {
        let bytes = support::greenhouse_bytes(body);
        let response = self
            .http
            .post(self.url(&format!("/webhooks/greenhouse/{account_id}")))
            .header("Signature", signature::sign(HOOK_SECRET.as_bytes(), &bytes))
            .header("Greenhouse-Event-ID", event_id)
            .header("Content-Type", "application/json")
            .body(bytes)
            .send()
            .await
            .expect("send webhook");
        assert_eq!(response.status(), 200, "webhook {event_id} was not stored");
        response.json().await.expect("webhook response is JSON")
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn create_account(database: &TestDatabase) -> i64 {
    let mut conn = database.db.get().expect("connection");
    let new = NewAccount {
        name: "Simulated".to_string(),
        webhook_secret: HOOK_SECRET.to_string(),
        harvest_client_id: Some("sync-client".to_string()),
        harvest_client_secret: Some(SIM_SECRET.to_string()),
        harvest_user_id: Some("42".to_string()),
    };
    accounts::create(&mut conn, &new, chrono::Utc::now()).expect("account").id
}

fn newest_seq(database: &TestDatabase, account_id: i64) -> i64 {
    let mut conn = database.db.get().expect("connection");
    changes::bounds(&mut conn, account_id).expect("bounds").newest
}

fn candidate_update(id: i64, first_name: &str) -> Value {
    json!({"action": "update_candidate", "payload": {"candidate": {"id": id, "first_name": first_name}}})
}

/// What a consumer rebuilt from the feed: each record's row as of its last change.
#[derive(Default)]
struct ConsumerView {
    after: i64,
    records: BTreeMap<(String, i64), Value>,
    changes_seen: usize,
}

impl ConsumerView {
    /// Reads one response of the feed and applies it. Returns how many changes it held.
    async fn poll(&mut self, server: &FeedServer, account_id: i64, wait_secs: u64) -> usize {
        let path = format!("/admin/accounts/{account_id}/changes?after={}&limit=500&include=record&wait={wait_secs}", self.after);
        let (status, body) = server.get(&path).await;
        assert_eq!(status, 200, "feed read failed: {body}");
        let changes = body["changes"].as_array().cloned().unwrap_or_default();
        for change in &changes {
            let seq = change["seq"].as_i64().expect("seq");
            assert_eq!(seq, self.after + 1, "the feed skipped or repeated a number after {}", self.after);
            self.after = seq;
            let key = (change["resource"].as_str().expect("resource").to_string(), change["record_id"].as_i64().expect("id"));
            self.records.insert(key, without_bookkeeping(&change["record"]));
        }
        assert_eq!(body["next_after"].as_i64(), Some(self.after), "next_after is the last number returned");
        self.changes_seen += changes.len();
        changes.len()
    }
}

fn without_bookkeeping(record: &Value) -> Value {
    let mut record = record.clone();
    if let Some(object) = record.as_object_mut() {
        for column in BOOKKEEPING {
            object.remove(*column);
        }
    }
    record
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Reads every stored row of the account, deleted ones included, as `fetch_record` reads it.
fn database_view(database: &TestDatabase, account_id: i64) -> BTreeMap<(String, i64), Value> {
    let mut conn = database.db.get().expect("connection");
    let mut view = BTreeMap::new();
    for resource in Resource::ALL {
        let mut sql = Sql::new(database.db.backend());
        sql.push("SELECT id FROM ").push(resource.name()).push(" WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
        for row in sql.load::<IdRow>(&mut conn).expect("ids") {
            let record = records::fetch_record(&mut conn, account_id, resource, row.id).expect("fetch").expect("row exists");
            view.insert((resource.name().to_string(), row.id), without_bookkeeping(&record));
        }
    }
    view
}

fn assert_views_equal(consumer: &BTreeMap<(String, i64), Value>, database: &BTreeMap<(String, i64), Value>) {
    let missing: Vec<_> = database.keys().filter(|key| !consumer.contains_key(*key)).take(5).collect();
    let extra: Vec<_> = consumer.keys().filter(|key| !database.contains_key(*key)).take(5).collect();
    assert!(missing.is_empty(), "rows the feed never reported, for example {missing:?}");
    assert!(extra.is_empty(), "records the feed reported that are not stored, for example {extra:?}");
    for (key, stored) in database {
        assert_eq!(&consumer[key], stored, "{key:?}: the feed's last record differs from the table");
    }
}

/// A small simulated account, its database, the feed server and a Harvest client.
struct SimFixture {
    sim: RunningSim,
    database: TestDatabase,
    server: Arc<FeedServer>,
    account_id: i64,
    client: HarvestClient,
    http: reqwest::Client,
}

fn sweep_settings() -> SweepSettings {
    SweepSettings { per_page: 50, pages_in_flight: 3, slices: 2, lease: Duration::from_secs(30), ..SweepSettings::default() }
}

async fn sim_fixture() -> SimFixture {
    let database = TestDatabase::create();
    let account_id = create_account(&database);
    let server = Arc::new(FeedServer::start(database.db.clone()));

    let webhook = WebhookConfig {
        retry_scale: 60_000.0,
        timeout: Duration::from_secs(5),
        ..WebhookConfig::new(server.url(&format!("/webhooks/greenhouse/{account_id}")), HOOK_SECRET)
    };
    let config = SimConfig {
        sizes: Sizes { candidates: 120, applications: 150, offers: 20, interviews: 30, scorecards: 30, ..Sizes::default() },
        rate_limit: 100_000,
        webhook: Some(webhook),
        ..SimConfig::default()
    };
    let sim = sim::start(config).await.expect("start simulator");

    let settings = HarvestSettings {
        base_url: format!("{}/v3", sim.base_url()),
        token_url: sim.token_url(),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        budget_limit: 100_000,
        ..HarvestSettings::default()
    };
    let credentials =
        Credentials { client_id: "sync-client".to_string(), client_secret: SIM_SECRET.to_string(), user_id: Some("42".to_string()) };
    let client = HarvestClient::new(settings, account_id, credentials).expect("client");
    SimFixture { sim, database, server, account_id, client, http: reqwest::Client::new() }
}

impl SimFixture {
    async fn sweep(&self) {
        let report = sweep::run(&self.database.db, &self.client, &sweep_settings(), "test-owner", Mode::Full, Arc::new(Progress::default()))
            .await
            .expect("sweep runs");
        assert_eq!(report.status, "completed", "{report:?}");
    }

    async fn sim_post(&self, path: &str, body: Value) -> Value {
        let response = self.http.post(format!("{}{path}", self.sim.base_url())).json(&body).send().await.expect("simulator");
        assert_eq!(response.status(), 200, "simulator {path}");
        response.json().await.unwrap_or(Value::Null)
    }

    /// Waits until the simulator has no webhook left to send.
    async fn webhooks_settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = format!("{}/_sim/webhooks", self.sim.base_url());
            let state: Value = self.http.get(url).send().await.expect("webhook stats").json().await.expect("JSON");
            if state["stats"]["pending"] == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "webhooks still pending: {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Follows the feed in the background until `stop` is set and it has read up to `target`.
fn follow(server: Arc<FeedServer>, account_id: i64, view: Arc<tokio::sync::Mutex<ConsumerView>>, stop: Arc<AtomicBool>, target: Arc<Mutex<i64>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let mut consumer = view.lock().await;
            consumer.poll(&server, account_id, 1).await;
            let target = *target.lock().expect("target lock");
            if stop.load(Ordering::SeqCst) && consumer.after >= target {
                return;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_view_equals_tables() {
    let fixture = sim_fixture().await;
    let account_id = fixture.account_id;
    let server = fixture.server.clone();
    let view = Arc::new(tokio::sync::Mutex::new(ConsumerView::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let target = Arc::new(Mutex::new(i64::MAX));
    let consumer = follow(server.clone(), account_id, view.clone(), stop.clone(), target.clone());

    // A first full sweep creates every record.
    fixture.sweep().await;
    let after_first = newest_seq(&fixture.database, account_id);
    assert!(after_first > 300, "the first sweep reports every record: {after_first} changes");

    // Webhooks, some duplicated and some overtaken by later ones, while a second replica (a
    // second pool on the same database) writes too; then a refresh and a sweep.
    let replica = Database::open(&fixture.database.url, &PoolSettings { max_connections: 2, ..PoolSettings::default() });
    let replica_writes = std::thread::spawn(move || write_candidates(replica, account_id, 50_000, 100));
    fixture.sim_post("/_sim/webhooks", json!({"duplicate_rate": 0.3, "delay_rate": 0.3, "max_delay_ms": 150})).await;
    fixture.sim_post("/_sim/mutate", json!({"count": 80})).await;
    fixture.webhooks_settled().await;
    replica_writes.join().expect("replica writes");
    let service = SweepService::new(fixture.database.db.clone(), fixture.client.settings().clone(), sweep_settings()).expect("service");
    greenhouse_sync::sweep::refresh::refresh_account(&service, account_id).await.expect("refresh");
    fixture.sweep().await;

    // A sweep of the unchanged account appends nothing.
    let before_resweep = newest_seq(&fixture.database, account_id);
    fixture.sweep().await;
    assert_eq!(newest_seq(&fixture.database, account_id), before_resweep, "re-sweeping an unchanged account appends nothing");

    *target.lock().expect("target lock") = before_resweep;
    stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(30), consumer).await.expect("consumer caught up").expect("consumer task");

    let consumer = view.lock().await;
    assert_eq!(consumer.changes_seen as i64, before_resweep, "every change was seen exactly once");
    assert_views_equal(&consumer.records, &database_view(&fixture.database, account_id));

    let sources = distinct(&fixture.database, account_id, "source");
    for source in ["sweep", "webhook", "refresh"] {
        assert!(sources.contains(&source.to_string()), "no change from {source}: {sources:?}");
    }
    let kinds = distinct(&fixture.database, account_id, "kind");
    for kind in ["created", "updated", "deleted"] {
        assert!(kinds.contains(&kind.to_string()), "no {kind} change: {kinds:?}");
    }
}

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

fn distinct(database: &TestDatabase, account_id: i64, column: &str) -> Vec<String> {
    let mut conn = database.db.get().expect("connection");
    let mut sql = Sql::new(database.db.backend());
    sql.push(&format!("SELECT DISTINCT {column} AS value FROM changes WHERE account_id = ")).bind(SqlValue::Int(Some(account_id)));
    sql.load::<TextRow>(&mut conn).expect("distinct values").into_iter().map(|row| row.value).collect()
}

/// Creates a database, an account without Harvest credentials and the feed server.
fn plain_fixture() -> (TestDatabase, i64, FeedServer) {
    let database = TestDatabase::create();
    let account_id = create_account(&database);
    let server = FeedServer::start(database.db.clone());
    (database, account_id, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_older_deliveries_append_nothing() {
    let (database, account_id, server) = plain_fixture();

    server.post_webhook(account_id, &candidate_update(501, "Ada"), "evt-1").await;
    let after_first = newest_seq(&database, account_id);
    assert_eq!(after_first, 1, "a new candidate is one change");

    server.post_webhook(account_id, &candidate_update(501, "Ada"), "evt-1").await;
    server.post_webhook(account_id, &candidate_update(501, "Ada"), "evt-2").await;
    assert_eq!(newest_seq(&database, account_id), after_first, "a retry and a resent copy append nothing");

    let mut newer = support::webhook_fixture("application_updated");
    newer["payload"]["application"]["last_activity_at"] = json!("2016-01-01T00:00:00Z");
    newer["payload"]["application"]["status"] = json!("hired");
    let mut older = newer.clone();
    older["payload"]["application"]["last_activity_at"] = json!("2015-12-31T00:00:00Z");
    older["payload"]["application"]["status"] = json!("rejected");
    server.post_webhook(account_id, &newer, "evt-3").await;
    let after_newer = newest_seq(&database, account_id);
    let answer = server.post_webhook(account_id, &older, "evt-4").await;
    assert_eq!(answer["effects"]["kept"], 1, "{answer}");
    assert_eq!(newest_seq(&database, account_id), after_newer, "an older payload the guard keeps appends nothing");

    server.post_webhook(account_id, &candidate_update(501, "Grace"), "evt-5").await;
    let (status, body) = server.get(&format!("/admin/accounts/{account_id}/changes?after={after_newer}")).await;
    assert_eq!(status, 200);
    let change = &body["changes"][0];
    assert_eq!(change["kind"], "updated");
    assert_eq!(change["changed_fields"], json!(["first_name"]));
    assert_eq!(change["source"], "webhook");
    assert_eq!(change["resource"], "candidates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_merge_are_reported() {
    let (database, account_id, server) = plain_fixture();
    server.post_webhook(account_id, &candidate_update(601, "Old"), "evt-1").await;
    server.post_webhook(account_id, &candidate_update(602, "New"), "evt-2").await;
    let merge = json!({"action": "merge_candidate", "payload": {"person": {"id": 601, "new_candidate_id": 602}}});
    server.post_webhook(account_id, &merge, "evt-3").await;
    server.post_webhook(account_id, &merge, "evt-4").await;
    let delete = json!({"action": "delete_candidate", "payload": {"person": {"id": 602, "deleted_application_ids": []}}});
    server.post_webhook(account_id, &delete, "evt-5").await;

    let (_, body) = server.get(&format!("/admin/accounts/{account_id}/changes?include=record")).await;
    let kinds: Vec<(String, i64)> = body["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| (c["kind"].as_str().unwrap_or_default().to_string(), c["record_id"].as_i64().unwrap_or_default()))
        .collect();
    let expected = [("created", 601), ("created", 602), ("merged", 601), ("deleted", 602)];
    let expected: Vec<(String, i64)> = expected.iter().map(|(k, id)| (k.to_string(), *id)).collect();
    assert_eq!(kinds, expected, "a repeated merge appends nothing");
    assert_eq!(body["changes"][2]["changed_fields"], json!(["deleted_at", "merged_into_id"]));
    assert_eq!(body["changes"][2]["record"]["merged_into_id"], 602);
    assert_eq!(newest_seq(&database, account_id), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_write() {
    let (_database, account_id, server) = plain_fixture();
    let server = Arc::new(server);
    let started = Instant::now();
    let waiting = {
        let server = server.clone();
        tokio::spawn(async move { server.get(&format!("/admin/accounts/{account_id}/changes?after=0&wait=20")).await })
    };

    tokio::time::sleep(Duration::from_millis(300)).await;
    server.post_webhook(account_id, &candidate_update(701, "Ada"), "evt-1").await;
    let (status, body) = waiting.await.expect("long poll");

    assert_eq!(status, 200);
    assert_eq!(body["changes"][0]["record_id"], 701);
    assert_eq!(body["next_after"], 1);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "answered before the write: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "woke late: {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_empty_after_wait() {
    let (_database, account_id, server) = plain_fixture();
    let started = Instant::now();
    let (status, body) = server.get(&format!("/admin/accounts/{account_id}/changes?wait=1")).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"changes": [], "next_after": 0}));
    assert!(started.elapsed() >= Duration::from_secs(1), "returned before the wait passed");
}

/// Reads the stream until `count` events arrived, and returns their ids and data.
async fn read_events(response: &mut reqwest::Response, count: usize) -> Vec<(i64, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk()).await.expect("event in time").expect("stream read");
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("stream still open")));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let id = event.lines().find_map(|l| l.strip_prefix("id: ")).and_then(|v| v.parse().ok());
            let data = event.lines().find_map(|l| l.strip_prefix("data: ")).and_then(|v| serde_json::from_str(v).ok());
            if let (Some(id), Some(data)) = (id, data) {
                events.push((id, data));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_resumes_from_last_event_id() {
    let (_database, account_id, server) = plain_fixture();
    for (n, name) in ["A", "B", "C"].iter().enumerate() {
        server.post_webhook(account_id, &candidate_update(800 + n as i64, name), &format!("evt-{n}")).await;
    }

    let mut response = server
        .http
        .get(server.url(&format!("/admin/accounts/{account_id}/changes/stream?include=record")))
        .header("Last-Event-ID", "1")
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = read_events(&mut response, 2).await;
    assert_eq!(events.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![2, 3], "resumes after the last event id");
    assert_eq!(events[0].1["record"]["id"], 801);

    server.post_webhook(account_id, &candidate_update(803, "D"), "evt-live").await;
    let live = read_events(&mut response, 1).await;
    assert_eq!(live[0].0, 4, "a later write reaches the open stream");
    assert_eq!(live[0].1["kind"], "created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_range_answers_gone() {
    let (database, account_id, server) = plain_fixture();
    for n in 0..3 {
        server.post_webhook(account_id, &candidate_update(900 + n, "X"), &format!("evt-{n}")).await;
    }
    {
        let mut conn = database.db.get().expect("connection");
        let purged = changes::purge_before(&mut conn, chrono::Utc::now() + chrono::Duration::seconds(1)).expect("purge");
        assert_eq!(purged, 3);
    }

    let (status, body) = server.get(&format!("/admin/accounts/{account_id}/changes?after=0")).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["oldest_available_seq"], 4);
    assert!(body["error"].as_str().unwrap_or_default().contains("purged"), "{body}");

    let stream = server.http.get(server.url(&format!("/admin/accounts/{account_id}/changes/stream?after=1"))).send().await.expect("stream");
    assert_eq!(stream.status(), 410);

    let (status, body) = server.get(&format!("/admin/accounts/{account_id}/changes?after=3")).await;
    assert_eq!(status, 200, "a consumer that read everything continues: {body}");
    server.post_webhook(account_id, &candidate_update(950, "Y"), "evt-after").await;
    let (_, body) = server.get(&format!("/admin/accounts/{account_id}/changes?after=3")).await;
    assert_eq!(body["changes"][0]["seq"], 4, "numbering continues after a purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_rejected() {
    let (_database, account_id, server) = plain_fixture();
    let cases = [
        (format!("/admin/accounts/{account_id}/changes?limit=0"), 400, "limit"),
        (format!("/admin/accounts/{account_id}/changes?limit=5000"), 400, "limit"),
        (format!("/admin/accounts/{account_id}/changes?after=-2"), 400, "after"),
        (format!("/admin/accounts/{account_id}/changes?wait=3600"), 400, "wait"),
        (format!("/admin/accounts/{account_id}/changes?include=everything"), 400, "include"),
        (format!("/admin/accounts/{account_id}/changes?cursor=5"), 400, "cursor"),
        (format!("/admin/accounts/{account_id}/changes/stream?wait=5"), 400, "wait"),
        (format!("/admin/accounts/{account_id}/changes?after=7"), 409, "beyond"),
        ("/admin/accounts/424242/changes".to_string(), 404, "424242"),
    ];
    for (path, expected, word) in cases {
        let (status, body) = server.get(&path).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert!(body["error"].as_str().unwrap_or_default().contains(word), "{path}: {body}");
    }

    let response = server
        .http
        .get(server.url(&format!("/admin/accounts/{account_id}/changes/stream")))
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 400);
}

/// Writes `count` candidate updates through `db`, each in its own delivery.
fn write_candidates(db: Database, account_id: i64, first_id: i64, count: i64) {
    let mut conn = db.get().expect("connection");
    for n in 0..count {
        let body = candidate_update(first_id + n, "Writer");
        let delivery = VerifiedDelivery {
            account_id,
            event_id: None,
            action: "update_candidate".to_string(),
            body: body.to_string(),
            received_at: chrono::Utc::now(),
        };
        store_and_apply(&mut conn, &delivery).expect("stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_show_gaps() {
    let database = TestDatabase::create();
    let account_id = create_account(&database);
    // A second pool on the same database stands for a second replica.
    let replica = Database::open(&database.url, &PoolSettings { max_connections: 2, ..PoolSettings::default() });
    const PER_WRITER: i64 = 150;

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let db = database.db.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut conn = db.get().expect("connection");
            let mut after = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let read = changes::read_after(&mut conn, account_id, after, 1000).expect("read");
                for change in &read {
                    assert_eq!(change.seq, after + 1, "a reader saw {} before {}", change.seq, after + 1);
                    after = change.seq;
                }
                if finished && read.is_empty() {
                    return after;
                }
            }
        })
    };

    let writers = [
        std::thread::spawn({
            let db = database.db.clone();
            move || write_candidates(db, account_id, 10_000, PER_WRITER)
        }),
        std::thread::spawn({
            let db = replica.clone();
            move || write_candidates(db, account_id, 20_000, PER_WRITER)
        }),
        std::thread::spawn({
            let db = replica.clone();
            move || write_candidates(db, account_id, 30_000, PER_WRITER)
        }),
    ];
    for writer in writers {
        writer.join().expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    let last_read = reader.join().expect("reader");

    assert_eq!(last_read, 3 * PER_WRITER, "the reader saw every change once");
    assert_eq!(newest_seq(&database, account_id), 3 * PER_WRITER);
    let stored = database.count(&format!("SELECT COUNT(*) AS count FROM changes WHERE account_id = {account_id}"));
    assert_eq!(stored, 3 * PER_WRITER, "one change per created candidate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_scope_serves_feed_with_token() {
    let server = support::TestServer::start().await;
    let account = server.database.add_account("Acme", HOOK_SECRET);
    let body = support::greenhouse_bytes(&candidate_update(1001, "Ada"));
    let stored = server.post_signed(account.id, HOOK_SECRET, &body).await;
    assert_eq!(stored.status(), 200);
    let path = format!("/admin/accounts/{}/changes", account.id);

    let anonymous = server.http.get(server.url(&path)).send().await.expect("send");
    assert_eq!(anonymous.status(), 401, "the feed needs the admin token");

    let response = server.admin(reqwest::Method::GET, &path).send().await.expect("send");
    assert_eq!(response.status(), 200);
    let feed: Value = response.json().await.expect("JSON");
    assert_eq!(feed["changes"][0]["record_id"], 1001);
    assert_eq!(feed["next_after"], 1);

    let scrape = server.http.get(server.url("/metrics")).send().await.expect("metrics");
    let status = scrape.status();
    let metrics = scrape.text().await.expect("text");
    assert_eq!(status, 200, "{metrics}");
    let feed_lines: Vec<&str> = metrics.lines().filter(|line| line.contains("greenhouse_sync_changes")).collect();
    assert!(
        metrics.contains(r#"greenhouse_sync_changes_appended_total{kind="created",resource="candidates",source="webhook"}"#),
        "appended changes are counted: {feed_lines:#?}"
    );
    assert!(metrics.contains(&format!(r#"greenhouse_sync_changes_newest_seq{{account_id="{}"}}"#, account.id)), "newest number is exported");
    assert!(metrics.contains(r#"greenhouse_sync_changes_clients{mode="stream"}"#), "client gauge is exported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_pass_reports_every_row() {
    use greenhouse_sync::db::changes::{ChangeSet, Source};
    use greenhouse_sync::db::sweeps;

    let database = TestDatabase::create();
    let account_id = create_account(&database);
    const ROWS: i64 = 2500;
    let written_at = chrono::Utc::now();
    {
        let mut conn = database.db.get().expect("connection");
        let page: Vec<_> = (1..=ROWS)
            .map(|id| serde_json::value::to_raw_value(&json!({"id": id, "first_name": "Gone", "updated_at": "2026-01-01T00:00:00Z"})).expect("raw record"))
            .collect();
        conn.write_transaction(|conn| {
            let mut changes = ChangeSet::new(account_id, Source::Sweep);
            records::upsert_v3_records(conn, account_id, Resource::Candidates, &page, None, &mut changes, written_at)?;
            changes.append(conn, written_at)?;
            Ok::<_, records::WriteError>(())
        })
        .expect("store rows");
    }
    assert_eq!(newest_seq(&database, account_id), ROWS);

    // A run that began after the rows were written and read none of them.
    let run_started_at = written_at + chrono::Duration::seconds(1);
    let mut conn = database.db.get().expect("connection");
    let deleted = sweeps::mark_unseen_deleted(&mut conn, account_id, Resource::Candidates, 999, run_started_at, chrono::Utc::now())
        .expect("deletion pass");
    drop(conn);

    assert_eq!(deleted as i64, ROWS, "every unseen row is marked deleted, across several chunks");
    assert_eq!(newest_seq(&database, account_id), 2 * ROWS, "one change per deleted row");
    let deletions = database.count(&format!("SELECT COUNT(*) AS count FROM changes WHERE account_id = {account_id} AND kind = 'deleted'"));
    assert_eq!(deletions, ROWS);
    let live = database.count(&format!("SELECT COUNT(*) AS count FROM candidates WHERE account_id = {account_id} AND deleted_at IS NULL"));
    assert_eq!(live, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_listeners() {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;

    let database = TestDatabase::create();
    if database.db.backend() != greenhouse_sync::db::Backend::Postgres {
        return;
    }
    let account_id = create_account(&database);
    let mut listener = diesel::PgConnection::establish(&database.url).expect("listener connection");
    listener.batch_execute(&format!("LISTEN {}", changes::NOTIFY_CHANNEL)).expect("listen");

    write_candidates(database.db.clone(), account_id, 1, 1);

    // Tests running beside this one share the database and the channel, so their
    // notifications may arrive too.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut payloads = Vec::new();
    while !payloads.contains(&account_id.to_string()) && Instant::now() < deadline {
        // A query makes libpq read what the server sent, notifications included.
        listener.batch_execute("SELECT 1").expect("poll");
        payloads.extend(listener.notifications_iter().filter_map(Result::ok).map(|n| n.payload));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(payloads.contains(&account_id.to_string()), "no notification carried the account id: {payloads:?}");
}
