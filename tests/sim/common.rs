//! Helpers shared by the simulator tests: starting an instance and paging through it.

use std::collections::BTreeSet;

use greenhouse_sync::sim::{self, RunningSim, SimConfig, Sizes};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Returns a small account that pages quickly, with a rate limit high enough not to interfere.
pub fn small_config() -> SimConfig {
    SimConfig {
        sizes: Sizes { candidates: 120, applications: 150, offers: 20, interviews: 30, scorecards: 30, ..Sizes::default() },
        rate_limit: 100_000,
        ..SimConfig::default()
    }
}

/// An HTTP client holding a token for one simulator.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

/// The status, headers and JSON body of one list response.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
    }

    /// Returns the URL in `Link: <URL>; rel="next"`, or `None` on the last page.
    pub fn next_link(&self) -> Option<String> {
        let link = self.header("link")?;
        let start = link.find('<')? + 1;
        let end = link.find('>')?;
        Some(link[start..end].to_owned())
    }

    pub fn ids(&self) -> Vec<i64> {
        self.body.as_array().into_iter().flatten().filter_map(|record| record["id"].as_i64()).collect()
    }
}

impl Client {
    /// Fetches a token from `sim` with the default secret.
    pub async fn connect(sim: &RunningSim) -> Result<Self, Box<dyn std::error::Error>> {
        let http = reqwest::Client::new();
        let token = fetch_token(&http, sim, "test-client", "sim-secret").await?;
        Ok(Client { http, base: sim.base_url(), token })
    }

    /// GETs a URL (absolute, or a path below the base URL) with the bearer token.
    pub async fn get(&self, url: &str) -> Result<Answer, reqwest::Error> {
        let url = if url.starts_with("http") { url.to_owned() } else { format!("{}{url}", self.base) };
        let response = self.http.get(url).bearer_auth(&self.token).send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok(Answer { status, headers, body })
    }

    /// Follows `Link` from `first` to the last page; returns every id in the order received.
    ///
    /// `between_pages` runs after each page, for tests that change data while paging.
    pub async fn page_all<F, Fut>(&self, first: &str, mut between_pages: F) -> Result<Vec<i64>, Box<dyn std::error::Error>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut ids = Vec::new();
        let mut url = first.to_owned();
        loop {
            let answer = self.get(&url).await?;
            if answer.status != StatusCode::OK {
                return Err(format!("GET {url} answered {}: {}", answer.status, answer.body).into());
            }
            ids.extend(answer.ids());
            between_pages().await;
            match answer.next_link() {
                Some(next) => url = next,
                None => {
                    assert_eq!(answer.header("link").as_deref(), Some(""), "last page must carry an empty Link header");
                    return Ok(ids);
                }
            }
        }
    }
}

/// Fetches a token with HTTP Basic credentials.
pub async fn fetch_token(http: &reqwest::Client, sim: &RunningSim, client_id: &str, secret: &str) -> Result<String, Box<dyn std::error::Error>> {
    let response = http
        .post(sim.token_url())
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("sub", "5414812002")])
        .send()
        .await?;
    if response.status() != StatusCode::OK {
        return Err(format!("POST /token answered {}", response.status()).into());
    }
    let body: Value = response.json().await?;
    Ok(body["access_token"].as_str().ok_or("token answer has no access_token")?.to_owned())
}

/// GETs a `/_sim/` endpoint as JSON.
pub async fn admin_get(sim: &RunningSim, path: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let response = reqwest::get(format!("{}{path}", sim.base_url())).await?;
    if response.status() != StatusCode::OK {
        return Err(format!("GET {path} answered {}", response.status()).into());
    }
    Ok(response.json().await?)
}

/// POSTs JSON to a `/_sim/` endpoint; returns the status and body.
pub async fn admin_post(sim: &RunningSim, path: &str, body: Value) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
    let response = reqwest::Client::new().post(format!("{}{path}", sim.base_url())).json(&body).send().await?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Ids of the existing records of a resource, from `/_sim/truth/<resource>`.
pub async fn truth_ids(sim: &RunningSim, resource: &str) -> Result<BTreeSet<i64>, Box<dyn std::error::Error>> {
    let list = admin_get(sim, &format!("/_sim/truth/{resource}")).await?;
    Ok(list.as_array().into_iter().flatten().filter_map(|pair| pair[0].as_i64()).collect())
}

/// Starts a simulator, after installing the TLS provider that every reqwest client needs.
pub async fn start(config: SimConfig) -> Result<RunningSim, Box<dyn std::error::Error>> {
    greenhouse_sync::greenhouse::harvest::install_crypto_provider();
    Ok(sim::start(config).await?)
}
