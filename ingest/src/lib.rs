//! Ingest: decoders that turn MQTT messages and HTTP posts into input batches, the shard
//! router, the per-shard workers and the process-list engine (see DESIGN.md §1).
//!
//! Built so far: the decoders ([`decode`]) for every emoncms input form and the process-list
//! engine ([`process`]). The router and the shard workers come next in the ingest issue.

pub mod batch;
pub mod decode;
pub mod process;

pub use batch::{Decoded, Value};
