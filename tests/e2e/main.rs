//! End-to-end tests: the real `ynni` binary, started on free ports with a temporary data
//! directory, driven by real clients.

// Tests and benchmarks stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apps;
mod authz;
mod backup;
mod bad_input;
mod billing;
mod browser;
mod cluster;
mod cluster_serving;
mod cluster_soak;
mod cluster_splice;
mod compat;
mod compat_feeds;
mod compat_inputs;
mod crash_kill9;
mod devices;
mod export;
mod external_broker;
mod feed_writes;
mod feeds;
mod firmware_examples;
mod harness;
mod http_basics;
mod https;
mod import;
mod inputs;
mod mariadb;
mod mqtt;
mod mqtt_tenancy;
mod operations;
// The throwaway PostgreSQL the cluster crate's own tests use.
#[path = "../../cluster/tests/postgres/mod.rs"]
mod postgres;
mod redis;
mod server_cli;
mod simulate;
mod user_accounts;
mod user_sessions;
mod web_ui;
