//! Jobs, job posts and job interview stages.

use serde_json::{Value, json};

use crate::sim::config::STAGES_PER_JOB;
use crate::sim::resource::Resource;
use crate::sim::rng::Rng;

use super::custom_fields::{FieldSet, custom_fields};
use super::{Record, format_ms, text};

pub(super) fn job(record: &Record, rng: &mut Rng) -> Value {
    let sizes = &record.generator.sizes;
    let name = text::JOB_NAMES[record.index as usize % text::JOB_NAMES.len()];
    let status = *rng.pick(&["open", "open", "open", "closed", "draft"]);
    let closed_at = (status == "closed").then(|| record.updated_at());

    json!({
        "id": record.id(),
        "name": name,
        "requisition_id": rng.chance(2, 3).then(|| format!("{}", 10 + record.index)),
        "notes": rng.chance(1, 2).then(|| format!("<p>{}</p>", text::note(rng, 2))),
        "confidential": rng.chance(1, 10),
        "created_at": record.created_at(),
        "updated_at": record.updated_at(),
        "is_template": if rng.chance(1, 3) { Value::Null } else { json!(false) },
        "copied_from_id": (record.index > 0 && rng.chance(1, 4)).then(|| Resource::Jobs.id_of(0)),
        "opened_at": (status != "draft").then(|| record.created_at()),
        "closed_at": closed_at,
        "status": status,
        "office_ids": [Resource::Offices.id_of(rng.below(sizes.offices))],
        "department_id": rng.chance(9, 10).then(|| Resource::Departments.id_of(rng.below(sizes.departments))),
        "custom_fields": custom_fields(rng, FieldSet::Job, &|bits| record.generator.user_id(bits)),
    })
}

/// Builds a job post. Each job has one post, which shares the job's index.
pub(super) fn job_post(record: &Record, rng: &mut Rng) -> Value {
    let title = text::JOB_NAMES[record.index as usize % text::JOB_NAMES.len()];
    let live = rng.chance(2, 3);
    let content_sentences = 1 + rng.below(6);
    let questions: Vec<Value> = [("First Name", "first_name", true), ("Last Name", "last_name", true), ("Resume", "resume", false)]
        .into_iter()
        .map(|(label, name, required)| {
            let answer_type = if name == "resume" { "attachment" } else { "short_text" };
            json!({ "id": null, "description": null, "label": label, "name": name, "required": required, "private": false, "answer_type": answer_type, "options": [] })
        })
        .collect();

    json!({
        "id": record.id(),
        "title": title,
        "language": *rng.pick(&["en", "en", "fr", "de"]),
        "demographic_question_set_id": null,
        "created_at": record.created_at(),
        "updated_at": record.updated_at(),
        "job_id": Resource::Jobs.id_of(record.index),
        "first_published_at": live.then(|| format_ms(record.times.created_ms + 3_600_000)),
        "public_url": live.then(|| format!("https://job-boards.example.com/sim/jobs/{}", record.id())),
        "active": true,
        "internal": rng.chance(1, 5),
        "live": live,
        "featured": rng.chance(1, 10),
        "job_board_id": 1 + rng.below(2),
        "content": format!("<h2>{title}</h2><p>{}</p>", text::note(rng, content_sentences)),
        "questions": questions,
    })
}

/// Builds a stage. Each job has five, so the stage at index `i` is slot `i % 5` of job `i / 5`.
pub(super) fn job_interview_stage(record: &Record, _rng: &mut Rng) -> Value {
    let slot = record.index % STAGES_PER_JOB;
    json!({
        "id": record.id(),
        "created_at": record.created_at(),
        "updated_at": record.updated_at(),
        "name": text::STAGE_NAMES[slot as usize],
        "active": true,
        "job_id": Resource::Jobs.id_of(record.index / STAGES_PER_JOB),
        "sort_order": slot,
    })
}
