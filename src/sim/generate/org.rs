//! Departments, offices and users.

use serde_json::{Value, json};

use crate::sim::resource::Resource;
use crate::sim::rng::Rng;

use super::custom_fields::{FieldSet, custom_fields};
use super::{Record, text};

pub(super) fn department(record: &Record, rng: &mut Rng) -> Value {
    let base = text::DEPARTMENT_NAMES[record.index as usize % text::DEPARTMENT_NAMES.len()];
    let name = suffixed(base, record);

    // Departments after the first few hang under an earlier one, as nested departments do.
    let parent_id = (record.index >= 4 && rng.chance(1, 2))
        .then(|| Resource::Departments.id_of(rng.below(4)));

    json!({
        "id": record.id(),
        "name": name,
        "external_id": rng.chance(1, 2).then(|| format!("ex-dept-{}", record.index)),
        "created_at": record.created_at(),
        "updated_at": record.updated_at(),
        "parent_id": parent_id,
    })
}

pub(super) fn office(record: &Record, rng: &mut Rng) -> Value {
    let (name, location) = text::OFFICE_LOCATIONS[record.index as usize % text::OFFICE_LOCATIONS.len()];
    let parent_id = (record.index >= 2 && rng.chance(1, 3)).then(|| Resource::Offices.id_of(0));

    json!({
        "id": record.id(),
        "name": suffixed(name, record),
        "external_id": rng.chance(1, 2).then(|| format!("ex-office-{}", record.index)),
        "location": location,
        "created_at": record.created_at(),
        "updated_at": record.updated_at(),
        "parent_id": parent_id,
        "primary_in_house_contact_user_id": rng.chance(2, 3).then(|| record.user_id(rng)),
    })
}

pub(super) fn user(record: &Record, rng: &mut Rng) -> Value {
    let sizes = &record.generator.sizes;
    let first = *rng.pick(text::FIRST_NAMES);
    let last = *rng.pick(text::LAST_NAMES);
    let id = record.id();

    json!({
        "id": id,
        "first_name": first,
        "last_name": last,
        "job_title": rng.chance(2, 3).then(|| *rng.pick(text::TITLES)),
        "agency_id": null,
        "created_at": record.created_at(),
        "updated_at": record.updated_at(),
        "primary_email": format!("{}@example.com", text::email_local_part(first, last, id)),
        "name": format!("{first} {last}"),
        "deactivated": rng.chance(1, 20),
        "site_admin": record.index == 0 || rng.chance(1, 25),
        "employee_id": rng.chance(1, 2).then(|| format!("EMP-{:05}", record.index)),
        "linked_candidate_ids": [],
        "office_ids": [Resource::Offices.id_of(rng.below(sizes.offices))],
        "department_ids": [Resource::Departments.id_of(rng.below(sizes.departments))],
        "interviewer_tags": if rng.chance(1, 3) { json!(["Technical", "Culture 🌱"]) } else { json!([]) },
        "custom_fields": custom_fields(rng, FieldSet::User, &|bits| record.generator.user_id(bits)),
    })
}

/// Keeps names unique beyond the first pass over a word pool, and marks renamed revisions.
fn suffixed(base: &str, record: &Record) -> String {
    let pool_round = record.index / 8;
    match (pool_round, record.revision) {
        (0, 0) => base.to_owned(),
        (round, 0) => format!("{base} {}", round + 1),
        (round, revision) => format!("{base} {} (r{revision})", round + 1),
    }
}
