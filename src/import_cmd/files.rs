//! Putting a feed's data in place: emoncms's PHPFina and PHPTimeSeries files as they are
//! (copied through a temporary name, synced and renamed, or hard-linked), engine-0 (MySQL)
//! rows as a variable-interval file. A file already there that holds the source's bytes
//! (possibly followed by more that ynni has appended since) counts as done; any other file is
//! a conflict and stays untouched.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use futures_util::TryStreamExt;
use sqlx::Row;
use sqlx::mysql::MySqlPool;
use ynni_core::FeedRow;
use ynni_storage::atomic_file::{commit, sync_dir, temp_path};
use ynni_storage::emoncms_files::{self, VariableFileWriter};
use ynni_storage::{Engine, Storage, fixed, variable};

use crate::read_full::read_full;

/// Where the data goes and how.
pub struct Target<'a> {
    pub phpfina: &'a Path,
    pub phptimeseries: &'a Path,
    pub link: bool,
    pub dry_run: bool,
}

/// Where the data comes from.
pub struct Source<'a> {
    pub db: &'a MySqlPool,
    pub phpfina: Option<&'a Path>,
    pub phptimeseries: Option<&'a Path>,
}

/// What placing a feed's data did.
#[derive(Debug, Default)]
pub struct Placed {
    /// Bytes of source data (copied, linked, or already there).
    pub bytes: u64,
    /// The time of the data's last point, if it has one.
    pub end_time: Option<i64>,
    /// Files that had to be copied although `--link` was asked (another filesystem,
    /// protected hard links).
    pub copied_not_linked: usize,
}

/// The suffix of the temporary name a file is copied or streamed to before it is put in place.
const TEMP_SUFFIX: &str = "import-tmp";

pub async fn place_feed(src: &Source<'_>, to: &Target<'_>, f: &FeedRow) -> anyhow::Result<Placed> {
    let Some(engine) = Engine::from_id(f.engine) else {
        bail!(
            "engine {} is not supported by ynni (PHPFina 5, PHPTimeSeries 2, MySQL 0, virtual 7)",
            f.engine
        );
    };
    // Virtual feeds: the process list is the feed.
    let Some(storage) = engine.storage() else {
        return Ok(Placed::default());
    };
    let id = u32::try_from(f.id).with_context(|| format!("feed id {} is out of range", f.id))?;
    if engine == Engine::Mysql {
        let file = variable::file_path(to.phptimeseries, id);
        return mysql_feed(src.db, f.id, &file, to.dry_run).await;
    }
    let (from_dir, to_dir) = match storage {
        Storage::Fixed => (src.phpfina, to.phpfina),
        Storage::Variable => (src.phptimeseries, to.phptimeseries),
    };
    let from_dir = from_dir.with_context(|| match storage {
        Storage::Fixed => "a PHPFina feed needs --phpfina DIR",
        Storage::Variable => "a PHPTimeSeries feed needs --phptimeseries DIR",
    })?;
    // Checked before anything reads them: a FIFO would stall the reads below.
    let sources = emoncms_files::feed_files(storage, from_dir, id);
    for source in &sources {
        plain_or_missing(source)?;
    }
    let end_time = emoncms_files::end_time(storage, from_dir, id)?;
    let mut placed = Placed {
        end_time: end_time.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        ..Placed::default()
    };
    let dests = emoncms_files::feed_files(storage, to_dir, id);
    let keep = emoncms_files::whole_lengths(storage, from_dir, id)?;
    let has_data = keep.last().is_some_and(|n| *n > 0);
    for (k, ((from, dest), keep)) in sources.iter().zip(&dests).zip(keep).enumerate() {
        // A fixed feed's meta (its first file) is compared by what it says, not byte for byte.
        let (bytes, linked) = if storage == Storage::Fixed && k == 0 && dest.exists() {
            same_meta(from, dest, has_data)?;
            (keep, false)
        } else {
            place(from, dest, keep, to)?
        };
        placed.bytes += bytes;
        placed.copied_not_linked += usize::from(to.link && !linked);
    }
    Ok(placed)
}

/// Places the first `keep` bytes of one file (all of it, unless a crash left a torn tail);
/// returns how many it placed and whether it was hard-linked.
fn place(from: &Path, to: &Path, keep: u64, target: &Target<'_>) -> anyhow::Result<(u64, bool)> {
    let source = open_plain(from)?
        .metadata()
        .with_context(|| format!("reading {}", from.display()))?;
    let len = source.len();
    if to.exists() {
        already_there(from, to, keep)?;
        return Ok((keep, false));
    }
    if keep < len {
        tracing::warn!(
            file = %from.display(),
            len,
            keep,
            "the file ends in a torn write (part of a slot or record, as a crash leaves); only its whole ones are taken"
        );
    }
    if target.dry_run {
        return Ok((keep, false));
    }
    // A link shares the source's bytes, torn tail and all: only a whole file is linked.
    if keep == len && target.link && fs::hard_link(from, to).is_ok() {
        // The link names what the path held at that moment: it must be the file checked
        // above (a symlink swapped in since would be linked as a symlink), and durable
        // before the feed's row is written.
        let same = fs::symlink_metadata(to).is_ok_and(|m| {
            m.file_type().is_file() && (m.dev(), m.ino()) == (source.dev(), source.ino())
        });
        let synced = same && to.parent().is_none_or(|dir| sync_dir(dir).is_ok());
        if synced {
            return Ok((keep, true));
        }
        fs::remove_file(to).with_context(|| format!("removing {}", to.display()))?;
        if !same {
            bail!("{} changed while it was imported", from.display());
        }
        // Not synced: copied instead, whose commit syncs (or reports why it cannot).
    }
    let tmp = temp_path(to, TEMP_SUFFIX);
    copy_prefix(from, &tmp, keep).with_context(|| format!("copying {}", from.display()))?;
    commit(&tmp, to)?;
    Ok((keep, false))
}

/// Ok when the fixed-interval meta `to` is `from` imported before: the same interval, and the
/// same start time if the feed had data then (an empty feed's start is set by its first
/// write, which ynni may have made since).
fn same_meta(from: &Path, to: &Path, has_data: bool) -> anyhow::Result<()> {
    let read = |p: &Path| -> anyhow::Result<(u32, u32)> {
        let mut bytes = Vec::new();
        open_plain(p)?
            .take(fixed::META_LEN as u64)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", p.display()))?;
        fixed::decode_meta(&bytes).with_context(|| format!("{} is not a feed meta", p.display()))
    };
    let ((interval, start), (interval_here, start_here)) = (read(from)?, read(to)?);
    if interval != interval_here || (has_data && start != start_here) {
        bail!("{} already exists with other data", to.display())
    }
    Ok(())
}

/// Copies the first `keep` bytes of `from` to a new file `to`.
fn copy_prefix(from: &Path, to: &Path, keep: u64) -> anyhow::Result<()> {
    let src = open_plain(from)?;
    let mut out = File::create(to)?;
    let copied = std::io::copy(&mut src.take(keep), &mut out)?;
    if copied != keep {
        bail!("the file shrank while copied ({copied} of {keep} bytes)");
    }
    Ok(())
}

/// Fails when `path` is there but is not a plain file. emoncms's data directory is usually
/// writable by its web server's user, and the import often runs as root: a symlink planted
/// there (to a key, to ynni's own files) must not become a feed's data, nor a FIFO stall it.
fn plain_or_missing(path: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => bail!(
            "{} is not a plain file (a symlink, FIFO, socket, directory or device): only plain files are imported",
            path.display()
        ),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Opens a source file for reading, refusing a symlink (`O_NOFOLLOW`: one swapped in after
/// [`plain_or_missing`] looked) and anything but a plain file (a FIFO opens without
/// waiting, `O_NONBLOCK`, and is then refused).
fn open_plain(path: &Path) -> anyhow::Result<File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                anyhow::anyhow!(
                    "{} is not a plain file (a symlink): only plain files are imported",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("reading {}", path.display()))
            }
        })?;
    let plain = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .file_type()
        .is_file();
    if !plain {
        bail!(
            "{} is not a plain file: only plain files are imported",
            path.display()
        );
    }
    Ok(file)
}

/// Ok when `to` starts with the first `keep` bytes of `from` (and possibly holds more that
/// ynni appended since). Compared a piece at a time: a feed file can be gigabytes.
fn already_there(from: &Path, to: &Path, keep: u64) -> anyhow::Result<()> {
    const PIECE: usize = 1 << 16;
    let to_file = File::open(to).with_context(|| format!("reading {}", to.display()))?;
    let (mut src, mut dst) = (open_plain(from)?.take(keep), to_file);
    let (mut a, mut b) = (vec![0u8; PIECE], vec![0u8; PIECE]);
    loop {
        let n =
            read_full(&mut src, &mut a).with_context(|| format!("reading {}", from.display()))?;
        if n == 0 {
            return Ok(());
        }
        let m = read_full(&mut dst, &mut b[..n])
            .with_context(|| format!("reading {}", to.display()))?;
        if m < n || a[..n] != b[..n] {
            bail!("{} already exists with other data", to.display())
        }
    }
}

/// A MySQL feed's rows, streamed into a variable-interval file; or, when a file is already in
/// place, compared with it record by record; or, in a dry run with none, only counted. Nothing
/// is written but the new file.
async fn mysql_feed(db: &MySqlPool, id: i64, to: &Path, dry_run: bool) -> anyhow::Result<Placed> {
    let mut sink = if to.exists() {
        let existing = File::open(to).with_context(|| format!("reading {}", to.display()))?;
        Sink::Compare(std::io::BufReader::new(existing))
    } else if dry_run {
        Sink::Count
    } else {
        let tmp = temp_path(to, TEMP_SUFFIX);
        Sink::Write(VariableFileWriter::create(&tmp)?, tmp)
    };
    // The table name is built from an integer id, so nothing from the data reaches it.
    let sql = format!(
        "SELECT CAST(time AS SIGNED) AS time, data + 0.0 AS data FROM feed_{id} ORDER BY time"
    );
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(db);
    let mut placed = Placed::default();
    let mut record = Vec::with_capacity(variable::RECORD as usize);
    let mut found = [0u8; variable::RECORD as usize];
    while let Some(r) = rows
        .try_next()
        .await
        .with_context(|| format!("reading MySQL table feed_{id}"))?
    {
        let t: i64 = r.try_get("time")?;
        let v: f64 = r.try_get("data")?;
        match &mut sink {
            Sink::Write(out, _) => out.push(t, v)?,
            Sink::Compare(existing) => {
                let time = u32::try_from(t)
                    .with_context(|| format!("feed_{id}: time {t} is out of range"))?;
                record.clear();
                variable::encode_record(time, v as f32, &mut record);
                let n = read_full(existing, &mut found)
                    .with_context(|| format!("reading {}", to.display()))?;
                if found[..n] != record[..] {
                    bail!("{} already exists with other data", to.display())
                }
            }
            Sink::Count => {
                u32::try_from(t).with_context(|| format!("feed_{id}: time {t} is out of range"))?;
            }
        }
        placed.bytes += variable::RECORD;
        placed.end_time = Some(t);
    }
    if let Sink::Write(out, tmp) = sink {
        out.finish()?;
        // Synced and renamed, so a crash never leaves half a file that a second run would take
        // for a conflict.
        commit(&tmp, to)?;
    }
    Ok(placed)
}

/// Where [`mysql_feed`]'s records go.
enum Sink {
    /// A new file under a temporary name, put in place at the end.
    Write(VariableFileWriter, std::path::PathBuf),
    /// The file already in place, which must start with the same records.
    Compare(std::io::BufReader<File>),
    /// Nowhere: a dry run with no file in place.
    Count,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_more_appended_counts_as_already_there() {
        let dir = std::env::temp_dir().join(format!("ynni-import-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
        fs::write(&a, [1, 2, 3]).expect("a");
        fs::write(&b, [1, 2, 3, 4]).expect("b");
        fs::write(&c, [9, 2, 3]).expect("c");
        // An empty feed's meta gets its start from ynni's first write.
        let (m1, m2) = (dir.join("1.meta"), dir.join("2.meta"));
        fs::write(&m1, fixed::encode_meta(10, 0)).expect("meta");
        fs::write(&m2, fixed::encode_meta(10, 1_700_000_000)).expect("meta");
        assert!(same_meta(&m1, &m2, false).is_ok());
        assert!(
            same_meta(&m1, &m2, true).is_err(),
            "with data the start is the data's"
        );
        fs::write(&m2, fixed::encode_meta(20, 0)).expect("meta");
        assert!(same_meta(&m1, &m2, false).is_err(), "another interval");
        assert!(already_there(&a, &b, 3).is_ok());
        assert!(already_there(&a, &c, 3).is_err());
        assert!(already_there(&b, &a, 4).is_err(), "shorter");
        // Only the kept prefix of the source counts.
        assert!(already_there(&b, &a, 3).is_ok());
        assert_eq!(
            temp_path(&dir.join("1.meta"), TEMP_SUFFIX)
                .file_name()
                .and_then(|n| n.to_str()),
            Some("1.meta.import-tmp")
        );
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn only_plain_files_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (plain, link, fifo) = (
            dir.path().join("1.dat"),
            dir.path().join("2.dat"),
            dir.path().join("3.dat"),
        );
        fs::write(&plain, [1, 2, 3, 4]).expect("plain");
        std::os::unix::fs::symlink(&plain, &link).expect("symlink");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        assert!(plain_or_missing(&plain).is_ok());
        assert!(plain_or_missing(&dir.path().join("none")).is_ok());
        assert!(plain_or_missing(&link).is_err());
        assert!(plain_or_missing(&fifo).is_err());
        assert!(open_plain(&plain).is_ok());
        assert!(open_plain(&link).is_err(), "a symlink is not followed");
        assert!(
            open_plain(&fifo).is_err(),
            "a FIFO is refused without waiting"
        );
    }
}
