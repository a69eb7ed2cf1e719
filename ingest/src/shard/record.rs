//! What a shard logs for each accepted submission: the user and the decoded batches, or points
//! written straight to one feed (`feed/insert`), as JSON (small next to the fsync it waits for,
//! and readable when debugging a log).
//!
//! Encoding then decoding a record gives it back exactly, which replay after a crash relies on:
//! values are finite or missing (a record is normalised when built: JSON has no infinity and
//! would write `null` for it), and floats are parsed back to the same bits (serde_json's
//! `float_roundtrip`, enabled in this crate's manifest).

use serde::{Deserialize, Serialize};

use crate::batch::{Decoded, Value, finite};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedBatch {
    pub time: i64,
    pub node: String,
    pub values: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub userid: i64,
    /// Whether the submission came over HTTP (both are held to the same limits).
    pub http: bool,
    pub batches: Vec<LoggedBatch>,
    /// Points for one feed (`feed/insert|post|update`); absent in input records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<FeedWrite>,
    /// When it was accepted (unix seconds): usage counts on this UTC day, however old the
    /// data. 0 in records logged before it was kept (their data's time is used).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub received: i64,
}

fn is_zero(t: &i64) -> bool {
    *t == 0
}

/// Points written to one feed by its owner, and how they move the feed's last value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedWrite {
    pub feed: u32,
    /// (time, value) in the order the client sent them.
    pub points: Vec<(i64, Value)>,
    /// The request time: a single point sets the last value to (now, value) whatever its time,
    /// as emoncms does; several points move it only when the last one is not older than it.
    pub now: i64,
    pub single: bool,
    /// Existing points written again (`feed/scalerange`): stored as any write, but not
    /// counted as values received, which a hosted service bills.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rewrite: bool,
    /// A fixed-interval feed's start time when it is empty before this write, exactly (not
    /// aligned to the interval): a feed synced or uploaded from an emoncms feed that was
    /// trimmed there, whose start is anywhere in a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u32>,
}

impl Record {
    pub fn new(userid: i64, http: bool, batches: &[Decoded]) -> Self {
        Self {
            userid,
            http,
            batches: batches
                .iter()
                .map(|b| LoggedBatch {
                    time: b.time,
                    node: b.node.clone(),
                    values: b
                        .values
                        .iter()
                        .map(|(name, v)| (name.clone(), finite(*v)))
                        .collect(),
                })
                .collect(),
            feed: None,
            received: 0,
        }
    }

    /// The same record, stamped with the time it was accepted.
    pub fn received_at(mut self, unix: i64) -> Self {
        self.received = unix;
        self
    }

    /// The UTC day (days since 1970-01-01) its usage counts on.
    pub fn usage_day(&self) -> i64 {
        let t = if self.received > 0 {
            self.received
        } else if let Some(b) = self.batches.first() {
            b.time
        } else {
            self.feed.as_ref().map_or(0, |f| f.now)
        };
        t.div_euclid(86_400)
    }

    /// Values received and points written straight to a feed.
    pub fn values(&self) -> i64 {
        let values: usize = self.batches.iter().map(|b| b.values.len()).sum();
        let written = self
            .feed
            .as_ref()
            .filter(|f| !f.rewrite)
            .map_or(0, |f| f.points.len());
        (values + written) as i64
    }

    pub fn feed_write(userid: i64, mut write: FeedWrite) -> Self {
        for point in &mut write.points {
            point.1 = finite(point.1);
        }
        Self {
            userid,
            http: true,
            batches: Vec::new(),
            feed: Some(write),
            received: 0,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_records_logged_before_feed_writes_still_decode() {
        let old =
            br#"{"userid":3,"http":true,"batches":[{"time":5,"node":"n","values":[["a",1.0]]}]}"#;
        let r = Record::decode(old).expect("decodes");
        assert_eq!(r.feed, None);
        assert_eq!(r.batches[0].values, vec![("a".to_string(), Some(1.0))]);
    }

    /// A small deterministic generator (splitmix64), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn value(&mut self) -> Value {
            const EDGES: [f64; 16] = [
                0.0,
                -0.0,
                0.1,
                -1.5,
                1e308,
                -1e308,
                f64::MAX,
                f64::MIN,
                f64::MIN_POSITIVE,
                5e-324,
                f64::EPSILON,
                9_007_199_254_740_992.0,
                0.30000000000000004,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
            ];
            match self.next_u64() % 4 {
                0 => None,
                1 => Some(EDGES[(self.next_u64() % 16) as usize]),
                // Any bit pattern: infinities, NaNs with payloads, subnormals.
                2 => Some(f64::from_bits(self.next_u64())),
                _ => Some((self.next_u64() % 2_000_000) as f64 / 7.0 - 100_000.0),
            }
        }
    }

    #[test]
    fn encoding_then_decoding_gives_the_record_back_for_any_value() {
        let mut rng = Rng(11);
        for round in 0..2000 {
            let batches: Vec<Decoded> = (0..1 + rng.next_u64() % 3)
                .map(|b| Decoded {
                    time: 1_700_000_000 + (rng.next_u64() % 1000) as i64,
                    node: format!("n{b}"),
                    values: (0..rng.next_u64() % 6)
                        .map(|i| (format!("v{i}"), rng.value()))
                        .collect(),
                })
                .collect();
            let record = Record::new(7, round % 2 == 0, &batches);
            for (b, logged) in batches.iter().zip(&record.batches) {
                for ((_, raw), (_, kept)) in b.values.iter().zip(&logged.values) {
                    assert_eq!(
                        kept.map(f64::to_bits),
                        finite(*raw).map(f64::to_bits),
                        "finite values are kept bit for bit, others are missing"
                    );
                }
            }
            let back = Record::decode(&record.encode()).expect("decodes");
            let bits = |r: &Record| -> Vec<Vec<Option<u64>>> {
                r.batches
                    .iter()
                    .map(|b| b.values.iter().map(|(_, v)| v.map(f64::to_bits)).collect())
                    .collect()
            };
            assert_eq!(bits(&back), bits(&record), "round {round}");
            assert_eq!(back, record, "round {round}");

            let write = FeedWrite {
                feed: 3,
                points: (0..rng.next_u64() % 5)
                    .map(|i| (i as i64, rng.value()))
                    .collect(),
                now: 9,
                single: false,
                rewrite: round % 3 == 0,
                start: None,
            };
            let r = Record::feed_write(7, write);
            let back = Record::decode(&r.encode()).expect("decodes");
            let points = |r: &Record| -> Vec<Option<u64>> {
                r.feed
                    .as_ref()
                    .map(|w| w.points.iter().map(|p| p.1.map(f64::to_bits)).collect())
                    .unwrap_or_default()
            };
            assert_eq!(points(&back), points(&r), "round {round}");
        }
    }

    #[test]
    fn feed_write_round_trips() {
        let w = FeedWrite {
            feed: 7,
            points: vec![(10, Some(1.5)), (20, None)],
            now: 99,
            single: false,
            rewrite: false,
            start: None,
        };
        let r = Record::feed_write(2, w);
        assert_eq!(r.values(), 2);
        assert_eq!(Record::decode(&r.encode()), Some(r));
    }

    /// A rewrite of existing points (a rescale) is stored like any write but counts no values
    /// received; a record logged before the flag existed reads as a new write.
    #[test]
    fn rewritten_points_are_not_values_received() {
        let w = FeedWrite {
            feed: 7,
            points: vec![(10, Some(1.5)), (20, None)],
            now: 99,
            single: false,
            rewrite: true,
            start: None,
        };
        let r = Record::feed_write(2, w);
        assert_eq!(r.values(), 0);
        assert_eq!(Record::decode(&r.encode()), Some(r));
        let old = br#"{"userid":2,"http":true,"batches":[],"feed":{"feed":7,"points":[[10,1.5]],"now":99,"single":false},"received":0}"#;
        let r = Record::decode(old).expect("decodes");
        assert_eq!((r.values(), r.feed.map(|f| f.rewrite)), (1, Some(false)));
    }
}
