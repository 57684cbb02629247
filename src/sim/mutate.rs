//! Mutations: the changes a live Greenhouse account goes through while it is being synced.
//!
//! Each mutation changes the store and returns the webhooks Greenhouse would send for it. The
//! choice of mutation and of its target depends only on the seed and the number of mutations
//! applied before. A test that applies mutations synchronously therefore gets the same
//! changes on every run, with only the timestamps, which come from the clock, differing.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::generate::format_ms;
use super::resource::Resource;
use super::rng::Rng;
use super::store::Store;
use super::webhook::payload::{self, Event};

/// A kind of change, named after what happens in Greenhouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    UpdateCandidate,
    CreateCandidate,
    CreateProspect,
    StageChange,
    UpdateApplication,
    RejectApplication,
    DeleteApplication,
    DeleteCandidate,
    MergeCandidates,
    CreateOffer,
    UpdateOffer,
    UpdateJob,
    DeleteInterview,
    DeleteScorecard,
}

/// Relative frequency of each kind in the background stream and in unspecified requests.
const WEIGHTS: &[(MutationKind, u64)] = &[
    (MutationKind::UpdateCandidate, 25),
    (MutationKind::CreateCandidate, 8),
    (MutationKind::CreateProspect, 4),
    (MutationKind::StageChange, 15),
    (MutationKind::UpdateApplication, 8),
    (MutationKind::RejectApplication, 5),
    (MutationKind::DeleteApplication, 4),
    (MutationKind::DeleteCandidate, 4),
    (MutationKind::MergeCandidates, 4),
    (MutationKind::CreateOffer, 4),
    (MutationKind::UpdateOffer, 8),
    (MutationKind::UpdateJob, 5),
    (MutationKind::DeleteInterview, 3),
    (MutationKind::DeleteScorecard, 3),
];

/// Summary of one applied mutation and the webhooks it causes.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub kind: MutationKind,
    pub resource: Resource,
    pub id: i64,
    #[serde(skip)]
    pub events: Vec<Event>,
}

/// Picks and applies mutations in a reproducible sequence.
#[derive(Debug)]
pub struct Mutator {
    seed: u64,
    applied: u64,
}

impl Mutator {
    /// Creates a mutator whose sequence depends on `seed`.
    pub fn new(seed: u64) -> Self {
        Mutator { seed, applied: 0 }
    }

    /// Applies one mutation of `kind`, or of a weighted random kind when `None`.
    ///
    /// Returns `None` when no target exists any more (every candidate deleted, say).
    pub fn apply(&mut self, store: &mut Store, kind: Option<MutationKind>, now_ms: i64) -> Option<Applied> {
        let mut rng = Rng::from_keys(&[self.seed, 0x6d75_7461_7465, self.applied]);
        self.applied += 1;
        let kind = kind.unwrap_or_else(|| weighted_kind(&mut rng));
        let mut change = Change { store, rng, now_ms };
        change.run(kind)
    }
}

fn weighted_kind(rng: &mut Rng) -> MutationKind {
    let total: u64 = WEIGHTS.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.below(total);
    for (kind, weight) in WEIGHTS {
        if roll < *weight {
            return *kind;
        }
        roll -= weight;
    }
    MutationKind::UpdateCandidate
}

/// One mutation in progress.
struct Change<'a> {
    store: &'a mut Store,
    rng: Rng,
    now_ms: i64,
}

impl Change<'_> {
    fn run(&mut self, kind: MutationKind) -> Option<Applied> {
        let (resource, index, events) = match kind {
            MutationKind::UpdateCandidate => self.update_candidate()?,
            MutationKind::CreateCandidate => self.create_candidate(false)?,
            MutationKind::CreateProspect => self.create_candidate(true)?,
            MutationKind::StageChange => self.update_application("candidate_stage_change")?,
            MutationKind::UpdateApplication => self.update_application("application_updated")?,
            MutationKind::RejectApplication => self.reject_application()?,
            MutationKind::DeleteApplication => self.delete_application()?,
            MutationKind::DeleteCandidate => self.delete_candidate()?,
            MutationKind::MergeCandidates => self.merge_candidates()?,
            MutationKind::CreateOffer => self.create_offer()?,
            MutationKind::UpdateOffer => self.update_offer()?,
            MutationKind::UpdateJob => self.update_job()?,
            MutationKind::DeleteInterview => self.delete_child(Resource::Interviews)?,
            MutationKind::DeleteScorecard => self.delete_child(Resource::Scorecards)?,
        };
        Some(Applied { kind, resource, id: resource.id_of(index), events })
    }

    /// Picks an existing record at random, probing forward past deleted ones.
    fn pick(&mut self, resource: Resource) -> Option<u64> {
        let count = self.store.next_index(resource);
        let start = self.rng.below(count);
        (0..count.min(256))
            .map(|step| (start + step) % count)
            .find(|index| self.store.exists(resource, *index))
    }

    /// Picks an existing record other than `except`, probing forward from a random start.
    fn pick_other(&mut self, resource: Resource, except: u64) -> Option<u64> {
        let count = self.store.next_index(resource);
        let start = self.rng.below(count);
        (0..count.min(256))
            .map(|step| (start + step) % count)
            .find(|index| *index != except && self.store.exists(resource, *index))
    }

    fn record(&self, resource: Resource, index: u64) -> Option<serde_json::Map<String, Value>> {
        self.store.record(resource, index)
    }

    fn update_candidate(&mut self) -> Option<(Resource, u64, Vec<Event>)> {
        let index = self.pick(Resource::Candidates)?;
        self.store.touch(Resource::Candidates, index, self.now_ms);
        let record = self.record(Resource::Candidates, index)?;
        let event = Event::new("update_candidate", json!({ "candidate": payload::candidate(&record) }));
        Some((Resource::Candidates, index, vec![event]))
    }

    /// Creates a candidate with one application, as applying to a job (or being sourced as a
    /// prospect) does.
    fn create_candidate(&mut self, prospect: bool) -> Option<(Resource, u64, Vec<Event>)> {
        let candidate = self.store.create(Resource::Candidates, self.now_ms);
        let application = self.store.create(Resource::Applications, self.now_ms);
        self.store.set_application_candidate(application, candidate);
        if prospect {
            self.store.set_field(Resource::Applications, application, "prospect", Value::Bool(true));
        }

        let record = self.record(Resource::Applications, application)?;
        let action = if prospect { "new_prospect_application" } else { "new_candidate_application" };
        let event = Event::new(action, json!({ "application": payload::application(self.store, &record) }));
        Some((Resource::Candidates, candidate, vec![event]))
    }

    fn update_application(&mut self, action: &'static str) -> Option<(Resource, u64, Vec<Event>)> {
        let index = self.pick(Resource::Applications)?;
        self.store.touch(Resource::Applications, index, self.now_ms);
        let record = self.record(Resource::Applications, index)?;
        let event = Event::new(action, json!({ "application": payload::application(self.store, &record) }));
        Some((Resource::Applications, index, vec![event]))
    }

    fn reject_application(&mut self) -> Option<(Resource, u64, Vec<Event>)> {
        let index = self.pick(Resource::Applications)?;
        self.store.touch(Resource::Applications, index, self.now_ms);
        let rejected_at = self.store.times(Resource::Applications, index).map(|times| format_ms(times.updated_ms));
        for (key, value) in [
            ("status", json!("rejected")),
            ("rejected_at", json!(rejected_at)),
            ("stage_id", Value::Null),
            ("job_interview_stage_id", Value::Null),
            ("stage_name", Value::Null),
        ] {
            self.store.set_field(Resource::Applications, index, key, value);
        }

        let record = self.record(Resource::Applications, index)?;
        let event = Event::new("reject_candidate", json!({ "application": payload::application(self.store, &record) }));
        Some((Resource::Applications, index, vec![event]))
    }

    fn delete_application(&mut self) -> Option<(Resource, u64, Vec<Event>)> {
        let index = self.pick(Resource::Applications)?;
        let record = self.record(Resource::Applications, index)?;
        self.store.delete(Resource::Applications, index);
        let event = Event::new("delete_application", json!({ "application": payload::deleted_application(&record) }));
        Some((Resource::Applications, index, vec![event]))
    }

    /// Deletes a candidate and, as Greenhouse does, all of its applications.
    ///
    /// NOTE: offers, interviews and scorecards of those applications are left in place; the
    /// simulator does not cascade further.
    fn delete_candidate(&mut self) -> Option<(Resource, u64, Vec<Event>)> {
        let index = self.pick(Resource::Candidates)?;
        let record = self.record(Resource::Candidates, index)?;
        let applications = self.store.applications_of(index);
        for application in &applications {
            self.store.delete(Resource::Applications, *application);
        }
        self.store.delete(Resource::Candidates, index);

        let mut person = payload::person(&record);
        let deleted_ids: Vec<i64> = applications.iter().map(|app| Resource::Applications.id_of(*app)).collect();
        person.insert("deleted_application_ids".to_owned(), json!(deleted_ids));
        let event = Event::new("delete_candidate", json!({ "person": person }));
        Some((Resource::Candidates, index, vec![event]))
    }

    /// Merges one candidate into another: the old candidate's applications move to the new
    /// one, the old candidate is deleted and both changed records get a new `updated_at`.
    fn merge_candidates(&mut self) -> Option<(Resource, u64, Vec<Event>)> {
        let old = self.pick(Resource::Candidates)?;
        let new = self.pick_other(Resource::Candidates, old)?;
        let record = self.record(Resource::Candidates, old)?;
        for application in self.store.applications_of(old) {
            self.store.set_application_candidate(application, new);
            self.store.touch(Resource::Applications, application, self.now_ms);
        }
        self.store.delete(Resource::Candidates, old);
        self.store.touch(Resource::Candidates, new, self.now_ms);

        let mut person = payload::person(&record);
        person.insert("new_candidate_id".to_owned(), json!(Resource::Candidates.id_of(new)));
        let event = Event::new("merge_candidate", json!({ "person": person }));
        Some((Resource::Candidates, old, vec![event]))
    }

    fn create_offer(&mut self) -> Option<(Resource, u64, Vec<Event>)> {
        let index = self.store.create(Resource::Offers, self.now_ms);
        let record = self.record(Resource::Offers, index)?;
        Some((Resource::Offers, index, vec![Event::new("offer_created", payload::offer(&record))]))
    }

    fn update_offer(&mut self) -> Option<(Resource, u64, Vec<Event>)> {
        let index = self.pick(Resource::Offers)?;
        self.store.touch(Resource::Offers, index, self.now_ms);
        let record = self.record(Resource::Offers, index)?;
        Some((Resource::Offers, index, vec![Event::new("offer_updated", payload::offer(&record))]))
    }

    fn update_job(&mut self) -> Option<(Resource, u64, Vec<Event>)> {
        let index = self.pick(Resource::Jobs)?;
        self.store.touch(Resource::Jobs, index, self.now_ms);
        let record = self.record(Resource::Jobs, index)?;
        let event = Event::new("job_updated", json!({ "job": payload::job(self.store, &record) }));
        Some((Resource::Jobs, index, vec![event]))
    }

    fn delete_child(&mut self, resource: Resource) -> Option<(Resource, u64, Vec<Event>)> {
        let index = self.pick(resource)?;
        let record = self.record(resource, index)?;
        let event = match resource {
            Resource::Interviews => Event::new("interview_deleted", json!({ "interview": { "id": resource.id_of(index) } })),
            _ => Event::new("scorecard_deleted", json!({ "scorecard": payload::deleted_scorecard(self.store, &record) })),
        };
        self.store.delete(resource, index);
        Some((resource, index, vec![event]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::Sizes;
    use crate::sim::generate::Generator;

    fn store() -> Store {
        Store::new(Generator::new(9, Sizes::default()))
    }

    #[test]
    fn same_seed_same_targets() {
        let (mut a, mut b) = (store(), store());
        let (mut first, mut second) = (Mutator::new(4), Mutator::new(4));
        for _ in 0..50 {
            let x = first.apply(&mut a, None, 1_900_000_000_000).map(|applied| (applied.kind, applied.id));
            let y = second.apply(&mut b, None, 1_900_000_000_000).map(|applied| (applied.kind, applied.id));
            assert_eq!(x, y);
        }
    }

    #[test]
    fn delete_candidate_deletes_applications() {
        let mut store = store();
        let applied = Mutator::new(1)
            .apply(&mut store, Some(MutationKind::DeleteCandidate), 1_900_000_000_000)
            .expect("a candidate exists to delete");
        let index = Resource::Candidates.index_of(applied.id).expect("candidate id");
        assert!(!store.exists(Resource::Candidates, index));
        assert!(store.applications_of(index).is_empty());

        let payload = &applied.events[0].payload;
        assert_eq!(applied.events[0].action, "delete_candidate");
        assert_eq!(payload["person"]["id"], applied.id);
        assert!(!payload["person"]["deleted_application_ids"].as_array().expect("ids array").is_empty());
    }

    #[test]
    fn merge_moves_applications() {
        let mut store = store();
        let applied = Mutator::new(2)
            .apply(&mut store, Some(MutationKind::MergeCandidates), 1_900_000_000_000)
            .expect("two candidates exist to merge");
        let new_id = applied.events[0].payload["person"]["new_candidate_id"].as_i64().expect("new_candidate_id");
        let new_index = Resource::Candidates.index_of(new_id).expect("candidate id");
        assert!(!store.exists(Resource::Candidates, Resource::Candidates.index_of(applied.id).expect("candidate id")));
        assert!(store.applications_of(new_index).len() >= 2);
    }

    #[test]
    fn every_kind_applies() {
        let mut store = store();
        let mut mutator = Mutator::new(3);
        for (kind, _) in WEIGHTS {
            let applied = mutator.apply(&mut store, Some(*kind), 1_900_000_000_000);
            let applied = applied.unwrap_or_else(|| panic!("{kind:?} found no target"));
            assert_eq!(applied.events.len(), 1, "{kind:?}");
        }
    }
}
