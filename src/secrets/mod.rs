//! Secrets at rest: Harvest client secrets and webhook secret keys are stored encrypted with
//! AES-256-GCM under a master key.
//!
//! A sealed value is `v1:` followed by the base64 of a random 96-bit nonce and the
//! ciphertext with its 128-bit tag. The columns stay `TEXT`, so values stored before
//! encryption existed still read as plaintext, and `db::accounts::seal_plaintext_secrets`
//! encrypts them at the next start.
//!
//! The key is installed once per process (`install`) at start-up, so the query functions
//! that read and write secrets need no extra parameter.

mod key;

use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub use key::{KeyOrigin, KeySource, MasterKey, default_key_file, load_or_create};

/// Prefix of a value sealed with the current format.
const SEALED_PREFIX: &str = "v1:";

/// Bytes in an AES-GCM nonce.
const NONCE_BYTES: usize = 12;

static MASTER_KEY: OnceLock<MasterKey> = OnceLock::new();

/// Errors from sealing and opening secrets.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "no master key is configured; set --master-key, GREENHOUSE_SYNC_MASTER_KEY or --master-key-file"
    )]
    NoMasterKey,
    #[error("a different master key is already installed in this process")]
    KeyMismatch,
    #[error("invalid master key: {0}")]
    InvalidKey(String),
    #[error("{0}")]
    Setting(String),
    #[error("stored secret in {column} is not valid `v1:` base64; restore it from a backup or set it again")]
    Malformed { column: String },
    #[error(
        "stored secret in {column} could not be decrypted: the master key differs from the one it was stored with"
    )]
    WrongKey { column: String },
    #[error("could not encrypt a secret for {column}")]
    Encrypt { column: String },
    #[error("master key file {path}: {detail}")]
    KeyFile { path: String, detail: String },
}

/// Installs the process's master key. Installing the same key again is allowed, so that
/// tests and commands can call this more than once.
pub fn install(key: MasterKey) -> Result<(), SecretsError> {
    let installed = MASTER_KEY.get_or_init(|| key.clone());
    if installed == &key { Ok(()) } else { Err(SecretsError::KeyMismatch) }
}

/// Loads the master key for the database at `database_url` (creating the key file beside a
/// SQLite database on first start) and installs it. Logs where a generated key was written,
/// never the key.
pub fn install_for_database(source: &KeySource, database_url: &str) -> Result<KeyOrigin, SecretsError> {
    let (backend, target) = crate::db::parse_url(database_url);
    let (key, origin) = load_or_create(source, backend, &target)?;
    install(key)?;
    match &origin {
        KeyOrigin::Generated(path) => tracing::warn!(
            path = %path.display(),
            "generated a master key file for the stored secrets; back it up with the database, \
             because without it the secrets cannot be read"
        ),
        KeyOrigin::File(path) => tracing::debug!(path = %path.display(), "master key read from file"),
        KeyOrigin::Setting => tracing::debug!("master key taken from the setting"),
    }
    Ok(origin)
}

/// Returns true once a master key is installed.
pub fn is_installed() -> bool {
    MASTER_KEY.get().is_some()
}

fn installed_cipher() -> Result<Aes256Gcm, SecretsError> {
    let key = MASTER_KEY.get().ok_or(SecretsError::NoMasterKey)?;
    Aes256Gcm::new_from_slice(key.bytes()).map_err(|_| SecretsError::InvalidKey("expected 32 bytes".to_string()))
}

/// Encrypts `plaintext` for storage in `column`. The column name is bound to the ciphertext
/// as associated data, so a value copied into another column fails to decrypt.
pub fn seal(column: &str, plaintext: &str) -> Result<String, SecretsError> {
    let cipher = installed_cipher()?;
    let nonce_bytes: [u8; NONCE_BYTES] = rand::random();
    let payload = Payload { msg: plaintext.as_bytes(), aad: column.as_bytes() };
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce_bytes), payload)
        .map_err(|_| SecretsError::Encrypt { column: column.to_string() })?;

    let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
    sealed.extend_from_slice(&nonce_bytes);
    sealed.extend_from_slice(&ciphertext);
    Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(sealed)))
}

/// Decrypts a value read from `column`. A value without the `v1:` prefix was stored before
/// encryption and is returned as it is.
pub fn open(column: &str, stored: &str) -> Result<String, SecretsError> {
    let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else {
        return Ok(stored.to_string());
    };
    let malformed = || SecretsError::Malformed { column: column.to_string() };
    let sealed = STANDARD.decode(encoded).map_err(|_| malformed())?;
    if sealed.len() < NONCE_BYTES {
        return Err(malformed());
    }

    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    let cipher = installed_cipher()?;
    let payload = Payload { msg: ciphertext, aad: column.as_bytes() };
    let plaintext = cipher
        .decrypt(Nonce::from_slice(nonce), payload)
        .map_err(|_| SecretsError::WrongKey { column: column.to_string() })?;
    String::from_utf8(plaintext).map_err(|_| malformed())
}

/// Returns true when `stored` is in the sealed format.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install_test_key() {
        install(MasterKey::from_bytes([7u8; 32])).expect("same key every time");
    }

    #[test]
    fn sealed_value_opens() {
        install_test_key();
        let sealed = seal("accounts.webhook_secret", "s3cret").expect("seal");
        assert!(sealed.starts_with("v1:"), "{sealed}");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(open("accounts.webhook_secret", &sealed).expect("open"), "s3cret");
    }

    #[test]
    fn nonce_differs_per_seal() {
        install_test_key();
        let first = seal("c", "same").expect("seal");
        let second = seal("c", "same").expect("seal");
        assert_ne!(first, second);
    }

    #[test]
    fn other_column_fails() {
        install_test_key();
        let sealed = seal("accounts.webhook_secret", "s3cret").expect("seal");
        let error = open("accounts.harvest_client_secret", &sealed).expect_err("bound to its column");
        assert!(matches!(error, SecretsError::WrongKey { .. }), "{error}");
    }

    #[test]
    fn plaintext_reads_as_is() {
        install_test_key();
        assert_eq!(open("c", "legacy-plain").expect("plaintext"), "legacy-plain");
    }

    #[test]
    fn tampered_value_fails() {
        install_test_key();
        let sealed = seal("c", "s3cret").expect("seal");
        let mut bytes = STANDARD.decode(&sealed[3..]).expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("v1:{}", STANDARD.encode(bytes));
        assert!(open("c", &tampered).is_err());
    }

    #[test]
    fn garbage_is_malformed() {
        install_test_key();
        let error = open("c", "v1:***").expect_err("not base64");
        assert!(matches!(error, SecretsError::Malformed { .. }), "{error}");
    }

    #[test]
    fn second_key_rejected() {
        install_test_key();
        let error = install(MasterKey::from_bytes([8u8; 32])).expect_err("different key");
        assert!(matches!(error, SecretsError::KeyMismatch));
    }
}
