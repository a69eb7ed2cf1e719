//! `ynni serve` with `[cluster]`: this node's share of the vshards, kept for as long as it
//! runs (DESIGN §5).
//!
//! One task ticks the cluster's [`Ownership`] three times per lease and turns what changed into
//! moves of the shard router: a gained vshard is opened (its log in the shared directory
//! replayed) under a [`Fence`] that every renewal extends; a lost one is abandoned at once,
//! writing nothing more; one that placement gives to another node is handed over (flushed,
//! checkpointed, closed) and only then released, so its next owner starts from complete files.
//! Moves run one at a time on a second task, so a long replay never delays the renewals that
//! keep the other vshards. After every tick the owner map the HTTP side forwards by is read
//! again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ynni_core::boot_clock::BootInstant;

use crate::storage_probe::Probe;

use anyhow::Context;
use sqlx::PgPool;
use std::net::SocketAddr;
use tokio::sync::{mpsc, watch};
use ynni_broker::Place;
use ynni_cluster::lease::Timing;
use ynni_cluster::ownership::{Change, Ownership};
use ynni_cluster::registry::Membership;
use ynni_config::ClusterSettings;
use ynni_ingest::shard::{Fence, Router};
use ynni_web::Forwarder;

/// How long reaching the cluster's Postgres may take before start-up gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The shared directory's layout: feed files as on one node, and one log per vshard.
pub struct SharedPaths {
    pub phpfina: PathBuf,
    pub phptimeseries: PathBuf,
    pub vshards: PathBuf,
}

impl SharedPaths {
    pub fn create(root: &Path) -> anyhow::Result<Self> {
        let paths = Self {
            phpfina: root.join("phpfina"),
            phptimeseries: root.join("phptimeseries"),
            vshards: root.join("vshards"),
        };
        for dir in [&paths.phpfina, &paths.phptimeseries, &paths.vshards] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating {} in cluster.shared_dir", dir.display()))?;
        }
        Ok(paths)
    }
}

/// A node registered in the cluster, before it holds any vshard.
pub struct Joined {
    pub pool: PgPool,
    membership: Membership,
    timing: Timing,
    /// Whether the shared directory answers.
    probe: Probe,
    /// The host part of `cluster.advertise`, where the others reach this node's broker too.
    host: String,
}

impl Joined {
    /// Records this node's MQTT port (the broker's, at the advertised host) for the others.
    pub async fn set_mqtt_port(&self, port: u16) -> anyhow::Result<()> {
        let addr = format!("{}:{port}", self.host);
        self.membership.set_mqtt(&addr).await?;
        Ok(())
    }

    /// Leaves the registry before serving anything (a start-up that failed after
    /// registering), so the others do not wait for its registration to age out.
    pub async fn leave(self) {
        if let Err(e) = self.membership.leave().await {
            tracing::warn!(error = %e, "leaving the cluster registry failed; the others wait for this node's heartbeat to age out");
        }
    }
}

/// The other nodes' brokers, by the vshards they own: where a device's connection is passed
/// on to after its CONNECT.
#[derive(Clone, Default)]
pub struct MqttOwners(Arc<std::sync::RwLock<HashMap<u32, SocketAddr>>>);

impl MqttOwners {
    /// The broker's decision for each authenticated user: served here, passed on, or (the
    /// shard is changing hands) refused for now.
    pub fn locate(self, router: Arc<Router>) -> ynni_broker::Locate {
        Arc::new(move |userid| {
            let v = router.vshard(userid);
            if router.serves(v) {
                return Place::Here;
            }
            match self.0.read().unwrap_or_else(|p| p.into_inner()).get(&v) {
                Some(addr) => Place::There(*addr),
                None => Place::Nowhere,
            }
        })
    }

    /// Whether `ip` is the address of a node that serves vshards (whose broker passes on the
    /// connections of the users this node serves).
    pub fn is_node(&self, ip: std::net::IpAddr) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|a| a.ip().to_canonical() == ip.to_canonical())
    }

    fn set(&self, owners: HashMap<u32, SocketAddr>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = owners;
    }
}

/// What the node loop tells the rest of the server.
pub struct Hooks {
    pub forwarder: Arc<Forwarder>,
    pub mqtt: MqttOwners,
    /// Called once a vshard is no longer served here (its users' MQTT connections close,
    /// to reconnect to the new owner).
    pub closed: Arc<dyn Fn(u32) + Send + Sync>,
    /// Called once a vshard is served here (what only its owner publishes, retained, such
    /// as Home Assistant discovery and the feeds' last values, is published again here).
    pub opened: Arc<dyn Fn(u32) + Send + Sync>,
}

/// The checks [`join`] made, for [`Checked::register`] once the node can serve.
pub struct Checked {
    pool: PgPool,
    lease: Duration,
    node_id: String,
    advertise: String,
    shared_dir: PathBuf,
}

impl Checked {
    /// Registers this node: from now on the others count it live and hand it vshards, so
    /// this comes once everything it serves with is bound and started (a start-up that fails
    /// after registering left its share of vshards unowned until the registration aged out).
    pub async fn register(self) -> anyhow::Result<Joined> {
        let membership = Membership::join(
            self.pool.clone(),
            &self.node_id,
            &self.advertise,
            self.lease,
        )
        .await?;
        tracing::info!(node = %self.node_id, advertise = %self.advertise, "joined the cluster");
        let timing = Timing::new(self.lease);
        // Often, so that one slow write (a busy disk, a loaded machine) is not taken for a
        // directory that stopped answering: the loop below waits a whole lease for one.
        let probe = Probe::start(self.shared_dir, &self.node_id, timing.lease / 10)
            .context("starting the shared directory's probe")?;
        let host = self
            .advertise
            .rsplit_once(':')
            .map_or(self.advertise.as_str(), |(h, _)| h)
            .to_string();
        Ok(Joined {
            pool: self.pool,
            membership,
            timing,
            probe,
            host,
        })
    }
}

/// Checks the shared directory, Postgres, the cluster's identity and the settings the nodes
/// must share (each failure naming its setting); [`Checked::register`] then registers it.
pub async fn join(c: &ClusterSettings) -> anyhow::Result<Checked> {
    let dir = &c.shared_dir;
    if !dir.is_dir() {
        anyhow::bail!(
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
    // Before registering: a node on the wrong directory, or with another secret or lease,
    // must never take a vshard.
    ynni_cluster::identity::check(&pool, dir, &c.secret, lease, &c.node_id).await?;
    // A node id another live process holds is refused here already, before anything binds
    // (registering checks it again).
    ynni_cluster::registry::check_free(&pool, &c.node_id, lease).await?;
    Ok(Checked {
        pool,
        lease,
        node_id: c.node_id.clone(),
        advertise: c.advertise.clone(),
        shared_dir: dir.clone(),
    })
}

enum Event {
    Tick,
    /// A move finished: the vshard (under that epoch) is closed and may be released.
    Closed(u16, i64),
    Stop,
}

enum Move {
    Open(u16, i64, Arc<Fence>),
    HandOver(u16, i64),
    Abandon(u16),
}

/// The vshards this node acts for: the epoch of the lease each worker writes under, and its
/// fence.
type Acting = HashMap<u16, (i64, Arc<Fence>)>;

/// Keeps this node's vshards until `stop`, then hands every one over and leaves the cluster.
pub async fn keep(
    joined: Joined,
    router: Arc<Router>,
    hooks: Hooks,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Joined {
        pool,
        membership,
        timing,
        probe,
        ..
    } = joined;
    let me = membership.node_id().to_string();
    let mut own = Ownership::new(pool.clone(), membership, timing);
    let mut fences: Acting = HashMap::new();
    let mut handing: HashSet<u16> = HashSet::new();
    let (moves, move_rx) = mpsc::unbounded_channel();
    let (handed_tx, mut handed) = mpsc::unbounded_channel();
    let mover = tokio::spawn(run_moves(
        router.clone(),
        move_rx,
        handed_tx,
        hooks.closed.clone(),
        hooks.opened.clone(),
    ));
    let mut resolved: HashMap<String, SocketAddr> = HashMap::new();
    let mut storage_ok = true;
    let mut tick = tokio::time::interval(timing.renew_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            _ = tick.tick() => Event::Tick,
            Some((v, epoch)) = handed.recv() => Event::Closed(v, epoch),
            _ = stop.wait_for(|s| *s) => Event::Stop,
        };
        match event {
            Event::Tick => {}
            Event::Closed(v, epoch) => {
                // Only the lease the closed worker wrote under: a newer one (lost, then
                // gained again meanwhile) has a worker of its own.
                if fences.get(&v).is_some_and(|(e, _)| *e == epoch) {
                    handing.remove(&v);
                    if let Some((_, f)) = fences.remove(&v) {
                        f.revoke();
                    }
                    if let Err(e) = own.release_epoch(v, epoch).await {
                        // The lease then simply runs out; the next owner waits for that.
                        tracing::warn!(vshard = v, error = %e, "releasing a closed vshard failed");
                    }
                }
                continue;
            }
            Event::Stop => break,
        }
        // A shared directory that has not taken a write for a lease: this node can make no
        // progress for its vshards, so it lets the others take them.
        let answering = probe.answered_within(timing.lease);
        if !answering && std::mem::replace(&mut storage_ok, false) {
            tracing::error!(
                "the shared directory has not taken a write for {:?}: this node stops renewing its vshards so the other nodes take them over",
                timing.lease
            );
        }
        storage_ok |= answering;
        let round = if answering {
            own.tick().await
        } else {
            Ok(own.idle_tick())
        };
        match round {
            Ok(changes) => {
                for change in changes {
                    apply(change, &mut fences, &mut handing, &moves);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster round failed; retrying next round"),
        }
        if own.replaced() {
            // Every lease was dropped above (its workers abandoned, their fences revoked). No
            // hand-over and no leaving: the registry row and the vshards are the new process's.
            anyhow::bail!(
                "another process took this node's id ({me}) while this one was not heard from; stopping"
            );
        }
        // Whatever a failed round did not report: the workers follow the leases as held.
        reconcile(&own, &mut fences, &mut handing, &moves);
        match ynni_cluster::status::owners(&pool).await {
            Ok(rows) => {
                let others: Vec<_> = rows.into_iter().filter(|o| o.node_id != me).collect();
                hooks.forwarder.set_owners(
                    others
                        .iter()
                        .map(|o| (u32::from(o.vshard), o.http.clone()))
                        .collect(),
                );
                let mut mqtt = HashMap::new();
                for o in &others {
                    if let Some(addr) = resolve(&mut resolved, &o.mqtt).await {
                        mqtt.insert(u32::from(o.vshard), addr);
                    }
                }
                hooks.mqtt.set(mqtt);
            }
            Err(e) => tracing::warn!(error = %e, "reading the vshard owners failed"),
        }
    }
    // Stopping: everything still held is handed over (flushed while the lease is valid; a
    // fresh renewal first, and the storage refuses any flush the lease no longer covers), then
    // the leases and the node id are given up so the others take over at once.
    drop(moves);
    if own.tick().await.is_ok() {
        let now = BootInstant::now();
        for (v, (epoch, fence)) in &fences {
            if let Some(lease) = own.valid(*v, now).filter(|l| l.epoch == *epoch) {
                fence.extend(lease.deadline);
            }
        }
    }
    mover.await.context("the vshard mover")?;
    let r = router.clone();
    let open: Vec<u32> = router.open_vshards();
    let flushed = tokio::task::spawn_blocking(move || {
        // Every vshard is closed, whichever failed before it.
        open.into_iter()
            .map(|v| r.close_vshard(v, true))
            .filter(|flushed| !flushed)
            .count()
            == 0
    })
    .await
    .context("handing the vshards over")?;
    if !flushed {
        tracing::warn!("a vshard could not flush on stop; its next owner replays its log");
    }
    own.leave().await?;
    tracing::info!(node = %me, "left the cluster");
    Ok(())
}

/// A node's MQTT address, looked up once (an empty one: its broker is not listening yet).
async fn resolve(cache: &mut HashMap<String, SocketAddr>, addr: &str) -> Option<SocketAddr> {
    if addr.is_empty() {
        return None;
    }
    if let Some(a) = cache.get(addr) {
        return Some(*a);
    }
    match tokio::net::lookup_host(addr).await.map(|mut a| a.next()) {
        Ok(Some(a)) => {
            cache.insert(addr.to_string(), a);
            Some(a)
        }
        _ => {
            tracing::warn!(addr, "a node's MQTT address does not resolve");
            None
        }
    }
}

fn apply(
    change: Change,
    fences: &mut Acting,
    handing: &mut HashSet<u16>,
    moves: &mpsc::UnboundedSender<Move>,
) {
    match change {
        Change::Gained(lease) => {
            tracing::info!(vshard = lease.vshard, epoch = lease.epoch, "vshard gained");
            let fence = Arc::new(Fence::until(lease.deadline));
            if let Some((_, old)) = fences.insert(lease.vshard, (lease.epoch, fence.clone())) {
                old.revoke();
            }
            let _ = moves.send(Move::Open(lease.vshard, lease.epoch, fence));
        }
        Change::Lost(v) => {
            tracing::warn!(vshard = v, "vshard lease lost; it stops at once");
            if let Some((_, f)) = fences.remove(&v) {
                f.revoke();
            }
            handing.remove(&v);
            let _ = moves.send(Move::Abandon(v));
        }
        Change::HandOver(v) => {
            if let Some((epoch, _)) = fences.get(&v)
                && handing.insert(v)
            {
                tracing::info!(vshard = v, "handing the vshard over");
                let _ = moves.send(Move::HandOver(v, *epoch));
            }
        }
    }
}

/// Brings the workers in line with the leases held now: a worker whose lease is no longer
/// valid (or was replaced by a newer epoch) is abandoned, a valid lease without a worker gets
/// one, and every fence is extended to its lease's deadline. A round that failed part-way may
/// have changed the leases without reporting it; this does not depend on the report.
fn reconcile(
    own: &Ownership,
    fences: &mut Acting,
    handing: &mut HashSet<u16>,
    moves: &mpsc::UnboundedSender<Move>,
) {
    let now = BootInstant::now();
    // A fence whose deadline passed stays dead even if the lease was renewed since (a
    // renewal sent before the deadline but answered after it): its worker is abandoned and,
    // the lease being valid, opened again below under a new fence.
    let stale: Vec<u16> = fences
        .iter()
        .filter(|(v, (epoch, fence))| {
            !fence.valid() || own.valid(**v, now).is_none_or(|l| l.epoch != *epoch)
        })
        .map(|(v, _)| *v)
        .collect();
    for v in stale {
        apply(Change::Lost(v), fences, handing, moves);
    }
    for v in own.held() {
        if let Some(lease) = own.valid(v, now) {
            match fences.get(&v) {
                Some((_, fence)) => fence.extend(lease.deadline),
                None => apply(Change::Gained(lease), fences, handing, moves),
            }
        }
    }
}

/// Opens and closes vshards one at a time, in the order they were decided.
async fn run_moves(
    router: Arc<Router>,
    mut moves: mpsc::UnboundedReceiver<Move>,
    handed: mpsc::UnboundedSender<(u16, i64)>,
    closed: Arc<dyn Fn(u32) + Send + Sync>,
    opened: Arc<dyn Fn(u32) + Send + Sync>,
) {
    while let Some(m) = moves.recv().await {
        let (r, closed, opened) = (router.clone(), closed.clone(), opened.clone());
        let done = tokio::task::spawn_blocking(move || match m {
            Move::Open(v, epoch, fence) => {
                let started = Instant::now();
                // An opening that waited behind others past its lease's deadline must not
                // touch the log: another node may own it by now.
                if !fence.valid() {
                    tracing::info!(
                        vshard = v,
                        "the lease ended before the vshard could be opened"
                    );
                    return Some((v, epoch));
                }
                match r.open_vshard(u32::from(v), fence) {
                    Ok(()) => {
                        tracing::info!(
                            vshard = v,
                            ms = started.elapsed().as_millis() as u64,
                            "vshard served"
                        );
                        opened(u32::from(v));
                        None
                    }
                    Err(e) => {
                        // Released, so that it is tried again (here or elsewhere) rather than
                        // held with nothing serving it.
                        tracing::error!(vshard = v, error = %e, "opening the vshard failed");
                        Some((v, epoch))
                    }
                }
            }
            Move::HandOver(v, epoch) => {
                if !r.close_vshard(u32::from(v), true) {
                    tracing::warn!(vshard = v, "hand-over flush failed; the next owner replays");
                }
                closed(u32::from(v));
                Some((v, epoch))
            }
            Move::Abandon(v) => {
                r.close_vshard(u32::from(v), false);
                closed(u32::from(v));
                None
            }
        })
        .await;
        if let Ok(Some(closed)) = done {
            let _ = handed.send(closed);
        }
    }
}

/// Offline commands that write a cluster's vshards (an import) run only while no node does.
pub async fn refuse_if_running(c: &ClusterSettings) -> anyhow::Result<()> {
    let pool = ynni_cluster::db::connect(&c.postgres, CONNECT_TIMEOUT).await?;
    let status = ynni_cluster::status::read(&pool).await?;
    let lease = Duration::from_millis(c.lease_ms).as_secs_f64();
    let running: Vec<&str> = status
        .nodes
        .iter()
        .filter(|n| n.heartbeat_age < lease)
        .map(|n| n.node_id.as_str())
        .collect();
    if !running.is_empty() {
        anyhow::bail!(
            "the cluster's nodes are running ({}): stop them first, as `ynni import` writes their \
             shards' state; `ynni cluster status` lists them",
            running.join(", ")
        );
    }
    pool.close().await;
    Ok(())
}

/// An import's last values, each in the state of its account's vshard: every vshard concerned
/// is taken under a lease of its own (held by `<node_id>-import`, so no node can take it
/// meanwhile), opened, given its seeds, flushed and released.
pub async fn seed_last_values(
    settings: &ynni_config::Settings,
    c: &ClusterSettings,
    paths: &SharedPaths,
    catalog: &ynni_core::Catalog,
    seeds: Vec<(i64, ynni_ingest::shard::Seed)>,
) -> anyhow::Result<()> {
    let pool = ynni_cluster::db::connect(&c.postgres, CONNECT_TIMEOUT).await?;
    let timing = Timing::new(Duration::from_millis(c.lease_ms));
    let leases = ynni_cluster::lease::Leases::new(pool, format!("{}-import", c.node_id), timing);
    let cfg = crate::serve::cluster_router_config(settings, paths);
    let (cat, handle) = (catalog.clone(), tokio::runtime::Handle::current());
    let router = Arc::new(
        tokio::task::spawn_blocking(move || Router::start(cfg, cat, handle))
            .await
            .context("starting the shard workers")??,
    );
    let mut by_vshard: std::collections::BTreeMap<u32, Vec<(i64, ynni_ingest::shard::Seed)>> =
        Default::default();
    for (userid, seed) in seeds {
        if !seed.inputs.is_empty() || !seed.feeds.is_empty() {
            by_vshard
                .entry(router.vshard(userid))
                .or_default()
                .push((userid, seed));
        }
    }
    for (v, users) in by_vshard {
        let vshard = u16::try_from(v).context("vshard number")?;
        // A node stopped moments ago may still hold the lease until it ends.
        let deadline = Instant::now() + timing.lease * 2;
        let lease = loop {
            if let Some(l) = leases.acquire(vshard).await? {
                break l;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "vshard {v} is held by another node; stop every node first"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let r = router.clone();
        let fence = Arc::new(Fence::until(lease.deadline));
        tokio::task::spawn_blocking(move || r.open_vshard(v, fence))
            .await
            .context("opening a vshard")??;
        for (userid, seed) in users {
            router
                .seed_last(userid, seed)
                .await
                .context("storing the last values")?;
        }
        let r = router.clone();
        let flushed = tokio::task::spawn_blocking(move || r.close_vshard(v, true))
            .await
            .context("closing a vshard")?;
        leases.release(&lease).await?;
        anyhow::ensure!(
            flushed,
            "vshard {v}: the last values could not be checkpointed"
        );
    }
    let r = router.clone();
    tokio::task::spawn_blocking(move || r.stop())
        .await
        .context("stopping the shard workers")?;
    Ok(())
}
