//! `ynni/homeassistant.json`: Home Assistant MQTT discovery for the caller's feeds, opt-in per
//! account. Without `enabled` it reports the setting; `enabled=1|0` (write access) switches it
//! and publishes (or withdraws) the discovery messages at once.

use axum::response::Response;
use serde_json::json;

use super::Call;
use crate::reply;

pub async fn handle(call: &Call<'_>) -> Response {
    if call.route.action != "homeassistant" {
        return reply::route_not_found(true);
    }
    let Some(caller) = call.caller else {
        return reply::json_false();
    };
    let userid = caller.user.id;
    let catalog = &call.state.catalog;
    let Some(wanted) = call.params.get("enabled") else {
        return match catalog.ha_discovery(userid).await {
            Ok(on) => reply::json(json!({"enabled": on})),
            Err(e) => reply::internal(&e),
        };
    };
    if !caller.write {
        return reply::route_not_found(true);
    }
    let on = matches!(wanted.trim(), "1" | "true");
    if let Err(e) = catalog.set_ha_discovery(userid, on).await {
        return reply::internal(&e);
    }
    call.state.announce(userid);
    reply::json(json!({"success": true, "enabled": on}))
}
