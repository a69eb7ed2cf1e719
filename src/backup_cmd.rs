//! `ynni backup DIR` and `ynni restore DIR`, and the copy both the command and the server's
//! scheduled backups make.
//!
//! A backup is a directory laid out as a data directory, plus `backup.json`, written last:
//! a directory without it is an unfinished backup, which `restore` refuses.
//!
//! ```text
//! DIR/catalog.sqlite           the catalog, one consistent SQLite snapshot
//! DIR/wal/…, DIR/phpfina/…,    logs, checkpoints and feed files (ynni_storage::backup)
//! DIR/phptimeseries/…
//! DIR/tls/…                    the `ynni tls selfsigned` pair, if there is one
//! DIR/backup.json              {"format":1,"version":…,"began":unix s,"finished":unix s,
//!                               "files":[{"path":…,"bytes":…}, …]}
//! ```
//!
//! The copy takes no lock and stops no write: it restores every value acknowledged before it
//! began (the order of the copy is what guarantees it; see `ynni_storage::backup`). The first
//! start of a restored directory replays the copied logs, as after a crash.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use ynni_config::Settings;
use ynni_core::Catalog;
use ynni_storage::backup::{self, Copied};
use ynni_storage::{DataDir, StorageError};

/// The manifest's name; written last.
pub const MANIFEST: &str = "backup.json";
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub version: String,
    /// When the copy began and ended (unix seconds): values acknowledged before `began` are
    /// in it.
    pub began: i64,
    pub finished: i64,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: PathBuf,
    pub bytes: u64,
}

impl Manifest {
    /// One line of JSON for the command's output.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "began": self.began,
            "finished": self.finished,
            "files": self.files.len(),
            "bytes": self.bytes(),
        })
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Copies `settings.data_dir` into the new (or empty) directory `dest`.
pub async fn backup(settings: &Settings, dest: &Path) -> anyhow::Result<Manifest> {
    anyhow::ensure!(
        settings.cluster.is_none(),
        "not implemented for a cluster: back up its PostgreSQL catalog (pg_dump) and a \
         snapshot of cluster.shared_dir instead"
    );
    let data = DataDir::open(&settings.data_dir)?;
    anyhow::ensure!(
        data.catalog_path().is_file(),
        "{} holds no ynni data (no catalog)",
        data.root().display()
    );
    create_private_empty(dest)?;
    let began = now();
    let root = data.root().to_path_buf();
    let target = dest.to_path_buf();
    let (catalog_from, catalog_to) = (data.catalog_path(), dest.join("catalog.sqlite"));
    let runtime = tokio::runtime::Handle::current();
    let copied = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Copied>> {
        // Made afresh twice in every attempt of the copy, the second time after the logs
        // (see `storage::backup`): the process lists restored must be those of the copied
        // logs' records.
        let mut catalog = || -> ynni_storage::error::Result<std::collections::HashSet<u32>> {
            let failed = |e: String| StorageError::Io {
                op: "copying the catalog",
                path: catalog_from.clone(),
                source: std::io::Error::other(e),
            };
            match std::fs::remove_file(&catalog_to) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(failed(e.to_string()));
                }
                _ => {}
            }
            let feeds = runtime
                .block_on(Catalog::snapshot_sqlite(&catalog_from, &catalog_to))
                .map_err(|e| failed(e.to_string()))?
                .into_iter()
                .filter_map(|id| u32::try_from(id).ok())
                .collect();
            // VACUUM INTO does not sync its output; the manifest must not outlive a lost
            // catalog.
            std::fs::File::open(&catalog_to)
                .and_then(|f| f.sync_all())
                .map_err(|e| failed(e.to_string()))?;
            Ok(feeds)
        };
        let mut copied = backup::copy_live(&root, &target, &mut catalog)?;
        copied.extend(copy_tls(&root, &target)?);
        backup::sync_tree(&target)?;
        Ok(copied)
    })
    .await
    .context("backup task")??;
    let catalog_bytes = std::fs::metadata(dest.join("catalog.sqlite"))
        .context("reading the catalog copy")?
        .len();
    let mut files = vec![FileEntry {
        path: "catalog.sqlite".into(),
        bytes: catalog_bytes,
    }];
    files.extend(copied.into_iter().map(|c| FileEntry {
        path: c.path,
        bytes: c.bytes,
    }));
    let manifest = Manifest {
        format: FORMAT,
        version: env!("CARGO_PKG_VERSION").into(),
        began,
        finished: now(),
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).context("writing the manifest")?;
    ynni_storage::atomic_file::write_atomically(&dest.join(MANIFEST), &json)?;
    Ok(manifest)
}

/// The `ynni tls selfsigned` pair, if present.
fn copy_tls(root: &Path, dest: &Path) -> anyhow::Result<Vec<Copied>> {
    let (cert, key) = crate::tls_cmd::default_paths(root);
    let mut out = Vec::new();
    for f in [cert, key] {
        let Ok(src) = std::fs::File::open(&f) else {
            continue;
        };
        let rel = f.strip_prefix(root).context("TLS path")?.to_path_buf();
        let to = dest.join(&rel);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let bytes = backup::copy_synced(src, &f, &to)?;
        out.push(Copied { path: rel, bytes });
    }
    Ok(out)
}

/// Restores the backup in `from` into the data directory `to`, which must be empty or
/// absent. The files are copied into a locked sibling directory that is renamed to `to` only
/// once every file is in place and synced, so a restore that fails (a damaged backup, a full
/// disk) leaves `to` as it was and removes what it had copied.
pub async fn restore(from: &Path, to: &Path) -> anyhow::Result<Manifest> {
    let manifest_path = from.join(MANIFEST);
    let bytes = std::fs::read(&manifest_path).with_context(|| {
        format!(
            "{} is missing: {} is not a finished ynni backup",
            manifest_path.display(),
            from.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    anyhow::ensure!(
        manifest.format == FORMAT,
        "backup format {} is not one this ynni reads ({FORMAT})",
        manifest.format
    );
    if to.exists() {
        ensure_empty(to, "restore into a new or empty data directory")?;
    }
    let staging = staging_dir(to)?;
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    let manifest = tokio::task::spawn_blocking(move || -> anyhow::Result<Manifest> {
        let copied = copy_into(&from, &staging, &manifest).and_then(|data| {
            // An empty `to` is removed so the rename can take its place; one that gained
            // entries meanwhile is refused rather than overwritten.
            if to.exists() {
                std::fs::remove_dir(&to).with_context(|| {
                    format!("{} is not empty: restore into a new or empty data directory", to.display())
                })?;
            }
            ynni_storage::atomic_file::rename_synced(&staging, &to)?;
            drop(data);
            Ok(())
        });
        if let Err(e) = copied {
            if staging.exists()
                && let Err(rm) = std::fs::remove_dir_all(&staging)
            {
                tracing::warn!(dir = %staging.display(), error = %rm, "could not remove an unfinished restore");
            }
            return Err(e);
        }
        Ok(manifest)
    })
    .await
    .context("restore task")??;
    Ok(manifest)
}

/// A new directory beside `to` (same file system, so the final rename is atomic) named after
/// it and this process.
fn staging_dir(to: &Path) -> anyhow::Result<PathBuf> {
    let name = to
        .file_name()
        .with_context(|| format!("{} names no directory", to.display()))?;
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut staged = name.to_os_string();
    staged.push(format!(".restoring-{}", std::process::id()));
    let staging = parent.join(staged);
    anyhow::ensure!(
        !staging.exists(),
        "{} exists: an earlier restore was interrupted; remove it and try again",
        staging.display()
    );
    create_private_empty(&staging)?;
    Ok(staging)
}

/// Copies every file the manifest lists into `dir` (locked while it is filled), checking
/// each one's size, and syncs the tree.
fn copy_into(from: &Path, dir: &Path, manifest: &Manifest) -> anyhow::Result<DataDir> {
    let data = DataDir::open_exclusive(dir)?;
    for f in &manifest.files {
        backup::check_relative(&f.path)?;
        let src = from.join(&f.path);
        let file = open_backup_file(from, &f.path)?;
        let dst = data.root().join(&f.path);
        if let Some(dir) = dst.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let copied = backup::copy_synced(file, &src, &dst)?;
        anyhow::ensure!(
            copied == f.bytes,
            "{} holds {copied} bytes, the manifest says {}: the backup is damaged",
            f.path.display(),
            f.bytes
        );
    }
    backup::sync_tree(data.root())?;
    Ok(data)
}

/// The backup's file at `rel` (checked relative) under `from`, which must be a plain file
/// reached through no symlink: a restore (often run as root) must not copy a file from
/// outside the backup into the data directory, where `feed/export` would serve it.
fn open_backup_file(from: &Path, rel: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut at = from.to_path_buf();
    for part in rel.components() {
        at.push(part);
        let meta = std::fs::symlink_metadata(&at)
            .with_context(|| format!("the backup lacks {}", rel.display()))?;
        anyhow::ensure!(
            !meta.file_type().is_symlink(),
            "{} is a symlink: a backup holds plain files only",
            at.display()
        );
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&at)
        .with_context(|| format!("reading {}", at.display()))?;
    anyhow::ensure!(
        file.metadata()
            .with_context(|| format!("reading {}", at.display()))?
            .is_file(),
        "{} is not a plain file",
        at.display()
    );
    Ok(file)
}

/// Creates `dir` readable by its owner only (it holds password hashes and keys), or checks
/// that an existing one is empty.
fn create_private_empty(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.exists() {
        ensure_empty(dir, "back up into a new or empty directory")?;
        // An existing directory keeps whatever mode it was made with: made private here, as
        // a new one is, before anything is written into it.
        return std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private (mode 700)", dir.display()));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Fails with "`dir` is not empty: `advice`" unless `dir` has no entries.
fn ensure_empty(dir: &Path, advice: &str) -> anyhow::Result<()> {
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    anyhow::ensure!(
        entries.next().is_none(),
        "{} is not empty: {advice}",
        dir.display()
    );
    Ok(())
}
