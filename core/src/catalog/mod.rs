//! The catalog: users, keys, sessions, devices, inputs, feeds and process lists in SQL.
//!
//! SQLite in WAL mode under the data dir is the embedded default; every write is a single
//! statement or a transaction, so a crash leaves either the old or the new row. Several
//! processes may open the same catalog (the server and `ynni user add`): SQLite serialises
//! writers and `busy_timeout` makes a contended writer wait instead of failing.
//!
//! PostgreSQL holds the catalog of a cluster (DESIGN §5), so ids are unique across every node.
//! Each statement is written once, in the SQL both accept: `$1`, `$2`… placeholders numbered
//! in the order they first appear (SQLite numbers named parameters by first appearance),
//! `ON CONFLICT` rather than `INSERT OR …`, flags tested by truth (`WHERE public`) rather than
//! against 1, usernames compared through `lower()`, and `processList` selected as
//! `"processList"` (PostgreSQL folds the unquoted column name to lower case). [`on_db!`] runs
//! a statement on whichever pool the catalog has; each backend has its own migrations.

pub mod apps;
mod creations;
pub mod dashboards;
mod devices;
mod feeds;
mod import;
mod inputs;
mod ledger;
mod sessions;
mod usage;
mod users;

use std::path::Path;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Encode, FromRow, SqlSafeStr, Type};

pub use apps::{AppRow, ShareRow, ShareScope, share_token_hash};
pub use creations::{CreationLock, WAIT as CREATION_WAIT};
pub use dashboards::{DashboardFields, DashboardRow};
pub use devices::DeviceRow;
pub use feeds::{FeedRow, PendingFiles};
pub use import::{Imported, ImportedUser};
pub use inputs::InputRow;
pub use ledger::{
    LedgerEntry, LedgerRefusal, LedgerTx, NewLedgerTx, PlanChange, PlanHistory, Posted,
};
pub use sessions::Session;
pub use usage::{Handled, UsageDay};
pub use users::{CreateRefusal, KeyKind, NewUser, ProfileUpdate, User};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The catalog's database.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the catalog's pool, whichever backend it is: the body is
/// the same text for both and sqlx infers each backend's types from the pool.
macro_rules! on_db {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            $crate::catalog::Db::Sqlite($p) => $body,
            $crate::catalog::Db::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_db;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("catalog schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Random(#[from] crate::keys::RandomError),
    #[error("{0}")]
    Password(#[from] crate::password::PasswordError),
    /// Another creation of the account held its lock for all of `CREATION_WAIT`.
    #[error("another creation of this account is still running")]
    CreationBusy,
    /// Other nodes kept taking the statement number this one computed.
    #[error("statement numbering kept meeting other nodes'")]
    NumberingBusy,
}

impl CatalogError {
    /// True when the same call may succeed later (a locked or busy database), false when
    /// retrying cannot help.
    pub fn is_retryable(&self) -> bool {
        match self {
            // SQLite's BUSY and LOCKED; PostgreSQL's serialization failure and deadlock.
            CatalogError::Db(sqlx::Error::Database(e)) => {
                matches!(
                    e.code().as_deref(),
                    Some("5") | Some("6") | Some("40001") | Some("40P01")
                )
            }
            CatalogError::Db(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => true,
            CatalogError::CreationBusy | CatalogError::NumberingBusy => true,
            _ => false,
        }
    }
}

/// Handle to the catalog database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Catalog {
    db: Db,
    /// Apikey → account and (SQLite only) feed id → feed row, so a post or a graph does not
    /// cost a database query. Emptied by every change to an account or a feed row made through
    /// this handle
    /// (this process is the only one that changes them; `ynni user add` in another process
    /// only adds accounts, and only rows that exist are remembered), so a regenerated key
    /// stops working and a feed made private stops being served at once.
    keys: std::sync::Arc<std::sync::RwLock<KeyCache>>,
    /// Where the accounts' creation locks are taken (`creations`).
    creations: creations::Locks,
}

/// Remembered apikeys and feed rows. `generation` counts changes: a lookup that started before
/// a change must not store what it read.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    pub generation: u64,
    pub map: std::collections::HashMap<String, (User, KeyKind)>,
    pub feeds: std::collections::HashMap<i64, feeds::FeedRow>,
    /// Whether lookups may be remembered: always with SQLite; with PostgreSQL only while this
    /// node hears the other nodes' changes.
    pub enabled: bool,
    /// Whether feed rows may be remembered: with SQLite only. In a cluster a feed made public
    /// on one node must be readable through every node at once (a link shared right after),
    /// which an announcement a few milliseconds late would not give.
    pub feeds_enabled: bool,
}

impl Catalog {
    /// Opens (creating if missing) the SQLite catalog at `path` and brings its schema up to
    /// date.
    pub async fn open_sqlite(path: &Path) -> Result<Self, CatalogError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable against process crashes; FULL adds power-cut safety for
            // the rare catalog writes at the cost of one more fsync each, worth it here.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        let keys = KeyCache {
            enabled: true,
            feeds_enabled: true,
            ..KeyCache::default()
        };
        Ok(Self {
            db: Db::Sqlite(pool),
            keys: std::sync::Arc::new(std::sync::RwLock::new(keys)),
            creations: creations::Locks::beside(path),
        })
    }

    /// Writes a consistent copy of the SQLite catalog `db` to the new file `dest` while
    /// other processes may be writing it (SQLite's `VACUUM INTO`, which reads one snapshot),
    /// and returns the ids of the feeds the copy holds.
    pub async fn snapshot_sqlite(db: &Path, dest: &Path) -> Result<Vec<i64>, CatalogError> {
        use sqlx::Connection;
        let options = SqliteConnectOptions::new()
            .filename(db)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        // The copy holds keys and password hashes: made readable by its owner only before
        // SQLite writes it (an empty file is one `VACUUM INTO` accepts; it would create the
        // file with the umask's mode).
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .map_err(sqlx::Error::Io)?;
        }
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        sqlx::query("VACUUM INTO ?")
            .bind(dest.to_string_lossy().into_owned())
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let copy = SqliteConnectOptions::new().filename(dest).read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&copy).await?;
        let ids = sqlx::query_scalar::<_, i64>("SELECT id FROM feeds")
            .fetch_all(&mut conn)
            .await?;
        conn.close().await?;
        Ok(ids)
    }

    /// Opens the PostgreSQL catalog at `url` (a cluster's shared catalog) and brings its
    /// schema up to date.
    pub async fn open_postgres(url: &str) -> Result<Self, CatalogError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        let keys: std::sync::Arc<std::sync::RwLock<KeyCache>> = Default::default();
        tokio::spawn(listen_for_key_changes(
            pool.clone(),
            std::sync::Arc::downgrade(&keys),
        ));
        Ok(Self {
            db: Db::Postgres(pool),
            keys,
            creations: creations::Locks::Postgres(creations::pool(url)?),
        })
    }

    /// Whether lookups are remembered now: always with SQLite; with PostgreSQL while this
    /// node hears the other nodes' account changes.
    pub fn remembers_keys(&self) -> bool {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).enabled
    }

    /// Runs a trivial statement: whether the catalog answers (the readiness probe).
    pub async fn ping(&self) -> Result<(), CatalogError> {
        on_db!(&self.db, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Waits for in-flight statements and closes every connection.
    pub async fn close(&self) {
        on_db!(&self.db, p => p.close().await);
        if let creations::Locks::Postgres(p) = &self.creations {
            p.close().await;
        }
    }

    // The runners below exist so each catalog method states only its SQL and its values; the
    // bind-execute-decode steps and their error type live here once. They return sqlx's error
    // so a caller can still tell a unique-constraint clash from a failure.

    /// Runs `sql` with `a` bound to its placeholder; returns how many rows it changed.
    async fn execute1<'t, A>(&self, sql: &'static str, a: A) -> Result<u64, sqlx::Error>
    where
        A: 't + Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>,
    {
        Ok(on_db!(&self.db, p => sqlx::query(sql).bind(a).execute(p).await?.rows_affected()))
    }

    /// Runs `sql` with `a` and `b` bound to its placeholders in that order (typically
    /// `UPDATE … SET column = $1 WHERE id = $2`); returns how many rows it changed.
    async fn execute2<'t, A, B>(&self, sql: &'static str, a: A, b: B) -> Result<u64, sqlx::Error>
    where
        A: 't + Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>,
        B: 't + Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>,
    {
        Ok(
            on_db!(&self.db, p => sqlx::query(sql).bind(a).bind(b).execute(p).await?.rows_affected()),
        )
    }

    /// The count `sql` (a `SELECT COUNT(*) …`) gives with `value` bound.
    async fn select_count<'t, A>(&self, sql: &'static str, value: A) -> Result<i64, sqlx::Error>
    where
        A: 't + Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>,
    {
        on_db!(&self.db, p => sqlx::query_scalar(sql).bind(value).fetch_one(p).await)
    }

    /// Every row `sql` selects with `value` bound.
    async fn select_all<'t, T, A>(
        &self,
        sql: impl SqlSafeStr,
        value: A,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
        A: 't + Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>,
    {
        on_db!(&self.db, p => sqlx::query_as(sql).bind(value).fetch_all(p).await)
    }

    /// The first row `sql` selects with `value` bound, if any.
    async fn select_optional<'t, T, A>(
        &self,
        sql: impl SqlSafeStr,
        value: A,
    ) -> Result<Option<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
        A: 't + Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>,
    {
        on_db!(&self.db, p => sqlx::query_as(sql).bind(value).fetch_optional(p).await)
    }
}

/// The PostgreSQL channel on which nodes announce account changes.
const KEY_CHANNEL: &str = "ynni_catalog_keys";

/// Empties the remembered keys and feed rows; a lookup that started before cannot store what it
/// read.
pub(crate) fn forget_keys(keys: &std::sync::RwLock<KeyCache>) {
    let mut cache = keys.write().unwrap_or_else(|p| p.into_inner());
    cache.generation += 1;
    cache.map.clear();
    cache.feeds.clear();
}

/// Tells every node's catalog that an account or a feed row changed (PostgreSQL's NOTIFY,
/// delivered to each listening connection once the change has committed). Sent from a task,
/// as it is called from a guard's `drop`. An account's change is also announced by the
/// database's own trigger in the change's transaction (migration 0010), which nothing can
/// lose; this covers what the trigger does not watch.
pub(crate) fn notify_key_change(pool: &PgPool) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let pool = pool.clone();
    runtime.spawn(async move {
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(KEY_CHANNEL)
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "could not announce an account change to the other nodes");
        }
    });
}

/// How long the key-change listener waits in silence before it asks its connection to
/// answer, and how long the answer may take before the connection counts as lost (and the
/// key cache is switched off until a new one listens).
const LISTEN_QUIET: Duration = Duration::from_secs(10);
const LISTEN_PROBE: Duration = Duration::from_secs(5);

/// Empties this node's key cache whenever any node announces an account change, for as long as
/// the catalog exists. While the listening connection is down nothing would be heard, so the
/// cache is emptied and switched off until it is listening again.
async fn listen_for_key_changes(pool: PgPool, keys: std::sync::Weak<std::sync::RwLock<KeyCache>>) {
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(KEY_CHANNEL).await?;
            let Some(cache) = keys.upgrade() else {
                return Ok::<bool, sqlx::Error>(false);
            };
            forget_keys(&cache);
            cache.write().unwrap_or_else(|p| p.into_inner()).enabled = true;
            drop(cache);
            loop {
                // `try_recv`, not `recv`: `recv` reconnects by itself and carries on, and what
                // was announced while the connection was down is never heard. A lost
                // connection ends this listening, so the cache is switched off until a new
                // one listens.
                let heard = match tokio::time::timeout(LISTEN_QUIET, listener.try_recv()).await {
                    Ok(heard) => heard?,
                    // Nothing sent to a listener, no keepalive: a connection dropped without a
                    // reset (a database host gone, a NAT forgetting it) would be waited on for
                    // good, the cache trusted all that time. Quiet, it is asked to answer.
                    Err(_) => {
                        let asked = sqlx::query("SELECT 1").execute(&mut listener);
                        match tokio::time::timeout(LISTEN_PROBE, asked).await {
                            Ok(answered) => {
                                answered?;
                                continue;
                            }
                            Err(_) => None,
                        }
                    }
                };
                if heard.is_none() {
                    return Err(sqlx::Error::Protocol(
                        "the listening connection was lost".into(),
                    ));
                }
                match keys.upgrade() {
                    Some(cache) => forget_keys(&cache),
                    None => return Ok(false),
                }
            }
        };
        match listening.await {
            Ok(_) => return,
            // The catalog is closing (the server stops): nothing is lost, nothing to retry.
            Err(sqlx::Error::PoolClosed) => return,
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                tracing::warn!(error = %e, "catalog key-change listener lost; retrying");
                match keys.upgrade() {
                    Some(cache) => {
                        forget_keys(&cache);
                        cache.write().unwrap_or_else(|p| p.into_inner()).enabled = false;
                    }
                    None => return,
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// An update's outcome where a unique constraint may refuse it: `false` for the clash.
pub(crate) fn unless_unique_clash<T>(result: Result<T, sqlx::Error>) -> Result<bool, CatalogError> {
    match result {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
pub(crate) async fn test_user(cat: &Catalog, name: &str) -> User {
    let u = NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        password_hash: "$argon2id$placeholder-for-catalog-tests".into(),
        timezone: "UTC".into(),
        admin: false,
    };
    cat.create_user(&u, false)
        .await
        .expect("db")
        .expect("created")
}

#[cfg(test)]
pub(crate) async fn test_catalog() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = Catalog::open_sqlite(&dir.path().join("catalog.sqlite"))
        .await
        .expect("open catalog");
    (dir, cat)
}
