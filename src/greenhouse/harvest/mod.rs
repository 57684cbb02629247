//! Harvest API v3 client: OAuth2 client credentials, per-account request budget, paging.
//!
//! One `HarvestClient` serves one Greenhouse account. Its clones share the account's token
//! cache and `Budget`, so sweep chains and targeted refreshes running at once stay under the
//! account's rate limit together. `list` starts a cursor chain (`Pager`), `resume` continues
//! one from a stored `next` URL, and `get_by_ids` reads up to 50 records by id.
//!
//! Harvest v1 and v2 were retired on 2026-08-31; only v3 exists.

mod budget;
mod client;
mod credentials;
mod error;
mod filters;
mod link;
mod pages;
mod request;
mod retry;
mod settings;
mod tls;
mod token;

pub use budget::{Budget, BudgetPermit, BudgetSnapshot};
pub use client::{HarvestClient, build_http_client};
pub use credentials::Credentials;
pub use error::HarvestError;
pub use filters::{Comparison, ListFilters, MAX_IDS, MAX_PER_PAGE};
pub use pages::{Page, Pager, RawRecord, record_id};
pub use settings::{
    DEFAULT_BASE_URL, DEFAULT_BUDGET_LIMIT, DEFAULT_BUDGET_WINDOW, DEFAULT_TOKEN_URL,
    HarvestSettings,
};
pub use tls::install_crypto_provider;
pub use token::{AccessToken, TokenCache};
