//! The master key: parsing, key files, and the one generated for a new SQLite database.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

use super::SecretsError;
use crate::db::Backend;

/// Bytes in an AES-256 key.
const KEY_BYTES: usize = 32;

/// A 256-bit key. `Debug` never prints it.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_BYTES]);

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> MasterKey {
        MasterKey(bytes)
    }

    /// Parses a key written as base64 of 32 bytes, as `openssl rand -base64 32` prints it.
    pub fn from_base64(text: &str) -> Result<MasterKey, SecretsError> {
        let help = "expected 32 random bytes in base64, such as the output of `openssl rand -base64 32`";
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SecretsError::InvalidKey(format!("not valid base64; {help}")))?;
        let bytes: [u8; KEY_BYTES] = bytes
            .try_into()
            .map_err(|bytes: Vec<u8>| SecretsError::InvalidKey(format!("{} bytes long; {help}", bytes.len())))?;
        Ok(MasterKey(bytes))
    }

    pub fn generate() -> MasterKey {
        MasterKey(rand::random())
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for MasterKey {
    fn eq(&self, other: &MasterKey) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// Configured source of the master key.
#[derive(Debug, Clone, Default)]
pub struct KeySource {
    /// The key itself, base64.
    pub key: Option<String>,
    /// A file holding the key as base64.
    pub key_file: Option<PathBuf>,
}

/// Source from which `load_or_create` took the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    Setting,
    File(PathBuf),
    Generated(PathBuf),
}

/// Returns the key file used for a SQLite database when no key is configured: the database
/// path with `.key` appended, so the key sits beside the data it protects.
pub fn default_key_file(sqlite_path: &str) -> PathBuf {
    PathBuf::from(format!("{sqlite_path}.key"))
}

/// Loads the configured key. With none configured, a SQLite database uses the key file
/// beside it and creates that file on first start; PostgreSQL needs a configured key,
/// because every replica must use the same one.
pub fn load_or_create(source: &KeySource, backend: Backend, database_path: &str) -> Result<(MasterKey, KeyOrigin), SecretsError> {
    match (&source.key, &source.key_file) {
        (Some(_), Some(_)) => Err(SecretsError::Setting(
            "both --master-key and --master-key-file are set; keep one".to_string(),
        )),
        (Some(key), None) => Ok((MasterKey::from_base64(key)?, KeyOrigin::Setting)),
        (None, Some(path)) => Ok((read_key_file(path)?, KeyOrigin::File(path.clone()))),
        (None, None) if backend == Backend::Postgres => Err(SecretsError::Setting(
            "missing master key: PostgreSQL needs one shared by every replica. Set --master-key or \
             GREENHOUSE_SYNC_MASTER_KEY (for example from `openssl rand -base64 32`), or --master-key-file"
                .to_string(),
        )),
        (None, None) => {
            let path = default_key_file(database_path);
            if path.exists() {
                return Ok((read_key_file(&path)?, KeyOrigin::File(path)));
            }
            let key = MasterKey::generate();
            write_key_file(&path, &key)?;
            Ok((key, KeyOrigin::Generated(path)))
        }
    }
}

fn read_key_file(path: &Path) -> Result<MasterKey, SecretsError> {
    let text = std::fs::read_to_string(path).map_err(|error| key_file_error(path, format!("could not be read: {error}")))?;
    MasterKey::from_base64(&text).map_err(|error| key_file_error(path, error.to_string()))
}

/// Writes a new key file readable by its owner only. `create_new` fails rather than
/// overwrite a key another process wrote in the meantime.
fn write_key_file(path: &Path, key: &MasterKey) -> Result<(), SecretsError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|error| key_file_error(path, format!("could not be created: {error}")))?;
    writeln!(file, "{}", key.to_base64())
        .and_then(|()| file.sync_all())
        .map_err(|error| key_file_error(path, format!("could not be written: {error}")))
}

fn key_file_error(path: &Path, detail: String) -> SecretsError {
    SecretsError::KeyFile { path: path.display().to_string(), detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_key_rejected() {
        let error = MasterKey::from_base64(&STANDARD.encode([1u8; 16])).expect_err("16 bytes");
        assert!(error.to_string().contains("16 bytes long"), "{error}");
    }

    #[test]
    fn base64_round_trip() {
        let key = MasterKey::generate();
        assert_eq!(MasterKey::from_base64(&key.to_base64()).expect("parse"), key);
    }

    #[test]
    fn debug_hides_key() {
        assert_eq!(format!("{:?}", MasterKey::from_bytes([1; 32])), "MasterKey(***)");
    }

    #[test]
    fn sqlite_key_file_generated_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = dir.path().join("gs.db").display().to_string();
        let (first, origin) = load_or_create(&KeySource::default(), Backend::Sqlite, &database).expect("generate");
        let path = default_key_file(&database);
        assert_eq!(origin, KeyOrigin::Generated(path.clone()));

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("key file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let (second, origin) = load_or_create(&KeySource::default(), Backend::Sqlite, &database).expect("reuse");
        assert_eq!(origin, KeyOrigin::File(path));
        assert_eq!(first, second);
    }

    #[test]
    fn postgres_without_key_rejected() {
        let error = load_or_create(&KeySource::default(), Backend::Postgres, "").expect_err("no key");
        assert!(error.to_string().contains("--master-key"), "{error}");
    }

    #[test]
    fn both_sources_rejected() {
        let source = KeySource { key: Some(MasterKey::generate().to_base64()), key_file: Some(PathBuf::from("k")) };
        assert!(load_or_create(&source, Backend::Sqlite, "gs.db").is_err());
    }
}
