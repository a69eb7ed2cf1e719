//! Helpers shared by the router's test binaries.

#![allow(dead_code)]

use ynni_core::Catalog;
use ynni_core::catalog::NewUser;
use ynni_ingest::Decoded;
use ynni_ingest::shard::Router;

pub const T: i64 = 1_700_000_000;

/// A catalog in `dir` with one user, and the feed directories.
pub async fn setup(dir: &std::path::Path) -> (Catalog, i64) {
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

pub fn batch(node: &str, name: &str, v: f64) -> Decoded {
    Decoded {
        time: T,
        node: node.into(),
        values: vec![(name.into(), Some(v))],
    }
}

pub async fn stop(router: Router) {
    let flushed = tokio::task::spawn_blocking(move || router.stop())
        .await
        .expect("join");
    assert!(flushed, "every shard flushed");
}
