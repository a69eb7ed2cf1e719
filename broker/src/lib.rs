//! The embedded MQTT broker: rumqttd with per-user authentication and topic namespacing
//! (DESIGN.md §3).
//!
//! Not built yet. [`start`] reports that plainly so `ynni serve` can log that the MQTT port
//! stays closed instead of pretending to listen.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the embedded MQTT broker is not implemented yet; {0} was not opened")]
    NotImplemented(SocketAddr),
}

impl BrokerError {
    /// Whether trying again later could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            BrokerError::NotImplemented(_) => false,
        }
    }
}

/// Starts the broker on `listen`.
pub async fn start(listen: SocketAddr) -> Result<(), BrokerError> {
    Err(BrokerError::NotImplemented(listen))
}
