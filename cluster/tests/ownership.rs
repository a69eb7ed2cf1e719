//! Nodes keeping their vshards by ticking, against a real PostgreSQL: every vshard ends up with
//! one owner, a stopped node's vshards move to the others after its lease, a drained node hands
//! its vshards over, a joining node takes its share, and at no moment do two nodes both hold a
//! valid lease on one vshard.

// Tests stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod postgres;

use std::collections::BTreeMap;
use std::time::Duration;
use ynni_core::boot_clock::BootInstant;

use postgres::Postgres;
use ynni_cluster::lease::Timing;
use ynni_cluster::ownership::{Change, Ownership};
use ynni_cluster::registry::{self, Membership};
use ynni_cluster::{VSHARDS, db};

const LEASE: Duration = Duration::from_secs(1);

async fn node(pool: &sqlx::PgPool, id: &str) -> Ownership {
    let m = Membership::join(pool.clone(), id, "127.0.0.1:1", LEASE)
        .await
        .expect("join");
    Ownership::new(pool.clone(), m, Timing::new(LEASE))
}

/// The safety property: no vshard is valid at two nodes at the same instant (stopped nodes
/// included: their leases stay in their hands until the local deadline passes).
fn check_one_owner(nodes: &BTreeMap<&str, Ownership>) {
    let now = BootInstant::now();
    for v in 0..VSHARDS {
        let holders: Vec<&str> = nodes
            .iter()
            .filter(|(_, o)| o.valid(v, now).is_some())
            .map(|(n, _)| *n)
            .collect();
        assert!(holders.len() <= 1, "vshard {v} held by {holders:?}");
    }
}

/// Ticks the `running` nodes until `done` holds (checking safety after every round), releasing
/// whatever they are asked to hand over. Returns the rounds it took.
async fn run_until(
    nodes: &mut BTreeMap<&'static str, Ownership>,
    running: &[&'static str],
    mut done: impl FnMut(&BTreeMap<&str, Ownership>) -> bool,
) -> usize {
    for round in 0..200 {
        for id in running {
            let o = nodes.get_mut(*id).expect("node");
            for change in o.tick().await.expect("tick") {
                if let Change::HandOver(v) = change {
                    o.release(v).await.expect("release");
                }
            }
        }
        check_one_owner(nodes);
        if done(nodes) {
            return round;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no steady state within 200 rounds");
}

fn counts(nodes: &BTreeMap<&str, Ownership>) -> BTreeMap<String, usize> {
    let now = BootInstant::now();
    nodes
        .iter()
        .map(|(n, o)| {
            let valid = (0..VSHARDS).filter(|v| o.valid(*v, now).is_some()).count();
            (n.to_string(), valid)
        })
        .collect()
}

fn total(nodes: &BTreeMap<&str, Ownership>, among: &[&str]) -> usize {
    let c = counts(nodes);
    among.iter().map(|n| c.get(*n).copied().unwrap_or(0)).sum()
}

#[tokio::test]
async fn vshards_move_on_failure_drain_and_join_without_two_owners() {
    let pg = Postgres::start();
    let pool = db::connect(&pg.url(), Duration::from_secs(10))
        .await
        .expect("connect");
    let mut nodes: BTreeMap<&'static str, Ownership> = BTreeMap::new();
    for id in ["a", "b", "c"] {
        nodes.insert(id, node(&pool, id).await);
    }
    // Three nodes share all 256 vshards.
    run_until(&mut nodes, &["a", "b", "c"], |n| {
        total(n, &["a", "b", "c"]) == usize::from(VSHARDS)
    })
    .await;
    let before = counts(&nodes);
    assert!(before.values().all(|&c| c > 40), "{before:?}");

    // c stops (a crash: it never ticks again). Its vshards move to a and b once its leases end,
    // and never while c could still act for them.
    let c_had = nodes["c"].held();
    let stopped = BootInstant::now();
    run_until(&mut nodes, &["a", "b"], |n| {
        total(n, &["a", "b"]) == usize::from(VSHARDS)
    })
    .await;
    assert!(
        stopped.elapsed() >= LEASE * 4 / 5,
        "moved before c's deadline"
    );
    assert!(
        c_had
            .iter()
            .all(|v| nodes["c"].valid(*v, BootInstant::now()).is_none())
    );

    // b is drained: it hands everything over to a, releasing each vshard so a need not wait.
    assert_eq!(
        registry::set_draining(&pool, "b", true, LEASE)
            .await
            .expect("drain"),
        registry::Drain::Done
    );
    run_until(&mut nodes, &["a", "b"], |n| {
        let c = counts(n);
        c["a"] == usize::from(VSHARDS) && c["b"] == 0
    })
    .await;

    // d joins: it takes its share from a; a hands those over.
    nodes.insert("d", node(&pool, "d").await);
    run_until(&mut nodes, &["a", "b", "d"], |n| {
        let c = counts(n);
        c["a"] + c["d"] == usize::from(VSHARDS) && c["d"] > 60 && c["b"] == 0
    })
    .await;

    // The database agrees: each vshard's owner is the node that holds it, and epochs grew with
    // every change of hands.
    let status = ynni_cluster::status::read(&pool).await.expect("status");
    let now = BootInstant::now();
    for row in &status.leases {
        let v = u16::try_from(row.vshard).expect("vshard");
        let holder = nodes
            .iter()
            .find(|(_, o)| o.valid(v, now).is_some())
            .map(|(n, _)| n.to_string());
        assert_eq!(row.owner, holder, "vshard {v}");
    }
    assert!(status.leases.iter().any(|l| l.epoch >= 2));
    let report = status.report(LEASE.as_secs_f64());
    assert!(report.contains("b at 127.0.0.1:1: draining"), "{report}");
}

/// Two drains at once of the last two nodes taking vshards: one is refused, so somebody is
/// always left to take them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_node_taking_vshards_is_never_drained() {
    let pg = Postgres::start();
    let pool = db::connect(&pg.url(), Duration::from_secs(10))
        .await
        .expect("connect");
    let lease = Duration::from_secs(30);
    let _a = Membership::join(pool.clone(), "a", "127.0.0.1:1", lease)
        .await
        .expect("join");
    let _b = Membership::join(pool.clone(), "b", "127.0.0.1:2", lease)
        .await
        .expect("join");
    for _ in 0..5 {
        let (x, y) = tokio::join!(
            registry::set_draining(&pool, "a", true, lease),
            registry::set_draining(&pool, "b", true, lease)
        );
        let done = [x.expect("a"), y.expect("b")];
        assert_eq!(
            done.iter().filter(|d| **d == registry::Drain::Done).count(),
            1,
            "{done:?}"
        );
        assert!(done.contains(&registry::Drain::LastNode), "{done:?}");
        for id in ["a", "b"] {
            registry::set_draining(&pool, id, false, lease)
                .await
                .expect("undo");
        }
    }
}
