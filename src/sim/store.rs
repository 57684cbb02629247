//! The simulated account: generated records plus the changes mutations made to them.
//!
//! Memory grows with the number of changes, not with the number of records: a record that was
//! never changed exists only as its index below `Table::next_index`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::generate::{Generator, Parents, Times, format_ms};
use super::resource::Resource;
use super::truth::{Checksum, Truth, full_checksum, record_digest};

/// Changes that mutations made to one record.
#[derive(Debug, Clone)]
struct Override {
    /// Number of content updates; selects the generated content of the record.
    revision: u32,
    times: Times,
    deleted: bool,
    /// Candidate of an application created or moved by a merge after start.
    candidate: Option<u64>,
    /// Fields set explicitly by a mutation (status, rejected_at...), applied last.
    patch: Map<String, Value>,
}

/// One resource's records.
#[derive(Debug)]
struct Table {
    /// Records `0..next_index` were generated or created; those not deleted exist.
    next_index: u64,
    overrides: BTreeMap<u64, Override>,
    /// Count and digest sum of the existing records, kept up to date on every change once
    /// the first truth request has computed it.
    checksum: Option<Checksum>,
}

/// The whole account.
#[derive(Debug)]
pub struct Store {
    generator: Generator,
    tables: HashMap<Resource, Table>,
    /// Applications created after start, or moved by a merge, by candidate index; generated
    /// applications are found from their index without this map.
    extra_applications: HashMap<u64, Vec<u64>>,
}

impl Store {
    /// Creates the account that `generator` describes, with no changes yet.
    pub fn new(generator: Generator) -> Self {
        let tables = Resource::ALL
            .into_iter()
            .map(|resource| {
                let table = Table { next_index: generator.sizes.count(resource), overrides: BTreeMap::new(), checksum: None };
                (resource, table)
            })
            .collect();
        Store { generator, tables, extra_applications: HashMap::new() }
    }

    /// Returns the generator behind the records.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    fn table(&self, resource: Resource) -> &Table {
        self.tables.get(&resource).expect("every resource has a table")
    }

    fn table_mut(&mut self, resource: Resource) -> &mut Table {
        self.tables.get_mut(&resource).expect("every resource has a table")
    }

    /// Returns one past the highest index ever used for `resource`.
    pub fn next_index(&self, resource: Resource) -> u64 {
        self.table(resource).next_index
    }

    /// Returns the count and checksum of `resource`. The first call reads every record, and
    /// later calls return the sum that every change has kept up to date.
    pub fn truth(&mut self, resource: Resource) -> Truth {
        if let Some(checksum) = self.table(resource).checksum {
            return checksum.truth();
        }
        let checksum = full_checksum(self, resource);
        self.table_mut(resource).checksum = Some(checksum);
        checksum.truth()
    }

    /// Adds (`present`) or removes the current digest of a record from the running checksum.
    /// Every change removes the record's digest before and adds it back after.
    fn account(&mut self, resource: Resource, index: u64, present: bool) {
        if self.table(resource).checksum.is_none() {
            return;
        }
        let Some(record) = self.record(resource, index) else { return };
        let digest = record_digest(resource, index, &record);
        if let Some(checksum) = self.table_mut(resource).checksum.as_mut() {
            if present { checksum.add(&digest) } else { checksum.remove(&digest) }
        }
    }

    /// Returns the timestamps of a record, or `None` when it does not exist.
    pub fn times(&self, resource: Resource, index: u64) -> Option<Times> {
        let table = self.table(resource);
        if index >= table.next_index {
            return None;
        }
        match table.overrides.get(&index) {
            Some(change) if change.deleted => None,
            Some(change) => Some(change.times),
            None => Some(self.generator.base_times(resource, index)),
        }
    }

    /// Returns true when the record exists now.
    pub fn exists(&self, resource: Resource, index: u64) -> bool {
        self.times(resource, index).is_some()
    }

    /// Returns the parents a record points at now.
    pub fn parents(&self, resource: Resource, index: u64) -> Parents {
        let mut parents = self.generator.parents(resource, index);
        if resource == Resource::Applications {
            let moved = self.table(resource).overrides.get(&index).and_then(|change| change.candidate);
            parents.candidate = moved.or(parents.candidate);
        }
        parents
    }

    /// Builds the current v3 JSON of a record, or `None` when it does not exist.
    pub fn record(&self, resource: Resource, index: u64) -> Option<Map<String, Value>> {
        let times = self.times(resource, index)?;
        let change = self.table(resource).overrides.get(&index);
        let revision = change.map_or(0, |change| change.revision);
        let mut record = self.generator.render(resource, index, revision, times);

        if let Some(candidate) = change.and_then(|change| change.candidate) {
            record.insert("candidate_id".to_owned(), Value::from(Resource::Candidates.id_of(candidate)));
        }
        for (key, value) in change.map(|change| &change.patch).into_iter().flatten() {
            record.insert(key.clone(), value.clone());
        }
        Some(record)
    }

    /// Returns the indexes of the existing applications of a candidate.
    pub fn applications_of(&self, candidate: u64) -> Vec<u64> {
        let candidates = self.generator.sizes.candidates.max(1);
        let generated = self.generator.sizes.applications;
        let mut found: Vec<u64> = (candidate..generated).step_by(candidates as usize).collect();
        found.extend(self.extra_applications.get(&candidate).into_iter().flatten());

        found.sort_unstable();
        found.dedup();
        found.retain(|&app| {
            self.exists(Resource::Applications, app) && self.parents(Resource::Applications, app).candidate == Some(candidate)
        });
        found
    }

    /// Adds a record created now and returns its index.
    pub fn create(&mut self, resource: Resource, now_ms: i64) -> u64 {
        let table = self.table_mut(resource);
        let index = table.next_index;
        table.next_index += 1;

        let times = Times { created_ms: now_ms, updated_ms: now_ms };
        let change = Override { revision: 0, times, deleted: false, candidate: None, patch: Map::new() };
        table.overrides.insert(index, change);
        self.account(resource, index, true);
        index
    }

    /// Marks a record as changed now: a new revision of its content and a later `updated_at`.
    ///
    /// `updated_at` always moves forward by at least a millisecond, even when the clock did
    /// not, so that every change is visible to an `updated_at` guard.
    pub fn touch(&mut self, resource: Resource, index: u64, now_ms: i64) {
        let Some(times) = self.times(resource, index) else { return };
        self.account(resource, index, false);
        let change = self.override_mut(resource, index, times);
        change.revision += 1;
        change.times.updated_ms = now_ms.max(times.updated_ms + 1);
        self.account(resource, index, true);
    }

    /// Sets one field of a record explicitly, on top of its generated content.
    pub fn set_field(&mut self, resource: Resource, index: u64, key: &str, value: Value) {
        let Some(times) = self.times(resource, index) else { return };
        self.account(resource, index, false);
        let change = self.override_mut(resource, index, times);
        change.patch.insert(key.to_owned(), value);
        self.account(resource, index, true);
    }

    /// Points an application at another candidate.
    pub fn set_application_candidate(&mut self, application: u64, candidate: u64) {
        let Some(times) = self.times(Resource::Applications, application) else { return };
        self.account(Resource::Applications, application, false);
        self.override_mut(Resource::Applications, application, times).candidate = Some(candidate);
        self.extra_applications.entry(candidate).or_default().push(application);
        self.account(Resource::Applications, application, true);
    }

    /// Deletes a record. Deleting a missing record does nothing.
    pub fn delete(&mut self, resource: Resource, index: u64) {
        let Some(times) = self.times(resource, index) else { return };
        self.account(resource, index, false);
        self.override_mut(resource, index, times).deleted = true;
    }

    fn override_mut(&mut self, resource: Resource, index: u64, times: Times) -> &mut Override {
        let table = self.table_mut(resource);
        table.overrides.entry(index).or_insert_with(|| Override {
            revision: 0,
            times,
            deleted: false,
            candidate: None,
            patch: Map::new(),
        })
    }

    /// Number of records changed since start, across all resources.
    pub fn changed_records(&self) -> usize {
        self.tables.values().map(|table| table.overrides.len()).sum()
    }
}

/// Formats a record's `updated_at`, for ground-truth listings.
pub fn updated_at_of(times: Times) -> String {
    format_ms(times.updated_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::Sizes;

    fn store() -> Store {
        Store::new(Generator::new(3, Sizes::default()))
    }

    #[test]
    fn touch_moves_updated_at_forward() {
        let mut store = store();
        let before = store.times(Resource::Candidates, 5).expect("generated candidate exists");
        store.touch(Resource::Candidates, 5, 0);
        let after = store.times(Resource::Candidates, 5).expect("touched candidate exists");
        assert_eq!(after.updated_ms, before.updated_ms + 1);
        assert_eq!(after.created_ms, before.created_ms);
    }

    #[test]
    fn deleted_record_is_gone() {
        let mut store = store();
        store.delete(Resource::Jobs, 2);
        assert!(store.record(Resource::Jobs, 2).is_none());
        assert!(store.exists(Resource::Jobs, 3));
    }

    #[test]
    fn created_record_gets_next_id() {
        let mut store = store();
        let count = store.next_index(Resource::Candidates);
        let index = store.create(Resource::Candidates, 1_900_000_000_000);
        assert_eq!(index, count);
        let record = store.record(Resource::Candidates, index).expect("created candidate exists");
        assert_eq!(record.get("created_at"), Some(&Value::from("2030-03-17T17:46:40.000Z")));
    }

    #[test]
    fn moved_application_follows_candidate() {
        let mut store = store();
        let application = store.applications_of(1)[0];
        store.set_application_candidate(application, 2);
        assert!(!store.applications_of(1).contains(&application));
        assert!(store.applications_of(2).contains(&application));
        let record = store.record(Resource::Applications, application).expect("application exists");
        assert_eq!(record.get("candidate_id"), Some(&Value::from(Resource::Candidates.id_of(2))));
    }
}
