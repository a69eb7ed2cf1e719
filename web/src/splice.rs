//! Cluster mode: a plain-HTTP connection whose first request names an account another node
//! owns is handed, whole, to that node (DESIGN §5).
//!
//! Forwarding request by request (`forward`) makes the entry node parse, authenticate and
//! answer every request, which is most of what serving it costs. A client that keeps its
//! connection open and posts for one account (Home Assistant, a gateway posting for one home)
//! would pay that on every request. So, before HTTP is served on a connection, the entry node
//! reads the first request's head; when the apikey it presents (query `apikey`, else
//! `Authorization: Bearer`) belongs to an account this node remembers and another node owns,
//! it opens a stream to that owner on the connection the two nodes share ([`mux`]: HTTP/2, one
//! stream per handed-over connection) or, with an owner of an older build, connects to it and
//! sends [`MAGIC`]'s one-line preamble. Only when the owner accepts the stream or acknowledges
//! the preamble ([`ACK`]) does the entry node send the bytes read so far, and from then on it
//! only copies bytes both ways until either side closes. An owner that does not
//! acknowledge within [`ACK_TIMEOUT`] (a build that does not speak this version, which answers
//! the preamble as a bad HTTP request; a node with another secret, which closes the connection
//! unanswered; a node too busy to answer) has been sent nothing of the client's, so the
//! connection is served where it arrived, forwarded request by request, as if it had never
//! been offered; and that owner is not offered connections again for [`REFUSED_FOR`], so that
//! a rolling upgrade does not cost every kept-alive connection a refused offer.
//!
//! The choice is a guess that cannot make an answer wrong, only slower: the node that receives
//! the connection serves every request on it as if the client had connected there itself
//! (it authenticates each one, and forwards request by request what it does not own). It takes
//! one thing on trust, the client's address in the preamble, and only with the cluster's
//! secret. The preamble, and the owner's acknowledgement, are
//!
//! ```text
//! YNNI-SPLICE/2 <client ip:port> <vshard> <the cluster's secret, hex>\r\n
//! YNNI-SPLICE/2 OK\r\n
//! ```
//!
//! A node also accepts version 1 (the same line, sent by builds of 2026-12-05 with the
//! client's bytes straight after it), which it does not acknowledge, so that those nodes'
//! hand-overs keep working while a cluster is upgraded.
//!
//! A node that receives a preamble with any other secret closes the connection unanswered. A
//! connection handed over once is never handed on again: the node it was handed to forwards
//! request by request what it does not own (another account on the same connection, served as
//! if the client had connected there). When that is a request of the vshard the connection
//! was handed over for, the vshard has moved since (a drain, a failover): that reply says
//! `Connection: close`, so the client's next connection is routed afresh instead of taking
//! two hops for the rest of its life.
//!
//! Served where it arrived instead: HTTPS (the entry node holds the certificate), a first
//! request without an apikey (browser sessions, device keys, share links), a key this node has
//! not seen yet (answering it here remembers it for the next connection), one that asks to
//! close after its request (a connection per post, as emonhub and the firmware send: the
//! pooled, batched forwarding is cheaper than a new connection to the owner), and an owner that
//! cannot be reached (the request is then forwarded, or answered 503, as before).

pub(crate) mod mux;
mod prefixed;
mod tunnel;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

pub use prefixed::Prefixed;

use crate::forward::Forwarder;
use crate::state::AppState;

/// The preamble's first word.
pub const MAGIC: &[u8] = b"YNNI-SPLICE/2 ";
/// The first word of version 1's preamble, which is not acknowledged.
const MAGIC_V1: &[u8] = b"YNNI-SPLICE/1 ";
/// The owner's whole answer to a version 2 preamble it accepts.
pub const ACK: &[u8] = b"YNNI-SPLICE/2 OK\r\n";
/// How long the entry node waits for [`ACK`] before serving the connection itself.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an owner that did not acknowledge is not offered connections again: during a
/// rolling upgrade every kept-alive connection would otherwise pay a refused offer.
const REFUSED_FOR: Duration = Duration::from_secs(60);
/// A preamble is one short line: an address and a hex secret.
const PREAMBLE_MAX: usize = 1024;
/// The first request's head is looked at only if it fits in this much; a longer one is
/// served where it arrived.
const HEAD_MAX: usize = 8 * 1024;
/// Headers looked at in the first request's head.
const HEADERS_MAX: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// After the server is told to stop, how long a handed-over connection may go on (a reply in
/// progress finishes; the client then reconnects to another node).
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The longest the owner may send nothing before a handed-over connection is dropped. The
/// owner itself closes a connection idle past its header deadline, answers within a forwarded
/// request's minute, and keeps a live-update stream talking every 15 s; an owner silent for
/// longer is cut off from this node (a partition sends no FIN), and the client reconnects.
const OWNER_SILENCE: Duration = Duration::from_secs(90);

/// The request extension that marks requests on a connection another node handed over, for
/// the account of this vshard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HandedOver {
    pub vshard: u32,
}

/// Where the account an apikey opens is served: its vshard and its owner's address, when this
/// node knows the key and another node owns the vshard.
type Route = Box<dyn Fn(&str) -> Option<(u32, String)> + Send + Sync>;

/// Decides where a plain-HTTP connection is served, and hands it over.
pub(crate) struct Splicer {
    route: Route,
    /// The preamble's secret: the cluster's secret in hex (whatever characters it has, the
    /// line stays one line).
    secret_hex: String,
    /// [`OWNER_SILENCE`], shorter in tests.
    owner_silence: Duration,
    /// Owners that did not acknowledge a hand-over, and when: for [`REFUSED_FOR`] after that
    /// their connections are served here without asking again (one entry per node).
    refused: std::sync::Mutex<HashMap<String, Instant>>,
    /// Shared connections to owners that speak [`mux`]'s protocol; without, each connection
    /// is handed over on one of its own.
    mux: Option<mux::Pool>,
}

/// How a connection is to go on after its first bytes.
pub(crate) enum Opening {
    /// Serve HTTP here: the bytes read so far, to be served first; the client's address (the
    /// peer's, or the one the handing node vouched for); whether another node handed it over.
    Serve {
        read: Bytes,
        client: SocketAddr,
        handed_over: Option<HandedOver>,
    },
    /// Another node's shared connection (see [`mux`]), its preamble accepted: serve its
    /// streams, starting with the bytes read so far.
    Multiplexed { read: Bytes },
    /// Nothing more to do: the connection was handed over and has ended, or it is to be
    /// closed (silent past the header deadline, gone, or a preamble with a wrong secret).
    Finished,
    /// The first request's account is another node's: to be offered to it
    /// ([`Splicer::offer`]). Only [`Splicer::read_opening`] answers this.
    HandOver(Offer),
}

/// A connection to offer to its account's owner: the bytes read so far, the client's address,
/// and the owner (of `vshard`).
pub(crate) struct Offer {
    read: Bytes,
    client: SocketAddr,
    vshard: u32,
    owner: String,
}

impl Splicer {
    /// A splicer for a node in a cluster; `None` on one node alone.
    pub fn new(state: &AppState) -> Option<Self> {
        let forwarder: Arc<Forwarder> = state.forwarder.clone()?;
        let secret = forwarder.secret().to_string();
        let state = state.clone();
        // Only a key this node remembers: the guess must cost no query.
        let route = move |key: &str| {
            let id = state.catalog.remembered_user_id(key)?;
            let vshard = state.router.vshard(id);
            if state.router.serves(vshard) {
                return None;
            }
            Some((vshard, forwarder.owner(vshard)?))
        };
        let mut splicer = Self::with_route(&secret, Box::new(route));
        splicer.mux = Some(mux::Pool::new(
            &splicer.secret_hex,
            ACK_TIMEOUT,
            REFUSED_FOR,
        ));
        Some(splicer)
    }

    pub(crate) fn with_route(secret: &str, route: Route) -> Self {
        Self {
            secret_hex: hex::encode(secret.as_bytes()),
            route,
            owner_silence: OWNER_SILENCE,
            refused: std::sync::Mutex::default(),
            mux: None,
        }
    }

    /// Whether `owner` did not acknowledge a hand-over, or could not be reached, less than
    /// [`REFUSED_FOR`] ago.
    fn lately_refused(&self, owner: &str) -> bool {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        refused
            .get(owner)
            .is_some_and(|t| t.elapsed() < REFUSED_FOR)
    }

    /// Remembers that `owner` did not acknowledge (or could not be reached); true when it had
    /// not lately (say so then).
    fn note_refusal(&self, owner: &str) -> bool {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        refused
            .insert(owner.to_string(), now)
            .is_none_or(|t| now.saturating_duration_since(t) >= REFUSED_FOR)
    }

    /// Reads the connection's first bytes (within `header_timeout`) and says how to go on:
    /// serve it here, serve another node's shared connection, or hand it to its account's
    /// owner ([`Opening::HandOver`]: the caller may move it to the cluster's link thread
    /// before [`Splicer::offer`] hands it over).
    pub(crate) async fn read_opening<S>(
        &self,
        socket: &mut S,
        peer: SocketAddr,
        header_timeout: Duration,
        stop: watch::Receiver<bool>,
    ) -> Opening
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = Instant::now() + header_timeout;
        let mut buf = BytesMut::with_capacity(2048);
        // A preamble, or the start of a request?
        while [MAGIC, MAGIC_V1, mux::MAGIC]
            .iter()
            .any(|m| buf.len() < m.len() && m.starts_with(&buf))
        {
            if !read_more(socket, &mut buf, deadline).await {
                return Opening::Finished;
            }
        }
        if buf.starts_with(mux::MAGIC) {
            return self.shared(socket, buf, peer, deadline, &stop).await;
        }
        if buf.starts_with(MAGIC) {
            return self
                .handed_over(socket, buf, peer, deadline, MAGIC, &stop)
                .await;
        }
        if buf.starts_with(MAGIC_V1) {
            return self
                .handed_over(socket, buf, peer, deadline, MAGIC_V1, &stop)
                .await;
        }
        loop {
            match first_head(&buf) {
                Head::Incomplete if buf.len() < HEAD_MAX => {
                    if !read_more(socket, &mut buf, deadline).await {
                        return Opening::Finished;
                    }
                }
                Head::Incomplete | Head::Unusable => break,
                Head::Key(key) => {
                    if let Some((vshard, owner)) = (self.route)(&key)
                        && !self.lately_refused(&owner)
                    {
                        return Opening::HandOver(Offer {
                            read: buf.freeze(),
                            client: peer,
                            vshard,
                            owner,
                        });
                    }
                    break;
                }
            }
        }
        Opening::Serve {
            read: buf.freeze(),
            client: peer,
            handed_over: None,
        }
    }

    /// Hands the connection over as `offer` says; when the owner cannot take it, it is to be
    /// served here, with what was read.
    ///
    /// `write_timeout` bounds each write to the client while relaying (a client that stops
    /// reading is dropped, as a connection served here is).
    pub(crate) async fn offer<S>(
        &self,
        socket: &mut S,
        offer: Offer,
        stop: watch::Receiver<bool>,
        write_timeout: Duration,
    ) -> Opening
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let to = (offer.vshard, offer.owner.as_str());
        match self
            .hand_over(socket, to, offer.client, &offer.read, (stop, write_timeout))
            .await
        {
            Handover::Done => Opening::Finished,
            Handover::NotConnected => Opening::Serve {
                read: offer.read,
                client: offer.client,
                handed_over: None,
            },
        }
    }

    /// Reads and checks a shared connection's preamble ([`mux`]) and acknowledges it, unless the
    /// server is stopping; its streams are then served here.
    async fn shared<S>(
        &self,
        socket: &mut S,
        mut buf: BytesMut,
        peer: SocketAddr,
        deadline: Instant,
        stop: &watch::Receiver<bool>,
    ) -> Opening
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(line) = preamble_line(socket, &mut buf, deadline).await else {
            tracing::debug!(%peer, "a shared connection without a whole preamble; closed");
            return Opening::Finished;
        };
        let secret = std::str::from_utf8(&line[mux::MAGIC.len()..])
            .unwrap_or_default()
            .trim_end();
        if !ynni_core::password::constant_time_eq(secret.as_bytes(), self.secret_hex.as_bytes()) {
            refused_claim(peer);
            return Opening::Finished;
        }
        if *stop.borrow() {
            return Opening::Finished;
        }
        let acked = tokio::time::timeout_at(deadline, async {
            socket.write_all(mux::ACK).await?;
            socket.flush().await
        })
        .await;
        if !matches!(acked, Ok(Ok(()))) {
            return Opening::Finished;
        }
        Opening::Multiplexed { read: buf.freeze() }
    }

    /// Reads and checks a preamble of the version `magic` names, acknowledges it (version 2,
    /// unless the server is stopping: then the connection is closed unacknowledged); what
    /// follows it is served here.
    async fn handed_over<S>(
        &self,
        socket: &mut S,
        mut buf: BytesMut,
        peer: SocketAddr,
        deadline: Instant,
        magic: &[u8],
        stop: &watch::Receiver<bool>,
    ) -> Opening
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(line) = preamble_line(socket, &mut buf, deadline).await else {
            tracing::debug!(%peer, "a handed-over connection without a whole preamble; closed");
            return Opening::Finished;
        };
        match parse_preamble(&line, magic, &self.secret_hex) {
            Some((client, vshard)) => {
                if magic == MAGIC {
                    // A stopping server would close the connection, idle, before the request
                    // the acknowledgement asks for arrives: unacknowledged, the entry node
                    // serves it itself.
                    if *stop.borrow() {
                        tracing::debug!(%peer, "stopping: a hand-over refused");
                        return Opening::Finished;
                    }
                    let acked = tokio::time::timeout_at(deadline, async {
                        socket.write_all(ACK).await?;
                        socket.flush().await
                    })
                    .await;
                    if !matches!(acked, Ok(Ok(()))) {
                        tracing::debug!(%peer, "a handed-over connection went before its acknowledgement");
                        return Opening::Finished;
                    }
                }
                Opening::Serve {
                    read: buf.freeze(),
                    client,
                    handed_over: Some(HandedOver { vshard }),
                }
            }
            None => {
                refused_claim(peer);
                Opening::Finished
            }
        }
    }

    /// Opens a stream to `owner` (of `vshard`) on the connection this node shares with it
    /// ([`mux`]), or, with an owner that does not speak that protocol, a connection of its own
    /// with the version 2 preamble; once the owner has accepted it, sends `read` and copies
    /// both ways until the connection ends (or the server stops and [`STOP_GRACE`] has passed).
    async fn hand_over<S>(
        &self,
        socket: &mut S,
        (vshard, owner): (u32, &str),
        client: SocketAddr,
        read: &[u8],
        (stop, write_timeout): (watch::Receiver<bool>, Duration),
    ) -> Handover
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if let Some(pool) = &self.mux {
            match pool.open(owner, client, vshard).await {
                Ok(tunnel) => {
                    return self
                        .relay(socket, tunnel, owner, read, (stop, write_timeout))
                        .await;
                }
                // An older build: offered the connection alone, below.
                Err(mux::NotOpened::NotSpoken) => {}
                // The owner is full: this connection is served here, the next offered again.
                Err(mux::NotOpened::Busy) => return Handover::NotConnected,
                Err(mux::NotOpened::Failed) => {
                    self.note_refusal(owner);
                    tracing::debug!(owner, "cannot hand a connection to its owner");
                    return Handover::NotConnected;
                }
            }
        }
        let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(owner)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                // Remembered as a refusal: while the owner cannot be reached, each kept-alive
                // connection would otherwise wait to find that out before being served here.
                self.note_refusal(owner);
                tracing::debug!(owner, error = %e, "cannot hand a connection to its owner");
                return Handover::NotConnected;
            }
            Err(_) => {
                self.note_refusal(owner);
                tracing::debug!(
                    owner,
                    "cannot hand a connection to its owner: connect timed out"
                );
                return Handover::NotConnected;
            }
        };
        let _ = upstream.set_nodelay(true);
        let mut upstream = upstream;
        let mut preamble = MAGIC.to_vec();
        preamble.extend_from_slice(format!("{client} {vshard} {}\r\n", self.secret_hex).as_bytes());
        let offered = async {
            upstream.write_all(&preamble).await?;
            upstream.flush().await?;
            let mut answer = [0u8; ACK.len()];
            upstream.read_exact(&mut answer).await?;
            Ok::<bool, io::Error>(answer[..] == *ACK)
        };
        match tokio::time::timeout(ACK_TIMEOUT, offered).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) | Ok(Err(_)) => {
                if self.note_refusal(owner) {
                    tracing::warn!(
                        owner,
                        "the owner refused a connection handed to it (another build or another secret?); its connections are served here for a minute"
                    );
                }
                return Handover::NotConnected;
            }
            Err(_) => {
                if self.note_refusal(owner) {
                    tracing::info!(
                        owner,
                        "the owner did not acknowledge a hand-over in time; its connections are served here for a minute"
                    );
                }
                return Handover::NotConnected;
            }
        }
        self.relay(socket, upstream, owner, read, (stop, write_timeout))
            .await
    }

    /// Sends `read` to the owner on `upstream`, then copies both ways until the connection
    /// ends, the owner falls silent, or the server stops and [`STOP_GRACE`] has passed.
    async fn relay<S, U>(
        &self,
        socket: &mut S,
        upstream: U,
        owner: &str,
        read: &[u8],
        (mut stop, write_timeout): (watch::Receiver<bool>, Duration),
    ) -> Handover
    where
        S: AsyncRead + AsyncWrite + Unpin,
        U: AsyncRead + AsyncWrite,
    {
        let mut upstream = tokio_io_timeout::TimeoutStream::new(upstream);
        upstream.set_read_timeout(Some(self.owner_silence));
        let mut upstream = Box::pin(upstream);
        // From the first byte of the client's sent, the request may be the owner's: it is never
        // served here too (a failure now ends the connection, and the client retries).
        if let Err(e) = upstream.write_all(read).await {
            tracing::debug!(owner, error = %e, "handing a connection over failed");
            return Handover::Done;
        }
        let mut client = tokio_io_timeout::TimeoutStream::new(socket);
        client.set_write_timeout(Some(write_timeout));
        let mut client = Box::pin(client);
        let pump = pump(&mut client, &mut upstream);
        let mut pump = std::pin::pin!(pump);
        tokio::select! {
            r = pump.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(owner, error = %e, "handed-over connection ended");
                }
            }
            () = async {
                let _ = stop.wait_for(|s| *s).await;
            } => {
                let _ = tokio::time::timeout(STOP_GRACE, pump).await;
            }
        }
        Handover::Done
    }
}

/// Reads up to the end of the preamble's line and takes it off `buf`; `None` when no whole
/// line came in time (or it is too long).
async fn preamble_line<S: AsyncRead + Unpin>(
    socket: &mut S,
    buf: &mut BytesMut,
    deadline: Instant,
) -> Option<BytesMut> {
    let end = loop {
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            break i;
        }
        if buf.len() >= PREAMBLE_MAX || !read_more(socket, buf, deadline).await {
            return None;
        }
    };
    Some(buf.split_to(end + 1))
}

/// Logs a connection that claimed to come from a node without the cluster's secret.
fn refused_claim(peer: SocketAddr) {
    if warn_now() {
        tracing::warn!(%peer, "a connection claimed to be handed over without the cluster's secret (more such are logged at debug level for a minute); closed");
    } else {
        tracing::debug!(%peer, "a connection claimed to be handed over without the cluster's secret; closed");
    }
}

enum Handover {
    Done,
    /// Nothing of the client's was sent (no owner reached, or none that acknowledged): the
    /// connection can still be served here.
    NotConnected,
}

/// Whether a warning that anybody can cause (a connection claiming to be handed over) may be
/// logged now: at most once a minute, so that such connections cannot flood the log while a
/// node with the wrong secret is still seen.
fn warn_now() -> bool {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    now >= last.saturating_add(60)
        && LAST
            .compare_exchange(
                last,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
}

/// Copies client → owner and owner → client. The owner closing ends the connection; the
/// client closing its side is passed on, and the owner's last reply still reaches it.
async fn pump<S, U>(client: &mut S, upstream: &mut U) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut owner_read, mut owner_write) = tokio::io::split(upstream);
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let up = async {
        tokio::io::copy(&mut client_read, &mut owner_write).await?;
        owner_write.shutdown().await
    };
    let down = async {
        tokio::io::copy(&mut owner_read, &mut client_write).await?;
        client_write.shutdown().await
    };
    let mut up = std::pin::pin!(up);
    let mut down = std::pin::pin!(down);
    tokio::select! {
        r = down.as_mut() => r,
        r = up.as_mut() => {
            r?;
            down.await
        }
    }
}

/// Reads what the connection has into `buf`; false when it closed, failed, or sent nothing
/// before `deadline`.
async fn read_more<S: AsyncRead + Unpin>(
    socket: &mut S,
    buf: &mut BytesMut,
    deadline: Instant,
) -> bool {
    buf.reserve(2048);
    matches!(
        tokio::time::timeout_at(deadline, socket.read_buf(buf)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// What the first request's head says about where to serve the connection.
#[derive(Debug, PartialEq)]
enum Head {
    Incomplete,
    /// Serve it here: not HTTP, closing after one request, or no apikey to route by.
    Unusable,
    /// The apikey that names the account.
    Key(String),
}

fn first_head(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Head::Incomplete,
        Err(_) => return Head::Unusable,
    }
    // Another node's connection (its forwarding pool) is served here whatever key it carries:
    // handing it on by the caller's apikey could send it back to the node that opened it, or
    // to any node but the one that node chose, and its pool would keep that connection.
    if !keeps_alive(&req) || is_from_a_node(&req) {
        return Head::Unusable;
    }
    routing_key(&req).map_or(Head::Unusable, Head::Key)
}

/// Whether the request says it was forwarded by another node (true or not: a client that
/// claims it only keeps its connection here).
fn is_from_a_node(req: &httparse::Request<'_, '_>) -> bool {
    req.headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case(crate::forward::FORWARDED))
}

/// Whether the client means to send more requests on the connection.
fn keeps_alive(req: &httparse::Request<'_, '_>) -> bool {
    let says = |token: &str| {
        req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("connection")
                && std::str::from_utf8(h.value)
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    match req.version {
        Some(1) => !says("close"),
        _ => says("keep-alive"),
    }
}

/// The apikey the request authenticates with, when it can be known from the head: the
/// query's `apikey`, else (with no `devicekey` or share link in the query) the bearer token.
fn routing_key(req: &httparse::Request<'_, '_>) -> Option<String> {
    let query = req.path?.split_once('?').map_or("", |(_, q)| q);
    let mut other = false;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "apikey" if !value.is_empty() => return Some(value.into_owned()),
            "devicekey" | "share" if !value.is_empty() => other = true,
            _ => {}
        }
    }
    if other {
        return None;
    }
    let h = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))?;
    let v = std::str::from_utf8(h.value).ok()?.trim();
    let key = v.strip_prefix("Bearer ").unwrap_or(v).trim();
    (!key.is_empty()).then(|| key.to_string())
}

/// The client address and vshard a preamble line (starting with `magic`) vouches for, if it
/// carries `secret_hex`.
fn parse_preamble(line: &[u8], magic: &[u8], secret_hex: &str) -> Option<(SocketAddr, u32)> {
    let line = std::str::from_utf8(line.strip_prefix(magic)?)
        .ok()?
        .trim_end();
    let mut words = line.split(' ');
    let (client, vshard, secret) = (words.next()?, words.next()?, words.next()?);
    if words.next().is_some()
        || !ynni_core::password::constant_time_eq(secret.as_bytes(), secret_hex.as_bytes())
    {
        return None;
    }
    Some((client.parse().ok()?, vshard.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Splicer {
        /// Reads the connection's first bytes (within `header_timeout`) and either hands the
        /// connection to its account's owner, copying until it ends, or says how to serve it here:
        /// [`Splicer::read_opening`] then [`Splicer::offer`] on the same task, as the server does
        /// off the link thread.
        async fn open<S>(
            &self,
            socket: &mut S,
            peer: SocketAddr,
            header_timeout: Duration,
            stop: watch::Receiver<bool>,
        ) -> Opening
        where
            S: AsyncRead + AsyncWrite + Unpin,
        {
            match self
                .read_opening(socket, peer, header_timeout, stop.clone())
                .await
            {
                Opening::HandOver(offer) => {
                    self.offer(socket, offer, stop, Duration::from_secs(60))
                        .await
                }
                opening => opening,
            }
        }
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const SECRET: &str = "the cluster's secret";
    const WAIT: Duration = Duration::from_millis(300);

    fn peer() -> SocketAddr {
        "192.0.2.1:5000".parse().unwrap()
    }

    /// The head of a request with [`KEY`], as a client posting on a kept-alive connection
    /// sends it.
    fn keyed_head() -> String {
        format!("GET /input/post?node=1&apikey={KEY} HTTP/1.1\r\nHost: x\r\n\r\n")
    }

    /// A client that has sent `head`, and the task opening its connection with `s`, which ends
    /// with how the connection went on.
    async fn entering(
        s: Splicer,
        head: &str,
    ) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<Opening>) {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        client.write_all(head.as_bytes()).await.unwrap();
        let (_stop, stop) = watch::channel(false);
        let entry = tokio::spawn(async move {
            let _stop = _stop;
            s.open(&mut server, peer(), WAIT, stop).await
        });
        (client, entry)
    }

    /// One line from `conn`, through its `\n`, read a byte at a time so nothing after it is
    /// taken.
    async fn read_line(conn: &mut TcpStream) -> Vec<u8> {
        let mut line = Vec::new();
        while !line.ends_with(b"\n") {
            let mut byte = [0u8; 1];
            conn.read_exact(&mut byte).await.unwrap();
            line.push(byte[0]);
        }
        line
    }

    /// A splicer whose only known key is [`KEY`], owned by `owner` in vshard 7.
    fn splicer(owner: Option<String>) -> Splicer {
        Splicer::with_route(
            SECRET,
            Box::new(move |key| {
                (key == KEY)
                    .then(|| (7, owner.clone()))
                    .and_then(|(v, o)| Some((v, o?)))
            }),
        )
    }

    async fn open_with(splicer: &Splicer, sent: &[u8], close: bool) -> Opening {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        client.write_all(sent).await.unwrap();
        if close {
            drop(client);
            let (_stop, stop) = watch::channel(false);
            return splicer.open(&mut server, peer(), WAIT, stop).await;
        }
        let (_stop, stop) = watch::channel(false);
        let opening = splicer.open(&mut server, peer(), WAIT, stop).await;
        drop(client);
        opening
    }

    #[tokio::test]
    async fn a_head_never_finished_in_time_closes_the_connection() {
        let s = splicer(None);
        let t0 = Instant::now();
        let o = open_with(&s, b"GET /input/post?apikey=0123", false).await;
        assert!(matches!(o, Opening::Finished));
        assert!(t0.elapsed() >= WAIT);
        assert!(matches!(open_with(&s, b"", true).await, Opening::Finished));
    }

    #[tokio::test]
    async fn a_connection_without_a_known_key_is_served_here_with_what_was_read() {
        let s = splicer(Some("127.0.0.1:9".into()));
        let head = b"GET /feed/list.json HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
        let Opening::Serve {
            read,
            client,
            handed_over,
        } = open_with(&s, head, false).await
        else {
            panic!("closed");
        };
        assert_eq!((&read[..], client, handed_over), (&head[..], peer(), None));
        // A key nobody here knows.
        let other = b"GET /x?apikey=ffffffffffffffffffffffffffffffff HTTP/1.1\r\n\r\n";
        assert!(matches!(
            open_with(&s, other, false).await,
            Opening::Serve {
                handed_over: None,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_preamble_with_the_secret_vouches_for_the_client_and_the_vshard() {
        let s = splicer(None);
        let request = b"GET /myip/get.json HTTP/1.1\r\n\r\n";
        let mut sent = format!(
            "YNNI-SPLICE/1 203.0.113.9:77 12 {}\r\n",
            hex::encode(SECRET)
        )
        .into_bytes();
        sent.extend_from_slice(request);
        let Opening::Serve {
            read,
            client,
            handed_over,
        } = open_with(&s, &sent, false).await
        else {
            panic!("closed");
        };
        assert_eq!(&read[..], &request[..]);
        assert_eq!(client, "203.0.113.9:77".parse().unwrap());
        assert_eq!(handed_over, Some(HandedOver { vshard: 12 }));
        let mut forged = format!(
            "YNNI-SPLICE/1 203.0.113.9:77 12 {}\r\n",
            hex::encode("guess")
        )
        .into_bytes();
        forged.extend_from_slice(request);
        assert!(matches!(
            open_with(&s, &forged, false).await,
            Opening::Finished
        ));
    }

    #[tokio::test]
    async fn a_known_key_owned_elsewhere_hands_the_connection_to_its_owner() {
        let owner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = splicer(Some(owner.local_addr().unwrap().to_string()));
        let head = keyed_head();
        let (mut client, entry) = entering(s, &head).await;
        let (mut conn, _) = owner.accept().await.unwrap();
        let want = format!("YNNI-SPLICE/2 {} 7 {}\r\n", peer(), hex::encode(SECRET));
        let mut got = vec![0u8; want.len()];
        conn.read_exact(&mut got).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&got), want);
        // Nothing of the client's comes before the owner has acknowledged.
        let mut early = [0u8; 1];
        let nothing = tokio::time::timeout(WAIT, conn.read(&mut early)).await;
        assert!(nothing.is_err(), "sent before the acknowledgement");
        conn.write_all(ACK).await.unwrap();
        let mut got = vec![0u8; head.len()];
        conn.read_exact(&mut got).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&got), head);
        // Bytes flow both ways until the owner closes.
        conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let mut reply = [0u8; 19];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"HTTP/1.1 200 OK\r\n\r\n");
        client.write_all(b"more").await.unwrap();
        let mut more = [0u8; 4];
        conn.read_exact(&mut more).await.unwrap();
        assert_eq!(&more, b"more");
        drop(conn);
        let ended = tokio::time::timeout(Duration::from_secs(5), entry)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(ended, Opening::Finished));
    }

    /// [`splicer`] with shared connections to owners.
    fn sharing_splicer(owner: String) -> Splicer {
        let mut s = splicer(Some(owner));
        s.mux = Some(mux::Pool::new(&s.secret_hex, WAIT * 4, REFUSED_FOR));
        s
    }

    /// The client gets the owner's `200 OK` and the connection ends, its hand-over finished.
    async fn replied_and_finished(
        client: &mut tokio::io::DuplexStream,
        entry: tokio::task::JoinHandle<Opening>,
    ) {
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"HTTP/1.1 200 OK\r\n\r\n");
        let ended = tokio::time::timeout(Duration::from_secs(5), entry).await;
        assert!(matches!(ended, Ok(Ok(Opening::Finished))));
    }

    #[tokio::test]
    async fn a_shared_connections_preamble_is_acknowledged_only_with_the_secret() {
        let s = splicer(None);
        let h2_preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let mut sent = format!("YNNI-MUX/1 {}\r\n", hex::encode(SECRET)).into_bytes();
        sent.extend_from_slice(h2_preface);
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        client.write_all(&sent).await.unwrap();
        let (_stop, stop) = watch::channel(false);
        let Opening::Multiplexed { read } = s.open(&mut server, peer(), WAIT, stop).await else {
            panic!("not taken for a shared connection");
        };
        assert_eq!(&read[..], &h2_preface[..]);
        let mut ack = vec![0u8; mux::ACK.len()];
        client.read_exact(&mut ack).await.unwrap();
        assert_eq!(ack, mux::ACK);
        let forged = format!("YNNI-MUX/1 {}\r\n", hex::encode("guess")).into_bytes();
        assert!(matches!(
            open_with(&s, &forged, false).await,
            Opening::Finished
        ));
        // A stopping node takes no shared connection.
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        client.write_all(&sent).await.unwrap();
        let (_stop, stop) = watch::channel(true);
        assert!(matches!(
            s.open(&mut server, peer(), WAIT, stop).await,
            Opening::Finished
        ));
    }

    #[tokio::test]
    async fn connections_handed_to_an_owner_that_shares_travel_as_streams_of_one_connection() {
        let owner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owner_addr = owner.local_addr().unwrap().to_string();
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let owner_side = splicer(None);
        tokio::spawn(async move {
            let (mut conn, _) = owner.accept().await.unwrap();
            let (_stop, stop) = watch::channel(false);
            let Opening::Multiplexed { read } =
                owner_side.open(&mut conn, peer(), WAIT, stop.clone()).await
            else {
                panic!("the entry node did not open a shared connection");
            };
            let io = Prefixed::new(read, conn);
            mux::accept(
                io,
                stop,
                || Some(()),
                |mut tunnel, client, handed, ()| {
                    let seen = seen_tx.clone();
                    tokio::spawn(async move {
                        let mut head = vec![0u8; keyed_head().len()];
                        tunnel.read_exact(&mut head).await.unwrap();
                        seen.send((client, handed, head)).unwrap();
                        tunnel.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
                        tunnel.shutdown().await.unwrap();
                    });
                },
            )
            .await;
        });
        let s = Arc::new(sharing_splicer(owner_addr));
        for _ in 0..3 {
            let (mut client, mut server) = tokio::io::duplex(1 << 16);
            client.write_all(keyed_head().as_bytes()).await.unwrap();
            let (_stop, stop) = watch::channel(false);
            let entry = {
                let s = s.clone();
                tokio::spawn(async move { s.open(&mut server, peer(), WAIT, stop).await })
            };
            let (client_addr, handed, head) =
                tokio::time::timeout(Duration::from_secs(5), seen.recv())
                    .await
                    .expect("the owner saw no stream: a second connection?")
                    .unwrap();
            assert_eq!(client_addr, peer());
            assert_eq!(handed, HandedOver { vshard: 7 });
            assert_eq!(String::from_utf8(head).unwrap(), keyed_head());
            replied_and_finished(&mut client, entry).await;
        }
    }

    #[tokio::test]
    async fn an_owner_that_does_not_share_is_offered_each_connection_alone() {
        let owner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = sharing_splicer(owner.local_addr().unwrap().to_string());
        let head = keyed_head();
        let (mut client, entry) = entering(s, &head).await;
        // An older build answers the shared connection's line as a bad request.
        let (mut first, _) = owner.accept().await.unwrap();
        let mut word = vec![0u8; mux::MAGIC.len()];
        first.read_exact(&mut word).await.unwrap();
        assert_eq!(word, mux::MAGIC);
        first
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        drop(first);
        let (mut conn, _) = owner.accept().await.unwrap();
        let want = format!("YNNI-SPLICE/2 {} 7 {}\r\n", peer(), hex::encode(SECRET));
        assert_eq!(String::from_utf8(read_line(&mut conn).await).unwrap(), want);
        conn.write_all(ACK).await.unwrap();
        let mut got = vec![0u8; head.len()];
        conn.read_exact(&mut got).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&got), head);
        conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        drop(conn);
        replied_and_finished(&mut client, entry).await;
    }

    #[tokio::test]
    async fn a_handed_over_connection_ends_when_its_owner_falls_silent() {
        let owner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut s = splicer(Some(owner.local_addr().unwrap().to_string()));
        s.owner_silence = Duration::from_millis(300);
        let (mut client, entry) = entering(s, &keyed_head()).await;
        // The client has said all it will say; the owner takes the connection and goes quiet
        // without closing it, as a partitioned node does.
        client.shutdown().await.unwrap();
        let (mut conn, _) = owner.accept().await.unwrap();
        conn.write_all(ACK).await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), entry)
            .await
            .expect("ended after the owner's silence")
            .unwrap();
        assert!(matches!(ended, Opening::Finished));
    }

    /// Hands a connection with a known key to an owner that answers the preamble with
    /// `answer` (then closes, unless `answer` is `None`: silent), and says what the owner
    /// received and how the entry node went on.
    async fn offer_to(answer: Option<&'static [u8]>) -> (Vec<u8>, Opening) {
        let owner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = splicer(Some(owner.local_addr().unwrap().to_string()));
        let (client, entry) = entering(s, &keyed_head()).await;
        let (mut conn, _) = owner.accept().await.unwrap();
        let mut received = Vec::new();
        match answer {
            Some(a) => {
                received = read_line(&mut conn).await;
                conn.write_all(a).await.unwrap();
                conn.shutdown().await.unwrap();
                // Whatever else the entry node sends before it lets go.
                let _ = conn.read_to_end(&mut received).await;
            }
            None => {
                let mut line = vec![0u8; 512];
                let until = Instant::now() + ACK_TIMEOUT + Duration::from_secs(1);
                while let Ok(Ok(n)) = tokio::time::timeout_at(until, conn.read(&mut line)).await {
                    if n == 0 {
                        break;
                    }
                    received.extend_from_slice(&line[..n]);
                }
            }
        }
        let opening = tokio::time::timeout(Duration::from_secs(10), entry)
            .await
            .expect("the entry node went on")
            .unwrap();
        drop(client);
        (received, opening)
    }

    #[tokio::test]
    async fn an_owner_that_does_not_acknowledge_gets_nothing_of_the_clients_and_it_is_served_here()
    {
        let head = keyed_head();
        let preamble = format!("YNNI-SPLICE/2 {} 7 {}\r\n", peer(), hex::encode(SECRET));
        // A build that does not speak this version answers the preamble as a bad request; a
        // node with another secret closes unanswered; a stuck one says nothing.
        let old: &'static [u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        for answer in [Some(old), Some(&b""[..]), Some(&ACK[..ACK.len() - 1]), None] {
            let (received, opening) = offer_to(answer).await;
            assert_eq!(
                String::from_utf8_lossy(&received),
                preamble,
                "{answer:?}: the owner was sent more than the preamble"
            );
            let Opening::Serve {
                read, handed_over, ..
            } = opening
            else {
                panic!("{answer:?}: closed instead of served here");
            };
            assert_eq!(
                (&read[..], handed_over),
                (head.as_bytes(), None),
                "{answer:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_owner_acknowledges_a_version_2_preamble_and_not_a_version_1_one() {
        let s = splicer(None);
        let request = b"GET /myip/get.json HTTP/1.1\r\n\r\n";
        for (version, acked) in [(2, true), (1, false)] {
            let (mut client, mut server) = tokio::io::duplex(1 << 16);
            let mut sent = format!(
                "YNNI-SPLICE/{version} 203.0.113.9:77 12 {}\r\n",
                hex::encode(SECRET)
            )
            .into_bytes();
            sent.extend_from_slice(request);
            client.write_all(&sent).await.unwrap();
            let (_stop, stop) = watch::channel(false);
            let opening = s.open(&mut server, peer(), WAIT, stop).await;
            let Opening::Serve {
                read, handed_over, ..
            } = opening
            else {
                panic!("version {version}: closed");
            };
            assert_eq!(&read[..], &request[..]);
            assert_eq!(handed_over, Some(HandedOver { vshard: 12 }));
            drop(server);
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            let want: &[u8] = if acked { ACK } else { b"" };
            assert_eq!(answer, want, "version {version}");
        }
    }

    /// An owner that cannot be reached is not tried again for every connection meanwhile.
    #[tokio::test]
    async fn an_owner_that_cannot_be_reached_is_not_tried_for_a_while() {
        // A port nothing listens on: found free, then let go.
        let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owner = gone.local_addr().unwrap().to_string();
        drop(gone);
        let s = splicer(Some(owner.clone()));
        let first = open_with(&s, keyed_head().as_bytes(), false).await;
        assert!(matches!(
            first,
            Opening::Serve {
                handed_over: None,
                ..
            }
        ));
        assert!(s.lately_refused(&owner), "remembered");
    }

    #[tokio::test]
    async fn an_owner_that_refused_is_not_offered_connections_for_a_while() {
        let owner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = splicer(Some(owner.local_addr().unwrap().to_string()));
        let head = keyed_head();
        let open = || async {
            let (mut client, mut server) = tokio::io::duplex(1 << 16);
            client.write_all(head.as_bytes()).await.unwrap();
            let (_stop, stop) = watch::channel(false);
            let opening = s.open(&mut server, peer(), WAIT, stop).await;
            drop(client);
            opening
        };
        // An owner of an older build answers the preamble as a bad request.
        let refuse = async {
            let (mut conn, _) = owner.accept().await.unwrap();
            read_line(&mut conn).await;
            conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                .await
                .unwrap();
        };
        let (first, ()) = tokio::join!(open(), refuse);
        assert!(matches!(
            first,
            Opening::Serve {
                handed_over: None,
                ..
            }
        ));
        // The next connection is served here without asking.
        let (second, asked) = tokio::join!(open(), tokio::time::timeout(WAIT, owner.accept()));
        let Opening::Serve {
            read, handed_over, ..
        } = second
        else {
            panic!("closed");
        };
        assert_eq!((&read[..], handed_over), (head.as_bytes(), None));
        assert!(asked.is_err(), "the owner was asked again");
    }

    #[tokio::test]
    async fn a_stopping_owner_closes_a_hand_over_unacknowledged() {
        let s = splicer(None);
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let sent = format!(
            "YNNI-SPLICE/2 203.0.113.9:77 12 {}\r\nGET / HTTP/1.1\r\n\r\n",
            hex::encode(SECRET)
        );
        client.write_all(sent.as_bytes()).await.unwrap();
        let (_stop, stop) = watch::channel(true);
        let opening = s.open(&mut server, peer(), WAIT, stop).await;
        assert!(matches!(opening, Opening::Finished));
        drop(server);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"");
    }

    #[tokio::test]
    async fn an_owner_that_cannot_be_reached_leaves_the_connection_here() {
        let gone = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let s = splicer(Some(gone));
        let head = format!("GET /input/post?apikey={KEY} HTTP/1.1\r\n\r\n");
        let Opening::Serve {
            read, handed_over, ..
        } = open_with(&s, head.as_bytes(), false).await
        else {
            panic!("closed");
        };
        assert_eq!((&read[..], handed_over), (head.as_bytes(), None));
    }

    #[test]
    fn the_first_heads_apikey_routes_the_connection() {
        let get = keyed_head();
        assert_eq!(first_head(get.as_bytes()), Head::Key(KEY.into()));
        assert_eq!(first_head(&get.as_bytes()[..20]), Head::Incomplete);
        let bearer =
            format!("POST /feed/data.json HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\n\r\n");
        assert_eq!(first_head(bearer.as_bytes()), Head::Key(KEY.into()));
        // The query's key comes first, as in authentication.
        let both = format!(
            "GET /x?apikey={KEY} HTTP/1.1\r\nAuthorization: Bearer ffffffffffffffffffffffffffffffff\r\n\r\n"
        );
        assert_eq!(first_head(both.as_bytes()), Head::Key(KEY.into()));
    }

    #[test]
    fn heads_that_name_no_account_or_close_are_served_where_they_arrive() {
        for head in [
            "GET /feed/list.json HTTP/1.1\r\nCookie: s=1\r\n\r\n".to_string(),
            format!("GET /x?apikey={KEY} HTTP/1.1\r\nConnection: close\r\n\r\n"),
            format!("GET /x?apikey={KEY} HTTP/1.0\r\n\r\n"),
            format!("GET /x?devicekey={KEY} HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\n\r\n"),
            format!("GET /x?share=abc HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\n\r\n"),
            "\u{1}\u{2} not http\r\n\r\n".to_string(),
            // Another node's forwarding connection: it chose this node already.
            format!(
                "GET /feed/data.json?id=1&apikey={KEY} HTTP/1.1\r\nX-Ynni-Forwarded: s\r\n\r\n"
            ),
        ] {
            assert_eq!(first_head(head.as_bytes()), Head::Unusable, "{head}");
        }
        let kept = format!("GET /x?apikey={KEY} HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert_eq!(first_head(kept.as_bytes()), Head::Key(KEY.into()));
    }

    #[test]
    fn a_preamble_is_believed_only_with_the_clusters_secret() {
        let secret = hex::encode("s3cret");
        let good = format!("YNNI-SPLICE/1 192.0.2.7:4567 12 {secret}\r\n");
        assert_eq!(
            parse_preamble(good.as_bytes(), MAGIC_V1, &secret),
            Some(("192.0.2.7:4567".parse().unwrap(), 12))
        );
        let v2 = format!("YNNI-SPLICE/2 192.0.2.7:4567 12 {secret}\r\n");
        assert_eq!(
            parse_preamble(v2.as_bytes(), MAGIC, &secret),
            Some(("192.0.2.7:4567".parse().unwrap(), 12))
        );
        let v6 = format!("YNNI-SPLICE/1 [2001:db8::1]:80 0 {secret}\r\n");
        assert!(parse_preamble(v6.as_bytes(), MAGIC_V1, &secret).is_some());
        for bad in [
            "YNNI-SPLICE/1 192.0.2.7:4567 1 00\r\n".to_string(),
            format!("YNNI-SPLICE/1 192.0.2.7:4567 1 {secret}00\r\n"),
            format!("YNNI-SPLICE/1 192.0.2.7:4567 1 {secret} more\r\n"),
            format!("YNNI-SPLICE/1 nonsense 1 {secret}\r\n"),
            format!("YNNI-SPLICE/1 192.0.2.7:4567 x {secret}\r\n"),
            format!("YNNI-SPLICE/2 192.0.2.7:4567 1 {secret}\r\n"),
            format!("YNNI-SPLICE/1 192.0.2.7:4567 {secret}\r\n"),
        ] {
            assert_eq!(
                parse_preamble(bad.as_bytes(), MAGIC_V1, &secret),
                None,
                "{bad}"
            );
            let v2 = bad.replacen("YNNI-SPLICE/1 ", "YNNI-SPLICE/2 ", 1);
            let v2 = if bad.starts_with("YNNI-SPLICE/2 ") {
                bad.replacen("YNNI-SPLICE/2 ", "YNNI-SPLICE/1 ", 1)
            } else {
                v2
            };
            assert_eq!(parse_preamble(v2.as_bytes(), MAGIC, &secret), None, "{v2}");
        }
    }
}
