//! External broker mode: for users who already run Mosquitto (an emonPi, a home server), ynni
//! subscribes to `<base>/#` there on behalf of one account, as emoncms's `emoncms_mqtt` service
//! does, and feeds the messages to the same ingest path as its own broker's.

use std::time::Duration;

use crate::Inbound;
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

/// How long to wait before reconnecting after the broker went away.
const RECONNECT: Duration = Duration::from_secs(5);

/// Runs until `inbound` closes, reconnecting whenever the broker is unreachable.
pub async fn run(cfg: External, inbound: Sender<Inbound>) {
    let mut opts = MqttOptions::new(format!("ynni-{}", cfg.account), cfg.host.clone(), cfg.port);
    opts.set_keep_alive(Duration::from_secs(60));
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
                let msg = Inbound {
                    username: cfg.account.clone(),
                    topic: p.topic.clone(),
                    payload: p.payload.to_vec(),
                };
                // Waiting here slows the external broker's delivery instead of dropping.
                if inbound.send(msg).await.is_err() {
                    return;
                }
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
