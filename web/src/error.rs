//! The early answers a handler can end with, so handlers return [`ApiResult`] and stop with `?`.
//! Each variant renders through one constructor of [`crate::reply`], so a reply is the same
//! bytes whether a handler returns it or stops with it.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ynni_core::CatalogError;
use ynni_ingest::shard::IngestError;

use crate::reply;

/// What an API handler answers: its reply, or the answer that ended it early.
pub type ApiResult = Result<Response, ApiError>;

/// Why a request ended before its handler's own reply.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// emoncms's refusal with a message: `{"success":false,"message":…}`, status 200.
    #[error("{0}")]
    Fail(String),
    /// The JSON literal `false`: emoncms's answer when no session may make the call.
    #[error("not allowed for this caller")]
    False,
    /// 406 `Route not found`, as JSON or as text.
    #[error("route not found")]
    RouteNotFound { json: bool },
    /// Something ynni has not built yet (HTTP 501).
    #[error("not implemented in ynni yet: {0}")]
    NotImplemented(Cow<'static, str>),
    /// The catalog failed: logged, never detailed to the client.
    #[error(transparent)]
    Internal(#[from] CatalogError),
    /// A shard worker could not do it (503 where retrying helps, else a logged 500). Converting
    /// an [`IngestError`] with `?` answers a refused query with its message instead.
    #[error(transparent)]
    Ingest(IngestError),
    /// `input/post` and `input/bulk`'s refusal, JSON-shaped text.
    #[error("{0}")]
    PostFailure(String),
    /// A post without write access (401).
    #[error("write access needed")]
    WriteAccessNeeded,
    /// An apikey that matches no account (401).
    #[error("invalid apikey")]
    InvalidApikey,
    /// A plain-text answer with its status.
    #[error("{1}")]
    Text(StatusCode, String),
    /// A rate limit: 429 with `Retry-After` (seconds).
    #[error("{message}")]
    TooMany { retry_after: u64, message: String },
    /// The password hashing task died.
    #[error("password task failed: {0}")]
    PasswordTask(#[from] tokio::task::JoinError),
    /// Cluster mode: the request reads data of `userid` (another account's public feed),
    /// whose vshard another node serves. The dispatcher sends the request there; if it
    /// cannot, this is a 503 with `Retry-After`.
    #[error("account {userid} is served by another node")]
    ServedElsewhere { userid: i64 },
}

impl ApiError {
    /// [`ApiError::Fail`] with any message emoncms would print.
    pub fn fail(message: impl std::fmt::Display) -> Self {
        Self::Fail(message.to_string())
    }

    /// [`ApiError::NotImplemented`] for a fixed or built description.
    pub fn not_implemented(what: impl Into<Cow<'static, str>>) -> Self {
        Self::NotImplemented(what.into())
    }
}

impl From<IngestError> for ApiError {
    /// A query the feed engine refuses (bad interval, too many points, …) is the caller's
    /// doing, and emoncms answers it with the message; every other error is the worker's.
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Query(q) => Self::fail(q),
            e => Self::Ingest(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Fail(message) => reply::fail(message),
            Self::False => reply::json_false(),
            Self::RouteNotFound { json } => reply::route_not_found(json),
            Self::NotImplemented(what) => reply::not_implemented(&what),
            Self::Internal(e) => reply::internal(&e),
            Self::Ingest(e) => reply::ingest_error(&e),
            Self::PostFailure(message) => reply::post_failure(&message),
            Self::WriteAccessNeeded => reply::write_access_needed(),
            Self::InvalidApikey => reply::invalid_apikey(),
            Self::Text(status, body) => reply::text(status, body),
            Self::TooMany {
                retry_after,
                message,
            } => {
                metrics::counter!(crate::ops::metrics::RATE_LIMITED).increment(1);
                let mut r = reply::text(StatusCode::TOO_MANY_REQUESTS, message);
                r.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(retry_after),
                );
                r
            }
            Self::PasswordTask(e) => reply::password_task_failed(&e),
            Self::ServedElsewhere { .. } => crate::forward::unavailable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header;
    use ynni_core::password::PasswordError;
    use ynni_storage::query::QueryError;

    use super::*;

    /// Status, content type, `Retry-After` and body of `e`'s reply.
    async fn rendered(e: ApiError) -> (StatusCode, String, Option<String>, String) {
        let r = e.into_response();
        let header_text = |name: header::HeaderName| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header_text(header::CONTENT_TYPE).unwrap_or_default();
        let retry_after = header_text(header::RETRY_AFTER);
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        (
            status,
            content_type,
            retry_after,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn fail_is_a_json_refusal() {
        let (status, ct, _, body) = rendered(ApiError::fail("Feed does not exist")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, reply::JSON);
        assert_eq!(body, r#"{"success":false,"message":"Feed does not exist"}"#);
    }

    #[tokio::test]
    async fn false_is_the_json_literal() {
        let (status, ct, _, body) = rendered(ApiError::False).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, reply::JSON);
        assert_eq!(body, "false");
    }

    #[tokio::test]
    async fn route_not_found_is_406_as_json_or_text() {
        let (status, ct, _, body) = rendered(ApiError::RouteNotFound { json: true }).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(ct, reply::JSON);
        assert_eq!(
            body,
            r#"{"success":false,"message":"406 Not Acceptable. Route not found"}"#
        );
        let (status, ct, _, body) = rendered(ApiError::RouteNotFound { json: false }).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(ct, reply::TEXT);
        assert_eq!(body, "406 Not Acceptable. Route not found");
    }

    #[tokio::test]
    async fn not_implemented_is_501() {
        let (status, _, _, body) = rendered(ApiError::not_implemented("feed/x")).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
        assert_eq!(
            body,
            r#"{"success":false,"message":"Not implemented in ynni yet: feed/x"}"#
        );
    }

    #[tokio::test]
    async fn internal_hides_the_catalog_error() {
        let e = CatalogError::from(PasswordError::Hash("secret detail".into()));
        let (status, ct, retry, body) = rendered(ApiError::from(e)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ct, reply::JSON);
        assert_eq!(retry, None);
        assert_eq!(
            body,
            r#"{"success":false,"message":"Internal server error"}"#
        );
    }

    #[tokio::test]
    async fn ingest_busy_is_503_with_retry_after() {
        let (status, ct, retry, body) = rendered(ApiError::Ingest(IngestError::Busy)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ct, reply::TEXT);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body, "Server busy, retry later");
    }

    #[tokio::test]
    async fn a_refused_query_converts_to_its_message() {
        let e = ApiError::from(IngestError::Query(QueryError::InvalidInterval));
        let (status, _, _, body) = rendered(e).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"{"success":false,"message":"Invalid interval"}"#);
        assert!(matches!(
            ApiError::from(IngestError::Stopped),
            ApiError::Ingest(IngestError::Stopped)
        ));
    }

    #[tokio::test]
    async fn post_failure_is_emoncms_hand_written_text() {
        let (status, ct, _, body) = rendered(ApiError::PostFailure("bad \"x\"".into())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, reply::TEXT);
        assert_eq!(body, r#"{"success": false, "message": "bad 'x'"}"#);
    }

    #[tokio::test]
    async fn write_access_needed_is_401_with_a_challenge() {
        let r = ApiError::WriteAccessNeeded.into_response();
        assert_eq!(
            r.headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"API KEY\"")
        );
        let (status, _, _, body) = rendered(ApiError::WriteAccessNeeded).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            "A write apikey (or a logged-in session) is needed to post data"
        );
    }

    #[tokio::test]
    async fn invalid_apikey_is_401_html() {
        let (status, ct, _, body) = rendered(ApiError::InvalidApikey).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(ct, "text/html; charset=UTF-8");
        assert_eq!(body, "Invalid API key");
    }

    #[tokio::test]
    async fn text_keeps_its_status() {
        let e = ApiError::Text(StatusCode::FORBIDDEN, "no".into());
        let (status, ct, _, body) = rendered(e).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(ct, reply::TEXT);
        assert_eq!(body, "no");
    }

    #[tokio::test]
    async fn a_dead_password_task_is_an_uncached_500() {
        let task = tokio::spawn(std::future::pending::<()>());
        task.abort();
        let e = ApiError::from(task.await.expect_err("aborted"));
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            r.headers()
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
        let body = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        assert_eq!(&body[..], b"Internal server error");
    }
}
