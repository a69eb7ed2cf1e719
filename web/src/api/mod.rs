//! The HTTP entry point: every request is parsed into an emoncms route, authenticated once, and
//! handed to its controller.

mod admin;
mod app;
mod batch;
mod billing;
mod dashboard;
mod device;
mod feed;
mod homeassistant;
mod input;
mod input_manage;
mod process;
mod profile;
mod share;
pub(crate) use share::allows_embedding;
mod system;
mod usage;
mod user;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{self, Auth, Caller};
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::route::{self, Format, Route};
use crate::state::AppState;

/// The most items one request that changes several at once (`input/set-descriptions`,
/// `feed/set-multiple`) may carry: each is its own catalog statement, run while others wait
/// for the catalog. emoncms sets no limit; a whole account's inputs or feeds fit.
pub const MAX_ITEMS: usize = 1_000;
pub const TOO_MANY_ITEMS: &str = "Too many items in one request: at most 1000";

/// A request body must have arrived this long after its headers: the listener's header deadline
/// does not cover the body, and a client trickling one would hold its connection (one of a
/// capped number) and this task for as long as it liked.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// Bodies up to this size are read without waiting for the budget below: the connection cap
/// bounds them together (4,096 × 64 KiB = 256 MiB), and a device's post is far smaller.
pub(crate) const SMALL_BODY: u64 = 64 << 10;
/// KiB of larger bodies (a bulk upload, a dashboard, a feed file) read or answered at once,
/// across all connections; a body past it is refused with 503 and `Retry-After`.
pub(crate) const BODY_BUDGET_KIB: u32 = 256 << 10;

/// Everything a controller needs to answer one request.
pub struct Call<'a> {
    pub state: &'a AppState,
    pub params: &'a Params,
    pub route: &'a Route,
    pub caller: Option<&'a Caller>,
    pub peer: IpAddr,
    /// The raw request body (`input/bulk` with `cb=1` sends zlib data with no content type).
    pub body: &'a [u8],
    /// Whether the request came over ynni's HTTPS listener (cookies are then `Secure`).
    pub https: bool,
}

pub async fn dispatch(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    answer(&state, peer, request).await.into_response()
}

/// Reads the body, routes and authenticates the request, and has its controller answer.
async fn answer(state: &AppState, peer: SocketAddr, request: Request) -> ApiResult {
    if batch::is_batch(state, &request) {
        return batch::answer(state, peer, request).await;
    }
    let (parts, body) = request.into_parts();
    if parts.method == Method::OPTIONS {
        return Ok(preflight());
    }
    let limit = state.settings.http.max_body_bytes;
    if declared_length(&parts.headers).is_some_and(|n| n > limit) {
        return Err(body_too_large(limit));
    }
    // Held until the answer is made (the body and what is parsed from it live that long), or
    // until the request is forwarded (the owner then holds room of its own).
    let (body, room) = tokio::time::timeout(BODY_TIMEOUT, read_body(state, body, limit))
        .await
        .map_err(|_| {
            ApiError::Text(
                StatusCode::REQUEST_TIMEOUT,
                "Request body not received in time".into(),
            )
        })??;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (uri_path, query) = split_query_in_path(parts.uri.path(), parts.uri.query());
    let params = match content_type.and_then(|ct| multer::parse_boundary(ct).ok()) {
        Some(boundary) => Params::parse_multipart(query.as_deref(), &boundary, body.clone()).await,
        None => Params::parse(query.as_deref(), content_type, &body),
    };
    let path = match params.get("q") {
        Some(q) => q.to_string(),
        None => route::decode_path(uri_path),
    };
    let route = match route::parse(&path) {
        Ok(r) => r,
        // The input controller answers JSON whatever the suffix, as emoncms's does.
        Err(route::RouteError::UnknownFormat { route, .. }) if route.controller == "input" => {
            *route
        }
        Err(e) => return Err(ApiError::Text(StatusCode::NOT_ACCEPTABLE, e.to_string())),
    };
    // Cluster mode: another node's administrator page asks this node for its shards.
    if route.controller == "ynni" && route.action == "nodestatus" {
        return match &state.forwarder {
            Some(f) if f.is_forwarded(&parts.headers) => Ok(admin::node_status(state).await),
            _ => Err(ApiError::RouteNotFound { json: true }),
        };
    }
    if parts.method == Method::GET
        && route.format == Format::Html
        && params.is_empty()
        && let Some(page) = ui_page(&route)
    {
        return Ok(axum::response::Redirect::to(page).into_response());
    }
    // emoncms's encrypted input (an AES-128-CBC body, `Authorization: <userid>:<hmac>`): not
    // built, and said so rather than answered as a wrong key.
    if route.controller == "input"
        && matches!(route.action.as_str(), "post" | "bulk")
        && content_type.is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("aes128cbc"))
    {
        return Err(ApiError::not_implemented("encrypted input (aes128cbc)"));
    }
    // A share link reads its feeds as their owner and nothing else; no other key counts.
    let mut caller = if let Some(token) = params.get("share") {
        let shared = share::open(state, token).await?.ok_or_else(|| {
            ApiError::Text(
                StatusCode::UNAUTHORIZED,
                "This share link is not valid: revoked, expired or mistyped".into(),
            )
        })?;
        share::check(&route, &params, &shared)?;
        Some(shared.caller)
    } else {
        match auth::authenticate(state, &params, &parts.headers).await? {
            Auth::Caller(c) => Some(*c),
            Auth::Anonymous => None,
            Auth::InvalidKey => return Err(ApiError::InvalidApikey),
        }
    };
    let uses_session = caller.as_ref().is_some_and(|c| !c.via_apikey)
        || (route.controller == "user" && matches!(route.action.as_str(), "login" | "register"));
    if uses_session && crate::csrf::cross_site(&parts.headers) {
        return Err(ApiError::Text(
            StatusCode::FORBIDDEN,
            crate::csrf::REFUSED.into(),
        ));
    }
    // A link followed, an image or a frame: with the session it reads, never writes.
    if let Some(c) = caller.as_mut()
        && !c.via_apikey
        && !crate::csrf::scripted(&parts.headers)
    {
        c.write = false;
    }
    if caller.as_ref().is_some_and(|c| c.device_node.is_some())
        && !(route.controller == "input" && matches!(route.action.as_str(), "post" | "bulk"))
    {
        return Err(ApiError::Text(
            StatusCode::UNAUTHORIZED,
            "Unauthorized. Device key autentication only permits input post or bulk actions".into(),
        ));
    }
    let forwarded_client = state
        .forwarder
        .as_ref()
        .and_then(|f| f.forwarded_client(&parts.headers));
    let client = forwarded_client.unwrap_or_else(|| {
        crate::client_ip::client_ip(
            peer.ip(),
            &parts.headers,
            &state.settings.http.trusted_proxies,
        )
    });
    // The account whose node answers: the caller's, or the one another node named when it
    // sent on a read of that account's data.
    let forwarded_for = state
        .forwarder
        .as_ref()
        .and_then(|f| f.forwarded_for(&parts.headers));
    let account = forwarded_for.or(caller.as_ref().map(|c| c.user.id));
    if let (Some(forwarder), Some(account)) = (&state.forwarder, account) {
        let vshard = state.router.vshard(account);
        if !state.router.serves(vshard) {
            // Sent on once at most: a node that was wrongly sent it answers 503 and the
            // client retries once the owner map has caught up.
            return Ok(close_if_moved(
                &parts,
                vshard,
                match forwarder.owner(vshard) {
                    Some(owner) if !forwarder.is_forwarded(&parts.headers) => {
                        // Two nodes forwarding large bodies to each other must not each wait
                        // on room the other holds.
                        drop(room);
                        let Some(_flight) = forwarder.room(body.len()) else {
                            return Ok(crate::forward::unavailable());
                        };
                        if route.controller == "input"
                            && matches!(route.action.as_str(), "post" | "bulk")
                        {
                            forwarder
                                .forward_batched(&owner, &parts, body, client)
                                .await
                        } else {
                            forwarder.forward(&owner, &parts, body, client).await
                        }
                    }
                    _ => crate::forward::unavailable(),
                },
            ));
        }
    }
    let call = Call {
        state,
        params: &params,
        route: &route,
        caller: caller.as_ref(),
        peer: client,
        body: &body,
        https: parts.extensions.get::<crate::server::Https>().is_some(),
    };
    let answer = run_controller(&call).await;
    match (answer, &state.forwarder) {
        (Err(ApiError::ServedElsewhere { userid }), Some(forwarder)) if forwarded_for.is_none() => {
            Ok(close_if_moved(
                &parts,
                state.router.vshard(userid),
                match forwarder.owner(state.router.vshard(userid)) {
                    Some(owner) => {
                        drop(room);
                        match forwarder.room(body.len()) {
                            Some(_flight) => {
                                forwarder
                                    .forward_for(&owner, &parts, body.clone(), client, userid)
                                    .await
                            }
                            None => crate::forward::unavailable(),
                        }
                    }
                    None => crate::forward::unavailable(),
                },
            ))
        }
        (answer, _) => answer,
    }
}

/// A reply for `vshard` this node had to get from another node (or could not), on a
/// connection another node handed over to it for that vshard: the vshard has moved since, and
/// the client is asked to reconnect, so its next connection is routed afresh (see `splice`)
/// rather than taking two hops for the rest of its life.
fn close_if_moved(
    parts: &axum::http::request::Parts,
    vshard: u32,
    mut reply: Response,
) -> Response {
    if parts.extensions.get::<crate::splice::HandedOver>()
        == Some(&crate::splice::HandedOver { vshard })
    {
        reply.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    reply
}

/// Runs the controller the route names.
async fn run_controller(call: &Call<'_>) -> ApiResult {
    let route = call.route;
    match route.controller.as_str() {
        "version" => Ok(system::version(call)),
        "describe" => Ok(system::describe()),
        "user" => user::handle(call).await,
        "process" => process::handle(call),
        "input" => input::handle(call).await,
        "feed" => feed::handle(call).await,
        "myip" => system::myip(call),
        "device" => device::handle(call).await,
        "billing" => billing::handle(call).await,
        "app" => app::handle(call).await,
        "share" => share::handle(call).await,
        "dashboard" => dashboard::handle(call).await,
        "usage" => usage::handle(call).await,
        "ynni" => homeassistant::handle(call).await,
        "admin" if route.format == Format::Json => admin::handle(call).await,
        "" => Ok(axum::response::Redirect::to("/app/").into_response()),
        _ => Err(ApiError::RouteNotFound {
            json: route.format == Format::Json,
        }),
    }
}

/// emoncms's page addresses (bookmarks, emonSD links) and the UI view that replaces each.
fn ui_page(route: &Route) -> Option<&'static str> {
    Some(match (route.controller.as_str(), route.action.as_str()) {
        ("input", "view") => "/app/inputs",
        ("feed", "view") => "/app/feeds",
        ("graph", _) => "/app/graph",
        ("user", "view") => "/app/account",
        ("user", "login") => "/app/login",
        ("admin", "view" | "users") => "/app/admin",
        _ => return None,
    })
}

/// Node-RED's "emoncms in" node asks for `feed/aget.json&apikey=…&id=…`, with no `?`; emoncms
/// copes because Apache appends the path to `q=`. Here the first `&` of the path starts the
/// query (before any real query string).
fn split_query_in_path<'a>(path: &'a str, query: Option<&str>) -> (&'a str, Option<String>) {
    match path.split_once('&') {
        Some((path, extra)) => {
            let query = match query {
                Some(q) if !q.is_empty() => format!("{extra}&{q}"),
                _ => extra.to_string(),
            };
            (path, Some(query))
        }
        None => (path, query.map(str::to_string)),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads a body of at most `limit` bytes. Past [`SMALL_BODY`], each piece takes its room in
/// [`BODY_BUDGET_KIB`] before it is kept, so what the budget counts is what is held (a client
/// that declares a large body and sends little holds little); with no room left the request
/// is answered 503 with `Retry-After`.
async fn read_body(
    state: &AppState,
    body: axum::body::Body,
    limit: usize,
) -> Result<(bytes::Bytes, Option<tokio::sync::OwnedSemaphorePermit>), ApiError> {
    use futures_util::StreamExt;
    // Most requests (a GET, a device's post) say they are small: read at once, as before.
    if axum::body::HttpBody::size_hint(&body)
        .upper()
        .is_some_and(|n| n <= SMALL_BODY)
    {
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| body_too_large(limit))?;
        return Ok((bytes, None));
    }
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut room: Option<tokio::sync::OwnedSemaphorePermit> = None;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|_| {
            ApiError::Text(
                StatusCode::BAD_REQUEST,
                "Request body could not be read".into(),
            )
        })?;
        let total = buf.len() + piece.len();
        if total > limit {
            return Err(body_too_large(limit));
        }
        let held = room.as_ref().map_or(0, |r| r.num_permits() as u32);
        if let Some(more) = body_kib(total as u64).map(|kib| kib.saturating_sub(held))
            && more > 0
        {
            // Never waited for: requests each holding part of the budget while waiting for
            // more would stall one another until their deadlines.
            let permit = state
                .bodies
                .clone()
                .try_acquire_many_owned(more)
                .map_err(|_| ApiError::Ingest(ynni_ingest::shard::IngestError::Busy))?;
            match room.as_mut() {
                Some(r) => r.merge(permit),
                None => room = Some(permit),
            }
        }
        buf.extend_from_slice(&piece);
    }
    Ok((buf.freeze(), room))
}

/// The KiB of [`BODY_BUDGET_KIB`] `size` bytes of a body take, or `None` while they are
/// within [`SMALL_BODY`].
fn body_kib(size: u64) -> Option<u32> {
    (size > SMALL_BODY).then(|| {
        u32::try_from(size.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(BODY_BUDGET_KIB)
    })
}

fn body_too_large(limit: usize) -> ApiError {
    ApiError::Text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body too large (limit {limit} bytes)"),
    )
}

/// CORS preflight, answered for any path as emoncms does.
fn preflight() -> Response {
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET"),
    );
    r
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::{BODY_BUDGET_KIB, SMALL_BODY, body_kib, split_query_in_path};

    /// Small bodies (a device's post, a GET's empty one) take nothing of the shared budget;
    /// larger ones the KiB they hold, never more than all of it.
    #[test]
    fn bodies_take_the_budget_by_their_size() {
        assert_eq!(body_kib(0), None);
        assert_eq!(body_kib(SMALL_BODY), None);
        assert_eq!(body_kib(SMALL_BODY + 1), Some(65));
        assert_eq!(body_kib(4 << 20), Some(4096));
        assert_eq!(
            body_kib(1 << 40),
            Some(BODY_BUDGET_KIB),
            "never more than all of it"
        );
    }

    #[test]
    fn a_query_hanging_off_the_path() {
        assert_eq!(
            split_query_in_path("/feed/aget.json&apikey=k&id=1", None),
            ("/feed/aget.json", Some("apikey=k&id=1".to_string()))
        );
        assert_eq!(
            split_query_in_path("/feed/aget.json&id=1", Some("apikey=k")),
            ("/feed/aget.json", Some("id=1&apikey=k".to_string()))
        );
        assert_eq!(
            split_query_in_path("/feed/list.json", Some("apikey=k")),
            ("/feed/list.json", Some("apikey=k".to_string()))
        );
    }
}
