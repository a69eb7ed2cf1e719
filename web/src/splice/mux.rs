//! Handed-over connections travel together: one TCP connection from each node to each owner,
//! every handed-over client connection an HTTP/2 stream on it.
//!
//! A connection of its own per handed-over client cost the entry node a socket read and write
//! each way per request, and the owner its own pair: on a busy node, most of what forwarding
//! cost. Sharing one connection, the writes of many streams leave in one system call and
//! arrive in one read, and HTTP/2 (the `h2` crate, hyper's) brings what a shared connection
//! needs: a flow-control window per stream, so one client that stops reading cannot stall the
//! others.
//!
//! The protocol, on a connection the entry node opens to the owner's HTTP listener:
//!
//! ```text
//! entry → owner   YNNI-MUX/1 <the cluster's secret, hex>\r\n
//! owner → entry   YNNI-MUX/1 OK\r\n
//! ```
//!
//! and from then on HTTP/2, the entry node the client. Each handed-over connection is one
//! request, `POST /ynni/splice` with the headers `x-ynni-client` (the client's address and
//! port) and `x-ynni-vshard` (the vshard it was handed over for): the owner answers `200` and
//! serves the connection as if the client had connected to it, its bytes arriving as the
//! request's body and the owner's as the response's, until either side ends its half. A
//! stopping owner answers `503` (and announces `GOAWAY`): the entry node serves that
//! connection itself. The secret authenticates the shared connection once; its streams are
//! believed as the version 2 preamble is (see [`super`]).
//!
//! A node that answers anything else (a build from before this protocol, which answers the
//! line as a bad HTTP request) is offered each connection alone, as before, for
//! [`super::REFUSED_FOR`] before it is asked again. One that closes the connection unanswered
//! (stopping, or configured with another secret) is offered nothing for that long: its
//! connections are served where they arrive.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderValue, Method, Request, Response, StatusCode};
use bytes::Bytes;
use h2::client::SendRequest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::HandedOver;
use super::tunnel::Tunnel;

/// The shared connection's preamble's first word.
pub const MAGIC: &[u8] = b"YNNI-MUX/1 ";
/// The owner's whole answer to a preamble it accepts.
pub const ACK: &[u8] = b"YNNI-MUX/1 OK\r\n";
/// The path of a handed-over connection's stream.
const PATH: &str = "/ynni/splice";
/// The client's address (and port) on a stream.
const CLIENT: &str = "x-ynni-client";
/// The vshard the connection was handed over for.
const VSHARD: &str = "x-ynni-vshard";
/// What one stream may have in flight towards the entry node (the owner's replies) before the
/// entry takes it.
const STREAM_WINDOW: u32 = 128 << 10;
/// What one stream may have in flight towards the owner (the client's requests) before the
/// owner's HTTP reads it. Smaller: a client that stops reading its replies, and so stops its
/// owner reading its requests, can only have this much of them held there, however finely it
/// trickles them (each byte it sends alone arrives as a frame of its own).
const REQUEST_WINDOW: u32 = 16 << 10;
/// What all streams of a connection may have in flight together: HTTP/2's largest, so that
/// only a stream's own window ever stops it. With a smaller one, a few clients that stop
/// reading large replies would fill it with bytes nobody takes, and stall every other
/// connection handed to that owner until the owner's write deadline dropped theirs. (16,384
/// streams' windows fit in it; the listener's connection cap is 4,096 by default.)
const CONNECTION_WINDOW: u32 = (1 << 31) - 1;
/// Streams one shared connection may carry, as far as HTTP/2 is concerned: the owner's
/// connection cap, which each stream counts against, is what limits them.
const MAX_STREAMS: u32 = 1 << 20;
/// After the server is told to stop, how long an owner waits for the streams of a shared
/// connection to finish before dropping it (each finishes its request in progress first).
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// Why no stream could be opened to an owner.
#[derive(Debug, PartialEq)]
pub enum NotOpened {
    /// The owner does not speak this protocol: offer it the connection alone.
    NotSpoken,
    /// The owner could not be reached, did not answer in time, or is stopping.
    Failed,
    /// The owner is at its connection cap: serve this connection here, nothing is wrong.
    Busy,
}

/// A shared connection to one owner, while its task runs.
#[derive(Clone)]
struct Link {
    send: SendRequest<Bytes>,
    alive: Arc<AtomicBool>,
}

enum Slot {
    None,
    Open(Link),
    /// The owner did not answer the preamble, at this time.
    NotSpoken(Instant),
    /// The owner could not be reached, at this time: the hand-overs that were waiting for
    /// that answer are served where they are rather than each trying again in turn.
    Failed(Instant),
}

/// The entry node's shared connections, one per owner.
pub struct Pool {
    secret_hex: String,
    /// How long a connection may take to be opened and acknowledged, and a stream to be
    /// answered.
    answer_within: Duration,
    /// How long an owner that did not speak the protocol, or could not be reached, is not
    /// asked again.
    not_spoken_for: Duration,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl Pool {
    pub fn new(secret_hex: &str, answer_within: Duration, not_spoken_for: Duration) -> Self {
        Self {
            secret_hex: secret_hex.to_string(),
            answer_within,
            not_spoken_for,
            slots: Mutex::default(),
        }
    }

    fn slot(&self, owner: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(owner.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Slot::None)))
            .clone()
    }

    /// The shared connection to `owner`, opened if there is none (one opening at a time: the
    /// others wait for it).
    async fn link(&self, owner: &str) -> Result<Link, NotOpened> {
        let slot = self.slot(owner);
        let mut slot = slot.lock().await;
        match &*slot {
            Slot::Open(link) if link.alive.load(Ordering::Acquire) => return Ok(link.clone()),
            Slot::NotSpoken(at) if at.elapsed() < self.not_spoken_for => {
                return Err(NotOpened::NotSpoken);
            }
            Slot::Failed(at) if at.elapsed() < self.not_spoken_for => {
                return Err(NotOpened::Failed);
            }
            _ => {}
        }
        let opened = tokio::time::timeout(self.answer_within, connect(owner, &self.secret_hex))
            .await
            .unwrap_or(Err(NotOpened::Failed));
        match opened {
            Ok(link) => {
                *slot = Slot::Open(link.clone());
                Ok(link)
            }
            Err(NotOpened::NotSpoken) => {
                *slot = Slot::NotSpoken(Instant::now());
                Err(NotOpened::NotSpoken)
            }
            Err(_) => {
                *slot = Slot::Failed(Instant::now());
                Err(NotOpened::Failed)
            }
        }
    }

    /// Forgets `link` if it is still `owner`'s: it failed, and the next stream opens another.
    async fn forget(&self, owner: &str, link: &Link) {
        let slot = self.slot(owner);
        let mut slot = slot.lock().await;
        if matches!(&*slot, Slot::Open(l) if Arc::ptr_eq(&l.alive, &link.alive)) {
            *slot = Slot::None;
        }
    }

    /// Opens a stream to `owner` for a connection from `client` handed over for `vshard`, once
    /// the owner has accepted it.
    pub async fn open(
        &self,
        owner: &str,
        client: SocketAddr,
        vshard: u32,
    ) -> Result<Tunnel, NotOpened> {
        let link = self.link(owner).await?;
        let opened = tokio::time::timeout(self.answer_within, stream(&link, client, vshard))
            .await
            .unwrap_or(Err(NotOpened::Failed));
        if matches!(opened, Err(NotOpened::Failed)) {
            self.forget(owner, &link).await;
        }
        opened
    }
}

/// Opens and acknowledges a shared connection and starts its task.
async fn connect(owner: &str, secret_hex: &str) -> Result<Link, NotOpened> {
    let mut tcp = TcpStream::connect(owner).await.map_err(|e| {
        tracing::debug!(owner, error = %e, "cannot open a shared connection to an owner");
        NotOpened::Failed
    })?;
    let _ = tcp.set_nodelay(true);
    watch_peer(&tcp);
    let mut preamble = MAGIC.to_vec();
    preamble.extend_from_slice(secret_hex.as_bytes());
    preamble.extend_from_slice(b"\r\n");
    tcp.write_all(&preamble)
        .await
        .map_err(|_| NotOpened::Failed)?;
    let mut answer = [0u8; ACK.len()];
    match tcp.read_exact(&mut answer).await {
        // Closed unanswered: a node that is stopping, or has another secret.
        Err(_) => return Err(NotOpened::Failed),
        // Another answer (a bad request's): a node that does not know the protocol.
        Ok(_) if answer[..] != *ACK => return Err(NotOpened::NotSpoken),
        Ok(_) => {}
    }
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_max_send_streams(MAX_STREAMS as usize)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(tcp)
        .await
        .map_err(|e| {
            tracing::debug!(owner, error = %e, "HTTP/2 handshake with an owner failed");
            NotOpened::Failed
        })?;
    let alive = Arc::new(AtomicBool::new(true));
    let link = Link {
        send,
        alive: alive.clone(),
    };
    let owner = owner.to_string();
    tokio::spawn(async move {
        if let Err(e) = Gathered::new(Box::pin(connection)).await {
            tracing::debug!(owner, error = %e, "a shared connection to an owner ended");
        }
        alive.store(false, Ordering::Release);
    });
    Ok(link)
}

/// Opens one stream on `link` and waits for the owner's answer.
async fn stream(link: &Link, client: SocketAddr, vshard: u32) -> Result<Tunnel, NotOpened> {
    let mut send = link
        .send
        .clone()
        .ready()
        .await
        .map_err(|_| NotOpened::Failed)?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(PATH)
        .header(CLIENT, client.to_string())
        .header(VSHARD, vshard)
        .body(())
        .map_err(|_| NotOpened::Failed)?;
    let (answer, body) = send
        .send_request(request, false)
        .map_err(|_| NotOpened::Failed)?;
    let answer = answer.await.map_err(|_| NotOpened::Failed)?;
    match answer.status() {
        StatusCode::OK => {}
        StatusCode::SERVICE_UNAVAILABLE => return Err(NotOpened::Busy),
        _ => return Err(NotOpened::Failed),
    }
    Ok(Tunnel::new(body, answer.into_body()))
}

pub use ynni_core::peer_watch::watch_peer;

/// The owner's side: serves the streams of a shared connection whose preamble it accepted.
/// Each stream is first admitted (`admit`: a place under the listener's connection cap, held
/// for as long as the stream is served; none is a `503`, and the entry node serves that
/// connection itself), then handed to `serve` with the client's address and its vshard. When
/// `stop` turns true, new streams are refused and this returns once the others have ended, or
/// after [`STOP_DEADLINE`].
pub async fn accept<I, A, P, F>(io: I, mut stop: watch::Receiver<bool>, admit: A, serve: F)
where
    I: AsyncRead + AsyncWrite + Unpin,
    A: Fn() -> Option<P>,
    F: Fn(Tunnel, SocketAddr, HandedOver, P),
{
    let handshake = h2::server::Builder::new()
        .initial_window_size(REQUEST_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_STREAMS)
        .handshake::<_, Bytes>(io);
    let mut connection = match handshake.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "HTTP/2 handshake on a shared connection failed");
            return;
        }
    };
    let mut stopping: Option<Instant> = None;
    loop {
        let next = {
            let next = Gathered::new(std::future::poll_fn(|cx| connection.poll_accept(cx)));
            match stopping {
                Some(deadline) => match tokio::time::timeout_at(deadline, next).await {
                    Ok(next) => Some(next),
                    Err(_) => {
                        tracing::debug!("a shared connection's streams outlived the stop");
                        return;
                    }
                },
                None => tokio::select! {
                    next = next => Some(next),
                    _ = stop.wait_for(|s| *s) => None,
                },
            }
        };
        let Some(next) = next else {
            connection.graceful_shutdown();
            stopping = Some(Instant::now() + STOP_DEADLINE);
            continue;
        };
        let (request, mut respond) = match next {
            None => return,
            Some(Ok(stream)) => stream,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "a shared connection from another node ended");
                return;
            }
        };
        let status = match stream_head(&request) {
            None => StatusCode::BAD_REQUEST,
            Some(_) if stopping.is_some() => StatusCode::SERVICE_UNAVAILABLE,
            Some((client, vshard)) => match admit() {
                None => StatusCode::SERVICE_UNAVAILABLE,
                Some(place) => {
                    match respond.send_response(Response::new(()), false) {
                        Ok(send) => serve(
                            Tunnel::new(send, request.into_body()),
                            client,
                            HandedOver { vshard },
                            place,
                        ),
                        Err(e) => tracing::debug!(error = %e, "a handed-over stream went"),
                    }
                    continue;
                }
            },
        };
        let mut answer = Response::new(());
        *answer.status_mut() = status;
        let _ = respond.send_response(answer, true);
    }
}

/// The client's address and the vshard of a stream's request, if it is a hand-over.
fn stream_head(request: &Request<h2::RecvStream>) -> Option<(SocketAddr, u32)> {
    if request.method() != Method::POST || request.uri().path() != PATH {
        return None;
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(HeaderValue::to_str)
            .and_then(Result::ok)
    };
    Some((header(CLIENT)?.parse().ok()?, header(VSHARD)?.parse().ok()?))
}

/// Polls a shared connection's task one turn after it is woken rather than at once: the streams
/// that became ready meanwhile have queued their data by then, and it leaves in one write.
/// (Woken by a stream, the task would otherwise run straight after that stream, and write its
/// few bytes alone.)
struct Gathered<F> {
    inner: F,
    /// Whether this poll is the turn after a wake-up.
    deferred: bool,
}

impl<F> Gathered<F> {
    fn new(inner: F) -> Self {
        Self {
            inner,
            deferred: false,
        }
    }
}

impl<F: Future + Unpin> Future for Gathered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.deferred {
            self.deferred = true;
            // Woken from inside its own poll, a task goes to the back of its worker's queue.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.deferred = false;
        Pin::new(&mut self.inner).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const SECRET_HEX: &str = "736563726574";

    /// Reads a shared connection's preamble, checks its secret, and acknowledges it.
    async fn acknowledge(tcp: &mut tokio::net::TcpStream) {
        let mut line = vec![0u8; MAGIC.len() + SECRET_HEX.len() + 2];
        tcp.read_exact(&mut line).await.unwrap();
        assert_eq!(line, [MAGIC, SECRET_HEX.as_bytes(), b"\r\n"].concat());
        tcp.write_all(ACK).await.unwrap();
    }

    /// An owner that accepts shared connections and echoes every stream's bytes upper-cased,
    /// counting the TCP connections it accepted.
    async fn echoing_owner() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    acknowledge(&mut tcp).await;
                    let (_stop_tx, stop) = watch::channel(false);
                    accept(
                        tcp,
                        stop,
                        || Some(()),
                        |mut tunnel, client, handed, ()| {
                            tokio::spawn(async move {
                                let mut got = Vec::new();
                                tunnel.read_to_end(&mut got).await.unwrap();
                                let reply = format!(
                                    "{client} {} {}",
                                    handed.vshard,
                                    String::from_utf8(got).unwrap().to_uppercase()
                                );
                                tunnel.write_all(reply.as_bytes()).await.unwrap();
                                tunnel.shutdown().await.unwrap();
                            });
                        },
                    )
                    .await;
                });
            }
        });
        (addr, accepted)
    }

    fn pool() -> Pool {
        Pool::new(SECRET_HEX, Duration::from_secs(2), Duration::from_secs(60))
    }

    #[tokio::test]
    async fn streams_to_one_owner_share_one_connection_and_carry_bytes_both_ways() {
        let (owner, accepted) = echoing_owner().await;
        let pool = pool();
        let mut tunnels = Vec::new();
        for i in 0..20u32 {
            let client: SocketAddr = format!("192.0.2.{i}:4000").parse().unwrap();
            tunnels.push((i, pool.open(&owner, client, i).await.unwrap()));
        }
        // Bytes larger than a stream's window go through: the reader releases them as it reads.
        let big = "x".repeat(STREAM_WINDOW as usize * 3);
        for (i, tunnel) in &mut tunnels {
            tunnel
                .write_all(format!("hello {i} {big}").as_bytes())
                .await
                .unwrap();
            tunnel.shutdown().await.unwrap();
        }
        for (i, mut tunnel) in tunnels {
            let mut reply = String::new();
            tunnel.read_to_string(&mut reply).await.unwrap();
            assert_eq!(
                reply,
                format!("192.0.2.{i}:4000 {i} HELLO {i} {}", big.to_uppercase())
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn streams_whose_readers_stopped_do_not_stall_the_others() {
        let (owner, _) = echoing_owner().await;
        let pool = pool();
        let client: SocketAddr = "192.0.2.1:1".parse().unwrap();
        // Twenty clients send a large request and never read the (larger) reply: each
        // stream's window fills, and together they hold more than a default connection window.
        let big = vec![b'x'; STREAM_WINDOW as usize * 2];
        let mut stalled = Vec::new();
        for i in 0..20 {
            let mut t = pool.open(&owner, client, i).await.unwrap();
            t.write_all(&big).await.unwrap();
            t.shutdown().await.unwrap();
            stalled.push(t);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut t = pool.open(&owner, client, 99).await.unwrap();
        t.write_all(b"still served").await.unwrap();
        t.shutdown().await.unwrap();
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(5), t.read_to_string(&mut reply))
            .await
            .expect("a stream stalled behind the others")
            .unwrap();
        assert_eq!(reply, "192.0.2.1:1 99 STILL SERVED");
    }

    #[tokio::test]
    async fn an_owner_that_does_not_answer_the_preamble_does_not_speak_the_protocol() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owner = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                // What an older build answers a line that is not HTTP.
                let _ = tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let pool = pool();
        let client: SocketAddr = "192.0.2.1:1".parse().unwrap();
        assert_eq!(
            pool.open(&owner, client, 1).await.err(),
            Some(NotOpened::NotSpoken)
        );
        // And it is not asked again for a while.
        assert!(matches!(
            &*pool.slot(&owner).lock().await,
            Slot::NotSpoken(_)
        ));
    }

    #[tokio::test]
    async fn an_owner_that_closes_the_preamble_unanswered_is_failed_not_an_older_build() {
        // What a stopping node, or one with another secret, does.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owner = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let mut word = vec![0u8; MAGIC.len()];
                let _ = tcp.read_exact(&mut word).await;
            }
        });
        let client: SocketAddr = "192.0.2.1:1".parse().unwrap();
        assert_eq!(
            pool().open(&owner, client, 1).await.err(),
            Some(NotOpened::Failed)
        );
    }

    #[tokio::test]
    async fn an_owner_that_cannot_be_reached_is_not_tried_again_for_a_while() {
        // An owner that never answers: its listener takes connections and says nothing.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owner = listener.local_addr().unwrap().to_string();
        let pool = Arc::new(Pool::new(
            SECRET_HEX,
            Duration::from_millis(300),
            Duration::from_secs(60),
        ));
        let client: SocketAddr = "192.0.2.1:1".parse().unwrap();
        // Ten hand-overs at once: one waits for the answer, the others for it, and none
        // tries again after it failed.
        let t0 = Instant::now();
        let tries: Vec<_> = (0..10)
            .map(|i| {
                let (pool, owner) = (pool.clone(), owner.clone());
                tokio::spawn(async move { pool.open(&owner, client, i).await.err() })
            })
            .collect();
        for t in tries {
            assert_eq!(t.await.unwrap(), Some(NotOpened::Failed));
        }
        assert!(
            t0.elapsed() < Duration::from_millis(900),
            "{:?}",
            t0.elapsed()
        );
        assert!(matches!(&*pool.slot(&owner).lock().await, Slot::Failed(_)));
        drop(listener);
    }

    #[tokio::test]
    async fn an_owner_at_its_cap_sends_the_connection_back_and_keeps_the_link() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owner = listener.local_addr().unwrap().to_string();
        let full = Arc::new(AtomicBool::new(true));
        let is_full = full.clone();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            acknowledge(&mut tcp).await;
            let (_stop_tx, stop) = watch::channel(false);
            accept(
                tcp,
                stop,
                || (!is_full.load(Ordering::SeqCst)).then_some(()),
                |mut tunnel, _, _, ()| {
                    tokio::spawn(async move {
                        tunnel.write_all(b"served").await.unwrap();
                        tunnel.shutdown().await.unwrap();
                    });
                },
            )
            .await;
        });
        let pool = pool();
        let client: SocketAddr = "192.0.2.1:1".parse().unwrap();
        assert_eq!(
            pool.open(&owner, client, 1).await.err(),
            Some(NotOpened::Busy)
        );
        full.store(false, Ordering::SeqCst);
        // The same connection (the owner's listener took one only) serves the next.
        let mut t = pool.open(&owner, client, 1).await.unwrap();
        let mut got = Vec::new();
        t.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"served");
    }

    #[tokio::test]
    async fn a_stopping_owner_refuses_new_streams_and_finishes_the_open_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owner = listener.local_addr().unwrap().to_string();
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            acknowledge(&mut tcp).await;
            accept(
                tcp,
                stop,
                || Some(()),
                |mut tunnel, _, _, ()| {
                    tokio::spawn(async move {
                        let mut got = Vec::new();
                        tunnel.read_to_end(&mut got).await.unwrap();
                        tunnel.write_all(&got).await.unwrap();
                        tunnel.shutdown().await.unwrap();
                    });
                },
            )
            .await;
        });
        let pool = pool();
        let client: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let mut open = pool.open(&owner, client, 1).await.unwrap();
        stop_tx.send(true).unwrap();
        // The stream already open is still served to its end.
        open.write_all(b"still here").await.unwrap();
        open.shutdown().await.unwrap();
        let mut got = Vec::new();
        open.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"still here");
        assert_eq!(
            pool.open(&owner, client, 1).await.err(),
            Some(NotOpened::Failed)
        );
    }

    #[tokio::test]
    async fn a_stream_without_a_client_or_vshard_is_refused() {
        let (owner, _) = echoing_owner().await;
        let pool = pool();
        let link = pool.link(&owner).await.unwrap();
        let mut send = link.send.clone().ready().await.unwrap();
        let request = Request::builder()
            .method(Method::POST)
            .uri(PATH)
            .header(VSHARD, "3")
            .body(())
            .unwrap();
        let (answer, _body) = send.send_request(request, false).unwrap();
        assert_eq!(answer.await.unwrap().status(), StatusCode::BAD_REQUEST);
    }
}
