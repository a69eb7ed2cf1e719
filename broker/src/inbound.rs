//! Room for large MQTT payloads waiting for ingest.
//!
//! The ingest queue's places bound how many messages wait, not their bytes: 4,096 places of
//! messages up to [`crate::MAX_PACKET`] would hold a GiB. Payloads past [`SMALL_PAYLOAD`]
//! therefore take their KiB from a budget shared by every connection, and first from their
//! account's share of it, so that one account's clients (many connections, each publishing
//! the largest messages allowed) make only that account wait, never the others. Small
//! payloads, all a device sends, wait for nothing but a place in the queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Payloads up to this size wait for ingest without counting against the budget below: the
/// queue's 4,096 places bound them together (16 MiB), and a device's message is far smaller.
pub const SMALL_PAYLOAD: usize = 4 << 10;
/// KiB of larger payloads waiting for ingest at once, from all connections. A publisher past
/// it waits for room, as it waits for a place in the queue.
pub const INBOUND_BUDGET_KIB: u32 = 64 << 10;
/// KiB of that budget one account's payloads may hold at once: a quarter, so three accounts
/// at their limit still leave room for all others.
pub const ACCOUNT_SHARE_KIB: u32 = INBOUND_BUDGET_KIB / 4;

/// The shared budget and each account's share (kept while the broker runs: a few dozen bytes
/// an account that ever published a large payload).
pub(crate) struct InboundBudget {
    all: Arc<Semaphore>,
    accounts: Mutex<HashMap<i64, Arc<Semaphore>>>,
}

/// A large payload's room, given back when it is dropped (once the payload is decoded).
#[derive(Debug)]
pub struct Room {
    _account: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

impl InboundBudget {
    pub(crate) fn new() -> Self {
        Self {
            all: Arc::new(Semaphore::new(INBOUND_BUDGET_KIB as usize)),
            accounts: Mutex::default(),
        }
    }

    fn share(&self, userid: i64) -> Arc<Semaphore> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts
            .entry(userid)
            .or_insert_with(|| Arc::new(Semaphore::new(ACCOUNT_SHARE_KIB as usize)))
            .clone()
    }

    /// Room for a payload of `len` bytes of `userid`'s: `None` (nothing waited for) for a
    /// small one. The account's share is taken first, so an account at its limit waits
    /// without holding any of the shared budget.
    pub(crate) async fn room(&self, userid: i64, len: usize) -> Option<Room> {
        if len <= SMALL_PAYLOAD {
            return None;
        }
        let kib = u32::try_from(len.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(ACCOUNT_SHARE_KIB);
        let account = self.share(userid).acquire_many_owned(kib).await.ok()?;
        let all = self.all.clone().acquire_many_owned(kib).await.ok()?;
        Some(Room {
            _account: account,
            _all: all,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn waits(budget: &InboundBudget, userid: i64, len: usize) -> bool {
        tokio::time::timeout(Duration::from_millis(50), budget.room(userid, len))
            .await
            .is_err()
    }

    /// Small payloads wait for nothing; larger ones take their KiB until they are dropped; an
    /// account past its share waits while others still get room, and past the shared budget
    /// everyone's large payloads wait.
    #[tokio::test]
    async fn large_payloads_wait_within_their_accounts_share_and_the_budget() {
        let budget = InboundBudget::new();
        assert!(budget.room(1, SMALL_PAYLOAD).await.is_none());
        let big = crate::MAX_PACKET;
        let per_share = ACCOUNT_SHARE_KIB as usize * 1024 / big;
        let mut held = Vec::new();
        for _ in 0..per_share {
            held.push(budget.room(1, big).await.expect("room"));
        }
        assert!(waits(&budget, 1, big).await, "account 1 is at its share");
        assert!(
            budget.room(1, SMALL_PAYLOAD).await.is_none(),
            "small ones pass"
        );
        // Three more accounts fill the shared budget.
        for account in 2..=4 {
            for _ in 0..per_share {
                held.push(budget.room(account, big).await.expect("room"));
            }
        }
        assert!(waits(&budget, 5, big).await, "the shared budget is spent");
        let last = held.pop();
        drop(last);
        assert!(
            budget.room(5, big).await.is_some(),
            "room again once one is dropped"
        );
    }
}
