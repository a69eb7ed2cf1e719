//! Devices (emoncms's device module): `device/create`, `list`, `get`, `set`, `delete` and
//! `newdevicekey`. A device key may post its own node only, over HTTP (`devicekey=`) and MQTT
//! (as the password, with the account's username).

use serde_json::{Value, json};
use ynni_core::catalog::DeviceRow;

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::reply;

pub async fn handle(call: &Call<'_>) -> ApiResult {
    // Every device action needs write access (emoncms answers `false` without it).
    let Some(userid) = call.caller.filter(|c| c.write).map(|c| c.user.id) else {
        return Err(ApiError::False);
    };
    match call.route.action.as_str() {
        "create" => create(call, userid).await,
        "list" => list(call, userid).await,
        "get" | "set" | "delete" | "newdevicekey" => with_device(call, userid).await,
        "" => Err(ApiError::RouteNotFound { json: true }),
        other => Err(ApiError::not_implemented(format!("device/{other}"))),
    }
}

/// What emoncms keeps in device names, nodes and descriptions.
fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || matches!(c, '_' | '-' | ':')
}

fn filtered(s: &str) -> String {
    s.chars().filter(|c| allowed(*c)).collect()
}

fn device_json(d: &DeviceRow) -> Value {
    json!({
        "id": d.id.to_string(),
        "userid": d.userid.to_string(),
        "nodeid": d.nodeid,
        "name": d.name,
        "description": d.description,
        "type": d.kind,
        "devicekey": d.devicekey,
        "time": d.time,
    })
}

/// Devices one account may have (each is listed by `device/list`; emoncms has no limit).
const MAX_DEVICES: i64 = 1_000;

/// `device/create?nodeid=&name=&description=&type=`: the new device's id.
async fn create(call: &Call<'_>, userid: i64) -> ApiResult {
    let p = call.params;
    let nodeid = filtered(p.get("nodeid").unwrap_or(""));
    if nodeid.trim().is_empty() {
        return Err(ApiError::fail("Invalid nodeid"));
    }
    let name = p.get("name").map_or_else(|| nodeid.clone(), filtered);
    let description = filtered(p.get("description").unwrap_or(""));
    let kind = filtered(p.get("type").unwrap_or(""));
    let _one = call.state.creates.lock(userid).await?;
    if call.state.catalog.device_count(userid).await? >= MAX_DEVICES {
        return Err(ApiError::fail(format!(
            "Too many devices: at most {MAX_DEVICES}"
        )));
    }
    let id = call
        .state
        .catalog
        .create_device(userid, &nodeid, &name, &description, &kind)
        .await?
        .ok_or_else(|| ApiError::fail("Device already exists"))?;
    Ok(reply::json(json!(id)))
}

async fn list(call: &Call<'_>, userid: i64) -> ApiResult {
    let rows = call.state.catalog.devices_for_user(userid).await?;
    Ok(reply::json(Value::Array(
        rows.iter().map(device_json).collect(),
    )))
}

/// The actions on one device (`id=`), which must be the caller's.
async fn with_device(call: &Call<'_>, userid: i64) -> ApiResult {
    let id = call
        .params
        .get("id")
        .and_then(|i| i.trim().parse::<i64>().ok());
    let device = match id {
        Some(id) => call.state.catalog.device_by_id(id).await?,
        None => None,
    };
    let Some(device) = device else {
        return Err(ApiError::fail("Device does not exist"));
    };
    if device.userid != userid {
        return Err(ApiError::False);
    }
    let action = call.route.action.as_str();
    let response = match action {
        "get" => Ok(reply::json(device_json(&device))),
        "delete" => delete(call, &device).await,
        "newdevicekey" => new_key(call, &device).await,
        _ => set(call, &device).await,
    };
    if action != "get" {
        // A device key deleted, replaced or moved to another node: open MQTT connections
        // with it are checked again (the check reads the catalog, so it follows the change).
        call.state.credentials_changed(userid);
    }
    response
}

async fn delete(call: &Call<'_>, device: &DeviceRow) -> ApiResult {
    call.state.catalog.delete_device(device.id).await?;
    Ok(reply::json(
        json!({"success": true, "message": "Device deleted"}),
    ))
}

async fn new_key(call: &Call<'_>, device: &DeviceRow) -> ApiResult {
    let key = call.state.catalog.new_device_key(device.id).await?;
    Ok(reply::json(json!(key)))
}

/// `device/set&fields={"name":…,"description":…,"nodeid":…,"type":…}`.
async fn set(call: &Call<'_>, device: &DeviceRow) -> ApiResult {
    let Some(fields) = call.params.json_object("fields") else {
        return Err(ApiError::fail("Field could not be updated"));
    };
    let text = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_string);
    for (key, what) in [
        ("name", "name"),
        ("description", "description"),
        ("nodeid", "nodeid"),
        ("type", "type"),
    ] {
        if text(key).is_some_and(|v| !v.chars().all(allowed)) {
            return Err(ApiError::fail(format!(
                "invalid characters in device {what}"
            )));
        }
    }
    let updated = call
        .state
        .catalog
        .set_device_fields(
            device.id,
            text("name").as_deref(),
            text("description").as_deref(),
            text("nodeid").as_deref(),
            text("type").as_deref(),
        )
        .await?;
    if !updated {
        return Err(ApiError::fail("Device already exists"));
    }
    Ok(reply::json(
        json!({"success": true, "message": "Field updated"}),
    ))
}
