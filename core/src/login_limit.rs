//! Limits on password guessing through `user/login`, `user/auth` and MQTT's CONNECT.
//!
//! An attempt is counted before the password is checked (so parallel guesses cannot all slip
//! past a limit) and taken back when it succeeds or was not a guess. Which counters it lands on
//! depends on where it comes from:
//! - from an address that has logged in to the account before (one of the last few that did),
//!   on a counter of that account *and* that address only. A password-guessing attacker
//!   elsewhere never touches it, so the owner is not locked out of their own account by them;
//! - from any other address, first on the address's counter (an address that keeps failing is
//!   stopped whatever names it tries), then on the account's (many addresses guessing at one
//!   account are stopped together).
//!
//! `user/auth` also counts every call on the address's counter, known address or not, as
//! emoncms does.
//!
//! Usernames are checked against the account rules before they get here, and every table
//! holds fixed-size digests up to a fixed number of entries.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ratelimit::{Key, RateLimiter, client_key};

/// Accounts whose good addresses are remembered; the least recently used goes first. Only a
/// correct password adds one, so the table holds real accounts.
const KNOWN_ACCOUNTS: usize = 10_000;
/// Good addresses remembered per account (home, work, phone networks…); the oldest goes first.
const KNOWN_ADDRESSES_PER_ACCOUNT: usize = 8;
/// Counters for (account, good address) pairs: at most one per remembered pair is live.
const PAIR_CAPACITY: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Login,
    Auth,
    /// An MQTT CONNECT's username and key (counted apart from the web's logins).
    Mqtt,
}

impl Scope {
    fn keys(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Scope::Login => ("login:ip", "login:user", "login:pair"),
            Scope::Auth => ("auth:ip", "auth:user", "auth:pair"),
            Scope::Mqtt => ("mqtt:ip", "mqtt:user", "mqtt:pair"),
        }
    }
}

/// The attempt is over a limit and was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooMany;

/// One counted attempt, to be reported back as [`LoginLimiter::succeeded`] or
/// [`LoginLimiter::not_a_guess`] (a wrong password needs no report: it stays counted).
#[derive(Debug)]
pub struct Attempt {
    scope: Scope,
    account: Key,
    client: [u8; 16],
    ip: Option<Key>,
    user: Option<Key>,
    pair: Option<Key>,
}

#[derive(Debug)]
pub struct LoginLimiter {
    ips: RateLimiter,
    accounts: RateLimiter,
    pairs: RateLimiter,
    known: KnownAddresses,
}

impl LoginLimiter {
    /// A limiter for logins whose secrets cannot be guessed (MQTT's 128-bit keys), where the
    /// limit guards against load: a full table makes room for a new address or account
    /// instead of refusing it, so a flood of failures from many addresses cannot keep new
    /// devices out for a window.
    pub fn for_random_keys() -> Self {
        Self {
            ips: RateLimiter::evicting(crate::ratelimit::DEFAULT_CAPACITY),
            accounts: RateLimiter::evicting(crate::ratelimit::DEFAULT_CAPACITY),
            pairs: RateLimiter::evicting(PAIR_CAPACITY),
            known: KnownAddresses::new(KNOWN_ACCOUNTS, KNOWN_ADDRESSES_PER_ACCOUNT),
        }
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self {
            ips: RateLimiter::default(),
            accounts: RateLimiter::default(),
            pairs: RateLimiter::with_capacity(PAIR_CAPACITY),
            known: KnownAddresses::new(KNOWN_ACCOUNTS, KNOWN_ADDRESSES_PER_ACCOUNT),
        }
    }
}

/// Usernames are case-insensitive in the catalog, so `Alice` and `alice` are one account here.
fn account_key(username: &str) -> Key {
    Key::new("account", &[username.to_ascii_lowercase().as_bytes()])
}

impl LoginLimiter {
    /// Counts an attempt by `ip` at `username`, at most `limit` per `window` on each counter it
    /// lands on.
    pub fn begin(
        &self,
        scope: Scope,
        ip: IpAddr,
        username: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Attempt, TooMany> {
        self.begin_at(scope, ip, username, limit, window, Instant::now())
    }

    fn begin_at(
        &self,
        scope: Scope,
        ip: IpAddr,
        username: &str,
        limit: u32,
        window: Duration,
        now: Instant,
    ) -> Result<Attempt, TooMany> {
        let (ip_scope, user_scope, pair_scope) = scope.keys();
        let account = account_key(username);
        let client = client_key(ip);
        let mut attempt = Attempt {
            scope,
            account,
            client,
            ip: None,
            user: None,
            pair: None,
        };
        let known = self.known.contains(&account, &client);
        // The address first: an address over its limit is refused without its attempt counting
        // against the account, so one noisy address cannot lock an account alone. A login from
        // a known address skips this counter, which it may share with strangers (NAT, a
        // reverse proxy); `user/auth` counts every call per address whatever (emoncms).
        if !known || scope == Scope::Auth {
            let ip_key = Key::new(ip_scope, &[&client]);
            attempt.ip = Some(ip_key);
            if self.ips.hit_at(ip_key, limit, window, now) {
                return Err(TooMany);
            }
        }
        if known {
            let pair = Key::new(pair_scope, &[account.as_bytes(), &client]);
            attempt.pair = Some(pair);
            return if self.pairs.hit_at(pair, limit, window, now) {
                Err(TooMany)
            } else {
                Ok(attempt)
            };
        }
        let user_key = Key::new(user_scope, &[account.as_bytes()]);
        attempt.user = Some(user_key);
        if self.accounts.hit_at(user_key, limit, window, now) {
            return Err(TooMany);
        }
        Ok(attempt)
    }

    /// The password was right: the attempt is taken back and the address remembered as good
    /// for the account.
    pub fn succeeded(&self, a: &Attempt) {
        if let Some(k) = a.pair {
            self.pairs.undo(k);
        }
        if let Some(k) = a.user {
            self.accounts.undo(k);
        }
        // emoncms counts every `user/auth` call per address, successful or not.
        if let Some(k) = a.ip
            && a.scope != Scope::Auth
        {
            self.ips.undo(k);
        }
        self.known.remember(a.account, a.client);
    }

    /// The form was refused before any password was checked (or the check failed inside ynni):
    /// nothing was guessed, so nothing stays counted.
    pub fn not_a_guess(&self, a: &Attempt) {
        if let Some(k) = a.pair {
            self.pairs.undo(k);
        }
        if let Some(k) = a.user {
            self.accounts.undo(k);
        }
        if let Some(k) = a.ip {
            self.ips.undo(k);
        }
    }
}

/// For each account, the client addresses (see [`client_key`]) that last logged in to it.
#[derive(Debug)]
struct KnownAddresses {
    inner: Mutex<KnownInner>,
}

#[derive(Debug)]
struct KnownInner {
    max_accounts: usize,
    per_account: usize,
    accounts: HashMap<Key, KnownAccount>,
    /// Accounts by their last successful login, oldest first.
    by_use: BTreeMap<u64, Key>,
    next_seq: u64,
}

#[derive(Debug)]
struct KnownAccount {
    used: u64,
    /// Oldest first.
    addresses: Vec<[u8; 16]>,
}

impl KnownAddresses {
    fn new(max_accounts: usize, per_account: usize) -> Self {
        Self {
            inner: Mutex::new(KnownInner {
                max_accounts: max_accounts.max(1),
                per_account: per_account.max(1),
                accounts: HashMap::new(),
                by_use: BTreeMap::new(),
                next_seq: 0,
            }),
        }
    }

    fn contains(&self, account: &Key, client: &[u8; 16]) -> bool {
        self.lock()
            .accounts
            .get(account)
            .is_some_and(|a| a.addresses.contains(client))
    }

    fn remember(&self, account: Key, client: [u8; 16]) {
        self.lock().remember(account, client);
    }

    #[cfg(test)]
    fn accounts(&self) -> usize {
        self.lock().accounts.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KnownInner> {
        // Plain data: still consistent enough to use after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KnownInner {
    fn remember(&mut self, account: Key, client: [u8; 16]) {
        self.next_seq += 1;
        let seq = self.next_seq;
        if let Some(a) = self.accounts.get_mut(&account) {
            self.by_use.remove(&a.used);
            self.by_use.insert(seq, account);
            a.used = seq;
            a.addresses.retain(|c| *c != client);
            a.addresses.push(client);
            if a.addresses.len() > self.per_account {
                a.addresses.remove(0);
            }
            return;
        }
        if self.accounts.len() >= self.max_accounts
            && let Some((_, oldest)) = self.by_use.pop_first()
        {
            self.accounts.remove(&oldest);
        }
        self.by_use.insert(seq, account);
        self.accounts.insert(
            account,
            KnownAccount {
                used: seq,
                addresses: vec![client],
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LIMIT: u32 = 10;
    const WINDOW: Duration = Duration::from_secs(900);

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// One wrong password.
    fn fail(l: &LoginLimiter, from: IpAddr, user: &str) -> Result<(), TooMany> {
        l.begin(Scope::Login, from, user, LIMIT, WINDOW).map(|_| ())
    }

    fn login(l: &LoginLimiter, from: IpAddr, user: &str) -> Result<(), TooMany> {
        let a = l.begin(Scope::Login, from, user, LIMIT, WINDOW)?;
        l.succeeded(&a);
        Ok(())
    }

    #[test]
    fn failures_from_an_address_get_that_address_limited() {
        let l = LoginLimiter::default();
        let a = ip("203.0.113.5");
        for i in 0..LIMIT {
            assert_eq!(fail(&l, a, &format!("name{i}")), Ok(()));
        }
        assert_eq!(fail(&l, a, "another"), Err(TooMany));
        assert_eq!(login(&l, ip("198.51.100.1"), "another"), Ok(()));
    }

    #[test]
    fn many_addresses_guessing_at_one_account_are_limited_together() {
        let l = LoginLimiter::default();
        for i in 0..LIMIT {
            let from = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(fail(&l, from, "alice"), Ok(()));
        }
        assert_eq!(fail(&l, ip("10.1.0.1"), "ALICE"), Err(TooMany));
    }

    #[test]
    fn an_attacker_elsewhere_does_not_lock_the_owner_out_of_a_known_address() {
        let l = LoginLimiter::default();
        let home = ip("192.0.2.10");
        let attacker = ip("203.0.113.5");
        assert_eq!(login(&l, home, "alice"), Ok(()));
        for _ in 0..LIMIT {
            assert_eq!(fail(&l, attacker, "alice"), Ok(()));
        }
        assert_eq!(fail(&l, attacker, "alice"), Err(TooMany));
        // Other addresses are now refused for alice...
        assert_eq!(fail(&l, ip("198.51.100.7"), "alice"), Err(TooMany));
        // ...but her own is not.
        assert_eq!(login(&l, home, "alice"), Ok(()));
        assert_eq!(login(&l, home, "Alice"), Ok(()));
    }

    #[test]
    fn a_known_address_is_still_limited_for_its_own_guesses() {
        let l = LoginLimiter::default();
        let home = ip("192.0.2.10");
        assert_eq!(login(&l, home, "alice"), Ok(()));
        for _ in 0..LIMIT {
            assert_eq!(fail(&l, home, "alice"), Ok(()));
        }
        assert_eq!(fail(&l, home, "alice"), Err(TooMany));
    }

    /// The fault: after 200,100 failed logins with distinct names (and addresses), guesses at a
    /// real account were no longer limited.
    #[test]
    fn distinct_usernames_do_not_disable_limiting_of_a_real_account() {
        let l = LoginLimiter::default();
        for i in 0..200_100u32 {
            let from = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let _ = fail(&l, from, &format!("u{i}"));
        }
        let mut refused = false;
        for i in 0..=LIMIT {
            let from = IpAddr::V4(Ipv4Addr::from(0xc000_0200 + i));
            refused = fail(&l, from, "alice") == Err(TooMany);
        }
        assert!(refused, "the 11th guess at alice is limited");
        assert!(l.ips.len() <= crate::ratelimit::DEFAULT_CAPACITY);
        assert!(l.accounts.len() <= crate::ratelimit::DEFAULT_CAPACITY);
    }

    #[test]
    fn a_successful_login_takes_its_attempt_back() {
        let l = LoginLimiter::default();
        let from = ip("192.0.2.10");
        for _ in 0..3 * LIMIT {
            assert_eq!(login(&l, from, "alice"), Ok(()));
        }
    }

    #[test]
    fn a_form_that_was_not_a_guess_is_not_counted() {
        let l = LoginLimiter::default();
        let from = ip("192.0.2.10");
        for _ in 0..3 * LIMIT {
            let a = l
                .begin(Scope::Login, from, "alice", LIMIT, WINDOW)
                .expect("not limited");
            l.not_a_guess(&a);
        }
    }

    #[test]
    fn auth_keeps_counting_calls_per_address() {
        let l = LoginLimiter::default();
        let from = ip("192.0.2.10");
        // The first success makes the address known, after which its own pair counter applies.
        let a = l
            .begin(Scope::Auth, from, "alice", LIMIT, WINDOW)
            .expect("first");
        l.succeeded(&a);
        for i in 0..LIMIT - 1 {
            let name = format!("other{i}");
            let a = l
                .begin(Scope::Auth, from, &name, LIMIT, WINDOW)
                .expect("within limit");
            l.succeeded(&a);
        }
        assert_eq!(
            l.begin(Scope::Auth, from, "stranger", LIMIT, WINDOW)
                .map(|_| ()),
            Err(TooMany)
        );
        // Known to alice or not, every auth call from the address counts.
        assert_eq!(
            l.begin(Scope::Auth, from, "alice", LIMIT, WINDOW)
                .map(|_| ()),
            Err(TooMany)
        );
    }

    #[test]
    fn strangers_sharing_a_known_address_do_not_lock_its_owner_out() {
        // Behind NAT or a reverse proxy many clients share one address.
        let l = LoginLimiter::default();
        let shared = ip("192.0.2.1");
        assert_eq!(login(&l, shared, "alice"), Ok(()));
        for i in 0..LIMIT {
            assert_eq!(fail(&l, shared, &format!("guess{i}")), Ok(()));
        }
        assert_eq!(fail(&l, shared, "bob"), Err(TooMany));
        assert_eq!(login(&l, shared, "alice"), Ok(()));
    }

    #[test]
    fn known_addresses_stay_bounded() {
        let addr = |i: u32| -> [u8; 16] {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&i.to_le_bytes());
            a
        };
        let k = KnownAddresses::new(100, 3);
        for i in 0..1_000u32 {
            k.remember(account_key(&format!("user{i}")), addr(i));
        }
        assert_eq!(k.accounts(), 100);
        let alice = account_key("alice");
        for i in 0..10 {
            k.remember(alice, addr(i));
        }
        assert_eq!(k.accounts(), 100);
        assert!(k.contains(&alice, &addr(9)));
        assert!(k.contains(&alice, &addr(7)));
        assert!(
            !k.contains(&alice, &addr(6)),
            "only the last three are kept"
        );
        // The least recently used account made room for alice.
        assert!(!k.contains(&account_key("user900"), &addr(900)));
        assert!(k.contains(&account_key("user901"), &addr(901)));
        assert!(k.contains(&account_key("user999"), &addr(999)));
    }
}
