//! Cross-site request forgery protection for login sessions. The session cookie is
//! `SameSite=Strict`, so browsers do not send it with requests started by other sites; as a
//! second line (older browsers, a sibling subdomain) a request that uses the session, or logs
//! in, is refused when the browser says it came from elsewhere: `Sec-Fetch-Site` other than
//! `same-origin`/`none`, or an `Origin` that is not this host. Scripts (curl, emonhub, cookie
//! jars) send neither header and are unaffected; apikey requests are not checked, as a key in
//! the request proves intent.

use axum::http::{HeaderMap, header};

pub const REFUSED: &str =
    "Cross-site request refused: the login session only works from ynni's own pages";

/// True when the browser marks the request as coming from another site.
pub fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    origin == "null" || origin_host != host
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn fetch_metadata_decides_when_present() {
        assert!(!cross_site(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(!cross_site(&h(&[("sec-fetch-site", "none")])));
        assert!(cross_site(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&h(&[("sec-fetch-site", "same-site")])));
    }

    #[test]
    fn origin_must_match_host_otherwise() {
        assert!(!cross_site(&h(&[])), "scripts send no origin");
        assert!(!cross_site(&h(&[
            ("origin", "http://pi.local:8080"),
            ("host", "pi.local:8080")
        ])));
        assert!(cross_site(&h(&[
            ("origin", "https://evil.example"),
            ("host", "pi.local:8080")
        ])));
        assert!(cross_site(&h(&[("origin", "null"), ("host", "pi.local")])));
    }
}
