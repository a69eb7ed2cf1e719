//! The cluster's identity, and the settings every node must share, checked when a node joins.
//!
//! A node's `cluster.shared_dir` must be the directory the other nodes use: a shared
//! filesystem that failed to mount leaves an empty mount point, which is a writable
//! directory, and a node on it would take vshards and serve their users from nothing (their
//! logs and feeds are elsewhere), acknowledging writes that the next owner never sees. So the
//! cluster has an id, kept in Postgres (`cluster_meta`) and in the shared directory
//! ([`MARKER`]), made by the first node that starts with neither; a node finding another id,
//! or none where Postgres says the cluster already exists, stops with a message naming the
//! setting.
//!
//! `cluster.secret` and `cluster.lease_ms` must be the same on every node: a node with
//! another secret cannot accept its peers' batches (they are refused, so their users' posts
//! fail), and one with another lease judges the others' liveness by the wrong length. They
//! are kept beside the id (the secret as a digest) and a node with others is refused while
//! any other node is live; with none live, the first node to start sets them (that is how
//! an operator changes them for the whole cluster).

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::ClusterError;

/// The file in the shared directory that holds the cluster's id.
pub const MARKER: &str = ".ynni-cluster";

/// How long a node waits for the marker of a cluster another node has just made (both
/// started at once on a fresh cluster).
const MARKER_WAIT: Duration = Duration::from_secs(10);
/// A cluster younger than this may still be writing its marker.
const YOUNG: f64 = 60.0;

/// Checks (or, on a fresh cluster, makes) the cluster's identity and shared settings for a
/// node with `secret` and `lease` and the shared directory `dir`.
pub async fn check(
    pool: &PgPool,
    dir: &Path,
    secret: &str,
    lease: Duration,
    node_id: &str,
) -> Result<String, ClusterError> {
    let digest = hex::encode(Sha256::digest(format!("ynni-cluster-secret\0{secret}")));
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let fresh_id = crate::registry::random_token()?;
    let inserted = sqlx::query(
        "INSERT INTO cluster_meta (cluster_id, secret_digest, lease_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(&fresh_id)
    .bind(&digest)
    .bind(lease_ms)
    .execute(pool)
    .await
    .map_err(ClusterError::db("recording the cluster's identity"))?
    .rows_affected()
        == 1;
    let (id, their_digest, their_lease, age): (String, String, i64, f64) = sqlx::query_as(
        "SELECT cluster_id, secret_digest, lease_ms, \
         EXTRACT(EPOCH FROM clock_timestamp() - created)::float8 FROM cluster_meta",
    )
    .fetch_one(pool)
    .await
    .map_err(ClusterError::db("reading the cluster's identity"))?;
    if their_digest != digest || their_lease != lease_ms {
        // Judged by the longer of the two leases: the running nodes beat a third of theirs
        // apart, and a node with a shorter one would see them dead between beats. A live
        // process with this node's own id counts too (its duplicate, or this node's previous
        // run, which stops beating within a lease of a crash).
        let window = lease.max(Duration::from_millis(
            u64::try_from(their_lease).unwrap_or(0),
        ));
        if any_live(pool, window).await? {
            return Err(if their_digest != digest {
                ClusterError::Setting {
                    key: "cluster.secret",
                    reason: "differs from the running nodes' (every node needs the same)".into(),
                }
            } else {
                ClusterError::Setting {
                    key: "cluster.lease_ms",
                    reason: format!(
                        "is {lease_ms}, the running nodes' is {their_lease} (every node needs \
                         the same; a node counts as running, {node_id} too, for {:.0} s after \
                         its last heartbeat)",
                        window.as_secs_f64()
                    ),
                }
            });
        }
        sqlx::query("UPDATE cluster_meta SET secret_digest = $1, lease_ms = $2")
            .bind(&digest)
            .bind(lease_ms)
            .execute(pool)
            .await
            .map_err(ClusterError::db("recording the cluster's settings"))?;
        tracing::info!(
            "no other node is running: the cluster's secret and lease are now this node's"
        );
    }
    // A cluster that never served (no vshard was ever taken) has no data a wrong directory
    // could hide: its marker may be written wherever it is missing (the node that made the
    // cluster stopped before it wrote it).
    let served: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM vshard_leases WHERE epoch > 0)")
            .fetch_one(pool)
            .await
            .map_err(ClusterError::db("reading the vshard leases"))?;
    // This node made the identity of a cluster that has served: one from before identities
    // (upgraded). Its directory must already hold the cluster's files, or it may be an
    // empty mount point the marker would wrongly bless.
    let made = !served || (inserted && holds_files(dir)?);
    if let Err(e) = check_marker(dir, &id, inserted || age < YOUNG, made).await {
        if inserted {
            // Not an identity until a marker carries it: the next start (on the right
            // directory) makes it afresh instead of waiting for a marker nobody writes.
            let _ = sqlx::query("DELETE FROM cluster_meta WHERE cluster_id = $1")
                .bind(&id)
                .execute(pool)
                .await;
        }
        return Err(e);
    }
    Ok(id)
}

/// Whether `dir` holds anything but a marker (or a marker's temporary file).
fn holds_files(dir: &Path) -> Result<bool, ClusterError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ClusterError::Setting {
        key: "cluster.shared_dir",
        reason: format!("{}: {e}", dir.display()),
    })?;
    Ok(entries
        .filter_map(|e| e.ok())
        .any(|e| !e.file_name().to_string_lossy().starts_with(MARKER)))
}

/// Whether any node has a heartbeat within `window`.
async fn any_live(pool: &PgPool, window: Duration) -> Result<bool, ClusterError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM cluster_nodes \
         WHERE heartbeat > clock_timestamp() - make_interval(secs => $1)",
    )
    .bind(window.as_secs_f64())
    .fetch_one(pool)
    .await
    .map_err(ClusterError::db("reading the node registry"))?;
    Ok(n > 0)
}

/// Checks the shared directory's marker against the cluster's `id`; writes it when it may
/// (`made`: this node made the cluster, or the cluster never served), and waits a while for
/// it when the cluster is `young`.
async fn check_marker(dir: &Path, id: &str, young: bool, made: bool) -> Result<(), ClusterError> {
    let path = dir.join(MARKER);
    let bad = |reason: String| ClusterError::Setting {
        key: "cluster.shared_dir",
        reason,
    };
    let give_up = tokio::time::Instant::now() + MARKER_WAIT;
    loop {
        match std::fs::read_to_string(&path) {
            Ok(found) if found.trim() == id => return Ok(()),
            // Made by a build that wrote it in place, and cut short by a crash: as missing.
            Ok(found) if found.trim().is_empty() => {
                if made {
                    let _ = std::fs::remove_file(&path);
                }
            }
            Ok(found) => {
                return Err(bad(format!(
                    "{} belongs to another cluster (its id is {}, the database's {id})",
                    dir.display(),
                    found.trim()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bad(format!("{}: {e}", path.display()))),
        }
        if made {
            write_marker(&path, id).map_err(|e| bad(format!("{}: {e}", path.display())))?;
            continue;
        }
        if !young || tokio::time::Instant::now() >= give_up {
            return Err(bad(format!(
                "{} is not the directory the other nodes share (it lacks the cluster's {MARKER}): is the shared filesystem mounted? (If it is the right directory and the marker was lost, write the id {id} into {MARKER} there.)",
                dir.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes the marker as a whole new file: written and synced under a temporary name, then
/// linked to its name, which fails if a racing writer's is there (kept, then compared), so
/// no reader sees it part written.
fn write_marker(path: &Path, id: &str) -> std::io::Result<()> {
    use std::io::Write;
    // Unique among the nodes sharing the directory, whose process ids may be equal.
    let unique = crate::registry::random_token().unwrap_or_default();
    let tmp = path.with_extension(format!("tmp-{}-{unique}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(id.as_bytes())?;
    f.sync_all()?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}
