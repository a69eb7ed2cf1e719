//! One shard worker: the single writer of its users' inputs, process state and feeds.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::Duration;

use chrono_tz::Tz;
use tokio::runtime::Handle;
use ynni_core::Catalog;
use ynni_storage::store::{Feed, Replay};
use ynni_storage::wal::{Lsn, Ticket};
use ynni_storage::{FeedStore, Point, StorageError, query};

use super::record::{FeedWrite, Record};
use super::router::{IngestError, LastValues, Output, RouterConfig, Submission};
use super::state::ShardState;
use crate::batch::Value;
use crate::process::{Context, Host, Outcome, StateKind, run};

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
    Last {
        id: u32,
    },
    ValueAt {
        id: u32,
        time: i64,
    },
    Meta {
        id: u32,
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
    /// The feed's data file from a byte offset.
    Export {
        id: u32,
        offset: u64,
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
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum FeedAnswer {
    /// The fixed interval chosen (after the minimum), 0 for variable feeds.
    Created {
        interval: u32,
    },
    Data(query::DataReply),
    /// The feed's last update (time, value): emoncms's `timevalue`.
    Last(Option<(i64, Value)>),
    Value(Option<f64>),
    Meta(FeedMeta),
    /// Bytes written by a trim, or emoncms's message when it was refused.
    Trimmed(Result<u64, String>),
    Bytes(Vec<u8>),
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeedMeta {
    Fixed(ynni_storage::fixed::FixedMeta),
    Variable(ynni_storage::variable::VariableMeta),
}

pub type FeedReply = tokio::sync::oneshot::Sender<Result<FeedAnswer, query::QueryError>>;

pub enum Job {
    Ingest(Submission, Reply),
    Feed(FeedOp, FeedReply),
    /// A user's inputs or process lists changed in the catalog: load them again.
    Reload(i64),
    /// The user's input last values.
    InputLast(i64, tokio::sync::oneshot::Sender<LastValues>),
    /// How the worker is doing, for the admin page.
    Status(tokio::sync::oneshot::Sender<ShardStatus>),
    /// Last values brought from another installation, for inputs (id, time, value) and feeds
    /// (id, time, value) that have none yet; checkpointed before the reply.
    Seed(Seed, Reply),
    Stop,
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

/// How many queued submissions share one WAL sync.
const MAX_GROUP: usize = 256;
/// How often an idle worker checks whether a flush is due.
const TICK: Duration = Duration::from_secs(1);

struct InputInfo {
    id: i64,
    process_list: String,
}

struct UserInputs {
    /// `false` when the account no longer exists: its logged batches are skipped.
    exists: bool,
    tz: Tz,
    inputs: HashMap<(String, String), InputInfo>,
    /// The ids in `inputs`: process lists may only read these.
    input_ids: HashSet<i64>,
    /// The user's feeds: process lists may only touch these, whatever the stored list says.
    feeds: HashSet<u32>,
    creation_disabled: bool,
}

/// Everything but the store, so the store can be borrowed beside it.
struct Core {
    catalog: Catalog,
    handle: Handle,
    users: HashMap<i64, UserInputs>,
    state: ShardState,
    max_nodes: usize,
    outputs: tokio::sync::broadcast::Sender<Output>,
    input_outputs: bool,
}

pub struct Worker {
    n: usize,
    store: FeedStore,
    core: Core,
    submissions: u64,
    replayed_at_start: u64,
}

impl Worker {
    pub fn open(
        n: usize,
        cfg: &RouterConfig,
        catalog: Catalog,
        handle: Handle,
        outputs: tokio::sync::broadcast::Sender<Output>,
    ) -> Result<Self, IngestError> {
        let mut core = Core {
            catalog,
            handle,
            users: HashMap::new(),
            state: ShardState::default(),
            max_nodes: cfg.max_nodes,
            outputs,
            input_outputs: cfg.input_outputs,
        };
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
        Ok(Self {
            n,
            store,
            core,
            submissions: 0,
            replayed_at_start,
        })
    }

    /// Serves jobs until `Stop`; returns whether the final flush wrote everything (a failure
    /// is logged; the WAL still holds the data for the next start).
    pub fn run(mut self, rx: mpsc::Receiver<Job>) -> bool {
        loop {
            let first = match rx.recv_timeout(TICK) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut jobs: Vec<Job> = first.into_iter().collect();
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let stop = jobs.iter().any(|j| matches!(j, Job::Stop));
            let mut submissions = Vec::new();
            let mut others = Vec::new();
            for job in jobs {
                match job {
                    Job::Ingest(s, reply) => submissions.push((s, reply)),
                    Job::Reload(userid) => {
                        // Checkpoint first: a replay must never run records logged under the
                        // old lists (or time zone) with the new ones.
                        if let Err(e) = self.store.flush(&self.core.state.encode()) {
                            tracing::error!(shard = self.n, error = %e, "flush before reload failed");
                        }
                        // Before this group's submissions, so they run the new lists.
                        self.core.users.remove(&userid);
                    }
                    other => others.push(other),
                }
            }
            if !submissions.is_empty() {
                self.submissions += submissions.len() as u64;
                self.ingest(submissions);
            }
            // Reads after the writes of the same group, so a read sees what was posted before it.
            for job in others {
                match job {
                    Job::Feed(op, reply) => {
                        let _ = reply.send(self.feed_op(op));
                    }
                    Job::InputLast(userid, reply) => {
                        let _ = reply.send(self.core.input_last(userid));
                    }
                    Job::Seed(seed, reply) => {
                        for (id, t, v) in seed.inputs {
                            self.core.state.input_last.entry(id).or_insert((t, v));
                        }
                        for (id, t, v) in seed.feeds {
                            self.core.state.feed_last.entry(id).or_insert((t, v));
                        }
                        let done = self.store.flush(&self.core.state.encode());
                        let _ = reply.send(done.map(|_| ()).map_err(IngestError::from));
                    }
                    Job::Status(reply) => {
                        let _ = reply.send(ShardStatus {
                            shard: self.n,
                            users_loaded: self.core.users.len(),
                            submissions: self.submissions,
                            replayed_at_start: self.replayed_at_start,
                        });
                    }
                    _ => {}
                }
            }
            let state = &self.core.state;
            if let Err(e) = self.store.flush_if_due(|| state.encode()) {
                tracing::error!(shard = self.n, error = %e, "flush failed");
            }
            if stop {
                break;
            }
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

    fn feed_op(&mut self, op: FeedOp) -> Result<FeedAnswer, query::QueryError> {
        Ok(match op {
            FeedOp::Create {
                id,
                engine,
                interval,
            } => match engine {
                ynni_storage::ENGINE_FIXED => FeedAnswer::Created {
                    interval: self.store.create_fixed(id, interval)?.interval,
                },
                ynni_storage::ENGINE_VARIABLE => {
                    self.store.create_variable(id)?;
                    FeedAnswer::Created { interval: 0 }
                }
                _ => return Err(StorageError::NoSuchFeed { id }.into()),
            },
            FeedOp::Data { id, mut req } => {
                req.last_value = self.core.state.feed_last.get(&id).copied();
                FeedAnswer::Data(query::data(self.store.feed(id)?, &req)?)
            }
            FeedOp::Last { id } => match self.core.state.feed_last.get(&id) {
                Some(&last) => FeedAnswer::Last(Some(last)),
                None => FeedAnswer::Last(query::last_value(self.store.feed(id)?)?),
            },
            FeedOp::ValueAt { id, time } => {
                FeedAnswer::Value(query::value_at(self.store.feed(id)?, time)?)
            }
            FeedOp::Delete { id } => {
                self.store.delete(id, &self.core.state.encode())?;
                self.core.state.feed_last.remove(&id);
                FeedAnswer::Done
            }
            FeedOp::Clear { id } => {
                self.store.clear(id, &self.core.state.encode())?;
                self.core.state.feed_last.remove(&id);
                FeedAnswer::Done
            }
            FeedOp::Virtual { userid, list, req } => {
                FeedAnswer::Data(self.virtual_data(userid, &list, &req)?)
            }
            FeedOp::Insert { userid, write } => self.insert(userid, write)?,
            FeedOp::Trim { id, start_time } => {
                FeedAnswer::Trimmed(self.store.trim(id, start_time, &self.core.state.encode())?)
            }
            FeedOp::Export { id, offset } => FeedAnswer::Bytes(self.store.export(id, offset)?),
            FeedOp::Meta { id } => FeedAnswer::Meta(match self.store.feed(id)? {
                Feed::Fixed(f) => FeedMeta::Fixed(f.meta()),
                Feed::Variable(f) => FeedMeta::Variable(f.meta()),
            }),
        })
    }

    /// A direct feed write: durable in the WAL before it is applied or answered, and replayed
    /// like an input batch after a crash.
    fn insert(&mut self, userid: i64, write: FeedWrite) -> Result<FeedAnswer, query::QueryError> {
        let record = Record::feed_write(userid, write);
        let lsn = self.store.log(&record.encode())?.wait()?;
        match self.core.process(&mut self.store, &record, false) {
            Ok(()) => self.store.record_applied(lsn),
            Err(e) => {
                tracing::error!(shard = self.n, lsn, error = %e, "applying a logged feed write failed; shard stopped until restart");
                self.store.poison();
            }
        }
        Ok(FeedAnswer::Done)
    }

    fn virtual_data(
        &mut self,
        userid: i64,
        list: &str,
        req: &query::DataRequest,
    ) -> Result<query::DataReply, query::QueryError> {
        let (times, interval, format) = query::grid(req)?;
        let owned = match self.core.user(userid) {
            Ok(u) => u.feeds.clone(),
            Err(e) => {
                tracing::error!(error = %e, "virtual feed owner unavailable");
                HashSet::new()
            }
        };
        // The sources: feed arguments of the list's steps, read on the same grid.
        let mut sources: HashMap<u32, HashMap<i64, Value>> = HashMap::new();
        for step in crate::process::list::parse_stored(list) {
            let is_feed_arg = crate::process::catalog::lookup(&step.key)
                .and_then(|d| d.args.first())
                .is_some_and(|a| a.kind == crate::process::catalog::ArgType::FeedId);
            let Some(f) = step.args.first().and_then(|a| a.trim().parse::<u32>().ok()) else {
                continue;
            };
            if !is_feed_arg || !owned.contains(&f) || sources.contains_key(&f) {
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
            let values = match self.store.feed(f) {
                Ok(feed) => query::data(feed, &sreq)?.points.into_iter().collect(),
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
            let v = match run(list, t, None, Context::VirtualFeed, &mut host) {
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
        Ok(query::DataReply { format, points })
    }

    /// Logs every accepted submission (their syncs shared), answers each caller once its record
    /// is durable, then processes them in order.
    fn ingest(&mut self, submissions: Vec<(Submission, Reply)>) {
        let mut logged: Vec<(Record, Ticket, Reply)> = Vec::new();
        let mut group_nodes: HashMap<i64, HashSet<String>> = HashMap::new();
        for (s, reply) in submissions {
            let nodes = group_nodes.entry(s.userid).or_default();
            if let Err(e) = self.core.check(&s, nodes) {
                let _ = reply.send(Err(e));
                continue;
            }
            let record = Record::new(s.userid, s.http, &s.batches);
            match self.store.log(&record.encode()) {
                Ok(ticket) => logged.push((record, ticket, reply)),
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            }
        }
        for (record, ticket, reply) in logged {
            let lsn = match ticket.wait() {
                Ok(lsn) => lsn,
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                    continue;
                }
            };
            // The record is durable, so the answer is yes; it is sent after processing so that
            // a read that follows the answer sees the new inputs and values.
            match self.core.process(&mut self.store, &record, false) {
                Ok(()) => self.store.record_applied(lsn),
                Err(e) => {
                    // Memory may be half-updated: stop checkpointing until a restart replays
                    // this record from the checkpoint before it.
                    tracing::error!(shard = self.n, lsn, error = %e, "processing a logged batch failed; shard stopped until restart");
                    self.store.poison();
                }
            }
            let _ = reply.send(Ok(()));
        }
    }
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
        self.process(store, &record, true).map_err(|e| match e {
            IngestError::Storage(s) => s,
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
                            process_list: r.process_list,
                        },
                    )
                })
                .collect();
            self.users.insert(
                userid,
                UserInputs {
                    exists,
                    tz,
                    input_ids: inputs.values().map(|i| i.id).collect(),
                    inputs,
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

    /// emoncms's node limit, for HTTP submissions: checked before anything is logged, counting
    /// the nodes that earlier submissions of the same group add (`group_nodes`).
    fn check(
        &mut self,
        s: &Submission,
        group_nodes: &mut HashSet<String>,
    ) -> Result<(), IngestError> {
        if !s.http {
            return Ok(());
        }
        let limit = self.max_nodes;
        let user = self.user(s.userid)?;
        let known: HashSet<&str> = user.inputs.keys().map(|(n, _)| n.as_str()).collect();
        let mut added: Vec<String> = Vec::new();
        for b in &s.batches {
            let node = b.node.as_str();
            if known.contains(node) || group_nodes.contains(node) || added.iter().any(|a| a == node)
            {
                continue;
            }
            if known.len() + group_nodes.len() + added.len() >= limit {
                return Err(IngestError::NodeLimit {
                    limit,
                    node: b.node.clone(),
                });
            }
            added.push(b.node.clone());
        }
        group_nodes.extend(added);
        Ok(())
    }

    /// Inputs, last values and process lists for one logged record (also used by replay).
    fn process(
        &mut self,
        store: &mut FeedStore,
        record: &Record,
        replaying: bool,
    ) -> Result<(), IngestError> {
        let userid = record.userid;
        if !self.user(userid)?.exists {
            tracing::warn!(userid, "batch of a deleted account skipped");
            return Ok(());
        }
        for batch in &record.batches {
            let t = batch.time;
            // Live values for subscribers: not sent again when a batch is replayed.
            if self.input_outputs && !replaying {
                for (name, value) in &batch.values {
                    let _ = self.outputs.send(Output::Input {
                        userid,
                        node: batch.node.clone(),
                        name: name.clone(),
                        time: t,
                        value: *value,
                    });
                }
            }
            let mut queued: Vec<(i64, Value, String)> = Vec::new();
            for (name, value) in &batch.values {
                let key = (batch.node.clone(), name.clone());
                let user = self.user(userid)?;
                match user.inputs.get(&key) {
                    Some(input) => {
                        let (id, list) = (input.id, input.process_list.clone());
                        let previous = self.state.input_last.insert(id, (t, *value));
                        let newest = self.state.input_newest.insert(id, (t, *value));
                        // A resent packet must not run accumulators twice: the same time and
                        // value as the last or the newest is skipped, and so is an older time
                        // for lists that keep state (an emonhub retry resends its whole
                        // buffer, oldest rows first).
                        let resent = previous == Some((t, *value))
                            || newest == Some((t, *value))
                            || (newest.is_some_and(|(nt, _)| t < nt)
                                && crate::process::list::has_stateful_steps(&list));
                        if let Some(n) = newest.filter(|(nt, _)| *nt > t) {
                            self.state.input_newest.insert(id, n);
                        }
                        if !list.is_empty() && !resent {
                            queued.push((id, *value, list));
                        }
                    }
                    None if user.creation_disabled => {}
                    None => {
                        let row = self
                            .handle
                            .block_on(self.catalog.create_input(userid, &key.0, &key.1))?;
                        let id = row.id;
                        if let Some(user) = self.users.get_mut(&userid) {
                            user.input_ids.insert(id);
                            user.inputs.insert(
                                key,
                                InputInfo {
                                    id,
                                    process_list: row.process_list,
                                },
                            );
                        }
                        self.state.input_last.insert(id, (t, *value));
                        self.state.input_newest.insert(id, (t, *value));
                    }
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
            };
            let queued_any = true;
            for (id, value, list) in queued {
                match run(&list, t, value, Context::Input, &mut host) {
                    Outcome::Done(_) => {}
                    Outcome::Aborted { step, key } => {
                        tracing::warn!(
                            input = id,
                            step,
                            key,
                            "process list stopped at an unknown process"
                        );
                    }
                    Outcome::LoopGuard => {
                        tracing::warn!(input = id, "process list loops; it was stopped")
                    }
                }
            }
            let points = std::mem::take(&mut host.points);
            // Outputs are live values: not sent again when a batch is replayed after a crash.
            if !replaying && queued_any {
                for (topic, value) in host.published.drain(..) {
                    // No subscriber (no broker running) is fine.
                    let _ = self.outputs.send(Output::Published {
                        userid,
                        topic,
                        value,
                    });
                }
                let mut feeds: Vec<u32> = points.iter().map(|p| p.feed).collect();
                feeds.sort_unstable();
                feeds.dedup();
                self.send_feed_outputs(userid, &feeds);
            }
            let report = store.apply_points(&points)?;
            for (feed, e) in report.refused {
                tracing::warn!(feed, error = %e, "feed write refused");
            }
        }
        if let Some(write) = &record.feed {
            self.write_feed(store, userid, write)?;
            if !replaying {
                self.send_feed_outputs(userid, &[write.feed]);
            }
        }
        Ok(())
    }

    /// Each feed's new last value, for subscribers.
    fn send_feed_outputs(&self, userid: i64, feeds: &[u32]) {
        for &feed in feeds {
            if let Some(&(time, value)) = self.state.feed_last.get(&feed) {
                let _ = self.outputs.send(Output::Feed {
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
        for (feed, e) in report.refused {
            tracing::warn!(feed, error = %e, "feed write refused");
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
}

impl Host for ShardHost<'_> {
    fn tz(&self) -> Tz {
        self.tz
    }

    fn feed_post(&mut self, feed: u32, update_time: i64, feed_time: i64, value: Value, join: bool) {
        if !self.owned.contains(&feed) {
            return;
        }
        self.points.push(Point {
            feed,
            time: feed_time,
            value,
            join,
        });
        self.state.feed_last.insert(feed, (update_time, value));
    }

    fn feed_last(&mut self, feed: u32) -> Option<(i64, Value)> {
        if !self.owned.contains(&feed) {
            return None;
        }
        if let Some(&last) = self.state.feed_last.get(&feed) {
            return Some(last);
        }
        // Not written since the state began: the engine's last point (e.g. an imported feed).
        let feed_ref: &Feed = self.store.feed(feed).ok()?;
        query::last_value(feed_ref).ok().flatten()
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

    fn state(&self, kind: StateKind, feed: u32) -> Option<(i64, Value)> {
        self.state.process.get(&(kind, feed)).copied()
    }

    fn set_state(&mut self, kind: StateKind, feed: u32, time: i64, value: Value) {
        self.state.process.insert((kind, feed), (time, value));
    }

    fn publish(&mut self, topic: &str, value: Value) {
        self.published.push((topic.to_string(), value));
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
