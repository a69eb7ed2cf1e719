//! Devices over MQTT: one connection per device, logged in as its account (username + write
//! apikey), publishing emonhub's topics. rumqttd acknowledges a QoS 1/2 message once it is in
//! its memory log; the time until the value is stored is measured separately: sampled devices
//! subscribe to their first input's feed updates (`ynni/feed/<id>`, published once the value
//! is durable and processed) and time each reading from publish to that update.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

use super::stats::Counters;
use super::{Clock, Plan, new_device, payload};
use crate::cli::{SimFormat, SimulateArgs};

/// How many devices watch their feed to time publish → stored. Each adds a subscription and
/// an outgoing message per reading, so few enough not to change what is measured.
const STORED_PROBES: usize = 10;

/// Publish instants of a probe device's readings, by the reading's time.
type Probe = Arc<Mutex<HashMap<i64, Instant>>>;

pub async fn run(
    addr: &str,
    args: &SimulateArgs,
    plans: Vec<Plan>,
    clock: Clock,
    counters: Arc<Counters>,
    ticks: Arc<Vec<AtomicU64>>,
    feeds: Option<Vec<Option<u32>>>,
) -> anyhow::Result<()> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .with_context(|| format!("--mqtt {addr}: expected HOST:PORT"))?;
    let qos = match args.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let mut tasks = Vec::with_capacity(plans.len());
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
        let values_per_msg = match args.format {
            SimFormat::Json => plan.names.len(),
            SimFormat::NodeVar => 1,
        };
        // Spread the probes over all devices (and so over accounts and shards).
        let step = (feeds.as_ref().map_or(0, Vec::len) / STORED_PROBES).max(1);
        let probe_feed = feeds
            .as_ref()
            .filter(|_| plan.index % step == 0)
            .and_then(|f| f.get(plan.index).copied().flatten());
        let probe: Option<(u32, Probe)> = probe_feed.map(|f| (f, Probe::default()));
        if let Some((feed, _)) = &probe {
            client
                .subscribe(format!("ynni/feed/{feed}"), QoS::AtMostOnce)
                .await
                .context("subscribing to a feed")?;
        }
        let acks = tokio::spawn(watch(
            events,
            counters.clone(),
            values_per_msg,
            qos,
            probe.clone(),
        ));
        let device = new_device(args.profile, args.seed, &plan);
        let (base, format, counters, ticks) = (
            args.base_topic.clone(),
            args.format,
            counters.clone(),
            ticks.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let probe = probe.map(|(_, p)| p);
            let sent = publish(
                client,
                device,
                &plan,
                &base,
                format,
                qos,
                clock,
                &counters,
                &ticks,
                probe.as_ref(),
            )
            .await;
            // Let the last acknowledgements arrive before the connection goes.
            let deadline = Instant::now() + Duration::from_secs(15);
            while counters.get(&counters.acked) < counters.get(&counters.sent)
                && Instant::now() < deadline
                && qos != QoS::AtMostOnce
                && !counters.refused.load(Ordering::Relaxed)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acks.abort();
            sent
        }));
    }
    for t in tasks {
        t.await.context("device task")??;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    client: AsyncClient,
    mut device: super::profile::Device,
    plan: &Plan,
    base: &str,
    format: SimFormat,
    qos: QoS,
    clock: Clock,
    counters: &Counters,
    ticks: &[AtomicU64],
    probe: Option<&Probe>,
) -> anyhow::Result<()> {
    let node_topic = format!("{base}/{}", plan.node);
    let mut k = 0u64;
    loop {
        let at = clock.send_at(plan.index, k);
        if clock.over(at) || counters.refused.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let t = clock.time_of(k);
        let values = device.read(t, clock.interval);
        if let Some(p) = probe {
            p.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(t as i64, Instant::now());
        }
        match format {
            SimFormat::Json => {
                let body = payload::node_json(t, device.names(), &values);
                if !sent(client.publish(&node_topic, qos, false, body)).await {
                    counters.error();
                    break;
                }
                counters.sent(values.len());
            }
            SimFormat::NodeVar => {
                for (name, v) in device.names().iter().zip(&values) {
                    let topic = format!("{node_topic}/{name}");
                    if !sent(client.publish(topic, qos, false, payload::number(name, *v))).await {
                        counters.error();
                        return Ok(());
                    }
                    counters.sent(1);
                }
            }
        }
        k += 1;
        ticks[plan.index].store(k, Ordering::Relaxed);
    }
    Ok(())
}

/// Waits while the connection is busy (back-pressure), but gives up on a connection that has
/// not taken anything for 10 s (refused login, broker gone), so a run always ends.
async fn sent(
    publish: impl std::future::Future<Output = Result<(), rumqttc::ClientError>>,
) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(10), publish).await,
        Ok(Ok(()))
    )
}

/// Drives the connection and counts acknowledgements: for QoS 0 a publish counts once it is
/// written, for QoS 1 at PUBACK, for QoS 2 at PUBCOMP.
async fn watch(
    mut events: rumqttc::EventLoop,
    counters: Arc<Counters>,
    values: usize,
    qos: QoS,
    probe: Option<(u32, Probe)>,
) {
    let mut sent_at: HashMap<u16, Instant> = HashMap::new();
    // ynni closes the connection on a bad login (after a delay that grows with each
    // failure) rather than answering CONNACK: failing before ever being accepted is a refusal.
    let mut accepted = false;
    let mut failures = 0;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => accepted = true,
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // A feed update: `{"time":…,"value":…}` once the reading is stored.
                if let Some((_, sent)) = &probe
                    && let Ok(update) = serde_json::from_slice::<serde_json::Value>(&p.payload)
                    && let Some(t) = update["time"].as_f64()
                    && let Some(at) = sent
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&(t as i64))
                {
                    counters.stored(at.elapsed());
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if qos == QoS::AtMostOnce {
                    counters.acked(values, None);
                } else {
                    sent_at.insert(pkid, Instant::now());
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) if qos == QoS::AtLeastOnce => {
                counters.acked(values, sent_at.remove(&ack.pkid).map(|t| t.elapsed()));
            }
            Ok(Event::Incoming(Packet::PubComp(ack))) if qos == QoS::ExactlyOnce => {
                counters.acked(values, sent_at.remove(&ack.pkid).map(|t| t.elapsed()));
            }
            Ok(_) => {}
            Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                counters.error();
                counters.refused.store(true, Ordering::Relaxed);
                tracing::error!(?code, "MQTT login refused (username and write apikey?)");
                return;
            }
            Err(e) if !accepted && failures >= 2 => {
                counters.error();
                counters.refused.store(true, Ordering::Relaxed);
                tracing::error!(error = %e, "MQTT login refused (username and write apikey?)");
                return;
            }
            Err(e) => {
                failures += 1;
                counters.error();
                tracing::warn!(error = %e, "MQTT connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
