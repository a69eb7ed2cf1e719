//! emoncms's app module API (`app/list`, `available`, `add`, `remove`, `setname`, `setpublic`,
//! `setconfig`, `getconfig`), with its JSON shapes and messages, so configurations made for
//! emoncms and the scripts reading them (heatpumpmonitor.org reads `app/getconfig`) keep
//! working. ynni draws the apps in its own UI; `app/view` sends the browser there.

use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use ynni_core::catalog::AppRow;

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::reply;

/// Bounds on one app's configuration.
const MAX_CONFIG_BYTES: usize = 16 << 10;
const MAX_CONFIG_KEYS: usize = 200;

/// The apps ynni draws: (type, title, description, order).
pub const AVAILABLE: [(&str, &str, &str, u32); 5] = [
    (
        "myelectric",
        "My Electric",
        "Electricity use now, today, and by day, week, month and year, in kWh or money",
        1,
    ),
    (
        "myheatpump",
        "My Heatpump",
        "Heat pump electricity in and heat out, COP now, per day and for a period",
        2,
    ),
    (
        "mysolarpv",
        "My Solar",
        "Solar generation, use, import and export, self-consumption",
        3,
    ),
    (
        "mysolarpvbattery",
        "My Solar with Battery",
        "My Solar with a battery's charge, discharge and state of charge",
        4,
    ),
    (
        "mysolarpvdivert",
        "My Solar with Divert",
        "My Solar with solar diverted to hot water",
        5,
    ),
];

/// The config keys of each app type that hold feed ids (emoncms's `type: feed` entries); a
/// share link of an app reads only the feeds these name, whatever else its config holds.
pub fn feed_keys(app: &str) -> &'static [&'static str] {
    match app {
        "myelectric" => &["use", "use_kwh"],
        "mysolarpv" => &["use", "solar", "use_kwh", "solar_kwh", "import_kwh"],
        "mysolarpvbattery" => &[
            "use",
            "solar",
            "battery_charge",
            "battery_discharge",
            "battery_soc",
            "use_kwh",
            "solar_kwh",
            "solar_direct_kwh",
            "import_kwh",
            "battery_charge_kwh",
            "battery_discharge_kwh",
        ],
        "mysolarpvdivert" => &[
            "use",
            "solar",
            "divert",
            "wind",
            "use_kwh",
            "solar_kwh",
            "wind_kwh",
            "divert_kwh",
            "import_kwh",
        ],
        "myheatpump" => &[
            "heatpump_elec",
            "heatpump_elec_kwh",
            "heatpump_heat",
            "heatpump_heat_kwh",
            "heatpump_flowT",
            "heatpump_returnT",
            "heatpump_outsideT",
            "heatpump_roomT",
            "heatpump_targetT",
            "heatpump_flowrate",
            "heatpump_dhw",
            "heatpump_ch",
            "heatpump_cooling",
            "heatpump_error",
            "immersion_elec",
            "heatpump_dhwT",
            "heatpump_dhwTargetT",
            "boiler_heat",
        ],
        _ => &[],
    }
}

fn available(app: &str) -> bool {
    AVAILABLE.iter().any(|(t, ..)| *t == app)
}

/// emoncms's app row: every column a string, the config an object.
pub fn row_json(a: &AppRow) -> Value {
    let config: Value = serde_json::from_str(&a.config).unwrap_or_else(|_| json!({}));
    json!({
        "id": a.id.to_string(),
        "userid": a.userid.to_string(),
        "app": a.app,
        "name": a.name,
        "public": if a.public { "1" } else { "0" },
        "config": config,
    })
}

fn not_exist(id: &str) -> ApiError {
    ApiError::fail(format!("App does not exist with id {id}"))
}

fn invalid_app() -> ApiError {
    ApiError::fail("invalid app or permissions")
}

/// Letters, digits, `_`, whitespace, `-` and `:` (emoncms's rule for app names).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || matches!(c, '_' | '-' | ':'))
}

pub async fn handle(call: &Call<'_>) -> ApiResult {
    let caller = call.caller;
    let read = caller.is_some();
    let write = caller.is_some_and(|c| c.write);
    let p = call.params;
    let action = call.route.action.as_str();
    if action == "view" || action.is_empty() {
        // Pages are ynni's own: the browser goes to the app's page there.
        let name = call.route.subaction.clone();
        let target = match (name.is_empty(), p.get("name")) {
            (false, _) => format!(
                "/app/apps?name={}",
                form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
            ),
            (true, Some(n)) => format!(
                "/app/apps?name={}",
                form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>()
            ),
            (true, None) => "/app/apps".to_string(),
        };
        return Ok(axum::response::Redirect::to(&target).into_response());
    }
    match (action, caller) {
        ("list", Some(c)) if read => {
            let rows = call.state.catalog.apps_for_user(c.user.id).await?;
            let list: Vec<Value> = rows
                .iter()
                .map(|a| {
                    json!({"id": a.id.to_string(), "app": a.app, "name": a.name,
                           "public": if a.public { "1" } else { "0" }})
                })
                .collect();
            Ok(reply::json(Value::Array(list)))
        }
        ("available", Some(_)) if read => {
            let mut out = Map::new();
            for (t, title, description, order) in AVAILABLE {
                out.insert(
                    t.to_string(),
                    json!({"title": title, "description": description, "order": order,
                           "dir": format!("Modules/app/apps/OpenEnergyMonitor/{t}/")}),
                );
            }
            Ok(reply::json(Value::Object(out)))
        }
        ("add", Some(c)) if write => {
            let app = p.get_or_post("app").unwrap_or("");
            if !app.chars().all(|ch| ch.is_ascii_alphanumeric()) || app.is_empty() {
                return Err(ApiError::fail("Invalid app"));
            }
            if !available(app) {
                // emoncms answers a bare JSON string here.
                return Ok(reply::json(json!("Invalid app")));
            }
            let name = p.get_or_post("name").unwrap_or("").trim();
            if !valid_name(name) {
                return Err(ApiError::fail("Invalid app name"));
            }
            let limit = ynni_core::catalog::apps::MAX_APPS;
            let _one = call.state.creates.lock(c.user.id).await?;
            if call.state.catalog.app_count(c.user.id).await? >= limit {
                return Err(ApiError::fail(format!("Too many apps: at most {limit}")));
            }
            match call.state.catalog.create_app(c.user.id, app, name).await? {
                Some(id) => Ok(reply::json(json!({"success": true, "id": id}))),
                None => Err(ApiError::fail(format!(
                    "App already exist with name {name}"
                ))),
            }
        }
        ("remove" | "setname" | "setpublic" | "setconfig", Some(c)) if write => {
            let id_text = p.get_or_post("id").unwrap_or("").trim().to_string();
            let Ok(id) = id_text.parse::<i64>() else {
                return Err(not_exist(&id_text));
            };
            let catalog = &call.state.catalog;
            let ok = match action {
                "remove" => catalog.delete_app(c.user.id, id).await?,
                "setname" => {
                    let name = p.get_or_post("name").unwrap_or("").trim();
                    if !valid_name(name) {
                        return Err(ApiError::fail("Invalid app name"));
                    }
                    match catalog.set_app_name(c.user.id, id, name).await? {
                        Some(ok) => ok,
                        None => {
                            return Err(ApiError::fail(format!(
                                "App already exist with name {name}"
                            )));
                        }
                    }
                }
                "setpublic" => {
                    let public = p
                        .get_or_post("public")
                        .is_some_and(|v| v.trim() != "0" && !v.trim().is_empty());
                    catalog.set_app_public(c.user.id, id, public).await?
                }
                _ => {
                    let config = checked_config(p.get("config").unwrap_or(""))?;
                    catalog.set_app_config(c.user.id, id, &config).await?
                }
            };
            if ok {
                Ok(reply::json(json!({"success": true})))
            } else {
                Err(not_exist(&id_text))
            }
        }
        ("getconfig", _) => {
            let app = resolve(call).await?.ok_or_else(invalid_app)?;
            Ok(reply::json(row_json(&app)))
        }
        _ => Err(invalid_app()),
    }
}

/// The app a read call names: `?id=` (the caller's, or any public app), else the caller's app
/// named by the subaction or `?name=`, else their first. Without a caller, nothing.
pub async fn resolve(call: &Call<'_>) -> Result<Option<AppRow>, ApiError> {
    let Some(c) = call.caller else {
        return Ok(None);
    };
    let catalog = &call.state.catalog;
    if let Some(id) = call
        .params
        .get("id")
        .and_then(|i| i.trim().parse::<i64>().ok())
    {
        return Ok(catalog
            .app_by_id(id)
            .await?
            .filter(|a| a.userid == c.user.id || a.public));
    }
    let name = if call.route.subaction.is_empty() {
        call.params.get("name").unwrap_or("").to_string()
    } else {
        call.route.subaction.clone()
    };
    Ok(catalog.app_by_name_or_first(c.user.id, &name).await?)
}

/// `setconfig`'s `config`: a flat JSON object of scalars with keys of `[A-Za-z0-9_]` and no
/// markup in its strings, as emoncms checks it; returned as stored.
fn checked_config(text: &str) -> Result<String, ApiError> {
    // Bounded: an app's settings are a few dozen short values.
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ApiError::fail("Could not parse json"));
    }
    let parsed: Value =
        serde_json::from_str(text).map_err(|_| ApiError::fail("Could not parse json"))?;
    let Value::Object(map) = parsed else {
        return Err(ApiError::fail("Could not parse json"));
    };
    if map.len() > MAX_CONFIG_KEYS {
        return Err(ApiError::fail("Invalid config key"));
    }
    for (k, v) in &map {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ApiError::fail("Invalid config key"));
        }
        match v {
            Value::Object(_) => return Err(ApiError::fail("Config value cannot be object")),
            Value::Array(_) => return Err(ApiError::fail("Config value cannot be array")),
            Value::String(s) if s.contains(['<', '>']) || s.chars().any(char::is_control) => {
                return Err(ApiError::fail("Invalid config value"));
            }
            _ => {}
        }
    }
    Ok(Value::Object(map).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_is_a_flat_object_of_plain_values() {
        assert_eq!(
            checked_config(r#"{"use":"3","unitcost":0.15,"kw":false}"#).unwrap(),
            r#"{"use":"3","unitcost":0.15,"kw":false}"#
        );
        for (bad, message) in [
            ("[]", "Could not parse json"),
            ("nope", "Could not parse json"),
            (r#"{"a-b":1}"#, "Invalid config key"),
            (r#"{"a":{}}"#, "Config value cannot be object"),
            (r#"{"a":[1]}"#, "Config value cannot be array"),
            (r#"{"a":"<script>"}"#, "Invalid config value"),
        ] {
            match checked_config(bad) {
                Err(ApiError::Fail(m)) => assert_eq!(m, message, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(valid_name("My Electric: house_1"));
        assert!(!valid_name("x<y"));
        assert!(!valid_name(""));
    }
}
