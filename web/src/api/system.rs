//! Server identity routes.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::Call;
use crate::reply;

/// The emoncms release whose API ynni answers. Clients read `/version` to decide which
/// endpoints exist, so it names that release; `ynni --version` and the `X-Ynni-Version` header
/// give ynni's own.
pub const EMONCMS_API_VERSION: &str = "11.16.8";

/// `/version`: the emoncms API version as plain text.
pub fn version(call: &Call<'_>) -> Response {
    let mut r = reply::text(StatusCode::OK, EMONCMS_API_VERSION);
    if let Ok(v) = HeaderValue::from_str(call.state.version) {
        r.headers_mut()
            .insert(HeaderName::from_static("x-ynni-version"), v);
    }
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `/describe`: emonhub and discovery tools look for the text `emoncms`.
pub fn describe() -> Response {
    let mut r = reply::text(StatusCode::OK, "emoncms");
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}
