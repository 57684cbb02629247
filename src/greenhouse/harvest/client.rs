//! `HarvestClient`: one Greenhouse account's connection to Harvest v3.

use std::fmt;
use std::sync::Arc;

use reqwest::Url;

use super::budget::Budget;
use super::credentials::Credentials;
use super::error::HarvestError;
use super::filters::{ListFilters, MAX_IDS};
use super::pages::{Pager, RawRecord};
use super::settings::HarvestSettings;
use super::tls::install_crypto_provider;
use super::token::TokenCache;

/// Harvest v3 client of one account: its token cache and request budget. Cloning is cheap,
/// and clones share the token, the budget and the connection pool.
#[derive(Clone)]
pub struct HarvestClient {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) account_id: i64,
    pub(crate) settings: HarvestSettings,
    pub(crate) base_url: Url,
    pub(crate) http: reqwest::Client,
    pub(crate) tokens: TokenCache,
    pub(crate) budget: Arc<Budget>,
}

impl fmt::Debug for HarvestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HarvestClient")
            .field("account_id", &self.inner.account_id)
            .field("base_url", &self.inner.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl HarvestClient {
    /// Creates a client with its own HTTP connection pool and a fresh budget of
    /// `settings.budget_limit` requests per `settings.budget_window`.
    pub fn new(
        settings: HarvestSettings,
        account_id: i64,
        credentials: Credentials,
    ) -> Result<Self, HarvestError> {
        let http = build_http_client(&settings)?;
        let budget = Arc::new(Budget::with_window(settings.budget_limit, settings.budget_window));
        HarvestClient::with_parts(settings, account_id, credentials, http, budget)
    }

    /// Creates a client from an existing HTTP client (for example one shared by all accounts,
    /// from `build_http_client`) and budget. Every client of one account must get the same
    /// budget, since Greenhouse counts requests per credential. The timeouts are those of
    /// `http`: `build_http_client` sets the ones from the settings.
    pub fn with_parts(
        settings: HarvestSettings,
        account_id: i64,
        credentials: Credentials,
        http: reqwest::Client,
        budget: Arc<Budget>,
    ) -> Result<Self, HarvestError> {
        let base_url = parse_setting_url("base_url", &settings.base_url)?;
        parse_setting_url("token_url", &settings.token_url)?;
        if budget.window().is_zero() {
            return Err(HarvestError::InvalidSetting {
                setting: "budget_window",
                reason: "a window of zero length would not limit requests at all".to_owned(),
            });
        }

        let tokens = TokenCache::new(http.clone(), settings.clone(), account_id, credentials);
        let inner = ClientInner { account_id, settings, base_url, http, tokens, budget };
        Ok(HarvestClient { inner: Arc::new(inner) })
    }

    /// Returns the id of the account this client reads.
    pub fn account_id(&self) -> i64 {
        self.inner.account_id
    }

    /// Returns the account's request budget, for metrics and for sharing with other clients.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.inner.budget
    }

    /// Returns the settings the client was created with.
    pub fn settings(&self) -> &HarvestSettings {
        &self.inner.settings
    }

    /// Starts a cursor chain over `resource` (such as `candidates`), with `filters` on the
    /// first request only.
    pub fn list(&self, resource: &str, filters: &ListFilters) -> Result<Pager, HarvestError> {
        let mut url = self.resource_url(resource)?;
        if !filters.params().is_empty() {
            url.query_pairs_mut().extend_pairs(filters.params());
        }
        Ok(Pager::new(self.clone(), resource, url))
    }

    /// Continues a cursor chain from a stored `Page::next` URL. The URL must be on the base
    /// URL's host, because the request carries the account's bearer token.
    pub fn resume(&self, resource: &str, next_url: &str) -> Result<Pager, HarvestError> {
        let url = Url::parse(next_url).map_err(|error| HarvestError::InvalidNextUrl {
            resource: resource.to_owned(),
            reason: format!("the stored next-page URL is not a valid URL ({error})"),
        })?;
        self.check_same_origin(resource, &url)?;
        Ok(Pager::new(self.clone(), resource, url))
    }

    /// Fetches the records of `resource` with the given ids, at most 50 (Harvest's limit on
    /// the `ids` filter). Ids that Harvest does not return, such as deleted records, are
    /// missing from the result without an error.
    pub async fn get_by_ids(&self, resource: &str, ids: &[i64]) -> Result<Vec<RawRecord>, HarvestError> {
        if ids.len() > MAX_IDS {
            return Err(HarvestError::TooManyIds {
                resource: resource.to_owned(),
                count: ids.len(),
                max: MAX_IDS,
            });
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }

        // 50 ids fit in one page of the default size (100), but a `next` link is still
        // followed in case Greenhouse pages the response anyway.
        let mut pager = self.list(resource, &ListFilters::new().ids(ids))?;
        let mut records = Vec::with_capacity(ids.len());
        while let Some(page) = pager.next_page().await? {
            records.extend(page.records);
        }
        Ok(records)
    }

    /// Builds `<base_url>/<resource>`. A resource is a path of lowercase letters, digits,
    /// `_` and `/`, such as `candidates` or `jobs/123/openings`.
    fn resource_url(&self, resource: &str) -> Result<Url, HarvestError> {
        let valid = !resource.is_empty()
            && !resource.starts_with('/')
            && !resource.contains("//")
            && resource
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '/');
        if !valid {
            return Err(HarvestError::InvalidSetting {
                setting: "resource",
                reason: format!(
                    "{resource:?} is not a Harvest resource path \
                     (lowercase letters, digits, `_` and `/`)"
                ),
            });
        }

        let base = self.inner.base_url.as_str().trim_end_matches('/');
        parse_setting_url("base_url", &format!("{base}/{resource}"))
    }

    /// Rejects a next-page URL on another scheme, host or port than the base URL, where
    /// the bearer token must not be sent.
    pub(crate) fn check_same_origin(&self, resource: &str, url: &Url) -> Result<(), HarvestError> {
        if url.origin() == self.inner.base_url.origin() {
            return Ok(());
        }
        Err(HarvestError::InvalidNextUrl {
            resource: resource.to_owned(),
            reason: format!(
                "it points to {}, not to the configured base URL's host {}",
                url.origin().ascii_serialization(),
                self.inner.base_url.origin().ascii_serialization()
            ),
        })
    }
}

/// Builds the HTTP client for Harvest and token requests: rustls with the `ring` provider,
/// the settings' timeouts, and no redirects. Harvest is not expected to redirect, and
/// following a redirect could carry the bearer token to another host.
pub fn build_http_client(settings: &HarvestSettings) -> Result<reqwest::Client, HarvestError> {
    install_crypto_provider();

    if settings.request_timeout.is_zero() {
        return Err(HarvestError::InvalidSetting {
            setting: "request_timeout",
            reason: "a timeout of zero would fail every request; use a positive duration".to_owned(),
        });
    }

    reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .connect_timeout(settings.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(settings.user_agent.clone())
        .build()
        .map_err(|error| HarvestError::InvalidSetting {
            setting: "http client",
            reason: format!("the HTTP client could not be built: {error}"),
        })
}

fn parse_setting_url(setting: &'static str, value: &str) -> Result<Url, HarvestError> {
    let url = Url::parse(value).map_err(|error| HarvestError::InvalidSetting {
        setting,
        reason: format!("{value:?} is not a valid URL ({error})"),
    })?;

    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(HarvestError::InvalidSetting {
            setting,
            reason: format!("{value:?} must start with https:// (or http:// for a local server)"),
        });
    }
    Ok(url)
}
