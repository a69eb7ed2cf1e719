//! The node registry: each running node has a row with its address and a heartbeat. A node
//! counts as alive while its heartbeat is younger than one lease; a process that starts with
//! the id of a live node is refused, and one restarting after a crash waits for its old
//! heartbeat to age out (at most one lease).

use std::time::Duration;

use sqlx::PgPool;

use crate::ClusterError;

/// A live node, as the others reach it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Node {
    pub node_id: String,
    pub advertise: String,
}

/// The advisory lock key [`set_draining`] holds while it checks and marks ("drain").
const DRAIN_LOCK: i64 = 0x0064_7261_696e;

/// What [`set_draining`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    Done,
    /// No node of that id is registered.
    NoSuchNode,
    /// Refused: no other live node that is not draining would be left to take its vshards
    /// (all of them would be handed over and nobody would take any).
    LastNode,
}

/// Marks `node_id` as draining (or no longer draining): placement stops giving it vshards, so
/// the others take them over as it hands them on. A node is not drained unless another live
/// node (heartbeat within `lease`) that is not draining remains.
pub async fn set_draining(
    pool: &PgPool,
    node_id: &str,
    draining: bool,
    lease: Duration,
) -> Result<Drain, ClusterError> {
    let db = ClusterError::db("marking a node draining");
    let mut tx = pool.begin().await.map_err(db)?;
    // One drain at a time: two drains of the last two nodes at once would each see the other
    // still taking vshards.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(DRAIN_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(ClusterError::db("marking a node draining"))?;
    let done = sqlx::query(
        "UPDATE cluster_nodes SET draining = $2 WHERE node_id = $1 AND (NOT $2 OR EXISTS \
         (SELECT 1 FROM cluster_nodes o WHERE o.node_id <> $1 AND NOT o.draining \
          AND o.heartbeat > clock_timestamp() - make_interval(secs => $3)))",
    )
    .bind(node_id)
    .bind(draining)
    .bind(lease.as_secs_f64())
    .execute(&mut *tx)
    .await
    .map_err(ClusterError::db("marking a node draining"))?;
    tx.commit()
        .await
        .map_err(ClusterError::db("marking a node draining"))?;
    if done.rows_affected() == 1 {
        return Ok(Drain::Done);
    }
    let known: Option<i32> = sqlx::query_scalar("SELECT 1 FROM cluster_nodes WHERE node_id = $1")
        .bind(node_id)
        .fetch_optional(pool)
        .await
        .map_err(ClusterError::db("reading the node registry"))?;
    Ok(if known.is_some() {
        Drain::LastNode
    } else {
        Drain::NoSuchNode
    })
}

/// This process's registration.
#[derive(Debug, Clone)]
pub struct Membership {
    pool: PgPool,
    node_id: String,
    instance: String,
    lease: Duration,
}

impl Membership {
    /// Registers `node_id` at `advertise`. If a live process holds the id, waits up to one
    /// lease for its heartbeat to age out (a crashed predecessor's does), then refuses.
    pub async fn join(
        pool: PgPool,
        node_id: &str,
        advertise: &str,
        lease: Duration,
    ) -> Result<Self, ClusterError> {
        let instance = random_token()?;
        let give_up = tokio::time::Instant::now() + lease + Duration::from_secs(1);
        loop {
            let joined: Option<String> = sqlx::query_scalar(
                "INSERT INTO cluster_nodes (node_id, advertise, instance) VALUES ($1, $2, $3) \
                 ON CONFLICT (node_id) DO UPDATE SET advertise = EXCLUDED.advertise, \
                 instance = EXCLUDED.instance, started_at = clock_timestamp(), \
                 heartbeat = clock_timestamp() \
                 WHERE cluster_nodes.heartbeat < clock_timestamp() - make_interval(secs => $4) \
                 RETURNING node_id",
            )
            .bind(node_id)
            .bind(advertise)
            .bind(&instance)
            .bind(lease.as_secs_f64())
            .fetch_optional(&pool)
            .await
            .map_err(ClusterError::db("registering this node"))?;
            if joined.is_some() {
                return Ok(Self {
                    pool,
                    node_id: node_id.to_string(),
                    instance,
                    lease,
                });
            }
            let age: f64 = sqlx::query_scalar(
                "SELECT EXTRACT(EPOCH FROM clock_timestamp() - heartbeat)::float8 \
                 FROM cluster_nodes WHERE node_id = $1",
            )
            .bind(node_id)
            .fetch_optional(&pool)
            .await
            .map_err(ClusterError::db("reading the node registry"))?
            .unwrap_or(0.0);
            if tokio::time::Instant::now() >= give_up {
                return Err(ClusterError::NodeIdInUse {
                    node_id: node_id.to_string(),
                    age: Duration::from_secs_f64(age.max(0.0)),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Refreshes the heartbeat; [`ClusterError::Replaced`] if another process took the id
    /// over while this one was stalled.
    pub async fn heartbeat(&self) -> Result<(), ClusterError> {
        let done = sqlx::query(
            "UPDATE cluster_nodes SET heartbeat = clock_timestamp() \
             WHERE node_id = $1 AND instance = $2",
        )
        .bind(&self.node_id)
        .bind(&self.instance)
        .execute(&self.pool)
        .await
        .map_err(ClusterError::db("sending the heartbeat"))?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(ClusterError::Replaced(self.node_id.clone()))
        }
    }

    /// Records where this node's MQTT broker listens for the others (`host:port`).
    pub async fn set_mqtt(&self, mqtt: &str) -> Result<(), ClusterError> {
        sqlx::query("UPDATE cluster_nodes SET mqtt = $1 WHERE node_id = $2 AND instance = $3")
            .bind(mqtt)
            .bind(&self.node_id)
            .bind(&self.instance)
            .execute(&self.pool)
            .await
            .map_err(ClusterError::db("recording the MQTT address"))?;
        Ok(())
    }

    /// The nodes alive now (heartbeat younger than a lease, not draining), by id.
    pub async fn live(&self) -> Result<Vec<Node>, ClusterError> {
        sqlx::query_as(
            "SELECT node_id, advertise FROM cluster_nodes \
             WHERE heartbeat > clock_timestamp() - make_interval(secs => $1) AND NOT draining \
             ORDER BY node_id",
        )
        .bind(self.lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await
        .map_err(ClusterError::db("listing live nodes"))
    }

    /// Leaves the registry (a clean shutdown), so the others need not wait for the heartbeat
    /// to age out.
    pub async fn leave(self) -> Result<(), ClusterError> {
        sqlx::query("DELETE FROM cluster_nodes WHERE node_id = $1 AND instance = $2")
            .bind(&self.node_id)
            .bind(&self.instance)
            .execute(&self.pool)
            .await
            .map_err(ClusterError::db("leaving the registry"))?;
        Ok(())
    }
}

/// A random token for this process, from the OS random generator.
/// Whether `node_id` is free to register: waits up to one lease for a live holder's
/// heartbeat to age out (a crashed predecessor's does), then refuses, as
/// [`Membership::join`] would. For a start-up that checks before it binds anything and
/// registers once it can serve.
pub async fn check_free(pool: &PgPool, node_id: &str, lease: Duration) -> Result<(), ClusterError> {
    let give_up = tokio::time::Instant::now() + lease + Duration::from_secs(1);
    loop {
        let age: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM clock_timestamp() - heartbeat)::float8 \
             FROM cluster_nodes WHERE node_id = $1",
        )
        .bind(node_id)
        .fetch_optional(pool)
        .await
        .map_err(ClusterError::db("reading the node registry"))?;
        let Some(age) = age.filter(|a| *a < lease.as_secs_f64()) else {
            return Ok(());
        };
        if tokio::time::Instant::now() >= give_up {
            return Err(ClusterError::NodeIdInUse {
                node_id: node_id.to_string(),
                age: Duration::from_secs_f64(age.max(0.0)),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(crate) fn random_token() -> Result<String, ClusterError> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(|e| ClusterError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}
