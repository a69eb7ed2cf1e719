//! Share links: read-only access to a set of feeds, or to one app's feeds, without the read
//! apikey (which opens every feed, input and account detail: emoncms's dashboard#205,
//! heatpumpmonitor.org#44).
//!
//! `share/create.json?feeds=1,2`, `?app=ID` or `?dashboard=ID` (optional `label`, `expires` as unix seconds)
//! answers the token once; `share/list.json` lists the caller's links (never their tokens);
//! `share/revoke.json?id=` ends one at once. With `embed=1` the shared app's page may be shown in
//! other sites' frames (otherwise, as every page, it refuses to be framed). A request carrying `share=<token>` is served as
//! the owner reading, but only through [`ALLOWED`] actions and only for the feeds in the
//! link's scope (every `id` and `ids` checked); anything else is refused, and so is a revoked
//! or expired link. The scope of an app link is worked out on each request from the app's
//! current configuration, and a dashboard link's from the feeds its widgets name, so removing
//! a feed from the app or the dashboard removes it from the link.

use axum::http::StatusCode;
use serde_json::{Value, json};
use ynni_core::catalog::{FeedRow, ShareRow, ShareScope, share_token_hash};

use super::Call;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::reply;
use crate::route::Route;
use crate::state::AppState;

/// Live (not revoked) share links one account may have.
const MAX_SHARES: i64 = 1_000;

/// (controller, action) a share link may call.
const ALLOWED: [(&str, &str); 7] = [
    ("feed", "data"),
    ("feed", "average"),
    ("feed", "value"),
    ("feed", "timevalue"),
    ("feed", "getmeta"),
    ("app", "getconfig"),
    ("dashboard", "view"),
];

/// emoncms's engine id of a virtual feed.
const VIRTUAL_ENGINE: i64 = 7;

/// Feeds one link may name, at most.
const MAX_FEEDS: usize = 64;

pub const REFUSED: &str = "A share link reads only the feeds it shares";

/// What a share token opens: its owner (reading) and the feeds and app it covers.
pub struct Shared {
    pub caller: Caller,
    pub feeds: Vec<i64>,
    pub app: Option<i64>,
    pub dashboard: Option<i64>,
}

/// The live link behind `token` (not revoked, not expired), as stored.
async fn live_row(state: &AppState, token: &str) -> Result<Option<ShareRow>, ApiError> {
    if token.len() != 32 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let now = chrono::Utc::now().timestamp();
    Ok(state
        .catalog
        .share_by_token_hash(&share_token_hash(&token.to_ascii_lowercase()))
        .await?
        .filter(|row| !row.revoked && (row.expires == 0 || row.expires > now)))
}

/// Whether `token` is a live link whose owner lets its page be framed by other sites.
pub async fn allows_embedding(state: &AppState, token: &str, page: &str, id: Option<&str>) -> bool {
    let id = id.and_then(|i| i.trim().parse::<i64>().ok());
    live_row(state, token)
        .await
        .ok()
        .flatten()
        .is_some_and(|row| {
            // Only the page of what the link shares: any other page with the token in its
            // address (the list of dashboards, say) runs on the viewer's own login.
            let shown = match (page, row.kind.as_str()) {
                ("apps", "app") => row.app,
                ("dashboards", "dashboard") => row.dashboard,
                _ => None,
            };
            row.embed && shown.is_some() && shown == id
        })
}

/// The link behind `token`, if it is live (not revoked, not expired) and its owner exists.
pub async fn open(state: &AppState, token: &str) -> Result<Option<Shared>, ApiError> {
    let Some(row) = live_row(state, token).await? else {
        return Ok(None);
    };
    let Some(user) = state.catalog.user_by_id(row.userid).await? else {
        return Ok(None);
    };
    let feeds = scope(state, &row).await?;
    Ok(Some(Shared {
        caller: Caller {
            user,
            write: false,
            via_apikey: true,
            session_token: None,
            device_node: None,
        },
        feeds,
        app: row.app.filter(|_| row.kind == "app"),
        dashboard: row.dashboard.filter(|_| row.kind == "dashboard"),
    }))
}

/// The owner's feeds that hold data of their own: a virtual feed computes from feeds a link
/// does not share.
async fn stored_feeds(state: &AppState, userid: i64) -> Result<Vec<FeedRow>, ApiError> {
    Ok(state
        .catalog
        .feeds_for_user(userid)
        .await?
        .into_iter()
        .filter(|f| f.engine != VIRTUAL_ENGINE)
        .collect())
}

/// The feeds a link covers now.
async fn scope(state: &AppState, row: &ShareRow) -> Result<Vec<i64>, ApiError> {
    match row.kind.as_str() {
        "app" => app_scope(state, row).await,
        "dashboard" => {
            let Some(dashboard) = row.dashboard else {
                return Ok(Vec::new());
            };
            let Some(d) = state
                .catalog
                .dashboard_by_id(dashboard)
                .await?
                .filter(|d| d.userid == row.userid)
            else {
                return Ok(Vec::new());
            };
            let feeds = stored_feeds(state, row.userid).await?;
            Ok(super::dashboard::resolve_feeds(
                &super::dashboard::feed_options(&d.content),
                &feeds,
            ))
        }
        _ => Ok(row
            .feeds
            .split(',')
            .filter_map(|f| f.parse().ok())
            .collect()),
    }
}

/// The feeds of an app link: the feed keys of the app's type, as configured now.
async fn app_scope(state: &AppState, row: &ShareRow) -> Result<Vec<i64>, ApiError> {
    let Some(app) = row.app else {
        return Ok(Vec::new());
    };
    let Some(app_row) = state
        .catalog
        .app_by_id(app)
        .await?
        .filter(|a| a.userid == row.userid)
    else {
        return Ok(Vec::new());
    };
    // Only the keys of the app's type that hold feeds count (a setting such as My Solar's
    // `solar_disp_min = 10` is not feed 10).
    let config: Value = serde_json::from_str(&app_row.config).unwrap_or(Value::Null);
    let mut named: Vec<i64> = super::app::feed_keys(&app_row.app)
        .iter()
        .filter_map(|k| config.get(*k))
        .filter_map(|v| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .collect();
    named.sort_unstable();
    named.dedup();
    // Each looked up alone (a few, through the feed cache), not every feed of the owner's
    // read on every request made with the link: the owner's stored feeds only.
    let mut feeds = Vec::with_capacity(named.len());
    for id in named {
        if let Some(f) = state.catalog.feed_by_id(id).await?
            && f.userid == row.userid
            && f.engine != VIRTUAL_ENGINE
        {
            feeds.push(id);
        }
    }
    Ok(feeds)
}

/// Whether a share link may make this call: an allowed action, and every feed it names in
/// the link's scope.
pub fn check(route: &Route, params: &Params, shared: &Shared) -> Result<(), ApiError> {
    let refused = || ApiError::Text(StatusCode::FORBIDDEN, REFUSED.into());
    if !ALLOWED.contains(&(route.controller.as_str(), route.action.as_str())) {
        return Err(refused());
    }
    if route.controller == "app" || route.controller == "dashboard" {
        // Only the shared app or dashboard, named by id.
        let id = params.get("id").and_then(|i| i.trim().parse::<i64>().ok());
        let shared_id = if route.controller == "app" {
            shared.app
        } else {
            shared.dashboard
        };
        return match (id, shared_id) {
            (Some(id), Some(own)) if id == own => Ok(()),
            _ => Err(refused()),
        };
    }
    // feed/data also takes `ids`; `id` wins when both are given, but both must be covered.
    let mut named = Vec::new();
    for key in ["id", "ids"] {
        if let Some(text) = params.get(key) {
            for part in text.split(',') {
                match part.trim().parse::<i64>() {
                    Ok(id) => named.push(id),
                    Err(_) => return Err(refused()),
                }
            }
        }
    }
    if named.is_empty() || named.iter().any(|id| !shared.feeds.contains(id)) {
        return Err(refused());
    }
    if params.get("csv").is_some() {
        return Err(refused());
    }
    Ok(())
}

fn share_json(s: &ShareRow) -> Value {
    json!({
        "id": s.id, "label": s.label, "kind": s.kind, "app": s.app, "dashboard": s.dashboard,
        "feeds": s.feeds.split(',').filter_map(|f| f.parse::<i64>().ok()).collect::<Vec<_>>(),
        "created": s.created, "expires": s.expires, "revoked": s.revoked, "embed": s.embed,
    })
}

/// `share/create|list|revoke`: the caller's own links (write access; a share token has none).
pub async fn handle(call: &Call<'_>) -> ApiResult {
    let Some(c) = call.caller.filter(|c| c.write) else {
        return Err(ApiError::False);
    };
    let p = call.params;
    let catalog = &call.state.catalog;
    match call.route.action.as_str() {
        "create" => {
            let scope = if let Some(dashboard) = p.get_or_post("dashboard") {
                let id: i64 = dashboard
                    .trim()
                    .parse()
                    .map_err(|_| ApiError::fail("Invalid dashboard id"))?;
                catalog.dashboard(c.user.id, id).await?.ok_or_else(|| {
                    ApiError::fail(format!("Dashboard does not exist with id {id}"))
                })?;
                ShareScope::Dashboard(id)
            } else if let Some(app) = p.get_or_post("app") {
                let id: i64 = app
                    .trim()
                    .parse()
                    .map_err(|_| ApiError::fail("Invalid app id"))?;
                catalog
                    .app_by_id(id)
                    .await?
                    .filter(|a| a.userid == c.user.id)
                    .ok_or_else(|| ApiError::fail(format!("App does not exist with id {id}")))?;
                ShareScope::App(id)
            } else {
                let text = p.get_or_post("feeds").unwrap_or("");
                let ids: Vec<i64> = text
                    .split(',')
                    .map(|f| f.trim().parse::<i64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| ApiError::fail("feeds must be feed ids, comma-separated"))?;
                if ids.is_empty() || ids.len() > MAX_FEEDS {
                    return Err(ApiError::fail(format!("Share 1 to {MAX_FEEDS} feeds")));
                }
                let mine = catalog.feeds_for_user(c.user.id).await?;
                for id in &ids {
                    match mine.iter().find(|f| f.id == *id) {
                        None => return Err(ApiError::fail(format!("Feed {id} does not exist"))),
                        // Its values come from other feeds, which the link would not share.
                        Some(f) if f.engine == VIRTUAL_ENGINE => {
                            return Err(ApiError::fail(format!(
                                "Feed {id} is virtual: share the feeds it is computed from"
                            )));
                        }
                        Some(_) => {}
                    }
                }
                ShareScope::Feeds(ids)
            };
            let expires = match p.get_or_post("expires").map(str::trim) {
                None | Some("") | Some("0") => 0,
                Some(t) => t
                    .parse::<i64>()
                    .ok()
                    .filter(|t| *t > chrono::Utc::now().timestamp())
                    .ok_or_else(|| ApiError::fail("expires must be a future unix time"))?,
            };
            let label: String = p
                .get_or_post("label")
                .unwrap_or("")
                .chars()
                .filter(|ch| ch.is_alphanumeric() || ch.is_whitespace() || "_-:.,".contains(*ch))
                .take(100)
                .collect();
            // Revoked and expired links stay listed, the newest 100 of them; live ones are
            // bounded.
            let _one = call.state.creates.lock(c.user.id).await?;
            let now = chrono::Utc::now().timestamp();
            catalog.forget_old_dead_shares(c.user.id, 100, now).await?;
            if catalog.live_share_count(c.user.id, now).await? >= MAX_SHARES {
                return Err(ApiError::fail(format!(
                    "Too many share links: at most {MAX_SHARES}"
                )));
            }
            let token =
                ynni_core::keys::random_hex(16).map_err(|e| ApiError::fail(e.to_string()))?;
            let embed = p.get_or_post("embed").is_some_and(|v| v.trim() == "1");
            let id = catalog
                .create_share(
                    c.user.id,
                    &share_token_hash(&token),
                    &label,
                    &scope,
                    expires,
                    embed,
                )
                .await?;
            Ok(reply::json(
                json!({"success": true, "id": id, "token": token}),
            ))
        }
        "list" => {
            let rows = catalog.shares_for_user(c.user.id).await?;
            Ok(reply::json(Value::Array(
                rows.iter().map(share_json).collect(),
            )))
        }
        "revoke" => {
            let id = p
                .get_or_post("id")
                .and_then(|i| i.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::fail("id is required"))?;
            if catalog.revoke_share(c.user.id, id).await? {
                Ok(reply::json(json!({"success": true})))
            } else {
                Err(ApiError::fail(format!("Share does not exist with id {id}")))
            }
        }
        _ => Err(ApiError::RouteNotFound { json: true }),
    }
}
