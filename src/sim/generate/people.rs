//! Candidates and applications.

use serde_json::{Value, json};

use crate::sim::resource::Resource;
use crate::sim::rng::Rng;

use super::custom_fields::{FieldSet, custom_fields};
use super::{Generator, Record, text};

pub(super) fn candidate(record: &Record, rng: &mut Rng) -> Value {
    let mut stable = record.stable_rng();
    let id = record.id();
    let first = *stable.pick(text::FIRST_NAMES);
    let last = *stable.pick(text::LAST_NAMES);
    let preferred_name = stable.chance(1, 5).then(|| format!("{first} {}", stable.pick(text::EMOJI)));
    let email = format!("{}@example.com", text::email_local_part(first, last, id));
    let tags: Vec<&str> = (0..rng.below(3)).map(|_| *rng.pick(text::TAGS)).collect();

    json!({
        "id": id,
        "first_name": first,
        "last_name": last,
        "preferred_name": preferred_name,
        "company": rng.chance(3, 4).then(|| *rng.pick(text::COMPANIES)),
        "title": rng.chance(3, 4).then(|| *rng.pick(text::TITLES)),
        "created_at": record.created_at(),
        "updated_at": record.updated_at(),
        "can_email": rng.chance(9, 10),
        "time_zone": stable.chance(2, 3).then(|| *stable.pick(text::TIME_ZONES)),
        "last_activity_at": record.updated_at(),
        "private": stable.chance(1, 20),
        "tags": tags,
        "linked_user_ids": [],
        "phone_numbers": [{ "value": format!("+1 555 01{:02} {:04}", stable.below(100), stable.below(10_000)), "type": "mobile" }],
        "addresses": if stable.chance(1, 2) { json!([{ "value": "123 Main St\nHoldmel, NJ", "type": "home" }]) } else { json!([]) },
        "email_addresses": [{ "value": email, "type": "personal" }],
        "website_addresses": if stable.chance(1, 3) { json!([{ "value": format!("{}.example.com", id), "type": "personal" }]) } else { json!([]) },
        "social_media_addresses": [],
        "custom_fields": custom_fields(rng, FieldSet::Candidate, &|bits| record.generator.user_id(bits)),
    })
}

pub(super) fn application(record: &Record, rng: &mut Rng) -> Value {
    let generator = record.generator;
    let mut stable = record.stable_rng();
    let links = generator.application_links(record.index);
    let (status, rejected_at) = application_status(record, &mut stable, links.prospect);

    // Each revision moves the application to another stage of its job; jobless prospects and
    // closed applications have no stage.
    let stage = (links.job.is_some() && status == "in_process").then(|| {
        let job = links.job.expect("checked by is_some above");
        Resource::JobInterviewStages.id_of(Generator::stage_index(job, stable.below(3) + u64::from(record.revision)))
    });
    let stage_name = stage.and_then(|id| Resource::JobInterviewStages.index_of(id))
        .map(|index| text::STAGE_NAMES[(index % 5) as usize]);
    let prospective_job_ids: Vec<i64> = match (links.prospect, links.job) {
        (true, Some(job)) => vec![Resource::Jobs.id_of(job)],
        _ => Vec::new(),
    };

    json!({
        "id": record.id(),
        "referrer_id": stable.chance(1, 10).then(|| 7_000_000_002_i64 + stable.below(50) as i64 * 1000),
        "source_id": stable.chance(4, 5).then(|| 1 + stable.below(30)),
        "agency_note_id": null,
        "recruiter_id": stable.chance(2, 3).then(|| record.user_id(&mut stable)),
        "coordinator_id": stable.chance(1, 2).then(|| record.user_id(&mut stable)),
        "needs_decision": rng.chance(1, 4),
        "prospect": links.prospect,
        "rejected_at": rejected_at,
        "created_at": record.created_at(),
        "updated_at": record.updated_at(),
        "last_activity_at": record.updated_at(),
        "stage_id": stage,
        "job_interview_stage_id": stage,
        "candidate_id": Resource::Candidates.id_of(links.candidate),
        "job_id": links.job.map(|job| Resource::Jobs.id_of(job)),
        "job_post_id": links.job.filter(|_| stable.chance(1, 2)).map(|job| Resource::JobPosts.id_of(job)),
        "status": status,
        "stage_name": stage_name,
        "custom_fields": custom_fields(rng, FieldSet::Application, &|bits| generator.user_id(bits)),
        "location_address": stable.chance(1, 2).then(|| *stable.pick(&["455 Broadway St., New York, NY", "Rua Augusta 1508, São Paulo", "ul. Floriańska 3, Kraków"])),
        "answers": if stable.chance(1, 3) { json!([{ "question": "Why do you want to work with us?", "answer": text::note(&mut stable, 4) }]) } else { json!([]) },
        "prospective_job_ids": prospective_job_ids,
    })
}

/// Returns the status and `rejected_at` of a generated application: mostly in process, some
/// rejected and a few hired.
fn application_status(record: &Record, stable: &mut Rng, prospect: bool) -> (&'static str, Option<String>) {
    if prospect {
        return ("in_process", None);
    }
    match stable.below(100) {
        0..15 => ("rejected", Some(record.updated_at())),
        15..18 => ("hired", None),
        _ => ("in_process", None),
    }
}
