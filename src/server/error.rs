//! The error every HTTP handler returns: a status and a message, sent as `{"error": "..."}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::db::DbError;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
}

impl From<DbError> for ApiError {
    /// Database failures become 503, so that Greenhouse and other clients retry later. The
    /// detail goes to the log, not to the caller.
    fn from(error: DbError) -> ApiError {
        tracing::error!(error = %error, "database call failed");
        crate::metrics::database_error(crate::metrics::scrape::error_kind(&error));
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable; retry later")
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> ApiError {
        ApiError::from(DbError::from(error))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", "30"));
        }
        response.json(serde_json::json!({ "error": self.message }))
    }
}
