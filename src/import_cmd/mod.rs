//! `ynni import emoncms`: an emoncms 11.x installation's accounts, inputs, feeds and data,
//! read from its MySQL database and its feed directories, into this data directory (or, with
//! `[cluster]`, the cluster's PostgreSQL and shared directory, while no node runs), keeping
//! ids and apikeys so devices, process lists and dashboards go on working.
//!
//! - Accounts keep their id where it is free (otherwise they get a new one and their rows
//!   follow), username, email, time zone, admin flag, password hash (emoncms's salted SHA-256,
//!   replaced by argon2 at the next login) and both apikeys.
//! - Feeds keep id, name, tag, unit, public flag, engine and process list; their data is put
//!   in place before their row is written, so a feed whose data cannot be read is skipped
//!   whole. Engine-0 (MySQL) feeds become variable-interval files.
//! - Inputs keep id, node, name, description and process list.
//! - Devices (emoncms's device module) keep their node and key, so device-key posters go on.
//! - Last values: emoncms's, where they are not older than the data (with Redis on, the SQL
//!   columns lag behind); otherwise the data's own last point.
//!
//! Running it again changes nothing; a different row or file already in place is reported and
//! left alone. `--dry-run` reads everything and writes nothing (it does not even create the
//! data directory).

mod files;
mod progress;
mod source;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::json;
use sqlx::mysql::MySqlPool;
use ynni_config::Settings;
use ynni_core::{Catalog, FeedRow, Imported, ImportedUser, InputRow};
use ynni_ingest::shard::{Router, Seed};
use ynni_storage::emoncms_files::feed_files;
use ynni_storage::{DataDir, Engine, Storage};

use crate::cli::ImportArgs;
use files::{Source, Target};
use progress::Progress;

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

    fn clean(&self) -> bool {
        self.conflicts.is_empty() && self.errors.is_empty()
    }
}

pub async fn emoncms(settings: &Settings, args: &ImportArgs) -> anyhow::Result<()> {
    let db = MySqlPool::connect(&args.mysql)
        .await
        .context("connecting to emoncms's MySQL (--mysql mysql://user:pass@host/emoncms)")?;
    let users = source::users(&db, &args.users).await?;
    if let Some(missing) = args
        .users
        .iter()
        .filter(|w| *w != "all")
        .find(|w| !users.iter().any(|u| u.username.eq_ignore_ascii_case(w)))
    {
        bail!("emoncms has no user {missing:?}");
    }
    if users.is_empty() {
        bail!("emoncms has no users");
    }
    // A cluster: the catalog is its PostgreSQL and the files go to its shared directory.
    if let Some(c) = &settings.cluster {
        crate::cluster_node::refuse_if_running(c).await?;
    }
    let shared = match &settings.cluster {
        Some(c) => Some(crate::cluster_node::SharedPaths::create(&c.shared_dir)?),
        None => None,
    };
    // A dry run into a data directory that does not exist yet touches nothing at all.
    let fresh = args.dry_run && !settings.data_dir.exists();
    let data_dir = if fresh || shared.is_some() {
        None
    } else {
        Some(
            DataDir::open_exclusive(&settings.data_dir)
                .context("opening the data directory (stop `ynni serve` first)")?,
        )
    };
    let catalog = match (&settings.cluster, &data_dir) {
        (Some(c), _) => Some(
            Catalog::open_postgres(&c.postgres)
                .await
                .context("opening the catalog in cluster.postgres")?,
        ),
        (None, Some(d)) => Some(
            Catalog::open_sqlite(&d.catalog_path())
                .await
                .with_context(|| format!("opening catalog {}", d.catalog_path().display()))?,
        ),
        (None, None) => None,
    };
    let (phpfina, phptimeseries): (PathBuf, PathBuf) = match (&shared, &data_dir) {
        (Some(p), _) => (p.phpfina.clone(), p.phptimeseries.clone()),
        (None, Some(d)) => (d.phpfina_dir(), d.phptimeseries_dir()),
        (None, None) => (
            settings.data_dir.join(ynni_storage::FIXED_DIR),
            settings.data_dir.join(ynni_storage::VARIABLE_DIR),
        ),
    };
    let target = Target {
        phpfina: &phpfina,
        phptimeseries: &phptimeseries,
        link: args.link,
        dry_run: args.dry_run,
    };
    let src = Source {
        db: &db,
        phpfina: args.phpfina.as_deref(),
        phptimeseries: args.phptimeseries.as_deref(),
    };

    let dashboards_above = source::max_dashboard_id(&db).await?;
    // Every user's feeds first, so progress can say how much is left.
    let mut all_feeds = Vec::with_capacity(users.len());
    for user in &users {
        all_feeds.push(source::feeds(&db, user.id).await?);
    }
    let mut progress = Progress::new(
        all_feeds.iter().map(Vec::len).sum(),
        all_feeds
            .iter()
            .flatten()
            .map(|(f, _)| source_bytes(args, f))
            .sum(),
    );
    let mut failed = false;
    let mut seeds = Vec::new();
    for (ui, user) in users.iter().enumerate() {
        let mut r = UserReport {
            user: Some(user),
            ..UserReport::default()
        };
        let (outcome, here) = match &catalog {
            Some(c) if !args.dry_run => c.import_user(user).await?,
            Some(c) => would_user(c, user).await?,
            None => (Imported::Created, user.id),
        };
        r.here = here;
        r.account.add(Ok(outcome));
        if !r.account.clean() {
            // Its feeds and inputs would land on someone else's account.
            r.print(args.dry_run);
            failed = true;
            continue;
        }
        let mut seed = Seed::default();
        for (mut feed, last) in std::mem::take(&mut all_feeds[ui]) {
            // Where the emoncms id was taken, the account has another id here.
            feed.userid = here;
            let planned = match &catalog {
                Some(c) => would_feed(c, &feed).await,
                None => Ok(Imported::Created),
            };
            let result = match planned {
                Ok(Imported::Conflict(why)) => Ok(Imported::Conflict(why)),
                Err(e) => Err(e),
                Ok(planned) => match files::place_feed(&src, &target, &feed).await {
                    Err(e) => Err(format!(
                        "feed {} ({}:{}): {e:#}",
                        feed.id, feed.tag, feed.name
                    )),
                    Ok(placed) => {
                        r.bytes += placed.bytes;
                        r.copied_not_linked += placed.copied_not_linked;
                        // emoncms's last value unless the data is newer (stale SQL columns).
                        if let Some((t, v)) = last
                            && placed.end_time.is_none_or(|end| t >= end)
                            && let Ok(id) = u32::try_from(feed.id)
                        {
                            seed.feeds.push((id, t, v));
                        }
                        match &catalog {
                            Some(c) if !args.dry_run => {
                                c.import_feed(&feed).await.map_err(|e| e.to_string())
                            }
                            _ => Ok(planned),
                        }
                    }
                },
            };
            r.feeds.add(result);
            progress.feed_done(&user.username, source_bytes(args, &feed));
        }
        let existing: HashMap<i64, InputRow> = match &catalog {
            Some(c) => c
                .inputs_for_user(here)
                .await?
                .into_iter()
                .map(|i| (i.id, i))
                .collect(),
            None => HashMap::new(),
        };
        for (mut input, last) in source::inputs(&db, user.id).await? {
            input.userid = here;
            let outcome = match &catalog {
                Some(c) if !args.dry_run => c.import_input(&input).await.map_err(|e| e.to_string()),
                _ => Ok(would_input(&existing, &input)),
            };
            if let (Ok(Imported::Created | Imported::Unchanged), Some((t, v))) = (&outcome, last) {
                seed.inputs.push((input.id, t, v));
            }
            r.inputs.add(outcome);
        }
        for mut device in source::devices(&db, user.id).await? {
            device.userid = here;
            r.devices.add(match &catalog {
                Some(c) if !args.dry_run => {
                    c.import_device(&device).await.map_err(|e| e.to_string())
                }
                _ => Ok(Imported::Created),
            });
        }
        for mut app in source::apps(&db, user.id).await? {
            app.userid = here;
            r.apps.add(match &catalog {
                Some(c) if !args.dry_run => c.import_app(&app).await.map_err(|e| e.to_string()),
                _ => Ok(Imported::Created),
            });
        }
        for mut dashboard in source::dashboards(&db, user.id).await? {
            dashboard.userid = here;
            r.dashboards.add(match &catalog {
                Some(c) if !args.dry_run => c
                    .import_dashboard(&dashboard, dashboards_above)
                    .await
                    .map_err(|e| e.to_string()),
                _ => Ok(Imported::Created),
            });
        }
        seeds.push((here, seed));
        failed |= !(r.feeds.clean()
            && r.inputs.clean()
            && r.devices.clean()
            && r.apps.clean()
            && r.dashboards.clean());
        r.print(args.dry_run);
    }
    match (&settings.cluster, &shared, &data_dir, &catalog) {
        _ if args.dry_run => {}
        (Some(c), Some(paths), _, Some(catalog)) => {
            crate::cluster_node::seed_last_values(settings, c, paths, catalog, seeds).await?;
        }
        (None, _, Some(d), Some(c)) => seed_last_values(settings, d, c, seeds).await?,
        _ => {}
    }
    if let Some(c) = catalog {
        c.close().await;
    }
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
                .context("storing the last values")?;
        }
    }
    let flushed = tokio::task::spawn_blocking(move || router.stop())
        .await
        .context("stopping the shard workers")?;
    if !flushed {
        bail!("the last values could not be checkpointed (see the log)");
    }
    Ok(())
}

/// The size of a feed's source files (0 where unknown: MySQL tables, virtual feeds).
fn source_bytes(args: &ImportArgs, f: &FeedRow) -> u64 {
    let (storage, dir) = match Engine::from_id(f.engine) {
        Some(Engine::Fixed) => (Storage::Fixed, &args.phpfina),
        Some(Engine::Variable) => (Storage::Variable, &args.phptimeseries),
        _ => return 0,
    };
    let (Some(dir), Ok(id)) = (dir, u32::try_from(f.id)) else {
        return 0;
    };
    feed_files(storage, dir, id)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

/// One user's summary line (JSON on stdout).
#[derive(Default)]
struct UserReport<'a> {
    user: Option<&'a ImportedUser>,
    /// The account's id here (the emoncms id where it was free).
    here: i64,
    account: Tally,
    feeds: Tally,
    inputs: Tally,
    devices: Tally,
    apps: Tally,
    dashboards: Tally,
    bytes: u64,
    copied_not_linked: usize,
}

impl UserReport<'_> {
    fn print(&self, dry_run: bool) {
        let part = |t: &Tally| json!({"created": t.created, "unchanged": t.unchanged, "conflicts": t.conflicts, "errors": t.errors});
        let user = self.user;
        println!(
            "{}",
            json!({
                "user": user.map(|u| u.username.as_str()),
                "id": user.map(|u| u.id),
                "id_here": self.here,
                "dry_run": dry_run,
                "account": part(&self.account),
                "feeds": part(&self.feeds),
                "inputs": part(&self.inputs),
                "devices": part(&self.devices),
                "apps": part(&self.apps),
                "dashboards": part(&self.dashboards),
                "data_bytes": self.bytes,
                "copied_not_linked": self.copied_not_linked,
            })
        );
    }
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
        // The emoncms id if free; otherwise the next one, which only the import itself learns.
        None => (Imported::Created, u.id),
    })
}

async fn would_feed(catalog: &Catalog, f: &FeedRow) -> Result<Imported, String> {
    Ok(
        match catalog.feed_by_id(f.id).await.map_err(|e| e.to_string())? {
            None => Imported::Created,
            Some(e)
                if e.userid == f.userid
                    && e.name == f.name
                    && e.tag == f.tag
                    && e.engine == f.engine =>
            {
                Imported::Unchanged
            }
            Some(e) => Imported::Conflict(format!(
                "feed id {} is already {}:{} of user {} here",
                f.id, e.tag, e.name, e.userid
            )),
        },
    )
}

fn would_input(existing: &HashMap<i64, InputRow>, i: &InputRow) -> Imported {
    match existing.get(&i.id) {
        None => Imported::Created,
        Some(e) if e.nodeid == i.nodeid && e.name == i.name => Imported::Unchanged,
        Some(e) => Imported::Conflict(format!(
            "input id {} is already {}:{} here",
            i.id, e.nodeid, e.name
        )),
    }
}
