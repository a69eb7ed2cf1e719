//! API keys and other secrets handed to clients.
//!
//! Keys are 32 lowercase hex characters (16 bytes from the OS CSPRNG), the format emoncms
//! generates and that devices store; a key's format is checked before any lookup.

/// Why a secret could not be generated.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// Returns `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, RandomError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// A new read or write apikey.
pub fn new_apikey() -> Result<String, RandomError> {
    random_hex(16)
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// True when `s` has the shape of an apikey: 32 hex digits (either case, as emoncms's
/// `ctype_xdigit` check accepts).
pub fn looks_like_apikey(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_32_lowercase_hex_and_distinct() {
        let a = new_apikey().expect("rng");
        let b = new_apikey().expect("rng");
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a, b);
        assert!(looks_like_apikey(&a));
    }

    #[test]
    fn key_shape() {
        assert!(looks_like_apikey("0123456789abcdefABCDEF0123456789"));
        assert!(!looks_like_apikey("0123456789abcdef0123456789abcde"));
        assert!(!looks_like_apikey("0123456789abcdef0123456789abcdeg"));
        assert!(!looks_like_apikey("' OR 1=1 --'''''''''''''''''''''"));
    }
}
