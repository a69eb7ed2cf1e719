//! `ynni cluster status`: the nodes with their heartbeats, and which node holds which vshards
//! under which epochs, as Postgres has them.

use std::fmt::Write as _;

use sqlx::PgPool;

use crate::ClusterError;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NodeRow {
    pub node_id: String,
    pub advertise: String,
    /// Seconds since the last heartbeat, by the database's clock.
    pub heartbeat_age: f64,
    pub draining: bool,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LeaseRow {
    pub vshard: i32,
    pub owner: Option<String>,
    pub epoch: i64,
    /// Seconds until the lease expires (negative: expired), by the database's clock.
    pub expires_in: f64,
}

/// The cluster as Postgres sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub nodes: Vec<NodeRow>,
    pub leases: Vec<LeaseRow>,
}

pub async fn read(pool: &PgPool) -> Result<Status, ClusterError> {
    let nodes = sqlx::query_as(
        "SELECT node_id, advertise, \
         EXTRACT(EPOCH FROM clock_timestamp() - heartbeat)::float8 AS heartbeat_age, draining \
         FROM cluster_nodes ORDER BY node_id",
    )
    .fetch_all(pool)
    .await
    .map_err(ClusterError::db("reading the node registry"))?;
    let leases = sqlx::query_as(
        "SELECT vshard, owner, epoch, \
         EXTRACT(EPOCH FROM expires - clock_timestamp())::float8 AS expires_in \
         FROM vshard_leases ORDER BY vshard",
    )
    .fetch_all(pool)
    .await
    .map_err(ClusterError::db("reading the vshard leases"))?;
    Ok(Status { nodes, leases })
}

impl Status {
    /// A report for operators: one line per node with the vshards it holds, then the vshards
    /// nobody holds.
    pub fn report(&self, lease_s: f64) -> String {
        let mut out = String::new();
        let held = |node: &str| -> Vec<&LeaseRow> {
            self.leases
                .iter()
                .filter(|l| l.owner.as_deref() == Some(node) && l.expires_in > 0.0)
                .collect()
        };
        let _ = writeln!(out, "nodes: {}", self.nodes.len());
        for n in &self.nodes {
            let state = if n.draining {
                "draining"
            } else if n.heartbeat_age < lease_s {
                "alive"
            } else {
                "silent"
            };
            let leases = held(&n.node_id);
            let epochs = leases.iter().map(|l| l.epoch).max().unwrap_or(0);
            let _ = writeln!(
                out,
                "  {} at {}: {state}, heartbeat {:.1} s ago, {} vshards{}",
                n.node_id,
                n.advertise,
                n.heartbeat_age,
                leases.len(),
                if leases.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({}; highest epoch {epochs})",
                        ranges(&leases.iter().map(|l| l.vshard).collect::<Vec<_>>())
                    )
                }
            );
        }
        let free: Vec<i32> = self
            .leases
            .iter()
            .filter(|l| l.owner.is_none() || l.expires_in <= 0.0)
            .map(|l| l.vshard)
            .collect();
        let _ = writeln!(
            out,
            "vshards without a live lease: {}{}",
            free.len(),
            if free.is_empty() {
                String::new()
            } else {
                format!(" ({})", ranges(&free))
            }
        );
        out
    }
}

impl Status {
    /// Every vshard on a line of its own: its owner (`-` for none), lease epoch and seconds
    /// until the lease expires (negative: expired).
    pub fn vshard_table(&self) -> String {
        let mut out = String::from("vshard owner epoch expires_in_s\n");
        for l in &self.leases {
            let _ = writeln!(
                out,
                "{} {} {} {:.1}",
                l.vshard,
                l.owner.as_deref().unwrap_or("-"),
                l.epoch,
                l.expires_in
            );
        }
        out
    }
}

/// `0-3,7,9-10` for sorted numbers.
fn ranges(v: &[i32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// A vshard's owner, as the other nodes reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub vshard: u16,
    pub node_id: String,
    /// The owner's HTTP address (`cluster.advertise`).
    pub http: String,
    /// The owner's MQTT address (empty until its broker listens).
    pub mqtt: String,
}

/// Who owns each vshard now: every lease that has not expired by the database's clock.
/// Nodes forward requests by this; a stale answer costs a 503 and a retry, never a write by
/// the wrong node (the owner's fence decides that).
pub async fn owners(pool: &PgPool) -> Result<Vec<Owner>, ClusterError> {
    let rows: Vec<(i32, String, String, String)> = sqlx::query_as(
        "SELECT l.vshard, l.owner, n.advertise, n.mqtt FROM vshard_leases l \
         JOIN cluster_nodes n ON n.node_id = l.owner \
         WHERE l.expires > clock_timestamp()",
    )
    .fetch_all(pool)
    .await
    .map_err(ClusterError::db("reading the vshard owners"))?;
    Ok(rows
        .into_iter()
        .filter_map(|(v, node_id, http, mqtt)| {
            Some(Owner {
                vshard: u16::try_from(v).ok()?,
                node_id,
                http,
                mqtt,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vshard_lists_are_written_as_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3,7,9-10");
        assert_eq!(ranges(&[5]), "5");
        assert_eq!(ranges(&[]), "");
    }

    #[test]
    fn the_report_names_nodes_and_free_vshards() {
        let status = Status {
            nodes: vec![
                NodeRow {
                    node_id: "a".into(),
                    advertise: "10.0.0.1:8090".into(),
                    heartbeat_age: 0.5,
                    draining: false,
                },
                NodeRow {
                    node_id: "b".into(),
                    advertise: "10.0.0.2:8090".into(),
                    heartbeat_age: 30.0,
                    draining: false,
                },
            ],
            leases: vec![
                LeaseRow {
                    vshard: 0,
                    owner: Some("a".into()),
                    epoch: 3,
                    expires_in: 5.0,
                },
                LeaseRow {
                    vshard: 1,
                    owner: Some("a".into()),
                    epoch: 1,
                    expires_in: 5.0,
                },
                LeaseRow {
                    vshard: 2,
                    owner: Some("b".into()),
                    epoch: 2,
                    expires_in: -1.0,
                },
                LeaseRow {
                    vshard: 3,
                    owner: None,
                    epoch: 0,
                    expires_in: -9.0,
                },
            ],
        };
        let r = status.report(10.0);
        assert!(
            r.contains(
                "a at 10.0.0.1:8090: alive, heartbeat 0.5 s ago, 2 vshards (0-1; highest epoch 3)"
            ),
            "{r}"
        );
        assert!(
            r.contains("b at 10.0.0.2:8090: silent, heartbeat 30.0 s ago, 0 vshards\n"),
            "{r}"
        );
        assert!(r.contains("vshards without a live lease: 2 (2-3)"), "{r}");
        assert_eq!(
            status.vshard_table(),
            "vshard owner epoch expires_in_s\n0 a 3 5.0\n1 a 1 5.0\n2 b 2 -1.0\n3 - 0 -9.0\n"
        );
    }
}
