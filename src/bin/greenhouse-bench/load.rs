//! Webhook load generator: signed fixture bodies with varying ids, posted over loopback at a
//! steady rate or all at once, with the latency of every delivery.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

/// Time a delivery may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Fetches `url` and parses its JSON body, on a runtime of its own.
pub fn get_json<T: DeserializeOwned>(url: &str) -> anyhow::Result<T> {
    runtime()?.block_on(async { get_ok(url).await?.json::<T>().await.with_context(|| format!("GET {url} returned invalid JSON")) })
}

/// Fetches `url` and returns its body as text, on a runtime of its own.
pub fn get_text(url: &str) -> anyhow::Result<String> {
    runtime()?.block_on(async { get_ok(url).await?.text().await.with_context(|| format!("GET {url} returned no readable body")) })
}

/// Sends a GET and fails unless the response status is a success.
async fn get_ok(url: &str) -> anyhow::Result<reqwest::Response> {
    let response = reqwest::get(url).await.with_context(|| format!("GET {url} failed"))?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("GET {url} returned {status}");
    }
    Ok(response)
}

/// A single-threaded runtime, so the generator uses at most one of the cores it shares with
/// the server under test.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("could not start the async runtime")
}

/// Webhook bodies to send to one account, made from fixture files.
pub struct Deliveries {
    templates: Vec<Value>,
    secret: String,
    url: String,
    /// Id given to the first delivery's records; each next delivery adds one.
    first_id: i64,
}

impl Deliveries {
    /// Reads the named fixtures (file names without `.json`) from `dir`.
    pub fn load(dir: &Path, names: &[String], url: String, secret: &str, first_id: i64) -> anyhow::Result<Deliveries> {
        let mut templates = Vec::new();
        for name in names {
            let path = dir.join(format!("{name}.json"));
            let text = std::fs::read_to_string(&path).with_context(|| format!("could not read fixture {}", path.display()))?;
            let value: Value = serde_json::from_str(&text).with_context(|| format!("fixture {} is not JSON", path.display()))?;
            templates.push(value);
        }
        if templates.is_empty() {
            anyhow::bail!("no webhook fixtures given");
        }
        Ok(Deliveries { templates, secret: secret.to_string(), url, first_id })
    }

    /// Returns the body of delivery `n` and its `Signature` header. The fixtures take turns,
    /// and the candidate and application ids are new in every delivery, so each one writes
    /// rows of its own.
    pub fn body(&self, n: u64) -> (Vec<u8>, String) {
        let mut body = self.templates[(n % self.templates.len() as u64) as usize].clone();
        let id = self.first_id + n as i64;
        let payload = &mut body["payload"];
        for pointer in ["/candidate/id", "/application/id", "/application/candidate/id"] {
            if let Some(slot) = payload.pointer_mut(pointer) {
                *slot = json!(id);
            }
        }
        let bytes = greenhouse_encoding(&body);
        let signature = greenhouse_sync::webhooks::signature::sign(self.secret.as_bytes(), &bytes);
        (bytes, signature)
    }
}

/// Encodes JSON the way Greenhouse sends it: compact, with `<`, `>` and `&` written as
/// `\u003c`, `\u003e` and `\u0026`. Those characters only occur inside JSON strings, so the
/// replacement keeps the text valid JSON.
fn greenhouse_encoding(value: &Value) -> Vec<u8> {
    value.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").into_bytes()
}

/// Measurements of one load run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadOutcome {
    pub planned: u64,
    /// Deliveries sent before the send deadline.
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    /// Count per HTTP status, or per transport error kind.
    pub statuses: BTreeMap<String, u64>,
    pub elapsed_secs: f64,
    /// Deliveries completed per second, over the time from the first send to the last response.
    pub achieved_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The latest a send started after its planned time; a large value means the generator
    /// or the in-flight limit could not keep the rate.
    pub max_start_lag_ms: f64,
}

/// Response of one delivery: its status (or error kind) and latency.
type Answer = (String, Duration);

/// How many deliveries to send, and how fast.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub count: u64,
    /// Time between planned sends; zero sends everything at once.
    pub interval: Duration,
    pub max_in_flight: usize,
    /// No delivery is sent after this time from the start, so a server slower than the rate
    /// cannot stretch the run without end. Deliveries not sent by then are counted as unsent.
    pub send_deadline: Duration,
}

/// Sends deliveries, the n-th planned at `start + n * interval`, with at most
/// `max_in_flight` unanswered at a time.
pub async fn send(deliveries: Arc<Deliveries>, pace: Pace) -> anyhow::Result<LoadOutcome> {
    let Pace { count, interval, max_in_flight, send_deadline } = pace;
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().context("could not build the HTTP client")?;
    let limit = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let (answers, mut received) = mpsc::unbounded_channel::<Answer>();

    let start = Instant::now();
    let mut max_lag = Duration::ZERO;
    for n in 0..count {
        let planned = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(planned.into()).await;
        if start.elapsed() > send_deadline {
            break;
        }
        let permit = limit.clone().acquire_owned().await.context("in-flight limit closed")?;
        max_lag = max_lag.max(planned.elapsed());

        let (client, deliveries, answers) = (client.clone(), deliveries.clone(), answers.clone());
        tokio::spawn(async move {
            let answer = post(&client, &deliveries, n).await;
            drop(permit);
            let _ = answers.send(answer);
        });
    }
    drop(answers);

    let mut all = Vec::with_capacity(count as usize);
    while let Some(answer) = received.recv().await {
        all.push(answer);
    }
    Ok(summarise(all, count, start.elapsed(), max_lag))
}

async fn post(client: &reqwest::Client, deliveries: &Deliveries, n: u64) -> Answer {
    let (body, signature) = deliveries.body(n);
    let started = Instant::now();
    let sent = client
        .post(&deliveries.url)
        .header("Content-Type", "application/json")
        .header("Signature", signature)
        .body(body)
        .send()
        .await;
    let outcome = match sent {
        Ok(response) => {
            let status = response.status().as_u16().to_string();
            // Read the body so the connection goes back to the pool.
            let _ = response.bytes().await;
            status
        }
        Err(error) if error.is_timeout() => "timeout".to_string(),
        Err(error) if error.is_connect() => "connect error".to_string(),
        Err(_) => "transport error".to_string(),
    };
    (outcome, started.elapsed())
}

fn summarise(answers: Vec<Answer>, planned: u64, elapsed: Duration, max_lag: Duration) -> LoadOutcome {
    let mut statuses = BTreeMap::new();
    for (status, _) in &answers {
        *statuses.entry(status.clone()).or_insert(0) += 1;
    }
    let ok = statuses.get("200").copied().unwrap_or(0);
    let mut latencies: Vec<Duration> = answers.iter().map(|(_, latency)| *latency).collect();
    latencies.sort_unstable();
    let sent = answers.len() as u64;

    LoadOutcome {
        planned,
        sent,
        ok,
        errors: sent - ok,
        statuses,
        elapsed_secs: elapsed.as_secs_f64(),
        achieved_per_sec: if elapsed.is_zero() { 0.0 } else { sent as f64 / elapsed.as_secs_f64() },
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
        max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        max_start_lag_ms: max_lag.as_secs_f64() * 1000.0,
    }
}

/// Nearest-rank percentile of sorted latencies, in milliseconds.
fn percentile_ms(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((fraction * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_uses_nearest_rank() {
        let latencies: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&latencies, 0.50), 50.0);
        assert_eq!(percentile_ms(&latencies, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }

    #[test]
    fn encoding_escapes_markup() {
        let encoded = greenhouse_encoding(&json!({"note": "<b>&</b>"}));
        assert_eq!(String::from_utf8(encoded).expect("UTF-8"), r#"{"note":"\u003cb\u003e\u0026\u003c/b\u003e"}"#);
    }
}
