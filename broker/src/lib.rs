//! The embedded MQTT broker: rumqttd with per-user authentication and topic namespacing
//! (DESIGN.md §3).
//!
//! Not built yet; `ynni serve` logs that the MQTT port stays closed. The crate exists so the
//! workspace has its final shape and the dependency direction (broker → core) is fixed.
