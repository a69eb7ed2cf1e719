//! Ingest: decoders that turn MQTT messages and HTTP posts into input batches, the shard
//! router, the per-shard workers and the process-list engine (see DESIGN.md §1).
//!
//! Nothing is built here yet; the crate exists so the workspace has its final shape and
//! dependency direction (ingest → storage → core).
