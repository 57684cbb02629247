//! Cursor chains over Harvest v3 lists.
//!
//! A chain's first request carries the filters. Every later request is the `Link rel="next"`
//! URL exactly as Greenhouse gave it, with nothing added, because a request with `cursor` and
//! any other query parameter gets 422. No `next` link marks the last page. Records come in
//! descending id order.

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use reqwest::Url;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::HarvestClient;
use super::error::HarvestError;

/// One record of a list page, kept as the JSON text Harvest sent. Parse it with
/// `serde_json::from_str(record.get())` where the fields are needed.
pub type RawRecord = Box<RawValue>;

/// One page of a list: the records as Harvest sent them, and the next page's URL.
#[derive(Debug, Clone)]
pub struct Page {
    /// The page's records, unchanged. An empty page may still have a `next` link.
    pub records: Vec<RawRecord>,

    /// The `Link rel="next"` URL as Greenhouse wrote it (resolved against the request URL
    /// only if it was relative), or `None` on the last page. Store it to resume the chain
    /// with `HarvestClient::resume`.
    pub next: Option<String>,
}

/// Position in one cursor chain. `next_page` fetches pages until the last one.
///
/// The pager is `Send` and owns a clone of the client, so chains can run in separate tasks.
/// All of them share the account's budget and token.
#[derive(Debug)]
pub struct Pager {
    client: HarvestClient,
    resource: String,
    next_request: Option<Url>,
    /// Hashes of the URLs requested so far, to notice a cursor that comes back. A hash per
    /// page keeps the set small on long chains; a collision (about 1 in 2^64 per pair) would
    /// stop a chain with `CursorRepeated`.
    followed: HashSet<u64>,
    previous_first_id: Option<i64>,
}

impl Pager {
    pub(crate) fn new(client: HarvestClient, resource: &str, first_request: Url) -> Self {
        Pager {
            client,
            resource: resource.to_owned(),
            next_request: Some(first_request),
            followed: HashSet::new(),
            previous_first_id: None,
        }
    }

    /// Returns the resource this chain lists, such as `candidates`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Returns the URL that the next call to `next_page` requests, or `None` when the chain
    /// is done.
    pub fn next_url(&self) -> Option<&str> {
        self.next_request.as_ref().map(Url::as_str)
    }

    /// Fetches the next page, or returns `None` after the last one.
    ///
    /// After any error the pager stays where it was, so it never reports a failed chain as
    /// finished. A later call sends the same request again, which for a repeated cursor or a
    /// page that does not advance fails the same way.
    pub async fn next_page(&mut self) -> Result<Option<Page>, HarvestError> {
        let Some(url) = self.next_request.clone() else {
            return Ok(None);
        };

        let fetched = self.client.fetch_records(&self.resource, &url).await?;
        self.followed.insert(url_hash(url.as_str()));

        let first_id = self.check_advanced(&fetched.records)?;
        let next = match fetched.next_link {
            Some(link) => Some(self.follow(&url, &link)?),
            None => {
                self.next_request = None;
                None
            }
        };

        if first_id.is_some() {
            self.previous_first_id = first_id;
        }
        Ok(Some(Page { records: fetched.records, next }))
    }

    /// Rejects a page whose first record is the first record of the previous non-empty page.
    /// Returns the page's first id, if it has one.
    fn check_advanced(&self, records: &[RawRecord]) -> Result<Option<i64>, HarvestError> {
        let first_id = records.first().and_then(|record| record_id(record));

        if let (Some(first), Some(previous)) = (first_id, self.previous_first_id) {
            if first == previous {
                return Err(HarvestError::PageDidNotAdvance {
                    resource: self.resource.clone(),
                    first_id: first,
                });
            }
        }
        Ok(first_id)
    }

    /// Checks the `next` link and makes it the next request. Returns the link as written, or
    /// resolved against `current` if it was relative.
    fn follow(&mut self, current: &Url, link: &str) -> Result<String, HarvestError> {
        let (next_url, as_given) = match Url::parse(link) {
            Ok(url) => (url, link.to_owned()),
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                let url = current.join(link).map_err(|error| self.invalid_link(error))?;
                let resolved = url.to_string();
                (url, resolved)
            }
            Err(error) => return Err(self.invalid_link(error)),
        };
        self.client.check_same_origin(&self.resource, &next_url)?;

        if self.followed.contains(&url_hash(next_url.as_str())) {
            return Err(HarvestError::CursorRepeated { resource: self.resource.clone() });
        }

        self.next_request = Some(next_url);
        Ok(as_given)
    }

    fn invalid_link(&self, error: url::ParseError) -> HarvestError {
        HarvestError::InvalidNextUrl {
            resource: self.resource.clone(),
            reason: format!("the `Link` target is not a valid URL ({error})"),
        }
    }
}

/// Reads a record's `id` without building the rest of it. `None` when the record is not
/// an object with an integer `id`.
pub fn record_id(record: &RawValue) -> Option<i64> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: i64,
    }
    serde_json::from_str::<IdOnly>(record.get()).ok().map(|only| only.id)
}

fn url_hash(url: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    url.hash(&mut hasher);
    hasher.finish()
}
