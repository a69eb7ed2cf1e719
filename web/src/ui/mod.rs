//! The browser UI: one HTML page (`/app/...`, the script picks the view from the path), its
//! files under `/ui/`, and the live-update stream `/ynni/live`. (`/` leads to `/app/` from the
//! API dispatcher, since `/?q=…` is an emoncms API address.) The pages use only the public
//! HTTP API with the login session, so nothing here reads or writes data itself.

pub mod assets;
pub mod live;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;

use crate::auth::{self, Auth};
use crate::params::Params;
use crate::state::AppState;

/// Inline scripts and styles, other origins, framing and plugins are all refused: even text
/// that slipped through unescaped could not run. uPlot sizes its canvas through the style
/// DOM API, which `style-src 'self'` allows.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/app", get(page))
        .route("/app/", get(page))
        .route("/app/{*view}", any(page_or_api))
        .route("/ui/{*path}", get(asset))
        .route("/ynni/live", get(live_stream))
}

pub fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

async fn page(State(state): State<AppState>, request: Request) -> Response {
    assets::serve(&state.settings.http.ui_dir, "index.html", request.headers())
}

/// emoncms's app module answers at `/app/<action>` too (`app/list.json`, `app/getconfig`, …):
/// those, anything with a format suffix and anything but a GET go to the API; the rest are the
/// UI's pages (whose names are none of these).
const APP_MODULE_ACTIONS: [&str; 9] = [
    "list",
    "available",
    "add",
    "remove",
    "setname",
    "setpublic",
    "setconfig",
    "getconfig",
    "view",
];

async fn page_or_api(State(state): State<AppState>, request: Request) -> Response {
    let first = request
        .uri()
        .path()
        .trim_start_matches("/app/")
        .split('/')
        .next()
        .unwrap_or("");
    let action = first.split('.').next().unwrap_or("");
    if request.method() != axum::http::Method::GET
        || first.contains('.')
        || APP_MODULE_ACTIONS.contains(&action)
    {
        let peer = request
            .extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map_or(std::net::SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
        return crate::api::dispatch(State(state), ConnectInfo(peer), request).await;
    }
    // A shared app or dashboard page may be framed by other sites when its owner allowed it.
    let query = request.uri().query().unwrap_or("").to_owned();
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let (token, id) = (param("share"), param("id"));
    let embeddable = matches!(action, "apps" | "dashboards")
        && match &token {
            Some(t) => crate::api::allows_embedding(&state, t, action, id.as_deref()).await,
            None => false,
        };
    let mut r = page(State(state), request).await;
    if embeddable {
        let h = r.headers_mut();
        h.remove(header::X_FRAME_OPTIONS);
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(EMBEDDABLE_CSP),
        );
    }
    r
}

/// [`CSP`] for a page its owner lets other sites frame.
const EMBEDDABLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                              img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
                              object-src 'none'; base-uri 'none'; form-action 'self'; \
                              frame-ancestors *";

async fn asset(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    assets::serve(&state.settings.http.ui_dir, &path, &headers)
}

/// `/ynni/live`: Server-Sent Events of the caller's input and feed updates (login session or
/// a read apikey).
/// The client's address, as the API dispatcher works it out.
fn peer_ip(state: &AppState, parts: &Parts) -> std::net::IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    crate::client_ip::client_ip(peer, &parts.headers, &state.settings.http.trusted_proxies)
}

async fn live_stream(State(state): State<AppState>, request: Request) -> Response {
    let params = Params::parse(request.uri().query(), None, &[]);
    let caller = match auth::authenticate(&state, &params, request.headers()).await {
        Ok(Auth::Caller(c)) if c.device_node.is_none() => c,
        Ok(_) => return (StatusCode::UNAUTHORIZED, "Log in first").into_response(),
        Err(e) => return crate::reply::internal(&e),
    };
    if !caller.via_apikey && crate::csrf::cross_site(request.headers()) {
        return (StatusCode::FORBIDDEN, crate::csrf::REFUSED).into_response();
    }
    if let Some(forwarder) = &state.forwarder {
        let vshard = state.router.vshard(caller.user.id);
        if !state.router.serves(vshard) {
            return match forwarder.owner(vshard) {
                Some(owner) if !forwarder.is_forwarded(request.headers()) => {
                    let (parts, _) = request.into_parts();
                    let client = forwarder
                        .forwarded_client(&parts.headers)
                        .unwrap_or_else(|| peer_ip(&state, &parts));
                    forwarder
                        .forward_stream(&owner, &parts, Bytes::new(), client)
                        .await
                }
                _ => crate::forward::unavailable(),
            };
        }
    }
    let opener = if caller.via_apikey {
        live::Opener::Apikey
    } else {
        live::Opener::Session
    };
    let Some(rx) = state.live.subscribe(caller.user.id, opener, &state.router) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, HeaderValue::from_static("60"))],
            format!(
                "Too many live pages open for this account (at most {}): close one",
                live::MAX_STREAMS_PER_USER
            ),
        )
            .into_response();
    };
    let mut r = live::stream(rx).into_response();
    // Proxies (nginx) must pass events on at once.
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}
