//! Webhook deliveries sent by the tests themselves, so that each test records which
//! delivery got which status, and the delivery log read back from the database.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Text};
use greenhouse_sync::db::Database;
use greenhouse_sync::db::sql::{Sql, SqlValue};
use greenhouse_sync::sim::RunningSim;
use greenhouse_sync::sim::webhook::payload;
use greenhouse_sync::webhooks::signature;

/// One signed delivery, sent as many times as it takes.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub event_id: String,
    pub body: Vec<u8>,
    pub signature: String,
}

/// Applies `count` mutations to the simulator and returns their webhooks, signed with
/// `secret`, with event ids numbered from `first_serial`.
pub fn mutations(sim: &RunningSim, count: u32, secret: &str, first_serial: usize) -> Vec<Outgoing> {
    let applied = sim.state().mutate(count, None);
    let events = applied.iter().flat_map(|change| change.events.iter());
    events
        .enumerate()
        .map(|(n, event)| {
            let body = payload::body(event);
            let signature = signature::sign(secret.as_bytes(), &body);
            Outgoing { event_id: format!("fault-{:06}", first_serial + n), body, signature }
        })
        .collect()
}

/// Sends one delivery and returns its status, or `None` when no response arrived (refused,
/// reset or timed out), which Greenhouse also counts as a failure.
pub async fn send(http: &reqwest::Client, url: &str, delivery: &Outgoing) -> Option<u16> {
    let response = http
        .post(url)
        .header("Content-Type", "application/json")
        .header(signature::SIGNATURE_HEADER, &delivery.signature)
        .header("Greenhouse-Event-ID", &delivery.event_id)
        .body(delivery.body.clone())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

#[derive(QueryableByName)]
struct DeliveryRow {
    #[diesel(sql_type = Nullable<Text>)]
    event_id: Option<String>,
    #[diesel(sql_type = Text)]
    outcome: String,
}

/// Outcomes of the account's stored deliveries per event id, in storage order.
pub fn stored(db: &Database, account_id: i64) -> BTreeMap<String, Vec<String>> {
    let mut conn = db.get().expect("connection");
    let mut sql = Sql::new(db.backend());
    sql.push("SELECT event_id, outcome FROM webhook_deliveries WHERE account_id = ").bind(SqlValue::Int(Some(account_id)));
    sql.push(" ORDER BY id");
    let rows = sql.load::<DeliveryRow>(&mut conn).expect("stored deliveries");

    let mut outcomes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        outcomes.entry(row.event_id.unwrap_or_default()).or_default().push(row.outcome);
    }
    outcomes
}

/// Number of rows of one event that took effect, that is every outcome but `duplicate`.
pub fn effective_rows(outcomes: &[String]) -> usize {
    outcomes.iter().filter(|outcome| *outcome != "duplicate").count()
}
