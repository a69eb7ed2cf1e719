//! A hosted service's prepaid billing (issue 18), end to end: a user with a small balance is
//! warned, passes into grace, and another past grace is refused over HTTP (402) and MQTT
//! (MQTT 5 "quota exceeded", 3.1.1 "not authorised", an open connection closed), is topped up
//! and accepted again having lost nothing acknowledged; statements match the ledger to the
//! penny; users cannot see or change each other's billing, and apikeys and device keys cannot
//! administer it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Server, browser, get, post_form, register, script};
use crate::mqtt_tenancy::publish_acked;

/// 7,300p a feed a year: 20p a day (19.94p in a leap year).
const FEED_YEAR_PENCE: i64 = 7300;

/// What one feed costs on each of the seven days before today, as the accrual charges them
/// (`ynni_billing::accrual`, property-tested on its own).
pub(crate) fn last_week_charges() -> Vec<i64> {
    use chrono::{Datelike, Days};
    let plan = ynni_billing::Plan {
        name: "standard".into(),
        feed_year_pence: FEED_YEAR_PENCE,
        monthly_fee_pence: 0,
        max_feeds: 0,
        max_inputs: 0,
        values_per_minute: 0,
        min_post_interval_s: 0,
        overage: Default::default(),
    };
    let today = ynni_billing::utc_day(chrono::Utc::now().timestamp());
    let mut units_by_year = std::collections::HashMap::new();
    (1..=7u64)
        .rev()
        .map(|back| {
            let day = today.checked_sub_days(Days::new(back)).expect("date");
            let units = units_by_year.entry(day.year()).or_insert(0i64);
            let (pence, u) = ynni_billing::accrual::day_charge(&plan, day, *units, 1);
            *units += u;
            pence
        })
        .collect()
}

pub(crate) fn billed_server() -> Server {
    Server::builder()
        .env("BILLING__GRACE_DAYS", "5")
        .env("BILLING__WARN_DAYS", "30")
        .env("BILLING__REFRESH_S", "1")
        .env(
            "BILLING__PLANS__STANDARD__FEED_YEAR_PENCE",
            &FEED_YEAR_PENCE.to_string(),
        )
        .start()
}

async fn json_of(c: &reqwest::Client, url: &str) -> Value {
    let r = get(c, url).await;
    assert_eq!(r.status, 200, "{url}: {}", r.body);
    r.json()
}

/// Makes the accounts look 20 days old (as if they had been in service that long) and the
/// last week's days not yet charged (the server's start-up run found nothing to charge then),
/// so the accrual has finished days to charge: the server's own catalog file, changed beside
/// it.
pub(crate) async fn backdate(server: &Server, ids: &[i64]) {
    let url = format!(
        "sqlite://{}",
        server.data_dir.join("catalog.sqlite").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.expect("catalog");
    for id in ids {
        sqlx::query("UPDATE users SET created = created - 20 * 86400 WHERE id = $1")
            .bind(id)
            .execute(&pool)
            .await
            .expect("backdate");
    }
    sqlx::query("DELETE FROM billing_days")
        .execute(&pool)
        .await
        .expect("days");
    pool.close().await;
}

fn post_url(server: &Server, key: &str, value: i64) -> String {
    server.url(&format!(
        "/input/post?node=meter&fulljson=%7B%22power%22%3A{value}%7D&apikey={key}"
    ))
}

async fn power(server: &Server, read: &str) -> Value {
    json_of(
        &script(),
        &server.url(&format!("/input/get/meter/power?apikey={read}")),
    )
    .await["value"]
        .clone()
}

/// A v3.1.1 connection's outcome: `Ok` when accepted, the refusal's code otherwise.
async fn connect_v4(
    server: &Server,
    id: &str,
    user: &str,
    key: &str,
) -> Result<(rumqttc::AsyncClient, rumqttc::EventLoop), rumqttc::ConnectReturnCode> {
    let addr = server.mqtt.expect("broker");
    let mut opts = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_credentials(user, key);
    let (c, mut ev) = rumqttc::AsyncClient::new(opts, 16);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))) => return Ok((c, ev)),
            Ok(Ok(_)) => {}
            Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => return Err(code),
            other => panic!("no CONNACK: {other:?}"),
        }
        assert!(Instant::now() < deadline, "no CONNACK");
    }
}

/// An MQTT 5 CONNECT's refusal reason, or `None` when accepted.
async fn connect_v5(server: &Server, user: &str, key: &str) -> Option<String> {
    use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions, mqttbytes::v5::Packet};
    let addr = server.mqtt.expect("broker");
    let mut opts = MqttOptions::new("v5-client", addr.ip().to_string(), addr.port());
    opts.set_credentials(user, key);
    let (_c, mut ev) = AsyncClient::new(opts, 16);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return None,
            Ok(Ok(_)) => {}
            Ok(Err(ConnectionError::ConnectionRefused(code))) => return Some(format!("{code:?}")),
            other => panic!("no CONNACK: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepaid_account_is_warned_graced_refused_and_accepted_again() {
    let server = billed_server();
    let c = script();
    // The first account is the administrator (the operator).
    register(&server, "operator", "password123").await;
    let admin = browser();
    let r = post_form(
        &admin,
        &server.url("/user/login.json"),
        &[("username", "operator"), ("password", "password123")],
    )
    .await;
    assert!(r.body.contains("true"), "{}", r.body);
    let (alice, alice_read, alice_write) = register(&server, "alice", "password123").await;
    let (bob, bob_read, bob_write) = register(&server, "bobby", "password123").await;
    for key in [&alice_write, &bob_write] {
        let r = get(
            &c,
            &server.url(&format!(
                "/feed/create.json?name=use&engine=5&options=%7B%22interval%22%3A10%7D&apikey={key}"
            )),
        )
        .await;
        assert!(r.body.contains("feedid"), "{}", r.body);
    }
    let admin_call = |path: String| {
        let admin = admin.clone();
        let url = server.url(&path);
        async move { json_of(&admin, &url).await }
    };
    let account = |read: String| {
        let url = server.url(&format!("/billing/account.json?apikey={read}"));
        async move { json_of(&script(), &url).await }
    };

    // Bob posts while in credit: acknowledged, kept whatever happens next.
    assert_eq!(
        get(&c, &post_url(&server, &bob_write, 5)).await.body,
        "{\"success\": true}"
    );

    // Top-ups: alice 100p (5 days at 20p: warned, under 30 days of runway), bob 20p. The
    // same payment reported twice counts once.
    for (who, pence, reference) in [
        (alice, 100, "pay-a"),
        (bob, 20, "pay-b"),
        (bob, 20, "pay-b"),
    ] {
        let r = admin_call(format!(
            "/billing/topup.json?userid={who}&pence={pence}&reference={reference}"
        ))
        .await;
        assert_eq!(r["success"], true, "{r}");
    }
    // A link to an admin write, followed with the administrator's session from one of this
    // site's pages (a public dashboard's text), from a mail, or fetched as an image: it
    // changes nothing. Reading by following a link is fine.
    let forged = server.url(&format!(
        "/billing/topup.json?userid={alice}&pence=5000&reference=forged"
    ));
    for (site, mode) in [
        ("same-origin", "navigate"),
        ("none", "navigate"),
        ("same-origin", "no-cors"),
    ] {
        let r = crate::harness::send(
            admin
                .get(&forged)
                .header("sec-fetch-site", site)
                .header("sec-fetch-mode", mode),
        )
        .await;
        assert_ne!(r.status, 200, "{site} {mode}: {r:?}");
    }
    let r = crate::harness::send(
        admin
            .get(server.url("/billing/accounts.json"))
            .header("sec-fetch-site", "none")
            .header("sec-fetch-mode", "navigate"),
    )
    .await;
    assert_eq!(r.status, 200, "an administrator reads by link: {r:?}");
    let a = account(alice_read.clone()).await;
    assert_eq!(a["balance_pence"], 100, "{a}");
    let daily = a["daily_centipence"].as_i64().expect("daily");
    assert!((1994..=2000).contains(&daily), "{a}");
    assert_eq!(a["standing"]["state"], "low", "warned: {a}");
    assert_eq!(a["runway_days"], 100 * 100 / daily, "{a}");
    assert_eq!(account(bob_read.clone()).await["balance_pence"], 20);

    // Bob's MQTT connection, open before he runs out.
    let (bob_mqtt, mut bob_ev) = connect_v4(&server, "bob-meter", "bobby", &bob_write)
        .await
        .expect("bob connects while in credit");
    publish_acked(&bob_mqtt, &mut bob_ev, "emon/meter/energy", "1").await;

    // The accounts have been in service 20 days; the accrual charges the last seven.
    backdate(&server, &[alice, bob]).await;
    let week: i64 = last_week_charges().iter().sum();
    let run = admin_call("/billing/accrue.json".into()).await;
    assert_eq!(run["posted"], 14, "{run}");
    assert_eq!(run["pence"], 2 * week, "{run}");
    let again = admin_call("/billing/accrue.json".into()).await;
    assert_eq!(again["posted"], 0, "a second run charges nothing: {again}");

    // Alice: 100p less about 140p, in arrears since the 5th or 6th charged day: in grace,
    // still writing.
    let a = account(alice_read.clone()).await;
    assert_eq!(a["balance_pence"], 100 - week, "{a}");
    assert_eq!(a["standing"]["state"], "grace", "{a}");
    assert_eq!(
        get(&c, &post_url(&server, &alice_write, 9)).await.status,
        200
    );

    // Bob: 20p less the week, in arrears since the first or second charged day, past 5 days
    // of grace: refused.
    let b = account(bob_read.clone()).await;
    assert_eq!(b["balance_pence"], 20 - week, "{b}");
    assert_eq!(b["standing"]["state"], "suspended", "{b}");
    let r = get(&c, &post_url(&server, &bob_write, 6)).await;
    assert_eq!(r.status, 402, "{}", r.body);
    assert!(r.body.contains("Payment required"), "{}", r.body);
    let bulk = server.url(&format!(
        "/input/bulk?data=%5B%5B0%2C%22meter%22%2C%7B%22power%22%3A6%7D%5D%5D&apikey={bob_write}"
    ));
    assert_eq!(get(&c, &bulk).await.status, 402);
    let feeds = json_of(
        &c,
        &server.url(&format!("/feed/list.json?apikey={bob_read}")),
    )
    .await;
    // emoncms's feed list gives ids as strings.
    let bob_feed: i64 = feeds[0]["id"]
        .to_string()
        .trim_matches('"')
        .parse()
        .expect("feed");
    let r = get(
        &c,
        &server.url(&format!(
            "/feed/insert.json?id={bob_feed}&time=1700000000&value=1&apikey={bob_write}"
        )),
    )
    .await;
    assert_eq!(r.status, 402, "feed/insert is refused too: {}", r.body);
    // So are a binary upload and a sync (the same points a different way).
    let mut record = 1_700_000_000u32.to_le_bytes().to_vec();
    record.extend_from_slice(&1f32.to_le_bytes());
    let r = crate::harness::send(
        c.post(server.url(&format!(
            "/feed/upload.json?id={bob_feed}&npoints=1&apikey={bob_write}"
        )))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(record),
    )
    .await;
    assert_eq!(r.status, 402, "feed/upload is refused too: {r:?}");
    let mut sync = Vec::new();
    for w in [24, bob_feed as u32, 1_700_000_000, 10, 0] {
        sync.extend_from_slice(&w.to_le_bytes());
    }
    sync.extend_from_slice(&1f32.to_le_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&sync);
    sync.extend_from_slice(&crc.sum().to_le_bytes());
    let r = crate::harness::send(
        c.post(server.url(&format!("/feed/sync.json?apikey={bob_write}")))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(sync),
    )
    .await;
    assert_eq!(r.status, 402, "feed/sync is refused too: {r:?}");
    let meta = json_of(
        &c,
        &server.url(&format!(
            "/feed/getmeta.json?id={bob_feed}&apikey={bob_read}"
        )),
    )
    .await;
    assert_eq!(meta["npoints"], 0, "nothing refused was stored: {meta}");
    // Reads keep working, and the value acknowledged before is there.
    assert_eq!(power(&server, &bob_read).await, 5);
    // His open connection is closed, and new ones are refused with the documented codes.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if bob_ev.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "bob's connection is closed once he is refused"
    );
    assert_eq!(
        connect_v4(&server, "bob-meter", "bobby", &bob_write)
            .await
            .err(),
        Some(rumqttc::ConnectReturnCode::NotAuthorized)
    );
    assert_eq!(
        connect_v5(&server, "bobby", &bob_write).await.as_deref(),
        Some("QuotaExceeded")
    );
    let admin_view = admin_call("/billing/accounts.json".into()).await;
    let bob_row = admin_view
        .as_array()
        .expect("accounts")
        .iter()
        .find(|r| r["userid"] == bob)
        .expect("bob listed")
        .clone();
    assert!(
        bob_row["refusals"].as_u64().expect("refusals") >= 4,
        "{bob_row}"
    );

    // Neither user can see or change the other's billing, nor administer it; nor can a
    // device key.
    let s = json_of(
        &c,
        &server.url(&format!(
            "/billing/statement.json?userid={bob}&apikey={alice_read}"
        )),
    )
    .await;
    assert_eq!(s["userid"], alice, "the userid of another is ignored: {s}");
    for key in [&alice_write, &alice_read] {
        let r = get(
            &c,
            &server.url(&format!(
                "/billing/topup.json?userid={alice}&pence=999&reference=self&apikey={key}"
            )),
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.body);
    }
    let id = get(
        &c,
        &server.url(&format!(
            "/device/create.json?nodeid=meter&apikey={bob_write}"
        )),
    )
    .await;
    assert_eq!(id.status, 200, "{}", id.body);
    let devices = json_of(
        &c,
        &server.url(&format!("/device/list.json?apikey={bob_write}")),
    )
    .await;
    let device_key = devices[0]["devicekey"].as_str().expect("key").to_string();
    let r = get(
        &c,
        &server.url(&format!("/billing/account.json?devicekey={device_key}")),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = get(
        &c,
        &server.url(&format!(
            "/input/post?node=meter&fulljson=%7B%22power%22%3A6%7D&devicekey={device_key}"
        )),
    )
    .await;
    assert_eq!(r.status, 402, "the device key is refused too: {}", r.body);
    assert_eq!(
        power(&server, &bob_read).await,
        5,
        "nothing refused was stored"
    );

    // A voucher (hardware credit) and a top-up bring bob back at once.
    let v = admin_call("/billing/voucher.json?code=HW-EMONPI-1&pence=100&memo=emonPi".into()).await;
    assert_eq!(v["success"], true, "{v}");
    let r = get(
        &c,
        &server.url(&format!(
            "/billing/redeem.json?code=HW-EMONPI-1&apikey={bob_write}"
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = get(
        &c,
        &server.url(&format!(
            "/billing/redeem.json?code=HW-EMONPI-1&apikey={alice_write}"
        )),
    )
    .await;
    assert_eq!(
        r.status, 404,
        "a voucher is used once (and says no more than an unknown one): {}",
        r.body
    );
    admin_call(format!(
        "/billing/topup.json?userid={bob}&pence=500&reference=pay-b2"
    ))
    .await;
    let r = get(&c, &post_url(&server, &bob_write, 7)).await;
    assert_eq!(r.status, 200, "accepted again: {}", r.body);
    assert_eq!(power(&server, &bob_read).await, 7);
    let (m, mut ev) = connect_v4(&server, "bob-meter", "bobby", &bob_write)
        .await
        .expect("MQTT accepted again");
    publish_acked(&m, &mut ev, "emon/meter/energy", "2").await;

    // The statement of this month matches the ledger to the penny: the lines are the ledger's
    // transactions of the month, and the closing balance is the account's.
    for (who, read) in [(alice, &alice_read), (bob, &bob_read)] {
        let s = json_of(
            &c,
            &server.url(&format!("/billing/statement.json?apikey={read}")),
        )
        .await;
        let balance = account(read.to_string()).await["balance_pence"].clone();
        assert_eq!(s["closing_pence"], balance, "{s}");
        let month = s["month"].as_str().expect("month").to_string();
        let ledger = json_of(
            &admin,
            &server.url(&format!("/billing/userledger.json?userid={who}")),
        )
        .await;
        let in_month: Vec<&Value> = ledger
            .as_array()
            .expect("ledger")
            .iter()
            .filter(|t| t["date"].as_str().is_some_and(|d| d.starts_with(&month)))
            .collect();
        let lines = s["lines"].as_array().expect("lines");
        assert_eq!(lines.len(), in_month.len(), "{s}");
        let sum: i64 = in_month
            .iter()
            .map(|t| t["amount_pence"].as_i64().expect("amount"))
            .sum();
        assert_eq!(
            s["closing_pence"].as_i64().expect("closing")
                - s["opening_pence"].as_i64().expect("opening"),
            sum
        );
        let csv = get(
            &c,
            &server.url(&format!("/billing/statement.csv?apikey={read}")),
        )
        .await;
        assert!(csv.body.starts_with("statement,"), "{}", csv.body);
    }

    // Usage for Stripe and Lago carries the ledger's keys: 14 charged days.
    let stripe = admin_call("/billing/export.json?format=stripe".into()).await;
    let keys: Vec<&str> = stripe
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["identifier"].as_str())
        .collect();
    let charges: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| k.starts_with("accrual:"))
        .collect();
    assert_eq!(charges.len(), 14, "{stripe}");
    // Usage of days still running is not exported (their counts still grow).
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(
        keys.iter()
            .all(|k| k.starts_with("accrual:") || !k.ends_with(&today)),
        "{keys:?}"
    );
    let lago = admin_call("/billing/export.json?format=lago".into()).await;
    assert_eq!(lago.as_array().expect("events").len(), keys.len());
}

#[tokio::test]
async fn without_billing_nothing_is_refused_and_its_routes_say_so() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "password123").await;
    let c = script();
    let r = get(
        &c,
        &server.url(&format!("/billing/account.json?apikey={read}")),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "{\"enabled\":false}"));
    let r = get(
        &c,
        &server.url(&format!("/billing/statement.json?apikey={read}")),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(get(&c, &post_url(&server, &write, 1)).await.status, 200);
}

/// Polls `alice`'s usage totals until they are `want` (the workers write every 10 s).
async fn usage_totals(server: &Server, read: &str, want: &[(&str, i64)]) -> Value {
    let c = script();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = get(
            &c,
            &server.url(&format!("/usage/summary.json?apikey={read}")),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let totals = r.json()["totals"].clone();
        if want.iter().all(|(k, n)| totals[*k] == *n) {
            return totals;
        }
        assert!(
            Instant::now() < deadline,
            "usage {totals} never reached {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Usage is counted where data is handled and survives a crash exactly: values over HTTP and
/// MQTT and points written, the same after kill -9 and the replay of the log, each user seeing
/// only their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_metered_per_user_and_day_through_a_crash() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::builder().data_dir(data.path()).start();
    let c = script();
    let (_, alice_read, alice_write) = register(&server, "alice", "password123").await;
    let (_, bob_read, bob_write) = register(&server, "bobby", "password123").await;
    for i in 0..5 {
        let url = server.url(&format!(
            "/input/post?node=meter&fulljson=%7B%22a%22%3A{i}%2C%22b%22%3A1%7D&apikey={alice_write}"
        ));
        assert_eq!(get(&c, &url).await.status, 200);
    }
    assert_eq!(get(&c, &post_url(&server, &bob_write, 1)).await.status, 200);
    let (m, mut ev) = connect_v4(&server, "alice-meter", "alice", &alice_write)
        .await
        .expect("alice connects");
    for v in ["1", "2", "3"] {
        publish_acked(&m, &mut ev, "emon/meter/power", v).await;
    }
    let feed = json_of(
        &c,
        &server.url(&format!(
            "/feed/create.json?name=p&engine=5&options=%7B%22interval%22%3A10%7D&apikey={alice_write}"
        )),
    )
    .await["feedid"]
        .as_i64()
        .expect("feed");
    for (t, v) in [(1_700_000_000, 1), (1_700_000_010, 2)] {
        let r = get(
            &c,
            &server.url(&format!(
                "/feed/insert.json?id={feed}&time={t}&value={v}&apikey={alice_write}"
            )),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let want = [("http_values", 12), ("mqtt_values", 3), ("points", 2)];
    usage_totals(&server, &alice_read, &want).await;
    usage_totals(
        &server,
        &bob_read,
        &[("http_values", 1), ("mqtt_values", 0)],
    )
    .await;
    drop((m, ev));

    // Killed and restarted: the log is replayed, and nothing is counted twice or lost.
    server.kill9();
    let server = Server::builder().data_dir(data.path()).start();
    assert_eq!(
        get(&c, &post_url(&server, &alice_write, 9)).await.status,
        200
    );
    let totals = usage_totals(
        &server,
        &alice_read,
        &[("http_values", 13), ("mqtt_values", 3), ("points", 2)],
    )
    .await;
    assert_eq!(totals["refusals"], 0);

    // Only an administrator's session sees every account; a device key sees nothing.
    let r = get(
        &c,
        &server.url(&format!("/usage/summary.json?all=1&apikey={bob_read}")),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let csv = get(
        &c,
        &server.url(&format!("/usage/summary.csv?apikey={alice_read}")),
    )
    .await;
    assert!(
        csv.body
            .starts_with("userid,day,http_values,mqtt_values,points"),
        "{}",
        csv.body
    );
    assert_eq!(csv.body.lines().count(), 2, "one day: {}", csv.body);

    // Alice registered first: she administers. Her session sees every account, each with
    // its totals, and the overall totals, as JSON and as CSV.
    let admin = browser();
    post_form(
        &admin,
        &server.url("/user/login.json"),
        &[("username", "alice"), ("password", "password123")],
    )
    .await;
    let all = json_of(&admin, &server.url("/usage/summary.json?all=1")).await;
    let users = all["users"].as_array().expect("users");
    assert_eq!(users.len(), 2, "{all}");
    assert_eq!(users[0]["totals"]["http_values"], 13, "{all}");
    assert_eq!(users[1]["totals"]["http_values"], 1, "{all}");
    assert_eq!(all["totals"]["http_values"], 14, "{all}");
    assert_eq!(all["totals"]["mqtt_values"], 3, "{all}");
    let csv = get(&admin, &server.url("/usage/summary.csv?all=1")).await;
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 1 + 2 + 2 + 1, "{}", csv.body);
    assert!(lines[5].starts_with("all,total,14,3,2,"), "{}", csv.body);
}

/// A plan's rate limits answer 429 with `Retry-After` for that user only, and its feed limit
/// refuses one feed too many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plans_rate_and_feed_limits_hold_one_user_back_not_the_others() {
    let server = Server::builder()
        .env("BILLING__PLANS__STANDARD__FEED_YEAR_PENCE", "100")
        .env("BILLING__PLANS__SMALL__VALUES_PER_MINUTE", "10")
        .env("BILLING__PLANS__SMALL__MIN_POST_INTERVAL_S", "0")
        .env("BILLING__PLANS__SMALL__MAX_FEEDS", "1")
        .env("BILLING__PLANS__SMALL__MAX_INPUTS", "3")
        .env("BILLING__PLANS__METERED__MIN_POST_INTERVAL_S", "30")
        .start();
    let c = script();
    register(&server, "operator", "password123").await;
    let admin = browser();
    post_form(
        &admin,
        &server.url("/user/login.json"),
        &[("username", "operator"), ("password", "password123")],
    )
    .await;
    let (alice, _, alice_write) = register(&server, "alice", "password123").await;
    let (carol, _, carol_write) = register(&server, "carol", "password123").await;
    let (_, _, bob_write) = register(&server, "bobby", "password123").await;
    for (who, plan) in [(alice, "small"), (carol, "metered")] {
        let r = json_of(
            &admin,
            &server.url(&format!("/billing/setplan.json?userid={who}&plan={plan}")),
        )
        .await;
        assert_eq!(r["success"], true, "{r}");
    }
    let r = get(
        &c,
        &server.url(&format!(
            "/billing/setplan.json?userid={alice}&plan=gold&apikey={alice_write}"
        )),
    )
    .await;
    assert_eq!(r.status, 403, "a user cannot change plan: {}", r.body);

    // Alice: 10 values a minute. Three posts of three values fit, the fourth does not.
    let post = |key: &str, n: usize| {
        let values: Vec<String> = (0..n).map(|i| format!("%22v{i}%22%3A1")).collect();
        server.url(&format!(
            "/input/post?node=n&fulljson=%7B{}%7D&apikey={key}",
            values.join("%2C")
        ))
    };
    for _ in 0..3 {
        assert_eq!(get(&c, &post(&alice_write, 3)).await.status, 200);
    }
    let r = get(&c, &post(&alice_write, 3)).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let wait: u64 = r.headers["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    // Bob, on the default plan, is not held back.
    for _ in 0..20 {
        assert_eq!(get(&c, &post(&bob_write, 3)).await.status, 200);
    }
    // Over MQTT too: alice's next value (her minute's worth is spent) is not acknowledged
    // and her connection closes, so her client sends it again later; bob's are stored.
    let mqtt = |user: &str, key: &str| {
        let addr = server.mqtt.expect("broker");
        let mut o =
            rumqttc::MqttOptions::new(format!("{user}-dev"), addr.ip().to_string(), addr.port());
        o.set_credentials(user, key);
        rumqttc::AsyncClient::new(o, 16)
    };
    let (bob_mqtt, mut bob_ev) = mqtt("bobby", &bob_write);
    assert!(crate::mqtt_tenancy::connack(&mut bob_ev).await.is_some());
    for i in 0..5 {
        crate::mqtt_tenancy::publish_acked(&bob_mqtt, &mut bob_ev, "emon/m/p", &i.to_string())
            .await;
    }
    let (alice_mqtt, mut alice_ev) = mqtt("alice", &alice_write);
    assert!(crate::mqtt_tenancy::connack(&mut alice_ev).await.is_some());
    // One value's worth is left of her minute: three do not fit.
    alice_mqtt
        .publish(
            "emon/n",
            rumqttc::QoS::AtLeastOnce,
            false,
            r#"{"v0":2,"v1":2,"v2":2}"#,
        )
        .await
        .expect("publish");
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match alice_ev.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => return "acknowledged",
                Ok(_) => {}
                Err(_) => return "closed",
            }
        }
    })
    .await;
    assert_eq!(outcome, Ok("closed"), "alice's value over her plan's rate");
    let v = get(
        &c,
        &server.url(&format!("/input/get/n/v0?apikey={alice_write}")),
    )
    .await;
    assert!(v.body.contains("\"value\":1"), "not stored: {}", v.body);
    // Carol's node may post once every 30 s; another node of hers may post now.
    assert_eq!(get(&c, &post(&carol_write, 1)).await.status, 200);
    let r = get(&c, &post(&carol_write, 1)).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let url = server.url(&format!(
        "/input/post?node=other&fulljson=%7B%22x%22%3A1%7D&apikey={carol_write}"
    ));
    assert_eq!(get(&c, &url).await.status, 200);

    // Three inputs on the small plan (10 values a minute are spent: the refill is tested
    // above, so a fresh account of the same plan posts here).
    let (dave, _, dave_write) = register(&server, "davey", "password123").await;
    let r = json_of(
        &admin,
        &server.url(&format!("/billing/setplan.json?userid={dave}&plan=small")),
    )
    .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        get(&c, &post(&dave_write, 3)).await.body,
        "{\"success\": true}"
    );
    let r = get(
        &c,
        &server.url(&format!(
            "/input/post?node=n&fulljson=%7B%22v9%22%3A1%7D&apikey={dave_write}"
        )),
    )
    .await;
    assert!(
        r.body.contains("inputs this account's plan allows"),
        "{}",
        r.body
    );

    // One feed on the small plan.
    let create = |name: &str| {
        server.url(&format!(
            "/feed/create.json?name={name}&engine=5&options=%7B%22interval%22%3A10%7D&apikey={alice_write}"
        ))
    };
    assert!(get(&c, &create("one")).await.body.contains("feedid"));
    let r = get(&c, &create("two")).await;
    assert!(r.body.contains("Feed limit reached"), "{}", r.body);
}

/// `ynni billing …` on the server's data: a top-up counted once per reference, a voucher
/// redeemed once, the ledger and a statement that agree, and a clear refusal where billing is
/// off.
#[tokio::test]
async fn the_billing_commands_work_on_the_servers_data() {
    use crate::harness::run_cli;
    let server = billed_server();
    let (alice, alice_read, _) = register(&server, "alice", "password123").await;
    let data = server.data_dir.display().to_string();
    let on = [("YNNI_BILLING__GRACE_DAYS", "5")];
    let cli = |args: &[&str]| {
        let mut all: Vec<&str> = vec!["billing"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", &data]);
        run_cli(&all, &on, None)
    };
    for _ in 0..2 {
        let (ok, out, err) = cli(&["topup", "alice", "250", "--reference", "pay-cli-1"]);
        assert!(ok.success(), "{out}{err}");
    }
    // A username of digits that is another account's id names neither.
    let (bob, _, _) = register(&server, "bob", "password123").await;
    let (digits, _, _) = register(&server, &format!("{bob:03}"), "password123").await;
    let (ok, out, err) = cli(&[
        "topup",
        &format!("{bob:03}"),
        "1",
        "--reference",
        "pay-cli-amb",
    ]);
    assert!(
        !ok.success() && err.contains("name the account as"),
        "{out}{err}"
    );
    for (who, reference) in [(bob, "pay-cli-bob"), (digits, "pay-cli-digits")] {
        let (ok, out, err) = cli(&["topup", &format!("#{who}"), "1", "--reference", reference]);
        assert!(ok.success(), "{out}{err}");
    }
    let (ok, out, err) = cli(&["voucher", "HW-CLI-00001", "100", "--memo", "emonTx"]);
    assert!(ok.success(), "{out}{err}");
    let (ok, out, err) = cli(&["redeem", &alice.to_string(), "HW-CLI-00001"]);
    assert!(ok.success(), "{out}{err}");
    let (ok, out, err) = cli(&["redeem", "alice", "HW-CLI-00001"]);
    assert!(
        ok.success() && out.contains("nothing changed"),
        "{out}{err}"
    );
    let (ok, out, err) = cli(&["ledger", "alice"]);
    assert!(ok.success(), "{out}{err}");
    let keys: Vec<String> = out
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            assert_eq!(
                v["entries"]
                    .as_array()
                    .expect("entries")
                    .iter()
                    .map(|e| e["pence"].as_i64().expect("pence"))
                    .sum::<i64>(),
                0,
                "every transaction balances: {v}"
            );
            v["key"].as_str().expect("key").to_string()
        })
        .collect();
    assert_eq!(keys, ["topup:pay-cli-1", "voucher:HW-CLI-00001"]);
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let (ok, out, err) = cli(&["statement", "alice", &month, "--csv"]);
    assert!(ok.success(), "{out}{err}");
    assert!(out.ends_with("closing balance,3.50\n"), "{out}");
    // The server sees what the command wrote.
    let a = json_of(
        &script(),
        &server.url(&format!("/billing/account.json?apikey={alice_read}")),
    )
    .await;
    assert_eq!(a["balance_pence"], 350, "{a}");

    // A refund is at most the balance and the cash paid in (the 100p voucher is spent, not
    // paid out), once per reference; a reversal undoes a transaction once and cannot itself
    // be reversed.
    let (ok, out, err) = cli(&["refund", "alice", "251", "--reference", "ref-1"]);
    assert!(!ok.success(), "a refund of voucher credit: {out}{err}");
    for _ in 0..2 {
        let (ok, out, err) = cli(&["refund", "alice", "50", "--reference", "ref-1"]);
        assert!(ok.success(), "{out}{err}");
    }
    for _ in 0..2 {
        let (ok, out, err) = cli(&["reverse", "voucher:HW-CLI-00001"]);
        assert!(ok.success(), "{out}{err}");
    }
    let (ok, out, err) = cli(&["reverse", "reverse:voucher:HW-CLI-00001"]);
    assert!(!ok.success(), "a reversal reversed: {out}{err}");
    let a = json_of(
        &script(),
        &server.url(&format!("/billing/account.json?apikey={alice_read}")),
    )
    .await;
    assert_eq!(a["balance_pence"], 350 - 50 - 100, "{a}");
    let (ok, out, err) = cli(&["ledger", "alice"]);
    assert!(ok.success(), "{out}{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let (ok, out, err) = cli(&[
        "export",
        "--format",
        "lago",
        "--start",
        "2026-01-01",
        "--end",
        "2026-01-02",
    ]);
    assert!(ok.success(), "{out}{err}");

    let (ok, _, err) = run_cli(&["billing", "accounts", "--data-dir", &data], &[], None);
    assert!(!ok.success());
    assert!(err.contains("[billing]"), "{err}");
}
