//! The live connections, by user and client id. A client id is only unique within its user:
//! two users' devices may both call themselves `emonpi`, and neither can disconnect, resume or
//! observe the other's session (the router sees `<userid>/<client id>`). The registry also
//! holds each connection's credentials so that a change of them (a new write apikey, a deleted
//! device key, a rename, a deleted account) closes the connections they no longer open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::{Access, Authenticate, Login};

/// Why the broker closes a connection from its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    /// The same user connected again with the same client id.
    TakenOver,
    /// The credentials the connection opened with no longer open it.
    Revoked,
    /// Cluster mode: the user's shard moved to another node; the client reconnects and is
    /// passed to the new owner.
    Moved,
}

/// How long a new connection waits for the one it replaces to close.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

type Key = (i64, String);

struct Entry {
    id: u64,
    kick: watch::Sender<Option<Kick>>,
    finished: watch::Receiver<bool>,
    login: Login,
    access: Access,
}

#[derive(Default)]
struct Inner {
    live: HashMap<Key, Entry>,
    per_user: HashMap<i64, usize>,
    next_id: u64,
    /// How many times credentials were rechecked ([`Sessions::revalidate`]): a connection
    /// authenticated before a recheck but registered after it was not among those rechecked.
    revalidations: u64,
}

/// A handle to the registry, shared by every listener.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Mutex<Inner>>,
    authenticate: Authenticate,
    per_user_limit: usize,
}

/// One registered connection: dropped when the connection ends.
pub(crate) struct Registration {
    sessions: Sessions,
    key: Key,
    id: u64,
    pub(crate) kicked: watch::Receiver<Option<Kick>>,
    finished: watch::Sender<bool>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RegisterError {
    /// The user has as many connections as allowed.
    TooMany,
}

impl Sessions {
    pub(crate) fn new(authenticate: Authenticate, per_user_limit: usize) -> Self {
        Self {
            inner: Arc::default(),
            authenticate,
            per_user_limit: per_user_limit.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an authenticated connection, first closing the same user's connection with
    /// the same client id (MQTT's session takeover) and waiting for it to go.
    pub(crate) async fn register(
        &self,
        userid: i64,
        client_id: &str,
        login: Login,
        access: Access,
    ) -> Result<Registration, RegisterError> {
        let key = (userid, client_id.to_string());
        let previous = {
            let inner = self.lock();
            match inner.live.get(&key) {
                Some(old) => {
                    let _ = old.kick.send(Some(Kick::TakenOver));
                    Some(old.finished.clone())
                }
                None if inner.per_user.get(&userid).copied().unwrap_or(0)
                    >= self.per_user_limit =>
                {
                    return Err(RegisterError::TooMany);
                }
                None => None,
            }
        };
        if let Some(mut finished) = previous {
            // A connection stuck in a write is dropped by its own timeouts; this bounds the wait.
            let _ = tokio::time::timeout(TAKEOVER_WAIT, finished.wait_for(|f| *f)).await;
        }
        let (kick, kicked) = watch::channel(None);
        let (finished_tx, finished) = watch::channel(false);
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let entry = Entry {
            id,
            kick,
            finished,
            login,
            access,
        };
        if let Some(replaced) = inner.live.insert(key.clone(), entry) {
            // Two connections raced for the same client id: the earlier one goes.
            let _ = replaced.kick.send(Some(Kick::TakenOver));
        } else {
            *inner.per_user.entry(userid).or_default() += 1;
        }
        Ok(Registration {
            sessions: self.clone(),
            key,
            id,
            kicked,
            finished: finished_tx,
        })
    }

    /// Checks every open connection of `userid` again and closes those whose username and
    /// password no longer open the same access (call after any change of the user's name,
    /// keys, devices or the account itself).
    pub async fn revalidate(&self, userid: i64) {
        let open: Vec<(Login, Access, watch::Sender<Option<Kick>>)> = {
            let mut inner = self.lock();
            inner.revalidations += 1;
            inner
                .live
                .iter()
                .filter(|((u, _), _)| *u == userid)
                .map(|(_, e)| (e.login.clone(), e.access.clone(), e.kick.clone()))
                .collect()
        };
        for (login, access, kick) in open {
            let now = (self.authenticate)(Login {
                recheck: true,
                ..login
            })
            .await;
            // A recheck the catalog could not answer keeps the connection as it was.
            if now != access && now != Access::Unavailable {
                let _ = kick.send(Some(Kick::Revoked));
            }
        }
    }

    /// The number of rechecks so far: a connection reads it before it authenticates, and if it
    /// has changed once the connection is registered, checks its credentials again itself.
    pub(crate) fn revalidations(&self) -> u64 {
        self.lock().revalidations
    }

    /// Closes every connection of the users `moved` picks (cluster mode: their shard is no
    /// longer served here). Returns how many were closed.
    pub fn close_moved(&self, moved: impl Fn(i64) -> bool) -> usize {
        let inner = self.lock();
        let mut n = 0;
        for ((userid, _), e) in &inner.live {
            if moved(*userid) {
                let _ = e.kick.send(Some(Kick::Moved));
                n += 1;
            }
        }
        n
    }

    /// Open connections of every account.
    pub fn connections(&self) -> usize {
        self.lock().live.len()
    }

    /// How many connections `userid` has open.
    pub fn connections_of(&self, userid: i64) -> usize {
        self.lock().per_user.get(&userid).copied().unwrap_or(0)
    }

    /// Whether a connection of `client_id` is registered for `userid` now.
    pub(crate) fn is_live(&self, userid: i64, client_id: &str) -> bool {
        self.lock()
            .live
            .contains_key(&(userid, client_id.to_string()))
    }

    /// Whether a connection with this key registered after the one numbered `id` (a will
    /// with a delay is then not sent).
    pub(crate) fn replaced_since(&self, userid: i64, client_id: &str, id: u64) -> bool {
        self.lock()
            .live
            .get(&(userid, client_id.to_string()))
            .is_some_and(|e| e.id > id)
    }
}

impl Registration {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.sessions.lock();
        if inner.live.get(&self.key).is_some_and(|e| e.id == self.id) {
            inner.live.remove(&self.key);
            let user = self.key.0;
            if let Some(n) = inner.per_user.get_mut(&user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    inner.per_user.remove(&user);
                }
            }
        }
        drop(inner);
        let _ = self.finished.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn login(name: &str, pass: &str) -> Login {
        Login {
            username: name.into(),
            password: pass.into(),
            peer: std::net::Ipv4Addr::LOCALHOST.into(),
            recheck: false,
        }
    }

    fn accepting(valid: Arc<AtomicBool>) -> Authenticate {
        Arc::new(move |_l: Login| {
            let ok = valid.load(Ordering::SeqCst);
            Box::pin(async move {
                if ok {
                    Access::Account { userid: 1 }
                } else {
                    Access::Denied
                }
            })
        })
    }

    #[tokio::test]
    async fn the_same_client_id_of_another_user_is_another_session() {
        let s = Sessions::new(accepting(Arc::new(AtomicBool::new(true))), 10);
        let a = s
            .register(
                1,
                "shared",
                login("alice", "k"),
                Access::Account { userid: 1 },
            )
            .await
            .expect("alice");
        let b = s
            .register(
                2,
                "shared",
                login("bob", "k"),
                Access::Account { userid: 2 },
            )
            .await
            .expect("bob");
        assert_eq!(*a.kicked.borrow(), None, "bob did not take alice's session");
        assert_eq!(*b.kicked.borrow(), None);
        assert_eq!((s.connections_of(1), s.connections_of(2)), (1, 1));
    }

    #[tokio::test]
    async fn the_same_users_client_id_takes_over_after_the_old_one_closed() {
        let s = Sessions::new(accepting(Arc::new(AtomicBool::new(true))), 10);
        let old = s
            .register(1, "c", login("alice", "k"), Access::Account { userid: 1 })
            .await
            .expect("first");
        let mut kicked = old.kicked.clone();
        let closer = tokio::spawn(async move {
            let _ = kicked.wait_for(|k| k.is_some()).await;
            let reason = *kicked.borrow();
            drop(old);
            reason
        });
        let new = s
            .register(1, "c", login("alice", "k"), Access::Account { userid: 1 })
            .await
            .expect("second");
        assert_eq!(closer.await.expect("task"), Some(Kick::TakenOver));
        assert_eq!(s.connections_of(1), 1);
        assert!(!s.replaced_since(1, "c", new.id()));
        drop(new);
        assert_eq!(s.connections_of(1), 0);
    }

    #[tokio::test]
    async fn a_user_cannot_open_more_than_the_limit() {
        let s = Sessions::new(accepting(Arc::new(AtomicBool::new(true))), 2);
        let _a = s
            .register(1, "a", login("alice", "k"), Access::Account { userid: 1 })
            .await
            .expect("a");
        let _b = s
            .register(1, "b", login("alice", "k"), Access::Account { userid: 1 })
            .await
            .expect("b");
        let third = s
            .register(1, "c", login("alice", "k"), Access::Account { userid: 1 })
            .await;
        assert_eq!(third.err(), Some(RegisterError::TooMany));
        let _other_user = s
            .register(2, "c", login("bob", "k"), Access::Account { userid: 2 })
            .await
            .expect("bob is not limited by alice");
    }

    #[tokio::test]
    async fn a_recheck_the_catalog_cannot_answer_keeps_the_connection() {
        let unavailable: Authenticate =
            Arc::new(|_l: Login| Box::pin(async { Access::Unavailable }));
        let s = Sessions::new(unavailable, 10);
        let r = s
            .register(1, "c", login("alice", "k"), Access::Account { userid: 1 })
            .await
            .expect("registered");
        s.revalidate(1).await;
        assert_eq!(*r.kicked.borrow(), None);
    }

    #[tokio::test]
    async fn revoked_credentials_close_the_users_connections() {
        let valid = Arc::new(AtomicBool::new(true));
        let s = Sessions::new(accepting(valid.clone()), 10);
        let r = s
            .register(1, "c", login("alice", "k"), Access::Account { userid: 1 })
            .await
            .expect("registered");
        s.revalidate(1).await;
        assert_eq!(*r.kicked.borrow(), None, "still valid: kept");
        valid.store(false, Ordering::SeqCst);
        s.revalidate(2).await;
        assert_eq!(*r.kicked.borrow(), None, "another user's change");
        s.revalidate(1).await;
        assert_eq!(*r.kicked.borrow(), Some(Kick::Revoked));
    }
}
