//! One account's creations one at a time across every node sharing a PostgreSQL catalog.
//!
//! Caps on what an account may create (feeds, devices, apps, dashboards, share links) are
//! checked by counting what it has before adding one, so two creations of one account must not
//! overlap from the count to the insert. On one node a lock in the process does that; in a
//! cluster an account's requests all reach its owner, except while the account moves between
//! nodes, when the old and the new owner may both add. [`Catalog::lock_creations`] closes that
//! gap in the database every node shares: it takes PostgreSQL's session advisory lock for the
//! account, on a connection of a small pool of its own (so holders waiting for the main pool
//! can never starve it), and gives it back when the guard is dropped.
//!
//! A connection whose lock state is unknown (the wait was abandoned or failed, or the unlock
//! failed) is closed rather than pooled: the server then ends the session, and its locks with
//! it, so no account stays locked behind a connection nobody uses. A wait gives up after
//! [`WAIT`] (`lock_timeout`). SQLite catalogs serve one node only, and need nothing here.

use std::time::Duration;

use sqlx::Executor;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions, Postgres};

use super::{Catalog, CatalogError, Db};

/// The first key of ynni's advisory locks (ASCII "ynni"); the second is the account's id.
const CLASS: i32 = 0x796e_6e69;
/// How long a creation waits for another of its account's before it fails.
pub const WAIT: Duration = Duration::from_secs(10);
/// Connections held by lock holders at once, per node; more creations wait for one.
const CONNECTIONS: u32 = 4;

/// While held, no other creation of the account may run on any node (see the module doc).
#[must_use = "the lock is given back when this is dropped"]
pub struct CreationLock {
    held: Option<(PoolConnection<Postgres>, i32)>,
}

/// The creation locks' own pool, opened lazily: most nodes create rarely.
pub(super) fn pool(url: &str) -> Result<PgPool, CatalogError> {
    let wait = format!("SET lock_timeout = '{}ms'", WAIT.as_millis());
    Ok(PgPoolOptions::new()
        .max_connections(CONNECTIONS)
        .acquire_timeout(WAIT)
        .after_connect(move |conn, _| {
            let wait = wait.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(wait)).await?;
                Ok(())
            })
        })
        .connect_lazy(url)?)
}

/// The second key for `userid`: ids past 32 bits share a lock with another account, which
/// only makes one wait for the other.
fn key(userid: i64) -> i32 {
    userid as u32 as i32
}

/// Closes the connection when dropped unless disarmed: used while the lock's state on it is not
/// known.
struct CloseUnlessKept(Option<PoolConnection<Postgres>>);

impl Drop for CloseUnlessKept {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

impl Catalog {
    /// Waits until no other creation of `userid` runs on any node sharing this catalog, and
    /// holds that until the guard is dropped (see the module doc). Immediate with SQLite.
    pub async fn lock_creations(&self, userid: i64) -> Result<CreationLock, CatalogError> {
        let (Db::Postgres(_), Some(pool)) = (&self.db, &self.creations) else {
            return Ok(CreationLock { held: None });
        };
        let key = key(userid);
        let mut conn = CloseUnlessKept(Some(pool.acquire().await?));
        if let Some(c) = conn.0.as_mut() {
            sqlx::query("SELECT pg_advisory_lock($1, $2)")
                .bind(CLASS)
                .bind(key)
                .execute(&mut **c)
                .await?;
        }
        Ok(CreationLock {
            held: conn.0.take().map(|c| (c, key)),
        })
    }
}

impl Drop for CreationLock {
    fn drop(&mut self) {
        let Some((mut conn, key)) = self.held.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left to unlock on: ending the connection ends the session.
            drop(conn.detach());
            return;
        };
        runtime.spawn(async move {
            let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1, $2)")
                .bind(CLASS)
                .bind(key)
                .fetch_one(&mut *conn)
                .await;
            if !matches!(unlocked, Ok(true)) {
                tracing::warn!(
                    key,
                    "a creation lock was not given back; closing its session"
                );
                conn.close_on_drop();
            }
        });
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
