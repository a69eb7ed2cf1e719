//! Cluster mode's host threads, alone in this test binary so the process's thread names are
//! this test's own.

// Tests stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{batch, setup, stop};
use ynni_core::catalog::NewUser;
use ynni_ingest::shard::{IngestError, Router, RouterConfig, Submission};
use ynni_storage::StoreConfig;

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// Cluster mode: one host thread serves many open vshards, each with its own log; writes to
/// all of them at once are all acknowledged, one vshard is handed over (flushed) and another
/// abandoned while the rest keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_thread_serves_many_vshards_each_with_its_own_log() {
    use std::sync::Arc;
    use ynni_core::boot_clock::BootInstant;
    use ynni_ingest::shard::Fence;

    let dir = tempfile::tempdir().expect("tempdir");
    let (catalog, first) = setup(dir.path()).await;
    let cfg = RouterConfig {
        workers: 1,
        vshards: 16,
        queue: 256,
        max_nodes: 3,
        store: StoreConfig::default(),
        fixed_dir: dir.path().join("phpfina"),
        variable_dir: dir.path().join("phptimeseries"),
        wal_root: dir.path().join("vshards"),
        input_outputs: false,
        per_vshard: true,
    };
    let handle = tokio::runtime::Handle::current();
    let cat = catalog.clone();
    let router = Arc::new(
        tokio::task::spawn_blocking(move || Router::start(cfg, cat, handle))
            .await
            .unwrap()
            .unwrap(),
    );
    // Users until four distinct vshards have one each.
    let mut users = vec![first];
    let mut i = 0;
    while {
        let mut v: Vec<u32> = users.iter().map(|u| router.vshard(*u)).collect();
        v.sort_unstable();
        v.dedup();
        v.len() < 4
    } {
        i += 1;
        let u = NewUser {
            username: format!("user{i}"),
            email: format!("u{i}@example.com"),
            password_hash: "$x".into(),
            timezone: "UTC".into(),
            admin: false,
        };
        let id = catalog.create_user(&u, false).await.unwrap().unwrap().id;
        if !users.iter().any(|u| router.vshard(*u) == router.vshard(id)) {
            users.push(id);
        }
    }
    let fences: Vec<Arc<Fence>> = users
        .iter()
        .map(|_| Arc::new(Fence::until(BootInstant::now() + Duration::from_secs(60))))
        .collect();
    for (u, f) in users.iter().zip(&fences) {
        let (r, v, f) = (router.clone(), router.vshard(*u), f.clone());
        tokio::task::spawn_blocking(move || r.open_vshard(v, f))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(router.open_vshards().len(), 4);
    assert_eq!(threads_named("ynni-host-"), 1, "one host thread");
    assert_eq!(threads_named("ynni-shard-"), 0, "no thread per vshard");

    // 50 writes to each of the four vshards, all in flight together.
    let mut pending = Vec::new();
    for n in 0..50 {
        for u in &users {
            let s = Submission {
                userid: *u,
                batches: vec![batch("house", &format!("p{n}"), f64::from(n))],
                http: true,
            };
            pending.push(router.enqueue(s).map_err(|r| r.error).expect("queued"));
        }
    }
    for p in pending {
        p.await.expect("acknowledged");
    }
    for u in &users {
        assert!(
            dir.path()
                .join("vshards")
                .join(router.vshard(*u).to_string())
                .is_dir(),
            "a log per vshard"
        );
        assert_eq!(router.input_last(*u).await.unwrap().len(), 50);
    }

    // The first vshard is handed over, the second abandoned; the others still serve.
    let (r, v0) = (router.clone(), router.vshard(users[0]));
    assert!(
        tokio::task::spawn_blocking(move || r.close_vshard(v0, true))
            .await
            .unwrap()
    );
    let (r, v1) = (router.clone(), router.vshard(users[1]));
    assert!(
        !tokio::task::spawn_blocking(move || r.close_vshard(v1, false))
            .await
            .unwrap()
    );
    for (k, u) in users.iter().enumerate() {
        let s = Submission {
            userid: *u,
            batches: vec![batch("house", "after", 1.0)],
            http: true,
        };
        let got = router.submit(s).await;
        if k < 2 {
            assert!(matches!(got, Err(IngestError::NotServed)), "{k}: {got:?}");
        } else {
            got.expect("still served");
        }
    }
    let router = Arc::into_inner(router).unwrap();
    stop(router).await;
}
