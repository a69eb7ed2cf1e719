//! Per-user rate limits of a plan, so one customer's runaway script cannot slow the others:
//! values per minute (a token bucket holding a minute's worth, refilled continuously) and a
//! minimum interval between posts of one node. A refusal says how many seconds to wait.
//!
//! Kept in memory on the node that processes the user's writes (in a cluster, requests are
//! forwarded to the user's owner before they are checked, so the count is the user's whole).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::plan::Plan;

/// Users whose buckets are remembered before idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;
/// Nodes remembered per user for the minimum interval between posts.
const MAX_NODES: usize = 1_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// node → when it last posted.
    nodes: HashMap<String, Instant>,
}

#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<i64, Bucket>>,
}

/// What an admission took, to give back with [`RateLimits::give_back`] when the write is
/// then refused (a busy shard's 503): a client retrying it must not find its allowance spent
/// on values that were never stored.
#[derive(Debug, Default, PartialEq)]
pub struct Admission {
    userid: i64,
    values: usize,
    at: Option<Instant>,
    /// Each node's previous post, as the admission found it.
    nodes: Vec<(String, Option<Instant>)>,
}

impl RateLimits {
    /// Admits `values` values from `nodes` of `userid` now under `plan`, or says how many
    /// seconds to wait.
    pub fn admit(
        &self,
        userid: i64,
        plan: &Plan,
        nodes: &[&str],
        values: usize,
    ) -> Result<Admission, u64> {
        self.admit_at(userid, plan, nodes, values, Instant::now())
    }

    /// Undoes `admission` (taken under `plan`): its values go back into the bucket and its
    /// nodes' last posts are what they were, unless a later post of the node replaced them.
    pub fn give_back(&self, plan: &Plan, admission: Admission) {
        let Some(at) = admission.at else { return };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = buckets.get_mut(&admission.userid) else {
            return;
        };
        let capacity = f64::from(plan.values_per_minute);
        b.tokens = (b.tokens + admission.values as f64).min(capacity);
        for (node, before) in admission.nodes {
            if b.nodes.get(&node) == Some(&at) {
                match before {
                    Some(t) => b.nodes.insert(node, t),
                    None => b.nodes.remove(&node),
                };
            }
        }
    }

    fn admit_at(
        &self,
        userid: i64,
        plan: &Plan,
        nodes: &[&str],
        values: usize,
        now: Instant,
    ) -> Result<Admission, u64> {
        if plan.values_per_minute == 0 && plan.min_post_interval_s == 0 {
            return Ok(Admission::default());
        }
        let mut admission = Admission {
            userid,
            at: Some(now),
            ..Admission::default()
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&userid) {
            // Forget buckets that have refilled (nothing of them is left to remember).
            let full = f64::from(plan.values_per_minute);
            buckets.retain(|_, b| now.duration_since(b.at).as_secs() < 60 || b.tokens < full);
        }
        let capacity = f64::from(plan.values_per_minute);
        let b = buckets.entry(userid).or_insert_with(|| Bucket {
            tokens: capacity,
            at: now,
            nodes: HashMap::new(),
        });
        if plan.min_post_interval_s > 0 {
            let interval = u64::from(plan.min_post_interval_s);
            let wait = nodes
                .iter()
                .filter_map(|n| b.nodes.get(*n))
                .map(|last| interval.saturating_sub(now.duration_since(*last).as_secs()))
                .max()
                .unwrap_or(0);
            if wait > 0 {
                return Err(wait);
            }
        }
        if plan.values_per_minute > 0 {
            let rate = capacity / 60.0;
            b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(capacity);
            b.at = now;
            // More than a minute's worth at once (a backfill of a feed, a long bulk) is
            // admitted once the bucket is full, and leaves it in debt for as long as those
            // values take to earn back: the rate holds on average and no request is refused
            // for ever.
            let need = values as f64;
            let fits = need.min(capacity);
            if fits > b.tokens {
                let short = fits - b.tokens;
                return Err(((short / rate).ceil() as u64).max(1));
            }
            b.tokens -= need;
            admission.values = values;
        }
        if plan.min_post_interval_s > 0 {
            if b.nodes.len() + nodes.len() > MAX_NODES {
                // Nodes whose interval is over have nothing left to wait for; should a user
                // post from more distinct nodes than this within one interval, they are all
                // forgotten (they may post again at once) rather than remembered without end.
                let interval = u64::from(plan.min_post_interval_s);
                b.nodes
                    .retain(|_, last| now.duration_since(*last).as_secs() < interval);
                if b.nodes.len() + nodes.len() > MAX_NODES {
                    b.nodes.clear();
                }
            }
            for n in nodes.iter().take(MAX_NODES) {
                let before = b.nodes.insert((*n).to_string(), now);
                admission.nodes.push(((*n).to_string(), before));
            }
        }
        Ok(admission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    impl RateLimits {
        fn admitted(
            &self,
            userid: i64,
            plan: &Plan,
            nodes: &[&str],
            values: usize,
            now: Instant,
        ) -> Result<(), u64> {
            self.admit_at(userid, plan, nodes, values, now).map(drop)
        }
    }

    /// A write refused after its admission (a busy shard) gives back its values and its
    /// nodes' last posts; a node's later post is not undone by an earlier one's refusal.
    #[test]
    fn a_refused_write_gives_back_what_it_took() {
        let l = RateLimits::default();
        let p = plan(600, 10);
        let t0 = Instant::now();
        l.admitted(1, &p, &["a"], 500, t0).expect("admitted");
        let t1 = t0 + Duration::from_secs(20);
        let refused = l.admit_at(1, &p, &["a", "b"], 300, t1).expect("admitted");
        assert_eq!(l.admitted(1, &p, &["c"], 100, t1), Err(10), "spent");
        l.give_back(&p, refused);
        assert_eq!(
            l.admitted(1, &p, &["a"], 100, t1),
            Ok(()),
            "a's last post is t0's"
        );
        assert_eq!(l.admitted(1, &p, &["b"], 100, t1), Ok(()), "b has none");
        // Given back after the node's next post: that post stays.
        let t2 = t1 + Duration::from_secs(10);
        let b_again = l.admit_at(1, &p, &["b"], 1, t2).expect("admitted");
        let t3 = t2 + Duration::from_secs(10);
        l.admitted(1, &p, &["b"], 1, t3).expect("admitted");
        l.give_back(&p, b_again);
        assert_eq!(
            l.admitted(1, &p, &["b"], 1, t3 + Duration::from_secs(1)),
            Err(9)
        );
    }

    fn plan(vpm: u32, interval: u32) -> Plan {
        Plan {
            name: "p".into(),
            feed_year_pence: 0,
            monthly_fee_pence: 0,
            max_feeds: 0,
            max_inputs: 0,
            values_per_minute: vpm,
            min_post_interval_s: interval,
            overage: Default::default(),
        }
    }

    #[test]
    fn a_minutes_worth_then_waits_for_the_refill() {
        let l = RateLimits::default();
        let p = plan(60, 0);
        let t0 = Instant::now();
        assert_eq!(l.admitted(1, &p, &["n"], 60, t0), Ok(()));
        assert_eq!(l.admitted(1, &p, &["n"], 1, t0), Err(1));
        // Another user is not slowed.
        assert_eq!(l.admitted(2, &p, &["n"], 60, t0), Ok(()));
        assert_eq!(
            l.admitted(1, &p, &["n"], 5, t0 + Duration::from_secs(2)),
            Err(3)
        );
        assert_eq!(
            l.admitted(1, &p, &["n"], 5, t0 + Duration::from_secs(5)),
            Ok(())
        );
    }

    #[test]
    fn more_than_a_minutes_worth_waits_for_a_full_bucket_then_is_paid_back() {
        let l = RateLimits::default();
        let p = plan(60, 0);
        let t0 = Instant::now();
        assert_eq!(l.admitted(1, &p, &[], 10, t0), Ok(()));
        // 180 values never fit a 60-value bucket: they wait for it to be full, not for ever.
        assert_eq!(l.admitted(1, &p, &[], 180, t0), Err(10));
        let full = t0 + Duration::from_secs(10);
        assert_eq!(l.admitted(1, &p, &[], 180, full), Ok(()));
        // 120 in debt: the next value waits two minutes and a second.
        assert_eq!(l.admitted(1, &p, &[], 1, full), Err(121));
        assert_eq!(
            l.admitted(1, &p, &[], 1, full + Duration::from_secs(121)),
            Ok(())
        );
    }

    #[test]
    fn the_nodes_remembered_for_one_user_are_bounded() {
        let l = RateLimits::default();
        let p = plan(0, 10);
        let t0 = Instant::now();
        let names: Vec<String> = (0..5_000).map(|k| format!("n{k}")).collect();
        for (k, n) in names.iter().enumerate() {
            let at = t0 + Duration::from_millis(k as u64);
            assert_eq!(l.admitted(1, &p, &[n.as_str()], 1, at), Ok(()));
        }
        let remembered = |l: &RateLimits| {
            l.buckets
                .lock()
                .expect("lock")
                .get(&1)
                .map_or(0, |b| b.nodes.len())
        };
        assert!(remembered(&l) <= MAX_NODES, "{}", remembered(&l));
        // Once their interval is over, old nodes make room without forgetting recent ones.
        let later = t0 + Duration::from_secs(60);
        let many: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(l.admitted(1, &p, &many[..10], 1, later), Ok(()));
        assert_eq!(l.admitted(1, &p, &many[..1], 1, later), Err(10));
        // Nor does one post naming many nodes grow it past the bound.
        assert_eq!(l.admitted(2, &p, &many, 1, t0), Ok(()));
        let two = l
            .buckets
            .lock()
            .expect("lock")
            .get(&2)
            .map_or(0, |b| b.nodes.len());
        assert!(two <= MAX_NODES, "{two}");
    }

    #[test]
    fn a_node_posting_too_often_is_told_how_long_to_wait() {
        let l = RateLimits::default();
        let p = plan(0, 10);
        let t0 = Instant::now();
        assert_eq!(l.admitted(1, &p, &["a"], 1, t0), Ok(()));
        assert_eq!(
            l.admitted(1, &p, &["b"], 1, t0),
            Ok(()),
            "each node has its interval"
        );
        assert_eq!(
            l.admitted(1, &p, &["a"], 1, t0 + Duration::from_secs(4)),
            Err(6)
        );
        assert_eq!(
            l.admitted(1, &p, &["a"], 1, t0 + Duration::from_secs(10)),
            Ok(())
        );
        assert_eq!(
            l.admitted(1, &plan(0, 0), &["a"], 1, t0),
            Ok(()),
            "no limits"
        );
    }
}
