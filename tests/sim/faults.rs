//! Injected faults and latency.

use std::time::{Duration, Instant};

use greenhouse_sync::sim::{FaultConfig, SimConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Client, TestResult, admin_get, admin_post, small_config, start};

#[tokio::test]
async fn fail_next_then_recovers() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;

    let (status, _) = admin_post(&sim, "/_sim/faults", json!({ "fail_next": { "count": 2, "status": 503 } })).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(client.get("/v3/jobs").await?.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(client.get("/v3/jobs").await?.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(client.get("/v3/jobs").await?.status, StatusCode::OK);

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn error_rate_one_gives_5xx() -> TestResult {
    let faults = FaultConfig { error_rate: 1.0, ..FaultConfig::default() };
    let sim = start(SimConfig { faults, ..small_config() }).await?;
    let client = Client::connect(&sim).await?;

    for _ in 0..10 {
        let status = client.get("/v3/candidates").await?.status;
        assert!([500, 502, 503].contains(&status.as_u16()), "unexpected {status}");
    }
    admin_post(&sim, "/_sim/faults", json!({})).await?;
    assert_eq!(client.get("/v3/candidates").await?.status, StatusCode::OK);

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn dropped_connection_fails_request() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;
    admin_post(&sim, "/_sim/faults", json!({ "drop_rate": 1.0 })).await?;

    let url = format!("{}/v3/jobs", sim.base_url());
    let outcome = match client.http.get(&url).bearer_auth(&client.token).send().await {
        Ok(response) => response.bytes().await.map(|_| ()),
        Err(error) => Err(error),
    };
    assert!(outcome.is_err(), "a dropped connection must surface as an error");

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn forbidden_resource_is_403() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;
    admin_post(&sim, "/_sim/faults", json!({ "forbidden_resource": "offers" })).await?;

    assert_eq!(client.get("/v3/offers").await?.status, StatusCode::FORBIDDEN);
    assert_eq!(client.get("/v3/jobs").await?.status, StatusCode::OK);

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn repeat_cursor_repeats_once() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;
    admin_post(&sim, "/_sim/faults", json!({ "repeat_cursor": "jobs" })).await?;

    let first = client.get("/v3/jobs?per_page=5").await?;
    let second_url = first.next_link().ok_or("next link")?;
    let second = client.get(&second_url).await?;
    assert_eq!(second.next_link().as_deref(), Some(second_url.as_str()), "the faulty page repeats its cursor");

    let again = client.get(&second_url).await?;
    assert_eq!(again.ids(), second.ids());
    assert_ne!(again.next_link().as_deref(), Some(second_url.as_str()), "the fault fires once");

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn invalid_faults_rejected() -> TestResult {
    let sim = start(small_config()).await?;
    for body in [json!({ "error_rate": 2.0 }), json!({ "forbidden_resource": "widgets" }), json!({ "no_such_fault": 1 })] {
        let (status, _) = admin_post(&sim, "/_sim/faults", body.clone()).await?;
        assert!(status.is_client_error(), "{body} answered {status}");
    }
    let current = admin_get(&sim, "/_sim/faults").await?;
    assert_eq!(current["error_rate"], 0.0);

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn latency_grows_with_page_size() -> TestResult {
    let config = SimConfig { latency: Duration::from_millis(20), latency_per_record: Duration::from_millis(2), ..small_config() };
    let sim = start(config).await?;
    let client = Client::connect(&sim).await?;

    let started = Instant::now();
    client.get("/v3/candidates?per_page=1").await?;
    let small = started.elapsed();

    let started = Instant::now();
    client.get("/v3/candidates?per_page=100").await?;
    let large = started.elapsed();

    assert!(small >= Duration::from_millis(20), "fixed latency applies: {small:?}");
    assert!(large >= Duration::from_millis(220), "per-record latency applies: {large:?}");
    assert!(large > small + Duration::from_millis(150), "100 records slower than 1: {small:?} vs {large:?}");

    sim.stop().await;
    Ok(())
}
