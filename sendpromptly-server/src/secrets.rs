//! Generating and checking the server's secrets: API keys, proof-link
//! tokens and console passwords. Keys and tokens are stored only as SHA-256
//! hashes (they carry 256 random bits, so a fast hash is safe); passwords
//! as Argon2id.
//!
//! Secrets the server must read back (the projects' `whsec_` signing
//! secrets, and stored idempotent responses, which may contain a new secret)
//! are encrypted at rest with ChaCha20-Poly1305 under a master key from the
//! configuration: [`Keyring`] is the one place that seals and opens them, and
//! both stores call it. A sealed value is text,
//! `spenc1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`, where the key id
//! names the master key (the first 4 bytes of a SHA-256 of it, in hex), so a
//! rotation can tell which key opens which row.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of every API key.
pub const API_KEY_PREFIX: &str = "sp_";
/// How many leading characters of a key are kept to recognise it in lists.
pub const API_KEY_DISPLAY_CHARS: usize = 10;

/// 32 random bytes from the operating system, base64url without padding.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new API key, `sp_live_…` (shown once, stored hashed).
pub fn new_api_key() -> String {
    format!("{API_KEY_PREFIX}live_{}", random_token())
}

/// A new proof-link token (256 random bits).
pub fn new_proof_token() -> String {
    random_token()
}

/// A new random console password (shown once).
pub fn new_password() -> String {
    let mut bytes = [0u8; 15];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a high-entropy secret (API key, proof token), for storage and lookup.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The displayable start of an API key.
pub fn key_display_prefix(key: &str) -> String {
    key.chars().take(API_KEY_DISPLAY_CHARS).collect()
}

/// Hashes a console password with Argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks a console password against its Argon2 PHC string (constant time).
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// The prefix of every sealed (encrypted) value.
pub const SEALED_PREFIX: &str = "spenc1:";
/// The length of a master key, in bytes.
pub const MASTER_KEY_BYTES: usize = 32;

/// Why a master key could not be loaded or a sealed value not opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A configured key is not 32 bytes in base64 (the value is never echoed).
    #[error(
        "invalid {setting}: must be 32 random bytes in base64 (make one with `openssl rand -base64 32`)"
    )]
    InvalidKey {
        /// The setting that holds it.
        setting: &'static str,
    },
    /// The key file could not be read or created.
    #[error("secret key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// PostgreSQL (shared by several instances) needs a configured key.
    #[error(
        "a PostgreSQL database needs a secret key to encrypt signing secrets: set --secret-key \
         (SENDPROMPTLY_SECRET_KEY) or --secret-key-file (SENDPROMPTLY_SECRET_KEY_FILE), the same \
         on every instance"
    )]
    KeyRequired,
    /// A stored value was sealed with a key that is not configured.
    #[error(
        "a stored secret is encrypted with key {key_id}, which is neither the current secret key \
         ({current}) nor one of --previous-secret-keys: configure the key it was written with"
    )]
    UnknownKey {
        /// The key id in the sealed value.
        key_id: String,
        /// The id of the current key.
        current: String,
    },
    /// The key id matched but authentication failed: wrong key or damaged data.
    #[error(
        "a stored secret does not decrypt with key {key_id}: the key is wrong or the data damaged"
    )]
    Undecryptable {
        /// The key id in the sealed value.
        key_id: String,
    },
    /// The stored value is not a sealed value.
    #[error("a stored secret is not in the sealed format")]
    Malformed,
    /// The store was opened without a keyring.
    #[error("this store was opened without a secret key")]
    NoKeyring,
}

/// One master key and its id.
#[derive(Clone)]
struct MasterKey {
    id: String,
    cipher: ChaCha20Poly1305,
}

impl MasterKey {
    fn new(bytes: &[u8; MASTER_KEY_BYTES]) -> MasterKey {
        let mut hasher = Sha256::new();
        hasher.update(b"sendpromptly secret key id\0");
        hasher.update(bytes);
        MasterKey {
            id: hex::encode(&hasher.finalize()[..4]),
            cipher: ChaCha20Poly1305::new(bytes.into()),
        }
    }
}

/// The master keys: the current one seals, it and the previous ones open.
#[derive(Clone)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only, never key material.
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Decodes a base64 (standard or URL-safe, padded or not) 32-byte key.
pub fn parse_master_key(
    text: &str,
    setting: &'static str,
) -> Result<[u8; MASTER_KEY_BYTES], SecretError> {
    let text = text.trim();
    let decoded = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .map_err(|_| SecretError::InvalidKey { setting })?;
    decoded
        .try_into()
        .map_err(|_| SecretError::InvalidKey { setting })
}

/// A new random master key, base64.
pub fn new_master_key() -> String {
    let mut bytes = [0u8; MASTER_KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// Reads a key file (one base64 key, surrounding whitespace ignored).
pub fn read_key_file(path: &Path) -> Result<[u8; MASTER_KEY_BYTES], SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::KeyFile {
        path: path.to_owned(),
        source,
    })?;
    parse_master_key(&text, "secret_key_file")
}

/// Reads the key file at `path`, or creates it (mode 0600, never
/// overwriting) with a new random key; says whether it was created.
pub fn read_or_create_key_file(path: &Path) -> Result<([u8; MASTER_KEY_BYTES], bool), SecretError> {
    let key_file_error = |source| SecretError::KeyFile {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            let key = new_master_key();
            file.write_all(format!("{key}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(key_file_error)?;
            Ok((parse_master_key(&key, "secret_key_file")?, true))
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((read_key_file(path)?, false))
        }
        Err(err) => Err(key_file_error(err)),
    }
}

/// Where the generated key of an SQLite database lives: beside the file,
/// `<database>.secret-key`. `None` for in-memory databases.
pub fn key_file_beside(database_url: &str) -> Option<PathBuf> {
    if database_url.contains(":memory:") || database_url.contains("mode=memory") {
        return None;
    }
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty()).then(|| PathBuf::from(format!("{path}.secret-key")))
}

impl Keyring {
    /// A keyring sealing with `current` and also opening with `previous`.
    pub fn new(current: &[u8; MASTER_KEY_BYTES], previous: &[[u8; MASTER_KEY_BYTES]]) -> Keyring {
        let current = MasterKey::new(current);
        let previous = previous
            .iter()
            .map(MasterKey::new)
            .filter(|k| k.id != current.id)
            .collect();
        Keyring { current, previous }
    }

    /// A keyring with one new random key (tests and in-memory databases).
    pub fn random() -> Keyring {
        let mut bytes = [0u8; MASTER_KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Keyring::new(&bytes, &[])
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. the table and the
    /// project id, so a sealed value cannot be moved to another row).
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            // ChaCha20-Poly1305 fails only past 256 GiB per message.
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(nonce.len() + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!(
            "{SEALED_PREFIX}{}:{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    /// Whether a stored value is sealed (as opposed to legacy plaintext).
    pub fn is_sealed(stored: &[u8]) -> bool {
        stored.starts_with(SEALED_PREFIX.as_bytes())
    }

    /// The key id a sealed value names.
    pub fn key_id_of(sealed: &str) -> Result<&str, SecretError> {
        let rest = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SecretError::Malformed)?;
        rest.split_once(':')
            .map(|(id, _)| id)
            .ok_or(SecretError::Malformed)
    }

    /// Decrypts a value from [`Keyring::seal`] with the key it names.
    pub fn open(&self, context: &[u8], sealed: &str) -> Result<Vec<u8>, SecretError> {
        let rest = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SecretError::Malformed)?;
        let (key_id, body) = rest.split_once(':').ok_or(SecretError::Malformed)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or_else(|| SecretError::UnknownKey {
                key_id: key_id.to_owned(),
                current: self.current.id.clone(),
            })?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SecretError::Malformed)?;
        if bytes.len() < 12 + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        key.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| SecretError::Undecryptable {
                key_id: key_id.to_owned(),
            })
    }

    /// Decrypts a sealed value that must be UTF-8 text.
    pub fn open_text(&self, context: &[u8], sealed: &str) -> Result<String, SecretError> {
        String::from_utf8(self.open(context, sealed)?).map_err(|_| SecretError::Malformed)
    }

    /// Whether a sealed value needs sealing again with the current key.
    pub fn is_stale(&self, sealed: &str) -> bool {
        Keyring::key_id_of(sealed).is_ok_and(|id| id != self.current.id)
    }
}

/// The context a project's signing secret is sealed under.
pub fn signing_secret_context(project_id: &str) -> Vec<u8> {
    format!("signing_secrets\0{project_id}").into_bytes()
}

/// The context a project's provider-tap secret (`stripe_endpoint_secrets`,
/// `shopify_client_secret`, `stripe_restricted_key`) is sealed under.
pub fn provider_secret_context(project_id: &str, setting: &str) -> Vec<u8> {
    format!("provider_tap_settings\0{project_id}\0{setting}").into_bytes()
}

/// The context a console user's TOTP secret is sealed under.
pub fn totp_secret_context(user_id: &str) -> Vec<u8> {
    format!("console_totp\0{user_id}").into_bytes()
}

/// The context a stored idempotent response is sealed under.
pub fn idempotency_context(project_id: &str, key: &str) -> Vec<u8> {
    format!("idempotency_keys\0{project_id}\0{key}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hash_stably() {
        let a = new_api_key();
        let b = new_api_key();
        assert!(a.starts_with("sp_live_"));
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(key_display_prefix(&a).len(), API_KEY_DISPLAY_CHARS);
    }

    #[test]
    fn passwords_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong", &phc));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let old = parse_master_key(&new_master_key(), "secret_key").unwrap();
        let new = parse_master_key(&new_master_key(), "secret_key").unwrap();
        let before = Keyring::new(&old, &[]);
        let sealed = before.seal(b"ctx", b"whsec_abc");
        assert!(Keyring::is_sealed(sealed.as_bytes()));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(Keyring::key_id_of(&sealed).unwrap(), before.current_id());
        assert_eq!(before.open(b"ctx", &sealed).unwrap(), b"whsec_abc");
        assert_ne!(before.seal(b"ctx", b"whsec_abc"), sealed, "random nonce");
        assert!(matches!(
            before.open(b"other", &sealed),
            Err(SecretError::Undecryptable { .. })
        ));
        // Rotated: the old key still opens, the new one seals.
        let after = Keyring::new(&new, &[old]);
        assert_eq!(after.open(b"ctx", &sealed).unwrap(), b"whsec_abc");
        assert!(after.is_stale(&sealed));
        let resealed = after.seal(b"ctx", b"whsec_abc");
        assert!(!after.is_stale(&resealed));
        // Without the old key: a clear error naming it.
        let err = Keyring::new(&new, &[]).open(b"ctx", &sealed).unwrap_err();
        assert!(
            matches!(&err, SecretError::UnknownKey { key_id, .. } if key_id == before.current_id()),
            "{err}"
        );
        for bad in ["whsec_abc", "spenc1:", "spenc1:abcd", "spenc1:00:!!"] {
            assert!(before.open(b"ctx", bad).is_err(), "{bad}");
        }
        assert!(!format!("{after:?}").contains(&STANDARD.encode(new)));
    }

    #[test]
    fn master_keys_parse_and_key_files_are_created_once() {
        assert!(parse_master_key("c2hvcnQ=", "secret_key").is_err());
        assert!(parse_master_key("not base64!", "secret_key").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.secret-key");
        let (first, created) = read_or_create_key_file(&path).unwrap();
        assert!(created);
        let (again, created) = read_or_create_key_file(&path).unwrap();
        assert!(!created);
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            key_file_beside("sqlite://data/sp.db?mode=rwc"),
            Some(PathBuf::from("data/sp.db.secret-key"))
        );
        assert_eq!(key_file_beside("sqlite::memory:"), None);
        assert_eq!(key_file_beside("postgres://x/y"), None);
    }
}
