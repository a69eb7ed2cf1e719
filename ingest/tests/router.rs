//! The shard router on its own: real catalog, real stores, no HTTP.

// Tests and benchmarks stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ynni_core::Catalog;
use ynni_ingest::shard::{IngestError, Output, Router, RouterConfig, Submission};
use ynni_storage::StoreConfig;

mod common;

use common::{T, batch, setup, stop};

async fn start(dir: &std::path::Path, catalog: &Catalog) -> Router {
    let cfg = RouterConfig {
        workers: 2,
        vshards: 16,
        queue: 64,
        max_nodes: 3,
        store: StoreConfig::default(),
        fixed_dir: dir.join("phpfina"),
        variable_dir: dir.join("phptimeseries"),
        wal_root: dir.join("wal"),
        input_outputs: false,
        per_vshard: false,
    };
    let (catalog, handle) = (catalog.clone(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || Router::start(cfg, catalog, handle))
        .await
        .expect("join")
        .expect("router")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_mqtt_reaches_the_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (catalog, userid) = setup(dir.path()).await;
    let input = catalog
        .create_input(userid, "house", "power")
        .await
        .expect("input");
    catalog
        .set_input_process_list(input.id, "2:2,35:house/power")
        .await
        .expect("list");
    let router = start(dir.path(), &catalog).await;
    let mut rx = router.subscribe_outputs();
    let s = Submission {
        userid,
        batches: vec![batch("house", "power", 5.0)],
        http: true,
    };
    router.submit(s).await.expect("durable");
    let out = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an output within 10 s")
        .expect("received");
    assert_eq!(
        out,
        Output::Published {
            userid,
            topic: "house/power".into(),
            value: Some(10.0)
        }
    );
    assert_eq!(
        router
            .input_last(userid)
            .await
            .expect("last values")
            .get(&input.id)
            .copied(),
        Some((T, Some(5.0)))
    );
    stop(router).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_limit_refuses_before_logging_over_http_and_mqtt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (catalog, userid) = setup(dir.path()).await;
    let router = start(dir.path(), &catalog).await;
    for node in ["a", "b", "c"] {
        let s = Submission {
            userid,
            batches: vec![batch(node, "x", 1.0)],
            http: true,
        };
        router.submit(s).await.expect("within the limit");
    }
    let s = Submission {
        userid,
        batches: vec![batch("d", "x", 1.0)],
        http: true,
    };
    match router.submit(s).await {
        Err(e @ IngestError::NodeLimit { .. }) => assert_eq!(
            e.to_string(),
            "Error: Reached the maximal allowed number of different NodeIds, limit is 3. Node 'd' was ignored."
        ),
        other => panic!("expected the node limit, got {other:?}"),
    }
    // MQTT is limited too (emoncms does not limit it; ynni limits every way in).
    let s = Submission {
        userid,
        batches: vec![batch("e", "x", 1.0)],
        http: false,
    };
    match router.submit(s).await {
        Err(IngestError::NodeLimit { node, .. }) => assert_eq!(node, "e"),
        other => panic!("expected the node limit over MQTT, got {other:?}"),
    }
    let s = Submission {
        userid,
        batches: vec![batch("a", "y", 1.0)],
        http: false,
    };
    router
        .submit(s)
        .await
        .expect("a known node takes new inputs");
    stop(router).await;
    let inputs = catalog.inputs_for_user(userid).await.expect("inputs");
    let nodes: Vec<&str> = inputs.iter().map(|i| i.nodeid.as_str()).collect();
    assert_eq!(nodes, ["a", "b", "c", "a"]);
}

/// The MQTT submitter over a real router: a stored message and one the node limit refuses
/// are told apart in their acknowledgements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_submitter_tells_stored_messages_from_refused_ones() {
    use std::sync::{Arc, Mutex};
    use ynni_ingest::submit::{Outcome, Submitter};

    let dir = tempfile::tempdir().expect("tempdir");
    let (catalog, userid) = setup(dir.path()).await;
    let router = Arc::new(start(dir.path(), &catalog).await);
    let outcomes: Arc<Mutex<Vec<(String, Outcome)>>> = Arc::default();
    let mut submitter = Submitter::new(router.clone(), 4);
    // The node limit is 3: the fourth node is refused.
    for node in ["a", "b", "c", "d"] {
        let (seen, name) = (outcomes.clone(), node.to_string());
        let ack = move |o| seen.lock().expect("outcomes").push((name, o));
        submitter
            .submit(userid, batch(node, "power", 1.0), ack)
            .await;
    }
    submitter.finish().await;
    let mut got = outcomes.lock().expect("outcomes").clone();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("a".to_string(), Outcome::Stored),
            ("b".to_string(), Outcome::Stored),
            ("c".to_string(), Outcome::Stored),
            ("d".to_string(), Outcome::Refused),
        ]
    );
    let router = Arc::try_unwrap(router).unwrap_or_else(|_| panic!("router still shared"));
    stop(router).await;
}

/// Cluster mode: a vshard is served only while it is open and its fence holds; an abandoned
/// vshard writes nothing more, and the next owner replays what it acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vshard_serves_only_while_open_and_fenced_and_moves_with_its_log() {
    use std::sync::Arc;
    use ynni_core::boot_clock::BootInstant;
    use ynni_ingest::shard::Fence;

    let dir = tempfile::tempdir().expect("tempdir");
    let (catalog, userid) = setup(dir.path()).await;
    let open = |catalog: Catalog| {
        let cfg = RouterConfig {
            workers: 1,
            vshards: 16,
            queue: 64,
            max_nodes: 3,
            store: StoreConfig::default(),
            fixed_dir: dir.path().join("phpfina"),
            variable_dir: dir.path().join("phptimeseries"),
            wal_root: dir.path().join("vshards"),
            input_outputs: false,
            per_vshard: true,
        };
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || Router::start(cfg, catalog, handle))
    };
    let router = Arc::new(open(catalog.clone()).await.unwrap().unwrap());
    let v = router.vshard(userid);
    let post = |value: f64| Submission {
        userid,
        batches: vec![batch("house", "power", value)],
        http: true,
    };
    assert!(!router.serves(v));
    assert!(matches!(
        router.submit(post(1.0)).await,
        Err(IngestError::NotServed)
    ));

    let fence = Arc::new(Fence::until(BootInstant::now() + Duration::from_secs(60)));
    let r = router.clone();
    let f = fence.clone();
    tokio::task::spawn_blocking(move || r.open_vshard(v, f))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(router.open_vshards(), vec![v]);
    router.submit(post(2.0)).await.expect("acknowledged");
    assert!(dir.path().join("vshards").join(v.to_string()).is_dir());

    // The lease ends: nothing more is acknowledged or logged, reads still answer.
    fence.revoke();
    assert!(matches!(
        router.submit(post(3.0)).await,
        Err(IngestError::NotServed)
    ));
    let r = router.clone();
    assert!(
        !tokio::task::spawn_blocking(move || r.close_vshard(v, false))
            .await
            .unwrap(),
        "an abandoned vshard does not flush"
    );
    assert!(!router.serves(v));
    stop(Arc::into_inner(router).unwrap()).await;

    // The next owner (here a new router on the same directory) replays the log.
    let router = Arc::new(open(catalog.clone()).await.unwrap().unwrap());
    let r = router.clone();
    let fence = Arc::new(Fence::until(BootInstant::now() + Duration::from_secs(60)));
    tokio::task::spawn_blocking(move || r.open_vshard(v, fence))
        .await
        .unwrap()
        .unwrap();
    let input = catalog
        .inputs_for_user(userid)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.name == "power")
        .expect("the input was created from the replayed record");
    let last = router.input_last(userid).await.unwrap();
    assert_eq!(last.get(&input.id).copied(), Some((T, Some(2.0))));
    // A hand-over flushes: the log is checkpointed and empty for the next owner.
    let r = router.clone();
    assert!(
        tokio::task::spawn_blocking(move || r.close_vshard(v, true))
            .await
            .unwrap()
    );
    stop(Arc::into_inner(router).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_feeds_last_updates_and_metas_come_in_one_operation() {
    use ynni_ingest::shard::{FeedAnswer, FeedOp, FeedWrite};
    let dir = tempfile::tempdir().expect("tempdir");
    let (catalog, userid) = setup(dir.path()).await;
    let router = start(dir.path(), &catalog).await;
    let mut ids = Vec::new();
    for name in ["written", "empty"] {
        let row = catalog
            .create_feed(userid, name, "", 5, "")
            .await
            .expect("feed");
        let id = u32::try_from(row).expect("id");
        let create = FeedOp::Create {
            id,
            engine: 5,
            interval: 10,
        };
        router.feed(userid, create).await.expect("created");
        ids.push(id);
    }
    let write = FeedWrite {
        feed: ids[0],
        points: vec![(T, Some(3.0))],
        now: T,
        single: false,
        rewrite: false,
        start: None,
    };
    router
        .feed(userid, FeedOp::Insert { userid, write })
        .await
        .expect("written");
    let asked = vec![ids[0], ids[1], 999_999];
    let answer = router
        .feed(userid, FeedOp::Lasts { ids: asked })
        .await
        .expect("lasts");
    let FeedAnswer::Lasts(lasts) = answer else {
        panic!("{answer:?}");
    };
    assert_eq!(lasts, [Some((T, Some(3.0))), None, None]);
    let asked = vec![ids[0], 999_999, ids[1]];
    let answer = router
        .feed(userid, FeedOp::Metas { ids: asked })
        .await
        .expect("metas");
    let FeedAnswer::Metas(metas) = answer else {
        panic!("{answer:?}");
    };
    let npoints: Vec<Option<u64>> = metas
        .iter()
        .map(|m| match m {
            Some(ynni_ingest::shard::FeedMeta::Fixed(f)) => Some(f.npoints),
            _ => None,
        })
        .collect();
    assert_eq!(npoints, [Some(1), None, Some(0)], "{metas:?}");
    stop(router).await;
}
