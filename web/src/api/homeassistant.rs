//! `ynni/homeassistant.json`: Home Assistant MQTT discovery for the caller's feeds, opt-in per
//! account. Without `enabled` it reports the setting; `enabled=1|0` (write access) switches it
//! and publishes (or withdraws) the discovery messages at once.

use serde_json::json;

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::reply;

pub async fn handle(call: &Call<'_>) -> ApiResult {
    if call.route.action != "homeassistant" {
        return Err(ApiError::RouteNotFound { json: true });
    }
    let Some(caller) = call.caller else {
        return Err(ApiError::False);
    };
    let userid = caller.user.id;
    let catalog = &call.state.catalog;
    let Some(wanted) = call.params.get("enabled") else {
        let on = catalog.ha_discovery(userid).await?;
        return Ok(reply::json(json!({"enabled": on})));
    };
    if !caller.write {
        return Err(ApiError::RouteNotFound { json: true });
    }
    let on = matches!(wanted.trim(), "1" | "true");
    catalog.set_ha_discovery(userid, on).await?;
    call.state.announce(userid);
    Ok(reply::json(json!({"success": true, "enabled": on})))
}
