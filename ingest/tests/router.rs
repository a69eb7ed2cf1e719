//! The shard router on its own: real catalog, real stores, no HTTP.

// Tests and benchmarks stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ynni_core::Catalog;
use ynni_core::catalog::NewUser;
use ynni_ingest::Decoded;
use ynni_ingest::shard::{IngestError, Output, Router, RouterConfig, Submission};
use ynni_storage::StoreConfig;

const T: i64 = 1_700_000_000;

async fn setup(dir: &std::path::Path) -> (Catalog, i64) {
    for sub in ["phpfina", "phptimeseries"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    let catalog = Catalog::open_sqlite(&dir.join("catalog.sqlite"))
        .await
        .expect("catalog");
    let user = NewUser {
        username: "alice".into(),
        email: "a@example.com".into(),
        password_hash: "$x".into(),
        timezone: "UTC".into(),
        admin: false,
    };
    let user = catalog
        .create_user(&user, false)
        .await
        .expect("db")
        .expect("created");
    (catalog, user.id)
}

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
    };
    let (catalog, handle) = (catalog.clone(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || Router::start(cfg, catalog, handle))
        .await
        .expect("join")
        .expect("router")
}

fn batch(node: &str, name: &str, v: f64) -> Decoded {
    Decoded {
        time: T,
        node: node.into(),
        values: vec![(name.into(), Some(v))],
    }
}

async fn stop(router: Router) {
    let flushed = tokio::task::spawn_blocking(move || router.stop())
        .await
        .expect("join");
    assert!(flushed, "every shard flushed");
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
