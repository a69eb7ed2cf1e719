//! The web UI in a real browser: `tests/browser/ui.mjs` drives Debian's chromium (through
//! playwright-core, never a downloaded browser) against the real server: register, see an
//! input appear live, build a process list that creates a feed, post data, graph and zoom it
//! (the time axis's labels in ISO order and inside the canvas), download CSV, and draw a
//! one-year 10 s feed. A second server, with registration closed, must say so on its register
//! page. Screenshots of every page land in `target/tmp/browser-screenshots/`; the one-year
//! graph's timings are printed, not asserted.

use std::path::Path;
use std::process::Command;

use crate::harness::{Server, get, register, script};

#[test]
fn the_ui_helpers_pass_their_unit_tests() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/ui");
    let out = Command::new("node")
        .args(["--test", "test/"])
        .current_dir(&ui)
        .output()
        .expect("run node (Node.js is needed for the UI tests)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What emoncms versions before the fix of #1940 let through: markup in a description and a
/// feed name. An import from such an emoncms brings it along, so the pages must show it as text.
const MARKUP: &str = "<img src=x onerror=alert(1)>";

#[tokio::test(flavor = "multi_thread")]
async fn the_web_ui_works_end_to_end_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let driver = root.join("tests/browser");
    assert!(
        driver.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci` in tests/browser (scripts/test.sh does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (scripts/test.sh does)"
    );
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let server = Server::start();
    let closed = Server::builder()
        .env("USERS__REGISTRATION", "closed")
        .start();
    let (victim, _, key) = register(&server, "imported", "password1").await;
    get(
        &script(),
        &server.url(&format!(
            "/input/post?node=emontx&fulljson=%7B%22power1%22%3A5%7D&apikey={key}"
        )),
    )
    .await;
    get(
        &script(),
        &server.url(&format!(
            "/feed/create.json?tag=t&name=f&engine=5&options=%7B%22interval%22%3A10%7D&apikey={key}"
        )),
    )
    .await;
    let db = server.data_dir.join("catalog.sqlite");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open catalog");
    for sql in [
        "UPDATE inputs SET description = ? WHERE userid = ?",
        "UPDATE feeds SET name = ?, tag = ? || 'tag' WHERE userid = ?",
    ] {
        let mut q = sqlx::query(sql).bind(MARKUP);
        if sql.contains("tag") {
            q = q.bind(MARKUP);
        }
        q.bind(victim).execute(&pool).await.expect("seed markup");
    }
    pool.close().await;
    let out = Command::new("node")
        .arg(driver.join("ui.mjs"))
        .arg(&server.base)
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .env("YNNI_MARKUP_LOGIN", "imported:password1")
        .env("YNNI_MARKUP", MARKUP)
        .env("YNNI_CLOSED_BASE", &closed.base)
        .current_dir(&driver)
        .output()
        .expect("run node (Node.js is needed for the browser test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser run failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}\nclosed server's log:\n{}",
        out.status,
        server.log(),
        closed.log()
    );
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("the driver reports its measurements");
    let v: serde_json::Value = serde_json::from_str(result).expect("RESULT is JSON");
    assert!(v["csv_lines"].as_u64().is_some_and(|n| n > 10), "{v}");
    assert!(
        v["year_points_drawn"].as_u64().is_some_and(|n| n > 100),
        "{v}"
    );
    println!("browser: {v} (screenshots in {})", shots.display());
}

/// A hosted service's billing pages in chromium (`tests/browser/billing.mjs`): the operator
/// tops a customer up, charges the finished days and issues a voucher; the customer sees the
/// grace banner and the numbers this test computed, downloads the statement, redeems the
/// voucher, and prints.
#[tokio::test(flavor = "multi_thread")]
async fn the_billing_pages_work_in_chromium() {
    let server = crate::billing::billed_server();
    register(&server, "operator", "password123").await;
    let (alice, _, key) = register(&server, "alice", "password123").await;
    let r = get(
        &script(),
        &server.url(&format!(
            "/feed/create.json?name=use&engine=5&options=%7B%22interval%22%3A10%7D&apikey={key}"
        )),
    )
    .await;
    assert!(r.body.contains("feedid"), "{}", r.body);
    crate::billing::backdate(&server, &[alice]).await;
    let week: i64 = crate::billing::last_week_charges().iter().sum();
    let stdout = run_driver(
        "billing.mjs",
        &server,
        &[
            ("YNNI_ADMIN_LOGIN", "operator:password123".into()),
            ("YNNI_USER_LOGIN", "alice:password123".into()),
            ("YNNI_USER_ID", alice.to_string()),
            ("YNNI_EXPECT_AFTER_ACCRUAL", (100 - week).to_string()),
            ("YNNI_EXPECT_AFTER_VOUCHER", (600 - week).to_string()),
        ],
    );
    assert!(stdout.contains("RESULT {\"billing\":\"ok\"}"), "{stdout}");
}

/// The apps in chromium (`tests/browser/apps.mjs`) with data whose figures this test knows.
/// My Electric: hourly cumulative kWh rising 0.5 kWh an hour, so yesterday used 12.0 kWh
/// (£1.80 at 15p), and power now 1234 W; the same figures through a share link, with no
/// session. My Solar, yesterday: two hours of 1000 W use under 1500 W solar, then an hour of
/// 800 W at night: 3.0 kWh generated, 2.8 used, 2.0 of it solar, 1.0 exported, 0.8 imported.
/// My Heatpump: 6.0 kWh in and 21.6 out yesterday (COP 3.60), 5.0 °C outside, SCOP 3.60.
#[tokio::test(flavor = "multi_thread")]
async fn the_apps_show_known_figures_and_share_them_in_chromium() {
    let server = Server::start();
    let (_, _, key) = register(&server, "alice", "password123").await;
    let c = script();
    let create = |name: &str, interval: u32| {
        server.url(&format!(
            "/feed/create.json?name={name}&engine=5&options=%7B%22interval%22%3A{interval}%7D&apikey={key}"
        ))
    };
    let id_of = |body: String| -> i64 {
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["feedid"].as_i64().expect("feedid")
    };
    let use_feed = id_of(get(&c, &create("use", 10)).await.body);
    let kwh_feed = id_of(get(&c, &create("use_kwh", 3600)).await.body);
    let now = chrono::Utc::now().timestamp();
    let today = now - now.rem_euclid(86_400);
    let start = today - 2 * 86_400;
    let points: Vec<String> = (0..)
        .map(|h| start + h * 3600)
        .take_while(|t| *t <= now)
        .enumerate()
        .map(|(h, t)| format!("[{t},{}]", h as f64 * 0.5))
        .collect();
    let data = format!("[{}]", points.join(","));
    insert(&c, &server, &key, kwh_feed, &data).await;
    let r = get(
        &c,
        &server.url(&format!(
            "/feed/insert.json?id={use_feed}&time={now}&value=1234&apikey={key}"
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let app: serde_json::Value = serde_json::from_str(
        &get(
            &c,
            &server.url(&format!(
                "/app/add.json?app=myelectric&name=House&apikey={key}"
            )),
        )
        .await
        .body,
    )
    .expect("json");
    let config = format!(
        "%7B%22use%22%3A%22{use_feed}%22%2C%22use_kwh%22%3A%22{kwh_feed}%22%2C%22unitcost%22%3A0.15%7D"
    );
    let r = get(
        &c,
        &server.url(&format!(
            "/app/setconfig.json?id={}&config={config}&apikey={key}",
            app["id"]
        )),
    )
    .await;
    assert!(r.body.contains("true"), "{}", r.body);
    // My Solar's feeds, yesterday from 10:00 to 13:00 UTC at 10 s.
    let house = id_of(get(&c, &create("house", 10)).await.body);
    let pv = id_of(get(&c, &create("pv", 10)).await.body);
    let ten = today - 86_400 + 10 * 3600;
    for (feed, day_w, night_w) in [(house, 1000, 800), (pv, 1500, 0)] {
        let points: Vec<String> = (0..3 * 360)
            .map(|k| {
                let t = ten + k * 10;
                let w = if t < ten + 2 * 3600 { day_w } else { night_w };
                format!("[{t},{w}]")
            })
            .collect();
        insert(&c, &server, &key, feed, &format!("[{}]", points.join(","))).await;
    }
    let solar: serde_json::Value = serde_json::from_str(
        &get(
            &c,
            &server.url(&format!(
                "/app/add.json?app=mysolarpv&name=Solar&apikey={key}"
            )),
        )
        .await
        .body,
    )
    .expect("json");
    // Its kWh feeds, hourly from two days ago: 0.5 kWh used, 0.25 generated and 0.375
    // imported an hour, so each day 3 of the 6 kWh generated are exported (50 % used here).
    let mut kwh_feeds = Vec::new();
    for (name, per_hour) in [("h_kwh", 0.5), ("pv_kwh", 0.25), ("imp_kwh", 0.375)] {
        let id = id_of(get(&c, &create(name, 3600)).await.body);
        let points: Vec<String> = (0..)
            .map(|h| start + h * 3600)
            .take_while(|t| *t <= now)
            .enumerate()
            .map(|(h, t)| format!("[{t},{}]", h as f64 * per_hour))
            .collect();
        insert(&c, &server, &key, id, &format!("[{}]", points.join(","))).await;
        kwh_feeds.push(id);
    }
    let config = crate::harness::encode(&format!(
        r#"{{"use":{house},"solar":{pv},"use_kwh":{},"solar_kwh":{},"import_kwh":{}}}"#,
        kwh_feeds[0], kwh_feeds[1], kwh_feeds[2]
    ));
    let r = get(
        &c,
        &server.url(&format!(
            "/app/setconfig.json?id={}&config={config}&apikey={key}",
            solar["id"]
        )),
    )
    .await;
    assert!(r.body.contains("true"), "{}", r.body);
    // My Heatpump: hourly cumulative kWh, 0.25 in and 0.9 out an hour (COP 3.6), 5 °C outside.
    let hp_elec = id_of(get(&c, &create("heatpump_elec", 10)).await.body);
    let hp_elec_kwh = id_of(get(&c, &create("heatpump_elec_kwh", 3600)).await.body);
    let hp_heat_kwh = id_of(get(&c, &create("heatpump_heat_kwh", 3600)).await.body);
    let hp_out = id_of(get(&c, &create("heatpump_outsideT", 3600)).await.body);
    // Yesterday from 10:00 UTC, by the minute: an hour running (1000 W in, 3500 W out), a
    // 10 min defrost (800 W in, heat -500 W), 50 min running, an hour of standby at 20 W.
    let hp_heat = id_of(get(&c, &create("heatpump_heat", 10)).await.body);
    let hp_ten = today - 86_400 + 10 * 3600;
    for (feed, running, defrost, standby) in [(hp_heat, 3500, -500, 0), (hp_elec, 1000, 800, 20)] {
        let points: Vec<String> = (0..180 * 6)
            .map(|k| {
                let minute = k / 6;
                let w = match minute {
                    0..60 | 70..120 => running,
                    60..70 => defrost,
                    _ => standby,
                };
                format!("[{},{w}]", hp_ten + k * 10)
            })
            .collect();
        insert(&c, &server, &key, feed, &format!("[{}]", points.join(","))).await;
    }
    for (feed, per_hour) in [(hp_elec_kwh, 0.25), (hp_heat_kwh, 0.9), (hp_out, 0.0)] {
        let points: Vec<String> = (0..)
            .map(|h| start + h * 3600)
            .take_while(|t| *t <= now)
            .enumerate()
            .map(|(h, t)| {
                let v = if feed == hp_out {
                    5.0
                } else {
                    h as f64 * per_hour
                };
                format!("[{t},{v}]")
            })
            .collect();
        insert(&c, &server, &key, feed, &format!("[{}]", points.join(","))).await;
    }
    get(
        &c,
        &server.url(&format!(
            "/feed/insert.json?id={hp_elec}&time={now}&value=700&apikey={key}"
        )),
    )
    .await;
    let hp: serde_json::Value = serde_json::from_str(
        &get(
            &c,
            &server.url(&format!(
                "/app/add.json?app=myheatpump&name=Heatpump&apikey={key}"
            )),
        )
        .await
        .body,
    )
    .expect("json");
    let config = format!(
        "%7B%22heatpump_elec%22%3A{hp_elec}%2C%22heatpump_heat%22%3A{hp_heat}%2C%22heatpump_elec_kwh%22%3A{hp_elec_kwh}%2C%22heatpump_heat_kwh%22%3A{hp_heat_kwh}%2C%22heatpump_outsideT%22%3A{hp_out}%7D"
    );
    let r = get(
        &c,
        &server.url(&format!(
            "/app/setconfig.json?id={}&config={config}&apikey={key}",
            hp["id"]
        )),
    )
    .await;
    assert!(r.body.contains("true"), "{}", r.body);
    // My Electric with a time-of-use tariff: 7 h at 6p and 17 h at 20p of 0.5 kWh an hour
    // cost £1.91 a day. My Solar with Battery, yesterday from 10:00 UTC: two hours of 2000 W solar, 500 W house
    // and 1000 W charging an AC battery, then two hours of 800 W from the battery, 40 % full
    // of 10 kWh at the end. My Solar with Divert: an hour of 3000 W solar with 2500 W used,
    // 1500 W of it diverted, then an hour of 1000 W at night.
    let hourly = |hours: &[f64]| -> Vec<String> {
        (0..hours.len() as i64 * 360)
            .map(|k| format!("[{},{}]", ten + k * 10, hours[(k / 360) as usize]))
            .collect()
    };
    let mut battery_ids = Vec::new();
    for (name, hours) in [
        ("b_use", [500.0, 500.0, 800.0, 800.0]),
        ("b_solar", [2000.0, 2000.0, 0.0, 0.0]),
        ("b_charge", [1000.0, 1000.0, 0.0, 0.0]),
        ("b_discharge", [0.0, 0.0, 800.0, 800.0]),
        ("b_soc", [60.0, 70.0, 50.0, 40.0]),
        ("d_use", [2500.0, 1000.0, f64::NAN, f64::NAN]),
        ("d_solar", [3000.0, 0.0, f64::NAN, f64::NAN]),
        ("d_divert", [1500.0, 0.0, f64::NAN, f64::NAN]),
    ] {
        let id = id_of(get(&c, &create(name, 10)).await.body);
        let hours: Vec<f64> = hours.into_iter().filter(|h| !h.is_nan()).collect();
        insert(
            &c,
            &server,
            &key,
            id,
            &format!("[{}]", hourly(&hours).join(",")),
        )
        .await;
        battery_ids.push(id);
    }
    for (app, name, config) in [
        (
            "myelectric",
            "Tariff",
            format!(
                r#"{{"use":{use_feed},"use_kwh":{kwh_feed},"unitcost":0.15,"tou_bands":"00:00-07:00=0.06, 07:00-24:00=0.20"}}"#
            ),
        ),
        (
            "mysolarpvbattery",
            "Battery",
            format!(
                r#"{{"use":{},"solar":{},"battery_charge":{},"battery_discharge":{},"battery_soc":{},"battery_capacity_kwh":10}}"#,
                battery_ids[0], battery_ids[1], battery_ids[2], battery_ids[3], battery_ids[4]
            ),
        ),
        (
            "mysolarpvdivert",
            "Divert",
            format!(
                r#"{{"use":{},"solar":{},"divert":{}}}"#,
                battery_ids[5], battery_ids[6], battery_ids[7]
            ),
        ),
    ] {
        let added: serde_json::Value = serde_json::from_str(
            &get(
                &c,
                &server.url(&format!("/app/add.json?app={app}&name={name}&apikey={key}")),
            )
            .await
            .body,
        )
        .expect("json");
        let r = get(
            &c,
            &server.url(&format!(
                "/app/setconfig.json?id={}&config={}&apikey={key}",
                added["id"],
                crate::harness::encode(&config)
            )),
        )
        .await;
        assert!(r.body.contains("true"), "{}", r.body);
    }
    let yesterday = chrono::DateTime::from_timestamp(today - 86_400, 0)
        .expect("date")
        .format("%Y-%m-%d")
        .to_string();
    let stdout = run_driver(
        "apps.mjs",
        &server,
        &[
            ("YNNI_USER_LOGIN", "alice:password123".into()),
            ("YNNI_YESTERDAY", yesterday),
            ("YNNI_YESTERDAY_KWH", "12.0".into()),
            ("YNNI_YESTERDAY_COST", "£1.80".into()),
            ("YNNI_POWER_NOW", "1234".into()),
        ],
    );
    assert!(stdout.contains("RESULT {\"apps\":\"ok\"}"), "{stdout}");
}

/// Runs `tests/browser/<script>` in node against `server` (chromium, screenshots under
/// `target/tmp/browser-screenshots`) with `env`, and returns its output; a failed run fails
/// the test with the driver's output and the server's log.
fn run_driver(script: &str, server: &Server, env: &[(&str, String)]) -> String {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let out = Command::new("node")
        .arg(driver.join(script))
        .arg(&server.base)
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(&driver)
        .output()
        .expect("run node (Node.js is needed for the browser test)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        server.log()
    );
    stdout
}

/// Dashboards in chromium (`tests/browser/dashboards.mjs`): a dashboard stored in emoncms's
/// format, with a power feed at 1234 W for the last hour, a temperature of 21.5 °C named by
/// tag and name, and a switch feed at 0. The driver checks the values drawn, switches the
/// feed with a button, edits (mouse and touch) and saves, then opens a share link on a phone.
#[tokio::test(flavor = "multi_thread")]
async fn dashboards_draw_edit_and_share_in_chromium() {
    let server = Server::start();
    let (_, _, key) = register(&server, "alice", "password123").await;
    let c = script();
    let create = |tag: &str, name: &str| {
        server.url(&format!(
            "/feed/create.json?tag={tag}&name={name}&engine=5&options=%7B%22interval%22%3A10%7D&apikey={key}"
        ))
    };
    let id_of = |body: String| -> i64 {
        serde_json::from_str::<serde_json::Value>(&body).expect("json")["feedid"]
            .as_i64()
            .expect("feedid")
    };
    let power = id_of(get(&c, &create("house", "power")).await.body);
    let temp = id_of(get(&c, &create("house", "temp")).await.body);
    let switch = id_of(get(&c, &create("house", "switch")).await.body);
    let now = chrono::Utc::now().timestamp() / 10 * 10;
    let points: Vec<String> = (0..360)
        .map(|i| format!("[{},1234]", now - 3590 + i * 10))
        .collect();
    for (feed, data) in [
        (power, format!("[{}]", points.join(","))),
        (temp, format!("[[{now},21.5]]")),
        (switch, format!("[[{now},0]]")),
    ] {
        insert(&c, &server, &key, feed, &data).await;
    }
    let dash: i64 = get(
        &c,
        &server.url(&format!("/dashboard/create.json?apikey={key}")),
    )
    .await
    .body
    .trim()
    .parse()
    .expect("dashboard id");
    get(
        &c,
        &server.url(&format!(
            "/dashboard/set.json?id={dash}&fields=%7B%22name%22%3A%22House%22%7D&apikey={key}"
        )),
    )
    .await;
    let at = |top: u32, left: u32, width: u32, height: u32| {
        format!(
            "position:absolute; margin: 0; top:{top}px; left:{left}px; width:{width}px; height:{height}px;"
        )
    };
    let content = [
        format!(r#"<div id="1" class="heading" style="{}">My house</div>"#, at(0, 20, 400, 40)),
        format!(
            r#"<div id="2" class="paragraph" style="{}">Power <b>now</b><img src="https://example.invalid/t.png"></div>"#,
            at(40, 20, 400, 40)
        ),
        format!(
            r#"<div id="3" class="feedvalue" style="{}" feedid="{power}" decimals="0" append=" W"></div>"#,
            at(80, 20, 200, 60)
        ),
        format!(
            r#"<div id="4" class="feedvalue" style="{}" feedid="house:temp" decimals="1" append=" °C"></div>"#,
            at(80, 240, 200, 60)
        ),
        format!(
            r#"<div id="5" class="dial" style="{}" feedid="{power}" max="3000" units="W" decimals="0"></div>"#,
            at(160, 20, 160, 140)
        ),
        format!(
            r#"<div id="6" class="led" style="{}" feedid="{switch}"></div>"#,
            at(160, 200, 60, 60)
        ),
        format!(
            r#"<div id="7" class="button" style="{}" feedid="{switch}"></div>"#,
            at(160, 280, 120, 60)
        ),
        format!(
            r#"<div id="8" class="realtime" style="{}" feedid="{power}" initzoom="60"></div>"#,
            at(320, 20, 600, 220)
        ),
        format!(
            r#"<div id="9" class="windrose" style="{}" feedid="{power}"></div>"#,
            at(160, 420, 200, 60)
        ),
    ]
    .concat();
    let r = crate::harness::post_form(
        &c,
        &server.url(&format!("/dashboard/setcontent.json?apikey={key}")),
        &[
            ("id", dash.to_string().as_str()),
            ("content", &crate::harness::encode(&content)),
            ("height", "540"),
        ],
    )
    .await;
    assert!(r.body.contains("true"), "{}", r.body);
    let stdout = run_driver(
        "dashboards.mjs",
        &server,
        &[
            ("YNNI_USER_LOGIN", "alice:password123".into()),
            ("YNNI_DASHBOARD", dash.to_string()),
            ("YNNI_POWER_FEED", power.to_string()),
        ],
    );
    assert!(
        stdout.contains("RESULT {\"dashboards\":\"ok\"}"),
        "{stdout}"
    );
}

/// Writes `data` (`[[time,value],…]`) into `feed` with `feed/insert` and checks it was taken.
async fn insert(c: &reqwest::Client, server: &Server, key: &str, feed: i64, data: &str) {
    let r = crate::harness::post_form(
        c,
        &server.url(&format!("/feed/insert.json?id={feed}&apikey={key}")),
        &[("data", data)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
