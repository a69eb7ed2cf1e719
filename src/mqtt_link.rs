//! Wires the embedded broker to ingest: authenticates CONNECTs against the catalog, hands
//! every device message to the shards (through [`Submitter`]) and sends what
//! [`ynni_publish`] builds from their outputs.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc::Receiver;

use ynni_broker::{Access, Authenticate, Done, Handled, Inbound, Login};
use ynni_core::Catalog;
use ynni_core::login_limit::{LoginLimiter, Scope};
use ynni_core::user_queue::UserQueue;
use ynni_ingest::decode::decode_mqtt;
use ynni_ingest::shard::{Output, Router};
use ynni_ingest::submit::{Outcome, Submitter};
use ynni_publish::discovery::Discovery;

/// emonSD's fixed broker login, standing for one account.
#[derive(Clone)]
pub struct Legacy {
    pub username: String,
    pub password: String,
    /// The ynni account it publishes as.
    pub account: String,
    /// The account's id, once a login found it by name: kept for as long as the server runs.
    /// The account cannot be renamed while the setting names it (`user/changeusername`
    /// refuses), so its name is not given up to another account with the devices.
    pub pinned: Arc<std::sync::OnceLock<i64>>,
}

impl Legacy {
    pub fn new(username: String, password: String, account: String) -> Self {
        Self {
            username,
            password,
            account,
            pinned: Arc::default(),
        }
    }
}

/// Devices reconnect on their own, so a misconfigured one fails more often than a person
/// typing: MQTT gets this many times the web's login attempts per window.
const MQTT_ATTEMPTS_FACTOR: u32 = 6;

/// `check`, then a hosted service's quota: right credentials for an account whose writes are
/// refused (balance used up, grace over) open nothing, and say why.
fn with_quota(check: Authenticate, billing: Option<Arc<ynni_billing::Billing>>) -> Authenticate {
    let Some(billing) = billing else {
        return check;
    };
    Arc::new(move |login: Login| {
        let (check, billing) = (check.clone(), billing.clone());
        Box::pin(async move {
            let access = check(login).await;
            match access {
                Access::Account { userid } | Access::Device { userid, .. }
                    if billing.refuses_writes(userid) =>
                {
                    billing.count_refusal(userid);
                    Access::QuotaExceeded
                }
                access => access,
            }
        })
    })
}

/// Username = ynni username, password = the account's write apikey (any topic) or one of the
/// account's device keys (that device's node only); or the legacy login, when configured.
/// Guessing is limited per address and per account as for web logins (`login_limit`); a
/// recheck of an open connection is not an attempt.
fn authenticator(catalog: Catalog, legacy: Option<Legacy>, limits: LoginLimits) -> Authenticate {
    let keys = Arc::new(LoginLimiter::for_random_keys());
    // The legacy login's password is the operator's choice, perhaps guessable: its failures
    // are counted in a table that refuses newcomers when full, as the web's are, rather than
    // one a flood of other failures could empty.
    let guessable = Arc::new(LoginLimiter::default());
    Arc::new(move |login: Login| {
        let is_legacy = legacy
            .as_ref()
            .is_some_and(|l| l.username == login.username);
        let logins = if is_legacy { &guessable } else { &keys }.clone();
        let (catalog, legacy) = (catalog.clone(), legacy.clone());
        Box::pin(async move {
            if login.recheck {
                return check_login(&catalog, legacy, &login.username, login.password).await;
            }
            // Keys are 128-bit random, so what the limit guards against is load, not guessing,
            // and devices behind one address reconnect together (after a restart, through NAT
            // or a proxy): only failures are counted, and an address or account over the limit
            // is refused before its credentials are looked at.
            let attempt = |logins: &LoginLimiter| {
                logins.begin(
                    Scope::Mqtt,
                    login.peer,
                    &login.username,
                    limits.attempts,
                    limits.window,
                )
            };
            match attempt(&logins) {
                Ok(probe) => logins.not_a_guess(&probe),
                Err(_) => {
                    tracing::info!(peer = %login.peer, "MQTT login refused: too many failed attempts");
                    return Access::Denied;
                }
            }
            let access = check_login(&catalog, legacy, &login.username, login.password).await;
            // Counted (a failure) or counted and taken back with the address remembered as one
            // the account logs in from (a success).
            if let Ok(counted) = attempt(&logins) {
                match &access {
                    Access::Denied => {}
                    // Not checked: nothing was guessed, and nothing learnt of the address.
                    Access::Unavailable => logins.not_a_guess(&counted),
                    _ => logins.succeeded(&counted),
                }
            }
            access
        })
    })
}

/// Attempts allowed per window (from `[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub attempts: u32,
    pub window: std::time::Duration,
}

impl LoginLimits {
    pub fn from_settings(l: &ynni_config::LimitSettings) -> Self {
        Self {
            attempts: l.login_attempts.saturating_mul(MQTT_ATTEMPTS_FACTOR),
            window: std::time::Duration::from_secs(l.login_window_s),
        }
    }
}

/// What a CONNECT's credentials open.
async fn check_login(
    catalog: &Catalog,
    legacy: Option<Legacy>,
    user: &str,
    pass: String,
) -> Access {
    if let Some(l) = legacy.filter(|l| l.username == user) {
        // Refused until the account it stands for exists.
        if !ynni_core::keys::secrets_equal(&l.password, &pass) {
            return Access::Denied;
        }
        let found = match l.pinned.get() {
            Some(&id) => catalog.user_by_id(id).await,
            None => catalog.user_by_username(&l.account).await,
        };
        return match found {
            Ok(Some(u)) => Access::Account {
                userid: *l.pinned.get_or_init(|| u.id),
            },
            Ok(None) => Access::Denied,
            Err(e) => {
                tracing::warn!(error = %e, "MQTT login check failed");
                Access::Unavailable
            }
        };
    }
    // No account has a longer name (emoncms allows 30): nothing longer reaches the catalog.
    if user.is_empty() || user.len() > 64 {
        return Access::Denied;
    }
    let pass = pass.to_ascii_lowercase();
    let found = async {
        let Some(u) = catalog.user_by_username(user).await? else {
            return Ok(Access::Denied);
        };
        if ynni_core::keys::secrets_equal(&u.apikey_write, &pass) {
            return Ok(Access::Account { userid: u.id });
        }
        if !ynni_core::keys::looks_like_apikey(&pass) {
            return Ok(Access::Denied);
        }
        Ok(match catalog.device_by_key(&pass).await? {
            Some(d) if d.userid == u.id => Access::Device {
                userid: u.id,
                node: d.nodeid,
            },
            _ => Access::Denied,
        })
    };
    match found.await {
        Ok(a) => a,
        Err(e) => {
            let e: ynni_core::CatalogError = e;
            tracing::warn!(error = %e, "MQTT login check failed");
            Access::Unavailable
        }
    }
}

/// How the broker is set up (from the `[mqtt]` settings).
pub struct LinkOptions {
    pub broker: ynni_broker::Options,
    pub legacy: Option<Legacy>,
    pub login_limits: LoginLimits,
    pub external: Option<ynni_broker::external::External>,
    /// Where input updates are republished; empty: they are not.
    pub input_topic: String,
    /// A hosted service: accounts past their grace period are refused "quota exceeded".
    pub billing: Option<Arc<ynni_billing::Billing>>,
}

/// What the running MQTT side gives the rest of the server.
pub struct Started {
    pub addr: SocketAddr,
    /// Asks for a user's Home Assistant discovery to be published again.
    pub announce: Arc<UserQueue>,
    /// Tells the broker that a user's credentials changed.
    pub credentials: Arc<UserQueue>,
    /// The open connections (cluster mode closes those of users whose shard moved).
    pub sessions: ynni_broker::Sessions,
    /// Whether the broker still delivers messages (false once it stopped).
    pub broker_up: Arc<std::sync::atomic::AtomicBool>,
    /// The MQTTS listener's certificate, reloaded on SIGHUP.
    pub tls: Option<Arc<ynni_core::tls::Certificates>>,
    /// The broker's listeners, closed first when the server stops.
    pub listening: ynni_broker::Listening,
}

/// MQTT messages the broker delivered to ynni (a metric).
pub const MQTT_MESSAGES: &str = "ynni_mqtt_messages_received_total";
/// Open MQTT connections (a metric, read at each scrape).
pub const MQTT_CONNECTIONS: &str = "ynni_mqtt_connections";

/// Gives the MQTT metrics their help text.
pub fn describe_metrics() {
    metrics::describe_counter!(
        MQTT_MESSAGES,
        "MQTT messages published by devices and delivered to ynni"
    );
    metrics::describe_gauge!(MQTT_CONNECTIONS, "Open MQTT connections");
}

/// Starts the broker, the task feeding its messages to the router, and the task publishing
/// outputs and Home Assistant discovery, all on a thread of their own ([`mqtt_thread`]).
pub async fn start(
    opts: LinkOptions,
    catalog: Catalog,
    router: Arc<Router>,
) -> anyhow::Result<Started> {
    let thread = mqtt_thread().await?;
    let server = tokio::runtime::Handle::current();
    thread
        .spawn(start_here(opts, catalog, router, server))
        .await
        .map_err(|e| anyhow::anyhow!("the MQTT thread failed while starting: {e}"))?
}

/// The MQTT side's runtime: one thread (`ynni-mqtt`) for every device connection, the task
/// that hands their messages to the shards and the one that publishes outputs.
///
/// Why not the server's runtime: a device message travels from its connection's task to the
/// feeding task, and its answer back from the feeding task to the connection's, and on a
/// runtime of several workers each of those hand-offs may wake a second worker to steal it.
/// Messages from many devices arrive one at a time, so every message paid those wake-ups.
/// 1,000 devices publishing once a second (the mqtt-1000 load of `benches/e2e.sh`, run alone
/// and alternately with the build before, 2026-12-05): 3.9 to 4.1 context switches per
/// message and 8.7 to 10.2% of a core on the server's two workers, 2.7 to 2.8 and 7.8 to 9.2%
/// on this thread. The peak of 100 emonTx4s (about 100,000 values/s) took 72% of a core in all
/// against 75% before.
///
/// The catalog's lookups (logins, Home Assistant discovery) run on the server's runtime: a
/// PostgreSQL connection opened from this thread would be woken through it for every request
/// that used it later. The publishing of outputs stays here: it is woken by the shards when
/// the acknowledgements are, and moved to the server's runtime it cost 0.3 to 0.8 more
/// context switches per message in the load above.
///
/// The thread runs until the process ends; the broker's listeners close when the server stops.
async fn mqtt_thread() -> anyhow::Result<tokio::runtime::Handle> {
    let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
    // The runtime is built on its thread and never leaves it: dropped in an async context
    // (here, had the thread failed to start) it would panic.
    std::thread::Builder::new()
        .name("ynni-mqtt".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("ynni-mqtt-blocking")
                .build();
            match runtime {
                Ok(rt) => {
                    let _ = handle_tx.send(Ok(rt.handle().clone()));
                    rt.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    let _ = handle_tx.send(Err(e));
                }
            }
        })?;
    Ok(handle_rx
        .await
        .map_err(|_| anyhow::anyhow!("the MQTT thread ended while starting"))??)
}

/// How long a login's check may take before the client is told "server unavailable": within
/// the broker's 10 s for a CONNECT (past it the connection closes unanswered), shorter than
/// the catalog's wait for a database connection (10 s), so an unreachable catalog gets an
/// answer that clients retry.
const LOGIN_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(7);

/// `check`, run on `server`'s runtime, within [`LOGIN_CHECK_TIMEOUT`].
fn on_server(check: Authenticate, server: tokio::runtime::Handle) -> Authenticate {
    Arc::new(move |login: Login| {
        let checking = server.spawn(check(login));
        Box::pin(async move {
            match tokio::time::timeout(LOGIN_CHECK_TIMEOUT, checking).await {
                Ok(Ok(access)) => access,
                Ok(Err(_)) | Err(_) => Access::Unavailable,
            }
        })
    })
}

async fn start_here(
    opts: LinkOptions,
    catalog: Catalog,
    router: Arc<Router>,
    server: tokio::runtime::Handle,
) -> anyhow::Result<Started> {
    let LinkOptions {
        broker,
        legacy,
        login_limits,
        external,
        input_topic,
        billing,
    } = opts;
    if let Some(l) = &legacy {
        tracing::warn!(
            login = %l.username,
            account = %l.account,
            "MQTT legacy login enabled: anyone with the emonSD password publishes as this account"
        );
    }
    let base = broker.base.clone();
    let rate_limits = billing.clone();
    let running = ynni_broker::start(
        broker,
        with_quota(
            on_server(
                authenticator(catalog.clone(), legacy, login_limits),
                server.clone(),
            ),
            billing,
        ),
    )
    .await?;
    let tls = running.tls.clone();
    if let Some(addr) = running.tls_addr {
        tracing::info!("MQTT TLS listening on {addr}");
    }
    if let Some(addr) = running.ws_addr {
        tracing::info!("MQTT websocket listening on {addr}");
    }
    let announce_tx = Arc::new(UserQueue::default());
    let listed = catalog.clone();
    let discovering = server
        .spawn(async move { listed.ha_discovery_users().await })
        .await??;
    for userid in discovering {
        announce_tx.push(userid);
    }
    // Input updates only when they are published: otherwise the shards build none for it.
    let inputs = (!input_topic.is_empty()).then(|| router.subscribe_inputs());
    tokio::spawn(publish_outputs(
        input_topic,
        (router.subscribe_outputs(), inputs),
        announce_tx.clone(),
        running.publisher,
        catalog.clone(),
        router.clone(),
        server.clone(),
    ));
    let credentials_tx = Arc::new(UserQueue::default());
    let sessions = running.sessions.clone();
    let all_sessions = sessions.clone();
    let changed = credentials_tx.clone();
    tokio::spawn(async move {
        loop {
            let userid = changed.pop().await;
            sessions.revalidate(userid).await;
        }
    });
    // The embedded broker's messages go to ingest directly; in external broker mode the
    // external broker's join them in a channel of their own, fed by a task per source.
    let broker_up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let external_mode = external.is_some();
    let inbound = match external {
        None => running.inbound,
        Some(ext) => {
            let (inbound_tx, inbound) = tokio::sync::mpsc::channel(4096);
            let mut from_broker = running.inbound;
            let forward = inbound_tx.clone();
            let up = broker_up.clone();
            tokio::spawn(async move {
                while let Some(m) = from_broker.recv().await {
                    if forward.send(m).await.is_err() {
                        return;
                    }
                }
                broker_stopped(&up);
            });
            let (catalog, account) = (catalog.clone(), ext.account.clone());
            let resolve: ynni_broker::external::ResolveAccount = Arc::new(move || {
                let (catalog, account) = (catalog.clone(), account.clone());
                Box::pin(async move {
                    catalog
                        .user_by_username(&account)
                        .await
                        .ok()
                        .flatten()
                        .map(|u| u.id)
                })
            });
            tokio::spawn(ynni_broker::external::run(ext, resolve, inbound_tx));
            inbound
        }
    };
    let (up, announce) = (broker_up.clone(), announce_tx.clone());
    tokio::spawn(async move {
        feed(inbound, base, router, announce, rate_limits).await;
        // Its only source, the embedded broker, is gone.
        if !external_mode {
            broker_stopped(&up);
        }
    });
    Ok(Started {
        addr: running.addr,
        announce: announce_tx,
        credentials: credentials_tx,
        sessions: all_sessions,
        broker_up,
        tls,
        listening: running.listening,
    })
}

/// `publish_to_mqtt`: the raw value on the user's topic, as emoncms publishes it; each feed
/// update: `ynni/feed/<id>` = `{"time":…,"value":…}`, retained, for Home Assistant and Node-RED;
/// and the Home Assistant discovery of users who asked for it.
async fn publish_outputs(
    input_topic: String,
    (mut outputs, mut inputs): (
        tokio::sync::broadcast::Receiver<Output>,
        Option<tokio::sync::broadcast::Receiver<Output>>,
    ),
    announce: Arc<UserQueue>,
    mut publisher: ynni_broker::Publisher,
    catalog: Catalog,
    router: Arc<Router>,
    server: tokio::runtime::Handle,
) {
    let mut discovery = Discovery::default();
    loop {
        let out = tokio::select! {
            out = outputs.recv() => out,
            out = ynni_ingest::shard::next_output(&mut inputs) => out,
            userid = announce.pop() => {
                // Its catalog lookups run on the server's runtime (`mqtt_thread` says why).
                let (catalog, router, mut known) =
                    (catalog.clone(), router.clone(), std::mem::take(&mut discovery));
                let found = server.spawn(async move {
                    let found = crate::discovery::messages(&mut known, userid, &catalog, &router).await;
                    (known, found)
                });
                let found = match found.await {
                    Ok((known, found)) => {
                        discovery = known;
                        found
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, userid, "discovery not published");
                        continue;
                    }
                };
                match found {
                    Ok(messages) => {
                        for m in messages {
                            if let Err(e) = publisher.publish_retained(userid, &m.topic, m.payload) {
                                tracing::warn!(error = %e, "discovery message not published");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, userid, "discovery not published"),
                }
                continue;
            }
        };
        let out = match out {
            Ok(o) => o,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    skipped = n,
                    "MQTT outputs fell behind; oldest values skipped"
                );
                continue;
            }
            Err(_) => break,
        };
        let Some(m) = ynni_publish::output(out, &input_topic) else {
            continue;
        };
        let sent = if m.retained {
            publisher.publish_retained(m.userid, &m.topic, m.payload)
        } else {
            publisher.publish(m.userid, &m.topic, m.payload)
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "MQTT output not published");
        }
    }
}

/// How many MQTT messages may wait for their WAL sync at once: enough for one group commit to
/// cover many, few enough that a stalled shard soon pushes back on the broker.
const MAX_IN_FLIGHT: usize = 4096;

/// Hands each message to its shard and tells its publisher, once the shard answered, whether
/// it is durable (the broker sends PUBACK/PUBREC only then).
async fn feed(
    mut inbound: Receiver<Inbound>,
    base: String,
    router: Arc<Router>,
    announce: Arc<UserQueue>,
    billing: Option<Arc<ynni_billing::Billing>>,
) {
    let mut submitter = Submitter::new(router, MAX_IN_FLIGHT);
    let messages = metrics::counter!(MQTT_MESSAGES);
    loop {
        let Some(msg) = submitter.when_ready(inbound.recv()).await else {
            break;
        };
        messages.increment(1);
        // `_room` (a large payload's share of the broker's budget) goes with the payload.
        let Inbound {
            userid,
            topic,
            payload,
            done,
            device_node,
            room: _room,
        } = msg;
        if topic == ynni_broker::HA_STATUS {
            // Home Assistant (re)started: it wants the discovery configs again.
            if payload.as_slice() == b"online" {
                announce.push(userid);
            }
            answer(done, Handled::Ignored);
            continue;
        }
        let now = chrono::Utc::now().timestamp();
        let Some(decoded) = decode_mqtt(&topic, &payload, &base, now) else {
            answer(done, Handled::Ignored);
            continue;
        };
        // A device key's message is stored only for its node, as the decoder reads the topic
        // (`emon/emon/other/x` passes a topic check for node `emon` but decodes as `other`).
        if let Some(node) = &device_node
            && decoded.node != decoded_node(node)
        {
            tracing::debug!(userid, node = %decoded.node, "MQTT message of a device key for another node dropped");
            answer(done, Handled::Ignored);
            continue;
        }
        // An account refused while connected (its credit used up by a charge) stores
        // nothing more, even before its connection is closed.
        if let Some(b) = &billing
            && b.refuses_writes(userid)
        {
            b.count_refusal(userid);
            answer(done, Handled::Failed);
            continue;
        }
        // A plan's values per minute hold MQTT as they hold HTTP. Over it, the message is
        // not stored and not acknowledged: the connection closes and the client sends it
        // again later (QoS 0: it is lost, as QoS 0 allows). The minimum interval between a
        // node's posts is HTTP's alone: emonhub publishes one message per input of a reading.
        let mut admission = None;
        if let Some(b) = &billing {
            match b.admit(userid, &[], decoded.values.len()) {
                Ok(a) => admission = Some((b.clone(), a)),
                Err(wait) => {
                    tracing::debug!(userid, wait, "MQTT message over the plan's rate");
                    answer(done, Handled::Failed);
                    continue;
                }
            }
        }
        submitter
            .submit(userid, decoded, move |outcome| {
                if matches!(outcome, Outcome::Failed)
                    && let Some((b, admission)) = admission
                {
                    // Not stored for now: the client sends it again, and its allowance is as
                    // it was. A refusal (a limit) would refuse it again, and is charged.
                    b.give_back(userid, admission);
                }
                answer(done, handled(outcome))
            })
            .await;
    }
    submitter.finish().await;
}

/// A device's node as the decoder reads it from a topic (it drops `:`, as emoncms does, then
/// filters the name): a device on node `aa:bb` publishes `emon/aa:bb/…`, stored as `aabb`.
fn decoded_node(node: &str) -> String {
    let plain: String = node.chars().filter(|&c| c != ':').collect();
    ynni_ingest::decode::filter_node(&plain)
}

/// The broker's message stream ended: it stopped (the readiness probe says so).
fn broker_stopped(up: &std::sync::atomic::AtomicBool) {
    up.store(false, std::sync::atomic::Ordering::Relaxed);
    tracing::error!("the MQTT broker stopped");
}

fn answer(done: Option<Done>, handled: Handled) {
    if let Some(d) = done {
        d.send(handled);
    }
}

/// What a shard's answer means for the publisher: stored; refused for good (a limit, bad
/// data: acknowledged, as sending it again changes nothing); or not stored now.
fn handled(outcome: Outcome) -> Handled {
    match outcome {
        Outcome::Stored => Handled::Stored,
        Outcome::Refused => Handled::Ignored,
        Outcome::Failed => Handled::Failed,
    }
}
