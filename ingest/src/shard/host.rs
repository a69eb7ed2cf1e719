//! Cluster mode: a fixed set of threads, each serving the workers of many vshards (DESIGN §5:
//! a log per vshard, so a vshard moves as a unit; one thread serves many vshards and shares
//! syncs across them).
//!
//! A host thread takes what has queued (up to a group's worth), sorts the jobs by vshard, and
//! *begins* every vshard's group (checks and appends its submissions to that vshard's log)
//! before *finishing* any (waiting for the syncs, processing, answering). Each log has its own
//! writer, so the syncs of all the vshards in the group run at the same time and the thread
//! waits for the slowest of them, not for their sum.
//!
//! Opening a vshard (replaying its log) happens on the caller's thread; the open worker is then
//! handed to its host, so a long replay does not stall the other vshards of that host. Jobs and
//! control messages share one queue, so a vshard's jobs are handled in the order they came and
//! a close comes after every job queued before it.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Instant;

use super::gather::{Intake, Pace, SharesSync};
use super::worker::{Begun, Job, TICK, Worker};

impl SharesSync for HostMsg {
    fn shares_sync(&self) -> Option<Pace> {
        match self {
            HostMsg::Job(_, job) => job.shares_sync(),
            _ => None,
        }
    }
}

pub(super) enum HostMsg {
    Job(u32, Job),
    /// Serve this vshard (its worker is open, its log replayed).
    Open(u32, Box<Worker>),
    /// Stop serving a vshard: with `flush` after flushing its data and checkpointing (a
    /// hand-over); without, at once, writing nothing more (the lease is lost). `done` gets
    /// whether everything was flushed.
    Close {
        vshard: u32,
        flush: bool,
        done: mpsc::Sender<bool>,
    },
    /// Flush every vshard and stop the thread.
    Stop,
}

impl HostMsg {
    /// The job inside, to give back when it cannot be queued (only jobs are ever sent where
    /// that can happen; anything else becomes a `Stop` no one sends).
    pub(super) fn into_job(self) -> Job {
        match self {
            HostMsg::Job(_, job) => job,
            _ => Job::Stop,
        }
    }
}

/// Serves `rx` until `Stop` (or every sender is gone); returns whether every vshard's final
/// flush succeeded.
pub(super) fn run(n: usize, rx: mpsc::Receiver<HostMsg>) -> bool {
    let depth = metrics::gauge!(
        crate::metrics::QUEUE_DEPTH,
        "worker" => crate::metrics::worker_label("host", n)
    );
    let mut workers: BTreeMap<u32, Worker> = BTreeMap::new();
    let mut swept = Instant::now();
    let mut intake = Intake::default();
    while let Some(msgs) = intake.next(&rx) {
        let taken = msgs.len();
        depth.set(taken as f64);
        let mut group: BTreeMap<u32, Vec<Job>> = BTreeMap::new();
        for msg in msgs {
            match msg {
                HostMsg::Job(v, job) => group.entry(v).or_default().push(job),
                HostMsg::Open(v, worker) => {
                    run_group(&mut workers, std::mem::take(&mut group));
                    if workers.insert(v, *worker).is_some() {
                        // The router closes a vshard before opening it again; an old worker
                        // here would have outlived its fence, so it is dropped unflushed.
                        tracing::warn!(vshard = v, "vshard opened twice on one host");
                    }
                }
                HostMsg::Close {
                    vshard,
                    flush,
                    done,
                } => {
                    let flushed = if flush {
                        run_group(&mut workers, std::mem::take(&mut group));
                        workers.remove(&vshard).is_none_or(Worker::final_flush)
                    } else {
                        // Its queued callers are answered `Stopped` as their replies drop.
                        group.remove(&vshard);
                        if workers.remove(&vshard).is_some() {
                            tracing::info!(shard = vshard, "shard abandoned (lease lost)");
                        }
                        false
                    };
                    let _ = done.send(flushed);
                }
                HostMsg::Stop => {
                    run_group(&mut workers, group);
                    return flush_all(workers);
                }
            }
        }
        run_group(&mut workers, group);
        intake.answered(&rx);
        if swept.elapsed() >= TICK {
            for w in workers.values_mut() {
                w.guarded(Worker::tick);
            }
            swept = Instant::now();
        }
    }
    flush_all(workers)
}

/// Begins every vshard's jobs, then finishes them (see the module doc).
fn run_group(workers: &mut BTreeMap<u32, Worker>, group: BTreeMap<u32, Vec<Job>>) {
    let mut begun: Vec<(u32, Begun)> = Vec::with_capacity(group.len());
    for (v, jobs) in group {
        // Jobs for a vshard no longer served here drop their replies: `Stopped`.
        if let Some(w) = workers.get_mut(&v)
            && let Some(b) = w.guarded(|w| w.begin(jobs))
        {
            begun.push((v, b));
        }
    }
    for (v, b) in begun {
        if let Some(w) = workers.get_mut(&v) {
            w.guarded(|w| w.finish(b));
        }
    }
}

fn flush_all(workers: BTreeMap<u32, Worker>) -> bool {
    // Every worker flushes, whatever an earlier one's result.
    let flushed: Vec<bool> = workers.into_values().map(Worker::final_flush).collect();
    flushed.iter().all(|&ok| ok)
}
