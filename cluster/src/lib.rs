//! Several ynni nodes serving one set of users (DESIGN §5): which nodes are alive, which node
//! owns which of the 256 vshards, and the lease rules that keep a vshard from ever having two
//! owners at once. Everything shared lives in Postgres; nothing here is a consensus protocol
//! of its own.
//!
//! - [`placement`]: which vshard a user is in, and which live node should own a vshard
//!   (rendezvous hashing, so a node joining or leaving moves only the vshards it must).
//! - [`registry`]: nodes join with a heartbeat; a second process claiming a live node's id is
//!   refused.
//! - [`identity`]: the cluster's id in Postgres and in the shared directory, and the settings
//!   every node must share, checked before a node joins.
//! - [`lease`]: vshard leases with epochs and the local deadline that fences a node that can
//!   no longer renew (the argument is in that module's documentation).
//! - [`ownership`]: a node's vshards kept by ticking: heartbeat, placement, renewals,
//!   acquisitions, hand-overs.
//! - [`status`]: the `ynni cluster status` report.
//!
//! This crate decides ownership only. Serving is elsewhere: `ingest::shard` opens a worker
//! (with its log in the shared directory) for each vshard this node holds and fences it by the
//! lease's deadline, `web::forward` sends requests for other owners' accounts on to them, the
//! broker splices MQTT connections to the owner after CONNECT, and the binary's node loop
//! (`src/cluster_node.rs`) ties them to [`ownership`]'s ticks.

pub mod db;
pub mod error;
pub mod identity;
pub mod lease;
pub mod ownership;
pub mod placement;
pub mod registry;
pub mod status;

pub use error::ClusterError;

/// The number of vshards: users are spread over this many units of ownership
/// (`ynni_core::vshard::VSHARDS`).
pub const VSHARDS: u16 = 256;

// The cluster divides exactly the vshards the shard workers do.
const _: () = assert!(VSHARDS as u32 == ynni_core::vshard::VSHARDS);
