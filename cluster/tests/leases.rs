//! Leases, the node registry and the status report against a real PostgreSQL.

// Tests stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod postgres;

use std::time::Duration;
use ynni_core::boot_clock::BootInstant;

use postgres::Postgres;
use ynni_cluster::lease::{Leases, Timing};
use ynni_cluster::registry::Membership;
use ynni_cluster::{ClusterError, VSHARDS, db, status};

async fn pool(pg: &Postgres) -> sqlx::PgPool {
    db::connect(&pg.url(), Duration::from_secs(10))
        .await
        .expect("connect")
}

#[tokio::test]
async fn a_vshard_changes_hands_only_after_its_holders_deadline() {
    let pg = Postgres::start();
    let pool = pool(&pg).await;
    let timing = Timing::new(Duration::from_secs(2));
    let a = Leases::new(pool.clone(), "a", timing);
    let b = Leases::new(pool.clone(), "b", timing);

    let first = a.acquire(7).await.expect("acquire").expect("free vshard");
    assert_eq!(first.epoch, 1);
    assert!(b.acquire(7).await.expect("acquire").is_none(), "held by a");
    let held = a.renew(&first).await.expect("renew").expect("still a's");
    assert_eq!(held.epoch, 1);
    assert!(held.deadline >= first.deadline);

    // a stops renewing (cut off, or paused). b keeps trying; whenever it succeeds, a's local
    // deadline has already passed, so a had stopped acting for the vshard.
    let taken = loop {
        if let Some(l) = b.acquire(7).await.expect("acquire") {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let taken_at = BootInstant::now();
    assert!(
        taken_at >= held.deadline,
        "b took the vshard before a's deadline"
    );
    assert!(!held.valid(taken_at));
    assert_eq!(taken.epoch, 2);
    // a's late renewal and re-acquisition are refused: the epoch and the expiry moved on.
    assert_eq!(a.renew(&held).await.expect("renew"), None);
    assert_eq!(a.acquire(7).await.expect("acquire"), None);

    // A release hands the vshard over at once, with a new epoch; a stale release does nothing.
    assert!(b.release(&taken).await.expect("release"));
    assert!(!b.release(&taken).await.expect("release"));
    let back = a.acquire(7).await.expect("acquire").expect("released");
    assert_eq!(back.epoch, 3);
    assert_eq!(b.renew(&taken).await.expect("renew"), None);
}

#[tokio::test]
async fn racing_nodes_never_share_a_vshard() {
    let pg = Postgres::start();
    let pool = pool(&pg).await;
    let timing = Timing::new(Duration::from_secs(30));
    let nodes: Vec<Leases> = ["a", "b", "c"]
        .iter()
        .map(|n| Leases::new(pool.clone(), *n, timing))
        .collect();
    // Every node tries every vshard at the same time.
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for v in 0..VSHARDS {
                if node.acquire(v).await.expect("acquire").is_some() {
                    won.push(v);
                }
            }
            (i, won)
        }));
    }
    let mut owner = vec![None; usize::from(VSHARDS)];
    for t in tasks {
        let (i, won) = t.await.expect("task");
        for v in won {
            assert_eq!(owner[usize::from(v)], None, "vshard {v} won twice");
            owner[usize::from(v)] = Some(i);
        }
    }
    assert!(
        owner.iter().all(Option::is_some),
        "every vshard has an owner"
    );
    let s = status::read(&pool).await.expect("status");
    for (v, row) in s.leases.iter().enumerate() {
        let name = ["a", "b", "c"][owner[v].unwrap_or(0)];
        assert_eq!(row.owner.as_deref(), Some(name));
        assert_eq!(row.epoch, 1);
    }
}

#[tokio::test]
async fn a_node_id_belongs_to_one_running_process() {
    let pg = Postgres::start();
    let pool = pool(&pg).await;
    let lease = Duration::from_secs(1);
    let first = Membership::join(pool.clone(), "n1", "127.0.0.1:9001", lease)
        .await
        .expect("join");
    // While n1 keeps its heartbeat, a second process with its id is refused, naming the setting.
    let beating = {
        let m = first.clone();
        tokio::spawn(async move {
            loop {
                if m.heartbeat().await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let e = Membership::join(pool.clone(), "n1", "127.0.0.1:9002", lease)
        .await
        .expect_err("id in use");
    assert!(matches!(e, ClusterError::NodeIdInUse { .. }), "{e}");
    assert!(e.to_string().contains("cluster.node_id"), "{e}");
    // Once it stops (a crash), a new process with the id joins after the heartbeat ages out,
    // and the old registration is told it was replaced.
    beating.abort();
    let second = Membership::join(pool.clone(), "n1", "127.0.0.1:9002", lease)
        .await
        .expect("rejoin");
    assert!(matches!(
        first.heartbeat().await,
        Err(ClusterError::Replaced(_))
    ));
    let other = Membership::join(pool.clone(), "n2", "127.0.0.1:9003", lease)
        .await
        .expect("join n2");
    let live = second.live().await.expect("live");
    let names: Vec<(&str, &str)> = live
        .iter()
        .map(|n| (n.node_id.as_str(), n.advertise.as_str()))
        .collect();
    assert_eq!(names, [("n1", "127.0.0.1:9002"), ("n2", "127.0.0.1:9003")]);

    // The status report shows both, and the vshards one holds.
    let leases = Leases::new(pool.clone(), "n2", Timing::new(Duration::from_secs(30)));
    for v in [0, 1, 2, 9] {
        leases.acquire(v).await.expect("acquire").expect("free");
    }
    let report = status::read(&pool).await.expect("status").report(1.0);
    assert!(report.contains("nodes: 2"), "{report}");
    assert!(report.contains("n2 at 127.0.0.1:9003: alive"), "{report}");
    assert!(
        report.contains("4 vshards (0-2,9; highest epoch 1)"),
        "{report}"
    );
    assert!(
        report.contains("vshards without a live lease: 252 (3-8,10-255)"),
        "{report}"
    );

    other.leave().await.expect("leave");
    let live = second.live().await.expect("live");
    assert_eq!(live.len(), 1);
}

#[tokio::test]
async fn an_unreachable_postgres_is_named() {
    // Nothing listens on port 1.
    let e = db::connect("postgres://ynni@127.0.0.1:1/ynni", Duration::from_secs(3))
        .await
        .expect_err("unreachable");
    assert!(e.to_string().contains("cluster.postgres"), "{e}");
}
