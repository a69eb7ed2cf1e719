//! What every request handler shares.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinError;

use ynni_config::Settings;
use ynni_core::Catalog;

use crate::ratelimit::RateLimiter;

#[derive(Clone)]
pub struct AppState {
    pub catalog: Catalog,
    pub settings: Arc<Settings>,
    pub limiter: Arc<RateLimiter>,
    /// Hands input batches to the shard workers.
    pub router: Arc<ynni_ingest::shard::Router>,
    /// Reported by `/version`.
    pub version: &'static str,
    /// Asks the MQTT side to publish a user's Home Assistant discovery again (feeds changed,
    /// discovery switched); `None` without a broker.
    pub discovery: Option<tokio::sync::mpsc::UnboundedSender<i64>>,
    /// `myip/set`: each user's last reporting address and when (emonhub's status ping).
    pub myip: Arc<std::sync::Mutex<std::collections::HashMap<i64, (std::net::IpAddr, i64)>>>,
    /// Password hashing runs on blocking threads; this bounds how many at once (argon2 takes
    /// ~19 MiB and tens of milliseconds each), so a flood of logins queues instead of
    /// exhausting memory.
    hashing: Arc<Semaphore>,
    /// Live input and feed updates for open browser pages.
    pub(crate) live: Arc<crate::ui::live::LiveHub>,
}

impl AppState {
    pub fn new(
        catalog: Catalog,
        settings: Arc<Settings>,
        version: &'static str,
        router: Arc<ynni_ingest::shard::Router>,
    ) -> Self {
        Self {
            catalog,
            settings,
            limiter: Arc::new(RateLimiter::default()),
            router,
            version,
            myip: Arc::default(),
            discovery: None,
            live: Arc::default(),
            hashing: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        }
    }

    /// Connects the Home Assistant discovery publisher.
    pub fn with_discovery(mut self, tx: tokio::sync::mpsc::UnboundedSender<i64>) -> Self {
        self.discovery = Some(tx);
        self
    }

    /// The user's feeds or discovery setting changed: publish their discovery again.
    pub fn announce(&self, userid: i64) {
        if let Some(tx) = &self.discovery {
            let _ = tx.send(userid);
        }
    }

    /// Runs password hashing or verification `f` on a blocking thread, at most one per core.
    pub async fn blocking_hash<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JoinError> {
        // The semaphore is never closed, so acquiring cannot fail; run unbounded if it did.
        let _permit = self.hashing.acquire().await.ok();
        tokio::task::spawn_blocking(f).await
    }
}
