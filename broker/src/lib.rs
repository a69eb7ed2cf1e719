//! The embedded MQTT broker: ynni's own listeners and connection handling in front of rumqttd's
//! router (DESIGN.md §3).
//!
//! A device connects with its ynni username and the account's write apikey (or one of its
//! device keys) and publishes `emon/<node>/<input>` as it does to emoncms's broker. Each
//! connection is served by one task ([`session`]) that owns the socket: it checks the CONNECT
//! ([`connect`]), keeps every topic inside the user's namespace `u/<userid>/…` ([`namespace`]),
//! hands ingest topics to [`Running::inbound`] and answers QoS 1 and 2 publishes only once
//! ingest says they are durable. rumqttd's router does what it is good at: fan-out to
//! subscribers, retained messages, persistent sessions and shared subscriptions. Client ids,
//! sessions and wills are per user ([`Sessions`]).

mod audience;
mod connect;
mod delayed_wills;
pub mod external;
pub mod inbound;
mod listen;
mod namespace;
pub mod pending;
mod router_ids;
mod session;
mod sessions;
mod splice;
mod version;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::{Notification, Router, RouterConfig};
use tokio::sync::{Semaphore, mpsc, oneshot};

pub use sessions::Sessions;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("MQTT address {0} is already in use (is another broker running?)")]
    AddrInUse(SocketAddr),
    #[error("cannot listen for MQTT on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("MQTT TLS: {0}")]
    Tls(String),
    #[error("MQTT broker: {0}")]
    Link(String),
}

/// The topic Home Assistant announces itself on (`online` when it starts).
pub const HA_STATUS: &str = "homeassistant/status";

/// The largest MQTT packet accepted (emonhub's and ESP firmware's are well under 1 KiB).
pub const MAX_PACKET: usize = 256 << 10;
/// The most retained messages the router answers a QoS 0 subscription with (it drops the
/// rest), and the most messages it hands a QoS 0 subscriber per pass. rumqttd's own example
/// value, 200, cut Home Assistant's discovery and `ynni/feed/#` short for an account with
/// more feeds than that; past it, which ones are dropped is arbitrary. It is also about what a
/// subscriber that falls behind may have waiting in memory (a few hundred bytes each by the
/// size of rumqttd's notification, payloads shared: under 1 MB; estimated, not measured), and
/// how much one pass of the router may hand each subscriber, so a
/// pass over many lagging subscribers takes longer (the broker's sends wait if the router's
/// queue of 1,000 notices fills meanwhile). A QoS 1 or 2 subscription gets at most 100
/// retained messages (the router's window of unacknowledged deliveries, a constant of
/// rumqttd's).
pub(crate) const ROUTER_BATCH: u64 = 2_000;

/// The router keeps, for each filter anybody subscribed to, a log of the messages it matched,
/// which it lets go only a whole segment at a time, once it holds this many segments of this
/// size: memory that stays taken whether or not anybody still reads. The size counts only a
/// message's topic and payload; rumqttd's own record of it is several times that, about 190
/// bytes each for small messages. With segments of 1 MiB, 200,000 one-byte messages matched by
/// 64 filters of one account took 1,178 MiB more (`benches/router-memory.sh`, 2026-12-06), so an
/// account's 512 filters ([`audience::MAX_ROUTER_FILTERS`]) could have held eight times that
/// (not measured); with 16 KiB segments the same 64 filters took 43-44 MiB. Four segments of 16 KiB hold 64 KiB of topics and payloads: some 1,200
/// feed values of about 55 bytes (`u/<id>/ynni/feed/<id>` and its JSON) per filter: a
/// subscriber further behind than that (offline with a kept session, or not reading) misses
/// the oldest, as from any broker with bounded memory; a connected one reads them as they come.
const FILTER_LOG_SEGMENT: usize = 16 << 10;
pub(crate) const FILTER_LOG_SEGMENTS: usize = 4;
/// How long a client has to finish its TLS or websocket handshake and send CONNECT.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// The credentials of a CONNECT, with where it came from.
#[derive(Clone)]
pub struct Login {
    pub username: String,
    pub password: String,
    pub peer: IpAddr,
    /// Checked again for a connection already open (a change of the user's credentials),
    /// not a new attempt: login limits do not apply.
    pub recheck: bool,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &connect::quote(&self.username))
            .field("peer", &self.peer)
            .field("recheck", &self.recheck)
            .finish_non_exhaustive()
    }
}

/// What a CONNECT's credentials open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Denied,
    /// The credentials are right but the account may not publish now (a hosted service's
    /// prepaid balance is used up): CONNACK "quota exceeded" on MQTT 5, "not authorised" on
    /// 3.1.1, and an open connection is closed when a recheck says so.
    QuotaExceeded,
    /// The credentials could not be checked now (the catalog did not answer): CONNACK "server
    /// unavailable", so the client retries as it would after a restart, instead of taking a
    /// refusal of its credentials; an open connection a recheck cannot decide is kept.
    Unavailable,
    /// The account's write apikey: any topic in the user's namespace.
    Account {
        userid: i64,
    },
    /// A device key: publishes limited to this node.
    Device {
        userid: i64,
        node: String,
    },
}

/// Decides what a CONNECT's credentials open.
pub type Authenticate =
    Arc<dyn Fn(Login) -> Pin<Box<dyn Future<Output = Access> + Send>> + Send + Sync>;

/// What became of a message handed to ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Durable in the WAL: the publisher may be acknowledged.
    Stored,
    /// Holds nothing to store (not a value, a limit refused it): acknowledged all the same,
    /// as sending it again would not change that.
    Ignored,
    /// Could not be stored now: the publisher is not acknowledged and is disconnected, so it
    /// sends the message again.
    Failed,
}

/// The answer a waiting publisher gets (QoS 1 and 2).
#[derive(Debug)]
pub struct Done(oneshot::Sender<Handled>);

impl Done {
    pub fn send(self, handled: Handled) {
        let _ = self.0.send(handled);
    }
}

/// A message a device published on an ingest topic, already out of its namespace.
#[derive(Debug)]
pub struct Inbound {
    /// The account, fixed when the connection authenticated.
    pub userid: i64,
    /// The topic as the device sent it (`emon/node/input`).
    pub topic: String,
    pub payload: Vec<u8>,
    /// Present when the publisher waits for an acknowledgement.
    pub done: Option<Done>,
    /// The node of the device key the publisher logged in with: the decoded message must be
    /// for it (the broker checks the topic; the decoder, which reads more into a topic,
    /// has the last word).
    pub device_node: Option<String>,
    /// A large payload's room ([`inbound`]), given back when the message is dropped (once
    /// decoded).
    pub room: Option<inbound::Room>,
}

/// A will on its way to the router (already inside its namespace), with its user's mark.
struct Will {
    topic: Bytes,
    payload: Bytes,
    retain: bool,
    heard: audience::Heard,
}

/// Builds a router link (rumqttd's error is large; its text is all that is used).
type LinkFactory =
    Arc<dyn Fn(&str, bool) -> Result<(LinkTx, LinkRx, Notification), String> + Send + Sync>;

/// What every connection task shares.
pub(crate) struct Shared {
    base: String,
    inbound: mpsc::Sender<Inbound>,
    /// Room for large payloads waiting for ingest ([`inbound`]).
    inbound_room: inbound::InboundBudget,
    links: LinkFactory,
    wills: WillSender,
    sessions: Sessions,
    authenticate: Authenticate,
    locate: Option<Locate>,
    audience: Arc<audience::Audience>,
    clean_slots: router_ids::CleanSlots,
    pending: Arc<pending::Pending>,
    delayed_wills: Arc<delayed_wills::DelayedWills>,
    kept_slots: router_ids::KeptSlots,
    max_connections_per_user: usize,
}

impl Shared {
    /// Topics whose messages go to ingest: `<base>` and below, and Home Assistant's status.
    fn is_ingest_topic(&self, topic: &str) -> bool {
        topic == HA_STATUS
            || topic
                .strip_prefix(self.base.as_str())
                .is_some_and(|r| r.is_empty() || r.starts_with('/'))
    }
}

/// Wills go out through one link of the broker's own; a full queue drops (and logs) rather
/// than holding up a closing connection.
#[derive(Clone)]
struct WillSender(mpsc::Sender<Will>);

impl WillSender {
    fn send(&self, will: Will) -> Result<(), ()> {
        self.0.try_send(will).map_err(|_| {
            tracing::warn!("MQTT will dropped: too many at once");
        })
    }
}

/// Publishes into users' namespaces (what process lists' `publish_to_mqtt` sends, feed
/// values, discovery), only as far as the user's subscribers could see it ([`audience`]).
pub struct Publisher {
    audience: Arc<audience::Audience>,
    /// The marks of the users published for so far, so that a message takes no lock shared
    /// with the connections.
    users: HashMap<i64, audience::Heard>,
}

impl Publisher {
    fn user(&mut self, userid: i64) -> &audience::Heard {
        let audience = &self.audience;
        self.users
            .entry(userid)
            .or_insert_with(|| audience.of(userid))
    }

    /// Publishes `payload` on `topic` as seen by the user's clients (QoS 0, not retained, as
    /// emoncms publishes). Dropped while none of the user's clients has subscribed, as any
    /// broker drops a message nobody is subscribed to.
    pub fn publish(
        &mut self,
        userid: i64,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<(), BrokerError> {
        let topic = Bytes::from(namespace::user_topic(userid, topic));
        self.user(userid)
            .publish(topic, Bytes::from(payload), false)
    }

    /// Publishes a retained message in the user's namespace: a subscriber that comes later
    /// gets the latest one at once (feed values, Home Assistant discovery). While none of
    /// the user's clients has subscribed, the latest per topic waits in the broker instead
    /// of the router ([`audience`] says why, and how the order is kept).
    pub fn publish_retained(
        &mut self,
        userid: i64,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<(), BrokerError> {
        let topic = Bytes::from(namespace::user_topic(userid, topic));
        self.user(userid).publish(topic, Bytes::from(payload), true)
    }
}

/// An MQTT-over-TLS listener (MQTTS, usually port 8883): PEM certificate chain and key files.
#[derive(Debug, Clone)]
pub struct Tls {
    pub listen: SocketAddr,
    pub cert: String,
    pub key: String,
}

/// How the broker is set up.
#[derive(Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub tls: Option<Tls>,
    pub websocket: Option<SocketAddr>,
    /// The ingest topic root (`emon`).
    pub base: String,
    /// Open connections at most, over all listeners (lowered to fit the open-file limit).
    pub max_connections: usize,
    /// Open connections of one user at most.
    pub max_connections_per_user: usize,
    /// Handshakes (accept to login) in progress from one address at most, a newer one ending
    /// the oldest; 0: no limit (see `pending`).
    pub max_pending_per_address: usize,
    /// Addresses whose handshakes that limit does not count (loopback, the cluster's nodes).
    pub pending_trusted: pending::Trusted,
    /// Cluster mode: which node's broker serves a user; `None` on one node.
    pub locate: Option<Locate>,
}

/// Where a user's connections are served (cluster mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// This node owns the user's shard.
    Here,
    /// Another node's broker does: the connection is passed on to it after its CONNECT.
    There(SocketAddr),
    /// Nobody serves the shard right now (it is changing hands).
    Nowhere,
}

/// Decides where an authenticated user's connection is served.
pub type Locate = Arc<dyn Fn(i64) -> Place + Send + Sync>;

/// What [`start`] gives back.
pub struct Running {
    /// The address the broker listens on (port 0 resolved).
    pub addr: SocketAddr,
    /// The TLS listener's address, when there is one.
    pub tls_addr: Option<SocketAddr>,
    /// The TLS listener's certificate, to reload (SIGHUP) when it is renewed.
    pub tls: Option<Arc<ynni_core::tls::Certificates>>,
    /// The websocket listener's address, when there is one.
    pub ws_addr: Option<SocketAddr>,
    /// Messages published on ingest topics (`<base>/…`, [`HA_STATUS`]).
    pub inbound: mpsc::Receiver<Inbound>,
    pub publisher: Publisher,
    /// The open connections: tell it when a user's credentials change.
    pub sessions: Sessions,
    /// The listeners, to close when the server stops.
    pub listening: Listening,
}

/// The broker's accepting listeners.
pub struct Listening {
    stop: tokio::sync::watch::Sender<bool>,
    loops: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Held for as long as this is: the accept loops held the only other copies of the
    /// sender of [`Running::inbound`], whose closing means the broker stopped (a fault), so
    /// closing the listeners must not close it.
    _shared: Arc<Shared>,
}

impl Listening {
    /// Stops accepting connections and closes every listening socket, so that devices
    /// reconnecting while the server stops are refused at once and go to another server (or
    /// retry) instead of being taken in and dropped when ingest stops. Open connections are
    /// left as they are: their messages are acknowledged, or not, as before. A second call
    /// returns at once.
    pub async fn close(&self) {
        let _ = self.stop.send(true);
        let loops = std::mem::take(&mut *self.loops.lock().unwrap_or_else(|p| p.into_inner()));
        for l in loops {
            let _ = l.await;
        }
    }
}

/// Starts the broker on the listeners in `opts` (port 0 picks a free port).
pub async fn start(opts: Options, authenticate: Authenticate) -> Result<Running, BrokerError> {
    let max_connections = ynni_core::fd_budget::connection_limit(
        opts.max_connections,
        ynni_core::fd_budget::Listener::Mqtt,
    );
    let plain = listen::bind(opts.listen).await?;
    let addr = local_addr(&plain, opts.listen)?;
    let tls = match &opts.tls {
        Some(t) => {
            let acceptor = Arc::new(listen::tls_pair(&t.cert, &t.key)?);
            let l = listen::bind(t.listen).await?;
            Some((local_addr(&l, t.listen)?, l, acceptor))
        }
        None => None,
    };
    let ws = match opts.websocket {
        Some(a) => {
            let l = listen::bind(a).await?;
            Some((local_addr(&l, a)?, l))
        }
        None => None,
    };

    let router_tx = Router::new(
        0,
        RouterConfig {
            // Above the broker's own limit: the router never refuses silently.
            max_connections: max_connections + 16,
            max_outgoing_packet_count: ROUTER_BATCH,
            max_segment_size: FILTER_LOG_SEGMENT,
            max_segment_count: FILTER_LOG_SEGMENTS,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
    )
    .spawn();
    let factory_tx = router_tx.clone();
    let links: LinkFactory = Arc::new(move |client_id: &str, clean: bool| {
        LinkBuilder::new(client_id, factory_tx.clone())
            .clean_session(clean)
            .dynamic_filters(true)
            .topic_alias_max(0)
            .build()
            .map_err(|e: LinkError| e.to_string())
    });

    // The broker's own link, for everything it publishes itself: outputs and wills, in the
    // order they are sent ([`audience`] says why one link). Its receiving side is drained so
    // the router never waits on it.
    let (out_tx, out_rx, _) = links("ynni-outputs", true).map_err(BrokerError::Link)?;
    let audience = Arc::new(audience::Audience::new(out_tx));
    tokio::spawn(audience.drain(out_rx));
    let (wills, mut will_queue) = mpsc::channel::<Will>(1024);
    tokio::spawn(async move {
        while let Some(w) = will_queue.recv().await {
            if let Err(e) = w.heard.will(w.topic, w.payload, w.retain) {
                tracing::warn!(error = %e, "MQTT will not published");
                break;
            }
        }
    });

    let (inbound_tx, inbound) = mpsc::channel(4096);
    let sessions = Sessions::new(authenticate.clone(), opts.max_connections_per_user);
    let shared = Arc::new(Shared {
        base: opts.base.clone(),
        inbound: inbound_tx,
        inbound_room: inbound::InboundBudget::new(),
        links,
        wills: WillSender(wills),
        sessions: sessions.clone(),
        authenticate,
        locate: opts.locate.clone(),
        audience: audience.clone(),
        clean_slots: router_ids::CleanSlots::default(),
        pending: pending::Pending::new(opts.max_pending_per_address, opts.pending_trusted.clone()),
        delayed_wills: Arc::default(),
        kept_slots: router_ids::KeptSlots::default(),
        max_connections_per_user: opts.max_connections_per_user,
    });
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut listeners = vec![("mqtt", plain, listen::Kind::Plain)];
    let tls_pair = tls.as_ref().map(|(_, _, pair)| pair.clone());
    let tls_addr = tls.map(|(a, l, pair)| {
        listeners.push(("mqtts", l, listen::Kind::Tls(pair)));
        a
    });
    let ws_addr = ws.map(|(a, l)| {
        listeners.push(("mqtt-ws", l, listen::Kind::Websocket));
        a
    });
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut loops = Vec::with_capacity(listeners.len());
    for (name, listener, kind) in listeners {
        let (shared, permits) = (shared.clone(), permits.clone());
        loops.push(tokio::spawn(listen::accept_loop(
            name,
            listener,
            permits,
            stopping.clone(),
            move |socket, peer, permit| {
                let (shared, kind) = (shared.clone(), kind.clone());
                async move {
                    serve_connection(kind, socket, peer, shared).await;
                    drop(permit);
                }
            },
        )));
    }
    Ok(Running {
        addr,
        tls_addr,
        tls: tls_pair,
        ws_addr,
        inbound,
        publisher: Publisher {
            audience,
            users: HashMap::new(),
        },
        sessions,
        listening: Listening {
            stop,
            loops: std::sync::Mutex::new(loops),
            _shared: shared,
        },
    })
}

fn local_addr(l: &tokio::net::TcpListener, asked: SocketAddr) -> Result<SocketAddr, BrokerError> {
    l.local_addr().map_err(|source| BrokerError::Bind {
        addr: asked,
        source,
    })
}

/// A connection whose CONNECT was accepted, with what was read of it.
struct Admitted {
    io: listen::Stream,
    codec: version::AnyVersion,
    read: BytesMut,
    connect_bytes: Bytes,
    /// The sessions' revalidation count before the login check.
    rechecks: u64,
    accepted: connect::Accepted,
}

/// The transport handshake, the CONNECT (within [`CONNECT_DEADLINE`]) and its login check;
/// `None` once the client was answered or went.
async fn admit(
    kind: listen::Kind,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<Admitted> {
    let started = tokio::time::Instant::now();
    // In a cluster, another node's relayed client (from a node's address) is probed as the
    // relay probes this node: a node that vanished leaves no connection held here, whatever
    // keep-alive its client asked for (none, for some).
    if shared.locate.is_some() && shared.pending.trusts(peer.ip()) {
        ynni_core::peer_watch::watch_peer(&socket);
    }
    let mut io =
        match tokio::time::timeout(CONNECT_DEADLINE, listen::handshake(&kind, socket)).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "MQTT transport handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(%peer, "MQTT transport handshake timed out");
                return None;
            }
        };
    let mut codec = version::AnyVersion::default();
    let mut read = BytesMut::with_capacity(1024);
    let left = CONNECT_DEADLINE.saturating_sub(started.elapsed());
    let (packet, connect_bytes) =
        match connect::read_connect(&mut io, &mut codec, &mut read, left).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "MQTT connection closed before CONNECT");
                return None;
            }
        };
    // Credentials changed from here on are checked again once registered.
    let rechecks = shared.sessions.revalidations();
    let accepted = match connect::accept(
        &mut io,
        &codec,
        packet,
        peer,
        &shared.base,
        &shared.authenticate,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "MQTT CONNECT refused");
            return None;
        }
    };
    Some(Admitted {
        io,
        codec,
        read,
        connect_bytes,
        rechecks,
        accepted,
    })
}

/// One accepted socket, from its transport handshake to its end.
async fn serve_connection(
    kind: listen::Kind,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
) {
    let handshake = shared.pending.begin(peer.ip());
    let admitted = tokio::select! {
        biased;
        () = handshake.ended() => {
            tracing::debug!(%peer, "MQTT connection closed: newer handshakes from its address ended it");
            None
        }
        admitted = admit(kind, socket, peer, &shared) => admitted,
    };
    let Some(Admitted {
        mut io,
        codec,
        read,
        connect_bytes,
        rechecks,
        accepted,
    }) = admitted
    else {
        return;
    };
    drop(handshake);
    let userid = accepted.namespace.userid();
    if let Some(locate) = &shared.locate {
        match locate(userid) {
            Place::Here => {}
            Place::There(owner) => {
                splice::run(io, &codec, connect_bytes, read, owner, peer).await;
                return;
            }
            Place::Nowhere => {
                tracing::debug!(%peer, userid, "MQTT connection refused: the user's shard is moving");
                connect::refuse_unavailable(&mut io, &codec).await;
                return;
            }
        }
    }
    let registration = match shared
        .sessions
        .register(
            userid,
            &accepted.session_key,
            accepted.login.clone(),
            accepted.access.clone(),
        )
        .await
    {
        Ok(r) => r,
        Err(sessions::RegisterError::TooMany) => {
            tracing::info!(%peer, userid, "MQTT connection refused: the user's connection limit is reached");
            connect::refuse_busy(&mut io, &codec).await;
            return;
        }
    };
    // The client is back: a will it left waiting is not sent (MQTT 5's will delay).
    shared.delayed_wills.cancel(userid, &accepted.session_key);
    if shared.sessions.revalidations() != rechecks {
        // Credentials were rechecked while this connection was being accepted, perhaps
        // before it was registered (and so not among those rechecked): check them again.
        let now = (shared.authenticate)(Login {
            recheck: true,
            ..accepted.login.clone()
        })
        .await;
        if now != accepted.access && now != Access::Unavailable {
            tracing::info!(%peer, userid, "MQTT connection refused: its credentials were revoked while it connected");
            drop(registration);
            connect::refuse_revoked(&mut io, &codec).await;
            return;
        }
    }
    session::run(io, codec, read, peer, accepted, registration, shared).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// An MQTT 3.1.1 CONNECT: client `a`, username `u`, password `p`, clean session.
    const CONNECT: [u8; 21] = [
        0x10, 19, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 1, b'a', 0, 1, b'u', 0, 1, b'p',
    ];

    /// A broker on a free loopback port.
    fn local_options() -> Options {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            websocket: None,
            base: "emon".into(),
            max_connections: 16,
            max_connections_per_user: 4,
            max_pending_per_address: 0,
            pending_trusted: Arc::new(|_| false),
            locate: None,
        }
    }

    /// Whether the server's end of the connection from `client` has TCP keepalive on: its
    /// row in `/proc/net/tcp` runs the keepalive timer (`tr` 2) while nothing is in flight.
    #[cfg(target_os = "linux")]
    fn server_end_probes(server: SocketAddr, client: SocketAddr) -> bool {
        let hex = |a: SocketAddr| match a {
            SocketAddr::V4(a) => format!(
                "{:08X}:{:04X}",
                u32::from_ne_bytes(a.ip().octets()),
                a.port()
            ),
            SocketAddr::V6(_) => String::new(),
        };
        let tcp = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
        tcp.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 5 && f[1] == hex(server) && f[2] == hex(client) && f[5].starts_with("02:")
        })
    }

    /// In a cluster, a connection from a node (trusted address: a relay) is probed, so one
    /// whose node vanished does not hold its place; a lone server's connections are not.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn relayed_connections_in_a_cluster_are_probed() {
        let allow: Authenticate = Arc::new(|_| Box::pin(async { Access::Account { userid: 1 } }));
        let mut connack = [0u8; 4];
        for cluster in [true, false] {
            let options = Options {
                pending_trusted: Arc::new(|ip: std::net::IpAddr| ip.is_loopback()),
                locate: cluster.then(|| Arc::new(|_| Place::Here) as Locate),
                ..local_options()
            };
            let running = start(options, allow.clone()).await.expect("start");
            let mut client = TcpStream::connect(running.addr).await.expect("connect");
            client.write_all(&CONNECT).await.expect("send CONNECT");
            client.read_exact(&mut connack).await.expect("CONNACK");
            assert_eq!(connack, [0x20, 2, 0, 0]);
            let me = client.local_addr().expect("addr");
            assert_eq!(
                server_end_probes(running.addr, me),
                cluster,
                "cluster: {cluster}"
            );
        }
    }

    /// A key revoked while a connection is between its login check and its registration
    /// (where `revalidate` does not find it yet) still closes it: the CONNACK refuses it.
    #[tokio::test]
    async fn credentials_revoked_while_connecting_refuse_the_connection() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let options = local_options();
        let valid = Arc::new(AtomicBool::new(true));
        let checked = Arc::new(tokio::sync::Notify::new());
        let (v, c) = (valid.clone(), checked.clone());
        // The first check answers from before the revocation, slowly.
        let auth: Authenticate = Arc::new(move |l: Login| {
            let ok = v.load(Ordering::SeqCst);
            let c = c.clone();
            Box::pin(async move {
                if !l.recheck {
                    c.notify_one();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                if ok {
                    Access::Account { userid: 1 }
                } else {
                    Access::Denied
                }
            })
        });
        let running = start(options, auth).await.expect("start");
        let mut client = TcpStream::connect(running.addr).await.expect("connect");
        client.write_all(&CONNECT).await.expect("send CONNECT");
        checked.notified().await;
        valid.store(false, Ordering::SeqCst);
        running.sessions.revalidate(1).await;
        let mut connack = [0u8; 4];
        client.read_exact(&mut connack).await.expect("CONNACK");
        assert_eq!(connack, [0x20, 2, 0, 5], "refused: not authorised");
        assert_eq!(running.sessions.connections(), 0);
    }

    /// An address with the limit of handshakes in progress has its oldest one ended by a new
    /// connection, so connections held idle cannot shut out others from the same address; a
    /// handshake that ends (here, a login) no longer counts.
    #[tokio::test]
    async fn a_new_handshake_ends_the_oldest_of_its_address_past_the_limit() {
        let options = Options {
            max_pending_per_address: 2,
            pending_trusted: Arc::new(|_| false),
            ..local_options()
        };
        let allow: Authenticate = Arc::new(|_| Box::pin(async { Access::Account { userid: 1 } }));
        let running = start(options, allow).await.expect("start");
        let mut buf = [0u8; 4];
        // Two connections that send nothing hold both places; one logs in, then the other
        // is the oldest in progress.
        let mut first = TcpStream::connect(running.addr).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut idle = TcpStream::connect(running.addr).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
        first.write_all(&CONNECT).await.expect("send CONNECT");
        first.read_exact(&mut buf).await.expect("CONNACK");
        assert_eq!(buf, [0x20, 2, 0, 0], "accepted");
        let _second_idle = TcpStream::connect(running.addr).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Both places are taken by idle connections: a new one ends the oldest at once.
        let mut newest = TcpStream::connect(running.addr).await.expect("connect");
        let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
            .await
            .expect("ended at once, not at the CONNECT deadline")
            .unwrap_or(0);
        assert_eq!(n, 0, "the oldest idle connection was answered, not closed");
        // Another client id, so that it does not take over the first one's session.
        let mut other = CONNECT;
        other[14] = b'b';
        newest.write_all(&other).await.expect("send CONNECT");
        let mut connack = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), newest.read_exact(&mut connack))
            .await
            .expect("answered")
            .expect("CONNACK");
        assert_eq!(connack[0], 0x20, "the newest connection was served");
        // The logged-in connection was never counted: it is still open.
        first.write_all(&[0xC0, 0]).await.expect("PINGREQ");
        first.read_exact(&mut buf[..2]).await.expect("PINGRESP");
        assert_eq!(&buf[..2], &[0xD0, 0]);
    }

    /// An MQTT 3.1.1 CONNECT of `client` (username `u`, password `p`).
    fn connect_packet(client: &str, clean: bool) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4];
        body.push(if clean { 0xC2 } else { 0xC0 });
        body.extend([0, 60]);
        body.extend((client.len() as u16).to_be_bytes());
        body.extend(client.as_bytes());
        body.extend([0, 1, b'u', 0, 1, b'p']);
        let mut packet = vec![0x10, body.len() as u8];
        packet.extend(body);
        packet
    }

    /// Connects `client` with a kept session and leaves with a DISCONNECT; whether the
    /// CONNACK said a session was present.
    async fn kept_visit(addr: SocketAddr, client: &str) -> bool {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(&connect_packet(client, false))
            .await
            .expect("CONNECT");
        let mut connack = [0u8; 4];
        s.read_exact(&mut connack).await.expect("CONNACK");
        assert_eq!((connack[0], connack[3]), (0x20, 0), "{client} accepted");
        s.write_all(&[0xE0, 0]).await.expect("DISCONNECT");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        connack[2] & 1 == 1
    }

    /// An account keeps at most its connection limit of sessions in the router: a new client
    /// id past that takes the place of the one used longest ago, which starts afresh when it
    /// comes back, and no client ever resumes another's session.
    #[tokio::test]
    async fn kept_sessions_are_bounded_per_account_and_never_shared() {
        let options = local_options();
        let limit = options.max_connections_per_user;
        let allow: Authenticate = Arc::new(|_| Box::pin(async { Access::Account { userid: 1 } }));
        let running = start(options, allow).await.expect("start");
        let ids: Vec<String> = (0..=limit).map(|i| format!("k{i}")).collect();
        for id in &ids[..limit] {
            assert!(!kept_visit(running.addr, id).await, "{id} is new");
        }
        assert!(
            kept_visit(running.addr, "k1").await,
            "k1's session was kept"
        );
        // One more: k0, used longest ago, gives its place; k{limit} does not get its session.
        assert!(
            !kept_visit(running.addr, &ids[limit]).await,
            "nothing resumed"
        );
        assert!(
            kept_visit(running.addr, &ids[limit]).await,
            "its own is kept now"
        );
        assert!(kept_visit(running.addr, "k1").await, "k1's is still kept");
        assert!(!kept_visit(running.addr, "k0").await, "k0's was forgotten");
    }

    /// Closing the listeners, while one waits for a connection, refuses new connections at once.
    #[tokio::test]
    async fn closed_listeners_refuse_new_connections() {
        let options = local_options();
        let deny: Authenticate = Arc::new(|_| Box::pin(async { Access::Denied }));
        let mut running = start(options, deny).await.expect("start");
        // One connection served (credentials refused: 5), so the listener has been waiting
        // for the next since.
        let mut first = TcpStream::connect(running.addr).await.expect("connect");
        first.write_all(&CONNECT).await.expect("send CONNECT");
        let mut connack = [0u8; 4];
        first.read_exact(&mut connack).await.expect("CONNACK");
        assert_eq!(connack, [0x20, 2, 0, 5]);
        tokio::time::timeout(Duration::from_secs(10), running.listening.close())
            .await
            .expect("the listeners closed");
        let refused = TcpStream::connect(running.addr).await;
        assert!(refused.is_err(), "a connection after close was taken in");
        // Once the last connection is gone, ingest's channel stays open: its closing says the
        // broker failed.
        let mut rest = Vec::new();
        first
            .read_to_end(&mut rest)
            .await
            .expect("closed by the server");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(
            running.inbound.try_recv(),
            Err(mpsc::error::TryRecvError::Empty)
        ));
    }
}
