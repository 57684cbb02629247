//! Greenhouse webhook payloads, rewritten into the operations that store them.
//!
//! Payloads are shaped like the retired Harvest v1 objects: an application nests its
//! `candidate` and `jobs[]`, a job nests `departments[]` and `offices[]`, a stage is a
//! `current_stage{}` object. Each is rewritten into flat Harvest v3 field names
//! (`candidate_id`, `job_id`, `department_id`, `office_ids`, ...) so that webhook and sweep
//! write one row shape. Fields with no v3 counterpart are kept in the record's JSON as sent.
//!
//! Payloads can be partial, so only fields present in the payload are emitted.

use serde_json::{Map, Value};

use super::Resource;

/// One change to the local copy.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Upsert the fields present (v3 names) under the version and deletion guards.
    Upsert { resource: Resource, id: i64, fields: Map<String, Value> },
    /// Mark a record deleted.
    Delete { resource: Resource, id: i64 },
    /// Mark a candidate deleted, with the applications Greenhouse deleted along with it.
    DeleteCandidate { id: i64, application_ids: Vec<i64> },
    /// Candidate `old_id` was merged into `new_id`; its applications move.
    MergeCandidate { old_id: i64, new_id: i64 },
    /// Overwrite personal fields of a candidate, even a deleted one.
    AnonymizeCandidate { id: i64, fields: Map<String, Value>, unknown: Vec<String> },
}

/// Plan for a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Apply(Vec<Operation>),
    /// A documented action that carries nothing to store (`ping`).
    Ignore,
    /// An action this version does not know.
    Unsupported,
}

/// A payload whose shape does not match its action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action}: {problem}")]
pub struct PayloadError {
    pub action: String,
    pub problem: String,
}

/// Application actions: each carries `payload.application` with nested candidate and jobs.
const APPLICATION_ACTIONS: &[&str] = &[
    "new_candidate_application",
    "new_prospect_application",
    "application_updated",
    "candidate_stage_change",
    "reject_candidate",
    "unreject_candidate",
    "hire_candidate",
    "unhire_candidate",
];

/// Deletion actions and the payload key that wraps the deleted object.
const DELETE_ACTIONS: &[(&str, &str, Resource)] = &[
    ("delete_application", "application", Resource::Applications),
    ("department_deleted", "department", Resource::Departments),
    ("interview_deleted", "interview", Resource::Interviews),
    ("job_deleted", "job", Resource::Jobs),
    ("job_interview_stage_deleted", "job_interview_stage", Resource::JobInterviewStages),
    ("job_post_deleted", "job_post", Resource::JobPosts),
    ("offer_deleted", "offer", Resource::Offers),
    ("office_deleted", "office", Resource::Offices),
    ("scorecard_deleted", "scorecard", Resource::Scorecards),
];

/// Turns an action and its `payload` into the operations that store it.
pub fn plan(action: &str, payload: &Value) -> Result<Plan, PayloadError> {
    let fail = |problem: String| PayloadError { action: action.to_string(), problem };
    if action == "ping" {
        return Ok(Plan::Ignore);
    }
    if !is_known(action) {
        return Ok(Plan::Unsupported);
    }
    let payload = payload.as_object().ok_or_else(|| fail("'payload' must be an object".to_string()))?;

    if APPLICATION_ACTIONS.contains(&action) {
        return application_operations(child(payload, "application").map_err(&fail)?).map(Plan::Apply).map_err(fail);
    }
    if let Some((_, key, resource)) = DELETE_ACTIONS.iter().find(|(name, _, _)| *name == action) {
        let id = required_id(child(payload, key).map_err(&fail)?, "id").map_err(&fail)?;
        return Ok(Plan::Apply(vec![Operation::Delete { resource: *resource, id }]));
    }
    let operations = match action {
        "update_candidate" => candidate_operations(child(payload, "candidate").map_err(&fail)?),
        // `job_approved` also carries `approval_flow`, which has no table: only the job is kept.
        "job_created" | "job_updated" | "job_approved" => job_operations(child(payload, "job").map_err(&fail)?),
        // Job post and offer payloads put the object's fields directly under `payload`.
        "job_post_created" | "job_post_updated" => job_post_operations(payload),
        "offer_created" | "offer_approved" | "offer_updated" => offer_operations(payload),
        "delete_candidate" => delete_candidate_operations(child(payload, "person").map_err(&fail)?),
        "merge_candidate" => merge_candidate_operations(child(payload, "person").map_err(&fail)?),
        "candidate_anonymized" => anonymize_operations(payload),
        _ => return Ok(Plan::Unsupported),
    };
    operations.map(Plan::Apply).map_err(fail)
}

/// Actions handled besides the application and deletion actions.
const OTHER_ACTIONS: &[&str] = &[
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
];

/// Returns true for every documented action that changes stored records.
pub fn is_known(action: &str) -> bool {
    APPLICATION_ACTIONS.contains(&action)
        || OTHER_ACTIONS.contains(&action)
        || DELETE_ACTIONS.iter().any(|(name, _, _)| *name == action)
}

fn child<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a Map<String, Value>, String> {
    match object.get(key) {
        Some(Value::Object(inner)) => Ok(inner),
        Some(_) => Err(format!("'payload.{key}' must be an object")),
        None => Err(format!("'payload.{key}' is missing")),
    }
}

fn required_id(object: &Map<String, Value>, key: &str) -> Result<i64, String> {
    match object.get(key) {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("'{key}' must be a 64-bit integer, got {n}")),
        Some(other) => Err(format!("'{key}' must be an integer, got {other}")),
        None => Err(format!("'{key}' is missing")),
    }
}

/// Reads the `id` of a nested object such as `source` or `current_stage`; null stays null.
fn nested_id(value: &Value, key: &str) -> Result<Value, String> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::Object(inner) => required_id(inner, "id").map(Value::from).map_err(|e| format!("{key}.{e}")),
        _ => Err(format!("'{key}' must be an object or null")),
    }
}

/// Reads the ids of an array of objects such as `offices`.
fn nested_ids(value: &Value, key: &str) -> Result<Vec<i64>, String> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_object().ok_or_else(|| format!("'{key}' items must be objects")))
            .map(|item| item.and_then(|o| required_id(o, "id").map_err(|e| format!("{key}[].{e}"))))
            .collect(),
        _ => Err(format!("'{key}' must be an array")),
    }
}

fn application_operations(application: &Map<String, Value>) -> Result<Vec<Operation>, String> {
    let id = required_id(application, "id").map_err(|e| format!("application {e}"))?;
    let mut fields = Map::new();
    let mut operations = Vec::new();

    for (key, value) in application {
        match key.as_str() {
            "candidate" => {
                let candidate = value.as_object().ok_or("'application.candidate' must be an object")?;
                fields.insert("candidate_id".into(), Value::from(required_id(candidate, "id")?));
                operations.extend(candidate_operations(candidate)?);
            }
            "jobs" => {
                let jobs = value.as_array().ok_or("'application.jobs' must be an array")?;
                let first_job = nested_ids(value, "jobs")?.first().copied();
                fields.insert("job_id".into(), first_job.map_or(Value::Null, Value::from));
                for job in jobs {
                    operations.extend(job_operations(job.as_object().ok_or("'application.jobs' items must be objects")?)?);
                }
            }
            // `hire_candidate` still sends the deprecated single `job` beside `jobs`.
            "job" => {
                if !application.contains_key("jobs") {
                    fields.insert("job_id".into(), nested_id(value, "job")?);
                }
            }
            "current_stage" => {
                fields.insert("job_interview_stage_id".into(), nested_id(value, "current_stage")?);
                let name = value.get("name").cloned().unwrap_or(Value::Null);
                fields.insert("stage_name".into(), name);
                fields.insert(key.clone(), value.clone());
            }
            "source" => {
                fields.insert("source_id".into(), nested_id(value, "source")?);
                fields.insert(key.clone(), value.clone());
            }
            "applied_at" => {
                fields.insert("created_at".into(), value.clone());
            }
            // `hire_candidate` nests the accepted offer.
            "offer" if value.is_object() => {
                let offer = value.as_object().ok_or("'application.offer' must be an object")?;
                operations.extend(nested_offer_operations(id, application, offer)?);
                fields.insert(key.clone(), value.clone());
            }
            _ => {
                fields.insert(key.clone(), value.clone());
            }
        }
    }

    // The application goes first so that a failure in it is reported before related rows.
    operations.insert(0, Operation::Upsert { resource: Resource::Applications, id, fields });
    Ok(operations)
}

fn candidate_operations(candidate: &Map<String, Value>) -> Result<Vec<Operation>, String> {
    let id = required_id(candidate, "id").map_err(|e| format!("candidate {e}"))?;
    let mut fields = Map::new();
    for (key, value) in candidate {
        match key.as_str() {
            "is_private" => fields.insert("private".into(), value.clone()),
            _ => fields.insert(key.clone(), value.clone()),
        };
    }
    Ok(vec![Operation::Upsert { resource: Resource::Candidates, id, fields }])
}

fn job_operations(job: &Map<String, Value>) -> Result<Vec<Operation>, String> {
    let id = required_id(job, "id").map_err(|e| format!("job {e}"))?;
    let mut fields = Map::new();
    let mut operations = Vec::new();

    for (key, value) in job {
        match key.as_str() {
            "departments" => {
                let ids = nested_ids(value, "departments")?;
                fields.insert("department_id".into(), ids.first().map_or(Value::Null, |id| Value::from(*id)));
                operations.extend(child_records(value, Resource::Departments, department_fields)?);
            }
            "offices" => {
                let ids = nested_ids(value, "offices")?;
                fields.insert("office_ids".into(), Value::from(ids));
                operations.extend(child_records(value, Resource::Offices, office_fields)?);
            }
            _ => {
                fields.insert(key.clone(), value.clone());
            }
        }
    }

    operations.insert(0, Operation::Upsert { resource: Resource::Jobs, id, fields });
    Ok(operations)
}

/// Upserts for the departments or offices nested in a job payload.
fn child_records(
    value: &Value,
    resource: Resource,
    to_fields: fn(&Map<String, Value>) -> Map<String, Value>,
) -> Result<Vec<Operation>, String> {
    let Value::Array(items) = value else {
        return Ok(Vec::new());
    };
    let mut operations = Vec::new();
    for item in items.iter().filter_map(Value::as_object) {
        let id = required_id(item, "id")?;
        operations.push(Operation::Upsert { resource, id, fields: to_fields(item) });
    }
    Ok(operations)
}

fn department_fields(department: &Map<String, Value>) -> Map<String, Value> {
    department.clone()
}

/// Job payloads give an office's `location` as text; `office_deleted` gives `{"name": ...}`.
/// v3 uses text, so the object form is flattened to its name.
fn office_fields(office: &Map<String, Value>) -> Map<String, Value> {
    let mut fields = office.clone();
    if let Some(Value::Object(location)) = office.get("location") {
        fields.insert("location".into(), location.get("name").cloned().unwrap_or(Value::Null));
    }
    fields
}

fn job_post_operations(post: &Map<String, Value>) -> Result<Vec<Operation>, String> {
    let id = required_id(post, "id").map_err(|e| format!("job post {e}"))?;
    Ok(vec![Operation::Upsert { resource: Resource::JobPosts, id, fields: post.clone() }])
}

fn offer_operations(offer: &Map<String, Value>) -> Result<Vec<Operation>, String> {
    let id = required_id(offer, "id").map_err(|e| format!("offer {e}"))?;
    let mut fields = Map::new();
    for (key, value) in offer {
        match key.as_str() {
            "offer_status" => fields.insert("status".into(), value.clone()),
            "start_date" => fields.insert("starts_on".into(), value.clone()),
            _ => fields.insert(key.clone(), value.clone()),
        };
    }
    Ok(vec![Operation::Upsert { resource: Resource::Offers, id, fields }])
}

/// Maps the offer nested in a hired application. It uses `sent_at` and `starts_at` for what
/// offer payloads and v3 call `sent_on` and `starts_on`, and carries no application or
/// candidate id.
fn nested_offer_operations(
    application_id: i64,
    application: &Map<String, Value>,
    offer: &Map<String, Value>,
) -> Result<Vec<Operation>, String> {
    let mut fields = Map::new();
    for (key, value) in offer {
        match key.as_str() {
            "sent_at" => fields.insert("sent_on".into(), value.clone()),
            "starts_at" => fields.insert("starts_on".into(), value.clone()),
            _ => fields.insert(key.clone(), value.clone()),
        };
    }
    fields.insert("application_id".into(), Value::from(application_id));
    if let Some(candidate_id) = application.get("candidate").and_then(|c| c.get("id")) {
        fields.insert("candidate_id".into(), candidate_id.clone());
    }
    offer_operations(&fields)
}

fn delete_candidate_operations(person: &Map<String, Value>) -> Result<Vec<Operation>, String> {
    let id = required_id(person, "id").map_err(|e| format!("person {e}"))?;
    let application_ids = match person.get("deleted_application_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| v.as_i64().ok_or_else(|| format!("'deleted_application_ids' must hold integers, got {v}")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("'deleted_application_ids' must be an array".to_string()),
    };
    Ok(vec![Operation::DeleteCandidate { id, application_ids }])
}

fn merge_candidate_operations(person: &Map<String, Value>) -> Result<Vec<Operation>, String> {
    let old_id = required_id(person, "id").map_err(|e| format!("person {e}"))?;
    let new_id = required_id(person, "new_candidate_id")?;
    if old_id == new_id {
        return Err(format!("candidate {old_id} cannot be merged into itself"));
    }
    Ok(vec![Operation::MergeCandidate { old_id, new_id }])
}

/// Maps Greenhouse's anonymization field names to the candidate fields they clear.
///
/// NOTE: only `full_name` and `current_title` appear in Greenhouse's published example; the
/// other names are a best guess at its field list. Unknown names are logged and skipped.
/// Fields such as notes or answers to application questions are not stored on candidate
/// rows, so they need nothing here.
fn anonymized_fields(name: &str) -> Option<&'static [(&'static str, AnonymizedValue)]> {
    use AnonymizedValue::{EmptyList, EmptyObject, Null};
    let fields: &'static [(&'static str, AnonymizedValue)] = match name {
        "full_name" => &[("first_name", Null), ("last_name", Null), ("preferred_name", Null)],
        "current_company" => &[("company", Null)],
        "current_title" => &[("title", Null)],
        "tags" => &[("tags", EmptyList)],
        "phone_numbers" => &[("phone_numbers", EmptyList)],
        "emails" | "email_addresses" => &[("email_addresses", EmptyList)],
        "social_media_links" => &[("social_media_addresses", EmptyList)],
        "websites" => &[("website_addresses", EmptyList)],
        "addresses" => &[("addresses", EmptyList)],
        "location" => &[("location", Null)],
        "custom_fields" => &[("custom_fields", EmptyObject)],
        "recruiter" => &[("recruiter", Null)],
        "coordinator" => &[("coordinator", Null)],
        "attachments" => &[("attachments", EmptyList)],
        "education" | "educations" => &[("educations", EmptyList)],
        "employment" | "employments" => &[("employments", EmptyList)],
        "photo" | "photo_url" => &[("photo_url", Null)],
        _ => return None,
    };
    Some(fields)
}

#[derive(Debug, Clone, Copy)]
enum AnonymizedValue {
    Null,
    EmptyList,
    EmptyObject,
}

fn anonymize_operations(payload: &Map<String, Value>) -> Result<Vec<Operation>, String> {
    let id = required_id(payload, "candidate_id")?;
    let names = payload
        .get("anonymized_fields")
        .and_then(Value::as_array)
        .ok_or("'payload.anonymized_fields' must be an array of field names")?;

    let mut fields = Map::new();
    let mut unknown = Vec::new();
    for name in names {
        let name = name.as_str().ok_or("'anonymized_fields' must hold strings")?;
        match anonymized_fields(name) {
            Some(cleared) => {
                for (field, value) in cleared {
                    let value = match value {
                        AnonymizedValue::Null => Value::Null,
                        AnonymizedValue::EmptyList => Value::Array(Vec::new()),
                        AnonymizedValue::EmptyObject => Value::Object(Map::new()),
                    };
                    fields.insert((*field).to_string(), value);
                }
            }
            None => unknown.push(name.to_string()),
        }
    }
    Ok(vec![Operation::AnonymizeCandidate { id, fields, unknown }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ping_is_ignored() {
        assert_eq!(plan("ping", &json!({"web_hook_id": 1})), Ok(Plan::Ignore));
    }

    #[test]
    fn unknown_action_is_unsupported() {
        assert_eq!(plan("candidate_teleported", &json!({})), Ok(Plan::Unsupported));
    }

    #[test]
    fn application_without_id_is_an_error() {
        let error = plan("application_updated", &json!({"application": {"status": "active"}})).unwrap_err();
        assert!(error.problem.contains("'id' is missing"), "{error}");
    }

    #[test]
    fn id_as_string_is_an_error() {
        assert!(plan("job_deleted", &json!({"job": {"id": "42"}})).is_err());
    }

    #[test]
    fn prospect_without_jobs_has_null_job_id() {
        let Ok(Plan::Apply(ops)) = plan("new_prospect_application", &json!({"application": {"id": 5, "jobs": []}})) else {
            panic!("expected operations");
        };
        let Operation::Upsert { fields, .. } = &ops[0] else { panic!("expected upsert") };
        assert_eq!(fields.get("job_id"), Some(&Value::Null));
    }

    #[test]
    fn merge_into_itself_is_an_error() {
        assert!(plan("merge_candidate", &json!({"person": {"id": 1, "new_candidate_id": 1}})).is_err());
    }
}
