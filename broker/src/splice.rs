//! Cluster mode: a connection whose user another node serves is passed to that node's broker
//! after its CONNECT was authenticated here. The owner receives the CONNECT exactly as the
//! client sent it (and checks it again against the shared catalog), then the two sockets are
//! joined byte for byte, so subscriptions, retained messages, acknowledgements and wills are
//! all the owner's, as on one node. A client this node could not log in never reaches the
//! owner.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::connect;
use crate::listen::Stream;
use crate::version::AnyVersion;

/// How long reaching the owner's broker may take before the client is told to retry.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) async fn run(
    mut client: Stream,
    codec: &AnyVersion,
    connect_packet: Bytes,
    rest: BytesMut,
    owner: SocketAddr,
    peer: SocketAddr,
) {
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(owner)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%peer, %owner, error = %e, "the owner's MQTT broker cannot be reached");
            connect::refuse_unavailable(&mut client, codec).await;
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, %owner, "the owner's MQTT broker did not answer in time");
            connect::refuse_unavailable(&mut client, codec).await;
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    // A partitioned owner sends no FIN: without probes the relay would hold the client's
    // place for as long as the kernel kept the quiet connection.
    ynni_core::peer_watch::watch_peer(&upstream);
    let mut upstream = upstream;
    let sent = async {
        upstream.write_all(&connect_packet).await?;
        upstream.write_all(&rest).await
    };
    if let Err(e) = sent.await {
        tracing::warn!(%peer, %owner, error = %e, "passing the MQTT connection on failed");
        connect::refuse_unavailable(&mut client, codec).await;
        return;
    }
    tracing::debug!(%peer, %owner, "MQTT connection passed to the user's node");
    // Ends when either side closes; the owner's keep-alive closes an idle client.
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(%peer, %owner, error = %e, "spliced MQTT connection ended");
    }
}
