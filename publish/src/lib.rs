//! What ynni publishes over MQTT, built from the data alone: process lists' `publish_to_mqtt`
//! values and input updates in emoncms's forms, each feed's latest value on `ynni/feed/<id>`,
//! and Home Assistant discovery ([`discovery`]). The server only sends what these build, so
//! every topic and payload is checked here without a broker.

pub mod discovery;

use ynni_ingest::number::php_json;
use ynni_ingest::shard::Output;

/// One message for a user's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub userid: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    /// Kept by the broker for later subscribers: feed values are (a dashboard that connects
    /// gets the state at once); live values are not, as emoncms publishes them.
    pub retained: bool,
}

/// Where a feed's latest value is published, retained, for Home Assistant and Node-RED.
pub fn feed_topic(feed: i64) -> String {
    format!("ynni/feed/{feed}")
}

/// A feed's latest value on [`feed_topic`]: `{"time":…,"value":…}`, the value as emoncms's
/// JSON prints it.
pub fn feed_payload(time: i64, value: Option<f64>) -> Vec<u8> {
    serde_json::json!({"time": time, "value": php_json(value)})
        .to_string()
        .into_bytes()
}

/// A value as emoncms's `publish_to_mqtt` sends it: the bare number, `null` when missing.
pub fn raw_payload(value: Option<f64>) -> Vec<u8> {
    value
        .map_or_else(|| "null".to_string(), |v| v.to_string())
        .into_bytes()
}

/// Where an input's update is republished: `<base>/<node>/<name>` (`mqtt.input_topic`).
pub fn input_topic(base: &str, node: &str, name: &str) -> String {
    format!("{base}/{node}/{name}")
}

/// What a shard output becomes on MQTT. Input updates are taken from the shards only when
/// `mqtt.input_topic` is set (they come on a channel of their own, `Router::subscribe_inputs`);
/// with an empty `input_base` one is `None`.
pub fn output(out: Output, input_base: &str) -> Option<Message> {
    Some(match out {
        Output::Published {
            userid,
            topic,
            value,
        } => Message {
            userid,
            topic,
            payload: raw_payload(value),
            retained: false,
        },
        Output::Input {
            userid,
            node,
            name,
            value,
            ..
        } => {
            if input_base.is_empty() {
                return None;
            }
            Message {
                userid,
                topic: input_topic(input_base, &node, &name),
                payload: raw_payload(value),
                retained: false,
            }
        }
        Output::Feed {
            userid,
            feed,
            time,
            value,
        } => Message {
            userid,
            topic: feed_topic(i64::from(feed)),
            payload: feed_payload(time, value),
            retained: true,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(payload: &[u8]) -> &str {
        std::str::from_utf8(payload).unwrap_or("<not UTF-8>")
    }

    #[test]
    fn published_values_are_bare_numbers() {
        let m = output(
            Output::Published {
                userid: 3,
                topic: "house/power".into(),
                value: Some(10.0),
            },
            "",
        );
        assert_eq!(
            m,
            Some(Message {
                userid: 3,
                topic: "house/power".into(),
                payload: b"10".to_vec(),
                retained: false,
            })
        );
        assert_eq!(text(&raw_payload(Some(-3.25))), "-3.25");
        assert_eq!(text(&raw_payload(None)), "null");
    }

    #[test]
    fn input_updates_go_out_only_under_an_input_topic() {
        let input = || Output::Input {
            userid: 3,
            node: "emontx".into(),
            name: "P1".into(),
            time: 1_700_000_000,
            value: Some(240.5),
        };
        assert_eq!(output(input(), ""), None);
        let m = output(input(), "emon/inputs").expect("a message");
        assert_eq!(m.topic, "emon/inputs/emontx/P1");
        assert_eq!(text(&m.payload), "240.5");
        assert!(!m.retained);
    }

    #[test]
    fn feed_values_are_retained_json() {
        let m = output(
            Output::Feed {
                userid: 3,
                feed: 7,
                time: 1_700_000_000,
                value: Some(102.0),
            },
            "",
        )
        .expect("a message");
        assert_eq!(m.topic, "ynni/feed/7");
        assert_eq!(text(&m.payload), r#"{"time":1700000000,"value":102}"#);
        assert!(m.retained);
        assert_eq!(
            text(&feed_payload(5, Some(0.25))),
            r#"{"time":5,"value":0.25}"#
        );
        assert_eq!(text(&feed_payload(5, None)), r#"{"time":5,"value":null}"#);
    }
}
