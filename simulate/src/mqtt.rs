//! Devices over MQTT: one connection per device, logged in as its account (username + write
//! apikey), publishing emonhub's topics. ynni acknowledges a QoS 1/2 message once it is in the
//! shard's WAL; the time until the value is processed is measured separately: sampled devices
//! subscribe to their first input's feed updates (`ynni/feed/<id>`, published once the value
//! is durable and processed) and time each reading from publish to that update.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::task::JoinSet;

use super::profile::Device;
use super::stats::Counters;
use super::{Clock, Plan, Ticker, new_device, payload};
use crate::{SimFormat, SimulateArgs, SimulateError};

/// How many devices watch their feed to time publish → stored. Each adds a subscription and
/// an outgoing message per reading, so few enough not to change what is measured.
const STORED_PROBES: usize = 10;
/// Probe readings remembered at most (updates the server skipped would pile up otherwise).
const PROBE_MEMORY: usize = 10_000;
/// How long a device waits for its last acknowledgements after its last reading.
const DRAIN: Duration = Duration::from_secs(15);

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
}

pub async fn run(
    addr: &str,
    args: &SimulateArgs,
    plans: Vec<Plan>,
    clock: Clock,
    counters: Arc<Counters>,
    ticks: Arc<Vec<AtomicU64>>,
    feeds: Option<Vec<Option<u32>>>,
) -> Result<(), SimulateError> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| SimulateError::args(format!("--mqtt {addr}: expected HOST:PORT")))?;
    let qos = match args.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    // Probes spread over all devices (and so over accounts and shards).
    let step = plans.len().div_ceil(STORED_PROBES).max(1);
    // Dropping the set (Ctrl-C) stops every device.
    let mut tasks = JoinSet::new();
    for plan in plans {
        let mut opts = MqttOptions::new(
            format!("ynni-sim-{}-{}", args.seed, plan.index),
            host.clone(),
            port,
        );
        opts.set_credentials(
            plan.account.username.clone(),
            plan.account.apikey_write.clone(),
        );
        opts.set_keep_alive(Duration::from_secs(60));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, events) = AsyncClient::new(opts, 256);
        let probe_feed = feeds
            .as_ref()
            .filter(|_| plan.index % step == 0)
            .and_then(|f| f.get(plan.index).copied().flatten());
        if let Some(feed) = probe_feed {
            client
                .subscribe(format!("ynni/feed/{feed}"), QoS::AtMostOnce)
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
        });
        let device = new_device(args.profile, args.seed, &plan);
        let (base, format, ticks) = (args.base_topic.clone(), args.format, ticks.clone());
        tasks.spawn(async move {
            let mut watcher = tokio::spawn(watch(events, link.clone()));
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
    Ok(())
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
        for (topic, body) in messages {
            // Counted before the event loop can acknowledge it.
            link.flow.sent.fetch_add(1, Ordering::Relaxed);
            link.counters.record_sent(link.values);
            if !accepted(client.publish(topic, link.qos, false, body)).await {
                // The connection took nothing for 10 s: this device stops, and says so.
                link.counters.record_error();
                return;
            }
        }
        ticks[plan.index].store(k + 1, Ordering::Relaxed);
    }
}

/// Waits while the connection is busy (back-pressure), but gives up on a connection that has
/// not taken anything for 10 s (refused login, broker gone), so a run always ends.
async fn accepted(
    publish: impl std::future::Future<Output = Result<(), rumqttc::ClientError>>,
) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(10), publish).await,
        Ok(Ok(()))
    )
}

/// Drives the connection and counts acknowledgements: for QoS 0 a publish counts once it is
/// written, for QoS 1 at PUBACK, for QoS 2 at PUBCOMP.
async fn watch(mut events: rumqttc::EventLoop, link: Arc<Link>) {
    let mut sent_at: HashMap<u16, Instant> = HashMap::new();
    // ynni closes the connection on a bad login (after a delay that grows with each
    // failure) rather than answering CONNACK: failing before ever being accepted is a refusal.
    let mut accepted = false;
    let mut failures = 0;
    let ack = |latency: Option<Duration>| {
        link.flow.acked.fetch_add(1, Ordering::Relaxed);
        link.counters.record_acked(link.values, latency);
    };
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => accepted = true,
            Ok(Event::Incoming(Packet::Publish(p))) => {
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
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if link.qos == QoS::AtMostOnce {
                    ack(None);
                } else {
                    sent_at.insert(pkid, Instant::now());
                }
            }
            Ok(Event::Incoming(Packet::PubAck(a))) if link.qos == QoS::AtLeastOnce => {
                ack(sent_at.remove(&a.pkid).map(|t| t.elapsed()));
            }
            Ok(Event::Incoming(Packet::PubComp(a))) if link.qos == QoS::ExactlyOnce => {
                ack(sent_at.remove(&a.pkid).map(|t| t.elapsed()));
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) if !accepted && failures >= 2 => {
                link.counters.record_error();
                link.counters.refused.store(true, Ordering::Relaxed);
                tracing::error!(
                    error = %e,
                    "MQTT connection failed before the login was accepted (wrong address, or username and write apikey refused)"
                );
                return;
            }
            Err(e) => {
                failures += 1;
                link.counters.record_error();
                tracing::warn!(error = %e, "MQTT connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
