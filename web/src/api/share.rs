//! Share links: read-only access to a set of feeds, or to one app's feeds, without the read
//! apikey (which opens every feed, input and account detail: emoncms's dashboard#205,
//! heatpumpmonitor.org#44).
//!
//! `share/create.json?feeds=1,2` or `?app=ID` (optional `label`, `expires` as unix seconds)
//! answers the token once; `share/list.json` lists the caller's links (never their tokens);
//! `share/revoke.json?id=` ends one at once. With `embed=1` the shared app's page may be shown in
//! other sites' frames (otherwise, as every page, it refuses to be framed). A request carrying `share=<token>` is served as
//! the owner reading, but only through [`ALLOWED`] actions and only for the feeds in the
//! link's scope (every `id` and `ids` checked); anything else is refused, and so is a revoked
//! or expired link. The scope of an app link is worked out on each request from the app's
//! current configuration, so removing a feed from the app removes it from the link.

use axum::http::StatusCode;
use serde_json::{Value, json};
use ynni_core::catalog::{ShareRow, ShareScope, share_token_hash};

use super::Call;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::reply;
use crate::route::Route;
use crate::state::AppState;

/// (controller, action) a share link may call.
const ALLOWED: [(&str, &str); 6] = [
    ("feed", "data"),
    ("feed", "average"),
    ("feed", "value"),
    ("feed", "timevalue"),
    ("feed", "getmeta"),
    ("app", "getconfig"),
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
pub async fn allows_embedding(state: &AppState, token: &str) -> bool {
    live_row(state, token)
        .await
        .ok()
        .flatten()
        .is_some_and(|row| row.embed)
}

/// The link behind `token`, if it is live (not revoked, not expired) and its owner exists.
pub async fn open(state: &AppState, token: &str) -> Result<Option<Shared>, ApiError> {
    let Some(row) = live_row(state, token).await? else {
        return Ok(None);
    };
    let Some(user) = state.catalog.user_by_id(row.userid).await? else {
        return Ok(None);
    };
    let (feeds, app) = scope(state, &row).await?;
    Ok(Some(Shared {
        caller: Caller {
            user,
            write: false,
            via_apikey: true,
            session_token: None,
            device_node: None,
        },
        feeds,
        app,
    }))
}

/// The feeds a link covers now.
async fn scope(state: &AppState, row: &ShareRow) -> Result<(Vec<i64>, Option<i64>), ApiError> {
    if row.kind != "app" {
        let feeds = row
            .feeds
            .split(',')
            .filter_map(|f| f.parse().ok())
            .collect();
        return Ok((feeds, None));
    }
    let Some(app) = row.app else {
        return Ok((Vec::new(), None));
    };
    let Some(app_row) = state
        .catalog
        .app_by_id(app)
        .await?
        .filter(|a| a.userid == row.userid)
    else {
        return Ok((Vec::new(), None));
    };
    // Only the keys of the app's type that hold feeds count (a setting such as My Solar's
    // `solar_disp_min = 10` is not feed 10), and only the owner's feeds that hold data of
    // their own: a virtual feed computes from feeds the link does not share.
    let owned: Vec<i64> = state
        .catalog
        .feeds_for_user(row.userid)
        .await?
        .iter()
        .filter(|f| f.engine != VIRTUAL_ENGINE)
        .map(|f| f.id)
        .collect();
    let config: Value = serde_json::from_str(&app_row.config).unwrap_or(Value::Null);
    let mut feeds: Vec<i64> = super::app::feed_keys(&app_row.app)
        .iter()
        .filter_map(|k| config.get(*k))
        .filter_map(|v| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|id| owned.contains(id))
        .collect();
    feeds.sort_unstable();
    feeds.dedup();
    Ok((feeds, Some(app)))
}

/// Whether a share link may make this call: an allowed action, and every feed it names in
/// the link's scope.
pub fn check(route: &Route, params: &Params, shared: &Shared) -> Result<(), ApiError> {
    let refused = || ApiError::Text(StatusCode::FORBIDDEN, REFUSED.into());
    if !ALLOWED.contains(&(route.controller.as_str(), route.action.as_str())) {
        return Err(refused());
    }
    if route.controller == "app" {
        // Only the shared app, named by id.
        let id = params.get("id").and_then(|i| i.trim().parse::<i64>().ok());
        return match (id, shared.app) {
            (Some(id), Some(app)) if id == app => Ok(()),
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
        "id": s.id, "label": s.label, "kind": s.kind, "app": s.app,
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
            let scope = if let Some(app) = p.get_or_post("app") {
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
