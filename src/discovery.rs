//! Home Assistant MQTT discovery: for an account that opted in, one retained sensor config per
//! feed on `homeassistant/sensor/ynni_<uuid>_<feedid>/config` (inside the account's namespace),
//! reading the feed's retained `ynni/feed/<id>` value. Published when switched on, when feeds
//! change, at start-up and whenever Home Assistant says `online`; withdrawn (empty retained
//! payload) for deleted feeds and when switched off.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use ynni_core::Catalog;
use ynni_core::catalog::FeedRow;
use ynni_ingest::shard::{FeedAnswer, FeedOp, Router};

/// Where a user's availability is published: `online` while ynni runs.
pub const STATUS_TOPIC: &str = "ynni/status";

/// One message to publish, retained, in a user's namespace.
pub struct Retained {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Home Assistant's device class and state class for a feed's unit: energy counters must be
/// `total_increasing` for the Energy dashboard.
pub fn classes(unit: &str) -> (Option<&'static str>, &'static str) {
    match unit.trim() {
        "W" | "kW" => (Some("power"), "measurement"),
        "Wh" | "kWh" | "MWh" => (Some("energy"), "total_increasing"),
        "V" => (Some("voltage"), "measurement"),
        "A" => (Some("current"), "measurement"),
        "°C" | "C" | "°F" => (Some("temperature"), "measurement"),
        "%" => (None, "measurement"),
        _ => (None, "measurement"),
    }
}

fn config_topic(uuid: &str, feed: i64) -> String {
    format!("homeassistant/sensor/ynni_{uuid}_{feed}/config")
}

fn config(uuid: &str, username: &str, feed: &FeedRow) -> Value {
    let (device_class, state_class) = classes(&feed.unit);
    let mut c = json!({
        "name": feed.name,
        "unique_id": format!("ynni_{uuid}_{}", feed.id),
        "state_topic": format!("ynni/feed/{}", feed.id),
        "value_template": "{{ value_json.value }}",
        "state_class": state_class,
        "availability_topic": STATUS_TOPIC,
        "device": {
            "identifiers": [format!("ynni_{uuid}")],
            "name": format!("ynni {username}"),
            "manufacturer": "ynni",
            "model": "emoncms-compatible energy monitor",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
    });
    if let Some(dc) = device_class {
        c["device_class"] = json!(dc);
    }
    if !feed.unit.trim().is_empty() {
        c["unit_of_measurement"] = json!(feed.unit.trim());
    }
    c
}

/// Builds a user's discovery messages; remembers which configs are out, to withdraw them.
#[derive(Default)]
pub struct Discovery {
    published: HashMap<i64, HashSet<i64>>,
}

impl Discovery {
    /// Everything to publish (retained) for `userid` now, in the user's namespace.
    pub async fn messages(
        &mut self,
        userid: i64,
        catalog: &Catalog,
        router: &Router,
    ) -> Result<(String, Vec<Retained>), ynni_core::CatalogError> {
        let Some(user) = catalog.user_by_id(userid).await? else {
            return Ok((String::new(), Vec::new()));
        };
        let enabled = catalog.ha_discovery(userid).await?;
        let feeds: Vec<FeedRow> = if enabled {
            catalog
                .feeds_for_user(userid)
                .await?
                .into_iter()
                // Virtual feeds publish no values.
                .filter(|f| f.engine != 7)
                .collect()
        } else {
            Vec::new()
        };
        let mut out = Vec::new();
        let current: HashSet<i64> = feeds.iter().map(|f| f.id).collect();
        let before = self.published.remove(&userid).unwrap_or_default();
        for gone in before.difference(&current) {
            out.push(Retained {
                topic: config_topic(&user.uuid, *gone),
                payload: Vec::new(),
            });
        }
        if !enabled {
            // Only what this process published needs withdrawing: the embedded broker keeps
            // retained messages in memory, so nothing survives a restart.
            return Ok((user.username, out));
        }
        out.push(Retained {
            topic: STATUS_TOPIC.into(),
            payload: b"online".to_vec(),
        });
        for f in &feeds {
            out.push(Retained {
                topic: config_topic(&user.uuid, f.id),
                payload: config(&user.uuid, &user.username, f)
                    .to_string()
                    .into_bytes(),
            });
            // The current value too, so Home Assistant has a state before the next update
            // (retained values do not survive a restart of the broker).
            if let Ok(FeedAnswer::Last(Some((time, value)))) =
                router.feed(userid, FeedOp::Last { id: f.id as u32 }).await
            {
                out.push(Retained {
                    topic: format!("ynni/feed/{}", f.id),
                    payload: json!({"time": time, "value": crate::mqtt_link::php_number(value)})
                        .to_string()
                        .into_bytes(),
                });
            }
        }
        self.published.insert(userid, current);
        Ok((user.username, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_feeds_suit_the_energy_dashboard() {
        assert_eq!(classes("kWh"), (Some("energy"), "total_increasing"));
        assert_eq!(classes("Wh"), (Some("energy"), "total_increasing"));
        assert_eq!(classes("W"), (Some("power"), "measurement"));
        assert_eq!(classes("°C"), (Some("temperature"), "measurement"));
        assert_eq!(classes("ppm"), (None, "measurement"));
    }

    #[test]
    fn a_sensor_config() {
        let feed = FeedRow {
            id: 7,
            userid: 1,
            name: "import".into(),
            tag: "meter".into(),
            public: false,
            engine: 5,
            unit: "kWh".into(),
            process_list: String::new(),
            size: 0,
        };
        let c = config("u-1", "alice", &feed);
        assert_eq!(c["unique_id"], "ynni_u-1_7");
        assert_eq!(c["state_topic"], "ynni/feed/7");
        assert_eq!(c["device_class"], "energy");
        assert_eq!(c["state_class"], "total_increasing");
        assert_eq!(c["unit_of_measurement"], "kWh");
        assert_eq!(c["device"]["identifiers"][0], "ynni_u-1");
        assert_eq!(
            config_topic("u-1", 7),
            "homeassistant/sensor/ynni_u-1_7/config"
        );
    }
}
