//! `ynni import emoncms`: an emoncms 11.x installation's accounts, inputs, feeds and data,
//! read from its MySQL database and its feed directories, into this data directory, keeping
//! ids and apikeys so devices, process lists and dashboards go on working.
//!
//! - Users keep their id, username, email, time zone, admin flag, password hash (emoncms's
//!   salted SHA-256, replaced by argon2 at the next login) and both apikeys.
//! - Feeds keep id, name, tag, unit, public flag, engine and process list (virtual feeds);
//!   PHPFina and PHPTimeSeries files are copied (or hard-linked with `--link`: then emoncms
//!   must not run on them any more); engine-0 (MySQL) feeds become variable-interval files.
//! - Inputs keep id, node, name, description and process list.
//!
//! Running it again changes nothing; a different row or file already in a place is reported
//! and left alone; a feed whose data cannot be read is reported and skipped. `--dry-run` reads
//! everything and writes nothing.

use std::fs;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;
use sqlx::Row;
use sqlx::mysql::MySqlPool;
use ynni_config::Settings;
use ynni_core::{Catalog, FeedRow, Imported, ImportedUser, InputRow};
use ynni_ingest::shard::{Router, Seed};
use ynni_storage::DataDir;

use crate::cli::ImportArgs;

/// What happened to one user's rows and files.
#[derive(Default)]
struct Tally {
    created: u64,
    unchanged: u64,
    conflicts: Vec<String>,
    errors: Vec<String>,
}

impl Tally {
    fn add(&mut self, what: Result<Imported, String>) {
        match what {
            Ok(Imported::Created) => self.created += 1,
            Ok(Imported::Unchanged) => self.unchanged += 1,
            Ok(Imported::Conflict(why)) => self.conflicts.push(why),
            Err(e) => self.errors.push(e),
        }
    }
}

pub async fn emoncms(settings: &Settings, args: &ImportArgs) -> anyhow::Result<()> {
    let source = MySqlPool::connect(&args.mysql)
        .await
        .context("connecting to emoncms's MySQL (--mysql mysql://user:pass@host/emoncms)")?;
    let data_dir = DataDir::open_exclusive(&settings.data_dir)
        .context("opening the data directory (stop `ynni serve` first)")?;
    let catalog = Catalog::open_sqlite(&data_dir.catalog_path())
        .await
        .with_context(|| format!("opening catalog {}", data_dir.catalog_path().display()))?;
    let users = read_users(&source, &args.users).await?;
    if users.is_empty() {
        bail!("no emoncms users matched {:?}", args.users);
    }
    // Every user's feeds first, so progress can say how much is left.
    let mut all_feeds = Vec::with_capacity(users.len());
    for user in &users {
        all_feeds.push(read_feeds(&source, user.id).await?);
    }
    let mut progress = Progress::new(
        all_feeds.iter().map(Vec::len).sum(),
        all_feeds
            .iter()
            .flatten()
            .map(|f| source_bytes(args, f))
            .sum(),
    );
    let mut failed = false;
    let mut seeds = Vec::new();
    for (ui, user) in users.iter().enumerate() {
        let mut accounts = Tally::default();
        let mut feeds = Tally::default();
        let mut inputs = Tally::default();
        let mut bytes = 0u64;
        let (outcome, here) = if args.dry_run {
            would_user(&catalog, user).await?
        } else {
            catalog.import_user(user).await?
        };
        accounts.add(Ok(outcome));
        if !accounts.conflicts.is_empty() {
            // Its feeds and inputs would land on someone else's account.
            report(Report {
                user,
                here,
                accounts: &accounts,
                feeds: &feeds,
                inputs: &inputs,
                bytes,
                dry: args.dry_run,
            });
            failed = true;
            continue;
        }
        // Where the emoncms id was taken, the account has another id here: its rows follow it.
        let mut rows = std::mem::take(&mut all_feeds[ui]);
        for f in &mut rows {
            f.userid = here;
        }
        let mut imported_feeds = std::collections::HashSet::new();
        for feed in rows {
            let row = if args.dry_run {
                would_feed(&catalog, &feed).await
            } else {
                catalog.import_feed(&feed).await.map_err(|e| e.to_string())
            };
            let placed = match &row {
                Ok(Imported::Conflict(_)) | Err(_) => Ok(0),
                _ => feed_data(&source, args, &data_dir, &feed).await,
            };
            match placed {
                Ok(b) => {
                    bytes += b;
                    if matches!(row, Ok(Imported::Created | Imported::Unchanged)) {
                        imported_feeds.insert(feed.id);
                    }
                    feeds.add(row);
                }
                Err(e) => feeds.add(Err(format!(
                    "feed {} ({}:{}): {e:#}",
                    feed.id, feed.tag, feed.name
                ))),
            }
            progress.feed_done(&user.username, source_bytes(args, &feed));
        }
        let mut seed = Seed {
            feeds: read_feed_lasts(&source, user.id)
                .await?
                .into_iter()
                .filter(|(id, _, _)| imported_feeds.contains(&i64::from(*id)))
                .collect(),
            ..Seed::default()
        };
        for (mut input, last) in read_inputs(&source, user.id).await? {
            input.userid = here;
            let outcome = if args.dry_run {
                Ok(Imported::Created)
            } else {
                catalog
                    .import_input(&input)
                    .await
                    .map_err(|e| e.to_string())
            };
            if let (Ok(Imported::Created | Imported::Unchanged), Some((t, v))) = (&outcome, last) {
                seed.inputs.push((input.id, t, v));
            }
            inputs.add(outcome);
        }
        seeds.push((here, seed));
        failed |=
            !feeds.errors.is_empty() || !feeds.conflicts.is_empty() || !inputs.conflicts.is_empty();
        report(Report {
            user,
            here,
            accounts: &accounts,
            feeds: &feeds,
            inputs: &inputs,
            bytes,
            dry: args.dry_run,
        });
    }
    if !args.dry_run {
        seed_last_values(settings, &data_dir, &catalog, seeds).await?;
    }
    catalog.close().await;
    if failed {
        bail!("some rows or files were not imported (see the summary lines)");
    }
    Ok(())
}

/// Inputs and feeds keep the last value (and its time) they had in emoncms: the inputs page
/// shows it until new data arrives, and accumulating processes continue from a feed's total.
async fn seed_last_values(
    settings: &Settings,
    data_dir: &DataDir,
    catalog: &Catalog,
    seeds: Vec<(i64, Seed)>,
) -> anyhow::Result<()> {
    let cfg = crate::serve::router_config(settings, data_dir)?;
    let (c, handle) = (catalog.clone(), tokio::runtime::Handle::current());
    let router = tokio::task::spawn_blocking(move || Router::start(cfg, c, handle))
        .await
        .context("starting the shard workers")??;
    for (userid, seed) in seeds {
        if !seed.inputs.is_empty() || !seed.feeds.is_empty() {
            router
                .seed_last(userid, seed)
                .await
                .context("storing the inputs' last values")?;
        }
    }
    tokio::task::spawn_blocking(move || router.stop())
        .await
        .context("stopping the shard workers")?;
    Ok(())
}

/// Feeds and bytes done, rate and time left: one rewritten line on a terminal, a plain log
/// line every few seconds otherwise.
struct Progress {
    feeds: usize,
    bytes: u64,
    done_feeds: usize,
    done_bytes: u64,
    started: Instant,
    printed: Instant,
    tty: bool,
}

impl Progress {
    fn new(feeds: usize, bytes: u64) -> Self {
        let now = Instant::now();
        Self {
            feeds,
            bytes,
            done_feeds: 0,
            done_bytes: 0,
            started: now,
            printed: now,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn feed_done(&mut self, user: &str, bytes: u64) {
        self.done_feeds += 1;
        self.done_bytes += bytes;
        let every = if self.tty { 0.2 } else { 5.0 };
        let last = self.done_feeds == self.feeds;
        if self.printed.elapsed().as_secs_f64() < every && !last {
            return;
        }
        self.printed = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done_bytes as f64 / secs;
        let left = if rate > 0.0 {
            format!(
                "{:.0} s left",
                self.bytes.saturating_sub(self.done_bytes) as f64 / rate
            )
        } else {
            "time left unknown".into()
        };
        let line = format!(
            "{user}: feeds {}/{}, {:.1}/{:.1} MiB, {:.1} MiB/s, {left}",
            self.done_feeds,
            self.feeds,
            self.done_bytes as f64 / 1048576.0,
            self.bytes as f64 / 1048576.0,
            rate / 1048576.0
        );
        if self.tty {
            eprint!("\r{line}   ");
            if last {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    }
}

/// The size of a feed's source files (0 where unknown: MySQL tables, virtual feeds).
fn source_bytes(args: &ImportArgs, f: &FeedRow) -> u64 {
    let size = |p: PathBuf| fs::metadata(p).map_or(0, |m| m.len());
    match (f.engine, &args.phpfina, &args.phptimeseries) {
        (5, Some(dir), _) => {
            size(dir.join(format!("{}.meta", f.id))) + size(dir.join(format!("{}.dat", f.id)))
        }
        (2, _, Some(dir)) => size(dir.join(format!("feed_{}.MYD", f.id))),
        _ => 0,
    }
}

/// One user's summary line (JSON on stdout).
struct Report<'a> {
    user: &'a ImportedUser,
    /// The account's id here (the emoncms id where it was free).
    here: i64,
    accounts: &'a Tally,
    feeds: &'a Tally,
    inputs: &'a Tally,
    bytes: u64,
    dry: bool,
}

fn report(r: Report<'_>) {
    let part = |t: &Tally| json!({"created": t.created, "unchanged": t.unchanged, "conflicts": t.conflicts, "errors": t.errors});
    println!(
        "{}",
        json!({
            "user": r.user.username,
            "id": r.user.id,
            "id_here": r.here,
            "dry_run": r.dry,
            "account": part(r.accounts),
            "feeds": part(r.feeds),
            "inputs": part(r.inputs),
            "data_bytes": r.bytes,
        })
    );
}

async fn would_user(catalog: &Catalog, u: &ImportedUser) -> anyhow::Result<(Imported, i64)> {
    Ok(match catalog.user_by_username(&u.username).await? {
        Some(e) if e.apikey_write == u.apikey_write && e.apikey_read == u.apikey_read => {
            (Imported::Unchanged, e.id)
        }
        Some(e) => (
            Imported::Conflict(format!(
                "username {:?} already exists here with other apikeys",
                u.username
            )),
            e.id,
        ),
        None => (Imported::Created, u.id),
    })
}

async fn would_feed(catalog: &Catalog, f: &FeedRow) -> Result<Imported, String> {
    Ok(
        match catalog.feed_by_id(f.id).await.map_err(|e| e.to_string())? {
            None => Imported::Created,
            Some(e) if e.userid == f.userid && e.name == f.name && e.engine == f.engine => {
                Imported::Unchanged
            }
            Some(e) => Imported::Conflict(format!(
                "feed id {} is already {}:{} here",
                f.id, e.tag, e.name
            )),
        },
    )
}

async fn read_users(db: &MySqlPool, wanted: &[String]) -> anyhow::Result<Vec<ImportedUser>> {
    let rows = sqlx::query(
        "SELECT CAST(id AS SIGNED) AS id, username, COALESCE(email,'') AS email, password, \
         COALESCE(salt,'') AS salt, apikey_write, apikey_read, CAST(COALESCE(admin,0) AS SIGNED) AS admin, \
         COALESCE(timezone,'UTC') AS timezone FROM users ORDER BY id",
    )
    .fetch_all(db)
    .await
    .context("reading emoncms's users table")?;
    let all = wanted.is_empty() || wanted.iter().any(|w| w == "all");
    let mut out = Vec::new();
    for r in rows {
        let u = ImportedUser {
            id: r.try_get("id")?,
            username: r.try_get("username")?,
            email: r.try_get("email")?,
            password: r.try_get("password")?,
            salt: r.try_get("salt")?,
            apikey_write: r.try_get("apikey_write")?,
            apikey_read: r.try_get("apikey_read")?,
            admin: r.try_get::<i64, _>("admin")? != 0,
            timezone: r.try_get("timezone")?,
        };
        if all || wanted.iter().any(|w| w.eq_ignore_ascii_case(&u.username)) {
            out.push(u);
        }
    }
    Ok(out)
}

async fn read_feeds(db: &MySqlPool, userid: i64) -> anyhow::Result<Vec<FeedRow>> {
    let rows = sqlx::query(
        "SELECT CAST(id AS SIGNED) AS id, CAST(userid AS SIGNED) AS userid, COALESCE(name,'') AS name, \
         COALESCE(tag,'') AS tag, CAST(COALESCE(public,0) AS SIGNED) AS public, CAST(engine AS SIGNED) AS engine, \
         COALESCE(unit,'') AS unit, COALESCE(processList,'') AS processList, \
         CAST(COALESCE(size,0) AS SIGNED) AS size FROM feeds WHERE userid = ? ORDER BY id",
    )
    .bind(userid)
    .fetch_all(db)
    .await
    .context("reading emoncms's feeds table")?;
    rows.iter()
        .map(|r| {
            Ok(FeedRow {
                id: r.try_get("id")?,
                userid: r.try_get("userid")?,
                name: r.try_get("name")?,
                tag: r.try_get("tag")?,
                public: r.try_get::<i64, _>("public")? != 0,
                engine: r.try_get("engine")?,
                unit: r.try_get("unit")?,
                process_list: r.try_get("processList")?,
                size: r.try_get("size")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("decoding a feeds row")
}

/// Each feed's last (time, value) as emoncms's `feeds` table has it (set where time is).
async fn read_feed_lasts(
    db: &MySqlPool,
    userid: i64,
) -> anyhow::Result<Vec<(u32, i64, Option<f64>)>> {
    let rows = sqlx::query(
        "SELECT CAST(id AS SIGNED) AS id, CAST(time AS SIGNED) AS time, CAST(value AS DOUBLE) AS value \
         FROM feeds WHERE userid = ? AND time IS NOT NULL AND time > 0",
    )
    .bind(userid)
    .fetch_all(db)
    .await
    .context("reading emoncms's feeds table")?;
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get("id")?;
            Ok((
                u32::try_from(id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                r.try_get("time")?,
                r.try_get("value")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("decoding a feeds row")
}

/// Inputs, each with its last (time, value) when emoncms's table has one (with Redis on, these
/// columns lag behind; they are what there is).
type InputWithLast = (InputRow, Option<(i64, Option<f64>)>);

async fn read_inputs(db: &MySqlPool, userid: i64) -> anyhow::Result<Vec<InputWithLast>> {
    let rows = sqlx::query(
        "SELECT CAST(id AS SIGNED) AS id, CAST(userid AS SIGNED) AS userid, COALESCE(nodeid,'') AS nodeid, \
         COALESCE(name,'') AS name, COALESCE(description,'') AS description, \
         COALESCE(processList,'') AS processList, CAST(time AS SIGNED) AS time, \
         CAST(value AS DOUBLE) AS value FROM input WHERE userid = ? ORDER BY id",
    )
    .bind(userid)
    .fetch_all(db)
    .await
    .context("reading emoncms's input table")?;
    rows.iter()
        .map(|r| {
            let time: Option<i64> = r.try_get("time")?;
            let value: Option<f64> = r.try_get("value")?;
            let row = InputRow {
                id: r.try_get("id")?,
                userid: r.try_get("userid")?,
                nodeid: r.try_get("nodeid")?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                process_list: r.try_get("processList")?,
            };
            Ok((row, time.filter(|t| *t > 0).map(|t| (t, value))))
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("decoding an input row")
}

/// Puts one feed's data in place; returns the bytes placed.
async fn feed_data(
    db: &MySqlPool,
    args: &ImportArgs,
    dd: &DataDir,
    f: &FeedRow,
) -> anyhow::Result<u64> {
    let id = f.id;
    match f.engine {
        5 => {
            let src = args
                .phpfina
                .as_deref()
                .context("a PHPFina feed needs --phpfina DIR")?;
            let meta = place(
                &src.join(format!("{id}.meta")),
                &dd.phpfina_dir().join(format!("{id}.meta")),
                args,
            )?;
            let dat = place(
                &src.join(format!("{id}.dat")),
                &dd.phpfina_dir().join(format!("{id}.dat")),
                args,
            )?;
            Ok(meta + dat)
        }
        2 => {
            let src = args
                .phptimeseries
                .as_deref()
                .context("a PHPTimeSeries feed needs --phptimeseries DIR")?;
            let name = format!("feed_{id}.MYD");
            place(&src.join(&name), &dd.phptimeseries_dir().join(&name), args)
        }
        0 => {
            // The table name is built from an integer id, so nothing from the data reaches it.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(time AS SIGNED) AS time, CAST(data AS DOUBLE) AS data FROM feed_{id} ORDER BY time"
            )))
            .fetch_all(db)
            .await
            .with_context(|| format!("reading MySQL table feed_{id}"))?;
            let mut bytes = Vec::with_capacity(rows.len() * 9);
            for r in rows {
                let t: i64 = r.try_get("time")?;
                let v: f64 = r.try_get("data")?;
                bytes.push(0xF9);
                bytes.extend_from_slice(
                    &u32::try_from(t).context("time outside u32")?.to_le_bytes(),
                );
                bytes.extend_from_slice(&(v as f32).to_le_bytes());
            }
            let to = dd.phptimeseries_dir().join(format!("feed_{id}.MYD"));
            write_new(&to, &bytes, args.dry_run)
        }
        // Virtual feeds: the process list is the feed.
        7 => Ok(0),
        e => bail!(
            "engine {e} is not supported by ynni (PHPFina 5, PHPTimeSeries 2, MySQL 0, virtual 7)"
        ),
    }
}

/// Copies (or hard-links) a feed file. Already there with the same bytes: nothing to do; with
/// other bytes: an error, nothing overwritten.
fn place(from: &Path, to: &Path, args: &ImportArgs) -> anyhow::Result<u64> {
    let len = fs::metadata(from)
        .with_context(|| format!("reading {}", from.display()))?
        .len();
    if to.exists() {
        let same = fs::read(from).with_context(|| format!("reading {}", from.display()))?
            == fs::read(to).with_context(|| format!("reading {}", to.display()))?;
        if same {
            return Ok(0);
        }
        bail!("{} already exists with other data", to.display());
    }
    if args.dry_run {
        return Ok(len);
    }
    if args.link && fs::hard_link(from, to).is_ok() {
        return Ok(len);
    }
    // Through a temporary name, synced, then renamed: a crash never leaves half a file that a
    // second run would take for a conflict.
    let tmp: PathBuf = to.with_extension("import-tmp");
    fs::copy(from, &tmp).with_context(|| format!("copying {}", from.display()))?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", tmp.display()))?;
    fs::rename(&tmp, to).with_context(|| format!("renaming into {}", to.display()))?;
    Ok(len)
}

/// Writes a file that must not exist yet (through a temporary name, synced, then renamed).
fn write_new(to: &Path, bytes: &[u8], dry_run: bool) -> anyhow::Result<u64> {
    if let Ok(existing) = fs::read(to) {
        if existing == bytes {
            return Ok(0);
        }
        bail!("{} already exists with other data", to.display());
    }
    if dry_run {
        return Ok(bytes.len() as u64);
    }
    let tmp: PathBuf = to.with_extension("import-tmp");
    let mut f = fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, to).with_context(|| format!("renaming into {}", to.display()))?;
    Ok(bytes.len() as u64)
}
