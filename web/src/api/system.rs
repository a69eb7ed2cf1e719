//! Server identity routes.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::Call;
use crate::error::{ApiError, ApiResult};
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

/// `myip/set`: emonhub's `sendstatus` ping. Remembers the caller's address for the account
/// (`myip/get` reads it back); emonhub ignores the body.
pub fn myip(call: &Call<'_>) -> ApiResult {
    let Some(caller) = call.caller else {
        return Err(ApiError::False);
    };
    let mut seen = call.state.myip.lock().unwrap_or_else(|p| p.into_inner());
    match call.route.action.as_str() {
        "set" => {
            seen.insert(caller.user.id, (call.peer, chrono::Utc::now().timestamp()));
            Ok(reply::text(StatusCode::OK, "ok"))
        }
        "get" => match seen.get(&caller.user.id) {
            Some((ip, time)) => Ok(reply::json(
                serde_json::json!({"ip": ip.to_string(), "time": time}),
            )),
            None => Err(ApiError::False),
        },
        _ => Err(ApiError::RouteNotFound { json: true }),
    }
}
