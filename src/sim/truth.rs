//! Ground truth: what the account contains now, for tests that compare a synced copy with it.
//!
//! The checksum of a resource is the lowercase hex SHA-256 over its existing records in
//! ascending id order, each fed as `<id>\n<updated_at>\n<canonical JSON>\n`, where the
//! canonical JSON is compact with object keys sorted. It changes exactly when a record is
//! created, deleted, or changes content or `updated_at`.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::resource::Resource;
use super::store::{Store, updated_at_of};

/// Count and checksum of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truth {
    pub count: u64,
    pub checksum: String,
}

/// Checksums already computed, keyed by resource and valid while its version is unchanged.
#[derive(Debug, Default)]
pub struct TruthCache {
    entries: HashMap<Resource, (u64, Truth)>,
}

impl TruthCache {
    /// Returns the truth of `resource`, computing it only when the resource changed since the
    /// last call.
    pub fn get(&mut self, store: &Store, resource: Resource) -> Truth {
        let version = store.version(resource);
        if let Some((cached_version, truth)) = self.entries.get(&resource) {
            if *cached_version == version {
                return truth.clone();
            }
        }
        let truth = compute(store, resource);
        self.entries.insert(resource, (version, truth.clone()));
        truth
    }
}

fn compute(store: &Store, resource: Resource) -> Truth {
    let mut hasher = Sha256::new();
    let mut count = 0;
    for index in 0..store.next_index(resource) {
        let Some(record) = store.record(resource, index) else { continue };
        let updated_at = record.get("updated_at").and_then(Value::as_str).unwrap_or_default();
        hasher.update(format!("{}\n{updated_at}\n", resource.id_of(index)));
        let mut canonical = String::new();
        write_canonical(&Value::Object(record.clone()), &mut canonical);
        hasher.update(canonical);
        hasher.update(b"\n");
        count += 1;
    }
    Truth { count, checksum: hex::encode(hasher.finalize()) }
}

/// Returns `[id, updated_at]` of every existing record, in ascending id order.
pub fn versions(store: &Store, resource: Resource) -> Vec<(i64, String)> {
    (0..store.next_index(resource))
        .filter_map(|index| store.times(resource, index).map(|times| (resource.id_of(index), updated_at_of(times))))
        .collect()
}

/// Returns every existing record in ascending id order.
pub fn dump(store: &Store, resource: Resource) -> Vec<Map<String, Value>> {
    (0..store.next_index(resource)).filter_map(|index| store.record(resource, index)).collect()
}

/// Writes compact JSON with object keys sorted, whatever order the map keeps them in.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::Sizes;
    use crate::sim::generate::Generator;

    #[test]
    fn canonical_sorts_keys() {
        let value = serde_json::json!({"b": [1, {"d": null, "c": "x"}], "a": true});
        let mut out = String::new();
        write_canonical(&value, &mut out);
        assert_eq!(out, r#"{"a":true,"b":[1,{"c":"x","d":null}]}"#);
    }

    #[test]
    fn checksum_changes_only_with_data() {
        let mut store = Store::new(Generator::new(1, Sizes::default()));
        let mut cache = TruthCache::default();
        let first = cache.get(&store, Resource::Jobs);
        assert_eq!(compute(&store, Resource::Jobs), first);

        store.touch(Resource::Jobs, 1, 0);
        let second = cache.get(&store, Resource::Jobs);
        assert_ne!(first.checksum, second.checksum);
        assert_eq!(first.count, second.count);

        store.delete(Resource::Jobs, 1);
        let third = cache.get(&store, Resource::Jobs);
        assert_eq!(third.count, first.count - 1);
    }
}
