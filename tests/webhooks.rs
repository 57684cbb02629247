//! Webhook intake over real HTTP, on SQLite by default and on PostgreSQL when
//! `TEST_DATABASE_URL` is set. Payloads are Greenhouse's published examples, encoded and
//! signed the way Greenhouse sends them.

mod support;

use greenhouse_sync::greenhouse::Resource;
use serde_json::{Value, json};
use support::{TestServer, greenhouse_bytes, same_instant, webhook_fixture, webhook_fixture_names};

const SECRET: &str = "test-webhook-secret";

/// Starts a server with one account and posts the named fixtures in order, asserting 200.
async fn server_with(fixtures: &[&str]) -> (TestServer, i64) {
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);
    for name in fixtures {
        let response = server.post_signed(account.id, SECRET, &greenhouse_bytes(&webhook_fixture(name))).await;
        assert_eq!(response.status(), 200, "{name}: {}", response.text().await.unwrap_or_default());
    }
    (server, account.id)
}

fn record(server: &TestServer, account_id: i64, resource: Resource, id: i64) -> Value {
    server
        .database
        .record(account_id, resource, id)
        .unwrap_or_else(|| panic!("{resource} {id} should be stored"))
}

/// Asserts that each column contains the expected JSON value.
fn assert_columns(row: &Value, expected: &[(&str, Value)]) {
    for (column, value) in expected {
        assert_eq!(&row[column], value, "column {column} of {}", row["id"]);
    }
}

/// Asserts that each timestamp column contains the expected instant.
fn assert_times(row: &Value, expected: &[(&str, &str)]) {
    for (column, instant) in expected {
        assert!(same_instant(&row[column], instant), "column {column} of {}: {} != {instant}", row["id"], row[column]);
    }
}

fn assert_deleted(row: &Value) {
    assert!(row["deleted_at"].is_string(), "{} should be marked deleted: {row}", row["id"]);
}

fn assert_live(row: &Value) {
    assert!(row["deleted_at"].is_null(), "{} should not be deleted: {row}", row["id"]);
}

fn deliveries(server: &TestServer) -> i64 {
    server.database.count("SELECT COUNT(*) AS count FROM webhook_deliveries")
}

fn rows_in(server: &TestServer, table: &str) -> i64 {
    server.database.count(&format!("SELECT COUNT(*) AS count FROM {table}"))
}

fn synced_rows(server: &TestServer) -> i64 {
    Resource::ALL.iter().map(|resource| rows_in(server, resource.name())).sum()
}

#[actix_web::test]
async fn every_fixture_is_accepted() {
    let names = webhook_fixture_names();
    assert_eq!(names.len(), 30, "29 documented actions plus ping");
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);

    for name in &names {
        let response = server.post_signed(account.id, SECRET, &greenhouse_bytes(&webhook_fixture(name))).await;
        assert_eq!(response.status(), 200, "{name}");
        let body: Value = response.json().await.expect("JSON answer");
        let expected = if name == "ping" { "ignored" } else { "applied" };
        assert_eq!(body["outcome"], expected, "{name}: {body}");
    }
    assert_eq!(deliveries(&server), 30);
}

#[actix_web::test]
async fn new_candidate_application_stores_application_candidate_and_job() {
    let (server, account) = server_with(&["new_candidate_application"]).await;

    let application = record(&server, account, Resource::Applications, 71980812);
    assert_columns(
        &application,
        &[
            ("candidate_id", json!(60304594)),
            ("job_id", json!(274075)),
            ("prospect", json!(false)),
            ("status", json!("active")),
            ("job_interview_stage_id", json!(2944102)),
            ("stage_name", json!("Preliminary Phone Screen")),
            ("source_id", json!(16)),
            ("rejected_at", Value::Null),
        ],
    );
    assert_times(
        &application,
        &[("created_at", "2017-10-27T14:44:43Z"), ("last_activity_at", "2017-10-27T14:44:42Z"), ("version_at", "2017-10-27T14:44:42Z")],
    );
    assert_eq!(application["data"]["custom_fields"]["custom_boolean_test"]["type"], "boolean");
    assert!(application["data"].get("candidate").is_none(), "the nested candidate is stored as its own row");
    assert_live(&application);

    let candidate = record(&server, account, Resource::Candidates, 60304594);
    assert_columns(
        &candidate,
        &[
            ("first_name", json!("Jane")),
            ("last_name", json!("Smith")),
            ("title", json!("Manager")),
            ("company", json!("Current Company Co.")),
            ("private", json!(false)),
            ("can_email", json!(true)),
        ],
    );
    assert_times(&candidate, &[("created_at", "2017-10-27T14:44:42Z")]);
    assert_eq!(candidate["data"]["email_addresses"][1]["value"], "person@example.com");
    assert_eq!(candidate["data"]["addresses"][0]["value"], "123 Test Street\nNew York, NY 10001");

    let job = record(&server, account, Resource::Jobs, 274075);
    assert_columns(
        &job,
        &[("name", json!("Data Scientist")), ("requisition_id", json!("ABC")), ("status", json!("open")), ("department_id", json!(8717)), ("confidential", json!(false))],
    );
    assert_times(&job, &[("opened_at", "2016-07-20T16:00:00Z"), ("created_at", "2016-07-14T17:21:30Z")]);
    assert_eq!(job["closed_at"], Value::Null);
    assert_eq!(job["data"]["office_ids"], json!([16478]));

    let department = record(&server, account, Resource::Departments, 8717);
    assert_columns(&department, &[("name", json!("Data Science")), ("external_id", json!("ex-dept-1"))]);
    let office = record(&server, account, Resource::Offices, 16478);
    assert_columns(&office, &[("name", json!("London")), ("location", json!("London, United Kingdom"))]);
}

#[actix_web::test]
async fn prospect_application_has_no_stage() {
    let (server, account) = server_with(&["new_prospect_application"]).await;
    let application = record(&server, account, Resource::Applications, 979554);
    assert_columns(
        &application,
        &[("prospect", json!(true)), ("candidate_id", json!(968190)), ("job_id", json!(371417)), ("job_interview_stage_id", Value::Null), ("stage_name", Value::Null)],
    );
    let candidate = record(&server, account, Resource::Candidates, 968190);
    assert_columns(&candidate, &[("first_name", json!("Trisha")), ("last_name", json!("Troy"))]);
}

#[actix_web::test]
async fn application_updated_without_jobs_clears_job() {
    let (server, account) = server_with(&["application_updated"]).await;
    let application = record(&server, account, Resource::Applications, 22202940);
    assert_columns(
        &application,
        &[("job_id", Value::Null), ("candidate_id", json!(13857579)), ("job_interview_stage_id", json!(711020)), ("stage_name", json!("Application Review")), ("source_id", json!(2))],
    );
    let candidate = record(&server, account, Resource::Candidates, 13857579);
    assert_columns(&candidate, &[("first_name", json!("Hank")), ("last_name", json!("Von Diablo"))]);
}

#[actix_web::test]
async fn stage_change_moves_application_stage() {
    let (server, account) = server_with(&["candidate_stage_change"]).await;
    let application = record(&server, account, Resource::Applications, 265277);
    assert_columns(&application, &[("job_interview_stage_id", json!(71416)), ("stage_name", json!("Assessment")), ("job_id", json!(3485))]);
    assert_times(&application, &[("last_activity_at", "2015-02-09T16:38:36Z"), ("created_at", "2013-03-22T00:00:00Z")]);
    assert_columns(&record(&server, account, Resource::Jobs, 3485), &[("name", json!("Designer")), ("department_id", json!(237))]);
    assert_columns(&record(&server, account, Resource::Departments, 237), &[("name", json!("Community"))]);
    assert!(server.database.record(account, Resource::Offices, 54).is_some());
}

#[actix_web::test]
async fn hire_stores_application_job_and_offer() {
    let (server, account) = server_with(&["hire_candidate"]).await;
    let application = record(&server, account, Resource::Applications, 46194062);
    assert_columns(&application, &[("job_id", json!(323753)), ("candidate_id", json!(35897443)), ("source_id", json!(25))]);

    let job = record(&server, account, Resource::Jobs, 323753);
    assert_columns(&job, &[("name", json!("Developer"))]);
    assert_times(&job, &[("opened_at", "2014-11-20T22:49:14Z"), ("closed_at", "2014-11-25T22:49:14Z")]);

    let offer = record(&server, account, Resource::Offers, 506409);
    assert_columns(
        &offer,
        &[("application_id", json!(46194062)), ("candidate_id", json!(35897443)), ("version", json!(2)), ("sent_on", json!("2014-11-10")), ("starts_on", json!("2015-01-23"))],
    );
    assert_eq!(offer["data"]["custom_fields"]["salary"]["value"]["amount"], 80000);
}

#[actix_web::test]
async fn reject_then_unreject_then_unhire() {
    let (server, account) = server_with(&["reject_candidate"]).await;
    let rejected = record(&server, account, Resource::Applications, 265293);
    assert_columns(&rejected, &[("status", json!("rejected")), ("stage_name", json!("Offer")), ("job_id", json!(371417))]);
    assert_times(&rejected, &[("rejected_at", "2015-02-11T15:50:41Z")]);
    assert_eq!(rejected["data"]["rejection_reason"]["name"], "Too Junior");

    // Same last_activity_at as the rejection: an equal version applies.
    server.post_signed(account, SECRET, &greenhouse_bytes(&webhook_fixture("unreject_candidate"))).await;
    let unrejected = record(&server, account, Resource::Applications, 265293);
    assert_columns(&unrejected, &[("status", json!("active")), ("rejected_at", Value::Null)]);
    assert_eq!(unrejected["data"]["rejection_reason"], Value::Null, "an explicit null clears the stored value");

    server.post_signed(account, SECRET, &greenhouse_bytes(&webhook_fixture("unhire_candidate"))).await;
    let unhired = record(&server, account, Resource::Applications, 265293);
    assert_columns(&unhired, &[("status", json!("active")), ("job_interview_stage_id", json!(678901)), ("stage_name", json!("Application Review"))]);
    assert_times(&unhired, &[("version_at", "2015-03-18T20:28:09Z")]);
}

#[actix_web::test]
async fn update_candidate_stores_candidate() {
    let (server, account) = server_with(&["update_candidate"]).await;
    let candidate = record(&server, account, Resource::Candidates, 15696179);
    assert_columns(
        &candidate,
        &[("first_name", json!("Ronald")), ("last_name", json!("Ronnie")), ("title", json!("Director of Strategic Initiatives")), ("company", json!("Example"))],
    );
    assert_eq!(candidate["data"]["external_id"], "946aa514658");
    assert_eq!(candidate["data"]["tags"], json!(["foo", "File Import"]));
    assert_eq!(candidate["version_at"], Value::Null, "the payload carries no updated_at");
}

#[actix_web::test]
async fn job_created_stores_job_departments_and_offices() {
    let (server, account) = server_with(&["job_created"]).await;
    let job = record(&server, account, Resource::Jobs, 371417);
    assert_columns(&job, &[("name", json!("Software Engineer")), ("status", json!("open")), ("department_id", json!(7)), ("requisition_id", Value::Null)]);
    assert_eq!(job["data"]["office_ids"], json!([13, 14]));
    assert_eq!(job["data"]["custom_fields"]["salary_range"]["value"]["max_value"], "20000.0");
    assert_columns(&record(&server, account, Resource::Offices, 14), &[("name", json!("St. Louis")), ("location", Value::Null)]);
    assert_columns(&record(&server, account, Resource::Departments, 7), &[("name", json!("Technology"))]);
}

#[actix_web::test]
async fn job_updated_and_approved_store_decoded_text() {
    let (server, account) = server_with(&["job_approved", "job_updated"]).await;
    let job = record(&server, account, Resource::Jobs, 100445);
    assert_columns(&job, &[("name", json!("Assistant Store Manager, NYC")), ("department_id", json!(74))]);
    assert_eq!(job["data"]["notes"], "<p>Looking for the best!</p>", "\\u003c escapes are stored decoded");
    assert!(job["data"].get("approval_flow").is_none());
}

#[actix_web::test]
async fn job_posts_are_versioned_by_updated_at() {
    let (server, account) = server_with(&["job_post_created", "job_post_updated"]).await;
    let created = record(&server, account, Resource::JobPosts, 1815002);
    assert_columns(&created, &[("title", json!("A Cool Job")), ("job_id", json!(1842002)), ("live", json!(false)), ("internal", json!(false))]);
    assert_times(&created, &[("updated_at", "2017-10-12T15:06:32.691Z"), ("version_at", "2017-10-12T15:06:32.691Z")]);
    assert_eq!(created["data"]["content"], "<p>Hey, this is a neat job. You should apply!</p>");

    let updated = record(&server, account, Resource::JobPosts, 1813002);
    assert_columns(&updated, &[("title", json!("A Cool Job"))]);
    assert_eq!(updated["data"]["location"], "At a Cool Place");
    assert_times(&updated, &[("version_at", "2017-10-12T18:29:08.399Z")]);
}

#[actix_web::test]
async fn offers_map_status_and_dates() {
    let (server, account) = server_with(&["offer_created"]).await;
    let offer = record(&server, account, Resource::Offers, 12345);
    assert_columns(
        &offer,
        &[
            ("application_id", json!(234556)),
            ("job_id", json!(45678)),
            ("version", json!(1)),
            ("status", json!("Accepted")),
            ("sent_on", json!("2013-03-22")),
            ("starts_on", json!("04/15/2013")),
        ],
    );
    assert_times(&offer, &[("resolved_at", "2013-03-25T00:00:00Z")]);

    server.post_signed(account, SECRET, &greenhouse_bytes(&webhook_fixture("offer_approved"))).await;
    assert_columns(&record(&server, account, Resource::Offers, 12345), &[("status", json!("Accepted"))]);
    server.post_signed(account, SECRET, &greenhouse_bytes(&webhook_fixture("offer_updated"))).await;
    assert_columns(&record(&server, account, Resource::Offers, 12345), &[("status", json!("Deprecated")), ("version", json!(2))]);
}

#[actix_web::test]
async fn deletion_actions_mark_records_deleted() {
    let cases = [
        ("delete_application", Resource::Applications, 46194062),
        ("department_deleted", Resource::Departments, 106),
        ("interview_deleted", Resource::Interviews, 31087450),
        ("job_deleted", Resource::Jobs, 209256),
        ("job_interview_stage_deleted", Resource::JobInterviewStages, 430608),
        ("job_post_deleted", Resource::JobPosts, 258341),
        ("offer_deleted", Resource::Offers, 506406),
        ("office_deleted", Resource::Offices, 16492),
        ("scorecard_deleted", Resource::Scorecards, 6036088),
    ];
    let (server, account) = server_with(&cases.map(|(name, _, _)| name)).await;
    for (name, resource, id) in cases {
        let row = server.database.record(account, resource, id).unwrap_or_else(|| panic!("{name}: tombstone for {resource} {id}"));
        assert_deleted(&row);
    }
}

#[actix_web::test]
async fn delete_candidate_deletes_listed_applications() {
    let (server, account) = server_with(&["delete_candidate"]).await;
    assert_deleted(&record(&server, account, Resource::Candidates, 37031511));
    assert_deleted(&record(&server, account, Resource::Applications, 46196263));
    assert_deleted(&record(&server, account, Resource::Applications, 46196258));
}

/// The `new_candidate_application` fixture rewritten for another candidate and application.
fn application_for(candidate_id: i64, application_id: i64) -> Value {
    let mut body = webhook_fixture("new_candidate_application");
    body["payload"]["application"]["id"] = json!(application_id);
    body["payload"]["application"]["candidate"]["id"] = json!(candidate_id);
    body
}

#[actix_web::test]
async fn merge_moves_applications_to_new_candidate() {
    let (server, account) = server_with(&[]).await;
    server.post_signed(account, SECRET, &greenhouse_bytes(&application_for(37031511, 501))).await;
    server.post_signed(account, SECRET, &greenhouse_bytes(&webhook_fixture("merge_candidate"))).await;

    let old = record(&server, account, Resource::Candidates, 37031511);
    assert_deleted(&old);
    assert_eq!(old["merged_into_id"], 457456);
    let application = record(&server, account, Resource::Applications, 501);
    assert_eq!(application["candidate_id"], 457456);
    assert_eq!(application["data"]["candidate_id"], 457456);
    assert_live(&application);
}

#[actix_web::test]
async fn anonymize_clears_named_fields_only() {
    let (server, account) = server_with(&[]).await;
    server.post_signed(account, SECRET, &greenhouse_bytes(&application_for(37031511, 502))).await;
    server.post_signed(account, SECRET, &greenhouse_bytes(&webhook_fixture("candidate_anonymized"))).await;

    let candidate = record(&server, account, Resource::Candidates, 37031511);
    assert_columns(&candidate, &[("first_name", Value::Null), ("last_name", Value::Null), ("title", Value::Null), ("company", json!("Current Company Co."))]);
    assert_eq!(candidate["data"]["first_name"], Value::Null);
    assert_eq!(candidate["data"]["company"], "Current Company Co.");
}

#[actix_web::test]
async fn ping_stores_nothing_but_the_delivery() {
    let (server, _account) = server_with(&["ping"]).await;
    assert_eq!(synced_rows(&server), 0);
    assert_eq!(deliveries(&server), 1);
}

#[actix_web::test]
async fn unknown_action_is_kept_for_replay() {
    let (server, account) = server_with(&[]).await;
    let body = greenhouse_bytes(&json!({"action": "candidate_teleported", "payload": {"id": 1}}));
    let response = server.post_signed(account, SECRET, &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["outcome"], "unsupported");
    assert_eq!(server.database.count("SELECT COUNT(*) AS count FROM webhook_deliveries WHERE body IS NOT NULL"), 1);
}

/// Bad requests must get their status and leave the database as it was.
async fn assert_rejected(server: &TestServer, response: reqwest::Response, status: u16, message_part: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("errors are JSON");
    let message = body["error"].as_str().expect("error message");
    assert!(message.contains(message_part), "'{message}' should mention '{message_part}'");
    assert_eq!(deliveries(server), 0, "a rejected request stores no delivery");
    assert_eq!(synced_rows(server), 0, "a rejected request writes no record");
}

#[actix_web::test]
async fn wrong_secret_is_rejected() {
    let (server, account) = server_with(&[]).await;
    let body = greenhouse_bytes(&webhook_fixture("update_candidate"));
    let response = server.post_signed(account, "other-secret", &body).await;
    assert_rejected(&server, response, 401, "does not match").await;
}

#[actix_web::test]
async fn missing_signature_is_rejected() {
    let (server, account) = server_with(&[]).await;
    let body = greenhouse_bytes(&webhook_fixture("update_candidate"));
    let response = server.post_webhook(account, &body, None).await;
    assert_rejected(&server, response, 401, "missing Signature").await;
}

#[actix_web::test]
async fn equals_form_signature_is_rejected() {
    let (server, account) = server_with(&[]).await;
    let body = greenhouse_bytes(&webhook_fixture("update_candidate"));
    let header = greenhouse_sync::webhooks::signature::sign(SECRET.as_bytes(), &body).replace(' ', "=");
    let response = server.post_webhook(account, &body, Some(header)).await;
    assert_rejected(&server, response, 401, "malformed").await;
}

#[actix_web::test]
async fn signature_of_reserialised_body_is_rejected() {
    let (server, account) = server_with(&[]).await;
    let fixture = webhook_fixture("job_approved");
    let pretty = serde_json::to_vec_pretty(&fixture).expect("serialise");
    let header = greenhouse_sync::webhooks::signature::sign(SECRET.as_bytes(), &pretty);
    let response = server.post_webhook(account, &greenhouse_bytes(&fixture), Some(header)).await;
    assert_rejected(&server, response, 401, "does not match").await;
}

#[actix_web::test]
async fn other_accounts_secret_is_rejected() {
    let (server, account) = server_with(&[]).await;
    let other = server.database.add_account("Other", "other-account-secret");
    let body = greenhouse_bytes(&webhook_fixture("update_candidate"));
    let response = server.post_signed(account, "other-account-secret", &body).await;
    assert_eq!(response.status(), 401);
    let response = server.post_signed(other.id, SECRET, &body).await;
    assert_rejected(&server, response, 401, "does not match").await;
}

#[actix_web::test]
async fn body_that_is_not_json_is_rejected() {
    let (server, account) = server_with(&[]).await;
    let response = server.post_signed(account, SECRET, b"action=ping").await;
    assert_rejected(&server, response, 400, "not valid JSON").await;
}

#[actix_web::test]
async fn body_without_action_is_rejected() {
    let (server, account) = server_with(&[]).await;
    let response = server.post_signed(account, SECRET, br#"{"payload":{}}"#).await;
    assert_rejected(&server, response, 400, "no 'action'").await;
}

#[actix_web::test]
async fn oversized_body_is_rejected() {
    let (server, account) = server_with(&[]).await;
    let mut body = webhook_fixture("update_candidate");
    body["payload"]["candidate"]["notes"] = json!("x".repeat(support::TEST_MAX_BODY_BYTES));
    let response = server.post_signed(account, SECRET, &greenhouse_bytes(&body)).await;
    assert_rejected(&server, response, 413, "larger than the limit").await;
}

#[actix_web::test]
async fn large_candidate_under_limit_is_accepted() {
    let (server, account) = server_with(&[]).await;
    let mut body = webhook_fixture("update_candidate");
    body["payload"]["candidate"]["notes"] = json!("Long interview notes. ".repeat(100_000));
    let response = server.post_signed(account, SECRET, &greenhouse_bytes(&body)).await;
    assert_eq!(response.status(), 200);
    let candidate = record(&server, account, Resource::Candidates, 15696179);
    assert_eq!(candidate["data"]["notes"].as_str().map(str::len), Some(22 * 100_000));
}

#[actix_web::test]
async fn unknown_account_is_not_found() {
    let (server, _account) = server_with(&[]).await;
    let body = greenhouse_bytes(&webhook_fixture("ping"));
    let response = server.post_signed(999_999, SECRET, &body).await;
    assert_rejected(&server, response, 404, "not found").await;
}

#[actix_web::test]
async fn account_path_that_is_not_an_id_is_not_found() {
    let (server, _account) = server_with(&[]).await;
    for path in ["abc", "1%2F..%2F2", "-1", "0", "99999999999999999999"] {
        let response = server
            .http
            .post(server.url(&format!("/webhooks/greenhouse/{path}")))
            .header("Signature", "sha256 00")
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(deliveries(&server), 0);
}

#[actix_web::test]
async fn same_delivery_twice_has_one_effect() {
    let (server, account) = server_with(&[]).await;
    let body = greenhouse_bytes(&webhook_fixture("new_candidate_application"));
    let header = greenhouse_sync::webhooks::signature::sign(SECRET.as_bytes(), &body);
    let send = |event_id: &'static str| {
        server
            .http
            .post(server.url(&format!("/webhooks/greenhouse/{account}")))
            .header("Signature", header.clone())
            .header("Greenhouse-Event-ID", event_id)
            .body(body.clone())
            .send()
    };

    let first: Value = send("evt-1").await.expect("send").json().await.expect("JSON");
    let retry: Value = send("evt-1").await.expect("send").json().await.expect("JSON");
    let resent: Value = send("evt-2").await.expect("send").json().await.expect("JSON");

    assert_eq!(first["outcome"], "applied");
    assert_eq!(retry["outcome"], "duplicate");
    assert_eq!(resent["outcome"], "applied");
    assert_eq!(rows_in(&server, "applications"), 1);
    assert_eq!(rows_in(&server, "candidates"), 1);
    assert_eq!(deliveries(&server), 3);
    assert_columns(&record(&server, account, Resource::Applications, 71980812), &[("status", json!("active"))]);
}

#[actix_web::test]
async fn older_payload_does_not_overwrite_newer() {
    let (server, account) = server_with(&[]).await;
    let mut newer = webhook_fixture("application_updated");
    newer["payload"]["application"]["last_activity_at"] = json!("2016-01-01T00:00:00Z");
    newer["payload"]["application"]["status"] = json!("hired");
    let mut older = webhook_fixture("application_updated");
    older["payload"]["application"]["last_activity_at"] = json!("2015-12-31T23:59:59.999+00:00");
    older["payload"]["application"]["status"] = json!("rejected");

    server.post_signed(account, SECRET, &greenhouse_bytes(&newer)).await;
    let answer: Value = server.post_signed(account, SECRET, &greenhouse_bytes(&older)).await.json().await.expect("JSON");
    assert_eq!(answer["outcome"], "applied");
    assert_eq!(answer["effects"]["kept"], 1, "the guard keeps the newer application");

    let application = record(&server, account, Resource::Applications, 22202940);
    assert_columns(&application, &[("status", json!("hired"))]);
    assert_times(&application, &[("version_at", "2016-01-01T00:00:00Z")]);
}

#[actix_web::test]
async fn deleted_record_stays_deleted_after_update() {
    let (server, account) = server_with(&[]).await;
    let mut delete = webhook_fixture("delete_application");
    delete["payload"]["application"]["id"] = json!(22202940);
    server.post_signed(account, SECRET, &greenhouse_bytes(&delete)).await;
    server.post_signed(account, SECRET, &greenhouse_bytes(&webhook_fixture("application_updated"))).await;

    let application = record(&server, account, Resource::Applications, 22202940);
    assert_deleted(&application);
    assert_eq!(application["status"], Value::Null, "the update after the delete was not applied");
}

#[actix_web::test]
async fn partial_payload_keeps_absent_fields() {
    let (server, account) = server_with(&["update_candidate"]).await;
    let partial = json!({"action": "update_candidate", "payload": {"candidate": {"id": 15696179, "title": "CTO", "company": null}}});
    server.post_signed(account, SECRET, &greenhouse_bytes(&partial)).await;

    let candidate = record(&server, account, Resource::Candidates, 15696179);
    assert_columns(&candidate, &[("title", json!("CTO")), ("company", Value::Null), ("first_name", json!("Ronald"))]);
    assert_eq!(candidate["data"]["external_id"], "946aa514658", "absent fields stay in the JSON too");
    assert_eq!(candidate["data"]["company"], Value::Null);
}

#[actix_web::test]
async fn large_ids_offsets_and_escapes_survive() {
    let (server, account) = server_with(&[]).await;
    let candidate_id: i64 = 9_007_199_254_740_993; // 2^53 + 1: not representable as f64
    let application_id: i64 = 4_294_967_297; // 2^32 + 1
    let mut body = application_for(candidate_id, application_id);
    body["payload"]["application"]["candidate"]["first_name"] = json!("Zoë 🚀 <b>&</b>");
    body["payload"]["application"]["last_activity_at"] = json!("2017-10-27T16:44:42.123+02:00");
    body["payload"]["application"]["applied_at"] = json!("2017-10-27T14:44:43.5Z");
    let encoded = greenhouse_bytes(&body);
    assert!(String::from_utf8_lossy(&encoded).contains("\\u003cb\\u003e\\u0026"));
    server.post_signed(account, SECRET, &encoded).await;

    let application = record(&server, account, Resource::Applications, application_id);
    assert_eq!(application["id"].as_i64(), Some(application_id));
    assert_eq!(application["candidate_id"].as_i64(), Some(candidate_id));
    assert_eq!(application["data"]["candidate_id"].as_i64(), Some(candidate_id));
    assert_times(&application, &[("last_activity_at", "2017-10-27T14:44:42.123Z"), ("created_at", "2017-10-27T14:44:43.5Z")]);
    assert!(application["last_activity_at"].as_str().is_some_and(|t| t.ends_with('Z')), "stored in UTC");

    let candidate = record(&server, account, Resource::Candidates, candidate_id);
    assert_eq!(candidate["first_name"], "Zoë 🚀 <b>&</b>");
    assert_eq!(candidate["data"]["first_name"], "Zoë 🚀 <b>&</b>");
}

#[actix_web::test]
async fn unexpected_shape_is_stored_as_failed() {
    let (server, account) = server_with(&[]).await;
    let mut body = webhook_fixture("new_candidate_application");
    body["payload"]["application"]["last_activity_at"] = json!(12345);
    let response = server.post_signed(account, SECRET, &greenhouse_bytes(&body)).await;
    assert_eq!(response.status(), 200, "accepted so that Greenhouse does not retry a payload that cannot apply");
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["outcome"], "failed");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("last_activity_at")), "{answer}");

    assert_eq!(synced_rows(&server), 0, "no partial writes remain");
    let failed = server.database.count("SELECT COUNT(*) AS count FROM webhook_deliveries WHERE outcome = 'failed' AND body IS NOT NULL AND error IS NOT NULL");
    assert_eq!(failed, 1, "the delivery is kept for replay");
}

#[actix_web::test]
async fn id_as_string_is_stored_as_failed() {
    let (server, account) = server_with(&[]).await;
    let body = json!({"action": "update_candidate", "payload": {"candidate": {"id": "15696179", "first_name": "A"}}});
    let answer: Value = server.post_signed(account, SECRET, &greenhouse_bytes(&body)).await.json().await.expect("JSON");
    assert_eq!(answer["outcome"], "failed");
    assert_eq!(synced_rows(&server), 0);
}

#[actix_web::test]
async fn concurrent_deliveries_are_all_stored() {
    const DELIVERIES: i64 = 300;
    let (server, account) = server_with(&[]).await;

    let bodies: Vec<Vec<u8>> =
        (0..DELIVERIES).map(|n| greenhouse_bytes(&application_for(1_000_000 + n, 2_000_000 + n))).collect();
    let pending = bodies.iter().map(|body| server.post_signed(account, SECRET, body));
    let responses = futures_util::future::join_all(pending).await;

    for response in &responses {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(deliveries(&server), DELIVERIES);
    assert_eq!(rows_in(&server, "applications"), DELIVERIES);
    assert_eq!(rows_in(&server, "candidates"), DELIVERIES);
    assert_eq!(rows_in(&server, "jobs"), 1);
}

/// Reads a histogram's `_sum` and `_count` from the server's `/metrics`.
async fn histogram_totals(server: &TestServer, name: &str) -> (f64, f64) {
    let text = server.http.get(server.url("/metrics")).send().await.expect("send").text().await.expect("metrics text");
    let value_of = |series: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value_of(&format!("{name}_sum ")), value_of(&format!("{name}_count ")))
}

/// On SQLite, deliveries that arrive together are stored by one writer in shared
/// transactions, so there are fewer commits than deliveries.
#[actix_web::test]
async fn concurrent_deliveries_share_commits_on_sqlite() {
    const DELIVERIES: i64 = 100;
    const BATCHES: &str = "greenhouse_sync_webhook_batch_deliveries";
    let (server, account) = server_with(&[]).await;
    if server.database.db.backend() != greenhouse_sync::db::Backend::Sqlite {
        return;
    }

    let (sum_before, count_before) = histogram_totals(&server, BATCHES).await;
    let bodies: Vec<Vec<u8>> =
        (0..DELIVERIES).map(|n| greenhouse_bytes(&application_for(3_000_000 + n, 4_000_000 + n))).collect();
    let responses = futures_util::future::join_all(bodies.iter().map(|body| server.post_signed(account, SECRET, body))).await;
    assert!(responses.iter().all(|response| response.status() == 200));

    // Other tests of this binary may store deliveries at the same time; they only add to
    // both totals.
    let (sum_after, count_after) = histogram_totals(&server, BATCHES).await;
    let (stored, commits) = (sum_after - sum_before, count_after - count_before);
    assert!(stored >= DELIVERIES as f64, "{stored} deliveries counted in batches");
    assert!(commits < stored, "{commits} commits for {stored} deliveries");
    assert_eq!(rows_in(&server, "applications"), DELIVERIES);
}

#[actix_web::test]
async fn health_and_readiness_answer() {
    let (server, _account) = server_with(&[]).await;
    let health = server.http.get(server.url("/healthz")).send().await.expect("send");
    assert_eq!(health.status(), 200);
    let ready = server.http.get(server.url("/readyz")).send().await.expect("send");
    assert_eq!(ready.status(), 200);
}
