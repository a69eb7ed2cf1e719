//! `ynni cluster status` and `ynni cluster drain`.

use std::time::Duration;

use anyhow::{Context, bail};
use ynni_cluster::registry::Drain;
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
pub async fn status(settings: &Settings, vshards: bool) -> anyhow::Result<()> {
    let c = section(settings)?;
    let pool = ynni_cluster::db::connect(&c.postgres, CONNECT_TIMEOUT).await?;
    let status = ynni_cluster::status::read(&pool).await?;
    print!("{}", status.report(c.lease_ms as f64 / 1000.0));
    if vshards {
        print!("{}", status.vshard_table());
    }
    Ok(())
}

/// `ynni cluster drain NODE [--undo]`: marks the node draining (or not), so placement moves its
/// vshards to the others as it hands them over.
pub async fn drain(settings: &Settings, node: &str, draining: bool) -> anyhow::Result<()> {
    let c = section(settings)?;
    let pool = ynni_cluster::db::connect(&c.postgres, CONNECT_TIMEOUT).await?;
    let lease = Duration::from_millis(c.lease_ms);
    match ynni_cluster::registry::set_draining(&pool, node, draining, lease).await? {
        Drain::Done => {}
        Drain::NoSuchNode => {
            bail!("no node {node:?} is registered in this cluster (see ynni cluster status)")
        }
        Drain::LastNode => bail!(
            "{node:?} is the last live node not draining: drained, it would hand every vshard over and nobody would take them (start another node first)"
        ),
    }
    if draining {
        println!("{node} is draining: its vshards move to the other nodes");
    } else {
        println!("{node} takes vshards again");
    }
    Ok(())
}
