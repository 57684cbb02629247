//! `/healthz` (the process responds) and `/readyz` (the database is reachable and migrated).

use actix_web::{HttpResponse, web};

use crate::db::{Database, DbError, migrations};

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

pub async fn readyz(db: web::Data<Database>) -> HttpResponse {
    let checked = db.run(|conn| migrations::is_current(conn)).await;
    match checked {
        Ok(true) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Ok(false) => HttpResponse::ServiceUnavailable().json(serde_json::json!({ "error": "database migrations pending" })),
        Err(error) => {
            let error: DbError = error;
            tracing::warn!(error = %error, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "error": "database unreachable" }))
        }
    }
}
