//! The broker's listeners: plain TCP, TLS and websocket. Each accepted socket gets a task of
//! its own (a slow TLS or websocket handshake never holds up the accept loop), every handshake
//! and CONNECT has a deadline, and the number of open connections stays below the process's
//! open-file limit: when it is reached the loop stops accepting (clients wait in the kernel's
//! backlog) instead of spinning on `EMFILE`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use ynni_core::tls::Certificates;

use crate::BrokerError;

/// What a connection runs over once its transport handshake is done.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) type Stream = Box<dyn Io>;

/// How a listener turns an accepted socket into a stream.
#[derive(Clone)]
pub(crate) enum Kind {
    Plain,
    Tls(Arc<Certificates>),
    Websocket,
}

/// Binds `addr` now, so that "in use" is a start-up error and port 0 is resolved.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, BrokerError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            BrokerError::AddrInUse(addr)
        } else {
            BrokerError::Bind { addr, source }
        }
    })
}

/// The MQTTS listener's certificate and key (PEM), reloaded on SIGHUP like HTTPS's.
pub(crate) fn tls_pair(cert: &str, key: &str) -> Result<Certificates, BrokerError> {
    Certificates::load(PathBuf::from(cert), PathBuf::from(key), &[])
        .map_err(|e| BrokerError::Tls(e.to_string()))
}

/// Finishes the transport handshake of an accepted socket.
pub(crate) async fn handshake(kind: &Kind, socket: TcpStream) -> std::io::Result<Stream> {
    let _ = socket.set_nodelay(true);
    match kind {
        Kind::Plain => Ok(Box::new(socket)),
        Kind::Tls(pair) => Ok(Box::new(pair.acceptor().accept(socket).await?)),
        Kind::Websocket => {
            use async_tungstenite::tungstenite::protocol::WebSocketConfig;
            // One MQTT packet per message at most; a bound on what one client can make us hold.
            let config = WebSocketConfig {
                max_message_size: Some(crate::MAX_PACKET + 1024),
                max_frame_size: Some(crate::MAX_PACKET + 1024),
                ..Default::default()
            };
            let ws = async_tungstenite::tokio::accept_hdr_async_with_config(
                socket,
                MqttSubprotocol,
                Some(config),
            )
            .await
            .map_err(std::io::Error::other)?;
            Ok(Box::new(ws_stream_tungstenite::WsStream::new(ws)))
        }
    }
}

/// Answers the websocket upgrade with the `mqtt` subprotocol, which MQTT clients ask for.
struct MqttSubprotocol;

impl async_tungstenite::tungstenite::handshake::server::Callback for MqttSubprotocol {
    fn on_request(
        self,
        _request: &async_tungstenite::tungstenite::handshake::server::Request,
        mut response: async_tungstenite::tungstenite::handshake::server::Response,
    ) -> Result<
        async_tungstenite::tungstenite::handshake::server::Response,
        async_tungstenite::tungstenite::handshake::server::ErrorResponse,
    > {
        response.headers_mut().insert(
            "sec-websocket-protocol",
            async_tungstenite::tungstenite::http::HeaderValue::from_static("mqtt"),
        );
        Ok(response)
    }
}

/// Accepts connections until `stop` says so, handing each to `serve` with a permit that is
/// released when the connection closes. The listening socket closes when this returns, so
/// clients that connect afterwards are refused at once (and try another server) instead of
/// waiting in the backlog.
pub(crate) async fn accept_loop<F, Fut>(
    name: &'static str,
    listener: TcpListener,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut backoff = Backoff::default();
    loop {
        // Taken before accepting: at the limit, new clients wait in the backlog.
        let permit = tokio::select! {
            () = stopped(&mut stop) => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            () = stopped(&mut stop) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                backoff.reset();
                tokio::spawn(serve(socket, peer, permit));
            }
            Err(e) => {
                drop(permit);
                tokio::select! {
                    () = stopped(&mut stop) => return,
                    () = backoff.failed(name, &e) => {}
                }
            }
        }
    }
}

/// Resolves once `stop` is true; never if its sender is gone without saying so.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|&s| s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// After a failed accept (usually out of file descriptors): wait, longer each time, and log
/// at most once every few seconds with the number of failures since.
#[derive(Default)]
struct Backoff {
    delay: Duration,
    failures: u64,
    logged: Option<Instant>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Backoff {
    fn reset(&mut self) {
        self.delay = Duration::ZERO;
    }

    async fn failed(&mut self, listener: &str, e: &std::io::Error) {
        self.failures += 1;
        if self.logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            tracing::warn!(listener, error = %e, failures = self.failures, "MQTT accept failing; backing off");
            self.logged = Some(Instant::now());
            self.failures = 0;
        }
        tokio::time::sleep(self.grow()).await;
    }

    fn grow(&mut self) -> Duration {
        self.delay = (self.delay * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
        self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stops_at_its_maximum() {
        let mut b = Backoff::default();
        assert_eq!(b.grow(), FIRST_BACKOFF);
        assert_eq!(b.grow(), FIRST_BACKOFF * 2);
        for _ in 0..20 {
            b.grow();
        }
        assert_eq!(b.delay, MAX_BACKOFF);
        b.reset();
        assert_eq!(b.grow(), FIRST_BACKOFF);
    }
}
