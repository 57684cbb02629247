//! `POST /token`, bearer checks and rate limits.

use std::time::Duration;

use greenhouse_sync::sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Client, TestResult, admin_post, fetch_token, small_config, start};

#[tokio::test]
async fn token_answer_has_recorded_shape() -> TestResult {
    let sim = start(small_config()).await?;
    let response = reqwest::Client::new()
        .post(sim.token_url())
        .basic_auth("client-1", Some("sim-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await?;
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"].as_str().is_some_and(|token| !token.is_empty()));
    let expires_at = body["expires_at"].as_str().ok_or("expires_at")?;
    let expires_at = chrono::DateTime::parse_from_rfc3339(expires_at)?;
    let ttl = expires_at.timestamp() - chrono::Utc::now().timestamp();
    assert!((3590..=3600).contains(&ttl), "default lifetime is an hour, got {ttl} s");

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn token_rejects_bad_requests() -> TestResult {
    let sim = start(small_config()).await?;
    let http = reqwest::Client::new();

    let wrong_secret = http.post(sim.token_url()).basic_auth("c", Some("nope")).form(&[("grant_type", "client_credentials")]).send().await?;
    assert_eq!(wrong_secret.status(), StatusCode::UNAUTHORIZED);

    let no_basic = http.post(sim.token_url()).form(&[("grant_type", "client_credentials")]).send().await?;
    assert_eq!(no_basic.status(), StatusCode::UNAUTHORIZED);

    let wrong_grant = http.post(sim.token_url()).basic_auth("c", Some("sim-secret")).form(&[("grant_type", "password")]).send().await?;
    assert_eq!(wrong_grant.status(), StatusCode::BAD_REQUEST);
    let body: Value = wrong_grant.json().await?;
    assert_eq!(body["error"], "unsupported_grant_type");

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn missing_token_is_401() -> TestResult {
    let sim = start(small_config()).await?;
    let response = reqwest::get(format!("{}/v3/candidates", sim.base_url())).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("x-ratelimit-remaining"));

    let client = Client { token: "made-up".to_owned(), ..Client::connect(&sim).await? };
    assert_eq!(client.get("/v3/candidates").await?.status, StatusCode::UNAUTHORIZED);

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn expired_token_is_401() -> TestResult {
    let sim = start(SimConfig { token_ttl: Duration::from_secs(1), ..small_config() }).await?;
    let client = Client::connect(&sim).await?;
    assert_eq!(client.get("/v3/jobs").await?.status, StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answer = client.get("/v3/jobs").await?;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.body["error"].as_str().is_some_and(|message| message.contains("expired")));

    let fresh = Client { token: fetch_token(&client.http, &sim, "test-client", "sim-secret").await?, ..client };
    assert_eq!(fresh.get("/v3/jobs").await?.status, StatusCode::OK);

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn revoked_tokens_are_401() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;
    assert_eq!(client.get("/v3/jobs").await?.status, StatusCode::OK);

    let (status, _) = admin_post(&sim, "/_sim/faults", json!({ "revoke_tokens": true })).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(client.get("/v3/jobs").await?.status, StatusCode::UNAUTHORIZED);

    let fresh = Client { token: fetch_token(&client.http, &sim, "test-client", "sim-secret").await?, ..client };
    assert_eq!(fresh.get("/v3/jobs").await?.status, StatusCode::OK);

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn rate_limit_answers_429() -> TestResult {
    let sim = start(SimConfig { rate_limit: 3, ..small_config() }).await?;
    let client = Client::connect(&sim).await?;

    for expected_remaining in ["2", "1", "0"] {
        let answer = client.get("/v3/offices").await?;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(answer.header("x-ratelimit-remaining").as_deref(), Some(expected_remaining));
    }

    let over = client.get("/v3/offices").await?;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.header("x-ratelimit-remaining").as_deref(), Some("0"));
    let retry_after: i64 = over.header("retry-after").ok_or("Retry-After")?.parse()?;
    assert!((1..=30).contains(&retry_after), "Retry-After {retry_after}");
    let reset: i64 = over.header("x-ratelimit-reset").ok_or("X-RateLimit-Reset")?.parse()?;
    let now = chrono::Utc::now().timestamp();
    assert!(reset > now, "reset {reset} is not after {now}");
    assert!(reset <= now + 31, "reset {reset} is beyond the 30 s window after {now}");

    // Another client id has its own window.
    let other = Client { token: fetch_token(&client.http, &sim, "other-client", "sim-secret").await?, ..client };
    assert_eq!(other.get("/v3/offices").await?.status, StatusCode::OK);

    sim.stop().await;
    Ok(())
}
