//! Home Assistant MQTT discovery: for an account that opted in, one retained sensor config per
//! feed on `homeassistant/sensor/ynni_<uuid>_<feedid>/config` (inside the account's namespace),
//! reading the feed's retained `ynni/feed/<id>` value. Published when switched on, when feeds
//! change, at start-up and whenever Home Assistant says `online`; withdrawn (empty retained
//! payload) for deleted feeds and when switched off.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::{feed_payload, feed_topic};

/// Where a user's availability is published: `online` while ynni runs.
pub const STATUS_TOPIC: &str = "ynni/status";

/// One message to publish, retained, in a user's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A feed as Home Assistant sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    pub feed: i64,
    pub name: String,
    pub unit: String,
    /// The feed's last update (time, value), when it has one.
    pub last: Option<(i64, Option<f64>)>,
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

/// Where a feed's sensor config is published.
pub fn config_topic(uuid: &str, feed: i64) -> String {
    format!("homeassistant/sensor/ynni_{uuid}_{feed}/config")
}

/// A feed's sensor config; the device is the account (`uuid`, named after `username`).
pub fn config(uuid: &str, username: &str, sensor: &Sensor) -> Value {
    let (device_class, state_class) = classes(&sensor.unit);
    let mut c = json!({
        "name": sensor.name,
        "unique_id": format!("ynni_{uuid}_{}", sensor.feed),
        "state_topic": feed_topic(sensor.feed),
        "value_template": "{{ value_json.value }}",
        "state_class": state_class,
        "availability_topic": STATUS_TOPIC,
        "device": {
            "identifiers": [format!("ynni_{uuid}")],
            "name": format!("ynni {username}"),
            "manufacturer": "ynni",
            "model": "emoncms-compatible energy monitor",
            // Every crate of the workspace carries ynni's version.
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
    });
    if let Some(dc) = device_class {
        c["device_class"] = json!(dc);
    }
    if !sensor.unit.trim().is_empty() {
        c["unit_of_measurement"] = json!(sensor.unit.trim());
    }
    c
}

/// Builds users' discovery messages; remembers which configs are out, to withdraw them.
#[derive(Debug, Default)]
pub struct Discovery {
    published: HashMap<i64, HashSet<i64>>,
}

impl Discovery {
    /// Everything to publish (retained) for `userid` now, in the user's namespace: the
    /// withdrawal of configs published before for feeds no longer shown, then, when the user
    /// has discovery on (`sensors` is `Some`), the availability and each sensor's config and
    /// current value.
    pub fn messages(
        &mut self,
        userid: i64,
        uuid: &str,
        username: &str,
        sensors: Option<&[Sensor]>,
    ) -> Vec<Retained> {
        let shown = sensors.unwrap_or_default();
        let current: HashSet<i64> = shown.iter().map(|s| s.feed).collect();
        let before = self.published.remove(&userid).unwrap_or_default();
        let mut out: Vec<Retained> = before
            .difference(&current)
            .map(|gone| Retained {
                topic: config_topic(uuid, *gone),
                payload: Vec::new(),
            })
            .collect();
        if sensors.is_none() {
            // Only what this process published needs withdrawing: the embedded broker keeps
            // retained messages in memory, so nothing survives a restart.
            return out;
        }
        out.push(Retained {
            topic: STATUS_TOPIC.into(),
            payload: b"online".to_vec(),
        });
        for s in shown {
            out.push(Retained {
                topic: config_topic(uuid, s.feed),
                payload: config(uuid, username, s).to_string().into_bytes(),
            });
            // The current value too, so Home Assistant has a state before the next update
            // (retained values do not survive a restart of the broker).
            if let Some((time, value)) = s.last {
                out.push(Retained {
                    topic: feed_topic(s.feed),
                    payload: feed_payload(time, value),
                });
            }
        }
        self.published.insert(userid, current);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(feed: i64, unit: &str, last: Option<(i64, Option<f64>)>) -> Sensor {
        Sensor {
            feed,
            name: format!("feed {feed}"),
            unit: unit.into(),
            last,
        }
    }

    fn topics(messages: &[Retained]) -> Vec<&str> {
        messages.iter().map(|m| m.topic.as_str()).collect()
    }

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
        let feed = Sensor {
            feed: 7,
            name: "import".into(),
            unit: "kWh".into(),
            last: None,
        };
        let c = config("u-1", "alice", &feed);
        assert_eq!(c["name"], "import");
        assert_eq!(c["unique_id"], "ynni_u-1_7");
        assert_eq!(c["state_topic"], "ynni/feed/7");
        assert_eq!(c["value_template"], "{{ value_json.value }}");
        assert_eq!(c["availability_topic"], STATUS_TOPIC);
        assert_eq!(c["device_class"], "energy");
        assert_eq!(c["state_class"], "total_increasing");
        assert_eq!(c["unit_of_measurement"], "kWh");
        assert_eq!(c["device"]["identifiers"][0], "ynni_u-1");
        assert_eq!(c["device"]["name"], "ynni alice");
        assert_eq!(
            config_topic("u-1", 7),
            "homeassistant/sensor/ynni_u-1_7/config"
        );
    }

    #[test]
    fn a_feed_without_unit_has_no_unit_or_device_class() {
        let c = config("u-1", "alice", &sensor(8, " ", None));
        assert_eq!(c["state_class"], "measurement");
        assert!(c.get("device_class").is_none(), "{c}");
        assert!(c.get("unit_of_measurement").is_none(), "{c}");
    }

    #[test]
    fn switched_on_publishes_status_configs_and_values() {
        let mut d = Discovery::default();
        let sensors = [
            sensor(7, "kWh", Some((1_700_000_000, Some(12.0)))),
            sensor(8, "W", None),
        ];
        let out = d.messages(1, "u-1", "alice", Some(&sensors[..]));
        assert_eq!(
            topics(&out),
            [
                STATUS_TOPIC,
                "homeassistant/sensor/ynni_u-1_7/config",
                "ynni/feed/7",
                "homeassistant/sensor/ynni_u-1_8/config",
            ]
        );
        assert_eq!(out[0].payload, b"online");
        assert_eq!(out[2].payload, br#"{"time":1700000000,"value":12}"#);
        let config: Value = serde_json::from_slice(&out[1].payload).expect("JSON");
        assert_eq!(config["unit_of_measurement"], "kWh");
    }

    #[test]
    fn deleted_feeds_and_switching_off_withdraw_the_configs() {
        let mut d = Discovery::default();
        let both = [sensor(7, "kWh", None), sensor(8, "W", None)];
        d.messages(1, "u-1", "alice", Some(&both[..]));
        let out = d.messages(1, "u-1", "alice", Some(&both[..1]));
        assert_eq!(
            out[0],
            Retained {
                topic: "homeassistant/sensor/ynni_u-1_8/config".into(),
                payload: Vec::new(),
            }
        );
        assert_eq!(
            topics(&out[1..]),
            [STATUS_TOPIC, "homeassistant/sensor/ynni_u-1_7/config"]
        );
        let off = d.messages(1, "u-1", "alice", None);
        assert_eq!(
            off,
            [Retained {
                topic: "homeassistant/sensor/ynni_u-1_7/config".into(),
                payload: Vec::new(),
            }]
        );
        assert!(
            d.messages(1, "u-1", "alice", None).is_empty(),
            "nothing left to withdraw"
        );
    }

    #[test]
    fn users_are_kept_apart() {
        let mut d = Discovery::default();
        d.messages(1, "u-1", "alice", Some(&[sensor(7, "W", None)][..]));
        let other = d.messages(2, "u-2", "bob", None);
        assert!(other.is_empty(), "bob published nothing");
    }
}
