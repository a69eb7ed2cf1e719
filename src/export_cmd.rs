//! `ynni export emoncms DIR`: everything an emoncms 11.x installation needs to take over
//! ynni's data, so leaving ynni is as easy as arriving:
//!
//! ```text
//! DIR/phpfina/<id>.meta, <id>.dat      fixed-interval feeds (engine 5), byte for byte
//! DIR/phptimeseries/feed_<id>.MYD      variable-interval feeds (engine 2), byte for byte
//! DIR/emoncms.sql                      rows for emoncms's `feeds` and `input` tables (same
//!                                      ids, process lists and last values), and for feeds of
//!                                      engine 0 their `feed_<id>` MySQL tables with every point
//! ```
//!
//! The data directory is opened exclusively (ynni must be stopped), and the shard logs are
//! replayed and flushed first, so the files hold every acknowledged value, even after a crash.
//! Accounts are not exported: emoncms cannot check ynni's password hashes; create the users in
//! emoncms first (the SQL keeps ynni's user ids).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, bail};
use ynni_config::Settings;
use ynni_core::Catalog;
use ynni_ingest::shard::{FeedAnswer, FeedOp, Router};
use ynni_storage::atomic_file::{commit, temp_path};
use ynni_storage::emoncms_files::feed_files;
use ynni_storage::variable;
use ynni_storage::{DataDir, Engine, FIXED_DIR, Storage, VARIABLE_DIR};

use crate::cli::ExportArgs;
use crate::read_full::read_full;

/// Points per `INSERT` statement for engine-0 feeds.
const ROWS_PER_INSERT: usize = 1000;

pub async fn emoncms(settings: &Settings, args: &ExportArgs) -> anyhow::Result<()> {
    let out = &args.dir;
    if out.exists() && fs::read_dir(out)?.next().is_some() {
        bail!(
            "{} is not empty: export writes into a new or empty directory",
            out.display()
        );
    }
    let data_dir = DataDir::open_exclusive(&settings.data_dir)
        .context("opening the data directory (stop `ynni serve` first)")?;
    let catalog = Catalog::open_sqlite(&data_dir.catalog_path())
        .await
        .with_context(|| format!("opening catalog {}", data_dir.catalog_path().display()))?;
    let cfg = crate::serve::router_config(settings, &data_dir)?;
    let (c, handle) = (catalog.clone(), tokio::runtime::Handle::current());
    let router = tokio::task::spawn_blocking(move || Router::start(cfg, c, handle))
        .await
        .context("starting the shard workers")??;

    // First what only the running workers know (last values), then stop them: stopping
    // flushes every replayed and buffered point into the files copied below.
    let users = catalog.list_users().await?;
    let mut feeds = Vec::new();
    let mut inputs = Vec::new();
    for user in &users {
        for f in catalog.feeds_for_user(user.id).await? {
            let id = u32::try_from(f.id).context("feed id")?;
            let last = match router.feed(user.id, FeedOp::Last { id }).await {
                Ok(FeedAnswer::Last(l)) => l,
                _ => None,
            };
            feeds.push((f, id, last));
        }
        let last = router.input_last(user.id).await.unwrap_or_default();
        for i in catalog.inputs_for_user(user.id).await? {
            let l = last.get(&i.id).copied();
            inputs.push((i, l));
        }
    }
    let flushed = tokio::task::spawn_blocking(move || router.stop())
        .await
        .context("stopping the shard workers")?;
    if !flushed {
        bail!(
            "a shard could not write its data to the feed files (see the log): not exporting an incomplete copy"
        );
    }
    catalog.close().await;

    // Written as it is made: an engine-0 feed's table can be far larger than memory.
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // Under a temporary name until whole, so a failed export leaves no SQL that looks
    // complete.
    let path = out.join("emoncms.sql");
    let tmp = temp_path(&path, "partial");
    let mut sql =
        BufWriter::new(File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?);
    sql.write_all(
        b"-- ynni export for emoncms 11.x: feeds and inputs (ids kept), engine-0 feed tables.\n\
          -- Load with: mysql emoncms < emoncms.sql (after creating the users in emoncms).\n\
          SET NAMES utf8mb4;\n",
    )?;
    let mut bytes = 0u64;
    for dir in [FIXED_DIR, VARIABLE_DIR] {
        fs::create_dir_all(out.join(dir)).with_context(|| format!("creating {dir}/"))?;
    }
    for (f, id, last) in &feeds {
        let (time, value) = sql_last(*last);
        writeln!(
            sql,
            "INSERT INTO feeds (id,userid,name,tag,time,value,datatype,public,size,engine,server,processList,unit) \
             VALUES ({},{},{},{},{time},{value},1,{},{},{},0,{},{});",
            f.id,
            f.userid,
            quote(&f.name),
            quote(&f.tag),
            u8::from(f.public),
            f.size,
            f.engine,
            quote(&f.process_list),
            quote(&f.unit),
        )?;
        match Engine::from_id(f.engine) {
            Some(Engine::Fixed) => {
                let (from, to) = (data_dir.phpfina_dir(), out.join(FIXED_DIR));
                bytes += copy_feed(Storage::Fixed, &from, &to, *id)?;
            }
            Some(Engine::Variable) => {
                let (from, to) = (data_dir.phptimeseries_dir(), out.join(VARIABLE_DIR));
                bytes += copy_feed(Storage::Variable, &from, &to, *id)?;
            }
            Some(Engine::Mysql) => {
                bytes += mysql_table(&mut sql, *id, &data_dir.phptimeseries_dir())?;
            }
            // Virtual feeds: their process list is the whole feed.
            Some(Engine::Virtual) | None => {}
        }
    }
    for (i, last) in &inputs {
        let (time, value) = sql_last(*last);
        writeln!(
            sql,
            "INSERT INTO input (id,userid,nodeid,name,description,processList,time,value) \
             VALUES ({},{},{},{},{},{},{time},{value});",
            i.id,
            i.userid,
            quote(&i.nodeid),
            quote(&i.name),
            quote(&i.description),
            quote(&i.process_list),
        )?;
    }
    let (feeds_done, inputs_done) = (feeds.len(), inputs.len());
    sql.into_inner()
        .map_err(std::io::IntoInnerError::into_error)
        .with_context(|| format!("writing {}", tmp.display()))?;
    commit(&tmp, &path)?;
    println!(
        "{}",
        serde_json::json!({
            "users": users.len(),
            "feeds": feeds_done,
            "inputs": inputs_done,
            "data_bytes": bytes,
            "dir": out.display().to_string(),
        })
    );
    Ok(())
}

/// A last (time, value) as SQL values; NULL where there is none.
fn sql_last(last: Option<(i64, Option<f64>)>) -> (String, String) {
    match last {
        // MySQL has no infinity or NaN literal.
        Some((t, Some(v))) if v.is_finite() => (t.to_string(), format!("{v}")),
        Some((t, Some(_))) => (t.to_string(), "NULL".into()),
        Some((t, None)) => (t.to_string(), "NULL".into()),
        None => ("NULL".into(), "NULL".into()),
    }
}

/// Copies a feed's files from one directory of its format to another; returns their size.
fn copy_feed(storage: Storage, from: &Path, to: &Path, id: u32) -> anyhow::Result<u64> {
    let sources = feed_files(storage, from, id);
    let dests = feed_files(storage, to, id);
    let mut bytes = 0;
    for (a, b) in sources.iter().zip(&dests) {
        bytes += copy(a, b)?;
    }
    Ok(bytes)
}

/// Copies a feed file if it exists (a feed that never had data has none); returns its size.
fn copy(from: &Path, to: &Path) -> anyhow::Result<u64> {
    match fs::copy(from, to) {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("copying {}", from.display())),
    }
}

/// emoncms's engine-0 table for one feed, with its points read from the variable-interval file
/// in `dir` that ynni keeps them in, [`ROWS_PER_INSERT`] records at a time; returns that
/// file's size.
fn mysql_table(sql: &mut impl Write, id: u32, dir: &Path) -> anyhow::Result<u64> {
    writeln!(
        sql,
        "CREATE TABLE IF NOT EXISTS feed_{id} (time INT UNSIGNED NOT NULL, data FLOAT NOT NULL, UNIQUE (time)) ENGINE=MyISAM;"
    )?;
    let path = variable::file_path(dir, id);
    // A feed that never had data has no file.
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let reading = || format!("reading {}", path.display());
    let size = file.metadata().with_context(reading)?.len();
    let mut chunk = vec![0u8; variable::RECORD as usize * ROWS_PER_INSERT];
    loop {
        let n = read_full(&mut file, &mut chunk).with_context(reading)?;
        let rows: Vec<String> = variable::decode_records(&chunk[..n])
            .filter(|(_, value)| value.is_finite())
            .map(|(time, value)| format!("({time},{value})"))
            .collect();
        if !rows.is_empty() {
            writeln!(
                sql,
                "INSERT INTO feed_{id} (time,data) VALUES {} ON DUPLICATE KEY UPDATE data=VALUES(data);",
                rows.join(",")
            )?;
        }
        if n < chunk.len() {
            return Ok(size);
        }
    }
}

/// A MySQL string literal (quotes and backslashes escaped; MySQL reads `\` as an escape).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_literals_cannot_break_out() {
        assert_eq!(quote("power1"), "'power1'");
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(
            quote("a\\'; DROP TABLE feeds; --"),
            "'a\\\\''; DROP TABLE feeds; --'"
        );
        assert_eq!(quote("line\nbreak"), "'line\\nbreak'");
    }

    #[test]
    fn engine_zero_points_become_table_rows() {
        let dir = std::env::temp_dir().join(format!("ynni-export-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        let mut bytes = Vec::new();
        for (t, v) in [
            (1_700_000_000u32, 1.5f32),
            (1_700_000_010, f32::NAN),
            (1_700_000_020, -2.0),
        ] {
            ynni_storage::variable::encode_record(t, v, &mut bytes);
        }
        fs::write(ynni_storage::variable::file_path(&dir, 3), &bytes).expect("write");
        let mut sql = Vec::new();
        assert_eq!(mysql_table(&mut sql, 3, &dir).expect("table"), 27);
        let sql = String::from_utf8(sql).expect("utf-8");
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS feed_3"));
        assert!(
            sql.contains("VALUES (1700000000,1.5),(1700000020,-2) ON DUPLICATE"),
            "{sql}"
        );
        // A table longer than one statement: every finite point, in order, in whole records.
        let mut bytes = Vec::new();
        for k in 0..2_500u32 {
            ynni_storage::variable::encode_record(1_700_000_000 + k * 10, k as f32, &mut bytes);
        }
        bytes.extend_from_slice(&[0xF9, 1]);
        fs::write(ynni_storage::variable::file_path(&dir, 4), &bytes).expect("write");
        let mut sql = Vec::new();
        mysql_table(&mut sql, 4, &dir).expect("table");
        let sql = String::from_utf8(sql).expect("utf-8");
        assert_eq!(sql.matches("INSERT INTO feed_4").count(), 3, "{sql}");
        let values: Vec<&str> = sql
            .lines()
            .filter_map(|l| l.strip_prefix("INSERT INTO feed_4 (time,data) VALUES "))
            .flat_map(|l| {
                l.trim_end_matches(" ON DUPLICATE KEY UPDATE data=VALUES(data);")
                    .split("),(")
            })
            .collect();
        assert_eq!(values.len(), 2_500);
        assert!(sql.contains("(1700024990,2499)"), "the last point");
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
