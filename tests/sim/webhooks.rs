//! The webhook sender, against a small receiver started in each test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use greenhouse_sync::sim::{RunningSim, SimConfig, WebhookConfig};
use greenhouse_sync::webhooks::signature;
use serde_json::{Value, json};

use crate::common::{TestResult, admin_get, admin_post, small_config, start};

const SECRET: &str = "test-webhook-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    body: Vec<u8>,
    signature: Option<String>,
    event_id: Option<String>,
    content_type: Option<String>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Clone, Default)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    /// Number of requests still to fail with 500 before the receiver returns 200.
    failures_left: Arc<AtomicUsize>,
}

/// A webhook endpoint on a loopback port that records what it gets.
struct Receiver {
    url: String,
    state: ReceiverState,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    async fn start(failures: usize) -> Result<Self, Box<dyn std::error::Error>> {
        let state = ReceiverState::default();
        state.failures_left.store(failures, Ordering::SeqCst);
        let shared = state.clone();
        let server = HttpServer::new(move || App::new().app_data(web::Data::new(shared.clone())).route("/hook", web::post().to(receive)))
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))?;
        let url = format!("http://{}/hook", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Receiver { url, state, handle })
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("receiver lock").clone()
    }

    /// Received requests other than the ping.
    fn events(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.json()["action"] != "ping").collect()
    }

    async fn stop(self) {
        // Not graceful: the sender's idle keep-alive connection would hold a graceful stop
        // for seconds.
        self.handle.stop(false).await;
    }
}

async fn receive(request: HttpRequest, body: web::Bytes, state: web::Data<ReceiverState>) -> HttpResponse {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    state.received.lock().expect("receiver lock").push(Received {
        body: body.to_vec(),
        signature: header("Signature"),
        event_id: header("Greenhouse-Event-ID"),
        content_type: header("Content-Type"),
    });
    let failing = state.failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1)).is_ok();
    if failing { HttpResponse::InternalServerError().finish() } else { HttpResponse::Ok().finish() }
}

fn webhook_config(url: &str, retry_scale: f64) -> WebhookConfig {
    WebhookConfig { retry_scale, timeout: Duration::from_secs(5), ..WebhookConfig::new(url, SECRET) }
}

async fn start_with_webhooks(receiver: &Receiver, retry_scale: f64) -> Result<RunningSim, Box<dyn std::error::Error>> {
    start(SimConfig { webhook: Some(webhook_config(&receiver.url, retry_scale)), ..small_config() }).await
}

/// Polls the sender's counters until `done` holds, for at most five seconds.
async fn wait_for_stats(sim: &RunningSim, done: impl Fn(&Value) -> bool) -> Result<Value, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = admin_get(sim, "/_sim/webhooks").await?["stats"].clone();
        if done(&stats) {
            return Ok(stats);
        }
        if Instant::now() > deadline {
            return Err(format!("webhook sender did not reach the expected state: {stats}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn deliveries_are_signed_and_shaped() -> TestResult {
    let receiver = Receiver::start(0).await?;
    let sim = start_with_webhooks(&receiver, 60_000.0).await?;
    let kinds = [
        "update_candidate", "create_candidate", "create_prospect", "stage_change", "update_application",
        "reject_application", "delete_application", "delete_candidate", "merge_candidates",
        "create_offer", "update_offer", "update_job", "delete_interview", "delete_scorecard",
    ];
    for kind in kinds {
        let (status, _) = admin_post(&sim, "/_sim/mutate", json!({ "count": 1, "kind": kind })).await?;
        assert!(status.is_success(), "{kind}");
    }
    wait_for_stats(&sim, |stats| stats["delivered"] == kinds.len() + 1 && stats["pending"] == 0).await?;

    let received = receiver.received();
    assert_eq!(received[0].json()["action"], "ping", "the ping comes first");
    assert_eq!(received[0].json()["payload"]["endpoint_url"], receiver.url.as_str());

    let mut event_ids = std::collections::HashSet::new();
    for delivery in &received {
        let verified = signature::verify(SECRET.as_bytes(), &delivery.body, delivery.signature.as_deref().map(str::as_bytes));
        assert_eq!(verified, Ok(()), "signature of {}", delivery.json()["action"]);
        assert!(!delivery.body.iter().any(|b| matches!(b, b'<' | b'>' | b'&')), "markup characters must be escaped");
        assert!(delivery.content_type.as_deref().is_some_and(|t| t.starts_with("application/json")));
        assert!(event_ids.insert(delivery.event_id.clone().ok_or("Greenhouse-Event-ID")?), "event ids are unique");
    }

    let actions: Vec<String> = received[1..].iter().map(|r| r.json()["action"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(actions, [
        "update_candidate", "new_candidate_application", "new_prospect_application", "candidate_stage_change",
        "application_updated", "reject_candidate", "delete_application", "delete_candidate", "merge_candidate",
        "offer_created", "offer_updated", "job_updated", "interview_deleted", "scorecard_deleted",
    ]);

    sim.stop().await;
    receiver.stop().await;
    Ok(())
}

#[tokio::test]
async fn payloads_follow_greenhouse_shapes() -> TestResult {
    let receiver = Receiver::start(0).await?;
    let sim = start_with_webhooks(&receiver, 60_000.0).await?;
    for kind in ["update_candidate", "stage_change", "delete_candidate", "merge_candidates", "update_offer"] {
        admin_post(&sim, "/_sim/mutate", json!({ "count": 1, "kind": kind })).await?;
    }
    wait_for_stats(&sim, |stats| stats["delivered"] == 6).await?;
    let events: Vec<Value> = receiver.events().iter().map(Received::json).collect();

    assert!(events[0]["payload"]["candidate"]["id"].is_i64(), "update_candidate nests the candidate");

    let application = &events[1]["payload"]["application"];
    assert!(application["candidate"]["id"].is_i64(), "stage change nests the candidate");
    assert!(application["jobs"].is_array(), "stage change nests jobs[]");
    let versions = admin_get(&sim, "/_sim/truth/applications").await?;
    let version = versions.as_array().into_iter().flatten().find(|pair| pair[0] == application["id"]).ok_or("application in truth")?;
    assert_eq!(application["last_activity_at"], version[1], "last_activity_at is the record's updated_at");

    let person = &events[2]["payload"]["person"];
    assert!(person["id"].is_i64());
    assert!(person["deleted_application_ids"].as_array().is_some_and(|ids| !ids.is_empty()));

    assert!(events[3]["payload"]["person"]["new_candidate_id"].is_i64(), "merge names the surviving candidate");

    let offer = &events[4]["payload"];
    assert!(offer["id"].is_i64(), "offer fields sit directly under payload");
    assert!(offer["offer_status"].is_string(), "offer fields sit directly under payload");

    sim.stop().await;
    receiver.stop().await;
    Ok(())
}

#[tokio::test]
async fn sender_retries_until_success() -> TestResult {
    // The ping is the first delivery: it fails three times, then succeeds on the fourth
    // attempt after waits of 1, 15 and 60 minutes scaled down to 1, 15 and 60 ms.
    let receiver = Receiver::start(3).await?;
    let sim = start_with_webhooks(&receiver, 60_000.0).await?;

    let stats = wait_for_stats(&sim, |stats| stats["delivered"] == 1).await?;
    assert_eq!(stats["attempts"], 4);
    assert_eq!(stats["failed_attempts"], 3);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 4, "no attempt after the successful one");
    assert!(received.iter().all(|r| r.body == received[0].body && r.event_id == received[0].event_id), "retries resend the same delivery");

    sim.stop().await;
    receiver.stop().await;
    Ok(())
}

#[tokio::test]
async fn sender_gives_up_after_seven_attempts() -> TestResult {
    let receiver = Receiver::start(usize::MAX).await?;
    // 916 minutes of waits scaled down to about 92 ms.
    let sim = start_with_webhooks(&receiver, 600_000.0).await?;

    let stats = wait_for_stats(&sim, |stats| stats["gave_up"] == 1).await?;
    assert_eq!(stats["attempts"], 7);
    assert_eq!(stats["delivered"], 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received().len(), 7);

    sim.stop().await;
    receiver.stop().await;
    Ok(())
}

#[tokio::test]
async fn impairments_drop_and_duplicate() -> TestResult {
    let receiver = Receiver::start(0).await?;
    let sim = start_with_webhooks(&receiver, 60_000.0).await?;
    wait_for_stats(&sim, |stats| stats["delivered"] == 1).await?;

    admin_post(&sim, "/_sim/webhooks", json!({ "duplicate_rate": 1.0 })).await?;
    admin_post(&sim, "/_sim/mutate", json!({ "count": 3, "kind": "update_candidate" })).await?;
    wait_for_stats(&sim, |stats| stats["delivered"] == 7 && stats["pending"] == 0).await?;
    let events = receiver.events();
    assert_eq!(events.len(), 6);
    // The sender may interleave deliveries, so a duplicate need not follow its original.
    let mut copies: std::collections::BTreeMap<_, usize> = std::collections::BTreeMap::new();
    for event in &events {
        *copies.entry(event.event_id.clone()).or_default() += 1;
    }
    assert_eq!(copies.len(), 3, "three distinct deliveries: {copies:?}");
    assert!(copies.values().all(|&count| count == 2), "each delivery arrives twice: {copies:?}");

    admin_post(&sim, "/_sim/webhooks", json!({ "drop_rate": 1.0 })).await?;
    admin_post(&sim, "/_sim/mutate", json!({ "count": 3, "kind": "update_candidate" })).await?;
    let stats = wait_for_stats(&sim, |stats| stats["dropped"] == 3).await?;
    assert_eq!(stats["pending"], 0);
    assert_eq!(receiver.events().len(), 6, "dropped events are never sent");

    sim.stop().await;
    receiver.stop().await;
    Ok(())
}

#[tokio::test]
async fn delayed_events_still_arrive() -> TestResult {
    let receiver = Receiver::start(0).await?;
    let sim = start_with_webhooks(&receiver, 60_000.0).await?;
    admin_post(&sim, "/_sim/webhooks", json!({ "delay_rate": 1.0, "max_delay_ms": 100 })).await?;

    admin_post(&sim, "/_sim/mutate", json!({ "count": 20, "kind": "update_candidate" })).await?;
    let stats = wait_for_stats(&sim, |stats| stats["delivered"] == 21 && stats["pending"] == 0).await?;
    assert_eq!(stats["delayed"], 20);
    assert_eq!(receiver.events().len(), 20);

    sim.stop().await;
    receiver.stop().await;
    Ok(())
}
