//! Deterministic record generation.
//!
//! A record is a pure function of `(seed, resource, index, revision)` plus its timestamps, so
//! the simulator never stores generated records: it builds them again whenever they are read.
//! Only changes made by mutations are kept, in `store`.

mod activity;
mod custom_fields;
mod jobs;
mod org;
mod people;
pub mod text;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::config::{STAGES_PER_JOB, Sizes};
use super::resource::Resource;
use super::rng::Rng;

/// Time by which every generated record was created and last updated:
/// 2026-09-01T00:00:00.000Z in milliseconds since the epoch.
pub const ANCHOR_MS: i64 = 1_788_220_800_000;

/// Generated records are spread over the three years before `ANCHOR_MS`.
const HISTORY_MS: i64 = 3 * 365 * 24 * 3600 * 1000;

/// Creation and last-update time of a record, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Parents of an application: its candidate and, unless it is a jobless prospect, its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplicationLinks {
    pub candidate: u64,
    pub job: Option<u64>,
    pub prospect: bool,
}

/// Indexes of the records a record points at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parents {
    pub candidate: Option<u64>,
    pub job: Option<u64>,
    pub application: Option<u64>,
}

/// Builds records from the seed and the sizes the simulator started with.
#[derive(Debug, Clone)]
pub struct Generator {
    pub seed: u64,
    pub sizes: Sizes,
}

/// Separates the random streams used for different purposes, so that changing what a record
/// contains does not change where it points.
#[derive(Clone, Copy)]
enum Stream {
    Times = 1,
    Links = 2,
    Content = 3,
}

impl Generator {
    /// Creates a generator for `sizes` with `seed`.
    pub fn new(seed: u64, sizes: Sizes) -> Self {
        Generator { seed, sizes }
    }

    fn rng(&self, resource: Resource, index: u64, stream: Stream, revision: u32) -> Rng {
        let keys = [self.seed, resource as u64, index, stream as u64, u64::from(revision)];
        Rng::from_keys(&keys)
    }

    /// Returns the timestamps of a record generated at start.
    ///
    /// Creation times grow with the index, as ids grow with creation time in Greenhouse. About
    /// a third of the records were never updated after creation.
    pub fn base_times(&self, resource: Resource, index: u64) -> Times {
        let count = self.sizes.count(resource).max(1) as i64;
        let slot = HISTORY_MS / count;
        let mut rng = self.rng(resource, index, Stream::Times, 0);

        let created_ms = ANCHOR_MS - HISTORY_MS + index as i64 * slot + rng.below(slot.max(1) as u64) as i64;
        let updated_ms = if rng.chance(1, 3) {
            created_ms
        } else {
            created_ms + rng.below((ANCHOR_MS - created_ms).max(1) as u64) as i64
        };
        Times { created_ms, updated_ms }
    }

    /// Builds the v3 JSON object of a record at `revision` (0 for the generated original).
    pub fn render(&self, resource: Resource, index: u64, revision: u32, times: Times) -> Map<String, Value> {
        let mut rng = self.rng(resource, index, Stream::Content, revision);
        let record = Record { generator: self, resource, index, revision, times };
        let value = match resource {
            Resource::Departments => org::department(&record, &mut rng),
            Resource::Offices => org::office(&record, &mut rng),
            Resource::Users => org::user(&record, &mut rng),
            Resource::Jobs => jobs::job(&record, &mut rng),
            Resource::JobPosts => jobs::job_post(&record, &mut rng),
            Resource::JobInterviewStages => jobs::job_interview_stage(&record, &mut rng),
            Resource::Candidates => people::candidate(&record, &mut rng),
            Resource::Applications => people::application(&record, &mut rng),
            Resource::Offers => activity::offer(&record, &mut rng),
            Resource::Interviews => activity::interview(&record, &mut rng),
            Resource::Scorecards => activity::scorecard(&record, &mut rng),
        };
        match value {
            Value::Object(map) => map,
            _ => unreachable!("record builders return JSON objects"),
        }
    }

    /// Returns the candidate and job an application was generated with.
    ///
    /// One application in ten is a prospect, and half of the prospects have no job.
    pub fn application_links(&self, index: u64) -> ApplicationLinks {
        let mut rng = self.rng(Resource::Applications, index, Stream::Links, 0);
        let candidate = index % self.sizes.candidates.max(1);
        let prospect = rng.chance(1, 10);
        let has_job = !prospect || rng.chance(1, 2);
        let job = has_job.then(|| rng.below(self.sizes.jobs));
        ApplicationLinks { candidate, job, prospect }
    }

    /// Returns the first application at or after `start` (wrapping) that is on a job, for
    /// offers and interviews, which always belong to one.
    pub fn application_with_job(&self, start: u64) -> (u64, u64) {
        let count = self.sizes.applications.max(1);
        for step in 0..count {
            let index = (start + step) % count;
            if let Some(job) = self.application_links(index).job {
                return (index, job);
            }
        }
        // Only reached when no application at all has a job; point at the first job so the
        // record still has a parent.
        (start % count, 0)
    }

    /// Returns the application and job of the offer at `index`. Offers come in pairs, so
    /// indexes `2k` and `2k + 1` share an application.
    pub fn offer_application(&self, index: u64) -> (u64, u64) {
        self.application_with_job((index / 2) * 7)
    }

    /// Returns the application and job of the interview at `index`.
    pub fn interview_application(&self, index: u64) -> (u64, u64) {
        self.application_with_job(index * 31 + 5)
    }

    /// Returns the application of the scorecard at `index`: that of the interview it rates.
    pub fn scorecard_application(&self, index: u64) -> u64 {
        match self.sizes.interviews {
            0 => self.application_with_job(index).0,
            interviews => self.interview_application(index % interviews).0,
        }
    }

    /// Returns the parents a generated record points at, without building the record, so
    /// that list filters such as `job_ids` stay cheap.
    pub fn parents(&self, resource: Resource, index: u64) -> Parents {
        let none = Parents::default();
        match resource {
            Resource::JobPosts => Parents { job: Some(index), ..none },
            Resource::JobInterviewStages => Parents { job: Some(index / STAGES_PER_JOB), ..none },
            Resource::Applications => {
                let links = self.application_links(index);
                Parents { candidate: Some(links.candidate), job: links.job, application: None }
            }
            Resource::Offers => {
                let (application, job) = self.offer_application(index);
                let candidate = self.application_links(application).candidate;
                Parents { candidate: Some(candidate), job: Some(job), application: Some(application) }
            }
            Resource::Interviews => {
                let (application, job) = self.interview_application(index);
                Parents { job: Some(job), application: Some(application), ..none }
            }
            Resource::Scorecards => Parents { application: Some(self.scorecard_application(index)), ..none },
            _ => none,
        }
    }

    /// Returns the index of the stage `slot` (0-based) of job `job`.
    pub fn stage_index(job: u64, slot: u64) -> u64 {
        job * STAGES_PER_JOB + slot % STAGES_PER_JOB
    }

    /// Returns the id of a user picked by `bits`.
    pub fn user_id(&self, bits: u64) -> i64 {
        Resource::Users.id_of(bits % self.sizes.users.max(1))
    }
}

/// Context of the record a builder builds.
struct Record<'a> {
    generator: &'a Generator,
    resource: Resource,
    index: u64,
    revision: u32,
    times: Times,
}

impl Record<'_> {
    fn id(&self) -> i64 {
        self.resource.id_of(self.index)
    }

    fn created_at(&self) -> String {
        format_ms(self.times.created_ms)
    }

    fn updated_at(&self) -> String {
        format_ms(self.times.updated_ms)
    }

    fn user_id(&self, rng: &mut Rng) -> i64 {
        self.generator.user_id(rng.next_u64())
    }

    /// Returns a random stream that ignores the revision, for fields that updates never change
    /// (names, e-mail addresses, parents).
    fn stable_rng(&self) -> Rng {
        self.generator.rng(self.resource, self.index, Stream::Content, 0)
    }
}

/// Formats milliseconds since the epoch as Greenhouse does: `2024-01-01T12:30:30.000Z`.
pub fn format_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_deterministic() {
        let generator = Generator::new(7, Sizes::default());
        for resource in Resource::ALL {
            let times = generator.base_times(resource, 3);
            let a = generator.render(resource, 3, 0, times);
            let b = generator.render(resource, 3, 0, times);
            assert_eq!(a, b, "{resource}");
            assert_eq!(a.get("id"), Some(&Value::from(resource.id_of(3))), "{resource}");
        }
    }

    #[test]
    fn revisions_change_content() {
        let generator = Generator::new(7, Sizes::default());
        let times = generator.base_times(Resource::Candidates, 4);
        let first = generator.render(Resource::Candidates, 4, 0, times);
        let second = generator.render(Resource::Candidates, 4, 1, times);
        assert_ne!(first, second);
    }

    #[test]
    fn base_times_are_before_anchor() {
        let generator = Generator::new(7, Sizes::default());
        for index in 0..generator.sizes.candidates {
            let times = generator.base_times(Resource::Candidates, index);
            assert!(times.created_ms <= times.updated_ms);
            assert!(times.updated_ms <= ANCHOR_MS);
        }
    }

    #[test]
    fn timestamps_have_milliseconds() {
        assert_eq!(format_ms(1_788_220_800_123), "2026-09-01T00:00:00.123Z");
    }
}
