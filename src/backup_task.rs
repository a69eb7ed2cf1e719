//! Scheduled backups (`[backup]`): the server runs `ynni backup` into `dir/ynni-<UTC time>`
//! every `interval_s` (counted from the newest finished backup there, so a restart does not
//! start the count again), removes all but the newest `keep`, and reports the last run in
//! the administrators' status and in `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use ynni_config::{BackupSettings, Settings};

use crate::backup_cmd::{self, MANIFEST};

/// Time of the last finished backup (a metric).
pub const LAST_SUCCESS: &str = "ynni_backup_last_success_timestamp_seconds";
/// Time the last finished backup took.
pub const LAST_SECONDS: &str = "ynni_backup_last_duration_seconds";
/// Size of the last finished backup.
pub const LAST_BYTES: &str = "ynni_backup_last_size_bytes";
/// Scheduled backups that failed.
pub const FAILURES: &str = "ynni_backup_failures_total";

/// A backup directory's name prefix; only directories named so are ever removed.
const PREFIX: &str = "ynni-";
/// The first backup into an empty directory waits this long after start, so it does not
/// compete with the replay of a start after a crash.
const FIRST_DELAY: Duration = Duration::from_secs(30);
/// After a failure, the next try waits this long (or the interval, if shorter).
const RETRY: Duration = Duration::from_secs(600);

/// What the last scheduled backup did, for the administrators' page.
#[derive(Debug, Default)]
pub struct Status {
    last: Option<Value>,
    error: Option<Value>,
    next: Option<i64>,
}

pub type Shared = Arc<Mutex<Status>>;

/// The administrators' view of `status`.
pub fn report(settings: &BackupSettings, status: &Shared) -> Value {
    let s = status.lock().unwrap_or_else(|p| p.into_inner());
    json!({
        "dir": settings.dir,
        "interval_s": settings.interval_s,
        "keep": settings.keep,
        "last": s.last,
        "last_error": s.error,
        "next": s.next,
    })
}

pub fn describe_metrics() {
    metrics::describe_gauge!(
        LAST_SUCCESS,
        metrics::Unit::Seconds,
        "Unix time the last scheduled backup finished"
    );
    metrics::describe_gauge!(
        LAST_SECONDS,
        metrics::Unit::Seconds,
        "How long the last scheduled backup took"
    );
    metrics::describe_gauge!(
        LAST_BYTES,
        metrics::Unit::Bytes,
        "Size of the last scheduled backup"
    );
    metrics::describe_counter!(FAILURES, "Scheduled backups that failed");
}

/// Runs scheduled backups until `stop`.
pub async fn keep(settings: Settings, status: Shared, mut stop: watch::Receiver<bool>) {
    let Some(b) = settings.backup.clone() else {
        return;
    };
    let dir = PathBuf::from(&b.dir);
    let interval = Duration::from_secs(b.interval_s);
    let mut wait = match newest_finished(&dir) {
        Some((_, finished)) => {
            let due = finished + b.interval_s as i64;
            Duration::from_secs(u64::try_from(due - now()).unwrap_or(0).max(1))
        }
        None => FIRST_DELAY,
    };
    loop {
        status.lock().unwrap_or_else(|p| p.into_inner()).next = Some(now() + wait.as_secs() as i64);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let started = Instant::now();
        // Numbered in the order made: the clock may step back (a Pi without a clock at boot),
        // and pruning must never take a new backup for an old one.
        let next = listed(&dir)
            .iter()
            .map(|(p, _)| sequence(p))
            .max()
            .unwrap_or(0)
            + 1;
        let name = format!(
            "{PREFIX}{next:06}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        );
        let dest = dir.join(&name);
        // Never remove what this run did not create (a name already taken after a clock step).
        let existed = dest.exists();
        match backup_cmd::backup(&settings, &dest).await {
            Ok(manifest) => {
                let took = started.elapsed();
                metrics::gauge!(LAST_SUCCESS).set(manifest.finished as f64);
                metrics::gauge!(LAST_SECONDS).set(took.as_secs_f64());
                metrics::gauge!(LAST_BYTES).set(manifest.bytes() as f64);
                tracing::info!(backup = %dest.display(), bytes = manifest.bytes(), seconds = took.as_secs_f64(), "scheduled backup finished");
                let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
                s.last = Some(json!({
                    "path": dest,
                    "began": manifest.began,
                    "finished": manifest.finished,
                    "files": manifest.files.len(),
                    "bytes": manifest.bytes(),
                    "seconds": took.as_secs_f64(),
                }));
                s.error = None;
                drop(s);
                if let Err(e) = prune(&dir, b.keep) {
                    tracing::warn!(error = %e, "removing old backups failed");
                }
                wait = interval;
            }
            Err(e) => {
                metrics::counter!(FAILURES).increment(1);
                tracing::error!(backup = %dest.display(), error = %format!("{e:#}"), "scheduled backup failed");
                status.lock().unwrap_or_else(|p| p.into_inner()).error =
                    Some(json!({"time": now(), "message": format!("{e:#}")}));
                // An unfinished copy is never restored; remove it rather than fill the disk.
                if !existed {
                    let _ = std::fs::remove_dir_all(&dest);
                }
                wait = interval.min(RETRY);
            }
        }
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A backup's number in the order this task made them (`ynni-<number>-<time>`); 0 for the
/// names of before numbering (`ynni-<time>`), which sort among themselves by time.
fn sequence(path: &Path) -> u64 {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(PREFIX))
        .and_then(|rest| rest.split('-').next())
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The backups in `dir` (named by this task), oldest first, with whether each finished.
fn listed(dir: &Path) -> Vec<(PathBuf, bool)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, bool)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let p = e.path();
            let finished = p.join(MANIFEST).is_file();
            (p, finished)
        })
        .collect();
    out.sort_by(|(a, _), (b, _)| (sequence(a), a).cmp(&(sequence(b), b)));
    out
}

/// The newest finished backup and when it finished.
fn newest_finished(dir: &Path) -> Option<(PathBuf, i64)> {
    let (path, _) = listed(dir).into_iter().rev().find(|(_, done)| *done)?;
    let bytes = std::fs::read(path.join(MANIFEST)).ok()?;
    let m: backup_cmd::Manifest = serde_json::from_slice(&bytes).ok()?;
    Some((path, m.finished))
}

/// Removes all but the newest `keep` finished backups, and unfinished ones older than the
/// newest finished one.
fn prune(dir: &Path, keep: usize) -> std::io::Result<()> {
    let all = listed(dir);
    let finished: Vec<&PathBuf> = all.iter().filter(|(_, d)| *d).map(|(p, _)| p).collect();
    let newest = finished.last().map(|p| (*p).clone());
    for old in finished.iter().take(finished.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(old)?;
    }
    let newest_at = all.iter().position(|(p, _)| Some(p) == newest.as_ref());
    for (i, (p, done)) in all.iter().enumerate() {
        if !done && newest_at.is_some_and(|n| i < n) {
            std::fs::remove_dir_all(p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is left in `d`, sorted.
    fn names(d: &Path) -> Vec<String> {
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        left
    }

    #[test]
    fn pruning_keeps_the_newest_finished_backups_and_nothing_else_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, done) in [
            ("ynni-20260101T000000Z", true),
            ("ynni-20260102T000000Z", false),
            ("ynni-20260103T000000Z", true),
            ("ynni-20260104T000000Z", true),
            ("other-backup", true),
        ] {
            std::fs::create_dir(d.join(name)).unwrap();
            if done {
                std::fs::write(d.join(name).join(MANIFEST), "{}").unwrap();
            }
        }
        prune(d, 2).unwrap();
        let left = names(d);
        assert_eq!(
            left,
            [
                "other-backup",
                "ynni-20260103T000000Z",
                "ynni-20260104T000000Z"
            ]
        );
    }

    #[test]
    fn backups_are_pruned_in_the_order_made_whatever_the_clock_said() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "ynni-20260101T000000Z",
            "ynni-000001-20260105T000000Z",
            "ynni-000002-20260106T000000Z",
            // Made after a clock step back: newest all the same.
            "ynni-000003-19700101T000100Z",
        ] {
            std::fs::create_dir(d.join(name)).unwrap();
            std::fs::write(d.join(name).join(MANIFEST), "{}").unwrap();
        }
        prune(d, 2).unwrap();
        let left = names(d);
        assert_eq!(
            left,
            [
                "ynni-000002-20260106T000000Z",
                "ynni-000003-19700101T000100Z"
            ]
        );
    }
}
