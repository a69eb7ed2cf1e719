//! A queue of accounts with work waiting (publish one's Home Assistant discovery again, check
//! one's connections' credentials again), each at most once.
//!
//! These requests come from cheap client actions (a feed renamed, Home Assistant's `online`
//! message, a key regenerated), while serving one costs catalog reads and publishes. On a
//! channel, one account repeating such an action queued work without bound in front of every
//! other account's. Here an account already waiting is not queued again (its one pass serves
//! every request made meanwhile), so the queue holds at most one entry per account, in the
//! order they first asked.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct UserQueue {
    waiting: Mutex<(VecDeque<i64>, HashSet<i64>)>,
    added: Notify,
}

impl UserQueue {
    /// Queues `userid` unless it is already waiting.
    pub fn push(&self, userid: i64) {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if w.1.insert(userid) {
            w.0.push_back(userid);
            drop(w);
            self.added.notify_one();
        }
    }

    /// The account waiting longest, taken off the queue (a request made from now on queues it
    /// again). Cancel-safe: nothing is taken unless it is returned.
    pub async fn pop(&self) -> i64 {
        loop {
            let added = self.added.notified();
            if let Some(userid) = self.try_pop() {
                return userid;
            }
            added.await;
        }
    }

    fn try_pop(&self) -> Option<i64> {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let userid = w.0.pop_front()?;
        w.1.remove(&userid);
        Some(userid)
    }

    /// Accounts waiting.
    pub fn len(&self) -> usize {
        self.waiting.lock().map(|w| w.0.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn each_account_waits_once_in_the_order_it_first_asked() {
        let q = UserQueue::default();
        for u in [1, 2, 1, 1, 3, 2] {
            q.push(u);
        }
        assert_eq!(q.len(), 3);
        assert_eq!((q.pop().await, q.pop().await), (1, 2));
        q.push(1);
        assert_eq!((q.pop().await, q.pop().await), (3, 1));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_pop_wakes_on_a_push() {
        let q = Arc::new(UserQueue::default());
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.pop().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.push(7);
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("task");
        assert_eq!(got, 7);
    }
}
