//! No secret and no candidate personal data reaches the logs: the whole scenario runs with
//! every target at debug level, in both log formats, and the captured output is searched.
//!
//! This file is its own test binary because it installs the process-wide subscriber.

mod scenario;
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::{TEST_ADMIN_TOKEN, TEST_MASTER_KEY, fixtures_dir};
use tracing_subscriber::fmt::MakeWriter;

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

/// Installs a debug-level subscriber for every target that writes each event twice, as a
/// text line and as a JSON line, the two formats `--log-format` offers.
fn capture_logs() -> Captured {
    use tracing_subscriber::layer::SubscriberExt;

    let captured = Captured::default();
    let text = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(captured.clone());
    let json = tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true).with_writer(captured.clone());
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with(text)
        .with(json);
    tracing::subscriber::set_global_default(subscriber).expect("no other subscriber in this binary");
    captured
}

/// Personal data found in the webhook fixtures: e-mail addresses (strings with `@`) and the
/// values of `first_name` and `last_name` fields.
#[derive(Default)]
struct PersonalData {
    emails: Vec<String>,
    names: Vec<String>,
}

fn walk(value: &Value, key: &str, found: &mut PersonalData) {
    match value {
        Value::String(text) if text.contains('@') && text.contains('.') => found.emails.push(text.clone()),
        Value::String(text) if key == "first_name" || key == "last_name" => found.names.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| walk(item, key, found)),
        Value::Object(fields) => fields.iter().for_each(|(name, item)| walk(item, name, found)),
        _ => {}
    }
}

fn fixture_personal_data() -> PersonalData {
    let mut found = PersonalData::default();
    for entry in std::fs::read_dir(fixtures_dir().join("webhooks")).expect("fixtures") {
        let path = entry.expect("fixture entry").path();
        let text = std::fs::read_to_string(&path).expect("fixture");
        walk(&serde_json::from_str(&text).expect("fixture JSON"), "", &mut found);
    }
    for list in [&mut found.emails, &mut found.names] {
        list.sort();
        list.dedup();
    }
    found
}

#[actix_web::test]
async fn no_secret_or_email_in_logs() {
    let captured = capture_logs();
    let scenario = scenario::run().await;
    drop(scenario);
    let logs = captured.text();

    assert!(logs.contains("webhook delivery stored"), "the capture works: {} bytes", logs.len());
    assert!(logs.contains("request.id"), "request spans carry an id");
    assert!(logs.contains("sweep finished"), "the sweeps ran and logged");

    let personal = fixture_personal_data();
    assert!(personal.emails.iter().any(|e| e == "person@example.com"), "{:?}", personal.emails);
    assert!(personal.emails.iter().any(|e| e == "123456email@email.com"), "{:?}", personal.emails);
    assert!(personal.names.iter().any(|n| n == "Jane"), "{:?}", personal.names);

    let secrets = [
        ("admin token", TEST_ADMIN_TOKEN),
        ("master key", TEST_MASTER_KEY),
        ("webhook secret", scenario::WEBHOOK_SECRET),
        ("rotated webhook secret", scenario::ROTATED_SECRET),
        ("Harvest client secret", scenario::CLIENT_SECRET),
    ];
    for (what, secret) in secrets {
        assert!(!logs.contains(secret), "the {what} appears in the logs");
    }
    for email in &personal.emails {
        assert!(!logs.contains(email.as_str()), "fixture e-mail address {email} appears in the logs");
    }
    for name in &personal.names {
        assert!(!logs.contains(name.as_str()), "fixture name {name} appears in the logs");
    }
}
