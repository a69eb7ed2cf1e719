//! Server identity routes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::Call;
use crate::reply;

/// `/version`: the server version as plain text.
pub fn version(call: &Call<'_>) -> Response {
    let mut r = reply::text(StatusCode::OK, call.state.version);
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
