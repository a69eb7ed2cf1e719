//! A shard's state that must survive a crash: input last values, feed last updates and the
//! stateful processes' memory. It is stored in every checkpoint and rebuilt by replaying the
//! WAL after it.
//!
//! Decoding an encoded state gives it back exactly: its values are finite or missing (the
//! shard stores nothing else, see [`crate::batch::Value`]) and JSON floats are read back to the
//! same bits (`float_roundtrip`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use ynni_core::catalog::Handled;

use crate::batch::Value;
use crate::process::StateKind;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardState {
    /// Input id → (time, value) of its last value.
    pub input_last: HashMap<i64, (i64, Value)>,
    /// Input id → the newest (time, value) it has been given. The last value is whatever arrived last
    /// (emoncms's rule, even when older); this remembers how far processing has gone, so a
    /// resent buffer does not run accumulators twice.
    pub input_newest: HashMap<i64, (i64, Value)>,
    /// Feed id → (update time, value), emoncms's feed "last value".
    pub feed_last: HashMap<u32, (i64, Value)>,
    /// Feed id → the last value a process list read from the feed's file (none if the file
    /// had none), for feeds without a `feed_last`: read once and kept, so that a replay reads
    /// it from here and not from a file a flush cut short by a crash may have moved ahead.
    pub feed_seed: HashMap<u32, Option<(i64, Value)>>,
    pub process: HashMap<(StateKind, u32), (i64, Value)>,
    /// (user id, UTC day as days since 1970-01-01) → what the shard handled for the user that
    /// day, written to the catalog as totals and dropped once the day is two days old.
    pub usage: BTreeMap<(i64, i64), Handled>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    input_last: HashMap<i64, (i64, Value)>,
    #[serde(default)]
    input_newest: HashMap<i64, (i64, Value)>,
    feed_last: HashMap<u32, (i64, Value)>,
    #[serde(default)]
    feed_seed: HashMap<u32, Option<(i64, Value)>>,
    process: Vec<(StateKind, u32, i64, Value)>,
    /// (user, day, HTTP values, MQTT values, points written)
    #[serde(default)]
    usage: Vec<(i64, i64, i64, i64, i64)>,
}

impl ShardState {
    /// The state as checkpointed; an empty state is no bytes at all (as a store without a
    /// checkpoint has), so an idle, empty shard never needs a checkpoint written.
    pub fn encode(&self) -> Vec<u8> {
        if self.input_last.is_empty()
            && self.input_newest.is_empty()
            && self.feed_last.is_empty()
            && self.feed_seed.is_empty()
            && self.process.is_empty()
            && self.usage.is_empty()
        {
            return Vec::new();
        }
        let stored = Stored {
            input_last: self.input_last.clone(),
            input_newest: self.input_newest.clone(),
            feed_last: self.feed_last.clone(),
            feed_seed: self.feed_seed.clone(),
            process: self
                .process
                .iter()
                .map(|(&(k, f), &(t, v))| (k, f, t, v))
                .collect(),
            usage: self
                .usage
                .iter()
                .map(|(&(u, d), h)| (u, d, h.http_values, h.mqtt_values, h.points))
                .collect(),
        };
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let s: Stored = serde_json::from_slice(bytes)?;
        Ok(Self {
            input_last: s.input_last,
            input_newest: s.input_newest,
            feed_last: s.feed_last,
            feed_seed: s.feed_seed,
            process: s
                .process
                .into_iter()
                .map(|(k, f, t, v)| ((k, f), (t, v)))
                .collect(),
            usage: s
                .usage
                .into_iter()
                .map(|(u, d, http_values, mqtt_values, points)| {
                    let h = Handled {
                        http_values,
                        mqtt_values,
                        points,
                    };
                    ((u, d), h)
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut s = ShardState::default();
        s.input_last.insert(3, (100, Some(1.5)));
        s.input_last.insert(4, (100, None));
        s.input_newest.insert(3, (120, Some(2.5)));
        s.feed_last.insert(7, (90, Some(2.0)));
        s.feed_seed.insert(8, Some((70, Some(3.0))));
        s.feed_seed.insert(9, Some((60, None)));
        s.feed_seed.insert(10, None);
        s.process
            .insert((StateKind::WhAccumulator, 7), (80, Some(10.0)));
        s.usage.insert(
            (3, 20_000),
            Handled {
                http_values: 1,
                mqtt_values: 2,
                points: 3,
            },
        );
        assert_eq!(ShardState::decode(&s.encode()).expect("decode"), s);
        assert_eq!(
            ShardState::decode(&[]).expect("empty"),
            ShardState::default()
        );
    }

    #[test]
    fn finite_values_come_back_bit_for_bit() {
        let values = [
            0.1,
            -0.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            0.30000000000000004,
            1.0 / 3.0,
            -1e308,
        ];
        let mut s = ShardState::default();
        for (i, &v) in values.iter().enumerate() {
            s.input_last.insert(i as i64, (i as i64, Some(v)));
            s.process
                .insert((StateKind::KwhAccumulator, i as u32), (0, Some(v)));
        }
        let back = ShardState::decode(&s.encode()).expect("decode");
        for (i, &v) in values.iter().enumerate() {
            let got = back.input_last[&(i as i64)].1.map(f64::to_bits);
            assert_eq!(got, Some(v.to_bits()), "{v:e}");
            let got = back.process[&(StateKind::KwhAccumulator, i as u32)]
                .1
                .map(f64::to_bits);
            assert_eq!(got, Some(v.to_bits()), "{v:e}");
        }
    }
}
