//! What every request handler shares.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinError;

use ynni_config::Settings;
use ynni_core::Catalog;

use ynni_core::login_limit::LoginLimiter;
use ynni_core::ratelimit::RateLimiter;

/// Cloned for every request (axum's `State`), so it is one reference count; the parts are
/// behind it in [`Shared`].
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(Clone)]
pub struct Shared {
    pub catalog: Catalog,
    pub settings: Arc<Settings>,
    /// Registrations and password changes per client address.
    pub limiter: Arc<RateLimiter>,
    /// Password guessing through `user/login` and `user/auth`.
    pub logins: Arc<LoginLimiter>,
    /// Hands input batches to the shard workers.
    pub router: Arc<ynni_ingest::shard::Router>,
    /// Reported by `/version`.
    pub version: &'static str,
    /// Asks the MQTT side to publish a user's Home Assistant discovery again (feeds changed,
    /// discovery switched); `None` without a broker.
    pub discovery: Option<Arc<ynni_core::user_queue::UserQueue>>,
    /// Tells the MQTT broker that a user's name, write apikey or device keys changed, so it
    /// closes the connections those credentials no longer open; `None` without a broker.
    pub credentials: Option<Arc<ynni_core::user_queue::UserQueue>>,
    /// `myip/set`: each user's last reporting address and when (emonhub's status ping).
    pub myip: Arc<std::sync::Mutex<std::collections::HashMap<i64, (std::net::IpAddr, i64)>>>,
    /// Password hashing runs on blocking threads; this bounds how many at once (argon2 takes
    /// ~19 MiB and tens of milliseconds each), so a flood of logins queues instead of
    /// exhausting memory.
    hashing: Arc<Semaphore>,
    /// The bytes of request bodies past their first [`crate::api::SMALL_BODY`], held while
    /// they are read and answered, in KiB ([`crate::api::BODY_BUDGET_KIB`]): bodies are read before the
    /// request is authenticated, and a capped number of connections each sending the largest
    /// body allowed would otherwise hold gigabytes.
    pub(crate) bodies: Arc<Semaphore>,
    /// Each account's creations one at a time, so that their caps hold (see `creates`).
    pub creates: Arc<crate::creates::CreateLocks>,
    /// Cluster mode: where requests for accounts owned by other nodes go.
    pub forwarder: Option<Arc<crate::forward::Forwarder>>,
    /// Cluster mode with Redis: login attempts also counted once for every node.
    pub shared_limits: Option<Arc<ynni_core::shared_limit::SharedLimits>>,
    /// A hosted service's billing (`[billing]`): balances, quotas, statements.
    pub billing: Option<Arc<ynni_billing::Billing>>,
    /// Live input and feed updates for open browser pages.
    pub(crate) live: Arc<crate::ui::live::LiveHub>,
    /// Readiness checks and metrics (`/ready`, `/metrics`).
    pub(crate) ops: Arc<crate::ops::Ops>,
}

impl AppState {
    pub fn new(
        catalog: Catalog,
        settings: Arc<Settings>,
        version: &'static str,
        router: Arc<ynni_ingest::shard::Router>,
    ) -> Self {
        Self(Arc::new(Shared {
            creates: Arc::new(crate::creates::CreateLocks::new(catalog.clone())),
            catalog,
            settings,
            limiter: Arc::new(RateLimiter::default()),
            logins: Arc::new(LoginLimiter::default()),
            router,
            version,
            myip: Arc::default(),
            discovery: None,
            credentials: None,
            forwarder: None,
            billing: None,
            shared_limits: None,
            live: Arc::default(),
            ops: Arc::default(),
            bodies: Arc::new(Semaphore::new(crate::api::BODY_BUDGET_KIB as usize)),
            hashing: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        }))
    }

    /// The parts, to change while the state is being built (before it is shared).
    fn parts(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// The server's readiness checks and metrics recorder.
    pub fn with_ops(mut self, ops: crate::ops::Ops) -> Self {
        self.parts().ops = Arc::new(ops);
        self
    }

    /// A hosted service's billing.
    pub fn with_billing(mut self, billing: Arc<ynni_billing::Billing>) -> Self {
        self.parts().billing = Some(billing);
        self
    }

    /// Cluster mode: requests for accounts this node does not serve go to their owner.
    pub fn with_forwarder(mut self, forwarder: Arc<crate::forward::Forwarder>) -> Self {
        self.parts().forwarder = Some(forwarder);
        self
    }

    /// Cluster mode with Redis: login limits shared by every node.
    pub fn with_shared_limits(
        mut self,
        limits: Arc<ynni_core::shared_limit::SharedLimits>,
    ) -> Self {
        self.parts().shared_limits = Some(limits);
        self
    }

    /// Cluster mode: ends the live page streams of users whose shard left this node.
    pub fn end_live_streams(&self, moved: impl Fn(i64) -> bool) {
        self.live.end_streams(moved);
    }

    /// Connects the Home Assistant discovery publisher.
    pub fn with_discovery(mut self, tx: Arc<ynni_core::user_queue::UserQueue>) -> Self {
        self.parts().discovery = Some(tx);
        self
    }

    /// Connects the broker's credential watch.
    pub fn with_credential_watch(mut self, tx: Arc<ynni_core::user_queue::UserQueue>) -> Self {
        self.parts().credentials = Some(tx);
        self
    }

    /// The user's name, write apikey or device keys changed: open MQTT connections are checked
    /// again.
    pub fn credentials_changed(&self, userid: i64) {
        if let Some(q) = &self.credentials {
            q.push(userid);
        }
    }

    /// The user's feeds or discovery setting changed: publish their discovery again.
    pub fn announce(&self, userid: i64) {
        if let Some(q) = &self.discovery {
            q.push(userid);
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
