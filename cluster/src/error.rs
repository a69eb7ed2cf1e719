//! What can go wrong in cluster membership and leases.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A setting that cannot work, named as in the configuration file.
    #[error("invalid configuration: `{key}` {reason}")]
    Setting { key: &'static str, reason: String },
    /// Postgres could not be reached or refused a statement.
    #[error("cluster Postgres ({what}): {source}")]
    Database {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// Another running process holds this node id.
    #[error(
        "invalid configuration: `cluster.node_id` \"{node_id}\" is in use by a running node (its heartbeat is {age:.1?} old); give this node another id, or stop the other"
    )]
    NodeIdInUse { node_id: String, age: Duration },
    /// This process's registration was taken over (it stalled past its heartbeat and another
    /// process joined with its id).
    #[error("node \"{0}\" was replaced in the cluster registry")]
    Replaced(String),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

impl ClusterError {
    pub(crate) fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { what, source }
    }

    /// Whether trying again later can help (the database was unreachable or busy, or the node
    /// id may free up), as opposed to a setting that must change.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Database { .. } | Self::NodeIdInUse { .. })
    }
}
