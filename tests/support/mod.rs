//! Shared test harness: a fresh database per test (a SQLite file, or a PostgreSQL schema
//! when `TEST_DATABASE_URL` is set), a running server on a loopback port, and signed posts
//! of fixture payloads.

#![allow(dead_code, reason = "each test target uses a different part of the harness")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use greenhouse_sync::db::accounts::{self, Account, NewAccount};
use greenhouse_sync::db::{Database, PoolSettings, migrations, records};
use greenhouse_sync::greenhouse::Resource;
use greenhouse_sync::server::{self, ServerConfig};
use greenhouse_sync::webhooks::intake::WebhookSettings;
use greenhouse_sync::webhooks::signature;
use serde_json::Value;

/// Limit used by test servers, small so oversized bodies are cheap to build.
pub const TEST_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Body read deadline of test servers: short so slow-sender tests finish quickly, but long
/// enough for a 4 MiB upload to a debug build on a busy two-core machine.
pub const TEST_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Admin token of test servers.
pub const TEST_ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Master key of every test database (32 bytes of 0x2a in base64). One process holds one
/// master key, so all tests share it.
pub const TEST_MASTER_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// A database that exists for one test and is removed afterwards.
pub struct TestDatabase {
    pub url: String,
    pub db: Database,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// Creates and migrates a fresh database on the backend chosen by `TEST_DATABASE_URL`.
    pub fn create() -> TestDatabase {
        let (url, dir, postgres) = match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let schema = unique_name();
                let mut admin = PgConnection::establish(&admin_url).expect("TEST_DATABASE_URL must reach PostgreSQL");
                admin.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("create test schema");
                let separator = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{separator}options=-csearch_path%3D{schema}");
                (url, None, Some((admin_url, schema)))
            }
            _ => {
                let dir = tempfile::tempdir().expect("create temp dir");
                let url = dir.path().join("test.db").display().to_string();
                (url, Some(dir), None)
            }
        };

        let key = greenhouse_sync::secrets::MasterKey::from_base64(TEST_MASTER_KEY).expect("test key is valid");
        greenhouse_sync::secrets::install(key).expect("install the test master key");

        // A generous acquire timeout: these tests check what is stored, and on a loaded
        // two-core machine hundreds of concurrent deliveries can queue for seconds.
        let settings = PoolSettings {
            max_connections: 4,
            acquire_timeout: std::time::Duration::from_secs(30),
            ..PoolSettings::default()
        };
        let db = Database::open(&url, &settings);
        let mut conn = db.get().expect("connect to test database");
        migrations::run_pending(&mut conn).expect("migrate test database");
        TestDatabase { url, db, _dir: dir, postgres }
    }

    pub fn add_account(&self, name: &str, secret: &str) -> Account {
        let mut conn = self.db.get().expect("connection");
        let new = NewAccount {
            name: name.to_string(),
            webhook_secret: secret.to_string(),
            harvest_client_id: None,
            harvest_client_secret: None,
            harvest_user_id: None,
        };
        accounts::create(&mut conn, &new, chrono::Utc::now()).expect("create account")
    }

    /// Reads a stored row as JSON, or `None` when it does not exist.
    pub fn record(&self, account_id: i64, resource: Resource, id: i64) -> Option<Value> {
        let mut conn = self.db.get().expect("connection");
        records::fetch_record(&mut conn, account_id, resource, id).expect("fetch record")
    }

    /// Runs a statement that returns no rows, such as an `UPDATE` that sets up a case.
    pub fn execute(&self, sql: &str) {
        use greenhouse_sync::db::sql::Sql;
        let mut conn = self.db.get().expect("connection");
        let mut statement = Sql::new(self.db.backend());
        statement.push(sql);
        statement.execute(&mut conn).expect("statement");
    }

    /// Runs a query returning one number, such as a row count.
    pub fn count(&self, sql: &str) -> i64 {
        use greenhouse_sync::db::sql::{CountRow, Sql};
        let mut conn = self.db.get().expect("connection");
        let mut query = Sql::new(self.db.backend());
        query.push(sql);
        query.first::<CountRow>(&mut conn).expect("count query").map_or(0, |row| row.count)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, schema)) = &self.postgres
            && let Ok(mut admin) = PgConnection::establish(admin_url)
        {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("t_{}_{}_{}", std::process::id(), n, nanos)
}

/// A server running on a loopback port for one test.
pub struct TestServer {
    pub base_url: String,
    pub database: TestDatabase,
    pub http: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on a fresh database, in a thread of its own with its own actix
    /// system, so that it stops with the test whatever runtime the test uses.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_, _| {}).await
    }

    /// Starts a server like `start`, with `adjust` applied to its configuration first. It
    /// receives the test database, for example to build a `SweepService` on it.
    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig, &Database)) -> TestServer {
        let database = TestDatabase::create();
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".to_string(),
            webhooks: WebhookSettings { max_body_bytes: TEST_MAX_BODY_BYTES, body_timeout: TEST_BODY_TIMEOUT },
            workers: 2,
            sweeps: None,
            admin_token: Some(TEST_ADMIN_TOKEN.to_string()),
            ..ServerConfig::default()
        };
        adjust(&mut config, &database.db);
        let db = database.db.clone();
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let (server, addrs) = server::start(db, &config).expect("start server");
                sender.send((server.handle(), addrs[0])).expect("report address");
                let _ = server.await;
            });
        });
        let (handle, addr) = receiver.recv().expect("server started");

        greenhouse_sync::greenhouse::harvest::install_crypto_provider();
        TestServer {
            base_url: format!("http://{addr}"),
            database,
            http: reqwest::Client::new(),
            handle,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Posts `body` to the account's webhook URL, signed with `secret`.
    pub async fn post_signed(&self, account_id: i64, secret: &str, body: &[u8]) -> reqwest::Response {
        self.post_webhook(account_id, body, Some(signature::sign(secret.as_bytes(), body))).await
    }

    /// Starts an admin API request carrying the test admin token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(TEST_ADMIN_TOKEN)
    }

    /// Posts `body` with the given `Signature` header, or none.
    pub async fn post_webhook(&self, account_id: i64, body: &[u8], signature: Option<String>) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url(&format!("/webhooks/greenhouse/{account_id}")))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("Signature", signature);
        }
        request.send().await.expect("send webhook")
    }

}

impl Drop for TestServer {
    /// Stops the server and waits for its thread, so its database connections close with
    /// the test: PostgreSQL allows only about 100 connections for the whole suite.
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/greenhouse")
}

/// Reads a webhook fixture as JSON.
pub fn webhook_fixture(action: &str) -> Value {
    let path = fixtures_dir().join("webhooks").join(format!("{action}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Encodes JSON as Greenhouse sends it: compact, with `<`, `>` and `&` escaped as `\u003c`,
/// `\u003e` and `\u0026`. Those characters can only occur inside JSON strings, so replacing
/// them in the serialised text keeps it valid.
pub fn greenhouse_bytes(value: &Value) -> Vec<u8> {
    let compact = serde_json::to_string(value).expect("serialise");
    compact.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").into_bytes()
}

/// Names of every webhook fixture file, without `.json`.
pub fn webhook_fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir().join("webhooks"))
        .expect("read fixtures")
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Compares a stored timestamp with an expected RFC 3339 string as instants.
pub fn same_instant(stored: &Value, expected: &str) -> bool {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    match stored.as_str() {
        Some(text) => parse(text).is_some() && parse(text) == parse(expected),
        None => false,
    }
}
