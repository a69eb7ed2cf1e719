//! Wires the embedded broker to ingest: authenticates CONNECTs against the catalog and hands
//! every device message to the shard router.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc::{Receiver, UnboundedReceiver, UnboundedSender};

use crate::discovery::Discovery;
use ynni_broker::{Access, Authenticate, Inbound};
use ynni_core::Catalog;
use ynni_ingest::decode::decode_mqtt;
use ynni_ingest::shard::{IngestError, Output, Pending, Refused, Router, Submission};

/// emonSD's fixed broker login, standing for one account.
#[derive(Clone)]
pub struct Legacy {
    pub username: String,
    pub password: String,
    /// The ynni account it publishes as.
    pub account: String,
}

/// Username = ynni username, password = the account's write apikey (any topic) or one of the
/// account's device keys (that device's node only); or the legacy login, when configured.
fn authenticator(catalog: Catalog, legacy: Option<Legacy>) -> Authenticate {
    Arc::new(move |user: String, pass: String| {
        let catalog = catalog.clone();
        let legacy = legacy.clone();
        Box::pin(async move { check_login(&catalog, legacy, &user, pass).await })
    })
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
        let account = catalog.user_by_username(&l.account).await;
        return if ynni_core::keys::secrets_equal(&l.password, &pass)
            && matches!(account, Ok(Some(_)))
        {
            Access::Account
        } else {
            Access::Denied
        };
    }
    let pass = pass.to_ascii_lowercase();
    let found = async {
        let Some(u) = catalog.user_by_username(user).await? else {
            return Ok(Access::Denied);
        };
        if ynni_core::keys::secrets_equal(&u.apikey_write, &pass) {
            return Ok(Access::Account);
        }
        if !ynni_core::keys::looks_like_apikey(&pass) {
            return Ok(Access::Denied);
        }
        Ok(match catalog.device_by_key(&pass).await? {
            Some(d) if d.userid == u.id => Access::Device(d.nodeid),
            _ => Access::Denied,
        })
    };
    match found.await {
        Ok(a) => a,
        Err(e) => {
            let e: ynni_core::CatalogError = e;
            tracing::warn!(error = %e, "MQTT login check failed");
            Access::Denied
        }
    }
}

/// How the broker is set up (from the `[mqtt]` settings).
pub struct LinkOptions {
    pub listen: SocketAddr,
    pub base: String,
    pub legacy: Option<Legacy>,
    pub external: Option<ynni_broker::external::External>,
    pub tls: Option<ynni_broker::Tls>,
    pub websocket: Option<SocketAddr>,
    /// Where input updates are republished; empty: they are not.
    pub input_topic: String,
}

/// Starts the broker, the task feeding its messages to the router, and the task publishing
/// outputs and Home Assistant discovery; returns the broker's address and the channel that
/// asks for a user's discovery to be published again.
pub async fn start(
    opts: LinkOptions,
    catalog: Catalog,
    router: Arc<Router>,
) -> anyhow::Result<(SocketAddr, UnboundedSender<i64>)> {
    let LinkOptions {
        listen,
        base,
        legacy,
        external,
        tls,
        websocket,
        input_topic,
    } = opts;
    let base = base.as_str();
    if let Some(l) = &legacy {
        tracing::warn!(
            login = %l.username,
            account = %l.account,
            "MQTT legacy login enabled: anyone with the emonSD password publishes as this account"
        );
    }
    let alias = legacy
        .as_ref()
        .map(|l| (l.username.clone(), l.account.clone()));
    let running = ynni_broker::start(
        listen,
        base,
        authenticator(catalog.clone(), legacy),
        alias,
        tls,
        websocket,
    )
    .await?;
    if let Some(addr) = running.tls_addr {
        tracing::info!("MQTT TLS listening on {addr}");
    }
    if let Some(addr) = running.ws_addr {
        tracing::info!("MQTT websocket listening on {addr}");
    }
    let (announce_tx, announce_rx) = tokio::sync::mpsc::unbounded_channel();
    for userid in catalog.ha_discovery_users().await? {
        let _ = announce_tx.send(userid);
    }
    tokio::spawn(publish_outputs(
        input_topic,
        router.subscribe_outputs(),
        announce_rx,
        running.publisher,
        catalog.clone(),
        router.clone(),
    ));
    // The embedded broker's messages and, in external broker mode, the external one's share
    // one ingest path.
    let (inbound_tx, inbound) = tokio::sync::mpsc::channel(4096);
    let mut from_broker = running.inbound;
    let forward = inbound_tx.clone();
    tokio::spawn(async move {
        while let Some(m) = from_broker.recv().await {
            if forward.send(m).await.is_err() {
                break;
            }
        }
    });
    if let Some(ext) = external {
        tokio::spawn(ynni_broker::external::run(ext, inbound_tx));
    }
    tokio::spawn(feed(
        inbound,
        base.to_string(),
        catalog,
        router,
        announce_tx.clone(),
    ));
    Ok((running.addr, announce_tx))
}

/// `publish_to_mqtt`: the raw value on the user's topic, as emoncms publishes it; each feed
/// update: `ynni/feed/<id>` = `{"time":…,"value":…}`, retained, for Home Assistant and Node-RED;
/// and the Home Assistant discovery of users who asked for it.
async fn publish_outputs(
    input_topic: String,
    mut outputs: tokio::sync::broadcast::Receiver<Output>,
    mut announce: UnboundedReceiver<i64>,
    mut publisher: ynni_broker::Publisher,
    catalog: Catalog,
    router: Arc<Router>,
) {
    let mut names: HashMap<i64, String> = HashMap::new();
    let mut discovery = Discovery::default();
    loop {
        let out = tokio::select! {
            out = outputs.recv() => out,
            userid = announce.recv() => {
                let Some(userid) = userid else { break };
                match discovery.messages(userid, &catalog, &router).await {
                    Ok((name, messages)) => {
                        for m in messages {
                            if let Err(e) = publisher.publish_retained(&name, &m.topic, m.payload).await {
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
        // Input values always flow (the web UI shows them live); MQTT gets them only when
        // `mqtt.input_topic` asks for it.
        if input_topic.is_empty() && matches!(out, Output::Input { .. }) {
            continue;
        }
        let userid = match &out {
            Output::Published { userid, .. }
            | Output::Feed { userid, .. }
            | Output::Input { userid, .. } => *userid,
        };
        let username = match names.get(&userid) {
            Some(n) => n.clone(),
            None => match catalog.user_by_id(userid).await {
                Ok(Some(u)) => {
                    names.insert(userid, u.username.clone());
                    u.username
                }
                _ => continue,
            },
        };
        let sent = match out {
            Output::Published { topic, value, .. } => {
                let payload = value.map_or_else(|| "null".to_string(), |v| v.to_string());
                publisher.publish(&username, &topic, payload.into_bytes())
            }
            Output::Input {
                node, name, value, ..
            } => {
                let payload = value.map_or_else(|| "null".to_string(), |v| v.to_string());
                publisher.publish(
                    &username,
                    &format!("{input_topic}/{node}/{name}"),
                    payload.into_bytes(),
                )
            }
            Output::Feed {
                feed, time, value, ..
            } => {
                let payload = serde_json::json!({"time": time, "value": php_number(value)});
                publisher
                    .publish_retained(
                        &username,
                        &format!("ynni/feed/{feed}"),
                        payload.to_string().into_bytes(),
                    )
                    .await
            }
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "MQTT output not published");
        }
    }
}

/// How many MQTT messages may wait for their WAL sync at once: enough for one group commit to
/// cover many, few enough that a stalled shard soon pushes back on the broker.
const MAX_IN_FLIGHT: usize = 512;

async fn feed(
    mut inbound: Receiver<Inbound>,
    base: String,
    catalog: Catalog,
    router: Arc<Router>,
    announce: UnboundedSender<i64>,
) {
    let mut ids: HashMap<String, i64> = HashMap::new();
    let mut in_flight: VecDeque<(Pending, String)> = VecDeque::new();
    while let Some(msg) = inbound.recv().await {
        let userid = match ids.get(&msg.username) {
            Some(&id) => id,
            None => match catalog.user_by_username(&msg.username).await {
                Ok(Some(u)) => {
                    ids.insert(msg.username.clone(), u.id);
                    u.id
                }
                _ => continue,
            },
        };
        if msg.topic == ynni_broker::HA_STATUS {
            // Home Assistant (re)started: it wants the discovery configs again.
            if msg.payload.as_slice() == b"online" {
                let _ = announce.send(userid);
            }
            continue;
        }
        let now = chrono::Utc::now().timestamp();
        let Some(decoded) = decode_mqtt(&msg.topic, &msg.payload, &base, now) else {
            continue;
        };
        let mut submission = Submission {
            userid,
            batches: vec![decoded],
            http: false,
        };
        // Messages are queued in arrival order and acknowledged by the shard later, so many
        // share one WAL sync. A full shard queue waits for earlier messages, then retries:
        // the broker is slowed down, nothing is dropped.
        loop {
            match router.enqueue(submission) {
                Ok(pending) => {
                    in_flight.push_back((pending, msg.username.clone()));
                    break;
                }
                Err(Refused {
                    error: IngestError::Busy,
                    submission: Some(s),
                }) => {
                    submission = s;
                    match in_flight.pop_front() {
                        Some((pending, user)) => settle(pending.await, &user),
                        None => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
                    }
                }
                Err(refused) => {
                    settle(Err(refused.error), &msg.username);
                    break;
                }
            }
        }
        while let Some((pending, _)) = in_flight.front_mut() {
            let outcome = match pending.try_outcome() {
                Some(o) => o,
                None if in_flight.len() >= MAX_IN_FLIGHT => match in_flight.front_mut() {
                    Some((p, _)) => p.await,
                    None => break,
                },
                None => break,
            };
            if let Some((_, user)) = in_flight.pop_front() {
                settle(outcome, &user);
            }
        }
    }
    for (pending, user) in in_flight {
        settle(pending.await, &user);
    }
}

fn settle(outcome: Result<(), IngestError>, user: &str) {
    if let Err(e) = outcome {
        tracing::warn!(error = %e, user, "MQTT message not stored");
    }
}

/// A value as emoncms's JSON has it: whole numbers without `.0`, missing as `null`.
pub(crate) fn php_number(v: Option<f64>) -> serde_json::Value {
    match v {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => serde_json::Value::from(x as i64),
        Some(x) => serde_json::json!(x),
        None => serde_json::Value::Null,
    }
}
