//! Pages of a Harvest v3 list, in descending id order.

use serde_json::{Map, Value};

use super::query::{InvalidQuery, ListQuery};
use super::resource::Resource;
use super::store::Store;

/// One page of records, and the cursor of the next page when there is one.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<Map<String, Value>>,
    pub next_cursor: Option<String>,
}

/// Returns the page `query` selects.
///
/// Pages walk ids downwards from the cursor's last id. Records created while a client pages get
/// higher ids, so that chain does not return them, and every record that exists from the first
/// page to the last is returned exactly once.
pub fn list(store: &Store, resource: Resource, query: &ListQuery) -> Result<Page, InvalidQuery> {
    let start = match query.after_id {
        None => store.next_index(resource),
        Some(id) => resource
            .index_of(id)
            .ok_or_else(|| InvalidQuery(format!("invalid cursor: it was issued for another resource than /v3/{resource}")))?,
    };
    let wanted = query.per_page as usize + 1;

    let matches: Vec<u64> = match &query.ids {
        Some(ids) => ids
            .iter()
            .rev()
            .filter_map(|id| resource.index_of(*id))
            .filter(|index| *index < start)
            .filter(|index| is_match(store, resource, *index, query))
            .take(wanted)
            .collect(),
        None => (0..start)
            .rev()
            .filter(|index| is_match(store, resource, *index, query))
            .take(wanted)
            .collect(),
    };

    let has_more = matches.len() > query.per_page as usize;
    let records: Vec<Map<String, Value>> = matches
        .iter()
        .take(query.per_page as usize)
        .filter_map(|index| store.record(resource, *index))
        .map(|record| select_fields(record, query.fields.as_deref()))
        .collect();
    let last_id = matches.get(query.per_page as usize - 1).map(|index| resource.id_of(*index));
    let next_cursor = match (has_more, last_id) {
        (true, Some(last_id)) => Some(query.next_cursor(last_id)),
        _ => None,
    };
    Ok(Page { records, next_cursor })
}

fn is_match(store: &Store, resource: Resource, index: u64, query: &ListQuery) -> bool {
    match store.times(resource, index) {
        Some(times) => query.matches(store, resource, index, times),
        None => false,
    }
}

/// Keeps only the requested fields, and always `id`.
fn select_fields(record: Map<String, Value>, fields: Option<&[String]>) -> Map<String, Value> {
    let Some(fields) = fields else { return record };
    record
        .into_iter()
        .filter(|(key, _)| key == "id" || fields.iter().any(|field| field == key))
        .collect()
}
