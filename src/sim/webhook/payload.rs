//! Greenhouse webhook payloads, built from the simulator's v3 records.
//!
//! Webhooks still carry the shapes of the retired Harvest v1 objects: applications nest their
//! candidate and `jobs[]` with a `current_stage{}`, jobs nest departments and offices, offers
//! put their fields directly under `payload`. Field names follow Greenhouse's published
//! examples for each action. Timestamps keep the v3 records' milliseconds.

use serde_json::{Map, Value, json};

use crate::sim::resource::Resource;
use crate::sim::store::Store;

/// One webhook to send: the `action` and its `payload`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub action: &'static str,
    pub payload: Value,
}

impl Event {
    /// Creates an event.
    pub fn new(action: &'static str, payload: Value) -> Self {
        Event { action, payload }
    }
}

fn field(record: &Map<String, Value>, key: &str) -> Value {
    record.get(key).cloned().unwrap_or(Value::Null)
}

fn record_id(record: &Map<String, Value>) -> i64 {
    record.get("id").and_then(Value::as_i64).unwrap_or_default()
}

/// Builds the v1 candidate nested in application webhooks and sent by `update_candidate`.
pub fn candidate(record: &Map<String, Value>) -> Value {
    let id = record_id(record);
    json!({
        "id": id,
        "first_name": field(record, "first_name"),
        "last_name": field(record, "last_name"),
        "title": field(record, "title"),
        "company": field(record, "company"),
        "created_at": field(record, "created_at"),
        "external_id": null,
        "photo_url": null,
        "url": format!("https://app.greenhouse.io/people/{id}"),
        "is_private": field(record, "private"),
        "can_email": field(record, "can_email"),
        "phone_numbers": field(record, "phone_numbers"),
        "email_addresses": field(record, "email_addresses"),
        "addresses": field(record, "addresses"),
        "website_addresses": field(record, "website_addresses"),
        "social_media_addresses": field(record, "social_media_addresses"),
        "educations": [],
        "employments": [],
        "recruiter": null,
        "coordinator": null,
        "attachments": [],
        "tags": field(record, "tags"),
        "custom_fields": field(record, "custom_fields"),
    })
}

/// Builds the short v1 candidate (`person`) of `delete_candidate` and `merge_candidate`.
pub fn person(record: &Map<String, Value>) -> Map<String, Value> {
    let person = json!({
        "id": record_id(record),
        "first_name": field(record, "first_name"),
        "last_name": field(record, "last_name"),
        "company": field(record, "company"),
        "title": field(record, "title"),
        "created_at": field(record, "created_at"),
        "headline": null,
        "is_private": field(record, "private"),
        "recruiter_user_id": null,
        "coordinator_user_id": null,
        "can_email": field(record, "can_email"),
    });
    match person {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object literal is an object"),
    }
}

/// Builds the v1 job, with its departments and offices nested.
pub fn job(store: &Store, record: &Map<String, Value>) -> Value {
    let department = record
        .get("department_id")
        .and_then(Value::as_i64)
        .and_then(|id| nested(store, Resource::Departments, id, &["id", "name", "external_id"]));
    let offices: Vec<Value> = record
        .get("office_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .filter_map(|id| nested(store, Resource::Offices, id, &["id", "name", "location", "external_id"]))
        .collect();
    let id = record_id(record);

    json!({
        "id": id,
        "name": field(record, "name"),
        "requisition_id": field(record, "requisition_id"),
        "notes": field(record, "notes"),
        "confidential": field(record, "confidential"),
        "job_post_id": Resource::Jobs.index_of(id).map(|index| Resource::JobPosts.id_of(index)),
        "status": field(record, "status"),
        "created_by_id": null,
        "created_at": field(record, "created_at"),
        "opened_at": field(record, "opened_at"),
        "closed_at": field(record, "closed_at"),
        "departments": department.into_iter().collect::<Vec<_>>(),
        "offices": offices,
        "hiring_team": { "hiring_managers": [], "sourcers": [], "recruiters": [], "coordinators": [] },
        "openings": [],
        "custom_fields": field(record, "custom_fields"),
    })
}

/// Picks a few fields of a parent record, or `None` when it no longer exists.
fn nested(store: &Store, resource: Resource, id: i64, keys: &[&str]) -> Option<Value> {
    let record = store.record(resource, resource.index_of(id)?)?;
    let picked: Map<String, Value> = keys.iter().map(|key| (key.to_string(), field(&record, key))).collect();
    Some(Value::Object(picked))
}

/// Builds the v1 application, with its candidate and jobs nested, as application webhooks send it.
///
/// `last_activity_at` is the version field a receiver can guard on: it equals the v3 record's
/// `updated_at` and `last_activity_at`.
pub fn application(store: &Store, record: &Map<String, Value>) -> Value {
    let id = record_id(record);
    let candidate_id = record.get("candidate_id").and_then(Value::as_i64).unwrap_or_default();
    let candidate_record = Resource::Candidates.index_of(candidate_id).and_then(|index| store.record(Resource::Candidates, index));
    let job_record = record
        .get("job_id")
        .and_then(Value::as_i64)
        .and_then(|job_id| store.record(Resource::Jobs, Resource::Jobs.index_of(job_id)?));
    let current_stage = match record.get("stage_id") {
        Some(Value::Number(stage_id)) => json!({ "id": stage_id, "name": field(record, "stage_name"), "interviews": [] }),
        _ => Value::Null,
    };

    json!({
        "id": id,
        "rejected_at": field(record, "rejected_at"),
        "prospect": field(record, "prospect"),
        "status": v1_status(record),
        "applied_at": field(record, "created_at"),
        "last_activity_at": field(record, "last_activity_at"),
        "url": format!("https://app.greenhouse.io/people/{candidate_id}?application_id={id}"),
        "source": record.get("source_id").and_then(Value::as_i64).map(|id| json!({ "id": id, "public_name": "Jobs page on your website" })),
        "credited_to": null,
        "rejection_reason": null,
        "rejection_details": null,
        "current_stage": current_stage,
        "custom_fields": field(record, "custom_fields"),
        "candidate": candidate_record.as_ref().map(candidate),
        "jobs": job_record.iter().map(|job_record| job(store, job_record)).collect::<Vec<_>>(),
    })
}

/// v1 calls an application in process `active`.
fn v1_status(record: &Map<String, Value>) -> Value {
    match record.get("status").and_then(Value::as_str) {
        Some("in_process") => json!("active"),
        Some(other) => json!(other),
        None => Value::Null,
    }
}

/// Builds the short application of `delete_application`.
pub fn deleted_application(record: &Map<String, Value>) -> Value {
    json!({
        "id": record_id(record),
        "candidate_id": field(record, "candidate_id"),
        "job_id": field(record, "job_id"),
        "created_at": field(record, "created_at"),
        "source_id": field(record, "source_id"),
        "candidate_rejection_reason_id": null,
        "rejection_note_id": null,
        "rejected_at": field(record, "rejected_at"),
        "referrer_id": field(record, "referrer_id"),
        "prospect": field(record, "prospect"),
        "rejected_by_user_id": null,
    })
}

/// Builds the offer fields that `offer_created` and `offer_updated` put directly under `payload`.
pub fn offer(record: &Map<String, Value>) -> Value {
    let date = |key: &str| field(record, key).as_str().map(|time| time.chars().take(10).collect::<String>());
    let start_date = date("starts_on").map(|day| format!("{}/{}/{}", &day[5..7], &day[8..10], &day[0..4]));

    json!({
        "id": record_id(record),
        "application_id": field(record, "application_id"),
        "job_id": field(record, "job_id"),
        "user_id": null,
        "version": field(record, "version"),
        "sent_on": date("sent_on"),
        "resolved_at": field(record, "resolved_at"),
        "start_date": start_date,
        "notes": null,
        "offer_status": field(record, "status"),
        "custom_fields": field(record, "custom_fields"),
    })
}

/// Builds the `scorecard` of `scorecard_deleted`.
pub fn deleted_scorecard(store: &Store, record: &Map<String, Value>) -> Value {
    let candidate_id = record
        .get("application_id")
        .and_then(Value::as_i64)
        .and_then(|id| Resource::Applications.index_of(id))
        .and_then(|index| store.parents(Resource::Applications, index).candidate)
        .map(|index| Resource::Candidates.id_of(index));

    json!({
        "id": record_id(record),
        "candidate_id": candidate_id,
        "interviewed_at": field(record, "interviewed_at"),
        "created_at": field(record, "created_at"),
        "updated_at": field(record, "updated_at"),
        "scorecard_status": field(record, "status"),
    })
}

/// Builds the payload of the `ping` Greenhouse sends when a webhook is saved.
pub fn ping(endpoint_url: &str, now: &str) -> Value {
    json!({
        "active": true,
        "created_at": now,
        "web_hook_id": 9590,
        "name": "greenhouse-sim",
        "endpoint_url": endpoint_url,
        "content-type": "application/json",
        "updated_at": now,
        "event": "All events",
    })
}

/// Serialises a webhook body as Greenhouse sends it: compact JSON with `<`, `>` and `&`
/// escaped as `\u003c`, `\u003e` and `\u0026`.
///
/// Those characters only occur inside JSON strings, so replacing them byte by byte keeps the
/// JSON valid and equal in meaning.
pub fn body(event: &Event) -> Vec<u8> {
    let envelope = json!({ "action": event.action, "payload": event.payload });
    let compact = serde_json::to_vec(&envelope).expect("a JSON value always serialises");
    let mut escaped = Vec::with_capacity(compact.len() + 16);
    for byte in compact {
        match byte {
            b'<' => escaped.extend_from_slice(br"\u003c"),
            b'>' => escaped.extend_from_slice(br"\u003e"),
            b'&' => escaped.extend_from_slice(br"\u0026"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_escapes_markup_characters() {
        let event = Event::new("update_candidate", json!({ "note": "a < b & c > d" }));
        let body = body(&event);
        let text = String::from_utf8(body.clone()).expect("body is UTF-8");
        assert!(!text.contains('<'));
        assert!(!text.contains('>'));
        assert!(!text.contains('&'));
        assert!(text.contains(r"a \u003c b \u0026 c \u003e d"));
        let parsed: Value = serde_json::from_slice(&body).expect("escaped body is JSON");
        assert_eq!(parsed["payload"]["note"], "a < b & c > d");
    }
}
