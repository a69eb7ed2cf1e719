//! The reply shapes emoncms clients expect.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use ynni_ingest::shard::IngestError;

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain;charset=UTF-8";

/// A feed or input value as emoncms prints it: the one formatter shared with MQTT.
pub use ynni_ingest::number::php_json as number;

/// A JSON body with emoncms's content type, status 200.
pub fn json(v: Value) -> Response {
    with_type(StatusCode::OK, JSON, v.to_string())
}

/// JSON already written as text (large replies skip the `Value` tree), status 200.
pub fn json_text(body: String) -> Response {
    with_type(StatusCode::OK, JSON, body)
}

/// `{"success":false,"message":...}`, status 200: emoncms's way of saying no.
pub fn fail(message: impl std::fmt::Display) -> Response {
    json(json!({"success": false, "message": message.to_string()}))
}

/// `{"success":true,"message":...}`.
pub fn ok_message(message: &str) -> Response {
    json(json!({"success": true, "message": message}))
}

/// The JSON literal `false`: emoncms's reply when a call has no session allowed to make it.
pub fn json_false() -> Response {
    json(Value::Bool(false))
}

pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    with_type(status, TEXT, body.into())
}

/// A shard worker that could not do it. Where retrying can help (queue full, disk full, a
/// shard refusing writes after a failure) the answer is 503 with `Retry-After` and a message
/// saying what happened (a storage refusal stored nothing); paths and OS errors go to the log
/// only. Anything else is a logged 500.
pub fn ingest_error(e: &IngestError) -> Response {
    let Some(secs) = e.retry_after() else {
        tracing::error!(error = %e, "ingest operation failed");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    };
    let message = match e {
        IngestError::Busy => "Server busy, retry later",
        IngestError::Stopped => "Server unavailable, retry later",
        IngestError::NotServed | IngestError::Storage(ynni_storage::StorageError::Fenced) => {
            "Account moving between servers, retry shortly"
        }
        e if e.is_storage_full() => "Server storage full: data not stored, retry later",
        IngestError::Storage(_) => "Server storage unavailable: data not stored, retry later",
        _ => "Server database busy, retry later",
    };
    if !matches!(e, IngestError::Busy) {
        tracing::warn!(error = %e, retry_after = secs, "write refused for now");
    }
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// `input/post` and `input/bulk`'s refusal: emoncms's hand-written JSON (note the spaces),
/// sent as text with `"` turned into `'`.
pub fn post_failure(message: &str) -> Response {
    let body = format!(
        "{{\"success\": false, \"message\": \"{}\"}}",
        message.replace('"', "'")
    );
    text(StatusCode::OK, body)
}

/// 401 for a post without write access. emoncms answers a missing or read-only key with an
/// empty 200, which clients take for success; ynni says no (DESIGN.md §4).
pub fn write_access_needed() -> Response {
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "A write apikey (or a logged-in session) is needed to post data",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"API KEY\""),
    );
    r
}

/// `r`, marked for no cache to keep (it holds an apikey).
pub fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A password hashing task that died: logged, a 500 that no cache may keep.
pub fn password_task_failed(e: &tokio::task::JoinError) -> Response {
    tracing::error!(error = %e, "password task failed");
    let mut r = text(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The reply to any unknown route, or to a resource the caller may not see.
pub fn route_not_found(json_format: bool) -> Response {
    const MSG: &str = "406 Not Acceptable. Route not found";
    if json_format {
        with_type(
            StatusCode::NOT_ACCEPTABLE,
            JSON,
            json!({"success": false, "message": MSG}).to_string(),
        )
    } else {
        text(StatusCode::NOT_ACCEPTABLE, MSG)
    }
}

/// 401 for an apikey that matches no account.
pub fn invalid_apikey() -> Response {
    let mut r = with_type(
        StatusCode::UNAUTHORIZED,
        "text/html; charset=UTF-8",
        "Invalid API key".into(),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"API KEY\", error=\"invalid_apikey\", error_description=\"Invalid API key\"",
        ),
    );
    r
}

/// Something ynni has not built yet, said plainly (HTTP 501).
pub fn not_implemented(what: &str) -> Response {
    with_type(
        StatusCode::NOT_IMPLEMENTED,
        JSON,
        json!({"success": false, "message": format!("Not implemented in ynni yet: {what}")})
            .to_string(),
    )
}

/// A failure of ynni itself (the catalog could not be read, …): logged, never detailed to the
/// client. `retryable` failures get 503 so clients try again.
pub fn internal(err: &ynni_core::CatalogError) -> Response {
    tracing::error!(error = %err, "request failed");
    let (status, msg) = if err.is_retryable() {
        (StatusCode::SERVICE_UNAVAILABLE, "Server busy, please retry")
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    };
    let mut r = with_type(
        status,
        JSON,
        json!({"success": false, "message": msg}).to_string(),
    );
    if err.is_retryable() {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        Body::from(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use ynni_storage::StorageError;

    fn retry_after(r: &Response) -> Option<&str> {
        r.headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
    }

    #[test]
    fn storage_failures_are_503_with_retry_after() {
        let full = IngestError::Storage(StorageError::WalIo {
            op: "appending",
            path: "/data/wal/0/00000000000000000000.wal".into(),
            source: std::io::Error::from_raw_os_error(28),
        });
        let r = ingest_error(&full);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&r), Some("60"));

        let io = IngestError::Storage(StorageError::WalIo {
            op: "appending",
            path: "/data/wal/0/00000000000000000000.wal".into(),
            source: std::io::Error::from(std::io::ErrorKind::Other),
        });
        let r = ingest_error(&io);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&r), Some("10"));

        let failed = IngestError::Storage(StorageError::StoreFailed);
        let r = ingest_error(&failed);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&r), Some("60"));

        let r = ingest_error(&IngestError::Busy);
        assert_eq!(retry_after(&r), Some("1"));

        let corrupt = IngestError::Storage(StorageError::CorruptWal {
            path: "x".into(),
            reason: "checksum".into(),
        });
        let r = ingest_error(&corrupt);
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after(&r), None);
    }

    #[tokio::test]
    async fn a_full_disk_is_said_and_no_path_is_shown() {
        let full = IngestError::Storage(StorageError::WalIo {
            op: "appending",
            path: "/data/wal/0/00000000000000000000.wal".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        });
        let body = axum::body::to_bytes(ingest_error(&full).into_body(), 1 << 16)
            .await
            .expect("body");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("storage full"), "{body}");
        assert!(!body.contains("/data"), "{body}");
    }

    #[test]
    fn numbers_print_as_php_does() {
        assert_eq!(number(Some(102.0)).to_string(), "102");
        assert_eq!(number(Some(-3.25)).to_string(), "-3.25");
        assert_eq!(number(Some(0.1)).to_string(), "0.1");
        assert_eq!(number(Some(1e20)).to_string(), json!(1e20).to_string());
        assert_eq!(number(Some(f64::NAN)), json!(null));
        assert_eq!(number(None), json!(null));
    }
}
