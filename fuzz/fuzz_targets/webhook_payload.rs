//! Feeds arbitrary bytes to the webhook signature check and, when they parse as JSON, to the
//! payload mapper under every documented action. Neither may panic, whatever the input.

#![no_main]

use greenhouse_sync::greenhouse::webhook_payload::plan;
use greenhouse_sync::webhooks::signature;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Every action the mapper handles, plus `ping` and one it does not know.
const ACTIONS: &[&str] = &[
    "ping",
    "new_candidate_application",
    "new_prospect_application",
    "application_updated",
    "candidate_stage_change",
    "reject_candidate",
    "unreject_candidate",
    "hire_candidate",
    "unhire_candidate",
    "delete_application",
    "department_deleted",
    "interview_deleted",
    "job_deleted",
    "job_interview_stage_deleted",
    "job_post_deleted",
    "offer_deleted",
    "office_deleted",
    "scorecard_deleted",
    "update_candidate",
    "job_created",
    "job_updated",
    "job_approved",
    "job_post_created",
    "job_post_updated",
    "offer_created",
    "offer_approved",
    "offer_updated",
    "delete_candidate",
    "merge_candidate",
    "candidate_anonymized",
    "candidate_teleported",
];

const SECRET: &[u8] = b"fuzz-webhook-secret";

fuzz_target!(|data: &[u8]| {
    check_signature(data);

    let Ok(delivery) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let payload = delivery.get("payload").unwrap_or(&delivery);

    // The action the input names, then every known one, so that a payload found by mutating
    // one action's fixture also exercises the other mappers.
    if let Some(action) = delivery.get("action").and_then(Value::as_str) {
        let _ = plan(action, payload);
    }
    for action in ACTIONS {
        let _ = plan(action, payload);
    }
});

/// Treats the first line as the `Signature` header and the rest as the body.
fn check_signature(data: &[u8]) {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    let verdict = signature::verify(SECRET, body, Some(header));

    // A header that verifies must be exactly what `sign` produces for this body.
    if verdict.is_ok() {
        assert_eq!(header, signature::sign(SECRET, body).as_bytes(), "accepted a header that sign() would not produce");
    }
}
