//! Whether this node's shared directory still answers. A node whose mount hangs (an NFS
//! server gone, a stuck CephFS client) could go on renewing its leases through PostgreSQL
//! while none of its vshards makes progress, and their users would wait for the mount as long
//! as it hangs. A thread of its own writes and syncs a small file in the directory every
//! round (on its own thread, so a write that never returns holds nothing else up);
//! [`Probe::answered_within`] tells the cluster loop whether one succeeded lately, and the
//! loop stops heartbeating and renewing when none did, so the other nodes take the vshards
//! over once the leases end.
//!
//! The two bytes are written over themselves, so a full filesystem (which every node shares)
//! still takes them, and a refusal for want of space or quota counts as an answer: the
//! directory is there, and failing every node over would not give it room. What this cannot
//! bound: writes a hung mount accepted into the page cache before it hung may reach the
//! files after another node took the vshard over (the fence in `ynni_ingest::shard::fence`
//! stops new ones, not those).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ynni_core::boot_clock::BootInstant;

/// The file each node writes in the shared directory, after its id.
pub const FILE_PREFIX: &str = ".ynni-alive-";

/// The last time the shared directory answered, read by the cluster loop.
#[derive(Clone)]
pub struct Probe {
    /// When the probe started: `last` counts from it.
    base: BootInstant,
    /// Nanoseconds from `base` to the end of the last write that was synced.
    last: Arc<AtomicU64>,
}

impl Probe {
    /// Starts writing `dir`/[`FILE_PREFIX`]`<node_id>` every `every`, counting from now as
    /// answered (the node's start-up has just written to the directory).
    pub fn start(dir: PathBuf, node_id: &str, every: Duration) -> std::io::Result<Self> {
        let base = BootInstant::now();
        let last = Arc::new(AtomicU64::new(0));
        let probe = Self {
            base,
            last: last.clone(),
        };
        let path = dir.join(format!("{FILE_PREFIX}{node_id}"));
        std::thread::Builder::new()
            .name("ynni-probe".into())
            .spawn(move || {
                let mut failing = false;
                // Ends with the process: the cluster loop reads `last` for as long as it runs.
                loop {
                    match write_synced(&path) {
                        Ok(()) => {
                            last.store(nanos(base.elapsed()), Ordering::Relaxed);
                            if std::mem::take(&mut failing) {
                                tracing::info!(path = %path.display(), "the shared directory answers again");
                            }
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut failing, true) {
                                tracing::warn!(path = %path.display(), error = %e, "the shared directory refused a write");
                            }
                        }
                    }
                    std::thread::sleep(every);
                }
            })?;
        Ok(probe)
    }

    /// Whether a write reached the directory within `within` of now.
    pub fn answered_within(&self, within: Duration) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        nanos(self.base.elapsed()).saturating_sub(last) <= nanos(within)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Writes and syncs the probe's two bytes over themselves; whether the directory answered
/// (a filesystem out of space or quota did).
fn write_synced(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .and_then(|f| {
            f.write_all_at(b"ok", 0)?;
            f.sync_all()
        });
    answered(written)
}

/// A write's outcome as an answer: out of space or quota is one.
fn answered(written: std::io::Result<()>) -> std::io::Result<()> {
    match written {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full filesystem answered; one that failed did not.
    #[test]
    fn a_full_filesystem_counts_as_answering() {
        use std::io::{Error, ErrorKind};
        assert!(answered(Err(Error::from(ErrorKind::StorageFull))).is_ok());
        assert!(answered(Err(Error::from(ErrorKind::QuotaExceeded))).is_ok());
        assert!(answered(Err(Error::other("EIO"))).is_err());
        assert!(answered(Err(Error::from(ErrorKind::IsADirectory))).is_err());
    }

    /// A directory that refuses the probe's write (here its file's name taken by a
    /// directory) stops counting as answering; once it takes writes again, it counts again.
    #[test]
    fn a_directory_that_stops_taking_writes_stops_answering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let every = Duration::from_millis(20);
        let probe = Probe::start(dir.path().to_path_buf(), "n1", every).expect("start");
        let file = dir.path().join(format!("{FILE_PREFIX}n1"));
        let within = Duration::from_millis(300);
        assert!(probe.answered_within(within));
        // Taken by a directory: every write fails.
        loop {
            let _ = std::fs::remove_file(&file);
            if std::fs::create_dir(&file).is_ok() {
                break;
            }
        }
        std::thread::sleep(within * 3);
        assert!(!probe.answered_within(within));
        std::fs::remove_dir(&file).expect("rmdir");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !probe.answered_within(within) {
            assert!(std::time::Instant::now() < deadline, "never answered again");
            std::thread::sleep(every);
        }
    }
}
