//! Generating and checking the server's secrets: API keys, proof-link
//! tokens and console passwords. Keys and tokens are stored only as SHA-256
//! hashes (they carry 256 random bits, so a fast hash is safe); passwords
//! as Argon2id.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
}
