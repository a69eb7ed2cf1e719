//! Hands submissions to the worker owning the user's vshard, through bounded queues.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock, mpsc};

use ynni_core::Catalog;
use ynni_storage::StoreConfig;

use super::fence::Fence;
use super::host::HostMsg;
use super::worker::{FeedAnswer, FeedOp, Job, Seed, ShardStatus, Worker};
use crate::batch::{Decoded, Value};

/// emoncms's node limit (`max_node_id_limit`), applied to every submission.
pub const DEFAULT_MAX_NODES: usize = 32;

/// Inputs one node may have. emoncms core has no such limit; emoncms.org ran with 1000 inputs
/// per *user*. ynni allows that many per node: an emonTx or emonPi node has about 20–40
/// inputs and a gateway bridging a whole installation a few hundred, while 32 nodes × 1000
/// inputs bounds what one account can make a shard hold.
pub const MAX_INPUTS_PER_NODE: usize = 1000;
/// The longest node or input name, in characters. emoncms stores names as MySQL TEXT
/// (emoncms.org allows 64 characters); here a name is a key of the catalog's unique index,
/// which PostgreSQL keeps under about 2.7 KB an entry, and a record the catalog refuses after
/// it was logged would stop its shard.
pub const MAX_NAME_CHARS: usize = 256;

/// New inputs one submission may create. Each new input is a catalog row; they are all
/// inserted in one transaction (one sync), a few microseconds each, so a submission at the
/// limit costs the shard milliseconds, not the minute that one commit per input took. Equal to [`MAX_INPUTS_PER_NODE`], so any one node
/// can always be set up in one request.
pub const MAX_NEW_INPUTS_PER_REQUEST: usize = MAX_INPUTS_PER_NODE;

/// The limits every submission (HTTP or MQTT) is checked against before it is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub nodes: usize,
    pub inputs_per_node: usize,
    pub new_inputs_per_request: usize,
    pub values_per_request: usize,
}

impl Limits {
    /// The defaults, with `nodes` from the configuration.
    pub fn with_nodes(nodes: usize) -> Self {
        Self {
            nodes,
            inputs_per_node: MAX_INPUTS_PER_NODE,
            new_inputs_per_request: MAX_NEW_INPUTS_PER_REQUEST,
            values_per_request: crate::batch::MAX_VALUES_PER_REQUEST,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub workers: usize,
    /// Virtual shards, fixed at install: moving one to another node moves its users.
    pub vshards: u32,
    /// Submissions waiting per worker before callers are told to retry (HTTP 503).
    pub queue: usize,
    pub max_nodes: usize,
    pub store: StoreConfig,
    pub fixed_dir: PathBuf,
    pub variable_dir: PathBuf,
    /// Each worker's WAL goes in `<wal_root>/<worker>`.
    pub wal_root: PathBuf,
    /// Send every input update as an [`Output::Input`] (for the live UI and MQTT subscribers),
    /// while a receiver of [`Router::subscribe_inputs`] is held.
    pub input_outputs: bool,
    /// Cluster mode: one worker and one log (`<wal_root>/<vshard>`) per vshard this node
    /// owns, opened and closed as ownership moves, served by `workers` host threads (see
    /// `host`) instead of `workers` fixed shards.
    pub per_vshard: bool,
}

/// One user's decoded values from one request or message.
#[derive(Debug, Clone)]
pub struct Submission {
    pub userid: i64,
    pub batches: Vec<Decoded>,
    /// Whether it came over HTTP. Logged with the record; every submission is held to the
    /// same limits (emoncms does not apply its node limit to MQTT; ynni does, so no way in
    /// can grow a user's inputs without bound).
    pub http: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// emoncms's wording.
    #[error(
        "Error: Reached the maximal allowed number of different NodeIds, limit is {limit}. Node '{node}' was ignored."
    )]
    NodeLimit { limit: usize, node: String },
    /// In the style of the node limit (emoncms has no input limit of its own).
    #[error(
        "Error: Reached the maximal allowed number of inputs for node '{node}', limit is {limit}. Input '{name}' was ignored."
    )]
    InputLimit {
        limit: usize,
        node: String,
        name: String,
    },
    #[error(
        "Error: Reached the maximal allowed number of new inputs in one request, limit is {limit}. Input '{name}' was ignored."
    )]
    NewInputLimit { limit: usize, name: String },
    /// A hosted service's plan caps the inputs of an account.
    #[error(
        "Error: Reached the number of inputs this account's plan allows, limit is {limit}. Input '{name}' was ignored."
    )]
    PlanInputLimit { limit: usize, name: String },
    #[error(
        "Error: Reached the maximal allowed number of values in one request, limit is {limit}. Nothing was stored."
    )]
    ValueLimit { limit: usize },
    /// ynni's own limit: the process-list steps one request's values would run (each value
    /// runs its input's list), so the work one request gives its shard is bounded.
    #[error(
        "Error: The values of one request would run {steps} process steps, limit is {limit}: send fewer values per request. Nothing was stored."
    )]
    StepLimit { limit: usize, steps: usize },
    /// ynni's own limit ([`MAX_NAME_CHARS`]); the name is shown cut short.
    #[error(
        "Error: Node and input names are limited to {limit} characters. Name '{name}…' was ignored. Nothing was stored."
    )]
    NameLimit { limit: usize, name: String },
    #[error("ingest queue full, retry later")]
    Busy,
    #[error("ingest stopped")]
    Stopped,
    /// Cluster mode: the account's vshard is not served by this node now (it is moving, or
    /// this node's lease on it ended).
    #[error("this server does not serve the account's shard now")]
    NotServed,
    #[error("storage: {0}")]
    Storage(#[from] ynni_storage::StorageError),
    #[error("catalog: {0}")]
    Catalog(#[from] ynni_core::CatalogError),
    #[error("{0}")]
    Query(ynni_storage::query::QueryError),
}

impl IngestError {
    /// Whether the client should try again later (and nothing was stored).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            IngestError::Busy | IngestError::Stopped | IngestError::NotServed
        ) || matches!(self, IngestError::Storage(e) if e.is_retryable())
            || matches!(self, IngestError::Catalog(e) if e.is_retryable())
    }

    /// The feed's files exist already (a feed creation the shard had finished).
    pub fn is_feed_exists(&self) -> bool {
        use ynni_storage::query::QueryError;
        matches!(
            self,
            IngestError::Storage(ynni_storage::StorageError::FeedExists { .. })
                | IngestError::Query(QueryError::Storage(
                    ynni_storage::StorageError::FeedExists { .. }
                ))
        )
    }

    /// A refusal by one of the limits: the request itself is at fault, and the message is for
    /// the client (emoncms's way: HTTP 200 with the message).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            IngestError::NodeLimit { .. }
                | IngestError::InputLimit { .. }
                | IngestError::NewInputLimit { .. }
                | IngestError::PlanInputLimit { .. }
                | IngestError::ValueLimit { .. }
                | IngestError::NameLimit { .. }
                | IngestError::StepLimit { .. }
        )
    }

    /// A short name for the kind of error (a metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::NodeLimit { .. } => "node_limit",
            IngestError::InputLimit { .. } => "input_limit",
            IngestError::NewInputLimit { .. } => "new_input_limit",
            IngestError::PlanInputLimit { .. } => "plan_input_limit",
            IngestError::ValueLimit { .. } => "value_limit",
            IngestError::NameLimit { .. } => "name_limit",
            IngestError::StepLimit { .. } => "step_limit",
            IngestError::Busy => "busy",
            IngestError::Stopped => "stopped",
            IngestError::NotServed => "not_served",
            IngestError::Storage(_) => "storage",
            IngestError::Catalog(_) => "catalog",
            IngestError::Query(_) => "query",
        }
    }

    /// The server's disk (or quota) is full.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, IngestError::Storage(e) if e.is_storage_full())
    }

    /// For a retryable error, how many seconds a client should wait before trying again
    /// (HTTP `Retry-After`): a full queue clears in a moment, a full disk or a shard that
    /// stopped writing needs an operator, and clients retrying every second would only add
    /// load.
    pub fn retry_after(&self) -> Option<u32> {
        if !self.is_retryable() {
            return None;
        }
        Some(match self {
            IngestError::Busy
            | IngestError::Catalog(_)
            | IngestError::NotServed
            | IngestError::Storage(ynni_storage::StorageError::Fenced) => 1,
            IngestError::Storage(e) if e.is_storage_full() => 60,
            IngestError::Storage(ynni_storage::StorageError::StoreFailed) => 60,
            IngestError::Storage(_) => 10,
            _ => 5,
        })
    }
}

/// Input id → (time, value) of its last value.
pub type LastValues = HashMap<i64, (i64, Value)>;

/// What subscribers may see of a user's processing; the broker delivers it inside the user's
/// own topic namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A `publish_to_mqtt` step: the value on the step's topic.
    Published {
        userid: i64,
        topic: String,
        value: Value,
    },
    /// An input's new value (when [`RouterConfig::input_outputs`] is on).
    Input {
        userid: i64,
        node: String,
        name: String,
        /// The batch's time (Unix seconds).
        time: i64,
        value: Value,
    },
    /// A feed's new last value (once per feed and batch).
    Feed {
        userid: i64,
        feed: u32,
        time: i64,
        value: Value,
    },
}

/// How many outputs may wait for a slow consumer before the oldest are dropped (outputs are
/// live values, QoS 0 in emoncms; stored data never depends on them).
const OUTPUT_BACKLOG: usize = 4096;

/// The channels the shards send their outputs on. Input updates ([`Output::Input`], one per
/// value posted) have a channel of their own: with the MQTT input topic off and no live page
/// open nobody takes them, and a shard then builds none (the live UI holds a receiver only
/// while a page is open). On the one channel there was, which the MQTT
/// publisher always holds, each posted value woke its thread only to be dropped (0.4 wake-ups
/// and 1.6 µs of that thread per `input/post` at 50,000 a second), and a large upload's input
/// values could push feed values out of its backlog. The two channels are not ordered with
/// each other.
#[derive(Clone)]
pub struct Outputs {
    /// Published values ([`Output::Published`]) and feed updates ([`Output::Feed`]).
    pub values: tokio::sync::broadcast::Sender<Output>,
    /// Input updates ([`Output::Input`]).
    pub inputs: tokio::sync::broadcast::Sender<Output>,
}

impl Outputs {
    pub fn new(backlog: usize) -> Self {
        Self {
            values: tokio::sync::broadcast::channel(backlog).0,
            inputs: tokio::sync::broadcast::channel(backlog).0,
        }
    }
}

/// The next output of a channel taken only at times (input updates): never while `rx` is
/// `None`, so a `select!` over it waits on its other branches.
pub async fn next_output(
    rx: &mut Option<tokio::sync::broadcast::Receiver<Output>>,
) -> Result<Output, tokio::sync::broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A queued submission: resolves once it is durable (or refused).
pub struct Pending(tokio::sync::oneshot::Receiver<Result<(), IngestError>>);

impl std::future::Future for Pending {
    type Output = Result<(), IngestError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(IngestError::Stopped)))
    }
}

impl Pending {
    /// The outcome if it is already known, without waiting.
    pub fn try_outcome(&mut self) -> Option<Result<(), IngestError>> {
        match self.0.try_recv() {
            Ok(r) => Some(r),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                Some(Err(IngestError::Stopped))
            }
        }
    }
}

/// A submission the shard could not queue, given back with the reason.
pub struct Refused {
    pub error: IngestError,
    pub submission: Option<Submission>,
}

/// Where a submission runs: which worker thread (one node) or which open vshard (cluster).
struct Slot {
    tx: Sink,
    /// Cluster mode: the vshard's lease, checked by its worker before writes and answers.
    fence: Option<Arc<Fence>>,
}

/// How many inputs each account may have, when something (a hosted service's plan) says;
/// asked only when a submission would create inputs.
#[derive(Clone, Default)]
pub struct InputCaps(Arc<RwLock<Option<InputCap>>>);

type InputCap = Arc<dyn Fn(i64) -> Option<usize> + Send + Sync>;

impl std::fmt::Debug for InputCaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InputCaps")
    }
}

impl InputCaps {
    /// The cap on `userid`'s inputs, if any.
    pub fn cap(&self, userid: i64) -> Option<usize> {
        let f = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        f.and_then(|f| f(userid))
    }

    fn set(&self, f: InputCap) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }
}

/// Where a slot's jobs go: its own worker thread (one node), or the host thread serving its
/// vshard among others (cluster mode).
#[derive(Clone)]
enum Sink {
    Own(mpsc::SyncSender<Job>),
    Hosted(u32, mpsc::SyncSender<HostMsg>),
}

impl Sink {
    fn try_send(&self, job: Job) -> Result<(), mpsc::TrySendError<Job>> {
        match self {
            Sink::Own(tx) => tx.try_send(job),
            Sink::Hosted(v, tx) => tx.try_send(HostMsg::Job(*v, job)).map_err(|e| match e {
                mpsc::TrySendError::Full(m) => mpsc::TrySendError::Full(m.into_job()),
                mpsc::TrySendError::Disconnected(m) => {
                    mpsc::TrySendError::Disconnected(m.into_job())
                }
            }),
        }
    }

    fn send(&self, job: Job) -> Result<(), mpsc::SendError<Job>> {
        match self {
            Sink::Own(tx) => tx.send(job),
            Sink::Hosted(v, tx) => tx
                .send(HostMsg::Job(*v, job))
                .map_err(|mpsc::SendError(m)| mpsc::SendError(m.into_job())),
        }
    }
}

pub struct Router {
    slots: RwLock<BTreeMap<u32, Slot>>,
    threads: std::sync::Mutex<HashMap<u32, std::thread::JoinHandle<bool>>>,
    /// Cluster mode: the threads serving the open vshards (vshard `v` on `hosts[v % len]`).
    hosts: Vec<mpsc::SyncSender<HostMsg>>,
    host_threads: std::sync::Mutex<Vec<std::thread::JoinHandle<bool>>>,
    vshards: u32,
    /// One node: the fixed worker count. Cluster mode: `None`, a worker per open vshard.
    workers: Option<u32>,
    outputs: Outputs,
    /// What every worker opened later needs.
    cfg: RouterConfig,
    input_caps: InputCaps,
    catalog: Catalog,
    handle: tokio::runtime::Handle,
}

impl Router {
    /// Starts the worker threads; each opens its store (replaying its WAL) before this
    /// returns. Blocks: call it from a blocking context (`spawn_blocking`), not from async code.
    /// `handle` is the runtime the workers use for catalog queries. With
    /// [`RouterConfig::per_vshard`] no worker starts here: [`Router::open_vshard`] opens each
    /// vshard the node comes to own.
    pub fn start(
        cfg: RouterConfig,
        catalog: Catalog,
        handle: tokio::runtime::Handle,
    ) -> Result<Self, IngestError> {
        let outputs = Outputs::new(OUTPUT_BACKLOG);
        let workers = (!cfg.per_vshard).then(|| cfg.workers.max(1) as u32);
        let mut hosts = Vec::new();
        let mut host_threads = Vec::new();
        if cfg.per_vshard {
            for i in 0..cfg.workers.max(1) {
                let (tx, rx) = mpsc::sync_channel(cfg.queue.max(1));
                let thread = std::thread::Builder::new()
                    .name(format!("ynni-host-{i}"))
                    .spawn(move || super::host::run(i, rx))
                    .map_err(|e| {
                        IngestError::Storage(ynni_storage::StorageError::Io {
                            op: "starting worker",
                            path: PathBuf::from(format!("host {i}")),
                            source: e,
                        })
                    })?;
                hosts.push(tx);
                host_threads.push(thread);
            }
        }
        let router = Self {
            slots: RwLock::new(BTreeMap::new()),
            threads: std::sync::Mutex::new(HashMap::new()),
            hosts,
            host_threads: std::sync::Mutex::new(host_threads),
            vshards: cfg.vshards.max(1),
            workers,
            outputs,
            cfg,
            input_caps: InputCaps::default(),
            catalog,
            handle,
        };
        for n in 0..workers.unwrap_or(0) {
            if let Err(e) = router.open_slot(n, None) {
                router.stop();
                return Err(e);
            }
        }
        Ok(router)
    }

    /// Cluster mode: opens `vshard` (replaying its log) and serves it while `fence` is valid.
    /// Blocks until the log is replayed. A vshard still open under an earlier lease is
    /// abandoned first and opened again from its log, so its worker never outlives its fence.
    pub fn open_vshard(&self, vshard: u32, fence: Arc<Fence>) -> Result<(), IngestError> {
        if self.read_slots().contains_key(&vshard) {
            tracing::warn!(vshard, "vshard reopened under a new lease");
            self.close_vshard(vshard, false);
        }
        self.open_slot(vshard, Some(fence))
    }

    /// Cluster mode: stops serving `vshard`. With `flush` (a hand-over while the lease is still
    /// valid) its data goes to the feed files and a checkpoint first, so the next owner replays
    /// nothing; without (the lease is lost) the worker stops at once and writes nothing more,
    /// and the next owner replays its log. Blocks until the worker has stopped; returns whether
    /// everything it had was flushed.
    pub fn close_vshard(&self, vshard: u32, flush: bool) -> bool {
        let Some(slot) = self.write_slots().remove(&vshard) else {
            return true;
        };
        if !flush && let Some(f) = &slot.fence {
            f.revoke();
        }
        if let Sink::Hosted(_, host) = &slot.tx {
            let (done, flushed) = mpsc::channel();
            let close = HostMsg::Close {
                vshard,
                flush,
                done,
            };
            return host.send(close).is_ok() && flushed.recv().unwrap_or(false);
        }
        let _ = slot.tx.send(if flush { Job::Stop } else { Job::Abandon });
        drop(slot);
        let thread = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&vshard);
        thread.is_none_or(|t| t.join().unwrap_or(false))
    }

    /// Whether this node serves `vshard` now (always, on one node).
    pub fn serves(&self, vshard: u32) -> bool {
        self.workers.is_some() || self.read_slots().contains_key(&vshard)
    }

    /// The vshards open here (cluster mode), in order.
    pub fn open_vshards(&self) -> Vec<u32> {
        if self.workers.is_some() {
            return Vec::new();
        }
        self.read_slots().keys().copied().collect()
    }

    fn read_slots(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u32, Slot>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_slots(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u32, Slot>> {
        self.slots.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts worker `n` (a worker index, or a vshard in cluster mode) and waits until its
    /// store is open.
    fn open_slot(&self, n: u32, fence: Option<Arc<Fence>>) -> Result<(), IngestError> {
        if !self.hosts.is_empty() {
            return self.open_hosted(n, fence);
        }
        let (tx, rx) = mpsc::sync_channel(self.cfg.queue.max(1));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (cfg, catalog, handle) = (self.cfg.clone(), self.catalog.clone(), self.handle.clone());
        let out = self.outputs.clone();
        let caps = self.input_caps.clone();
        let worker_fence = fence.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ynni-shard-{n}"))
            .spawn(move || {
                match Worker::open(n as usize, &cfg, catalog, handle, out, worker_fence, caps) {
                    Ok(worker) => {
                        let _ = ready_tx.send(Ok(()));
                        // `run` catches a panic in any job itself and carries on with its
                        // store failed (see the worker's policy); only its final flush is
                        // outside that, and a panic there leaves the data in the log.
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            worker.run(rx)
                        }));
                        ran.unwrap_or_else(|_| {
                            tracing::error!(
                                shard = n,
                                "shard worker panicked while stopping; its log keeps the data"
                            );
                            false
                        })
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        false
                    }
                }
            })
            .map_err(|e| {
                IngestError::Storage(ynni_storage::StorageError::Io {
                    op: "starting worker",
                    path: PathBuf::from(format!("shard {n}")),
                    source: e,
                })
            })?;
        let opened = ready_rx.recv().unwrap_or(Err(IngestError::Stopped));
        if let Err(e) = opened {
            let _ = thread.join();
            return Err(e);
        }
        self.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(n, thread);
        self.write_slots().insert(
            n,
            Slot {
                tx: Sink::Own(tx),
                fence,
            },
        );
        Ok(())
    }

    /// Cluster mode: opens `vshard`'s worker here (replaying its log) and hands it to its host.
    fn open_hosted(&self, vshard: u32, fence: Option<Arc<Fence>>) -> Result<(), IngestError> {
        let host = &self.hosts[vshard as usize % self.hosts.len()];
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Worker::open(
                vshard as usize,
                &self.cfg,
                self.catalog.clone(),
                self.handle.clone(),
                self.outputs.clone(),
                fence.clone(),
                self.input_caps.clone(),
            )
        }))
        .unwrap_or_else(|_| {
            tracing::error!(shard = vshard, "opening the vshard panicked");
            Err(IngestError::Stopped)
        })?;
        host.send(HostMsg::Open(vshard, Box::new(opened)))
            .map_err(|_| IngestError::Stopped)?;
        self.write_slots().insert(
            vshard,
            Slot {
                tx: Sink::Hosted(vshard, host.clone()),
                fence,
            },
        );
        Ok(())
    }

    /// Caps each account's inputs at what `cap` says (a hosted service's plan); every worker,
    /// open or opened later, asks it when a submission would create inputs.
    pub fn limit_inputs(&self, cap: impl Fn(i64) -> Option<usize> + Send + Sync + 'static) {
        self.input_caps.set(Arc::new(cap));
    }

    /// How many vshards users are divided into.
    pub fn vshards(&self) -> u32 {
        self.vshards
    }

    pub fn vshard(&self, userid: i64) -> u32 {
        ynni_core::vshard::of(userid, self.vshards)
    }

    /// The queue of the worker serving `userid`; in cluster mode, `NotServed` when this node
    /// does not serve the user's vshard now.
    fn worker_of(&self, userid: i64) -> Result<Sink, IngestError> {
        let v = self.vshard(userid);
        let key = self.workers.map_or(v, |w| v % w);
        self.read_slots()
            .get(&key)
            .map(|slot| slot.tx.clone())
            .ok_or(IngestError::NotServed)
    }

    /// Runs a feed operation on the worker that owns `userid`'s feeds.
    pub async fn feed(&self, userid: i64, op: FeedOp) -> Result<FeedAnswer, IngestError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.worker_of(userid)?.try_send(Job::Feed(op, tx)) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => return Err(IngestError::Busy),
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(IngestError::Stopped),
        }
        match rx.await {
            // A storage failure worth retrying (a full disk, a shard refusing writes) is
            // reported as such, so the web answers 503 with `Retry-After` rather than a refusal.
            Ok(r) => r.map_err(|e| match e {
                ynni_storage::query::QueryError::Storage(s) if s.is_retryable() => {
                    IngestError::Storage(s)
                }
                e => IngestError::Query(e),
            }),
            Err(_) => Err(IngestError::Stopped),
        }
    }

    /// Tells the user's worker that their inputs or process lists changed. Always delivered
    /// (waits for queue space on a blocking thread).
    pub async fn reload_user(&self, userid: i64) -> Result<(), IngestError> {
        let tx = self.worker_of(userid)?;
        tokio::task::spawn_blocking(move || tx.send(Job::Reload(userid)))
            .await
            .map_err(|_| IngestError::Stopped)?
            .map_err(|_| IngestError::Stopped)
    }

    /// Has the user's worker checkpoint what it applied of theirs, before a change to their
    /// inputs, process lists or time zone is committed (see `Job::Settle`).
    pub async fn settle_user(&self, userid: i64) -> Result<(), IngestError> {
        let tx = self.worker_of(userid)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || tx.send(Job::Settle(userid, reply)))
            .await
            .map_err(|_| IngestError::Stopped)?
            .map_err(|_| IngestError::Stopped)?;
        answer.await.map_err(|_| IngestError::Stopped)?
    }

    /// Resolves once the submission is durable in the shard's WAL (or refused).
    pub async fn submit(&self, s: Submission) -> Result<(), IngestError> {
        match self.enqueue(s) {
            Ok(pending) => pending.await,
            Err(refused) => Err(refused.error),
        }
    }

    /// Queues a submission on its shard now, in call order, without waiting: a caller with
    /// many messages (the MQTT link) keeps several in flight so they share WAL syncs. The
    /// returned future resolves once the submission is durable (or refused). A full queue
    /// gives the submission back, to retry once earlier ones are done.
    pub fn enqueue(&self, s: Submission) -> Result<Pending, Refused> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let worker = match self.worker_of(s.userid) {
            Ok(w) => w,
            Err(error) => {
                return Err(Refused {
                    error,
                    submission: Some(s),
                });
            }
        };
        match worker.try_send(Job::Ingest(s, tx)) {
            Ok(()) => Ok(Pending(rx)),
            Err(mpsc::TrySendError::Full(job)) => Err(Refused {
                error: crate::metrics::refused(IngestError::Busy),
                submission: job.into_submission(),
            }),
            Err(mpsc::TrySendError::Disconnected(job)) => Err(Refused {
                error: IngestError::Stopped,
                submission: job.into_submission(),
            }),
        }
    }

    /// The user's input last values, as of every submission acknowledged before this call
    /// (the worker answers after processing what it had already accepted).
    pub async fn input_last(&self, userid: i64) -> Result<LastValues, IngestError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = self.worker_of(userid)?;
        tokio::task::spawn_blocking(move || sender.send(Job::InputLast(userid, tx)))
            .await
            .map_err(|_| IngestError::Stopped)?
            .map_err(|_| IngestError::Stopped)?;
        rx.await.map_err(|_| IngestError::Stopped)
    }

    /// Gives a user's inputs and feeds that have no last value yet the one they had elsewhere
    /// (an import), and checkpoints it. Resolves once durable.
    pub async fn seed_last(&self, userid: i64, seed: Seed) -> Result<(), IngestError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = self.worker_of(userid)?;
        tokio::task::spawn_blocking(move || sender.send(Job::Seed(seed, tx)))
            .await
            .map_err(|_| IngestError::Stopped)?
            .map_err(|_| IngestError::Stopped)?;
        rx.await.map_err(|_| IngestError::Stopped)?
    }

    /// Each worker's counters; a worker whose queue is full is reported busy, not waited for.
    pub async fn status(&self) -> Vec<Result<ShardStatus, IngestError>> {
        let senders: Vec<_> = self.read_slots().values().map(|s| s.tx.clone()).collect();
        let mut out = Vec::with_capacity(senders.len());
        for tx in &senders {
            let (reply, rx) = tokio::sync::oneshot::channel();
            out.push(match tx.try_send(Job::Status(reply)) {
                Ok(()) => rx.await.map_err(|_| IngestError::Stopped),
                Err(mpsc::TrySendError::Full(_)) => Err(IngestError::Busy),
                Err(mpsc::TrySendError::Disconnected(_)) => Err(IngestError::Stopped),
            });
        }
        out
    }

    /// Values published by process lists and feeds' new values, for the broker (or any other
    /// consumer).
    pub fn subscribe_outputs(&self) -> tokio::sync::broadcast::Receiver<Output> {
        self.outputs.values.subscribe()
    }

    /// Inputs' new values (when [`RouterConfig::input_outputs`] is on), for the live UI and
    /// the MQTT input topic. Shards build them only while a receiver is held.
    pub fn subscribe_inputs(&self) -> tokio::sync::broadcast::Receiver<Output> {
        self.outputs.inputs.subscribe()
    }

    /// Flushes every shard (files, checkpoint, WAL trim) and stops the workers; later calls
    /// answer `Stopped`. Returns false when a shard's final flush failed (logged; its WAL
    /// still holds the data for the next start). Blocks. Works through a shared reference, so the server can stop the
    /// workers even while a request still holds the router.
    pub fn stop(&self) -> bool {
        let slots = std::mem::take(&mut *self.write_slots());
        for slot in slots.values() {
            if let Sink::Own(tx) = &slot.tx {
                let _ = tx.send(Job::Stop);
            }
        }
        drop(slots);
        for host in &self.hosts {
            let _ = host.send(HostMsg::Stop);
        }
        let hosts =
            std::mem::take(&mut *self.host_threads.lock().unwrap_or_else(|p| p.into_inner()));
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let mut flushed = true;
        for t in threads.into_values().chain(hosts) {
            flushed &= t.join().unwrap_or(false);
        }
        flushed
    }
}
