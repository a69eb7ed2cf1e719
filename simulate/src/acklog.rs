//! `--acked FILE`: one JSON line per reading the server acknowledged (an HTTP `ok`, an MQTT
//! PUBACK or PUBCOMP), `{"username", "node", "time", "values"}`, for a test or an operator to
//! check against what is stored.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::SimulateError;

/// `--acked FILE`: one JSON line per acknowledged reading.
pub struct AckLog {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
}

impl AckLog {
    pub fn create(path: &Path) -> Result<Self, SimulateError> {
        let file = File::create(path).map_err(|source| SimulateError::AckLog {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(BufWriter::new(file)),
        })
    }

    pub fn record(&self, username: &str, node: &str, time: i64, values: &str) {
        let line = serde_json::json!({
            "username": username,
            "node": node,
            "time": time,
            "values": serde_json::from_str::<serde_json::Value>(values).unwrap_or_default(),
        });
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // A failed write shows when the log is flushed at the end.
        let _ = writeln!(f, "{line}");
    }

    pub fn finish(&self) -> Result<(), SimulateError> {
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush()
            .map_err(|source| SimulateError::AckLog {
                path: self.path.clone(),
                source,
            })
    }
}
