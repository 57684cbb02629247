//! `GET /metrics`: refreshes the values read from the database, then encodes everything.

use actix_web::{HttpResponse, web};

use super::registry::metrics;
use crate::db::{Database, DbError, accounts, migrations, sweeps};

/// Content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Last completion time of one account's resource, in Unix seconds.
struct LastSuccess {
    account_id: i64,
    resource: String,
    unix_seconds: i64,
}

pub async fn serve_metrics(db: web::Data<Database>) -> HttpResponse {
    refresh_database_gauges(&db).await;
    match super::encode_text() {
        Ok(text) => HttpResponse::Ok().content_type(TEXT_FORMAT).body(text),
        Err(error) => {
            tracing::error!(error = %error, "could not encode metrics");
            HttpResponse::InternalServerError().json(serde_json::json!({ "error": "could not encode metrics" }))
        }
    }
}

/// Sets the gauges that mirror database state. When the database cannot be read, the
/// previous values stay and the error is counted, so a scrape still succeeds.
async fn refresh_database_gauges(db: &Database) {
    let m = metrics();
    let (in_use, idle) = db.pool_state();
    m.db_pool_connections.with_label_values(&["in_use"]).set(i64::from(in_use));
    m.db_pool_connections.with_label_values(&["idle"]).set(i64::from(idle));
    // The memory gauges are read here too, because a scrape is when they are needed.
    m.sqlite_heap.set(crate::db::connection::sqlite_heap_bytes());
    if let Some(heap) = crate::allocator::heap_usage() {
        m.heap.with_label_values(&["in_use"]).set(heap.in_use as i64);
        m.heap.with_label_values(&["free"]).set(heap.free as i64);
    }

    let read = db
        .run(|conn| {
            let ready = migrations::is_current(conn)?;
            let depth = sweeps::refresh_queue_depth(conn)?;
            let mut last = Vec::new();
            for account in accounts::list(conn)? {
                for state in sweeps::sync_states(conn, account.id)? {
                    if let Some(at) = state.last_completed_at {
                        last.push(LastSuccess { account_id: account.id, resource: state.resource, unix_seconds: at.timestamp() });
                    }
                }
            }
            Ok::<_, DbError>((ready, depth, last))
        })
        .await;

    match read {
        Ok((ready, depth, last)) => {
            m.database_ready.set(i64::from(ready));
            m.refresh_queue.set(depth);
            // Reset first, so that deleted accounts drop out of the series.
            m.sweep_last_success.reset();
            for entry in last {
                m.sweep_last_success
                    .with_label_values(&[&entry.account_id.to_string(), &entry.resource])
                    .set(entry.unix_seconds);
            }
        }
        Err(error) => {
            m.database_ready.set(0);
            tracing::warn!(error = %error, "metrics scrape could not read the database");
            super::database_error(error_kind(&error));
        }
    }
}

/// Names a `DbError` variant for the `kind` label.
pub fn error_kind(error: &DbError) -> &'static str {
    match error {
        DbError::Unavailable(_) => "unavailable",
        DbError::Query(_) => "query",
        DbError::Migration(_) => "migration",
        DbError::Task(_) => "task",
        DbError::Busy(_) => "busy",
    }
}
