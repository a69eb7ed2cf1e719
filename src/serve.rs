//! `ynni serve`: opens the data directory and catalog, starts the listeners, and stops cleanly
//! on SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use ynni_config::Settings;
use ynni_core::Catalog;
use ynni_ingest::shard::{DEFAULT_MAX_NODES, Router, RouterConfig};
use ynni_storage::{DataDir, StoreConfig};

/// How long the MQTT listeners get to close after a shutdown signal.
const MQTT_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const SESSION_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    // Before anything records: metric handles taken earlier would record nowhere.
    let metrics = install_metrics(&settings);
    raise_open_file_limit();
    let data_dir = DataDir::open_exclusive(&settings.data_dir)?;
    // Redis first: a node that cannot reach it must not register and then vanish.
    let shared_limits = match settings.cluster.as_ref().and_then(|c| c.redis.as_deref()) {
        Some(url) => {
            let limits =
                ynni_core::shared_limit::SharedLimits::connect(url, Duration::from_secs(10))
                    .await?;
            tracing::info!("login limits shared through Redis");
            Some(Arc::new(limits))
        }
        None => None,
    };
    // Cluster mode: checked before anything listens, registered once everything is started;
    // the catalog is the cluster's Postgres and the feeds and logs live in the shared
    // directory.
    let cluster = match &settings.cluster {
        Some(c) => Some((
            crate::cluster_node::join(c).await?,
            crate::cluster_node::SharedPaths::create(&c.shared_dir)?,
            c,
        )),
        None => None,
    };
    let catalog = match &cluster {
        Some((_, _, c)) => Catalog::open_postgres(&c.postgres)
            .await
            .context("opening the catalog in cluster.postgres")?,
        None => Catalog::open_sqlite(&data_dir.catalog_path())
            .await
            .with_context(|| format!("opening catalog {}", data_dir.catalog_path().display()))?,
    };
    tracing::info!(data_dir = %data_dir.root().display(), "data directory ready");

    let listener = ynni_web::bind(settings.http.listen).await?;
    let https = https_listener(&settings, &data_dir).await?;
    let http_addr = listener
        .local_addr()
        .context("reading the HTTP listen address")?;

    let router_cfg = match &cluster {
        Some((_, paths, _)) => cluster_router_config(&settings, paths),
        None => router_config(&settings, &data_dir)?,
    };
    let (router_catalog, handle) = (catalog.clone(), tokio::runtime::Handle::current());
    let router =
        tokio::task::spawn_blocking(move || Router::start(router_cfg, router_catalog, handle))
            .await
            .context("starting the shard workers")??;
    let router = Arc::new(router);
    let legacy = (!settings.mqtt.legacy_user.is_empty()).then(|| {
        crate::mqtt_link::Legacy::new(
            settings.mqtt.legacy_username.clone(),
            settings.mqtt.legacy_password.clone(),
            settings.mqtt.legacy_user.clone(),
        )
    });
    let m = &settings.mqtt;
    let external = if m.external_host.is_empty() {
        None
    } else {
        let tls_ca = if m.external_tls {
            Some(
                std::fs::read(&m.external_ca)
                    .with_context(|| format!("reading mqtt.external_ca {}", m.external_ca))?,
            )
        } else {
            None
        };
        Some(ynni_broker::external::External {
            host: m.external_host.clone(),
            port: m.external_port,
            username: m.external_username.clone(),
            password: m.external_password.clone(),
            account: m.external_user.clone(),
            base: m.base_topic.clone(),
            tls_ca,
        })
    };
    let tls = if m.tls_listen.is_empty() {
        None
    } else {
        let (cert, key) = tls_pair(data_dir.root(), "mqtt", &m.tls_cert, &m.tls_key)?;
        Some(ynni_broker::Tls {
            listen: m.tls_listen.parse().context("mqtt.tls_listen")?,
            cert: cert.display().to_string(),
            key: key.display().to_string(),
        })
    };
    let billing = settings.billing.as_ref().map(|b| {
        Arc::new(ynni_billing::Billing::new(
            catalog.clone(),
            crate::billing_cmd::policy(b),
        ))
    });
    if let Some(b) = &billing {
        // A plan's cap on inputs, asked by the shard workers when a post would create some.
        let b = b.clone();
        router.limit_inputs(move |userid| {
            b.plan_now(userid)
                .map(|p| p.max_inputs as usize)
                .filter(|m| *m > 0)
        });
    }
    let mqtt_owners = cluster
        .as_ref()
        .map(|_| crate::cluster_node::MqttOwners::default());
    let options = crate::mqtt_link::LinkOptions {
        broker: ynni_broker::Options {
            listen: m.listen,
            tls,
            websocket: if m.ws_listen.is_empty() {
                None
            } else {
                Some(m.ws_listen.parse().context("mqtt.ws_listen")?)
            },
            base: m.base_topic.clone(),
            max_connections: m.max_connections,
            max_connections_per_user: m.max_connections_per_user,
            max_pending_per_address: m.max_pending_per_address,
            pending_trusted: {
                let nodes = mqtt_owners.clone();
                Arc::new(move |ip| {
                    ynni_broker::pending::is_loopback(ip)
                        || nodes.as_ref().is_some_and(|n| n.is_node(ip))
                })
            },
            locate: mqtt_owners
                .clone()
                .map(|owners| owners.locate(router.clone())),
        },
        legacy,
        login_limits: crate::mqtt_link::LoginLimits::from_settings(&settings.limits),
        external,
        input_topic: m.input_topic.clone(),
        billing: billing.clone(),
    };
    let mqtt = crate::mqtt_link::start(options, catalog.clone(), router.clone()).await?;
    tracing::info!("MQTT listening on {}", mqtt.addr);

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(purge_sessions(catalog.clone(), stop_rx.clone()));
    if let (Some(b), Some(s)) = (&billing, &settings.billing) {
        // An account newly refused has its MQTT connections rechecked, so they close ("quota
        // exceeded" when the device reconnects).
        b.notify_refused(mqtt.credentials.clone());
        tokio::spawn(crate::billing_task::keep(
            b.clone(),
            std::time::Duration::from_secs(s.refresh_s),
            stop_rx.clone(),
        ));
    }

    let mut node = None;
    let mut ops = ops(&mqtt, metrics, stop_rx.clone());
    if let Some(b) = settings.backup.clone() {
        let status = crate::backup_task::Shared::default();
        tokio::spawn(crate::backup_task::keep(
            settings.clone(),
            status.clone(),
            stop_rx.clone(),
        ));
        ops = ops.report("backup", move || crate::backup_task::report(&b, &status));
    }
    let mut state = ynni_web::AppState::new(
        catalog.clone(),
        Arc::new(settings.clone()),
        env!("CARGO_PKG_VERSION"),
        router.clone(),
    )
    .with_discovery(mqtt.announce.clone())
    .with_credential_watch(mqtt.credentials)
    .with_ops(ops);
    if let Some(b) = billing {
        state = state.with_billing(b);
    }
    if let (Some((checked, _, c)), Some(mqtt_owners)) = (cluster, mqtt_owners) {
        let forwarder = Arc::new(
            ynni_web::Forwarder::new(c.node_id.clone(), c.secret.clone())
                .context("building the client that forwards requests to other nodes")?,
        );
        let joined = checked.register().await?;
        if let Err(e) = joined.set_mqtt_port(mqtt.addr.port()).await {
            joined.leave().await;
            return Err(e);
        }
        state = state.with_forwarder(forwarder.clone());
        if let Some(limits) = shared_limits {
            state = state.with_shared_limits(limits);
        }
        let (sessions, vshards) = (mqtt.sessions.clone(), router.vshards());
        let (opened_tx, opened_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(crate::discovery::announce_opened(
            opened_rx,
            catalog.clone(),
            mqtt.announce.clone(),
            vshards,
        ));
        let pages = state.clone();
        let hooks = crate::cluster_node::Hooks {
            forwarder,
            mqtt: mqtt_owners,
            closed: Arc::new(move |v| {
                let moved = |u| ynni_core::vshard::of(u, vshards) == v;
                pages.end_live_streams(moved);
                let n = sessions.close_moved(moved);
                if n > 0 {
                    tracing::info!(
                        vshard = v,
                        connections = n,
                        "MQTT connections sent to the new owner"
                    );
                }
            }),
            opened: Arc::new(move |v| {
                let _ = opened_tx.send(v);
            }),
        };
        node = Some(tokio::spawn(crate::cluster_node::keep(
            joined,
            router.clone(),
            hooks,
            stop_rx.clone(),
        )));
    }
    let https_on = https.is_some();
    // Watched with or without HTTPS: SIGHUP's default action would end the process.
    tokio::spawn(reload_on_hangup(
        https.as_ref().map(|(_, certs)| certs.clone()),
        mqtt.tls.clone(),
        stop_rx.clone(),
    ));
    let https_state = state.clone();
    let mut http_stop = stop_rx.clone();
    let mut server = tokio::spawn(ynni_web::serve(listener, state, async move {
        let _ = http_stop.wait_for(|stop| *stop).await;
    }));
    let mut tls_server = match https {
        Some((listener, certs)) => {
            let addr = listener
                .local_addr()
                .context("reading the HTTPS listen address")?;
            let mut stop = stop_rx.clone();
            let task = tokio::spawn(ynni_web::serve_tls(
                listener,
                https_state,
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                },
                certs,
            ));
            tracing::info!("HTTPS listening on {addr}");
            task
        }
        // Never ends: there is no HTTPS server to watch.
        None => tokio::spawn(std::future::pending()),
    };
    tracing::info!("HTTP listening on {http_addr}");

    {
        // The cluster task ends on its own only when this node can no longer act for the
        // cluster (another process took its id): then the process stops too.
        let node_ended = async {
            match node.as_mut() {
                Some(n) => n.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            signal = signals.recv() => tracing::info!("{signal}, shutting down"),
            ended = &mut server => {
                // The server stopped without being asked to: that is fatal.
                ended.context("HTTP server task")??;
                anyhow::bail!("HTTP server stopped unexpectedly");
            }
            ended = &mut tls_server => {
                ended.context("HTTPS server task")??;
                anyhow::bail!("HTTPS server stopped unexpectedly");
            }
            ended = node_ended => {
                ended.context("cluster task")??;
                anyhow::bail!("the cluster task stopped unexpectedly");
            }
        }
    }
    let _ = stop_tx.send(true);
    // Devices reconnecting from now on are refused at once and go to another server (or
    // retry), instead of being taken in here and dropped when ingest stops below. Bounded:
    // the loops run on the MQTT thread, and nothing there may hold up a stop.
    if tokio::time::timeout(MQTT_CLOSE_TIMEOUT, mqtt.listening.close())
        .await
        .is_err()
    {
        tracing::warn!(
            "the MQTT listeners did not close within {MQTT_CLOSE_TIMEOUT:?}; stopping anyway"
        );
    }
    let drained = async {
        let plain = (&mut server).await;
        if https_on && let Ok(Err(e)) = (&mut tls_server).await {
            tracing::warn!(error = %e, "HTTPS server failed while stopping");
        }
        plain
    };
    match tokio::time::timeout(DRAIN_TIMEOUT, drained).await {
        Ok(ended) => ended.context("HTTP server task")??,
        Err(_) => {
            tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; closing anyway");
            server.abort();
        }
    }
    tls_server.abort();
    if let Some(node) = node {
        // Hands every vshard over (flushed) and leaves the cluster, so the others take over
        // at once instead of after a lease.
        if let Err(e) = node.await.context("cluster task")? {
            tracing::warn!(error = %e, "leaving the cluster failed; the others take over when the leases end");
        }
    }
    // Flush every shard and stop its worker before the catalog closes under it.
    let stopping = router.clone();
    let flushed = tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .context("stopping the shard workers")?;
    if !flushed {
        // Nothing is lost (the WAL keeps it for the next start), but say so in the exit status.
        anyhow::bail!(
            "a shard could not flush its data on stop (see the log); the next start replays it"
        );
    }
    catalog.close().await;
    drop(data_dir);
    tracing::info!("stopped");
    Ok(())
}

/// A TLS listener's certificate and key: the given paths, or the pair `ynni tls selfsigned`
/// writes under the data directory; both must exist.
fn tls_pair(
    data_dir: &std::path::Path,
    section: &str,
    cert: &str,
    key: &str,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let (default_cert, default_key) = crate::tls_cmd::default_paths(data_dir);
    let pick = |given: &str, default: std::path::PathBuf| {
        if given.is_empty() {
            default
        } else {
            std::path::PathBuf::from(given)
        }
    };
    let (cert, key) = (pick(cert, default_cert), pick(key, default_key));
    for f in [&cert, &key] {
        anyhow::ensure!(
            f.is_file(),
            "{section}.tls_listen is set but {} does not exist (run `ynni tls selfsigned` or set {section}.tls_cert and {section}.tls_key)",
            f.display()
        );
    }
    Ok((cert, key))
}

/// The HTTPS listener and its certificates, when `[http] tls_listen` is set.
async fn https_listener(
    settings: &Settings,
    data_dir: &DataDir,
) -> anyhow::Result<Option<(tokio::net::TcpListener, Arc<ynni_web::tls::Certificates>)>> {
    let h = &settings.http;
    if h.tls_listen.is_empty() {
        return Ok(None);
    }
    let (cert, key) = tls_pair(data_dir.root(), "http", &h.tls_cert, &h.tls_key)?;
    let certs = ynni_web::tls::Certificates::load(cert, key, ynni_web::tls::ALPN)
        .context("http.tls_cert")?;
    let addr = h.tls_listen.parse().context("http.tls_listen")?;
    let listener = ynni_web::bind(addr).await?;
    Ok(Some((listener, Arc::new(certs))))
}

/// Reads the HTTPS certificate and key again on each SIGHUP (after a renewal); a pair that
/// does not load is logged and the previous one keeps serving.
async fn reload_on_hangup(
    certs: Option<Arc<ynni_web::tls::Certificates>>,
    mqtts: Option<Arc<ynni_core::tls::Certificates>>,
    mut stop: watch::Receiver<bool>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; certificates reload only on restart");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => {
                match certs.as_ref().map(|c| c.reload()) {
                    None => tracing::info!("SIGHUP: no HTTPS listener to reload"),
                    Some(Ok(())) => tracing::info!("SIGHUP: HTTPS certificate reloaded"),
                    Some(Err(e)) => tracing::error!(error = %e, "SIGHUP: HTTPS certificate not reloaded; the previous one still serves"),
                }
                match mqtts.as_ref().map(|c| c.reload()) {
                    None => {}
                    Some(Ok(())) => tracing::info!("SIGHUP: MQTTS certificate reloaded"),
                    Some(Err(e)) => tracing::error!(error = %e, "SIGHUP: MQTTS certificate not reloaded; the previous one still serves"),
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The metrics recorder, when `[http] metrics_token` is set (otherwise nothing is collected).
fn install_metrics(settings: &Settings) -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    if settings.http.metrics_token.is_empty() {
        return None;
    }
    let handle = ynni_web::ops::metrics::install(env!("CARGO_PKG_VERSION"));
    if handle.is_none() {
        tracing::warn!("metrics recorder already installed; /metrics is off");
    }
    ynni_storage::metrics::describe();
    ynni_ingest::metrics::describe();
    ynni_billing::describe_metrics();
    crate::mqtt_link::describe_metrics();
    crate::backup_task::describe_metrics();
    handle
}

/// `/ready`'s broker check and `/metrics`' connection gauge; with metrics on, a task that
/// folds histogram samples into buckets between scrapes (their memory stays bounded).
fn ops(
    mqtt: &crate::mqtt_link::Started,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    mut stop: watch::Receiver<bool>,
) -> ynni_web::Ops {
    let (up, addr) = (mqtt.broker_up.clone(), mqtt.addr);
    let sessions = mqtt.sessions.clone();
    let mut ops = ynni_web::Ops::default()
        .check("broker", move || {
            if up.load(std::sync::atomic::Ordering::Relaxed) {
                Ok(format!("listening on {addr}"))
            } else {
                Err("the MQTT broker stopped".into())
            }
        })
        .on_scrape(move || {
            metrics::gauge!(crate::mqtt_link::MQTT_CONNECTIONS).set(sessions.connections() as f64);
        });
    if let Some(handle) = metrics {
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ynni_web::ops::metrics::UPKEEP_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => drop(upkeep.render()),
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
        ops = ops.with_metrics(handle);
    }
    ops
}

/// Every HTTP and MQTT connection is an open file, and the listeners size their connection
/// limits from the soft limit (Debian's default is 1,024): raise it to the hard limit the
/// system allows this process.
fn raise_open_file_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 || rl.rlim_cur >= rl.rlim_max {
            return;
        }
        let wanted = libc::rlimit {
            rlim_cur: rl.rlim_max,
            rlim_max: rl.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
            tracing::debug!(
                from = rl.rlim_cur,
                to = rl.rlim_max,
                "open-file limit raised"
            );
        }
    }
}

async fn purge_sessions(catalog: Catalog, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SESSION_PURGE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match catalog.purge_expired_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "expired sessions purged"),
            Err(e) => tracing::warn!(error = %e, "session purge failed"),
        }
    }
}

/// SIGINT and SIGTERM handlers, installed before the server reports itself ready so that a
/// signal arriving at any moment after that line is a clean stop.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
        })
    }

    /// Resolves with the name of the first signal received.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The shard workers' settings for this data directory (shared by `serve` and the offline
/// commands that open the feed store).
pub fn router_config(settings: &Settings, data_dir: &DataDir) -> anyhow::Result<RouterConfig> {
    Ok(RouterConfig {
        workers: worker_count(data_dir)?,
        vshards: ynni_core::vshard::VSHARDS,
        queue: 1024,
        max_nodes: DEFAULT_MAX_NODES,
        store: store_config(settings),
        fixed_dir: data_dir.phpfina_dir(),
        variable_dir: data_dir.phptimeseries_dir(),
        wal_root: data_dir.root().join("wal"),
        // The web UI's live input view needs every input update.
        input_outputs: true,
        per_vshard: false,
    })
}

/// The shard workers' settings in a cluster: a log per owned vshard in the shared directory,
/// the vshards served by one thread per core.
pub fn cluster_router_config(
    settings: &Settings,
    paths: &crate::cluster_node::SharedPaths,
) -> RouterConfig {
    RouterConfig {
        // Host threads, each serving many of the owned vshards (one per core).
        workers: std::thread::available_parallelism().map_or(2, usize::from),
        vshards: ynni_core::vshard::VSHARDS,
        queue: 1024,
        max_nodes: DEFAULT_MAX_NODES,
        store: store_config(settings),
        fixed_dir: paths.phpfina.clone(),
        variable_dir: paths.phptimeseries.clone(),
        wal_root: paths.vshards.clone(),
        input_outputs: true,
        per_vshard: true,
    }
}

fn store_config(settings: &Settings) -> StoreConfig {
    StoreConfig {
        wal: ynni_storage::wal::WalConfig {
            commit_window: Duration::from_millis(settings.storage.commit_window_ms),
            ..Default::default()
        },
        flush_interval: Duration::from_secs(settings.storage.flush_interval_s),
        levels_memory: usize::try_from(settings.storage.levels_memory_mb << 20)
            .unwrap_or(usize::MAX),
        ..StoreConfig::default()
    }
}

/// The number of shard workers: this machine's core count at the first start of a data
/// directory, the count recorded then at every later start (see [`DataDir::shard_workers`]).
fn worker_count(data_dir: &DataDir) -> anyhow::Result<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(data_dir.shard_workers(cores)?)
}
