//! Harvest v3 list parameters: parsing, filtering and cursors.
//!
//! The first request of a list carries `per_page` and filters; the response's `Link` header then
//! carries a cursor that encodes them together with the last id returned, so a cursor request
//! must carry no other parameter (Harvest v3 returns 422 otherwise).

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;
use serde::{Deserialize, Serialize};

use super::generate::Times;
use super::resource::Resource;
use super::store::Store;

/// Largest `per_page` Harvest v3 accepts.
pub const MAX_PER_PAGE: u32 = 500;
/// `per_page` when the request gives none.
pub const DEFAULT_PER_PAGE: u32 = 100;
/// Most ids accepted in `ids` and the other id-list filters.
pub const MAX_IDS: usize = 50;

/// A list request that failed validation, which returns 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidQuery(pub String);

fn invalid(message: impl Into<String>) -> InvalidQuery {
    InvalidQuery(message.into())
}

/// Bounds on a timestamp, from `gte|`, `gt|`, `lte|` and `lt|` operators, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub gte: Option<i64>,
    pub gt: Option<i64>,
    pub lte: Option<i64>,
    pub lt: Option<i64>,
}

impl TimeRange {
    /// Returns true when `ms` satisfies every bound.
    pub fn contains(&self, ms: i64) -> bool {
        self.gte.is_none_or(|bound| ms >= bound)
            && self.gt.is_none_or(|bound| ms > bound)
            && self.lte.is_none_or(|bound| ms <= bound)
            && self.lt.is_none_or(|bound| ms < bound)
    }

    fn is_empty(&self) -> bool {
        *self == TimeRange::default()
    }
}

/// A parsed list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub per_page: u32,
    pub ids: Option<BTreeSet<i64>>,
    pub candidate_ids: Option<BTreeSet<i64>>,
    pub job_ids: Option<BTreeSet<i64>>,
    pub application_ids: Option<BTreeSet<i64>>,
    pub created_at: TimeRange,
    pub updated_at: TimeRange,
    pub last_activity_at: TimeRange,
    /// Fields to return; all when `None`.
    pub fields: Option<Vec<String>>,
    /// The id after which this page starts (exclusive), for cursor requests.
    pub after_id: Option<i64>,
    /// The query parameters of the first request, carried in every cursor.
    pub original: Vec<(String, String)>,
    /// Page number, 1 for the first request.
    pub page: u64,
}

/// Contents of a cursor. Encoded as URL-safe base64 of this JSON, so clients must treat it as
/// opaque.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    query: Vec<(String, String)>,
    id: i64,
    page: u64,
}

impl ListQuery {
    /// Parses the query parameters of `GET /v3/<resource>`.
    pub fn parse(resource: Resource, params: &[(String, String)]) -> Result<Self, InvalidQuery> {
        let cursor = params.iter().find(|(key, _)| key == "cursor");
        let Some((_, cursor)) = cursor else {
            let mut query = Self::parse_first(resource, params)?;
            query.page = 1;
            return Ok(query);
        };

        if params.len() > 1 {
            let others: Vec<&str> = params.iter().map(|(key, _)| key.as_str()).filter(|key| *key != "cursor").collect();
            return Err(invalid(format!(
                "cursor must be the only query parameter, but the request also has: {}; follow the Link header exactly",
                others.join(", ")
            )));
        }
        let cursor = decode_cursor(cursor)?;
        let mut query = Self::parse_first(resource, &cursor.query)?;
        query.after_id = Some(cursor.id);
        query.page = cursor.page;
        Ok(query)
    }

    fn parse_first(resource: Resource, params: &[(String, String)]) -> Result<Self, InvalidQuery> {
        let mut query = ListQuery { per_page: DEFAULT_PER_PAGE, original: params.to_vec(), ..ListQuery::default() };
        for (key, value) in params {
            query.apply(resource, key, value)?;
        }
        Ok(query)
    }

    fn apply(&mut self, resource: Resource, key: &str, value: &str) -> Result<(), InvalidQuery> {
        if !supports(resource, key) {
            return Err(invalid(format!("unknown query parameter '{key}' for /v3/{resource}")));
        }
        match key {
            "per_page" => self.per_page = parse_per_page(value)?,
            "ids" => self.ids = Some(parse_ids(key, value)?),
            "candidate_ids" => self.candidate_ids = Some(parse_ids(key, value)?),
            "job_ids" => self.job_ids = Some(parse_ids(key, value)?),
            "application_ids" => self.application_ids = Some(parse_ids(key, value)?),
            "created_at" => parse_range(key, value, &mut self.created_at)?,
            "updated_at" => parse_range(key, value, &mut self.updated_at)?,
            "last_activity_at" => parse_range(key, value, &mut self.last_activity_at)?,
            "fields" => self.fields = Some(value.split(',').map(str::to_owned).collect()),
            _ => unreachable!("supports() admits only the keys handled here"),
        }
        Ok(())
    }

    /// Returns true when the record passes every filter. Uses only timestamps and parent
    /// indexes, so it never builds the record.
    pub fn matches(&self, store: &Store, resource: Resource, index: u64, times: Times) -> bool {
        if !self.created_at.contains(times.created_ms) || !self.updated_at.contains(times.updated_ms) {
            return false;
        }
        // Applications' last_activity_at follows every change, like their updated_at.
        if !self.last_activity_at.is_empty() && !self.last_activity_at.contains(times.updated_ms) {
            return false;
        }
        if self.candidate_ids.is_none() && self.job_ids.is_none() && self.application_ids.is_none() {
            return true;
        }

        let parents = store.parents(resource, index);
        contains_parent(&self.candidate_ids, Resource::Candidates, parents.candidate)
            && contains_parent(&self.job_ids, Resource::Jobs, parents.job)
            && contains_parent(&self.application_ids, Resource::Applications, parents.application)
    }

    /// Builds the cursor of the page after the one that ended with `last_id`.
    pub fn next_cursor(&self, last_id: i64) -> String {
        let cursor = Cursor { query: self.original.clone(), id: last_id, page: self.page + 1 };
        let json = serde_json::to_vec(&cursor).expect("a cursor always serialises");
        URL_SAFE_NO_PAD.encode(json)
    }
}

/// Filters each resource accepts beyond the common ones.
fn supports(resource: Resource, key: &str) -> bool {
    const COMMON: &[&str] = &["per_page", "ids", "created_at", "updated_at", "fields"];
    let specific: &[&str] = match resource {
        Resource::Applications => &["candidate_ids", "job_ids", "last_activity_at"],
        Resource::Offers => &["candidate_ids", "job_ids", "application_ids"],
        Resource::Interviews => &["job_ids", "application_ids"],
        Resource::Scorecards => &["application_ids"],
        Resource::JobPosts | Resource::JobInterviewStages => &["job_ids"],
        _ => &[],
    };
    COMMON.contains(&key) || specific.contains(&key)
}

fn contains_parent(filter: &Option<BTreeSet<i64>>, parent: Resource, index: Option<u64>) -> bool {
    match filter {
        None => true,
        Some(ids) => index.is_some_and(|index| ids.contains(&parent.id_of(index))),
    }
}

fn decode_cursor(cursor: &str) -> Result<Cursor, InvalidQuery> {
    let bad = || invalid("invalid cursor: pass the cursor from the Link header unchanged");
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

fn parse_per_page(value: &str) -> Result<u32, InvalidQuery> {
    let out_of_range = || invalid(format!("invalid per_page '{value}': expected an integer from 1 to {MAX_PER_PAGE}"));
    let per_page: u32 = value.trim().parse().map_err(|_| out_of_range())?;
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(out_of_range());
    }
    Ok(per_page)
}

fn parse_ids(key: &str, value: &str) -> Result<BTreeSet<i64>, InvalidQuery> {
    let ids = value
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| part.trim().parse::<i64>().map_err(|_| invalid(format!("invalid {key}: '{part}' is not an integer id"))))
        .collect::<Result<BTreeSet<i64>, _>>()?;
    if ids.len() > MAX_IDS {
        return Err(invalid(format!("too many {key}: {} given, at most {MAX_IDS} allowed", ids.len())));
    }
    Ok(ids)
}

/// Parses `gte|2026-01-01T00:00:00Z`, also repeated in one value as
/// `gte|A|lte|B`, which is how OpenAPI serialises a pipe-delimited object. A two-sided window
/// may equally come as two parameters with the same key.
fn parse_range(key: &str, value: &str, range: &mut TimeRange) -> Result<(), InvalidQuery> {
    let parts: Vec<&str> = value.split('|').collect();
    if parts.len() % 2 != 0 {
        return Err(invalid(format!(
            "invalid {key} '{value}': expected operator|timestamp, for example {key}=gte|2026-01-01T00:00:00Z"
        )));
    }
    for pair in parts.chunks(2) {
        let ms = parse_timestamp(key, pair[1])?;
        let slot = match pair[0] {
            "gte" => &mut range.gte,
            "gt" => &mut range.gt,
            "lte" => &mut range.lte,
            "lt" => &mut range.lt,
            other => return Err(invalid(format!("invalid {key} operator '{other}': expected gte, gt, lte or lt"))),
        };
        *slot = Some(ms);
    }
    Ok(())
}

fn parse_timestamp(key: &str, text: &str) -> Result<i64, InvalidQuery> {
    // A '+' in an offset that the client did not percent-encode arrives as a space.
    let repaired = text.trim().replace(' ', "+");
    DateTime::parse_from_rfc3339(&repaired)
        .map(|time| time.timestamp_millis())
        .map_err(|_| invalid(format!("invalid {key} timestamp '{text}': expected RFC 3339, for example 2026-01-01T00:00:00Z")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn two_sided_window_both_forms() {
        let repeated = ListQuery::parse(
            Resource::Candidates,
            &params(&[("updated_at", "gte|2026-01-01T00:00:00Z"), ("updated_at", "lt|2026-02-01T00:00:00Z")]),
        )
        .expect("repeated keys parse");
        let joined = ListQuery::parse(Resource::Candidates, &params(&[("updated_at", "gte|2026-01-01T00:00:00Z|lt|2026-02-01T00:00:00Z")]))
            .expect("joined pairs parse");
        assert_eq!(repeated.updated_at, joined.updated_at);
        assert!(repeated.updated_at.gte.is_some());
        assert!(repeated.updated_at.lt.is_some());
    }

    #[test]
    fn cursor_with_other_parameter_rejected() {
        let query = ListQuery::parse(Resource::Jobs, &params(&[("per_page", "2")])).expect("first page parses");
        let cursor = query.next_cursor(42);
        let result = ListQuery::parse(Resource::Jobs, &params(&[("cursor", &cursor), ("per_page", "2")]));
        assert!(result.is_err());
    }

    #[test]
    fn cursor_carries_filters() {
        let query = ListQuery::parse(Resource::Jobs, &params(&[("per_page", "7"), ("updated_at", "gt|2026-01-01T00:00:00.5Z")]))
            .expect("first page parses");
        let next = ListQuery::parse(Resource::Jobs, &params(&[("cursor", &query.next_cursor(42))])).expect("cursor parses");
        assert_eq!(next.per_page, 7);
        assert_eq!(next.updated_at, query.updated_at);
        assert_eq!(next.after_id, Some(42));
        assert_eq!(next.page, 2);
    }

    #[test]
    fn bad_values_rejected() {
        let cases = [
            ("per_page", "0"),
            ("per_page", "501"),
            ("per_page", "ten"),
            ("updated_at", "since|2026-01-01T00:00:00Z"),
            ("updated_at", "gte|yesterday"),
            ("updated_at", "2026-01-01T00:00:00Z"),
            ("ids", "1,x"),
            ("job_ids", "1"),
        ];
        for (key, value) in cases {
            assert!(ListQuery::parse(Resource::Candidates, &params(&[(key, value)])).is_err(), "{key}={value}");
        }
    }

    #[test]
    fn fifty_one_ids_rejected() {
        let ids: Vec<String> = (1..=51).map(|n| n.to_string()).collect();
        let result = ListQuery::parse(Resource::Candidates, &params(&[("ids", &ids.join(","))]));
        assert!(result.is_err());
        let fifty = ids[..50].join(",");
        assert!(ListQuery::parse(Resource::Candidates, &params(&[("ids", &fifty)])).is_ok());
    }
}
