//! One account's creations one at a time across every node sharing a PostgreSQL catalog.
//!
//! Caps on what an account may create (feeds, devices, apps, dashboards, share links) are
//! checked by counting what it has before adding one, so two creations of one account must not
//! overlap from the count to the insert. On one node a lock in the process does that; in a
//! cluster an account's requests all reach its owner, except while the account moves between
//! nodes, when the old and the new owner may both add. [`Catalog::lock_creations`] closes that
//! gap in the database every node shares: it takes PostgreSQL's session advisory lock for the
//! account, on a connection of a small pool of its own (so holders waiting for the main pool
//! can never starve it), and [`CreationLock::release`] (or dropping the guard) gives it back.
//!
//! The lock is tried, not waited for in the server: a node asks again every few milliseconds
//! for up to [`WAIT`], then answers "busy" (retryable). So no server session waits on behalf
//! of a request that is gone, and the wait is bounded on the node. A connection whose lock
//! state is unknown (a try abandoned part way, a failed unlock) is closed rather than pooled:
//! the server ends the session, and its locks with it, so no account stays locked behind a
//! connection nobody uses. Session locks need sessions: a PostgreSQL reached through a
//! pooler in transaction mode (PgBouncer's `pool_mode = transaction`) cannot hold them.
//!
//! A SQLite catalog serves one node, but the command line (`ynni billing refund`, for one)
//! writes it from other processes while the server runs. Its locks are `flock`s on files
//! beside it (`<catalog>.locks/<n>`, an account's `n` its id modulo [`FILES`]), tried the same
//! way; the kernel gives one back when its file is closed, or its process ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions, Postgres};
use tokio::time::Instant;

use super::{Catalog, CatalogError, Db};

/// The first key of ynni's advisory locks (ASCII "ynni"); the second is the account's id.
const CLASS: i32 = 0x796e_6e69;
/// How long a creation waits for another of its account's before it answers "busy".
pub const WAIT: Duration = Duration::from_secs(10);
/// The pause between two tries, doubled from the first up to the last.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const LAST_PAUSE: Duration = Duration::from_millis(50);
/// Connections held by lock holders at once, per node; more creations wait for one.
const CONNECTIONS: u32 = 4;

/// Lock files of a SQLite catalog: accounts share one when their ids are equal modulo this.
pub const FILES: u32 = 1024;

/// Where a catalog's creation locks are taken.
#[derive(Clone, Debug)]
pub(super) enum Locks {
    /// Advisory locks, on connections of this pool.
    Postgres(PgPool),
    /// `flock`s on the files in this directory.
    Files(PathBuf),
}

impl Locks {
    /// The lock files beside the SQLite catalog at `path`.
    pub(super) fn beside(path: &Path) -> Self {
        let mut dir = path.as_os_str().to_owned();
        dir.push(".locks");
        Self::Files(PathBuf::from(dir))
    }
}

/// While held, no other creation of the account may run on any node (see the module doc).
#[must_use = "the lock is given back when this is released or dropped"]
pub struct CreationLock {
    held: Option<(PoolConnection<Postgres>, i32)>,
    /// SQLite: the lock file, held open for its `flock` (given back when closed).
    _file: Option<std::fs::File>,
}

/// The creation locks' own pool, opened lazily: most nodes create rarely.
pub(super) fn pool(url: &str) -> Result<PgPool, CatalogError> {
    Ok(PgPoolOptions::new()
        .max_connections(CONNECTIONS)
        .acquire_timeout(WAIT)
        .connect_lazy(url)?)
}

/// The second key for `userid`: ids past 32 bits share a lock with another account, which
/// only makes one wait for the other.
fn key(userid: i64) -> i32 {
    userid as u32 as i32
}

/// How long giving a lock back may take before its session is closed instead (which gives it
/// back too).
const UNLOCK_WAIT: Duration = Duration::from_secs(2);

/// Closes the connection it watches when dropped while armed: the lock state of a connection
/// whose query was abandoned or failed part way is not known, so it must not be pooled.
struct CloseIfAbandoned<'a> {
    conn: &'a mut PoolConnection<Postgres>,
    armed: bool,
}

impl Drop for CloseIfAbandoned<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.conn.close_on_drop();
        }
    }
}

impl Catalog {
    /// Waits until no other creation of `userid` runs on any node sharing this catalog, and
    /// holds that until the guard is released or dropped (see the module doc). Immediate with
    /// SQLite. [`CatalogError::CreationBusy`] after [`WAIT`].
    pub async fn lock_creations(&self, userid: i64) -> Result<CreationLock, CatalogError> {
        self.lock_creations_by(userid, Instant::now() + WAIT).await
    }

    /// [`Catalog::lock_creations`], giving up at `deadline`: a caller that has already waited
    /// (for its node's own lock) passes what is left of its wait.
    pub async fn lock_creations_by(
        &self,
        userid: i64,
        deadline: Instant,
    ) -> Result<CreationLock, CatalogError> {
        let pool = match (&self.db, &self.creations) {
            (Db::Postgres(_), Locks::Postgres(pool)) => pool,
            (_, Locks::Files(dir)) => return lock_file(dir, userid, deadline).await,
            _ => {
                return Ok(CreationLock {
                    held: None,
                    _file: None,
                });
            }
        };
        let key = key(userid);
        let mut pause = FIRST_PAUSE;
        loop {
            // A try cut short at the deadline closes its connection (see `try_lock`).
            match tokio::time::timeout_at(deadline, try_lock(pool, key)).await {
                Ok(Ok(Some(conn))) => {
                    return Ok(CreationLock {
                        held: Some((conn, key)),
                        _file: None,
                    });
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(CatalogError::CreationBusy),
            }
            if Instant::now() + pause > deadline {
                return Err(CatalogError::CreationBusy);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LAST_PAUSE);
        }
    }
}

/// `userid`'s lock file in `dir`, tried until `deadline` as the advisory locks are.
async fn lock_file(
    dir: &Path,
    userid: i64,
    deadline: Instant,
) -> Result<CreationLock, CatalogError> {
    let path = dir.join((key(userid) as u32 % FILES).to_string());
    let mut file = None;
    let mut pause = FIRST_PAUSE;
    loop {
        // Refused while another process is making the file and giving it to the catalog's
        // owner (a moment): tried again, as a lock held is.
        if file.is_none() {
            match open_lock_file(dir, &path) {
                Ok(f) => file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
                Err(e) => return Err(sqlx::Error::Io(e).into()),
            }
        }
        if let Some(f) = &file {
            match f.try_lock() {
                Ok(()) => {
                    return Ok(CreationLock {
                        held: None,
                        _file: file,
                    });
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(sqlx::Error::Io(e).into()),
            }
        }
        if Instant::now() + pause > deadline {
            return Err(CatalogError::CreationBusy);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LAST_PAUSE);
    }
}

/// Opens the lock file `path` in `dir`, making them if missing: for reading and writing, or
/// only reading where this process may not write it (an `flock` on a local filesystem needs
/// no write access). Whoever makes them (`sudo ynni billing …`
/// as root, say), they are given to the catalog's owner, as SQLite gives its `-wal` file, so
/// that the server can make and open them too.
fn open_lock_file(dir: &Path, path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // To read and write where it may (an `flock` over NFS is a POSIX lock, which needs a
    // file open for writing), to read only where it may not (another user's file).
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return std::fs::File::open(path);
        }
        opened => return opened,
    }
    let owner = std::fs::metadata(dir.with_extension(""))
        .ok()
        .map(|m| (m.uid(), m.gid()));
    let give = |p: &Path| {
        if let Some((uid, gid)) = owner {
            // Refused unless this process may (root, or the owner already): then it is the
            // server's own, or its own to give.
            let _ = std::os::unix::fs::chown(p, Some(uid), Some(gid));
        }
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        // Best effort, as the owner: a filesystem without modes, or a directory another
        // process made a moment before, is used as it is.
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        give(dir);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o644));
    give(path);
    Ok(file)
}

/// One try for `key`'s lock on a connection of its own: the connection holding it, or `None`
/// (the connection back in the pool, known not to hold it) when another session has it. The
/// connection is held only for the try, never through the pause after it.
async fn try_lock(
    pool: &PgPool,
    key: i32,
) -> Result<Option<PoolConnection<Postgres>>, CatalogError> {
    let mut conn = pool.acquire().await?;
    let mut watch = CloseIfAbandoned {
        conn: &mut conn,
        armed: true,
    };
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(CLASS)
        .bind(key)
        .fetch_one(&mut **watch.conn)
        .await?;
    watch.armed = false;
    drop(watch);
    Ok(taken.then_some(conn))
}

impl CreationLock {
    /// Gives the lock back now, and returns once it is given back (or its session is being
    /// closed, which gives it back too).
    pub async fn release(mut self) {
        if let Some((conn, key)) = self.held.take() {
            unlock(conn, key).await;
        }
    }
}

/// Gives `key`'s lock back on `conn`, within [`UNLOCK_WAIT`]; a connection on which that did
/// not surely happen (an error, no answer in time, the unlock abandoned) is closed, which
/// ends its session and its locks.
async fn unlock(mut conn: PoolConnection<Postgres>, key: i32) {
    let mut watch = CloseIfAbandoned {
        conn: &mut conn,
        armed: true,
    };
    let unlocked = tokio::time::timeout(
        UNLOCK_WAIT,
        sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1, $2)")
            .bind(CLASS)
            .bind(key)
            .fetch_one(&mut **watch.conn),
    )
    .await;
    if matches!(unlocked, Ok(Ok(true))) {
        watch.armed = false;
    } else {
        tracing::warn!(
            key,
            "a creation lock was not given back; closing its session"
        );
    }
}

impl Drop for CreationLock {
    fn drop(&mut self) {
        let Some((conn, key)) = self.held.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(unlock(conn, key))),
            // No runtime left to unlock on: ending the connection ends the session.
            Err(_) => drop(conn.detach()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_account_has_a_key_and_neighbours_differ() {
        assert_eq!(key(7), 7);
        assert_ne!(key(7), key(8));
        assert_eq!(key(-1), -1);
        assert_eq!(key(1 << 32 | 5), 5);
    }
}
