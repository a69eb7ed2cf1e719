//! Viewing a dashboard. emoncms renders `dashboard/view` on the server with the owner's read
//! key in the page; ynni's page (`/app/dashboards?id=`) draws the widgets itself from
//! `dashboard/view.json`, which answers the stored settings and content with the current
//! values of the feeds the widgets name, and nothing more.
//!
//! Who may view: the owner (session or key), anyone when the dashboard is public, and a share
//! link made for that dashboard (`share::check` holds it to its id). Unlike emoncms, holding
//! some key opens no other user's dashboard, and an alias is looked up within one user only.
//! Viewers other than the owner see only the owner's public feeds among those named.

use serde_json::{Value, json};
use ynni_core::catalog::DashboardRow;

use super::refs;
use crate::api::Call;
use crate::api::feed::feed_hashes;
use crate::error::{ApiError, ApiResult};
use crate::reply;

/// The dashboard a view request names: `id`, else `alias` of `username` (or of the caller),
/// else the caller's main dashboard.
async fn find(call: &Call<'_>) -> Result<Option<DashboardRow>, ApiError> {
    let p = call.params;
    let catalog = &call.state.catalog;
    if let Some(id) = p.get("id") {
        return match id.trim().parse::<i64>() {
            Ok(id) => Ok(catalog.dashboard_by_id(id).await?),
            Err(_) => Ok(None),
        };
    }
    let owner = match p.get("username") {
        Some(name) => catalog.user_by_username(name.trim()).await?.map(|u| u.id),
        None => call.caller.map(|c| c.user.id),
    };
    let Some(owner) = owner else {
        return Ok(None);
    };
    // The list carries no content: the one found is read whole.
    let rows = catalog.dashboards_for_user(owner).await?;
    let found = match p.get("alias").map(str::trim) {
        Some(alias) if !alias.is_empty() => rows.into_iter().find(|d| d.alias == alias),
        Some(_) => None,
        None => rows.into_iter().find(|d| d.main),
    };
    Ok(match found {
        Some(d) => catalog.dashboard(owner, d.id).await?,
        None => None,
    })
}

/// `dashboard/view.json`: the dashboard and its feeds' values, or `false` when the caller
/// may not see it (the same answer as for none at all).
pub async fn view_json(call: &Call<'_>) -> ApiResult {
    let Some(d) = find(call).await? else {
        return Err(ApiError::False);
    };
    let owner = call.caller.is_some_and(|c| c.user.id == d.userid);
    if !owner && !d.public {
        return Err(ApiError::False);
    }
    // Anyone else sees the owner's public feeds only, and reads no more rows than those.
    let visible = if owner {
        call.state.catalog.feeds_for_user(d.userid).await?
    } else {
        call.state.catalog.public_feeds(d.userid).await?
    };
    let named = refs::resolve(&refs::feed_options(&d.content), &visible);
    let shown: Vec<_> = visible
        .into_iter()
        .filter(|f| named.contains(&f.id))
        .collect();
    let feeds: Vec<Value> = feed_hashes(call, &shown)
        .await?
        .into_iter()
        .map(Value::Object)
        .collect();
    // Only a login session edits (a key or a share link does not).
    let editable = owner && call.caller.is_some_and(|c| c.write && !c.via_apikey);
    Ok(reply::json(json!({
        "id": d.id, "userid": d.userid, "name": d.name, "alias": d.alias,
        "description": d.description, "showdescription": d.showdescription,
        "height": d.height, "backgroundcolor": d.backgroundcolor, "gridsize": d.gridsize,
        "feedmode": d.feedmode, "fullscreen": d.fullscreen, "public": d.public,
        "published": d.published, "main": d.main,
        "content": d.content, "owner": owner, "editable": editable, "feeds": feeds,
    })))
}
