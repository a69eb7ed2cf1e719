//! `POST /ynni/batch`: requests another node of the cluster forwarded together (format in
//! [`crate::forward::wire`]). Each is answered as if it had been forwarded alone (marked with
//! the cluster's secret and the client's address, so it is not forwarded again and login
//! limits see the client), all at once so their log writes share syncs, and the replies go
//! back in one body.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;

use crate::error::{ApiError, ApiResult};
use crate::forward::{self, SubReply, SubRequest, wire};
use crate::state::AppState;

/// The batch path; no emoncms route has the `ynni` controller's `batch` action.
pub const PATH: &str = "/ynni/batch";

/// A batch body may be this large (the sender stops adding requests past 1 MiB, plus one).
const MAX_BATCH_BYTES: usize = 16 << 20;
/// A reply within a batch may be this large (the batched requests are writes, answered in a
/// few bytes).
const MAX_REPLY_BYTES: usize = 16 << 20;

/// Marks a request that came in a batch: a batch inside a batch is refused.
#[derive(Clone, Copy)]
struct InBatch;

/// Whether `request` is a batch this node should answer; anything else at [`PATH`] is the
/// ordinary router's (which knows no such route).
pub fn is_batch(state: &AppState, request: &Request) -> bool {
    request.uri().path() == PATH
        && request.extensions().get::<InBatch>().is_none()
        && state
            .forwarder
            .as_ref()
            .is_some_and(|f| f.is_forwarded(request.headers()))
}

pub async fn answer(state: &AppState, peer: SocketAddr, request: Request) -> ApiResult {
    let Some(forwarder) = state.forwarder.as_ref() else {
        return Err(ApiError::RouteNotFound { json: true });
    };
    // A node sends its batch at once: one that trickles in is cut off like any slow body.
    let body = tokio::time::timeout(
        super::BODY_TIMEOUT,
        axum::body::to_bytes(request.into_body(), MAX_BATCH_BYTES),
    )
    .await
    .map_err(|_| ApiError::Text(StatusCode::REQUEST_TIMEOUT, "Batch not sent in time".into()))?
    .map_err(|_| ApiError::Text(StatusCode::PAYLOAD_TOO_LARGE, "Batch too large".into()))?;
    let requests = wire::decode_requests(body)
        .map_err(|e| ApiError::Text(StatusCode::BAD_REQUEST, e.to_string()))?;
    // All of a batch's requests run at once: no more than a sender ever puts in one.
    if requests.len() > forward::batcher::MAX_REQUESTS {
        return Err(ApiError::Text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Batch of {} requests, at most {}",
                requests.len(),
                forward::batcher::MAX_REQUESTS
            ),
        ));
    }
    let secret = forwarder.secret_header();
    let node = HeaderValue::from_str(forwarder.node_id()).ok();
    let node = node.as_ref();
    let replies = join_all(requests.into_iter().map(|r| {
        let request = unbatched(r, secret.clone());
        async move {
            let reply = Box::pin(super::answer(state, peer, request))
                .await
                .into_response();
            collect(reply, node).await
        }
    }))
    .await;
    Ok(Response::new(Body::from(wire::encode_replies(&replies))))
}

/// One request of the batch as if forwarded alone.
fn unbatched(r: SubRequest, secret: Option<HeaderValue>) -> Request {
    let mut request = Request::new(Body::from(r.body));
    *request.method_mut() = r.method;
    *request.uri_mut() = r.target.parse().unwrap_or_default();
    let headers = request.headers_mut();
    *headers = forward::passed_on(&r.headers);
    if let Some(secret) = secret {
        headers.insert(HeaderName::from_static(forward::FORWARDED), secret);
    }
    if let Ok(ip) = HeaderValue::from_str(&r.client.to_string()) {
        headers.insert(HeaderName::from_static(forward::CLIENT), ip);
    }
    request.extensions_mut().insert(InBatch);
    request
}

async fn collect(reply: Response, node: Option<&HeaderValue>) -> SubReply {
    let (parts, body) = reply.into_parts();
    let mut headers = forward::passed_on(&parts.headers);
    if let Some(node) = node {
        headers.insert(HeaderName::from_static(forward::NODE), node.clone());
    }
    match axum::body::to_bytes(body, MAX_REPLY_BYTES).await {
        Ok(body) => SubReply {
            status: parts.status,
            headers,
            body,
        },
        Err(_) => {
            let r = forward::unavailable();
            SubReply {
                status: r.status(),
                headers: forward::passed_on(r.headers()),
                body: Bytes::from_static(b"Reply too large to forward"),
            }
        }
    }
}
