//! The UI's files: built into the binary by `build.rs`, or read from `http.ui_dir` when set
//! (development). Every reply carries an ETag so browsers revalidate cheaply instead of
//! downloading again.

use std::path::Path;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

mod built {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// The bytes of `path` (relative to the UI root, e.g. `js/app.js`).
pub fn load(ui_dir: &str, path: &str) -> Option<Vec<u8>> {
    if path.split('/').any(|seg| seg.is_empty() || seg == "..") {
        return None;
    }
    if ui_dir.is_empty() {
        return built::ASSETS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, b)| b.to_vec());
    }
    let root = Path::new(ui_dir);
    let file = match path.strip_prefix("vendor/") {
        Some(rest) => vendor_source(rest).map(|src| root.join("node_modules").join(src))?,
        None => root.join("src").join(path),
    };
    std::fs::read(file).ok()
}

/// Where a vendor file comes from inside `node_modules` (the table `build.rs` embeds from).
fn vendor_source(name: &str) -> Option<&'static str> {
    built::VENDOR
        .iter()
        .find(|(served, _)| served.strip_prefix("vendor/") == Some(name))
        .map(|(_, from)| *from)
}

pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Serves one file, or 304 when the browser's copy is current.
pub fn serve(ui_dir: &str, path: &str, request: &HeaderMap) -> Response {
    let Some(bytes) = load(ui_dir, path) else {
        return (StatusCode::NOT_FOUND, "Not found").into_response();
    };
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..16]);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        bytes.into_response()
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    super::security_headers(h);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_files_include_the_app_and_the_chart_library() {
        assert!(load("", "js/app.js").is_some());
        assert!(load("", "index.html").is_some());
        assert!(load("", "vendor/uPlot.esm.js").is_some());
        assert!(load("", "../Cargo.toml").is_none());
        assert!(load("", "js//app.js").is_none());
    }

    #[test]
    fn revalidation_answers_not_modified() {
        let first = serve("", "js/app.js", &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(
            serve("", "js/app.js", &again).status(),
            StatusCode::NOT_MODIFIED
        );
    }
}
