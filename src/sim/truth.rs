//! Ground truth: what the account contains now, for tests that compare a synced copy with it.
//!
//! The checksum of a resource is the sum, modulo 2^256, of one SHA-256 digest per existing
//! record, read as a big-endian number and written as 64 lowercase hex digits. Each digest is
//! taken over `<id>\n<updated_at>\n<canonical JSON>`, where the canonical JSON is compact with
//! object keys sorted. A sum does not depend on record order, so the store can keep it up to
//! date on every change instead of reading every record again. It changes exactly when a
//! record is created, deleted, or changes content or `updated_at`.

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

/// Running count and digest sum of one resource's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    count: u64,
    /// 256-bit sum as four 64-bit limbs, least significant first.
    sum: [u64; 4],
}

impl Checksum {
    /// Adds one record's digest.
    pub fn add(&mut self, digest: &[u8; 32]) {
        let mut carry = false;
        for (limb, value) in self.sum.iter_mut().zip(limbs(digest)) {
            let (partial, overflow_a) = limb.overflowing_add(value);
            let (total, overflow_b) = partial.overflowing_add(u64::from(carry));
            *limb = total;
            carry = overflow_a || overflow_b;
        }
        self.count += 1;
    }

    /// Removes one record's digest, added before.
    pub fn remove(&mut self, digest: &[u8; 32]) {
        let mut borrow = false;
        for (limb, value) in self.sum.iter_mut().zip(limbs(digest)) {
            let (partial, underflow_a) = limb.overflowing_sub(value);
            let (total, underflow_b) = partial.overflowing_sub(u64::from(borrow));
            *limb = total;
            borrow = underflow_a || underflow_b;
        }
        self.count = self.count.saturating_sub(1);
    }

    /// Returns the count and the sum as 64 hex digits, most significant first.
    pub fn truth(&self) -> Truth {
        let checksum = self.sum.iter().rev().map(|limb| format!("{limb:016x}")).collect();
        Truth { count: self.count, checksum }
    }
}

/// Splits a big-endian 256-bit digest into limbs, least significant first.
fn limbs(digest: &[u8; 32]) -> [u64; 4] {
    let mut limbs = [0u64; 4];
    for (i, chunk) in digest.rchunks_exact(8).enumerate() {
        limbs[i] = u64::from_be_bytes(chunk.try_into().expect("rchunks_exact yields 8-byte chunks"));
    }
    limbs
}

/// Returns the digest of one record as the checksum counts it.
pub fn record_digest(resource: Resource, index: u64, record: &Map<String, Value>) -> [u8; 32] {
    let updated_at = record.get("updated_at").and_then(Value::as_str).unwrap_or_default();
    let mut canonical = String::new();
    write_canonical_object(record, &mut canonical);

    let mut hasher = Sha256::new();
    hasher.update(format!("{}\n{updated_at}\n", resource.id_of(index)));
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Computes the checksum of a resource from every existing record.
pub fn full_checksum(store: &Store, resource: Resource) -> Checksum {
    let mut checksum = Checksum::default();
    for index in 0..store.next_index(resource) {
        if let Some(record) = store.record(resource, index) {
            checksum.add(&record_digest(resource, index, &record));
        }
    }
    checksum
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
        Value::Object(map) => write_canonical_object(map, out),
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

fn write_canonical_object(map: &Map<String, Value>, out: &mut String) {
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
    fn sum_is_order_independent_and_reversible() {
        let digests = [[0xffu8; 32], [1u8; 32], [0x80u8; 32]];
        let mut forward = Checksum::default();
        let mut backward = Checksum::default();
        for digest in &digests {
            forward.add(digest);
        }
        for digest in digests.iter().rev() {
            backward.add(digest);
        }
        assert_eq!(forward, backward);

        for digest in &digests {
            forward.remove(digest);
        }
        assert_eq!(forward, Checksum::default());
    }

    #[test]
    fn maintained_checksum_equals_full_recompute() {
        let mut store = Store::new(Generator::new(1, Sizes::default()));
        let first = store.truth(Resource::Applications);
        assert_eq!(first, full_checksum(&store, Resource::Applications).truth());

        let mut mutator = crate::sim::mutate::Mutator::new(5);
        for step in 0..200 {
            mutator.apply(&mut store, None, 1_900_000_000_000 + step);
        }
        for resource in Resource::ALL {
            assert_eq!(store.truth(resource), full_checksum(&store, resource).truth(), "{resource}");
        }
        assert_ne!(store.truth(Resource::Applications), first);
    }

    #[test]
    fn checksum_changes_only_with_data() {
        let mut store = Store::new(Generator::new(1, Sizes::default()));
        let first = store.truth(Resource::Jobs);
        assert_eq!(store.truth(Resource::Jobs), first);

        store.touch(Resource::Jobs, 1, 0);
        let second = store.truth(Resource::Jobs);
        assert_ne!(first.checksum, second.checksum);
        assert_eq!(first.count, second.count);

        store.delete(Resource::Jobs, 1);
        let third = store.truth(Resource::Jobs);
        assert_eq!(third.count, first.count - 1);
    }
}
