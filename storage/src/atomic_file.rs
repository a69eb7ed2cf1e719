//! Replacing a whole file so that a crash leaves either the old or the new contents, never a
//! mix, a truncated file or no file at all.
//!
//! # On-disk format
//!
//! ```text
//! <dir>/<name>.tmp    the new contents while they are written; renamed to <name> when complete
//! <dir>/<name>        the file being replaced
//! ```
//!
//! The steps, in this order: the temporary file is written and fsynced (so the rename can never
//! expose blocks that are not on disk yet), renamed over the target (atomic on POSIX file
//! systems), and the directory is fsynced (so the rename itself survives a power cut). A
//! temporary file left by a crash is harmless: it never replaced anything, and the next
//! replacement truncates it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, io_err};

/// Durably replaces `path` with `bytes`, through `<name>.tmp` beside it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path, "tmp");
    write_synced(&tmp, bytes)?;
    rename_synced(&tmp, path)
}

/// `path` with `.<suffix>` added to its file name. The temporary file sits in the target's
/// directory because a rename is only atomic within one file system.
pub fn temp_path(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// Creates (or truncates) `path`, writes `bytes` and fsyncs the file.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(io_err("creating", path))?;
    f.write_all(bytes).map_err(io_err("writing", path))?;
    f.sync_all().map_err(io_err("syncing", path))
}

/// Puts a temporary file that was filled some other way (a copy, a stream) in place of `path`
/// with the same steps as [`write_atomically`]: fsync it, rename it, fsync the directory.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err("syncing", tmp))?;
    rename_synced(tmp, path)
}

/// Renames `from` (already fsynced) over `to` and fsyncs the directory, so the rename is
/// durable when this returns.
pub fn rename_synced(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(io_err("replacing", to))?;
    sync_dir(parent(to))
}

/// fsyncs a directory: creating, renaming or removing a file in it is durable only then.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing directory", dir))
}

/// The directory holding `path`; a bare file name lives in the current directory.
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_contents_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        write_atomically(&path, b"first").expect("write");
        write_atomically(&path, b"second").expect("replace");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        assert!(!dir.path().join("state.tmp").exists());
    }

    #[test]
    fn a_leftover_temporary_file_does_not_matter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        fs::write(dir.path().join("state.tmp"), b"half a write from a crash").expect("write");
        write_atomically(&path, b"new").expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"new");
    }

    #[test]
    fn commit_moves_a_filled_temporary_file_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.meta");
        let tmp = temp_path(&path, "import-tmp");
        assert_eq!(tmp, dir.path().join("1.meta.import-tmp"));
        fs::write(&tmp, [1, 2, 3]).expect("write");
        commit(&tmp, &path).expect("commit");
        assert_eq!(fs::read(&path).expect("read"), [1, 2, 3]);
        assert!(!tmp.exists());
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing").join("state");
        assert!(write_atomically(&path, b"x").is_err());
        assert_eq!(parent(Path::new("state")), Path::new("."));
    }
}
