//! The admin bearer token check that guards every `/admin` route.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::server::error::ApiError;

/// The configured admin token, held as its SHA-256 digest. Comparing digests in constant
/// time takes the same time whatever the caller sends, its length included.
#[derive(Clone)]
pub struct AdminToken {
    digest: Option<[u8; 32]>,
}

impl AdminToken {
    /// An empty or missing token leaves the admin API disabled.
    pub fn new(token: Option<&str>) -> AdminToken {
        let digest = token.filter(|t| !t.is_empty()).map(|t| Sha256::digest(t.as_bytes()).into());
        AdminToken { digest }
    }

    pub fn is_set(&self) -> bool {
        self.digest.is_some()
    }

    /// Checks an `Authorization` header value against the token.
    fn check(&self, header: Option<&[u8]>) -> Result<(), ApiError> {
        let Some(expected) = &self.digest else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the admin API is disabled because no admin token is configured; \
                 set --admin-token or GREENHOUSE_SYNC_ADMIN_TOKEN and restart",
            ));
        };
        let presented = header.and_then(|value| value.strip_prefix(b"Bearer ")).ok_or_else(|| {
            ApiError::unauthorized("missing bearer token; send 'Authorization: Bearer <admin token>'")
        })?;

        let presented: [u8; 32] = Sha256::digest(presented.trim_ascii()).into();
        if bool::from(presented.ct_eq(expected)) {
            Ok(())
        } else {
            Err(ApiError::unauthorized("invalid admin token"))
        }
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_set() { "AdminToken(***)" } else { "AdminToken(unset)" })
    }
}

/// Middleware of the `/admin` scope: a request without the right token gets 401 (503 when
/// no token is configured) and never reaches a handler.
pub async fn require_token(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let header = request.headers().get(AUTHORIZATION).map(|value| value.as_bytes());
    let token = request.app_data::<web::Data<AdminToken>>().map(|data| data.get_ref().clone());
    let checked = token.unwrap_or_else(|| AdminToken::new(None)).check(header);

    match checked {
        Ok(()) => Ok(next.call(request).await?.map_into_left_body()),
        Err(error) => {
            if error.status == StatusCode::UNAUTHORIZED {
                let path = request.path().to_string();
                tracing::warn!(path = %path, reason = %error, "admin request rejected");
            }
            let mut response = error.error_response();
            if error.status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(WWW_AUTHENTICATE, actix_web::http::header::HeaderValue::from_static("Bearer"));
            }
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_token_passes() {
        let token = AdminToken::new(Some("s3cret-token"));
        assert!(token.check(Some(b"Bearer s3cret-token")).is_ok());
    }

    #[test]
    fn wrong_token_is_401() {
        let token = AdminToken::new(Some("s3cret-token"));
        let error = token.check(Some(b"Bearer s3cret-tokeN")).expect_err("wrong token");
        assert_eq!(error.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn basic_scheme_is_401() {
        let token = AdminToken::new(Some("s3cret-token"));
        assert!(token.check(Some(b"Basic s3cret-token")).is_err());
        assert!(token.check(None).is_err());
    }

    #[test]
    fn unset_token_is_503() {
        let error = AdminToken::new(Some("")).check(Some(b"Bearer ")).expect_err("disabled");
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(error.message.contains("GREENHOUSE_SYNC_ADMIN_TOKEN"), "{}", error.message);
    }
}
