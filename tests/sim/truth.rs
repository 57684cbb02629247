//! Ground truth and mutations.

use greenhouse_sync::sim::{SimConfig, Sizes};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Client, TestResult, admin_get, admin_post, small_config, start};

#[tokio::test]
async fn checksum_stable_without_changes() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;

    let first = admin_get(&sim, "/_sim/truth").await?;
    client.page_all("/v3/applications?per_page=100", || async {}).await?;
    let second = admin_get(&sim, "/_sim/truth").await?;
    assert_eq!(first, second);
    assert_eq!(first["candidates"]["count"], 120);
    assert_eq!(first["applications"]["count"], 150);
    assert_eq!(first["candidates"]["checksum"].as_str().map(str::len), Some(64));

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn checksum_changes_with_each_mutation() -> TestResult {
    let sim = start(small_config()).await?;
    let cases = [
        ("update_candidate", "candidates", 0),
        ("create_candidate", "candidates", 1),
        ("stage_change", "applications", 0),
        ("delete_application", "applications", -1),
        ("update_offer", "offers", 0),
        ("update_job", "jobs", 0),
        ("delete_scorecard", "scorecards", -1),
    ];

    for (kind, resource, count_change) in cases {
        let before = admin_get(&sim, "/_sim/truth").await?;
        let (status, answer) = admin_post(&sim, "/_sim/mutate", json!({ "count": 1, "kind": kind })).await?;
        assert_eq!(status, StatusCode::OK, "{kind}");
        assert_eq!(answer["applied"][0]["kind"], kind);
        let after = admin_get(&sim, "/_sim/truth").await?;

        assert_ne!(before[resource]["checksum"], after[resource]["checksum"], "{kind} changed {resource}");
        let count = |truth: &Value| truth[resource]["count"].as_i64().unwrap_or_default();
        assert_eq!(count(&after) - count(&before), count_change, "{kind}: count of {resource}");
        assert_eq!(before["departments"], after["departments"], "{kind} left departments alone");
    }

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn truth_list_matches_dump() -> TestResult {
    let sim = start(small_config()).await?;
    admin_post(&sim, "/_sim/mutate", json!({ "count": 40 })).await?;

    let versions = admin_get(&sim, "/_sim/truth/candidates").await?;
    let dump = admin_get(&sim, "/_sim/dump/candidates").await?;
    let from_dump: Vec<Value> = dump.as_array().ok_or("dump")?.iter().map(|r| json!([r["id"], r["updated_at"]])).collect();
    assert_eq!(versions, Value::Array(from_dump));

    let truth = admin_get(&sim, "/_sim/truth").await?;
    assert_eq!(truth["candidates"]["count"], json!(versions.as_array().map(Vec::len)));

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn same_seed_same_data() -> TestResult {
    let first = start(small_config()).await?;
    let second = start(small_config()).await?;
    let other = start(SimConfig { seed: 2, ..small_config() }).await?;

    let a = admin_get(&first, "/_sim/truth").await?;
    let b = admin_get(&second, "/_sim/truth").await?;
    let c = admin_get(&other, "/_sim/truth").await?;
    assert_eq!(a, b);
    assert_ne!(a["candidates"]["checksum"], c["candidates"]["checksum"]);

    for sim in [first, second, other] {
        sim.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn mutation_stream_changes_data() -> TestResult {
    let sim = start(SimConfig { mutations_per_sec: 100.0, ..small_config() }).await?;
    let first = admin_get(&sim, "/_sim/truth").await?;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let second = admin_get(&sim, "/_sim/truth").await?;
    assert_ne!(first, second);

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn admin_rejects_bad_requests() -> TestResult {
    let sizes = Sizes { candidates: 20_001, ..Sizes::default() };
    let sim = start(SimConfig { sizes, ..SimConfig::default() }).await?;

    let dump = reqwest::get(format!("{}/_sim/dump/candidates", sim.base_url())).await?;
    assert_eq!(dump.status(), StatusCode::BAD_REQUEST);
    let unknown = reqwest::get(format!("{}/_sim/truth/widgets", sim.base_url())).await?;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let (status, _) = admin_post(&sim, "/_sim/mutate", json!({ "count": 1, "kind": "explode" })).await?;
    assert!(status.is_client_error());
    let (status, _) = admin_post(&sim, "/_sim/webhooks", json!({})).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "no webhook target configured");

    sim.stop().await;
    Ok(())
}
