//! `ynni cluster …` and the cluster checks `ynni serve` makes before anything else.

use std::time::Duration;

use anyhow::{Context, bail};
use ynni_cluster::registry::Membership;
use ynni_config::{ClusterSettings, Settings};

/// How long reaching the cluster's Postgres may take before start-up gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn section(settings: &Settings) -> anyhow::Result<&ClusterSettings> {
    settings
        .cluster
        .as_ref()
        .context("this command needs a [cluster] section in the configuration (--config FILE)")
}

/// `ynni cluster status`: nodes, heartbeats, and which node holds which vshards.
pub async fn status(settings: &Settings) -> anyhow::Result<()> {
    let c = section(settings)?;
    let pool = ynni_cluster::db::connect(&c.postgres, CONNECT_TIMEOUT).await?;
    let status = ynni_cluster::status::read(&pool).await?;
    print!("{}", status.report(c.lease_ms as f64 / 1000.0));
    Ok(())
}

/// `ynni cluster drain NODE [--undo]`: marks the node draining (or not), so placement moves its
/// vshards to the others as it hands them over.
pub async fn drain(settings: &Settings, node: &str, draining: bool) -> anyhow::Result<()> {
    let c = section(settings)?;
    let pool = ynni_cluster::db::connect(&c.postgres, CONNECT_TIMEOUT).await?;
    if !ynni_cluster::registry::set_draining(&pool, node, draining).await? {
        bail!("no node {node:?} is registered in this cluster (see ynni cluster status)");
    }
    if draining {
        println!("{node} is draining: its vshards move to the other nodes");
    } else {
        println!("{node} takes vshards again");
    }
    Ok(())
}

/// `ynni serve` with `[cluster]`: checks the shared directory, Postgres and the node id, each
/// failure naming its setting. Serving in cluster mode is not built yet, which it then says.
pub async fn serve(c: &ClusterSettings) -> anyhow::Result<()> {
    let dir = &c.shared_dir;
    if !dir.is_dir() {
        bail!(
            "invalid configuration: `cluster.shared_dir` {} is not a directory (mount the shared filesystem first)",
            dir.display()
        );
    }
    let probe = dir.join(format!(".ynni-write-test-{}", c.node_id));
    std::fs::write(&probe, b"ok")
        .and_then(|()| std::fs::remove_file(&probe))
        .with_context(|| {
            format!(
                "invalid configuration: `cluster.shared_dir` {} is not writable",
                dir.display()
            )
        })?;
    let pool = ynni_cluster::db::connect(&c.postgres, CONNECT_TIMEOUT).await?;
    let lease = Duration::from_millis(c.lease_ms);
    let me = Membership::join(pool, &c.node_id, &c.advertise, lease).await?;
    tracing::info!(node = %c.node_id, "joined the cluster registry");
    me.leave().await?;
    bail!(
        "cluster mode is not built yet (issue 17): the configuration, cluster.shared_dir, \
         cluster.postgres and cluster.node_id were checked, but serving users from several \
         nodes (forwarding, shard hand-over) is not implemented; remove [cluster] to run one node"
    )
}
