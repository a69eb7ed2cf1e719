//! External broker mode: for users who already run Mosquitto (an emonPi, a home server), ynni
//! subscribes to `<base>/#` there on behalf of one account, as emoncms's `emoncms_mqtt` service
//! does, and feeds the messages to the same ingest path as its own broker's. A QoS 1 message
//! is acknowledged to the external broker only once ingest has it durable, as on ynni's own
//! broker, so the external broker keeps (and sends again) what a crash would have lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::{Done, Handled, Inbound};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc::Sender;

/// Where to connect and whose messages they are.
#[derive(Debug, Clone)]
pub struct External {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// The ynni account the messages are stored for.
    pub account: String,
    pub base: String,
    /// PEM CA certificate to trust: connect over TLS.
    pub tls_ca: Option<Vec<u8>>,
}

/// Finds the id of the account the messages belong to (`None` while it does not exist).
pub type ResolveAccount =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<i64>> + Send>> + Send + Sync>;

/// How long to wait before reconnecting after the broker went away.
const RECONNECT: Duration = Duration::from_secs(5);

/// Runs until `inbound` closes, reconnecting whenever the broker is unreachable.
pub async fn run(cfg: External, resolve: ResolveAccount, inbound: Sender<Inbound>) {
    let mut opts = MqttOptions::new(format!("ynni-{}", cfg.account), cfg.host.clone(), cfg.port);
    opts.set_keep_alive(Duration::from_secs(60));
    opts.set_manual_acks(true);
    // Resolved once: from then on the messages belong to that account by id, whatever it is
    // renamed to.
    let mut account: Option<i64> = None;
    if !cfg.username.is_empty() {
        opts.set_credentials(cfg.username.clone(), cfg.password.clone());
    }
    if let Some(ca) = &cfg.tls_ca {
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Simple {
                ca: ca.clone(),
                alpn: None,
                client_auth: None,
            },
        ));
    }
    let (client, mut events) = AsyncClient::new(opts, 64);
    let filter = format!("{}/#", cfg.base);
    let mut connected = false;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(host = %cfg.host, port = cfg.port, account = %cfg.account, "external MQTT broker connected");
                connected = true;
                // Subscribed again on every connection (the session is clean).
                if let Err(e) = client.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                    tracing::warn!(error = %e, "external MQTT subscribe failed");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if account.is_none() {
                    account = resolve().await;
                }
                let Some(userid) = account else {
                    tracing::debug!(account = %cfg.account, "external MQTT message before its account exists; dropped");
                    let _ = client.ack(&p).await;
                    continue;
                };
                let (tx, rx) = tokio::sync::oneshot::channel();
                let msg = Inbound {
                    userid,
                    topic: p.topic.clone(),
                    payload: p.payload.to_vec(),
                    done: Some(Done(tx)),
                    device_node: None,
                    // One connection, its messages taken one at a time: the queue bounds them.
                    room: None,
                };
                // Waiting here slows the external broker's delivery instead of dropping.
                if inbound.send(msg).await.is_err() {
                    return;
                }
                let client = client.clone();
                tokio::spawn(async move {
                    // Not acknowledged when it could not be stored: the broker sends it again
                    // after the next reconnect.
                    if matches!(rx.await, Ok(Handled::Stored | Handled::Ignored)) {
                        let _ = client.ack(&p).await;
                    }
                });
            }
            Ok(_) => {}
            Err(e) => {
                if connected {
                    tracing::warn!(error = %e, "external MQTT broker lost; reconnecting");
                    connected = false;
                } else {
                    tracing::debug!(error = %e, "external MQTT broker unreachable");
                }
                tokio::time::sleep(RECONNECT).await;
            }
        }
    }
}
