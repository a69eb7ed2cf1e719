//! Shards: `vshard = hash(userid) % V`, each vshard served by one of N worker threads (on one
//! node), or in a cluster by a worker of its own, with its own log, run by one of N host
//! threads that each serve many vshards (`host`). A worker is the only writer of its users'
//! inputs, process state and feed files (DESIGN §1).
//!
//! Per submission, in order: log it in the shard's WAL and wait until it is durable; create
//! missing inputs; set last values; run the process lists of inputs that already existed,
//! after all the batch's last values are set, as emoncms does; then answer the caller.

mod fence;
#[cfg(test)]
mod fuzz;
mod gather;
mod host;
mod record;
mod router;
mod state;
mod worker;

pub use crate::batch::MAX_VALUES_PER_REQUEST;
pub use fence::Fence;
pub use record::FeedWrite;
pub use router::{
    DEFAULT_MAX_NODES, IngestError, LastValues, Limits, MAX_INPUTS_PER_NODE,
    MAX_NEW_INPUTS_PER_REQUEST, Output, Outputs, Pending, Refused, Router, RouterConfig,
    Submission, next_output,
};
pub use state::ShardState;
pub use worker::{FeedAnswer, FeedMeta, FeedOp, Seed, ShardStatus};
