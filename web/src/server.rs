//! Binding the listener and serving until shutdown.
//!
//! The accept loop is ours rather than `axum::serve`'s, which has no way to set deadlines or a
//! cap: here a client gets a bounded time to send its headers (and an idle keep-alive
//! connection is closed after as long), a client that takes no byte of its reply for
//! [`WRITE_TIMEOUT`] is dropped (a reply held for a reader that never reads keeps its memory
//! and its connection slot), at most a set number of connections are open at once
//! (beyond it new clients wait in the kernel's backlog instead of exhausting file
//! descriptors), and a failing `accept` (out of file descriptors) pauses the loop and is logged
//! at a bounded rate instead of spinning.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower_service::Service as _;
use ynni_config::HttpSettings;

use crate::api;
use crate::link_thread::LinkThread;
use crate::splice::{HandedOver, Opening, Prefixed, Splicer};
use crate::state::AppState;
use crate::tls::Certificates;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("HTTP address {0} is already in use (is another server running?)")]
    AddrInUse(SocketAddr),
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("HTTP server failed: {0}")]
    Serve(io::Error),
}

/// How the HTTP listener treats its connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time a client gets to send a request's line and headers. hyper starts this clock
    /// whenever it waits for a request, so it is also how long an idle keep-alive connection
    /// stays open.
    pub header_read_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// How long one write may wait for the client to read ([`WRITE_TIMEOUT`]).
    pub write_timeout: Duration,
}

impl ServeOptions {
    /// The configured options, with the connection cap lowered to fit the open-file limit.
    pub fn from_settings(http: &HttpSettings) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(http.header_timeout_s.max(1)),
            max_connections: ynni_core::fd_budget::connection_limit(
                http.max_connections,
                ynni_core::fd_budget::Listener::Http,
            ),
            write_timeout: WRITE_TIMEOUT,
        }
    }
}

/// How long a write to a client may wait for the client to read. Reset by every byte taken,
/// so a slow but reading client is unaffected, and a live stream that is idle is not writing.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Semaphore permits are counted in `u32` when all are taken back at shutdown.
const MAX_CONNECTIONS_CAP: usize = 1 << 20;
/// Pause after an `accept` failure that is not about one client (usually EMFILE/ENFILE): the
/// condition lasts until connections close, and retrying at once would spin a core.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Accept failures are logged at most this often, with how many there were.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// Binds the HTTP listener; an address already in use is reported as such.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, WebError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == io::ErrorKind::AddrInUse {
            WebError::AddrInUse(addr)
        } else {
            WebError::Bind { addr, source }
        }
    })
}

/// Serves the API on `listener` until `shutdown` completes, then lets in-flight requests
/// finish; options from the `[http]` settings.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let options = ServeOptions::from_settings(&state.settings.http);
    serve_with(listener, state, shutdown, options).await
}

/// [`serve`] with explicit options.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> Result<(), WebError> {
    let splicer = crate::splice::Splicer::new(&state).map(Arc::new);
    serve_router(listener, app(state), shutdown, options, None, splicer).await
}

/// Serves the same API over HTTPS on `listener`, with the pair `certs` holds at each
/// handshake, until `shutdown` completes.
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    certs: Arc<Certificates>,
) -> Result<(), WebError> {
    let options = ServeOptions::from_settings(&state.settings.http);
    serve_router(listener, app(state), shutdown, options, Some(certs), None).await
}

/// The request extension that says a request came over HTTPS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Https;

/// Browsers that reached ynni over HTTPS keep to it for a year.
const HSTS: &str = "max-age=31536000";

fn app(state: AppState) -> Router {
    let node = state
        .forwarder
        .as_ref()
        .and_then(|f| axum::http::HeaderValue::from_str(f.node_id()).ok());
    let metrics_on = state.ops.metrics.is_some();
    let mut app = crate::ui::routes()
        .merge(crate::ops::routes())
        .fallback(api::dispatch);
    if metrics_on {
        app = app.layer(axum::middleware::from_fn(crate::ops::metrics::record));
    }
    app.layer(axum::middleware::map_response(nosniff))
        .layer(axum::middleware::map_response(
            move |mut r: axum::response::Response| {
                // Cluster mode: which node answered (a forwarded reply keeps its owner's).
                if let Some(node) = &node {
                    r.headers_mut()
                        .entry(crate::forward::NODE)
                        .or_insert_with(|| node.clone());
                }
                async move { r }
            },
        ))
        .with_state(state)
}

async fn serve_router(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
    tls: Option<Arc<Certificates>>,
    splicer: Option<Arc<Splicer>>,
) -> Result<(), WebError> {
    // Ended (below) only once every connection has: some of them run on it.
    let link = match &splicer {
        Some(_) => Some(LinkThread::start().map_err(WebError::Serve)?),
        None => None,
    };
    let max = options.max_connections.clamp(1, MAX_CONNECTIONS_CAP);
    let permits = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut failures = AcceptFailures::default();
    loop {
        // The permit is taken before accepting: at the cap, new clients wait in the kernel's
        // backlog rather than being accepted with nothing left to serve them.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((socket, peer)) => {
                tokio::spawn(serve_connection(
                    socket,
                    peer,
                    Conn {
                        app: app.clone(),
                        builder: builder.clone(),
                        write_timeout: options.write_timeout,
                        handshake_timeout: options.header_read_timeout,
                        stop: stop_rx.clone(),
                        tls: tls.clone(),
                        splicer: splicer.clone(),
                        link: link.as_ref().map(|l| l.handle().clone()),
                        permits: permits.clone(),
                    },
                    permit,
                ));
            }
            Err(e) if one_client_failed(&e) => {
                tracing::debug!(error = %e, "HTTP accept: a client went away");
            }
            Err(e) => {
                drop(permit);
                if let Some(n) = failures.record(Instant::now()) {
                    tracing::warn!(
                        error = %e,
                        failures = n,
                        "HTTP accept failing (out of file descriptors?); pausing after each"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_PAUSE) => {}
                }
            }
        }
    }
    // New clients are refused from here on; open connections finish their current request.
    drop(listener);
    let _ = stop_tx.send(true);
    // Each connection holds a permit until it ends, so having them all back means all ended.
    let _all = permits
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
    drop(link);
    Ok(())
}

/// Errors of `accept` that concern the one connection being accepted, not the listener.
fn one_client_failed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// What each connection of a listener shares.
#[derive(Clone)]
struct Conn {
    app: Router,
    builder: Arc<http1::Builder>,
    write_timeout: Duration,
    /// Time a client gets to finish the TLS handshake.
    handshake_timeout: Duration,
    stop: watch::Receiver<bool>,
    tls: Option<Arc<Certificates>>,
    /// Cluster mode, plain HTTP: hands connections to their account's owner.
    splicer: Option<Arc<Splicer>>,
    /// Cluster mode: where connections between nodes are served (`link_thread`).
    link: Option<tokio::runtime::Handle>,
    /// The listener's connection cap: each connection handed over on a shared connection from
    /// another node takes a place in it too.
    permits: Arc<Semaphore>,
}

async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    conn: Conn,
    permit: OwnedSemaphorePermit,
) {
    let _ = socket.set_nodelay(true);
    if conn.tls.is_none()
        && let Some(splicer) = conn.splicer.clone()
    {
        let mut socket = socket;
        let stop = conn.stop.clone();
        let opening = splicer
            .read_opening(&mut socket, peer, conn.handshake_timeout, stop)
            .await;
        let Opening::HandOver(offer) = opening else {
            // Served here by the workers: this node's own clients, and the connections other
            // nodes hand to it.
            return serve_opening(socket, opening, conn, permit).await;
        };
        // Relayed on the link thread (see `link_thread`); back on the workers to be served
        // here should the owner not take it.
        let here = tokio::runtime::Handle::current();
        let link = conn.link.clone().unwrap_or_else(|| here.clone());
        move_to(&link, socket, peer, move |mut socket| async move {
            let (stop, write_timeout) = (conn.stop.clone(), conn.write_timeout);
            let opening = splicer.offer(&mut socket, offer, stop, write_timeout).await;
            if matches!(opening, Opening::Serve { .. }) {
                move_to(&here, socket, peer, move |socket| {
                    serve_opening(socket, opening, conn, permit)
                });
            }
        });
        return;
    }
    let socket = with_write_timeout(socket, conn.write_timeout);
    let Some(certs) = &conn.tls else {
        let io = TokioIo::new(socket);
        return serve_http(io, peer, conn, false, None).await;
    };
    let handshake = certs.acceptor().accept(socket);
    match tokio::time::timeout(conn.handshake_timeout, handshake).await {
        Ok(Ok(stream)) => serve_http(TokioIo::new(stream), peer, conn, true, None).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake not finished in time"),
    }
}

/// Moves `socket` to the runtime `to` and goes on there with `then`.
fn move_to<F, Fut>(to: &tokio::runtime::Handle, socket: TcpStream, peer: SocketAddr, then: F)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    match socket.into_std() {
        Ok(socket) => {
            to.spawn(async move {
                match TcpStream::from_std(socket) {
                    Ok(socket) => then(socket).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "a connection lost moving between threads"),
                }
            });
        }
        Err(e) => tracing::debug!(%peer, error = %e, "a connection lost moving between threads"),
    }
}

/// The connection, whose writes give up when the client takes nothing for `timeout`.
fn with_write_timeout(
    socket: TcpStream,
    timeout: Duration,
) -> std::pin::Pin<Box<tokio_io_timeout::TimeoutStream<TcpStream>>> {
    let mut socket = tokio_io_timeout::TimeoutStream::new(socket);
    socket.set_write_timeout(Some(timeout));
    Box::pin(socket)
}

/// Cluster mode, plain HTTP: serves a connection here as its first bytes said (see
/// [`Splicer::read_opening`]).
async fn serve_opening(
    socket: TcpStream,
    opening: Opening,
    conn: Conn,
    permit: OwnedSemaphorePermit,
) {
    let socket = with_write_timeout(socket, conn.write_timeout);
    match opening {
        Opening::Finished | Opening::HandOver(_) => {}
        Opening::Multiplexed { read } => {
            crate::splice::mux::watch_peer(socket.get_ref());
            let io = Prefixed::new(read, socket);
            serve_shared(io, conn, permit).await;
        }
        Opening::Serve {
            read,
            client,
            handed_over,
        } => {
            let io = TokioIo::new(Prefixed::new(read, socket));
            serve_http(io, client, conn, false, handed_over).await;
        }
    }
}

/// Serves the handed-over connections another node's shared connection carries (`splice::mux`),
/// each as HTTP/1.1 from its client, until the shared connection ends or the server stops and
/// they have finished. Each takes a place under the listener's connection cap as a connection
/// of its own would (at the cap, the entry node is told to serve it itself), and holds the
/// shared connection's place too, so a stopping server waits for all of them.
async fn serve_shared<I>(io: I, conn: Conn, permit: OwnedSemaphorePermit)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let shared = Arc::new(permit);
    let stop = conn.stop.clone();
    let permits = conn.permits.clone();
    crate::splice::mux::accept(
        io,
        stop,
        || permits.clone().try_acquire_owned().ok(),
        |tunnel, client, handed_over, own| {
            let conn = conn.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                let _places = (shared, own);
                let mut stream = tokio_io_timeout::TimeoutStream::new(tunnel);
                stream.set_write_timeout(Some(conn.write_timeout));
                let io = TokioIo::new(Box::pin(stream));
                serve_http(io, client, conn, false, Some(handed_over)).await;
            });
        },
    )
    .await;
}

/// Serves HTTP/1.1 on one connection until it ends or the server stops.
/// `handed_over`: another node of the cluster handed this connection over (`splice`).
async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    conn: Conn,
    https: bool,
    handed_over: Option<HandedOver>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let app = conn.app;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // Handlers read the client address through axum's `ConnectInfo`, which is this
        // request extension.
        req.extensions_mut().insert(ConnectInfo(peer));
        if https {
            req.extensions_mut().insert(Https);
        }
        if let Some(h) = handed_over {
            req.extensions_mut().insert(h);
        }
        let answer = app.clone().call(req);
        async move {
            let mut r = answer.await?;
            if https {
                r.headers_mut().insert(
                    axum::http::header::STRICT_TRANSPORT_SECURITY,
                    axum::http::HeaderValue::from_static(HSTS),
                );
            }
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    let connection = conn.builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        done = connection.as_mut() => {
            if let Err(e) = done {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
            return;
        }
        () = stopped(conn.stop) => {}
    }
    // Finish the request in progress (an idle connection closes at once), then end.
    connection.as_mut().graceful_shutdown();
    if let Err(e) = connection.await {
        tracing::debug!(%peer, error = %e, "HTTP connection ended during shutdown");
    }
}

/// Completes when the server stops (or is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Failed accepts since the last log line.
#[derive(Debug, Default)]
struct AcceptFailures {
    unlogged: u64,
    last_log: Option<Instant>,
}

impl AcceptFailures {
    /// Counts a failure at `now`; returns the number to log if a line is due.
    fn record(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self
            .last_log
            .is_some_and(|t| now.saturating_duration_since(t) < ACCEPT_LOG_EVERY)
        {
            return None;
        }
        self.last_log = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// No reply may be read as another type than it says (a JSON or text reply sniffed as HTML
/// could run script).
async fn nosniff(mut r: axum::response::Response) -> axum::response::Response {
    r.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    struct Server {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        task: JoinHandle<Result<(), WebError>>,
    }

    /// A server answering `/` with the client's IP address (read through `ConnectInfo`), and
    /// `/big` with 64 MiB.
    async fn start(header_read_timeout: Duration, max_connections: usize) -> Server {
        start_with(ServeOptions {
            header_read_timeout,
            max_connections,
            write_timeout: WRITE_TIMEOUT,
        })
        .await
    }

    async fn start_with(options: ServeOptions) -> Server {
        let app =
            Router::new()
                .route(
                    "/",
                    get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        peer.ip().to_string()
                    }),
                )
                .route("/big", get(|| async { vec![b'x'; 64 << 20] }));
        serve_app(app, options, None).await
    }

    /// Serves `app` on a free local port until the server is stopped.
    async fn serve_app(
        app: Router,
        options: ServeOptions,
        splicer: Option<Arc<Splicer>>,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_router(
            listener,
            app,
            async move {
                let _ = stopped.await;
            },
            options,
            None,
            splicer,
        ));
        Server { addr, stop, task }
    }

    const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    /// Reads until the peer closes (or resets) the connection; None if it is still open after
    /// `within`.
    async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[tokio::test]
    async fn connections_handed_over_on_a_shared_connection_count_against_the_cap() {
        use crate::splice::mux;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let owner = listener.local_addr().expect("address").to_string();
        // Two places: the shared connection's own, and one handed-over connection's.
        let permits = Arc::new(Semaphore::new(2));
        let (_stop_tx, stop) = watch::channel(false);
        let conn = Conn {
            app: Router::new().route(
                "/",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            ),
            builder: Arc::new(http1::Builder::new()),
            write_timeout: WRITE_TIMEOUT,
            handshake_timeout: Duration::from_secs(5),
            stop,
            tls: None,
            splicer: None,
            link: None,
            permits: permits.clone(),
        };
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            let place = permits.try_acquire_owned().expect("a place");
            // The preamble (checked by `Splicer::read_opening` in a server), then the acknowledgement.
            let mut line = Vec::new();
            while !line.ends_with(b"\n") {
                let mut byte = [0u8; 1];
                tcp.read_exact(&mut byte).await.expect("preamble");
                line.push(byte[0]);
            }
            tcp.write_all(mux::ACK).await.expect("ack");
            serve_shared(tcp, conn, place).await;
        });
        let pool = mux::Pool::new("00", Duration::from_secs(2), Duration::from_secs(60));
        let client: SocketAddr = "192.0.2.7:4000".parse().expect("address");
        let mut first = pool.open(&owner, client, 3).await.expect("a stream");
        assert_eq!(
            pool.open(&owner, client, 3).await.err(),
            Some(mux::NotOpened::Busy),
            "a connection past the cap was taken"
        );
        first.write_all(GET_CLOSE).await.expect("request");
        let mut reply = Vec::new();
        first.read_to_end(&mut reply).await.expect("reply");
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.ends_with("192.0.2.7:4000"), "{reply}");
        // The first has ended and given its place back: the same shared connection takes
        // another.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match pool.open(&owner, client, 3).await {
                Ok(_) => break,
                Err(mux::NotOpened::Busy) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    #[tokio::test]
    async fn answers_with_the_client_address() {
        let server = start(Duration::from_secs(10), 8).await;
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        s.write_all(GET_CLOSE).await.expect("write");
        let reply = read_until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("reply and close");
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("127.0.0.1"), "{reply}");
    }

    /// A connection whose account another node owns goes to the link thread to be handed
    /// over; when the owner cannot be reached it comes back to be served by the workers, not
    /// by the link thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_its_owner_cannot_take_is_served_off_the_link_thread() {
        let app = Router::new().route(
            "/thread",
            get(|| async { std::thread::current().name().unwrap_or("").to_string() }),
        );
        // Every key is another node's, at an address where nothing listens.
        let route = Box::new(|_: &str| Some((3, "127.0.0.1:1".to_string())));
        let splicer = Arc::new(Splicer::with_route("secret", route));
        let options = ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 8,
            write_timeout: WRITE_TIMEOUT,
        };
        let server = serve_app(app, options, Some(splicer)).await;
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let head = format!(
            "GET /thread?apikey={} HTTP/1.1\r\nHost: x\r\n\r\n",
            "0123456789abcdef0123456789abcdef"
        );
        s.write_all(head.as_bytes()).await.expect("write");
        let mut reply = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&reply).contains("\r\n\r\n") || !reply.ends_with(b"worker") {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("a reply within 5 s")
                .expect("read");
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        // The runtime's workers (not `ynni-link`).
        assert!(reply.ends_with("-worker"), "{reply}");
        drop(s);
        let _ = server.stop.send(());
        let _ = server.task.await;
    }

    /// The fault: a connection that never finished its headers was never timed out.
    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_disconnected() {
        let server = start(Duration::from_millis(200), 8).await;
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        let t0 = Instant::now();
        let got = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(got.is_some(), "the server never closed the connection");
        assert!(t0.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed() {
        let server = start(Duration::from_millis(200), 8).await;
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let got = read_until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("closed when idle");
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_one() {
        let server = start(Duration::from_millis(300), 1).await;
        let _silent = TcpStream::connect(server.addr).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t0 = Instant::now();
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        s.write_all(GET_CLOSE).await.expect("write");
        let reply = read_until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("served once the silent client was dropped");
        assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"));
        assert!(
            t0.elapsed() >= Duration::from_millis(150),
            "served while the only slot was taken"
        );
    }

    /// A client that asks for a large reply and never reads it gives up its slot.
    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped() {
        let server = start_with(ServeOptions {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 1,
            write_timeout: Duration::from_millis(300),
        })
        .await;
        let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
        stalled
            .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        s.write_all(GET_CLOSE).await.expect("write");
        let reply = read_until_closed(&mut s, Duration::from_secs(10))
            .await
            .expect("served once the stalled reader was dropped");
        assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"));
        drop(stalled);
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_returns() {
        let server = start(Duration::from_secs(30), 8).await;
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.expect("reply");
        assert!(n > 0);
        let _ = server.stop.send(());
        let ended = tokio::time::timeout(Duration::from_secs(5), server.task)
            .await
            .expect("serve returned");
        assert!(matches!(ended, Ok(Ok(()))));
        assert!(
            read_until_closed(&mut s, Duration::from_secs(5))
                .await
                .is_some()
        );
    }

    #[test]
    fn accept_failures_are_logged_at_most_every_few_seconds_with_a_count() {
        let mut f = AcceptFailures::default();
        let t0 = Instant::now();
        assert_eq!(f.record(t0), Some(1));
        for i in 1..50 {
            assert_eq!(f.record(t0 + Duration::from_millis(i * 100)), None);
        }
        // The 49 held back and this one.
        assert_eq!(f.record(t0 + ACCEPT_LOG_EVERY), Some(50));
    }
}
