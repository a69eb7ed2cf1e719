//! The data directory layout.
//!
//! ```text
//! <data_dir>/
//!   catalog.sqlite      catalog database (users, keys, sessions, inputs, feeds)
//!   phpfina/            fixed-interval feeds, emoncms engine 5 layout
//!   phptimeseries/      variable-interval feeds, emoncms engine 2 layout
//!   wal/<shard>/        each shard's write-ahead log segments and checkpoint
//!   wal/workers         the number of shard workers as decimal text and a newline ("2\n"),
//!                       written once, at the first start
//!   ynni.lock           held (flock) by the one server process using this directory
//! ```
//!
//! Feed files are written by a single server process; a second `ynni serve` on the same
//! directory would interleave writes, so serving takes an exclusive lock. Offline commands
//! (`ynni user …`) only touch the catalog, which SQLite already serialises, and do not lock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic_file::write_atomically;
use crate::error::{StorageError, io_err};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create data directory {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("data directory {0} is in use by another ynni server")]
    Locked(PathBuf),
    #[error("cannot lock data directory {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("{path} must hold a positive number")]
    BadWorkerCount { path: PathBuf },
    #[error("reading {path}: {source}")]
    ReadWorkerCount { path: PathBuf, source: io::Error },
    #[error("recording the worker count in {path}: {source}")]
    RecordWorkerCount { path: PathBuf, source: StorageError },
}

/// An opened data directory. Dropping a locked one releases the lock.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    _lock: Option<File>,
}

/// The folder of fixed-interval (PHPFina) feed files, in a ynni data directory and in
/// emoncms's `/var/lib` alike.
pub const FIXED_DIR: &str = "phpfina";
/// The folder of variable-interval (PHPTimeSeries) feed files.
pub const VARIABLE_DIR: &str = "phptimeseries";

impl DataDir {
    /// Creates the layout if missing, without taking the server lock.
    pub fn open(root: &Path) -> Result<Self, DataDirError> {
        for dir in [
            root.to_path_buf(),
            root.join(FIXED_DIR),
            root.join(VARIABLE_DIR),
        ] {
            fs::create_dir_all(&dir)
                .map_err(|source| DataDirError::Create { path: dir, source })?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            _lock: None,
        })
    }

    /// Creates the layout if missing and takes the exclusive server lock, failing at once if
    /// another process holds it.
    pub fn open_exclusive(root: &Path) -> Result<Self, DataDirError> {
        let mut dir = Self::open(root)?;
        let path = root.join("ynni.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| DataDirError::Lock {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(DataDirError::Locked(root.to_path_buf()));
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(DataDirError::Lock { path, source });
            }
        }
        dir._lock = Some(file);
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.root.join("catalog.sqlite")
    }

    pub fn phpfina_dir(&self) -> PathBuf {
        self.root.join(FIXED_DIR)
    }

    pub fn phptimeseries_dir(&self) -> PathBuf {
        self.root.join(VARIABLE_DIR)
    }

    pub fn wal_dir(&self, shard: u32) -> PathBuf {
        self.root.join("wal").join(shard.to_string())
    }

    /// The file recording the number of shard workers.
    pub fn shard_workers_path(&self) -> PathBuf {
        self.root.join("wal").join("workers")
    }

    /// The number of shard workers: the one recorded, or at the first start `first` (at least
    /// 1), which is recorded. Each worker's WAL and checkpointed state belong to the users
    /// routed to it, so the count must not follow a later change of core count.
    pub fn shard_workers(&self, first: usize) -> Result<usize, DataDirError> {
        let path = self.shard_workers_path();
        match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(DataDirError::BadWorkerCount { path }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let n = first.max(1);
                let record = |source: StorageError| DataDirError::RecordWorkerCount {
                    path: path.clone(),
                    source,
                };
                let wal = self.root.join("wal");
                fs::create_dir_all(&wal)
                    .map_err(io_err("creating", &wal))
                    .map_err(record)?;
                write_atomically(&path, format!("{n}\n").as_bytes()).map_err(record)?;
                Ok(n)
            }
            Err(source) => Err(DataDirError::ReadWorkerCount { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_layout_and_locks_exclusively() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("data");
        let first = DataDir::open_exclusive(&root).expect("first open");
        assert!(first.phpfina_dir().is_dir());
        assert!(first.phptimeseries_dir().is_dir());
        assert_eq!(first.catalog_path(), root.join("catalog.sqlite"));
        assert!(matches!(
            DataDir::open_exclusive(&root),
            Err(DataDirError::Locked(_))
        ));
        // Offline tools may still open it.
        DataDir::open(&root).expect("shared open");
        drop(first);
        DataDir::open_exclusive(&root).expect("lock released on drop");
    }

    #[test]
    fn the_worker_count_is_recorded_once_and_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(tmp.path()).expect("open");
        assert_eq!(dir.shard_workers(3).expect("first start"), 3);
        assert_eq!(
            fs::read_to_string(dir.shard_workers_path()).expect("read"),
            "3\n"
        );
        // A later start on a machine with another core count keeps the recorded count.
        assert_eq!(dir.shard_workers(8).expect("second start"), 3);
        assert!(!tmp.path().join("wal").join("workers.tmp").exists());

        for bad in ["0\n", "many", ""] {
            fs::write(dir.shard_workers_path(), bad).expect("write");
            assert!(matches!(
                dir.shard_workers(2),
                Err(DataDirError::BadWorkerCount { .. })
            ));
        }
    }

    #[test]
    fn a_zero_first_count_records_one_worker() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(tmp.path()).expect("open");
        assert_eq!(dir.shard_workers(0).expect("first start"), 1);
        assert_eq!(dir.shard_workers(4).expect("second start"), 1);
    }

    #[test]
    fn unwritable_location_is_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("plain-file");
        fs::write(&file, b"x").expect("write");
        let e = DataDir::open(&file.join("data")).expect_err("must fail");
        assert!(
            e.to_string().contains("cannot create data directory"),
            "{e}"
        );
    }
}
