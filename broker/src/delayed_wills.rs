//! MQTT 5 wills with a delay, waiting to be sent.
//!
//! A will with a delay is sent once the delay has passed, unless the same client is back
//! before (MQTT 5, 3.1.3.2.2). Each waits in a task of its own, so they are bounded here: one
//! per client id of an account (a client that connects and drops again replaces its own
//! earlier will, which its return had cancelled anyway), and at most a set number per account
//! (its connection limit), past which a will is sent at once rather than held. A client that
//! connects again cancels its waiting will at once, so the task and its payload go then, not
//! when the delay would have ended. Without these bounds one account connecting and dropping
//! in a loop with new client ids held a task and up to 16 KiB per connection for an hour.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::task::AbortHandle;

type Key = (i64, String);

/// The delayed wills of every account.
#[derive(Default)]
pub(crate) struct DelayedWills {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next: u64,
    waiting: HashMap<Key, (u64, AbortHandle)>,
    per_user: HashMap<i64, usize>,
}

/// A place for one delayed will; the task that holds it calls [`DelayedWills::done`] with
/// its token when the delay has passed.
pub(crate) struct Slot {
    pub token: u64,
}

impl State {
    fn forget(&mut self, key: &Key) -> Option<AbortHandle> {
        let (_, handle) = self.waiting.remove(key)?;
        if let Some(n) = self.per_user.get_mut(&key.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&key.0);
            }
        }
        Some(handle)
    }
}

impl DelayedWills {
    /// Holds a will of `client_id` for `userid`, in a task `spawn` starts; `false` when the
    /// account already has `limit` waiting (the caller then sends it at once). An earlier will
    /// of the same client is cancelled.
    pub(crate) fn hold(
        &self,
        userid: i64,
        client_id: &str,
        limit: usize,
        spawn: impl FnOnce(Slot) -> AbortHandle,
    ) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let key = (userid, client_id.to_string());
        if let Some(older) = state.forget(&key) {
            older.abort();
        }
        if state.per_user.get(&userid).copied().unwrap_or(0) >= limit {
            return false;
        }
        state.next += 1;
        let token = state.next;
        let handle = spawn(Slot { token });
        state.waiting.insert(key, (token, handle));
        *state.per_user.entry(userid).or_insert(0) += 1;
        true
    }

    /// The will with `token` is due: `true` if it is still the client's (not cancelled or
    /// replaced meanwhile), after which it is no longer counted.
    pub(crate) fn done(&self, userid: i64, client_id: &str, token: u64) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let key = (userid, client_id.to_string());
        if state.waiting.get(&key).is_some_and(|(t, _)| *t == token) {
            state.forget(&key);
            true
        } else {
            false
        }
    }

    /// The client is back: its waiting will, if any, is not sent.
    pub(crate) fn cancel(&self, userid: i64, client_id: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(handle) = state.forget(&(userid, client_id.to_string())) {
            handle.abort();
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.state.lock().map(|s| s.waiting.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Holds a will whose task counts in `sent` once `delay` has passed.
    fn hold(
        wills: &Arc<DelayedWills>,
        user: i64,
        client: &str,
        limit: usize,
        delay: Duration,
        sent: &Arc<AtomicUsize>,
    ) -> bool {
        let (w, s, c) = (wills.clone(), sent.clone(), client.to_string());
        wills.hold(user, client, limit, move |slot| {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if w.done(user, &c, slot.token) {
                    s.fetch_add(1, Ordering::SeqCst);
                }
            })
            .abort_handle()
        })
    }

    #[tokio::test]
    async fn one_will_per_client_a_limit_per_account_and_a_return_cancels() {
        let wills = Arc::new(DelayedWills::default());
        let sent = Arc::new(AtomicUsize::new(0));
        let long = Duration::from_secs(3600);
        assert!(hold(&wills, 1, "a", 2, long, &sent));
        assert!(hold(&wills, 1, "a", 2, long, &sent), "replaces a's own");
        assert_eq!(wills.waiting(), 1);
        assert!(hold(&wills, 1, "b", 2, long, &sent));
        assert!(!hold(&wills, 1, "c", 2, long, &sent), "the account's limit");
        assert!(
            hold(&wills, 2, "c", 2, long, &sent),
            "another account's own limit"
        );
        wills.cancel(1, "a");
        assert_eq!(wills.waiting(), 2);
        assert!(
            hold(&wills, 1, "c", 2, long, &sent),
            "a's place is free again"
        );
        // A due will is sent once, and only if still waiting.
        assert!(hold(&wills, 3, "d", 2, Duration::from_millis(10), &sent));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sent.load(Ordering::SeqCst), 1);
        assert_eq!(wills.waiting(), 3);
    }
}
