//! The admin API over real HTTP: the bearer token guard, accounts, the delivery log with
//! replay, retention, and the OpenAPI document. On SQLite by default and on PostgreSQL when
//! `TEST_DATABASE_URL` is set.

mod support;

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use support::{TEST_ADMIN_TOKEN, TestServer, greenhouse_bytes, webhook_fixture};

const SECRET: &str = "admin-test-webhook-secret";

/// Every admin route as (method, path template). The OpenAPI test checks that the document
/// lists exactly these.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/admin/accounts"),
    ("GET", "/admin/accounts"),
    ("GET", "/admin/accounts/{id}"),
    ("DELETE", "/admin/accounts/{id}"),
    ("PUT", "/admin/accounts/{id}/credentials"),
    ("DELETE", "/admin/accounts/{id}/credentials"),
    ("POST", "/admin/accounts/{id}/webhook-secret/rotate"),
    ("POST", "/admin/accounts/{id}/disable"),
    ("POST", "/admin/accounts/{id}/enable"),
    ("POST", "/admin/accounts/{id}/refresh/disable"),
    ("POST", "/admin/accounts/{id}/refresh/enable"),
    ("POST", "/admin/accounts/{id}/reconcile"),
    ("GET", "/admin/accounts/{id}/sync"),
    ("GET", "/admin/accounts/{id}/changes"),
    ("GET", "/admin/accounts/{id}/changes/stream"),
    ("POST", "/admin/accounts/{id}/deliveries/replay-failed"),
    ("GET", "/admin/deliveries"),
    ("GET", "/admin/deliveries/{id}"),
    ("POST", "/admin/deliveries/{id}/replay"),
    ("GET", "/admin/openapi.json"),
];

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("HTTP method")
}

fn concrete(path: &str, id: i64) -> String {
    path.replace("{id}", &id.to_string())
}

async fn json_of(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text}"))
}

async fn create_account(server: &TestServer, body: Value) -> Value {
    let response = server.admin(Method::POST, "/admin/accounts").json(&body).send().await.expect("send");
    assert_eq!(response.status(), 201);
    json_of(response).await
}

async fn post_fixture(server: &TestServer, account_id: i64, secret: &str, name: &str) -> reqwest::StatusCode {
    server.post_signed(account_id, secret, &greenhouse_bytes(&webhook_fixture(name))).await.status()
}

fn account_rows(server: &TestServer) -> i64 {
    server.database.count("SELECT COUNT(*) AS count FROM accounts")
}

#[actix_web::test]
async fn every_route_needs_the_token() {
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);
    let before = account_rows(&server);

    for (name, path) in ROUTES {
        let url = server.url(&concrete(path, account.id));
        let missing = server.http.request(method(name), &url).json(&json!({"name": "x"})).send().await.expect("send");
        assert_eq!(missing.status(), 401, "{name} {path} without a token");
        assert_eq!(missing.headers()["www-authenticate"], "Bearer");
        assert!(json_of(missing).await["error"].is_string(), "{name} {path}");

        let wrong = server
            .http
            .request(method(name), &url)
            .bearer_auth(format!("{TEST_ADMIN_TOKEN}x"))
            .json(&json!({"name": "x"}))
            .send()
            .await
            .expect("send");
        assert_eq!(wrong.status(), 401, "{name} {path} with a wrong token");
    }

    assert_eq!(account_rows(&server), before, "no request without the token changed anything");
    let still = server.admin(Method::GET, &format!("/admin/accounts/{}", account.id)).send().await.expect("send");
    assert_eq!(json_of(still).await["disabled"], false);
}

#[actix_web::test]
async fn unset_token_answers_503() {
    let server = TestServer::start_with(|config, _| config.admin_token = None).await;
    for (name, path) in ROUTES {
        let response = server.admin(method(name), &concrete(path, 1)).send().await.expect("send");
        assert_eq!(response.status(), 503, "{name} {path}");
        let error = json_of(response).await["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains("GREENHOUSE_SYNC_ADMIN_TOKEN"), "{error}");
    }
}

#[actix_web::test]
async fn account_lifecycle() {
    let server = TestServer::start().await;

    let created = create_account(&server, json!({"name": "  Acme  "})).await;
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["name"], "Acme");
    assert_eq!(created["webhook_path"], format!("/webhooks/greenhouse/{id}"));
    let generated = created["webhook_secret"].as_str().expect("generated secret shown once").to_string();
    assert_eq!(generated.len(), 64);
    assert_eq!(post_fixture(&server, id, &generated, "ping").await, 200);

    let listed = json_of(server.admin(Method::GET, "/admin/accounts").send().await.expect("send")).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let shown = server.admin(Method::GET, &format!("/admin/accounts/{id}")).send().await.expect("send");
    let shown_text = shown.text().await.expect("body");
    assert!(!shown_text.contains(&generated), "show never returns the secret: {shown_text}");
    assert!(!shown_text.contains("webhook_secret"), "{shown_text}");

    let disabled = server.admin(Method::POST, &format!("/admin/accounts/{id}/disable")).send().await.expect("send");
    assert_eq!(json_of(disabled).await["disabled"], true);
    assert_eq!(post_fixture(&server, id, &generated, "ping").await, 404, "a disabled account takes no deliveries");

    let enabled = server.admin(Method::POST, &format!("/admin/accounts/{id}/enable")).send().await.expect("send");
    assert_eq!(json_of(enabled).await["disabled"], false);
    assert_eq!(post_fixture(&server, id, &generated, "new_candidate_application").await, 200);

    let deleted = server.admin(Method::DELETE, &format!("/admin/accounts/{id}")).send().await.expect("send");
    assert_eq!(deleted.status(), 204);
    for table in ["accounts", "webhook_deliveries", "applications", "candidates", "jobs"] {
        let rows = server.database.count(&format!("SELECT COUNT(*) AS count FROM {table}"));
        assert_eq!(rows, 0, "{table} rows remain after deleting the account");
    }
    let gone = server.admin(Method::GET, &format!("/admin/accounts/{id}")).send().await.expect("send");
    assert_eq!(gone.status(), 404);
    assert!(json_of(gone).await["error"].as_str().unwrap_or_default().contains("not found"));
    let again = server.admin(Method::DELETE, &format!("/admin/accounts/{id}")).send().await.expect("send");
    assert_eq!(again.status(), 404);
}

fn queued_refreshes(server: &TestServer, account_id: i64) -> i64 {
    server.database.count(&format!("SELECT COUNT(*) AS count FROM refresh_queue WHERE account_id = {account_id}"))
}

/// Checks that the targeted refresh is on for a new account, that turning it off empties the
/// account's queue and stops webhooks from queueing, and that turning it on restores both.
#[actix_web::test]
async fn refresh_switch_controls_queue() {
    let server = TestServer::start().await;
    let created = create_account(&server, json!({"name": "Acme"})).await;
    let id = created["id"].as_i64().expect("id");
    let secret = created["webhook_secret"].as_str().expect("generated secret").to_string();
    assert_eq!(created["refresh_enabled"], true);

    assert_eq!(post_fixture(&server, id, &secret, "update_candidate").await, 200);
    assert!(queued_refreshes(&server, id) > 0, "a webhook upsert queues a refresh");

    let off = server.admin(Method::POST, &format!("/admin/accounts/{id}/refresh/disable")).send().await.expect("send");
    assert_eq!(json_of(off).await["refresh_enabled"], false);
    assert_eq!(queued_refreshes(&server, id), 0, "turning the refresh off empties the queue");
    assert_eq!(post_fixture(&server, id, &secret, "new_candidate_application").await, 200);
    assert_eq!(queued_refreshes(&server, id), 0, "nothing is queued while the refresh is off");
    assert!(server.database.count("SELECT COUNT(*) AS count FROM applications") > 0, "the webhook itself is applied");

    let on = server.admin(Method::POST, &format!("/admin/accounts/{id}/refresh/enable")).send().await.expect("send");
    assert_eq!(json_of(on).await["refresh_enabled"], true);
    assert_eq!(post_fixture(&server, id, &secret, "update_candidate").await, 200);
    assert!(queued_refreshes(&server, id) > 0, "queued again once the refresh is on");

    let missing = server.admin(Method::POST, "/admin/accounts/999999/refresh/disable").send().await.expect("send");
    assert_eq!(missing.status(), 404);
}

#[actix_web::test]
async fn given_secret_not_echoed() {
    let server = TestServer::start().await;
    let created = create_account(&server, json!({"name": "Acme", "webhook_secret": SECRET})).await;
    assert!(created.get("webhook_secret").is_none(), "{created}");
    let id = created["id"].as_i64().expect("id");
    assert_eq!(post_fixture(&server, id, SECRET, "ping").await, 200);
}

#[actix_web::test]
async fn secrets_stored_encrypted() {
    let server = TestServer::start().await;
    let created = create_account(
        &server,
        json!({"name": "Acme", "webhook_secret": SECRET, "harvest_client_id": "client-1", "harvest_client_secret": "harvest-secret-value"}),
    )
    .await;
    assert_eq!(created["has_harvest_credentials"], true);
    assert_eq!(created["harvest_client_id"], "client-1");

    let sealed_rows = server.database.count(
        "SELECT COUNT(*) AS count FROM accounts WHERE webhook_secret LIKE 'v1:%' AND harvest_client_secret LIKE 'v1:%'",
    );
    assert_eq!(sealed_rows, 1);
    let plaintext_rows = server.database.count(&format!(
        "SELECT COUNT(*) AS count FROM accounts WHERE webhook_secret LIKE '%{SECRET}%' OR harvest_client_secret LIKE '%harvest-secret-value%'"
    ));
    assert_eq!(plaintext_rows, 0);

    let mut conn = server.database.db.get().expect("connection");
    let id = created["id"].as_i64().expect("id");
    let credentials = greenhouse_sync::db::accounts::harvest_credentials(&mut conn, id).expect("read").expect("present");
    assert_eq!(credentials.client_secret, "harvest-secret-value");
}

#[actix_web::test]
async fn credentials_set_and_cleared() {
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);
    let path = format!("/admin/accounts/{}/credentials", account.id);

    let set = server
        .admin(Method::PUT, &path)
        .json(&json!({"client_id": "c-2", "client_secret": "s-2", "user_id": "77"}))
        .send()
        .await
        .expect("send");
    assert_eq!(set.status(), 200);
    let body = json_of(set).await;
    assert_eq!(body["has_harvest_credentials"], true);
    assert_eq!(body["harvest_user_id"], "77");
    assert!(!body.to_string().contains("s-2"), "{body}");

    let half = server.admin(Method::PUT, &path).json(&json!({"client_id": "c-3"})).send().await.expect("send");
    assert_eq!(half.status(), 400, "a missing client secret is invalid");
    assert!(json_of(half).await["error"].as_str().unwrap_or_default().contains("invalid JSON body"));

    let cleared = server.admin(Method::DELETE, &path).send().await.expect("send");
    assert_eq!(json_of(cleared).await["has_harvest_credentials"], false);

    let missing = server.admin(Method::PUT, "/admin/accounts/999999/credentials");
    let missing = missing.json(&json!({"client_id": "c", "client_secret": "s"})).send().await.expect("send");
    assert_eq!(missing.status(), 404);
}

#[actix_web::test]
async fn rotation_keeps_old_secret_for_grace() {
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);
    let rotate = format!("/admin/accounts/{}/webhook-secret/rotate", account.id);

    let rotated = server.admin(Method::POST, &rotate).json(&json!({"webhook_secret": "second-secret"})).send().await.expect("send");
    assert_eq!(rotated.status(), 200);
    let body = json_of(rotated).await;
    assert!(body.get("webhook_secret").is_none(), "a given secret is not echoed: {body}");
    let expires = body["previous_secret_expires_at"].as_str().expect("grace end shown");
    let expires = chrono::DateTime::parse_from_rfc3339(expires).expect("RFC 3339");
    let hours = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.1).contains(&hours), "default grace is 24 h, got {hours}");

    assert_eq!(post_fixture(&server, account.id, "second-secret", "ping").await, 200);
    assert_eq!(post_fixture(&server, account.id, SECRET, "ping").await, 200, "old secret valid during grace");

    // Rotating with no grace retires the secret it replaces at once; an empty body generates one.
    let third = server.admin(Method::POST, &rotate).json(&json!({"grace_period_secs": 0})).send().await.expect("send");
    let third = json_of(third).await;
    let generated = third["webhook_secret"].as_str().expect("generated secret shown once").to_string();
    assert_eq!(post_fixture(&server, account.id, &generated, "ping").await, 200);
    assert_eq!(post_fixture(&server, account.id, "second-secret", "ping").await, 401);
    assert_eq!(post_fixture(&server, account.id, SECRET, "ping").await, 401);

    let no_body = server.admin(Method::POST, &rotate).send().await.expect("send");
    assert_eq!(no_body.status(), 200);
    assert!(json_of(no_body).await["webhook_secret"].is_string());

    let too_long = server.admin(Method::POST, &rotate).json(&json!({"grace_period_secs": 400 * 86400})).send().await.expect("send");
    assert_eq!(too_long.status(), 400);
}

#[actix_web::test]
async fn invalid_input_is_400_json() {
    let server = TestServer::start().await;
    let cases = [
        json!({"name": ""}),
        json!({"name": "Acme", "unknown": 1}),
        json!({"name": "Acme", "webhook_secret": ""}),
        json!({"name": "Acme", "harvest_client_id": "only-id"}),
        json!({"name": "Line\nbreak"}),
    ];
    for body in cases {
        let response = server.admin(Method::POST, "/admin/accounts").json(&body).send().await.expect("send");
        assert_eq!(response.status(), 400, "{body}");
        assert!(json_of(response).await["error"].is_string(), "{body}");
    }
    let not_json = server.admin(Method::POST, "/admin/accounts").header("content-type", "application/json").body("{");
    assert_eq!(not_json.send().await.expect("send").status(), 400);
    assert_eq!(account_rows(&server), 0);

    let bad_id = server.admin(Method::GET, "/admin/accounts/abc").send().await.expect("send");
    assert_eq!(bad_id.status(), 404);
    assert!(json_of(bad_id).await["error"].is_string());
    let bad_query = server.admin(Method::GET, "/admin/deliveries?received_after=yesterday").send().await.expect("send");
    assert_eq!(bad_query.status(), 400);
    let bad_limit = server.admin(Method::GET, "/admin/deliveries?limit=0").send().await.expect("send");
    assert_eq!(bad_limit.status(), 400);
    let unknown = server.admin(Method::GET, "/admin/nothing-here").send().await.expect("send");
    assert_eq!(unknown.status(), 404);
    assert!(json_of(unknown).await["error"].as_str().unwrap_or_default().contains("no admin route"));
}

/// Posts a signed delivery whose payload cannot be applied, so it is stored as failed.
async fn post_failing(server: &TestServer, account_id: i64) {
    let body = br#"{"action":"update_candidate","payload":{"candidate":5}}"#;
    assert_eq!(server.post_signed(account_id, SECRET, body).await.status(), 200);
}

#[actix_web::test]
async fn deliveries_listed_with_filters() {
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);
    let other = server.database.add_account("Other", SECRET);
    for name in ["ping", "new_candidate_application", "update_candidate", "job_created"] {
        assert_eq!(post_fixture(&server, account.id, SECRET, name).await, 200);
    }
    post_failing(&server, account.id).await;
    assert_eq!(post_fixture(&server, other.id, SECRET, "job_created").await, 200);

    let list = |query: String| {
        let request = server.admin(Method::GET, &format!("/admin/deliveries{query}"));
        async move { json_of(request.send().await.expect("send")).await }
    };

    let all = list(String::new()).await;
    assert_eq!(all["deliveries"].as_array().map(Vec::len), Some(6));
    assert!(all["next_before_id"].is_null());
    let first = &all["deliveries"][0];
    assert_eq!(first["action"], "job_created", "newest first");
    assert!(first.get("body").is_none(), "the listing leaves bodies out");
    assert_eq!(first["body_purged"], false);

    let of_account = list(format!("?account_id={}", account.id)).await;
    assert_eq!(of_account["deliveries"].as_array().map(Vec::len), Some(5));
    let failed = list(format!("?account_id={}&outcome=failed", account.id)).await;
    assert_eq!(failed["deliveries"].as_array().map(Vec::len), Some(1));
    assert!(failed["deliveries"][0]["error"].as_str().unwrap_or_default().contains("candidate"));
    let jobs = list("?action=job_created".to_string()).await;
    assert_eq!(jobs["deliveries"].as_array().map(Vec::len), Some(2));
    let ignored = list("?outcome=ignored".to_string()).await;
    assert_eq!(ignored["deliveries"][0]["action"], "ping");

    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let after = list(format!("?received_after={future}")).await;
    assert_eq!(after["deliveries"].as_array().map(Vec::len), Some(0));
    let before = list(format!("?received_before={future}")).await;
    assert_eq!(before["deliveries"].as_array().map(Vec::len), Some(6));

    let page_one = list("?limit=4".to_string()).await;
    assert_eq!(page_one["deliveries"].as_array().map(Vec::len), Some(4));
    let next = page_one["next_before_id"].as_i64().expect("more pages");
    let page_two = list(format!("?limit=4&before_id={next}")).await;
    assert_eq!(page_two["deliveries"].as_array().map(Vec::len), Some(2));
    let mut ids: Vec<i64> = [&page_one, &page_two]
        .iter()
        .flat_map(|page| page["deliveries"].as_array().cloned().unwrap_or_default())
        .filter_map(|d| d["id"].as_i64())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 6, "pages do not overlap");

    let bad_outcome = server.admin(Method::GET, "/admin/deliveries?outcome=exploded").send().await.expect("send");
    assert_eq!(bad_outcome.status(), 400);
}

#[actix_web::test]
async fn delivery_shown_with_body() {
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);
    assert_eq!(post_fixture(&server, account.id, SECRET, "job_created").await, 200);
    let listed = json_of(server.admin(Method::GET, "/admin/deliveries").send().await.expect("send")).await;
    let id = listed["deliveries"][0]["id"].as_i64().expect("id");

    let shown = json_of(server.admin(Method::GET, &format!("/admin/deliveries/{id}")).send().await.expect("send")).await;
    assert_eq!(shown["outcome"], "applied");
    assert_eq!(shown["attempts"], 1);
    assert_eq!(shown["body"]["action"], "job_created");
    assert!(shown["body"]["payload"].is_object());

    let missing = server.admin(Method::GET, "/admin/deliveries/999999").send().await.expect("send");
    assert_eq!(missing.status(), 404);
}

#[actix_web::test]
async fn replay_applies_failed_delivery() {
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);
    assert_eq!(post_fixture(&server, account.id, SECRET, "job_created").await, 200);
    let listed = json_of(server.admin(Method::GET, "/admin/deliveries").send().await.expect("send")).await;
    let id = listed["deliveries"][0]["id"].as_i64().expect("id");

    let applied_again = server.admin(Method::POST, &format!("/admin/deliveries/{id}/replay")).send().await.expect("send");
    assert_eq!(applied_again.status(), 409, "an applied delivery is not applied again");
    assert!(json_of(applied_again).await["error"].as_str().unwrap_or_default().contains("applied"));

    // As if applying had failed on receipt, for example in an older version, with the job
    // row never written.
    server.database.execute(&format!("UPDATE webhook_deliveries SET outcome = 'failed', error = 'earlier failure' WHERE id = {id}"));
    server.database.execute("DELETE FROM jobs");

    let replayed = server.admin(Method::POST, &format!("/admin/deliveries/{id}/replay")).send().await.expect("send");
    assert_eq!(replayed.status(), 200);
    let replayed = json_of(replayed).await;
    assert_eq!(replayed["outcome"], "applied");
    assert_eq!(replayed["delivery_id"], id);
    assert_eq!(server.database.count("SELECT COUNT(*) AS count FROM jobs"), 1, "the job is written by the replay");

    let shown = json_of(server.admin(Method::GET, &format!("/admin/deliveries/{id}")).send().await.expect("send")).await;
    assert_eq!(shown["outcome"], "applied");
    assert_eq!(shown["attempts"], 2);
    assert!(shown["error"].is_null());
    assert!(shown["applied_at"].is_string());

    let missing = server.admin(Method::POST, "/admin/deliveries/999999/replay").send().await.expect("send");
    assert_eq!(missing.status(), 404);
}

#[actix_web::test]
async fn replay_failed_of_account() {
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);
    let other = server.database.add_account("Other", SECRET);
    post_failing(&server, account.id).await;
    post_failing(&server, account.id).await;
    post_failing(&server, other.id).await;
    assert_eq!(post_fixture(&server, account.id, SECRET, "job_created").await, 200);
    server.database.execute("UPDATE webhook_deliveries SET outcome = 'failed' WHERE action = 'job_created'");
    server.database.execute("DELETE FROM jobs");

    let path = format!("/admin/accounts/{}/deliveries/replay-failed", account.id);
    let batch = json_of(server.admin(Method::POST, &path).send().await.expect("send")).await;
    assert_eq!(batch["results"].as_array().map(Vec::len), Some(3));
    assert_eq!(batch["applied"], 1);
    assert_eq!(batch["still_failing"], 2);
    assert_eq!(batch["remaining"], 2, "the broken payloads stay failed");
    assert_eq!(server.database.count("SELECT COUNT(*) AS count FROM jobs"), 1);

    let other_failed = server.database.count(&format!(
        "SELECT COUNT(*) AS count FROM webhook_deliveries WHERE account_id = {} AND attempts = 1 AND outcome = 'failed'",
        other.id
    ));
    assert_eq!(other_failed, 1, "another account's deliveries are left alone");

    let limited = json_of(server.admin(Method::POST, &format!("{path}?limit=1")).send().await.expect("send")).await;
    assert_eq!(limited["results"].as_array().map(Vec::len), Some(1));

    let unknown = server.admin(Method::POST, "/admin/accounts/999999/deliveries/replay-failed").send().await.expect("send");
    assert_eq!(unknown.status(), 404);
}

#[actix_web::test]
async fn retention_purges_old_bodies() {
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);
    for name in ["job_created", "job_updated", "ping"] {
        assert_eq!(post_fixture(&server, account.id, SECRET, name).await, 200);
    }
    post_failing(&server, account.id).await;
    post_failing(&server, account.id).await;

    // 40 days ago: past the 30-day period, but failed bodies are kept for 60 days.
    let old = (chrono::Utc::now() - chrono::Duration::days(40)).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let older = (chrono::Utc::now() - chrono::Duration::days(70)).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    server.database.execute(&format!(
        "UPDATE webhook_deliveries SET received_at = '{old}', applied_at = '{old}' WHERE action IN ('job_created', 'ping')"
    ));
    server.database.execute(&format!("UPDATE webhook_deliveries SET received_at = '{old}' WHERE outcome = 'failed'"));
    server.database.execute(&format!(
        "UPDATE webhook_deliveries SET received_at = '{older}' WHERE id = (SELECT MIN(id) FROM webhook_deliveries WHERE outcome = 'failed')"
    ));

    let period = std::time::Duration::from_secs(30 * 86400);
    let purged = greenhouse_sync::retention::purge_once(&server.database.db, period).await.expect("purge");
    assert_eq!(purged, 3, "two old applied bodies and the failed one past twice the period");
    assert_eq!(server.database.count("SELECT COUNT(*) AS count FROM webhook_deliveries"), 5, "rows are kept");
    let kept = server.database.count("SELECT COUNT(*) AS count FROM webhook_deliveries WHERE body IS NOT NULL");
    assert_eq!(kept, 2, "the recent delivery and the younger failed one keep their bodies");
    assert_eq!(greenhouse_sync::retention::purge_once(&server.database.db, period).await.expect("purge"), 0);

    let listed = json_of(server.admin(Method::GET, "/admin/deliveries?outcome=failed").send().await.expect("send")).await;
    let purged_failed = listed["deliveries"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["body_purged"] == true).cloned())
        .expect("a purged failed delivery");
    let id = purged_failed["id"].as_i64().expect("id");
    let replay = server.admin(Method::POST, &format!("/admin/deliveries/{id}/replay")).send().await.expect("send");
    assert_eq!(replay.status(), 409);
    assert!(json_of(replay).await["error"].as_str().unwrap_or_default().contains("retention"));
}

/// Collects (method, path) pairs from an OpenAPI document.
fn documented_routes(document: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for method in operations.as_object().expect("operations").keys() {
            routes.insert((method.to_uppercase(), path.clone()));
        }
    }
    routes
}

#[actix_web::test]
async fn openapi_matches_routes() {
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);
    let response = server.admin(Method::GET, "/admin/openapi.json").send().await.expect("send");
    assert_eq!(response.status(), 200);
    let document = json_of(response).await;
    assert!(document["openapi"].as_str().unwrap_or_default().starts_with("3."), "{}", document["openapi"]);
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());

    let expected: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented_routes(&document), expected);

    // Every documented route reaches a handler, because only the fallback returns "no admin route".
    for (name, path) in ROUTES {
        let response = server.admin(method(name), &concrete(path, account.id)).json(&json!({})).send().await.expect("send");
        let status = response.status();
        if status == 200 && path.ends_with("/stream") {
            // An open stream's body does not end, and its 200 already shows that it is routed.
            continue;
        }
        let body = response.text().await.unwrap_or_default();
        assert!(!body.contains("no admin route"), "{name} {path} is documented but not routed: {status} {body}");
    }
}
