//! Offers, interviews and scorecards: records that hang off an application on a job.

use serde_json::{Value, json};

use crate::sim::resource::Resource;
use crate::sim::rng::Rng;

use super::custom_fields::{FieldSet, custom_fields};
use super::{Generator, Record, format_ms, text};

/// Builds an offer. Offers come in pairs on one application: version 1, deprecated, and version 2, current.
pub(super) fn offer(record: &Record, rng: &mut Rng) -> Value {
    let generator = record.generator;
    let (application, job) = generator.offer_application(record.index);
    let candidate = generator.application_links(application).candidate;
    let version = record.index % 2 + 1;
    let status = if version == 1 {
        "Deprecated"
    } else {
        *rng.pick(&["Created", "Approved", "Sent", "Accepted", "Rejected"])
    };
    let resolved = matches!(status, "Accepted" | "Rejected" | "Deprecated");
    let starts_ms = record.times.created_ms + 30 * 24 * 3600 * 1000;

    json!({
        "id": record.id(),
        "version": version,
        "resolved_at": resolved.then(|| record.updated_at()),
        "sent_on": (status != "Created").then(|| record.created_at()),
        "created_at": record.created_at(),
        "updated_at": record.updated_at(),
        "application_id": Resource::Applications.id_of(application),
        "opening_id": 8_000_000_002_i64 + job as i64 * 1000,
        "starts_on": format_ms(starts_ms),
        "job_id": Resource::Jobs.id_of(job),
        "status": status,
        "candidate_id": Resource::Candidates.id_of(candidate),
        "custom_fields": custom_fields(rng, FieldSet::Offer, &|bits| generator.user_id(bits)),
    })
}

pub(super) fn interview(record: &Record, rng: &mut Rng) -> Value {
    let (application, job) = record.generator.interview_application(record.index);
    let mut stable = record.stable_rng();
    let status = *rng.pick(&["scheduled", "awaiting_feedback", "complete", "collect_feedback", "to_be_scheduled"]);
    let scheduled = status != "to_be_scheduled";
    let starts_ms = record.times.created_ms + 2 * 24 * 3600 * 1000;

    json!({
        "id": record.id(),
        "application_id": Resource::Applications.id_of(application),
        "external_event_id": scheduled.then(|| format!("evt_{:x}", stable.next_u64())),
        "starts_at": scheduled.then(|| format_ms(starts_ms)),
        "ends_at": scheduled.then(|| format_ms(starts_ms + 3_600_000)),
        "location": scheduled.then(|| *stable.pick(&["Room Ada Lovelace", "Salle Hopper", "Zoom"])),
        "created_at": record.created_at(),
        "updated_at": record.updated_at(),
        "organizer_id": scheduled.then(|| record.user_id(&mut stable)),
        "scheduled_at": scheduled.then(|| record.created_at()),
        "availability_received_at": null,
        "job_id": Resource::Jobs.id_of(job),
        "job_interview_id": 9_000_000_002_i64 + (Generator::stage_index(job, stable.below(5)) as i64) * 1000,
        "all_day_start_on": null,
        "all_day_end_on": null,
        "video_conferencing_url": scheduled.then(|| format!("https://meet.example.com/{:x}", stable.next_u64())),
        "status": status,
    })
}

/// Builds a scorecard: one per interview where interviews exist, with long notes.
pub(super) fn scorecard(record: &Record, rng: &mut Rng) -> Value {
    let generator = record.generator;
    let application = generator.scorecard_application(record.index);
    let mut stable = record.stable_rng();
    let submitted = rng.chance(3, 4);
    let interviewer_id = record.user_id(&mut stable);
    let note_sentences = 2 + rng.below(40);

    json!({
        "id": record.id(),
        "interview_kit_id": 9_500_000_002_i64 + stable.below(1000) as i64 * 1000,
        "interviewer_id": interviewer_id,
        "submitter_id": submitted.then_some(interviewer_id),
        "application_id": Resource::Applications.id_of(application),
        "notes": text::note(rng, note_sentences),
        "notes_with_tags": null,
        "private_notes": rng.chance(1, 2).then(|| text::note(rng, 3)),
        "private_notes_with_tags": null,
        "public_notes": rng.chance(1, 2).then(|| text::note(rng, 2)),
        "public_notes_with_tags": null,
        "status": if submitted { "complete" } else { "draft" },
        "interviewed_at": record.created_at(),
        "submitted_at": submitted.then(|| record.updated_at()),
        "created_at": record.created_at(),
        "updated_at": record.updated_at(),
        "candidate_rating": *rng.pick(&["definitely_not", "no", "mixed", "yes", "strong_yes", "strong_no"]),
    })
}
