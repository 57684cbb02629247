//! Operations over real HTTP and real processes: metrics after a run of the whole scenario,
//! the deployment files checked against them, request ids, the health check command, and
//! SIGTERM during a sweep. On SQLite by default and on PostgreSQL when `TEST_DATABASE_URL`
//! is set.

mod scenario;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use greenhouse_sync::greenhouse::Resource;
use greenhouse_sync::sim::{self, RunningSim, SimConfig, Sizes};
use reqwest::Method;
use serde_json::{Value, json};
use support::{TEST_ADMIN_TOKEN, TEST_MASTER_KEY, TestDatabase, TestServer};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Metric families in a text exposition, by name, with their type.
fn families(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect()
}

/// Sample lines (not comments) of one metric family.
fn samples<'a>(exposition: &'a str, name: &str) -> Vec<&'a str> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .collect()
}

/// Value of the first sample of `name` whose line contains every fragment.
fn sample_value(exposition: &str, name: &str, fragments: &[&str]) -> Option<f64> {
    samples(exposition, name)
        .into_iter()
        .find(|line| fragments.iter().all(|fragment| line.contains(fragment)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Collects every `greenhouse_sync_*` name in a PromQL expression, with histogram suffixes
/// removed so that it names a family.
fn metric_names(expression: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expression;
    while let Some(start) = rest.find("greenhouse_sync_") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name);
        names.insert(family.to_string());
        rest = &tail[end..];
    }
    names
}

fn yaml_documents(path: &Path) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;

    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| serde_yaml::Value::deserialize(document).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display())))
        .collect()
}

/// Reads every Kubernetes object in deploy/kubernetes, by kind.
fn kubernetes_objects() -> BTreeMap<String, serde_yaml::Value> {
    let mut objects = BTreeMap::new();
    for entry in std::fs::read_dir(deploy_dir().join("kubernetes")).expect("deploy/kubernetes") {
        let path = entry.expect("entry").path();
        for document in yaml_documents(&path) {
            let kind = document["kind"].as_str().unwrap_or_else(|| panic!("{} has no kind", path.display())).to_string();
            objects.insert(kind, document);
        }
    }
    objects
}

/// PromQL expressions of the alert rules and of the dashboard's panels and variables.
fn deploy_expressions() -> Vec<String> {
    let objects = kubernetes_objects();
    let mut expressions = Vec::new();
    for group in objects["PrometheusRule"]["spec"]["groups"].as_sequence().expect("rule groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            expressions.push(rule["expr"].as_str().expect("expr").to_string());
        }
    }

    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy_dir().join("grafana/dashboard.json")).expect("dashboard")).expect("dashboard JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            expressions.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("variables") {
        if let Some(query) = variable["query"].as_str() {
            expressions.push(query.to_string());
        }
    }
    expressions
}

#[test]
fn kubernetes_manifests_valid() {
    let objects = kubernetes_objects();
    for kind in ["Deployment", "Service", "ServiceMonitor", "PrometheusRule", "Kustomization"] {
        assert!(objects.contains_key(kind), "deploy/kubernetes has no {kind}");
    }

    let deployment = &objects["Deployment"];
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(2));
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    let limit = container["resources"]["limits"]["memory"].as_str().expect("memory limit");
    assert!(limit.ends_with("Mi"), "memory limit {limit} in Mi");
    let variables: BTreeSet<&str> =
        container["env"].as_sequence().expect("env").iter().filter_map(|v| v["name"].as_str()).collect();
    for variable in ["DATABASE_URL", "GREENHOUSE_SYNC_MASTER_KEY", "GREENHOUSE_SYNC_ADMIN_TOKEN", "GREENHOUSE_SYNC_LISTEN"] {
        assert!(variables.contains(variable), "{variable} is not set in the Deployment");
    }

    assert_eq!(objects["ServiceMonitor"]["spec"]["endpoints"][0]["path"].as_str(), Some("/metrics"));

    let alerts: BTreeSet<&str> = objects["PrometheusRule"]["spec"]["groups"][0]["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .filter_map(|rule| rule["alert"].as_str())
        .collect();
    for alert in [
        "GreenhouseSyncSignatureFailures",
        "GreenhouseSyncDeliveriesFailing",
        "GreenhouseSyncSweepFailing",
        "GreenhouseSyncSweepStale",
        "GreenhouseSyncHarvestRateLimited",
        "GreenhouseSyncNotReady",
    ] {
        assert!(alerts.contains(alert), "alert {alert} is missing");
    }
}

#[actix_web::test]
async fn deploy_metrics_exist_after_scenario() {
    let scenario = scenario::run().await;
    let exposition = scenario.server.http.get(scenario.server.url("/metrics")).send().await.expect("scrape");
    assert_eq!(exposition.status(), 200);
    let content_type = exposition.headers()["content-type"].to_str().unwrap_or_default().to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let exposition = exposition.text().await.expect("text");
    let families = families(&exposition);

    let used: BTreeSet<String> = deploy_expressions().iter().flat_map(|e| metric_names(e)).collect();
    assert!(used.len() >= 15, "the alerts and dashboard use {} metrics: {used:?}", used.len());
    for name in &used {
        assert!(families.contains_key(name), "{name} is used in deploy/ but missing from /metrics");
    }
}

#[actix_web::test]
async fn metrics_count_scenario() {
    let scenario = scenario::run().await;
    let account = format!("account_id=\"{}\"", scenario.account_id);
    let exposition = scenario.server.http.get(scenario.server.url("/metrics")).send().await.expect("scrape");
    let exposition = exposition.text().await.expect("text");

    let deliveries = "greenhouse_sync_webhook_deliveries_total";
    let applied = sample_value(&exposition, deliveries, &[&account, "action=\"job_created\"", "outcome=\"applied\""]);
    assert!(applied.is_some_and(|n| n >= 2.0), "job_created applied twice: {applied:?}");
    let pings = sample_value(&exposition, deliveries, &[&account, "action=\"ping\"", "outcome=\"ignored\""]);
    assert!(pings.is_some_and(|n| n >= 2.0), "{pings:?}");
    let bad_signature = sample_value(&exposition, deliveries, &[&account, "outcome=\"rejected_signature\""]);
    assert!(bad_signature.is_some_and(|n| n >= 1.0), "{bad_signature:?}");
    let unknown = sample_value(&exposition, deliveries, &["account_id=\"unknown\"", "outcome=\"rejected_unknown_account\""]);
    assert!(unknown.is_some_and(|n| n >= 1.0), "{unknown:?}");
    assert!(!exposition.contains("account_id=\"999999\""), "a made-up account id became a label value");
    let replays = sample_value(&exposition, "greenhouse_sync_webhook_replays_total", &[&account, "outcome=\"failed\""]);
    assert!(replays.is_some_and(|n| n >= 1.0), "{replays:?}");

    let full = sample_value(&exposition, "greenhouse_sync_sweep_runs_total", &[&account, "mode=\"full\"", "outcome=\"completed\""]);
    assert!(full.is_some_and(|n| n >= 1.0), "{full:?}");
    let pages = sample_value(&exposition, "greenhouse_sync_sweep_pages_total", &[&account, "resource=\"candidates\""]);
    assert!(pages.is_some_and(|n| n >= 1.0), "{pages:?}");
    let rate_limited = sample_value(&exposition, "greenhouse_sync_harvest_rate_limited_total", &[&account]);
    assert!(rate_limited.is_some_and(|n| n >= 1.0), "the scenario's 429: {rate_limited:?}");
    let retries = sample_value(&exposition, "greenhouse_sync_harvest_retries_total", &[&account]);
    assert!(retries.is_some_and(|n| n >= 1.0), "the scenario's 500: {retries:?}");
    let ok_requests = sample_value(&exposition, "greenhouse_sync_harvest_requests_total", &[&account, "status_class=\"2xx\""]);
    assert!(ok_requests.is_some_and(|n| n >= 10.0), "{ok_requests:?}");
    let last = sample_value(&exposition, "greenhouse_sync_sweep_last_success_timestamp_seconds", &[&account, "resource=\"jobs\""]);
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(last.is_some_and(|t| (now - t).abs() < 600.0), "{last:?}");
    assert_eq!(sample_value(&exposition, "greenhouse_sync_database_ready", &[]), Some(1.0));
    assert!(exposition.contains("greenhouse_sync_db_pool_connections{state=\"in_use\"}"));
    let sqlite_heap = sample_value(&exposition, "greenhouse_sync_sqlite_heap_bytes", &[]);
    match scenario.server.database.db.backend() {
        // The scenario's own database is open in this process, with its page cache.
        greenhouse_sync::db::Backend::Sqlite => assert!(sqlite_heap.is_some_and(|bytes| bytes > 0.0), "{sqlite_heap:?}"),
        greenhouse_sync::db::Backend::Postgres => assert!(sqlite_heap.is_some(), "the gauge is listed on PostgreSQL too"),
    }
    #[cfg(target_os = "linux")]
    {
        let resident = sample_value(&exposition, "greenhouse_sync_process_resident_memory_bytes", &[]);
        assert!(resident.is_some_and(|bytes| bytes > 1_000_000.0), "{resident:?}");
    }
}

#[actix_web::test]
async fn metric_labels_are_bounded() {
    let scenario = scenario::run().await;
    let exposition = scenario.server.http.get(scenario.server.url("/metrics")).send().await.expect("scrape");
    let exposition = exposition.text().await.expect("text");

    let allowed = ["account_id", "action", "outcome", "resource", "mode", "status_class", "state", "kind", "source", "le", "quantile"];
    for line in exposition.lines().filter(|line| !line.starts_with('#')) {
        let Some((_, labels)) = line.split_once('{') else { continue };
        let labels = labels.split('}').next().unwrap_or_default();
        for pair in labels.split("\",").filter(|pair| !pair.is_empty()) {
            let name = pair.split('=').next().unwrap_or_default();
            assert!(allowed.contains(&name), "label {name} in {line}");
            if name == "account_id" {
                let value = pair.split('"').nth(1).unwrap_or_default();
                assert!(value == "unknown" || value.parse::<i64>().is_ok(), "{line}");
            }
        }
    }
    assert!(!exposition.contains("candidate_id"), "no record ids");
    assert!(!exposition.contains("application_id"), "no record ids");
}

#[actix_web::test]
async fn request_id_echoed() {
    let server = TestServer::start().await;

    let given = server.http.get(server.url("/healthz")).header("X-Request-Id", "abc-123.DEF_4").send().await.expect("send");
    assert_eq!(given.headers()["x-request-id"], "abc-123.DEF_4");

    let generated = server.http.get(server.url("/readyz")).send().await.expect("send");
    assert_eq!(generated.status(), 200);
    let id = generated.headers()["x-request-id"].to_str().expect("ASCII").to_string();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

    let invalid = server.http.get(server.url("/healthz")).header("X-Request-Id", "has spaces").send().await.expect("send");
    assert_ne!(invalid.headers()["x-request-id"], "has spaces");

    let admin = server.admin(Method::GET, "/admin/accounts").header("X-Request-Id", "admin-call-1").send().await.expect("send");
    assert_eq!(admin.headers()["x-request-id"], "admin-call-1");
    let rejected = server.http.get(server.url("/admin/accounts")).header("X-Request-Id", "no-token-1").send().await.expect("send");
    assert_eq!(rejected.status(), 401);
    assert_eq!(rejected.headers()["x-request-id"], "no-token-1", "errors carry the id too");
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_greenhouse-sync")
}

/// Returns a loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

#[actix_web::test]
async fn healthcheck_command_exit_codes() {
    let server = TestServer::start().await;
    let listen = server.base_url.trim_start_matches("http://").to_string();
    let up = Command::new(binary()).args(["healthcheck", "--listen", &listen]).output().expect("run healthcheck");
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));

    let nothing = format!("127.0.0.1:{}", free_port());
    let down = Command::new(binary()).args(["healthcheck", "--listen", &nothing]).output().expect("run healthcheck");
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("health check"), "{}", String::from_utf8_lossy(&down.stderr));
}

/// A `greenhouse-sync serve` process on a loopback port, logging to a file.
struct ServeProcess {
    child: Child,
    base_url: String,
    log: PathBuf,
}

impl ServeProcess {
    async fn start(database_url: &str, sim: &RunningSim, log: PathBuf) -> ServeProcess {
        let port = free_port();
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--schedule", "false"])
            // Generous, because the whole test suite loads the machine while this runs.
            .args(["--shutdown-timeout-secs", "20", "--harvest-budget", "100000"])
            .args(["--sweep-per-page", "25", "--sweep-pages-in-flight", "2", "--sweep-slices", "2"])
            .env("DATABASE_URL", database_url)
            .env("GREENHOUSE_SYNC_MASTER_KEY", TEST_MASTER_KEY)
            .env("GREENHOUSE_SYNC_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
            .env("GREENHOUSE_SYNC_HARVEST_BASE_URL", format!("{}/v3", sim.base_url()))
            .env("GREENHOUSE_SYNC_HARVEST_TOKEN_URL", sim.token_url())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start greenhouse-sync serve");
        let process = ServeProcess { child, base_url: format!("http://127.0.0.1:{port}"), log };
        process.wait_until_healthy().await;
        process
    }

    async fn wait_until_healthy(&self) {
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{}/readyz", self.base_url)).send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server did not become ready; log:\n{}", self.log_text());
    }

    fn admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().request(method, format!("{}{path}", self.base_url)).bearer_auth(TEST_ADMIN_TOKEN)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit, at most `deadline`.
    fn terminate(&mut self, deadline: Duration) -> std::process::ExitStatus {
        self.send_sigterm();
        self.wait_exit(deadline)
    }

    fn send_sigterm(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit, at most `deadline`.
    fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            if started.elapsed() > deadline {
                let _ = self.child.kill();
                panic!("server still running {deadline:?} after SIGTERM; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn sync_status(process: &ServeProcess, account_id: i64) -> Value {
    let path = format!("/admin/accounts/{account_id}/sync");
    process.admin(Method::GET, &path).send().await.expect("send").json().await.expect("sync JSON")
}

/// Records the simulator holds, per resource.
async fn truth_counts(sim: &RunningSim) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for resource in Resource::ALL {
        let url = format!("{}/_sim/truth/{}", sim.base_url(), resource.name());
        let pairs: Vec<(i64, String)> = reqwest::get(url).await.expect("truth").json().await.expect("truth JSON");
        counts.insert(resource.name().to_string(), pairs.len());
    }
    counts
}

fn local_counts(database: &TestDatabase, account_id: i64) -> BTreeMap<String, usize> {
    Resource::ALL
        .iter()
        .map(|resource| {
            let sql = format!("SELECT COUNT(*) AS count FROM {} WHERE account_id = {account_id} AND deleted_at IS NULL", resource.name());
            (resource.name().to_string(), database.count(&sql) as usize)
        })
        .collect()
}

#[actix_web::test]
async fn sigterm_during_sweep_resumes() {
    greenhouse_sync::greenhouse::harvest::install_crypto_provider();
    let sim_config = SimConfig {
        sizes: Sizes { candidates: 600, applications: 700, offers: 40, interviews: 60, scorecards: 60, ..Sizes::default() },
        rate_limit: 100_000,
        latency: Duration::from_millis(40),
        client_secret: "sigterm-client-secret".to_string(),
        ..SimConfig::default()
    };
    let sim = sim::start(sim_config).await.expect("start simulator");
    let database = TestDatabase::create();
    let logs = tempfile::tempdir().expect("log dir");
    let mut first = ServeProcess::start(&database.url, &sim, logs.path().join("first.log")).await;

    let body = json!({"name": "Sigterm", "harvest_client_id": "c", "harvest_client_secret": "sigterm-client-secret"});
    let created: Value = first.admin(Method::POST, "/admin/accounts").json(&body).send().await.expect("send").json().await.expect("JSON");
    let account_id = created["id"].as_i64().expect("account id");
    let reconcile = format!("/admin/accounts/{account_id}/reconcile");
    let started: Value = first.admin(Method::POST, &reconcile).json(&json!({"mode": "full"})).send().await.expect("send").json().await.expect("JSON");
    let run_id = started["run_id"].as_i64().expect("run id");

    // Wait until a few pages are stored, then stop the process in the middle of the run.
    let mut stored_pages = 0;
    for _ in 0..200 {
        stored_pages = database.count(&format!("SELECT CAST(COALESCE(SUM(pages), 0) AS BIGINT) AS count FROM sweep_chains WHERE run_id = {run_id}"));
        if stored_pages >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(stored_pages >= 3, "the sweep stored {stored_pages} pages; log:\n{}", first.log_text());

    let status = first.terminate(Duration::from_secs(60));
    let log = first.log_text();
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(log.contains("shutdown requested"), "{log}");
    assert!(log.contains("sweep interrupted"), "{log}");
    assert!(log.contains("greenhouse-sync stopped"), "{log}");

    let unfinished = database.count(&format!("SELECT COUNT(*) AS count FROM sweep_runs WHERE id = {run_id} AND status = 'running'"));
    assert_eq!(unfinished, 1, "the interrupted run stays resumable");
    let pages_at_stop = database.count(&format!("SELECT CAST(COALESCE(SUM(pages), 0) AS BIGINT) AS count FROM sweep_chains WHERE run_id = {run_id}"));
    let truth = truth_counts(&sim).await;
    let total: usize = truth.values().sum();
    assert!((pages_at_stop as usize) * 25 < total, "the run stopped before the end: {pages_at_stop} pages of {total} records");

    let second = ServeProcess::start(&database.url, &sim, logs.path().join("second.log")).await;
    let resumed: Value = second.admin(Method::POST, &reconcile).json(&json!({"mode": "full"})).send().await.expect("send").json().await.expect("JSON");
    assert_eq!(resumed["run_id"], run_id, "the next start resumes the interrupted run");

    let mut finished = None;
    for _ in 0..600 {
        let status = sync_status(&second, account_id).await;
        let run = status["recent_runs"].as_array().and_then(|runs| runs.iter().find(|r| r["id"] == run_id).cloned());
        if run.as_ref().is_some_and(|r| r["status"] != "running") {
            finished = run;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished = finished.unwrap_or_else(|| panic!("the resumed run did not finish; log:\n{}", second.log_text()));
    assert_eq!(finished["status"], "completed", "{finished}");
    assert!(second.log_text().contains("resuming unfinished sweep"));
    assert_eq!(local_counts(&database, account_id), truth, "nothing lost across the restart");
}

/// A valid master key other than the tests' own.
const OTHER_MASTER_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn cli(database: &TestDatabase, master_key: &str, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .env("DATABASE_URL", &database.url)
        .env("GREENHOUSE_SYNC_MASTER_KEY", master_key)
        .output()
        .expect("run greenhouse-sync")
}

#[test]
fn wrong_master_key_stops_start() {
    let database = TestDatabase::create();
    let added = cli(&database, TEST_MASTER_KEY, &["accounts", "add", "--name", "Acme", "--webhook-secret", "cli-secret"]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));

    let listed = cli(&database, OTHER_MASTER_KEY, &["accounts", "list"]);
    assert!(!listed.status.success(), "a different key must not start");
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(stderr.contains("master key"), "{stderr}");
    assert!(!stderr.contains("cli-secret"), "{stderr}");

    let migrated = cli(&database, OTHER_MASTER_KEY, &["migrate"]);
    assert!(migrated.status.success(), "migrate needs no key: {}", String::from_utf8_lossy(&migrated.stderr));
}

#[test]
fn plaintext_secrets_sealed_at_start() {
    let database = TestDatabase::create();
    database.execute(
        "INSERT INTO accounts (name, webhook_secret, harvest_client_id, harvest_client_secret, created_at, updated_at) \
         VALUES ('Old', 'plain-webhook-secret', 'client', 'plain-client-secret', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    );

    let listed = cli(&database, TEST_MASTER_KEY, &["accounts", "list"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\"Old\""));

    let sealed = database.count(
        "SELECT COUNT(*) AS count FROM accounts WHERE webhook_secret LIKE 'v1:%' AND harvest_client_secret LIKE 'v1:%'",
    );
    assert_eq!(sealed, 1, "both secrets are encrypted at start");
    let mut conn = database.db.get().expect("connection");
    let account_id = greenhouse_sync::db::accounts::list(&mut conn).expect("list")[0].id;
    let keys = greenhouse_sync::db::accounts::webhook_keys(&mut conn, account_id, chrono::Utc::now()).expect("read");
    assert_eq!(keys.expect("enabled account").current, "plain-webhook-secret");
    let credentials = greenhouse_sync::db::accounts::harvest_credentials(&mut conn, account_id).expect("read");
    assert_eq!(credentials.expect("credentials").client_secret, "plain-client-secret");
}

#[actix_web::test]
async fn sigterm_finishes_webhook_in_flight() {
    use std::io::{Read, Write};

    greenhouse_sync::greenhouse::harvest::install_crypto_provider();
    let sim = sim::start(SimConfig { rate_limit: 100_000, ..SimConfig::default() }).await.expect("start simulator");
    let database = TestDatabase::create();
    let logs = tempfile::tempdir().expect("log dir");
    let mut process = ServeProcess::start(&database.url, &sim, logs.path().join("serve.log")).await;

    let body = json!({"name": "InFlight", "webhook_secret": "in-flight-secret"});
    let created: Value = process.admin(Method::POST, "/admin/accounts").json(&body).send().await.expect("send").json().await.expect("JSON");
    let account_id = created["id"].as_i64().expect("account id");

    // Send the head and half the body, stop the server, then send the rest.
    let delivery = support::greenhouse_bytes(&support::webhook_fixture("job_created"));
    let signature = greenhouse_sync::webhooks::signature::sign(b"in-flight-secret", &delivery);
    let address = process.base_url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "POST /webhooks/greenhouse/{account_id} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        delivery.len()
    );
    let (first, rest) = delivery.split_at(delivery.len() / 2);
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(first).expect("write first half");
    stream.flush().expect("flush");
    tokio::time::sleep(Duration::from_millis(200)).await;

    process.send_sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(process.log_text().contains("shutdown requested"), "{}", process.log_text());

    stream.write_all(rest).expect("write second half");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    assert!(response.starts_with("HTTP/1.1 200"), "response {response:?}; log:\n{}", process.log_text());

    let status = process.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}; log:\n{}", process.log_text());
    let stored = database.count(&format!("SELECT COUNT(*) AS count FROM webhook_deliveries WHERE account_id = {account_id}"));
    assert_eq!(stored, 1, "the delivery in flight was stored");
}
