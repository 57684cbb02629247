//! Greenhouse webhook signatures.
//!
//! Greenhouse sends `Signature: sha256 <lowercase hex>`: one space after the algorithm name,
//! not `=`. The MAC is HMAC-SHA256 keyed with the webhook's secret key over the entire raw
//! body, as sent. Greenhouse escapes `<`, `>` and `&` as `\u003c` and so on before signing, so
//! the check must run over the received bytes and never over re-serialised JSON.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Signature";

/// Reason a signature header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Signature header")]
    Missing,
    #[error("malformed Signature header: expected 'sha256 <64 lowercase hex digits>'")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
}

/// Returns the `Signature` header value Greenhouse would send for `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(body);
    format!("sha256 {}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a `Signature` header against the raw body, in constant time.
///
/// `header` is `None` when the request carried no such header. Upper-case hex and the
/// `sha256=` form are rejected as malformed because Greenhouse sends neither.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let expected = parse_header(header)?;

    let mut mac = new_mac(secret);
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

/// Returns true when `header` matches `body` under any of `secrets`.
///
/// Several secrets are valid while a rotated key is in its grace period.
pub fn verify_any<'a>(
    secrets: impl IntoIterator<Item = &'a [u8]>,
    body: &[u8],
    header: Option<&[u8]>,
) -> Result<(), SignatureError> {
    let mut outcome = Err(SignatureError::Mismatch);
    for secret in secrets {
        outcome = verify(secret, body, header);
        if outcome != Err(SignatureError::Mismatch) {
            return outcome;
        }
    }
    outcome
}

fn new_mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (RFC 2104 hashes long keys), so this cannot fail.
    HmacSha256::new_from_slice(secret).expect("HMAC-SHA256 accepts keys of any length")
}

fn parse_header(header: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let digest = header.strip_prefix(b"sha256 ").ok_or(SignatureError::Malformed)?;
    let is_lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if digest.len() != 64 || !digest.iter().all(is_lower_hex) {
        return Err(SignatureError::Malformed);
    }
    hex::decode(digest).map_err(|_| SignatureError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_body_verifies() {
        let header = sign(b"key", b"{\"action\":\"ping\"}");
        assert_eq!(verify(b"key", b"{\"action\":\"ping\"}", Some(header.as_bytes())), Ok(()));
    }

    #[test]
    fn other_key_is_mismatch() {
        let header = sign(b"key", b"body");
        assert_eq!(verify(b"other", b"body", Some(header.as_bytes())), Err(SignatureError::Mismatch));
    }

    #[test]
    fn equals_form_is_malformed() {
        let header = sign(b"key", b"body").replace("sha256 ", "sha256=");
        assert_eq!(verify(b"key", b"body", Some(header.as_bytes())), Err(SignatureError::Malformed));
    }

    #[test]
    fn upper_case_hex_is_malformed() {
        let header = sign(b"key", b"body").to_uppercase().replace("SHA256 ", "sha256 ");
        assert_eq!(verify(b"key", b"body", Some(header.as_bytes())), Err(SignatureError::Malformed));
    }

    #[test]
    fn rotated_key_still_verifies() {
        let header = sign(b"old", b"body");
        let keys: [&[u8]; 2] = [b"new", b"old"];
        assert_eq!(verify_any(keys, b"body", Some(header.as_bytes())), Ok(()));
    }
}
