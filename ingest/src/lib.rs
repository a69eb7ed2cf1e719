//! Ingest: decoders that turn MQTT messages and HTTP posts into input batches, the shard
//! router, the per-shard workers and the process-list engine (see DESIGN.md §1).
//!
//! Decoders ([`decode`]) for every emoncms input form, the process-list engine ([`process`]),
//! and the shard router and workers ([`shard`]).

pub mod batch;
pub mod decode;
pub mod process;
pub mod shard;

pub use batch::{Decoded, Value};
