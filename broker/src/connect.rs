//! A connection's first packet: read the CONNECT within a deadline, check what it asks for,
//! authenticate it, and answer a refusal with the CONNACK code clients expect (3.1.1: 0x05 not
//! authorised; 5: 0x86 bad username or password), as Mosquitto does, before closing. Nothing
//! a refused client sent is kept, and log lines quote only a short prefix of it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::protocol::{
    ConnAck, Connect, ConnectReturnCode, LastWill, LastWillProperties, Packet, Protocol,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::listen::Stream;
use crate::namespace::{Namespace, topic_of_node};
use crate::version::AnyVersion;
use crate::{Access, Login};

/// The longest CONNECT accepted: room for credentials and a will, not for a flood.
const MAX_CONNECT: usize = 16 << 10;
/// The longest client id kept (MQTT 3.1 allowed 23; this leaves room for real-world ids).
pub(crate) const MAX_CLIENT_ID: usize = 128;
/// How much of a client-supplied string a log line quotes.
const LOG_PREFIX: usize = 48;

/// An accepted CONNECT.
pub(crate) struct Accepted {
    pub connect: Connect,
    /// The will, already inside the user's namespace.
    pub will: Option<(LastWill, Option<LastWillProperties>)>,
    pub login: Login,
    pub access: Access,
    pub namespace: Namespace,
    /// The client id the server chose when the client sent none.
    pub assigned_id: Option<String>,
    /// What the connection's session is known by within its account: the client id, or for a
    /// device key the device's node and the client id, apart from the account's own ids (a
    /// device key must not take over, resume or end a session of the account's clients).
    pub session_key: String,
}

/// Why a connection ended before it was accepted (for the log; the client was answered).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("no CONNECT within the deadline")]
    Timeout,
    #[error("connection closed before CONNECT")]
    Closed,
    #[error("first packet was not a CONNECT")]
    NotConnect,
    #[error("malformed CONNECT: {0}")]
    Malformed(String),
    #[error("client id not accepted")]
    ClientId,
    #[error("login refused")]
    Login,
    #[error("account over its quota")]
    Quota,
    #[error("login not checked: the catalog did not answer")]
    Unavailable,
    #[error("will topic not allowed")]
    Will,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A client-supplied string as a log line may quote it.
pub(crate) fn quote(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(LOG_PREFIX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > LOG_PREFIX {
        out.push('…');
    }
    out
}

/// Reads one CONNECT from `io`: the packet and its bytes as sent (to pass the connection on
/// to another node); bytes after it stay in `buf`.
pub(crate) async fn read_connect(
    io: &mut Stream,
    codec: &mut AnyVersion,
    buf: &mut BytesMut,
    deadline: Duration,
) -> Result<(Packet, bytes::Bytes), Refused> {
    let read = async {
        loop {
            let before = buf.clone();
            match codec.read_mut(buf, MAX_CONNECT) {
                Ok(packet) => {
                    let used = before.len() - buf.len();
                    return Ok((packet, before.freeze().slice(..used)));
                }
                Err(rumqttd::protocol::Error::InsufficientBytes(_)) => {
                    if io.read_buf(buf).await? == 0 {
                        return Err(Refused::Closed);
                    }
                }
                Err(e) => return Err(Refused::Malformed(e.to_string())),
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| Refused::Timeout)?
}

/// Writes a CONNACK refusal and closes.
async fn refuse(io: &mut Stream, codec: &AnyVersion, v5: ConnectReturnCode, v4: ConnectReturnCode) {
    let code = if codec.is_v5() { v5 } else { v4 };
    let mut out = BytesMut::new();
    let ack = Packet::ConnAck(
        ConnAck {
            session_present: false,
            code,
        },
        None,
    );
    if codec.write(ack, &mut out).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = io.write_all(&out).await;
            let _ = io.shutdown().await;
        })
        .await;
    }
}

/// Refuses an authenticated connection whose user no node can take now (cluster mode: the
/// user's shard is changing hands); the client retries.
pub(crate) async fn refuse_unavailable(io: &mut Stream, codec: &AnyVersion) {
    refuse(
        io,
        codec,
        ConnectReturnCode::ServerUnavailable,
        ConnectReturnCode::ServiceUnavailable,
    )
    .await;
}

/// Refuses a connection whose credentials were revoked while it was being accepted.
pub(crate) async fn refuse_revoked(io: &mut Stream, codec: &AnyVersion) {
    refuse(
        io,
        codec,
        ConnectReturnCode::BadUserNamePassword,
        ConnectReturnCode::NotAuthorized,
    )
    .await;
}

/// Refuses an authenticated connection the broker has no room for (the user's limit).
pub(crate) async fn refuse_busy(io: &mut Stream, codec: &AnyVersion) {
    refuse(
        io,
        codec,
        ConnectReturnCode::QuotaExceeded,
        ConnectReturnCode::ServiceUnavailable,
    )
    .await;
}

/// Checks a CONNECT and its credentials; refusals are answered on `io`.
pub(crate) async fn accept(
    io: &mut Stream,
    codec: &AnyVersion,
    packet: Packet,
    peer: SocketAddr,
    base: &str,
    authenticate: &crate::Authenticate,
) -> Result<Accepted, Refused> {
    let Packet::Connect(connect, _props, will, will_props, login) = packet else {
        return Err(Refused::NotConnect);
    };
    use ConnectReturnCode as C;
    // U+0000 is not allowed in an MQTT string; refused, it also keeps device keys' session
    // keys (which use it) apart from every client id.
    let bad_id = connect.client_id.len() > MAX_CLIENT_ID
        || connect.client_id.contains('\0')
        || (connect.client_id.is_empty() && !connect.clean_session);
    if bad_id {
        refuse(
            io,
            codec,
            C::ClientIdentifierNotValid,
            C::ClientIdentifierNotValid,
        )
        .await;
        return Err(Refused::ClientId);
    }
    let Some(login) = login else {
        refuse(io, codec, C::NotAuthorized, C::NotAuthorized).await;
        return Err(Refused::Login);
    };
    let login = Login {
        username: login.username,
        password: login.password,
        peer: peer.ip(),
        recheck: false,
    };
    let access = authenticate(login.clone()).await;
    let (userid, node) = match &access {
        Access::Denied => {
            tracing::info!(%peer, username = %quote(&login.username), "MQTT login refused");
            refuse(io, codec, C::BadUserNamePassword, C::NotAuthorized).await;
            return Err(Refused::Login);
        }
        Access::QuotaExceeded => {
            tracing::info!(%peer, username = %quote(&login.username), "MQTT login refused: quota exceeded");
            refuse(io, codec, C::QuotaExceeded, C::NotAuthorized).await;
            return Err(Refused::Quota);
        }
        Access::Unavailable => {
            tracing::warn!(%peer, username = %quote(&login.username), "MQTT login not checked: the catalog did not answer");
            refuse_unavailable(io, codec).await;
            return Err(Refused::Unavailable);
        }
        Access::Account { userid } => (*userid, None),
        Access::Device { userid, node } => (*userid, Some(node.as_str())),
    };
    let namespace = Namespace::new(userid);
    let will = match will {
        Some(mut w) => {
            let topic = String::from_utf8_lossy(&w.topic).into_owned();
            let allowed = !topic.is_empty()
                && !topic.contains(['+', '#'])
                && node.is_none_or(|n| topic_of_node(&topic, base, n));
            if !allowed {
                tracing::info!(%peer, topic = %quote(&topic), "MQTT will topic refused");
                refuse(io, codec, C::NotAuthorized, C::NotAuthorized).await;
                return Err(Refused::Will);
            }
            w.topic = namespace.inside(&topic).into();
            Some((w, will_props))
        }
        None => None,
    };
    let mut connect = connect;
    let assigned_id = if connect.client_id.is_empty() {
        let id = format!("ynni-{:016x}", rand_id());
        connect.client_id = id.clone();
        Some(id)
    } else {
        None
    };
    let session_key = match node {
        // A device key cannot subscribe, so a kept session would hold nothing: it is clean.
        Some(node) => {
            connect.clean_session = true;
            format!("\0{node}\0{}", connect.client_id)
        }
        None => connect.client_id.clone(),
    };
    Ok(Accepted {
        connect,
        will,
        login,
        access,
        namespace,
        assigned_id,
        session_key,
    })
}

/// A random number for server-assigned client ids (the standard library's hasher is seeded
/// from the OS at random; no cryptographic strength is needed, only no collisions in practice).
fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_quote_a_short_clean_prefix() {
        let long = "x".repeat(60_000);
        let q = quote(&long);
        assert!(q.chars().count() <= LOG_PREFIX + 1);
        assert_eq!(quote("a\nb"), "a?b");
        assert_eq!(quote("alice"), "alice");
    }
}
