//! One account's creations (feeds, devices, apps, dashboards, share links) one at a time.
//!
//! Each kind is capped per account, and the cap is checked by counting what the account has
//! before adding one: two requests of one account at once would both count room for one more
//! and both add it, so an account sending many at once could pass the cap by about as many.
//! Holding this lock from the count to the insert closes that. On this node the account takes
//! a striped lock in the process; with a PostgreSQL catalog it then also takes the catalog's
//! lock for the account (`Catalog::lock_creations`), which holds across nodes: a cluster sends
//! every request of an account to its owner, but while the account moves between nodes the
//! old and the new owner could otherwise both add.
//!
//! The process locks are striped (an account takes the one its id falls on): creations are
//! rare, and a fixed set needs no clean-up as accounts come and go. The process lock is taken
//! first, so one node's creations of an account queue here rather than in the database.

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};
use ynni_core::{Catalog, CatalogError, CreationLock};

const STRIPES: usize = 64;

pub struct CreateLocks {
    stripes: [Arc<Mutex<()>>; STRIPES],
    catalog: Catalog,
}

/// While held, the account's creations are this caller's alone (see the module doc). Dropped,
/// it gives the catalog's lock back before the node's, so the account's next creation here
/// does not find the catalog's still taken.
pub struct Creation {
    held: Option<(CreationLock, OwnedMutexGuard<()>)>,
}

impl Drop for Creation {
    fn drop(&mut self) {
        let Some((catalog, node)) = self.held.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn(async move {
                catalog.release().await;
                drop(node);
            }));
        }
    }
}

impl CreateLocks {
    pub fn new(catalog: Catalog) -> Self {
        Self {
            stripes: std::array::from_fn(|_| Arc::new(Mutex::new(()))),
            catalog,
        }
    }

    /// Waits until `userid`'s creations are this caller's alone, until the guard is dropped.
    /// The whole wait (for this node's earlier creations of accounts on the same stripe, then
    /// for the catalog's lock) is bounded by `ynni_core::catalog::CREATION_WAIT`, after which
    /// it answers [`CatalogError::CreationBusy`]; it fails sooner when the database is
    /// unreachable.
    pub async fn lock(&self, userid: i64) -> Result<Creation, CatalogError> {
        let deadline = tokio::time::Instant::now() + ynni_core::catalog::CREATION_WAIT;
        let stripe = usize::try_from(userid.rem_euclid(STRIPES as i64)).unwrap_or(0);
        let node = tokio::time::timeout_at(deadline, self.stripes[stripe].clone().lock_owned())
            .await
            .map_err(|_| CatalogError::CreationBusy)?;
        let catalog = self.catalog.lock_creations_by(userid, deadline).await?;
        Ok(Creation {
            held: Some((catalog, node)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_accounts_creations_wait_for_each_other_and_others_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog = Catalog::open_sqlite(&dir.path().join("catalog.sqlite"))
            .await
            .expect("catalog");
        let locks = CreateLocks::new(catalog);
        let held = locks.lock(7).await.expect("lock");
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock(7)).await;
        assert!(same.is_err(), "a second creation of account 7 went ahead");
        let other = tokio::time::timeout(Duration::from_millis(50), locks.lock(8)).await;
        assert!(other.is_ok(), "account 8 waited for account 7");
        drop(other);
        drop(held);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), locks.lock(-7))
                .await
                .is_ok()
        );
    }
}
