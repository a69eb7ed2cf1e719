//! Ingest: decoders that turn MQTT messages and HTTP posts into input batches, the shard
//! router, the per-shard workers and the process-list engine (see DESIGN.md §1).
//!
//! Built so far: the decoders ([`decode`]) for every emoncms input form. The router, workers
//! and process lists come next in the ingest issue.

pub mod batch;
pub mod decode;

pub use batch::{Decoded, Value};
