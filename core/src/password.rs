//! Password hashing.
//!
//! New hashes are argon2id in PHC string form (`$argon2id$…`). Accounts imported from emoncms
//! carry one of its schemes: the legacy `sha256_hex(salt . sha256_hex(password))` with a
//! 32-hex-char salt, bcrypt (`$2y$…`) or argon2id; all verify here, and the caller re-hashes
//! non-argon2 ones after a successful login.
//!
//! emoncms hashed the password *after* its `post()` helper had run `rawurldecode` and
//! `stripslashes` over it, so for imported hashes a password containing `%` or `\` is also
//! tried in that transformed form.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::OnceLock;

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
    /// True when the hash is emoncms's sha256 scheme.
    pub fn is_legacy(&self) -> bool {
        !self.hash.starts_with('$')
    }

    fn is_bcrypt(&self) -> bool {
        ["$2y$", "$2a$", "$2b$"]
            .iter()
            .any(|p| self.hash.starts_with(p))
    }

    /// True when the hash should be replaced by one of [`hash`] at the next successful login:
    /// emoncms's schemes, and argon2 hashes made with other parameters (PHP's
    /// `password_hash` defaults): a wrong password then costs what it costs for any other
    /// account (see [`verify`]).
    pub fn needs_upgrade(&self) -> bool {
        self.is_legacy() || self.is_bcrypt() || !self.has_current_parameters()
    }

    /// Whether this is an argon2 hash of [`hash`]'s algorithm and parameters.
    fn has_current_parameters(&self) -> bool {
        let Ok(parsed) = PasswordHash::new(self.hash) else {
            return false;
        };
        let current = Argon2::default();
        parsed.algorithm == argon2::Algorithm::default().ident()
            && argon2::Params::try_from(&parsed).is_ok_and(|p| {
                let c = current.params();
                (p.m_cost(), p.t_cost(), p.p_cost()) == (c.m_cost(), c.t_cost(), c.p_cost())
            })
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

/// Checks `password` against a stored hash of any supported scheme. A malformed stored hash
/// never verifies.
///
/// A wrong password costs what [`verify_against_nothing`] costs: an emoncms sha256 hash, quick
/// to check, is followed by the argon2 work an unknown username gets, so an account cannot
/// be told from none by timing. (An imported bcrypt hash costs bcrypt's own work until its
/// first login replaces it.)
pub fn verify(password: &str, stored: &StoredPassword<'_>) -> bool {
    let ok = verify_either_form(password, stored);
    if stored.is_legacy() {
        verify_against_nothing(password);
    }
    ok
}

/// The password as sent, then as emoncms's `post()` transformed it (when that differs).
fn verify_either_form(password: &str, stored: &StoredPassword<'_>) -> bool {
    if verify_exact(password, stored) {
        return true;
    }
    let transformed = php_post_transform(password);
    transformed != password && verify_exact(&transformed, stored)
}

fn verify_exact(password: &str, stored: &StoredPassword<'_>) -> bool {
    if stored.is_legacy() {
        let Some(salt) = stored.salt else {
            return false;
        };
        let expected = legacy_hash(password, salt);
        constant_time_eq(
            expected.as_bytes(),
            stored.hash.to_ascii_lowercase().as_bytes(),
        )
    } else if stored.is_bcrypt() {
        bcrypt::verify(password, stored.hash).unwrap_or(false)
    } else {
        #[cfg(test)]
        ARGON2_RUNS.with(|n| n.set(n.get() + 1));
        match PasswordHash::new(stored.hash) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// Spends the work of refusing `password` against a real argon2 hash (both of its forms, as
/// [`verify`] tries them), so an unknown username cannot be told from a wrong password by
/// timing.
pub fn verify_against_nothing(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(h) = DUMMY.get_or_init(|| hash("ynni timing equaliser").ok()) {
        let _ = verify_either_form(
            password,
            &StoredPassword {
                hash: h,
                salt: None,
            },
        );
    }
}

#[cfg(test)]
thread_local! {
    /// Argon2 verifications run on this thread: the work a login costs, counted.
    static ARGON2_RUNS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// What emoncms's `post()` made of a form value: `rawurldecode` (percent escapes, `+` kept)
/// then `stripslashes` (a backslash escapes the next character).
fn php_post_transform(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            decoded.push((h * 16 + l) as u8);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    let mut it = decoded.into_iter();
    while let Some(b) = it.next() {
        if b == b'\\' {
            match it.next() {
                Some(b'0') => out.push(0),
                Some(next) => out.push(next),
                None => {}
            }
        } else {
            out.push(b);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// emoncms's scheme: `sha256_hex(salt . sha256_hex(password))`.
pub fn legacy_hash(password: &str, salt: &str) -> String {
    let inner = hex::encode(Sha256::digest(password.as_bytes()));
    let mut outer = Sha256::new();
    outer.update(salt.as_bytes());
    outer.update(inner.as_bytes());
    hex::encode(outer.finalize())
}

/// Equality whose time does not depend on where two equal-length inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Argon2 verifications `f` runs.
    fn argon2_runs(f: impl FnOnce()) -> u32 {
        let before = ARGON2_RUNS.with(std::cell::Cell::get);
        f();
        ARGON2_RUNS.with(std::cell::Cell::get) - before
    }

    #[test]
    fn a_wrong_password_costs_the_same_for_any_account_or_none() {
        let argon = hash("right").expect("hash");
        let salt = "00112233445566778899aabbccddeeff";
        let legacy = legacy_hash("right", salt);
        for wrong in ["wrong", "wr%6Fng\\"] {
            let none = argon2_runs(|| verify_against_nothing(wrong));
            let current = argon2_runs(|| {
                assert!(!verify(
                    wrong,
                    &StoredPassword {
                        hash: &argon,
                        salt: None
                    }
                ));
            });
            let imported = argon2_runs(|| {
                assert!(!verify(
                    wrong,
                    &StoredPassword {
                        hash: &legacy,
                        salt: Some(salt)
                    }
                ));
            });
            assert!(none >= 1, "{wrong}");
            assert_eq!((current, imported), (none, none), "{wrong}");
        }
    }

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
    fn argon2_hashes_of_other_parameters_verify_and_are_renewed() {
        let ours = hash("pass").expect("hash");
        let ours = StoredPassword {
            hash: &ours,
            salt: None,
        };
        assert!(!ours.needs_upgrade());
        // As PHP's password_hash(PASSWORD_ARGON2ID) might have made it, with its own costs.
        let salt = SaltString::encode_b64(&[7u8; 16]).expect("salt");
        let params = argon2::Params::new(8192, 3, 1, None).expect("params");
        let php = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(b"pass", &salt)
            .expect("hash")
            .to_string();
        let php = StoredPassword {
            hash: &php,
            salt: None,
        };
        assert!(verify("pass", &php));
        assert!(php.needs_upgrade());
        let argon2i = Argon2::new(
            argon2::Algorithm::Argon2i,
            argon2::Version::V0x13,
            argon2::Params::default(),
        )
        .hash_password(b"pass", &salt)
        .expect("hash")
        .to_string();
        assert!(
            StoredPassword {
                hash: &argon2i,
                salt: None
            }
            .needs_upgrade()
        );
    }

    #[test]
    fn bcrypt_hashes_from_php_verify() {
        let h = bcrypt::hash_with_result("pass", 4)
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoY);
        assert!(h.starts_with("$2y$"));
        let stored = StoredPassword {
            hash: &h,
            salt: None,
        };
        assert!(stored.needs_upgrade());
        assert!(verify("pass", &stored));
        assert!(!verify("pas", &stored));
    }

    #[test]
    fn emoncms_post_transform_is_tried_for_imported_hashes() {
        assert_eq!(php_post_transform("a%41b"), "aAb");
        assert_eq!(php_post_transform("a+b%"), "a+b%");
        assert_eq!(php_post_transform("it\\'s"), "it's");
        assert_eq!(php_post_transform("x\\\\y"), "x\\y");
        let salt = "0123456789abcdef0123456789abcdef";
        // emoncms stored the hash of the transformed text.
        let h = legacy_hash("100A", salt);
        let stored = StoredPassword {
            hash: &h,
            salt: Some(salt),
        };
        assert!(verify("100%41", &stored));
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
