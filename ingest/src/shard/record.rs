//! What a shard logs for each accepted submission: the user and the decoded batches, as JSON
//! (small next to the fsync it waits for, and readable when debugging a log).

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
