//! One shard worker: the single writer of its users' inputs, process state and feeds.
//!
//! # Limits
//!
//! Every submission, over HTTP or MQTT, is checked before it is logged against the node limit
//! (emoncms's 32), the inputs a node may have, the new inputs one submission may create and
//! the values it may carry ([`Limits`]); a refused submission leaves no trace. The new inputs
//! of a record are created in one catalog transaction.
//!
//! # When a shard's store fails
//!
//! One policy for every failure that may leave memory out of step with the log: processing a
//! logged record failed, a feed write failed after it was logged, or a job **panicked**. The
//! shard's store is *poisoned*: it refuses every later write (HTTP 503 with `Retry-After`; an
//! MQTT message is not stored and the link logs it) and never checkpoints again, so no
//! checkpoint can cover a half-applied record; reads (feed data, last values) keep working
//! from memory, and the other shards are untouched. A restart replays the log from the last
//! good checkpoint and heals the shard; the admin status shows `store_failed` until then.
//! (Before, a panic aborted the whole server while a poisoned store answered 503; now both
//! answer 503.) The callers of a group that panicked are answered `Stopped` (503) even if
//! their record reached the log, so a retry may deliver it twice, as when an answer is lost
//! on the network.
//!
//! A failing catalog (its database restarting, a lost connection) poisons nothing at first:
//! processing asks the catalog before it changes anything in memory, so a record it fails is
//! processed again after a pause, for up to [`CATALOG_PATIENCE`] (while the lease lasts, in
//! cluster mode); the shard waits meanwhile, and only a catalog still failing then poisons
//! it. A replay at start-up waits the same way, and fails with a retryable error after it.
//!
//! A failed WAL append (a full disk, an I/O error) poisons nothing: nothing was applied, the
//! log is cut back to its last durable record, the callers get 503 with `Retry-After`, and a
//! later write succeeds once the condition clears.
//!
//! # Values
//!
//! Values are finite or missing everywhere in a shard (see [`crate::batch::Value`]): records
//! are normalised when built, and process results when they are stored, so the live state, the
//! checkpoints and a replay of the log agree exactly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use chrono_tz::Tz;
use tokio::runtime::Handle;
use ynni_core::Catalog;
use ynni_storage::store::{Feed, Replay};
use ynni_storage::wal::{Lsn, Ticket};
use ynni_storage::{Engine, FeedStore, Point, StorageError, query};

use super::fence::Fence;
use super::gather::{Intake, Pace, SharesSync};
use super::record::{FeedWrite, Record};
use super::router::{IngestError, LastValues, Limits, Output, RouterConfig, Submission};
use super::state::ShardState;
use crate::batch::{Value, finite};
use crate::process::{Context, DISABLED_PREFIX, Host, Outcome, ProcessList, StateKind, run_list};

/// Where a submission's outcome goes.
pub type Reply = tokio::sync::oneshot::Sender<Result<(), IngestError>>;

/// A feed operation, run by the worker that owns the feed's user (the only writer of its files).
#[derive(Debug, Clone)]
pub enum FeedOp {
    Create {
        id: u32,
        engine: u8,
        interval: u32,
    },
    Data {
        id: u32,
        req: Box<query::DataRequest>,
    },
    /// The next piece of one feed's CSV download, written as emoncms's engines write it
    /// (up to [`query::CSV_PIECE_LINES`] lines; the caller asks again while it is not done).
    Csv {
        id: u32,
        export: Box<query::CsvExport>,
    },
    /// A time-of-use read (`feed/data` with `split`).
    Split {
        id: u32,
        req: Box<query::SplitRequest>,
    },
    Last {
        id: u32,
    },
    /// [`FeedOp::Last`] of each feed (of one user) in one operation: a list of many feeds
    /// costs one hand-off to the shard instead of one per feed. A feed that cannot be read
    /// has no last update here.
    Lasts {
        ids: Vec<u32>,
    },
    ValueAt {
        id: u32,
        time: i64,
    },
    Meta {
        id: u32,
    },
    /// [`FeedOp::Meta`] of each feed (of one user) in one operation, as [`FeedOp::Lasts`]:
    /// a feed that cannot be read has no meta here.
    Metas {
        ids: Vec<u32>,
    },
    /// Deletes the feed's files (after a flush and checkpoint).
    Delete {
        id: u32,
    },
    /// Empties the feed (after a flush and checkpoint).
    Clear {
        id: u32,
    },
    /// Drops the feed's data before `start_time` (after a flush and checkpoint).
    Trim {
        id: u32,
        start_time: i64,
    },
    /// Removes a variable feed's record at exactly `time` (after a flush and checkpoint).
    DeletePoint {
        id: u32,
        time: u32,
    },
    /// The feed's data file from a byte offset. `fresh` (the owner asking) flushes the
    /// feed's points in memory first, at most once per [`EXPORT_FLUSH_EVERY`] on the shard;
    /// otherwise the file as it is.
    Export {
        id: u32,
        offset: u64,
        fresh: bool,
    },
    /// Points from `feed/insert`: logged durably, then written; answered once durable.
    Insert {
        userid: i64,
        write: FeedWrite,
    },
    /// A virtual feed's data: `list` runs at every grid time over its owner's source feeds.
    Virtual {
        userid: i64,
        list: String,
        req: Box<query::DataRequest>,
        /// The feeds it may read: `None`, every feed of its owner; for a reader who is not
        /// the owner, only the owner's public ones (a public virtual feed must not show what
        /// a private feed holds).
        readable: Option<HashSet<u32>>,
    },
}

impl FeedOp {
    /// Whether the operation writes feed files or the log (refused once a lease has ended).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            FeedOp::Create { .. }
                | FeedOp::Delete { .. }
                | FeedOp::Clear { .. }
                | FeedOp::Trim { .. }
                | FeedOp::DeletePoint { .. }
                | FeedOp::Insert { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FeedAnswer {
    /// The fixed interval chosen (after the minimum), 0 for variable feeds.
    Created {
        interval: u32,
    },
    Data(query::DataReply),
    Split(Vec<query::SplitRow>),
    /// The feed's last update (time, value): emoncms's `timevalue`.
    Last(Option<(i64, Value)>),
    /// Each asked feed's last update, in the order asked.
    Lasts(Vec<Option<(i64, Value)>>),
    Value(Option<f64>),
    /// A fixed-interval feed with no point yet, asked for its value at a time: emoncms's
    /// PHPFina answers `false` rather than `null`.
    NoData,
    Meta(FeedMeta),
    /// Each asked feed's meta, in the order asked.
    Metas(Vec<Option<FeedMeta>>),
    /// Bytes written by a trim, or emoncms's message when it was refused.
    Trimmed(Result<u64, String>),
    /// A piece of a CSV download (`None` once it is complete) and the download's state.
    Csv(Option<String>, Box<query::CsvExport>),
    /// Where a feed's data file's bytes are (an export), to be sent on a piece at a time.
    File(ynni_storage::store::FileSpan),
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeedMeta {
    Fixed(ynni_storage::fixed::FixedMeta),
    Variable(ynni_storage::variable::VariableMeta),
}

fn feed_meta(feed: &Feed) -> FeedMeta {
    match feed {
        Feed::Fixed(f) => FeedMeta::Fixed(f.meta()),
        Feed::Variable(f) => FeedMeta::Variable(f.meta()),
    }
}

pub type FeedReply = tokio::sync::oneshot::Sender<Result<FeedAnswer, query::QueryError>>;

pub enum Job {
    Ingest(Submission, Reply),
    Feed(FeedOp, FeedReply),
    /// A user's inputs or process lists changed in the catalog: load them again.
    Reload(i64),
    /// A user's inputs, process lists or time zone are about to change in the catalog: first
    /// checkpoint every record of theirs applied so far, so that no replay runs one of those
    /// under the new settings (a restart loads them from the catalog). Answered once done.
    Settle(i64, Reply),
    /// The user's input last values.
    InputLast(i64, tokio::sync::oneshot::Sender<LastValues>),
    /// How the worker is doing, for the admin page.
    Status(tokio::sync::oneshot::Sender<ShardStatus>),
    /// Last values brought from another installation, for inputs (id, time, value) and feeds
    /// (id, time, value) that have none yet; checkpointed before the reply.
    Seed(Seed, Reply),
    /// Flush everything, then stop.
    Stop,
    /// Stop at once, writing nothing more (cluster mode: the vshard's lease is lost; the next
    /// owner replays the log).
    Abandon,
}

impl SharesSync for Job {
    /// Submissions are logged as a group with one sync; everything else is answered alone.
    fn shares_sync(&self) -> Option<Pace> {
        match self {
            Job::Ingest(s, _) if s.http => Some(Pace::Posted),
            Job::Ingest(..) => Some(Pace::Published),
            _ => None,
        }
    }
}

/// Last values from another installation (an import).
#[derive(Debug, Default)]
pub struct Seed {
    pub inputs: Vec<(i64, i64, Value)>,
    pub feeds: Vec<(u32, i64, Value)>,
}

/// One worker's counters since the server started.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShardStatus {
    pub shard: usize,
    /// Users whose inputs and process lists are loaded in memory.
    pub users_loaded: usize,
    /// Submissions (posts, bulk requests, MQTT messages) made durable.
    pub submissions: u64,
    /// WAL records replayed when the worker opened (work left by a crash).
    pub replayed_at_start: u64,
    /// The shard refuses writes after a failure, until a restart (see the module's policy).
    pub store_failed: bool,
}

impl Job {
    /// The submission inside an ingest job (to give it back when it cannot be queued).
    pub(crate) fn into_submission(self) -> Option<Submission> {
        match self {
            Job::Ingest(s, _) => Some(s),
            _ => None,
        }
    }
}

/// The most process-list steps one request's values may run (each value runs its input's
/// list once): 50,000 values of 20-step lists.
pub const MAX_STEPS_PER_REQUEST: usize = 1_000_000;
/// Requests of up to this many values are not counted: they run at most 128 steps a value.
const STEP_COUNT_FROM: usize = 1_000;

/// How many queued submissions share one WAL sync.
pub(super) const MAX_GROUP: usize = 256;
/// How long after a failed flush of points past the memory bound the next is tried.
const FULL_FLUSH_RETRY: Duration = Duration::from_secs(5);
/// The least time between two flushes of a shard that exports ask for: a flush syncs every
/// feed written since the last, and a sync tool looping over exports must not turn the flush
/// interval into one flush per value posted. An export in between sends the file as it is.
pub const EXPORT_FLUSH_EVERY: Duration = Duration::from_secs(5);

/// How often an idle worker checks whether a flush is due.
pub(super) const TICK: Duration = Duration::from_secs(1);

struct InputInfo {
    id: i64,
    /// Parsed when the user's inputs are loaded, not for every value; shared so a queued run
    /// holds it without copying.
    process_list: Arc<ProcessList>,
}

struct UserInputs {
    /// `false` when the account no longer exists: its logged batches are skipped.
    exists: bool,
    tz: Tz,
    inputs: HashMap<(String, String), InputInfo>,
    /// How many inputs each node has (the node limit counts the keys).
    node_inputs: HashMap<String, usize>,
    /// The ids in `inputs`: process lists may only read these.
    input_ids: HashSet<i64>,
    /// The user's feeds: process lists may only touch these, whatever the stored list says.
    feeds: HashSet<u32>,
    creation_disabled: bool,
}

/// What the submissions of one group will add, before any of them is processed.
#[derive(Default)]
struct GroupAdds {
    nodes: HashSet<String>,
    /// New input names per node.
    inputs: HashMap<String, HashSet<String>>,
}

/// Everything but the store, so the store can be borrowed beside it.
struct Core {
    catalog: Catalog,
    handle: Handle,
    users: HashMap<i64, UserInputs>,
    state: ShardState,
    limits: Limits,
    outputs: super::router::Outputs,
    input_outputs: bool,
    input_caps: super::router::InputCaps,
    /// The seeds the amend queued since the last flush will add ([`Core::seeds_before_flush`]).
    pending_seeds: Option<Arc<std::sync::Mutex<Vec<FileLast>>>>,
    /// The lease's fence in cluster mode, which bounds how long a replay waits for a failing
    /// catalog (the store's own guard is set only once the replay is done).
    fence: Option<Arc<Fence>>,
    /// Inputs whose list looped while live, with the list's stored text, to be disabled
    /// ([`Worker::disable_looping_lists`]).
    looping: Vec<Looping>,
}

/// An input whose list looped.
struct Looping {
    userid: i64,
    input: i64,
    /// The stored text of the list that looped.
    list: String,
}

/// A submission in the log, waiting for its sync: the record, the sync's ticket, the caller,
/// and the refusal of a later node of the same submission (answered once the rest is stored).
type Logged = (Record, Ticket, Reply, Option<IngestError>);

/// A group between [`Worker::begin`] and [`Worker::finish`].
pub(super) struct Begun {
    logged: Vec<Logged>,
    /// Everything but submissions, run after them.
    others: Vec<Job>,
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01.
fn day_string(days: i64) -> String {
    chrono::DateTime::from_timestamp(days.saturating_mul(86_400), 0)
        .map_or_else(String::new, |t| t.date_naive().to_string())
}

/// How often a worker writes its usage counts to the catalog (when they changed).
const USAGE_EVERY: Duration = Duration::from_secs(10);

/// How long a logged record whose processing the catalog fails is tried again before the
/// store is poisoned: long enough for a database restart or a primary switch-over, short
/// enough that the queued callers get an answer (503 once the queue is full).
const CATALOG_PATIENCE: Duration = Duration::from_secs(10);

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

pub struct Worker {
    n: usize,
    store: FeedStore,
    /// Cluster mode: the lease this worker writes under (see [`Fence`]).
    fence: Option<Arc<Fence>>,
    core: Core,
    submissions: u64,
    replayed_at_start: u64,
    /// The usage counts as last written to the catalog, and when.
    usage_sent: std::collections::BTreeMap<(i64, i64), ynni_core::catalog::Handled>,
    usage_at: std::time::Instant,
    /// Users whose process lists (or time zone) changed while the checkpoint that must come
    /// first could not be written: their lists are reloaded once one is.
    reloads_waiting: Vec<i64>,
    /// When a flush of points past the memory bound last failed ([`Worker::flush_if_full`]):
    /// until one succeeds, new submissions are refused as busy and retries are spaced.
    full_flush_failed: Option<std::time::Instant>,
    /// When an export last flushed the shard (see [`FeedOp::Export`]).
    export_flushed: Option<std::time::Instant>,
    /// Each user's last record in the log (its LSN): a user with none since the last
    /// checkpoint has its lists reloaded without a new checkpoint.
    last_logged: HashMap<i64, Lsn>,
    /// The end of what the open replayed (whoever's records they were): until a checkpoint
    /// covers it, every reload checkpoints first.
    replayed_to: Option<Lsn>,
    /// When disabling a looping list last failed ([`Worker::disable_looping_lists`]).
    loop_disable_failed: Option<std::time::Instant>,
}

impl Worker {
    pub fn open(
        n: usize,
        cfg: &RouterConfig,
        catalog: Catalog,
        handle: Handle,
        outputs: super::router::Outputs,
        fence: Option<Arc<Fence>>,
        input_caps: super::router::InputCaps,
    ) -> Result<Self, IngestError> {
        let mut core = Core {
            catalog,
            handle,
            users: HashMap::new(),
            state: ShardState::default(),
            limits: Limits::with_nodes(cfg.max_nodes),
            outputs,
            input_outputs: cfg.input_outputs,
            input_caps,
            pending_seeds: None,
            fence: fence.clone(),
            looping: Vec::new(),
        };
        if fence.as_ref().is_none_or(|f| f.valid()) {
            finish_feed_files(n, cfg, &core.catalog, &core.handle);
        }
        let wal = cfg.wal_root.join(n.to_string());
        let store = FeedStore::open_with(
            &cfg.fixed_dir,
            &cfg.variable_dir,
            &wal,
            cfg.store,
            &mut core,
        )?;
        tracing::info!(
            shard = n,
            replayed = store.replayed_records(),
            "shard worker ready"
        );
        let replayed_at_start = store.replayed_records();
        let mut store = store;
        if let Some(f) = &fence {
            // The storage asks too, right before each write: a group delayed between the
            // worker's check and the write (a slow catalog, a slow sync) cannot slip past.
            let f = f.clone();
            store.set_guard(Arc::new(move || f.valid()));
        }
        let replayed_to = (replayed_at_start > 0).then(|| store.applied_lsn());
        Ok(Self {
            n,
            store,
            fence,
            core,
            submissions: 0,
            replayed_at_start,
            usage_sent: std::collections::BTreeMap::new(),
            usage_at: std::time::Instant::now(),
            reloads_waiting: Vec::new(),
            full_flush_failed: None,
            export_flushed: None,
            last_logged: HashMap::new(),
            replayed_to,
            loop_disable_failed: None,
        })
    }

    /// Serves jobs until `Stop`; returns whether the final flush wrote everything (a failure
    /// is logged; the WAL still holds the data for the next start).
    pub fn run(mut self, rx: mpsc::Receiver<Job>) -> bool {
        let depth = metrics::gauge!(
            crate::metrics::QUEUE_DEPTH,
            "worker" => crate::metrics::worker_label("shard", self.n)
        );
        let mut intake = Intake::default();
        while let Some(jobs) = intake.next(&rx) {
            let taken = jobs.len();
            depth.set(taken as f64);
            if jobs.iter().any(|j| matches!(j, Job::Abandon)) {
                // Every caller still waiting is answered `Stopped` as its reply is dropped.
                tracing::info!(shard = self.n, "shard abandoned (lease lost)");
                return false;
            }
            let stop = jobs.iter().any(|j| matches!(j, Job::Stop));
            if let Some(begun) = self.guarded(|w| w.begin(jobs)) {
                self.guarded(|w| w.finish(begun));
            }
            if stop {
                break;
            }
            intake.answered(&rx);
        }
        self.final_flush()
    }

    /// Runs one step of a group. A panic is a failure like any other (see the module's
    /// policy): the callers of the group get `Stopped` (their reply channels are dropped), the
    /// store is poisoned, and the shard keeps serving reads.
    pub(super) fn guarded<T>(&mut self, step: impl FnOnce(&mut Self) -> T) -> Option<T> {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(self)));
        if ran.is_err() {
            tracing::error!(
                shard = self.n,
                "a shard job panicked; the shard refuses writes until a restart"
            );
            self.store.poison();
        }
        ran.ok()
    }

    /// Flushes everything to the feed files and a checkpoint before the worker stops; returns
    /// whether that succeeded (a worker whose lease has ended writes nothing: the next owner
    /// replays the log).
    pub(super) fn final_flush(mut self) -> bool {
        self.write_usage();
        if !self.may_write() {
            tracing::warn!(
                shard = self.n,
                "lease ended before the final flush; the next owner replays the log"
            );
            return false;
        }
        match self.store.flush(&self.core.state.encode()) {
            Ok(stats) => {
                tracing::info!(
                    shard = self.n,
                    points = stats.points,
                    "shard flushed on stop"
                );
                true
            }
            Err(e) => {
                tracing::error!(shard = self.n, error = %e, "final flush failed");
                false
            }
        }
    }

    /// The first half of a group of jobs: its submissions are checked and logged (their WAL
    /// syncs shared). [`Worker::finish`] then waits for the syncs, processes, answers, runs
    /// the reads and flushes if due. A thread serving several vshards begins each one's group
    /// before finishing any, so the syncs of all their logs run at once.
    pub(super) fn begin(&mut self, jobs: Vec<Job>) -> Begun {
        let mut submissions = Vec::new();
        let mut others = Vec::new();
        let mut reloads = std::mem::take(&mut self.reloads_waiting);
        for job in jobs {
            match job {
                Job::Ingest(s, reply) => submissions.push((s, reply)),
                Job::Reload(userid) => reloads.push(userid),
                other => others.push(other),
            }
        }
        if !reloads.is_empty() {
            // Checkpoint first: a replay must never run records logged under the old lists
            // (or time zone) with the new ones, so until one is written the old lists stay.
            // Not needed when none of these users has a record the last checkpoint does not
            // cover (one account changing feeds over and over made a full flush of the shard
            // each time). (A worker whose lease has ended writes nothing; its next owner loads
            // the lists afresh.)
            let logged = self.uncovered(&reloads);
            let checkpointed = !logged
                || !self.may_write()
                || match self.store.flush(&self.core.state.encode()) {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::error!(shard = self.n, error = %e, users = ?reloads, "flush before reloading process lists failed; the lists are reloaded once one succeeds");
                        false
                    }
                };
            if checkpointed {
                // Before this group's submissions, so they run the new lists.
                for userid in reloads {
                    self.core.users.remove(&userid);
                }
            } else {
                reloads.sort_unstable();
                reloads.dedup();
                self.reloads_waiting = reloads;
            }
        }
        self.submissions += submissions.len() as u64;
        Begun {
            logged: self.log(submissions),
            others,
        }
    }

    /// The second half of a group (see [`Worker::begin`]).
    pub(super) fn finish(&mut self, begun: Begun) {
        let Begun { logged, others } = begun;
        self.apply(logged);
        // Reads after the writes of the same group, so a read sees what was posted before it.
        for job in others {
            match job {
                Job::Feed(op, reply) => {
                    let answer = if op.writes() && !self.may_write() {
                        Err(StorageError::Fenced.into())
                    } else {
                        self.feed_op(op)
                    };
                    let _ = reply.send(answer);
                }
                Job::InputLast(userid, reply) => {
                    let _ = reply.send(self.core.input_last(userid));
                }
                Job::Seed(seed, reply) => {
                    for (id, t, v) in seed.inputs {
                        self.core
                            .state
                            .input_last
                            .entry(id)
                            .or_insert((t, finite(v)));
                    }
                    for (id, t, v) in seed.feeds {
                        self.core
                            .state
                            .feed_last
                            .entry(id)
                            .or_insert((t, finite(v)));
                    }
                    let done = if self.may_write() {
                        self.store.flush(&self.core.state.encode())
                    } else {
                        Err(StorageError::Fenced)
                    };
                    let _ = reply.send(done.map(|_| ()).map_err(IngestError::from));
                }
                Job::Settle(userid, reply) => {
                    let _ = reply.send(self.settle(userid));
                }
                Job::Status(reply) => {
                    let _ = reply.send(ShardStatus {
                        shard: self.n,
                        users_loaded: self.core.users.len(),
                        submissions: self.submissions,
                        replayed_at_start: self.replayed_at_start,
                        store_failed: self.store.failed(),
                    });
                }
                _ => {}
            }
        }
        self.tick();
    }

    /// Disables each list that looped, as emoncms does: `process__error_found:0,` is put in
    /// front of it, which stops it from then on and shows in the input's list. The user's
    /// records are checkpointed first, as for any change of a list, so a replay never runs the
    /// records before with the disabled list. Only the list that looped is changed (not one
    /// its owner saved since), and only by a worker that may still write. A list that cannot
    /// be disabled now (no checkpoint, no catalog) is tried again when it next loops, at most
    /// once per [`LOOP_RETRY`].
    fn disable_looping_lists(&mut self) {
        if self.core.looping.is_empty() {
            return;
        }
        let mut looping = std::mem::take(&mut self.core.looping);
        if !self.may_write()
            || self
                .loop_disable_failed
                .is_some_and(|at| at.elapsed() < LOOP_RETRY)
        {
            return;
        }
        looping.sort_by_key(|l| l.input);
        looping.dedup_by_key(|l| l.input);
        for Looping {
            userid,
            input,
            list,
        } in looping
        {
            if let Err(e) = self.settle(userid) {
                self.loop_disable_failed = Some(std::time::Instant::now());
                tracing::warn!(shard = self.n, input, error = %e, "a looping list is disabled later: no checkpoint");
                return;
            }
            let disabled = format!("{DISABLED_PREFIX}{list}");
            let catalog = &self.core.catalog;
            match self
                .core
                .handle
                .block_on(catalog.replace_input_process_list(input, &list, &disabled))
            {
                Ok(true) => {
                    tracing::warn!(shard = self.n, input, "a looping process list was disabled");
                    // Its next packet runs the disabled list.
                    self.core.users.remove(&userid);
                }
                // Changed since it ran (its owner saved another, or it is disabled already):
                // the lists are read again.
                Ok(false) => {
                    self.core.users.remove(&userid);
                }
                Err(e) => {
                    self.loop_disable_failed = Some(std::time::Instant::now());
                    tracing::warn!(shard = self.n, input, error = %e, "a looping list is disabled later: catalog");
                    return;
                }
            }
        }
        self.loop_disable_failed = None;
    }

    /// Flushes and checkpoints at once when more points wait in memory than the store holds
    /// between flushes ([`FeedStore::flush_due`]): between two records, so the checkpoint's
    /// state matches the files (a process list reading a feed's last value from its file on
    /// replay finds what the checkpoint covers, not later writes').
    fn flush_if_full(&mut self) {
        if !self.store.flush_due() || self.store.failed() || !self.may_write() {
            return;
        }
        if self
            .full_flush_failed
            .is_some_and(|at| at.elapsed() < FULL_FLUSH_RETRY)
        {
            return;
        }
        match self.store.flush(&self.core.state.encode()) {
            Ok(_) => self.full_flush_failed = None,
            Err(e) => {
                self.full_flush_failed = Some(std::time::Instant::now());
                tracing::error!(shard = self.n, error = %e, "flush of points past the memory bound failed; new submissions are refused as busy until one succeeds");
            }
        }
    }

    /// Checkpoints if a record of `userid`'s (or one replayed at start) is applied but not
    /// covered by the last checkpoint (see [`Job::Settle`]).
    fn settle(&mut self, userid: i64) -> Result<(), IngestError> {
        if !self.uncovered(&[userid]) {
            return Ok(());
        }
        if !self.may_write() {
            return Err(StorageError::Fenced.into());
        }
        self.store.flush(&self.core.state.encode())?;
        Ok(())
    }

    /// Whether one of `users` has a record logged since the last checkpoint, or the records
    /// replayed at start are not all covered yet.
    fn uncovered(&mut self, users: &[i64]) -> bool {
        let covered = self.store.checkpoint_lsn();
        self.last_logged.retain(|_, lsn| *lsn >= covered);
        self.replayed_to.is_some_and(|end| covered < end)
            || users.iter().any(|u| self.last_logged.contains_key(u))
    }

    /// Flushes to the feed files and checkpoints if one is due, and writes the usage counts.
    pub(super) fn tick(&mut self) {
        // Past the memory bound, with its own spacing of retries.
        if self.store.flush_due() {
            self.flush_if_full();
        } else if !self.store.failed() && self.may_write() {
            let state = &self.core.state;
            if let Err(e) = self.store.flush_if_due(|| state.encode()) {
                tracing::error!(shard = self.n, error = %e, "flush failed");
            }
        }
        if self.usage_at.elapsed() >= USAGE_EVERY {
            self.write_usage();
        }
    }

    /// Writes the usage totals that changed since the last write, then forgets days two days
    /// old (written already; records of a day are logged, and checkpointed, long before).
    ///
    /// Totals, not increments: a record is counted only once it is durable in the log, so a
    /// replay after a crash counts the same records again from the checkpoint's totals and
    /// writes the same numbers. A worker whose lease has ended writes nothing (the next owner
    /// writes every total it holds on its first write).
    fn write_usage(&mut self) {
        self.usage_at = std::time::Instant::now();
        if !self.may_write() {
            return;
        }
        let changed: Vec<(i64, String, ynni_core::catalog::Handled)> = self
            .core
            .state
            .usage
            .iter()
            .filter(|(k, h)| self.usage_sent.get(k) != Some(h))
            .map(|(&(u, d), h)| (u, day_string(d), *h))
            .collect();
        if !changed.is_empty() {
            let catalog = &self.core.catalog;
            match self
                .core
                .handle
                .block_on(catalog.set_usage_handled(&changed))
            {
                Ok(()) => {
                    self.usage_sent = self.core.state.usage.clone();
                }
                Err(e) => {
                    tracing::warn!(shard = self.n, error = %e, "writing usage failed; retried");
                    return;
                }
            }
        }
        let keep_from = now_secs().div_euclid(86_400) - 1;
        self.core.state.usage.retain(|&(_, d), _| d >= keep_from);
        self.usage_sent.retain(|&(_, d), _| d >= keep_from);
    }

    /// Whether this worker may still write and acknowledge (always, on one node).
    fn may_write(&self) -> bool {
        self.fence.as_ref().is_none_or(|f| f.valid())
    }

    fn feed_op(&mut self, op: FeedOp) -> Result<FeedAnswer, query::QueryError> {
        Ok(match op {
            FeedOp::Create {
                id,
                engine,
                interval,
            } => match Engine::from_id(i64::from(engine)) {
                Some(Engine::Fixed) => FeedAnswer::Created {
                    interval: self.store.create_fixed(id, interval)?.interval,
                },
                Some(Engine::Variable) => {
                    self.store.create_variable(id)?;
                    FeedAnswer::Created { interval: 0 }
                }
                _ => return Err(StorageError::NoSuchFeed { id }.into()),
            },
            FeedOp::Data { id, mut req } => {
                req.last_value = self.core.state.feed_last.get(&id).copied();
                let data = query::data(self.store.feed(id)?, &req);
                self.store.after_read(id);
                FeedAnswer::Data(data?)
            }
            FeedOp::Csv { id, mut export } => {
                let piece = export.piece(self.store.feed(id)?, query::CSV_PIECE_LINES);
                self.store.after_read(id);
                FeedAnswer::Csv(piece?, export)
            }
            FeedOp::Split { id, req } => {
                FeedAnswer::Split(query::split(self.store.feed(id)?, &req)?)
            }
            FeedOp::Last { id } => match self.core.state.feed_last.get(&id) {
                Some(&last) => FeedAnswer::Last(Some(last)),
                None => FeedAnswer::Last(query::last_value(self.store.feed(id)?)?),
            },
            FeedOp::Lasts { ids } => FeedAnswer::Lasts(
                ids.iter()
                    .map(|&id| match self.core.state.feed_last.get(&id) {
                        Some(&last) => Some(last),
                        None => {
                            let last = match self.store.feed(id) {
                                Ok(feed) => query::last_value(feed).map_err(|e| e.to_string()),
                                Err(e) => Err(e.to_string()),
                            };
                            last.unwrap_or_else(|error| {
                                // Anybody may list a user's public feeds: not a warning per
                                // feed per request.
                                tracing::debug!(
                                    feed = id,
                                    error,
                                    "a feed's last value could not be read"
                                );
                                None
                            })
                        }
                    })
                    .collect(),
            ),
            FeedOp::ValueAt { id, time } => match self.store.feed(id)? {
                Feed::Fixed(f) if f.meta().npoints == 0 => FeedAnswer::NoData,
                feed => FeedAnswer::Value(query::value_at(feed, time)?),
            },
            FeedOp::Delete { id } => {
                // Files already gone (a crash after they were removed, before the catalog's
                // row was): done, so the row can go too instead of the feed staying for good.
                self.without_feed_last(id, |store, state| match store.delete(id, state) {
                    Err(StorageError::NoSuchFeed { .. }) => Ok(()),
                    other => other,
                })?;
                FeedAnswer::Done
            }
            FeedOp::Clear { id } => {
                self.without_feed_last(id, |store, state| store.clear(id, state))?;
                FeedAnswer::Done
            }
            FeedOp::Virtual {
                userid,
                list,
                req,
                readable,
            } => FeedAnswer::Data(self.virtual_data(userid, &list, &req, readable.as_ref())?),
            FeedOp::Insert { userid, write } => self.insert(userid, write)?,
            FeedOp::Trim { id, start_time } => FeedAnswer::Trimmed(
                self.without_feed_seed(id, |store, state| store.trim(id, start_time, state))?,
            ),
            FeedOp::DeletePoint { id, time } => {
                self.without_feed_seed(id, |store, state| store.delete_point(id, time, state))?;
                FeedAnswer::Done
            }
            FeedOp::Export { id, offset, fresh } => {
                // Not while a backup runs: it copies feed files that stand still (the
                // export then sends the file as it is, as between two of its flushes).
                let flush = fresh
                    && self.store.is_dirty(id)?
                    && self
                        .export_flushed
                        .is_none_or(|at| at.elapsed() >= EXPORT_FLUSH_EVERY)
                    && !self.store.backup_running();
                let state = flush.then(|| self.core.state.encode());
                if flush {
                    self.export_flushed = Some(std::time::Instant::now());
                }
                FeedAnswer::File(self.store.export_span(id, offset, state.as_deref())?)
            }
            FeedOp::Meta { id } => FeedAnswer::Meta(feed_meta(self.store.feed(id)?)),
            FeedOp::Metas { ids } => FeedAnswer::Metas(
                ids.iter()
                    .map(|&id| match self.store.feed(id) {
                        Ok(feed) => Some(feed_meta(feed)),
                        Err(error) => {
                            // As for `Lasts`: anybody may list a user's public feeds.
                            tracing::debug!(feed = id, %error, "a feed's meta could not be read");
                            None
                        }
                    })
                    .collect(),
            ),
        })
    }

    /// A direct feed write: durable in the WAL before it is applied or answered, and replayed
    /// like an input batch after a crash.
    fn insert(&mut self, userid: i64, write: FeedWrite) -> Result<FeedAnswer, query::QueryError> {
        let record = Record::feed_write(userid, write).received_at(now_secs());
        let lsn = self.store.log(&record.encode())?.wait()?;
        self.last_logged.insert(userid, lsn);
        if !self.may_write() {
            return Err(StorageError::Fenced.into());
        }
        let fence = self.fence.clone();
        let may_write = move || fence.as_ref().is_none_or(|f| f.valid());
        match self
            .core
            .process_patiently(&mut self.store, &record, false, may_write)
        {
            Ok(()) => {
                self.store.record_applied(lsn);
                self.flush_if_full();
            }
            Err(e) => {
                tracing::error!(shard = self.n, lsn, error = %e, "applying a logged feed write failed; shard stopped until restart");
                self.store.poison();
            }
        }
        Ok(FeedAnswer::Done)
    }

    /// Runs `op` (a clear or delete of feed `id`, which checkpoints `state` first) with the
    /// feed's last value already gone from the state it checkpoints: a replay after a crash
    /// must start the emptied feed where the live shard did, not from its old last value (an
    /// accumulating feed would carry on from its old total). Should `op` fail, the last value
    /// comes back (a checkpoint without it is harmless: a missing last value is read from
    /// the feed itself).
    fn without_feed_last(
        &mut self,
        id: u32,
        op: impl FnOnce(&mut FeedStore, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let last = self.core.state.feed_last.remove(&id);
        let done = self.without_feed_seed(id, op);
        if done.is_err()
            && let Some(last) = last
        {
            self.core.state.feed_last.insert(id, last);
        }
        done
    }

    /// Runs `op` (a change to feed `id`'s file, which checkpoints `state` first) with the last
    /// value read from the file before gone from that state, as it may no longer be the
    /// file's: the next read after `op` reads the file again, live as in a replay.
    fn without_feed_seed<T>(
        &mut self,
        id: u32,
        op: impl FnOnce(&mut FeedStore, &[u8]) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let seed = self.core.state.feed_seed.remove(&id);
        let done = op(&mut self.store, &self.core.state.encode());
        if done.is_err()
            && let Some(seed) = seed
        {
            self.core.state.feed_seed.insert(id, seed);
        }
        done
    }

    fn virtual_data(
        &mut self,
        userid: i64,
        list: &str,
        req: &query::DataRequest,
        readable: Option<&HashSet<u32>>,
    ) -> Result<query::DataReply, query::QueryError> {
        let (times, interval, format) = query::grid(req)?;
        let owned = match self.core.user(userid) {
            Ok(u) => match readable {
                Some(r) => u.feeds.intersection(r).copied().collect(),
                None => u.feeds.clone(),
            },
            Err(e) => {
                tracing::error!(error = %e, "virtual feed owner unavailable");
                HashSet::new()
            }
        };
        // Parsed once for the whole grid: the list runs at every point of it.
        let list = ProcessList::parse(list);
        // The sources: feed arguments of the list's steps, read on the same grid.
        let mut sources: HashMap<u32, HashMap<i64, Value>> = HashMap::new();
        // The sources share the request's records (see `DataRequest::max_records`).
        let mut records = 0u64;
        for &f in list.feed_args() {
            if !owned.contains(&f) || sources.contains_key(&f) {
                continue;
            }
            let mut sreq = req.clone();
            sreq.interval = interval;
            sreq.delta = false;
            sreq.dp = None;
            sreq.skipmissing = false;
            // The source must answer on exactly the virtual feed's grid.
            sreq.limitinterval = false;
            sreq.timeformat = "unix".into();
            sreq.last_value = None;
            sreq.max_records = req.max_records.saturating_sub(records);
            let values = match self.store.feed(f) {
                Ok(feed) => {
                    let reply = query::data(feed, &sreq);
                    self.store.after_read(f);
                    let reply = reply?;
                    records += reply.records;
                    reply.points.into_iter().collect()
                }
                Err(_) => HashMap::new(),
            };
            sources.insert(f, values);
        }
        let mut host = VirtualHost {
            sources: &sources,
            t: 0,
            tz: req.tz,
        };
        let mut points = Vec::with_capacity(times.len());
        for t in times {
            host.t = t;
            let v = match run_list(&list, t, None, Context::VirtualFeed, &mut host) {
                Outcome::Done(v) => v,
                _ => None,
            };
            let v = match (v, req.dp) {
                (Some(x), Some(dp)) => Some(query::round_dp(x, dp)),
                (v, _) => v,
            };
            if v.is_some() || !req.skipmissing {
                points.push((t, v));
            }
        }
        Ok(query::DataReply {
            format,
            points,
            records,
        })
    }

    /// Checks and logs every accepted submission (their syncs shared); [`Worker::apply`]
    /// answers each caller once its record is durable and processes them in order.
    fn log(&mut self, submissions: Vec<(Submission, Reply)>) -> Vec<Logged> {
        let mut logged: Vec<Logged> = Vec::new();
        if submissions.is_empty() {
            // A group of reads only: marking an empty group would wake the log's writer
            // twice for nothing.
            return logged;
        }
        if !self.may_write() {
            for (_, reply) in submissions {
                let _ = reply.send(Err(IngestError::NotServed));
            }
            return logged;
        }
        // Memory holds all it may until a flush succeeds: more would only grow it.
        self.flush_if_full();
        if self.store.flush_due() && self.full_flush_failed.is_some() {
            for (_, reply) in submissions {
                let _ = reply.send(Err(IngestError::Busy));
            }
            return logged;
        }
        let mut group: HashMap<i64, GroupAdds> = HashMap::new();
        // The group's records share one log sync: the writer starts on them once all are in.
        self.store.begin_group();
        for (mut s, reply) in submissions {
            let adds = group.entry(s.userid).or_default();
            let stopped = match self.core.check(&mut s, adds) {
                Ok(stopped) => stopped.map(crate::metrics::refused),
                Err(e) => {
                    let _ = reply.send(Err(crate::metrics::refused(e)));
                    continue;
                }
            };
            let stopped = match stopped {
                // Nothing before the refused node: nothing to log.
                Some(error) if s.batches.is_empty() => {
                    let _ = reply.send(Err(error));
                    continue;
                }
                stopped => stopped,
            };
            let record = Record::new(s.userid, s.http, &s.batches).received_at(now_secs());
            // Checked again: the limits above may have waited on the catalog.
            if !self.may_write() {
                let _ = reply.send(Err(IngestError::NotServed));
                continue;
            }
            match self.store.log(&record.encode()) {
                Ok(ticket) => logged.push((record, ticket, reply, stopped)),
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            }
        }
        self.store.end_group();
        logged
    }

    /// Waits for each logged record to be durable, processes it and answers its caller.
    fn apply(&mut self, logged: Vec<Logged>) {
        for (record, ticket, reply, stopped) in logged {
            let lsn = match ticket.wait() {
                Ok(lsn) => lsn,
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                    continue;
                }
            };
            self.last_logged.insert(record.userid, lsn);
            // Durable, but acknowledged only by a node whose lease outlived the sync; the
            // next owner replays it (the client's retry may then store it a second time).
            if !self.may_write() {
                let _ = reply.send(Err(IngestError::NotServed));
                continue;
            }
            // The record is durable, so the answer is yes; it is sent after processing so that
            // a read that follows the answer sees the new inputs and values.
            let fence = self.fence.clone();
            let may_write = move || fence.as_ref().is_none_or(|f| f.valid());
            match self
                .core
                .process_patiently(&mut self.store, &record, false, may_write)
            {
                Ok(()) => {
                    self.store.record_applied(lsn);
                    self.flush_if_full();
                }
                Err(e) => {
                    // Memory may be half-updated: stop checkpointing until a restart replays
                    // this record from the checkpoint before it.
                    tracing::error!(shard = self.n, lsn, error = %e, "processing a logged batch failed; shard stopped until restart");
                    self.store.poison();
                }
            }
            let _ = reply.send(stopped.map_or(Ok(()), Err));
        }
        self.disable_looping_lists();
    }
}

/// How long after a failure to disable a looping list the worker tries again (each try may
/// checkpoint the shard and wait for the catalog).
const LOOP_RETRY: Duration = Duration::from_secs(60);

/// How far ahead of its record's arrival an input's time may be and still hold back older
/// packets as resent: device clocks run a little fast, never hours.
const FUTURE_SLACK_S: i64 = 600;

/// Whether `time` is ahead of `received` (a record's arrival, 0 when not known) by more than
/// [`FUTURE_SLACK_S`].
fn from_the_future(time: i64, received: i64) -> bool {
    received > 0 && time > received.saturating_add(FUTURE_SLACK_S)
}

/// Makes the files of shard `n`'s feeds that feed/create added a row for but a stop kept from
/// having them (`Catalog::create_feed_with_files`): without them every point their process
/// lists send would be dropped. Runs before the shard replays or serves anything, so replayed
/// records reach them too. Files already there are taken only if they are what the row asks
/// for (the stop came after they were made); anything else is logged and the row left listed,
/// as is a failure, for the next open. Nothing is deleted here.
fn finish_feed_files(n: usize, cfg: &RouterConfig, catalog: &Catalog, handle: &Handle) {
    let pending = match handle.block_on(catalog.feeds_with_files_pending()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(shard = n, error = %e, "could not list feeds without files");
            return;
        }
    };
    for row in pending {
        let v = ynni_core::vshard::of(row.userid, cfg.vshards) as usize;
        let ours = if cfg.per_vshard {
            v == n
        } else {
            v % cfg.workers.max(1) == n
        };
        if !ours {
            continue;
        }
        let Ok(id) = u32::try_from(row.id) else {
            continue;
        };
        let storage = Engine::from_id(row.engine).and_then(|e| e.storage());
        let made = match storage.map(|s| s.engine()) {
            Some(Engine::Fixed) => {
                let asked = u32::try_from(row.interval)
                    .unwrap_or(u32::MAX)
                    .max(cfg.store.min_interval)
                    .max(1);
                make_fixed(
                    &cfg.fixed_dir,
                    &cfg.variable_dir,
                    id,
                    asked,
                    cfg.store.min_interval,
                )
            }
            Some(Engine::Variable) => make_variable(&cfg.fixed_dir, &cfg.variable_dir, id),
            _ => Ok(false),
        };
        match made {
            Ok(true) => tracing::warn!(
                shard = n,
                feed = id,
                "made the files of a feed whose creation a stop interrupted"
            ),
            Ok(false) => {}
            Err(why) => {
                tracing::error!(shard = n, feed = id, error = %why, "a new feed's files could not be made; tried again at the next open");
                continue;
            }
        }
        if let Err(e) = handle.block_on(catalog.feed_files_made(row.id)) {
            tracing::warn!(shard = n, feed = id, error = %e, "could not mark a feed's files made");
        }
    }
}

/// Makes fixed feed `id`'s files with `interval`; `Ok(false)` when files with that interval
/// are there already.
fn make_fixed(
    fixed: &std::path::Path,
    variable: &std::path::Path,
    id: u32,
    interval: u32,
    min_interval: u32,
) -> Result<bool, String> {
    if ynni_storage::variable::exists(variable, id) {
        return Err("a variable-interval file has its id".into());
    }
    if ynni_storage::fixed::exists(fixed, id) {
        let found = ynni_storage::fixed::FixedFeed::open(fixed, id)
            .map_err(|e| e.to_string())?
            .meta()
            .interval;
        return if found == interval {
            Ok(false)
        } else {
            Err(format!(
                "files with interval {found} have its id, not {interval}"
            ))
        };
    }
    ynni_storage::fixed::FixedFeed::create(fixed, id, interval, min_interval)
        .map(|_| true)
        .map_err(|e| e.to_string())
}

/// Makes variable-interval feed `id`'s file; `Ok(false)` when it is there already.
fn make_variable(
    fixed: &std::path::Path,
    variable: &std::path::Path,
    id: u32,
) -> Result<bool, String> {
    if ynni_storage::fixed::exists(fixed, id) {
        return Err("fixed-interval files have its id".into());
    }
    if ynni_storage::variable::exists(variable, id) {
        return Ok(false);
    }
    ynni_storage::variable::VariableFeed::create(variable, id)
        .map(|_| true)
        .map_err(|e| e.to_string())
}

impl Replay for Core {
    fn restore(&mut self, state: &[u8]) -> ynni_storage::error::Result<()> {
        self.state = ShardState::decode(state).map_err(|e| StorageError::CorruptCheckpoint {
            path: "shard state".into(),
            reason: e.to_string(),
        })?;
        Ok(())
    }

    fn replay(
        &mut self,
        store: &mut FeedStore,
        lsn: Lsn,
        record: &[u8],
    ) -> ynni_storage::error::Result<()> {
        let Some(record) = Record::decode(record) else {
            return Err(StorageError::CorruptWal {
                path: format!("record {lsn}").into(),
                reason: "not an input batch".into(),
            });
        };
        let fence = self.fence.clone();
        let may_continue = move || fence.as_ref().is_none_or(|f| f.valid());
        self.process_patiently(store, &record, true, may_continue)
            .map_err(|e| match e {
                IngestError::Storage(s) => s,
                IngestError::Catalog(c) => StorageError::ReplayFailed {
                    lsn,
                    reason: format!("catalog: {c}"),
                },
                other => StorageError::CorruptWal {
                    path: format!("record {lsn}").into(),
                    reason: other.to_string(),
                },
            })
    }
}

impl Core {
    fn user(&mut self, userid: i64) -> Result<&mut UserInputs, IngestError> {
        if !self.users.contains_key(&userid) {
            let (user, rows, feeds, disabled) = self.handle.block_on(async {
                let user = self.catalog.user_by_id(userid).await?;
                let rows = self.catalog.inputs_for_user(userid).await?;
                let feeds = self.catalog.feeds_for_user(userid).await?;
                let disabled = self.catalog.input_creation_disabled(userid).await?;
                Ok::<_, ynni_core::CatalogError>((user, rows, feeds, disabled))
            })?;
            let exists = user.is_some();
            let tz = user
                .and_then(|u| ynni_core::timezone::parse(&u.timezone))
                .unwrap_or(Tz::UTC);
            let feeds = feeds
                .iter()
                .filter_map(|f| u32::try_from(f.id).ok())
                .collect();
            let inputs: HashMap<(String, String), InputInfo> = rows
                .into_iter()
                .map(|r| {
                    (
                        (r.nodeid, r.name),
                        InputInfo {
                            id: r.id,
                            process_list: Arc::new(ProcessList::parse(&r.process_list)),
                        },
                    )
                })
                .collect();
            let mut node_inputs: HashMap<String, usize> = HashMap::new();
            for (node, _) in inputs.keys() {
                *node_inputs.entry(node.clone()).or_insert(0) += 1;
            }
            self.users.insert(
                userid,
                UserInputs {
                    exists,
                    tz,
                    input_ids: inputs.values().map(|i| i.id).collect(),
                    inputs,
                    node_inputs,
                    feeds,
                    creation_disabled: disabled,
                },
            );
        }
        self.users.get_mut(&userid).ok_or(IngestError::Stopped)
    }

    fn input_last(&mut self, userid: i64) -> LastValues {
        let Ok(user) = self.user(userid) else {
            return LastValues::new();
        };
        let ids: Vec<i64> = user.inputs.values().map(|i| i.id).collect();
        ids.into_iter()
            .filter_map(|id| self.state.input_last.get(&id).map(|&l| (id, l)))
            .collect()
    }

    /// The limits, for every submission (HTTP and MQTT alike), before anything is logged. The
    /// nodes and inputs that earlier submissions of the same group will add count too
    /// (`group`): none of them is processed yet.
    ///
    /// The node limit stops a submission where emoncms stops it (input_methods.php: `bulk`
    /// calls `process_node` frame by frame and returns the first error): the batches before
    /// the first one naming a node past the limit are kept and processed, that batch and
    /// every later one are dropped from `s`, and the error is returned as `Ok(Some(…))` to be
    /// answered once the kept part is durable. The other limits are ynni's own and refuse the
    /// whole submission (`Err`).
    fn check(
        &mut self,
        s: &mut Submission,
        group: &mut GroupAdds,
    ) -> Result<Option<IngestError>, IngestError> {
        let limits = self.limits;
        let values: usize = s.batches.iter().map(|b| b.values.len()).sum();
        if values > limits.values_per_request {
            return Err(IngestError::ValueLimit {
                limit: limits.values_per_request,
            });
        }
        let too_long = |n: &str| n.chars().nth(super::router::MAX_NAME_CHARS).is_some();
        let long = s.batches.iter().find_map(|b| {
            std::iter::once(&b.node)
                .chain(b.values.iter().map(|(name, _)| name))
                .find(|n| too_long(n))
        });
        if let Some(name) = long {
            return Err(IngestError::NameLimit {
                limit: super::router::MAX_NAME_CHARS,
                name: name.chars().take(32).collect(),
            });
        }
        let plan_cap = self.input_caps.cap(s.userid);
        let user = self.user(s.userid)?;
        // A few values run few steps whatever their lists (at most MAX_STEPS each): only a
        // larger request is counted.
        if values > STEP_COUNT_FROM {
            let steps: usize = s
                .batches
                .iter()
                .flat_map(|b| b.values.iter().map(move |(name, _)| (b, name)))
                .filter_map(|(b, name)| user.inputs.get(&(b.node.clone(), name.clone())))
                .map(|input| input.process_list.len())
                .sum();
            if steps > MAX_STEPS_PER_REQUEST {
                return Err(IngestError::StepLimit {
                    limit: MAX_STEPS_PER_REQUEST,
                    steps,
                });
            }
        }
        let mut new_nodes: Vec<&str> = Vec::new();
        let mut new_inputs: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut created = 0;
        let mut stopped: Option<(usize, IngestError)> = None;
        for (k, b) in s.batches.iter().enumerate() {
            let node = b.node.as_str();
            if !user.node_inputs.contains_key(node)
                && !group.nodes.contains(node)
                && !new_nodes.contains(&node)
            {
                if user.node_inputs.len() + group.nodes.len() + new_nodes.len() >= limits.nodes {
                    let error = IngestError::NodeLimit {
                        limit: limits.nodes,
                        node: b.node.clone(),
                    };
                    stopped = Some((k, error));
                    break;
                }
                new_nodes.push(node);
            }
            if user.creation_disabled {
                // Nothing will be created.
                continue;
            }
            for (name, _) in &b.values {
                if user.inputs.contains_key(&(b.node.clone(), name.clone())) {
                    continue;
                }
                let pending = group.inputs.get(node);
                if pending.is_some_and(|p| p.contains(name.as_str())) {
                    continue;
                }
                let mine = new_inputs.entry(node).or_default();
                if !mine.insert(name.as_str()) {
                    continue;
                }
                let count = user.node_inputs.get(node).copied().unwrap_or(0)
                    + pending.map_or(0, HashSet::len)
                    + mine.len();
                if count > limits.inputs_per_node {
                    return Err(IngestError::InputLimit {
                        limit: limits.inputs_per_node,
                        node: b.node.clone(),
                        name: name.clone(),
                    });
                }
                created += 1;
                if let Some(cap) = plan_cap {
                    let pending: usize = group.inputs.values().map(HashSet::len).sum();
                    if user.inputs.len() + pending + created > cap {
                        return Err(IngestError::PlanInputLimit {
                            limit: cap,
                            name: name.clone(),
                        });
                    }
                }
                if created > limits.new_inputs_per_request {
                    return Err(IngestError::NewInputLimit {
                        limit: limits.new_inputs_per_request,
                        name: name.clone(),
                    });
                }
            }
        }
        group
            .nodes
            .extend(new_nodes.into_iter().map(str::to_string));
        for (node, names) in new_inputs {
            group
                .inputs
                .entry(node.to_string())
                .or_default()
                .extend(names.into_iter().map(str::to_string));
        }
        Ok(stopped.map(|(k, error)| {
            s.batches.truncate(k);
            error
        }))
    }

    /// Creates the record's inputs that the user does not have yet (unless creation is
    /// disabled) in one catalog transaction, and returns their keys. One commit for all of
    /// them: one per input made a post naming 100,000 new inputs hold its shard for 51 s.
    fn create_inputs(
        &mut self,
        userid: i64,
        record: &Record,
    ) -> Result<HashSet<(String, String)>, IngestError> {
        let user = self.user(userid)?;
        let mut fresh: HashSet<(String, String)> = HashSet::new();
        if user.creation_disabled {
            return Ok(fresh);
        }
        let mut missing: Vec<(String, String)> = Vec::new();
        for batch in &record.batches {
            for (name, _) in &batch.values {
                let key = (batch.node.clone(), name.clone());
                if !user.inputs.contains_key(&key) && fresh.insert(key.clone()) {
                    missing.push(key);
                }
            }
        }
        if missing.is_empty() {
            return Ok(fresh);
        }
        let rows = self
            .handle
            .block_on(self.catalog.create_inputs(userid, &missing))?;
        let Some(user) = self.users.get_mut(&userid) else {
            return Err(IngestError::Stopped);
        };
        for row in rows {
            user.input_ids.insert(row.id);
            *user.node_inputs.entry(row.nodeid.clone()).or_insert(0) += 1;
            user.inputs.insert(
                (row.nodeid, row.name),
                InputInfo {
                    id: row.id,
                    process_list: Arc::new(ProcessList::parse(&row.process_list)),
                },
            );
        }
        Ok(fresh)
    }

    /// [`Core::process`], with a catalog failure tried again: it changed nothing in memory, so
    /// the record is processed again after a growing pause (to 1 s), for up to
    /// [`CATALOG_PATIENCE`], while `may_continue` says so and the store has not stopped. A
    /// catalog that restarts or is briefly unreachable delays the shard; before, it stopped
    /// the shard's writes until a restart. Only what is still failing after that poisons the
    /// store. Every catalog error is tried again, not only those known to be passing (a
    /// database switching over fails in many ways): one that will not pass costs one wait.
    fn process_patiently(
        &mut self,
        store: &mut FeedStore,
        record: &Record,
        replaying: bool,
        may_continue: impl Fn() -> bool,
    ) -> Result<(), IngestError> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            match self.process(store, record, replaying) {
                // Not once the store has stopped: a record that gave up stopped it, and the
                // rest of its group must not each wait again.
                Err(IngestError::Catalog(e))
                    if started.elapsed() + pause <= CATALOG_PATIENCE
                        && !store.failed()
                        && may_continue() =>
                {
                    tracing::warn!(userid = record.userid, error = %e, "the catalog failed while processing a logged record; trying again");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// Inputs, last values and process lists for one logged record (also used by replay).
    fn process(
        &mut self,
        store: &mut FeedStore,
        record: &Record,
        replaying: bool,
    ) -> Result<(), IngestError> {
        let userid = record.userid;
        store.begin_record();
        if !self.user(userid)?.exists {
            tracing::warn!(userid, "batch of a deleted account skipped");
            return Ok(());
        }
        // Inputs created for this record: each is new where it first appears. The catalog's
        // work comes before anything in memory changes, so a catalog failure leaves the shard
        // as it was and the record can be processed again ([`Worker::process_logged`]).
        let mut fresh = self.create_inputs(userid, record)?;
        // Counted here, live and in a replay alike: a replay redoes exactly the records after
        // the checkpoint, whose counts the checkpoint does not hold.
        let usage_key = (userid, record.usage_day());
        {
            let used = self.state.usage.entry(usage_key).or_default();
            if record.http {
                used.http_values += record.values();
            } else {
                used.mqtt_values += record.values();
            }
        }
        if !replaying {
            let source = if record.http { "http" } else { "mqtt" };
            metrics::counter!(crate::metrics::VALUES, "source" => source)
                .increment(u64::try_from(record.values()).unwrap_or(0));
        }
        // Inputs whose list was stopped, warned of once per record.
        let mut warned: HashSet<i64> = HashSet::new();
        // The record's live outputs, sent once it is processed: each feed's and each
        // published topic's last value once, however many rows (a bulk upload) wrote them.
        let mut out_feeds: Vec<u32> = Vec::new();
        let mut out_published: Vec<(String, Value)> = Vec::new();
        let mut seeded: Vec<(u32, Option<(i64, Value)>)> = Vec::new();
        // Live values for subscribers: not sent again when a batch is replayed; of a record of
        // several rows (a bulk upload), each input's last only. The outputs channel is shared
        // by every user of the server: a 50,000-value upload sent value by value overran it,
        // making every live page reload and the MQTT publisher drop other accounts' values.
        if self.input_outputs && !replaying && self.outputs.inputs.receiver_count() > 0 {
            let send = |node: &str, name: &str, time: i64, value: Value| {
                let _ = self.outputs.inputs.send(Output::Input {
                    userid,
                    node: node.to_string(),
                    name: name.to_string(),
                    time,
                    value,
                });
            };
            if let [batch] = record.batches.as_slice() {
                for (name, value) in &batch.values {
                    send(&batch.node, name, batch.time, *value);
                }
            } else {
                let mut last: HashMap<(&str, &str), (i64, Value)> = HashMap::new();
                for batch in &record.batches {
                    for (name, value) in &batch.values {
                        last.insert((batch.node.as_str(), name.as_str()), (batch.time, *value));
                    }
                }
                for ((node, name), (time, value)) in last {
                    send(node, name, time, value);
                }
            }
        }
        for batch in &record.batches {
            let t = batch.time;
            let mut queued: Vec<(i64, Value, Arc<ProcessList>)> = Vec::new();
            for (name, value) in &batch.values {
                let key = (batch.node.clone(), name.clone());
                let Some(input) = self.users.get(&userid).and_then(|u| u.inputs.get(&key)) else {
                    // Input creation is disabled for this user: the value has nowhere to go.
                    continue;
                };
                let id = input.id;
                if fresh.remove(&key) {
                    // A new input takes its first value; nothing runs (emoncms's rule).
                    self.state.input_last.insert(id, (t, *value));
                    self.state.input_newest.insert(id, (t, *value));
                    continue;
                }
                let list = &input.process_list;
                let previous = self.state.input_last.insert(id, (t, *value));
                // A newest time ahead of when this record arrived is a clock gone wrong (a
                // millisecond timestamp, a device set years ahead), not data sent before: it
                // must not hold back every packet after it, so it is forgotten.
                let newest = self
                    .state
                    .input_newest
                    .insert(id, (t, *value))
                    .filter(|(nt, _)| {
                        !from_the_future(*nt, record.received)
                            || from_the_future(t, record.received)
                    });
                // A resent packet must not run accumulators twice: the same time and value as
                // the last or the newest is skipped, and so is an older time for lists that
                // keep state (an emonhub retry resends its whole buffer, oldest rows first).
                let resent = previous == Some((t, *value))
                    || newest == Some((t, *value))
                    || (newest.is_some_and(|(nt, _)| t < nt) && list.has_stateful_steps());
                if let Some(n) = newest.filter(|(nt, _)| *nt > t) {
                    self.state.input_newest.insert(id, n);
                }
                if !list.is_empty() && !resent {
                    queued.push((id, *value, Arc::clone(list)));
                }
            }
            if queued.is_empty() {
                // Nothing to run: no process host to build (most device traffic).
                continue;
            }
            self.user(userid)?;
            let Some(user) = self.users.get(&userid) else {
                continue;
            };
            let mut host = ShardHost {
                store: &mut *store,
                state: &mut self.state,
                owned: &user.feeds,
                owned_inputs: &user.input_ids,
                tz: user.tz,
                points: Vec::new(),
                published: Vec::new(),
                seeded: Vec::new(),
            };
            let queued_any = true;
            for (id, value, list) in queued {
                match run_list(&list, t, value, Context::Input, &mut host) {
                    Outcome::Done(_) => {}
                    // Once per input and record: a bulk upload runs a list for each of its
                    // rows, and 50,000 lines of the same warning say nothing more than one.
                    Outcome::Aborted { step, key } if warned.insert(id) => {
                        tracing::warn!(
                            input = id,
                            step,
                            key,
                            "process list stopped at an unknown process"
                        );
                    }
                    Outcome::LoopGuard if warned.insert(id) => {
                        tracing::warn!(input = id, "process list loops; it was stopped");
                        if !replaying {
                            self.looping.push(Looping {
                                userid,
                                input: id,
                                list: list.source().to_string(),
                            });
                        }
                    }
                    Outcome::Aborted { .. } | Outcome::LoopGuard => {}
                }
            }
            let points = std::mem::take(&mut host.points);
            seeded.append(&mut host.seeded);
            // Outputs are live values: not sent again when a batch is replayed after a crash.
            if !replaying && queued_any {
                out_published.append(&mut host.published);
                out_feeds.extend(points.iter().map(|p| p.feed));
            }
            let report = store.apply_points(&points)?;
            for (feed, e) in report.refused {
                tracing::warn!(feed, error = %e, "feed write refused");
            }
            self.state.usage.entry(usage_key).or_default().points += points.len() as i64;
        }
        if !seeded.is_empty() {
            // Read from files as the last checkpoint covers them: a replay from that
            // checkpoint must find them in it, whatever the next flush writes.
            self.seeds_before_flush(store, seeded);
        }
        if !out_published.is_empty() {
            // The last value of each topic, in the order of those last values.
            let mut seen = HashSet::new();
            let mut last: Vec<(String, Value)> = out_published
                .into_iter()
                .rev()
                .filter(|(topic, _)| seen.insert(topic.clone()))
                .collect();
            last.reverse();
            for (topic, value) in last {
                // No subscriber (no broker running) is fine.
                let _ = self.outputs.values.send(Output::Published {
                    userid,
                    topic,
                    value,
                });
            }
        }
        if !out_feeds.is_empty() {
            out_feeds.sort_unstable();
            out_feeds.dedup();
            self.send_feed_outputs(userid, &out_feeds);
        }
        if let Some(write) = &record.feed {
            self.write_feed(store, userid, write)?;
            self.state.usage.entry(usage_key).or_default().points += write.points.len() as i64;
            if !replaying {
                self.send_feed_outputs(userid, &[write.feed]);
            }
        }
        Ok(())
    }

    /// Queues `seeds` for the last checkpoint, before the next flush: into the one amend
    /// queued since the last flush, so a flush decodes and encodes the state once however
    /// many records seeded feeds (an import's first values).
    fn seeds_before_flush(
        &mut self,
        store: &mut FeedStore,
        seeds: Vec<(u32, Option<(i64, Value)>)>,
    ) {
        let queued = self
            .pending_seeds
            .as_ref()
            .filter(|shared| Arc::strong_count(shared) > 1);
        let shared = match queued {
            Some(shared) => Arc::clone(shared),
            None => {
                // The amend queued before (if any) was applied or dropped with a checkpoint.
                let shared: Arc<std::sync::Mutex<Vec<FileLast>>> = Arc::default();
                let taken = Arc::clone(&shared);
                store.amend_before_flush(Box::new(move |old| {
                    let seeds =
                        std::mem::take(&mut *taken.lock().unwrap_or_else(|p| p.into_inner()));
                    add_seeds(old, seeds)
                }));
                self.pending_seeds = Some(Arc::clone(&shared));
                shared
            }
        };
        shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(seeds);
    }

    /// Each feed's new last value, for subscribers.
    fn send_feed_outputs(&self, userid: i64, feeds: &[u32]) {
        for &feed in feeds {
            if let Some(&(time, value)) = self.state.feed_last.get(&feed) {
                let _ = self.outputs.values.send(Output::Feed {
                    userid,
                    feed,
                    time,
                    value,
                });
            }
        }
    }

    /// `feed/insert` points: only into the user's own feed; within one request times must not go
    /// back (an older point is dropped, as emoncms drops it).
    fn write_feed(
        &mut self,
        store: &mut FeedStore,
        userid: i64,
        write: &FeedWrite,
    ) -> Result<(), IngestError> {
        if !self.user(userid)?.feeds.contains(&write.feed) {
            tracing::warn!(
                userid,
                feed = write.feed,
                "write to a feed the user does not own skipped"
            );
            return Ok(());
        }
        if let Some(start) = write.start
            && let Ok(Feed::Fixed(f)) = store.feed(write.feed)
        {
            f.start_empty_at(start);
        }
        let mut points: Vec<Point> = Vec::with_capacity(write.points.len());
        for &(time, value) in &write.points {
            if points.last().is_some_and(|p| time < p.time) {
                continue;
            }
            points.push(Point {
                feed: write.feed,
                time,
                value,
                join: false,
            });
        }
        let report = store.apply_points(&points)?;
        if !report.refused.is_empty() {
            for (feed, e) in report.refused {
                tracing::warn!(feed, error = %e, "feed write refused");
            }
            // Only the points before the refused one were stored: the feed's last value is
            // the last of those, not the write's last.
            if let Ok(Feed::Fixed(f)) = store.feed(write.feed)
                && let Ok(Some((time, value))) = f.last_value()
            {
                self.state
                    .feed_last
                    .insert(write.feed, (time as i64, value.map(f64::from)));
            }
            return Ok(());
        }
        let last = if write.single {
            write.points.last().map(|&(_, v)| (write.now, v))
        } else {
            let previous = self.state.feed_last.get(&write.feed).map(|l| l.0);
            write
                .points
                .last()
                .filter(|(t, _)| previous.is_none_or(|p| *t >= p))
                .copied()
        };
        if let Some(last) = last {
            self.state.feed_last.insert(write.feed, last);
        }
        Ok(())
    }
}

/// The process engine's view of a shard.
struct ShardHost<'a> {
    store: &'a mut FeedStore,
    state: &'a mut ShardState,
    /// Feeds of the list's owner; any other feed id is treated as missing.
    owned: &'a HashSet<u32>,
    /// Inputs of the list's owner; any other input id reads as missing.
    owned_inputs: &'a HashSet<i64>,
    tz: Tz,
    points: Vec<Point>,
    published: Vec<(String, Value)>,
    /// Feeds' last values read from their files (added to `state.feed_seed`).
    seeded: Vec<FileLast>,
}

/// A feed and its last value read from its file (none if the file had none).
type FileLast = (u32, Option<(i64, Value)>);

/// A checkpointed state (`old`) with `seeds` added where it has no last value for the feed:
/// they were read from the files that checkpoint covers. `None` (written as it is) if the
/// state does not decode, which opening the store would have refused.
fn add_seeds(old: &[u8], seeds: Vec<FileLast>) -> Option<Vec<u8>> {
    let mut state = ShardState::decode(old).ok()?;
    for (feed, seed) in seeds {
        if !state.feed_last.contains_key(&feed) {
            state.feed_seed.entry(feed).or_insert(seed);
        }
    }
    Some(state.encode())
}

impl Host for ShardHost<'_> {
    fn tz(&self) -> Tz {
        self.tz
    }

    fn feed_post(&mut self, feed: u32, update_time: i64, feed_time: i64, value: Value, join: bool) {
        if !self.owned.contains(&feed) {
            return;
        }
        // A result that is not finite (a large value scaled up) is missing, the rule for every
        // value, so the checkpointed state is exactly the live one.
        let value = finite(value);
        self.points.push(Point {
            feed,
            time: feed_time,
            value,
            join,
        });
        self.state.feed_last.insert(feed, (update_time, value));
        if !self.state.feed_seed.is_empty() {
            // The last value answers from now on.
            self.state.feed_seed.remove(&feed);
        }
    }

    fn feed_last(&mut self, feed: u32) -> Option<(i64, Value)> {
        if !self.owned.contains(&feed) {
            return None;
        }
        if let Some(&last) = self.state.feed_last.get(&feed) {
            return Some(last);
        }
        if let Some(&seed) = self.state.feed_seed.get(&feed) {
            return seed;
        }
        // Not written since the state began: the engine's last point (e.g. an imported feed),
        // kept in the state from now on (see `ShardState::feed_seed`).
        let feed_ref: &Feed = self.store.feed(feed).ok()?;
        let last = query::last_value(feed_ref).ok()?;
        self.state.feed_seed.insert(feed, last);
        self.seeded.push((feed, last));
        last
    }

    fn input_last(&mut self, input: u32) -> Option<Value> {
        let id = i64::from(input);
        if !self.owned_inputs.contains(&id) {
            return None;
        }
        self.state.input_last.get(&id).map(|l| l.1)
    }

    fn feed_exists(&mut self, feed: u32) -> bool {
        self.owned.contains(&feed)
            && (self.state.feed_last.contains_key(&feed) || self.store.feed(feed).is_ok())
    }

    // Process state is kept per feed, so only the owner's lists may read or change it (a list
    // imported from emoncms may still name another user's feed).
    fn state(&self, kind: StateKind, feed: u32) -> Option<(i64, Value)> {
        if !self.owned.contains(&feed) {
            return None;
        }
        self.state.process.get(&(kind, feed)).copied()
    }

    fn set_state(&mut self, kind: StateKind, feed: u32, time: i64, value: Value) {
        if !self.owned.contains(&feed) {
            return;
        }
        self.state
            .process
            .insert((kind, feed), (time, finite(value)));
    }

    fn publish(&mut self, topic: &str, value: Value) {
        self.published.push((topic.to_string(), finite(value)));
    }

    fn source_value(&mut self, _feed: u32) -> Value {
        None
    }
}

/// The process engine's view while computing a virtual feed: only source values exist.
struct VirtualHost<'a> {
    sources: &'a HashMap<u32, HashMap<i64, Value>>,
    t: i64,
    tz: Tz,
}

impl Host for VirtualHost<'_> {
    fn tz(&self) -> Tz {
        self.tz
    }
    fn feed_post(
        &mut self,
        _feed: u32,
        _update_time: i64,
        _feed_time: i64,
        _value: Value,
        _join: bool,
    ) {
    }
    fn feed_last(&mut self, _feed: u32) -> Option<(i64, Value)> {
        None
    }
    fn feed_exists(&mut self, _feed: u32) -> bool {
        false
    }
    fn input_last(&mut self, _input: u32) -> Option<Value> {
        None
    }
    fn state(&self, _kind: StateKind, _feed: u32) -> Option<(i64, Value)> {
        None
    }
    fn set_state(&mut self, _kind: StateKind, _feed: u32, _time: i64, _value: Value) {}
    fn publish(&mut self, _topic: &str, _value: Value) {}
    fn source_value(&mut self, feed: u32) -> Value {
        self.sources
            .get(&feed)
            .and_then(|m| m.get(&self.t))
            .copied()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ynni_core::catalog::NewUser;

    use super::*;
    use crate::batch::Decoded;

    const T: i64 = 1_700_000_000;

    /// A catalog with one user, feed directories, and a runtime for the workers' queries.
    /// Fields drop in order: the catalog before the runtime it was opened on.
    struct Rig {
        catalog: Catalog,
        userid: i64,
        outputs: super::super::router::Outputs,
        dir: tempfile::TempDir,
        rt: tokio::runtime::Runtime,
    }

    impl Rig {
        fn new() -> Self {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let dir = tempfile::tempdir().expect("tempdir");
            for sub in ["phpfina", "phptimeseries"] {
                std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
            }
            let (catalog, userid) = rt.block_on(async {
                let catalog = Catalog::open_sqlite(&dir.path().join("catalog.sqlite"))
                    .await
                    .expect("catalog");
                let user = NewUser {
                    username: "alice".into(),
                    email: "a@example.com".into(),
                    password_hash: "$x".into(),
                    timezone: "UTC".into(),
                    admin: false,
                };
                let user = catalog
                    .create_user(&user, false)
                    .await
                    .expect("db")
                    .expect("created");
                (catalog, user.id)
            });
            let outputs = super::super::router::Outputs::new(16);
            Self {
                catalog,
                userid,
                outputs,
                dir,
                rt,
            }
        }

        fn open(&self) -> Worker {
            let cfg = RouterConfig {
                workers: 1,
                vshards: 1,
                queue: 16,
                max_nodes: 32,
                store: ynni_storage::StoreConfig::default(),
                fixed_dir: self.dir.path().join("phpfina"),
                variable_dir: self.dir.path().join("phptimeseries"),
                wal_root: self.dir.path().join("wal"),
                input_outputs: false,
                per_vshard: false,
            };
            Worker::open(
                0,
                &cfg,
                self.catalog.clone(),
                self.rt.handle().clone(),
                self.outputs.clone(),
                None,
                Default::default(),
            )
            .expect("worker")
        }

        /// A variable-interval feed's row (its file is made on the worker's store).
        fn variable_feed(&self, name: &str) -> u32 {
            let id = self
                .rt
                .block_on(self.catalog.create_feed(self.userid, name, "", 2, ""))
                .expect("feed");
            u32::try_from(id).expect("id")
        }

        /// The input `house/<name>` with the stored list `list`; returns its id.
        fn house_input(&self, name: &str, list: &str) -> i64 {
            self.rt.block_on(async {
                let input = self
                    .catalog
                    .create_input(self.userid, "house", name)
                    .await
                    .expect("input");
                self.catalog
                    .set_input_process_list(input.id, list)
                    .await
                    .expect("list");
                input.id
            })
        }

        /// A feed named `name` and the input `node/name` whose list is `process` applied to
        /// it (`4` is power to kWh, `1` log to feed); returns the feed's id.
        fn feed_fed_by(&self, node: &str, name: &str, process: u32) -> u32 {
            self.rt.block_on(async {
                let feed = self
                    .catalog
                    .create_feed(self.userid, name, "", 5, "")
                    .await
                    .expect("feed");
                let input = self
                    .catalog
                    .create_input(self.userid, node, name)
                    .await
                    .expect("input");
                self.catalog
                    .set_input_process_list(input.id, &format!("{process}:{feed}"))
                    .await
                    .expect("list");
                u32::try_from(feed).expect("id")
            })
        }

        fn inputs(&self) -> Vec<(String, String)> {
            let mut rows: Vec<(String, String)> = self
                .rt
                .block_on(self.catalog.inputs_for_user(self.userid))
                .expect("inputs")
                .into_iter()
                .map(|r| (r.nodeid, r.name))
                .collect();
            rows.sort();
            rows
        }
    }

    /// Runs submissions as one group and returns each outcome (the worker answers after
    /// processing).
    fn group(w: &mut Worker, subs: Vec<Submission>) -> Vec<Result<(), IngestError>> {
        let mut answers = Vec::new();
        let mut jobs = Vec::new();
        for s in subs {
            let (tx, rx) = tokio::sync::oneshot::channel();
            jobs.push((s, tx));
            answers.push(rx);
        }
        let logged = w.log(jobs);
        w.apply(logged);
        answers
            .into_iter()
            .map(|mut rx| rx.try_recv().unwrap_or(Err(IngestError::Stopped)))
            .collect()
    }

    fn submit(w: &mut Worker, s: Submission) -> Result<(), IngestError> {
        group(w, vec![s]).pop().unwrap_or(Err(IngestError::Stopped))
    }

    /// Posts `values` (name, value) of node `house` at `time` for `userid`.
    fn post_house(w: &mut Worker, userid: i64, time: i64, values: &[(&str, f64)]) {
        let sub = Submission {
            userid,
            batches: vec![Decoded {
                time,
                node: "house".into(),
                values: values
                    .iter()
                    .map(|(n, v)| (n.to_string(), Some(*v)))
                    .collect(),
            }],
            http: true,
        };
        submit(w, sub).expect("stored");
    }

    /// The times a variable-interval feed holds.
    fn variable_times(w: &mut Worker, feed: u32) -> Vec<i64> {
        match w.store.feed(feed).expect("feed") {
            Feed::Variable(f) => f
                .read_range(0, u32::MAX)
                .expect("read")
                .into_iter()
                .map(|(t, _)| i64::from(t))
                .collect(),
            Feed::Fixed(_) => panic!("a variable feed"),
        }
    }

    /// One HTTP submission of `a`/`x` = 1 at `T`.
    fn one_value(userid: i64) -> Submission {
        Submission {
            userid,
            batches: vec![Decoded {
                time: T,
                node: "a".into(),
                values: vec![("x".into(), Some(1.0))],
            }],
            http: true,
        }
    }

    fn batch(node: &str, names: &[&str]) -> Decoded {
        Decoded {
            time: T,
            node: node.into(),
            values: names.iter().map(|n| (n.to_string(), Some(1.0))).collect(),
        }
    }

    #[test]
    fn every_submission_is_held_to_the_limits_before_it_is_logged() {
        let rig = Rig::new();
        let sub = |batches: Vec<Decoded>, http: bool| Submission {
            userid: rig.userid,
            batches,
            http,
        };
        let mut w = rig.open();

        // The 100,000-value post is refused by the default limits, whoever builds it.
        let names: Vec<String> = (0..100_000).map(|i| format!("k{i}")).collect();
        let huge = Decoded {
            time: T,
            node: "a".into(),
            values: names.iter().map(|n| (n.clone(), Some(1.0))).collect(),
        };
        match submit(&mut w, sub(vec![huge], true)) {
            Err(e @ IngestError::ValueLimit { limit: 50_000 }) => assert!(e.is_limit()),
            other => panic!("expected the value limit, got {other:?}"),
        }

        w.core.limits = Limits {
            nodes: 2,
            inputs_per_node: 3,
            new_inputs_per_request: 2,
            values_per_request: 6,
        };
        // MQTT is held to the node limit like HTTP.
        submit(&mut w, sub(vec![batch("a", &["x"])], false)).expect("first node");
        submit(&mut w, sub(vec![batch("b", &["x"])], false)).expect("second node");
        match submit(&mut w, sub(vec![batch("c", &["x"])], false)) {
            Err(IngestError::NodeLimit { limit: 2, node }) => assert_eq!(node, "c"),
            other => panic!("expected the node limit, got {other:?}"),
        }
        submit(&mut w, sub(vec![batch("a", &["y", "z"])], true)).expect("room on node a");
        match submit(&mut w, sub(vec![batch("a", &["x", "w"])], false)) {
            Err(e @ IngestError::InputLimit { .. }) => assert_eq!(
                e.to_string(),
                "Error: Reached the maximal allowed number of inputs for node 'a', limit is 3. Input 'w' was ignored."
            ),
            other => panic!("expected the input limit, got {other:?}"),
        }
        // Existing inputs are always accepted.
        submit(&mut w, sub(vec![batch("a", &["x", "y", "z"])], false)).expect("existing");
        // Inputs that an earlier submission of the same group adds count.
        let answers = group(
            &mut w,
            vec![
                sub(vec![batch("b", &["p"])], true),
                sub(vec![batch("b", &["q", "r"])], true),
            ],
        );
        assert!(answers[0].is_ok(), "{:?}", answers[0]);
        match &answers[1] {
            Err(IngestError::InputLimit { node, name, .. }) => {
                assert_eq!((node.as_str(), name.as_str()), ("b", "r"))
            }
            other => panic!("expected the input limit, got {other:?}"),
        }
        w.core.limits.inputs_per_node = 100;
        match submit(&mut w, sub(vec![batch("b", &["s", "t", "u"])], true)) {
            Err(e @ IngestError::NewInputLimit { .. }) => assert_eq!(
                e.to_string(),
                "Error: Reached the maximal allowed number of new inputs in one request, limit is 2. Input 'u' was ignored."
            ),
            other => panic!("expected the new-input limit, got {other:?}"),
        }
        match submit(
            &mut w,
            sub(
                vec![
                    batch("a", &["x", "y", "z"]),
                    batch("b", &["x", "p", "s", "t"]),
                ],
                false,
            ),
        ) {
            Err(IngestError::ValueLimit { limit: 6 }) => {}
            other => panic!("expected the value limit, got {other:?}"),
        }

        let created: Vec<(String, String)> =
            [("a", "x"), ("a", "y"), ("a", "z"), ("b", "p"), ("b", "x")]
                .iter()
                .map(|(n, i)| (n.to_string(), i.to_string()))
                .collect();
        assert_eq!(rig.inputs(), created);
        // Refused submissions were never logged: a restart replays the five accepted ones.
        drop(w);
        let again = rig.open();
        assert_eq!(again.store.replayed_records(), 5);
    }

    /// A name longer than the catalog keeps is refused before it is logged: logged, it would
    /// be refused by the catalog after, and stop the shard.
    #[test]
    fn names_past_the_limit_are_refused_before_they_are_logged() {
        let rig = Rig::new();
        let mut w = rig.open();
        let at = |name: String, node: &str| Submission {
            userid: rig.userid,
            batches: vec![Decoded {
                time: T,
                node: node.into(),
                values: vec![("ok".into(), Some(1.0)), (name, Some(2.0))],
            }],
            http: true,
        };
        let longest = "é".repeat(super::super::router::MAX_NAME_CHARS);
        submit(&mut w, at(longest.clone(), "a")).expect("at the limit");
        for (name, node) in [
            (format!("{longest}x"), "a".to_string()),
            ("fine".to_string(), format!("{longest}x")),
        ] {
            match submit(&mut w, at(name, &node)) {
                Err(IngestError::NameLimit { limit, name }) => {
                    assert_eq!(limit, 256);
                    assert_eq!(name.chars().count(), 32);
                }
                other => panic!("expected the name limit, got {other:?}"),
            }
        }
        let names: Vec<String> = rig.inputs().into_iter().map(|(_, n)| n).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_request_may_create_many_inputs_up_to_the_limit() {
        let rig = Rig::new();
        let mut w = rig.open();
        let names = |prefix: &str, n: usize| -> Vec<String> {
            (0..n).map(|i| format!("{prefix}{i}")).collect()
        };
        let batch_of = |node: &str, names: &[String]| Decoded {
            time: T,
            node: node.into(),
            values: names.iter().map(|n| (n.clone(), Some(1.0))).collect(),
        };
        let (a, b) = (names("a", 600), names("b", 401));
        let over = Submission {
            userid: rig.userid,
            batches: vec![batch_of("n1", &a), batch_of("n2", &b)],
            http: true,
        };
        match submit(&mut w, over) {
            Err(IngestError::NewInputLimit { limit, .. }) => {
                assert_eq!(limit, crate::shard::MAX_NEW_INPUTS_PER_REQUEST)
            }
            other => panic!("expected the new-input limit, got {other:?}"),
        }
        let at = Submission {
            userid: rig.userid,
            batches: vec![batch_of("n1", &a), batch_of("n2", &b[..400])],
            http: true,
        };
        submit(&mut w, at).expect("a thousand new inputs in one request");
        assert_eq!(rig.inputs().len(), 1000);
        assert_eq!(w.core.state.input_last.len(), 1000);
        // One more on n1 is fine, and posting all of them again creates nothing.
        let again = Submission {
            userid: rig.userid,
            batches: vec![batch_of("n1", &names("a", 601))],
            http: false,
        };
        submit(&mut w, again).expect("existing inputs and one new");
        assert_eq!(rig.inputs().len(), 1001);
    }

    #[test]
    fn a_failed_store_refuses_writes_with_retry_after_and_still_answers_reads() {
        let rig = Rig::new();
        let mut w = rig.open();
        let sub = |v: f64| Submission {
            userid: rig.userid,
            batches: vec![Decoded {
                time: T,
                node: "a".into(),
                values: vec![("x".into(), Some(v))],
            }],
            http: true,
        };
        submit(&mut w, sub(1.0)).expect("stored");
        w.store.poison();
        match submit(&mut w, sub(2.0)) {
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                assert_eq!(e.retry_after(), Some(60));
            }
            Ok(()) => panic!("a failed store took a write"),
        }
        let last = w.core.input_last(rig.userid);
        assert_eq!(
            last.values().copied().collect::<Vec<_>>(),
            vec![(T, Some(1.0))]
        );
    }

    /// Runs one statement on the rig's catalog file over a connection of its own.
    fn on_catalog(rig_dir: &std::path::Path, handle: &Handle, sql: &'static str) {
        use sqlx::Connection;
        let path = rig_dir.join("catalog.sqlite");
        handle.block_on(async {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("connect");
            sqlx::query(sql).execute(&mut c).await.expect("statement");
        });
    }

    /// A catalog that fails for a moment after a record was logged delays the record's
    /// processing; it does not stop the shard until a restart (it used to poison the store).
    #[test]
    fn a_catalog_failing_for_a_moment_delays_the_shard_and_poisons_nothing() {
        let rig = Rig::new();
        let mut w = rig.open();
        let sub = |name: &str| Submission {
            userid: rig.userid,
            batches: vec![Decoded {
                time: T,
                node: "a".into(),
                values: vec![(name.into(), Some(2.0))],
            }],
            http: true,
        };
        submit(&mut w, sub("x")).expect("stored");
        // Creating input y fails while the table is away, then succeeds once it is back.
        let dir = rig.dir.path().to_path_buf();
        on_catalog(
            &dir,
            rig.rt.handle(),
            "ALTER TABLE inputs RENAME TO inputs_away",
        );
        let handle = rig.rt.handle().clone();
        let back = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            on_catalog(&dir, &handle, "ALTER TABLE inputs_away RENAME TO inputs");
        });
        submit(&mut w, sub("y")).expect("stored once the catalog was back");
        back.join().expect("renamed back");
        assert_eq!(
            rig.inputs(),
            vec![("a".into(), "x".into()), ("a".into(), "y".into())]
        );
        submit(&mut w, sub("z")).expect("the store still takes writes");
        assert_eq!(w.core.input_last(rig.userid).len(), 3);
        // A catalog that stays away past the patience poisons the store, as before.
        drop(w);
        let mut w = rig.open();
        assert_eq!(w.core.input_last(rig.userid).len(), 3, "replayed");
        on_catalog(rig.dir.path(), rig.rt.handle(), "DROP TABLE inputs");
        let started = std::time::Instant::now();
        let answers = group(&mut w, vec![sub("w"), sub("u")]);
        let waited = started.elapsed();
        assert!(waited >= CATALOG_PATIENCE / 2, "tried again");
        assert!(
            waited < CATALOG_PATIENCE * 3 / 2,
            "the group's second record waited again: {waited:?}"
        );
        for answer in answers {
            assert!(answer.is_ok(), "the records are durable: {answer:?}");
        }
        match submit(&mut w, sub("v")) {
            Err(e) => assert!(e.is_retryable(), "{e}"),
            Ok(()) => panic!("a poisoned store took a write"),
        }
    }

    /// New process lists replace a user's old ones only after a checkpoint: until one can be
    /// written, the old lists stay (a replay would otherwise run records logged under them
    /// with the new ones).
    #[test]
    fn process_lists_are_reloaded_only_after_a_checkpoint() {
        let rig = Rig::new();
        let sub = || one_value(rig.userid);
        let mut w = rig.open();
        submit(&mut w, sub()).expect("stored");
        assert!(w.core.users.contains_key(&rig.userid), "lists loaded");
        drop(w.begin(vec![Job::Reload(rig.userid)]));
        assert!(!w.core.users.contains_key(&rig.userid), "reloaded");
        assert!(w.reloads_waiting.is_empty());
        drop(w);

        let mut w = rig.open();
        submit(&mut w, sub()).expect("stored");
        w.store.poison();
        drop(w.begin(vec![Job::Reload(rig.userid), Job::Reload(rig.userid)]));
        assert!(
            w.core.users.contains_key(&rig.userid),
            "no checkpoint: the old lists stay"
        );
        assert_eq!(w.reloads_waiting, vec![rig.userid]);
        drop(w.begin(Vec::new()));
        assert_eq!(w.reloads_waiting, vec![rig.userid], "tried again, kept");
    }

    /// Settling a user, before a change to their lists is committed, checkpoints the records
    /// of theirs applied so far (so a crash before the reload replays none of them under the
    /// new lists), and answers at once when the last checkpoint already covers them.
    #[test]
    fn settling_a_user_checkpoints_their_applied_records_first() {
        let rig = Rig::new();
        let mut w = rig.open();
        let settle = |w: &mut Worker| {
            let (reply, mut answer) = tokio::sync::oneshot::channel();
            let begun = w.begin(vec![Job::Settle(rig.userid, reply)]);
            w.finish(begun);
            answer.try_recv().expect("answered")
        };
        submit(&mut w, one_value(rig.userid)).expect("stored");
        let logged = w.store.applied_lsn();
        assert!(w.store.checkpoint_lsn() < logged, "not covered yet");
        settle(&mut w).expect("settled");
        assert_eq!(w.store.checkpoint_lsn(), logged, "covered by a checkpoint");
        // Covered already: no checkpoint is needed (none could be written here).
        w.store.poison();
        settle(&mut w).expect("nothing to do");
        drop(w);
        // A record past it that cannot be checkpointed: the change must wait.
        let mut w = rig.open();
        submit(&mut w, one_value(rig.userid)).expect("stored");
        w.store.poison();
        assert!(settle(&mut w).is_err(), "no checkpoint, no settling");
    }

    /// A user with nothing in the log past the last checkpoint has their lists reloaded at
    /// once, without a checkpoint (here none could be written); one with a record past it
    /// waits for one, as does everyone after an open that replayed records.
    #[test]
    fn a_reload_checkpoints_only_when_the_users_records_need_it() {
        let rig = Rig::new();
        let sub = || one_value(rig.userid);
        let mut w = rig.open();
        submit(&mut w, sub()).expect("stored");
        w.store.flush(&w.core.state.encode()).expect("checkpoint");
        w.store.poison();
        drop(w.begin(vec![Job::Reload(rig.userid)]));
        assert!(
            !w.core.users.contains_key(&rig.userid),
            "covered by the checkpoint: reloaded without one"
        );
        drop(w);
        // Reopened: the checkpoint covered everything. A record past it, then reopened: it
        // is replayed, and no checkpoint covers it yet.
        let mut w = rig.open();
        assert!(w.replayed_to.is_none(), "the checkpoint covered everything");
        submit(&mut w, sub()).expect("stored");
        drop(w);
        let mut w = rig.open();
        assert!(w.replayed_to.is_some(), "a record was replayed");
        w.core.user(rig.userid).expect("loaded");
        w.store.poison();
        drop(w.begin(vec![Job::Reload(rig.userid)]));
        assert!(
            w.core.users.contains_key(&rig.userid),
            "replayed records not covered yet: the old lists stay"
        );
    }

    /// A list naming another user's feed (as one imported from emoncms may) neither reads nor
    /// changes that feed's process state, while the same step on the owner's feed does.
    #[test]
    fn process_state_is_kept_only_for_the_list_owners_feeds() {
        let rig = Rig::new();
        let (mine, theirs, input) = rig.rt.block_on(async {
            let bob = rig
                .catalog
                .create_user(
                    &NewUser {
                        username: "bob".into(),
                        email: "b@example.com".into(),
                        password_hash: "$x".into(),
                        timezone: "UTC".into(),
                        admin: false,
                    },
                    false,
                )
                .await
                .expect("db")
                .expect("created");
            let mine = rig
                .catalog
                .create_feed(rig.userid, "m", "t", 5, "")
                .await
                .expect("feed");
            let theirs = rig
                .catalog
                .create_feed(bob.id, "b", "t", 5, "")
                .await
                .expect("feed");
            let input = rig
                .catalog
                .create_input(rig.userid, "a", "x")
                .await
                .expect("input");
            // ratechange (15) on each feed.
            let list = format!("15:{mine},15:{theirs}");
            rig.catalog
                .set_input_process_list(input.id, &list)
                .await
                .expect("list");
            (mine as u32, theirs as u32, input.id)
        });
        let mut w = rig.open();
        for (i, v) in [1.0, 3.0].into_iter().enumerate() {
            let sub = Submission {
                userid: rig.userid,
                batches: vec![Decoded {
                    time: T + i as i64 * 10,
                    node: "a".into(),
                    values: vec![("x".into(), Some(v))],
                }],
                http: true,
            };
            submit(&mut w, sub).expect("stored");
        }
        assert!(input > 0);
        let has = |f: u32| {
            w.core
                .state
                .process
                .contains_key(&(StateKind::RateChange, f))
        };
        assert!(has(mine), "the owner's feed keeps its state");
        assert!(!has(theirs), "another user's feed is left alone");
    }

    /// A list that loops is disabled once it does, as emoncms disables it: its first packet runs
    /// up to the guard, the stored list gains `process__error_found:0,` in front, and later
    /// packets run nothing. Lists that do not loop are left alone.
    #[test]
    fn a_looping_list_is_disabled() {
        let rig = Rig::new();
        let log = rig.variable_feed("log");
        let looping = rig.house_input("loops", &format!("1:{log},52:1"));
        let fine = rig.house_input("fine", "2:2");
        let mut w = rig.open();
        w.store.create_variable(log).expect("file");
        for t in [T, T + 10, T + 20] {
            post_house(&mut w, rig.userid, t, &[("loops", 1.0), ("fine", 1.0)]);
        }
        let list = |input: i64| {
            rig.rt
                .block_on(rig.catalog.input_of(rig.userid, input))
                .expect("db")
                .expect("input")
                .process_list
        };
        assert_eq!(
            list(looping),
            format!("process__error_found:0,1:{log},52:1")
        );
        assert_eq!(list(fine), "2:2");
        // The first packet ran up to the guard; the later ones ran nothing.
        assert_eq!(variable_times(&mut w, log), vec![T]);
        post_house(&mut w, rig.userid, T + 30, &[("loops", 1.0)]);
        assert_eq!(
            variable_times(&mut w, log),
            vec![T],
            "disabled: nothing logged"
        );
    }

    /// One packet whose time is far ahead of its arrival (a millisecond timestamp, a clock set
    /// years ahead) does not stop its input's list for every packet after it: the resend rule
    /// (older than the newest seen, for a list that keeps state) forgets such a newest time. A
    /// packet older than a sane newest time is still taken for a resend.
    #[test]
    fn a_time_from_the_future_does_not_stop_an_inputs_list() {
        let rig = Rig::new();
        let (log, kwh) = (rig.variable_feed("log"), rig.variable_feed("kwh"));
        rig.house_input("power", &format!("1:{log},4:{kwh}"));
        let mut w = rig.open();
        w.store.create_variable(log).expect("file");
        w.store.create_variable(kwh).expect("file");
        let future = now_secs() + 10 * 365 * 86_400;
        for t in [T, T + 10, future, T + 20, T + 30, T + 25] {
            post_house(&mut w, rig.userid, t, &[("power", 100.0)]);
        }
        assert_eq!(
            variable_times(&mut w, log),
            vec![T, T + 10, T + 20, T + 30, future]
        );

        // A device whose clock is always an hour fast keeps the resend rule: its newest time
        // is forgotten only for a packet that is itself on time.
        let fast = now_secs() + 3_600;
        for t in [fast, fast + 10, fast] {
            post_house(&mut w, rig.userid, t, &[("power", 100.0)]);
        }
        let newest: Vec<i64> = w.core.state.input_newest.values().map(|v| v.0).collect();
        assert_eq!(newest, vec![fast + 10], "the resent packet did not run");
    }

    /// A kWh feed with data of its own (imported) that a list starts accumulating into, and a
    /// kill after the flush wrote the feed's file but before its checkpoint: the replay must
    /// start from the value the live shard read, not from the file's newer total.
    #[test]
    fn a_kill_inside_a_flush_does_not_count_energy_twice() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let rig = Rig::new();
        let kwh = rig.feed_fed_by("house", "power", 4);
        let mut w = rig.open();
        w.store.create_fixed(kwh, 10).expect("feed file");
        // The imported total: in the file, not in the state.
        w.store
            .write(&[Point {
                feed: kwh,
                time: T - 10,
                value: Some(100.0),
                join: false,
            }])
            .expect("import");
        w.store.flush(&w.core.state.encode()).expect("checkpoint");
        for i in 0..2 {
            let sub = Submission {
                userid: rig.userid,
                batches: vec![Decoded {
                    time: T + 10 * i,
                    node: "house".into(),
                    values: vec![("power".into(), Some(3600.0))],
                }],
                http: true,
            };
            submit(&mut w, sub).expect("stored");
        }
        let live = w.core.state.feed_last[&kwh];
        assert_eq!(live.0, T + 10);
        assert!((live.1.expect("value") - 100.02).abs() < 1e-9, "{live:?}");
        let live_slots = feed_slots(&mut w, &[kwh]);

        // The guard refuses once the flush has written the feed's file: the checkpoint after
        // it is not written, as when the process is killed there.
        let dat = ynni_storage::fixed::dat_path(&rig.dir.path().join("phpfina"), kwh);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        w.store.set_guard(Arc::new(move || {
            let ahead = std::fs::metadata(&dat).is_ok_and(|m| m.len() > 4);
            s.store(s.load(Ordering::SeqCst) || ahead, Ordering::SeqCst);
            !s.load(Ordering::SeqCst)
        }));
        assert!(w.store.flush(&w.core.state.encode()).is_err());
        assert!(stop.load(Ordering::SeqCst), "the file was written");
        drop(w);

        let mut again = rig.open();
        assert_eq!(again.store.replayed_records(), 2);
        assert_eq!(bits(&again.core.state).2, {
            let mut m = BTreeMap::new();
            m.insert(kwh, (live.0, live.1.map(f64::to_bits)));
            m
        });
        assert_eq!(feed_slots(&mut again, &[kwh]), live_slots);
    }

    /// A feed whose row feed/create added but whose files a stop kept from being made gets
    /// them when its shard opens (with the interval the row asked for), and from then on stores
    /// what its process list sends; a row no feed/create made (an import's) is left alone.
    #[test]
    fn feeds_a_stop_left_without_files_are_finished_at_open() {
        let rig = Rig::new();
        let (fixed, variable, imported, made, other) = rig.rt.block_on(async {
            let c = &rig.catalog;
            let fixed = c
                .create_feed_with_files(rig.userid, "power", "", 5, "W", 30)
                .await
                .expect("row");
            let variable = c
                .create_feed_with_files(rig.userid, "events", "", 2, "", 0)
                .await
                .expect("row");
            let imported = c
                .create_feed(rig.userid, "imported", "", 5, "")
                .await
                .expect("row");
            // Files made before the stop (kept), and files the row did not ask for (refused).
            let made = c
                .create_feed_with_files(rig.userid, "made", "", 5, "", 10)
                .await
                .expect("row");
            let other = c
                .create_feed_with_files(rig.userid, "other", "", 5, "", 60)
                .await
                .expect("row");
            let input = c
                .create_input(rig.userid, "house", "power")
                .await
                .expect("input");
            c.set_input_process_list(input.id, &format!("1:{fixed},1:{variable}"))
                .await
                .expect("list");
            (fixed, variable, imported, made, other)
        });
        let (fixed, variable) = (fixed as u32, variable as u32);
        let phpfina = rig.dir.path().join("phpfina");
        for id in [made, other] {
            ynni_storage::fixed::FixedFeed::create(&phpfina, id as u32, 10, 1).expect("files");
        }
        assert!(!ynni_storage::fixed::exists(&phpfina, fixed));

        let mut w = rig.open();
        post_house(&mut w, rig.userid, T, &[("power", 250.0)]);
        match w.store.feed(fixed).expect("made") {
            Feed::Fixed(f) => assert_eq!(f.meta().interval, 30),
            Feed::Variable(_) => panic!("a fixed feed was made variable"),
        }
        let last = |w: &mut Worker, id: u32| {
            query::last_value(w.store.feed(id).expect("feed")).expect("read")
        };
        assert_eq!(last(&mut w, fixed).map(|p| p.1), Some(Some(250.0)));
        assert_eq!(last(&mut w, variable).map(|p| p.1), Some(Some(250.0)));
        assert!(!ynni_storage::fixed::exists(&phpfina, imported as u32));
        let pending = rig
            .rt
            .block_on(rig.catalog.feeds_with_files_pending())
            .expect("db");
        assert_eq!(
            pending.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![other],
            "only the row whose files differ waits"
        );
        match w.store.feed(other as u32).expect("files") {
            Feed::Fixed(f) => assert_eq!(f.meta().interval, 10, "left as they were"),
            Feed::Variable(_) => panic!("changed engine"),
        }
        assert!(ynni_storage::fixed::exists(&phpfina, made as u32));
    }

    /// Only the owner's export writes the points in memory first, and exports make the shard
    /// flush at most once per `EXPORT_FLUSH_EVERY`.
    #[test]
    fn exports_flush_only_for_the_owner_and_not_too_often() {
        let rig = Rig::new();
        let mut w = rig.open();
        w.store.create_fixed(1, 10).expect("feed file");
        let point = |t: i64| Point {
            feed: 1,
            time: t,
            value: Some(1.0),
            join: false,
        };
        let export = |w: &mut Worker, fresh: bool| match w.feed_op(FeedOp::Export {
            id: 1,
            offset: 0,
            fresh,
        }) {
            Ok(FeedAnswer::File(span)) => span.len,
            other => panic!("{other:?}"),
        };
        w.store.write(&[point(T)]).expect("write");
        assert_eq!(
            export(&mut w, false),
            0,
            "a public reader gets the file as it is"
        );
        assert!(w.store.is_dirty(1).expect("feed"));
        assert_eq!(
            export(&mut w, true),
            4,
            "the owner's export writes it first"
        );
        w.store.write(&[point(T + 10)]).expect("write");
        assert_eq!(export(&mut w, true), 4, "not again so soon");
        assert!(w.store.is_dirty(1).expect("feed"));
        w.export_flushed = w
            .export_flushed
            .and_then(|at| at.checked_sub(EXPORT_FLUSH_EVERY));
        assert_eq!(export(&mut w, true), 8);
    }

    /// A bulk upload's live values go out once per input, its last, not once per row: the
    /// outputs channel is every user's.
    #[test]
    fn a_bulk_upload_sends_each_inputs_last_value_once() {
        let rig = Rig::new();
        // v0 logs to a feed: its value goes out once too.
        let feed = rig.feed_fed_by("house", "v0", 1);
        let mut w = rig.open();
        w.store.create_fixed(feed, 10).expect("feed file");
        w.core.input_outputs = true;
        let mut rx = rig.outputs.inputs.subscribe();
        let mut values = rig.outputs.values.subscribe();
        let batches = (0..50)
            .map(|row| Decoded {
                time: T + row,
                node: "house".into(),
                values: (0..10)
                    .map(|k| (format!("v{k}"), Some((row * 10 + k) as f64)))
                    .collect(),
            })
            .collect();
        let sub = Submission {
            userid: rig.userid,
            batches,
            http: true,
        };
        submit(&mut w, sub).expect("stored");
        let mut inputs = BTreeMap::new();
        let mut feeds = Vec::new();
        while let Ok(out) = rx.try_recv() {
            match out {
                Output::Input {
                    name, time, value, ..
                } => {
                    assert!(inputs.insert(name, (time, value)).is_none(), "sent twice");
                }
                other => panic!("not an input on the inputs' channel: {other:?}"),
            }
        }
        while let Ok(out) = values.try_recv() {
            match out {
                Output::Feed {
                    feed, time, value, ..
                } => feeds.push((feed, time, value)),
                other => panic!("unexpected output: {other:?}"),
            }
        }
        assert_eq!(inputs.len(), 10);
        assert_eq!(inputs["v3"], (T + 49, Some(493.0)));
        assert_eq!(feeds, [(feed, T + 49, Some(490.0))]);
    }

    /// The process steps a request's values would run are counted before it is logged: past
    /// the limit it is refused whole and the log does not move.
    #[test]
    fn a_request_running_too_many_steps_is_refused_before_it_is_logged() {
        let rig = Rig::new();
        let feed = rig.feed_fed_by("house", "power", 1);
        rig.rt.block_on(async {
            let input = rig
                .catalog
                .inputs_for_user(rig.userid)
                .await
                .expect("inputs")
                .into_iter()
                .find(|i| i.name == "power")
                .expect("input");
            let list = vec![format!("1:{feed}"); 100].join(",");
            rig.catalog
                .set_input_process_list(input.id, &list)
                .await
                .expect("list");
        });
        let mut w = rig.open();
        w.store.create_fixed(feed, 10).expect("feed file");
        let bulk = |rows: i64| Submission {
            userid: rig.userid,
            batches: (0..rows)
                .map(|k| Decoded {
                    time: T + 10 * k,
                    node: "house".into(),
                    values: vec![("power".into(), Some(1.0))],
                })
                .collect(),
            http: true,
        };
        let before = w.store.applied_lsn();
        match submit(&mut w, bulk(10_001)) {
            Err(
                e @ IngestError::StepLimit {
                    steps: 1_000_100, ..
                },
            ) => assert!(e.is_limit()),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.store.applied_lsn(), before, "nothing logged");
        submit(&mut w, bulk(10_000)).expect("at the limit");
    }

    /// A small deterministic generator (splitmix64), so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }

        /// Ordinary readings most of the time, and every kind of edge: missing, zero and minus
        /// zero, the largest and smallest floats, values that overflow when scaled, infinities,
        /// NaNs and arbitrary bit patterns.
        fn value(&mut self) -> Value {
            const EDGES: [f64; 14] = [
                0.0,
                -0.0,
                0.1,
                1e308,
                -1e308,
                f64::MAX,
                f64::MIN_POSITIVE,
                5e-324,
                0.30000000000000004,
                9_007_199_254_740_992.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                -65536.5,
            ];
            match self.below(8) {
                0 => None,
                1 => Some(EDGES[self.below(EDGES.len() as u64) as usize]),
                2 => Some(f64::from_bits(self.next_u64())),
                _ => Some(self.below(2_000_000) as f64 / 7.0 - 1000.0),
            }
        }
    }

    type Bits = (
        BTreeMap<i64, (i64, Option<u64>)>,
        BTreeMap<i64, (i64, Option<u64>)>,
        BTreeMap<u32, (i64, Option<u64>)>,
        BTreeMap<(StateKind, u32), (i64, Option<u64>)>,
    );

    /// The state with every float as its bits: equal means identical, minus zero included.
    fn bits(s: &ShardState) -> Bits {
        let b = |(t, v): (i64, Value)| (t, v.map(f64::to_bits));
        (
            s.input_last.iter().map(|(&k, &v)| (k, b(v))).collect(),
            s.input_newest.iter().map(|(&k, &v)| (k, b(v))).collect(),
            s.feed_last.iter().map(|(&k, &v)| (k, b(v))).collect(),
            s.process.iter().map(|(&k, &v)| (k, b(v))).collect(),
        )
    }

    fn feed_slots(w: &mut Worker, feeds: &[u32]) -> Vec<Vec<u32>> {
        feeds
            .iter()
            .map(|&id| match w.store.feed(id).expect("feed") {
                Feed::Fixed(f) => f
                    .read_slots(0, f.npoints())
                    .expect("read")
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
                Feed::Variable(_) => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn replaying_the_log_rebuilds_the_live_state_exactly() {
        for seed in [1, 2, 3] {
            replay_matches_live(seed);
        }
    }

    fn replay_matches_live(seed: u64) {
        let rig = Rig::new();
        let uid = rig.userid;
        // Feeds and inputs with stateful lists, set up before the worker starts, as a user
        // would have them.
        let feeds: Vec<u32> = rig.rt.block_on(async {
            let mut ids = Vec::new();
            for name in ["log", "kwh", "acc", "meter", "rate", "daily", "power"] {
                let id = rig
                    .catalog
                    .create_feed(uid, name, "", 5, "")
                    .await
                    .expect("feed");
                ids.push(u32::try_from(id).expect("id"));
            }
            ids
        });
        let &[log, kwh, acc, meter, rate, daily, power] = &feeds[..] else {
            panic!("seven feeds");
        };
        rig.rt.block_on(async {
            let p = rig
                .catalog
                .create_input(uid, "house", "power")
                .await
                .expect("input");
            let m = rig
                .catalog
                .create_input(uid, "house", "meter")
                .await
                .expect("input");
            let lists = [
                (p.id, format!("2:3,1:{log},4:{kwh},14:{acc},35:house/p")),
                (
                    m.id,
                    format!("64:{meter},15:{rate},23:{daily},21:{power},6:{}", p.id),
                ),
            ];
            for (id, list) in lists {
                rig.catalog
                    .set_input_process_list(id, &list)
                    .await
                    .expect("list");
            }
        });
        let mut w = rig.open();
        for &f in &feeds {
            w.store.create_fixed(f, 10).expect("feed file");
        }

        let mut rng = Rng(seed);
        let names = ["power", "meter", "temp", "rssi", "e1", "e2"];
        let nodes = ["house", "house", "garage", "shed"];
        let mut previous: Option<Submission> = None;
        let mut clock = T;
        for round in 0..300 {
            let mut subs = Vec::new();
            for _ in 0..1 + rng.below(3) {
                // emonhub resends a buffer it is not sure about.
                if rng.below(10) == 0
                    && let Some(p) = previous.clone()
                {
                    subs.push(p);
                    continue;
                }
                let mut batches = Vec::new();
                for _ in 0..1 + rng.below(2) {
                    clock += rng.below(15) as i64;
                    let jitter = rng.below(60) as i64 - 30;
                    let node = nodes[rng.below(nodes.len() as u64) as usize];
                    // Raw values, infinities and NaNs included: the record must normalise them.
                    let mut values = Vec::new();
                    for name in names {
                        if rng.below(2) == 0 {
                            values.push((name.to_string(), rng.value()));
                        }
                    }
                    batches.push(Decoded {
                        time: clock + jitter,
                        node: node.to_string(),
                        values,
                    });
                }
                let s = Submission {
                    userid: uid,
                    batches,
                    http: rng.below(2) == 0,
                };
                previous = Some(s.clone());
                subs.push(s);
            }
            for answer in group(&mut w, subs) {
                answer.expect("accepted");
            }
            if round == 120 {
                // A checkpoint part-way: the rebuild starts from it and replays the rest.
                w.store.flush(&w.core.state.encode()).expect("checkpoint");
            }
        }
        assert!(!w.store.failed());
        let live = bits(&w.core.state);
        let all_values = w
            .core
            .state
            .input_last
            .values()
            .chain(w.core.state.input_newest.values())
            .chain(w.core.state.feed_last.values())
            .chain(w.core.state.process.values());
        for (_, v) in all_values {
            assert!(
                v.is_none_or(f64::is_finite),
                "seed {seed}: {v:?} in the state"
            );
        }
        assert!(
            live.3.values().any(|(_, v)| v.is_some()),
            "seed {seed}: the stateful processes ran"
        );
        let live_feeds = feed_slots(&mut w, &feeds);

        // kill -9: nothing flushed since the checkpoint.
        drop(w);
        let mut again = rig.open();
        assert!(again.store.replayed_records() > 0, "seed {seed}");
        assert_eq!(bits(&again.core.state), live, "seed {seed}");
        assert_eq!(feed_slots(&mut again, &feeds), live_feeds, "seed {seed}");

        // And once more from a checkpoint of the rebuilt state.
        again
            .store
            .flush(&again.core.state.encode())
            .expect("checkpoint");
        drop(again);
        let mut third = rig.open();
        assert_eq!(third.store.replayed_records(), 0);
        assert_eq!(bits(&third.core.state), live, "seed {seed}");
        assert_eq!(feed_slots(&mut third, &feeds), live_feeds, "seed {seed}");
    }
}
