//! The embedded MQTT broker: rumqttd on ynni's runtime, with per-user authentication and a
//! topic namespace per user (DESIGN.md §3).
//!
//! A device connects with its ynni username and the account's write apikey, and publishes
//! `emon/<node>/<input>` as it does to emoncms's broker. Every topic a connection publishes,
//! subscribes to or sets as its will is rewritten to `u/<username>/…` on the way in, and the
//! prefix is taken off on the way out, so a client never sees or reaches another user's topics
//! (a subscription to `#` covers its own namespace only). The in-process ingest link
//! subscribes `u/+/<base>/#` and reads the user from the topic.

mod devices;
pub mod external;
mod guard;
mod tenant;
mod version;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use rumqttd::local::LinkBuilder;
use rumqttd::{
    ConnectionSettings, LinkType, Notification, Router, RouterConfig, Server, ServerSettings,
};

pub use devices::{Access, DeviceSessions};
pub use tenant::TenantNs;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("MQTT address {0} is already in use (is another broker running?)")]
    AddrInUse(SocketAddr),
    #[error("cannot listen for MQTT on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("MQTT broker: {0}")]
    Link(String),
}

/// The topic Home Assistant announces itself on (`online` when it starts).
pub const HA_STATUS: &str = "homeassistant/status";

/// Decides what a CONNECT's username and password open.
pub type Authenticate =
    Arc<dyn Fn(String, String) -> Pin<Box<dyn Future<Output = Access> + Send>> + Send + Sync>;

/// A message a device published, already out of its namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub username: String,
    /// The topic as the device sent it (`emon/node/input`).
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Publishes into users' namespaces (what process lists' `publish_to_mqtt` sends).
pub struct Publisher {
    link: rumqttd::local::LinkTx,
}

impl Publisher {
    /// Publishes `payload` on `topic` as seen by `username`'s clients (QoS 0, not retained, as
    /// emoncms publishes).
    pub fn publish(
        &mut self,
        username: &str,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<(), BrokerError> {
        self.link
            .publish(format!("{}{username}/{topic}", "u/"), payload)
            .map(|_| ())
            .map_err(|e| BrokerError::Link(e.to_string()))
    }

    /// Publishes a retained message in `username`'s namespace: a subscriber that comes later
    /// gets the latest one at once (feed values, Home Assistant discovery).
    pub async fn publish_retained(
        &mut self,
        username: &str,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<(), BrokerError> {
        let publish = rumqttd::protocol::Publish::new(
            bytes::Bytes::from(format!("u/{username}/{topic}")),
            bytes::Bytes::from(payload),
            true,
        );
        self.link
            .send(rumqttd::protocol::Packet::Publish(publish, None))
            .await
            .map(|_| ())
            .map_err(|e| BrokerError::Link(e.to_string()))
    }
}

/// An MQTT-over-TLS listener (MQTTS, usually port 8883): PEM certificate chain and key files.
#[derive(Debug, Clone)]
pub struct Tls {
    pub listen: SocketAddr,
    pub cert: String,
    pub key: String,
}

/// rumqttd binds inside its accept loop and cannot report the port; binding once here makes
/// "in use" a clear start-up error and resolves port 0.
async fn resolve(listen: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let probe = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                BrokerError::AddrInUse(listen)
            } else {
                BrokerError::Bind {
                    addr: listen,
                    source,
                }
            }
        })?;
    probe.local_addr().map_err(|source| BrokerError::Bind {
        addr: listen,
        source,
    })
}

/// What [`start`] gives back.
pub struct Running {
    /// The address the broker listens on (port 0 resolved).
    pub addr: SocketAddr,
    /// The TLS listener's address, when there is one.
    pub tls_addr: Option<SocketAddr>,
    /// The websocket listener's address, when there is one.
    pub ws_addr: Option<SocketAddr>,
    /// Messages published under `<base>/`, and on [`HA_STATUS`], by authenticated clients.
    pub inbound: tokio::sync::mpsc::Receiver<Inbound>,
    pub publisher: Publisher,
}

/// Starts the broker on `listen` (port 0 picks a free port).
/// `legacy`: a fixed login name and the username of the account it stands for (emonSD's
/// `emonpi` login); its topics live in that account's namespace.
pub async fn start(
    listen: SocketAddr,
    base: &str,
    authenticate: Authenticate,
    legacy: Option<(String, String)>,
    tls: Option<Tls>,
    websocket: Option<SocketAddr>,
) -> Result<Running, BrokerError> {
    let listen = resolve(listen).await?;
    let tls = match tls {
        Some(t) => Some(Tls {
            listen: resolve(t.listen).await?,
            ..t
        }),
        None => None,
    };
    let router_cfg = RouterConfig {
        max_connections: 10_000,
        max_outgoing_packet_count: 200,
        max_segment_size: 100 << 20,
        max_segment_count: 10,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    let router_tx = Router::new(0, router_cfg).spawn();
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 256 << 10,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let sessions = Arc::new(DeviceSessions::default());
    let auth_sessions = sessions.clone();
    let auth_base = base.to_string();
    let login_guard = Arc::new(guard::LoginGuard::default());
    connections.set_auth_handler(move |client_id: String, user: String, pass: String| {
        let authenticate = authenticate.clone();
        let sessions = auth_sessions.clone();
        let base = auth_base.clone();
        let login_guard = login_guard.clone();
        async move {
            // The username becomes a topic level: MQTT wildcards and separators never pass.
            if user.is_empty() || user.contains(['/', '+', '#']) {
                return false;
            }
            tokio::time::sleep(login_guard.delay(&user)).await;
            let access = authenticate(user.clone(), pass).await;
            let ok = sessions.authenticated(&client_id, &access, &base);
            login_guard.record(&user, ok);
            ok
        }
    });
    let websocket = match websocket {
        Some(addr) => Some(resolve(addr).await?),
        None => None,
    };
    let legacy = legacy.map(Arc::new);
    let mut listeners = vec![("ynni-mqtt", listen, None, LinkType::Remote)];
    if let Some(t) = &tls {
        listeners.push((
            "ynni-mqtts",
            t.listen,
            Some(rumqttd::TlsConfig::Rustls {
                capath: None,
                certpath: t.cert.clone(),
                keypath: t.key.clone(),
            }),
            LinkType::Remote,
        ));
    }
    if let Some(addr) = websocket {
        // MQTT 3.1.1 inside websocket frames (browsers, Node-RED dashboards).
        listeners.push(("ynni-mqtt-ws", addr, None, LinkType::Websocket));
    }
    for (name, addr, tls_config, link_type) in listeners {
        let settings = ServerSettings {
            name: name.into(),
            listen: addr,
            tls: tls_config,
            next_connection_delay_ms: 0,
            connections: connections.clone(),
        };
        let mut server = Server::new(
            settings,
            router_tx.clone(),
            TenantNs::new(
                version::AnyVersion::default(),
                sessions.clone(),
                base,
                legacy.clone(),
            ),
        );
        tokio::spawn(async move {
            if let Err(e) = server.start(link_type).await {
                tracing::error!(error = ?e, listener = name, "MQTT listener stopped");
            }
        });
    }

    // A second link only publishes; its receiving side is drained so the router never waits on it.
    let (out_tx, mut out_rx, _) = LinkBuilder::new("ynni-outputs", router_tx.clone())
        // Publish to any topic, not only to filters that existed when the link was made.
        .dynamic_filters(true)
        .build()
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    tokio::spawn(async move {
        loop {
            match out_rx.next().await {
                Ok(Some(Notification::Unschedule)) => {
                    if out_rx.wake().await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let (mut link_tx, mut link_rx, _) = LinkBuilder::new("ynni-ingest", router_tx)
        .build()
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    link_tx
        .subscribe(format!("u/+/{base}/#"))
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    // Home Assistant's birth message: its discovery configs are published again.
    link_tx
        .subscribe(format!("u/+/{HA_STATUS}"))
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    tokio::spawn(async move {
        // Keep the link's sender alive for as long as the link is read.
        let _link_tx = link_tx;
        loop {
            match link_rx.next().await {
                Ok(Some(Notification::Forward(f))) => {
                    let topic = String::from_utf8_lossy(&f.publish.topic).into_owned();
                    let Some((username, inner)) = tenant::split(&topic) else {
                        continue;
                    };
                    let msg = Inbound {
                        username: username.to_string(),
                        topic: inner.to_string(),
                        payload: f.publish.payload.to_vec(),
                    };
                    // Waiting here pushes back on the broker rather than dropping messages.
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
                // rumqttd parks a link that does not ask again: without this it stalls.
                Ok(Some(Notification::Unschedule)) => {
                    if link_rx.wake().await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "MQTT ingest link failed");
                    break;
                }
            }
        }
    });
    Ok(Running {
        addr: listen,
        tls_addr: tls.map(|t| t.listen),
        ws_addr: websocket,
        inbound: rx,
        publisher: Publisher { link: out_tx },
    })
}
