//! One scenario over the whole catalog API, run on SQLite and on a real PostgreSQL: both
//! backends must answer alike (the statements are written once for both).

// Tests stop at the first surprise: unwrapping is how they say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../cluster/tests/postgres/mod.rs"]
mod postgres;

use ynni_core::catalog::{CreateRefusal, KeyKind, NewUser, ProfileUpdate};
use ynni_core::{Catalog, CatalogError, DeviceRow, FeedRow, Imported, ImportedUser, InputRow};

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        password_hash: "$argon2id$test".into(),
        timezone: "Europe/London".into(),
        admin: false,
    }
}

async fn accounts(cat: &Catalog) -> (i64, i64) {
    // The first account is an admin; only-if-first refuses the second; names clash without
    // regard to case.
    let alice = cat
        .create_user(&new_user("Alice"), true)
        .await
        .expect("db")
        .expect("first");
    assert!(alice.admin);
    assert_eq!(
        cat.create_user(&new_user("bob"), true).await.expect("db"),
        Err(CreateRefusal::NotFirstUser)
    );
    let bob = cat
        .create_user(&new_user("bob"), false)
        .await
        .expect("db")
        .expect("created");
    assert!(!bob.admin);
    assert_eq!(
        cat.create_user(&new_user("ALICE"), false)
            .await
            .expect("db"),
        Err(CreateRefusal::UsernameTaken)
    );
    assert!(cat.username_exists("aLiCe").await.expect("db"));
    assert_eq!(
        cat.user_by_username("ALICE")
            .await
            .expect("db")
            .map(|u| u.id),
        Some(alice.id)
    );
    assert!(!cat.set_username(bob.id, "alice").await.expect("db"));
    assert!(cat.set_username(bob.id, "robert").await.expect("db"));
    assert_eq!(cat.count_users().await.expect("db"), 2);
    let (found, kind) = cat
        .user_by_apikey(&alice.apikey_read.to_uppercase())
        .await
        .expect("db")
        .expect("key");
    assert_eq!((found.id, kind), (alice.id, KeyKind::Read));
    let new_key = cat
        .regenerate_apikey(alice.id, KeyKind::Write)
        .await
        .expect("db");
    assert!(
        cat.user_by_apikey(&alice.apikey_write)
            .await
            .expect("db")
            .is_none()
    );
    assert_eq!(
        cat.user_by_apikey(&new_key).await.expect("db").map(|u| u.1),
        Some(KeyKind::Write)
    );
    let profile = ProfileUpdate {
        name: "Alice A".into(),
        timezone: "UTC".into(),
        ..ProfileUpdate::default()
    };
    cat.update_profile(alice.id, &profile).await.expect("db");
    cat.set_email(alice.id, "a@example.org").await.expect("db");
    cat.record_login(alice.id).await.expect("db");
    cat.set_password_hash(alice.id, "$argon2id$new")
        .await
        .expect("db");
    let a = cat.user_by_id(alice.id).await.expect("db").expect("alice");
    assert_eq!(
        (
            a.name.as_str(),
            a.email.as_str(),
            a.salt,
            a.password.as_str()
        ),
        ("Alice A", "a@example.org", None, "$argon2id$new")
    );
    assert!(a.lastlogin > 0);
    cat.set_ha_discovery(bob.id, true).await.expect("db");
    assert!(cat.ha_discovery(bob.id).await.expect("db"));
    assert!(!cat.ha_discovery(alice.id).await.expect("db"));
    assert_eq!(cat.ha_discovery_users().await.expect("db"), vec![bob.id]);

    // Sessions.
    let token = cat.create_session(alice.id, 3600).await.expect("db");
    let other = cat.create_session(alice.id, 3600).await.expect("db");
    assert_eq!(
        cat.session(&token).await.expect("db").map(|s| s.userid),
        Some(alice.id)
    );
    cat.delete_other_sessions(alice.id, &token)
        .await
        .expect("db");
    assert!(cat.session(&other).await.expect("db").is_none());
    cat.delete_session(&token).await.expect("db");
    assert!(cat.session(&token).await.expect("db").is_none());
    let _ = cat.create_session(bob.id, -1).await.expect("db");
    assert_eq!(cat.purge_expired_sessions().await.expect("db"), 1);
    (alice.id, bob.id)
}

async fn inputs_feeds_devices(cat: &Catalog, alice: i64, bob: i64) {
    // Inputs: created once whatever the retries, in one transaction for a batch.
    let power = cat
        .create_input(alice, "emontx", "power")
        .await
        .expect("db");
    let again = cat
        .create_input(alice, "emontx", "power")
        .await
        .expect("db");
    assert_eq!(power, again);
    let keys = vec![
        ("emontx".to_string(), "power".to_string()),
        ("emontx".to_string(), "temp".to_string()),
    ];
    let rows = cat.create_inputs(alice, &keys).await.expect("db");
    assert_eq!(rows[0], power);
    assert_eq!(rows[1].name, "temp");
    cat.set_input_process_list(power.id, "1:1")
        .await
        .expect("db");
    let renamed = cat
        .set_input_fields(rows[1].id, Some("power"), None)
        .await
        .expect("db");
    assert!(!renamed, "names are unique per node");
    let described = cat
        .set_input_fields(rows[1].id, None, Some("outside"))
        .await
        .expect("db");
    assert!(described);
    let inputs = cat.inputs_for_user(alice).await.expect("db");
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0].process_list, "1:1");
    assert_eq!(inputs[1].description, "outside");
    assert!(!cat.input_creation_disabled(alice).await.expect("db"));
    for now in [5, 6] {
        cat.set_input_creation_disabled(alice, true, now)
            .await
            .expect("db");
    }
    assert!(cat.input_creation_disabled(alice).await.expect("db"));
    cat.set_input_creation_disabled(alice, false, 7)
        .await
        .expect("db");
    assert!(!cat.input_creation_disabled(alice).await.expect("db"));
    // bob cannot delete alice's inputs; unprocessed ones go with input/clean.
    assert_eq!(cat.delete_inputs(bob, &[power.id]).await.expect("db"), 0);
    assert_eq!(cat.delete_unprocessed_inputs(alice).await.expect("db"), 1);
    assert_eq!(cat.inputs_for_user(alice).await.expect("db").len(), 1);

    // Feeds.
    let f = cat
        .create_feed(alice, "power", "house", 5, "W")
        .await
        .expect("db");
    let g = cat
        .create_feed(alice, "kwh", "house", 5, "kWh")
        .await
        .expect("db");
    assert_eq!(
        cat.feed_id_by_name(alice, "kwh", None).await.expect("db"),
        Some(g)
    );
    assert_eq!(
        cat.feed_id_by_name(alice, "kwh", Some("other"))
            .await
            .expect("db"),
        None
    );
    // Both rows are read (and remembered) before they change: every change must show.
    assert!(!cat.feed_by_id(f).await.expect("db").expect("f").public);
    assert_eq!(
        cat.feed_by_id(g)
            .await
            .expect("db")
            .expect("g")
            .process_list,
        ""
    );
    let clash = cat
        .update_feed_fields(g, Some("power"), None, None, None)
        .await
        .expect("db");
    assert!(!clash);
    let set = cat
        .update_feed_fields(f, None, None, Some(true), Some("kW"))
        .await
        .expect("db");
    assert!(set);
    cat.set_feed_size(f, 1234).await.expect("db");
    cat.set_feed_process_list(g, "x").await.expect("db");
    let public = cat.public_feeds(alice).await.expect("db");
    assert_eq!(public.len(), 1);
    let p = &public[0];
    assert_eq!(
        (p.id, p.public, p.unit.as_str(), p.size),
        (f, true, "kW", 1234)
    );
    let row = cat.feed_by_id(g).await.expect("db").expect("g");
    assert_eq!(row.process_list, "x");
    let row = cat.feed_by_id(f).await.expect("db").expect("f");
    assert_eq!(
        (row.public, row.unit.as_str(), row.size),
        (true, "kW", 1234)
    );
    cat.delete_feed_row(g).await.expect("db");
    assert_eq!(cat.feed_by_id(g).await.expect("db"), None);
    assert_eq!(cat.feeds_for_user(alice).await.expect("db").len(), 1);

    // Devices.
    let d = cat
        .create_device(alice, "emontx", "tx", "", "emontx4")
        .await
        .expect("db")
        .expect("created");
    let twice = cat
        .create_device(alice, "emontx", "tx", "", "")
        .await
        .expect("db");
    assert_eq!(twice, None);
    let key = cat.new_device_key(d).await.expect("db");
    let dev = cat
        .device_by_key(&key.to_uppercase())
        .await
        .expect("db")
        .expect("device");
    assert!(dev.time.is_some());
    assert_eq!(dev.kind, "emontx4");
    let set = cat
        .set_device_fields(d, Some("tx4"), None, None, None)
        .await
        .expect("db");
    assert!(set);
    assert_eq!(cat.devices_for_user(alice).await.expect("db").len(), 1);
    cat.delete_device(d).await.expect("db");
    assert!(cat.device_by_id(d).await.expect("db").is_none());
}

async fn imports(cat: &Catalog) {
    // Imports keep their ids, and later rows never clash with them.
    let imported = ImportedUser {
        id: 500,
        username: "carol".into(),
        email: "c@example.com".into(),
        password: "legacy".into(),
        salt: "salt".into(),
        apikey_write: "0123456789abcdef0123456789abcdef".into(),
        apikey_read: "fedcba9876543210fedcba9876543210".into(),
        admin: false,
        timezone: "UTC".into(),
    };
    let first = cat.import_user(&imported).await.expect("db");
    assert_eq!(first, (Imported::Created, 500));
    let second = cat.import_user(&imported).await.expect("db");
    assert_eq!(second, (Imported::Unchanged, 500));
    let clash = ImportedUser {
        id: 501,
        username: "dave".into(),
        ..imported.clone()
    };
    let refused = cat.import_user(&clash).await.expect("db").0;
    assert!(matches!(refused, Imported::Conflict(_)), "{refused:?}");
    let feed = FeedRow {
        id: 900,
        userid: 500,
        name: "old".into(),
        tag: "t".into(),
        public: false,
        engine: 5,
        unit: String::new(),
        process_list: String::new(),
        size: 0,
    };
    assert_eq!(cat.import_feed(&feed).await.expect("db"), Imported::Created);
    let input = InputRow {
        id: 700,
        userid: 500,
        nodeid: "n".into(),
        name: "i".into(),
        description: String::new(),
        process_list: "1:900".into(),
    };
    assert_eq!(
        cat.import_input(&input).await.expect("db"),
        Imported::Created
    );
    let device = DeviceRow {
        id: 300,
        userid: 500,
        nodeid: "n".into(),
        name: "dev".into(),
        description: String::new(),
        kind: String::new(),
        devicekey: "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb".into(),
        time: None,
    };
    assert_eq!(
        cat.import_device(&device).await.expect("db"),
        Imported::Created
    );
    let later = cat
        .create_user(&new_user("erin"), false)
        .await
        .expect("db")
        .expect("created");
    assert!(later.id > 500, "{}", later.id);
    let f = cat
        .create_feed(later.id, "f", "t", 5, "")
        .await
        .expect("db");
    assert!(f > 900, "{f}");
    let i = cat.create_input(later.id, "n", "i").await.expect("db");
    assert!(i.id > 700, "{}", i.id);
    let d = cat
        .create_device(later.id, "n", "d", "", "")
        .await
        .expect("db")
        .expect("created");
    assert!(d > 300, "{d}");
    assert_eq!(cat.list_users().await.expect("db").len(), 4);
}

/// The billing ledger: a key posts once, an unbalanced transaction never, rows cannot be
/// changed or deleted, statement numbers and finished days are recorded once.
async fn ledger(cat: &Catalog, alice: i64) {
    use ynni_core::catalog::{LedgerEntry, LedgerRefusal, NewLedgerTx, Posted};
    let tx = |key: &str, debit: i64, credit: i64| NewLedgerTx {
        key: key.into(),
        kind: "topup".into(),
        userid: Some(alice),
        effective_date: "2026-03-01".into(),
        memo: "m".into(),
        quantity: 2,
        rate: 100,
        entries: vec![
            LedgerEntry {
                account: "cash".into(),
                userid: None,
                amount: debit,
            },
            LedgerEntry {
                account: "customer".into(),
                userid: Some(alice),
                amount: -credit,
            },
        ],
    };
    let Ok(Posted::New(id)) = cat.post_ledger(&tx("topup:a", 250, 250)).await.expect("db") else {
        panic!("posted")
    };
    assert_eq!(
        cat.post_ledger(&tx("topup:a", 1, 1)).await.expect("db"),
        Ok(Posted::Existing(id))
    );
    assert!(matches!(
        cat.post_ledger(&tx("topup:b", 2, 1)).await.expect("db"),
        Err(LedgerRefusal::Unbalanced { sum: 1, .. })
    ));
    let stored = cat.ledger_tx("topup:a").await.expect("db").expect("stored");
    assert_eq!(
        (stored.customer_amount, stored.quantity, stored.rate),
        (-250, 2, 100)
    );
    assert_eq!(
        cat.customer_totals().await.expect("db"),
        vec![(alice, -250)]
    );
    let totals = cat.ledger_account_totals().await.expect("db");
    assert_eq!(totals.iter().map(|t| t.2).sum::<i64>(), 0, "{totals:?}");
    assert_eq!(
        cat.ledger_for_user(alice, "2026-03-01", "2026-03-02")
            .await
            .expect("db")
            .len(),
        1
    );
    assert_eq!(
        cat.ledger_between("2026-03-02", "2026-04-01")
            .await
            .expect("db"),
        vec![]
    );
    let n = cat.statement_number(alice, "2026-03").await.expect("db");
    assert_eq!(cat.statement_number(alice, "2026-03").await.expect("db"), n);
    cat.mark_billing_day("2026-03-01").await.expect("db");
    cat.mark_billing_day("2026-03-01").await.expect("db");
    assert_eq!(
        cat.billing_days_done("2026-03-01", "2026-04-01")
            .await
            .expect("db"),
        vec!["2026-03-01".to_string()]
    );
    cat.set_billing_plan(alice, "small", 1_000)
        .await
        .expect("db");
    cat.set_billing_plan(alice, "large", 2_000)
        .await
        .expect("db");
    // The same plan again is no change.
    cat.set_billing_plan(alice, "large", 3_000)
        .await
        .expect("db");
    assert_eq!(
        cat.billing_plan(alice).await.expect("db").as_deref(),
        Some("large")
    );
    // A change recorded with a time before the last one's (a node whose clock is behind)
    // counts from the last one's time.
    cat.set_billing_plan(alice, "small", 2_500)
        .await
        .expect("db");
    cat.set_billing_plan(alice, "large", 2_400)
        .await
        .expect("db");
    let history = cat.billing_plan_history(alice).await.expect("db");
    assert_eq!(
        history
            .changes
            .iter()
            .map(|c| (c.at, c.from_plan.as_deref(), c.to_plan.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (1_000, None, "small"),
            (2_000, Some("small"), "large"),
            (2_500, Some("large"), "small"),
            (2_500, Some("small"), "large"),
        ]
    );
    // The plan in force just before each moment: the default before the first change.
    for (until, plan) in [
        (500, None),
        (1_000, None),
        (1_001, Some("small")),
        (2_000, Some("small")),
        (2_001, Some("large")),
        (2_500, Some("large")),
        (2_501, Some("large")),
    ] {
        assert_eq!(history.plan_at(until), plan, "until {until}");
    }
}

/// The most feeds held at once on a day: raised by a create or a snapshot, never lowered
/// by a delete or a smaller snapshot the same day; days only the shard counts wrote are not
/// recorded.
async fn feeds_held(cat: &Catalog, bob: i64) {
    let before = cat.feeds_for_user(bob).await.expect("db").len() as i64;
    let day = chrono::Utc::now().date_naive().to_string();
    let a = cat.create_feed(bob, "held-a", "", 5, "").await.expect("db");
    cat.create_feed(bob, "held-b", "", 5, "").await.expect("db");
    cat.delete_feed_row(a).await.expect("db");
    let held = cat.feeds_held(bob, &day, "9999-12-31").await.expect("db");
    assert_eq!(held, vec![(day.clone(), before + 2)]);
    cat.set_usage_snapshot(bob, &day, 1, 0, 0)
        .await
        .expect("db");
    cat.set_usage_snapshot(bob, "2000-01-02", 3, 0, 0)
        .await
        .expect("db");
    cat.set_usage_snapshot(bob, "2000-01-02", 2, 0, 0)
        .await
        .expect("db");
    let handled = ynni_core::catalog::Handled {
        http_values: 1,
        ..Default::default()
    };
    cat.set_usage_handled(&[(bob, "2000-01-03".to_string(), handled)])
        .await
        .expect("db");
    assert_eq!(
        cat.feeds_held(bob, "2000-01-01", "9999-12-31")
            .await
            .expect("db"),
        vec![("2000-01-02".to_string(), 3), (day, before + 2)]
    );
}

/// A feed/create row is listed as waiting for its files (with the interval they are to have)
/// until they are made; other rows never are.
async fn files_pending(cat: &Catalog, alice: i64, bob: i64) {
    let before = cat.feeds_with_files_pending().await.expect("db");
    let a = cat
        .create_feed_with_files(alice, "pending-a", "", 5, "W", u32::MAX)
        .await
        .expect("db");
    let b = cat
        .create_feed_with_files(bob, "pending-b", "", 2, "", 0)
        .await
        .expect("db");
    cat.create_feed(bob, "not-pending", "", 5, "")
        .await
        .expect("db");
    let listed = |rows: Vec<ynni_core::catalog::PendingFiles>| {
        rows.into_iter()
            .filter(|r| !before.contains(r))
            .map(|r| (r.id, r.userid, r.engine, r.interval))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(cat.feeds_with_files_pending().await.expect("db")),
        vec![(a, alice, 5, i64::from(u32::MAX)), (b, bob, 2, 0)]
    );
    cat.feed_files_made(a).await.expect("db");
    assert_eq!(
        listed(cat.feeds_with_files_pending().await.expect("db")),
        vec![(b, bob, 2, 0)]
    );
    cat.delete_feed_row(b).await.expect("db");
    assert!(listed(cat.feeds_with_files_pending().await.expect("db")).is_empty());
}

async fn scenario(cat: &Catalog) {
    let (alice, bob) = accounts(cat).await;
    inputs_feeds_devices(cat, alice, bob).await;
    imports(cat).await;
    ledger(cat, alice).await;
    feeds_held(cat, bob).await;
    files_pending(cat, alice, bob).await;
}

#[tokio::test]
async fn the_catalog_answers_alike_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = Catalog::open_sqlite(&dir.path().join("catalog.sqlite"))
        .await
        .expect("open");
    scenario(&cat).await;
}

#[tokio::test]
async fn the_catalog_answers_alike_on_postgres() {
    let pg = postgres::Postgres::start();
    let cat = Catalog::open_postgres(&pg.url()).await.expect("open");
    scenario(&cat).await;
    // Opening again finds the schema in place.
    let again = Catalog::open_postgres(&pg.url()).await.expect("reopen");
    assert_eq!(again.count_users().await.expect("db"), 4);
}

/// The login time `b` holds for the account of `key`.
async fn login_time(b: &Catalog, key: &str) -> i64 {
    b.user_by_apikey(key)
        .await
        .expect("db")
        .expect("known")
        .0
        .lastlogin
}

/// Waits until `b` answers `key` from its cache, its listener being up: a login time changed
/// in the database (a change no node is told of, as a login's) is then not seen at `b`.
/// Returns the login time `b` holds.
async fn wait_until_cached(b: &Catalog, url: &str, userid: i64, key: &str) -> i64 {
    let raw = sqlx::PgPool::connect(url).await.expect("raw");
    for _ in 0..50 {
        let before = login_time(b, key).await;
        sqlx::query("UPDATE users SET lastlogin = lastlogin + 1 WHERE id = $1")
            .bind(userid)
            .execute(&raw)
            .await
            .expect("update");
        if login_time(b, key).await == before {
            return before;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("b never cached the key");
}

/// Two nodes on one PostgreSQL catalog: a key regenerated through one stops working at once
/// there and, once PostgreSQL has passed the change on, at the other, which had it cached.
#[tokio::test]
async fn a_key_change_on_one_node_reaches_the_others() {
    let pg = postgres::Postgres::start();
    let a = Catalog::open_postgres(&pg.url()).await.expect("open a");
    let b = Catalog::open_postgres(&pg.url()).await.expect("open b");
    let user = a
        .create_user(&new_user("alice"), false)
        .await
        .expect("db")
        .expect("created");
    let stale = wait_until_cached(&b, &pg.url(), user.id, &user.apikey_read).await;
    assert!(
        b.user_by_apikey(&user.apikey_write)
            .await
            .expect("db")
            .is_some()
    );
    let changed = std::time::Instant::now();
    a.regenerate_apikey(user.id, KeyKind::Write)
        .await
        .expect("db");
    assert!(
        a.user_by_apikey(&user.apikey_write)
            .await
            .expect("db")
            .is_none(),
        "refused at once on the node that changed it"
    );
    let mut refused_after = None;
    for _ in 0..100 {
        if b.user_by_apikey(&user.apikey_write)
            .await
            .expect("db")
            .is_none()
        {
            refused_after = Some(changed.elapsed());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let took = refused_after.expect("the other node still accepts the old key after 1 s");
    println!("old key refused on the other node after {took:?}");

    // Feed rows: on PostgreSQL b never remembers them, so a feed a makes public is readable
    // through b at once, and a deleted one is gone at once.
    let feed = a
        .create_feed(user.id, "power", "", 5, "W")
        .await
        .expect("db");
    assert!(!b.feed_by_id(feed).await.expect("db").expect("feed").public);
    assert!(
        a.update_feed_fields(feed, None, None, Some(true), None)
            .await
            .expect("db")
    );
    assert!(
        b.feed_by_id(feed).await.expect("db").expect("feed").public,
        "the other node serves the feed as private after it was made public"
    );
    a.delete_feed_row(feed).await.expect("db");
    assert_eq!(
        b.feed_by_id(feed).await.expect("db"),
        None,
        "the other node still knows a deleted feed"
    );
    // The announcement emptied b's whole cache: the login time it did not hear of is read
    // afresh.
    assert_ne!(login_time(&b, &user.apikey_read).await, stale);
}

/// A change committed by a node that then stops at once (a command-line tool closing its
/// pool, a crash) still reaches the others: the database announces it with its commit.
#[tokio::test]
async fn a_key_change_reaches_the_others_when_its_node_stops_at_once() {
    let pg = postgres::Postgres::start();
    let a = Catalog::open_postgres(&pg.url()).await.expect("open a");
    let b = Catalog::open_postgres(&pg.url()).await.expect("open b");
    let user = a
        .create_user(&new_user("alice"), false)
        .await
        .expect("db")
        .expect("created");
    wait_until_cached(&b, &pg.url(), user.id, &user.apikey_write).await;
    let changed = std::time::Instant::now();
    a.regenerate_apikey(user.id, KeyKind::Write)
        .await
        .expect("db");
    a.close().await;
    let mut refused = false;
    while changed.elapsed() < std::time::Duration::from_secs(1) {
        if b.user_by_apikey(&user.apikey_write)
            .await
            .expect("db")
            .is_none()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "the other node accepts the old key a second after");
}

/// Two nodes on one PostgreSQL catalog: while one holds an account's creation lock, the other
/// waits for it, and for no other account; waits abandoned part way leave nothing locked; a
/// wait longer than `CREATION_WAIT` answers "busy", which may be retried; and a released lock
/// is free for the other node at once.
#[tokio::test]
async fn one_accounts_creations_wait_for_each_other_across_nodes() {
    use std::time::Duration;
    let pg = postgres::Postgres::start();
    let a = Catalog::open_postgres(&pg.url()).await.expect("open a");
    let b = Catalog::open_postgres(&pg.url()).await.expect("open b");
    // Both pools connected, so that the waits below wait for the lock, not for a connection.
    a.lock_creations(1).await.expect("warm a").release().await;
    b.lock_creations(1).await.expect("warm b").release().await;
    let soon = Duration::from_millis(300);
    let held = a.lock_creations(7).await.expect("lock at a");
    assert!(
        tokio::time::timeout(soon, b.lock_creations(7))
            .await
            .is_err(),
        "b created for account 7 while a was"
    );
    let other = tokio::time::timeout(soon, b.lock_creations(8)).await;
    assert!(
        other.is_ok_and(|l| l.is_ok()),
        "account 8 waited for account 7"
    );
    // Waits at b abandoned at different moments (in a try, or between two).
    for ms in [1, 3, 7, 20, 45] {
        let wait = tokio::time::timeout(Duration::from_millis(ms), b.lock_creations(7)).await;
        assert!(wait.is_err(), "b had account 7's lock while a held it");
    }
    // Waited for all of `CREATION_WAIT` (10 s).
    let Err(busy) = b.lock_creations(7).await else {
        panic!("b had account 7's lock while a held it");
    };
    assert!(matches!(busy, CatalogError::CreationBusy), "{busy}");
    assert!(busy.is_retryable(), "{busy}");
    // A shorter deadline is kept, in one piece.
    let started = std::time::Instant::now();
    let short = tokio::time::Instant::now() + Duration::from_millis(200);
    assert!(matches!(
        b.lock_creations_by(7, short).await,
        Err(CatalogError::CreationBusy)
    ));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    held.release().await;
    let again = tokio::time::timeout(Duration::from_secs(5), b.lock_creations(7))
        .await
        .expect("account 7's lock was not given back")
        .expect("lock at b");
    // And a waits for b.
    assert!(
        tokio::time::timeout(soon, a.lock_creations(7))
            .await
            .is_err()
    );
    drop(again);
    let last = tokio::time::timeout(Duration::from_secs(5), a.lock_creations(7))
        .await
        .expect("a never had account 7's lock back")
        .expect("lock at a");
    drop(last);
    // Tries on a free lock abandoned at any moment (before, in or after the query) leave it
    // free: each either got the lock (given back when dropped) or closed its connection.
    for us in (0..40).map(|k| 50 + k * 150) {
        let _ = tokio::time::timeout(Duration::from_micros(us), b.lock_creations(9)).await;
    }
    // Every lock given back: none is left in the server, held or waited for.
    let raw = sqlx::PgPool::connect(&pg.url()).await.expect("raw");
    let mut left = -1;
    for _ in 0..100 {
        left = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'",
        )
        .fetch_one(&raw)
        .await
        .expect("pg_locks");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "advisory locks left in the server");
}

/// The cap check the web layer makes under the lock holds with two nodes adding at once: 40
/// device creations for one account, alternating between two catalogs, with room for 10.
#[tokio::test]
async fn counted_creations_through_two_nodes_stop_at_the_cap() {
    let pg = postgres::Postgres::start();
    let a = Catalog::open_postgres(&pg.url()).await.expect("open a");
    let b = Catalog::open_postgres(&pg.url()).await.expect("open b");
    let user = a
        .create_user(&new_user("alice"), false)
        .await
        .expect("db")
        .expect("created");
    let mut tries = tokio::task::JoinSet::new();
    for k in 0..40 {
        let cat = if k % 2 == 0 { a.clone() } else { b.clone() };
        tries.spawn(async move {
            let _one = cat.lock_creations(user.id).await.expect("lock");
            if cat.device_count(user.id).await.expect("count") >= 10 {
                return false;
            }
            // A creation takes a while between its count and its insert.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            cat.create_device(user.id, &format!("n{k}"), "n", "", "")
                .await
                .expect("insert")
                .is_some()
        });
    }
    let made = tries.join_all().await.into_iter().filter(|m| *m).count();
    assert_eq!(made, 10);
    assert_eq!(a.device_count(user.id).await.expect("count"), 10);
}

/// Registrations racing to be the first account on PostgreSQL: exactly one is made (and is
/// the admin) when only the first may register, and exactly one admin when anyone may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_registrations_make_one_first_account_on_postgres() {
    for only_if_first in [true, false] {
        let pg = postgres::Postgres::start();
        let cat = Catalog::open_postgres(&pg.url()).await.expect("open");
        let mut tasks = Vec::new();
        for i in 0..16 {
            let cat = cat.clone();
            tasks.push(tokio::spawn(async move {
                cat.create_user(&new_user(&format!("user{i}")), only_if_first)
                    .await
                    .expect("db")
            }));
        }
        let mut made = Vec::new();
        for t in tasks {
            if let Ok(user) = t.await.expect("task") {
                made.push(user);
            }
        }
        let admins = made.iter().filter(|u| u.admin).count();
        assert_eq!(admins, 1, "only_if_first {only_if_first}: {made:?}");
        if only_if_first {
            assert_eq!(made.len(), 1);
        } else {
            assert_eq!(made.len(), 16);
        }
    }
}

/// A TCP relay to `target` that can go silent: once `frozen`, whatever either side sends is
/// swallowed, and no connection is closed or reset (a database host that vanished, a NAT
/// that forgot the connection).
async fn freezing_relay(target: u16) -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn pass(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        frozen: std::sync::Arc<AtomicBool>,
    ) {
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if frozen.load(Ordering::SeqCst) {
                // Silent from now on, both sockets kept open.
                std::future::pending::<()>().await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let frozen = std::sync::Arc::new(AtomicBool::new(false));
    let f = frozen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pass(cr, sw, f.clone()));
            tokio::spawn(pass(sr, cw, f.clone()));
        }
    });
    (port, frozen)
}

/// A node whose listening connection goes silent without being closed (nothing is ever sent
/// to a listener, so nothing would fail) notices it: asked to answer after a quiet spell, the
/// connection does not, and the node stops trusting its key cache, which it could no longer
/// hear changes for.
#[tokio::test]
async fn a_silently_dropped_listener_switches_the_key_cache_off() {
    let pg = postgres::Postgres::start();
    let url = pg.url();
    let port: u16 = url
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port in the URL");
    let (relay, frozen) = freezing_relay(port).await;
    let b = Catalog::open_postgres(&url.replace(&format!(":{port}/"), &format!(":{relay}/")))
        .await
        .expect("open b");
    let started = std::time::Instant::now();
    while !b.remembers_keys() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "never listening"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    let silent = std::time::Instant::now();
    while b.remembers_keys() {
        assert!(
            silent.elapsed() < std::time::Duration::from_secs(40),
            "the key cache is still trusted 40 s after the listener went silent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    println!(
        "key cache off {:?} after the listener went silent",
        silent.elapsed()
    );
}

/// A login announces nothing to the other nodes (it changes no key; the login time they
/// remember may lag), while a key change does.
#[tokio::test]
async fn a_login_is_not_announced_to_the_other_nodes() {
    let pg = postgres::Postgres::start();
    let a = Catalog::open_postgres(&pg.url()).await.expect("open a");
    let user = a
        .create_user(&new_user("alice"), false)
        .await
        .expect("db")
        .expect("created");
    let raw = sqlx::PgPool::connect(&pg.url()).await.expect("raw");
    let mut heard = sqlx::postgres::PgListener::connect_with(&raw)
        .await
        .expect("listener");
    heard.listen("ynni_catalog_keys").await.expect("listen");
    let second = std::time::Duration::from_secs(1);
    a.record_login(user.id).await.expect("login");
    let login = tokio::time::timeout(second, heard.recv()).await;
    assert!(login.is_err(), "a login was announced");
    a.regenerate_apikey(user.id, KeyKind::Write)
        .await
        .expect("db");
    let change = tokio::time::timeout(second, heard.recv()).await;
    assert!(change.is_ok(), "a key change was not announced");
}

/// Two processes on one SQLite catalog (the server and `ynni billing refund`, say): an
/// account's creations and refunds still run one at a time across them, and another
/// account's do not wait.
#[tokio::test]
async fn creations_on_one_sqlite_catalog_wait_for_each_other_across_handles() {
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.sqlite");
    let a = Catalog::open_sqlite(&path).await.expect("open a");
    let b = Catalog::open_sqlite(&path).await.expect("open b");
    let held = a.lock_creations(7).await.expect("lock at a");
    let short = tokio::time::Instant::now() + Duration::from_millis(200);
    assert!(matches!(
        b.lock_creations_by(7, short).await,
        Err(CatalogError::CreationBusy)
    ));
    let other = b.lock_creations(8).await.expect("another account's");
    other.release().await;
    held.release().await;
    let soon = tokio::time::Instant::now() + Duration::from_secs(5);
    let again = b
        .lock_creations_by(7, soon)
        .await
        .expect("once a gave it back");
    again.release().await;
}

/// Lock files made by another user (the command line run as root) are the catalog owner's,
/// and files the server may only read still lock: an `flock` needs no write access.
#[tokio::test]
async fn creation_lock_files_belong_to_the_catalogs_owner_and_lock_read_only() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.sqlite");
    let cat = Catalog::open_sqlite(&path).await.expect("open");
    let root = std::fs::metadata("/proc/self").expect("proc").uid() == 0;
    if root {
        // As root, as `sudo ynni billing refund` runs: the catalog is another user's.
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).expect("chown");
    }
    cat.lock_creations(7).await.expect("lock").release().await;
    let locks = dir.path().join("catalog.sqlite.locks");
    let file = locks.join("7");
    let owner = std::fs::metadata(&path).expect("catalog").uid();
    assert_eq!(std::fs::metadata(&locks).expect("dir").uid(), owner);
    assert_eq!(std::fs::metadata(&file).expect("file").uid(), owner);
    // Read-only to everyone: still a lock.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    let held = cat.lock_creations(7).await.expect("read-only file");
    let other = Catalog::open_sqlite(&path).await.expect("open again");
    let short = tokio::time::Instant::now() + std::time::Duration::from_millis(200);
    assert!(matches!(
        other.lock_creations_by(7, short).await,
        Err(CatalogError::CreationBusy)
    ));
    held.release().await;
}
