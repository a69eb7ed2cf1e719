//! Home Assistant discovery's inputs: the account, whether it opted in, its feeds and their
//! last values, from the catalog and the shards. What is published is built by
//! [`ynni_publish::discovery`].

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use ynni_core::{Catalog, CatalogError};
use ynni_ingest::shard::{FeedAnswer, FeedOp, Router};
use ynni_publish::discovery::{Discovery, Retained, Sensor};

/// Everything to publish (retained) for `userid` now, in the user's namespace; nothing for an
/// account that no longer exists.
pub async fn messages(
    discovery: &mut Discovery,
    userid: i64,
    catalog: &Catalog,
    router: &Router,
) -> Result<Vec<Retained>, CatalogError> {
    let Some(user) = catalog.user_by_id(userid).await? else {
        return Ok(Vec::new());
    };
    let sensors = if catalog.ha_discovery(userid).await? {
        let mut sensors = Vec::new();
        for f in catalog.feeds_for_user(userid).await? {
            // Virtual feeds publish no values.
            if f.engine == i64::from(ynni_storage::Engine::Virtual.id()) {
                continue;
            }
            // A shard that cannot say leaves the sensor without a state until the next update.
            let last = match router.feed(userid, FeedOp::Last { id: f.id as u32 }).await {
                Ok(FeedAnswer::Last(last)) => last,
                _ => None,
            };
            sensors.push(Sensor {
                feed: f.id,
                name: f.name,
                unit: f.unit,
                last,
            });
        }
        Some(sensors)
    } else {
        None
    };
    Ok(discovery.messages(userid, &user.uuid, &user.username, sensors.as_deref()))
}

/// Cluster mode: a vshard newly served here has its users' discovery (and with it the feeds'
/// last values) published again in this node's broker, where their MQTT connections now
/// land; the previous owner's retained messages stayed in its broker. Vshards opened together
/// (a node starting, a drain) are gathered for a moment and cost one catalog query.
pub async fn announce_opened(
    mut opened: UnboundedReceiver<u32>,
    catalog: Catalog,
    announce: std::sync::Arc<ynni_core::user_queue::UserQueue>,
    vshards: u32,
) {
    const GATHER: Duration = Duration::from_millis(200);
    while let Some(first) = opened.recv().await {
        let mut batch = HashSet::from([first]);
        let until = tokio::time::Instant::now() + GATHER;
        while let Ok(Some(v)) = tokio::time::timeout_at(until, opened.recv()).await {
            batch.insert(v);
        }
        match catalog.ha_discovery_users().await {
            Ok(users) => {
                for userid in users {
                    if batch.contains(&ynni_core::vshard::of(userid, vshards)) {
                        announce.push(userid);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "discovery of newly served accounts not published")
            }
        }
    }
}
