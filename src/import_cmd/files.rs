//! Putting a feed's data in place: emoncms's PHPFina and PHPTimeSeries files as they are
//! (copied through a temporary name, synced and renamed, or hard-linked), engine-0 (MySQL)
//! rows as a variable-interval file. A file already there that holds the source's bytes
//! (possibly followed by more that ynni has appended since) counts as done; any other file is
//! a conflict and stays untouched.

use std::fs;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use futures_util::TryStreamExt;
use sqlx::Row;
use sqlx::mysql::MySqlPool;
use ynni_core::FeedRow;

use crate::engines::{FIXED, MYSQL, VARIABLE, VIRTUAL};

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

pub async fn place_feed(src: &Source<'_>, to: &Target<'_>, f: &FeedRow) -> anyhow::Result<Placed> {
    let id = f.id;
    match f.engine {
        FIXED => {
            let dir = src.phpfina.context("a PHPFina feed needs --phpfina DIR")?;
            let meta = dir.join(format!("{id}.meta"));
            let dat = dir.join(format!("{id}.dat"));
            let end_time = fixed_end(&meta, &dat)?;
            let mut placed = Placed {
                end_time,
                ..Placed::default()
            };
            for (from, name) in [(meta, format!("{id}.meta")), (dat, format!("{id}.dat"))] {
                let (bytes, linked) = place(&from, &to.phpfina.join(name), to)?;
                placed.bytes += bytes;
                placed.copied_not_linked += usize::from(to.link && !linked);
            }
            Ok(placed)
        }
        VARIABLE => {
            let dir = src
                .phptimeseries
                .context("a PHPTimeSeries feed needs --phptimeseries DIR")?;
            let name = format!("feed_{id}.MYD");
            let from = dir.join(&name);
            let end_time = variable_end(&from)?;
            let (bytes, linked) = place(&from, &to.phptimeseries.join(&name), to)?;
            Ok(Placed {
                bytes,
                end_time,
                copied_not_linked: usize::from(to.link && !linked),
            })
        }
        MYSQL => {
            mysql_feed(
                src.db,
                id,
                &to.phptimeseries.join(format!("feed_{id}.MYD")),
                to.dry_run,
            )
            .await
        }
        // Virtual feeds: the process list is the feed.
        VIRTUAL => Ok(Placed::default()),
        e => bail!(
            "engine {e} is not supported by ynni (PHPFina 5, PHPTimeSeries 2, MySQL 0, virtual 7)"
        ),
    }
}

/// The last slot's time of a PHPFina feed (meta: [0, 0, interval, start], dat: f32 slots).
fn fixed_end(meta: &Path, dat: &Path) -> anyhow::Result<Option<i64>> {
    let m = fs::read(meta).with_context(|| format!("reading {}", meta.display()))?;
    if m.len() < 16 {
        bail!(
            "{} is not a PHPFina meta file ({} bytes)",
            meta.display(),
            m.len()
        );
    }
    let word = |at: usize| i64::from(u32::from_le_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]]));
    let n = fs::metadata(dat)
        .with_context(|| format!("reading {}", dat.display()))?
        .len()
        / 4;
    Ok((n > 0).then(|| word(12) + word(8) * (n as i64 - 1)))
}

/// The last record's time of a PHPTimeSeries file (9-byte records: 0xF9, u32 time, f32).
fn variable_end(file: &Path) -> anyhow::Result<Option<i64>> {
    let b = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    Ok(b.chunks_exact(9)
        .last()
        .map(|r| i64::from(u32::from_le_bytes([r[1], r[2], r[3], r[4]]))))
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
    let tmp = temporary(to);
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
    let tmp = temporary(to);
    let mut out = BufWriter::new(
        fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?,
    );
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
        out.write_all(&[0xF9])?;
        out.write_all(&u32::try_from(t).context("time outside u32")?.to_le_bytes())?;
        out.write_all(&(v as f32).to_le_bytes())?;
        placed.bytes += 9;
        placed.end_time = Some(t);
    }
    out.flush()?;
    drop(out);
    if to.exists() {
        let same = already_there(&tmp, to);
        let _ = fs::remove_file(&tmp);
        same?;
    } else if dry_run {
        let _ = fs::remove_file(&tmp);
    } else {
        commit(&tmp, to)?;
    }
    Ok(placed)
}

fn temporary(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".import-tmp");
    to.with_file_name(name)
}

/// Syncs `tmp` and renames it to `to`, so a crash never leaves half a file that a second run
/// would take for a conflict.
fn commit(tmp: &Path, to: &Path) -> anyhow::Result<()> {
    fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", tmp.display()))?;
    fs::rename(tmp, to).with_context(|| format!("renaming into {}", to.display()))?;
    if let Some(dir) = to.parent() {
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
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
            temporary(&dir.join("1.meta"))
                .file_name()
                .and_then(|n| n.to_str()),
            Some("1.meta.import-tmp")
        );
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn end_times_from_the_files() {
        let dir = std::env::temp_dir().join(format!("ynni-import-end-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        let mut meta = vec![0u8; 8];
        meta.extend_from_slice(&10u32.to_le_bytes());
        meta.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        fs::write(dir.join("1.meta"), &meta).expect("meta");
        fs::write(dir.join("1.dat"), [0u8; 12]).expect("dat");
        assert_eq!(
            fixed_end(&dir.join("1.meta"), &dir.join("1.dat")).expect("end"),
            Some(1_700_000_020)
        );
        let mut myd = Vec::new();
        for t in [5u32, 9] {
            myd.push(0xF9);
            myd.extend_from_slice(&t.to_le_bytes());
            myd.extend_from_slice(&1f32.to_le_bytes());
        }
        fs::write(dir.join("feed_2.MYD"), &myd).expect("myd");
        assert_eq!(variable_end(&dir.join("feed_2.MYD")).expect("end"), Some(9));
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
