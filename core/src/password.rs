//! Password hashing.
//!
//! New hashes are argon2id in PHC string form (`$argon2id$…`). Accounts imported from emoncms
//! carry its legacy scheme, `sha256_hex(salt . sha256_hex(password))` with a 32-hex-char salt;
//! those verify here and are re-hashed with argon2 by the caller after a successful login.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// A stored password: the hash text and, for legacy emoncms hashes only, the salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPassword<'a> {
    pub hash: &'a str,
    pub salt: Option<&'a str>,
}

impl StoredPassword<'_> {
    /// True when the hash is emoncms's legacy scheme and should be replaced at next login.
    pub fn is_legacy(&self) -> bool {
        !self.hash.starts_with('$')
    }
}

/// Hashes `password` with argon2id and a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks `password` against a stored hash of either scheme. A malformed stored hash never
/// verifies.
pub fn verify(password: &str, stored: &StoredPassword<'_>) -> bool {
    if stored.is_legacy() {
        let Some(salt) = stored.salt else {
            return false;
        };
        let expected = legacy_hash(password, salt);
        constant_time_eq(
            expected.as_bytes(),
            stored.hash.to_ascii_lowercase().as_bytes(),
        )
    } else {
        match PasswordHash::new(stored.hash) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// emoncms's scheme: `sha256_hex(salt . sha256_hex(password))`.
pub fn legacy_hash(password: &str, salt: &str) -> String {
    let inner = hex::encode(Sha256::digest(password.as_bytes()));
    let mut outer = Sha256::new();
    outer.update(salt.as_bytes());
    outer.update(inner.as_bytes());
    hex::encode(outer.finalize())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let h = hash("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        let stored = StoredPassword {
            hash: &h,
            salt: None,
        };
        assert!(!stored.is_legacy());
        assert!(verify("correct horse", &stored));
        assert!(!verify("correct hors", &stored));
    }

    #[test]
    fn legacy_emoncms_hash_verifies() {
        // sha256("pass") = d74ff0ee8da3b9806b18c877dbf29bbde50b5bd8e4dad7a3a725000feb82e8f1,
        // then sha256("0123456789abcdef0123456789abcdef" . that hex).
        let salt = "0123456789abcdef0123456789abcdef";
        let h = legacy_hash("pass", salt);
        assert_eq!(h.len(), 64);
        let stored = StoredPassword {
            hash: &h,
            salt: Some(salt),
        };
        assert!(stored.is_legacy());
        assert!(verify("pass", &stored));
        assert!(!verify("Pass", &stored));
        assert!(!verify(
            "pass",
            &StoredPassword {
                hash: &h,
                salt: None
            }
        ));
    }

    #[test]
    fn legacy_hash_matches_an_independent_computation() {
        let inner = "d74ff0ee8da3b9806b18c877dbf29bbde50b5bd8e4dad7a3a725000feb82e8f1";
        assert_eq!(hex::encode(Sha256::digest(b"pass")), inner);
        let outer = hex::encode(Sha256::digest(format!("salt{inner}").as_bytes()));
        assert_eq!(legacy_hash("pass", "salt"), outer);
    }

    #[test]
    fn garbage_hash_never_verifies() {
        let stored = StoredPassword {
            hash: "$argon2id$garbage",
            salt: None,
        };
        assert!(!verify("", &stored));
    }
}
