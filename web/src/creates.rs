//! One account's creations (feeds, devices, apps, dashboards, share links) one at a time on
//! this node.
//!
//! Each kind is capped per account, and the cap is checked by counting what the account has
//! before adding one: two requests of one account at once would both count room for one more
//! and both add it, so an account sending many at once could pass the cap by about as many.
//! Holding this lock from the count to the insert closes that. A cluster sends every request
//! of an account to the node that owns it, so one node's lock covers the account; only while
//! the account moves between nodes could two nodes add at once.
//!
//! The locks are striped (an account takes the one its id falls on): creations are rare, and
//! a fixed set needs no clean-up as accounts come and go.

use tokio::sync::{Mutex, MutexGuard};

const STRIPES: usize = 64;

pub struct CreateLocks([Mutex<()>; STRIPES]);

impl Default for CreateLocks {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Mutex::new(())))
    }
}

impl CreateLocks {
    /// Waits until `userid`'s creations are this caller's alone, until the guard is dropped.
    pub async fn lock(&self, userid: i64) -> MutexGuard<'_, ()> {
        let stripe = usize::try_from(userid.rem_euclid(STRIPES as i64)).unwrap_or(0);
        self.0[stripe].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_accounts_creations_wait_for_each_other_and_others_do_not() {
        let locks = CreateLocks::default();
        let held = locks.lock(7).await;
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
