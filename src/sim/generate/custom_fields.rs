//! Custom fields of every Greenhouse type, in the v3 shape
//! `{"key": {"name": ..., "type": ..., "value": ...}}`.
//!
//! Each record gets the same keys for its resource (Greenhouse returns every field defined for
//! the account, with `null` where no value was entered), and roughly a third of the values are
//! null.

use serde_json::{Map, Value, json};

use crate::sim::rng::Rng;

use super::text;

/// One custom field definition: key, display name and type.
struct Field {
    key: &'static str,
    name: &'static str,
    kind: &'static str,
}

const CANDIDATE_FIELDS: &[Field] = &[
    Field { key: "desired_salary", name: "Desired Salary", kind: "currency" },
    Field { key: "current_salary", name: "Current Salary", kind: "short_text" },
    Field { key: "work_remotely", name: "Work Remotely", kind: "boolean" },
    Field { key: "graduation_year", name: "Graduation Year", kind: "single_select" },
    Field { key: "languages", name: "Languages", kind: "multi_select" },
    Field { key: "date_available", name: "Date Available", kind: "date" },
    Field { key: "portfolio", name: "Portfolio", kind: "url" },
    Field { key: "cover_note", name: "Cover Note", kind: "long_text" },
];

const APPLICATION_FIELDS: &[Field] = &[
    Field { key: "custom_application_field", name: "Custom Application Field", kind: "short_text" },
    Field { key: "expected_notice_weeks", name: "Expected Notice (weeks)", kind: "number" },
    Field { key: "referral_owner", name: "Referral Owner", kind: "user" },
];

const JOB_FIELDS: &[Field] = &[
    Field { key: "employment_type", name: "Employment Type", kind: "single_select" },
    Field { key: "salary_range", name: "Salary Range", kind: "currency_range" },
    Field { key: "level_range", name: "Level Range", kind: "number_range" },
    Field { key: "replacement_role", name: "Replacement Role", kind: "yes_no" },
];

const OFFER_FIELDS: &[Field] = &[
    Field { key: "employment_type", name: "Employment Type", kind: "single_select" },
    Field { key: "base_salary", name: "Base Salary", kind: "currency" },
];

const USER_FIELDS: &[Field] = &[
    Field { key: "select_custom_field", name: "Select custom field", kind: "single_select" },
];

/// Set of custom fields a record carries.
#[derive(Debug, Clone, Copy)]
pub enum FieldSet {
    Candidate,
    Application,
    Job,
    Offer,
    User,
}

/// Builds the `custom_fields` object of one record.
pub fn custom_fields(rng: &mut Rng, set: FieldSet, user_ids: &dyn Fn(u64) -> i64) -> Value {
    let fields = match set {
        FieldSet::Candidate => CANDIDATE_FIELDS,
        FieldSet::Application => APPLICATION_FIELDS,
        FieldSet::Job => JOB_FIELDS,
        FieldSet::Offer => OFFER_FIELDS,
        FieldSet::User => USER_FIELDS,
    };

    let mut map = Map::new();
    for field in fields {
        let value = if rng.chance(1, 3) { Value::Null } else { value_of(rng, field.kind, user_ids) };
        map.insert(
            field.key.to_owned(),
            json!({ "name": field.name, "type": field.kind, "value": value }),
        );
    }
    Value::Object(map)
}

fn value_of(rng: &mut Rng, kind: &str, user_ids: &dyn Fn(u64) -> i64) -> Value {
    match kind {
        "short_text" => json!(format!("{} k€", 40 + rng.below(120))),
        "long_text" => json!(text::note(rng, 3)),
        "boolean" | "yes_no" => json!(rng.chance(1, 2)),
        "single_select" => json!(rng.pick(&["Full-time", "Part-time", "Contract", "2027"])),
        "multi_select" => json!(["English", rng.pick(&["Français", "Deutsch", "日本語", "Português"])]),
        "date" => json!(format!("2027-0{}-1{}", 1 + rng.below(9), rng.below(10))),
        "url" => json!(format!("https://portfolio.example.com/{}", rng.below(100_000))),
        "number" => json!(rng.below(13)),
        "currency" => json!({ "unit": "EUR", "amount": format!("{}000.0", 40 + rng.below(160)) }),
        "currency_range" => json!({ "unit": null, "min_value": "10000.0", "max_value": "250000.0" }),
        "number_range" => json!({ "min_value": 1 + rng.below(3), "max_value": 4 + rng.below(4) }),
        "user" => {
            let user_id = user_ids(rng.next_u64());
            json!({ "user_id": user_id, "name": "Job Admin", "email": format!("admin.{user_id}@example.com"), "employee_id": null })
        }
        _ => Value::Null,
    }
}
