//! OAuth2 client-credentials tokens, as Harvest v3's `POST /token` issues them.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

/// Reason a bearer token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("missing bearer token: send 'Authorization: Bearer <access_token>' from POST /token")]
    Missing,
    #[error("invalid or revoked access token: fetch a new one from POST /token")]
    Unknown,
    #[error("access token expired: fetch a new one from POST /token")]
    Expired,
}

/// Reason `POST /token` rejected the credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("missing or malformed HTTP Basic credentials: expected 'Authorization: Basic base64(client_id:client_secret)'")]
    Malformed,
    #[error("invalid client secret for client id '{0}'")]
    WrongSecret(String),
}

/// An issued token.
#[derive(Debug, Clone)]
struct Issued {
    client_id: String,
    expires_at: DateTime<Utc>,
}

/// The tokens issued so far.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: HashMap<String, Issued>,
}

impl Tokens {
    /// Issues a token for `client_id` valid for `ttl`; returns it with its expiry.
    pub fn issue(&mut self, client_id: &str, ttl: Duration) -> (String, DateTime<Utc>) {
        // Forgetting expired tokens turns their 'expired' error into 'unknown', which is
        // still a 401, and keeps the map as small as the number of live tokens.
        let now = Utc::now();
        self.issued.retain(|_, issued| issued.expires_at > now);

        let token = hex::encode(rand::random::<[u8; 24]>());
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
        let expires_at = now + ttl;
        self.issued.insert(token.clone(), Issued { client_id: client_id.to_owned(), expires_at });
        (token, expires_at)
    }

    /// Returns the client id of a valid token from an `Authorization` header value.
    pub fn check(&self, authorization: Option<&str>) -> Result<String, TokenError> {
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(TokenError::Missing)?;
        let issued = self.issued.get(token).ok_or(TokenError::Unknown)?;
        if issued.expires_at <= Utc::now() {
            return Err(TokenError::Expired);
        }
        Ok(issued.client_id.clone())
    }

    /// Revokes every token, as when an administrator rotates the credential.
    pub fn revoke_all(&mut self) {
        self.issued.clear();
    }
}

/// Checks HTTP Basic credentials against the one accepted secret; returns the client id.
pub fn check_basic(authorization: Option<&str>, secret: &str) -> Result<String, CredentialsError> {
    let encoded = authorization
        .and_then(|value| value.strip_prefix("Basic "))
        .ok_or(CredentialsError::Malformed)?;
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| CredentialsError::Malformed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| CredentialsError::Malformed)?;
    let (client_id, client_secret) = decoded.split_once(':').ok_or(CredentialsError::Malformed)?;

    if client_id.is_empty() {
        return Err(CredentialsError::Malformed);
    }
    if client_secret != secret {
        return Err(CredentialsError::WrongSecret(client_id.to_owned()));
    }
    Ok(client_id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> String {
        format!("Basic {}", STANDARD.encode(credentials))
    }

    #[test]
    fn issued_token_checks() {
        let mut tokens = Tokens::default();
        let (token, _) = tokens.issue("client-a", Duration::from_secs(60));
        assert_eq!(tokens.check(Some(&format!("Bearer {token}"))), Ok("client-a".to_owned()));
        assert_eq!(tokens.check(None), Err(TokenError::Missing));
        assert_eq!(tokens.check(Some("Bearer nope")), Err(TokenError::Unknown));
        tokens.revoke_all();
        assert_eq!(tokens.check(Some(&format!("Bearer {token}"))), Err(TokenError::Unknown));
    }

    #[test]
    fn zero_ttl_token_is_expired() {
        let mut tokens = Tokens::default();
        let (token, _) = tokens.issue("client-a", Duration::ZERO);
        assert_eq!(tokens.check(Some(&format!("Bearer {token}"))), Err(TokenError::Expired));
    }

    #[test]
    fn basic_credentials() {
        assert_eq!(check_basic(Some(&basic("abc:sim-secret")), "sim-secret"), Ok("abc".to_owned()));
        assert_eq!(check_basic(Some(&basic("abc:wrong")), "sim-secret"), Err(CredentialsError::WrongSecret("abc".to_owned())));
        assert_eq!(check_basic(Some(&basic("no-colon")), "sim-secret"), Err(CredentialsError::Malformed));
        assert_eq!(check_basic(Some("Bearer x"), "sim-secret"), Err(CredentialsError::Malformed));
        assert_eq!(check_basic(None, "sim-secret"), Err(CredentialsError::Malformed));
    }
}
