//! What a shard logs for each accepted submission: the user and the decoded batches, or points
//! written straight to one feed (`feed/insert`), as JSON (small next to the fsync it waits for,
//! and readable when debugging a log).

use serde::{Deserialize, Serialize};

use crate::batch::{Decoded, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedBatch {
    pub time: i64,
    pub node: String,
    pub values: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub userid: i64,
    /// Over HTTP emoncms limits the number of nodes per user; over MQTT it does not.
    pub http: bool,
    pub batches: Vec<LoggedBatch>,
    /// Points for one feed (`feed/insert|post|update`); absent in input records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<FeedWrite>,
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
                    values: b.values.clone(),
                })
                .collect(),
            feed: None,
        }
    }

    pub fn feed_write(userid: i64, write: FeedWrite) -> Self {
        Self {
            userid,
            http: true,
            batches: Vec::new(),
            feed: Some(write),
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

    #[test]
    fn feed_write_round_trips() {
        let w = FeedWrite {
            feed: 7,
            points: vec![(10, Some(1.5)), (20, None)],
            now: 99,
            single: false,
        };
        let r = Record::feed_write(2, w);
        assert_eq!(Record::decode(&r.encode()), Some(r));
    }
}
