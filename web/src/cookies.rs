//! The login session cookie. Its name is emoncms's, so cookie jars of scripts written for
//! emoncms keep working.

use axum::http::{HeaderMap, HeaderValue, header};

pub const SESSION_COOKIE: &str = "EMONCMS_SESSID";

/// The session token from the request's `Cookie` headers, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `Set-Cookie` for a new session; `max_age` makes it outlive the browser session, `secure`
/// keeps it to HTTPS.
pub fn set_session(token: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut v = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(secs) = max_age {
        v.push_str(&format!("; Max-Age={secs}"));
    }
    if secure {
        v.push_str("; Secure");
    }
    // Only hex and fixed ASCII go in, so this cannot fail; fall back to clearing if it did.
    HeaderValue::from_str(&v).unwrap_or_else(|_| clear_session())
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session() -> HeaderValue {
    HeaderValue::from_static("EMONCMS_SESSID=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_token_among_other_cookies() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=b; EMONCMS_SESSID=abc123"),
        );
        assert_eq!(session_token(&h), Some("abc123".into()));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("EMONCMS_SESSID=<script>"),
        );
        assert_eq!(session_token(&h), None);
        assert_eq!(session_token(&HeaderMap::new()), None);
    }

    #[test]
    fn cookie_attributes() {
        assert!(
            set_session("ab", None, true)
                .to_str()
                .expect("ascii")
                .ends_with("; Secure")
        );
        let v = set_session("ab", Some(60), false);
        let s = v.to_str().expect("ascii");
        assert!(
            s.contains("HttpOnly") && s.contains("SameSite=Strict") && s.ends_with("Max-Age=60")
        );
    }
}
