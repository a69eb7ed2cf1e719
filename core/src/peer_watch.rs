//! A connection to another node of the cluster (a shared HTTP/2 connection, a relayed MQTT
//! client) that closes once that node is gone: crashed, partitioned or powered off, it sends
//! no FIN, and a quiet connection would otherwise stay open, holding its client's place,
//! until the kernel gave up on it (never, if nothing is in flight).

use std::os::fd::AsFd;
use std::time::Duration;

/// A connection silent this long is probed (TCP keepalive) ...
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// ... this often ...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// ... and closed after this many probes go unanswered.
const KEEPALIVE_PROBES: u32 = 3;
/// Sent bytes unacknowledged this long close it too.
const USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sets TCP keepalive and a user timeout on a connection to another node (either end).
pub fn watch_peer(tcp: &impl AsFd) {
    let socket = socket2::SockRef::from(tcp);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket.set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "keepalive not set on a connection to another node");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = socket.set_tcp_user_timeout(Some(USER_TIMEOUT)) {
        tracing::debug!(error = %e, "user timeout not set on a connection to another node");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_connection_probes_its_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let tcp =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        watch_peer(&tcp);
        let socket = socket2::SockRef::from(&tcp);
        assert!(socket.keepalive().expect("keepalive"));
        assert_eq!(socket.tcp_keepalive_time().expect("idle"), KEEPALIVE_IDLE);
        #[cfg(target_os = "linux")]
        assert_eq!(
            socket.tcp_user_timeout().expect("user timeout"),
            Some(USER_TIMEOUT)
        );
    }
}
