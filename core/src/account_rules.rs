//! Rules for account fields, with the exact messages emoncms gives when one is broken.
//!
//! A username is also the MQTT username of the account, so the ASCII-alphanumeric rule keeps
//! MQTT wildcards (`/ + #`) and topic separators out of it.

/// Why a username, password or email was refused. `Display` is emoncms's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("Username must only contain a-z and 0-9 characters")]
    UsernameCharacters,
    #[error("Username must be at least 3 characters")]
    UsernameTooShort,
    #[error("Username must be less than 30 characters")]
    UsernameTooLong,
    #[error("Password must be at least 4 characters")]
    PasswordTooShort,
    #[error("Password must be less than 250 characters")]
    PasswordTooLong,
    #[error("Email address format error")]
    EmailFormat,
}

/// ASCII letters and digits, 3 to 30 of them (emoncms's `ctype_alnum` plus length checks, in
/// its order).
pub fn check_username(name: &str) -> Result<(), RuleError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(RuleError::UsernameCharacters);
    }
    if name.len() < 3 {
        return Err(RuleError::UsernameTooShort);
    }
    if name.len() > 30 {
        return Err(RuleError::UsernameTooLong);
    }
    Ok(())
}

/// 4 to 250 bytes, as PHP's `strlen` counts.
pub fn check_password(password: &str) -> Result<(), RuleError> {
    if password.len() < 4 {
        return Err(RuleError::PasswordTooShort);
    }
    if password.len() > 250 {
        return Err(RuleError::PasswordTooLong);
    }
    Ok(())
}

/// A conservative reading of what PHP's `FILTER_VALIDATE_EMAIL` accepts: an ASCII dot-atom
/// local part of at most 64 characters, `@`, and a domain of dot-separated labels
/// (letters, digits, inner hyphens) with at least two labels, 254 characters in all.
pub fn check_email(email: &str) -> Result<(), RuleError> {
    let ok = email.len() <= 254
        && email
            .rsplit_once('@')
            .is_some_and(|(local, domain)| local_part_ok(local) && domain_ok(domain));
    if ok {
        Ok(())
    } else {
        Err(RuleError::EmailFormat)
    }
}

fn local_part_ok(local: &str) -> bool {
    const SPECIAL: &[u8] = b"!#$%&'*+/=?^_`{|}~-";
    !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || SPECIAL.contains(&b))
        })
}

fn domain_ok(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(check_username("alice"), Ok(()));
        assert_eq!(check_username("abc"), Ok(()));
        assert_eq!(check_username(&"a".repeat(30)), Ok(()));
        assert_eq!(
            check_username(&"a".repeat(31)),
            Err(RuleError::UsernameTooLong)
        );
        assert_eq!(check_username("ab"), Err(RuleError::UsernameTooShort));
        assert_eq!(check_username(""), Err(RuleError::UsernameCharacters));
        assert_eq!(check_username("al ice"), Err(RuleError::UsernameCharacters));
        assert_eq!(check_username("élodie"), Err(RuleError::UsernameCharacters));
        assert_eq!(check_username("a/b+#"), Err(RuleError::UsernameCharacters));
        assert_eq!(
            check_username("x'; DROP TABLE users;--"),
            Err(RuleError::UsernameCharacters)
        );
    }

    #[test]
    fn passwords() {
        assert_eq!(check_password("abcd"), Ok(()));
        assert_eq!(check_password("abc"), Err(RuleError::PasswordTooShort));
        assert_eq!(check_password(&"x".repeat(250)), Ok(()));
        assert_eq!(
            check_password(&"x".repeat(251)),
            Err(RuleError::PasswordTooLong)
        );
    }

    #[test]
    fn emails() {
        for good in [
            "a@example.com",
            "first.last+tag@mail.example.org",
            "x_y@a-b.co",
        ] {
            assert_eq!(check_email(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "plain",
            "a@b",
            "@example.com",
            "a@@example.com",
            "a..b@example.com",
            "a@-x.com",
            "a b@example.com",
            "a@exa mple.com",
            "é@example.com",
        ] {
            assert_eq!(check_email(bad), Err(RuleError::EmailFormat), "{bad}");
        }
    }
}
