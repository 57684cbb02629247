//! The simulator's webhooks against the server's own webhook intake.

use std::time::{Duration, Instant};

use greenhouse_sync::greenhouse::Resource;
use greenhouse_sync::sim::{MutationKind, SimConfig, WebhookConfig};
use serde_json::{Value, json};

use crate::common::{TestResult, admin_get, admin_post, small_config, start};
use crate::support::TestServer;

const SECRET: &str = "acceptance-secret";

const KINDS: [MutationKind; 14] = [
    MutationKind::UpdateCandidate,
    MutationKind::CreateCandidate,
    MutationKind::CreateProspect,
    MutationKind::StageChange,
    MutationKind::UpdateApplication,
    MutationKind::RejectApplication,
    MutationKind::DeleteApplication,
    MutationKind::DeleteCandidate,
    MutationKind::MergeCandidates,
    MutationKind::CreateOffer,
    MutationKind::UpdateOffer,
    MutationKind::UpdateJob,
    MutationKind::DeleteInterview,
    MutationKind::DeleteScorecard,
];

#[tokio::test]
async fn server_accepts_every_delivery() -> TestResult {
    let server = TestServer::start().await;
    let account = server.database.add_account("Acme", SECRET);
    let url = server.url(&format!("/webhooks/greenhouse/{}", account.id));
    let webhook = WebhookConfig { retry_scale: 60_000.0, ..WebhookConfig::new(url, SECRET) };
    let sim = start(SimConfig { webhook: Some(webhook), ..small_config() }).await?;

    let mut deleted_candidate = None;
    for kind in KINDS {
        let (_, answer) = admin_post(&sim, "/_sim/mutate", json!({ "count": 2, "kind": kind })).await?;
        if kind == MutationKind::DeleteCandidate {
            deleted_candidate = answer["applied"][0]["id"].as_i64();
        }
    }
    admin_post(&sim, "/_sim/mutate", json!({ "count": 60 })).await?;

    let deadline = Instant::now() + Duration::from_secs(20);
    let stats = loop {
        let stats = admin_get(&sim, "/_sim/webhooks").await?["stats"].clone();
        if stats["pending"] == 0 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(stats["pending"], 0, "{stats}");
    assert_eq!(stats["failed_attempts"], 0, "every first attempt got 200: {stats}");
    assert_eq!(stats["delivered"], stats["events"], "{stats}");
    let stored = server.database.count("SELECT COUNT(*) AS count FROM webhook_deliveries");
    assert_eq!(Value::from(stored), stats["delivered"], "the server logged every delivery");

    let candidate_id = deleted_candidate.ok_or("delete_candidate applied")?;
    let row = server.database.record(account.id, Resource::Candidates, candidate_id).ok_or("deleted candidate row")?;
    assert!(row["deleted_at"].is_string(), "the server marked the candidate deleted: {row}");

    sim.stop().await;
    Ok(())
}
