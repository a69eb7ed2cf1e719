//! Cross-site request forgery protection for login sessions. The session cookie is
//! `SameSite=Strict`, so browsers do not send it with requests started by other sites; as a
//! second line (older browsers, a sibling subdomain) a request that uses the session, or logs
//! in, is refused when the browser says it came from elsewhere: `Sec-Fetch-Site` other than
//! `same-origin`/`none`, or an `Origin` that is not this host. Scripts (curl, emonhub, cookie
//! jars) send neither header and are unaffected; apikey requests are not checked, as a key in
//! the request proves intent.
//!
//! That leaves requests the browser makes for a page of this site without its scripts asking:
//! a link followed (in a public dashboard, in a mail, the address a login goes on to), an
//! image or a frame. Browsers mark them same-origin (or `none`), and a `SameSite=Strict`
//! cookie goes with them; and emoncms's API takes writes over GET. So a session request
//! whose `Sec-Fetch-Mode` is anything but a script's (`cors`, `same-origin`) reads and never
//! writes ([`scripted`]): ynni's pages write only with `fetch`.

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

/// False when the browser made the request without a script asking for it (a navigation, an
/// image, a frame): such a request may read with the session but not write. Scripts that send
/// no fetch metadata count as scripted.
pub fn scripted(headers: &HeaderMap) -> bool {
    match headers.get("sec-fetch-mode").map(|v| v.to_str()) {
        None => true,
        Some(Ok(mode)) => matches!(mode, "cors" | "same-origin"),
        Some(Err(_)) => false,
    }
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
    fn only_scripts_requests_may_write_with_the_session() {
        assert!(scripted(&h(&[])), "curl, emonhub");
        assert!(scripted(&h(&[("sec-fetch-mode", "cors")])), "fetch");
        assert!(scripted(&h(&[("sec-fetch-mode", "same-origin")])));
        for mode in ["navigate", "no-cors", "websocket", "nested-navigate"] {
            assert!(!scripted(&h(&[("sec-fetch-mode", mode)])), "{mode}");
        }
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
