//! Devices over MQTT: one connection per device, logged in as its account (username + write
//! apikey), publishing emonhub's topics. ynni acknowledges a QoS 1/2 message once it is in the
//! shard's WAL; the time until the value is processed is measured separately: sampled devices
//! subscribe to their first input's feed updates (`ynni/feed/<id>`, published once the value
//! is durable and processed) and time each reading from publish to that update.
//!
//! With several addresses (a cluster's nodes), device `i` connects through address `i` (round
//! robin), and through the next one whenever its connection fails. ynni keeps no session for a
//! client between connections (nor could a vshard's new owner have its old owner's), so rumqttc
//! would drop the messages still unacknowledged when it reconnects; the device takes them back
//! when the connection fails and publishes them again, before anything newer, once the next
//! connection is accepted, as emonhub keeps a reading until it is acknowledged. A message can
//! so be stored twice (its acknowledgement lost with the connection), at the same time in the
//! same feed, but not lost. A message sent again counts as a retry; a failed connection is not
//! an error, a message never acknowledged is.
//!
//! With `--acked`, each message's reading is remembered from its publish to its
//! acknowledgement: rumqttc gives a message its packet id when it writes it, in the order the
//! device published, so readings queue in that order and each written packet id takes the
//! first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS, Request};
use tokio::task::JoinSet;

use super::acklog::AckLog;
use super::profile::Device;
use super::stats::Counters;
use super::{Clock, Plan, Ticker, new_device, payload};
use crate::{SimFormat, SimulateArgs, SimulateError};

/// How many devices watch their feed to time publish → stored. Each adds a subscription and
/// an outgoing message per reading, so few enough not to change what is measured.
const STORED_PROBES: usize = 10;
/// Probe readings remembered at most (updates the server skipped would pile up otherwise).
const PROBE_MEMORY: usize = 10_000;
/// How long a device waits for its last acknowledgements after its last reading (long enough
/// for a cluster to give a killed node's vshards to another with the default lease).
const DRAIN: Duration = Duration::from_secs(30);
/// How long a device waits after a failed connection before the next attempt.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// A device stops if its connection takes no message for this long (login refused, every
/// broker gone).
const STALLED: Duration = Duration::from_secs(30);

/// Publish instants of a probe device's readings, by the reading's time.
type Probe = Arc<Mutex<HashMap<i64, Instant>>>;

/// One connection's messages: written by the device loop, acknowledged by its event loop.
#[derive(Default)]
struct Flow {
    sent: AtomicU64,
    acked: AtomicU64,
}

/// What one device's tasks share.
struct Link {
    counters: Arc<Counters>,
    flow: Flow,
    /// Values per message (a JSON reading carries all inputs, a node-var message one).
    values: usize,
    qos: QoS,
    probe: Option<Probe>,
    /// `--acked`: where acknowledged readings are logged, and those not yet written.
    ledger: Option<Ledger>,
}

/// The readings of one device's messages between publish and acknowledgement.
struct Ledger {
    log: Arc<AckLog>,
    username: String,
    node: String,
    /// Published, not yet written (no packet id yet), in the order published.
    queued: Mutex<VecDeque<Reading>>,
}

/// What `--acked` logs of a message.
struct Reading {
    time: i64,
    /// The inputs as `fulljson`.
    values: String,
}

/// The broker addresses, and how device `index` connects to each.
struct Brokers {
    addrs: Vec<(String, u16)>,
    client_id: String,
    username: String,
    password: String,
}

impl Brokers {
    fn options(&self, turn: usize) -> MqttOptions {
        let (host, port) = &self.addrs[turn % self.addrs.len()];
        let mut opts = MqttOptions::new(self.client_id.clone(), host.clone(), *port);
        opts.set_credentials(self.username.clone(), self.password.clone());
        opts.set_keep_alive(Duration::from_secs(60));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        opts
    }
}

pub async fn run(
    addrs: &[String],
    args: &SimulateArgs,
    plans: Vec<Plan>,
    clock: Clock,
    counters: Arc<Counters>,
    ticks: Arc<Vec<AtomicU64>>,
    feeds: Option<Vec<Option<u32>>>,
) -> Result<(), SimulateError> {
    let addrs = addrs
        .iter()
        .map(|addr| {
            addr.rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| SimulateError::args(format!("--mqtt {addr}: expected HOST:PORT")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let qos = match args.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let log = args
        .acked
        .as_deref()
        .map(AckLog::create)
        .transpose()?
        .map(Arc::new);
    // Probes spread over all devices (and so over accounts and shards).
    let step = plans.len().div_ceil(STORED_PROBES).max(1);
    // Dropping the set (Ctrl-C) stops every device.
    let mut tasks = JoinSet::new();
    for plan in plans {
        let brokers = Brokers {
            addrs: addrs.clone(),
            client_id: format!("ynni-sim-{}-{}", args.seed, plan.index),
            username: plan.account.username.clone(),
            password: plan.account.apikey_write.clone(),
        };
        let (client, events) = AsyncClient::new(brokers.options(plan.index), 256);
        let probe_feed = feeds
            .as_ref()
            .filter(|_| plan.index % step == 0)
            .and_then(|f| f.get(plan.index).copied().flatten());
        let probe_topic = probe_feed.map(|feed| format!("ynni/feed/{feed}"));
        if let Some(topic) = &probe_topic {
            client
                .subscribe(topic.clone(), QoS::AtMostOnce)
                .await
                .map_err(|e| SimulateError::Subscribe(Box::new(e)))?;
        }
        let link = Arc::new(Link {
            counters: counters.clone(),
            flow: Flow::default(),
            values: match args.format {
                SimFormat::Json => plan.names.len(),
                SimFormat::NodeVar => 1,
            },
            qos,
            probe: probe_feed.map(|_| Probe::default()),
            ledger: log.clone().map(|log| Ledger {
                log,
                username: plan.account.username.clone(),
                node: plan.node.clone(),
                queued: Mutex::default(),
            }),
        });
        let device = new_device(args.profile, args.seed, &plan);
        let (base, format, ticks) = (args.base_topic.clone(), args.format, ticks.clone());
        tasks.spawn(async move {
            let watcher = Watcher {
                link: link.clone(),
                brokers,
                turn: plan.index,
                resubscribe: probe_topic.map(|t| (client.clone(), t)),
            };
            let mut watcher = tokio::spawn(watcher.watch(events));
            publish(&client, device, &plan, &base, format, clock, &link, &ticks).await;
            // The last acknowledgements (or, at QoS 0, the last writes) arrive before the
            // connection goes.
            let deadline = Instant::now() + DRAIN;
            while link.flow.acked.load(Ordering::Relaxed) < link.flow.sent.load(Ordering::Relaxed)
                && Instant::now() < deadline
                && !link.counters.refused.load(Ordering::Relaxed)
                && !watcher.is_finished()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let unacked = link
                .flow
                .sent
                .load(Ordering::Relaxed)
                .saturating_sub(link.flow.acked.load(Ordering::Relaxed));
            for _ in 0..unacked {
                link.counters.record_error();
            }
            let _ = client.disconnect().await;
            if tokio::time::timeout(Duration::from_secs(1), &mut watcher)
                .await
                .is_err()
            {
                watcher.abort();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(SimulateError::Task)?;
    }
    match log {
        Some(log) => log.finish(),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    client: &AsyncClient,
    mut device: Device,
    plan: &Plan,
    base: &str,
    format: SimFormat,
    clock: Clock,
    link: &Link,
    ticks: &[AtomicU64],
) {
    let node_topic = format!("{base}/{}", plan.node);
    let mut ticker = Ticker::new(clock, plan.index);
    while let Some((k, t)) = ticker.next().await {
        if link.counters.refused.load(Ordering::Relaxed) {
            return;
        }
        let values = device.read(t, clock.interval);
        if let Some(p) = &link.probe {
            let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
            if p.len() >= PROBE_MEMORY {
                p.clear();
            }
            p.insert(t as i64, Instant::now());
        }
        let messages: Vec<(String, String)> = match format {
            SimFormat::Json => vec![(
                node_topic.clone(),
                payload::node_json(t, device.names(), &values),
            )],
            SimFormat::NodeVar => device
                .names()
                .iter()
                .zip(&values)
                .map(|(name, v)| (format!("{node_topic}/{name}"), payload::number(name, *v)))
                .collect(),
        };
        if let Some(ledger) = &link.ledger {
            // Queued before it is published, so it is there when its packet id is written.
            ledger
                .queued
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(Reading {
                    time: t as i64,
                    values: payload::fulljson(device.names(), &values),
                });
        }
        for (topic, body) in messages {
            // Counted before the event loop can acknowledge it.
            link.flow.sent.fetch_add(1, Ordering::Relaxed);
            link.counters.record_sent(link.values);
            if !accepted(client.publish(topic, link.qos, false, body)).await {
                // The connection took nothing for a long while: this device stops, and says so.
                link.counters.record_error();
                return;
            }
        }
        ticks[plan.index].store(k + 1, Ordering::Relaxed);
    }
}

/// Waits while the connection is busy (back-pressure, a failover under way), but gives up on a
/// connection that has not taken anything for [`STALLED`] (refused login, brokers gone), so a
/// run always ends.
async fn accepted(
    publish: impl std::future::Future<Output = Result<(), rumqttc::ClientError>>,
) -> bool {
    matches!(tokio::time::timeout(STALLED, publish).await, Ok(Ok(())))
}

/// One device's connection: drives it, counts acknowledgements, and reconnects.
struct Watcher {
    link: Arc<Link>,
    brokers: Brokers,
    /// Which address the connection goes through (advanced after each failure).
    turn: usize,
    /// A probe device's feed subscription, made again on every new connection.
    resubscribe: Option<(AsyncClient, String)>,
}

/// What a connection's watcher keeps between events.
#[derive(Default)]
struct Books {
    sent_at: HashMap<u16, Instant>,
    /// `--acked`: the reading of each message written and not yet acknowledged.
    in_flight: HashMap<u16, Reading>,
    /// Messages taken back from a failed connection, to publish again once one is accepted.
    again: Vec<Request>,
    /// ynni closes the connection on a bad login (after a delay that grows with each failure)
    /// rather than answering CONNACK: failing through every address before ever being
    /// accepted is a refusal.
    accepted: bool,
    failures: usize,
}

impl Watcher {
    /// Drives the connection and counts acknowledgements: for QoS 0 a publish counts once it
    /// is written, for QoS 1 at PUBACK, for QoS 2 at PUBCOMP.
    async fn watch(mut self, mut events: rumqttc::EventLoop) {
        let mut books = Books::default();
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(event) => self.on_event(event, &mut books, &mut events),
                Err(e) => {
                    // Events of the failed connection rumqttc has not handed out yet (a
                    // publish queued before its write failed, an acknowledgement read with the
                    // end of the stream): booked now, or the next connection would pair them
                    // with its own messages.
                    let stale: Vec<Event> = events.state.events.drain(..).collect();
                    for event in stale {
                        self.on_event(event, &mut books, &mut events);
                    }
                    books.failures += 1;
                    self.take_back(&mut events, &mut books.in_flight, &mut books.again);
                    books.sent_at.clear();
                    if !books.accepted && books.failures >= 2 * self.brokers.addrs.len() {
                        self.link.counters.record_error();
                        self.link.counters.refused.store(true, Ordering::Relaxed);
                        tracing::error!(
                            error = %e,
                            "MQTT connection failed before the login was accepted (wrong address, or username and write apikey refused)"
                        );
                        return;
                    }
                    tracing::warn!(error = %e, "MQTT connection; reconnecting through the next address");
                    self.turn += 1;
                    events.mqtt_options = self.brokers.options(self.turn);
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
        }
    }

    /// Books one event of the connection.
    fn on_event(&self, event: Event, books: &mut Books, events: &mut rumqttc::EventLoop) {
        let link = &self.link;
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                // The first subscription went out with the first connection; a connection that
                // failed before this one took it back with the rest and dropped it.
                if (books.accepted || books.failures > 0)
                    && let Some((client, topic)) = &self.resubscribe
                {
                    let _ = client.try_subscribe(topic.clone(), QoS::AtMostOnce);
                }
                books.accepted = true;
                books.failures = 0;
                for _ in &books.again {
                    link.counters.record_retry();
                }
                // Before anything the device publishes from now on.
                events.pending.extend(books.again.drain(..));
            }
            Event::Incoming(Packet::Publish(p)) => {
                // A feed update: `{"time":…,"value":…}` once the reading is stored.
                if let Some(sent) = &link.probe
                    && let Ok(update) = serde_json::from_slice::<serde_json::Value>(&p.payload)
                    && let Some(t) = update["time"].as_f64()
                    && let Some(at) = sent
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&(t as i64))
                {
                    link.counters.record_stored(at.elapsed());
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if link.qos == QoS::AtMostOnce {
                    link.flow.acked.fetch_add(1, Ordering::Relaxed);
                    link.counters.record_acked(link.values, None);
                } else {
                    books.sent_at.insert(pkid, Instant::now());
                    if let Some(ledger) = &link.ledger
                        && !books.in_flight.contains_key(&pkid)
                        && let Some(r) = ledger
                            .queued
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .pop_front()
                    {
                        books.in_flight.insert(pkid, r);
                    }
                }
            }
            Event::Incoming(Packet::PubAck(a)) if link.qos == QoS::AtLeastOnce => {
                self.acked(a.pkid, books);
            }
            Event::Incoming(Packet::PubComp(a)) if link.qos == QoS::ExactlyOnce => {
                self.acked(a.pkid, books);
            }
            _ => {}
        }
    }

    /// The broker acknowledged message `pkid`: counted, and its reading logged.
    fn acked(&self, pkid: u16, books: &mut Books) {
        let link = &self.link;
        link.flow.acked.fetch_add(1, Ordering::Relaxed);
        link.counters.record_acked(
            link.values,
            books.sent_at.remove(&pkid).map(|t| t.elapsed()),
        );
        if let (Some(ledger), Some(r)) = (&link.ledger, books.in_flight.remove(&pkid)) {
            ledger
                .log
                .record(&ledger.username, &ledger.node, r.time, &r.values);
        }
    }

    /// After a failed connection: takes back the messages it had not had acknowledged (rumqttc
    /// has put them, with those not yet written, in `pending`, and would drop them on a new
    /// session), to publish again on the next, each with a new packet id. Their readings go
    /// back to the front of the queue, in the order they will be written.
    fn take_back(
        &self,
        events: &mut rumqttc::EventLoop,
        in_flight: &mut HashMap<u16, Reading>,
        again: &mut Vec<Request>,
    ) {
        let mut readings = Vec::new();
        let queued = self.link.ledger.as_ref().map(|l| &l.queued);
        let mut queued = queued.map(|q| q.lock().unwrap_or_else(|e| e.into_inner()));
        for request in events.pending.drain(..) {
            // Subscriptions are made again on the next connection; a QoS 2 release belongs to
            // the lost session (its message stays unacknowledged, and counts as an error).
            let Request::Publish(mut p) = request else {
                continue;
            };
            if let Some(queued) = queued.as_mut() {
                let reading = if p.pkid != 0 {
                    in_flight.remove(&p.pkid)
                } else {
                    queued.pop_front()
                };
                readings.extend(reading);
            }
            p.pkid = 0;
            p.dup = false;
            again.push(Request::Publish(p));
        }
        if let Some(queued) = queued.as_mut() {
            for r in readings.into_iter().rev() {
                queued.push_front(r);
            }
        }
        in_flight.clear();
    }
}
