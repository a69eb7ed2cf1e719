//! Putting a feed's data in place: emoncms's PHPFina and PHPTimeSeries files as they are
//! (copied through a temporary name, synced and renamed, or hard-linked), engine-0 (MySQL)
//! rows as a variable-interval file. A file already there that holds the source's bytes
//! (possibly followed by more that ynni has appended since) counts as done; any other file is
//! a conflict and stays untouched.

use std::fs;
use std::path::Path;

use anyhow::{Context, bail};
use futures_util::TryStreamExt;
use sqlx::Row;
use sqlx::mysql::MySqlPool;
use ynni_core::FeedRow;
use ynni_storage::atomic_file::{commit, temp_path};
use ynni_storage::emoncms_files::{self, VariableFileWriter};
use ynni_storage::{Engine, Storage, variable};

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
    let end_time = emoncms_files::end_time(storage, from_dir, id)?;
    let mut placed = Placed {
        end_time: end_time.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        ..Placed::default()
    };
    let sources = emoncms_files::feed_files(storage, from_dir, id);
    let dests = emoncms_files::feed_files(storage, to_dir, id);
    for (from, dest) in sources.iter().zip(&dests) {
        let (bytes, linked) = place(from, dest, to)?;
        placed.bytes += bytes;
        placed.copied_not_linked += usize::from(to.link && !linked);
    }
    Ok(placed)
}

/// Places one file; returns its size and whether it was hard-linked.
fn place(from: &Path, to: &Path, target: &Target<'_>) -> anyhow::Result<(u64, bool)> {
    let len = fs::metadata(from)
        .with_context(|| format!("reading {}", from.display()))?
        .len();
    if to.exists() {
        already_there(from, to)?;
        return Ok((len, false));
    }
    if target.dry_run {
        return Ok((len, false));
    }
    if target.link && fs::hard_link(from, to).is_ok() {
        return Ok((len, true));
    }
    let tmp = temp_path(to, TEMP_SUFFIX);
    fs::copy(from, &tmp).with_context(|| format!("copying {}", from.display()))?;
    commit(&tmp, to)?;
    Ok((len, false))
}

/// Ok when `to` holds `from`'s bytes (and possibly more appended after them).
fn already_there(from: &Path, to: &Path) -> anyhow::Result<()> {
    let src = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    let dst = fs::read(to).with_context(|| format!("reading {}", to.display()))?;
    if dst.starts_with(&src) {
        Ok(())
    } else {
        bail!("{} already exists with other data", to.display())
    }
}

/// A MySQL feed's rows, streamed into a variable-interval file.
async fn mysql_feed(db: &MySqlPool, id: i64, to: &Path, dry_run: bool) -> anyhow::Result<Placed> {
    let tmp = temp_path(to, TEMP_SUFFIX);
    let mut out = VariableFileWriter::create(&tmp)?;
    // The table name is built from an integer id, so nothing from the data reaches it.
    let sql = format!(
        "SELECT CAST(time AS SIGNED) AS time, data + 0.0 AS data FROM feed_{id} ORDER BY time"
    );
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(db);
    let mut placed = Placed::default();
    while let Some(r) = rows
        .try_next()
        .await
        .with_context(|| format!("reading MySQL table feed_{id}"))?
    {
        let t: i64 = r.try_get("time")?;
        let v: f64 = r.try_get("data")?;
        out.push(t, v)?;
        placed.end_time = Some(t);
    }
    placed.bytes = out.finish()?;
    if to.exists() {
        let same = already_there(&tmp, to);
        let _ = fs::remove_file(&tmp);
        same?;
    } else if dry_run {
        let _ = fs::remove_file(&tmp);
    } else {
        // Synced and renamed, so a crash never leaves half a file that a second run would take
        // for a conflict.
        commit(&tmp, to)?;
    }
    Ok(placed)
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
        assert!(already_there(&a, &b).is_ok());
        assert!(already_there(&a, &c).is_err());
        assert_eq!(
            temp_path(&dir.join("1.meta"), TEMP_SUFFIX)
                .file_name()
                .and_then(|n| n.to_str()),
            Some("1.meta.import-tmp")
        );
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
