//! One client connection after its CONNECT was accepted: the single task that owns the socket,
//! the connection's router link and its acknowledgements.
//!
//! **When an acknowledgement is sent.** A QoS 1 PUBLISH on an ingest topic (`<base>/…`) is
//! answered with PUBACK, and a QoS 2 one with PUBREC, only after ingest reported the message
//! durable in the shard's WAL ([`Handled::Stored`]) or decided it holds nothing to store
//! ([`Handled::Ignored`]). If storing failed ([`Handled::Failed`]) no acknowledgement is sent
//! and the connection is closed, so the client sends the message again. Acknowledgements go
//! out in the order the PUBLISHes came in. Other topics are acknowledged once the router has
//! them (they are live messages between clients, kept in memory as MQTT brokers do).
//!
//! Messages reach the router at QoS 0: the router decides the QoS of each delivery by the
//! subscription, so nothing is lost for subscribers, and every acknowledgement the client sees
//! is this task's.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::{FutureExt, future::BoxFuture};
use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{
    ConnAck, ConnAckProperties, DisconnectReasonCode, Packet, PingResp, Protocol, PubAck,
    PubAckReason, PubComp, PubCompReason, PubRec, PubRecReason, Publish, QoS, SubAck, Subscribe,
    SubscribeReasonCode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::audience::Heard;
use crate::connect::{Accepted, quote};
use crate::listen::Stream;
use crate::namespace::topic_of_node;
use crate::sessions::{Kick, Registration};
use crate::version::AnyVersion;
use crate::{Access, Done, Handled, Inbound, Shared, Will};

/// Publishes waiting for their acknowledgement before reading stops (backpressure).
const MAX_PENDING: usize = 1024;
/// The most filters one SUBSCRIBE may carry, and the longest filter: every new filter makes
/// the router, one thread for all accounts, look through its retained messages and topics.
const MAX_SUBSCRIBE_FILTERS: usize = 256;
const MAX_FILTER_LEN: usize = 1024;
/// The longest topic a client may publish on: emoncms's `emon/<node>/<input>` with names of up
/// to 256 characters each fits.
const MAX_TOPIC_LEN: usize = 1024;
/// The longest MQTT 5 will delay honoured; a longer one is cut to it (each delayed will is a
/// task and its message, held after the connection is gone).
const MAX_WILL_DELAY: u32 = 3600;
/// Forwarded messages gathered into one write stop at this many bytes; a buffer grown larger
/// than it by one big message is let go after its write rather than kept for the connection.
const OUT_BATCH_BYTES: usize = 64 << 10;
/// The idle limit of a client that asked for no keep-alive.
const IDLE_WITHOUT_KEEPALIVE: Duration = Duration::from_secs(3600);
/// A write that takes longer than this means the client stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How a connection ended.
#[derive(Debug)]
enum End {
    /// DISCONNECT from the client: no will.
    Clean,
    /// DISCONNECT asking for the will (MQTT 5).
    CleanWithWill,
    /// Anything else: the will is published.
    Lost(String),
    /// Closed by the broker because the credentials were revoked: no will.
    Revoked,
}

/// What one acknowledgement future yields.
struct AckOut {
    pkid: u16,
    qos: QoS,
    reason: AckReason,
}

enum AckReason {
    Ok,
    NotAuthorized,
    Failed,
}

pub(crate) struct Session {
    io: Stream,
    codec: AnyVersion,
    read: BytesMut,
    out: BytesMut,
    peer: SocketAddr,
    accepted: Accepted,
    shared: Arc<Shared>,
    link_tx: LinkTx,
    acks: FuturesOrdered<BoxFuture<'static, AckOut>>,
    /// QoS 2 packet ids received whose PUBREL has not come yet.
    awaiting_rel: HashSet<u16>,
    /// Whether the user's messages may have subscribers (see [`crate::audience`]).
    heard: Heard,
}

/// The QoS, packet id and dup flag of a PUBLISH (rumqttd keeps them crate-private; its own
/// serialisation of the header carries them).
fn qos_and_pkid(p: &Publish) -> (QoS, u16) {
    let mut head = p.clone();
    head.payload = Bytes::new();
    let bytes = head.serialize();
    let qos = match (bytes[0] >> 1) & 0b11 {
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtMostOnce,
    };
    let pkid = u16::from_be_bytes([bytes[1], bytes[2]]);
    (qos, pkid)
}

/// Runs an accepted connection until it ends, then publishes its will if it should.
pub(crate) async fn run(
    io: Stream,
    codec: AnyVersion,
    read: BytesMut,
    peer: SocketAddr,
    accepted: Accepted,
    registration: Registration,
    shared: Arc<Shared>,
) {
    let clean = accepted.connect.clean_session;
    // Held until the session's end, when the router has been told it is gone.
    let slot = clean.then(|| shared.clean_slots.take(accepted.namespace.userid()));
    let userid = accepted.namespace.userid();
    let (router_id, clear_first) = match &slot {
        Some(slot) => {
            // A clean session ends any kept one of the client (MQTT 3.1.2.4): the next kept
            // connection starts afresh.
            shared.kept_slots.forget(userid, &accepted.session_key);
            (slot.router_id(), false)
        }
        None => {
            let sessions = &shared.sessions;
            let place = shared.kept_slots.place(
                userid,
                &accepted.session_key,
                shared.max_connections_per_user,
                |client| sessions.is_live(userid, client),
            );
            match place {
                Some(p) => (p.router_id, p.clear_first),
                // Unreachable while the connection limit holds (this one is registered).
                None => {
                    tracing::warn!(userid, "no room for another kept MQTT session");
                    return;
                }
            }
        }
    };
    let build = shared.links.clone();
    let kept = (!clean).then(|| (shared.kept_slots.clone(), accepted.session_key.clone()));
    let built = tokio::task::spawn_blocking(move || {
        if clear_first {
            // A clean connection takes the slot's old session from the router (and the
            // connection below replaces it), so the new client does not resume another's.
            drop(build(&router_id, true)?);
        }
        build(&router_id, clean)
    })
    .await;
    let (link_tx, link_rx, notification) = match built {
        Ok(Ok(link)) => link,
        failed => {
            match failed {
                Ok(Err(e)) => tracing::warn!(error = %e, "MQTT router refused a connection"),
                Err(e) => tracing::warn!(error = %e, "MQTT router link task failed"),
                Ok(Ok(_)) => {}
            }
            // The slot may still hold another client's session: its next connection must
            // clear it first, as a new client's does.
            if let Some((slots, client)) = kept {
                slots.forget(userid, &client);
            }
            return;
        }
    };
    let heard = shared.audience.of(accepted.namespace.userid());
    let mut session = Session {
        io,
        codec,
        read,
        // Grown by the first write: an idle connection holds only what its replies needed.
        out: BytesMut::new(),
        peer,
        accepted,
        shared,
        link_tx,
        acks: FuturesOrdered::new(),
        awaiting_rel: HashSet::new(),
        heard,
    };
    let end = session
        .serve(link_rx, notification, registration.kicked.clone())
        .await;
    let _ = session
        .link_tx
        .send(Packet::Disconnect(
            rumqttd::protocol::Disconnect {
                reason_code: DisconnectReasonCode::NormalDisconnection,
            },
            None,
        ))
        .await;
    drop(slot);
    let userid = session.accepted.namespace.userid();
    if !clean {
        // Used until now: the least recently used kept session is the one gone longest.
        session
            .shared
            .kept_slots
            .touch(userid, &session.accepted.session_key);
    }
    let client = quote(&session.accepted.connect.client_id);
    match &end {
        End::Lost(why) => {
            tracing::debug!(peer = %session.peer, userid, client, reason = %why, "MQTT connection lost")
        }
        other => {
            tracing::debug!(peer = %session.peer, userid, client, end = ?other, "MQTT connection closed")
        }
    }
    let will = match end {
        End::Lost(_) | End::CleanWithWill => session.accepted.will.take(),
        End::Clean | End::Revoked => None,
    };
    let Some((will, props)) = will else { return };
    let delay = props
        .as_ref()
        .and_then(|p| p.delay_interval)
        .unwrap_or(0)
        .min(MAX_WILL_DELAY);
    let will = Will {
        topic: will.topic,
        payload: will.message,
        retain: will.retain,
        heard: session.heard.clone(),
    };
    if delay == 0 {
        drop(registration);
        let _ = session.shared.wills.send(will);
        return;
    }
    // MQTT 5's will delay: not sent if the same client is back before it passes.
    let (sessions, wills) = (
        session.shared.sessions.clone(),
        session.shared.wills.clone(),
    );
    let (client_id, id) = (session.accepted.session_key.clone(), registration.id());
    // Held before the registration goes: a connection of the same client waiting for it
    // cancels the will once registered, which must find it.
    let delayed = session.shared.delayed_wills.clone();
    let mut will = Some(will);
    let held = delayed.hold(
        userid,
        &session.accepted.session_key,
        session.shared.max_connections_per_user,
        |slot| {
            let (will, delayed, wills) = (will.take(), delayed.clone(), wills.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
                if delayed.done(userid, &client_id, slot.token)
                    && !sessions.replaced_since(userid, &client_id, id)
                    && let Some(will) = will
                {
                    let _ = wills.send(will);
                }
            })
            .abort_handle()
        },
    );
    drop(registration);
    // The account has as many wills waiting as it may have connections: this one goes now.
    if !held && let Some(will) = will {
        let _ = wills.send(will);
    }
}

impl Session {
    async fn serve(
        &mut self,
        mut link_rx: LinkRx,
        notification: Notification,
        mut kicked: tokio::sync::watch::Receiver<Option<Kick>>,
    ) -> End {
        if let Err(e) = self.connack(notification).await {
            return End::Lost(e);
        }
        let keep_alive = match self.accepted.connect.keep_alive {
            0 => IDLE_WITHOUT_KEEPALIVE,
            k => Duration::from_millis(u64::from(k) * 1500),
        };
        let idle = tokio::time::sleep(keep_alive);
        tokio::pin!(idle);
        // Packets that arrived with the CONNECT.
        if !self.read.is_empty()
            && let Err(end) = self.handle_read().await
        {
            return end;
        }
        loop {
            tokio::select! {
                biased;
                changed = kicked.changed() => {
                    // The registry drops the sender only when another connection replaced
                    // this one's entry.
                    let kick = if changed.is_ok() { *kicked.borrow() } else { Some(Kick::TakenOver) };
                    match kick {
                        Some(Kick::Revoked) => return End::Revoked,
                        Some(Kick::Moved) => {
                            // Not the client's failure: no will; it reconnects and reaches
                            // the shard's new owner.
                            self.disconnect_v5(DisconnectReasonCode::UseAnotherServer).await;
                            return End::Revoked;
                        }
                        Some(Kick::TakenOver) => {
                            self.disconnect_v5(DisconnectReasonCode::SessionTakenOver).await;
                            return End::Lost("taken over by a new connection".into());
                        }
                        None => {}
                    }
                }
                Some(ack) = self.acks.next(), if !self.acks.is_empty() => {
                    if let Err(end) = self.acknowledge(ack).await {
                        return end;
                    }
                }
                notification = link_rx.next() => {
                    match notification {
                        Ok(Some(n)) => {
                            if let Err(end) = self.on_router(n, &mut link_rx).await {
                                return end;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => return End::Lost(format!("router link: {e}")),
                    }
                }
                read = self.io.read_buf(&mut self.read), if self.acks.len() < MAX_PENDING => {
                    match read {
                        Ok(0) => return End::Lost("closed by the client".into()),
                        Ok(_) => {
                            idle.as_mut().reset(tokio::time::Instant::now() + keep_alive);
                            if let Err(end) = self.handle_read().await {
                                return end;
                            }
                        }
                        Err(e) => return End::Lost(e.to_string()),
                    }
                }
                () = &mut idle => return End::Lost("keep-alive expired".into()),
            }
        }
    }

    async fn write(&mut self, packet: Packet) -> Result<(), End> {
        self.out.clear();
        self.codec
            .write(packet, &mut self.out)
            .map_err(|e| End::Lost(format!("encoding: {e}")))?;
        match tokio::time::timeout(WRITE_TIMEOUT, self.io.write_all(&self.out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Lost(e.to_string())),
            Err(_) => Err(End::Lost("write timed out".into())),
        }
    }

    /// Sends the router's CONNACK, with what this broker supports said in MQTT 5's properties.
    async fn connack(&mut self, notification: Notification) -> Result<(), String> {
        let session_present = match Option::<Packet>::from(notification) {
            Some(Packet::ConnAck(ack, _)) => ack.session_present,
            _ => return Err("router did not acknowledge the connection".into()),
        };
        let props = self.codec.is_v5().then(|| ConnAckProperties {
            // Inbound topic aliases would hide the topic from the namespace check.
            topic_alias_max: None,
            receive_max: Some(MAX_PENDING as u16),
            assigned_client_identifier: self.accepted.assigned_id.clone(),
            max_packet_size: Some(crate::MAX_PACKET as u32),
            ..Default::default()
        });
        let ack = ConnAck {
            session_present,
            code: rumqttd::protocol::ConnectReturnCode::Success,
        };
        self.write(Packet::ConnAck(ack, props))
            .await
            .map_err(|e| format!("{e:?}"))
    }

    async fn disconnect_v5(&mut self, reason_code: DisconnectReasonCode) {
        if self.codec.is_v5() {
            let packet = Packet::Disconnect(rumqttd::protocol::Disconnect { reason_code }, None);
            let _ = self.write(packet).await;
        }
    }

    /// Handles every whole packet in the read buffer.
    async fn handle_read(&mut self) -> Result<(), End> {
        loop {
            let packet = match self.codec.read_mut(&mut self.read, crate::MAX_PACKET) {
                Ok(p) => p,
                Err(rumqttd::protocol::Error::InsufficientBytes(_)) => return Ok(()),
                Err(e) => {
                    self.disconnect_v5(DisconnectReasonCode::MalformedPacket)
                        .await;
                    return Err(End::Lost(format!("protocol: {e}")));
                }
            };
            self.on_client_packet(packet).await?;
        }
    }

    async fn route(&mut self, packet: Packet) -> Result<(), End> {
        self.link_tx
            .send(packet)
            .await
            .map(|_| ())
            .map_err(|e| End::Lost(format!("router link: {e}")))
    }

    async fn on_client_packet(&mut self, packet: Packet) -> Result<(), End> {
        match packet {
            Packet::Publish(publish, props) => self.publish(publish, props).await,
            Packet::PubRel(rel, _) => {
                let reason = if self.awaiting_rel.remove(&rel.pkid) {
                    PubCompReason::Success
                } else {
                    PubCompReason::PacketIdentifierNotFound
                };
                let comp = PubComp {
                    pkid: rel.pkid,
                    reason,
                };
                self.write(Packet::PubComp(comp, None)).await
            }
            Packet::Subscribe(mut subscribe, props) => {
                if let Some(why) = self.refusal(&subscribe) {
                    tracing::debug!(peer = %self.peer, reason = ?why, "MQTT SUBSCRIBE refused");
                    let code = if self.codec.is_v5() {
                        why
                    } else {
                        SubscribeReasonCode::Failure
                    };
                    let ack = SubAck {
                        pkid: subscribe.pkid,
                        return_codes: vec![code; subscribe.filters.len()],
                    };
                    return self.write(Packet::SubAck(ack, None)).await;
                }
                let filters: Vec<String> =
                    subscribe.filters.iter().map(|f| f.path.clone()).collect();
                for f in &mut subscribe.filters {
                    f.path = self.accepted.namespace.inside(&f.path);
                }
                self.heard
                    .subscribe(
                        &mut self.link_tx,
                        Packet::Subscribe(subscribe, props),
                        &filters,
                    )
                    .await
                    .map_err(|e| End::Lost(format!("router link: {e}")))
            }
            Packet::Unsubscribe(mut unsubscribe, props) => {
                for f in &mut unsubscribe.filters {
                    *f = self.accepted.namespace.inside(f);
                }
                self.route(Packet::Unsubscribe(unsubscribe, props)).await
            }
            // Acknowledgements of what the router delivered to this client.
            p @ (Packet::PubAck(..) | Packet::PubRec(..) | Packet::PubComp(..)) => {
                self.route(p).await
            }
            Packet::PingReq(_) => self.write(Packet::PingResp(PingResp)).await,
            Packet::Disconnect(d, _) => Err(
                if d.reason_code == DisconnectReasonCode::DisconnectWithWillMessage {
                    End::CleanWithWill
                } else {
                    End::Clean
                },
            ),
            other => Err(End::Lost(format!(
                "unexpected packet from client: {}",
                packet_name(&other)
            ))),
        }
    }

    /// Why a SUBSCRIBE is refused whole, if it is: a device key only posts; too many or too
    /// long filters; a shared subscription in a session kept after the connection (rumqttd's
    /// router cannot end such a session while a message it sent the group is unacknowledged:
    /// its thread, every account's, would stop).
    fn refusal(&self, subscribe: &Subscribe) -> Option<SubscribeReasonCode> {
        if matches!(self.accepted.access, Access::Device { .. }) {
            return Some(SubscribeReasonCode::NotAuthorized);
        }
        if subscribe.filters.len() > MAX_SUBSCRIBE_FILTERS {
            return Some(SubscribeReasonCode::QuotaExceeded);
        }
        if subscribe
            .filters
            .iter()
            .any(|f| f.path.len() > MAX_FILTER_LEN)
        {
            return Some(SubscribeReasonCode::TopicFilterInvalid);
        }
        if !self.accepted.connect.clean_session
            && subscribe
                .filters
                .iter()
                .any(|f| f.path.starts_with("$share/"))
        {
            return Some(SubscribeReasonCode::SharedSubscriptionsNotSupported);
        }
        if !self
            .heard
            .admit_filters(subscribe.filters.iter().map(|f| f.path.as_str()))
        {
            tracing::info!(peer = %self.peer, limit = crate::audience::MAX_ROUTER_FILTERS, "MQTT SUBSCRIBE past the account's distinct filters refused");
            return Some(SubscribeReasonCode::QuotaExceeded);
        }
        None
    }

    async fn publish(
        &mut self,
        publish: Publish,
        props: Option<rumqttd::protocol::PublishProperties>,
    ) -> Result<(), End> {
        let (qos, pkid) = qos_and_pkid(&publish);
        if publish.topic.is_empty() {
            // A topic alias: refused in CONNACK, so this is a protocol error.
            self.disconnect_v5(DisconnectReasonCode::TopicAliasInvalid)
                .await;
            return Err(End::Lost("topic alias used".into()));
        }
        let Ok(topic) = std::str::from_utf8(&publish.topic).map(str::to_string) else {
            return Err(End::Lost("topic is not UTF-8".into()));
        };
        if topic.contains(['+', '#']) {
            self.disconnect_v5(DisconnectReasonCode::TopicNameInvalid)
                .await;
            return Err(End::Lost("wildcard in a publish topic".into()));
        }
        if topic.len() > MAX_TOPIC_LEN {
            // The router keeps every topic it routes for good: a bound per topic as well as
            // per account (`audience::MAX_ROUTED_TOPICS`).
            self.disconnect_v5(DisconnectReasonCode::TopicNameInvalid)
                .await;
            return Err(End::Lost(format!(
                "publish topic longer than {MAX_TOPIC_LEN} bytes"
            )));
        }
        if qos == QoS::ExactlyOnce && self.awaiting_rel.contains(&pkid) {
            // A resend of a QoS 2 message already taken: answered again, not stored again,
            // and only after the first one's answer (the queue keeps the order).
            self.acks.push_back(
                futures_util::future::ready(AckOut {
                    pkid,
                    qos,
                    reason: AckReason::Ok,
                })
                .boxed(),
            );
            return Ok(());
        }
        let allowed = match &self.accepted.access {
            Access::Device { node, .. } => topic_of_node(&topic, &self.shared.base, node),
            _ => true,
        };
        if !allowed {
            tracing::debug!(peer = %self.peer, topic = %quote(&topic), "MQTT publish outside the device's node dropped");
            if qos != QoS::AtMostOnce {
                self.acks.push_back(
                    futures_util::future::ready(AckOut {
                        pkid,
                        qos,
                        reason: AckReason::NotAuthorized,
                    })
                    .boxed(),
                );
            }
            return Ok(());
        }
        if qos == QoS::ExactlyOnce {
            if self.awaiting_rel.len() >= MAX_PENDING {
                return Err(End::Lost("too many QoS 2 messages awaiting PUBREL".into()));
            }
            self.awaiting_rel.insert(pkid);
        }
        if publish.retain || self.heard.may_hear(&topic) {
            let inside = Bytes::from(self.accepted.namespace.inside(&topic));
            // A topic past the account's routed ones reaches nobody, retained or not; one is
            // taken into that count only when a message on it goes to the router.
            if self.heard.topic_has_room(&inside) {
                let mut retain = publish.retain;
                if retain && !self.heard.client_retained(&inside, publish.payload.len()) {
                    tracing::debug!(peer = %self.peer, topic = %quote(&topic), "MQTT retained message past the account's limits: delivered, not kept");
                    retain = false;
                }
                if (retain || self.heard.may_hear(&topic)) && self.heard.admit_topic(&inside) {
                    let routed = Publish::new(inside, publish.payload.clone(), retain);
                    self.route(Packet::Publish(routed, props)).await?;
                }
            }
        }
        let ack: BoxFuture<'static, AckOut> = if self.shared.is_ingest_topic(&topic) {
            let (done, handled) = if qos == QoS::AtMostOnce {
                (None, None)
            } else {
                let (tx, rx) = oneshot::channel();
                (Some(Done(tx)), Some(rx))
            };
            let room = self
                .shared
                .inbound_room
                .room(self.accepted.namespace.userid(), publish.payload.len())
                .await;
            let msg = Inbound {
                userid: self.accepted.namespace.userid(),
                topic,
                payload: publish.payload.to_vec(),
                done,
                device_node: match &self.accepted.access {
                    Access::Device { node, .. } => Some(node.clone()),
                    _ => None,
                },
                room,
            };
            if self.shared.inbound.send(msg).await.is_err() {
                return Err(End::Lost("ingest stopped".into()));
            }
            match handled {
                None => return Ok(()),
                Some(rx) => async move {
                    let reason = match rx.await {
                        Ok(Handled::Stored | Handled::Ignored) => AckReason::Ok,
                        Ok(Handled::Failed) | Err(_) => AckReason::Failed,
                    };
                    AckOut { pkid, qos, reason }
                }
                .boxed(),
            }
        } else {
            if qos == QoS::AtMostOnce {
                return Ok(());
            }
            futures_util::future::ready(AckOut {
                pkid,
                qos,
                reason: AckReason::Ok,
            })
            .boxed()
        };
        self.acks.push_back(ack);
        Ok(())
    }

    async fn acknowledge(&mut self, ack: AckOut) -> Result<(), End> {
        let v5 = self.codec.is_v5();
        let (pub_ack, pub_rec) = match ack.reason {
            AckReason::Ok => (PubAckReason::Success, PubRecReason::Success),
            // 3.1.1 has no refusal in PUBACK: the message is dropped and acknowledged.
            AckReason::NotAuthorized if !v5 => (PubAckReason::Success, PubRecReason::Success),
            AckReason::NotAuthorized => (PubAckReason::NotAuthorized, PubRecReason::NotAuthorized),
            AckReason::Failed => {
                self.disconnect_v5(DisconnectReasonCode::ServerBusy).await;
                return Err(End::Lost("a message could not be stored".into()));
            }
        };
        let packet = match ack.qos {
            QoS::AtLeastOnce => Packet::PubAck(
                PubAck {
                    pkid: ack.pkid,
                    reason: pub_ack,
                },
                None,
            ),
            QoS::ExactlyOnce => {
                if !matches!(ack.reason, AckReason::Ok) {
                    // Refused: no PUBREL will follow for it.
                    self.awaiting_rel.remove(&ack.pkid);
                }
                Packet::PubRec(
                    PubRec {
                        pkid: ack.pkid,
                        reason: pub_rec,
                    },
                    None,
                )
            }
            QoS::AtMostOnce => return Ok(()),
        };
        self.write(packet).await
    }

    async fn on_router(&mut self, first: Notification, link_rx: &mut LinkRx) -> Result<(), End> {
        let mut next = Some(first);
        // Whatever else is already waiting goes out in the same write.
        let mut batch = 0;
        self.out.clear();
        while let Some(n) = next.take() {
            match n {
                Notification::Unschedule => {
                    // rumqttd parks a link that does not ask again.
                    link_rx
                        .wake()
                        .await
                        .map_err(|e| End::Lost(format!("router link: {e}")))?;
                }
                Notification::Disconnect(d, props) => {
                    self.flush().await?;
                    if self.codec.is_v5() {
                        let _ = self.write(Packet::Disconnect(d, props)).await;
                    }
                    return Err(End::Lost("disconnected by the router".into()));
                }
                n => {
                    let Some(mut packet) = Option::<Packet>::from(n) else {
                        continue;
                    };
                    if let Packet::Publish(p, _) = &mut packet {
                        match self.accepted.namespace.outside(&p.topic) {
                            Some(inner) => p.topic = inner,
                            // Never another user's: skipped rather than shown.
                            None => continue,
                        }
                    }
                    self.codec
                        .write(packet, &mut self.out)
                        .map_err(|e| End::Lost(format!("encoding: {e}")))?;
                    batch += 1;
                }
            }
            if batch < 256 && self.out.len() < OUT_BATCH_BYTES {
                next = link_rx.next().now_or_never().and_then(|r| r.ok().flatten());
            }
        }
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = tokio::time::timeout(WRITE_TIMEOUT, self.io.write_all(&self.out)).await;
        if self.out.capacity() > OUT_BATCH_BYTES {
            self.out = BytesMut::new();
        } else {
            self.out.clear();
        }
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Lost(e.to_string())),
            Err(_) => Err(End::Lost("write timed out".into())),
        }
    }
}

fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(..) => "CONNECT",
        Packet::ConnAck(..) => "CONNACK",
        Packet::SubAck(..) => "SUBACK",
        Packet::UnsubAck(..) => "UNSUBACK",
        Packet::PingResp(..) => "PINGRESP",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_and_packet_id_are_read_from_the_header() {
        let mut raw = BytesMut::new();
        // PUBLISH QoS 1, topic "t", pkid 0x1234, payload "v".
        raw.extend_from_slice(&[0x32, 6, 0, 1, b't', 0x12, 0x34, b'v']);
        let mut codec = rumqttd::protocol::v4::V4;
        let Ok(Packet::Publish(p, _)) = codec.read_mut(&mut raw, 1024) else {
            panic!("not a publish");
        };
        assert_eq!(qos_and_pkid(&p), (QoS::AtLeastOnce, 0x1234));
        let mut raw = BytesMut::from(&[0x34, 6, 0, 1, b't', 0, 7, b'v'][..]);
        let Ok(Packet::Publish(p, _)) = codec.read_mut(&mut raw, 1024) else {
            panic!("not a publish");
        };
        assert_eq!(qos_and_pkid(&p), (QoS::ExactlyOnce, 7));
        assert_eq!(
            qos_and_pkid(&Publish::new("t", "v", false)),
            (QoS::AtMostOnce, 0)
        );
    }
}
