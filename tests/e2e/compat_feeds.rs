//! emoncms 11.16.8's answers on the edges of the feed routes: `feed/create` with an engine
//! given as text, `feed/data` listing feeds the key may not read (and an empty `ids=`),
//! `feed/trim` with a start time that is no integer, the process list calls on a feed that is
//! not virtual, `feed/upload` without its parameters, `feed/data` with `split`, and reads of
//! a multiple-point `feed/insert` at coarser intervals. Each case names the emoncms source it
//! follows (file and function).

use crate::harness::*;

const T0: i64 = 1_699_999_200;
/// index.php's header for the `json` format.
const JSON: &str = "application/json";
/// `options={"interval":10}`, encoded.
const INTERVAL10: &str = "%7B%22interval%22%3A10%7D";
/// index.php's reply when the controller returns nothing for the route.
const ROUTE_NOT_FOUND: &str =
    r#"{"success":false,"message":"406 Not Acceptable. Route not found"}"#;

/// Status, content type and body, for one exact comparison.
fn seen(r: &Reply) -> (u16, &str, &str) {
    (r.status, r.content_type.as_str(), r.body.as_str())
}

/// `path` with `key` as its apikey.
fn keyed(server: &Server, path: &str, key: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    server.url(&format!("{path}{sep}apikey={key}"))
}

/// Creates a feed with a 10 s interval; returns its id.
async fn create(server: &Server, write: &str, name: &str, engine: u8) -> i64 {
    let path = format!("/feed/create.json?tag=t&name={name}&engine={engine}&options={INTERVAL10}");
    let r = get(&script(), &keyed(server, &path, write)).await;
    let v = r.json();
    assert_eq!(v["success"], true, "create {name}: {}", r.body);
    v["feedid"].as_i64().expect("feedid")
}

/// Writes `values` to the feed at T0, T0+10, …
async fn insert(server: &Server, write: &str, id: i64, values: &[i64]) {
    for (k, v) in values.iter().enumerate() {
        let t = T0 + 10 * k as i64;
        let path = format!("/feed/insert.json?id={id}&time={t}&value={v}");
        let r = get(&script(), &keyed(server, &path, write)).await;
        assert_eq!(seen(&r), (200, JSON, v.to_string().as_str()));
    }
}

#[tokio::test]
async fn create_reads_the_engine_with_phps_int_cast() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let create = |name: &str, engine: Option<&str>| {
        let engine = engine.map(|e| format!("&engine={e}")).unwrap_or_default();
        keyed(
            &server,
            &format!("/feed/create.json?tag=t&name={name}{engine}&options={INTERVAL10}"),
            &write,
        )
    };
    let engine_of = |id: i64| {
        keyed(
            &server,
            &format!("/feed/get.json?id={id}&field=engine"),
            &read,
        )
    };
    let created = |id: i64| format!(r#"{{"success":true,"feedid":{id},"result":true}}"#);

    // feed_model.php, Feed::create casts the engine with (int): an engine given by name has
    // no numeric prefix, so it is engine 0, MySQL, which Engine::is_valid (Lib/enum.php)
    // accepts, and the feed is created with it.
    let r = get(&c, &create("byname", Some("PHPFINA"))).await;
    assert_eq!(seen(&r), (200, JSON, created(1).as_str()));
    let r = get(&c, &engine_of(1)).await;
    assert_eq!(seen(&r), (200, JSON, r#""0""#));
    // The same cast: an empty engine, and no engine at all (core.php, get() gives null,
    // which (int) makes 0).
    let r = get(&c, &create("empty", Some(""))).await;
    assert_eq!(seen(&r), (200, JSON, created(2).as_str()));
    let r = get(&c, &create("missing", None)).await;
    assert_eq!(seen(&r), (200, JSON, created(3).as_str()));
    for id in [2, 3] {
        let r = get(&c, &engine_of(id)).await;
        assert_eq!(seen(&r), (200, JSON, r#""0""#));
    }
    // (int) reads the numeric prefix: `5abc` is PHPFina (5), ` 5` too (leading white space
    // is skipped), `2.9` is PHPTimeSeries (2).
    for (k, (engine, id)) in [("5abc", 5), ("%205", 5), ("2.9", 2)]
        .into_iter()
        .enumerate()
    {
        let feedid = 4 + k as i64;
        let r = get(&c, &create(&format!("prefix{k}"), Some(engine))).await;
        assert_eq!(seen(&r), (200, JSON, created(feedid).as_str()), "{engine}");
        let r = get(&c, &engine_of(feedid)).await;
        assert_eq!(
            seen(&r),
            (200, JSON, format!(r#""{id}""#).as_str()),
            "{engine}"
        );
    }
    // Feed::create's refusal quotes the cast number, not the text sent.
    for (engine, quoted) in [("300x", "300"), ("-3", "-3"), ("99", "99")] {
        let r = get(&c, &create("refused", Some(engine))).await;
        let body = format!(
            r#"{{"success":false,"message":"ABORTED: Engine id {quoted} is not supported."}}"#
        );
        assert_eq!(seen(&r), (200, JSON, body.as_str()), "{engine}");
    }
    // Feed::create checks the engine before it looks for a feed of the same tag and name.
    let r = get(&c, &create("byname", Some("99"))).await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            r#"{"success":false,"message":"ABORTED: Engine id 99 is not supported."}"#
        )
    );
    let r = get(&c, &create("byname", Some("PHPFINA"))).await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            r#"{"success":false,"message":"feed already exists"}"#
        )
    );
}

#[tokio::test]
async fn data_leaves_out_unreadable_feeds_in_phps_array_shape() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bob", "secret1").await;
    let c = script();
    let a = create(&server, &write, "a", 5).await;
    let b = create(&server, &write, "b", 5).await;
    let hidden = create(&server, &bob_write, "hidden", 5).await;
    assert_eq!((a, b, hidden), (1, 2, 3));
    insert(&server, &write, a, &[10, 11, 12]).await;
    insert(&server, &write, b, &[20, 21, 22]).await;
    let data = |q: &str| {
        keyed(
            &server,
            &format!("/feed/data.json?start={T0}&end={}&interval=10&{q}", T0 + 20),
            &read,
        )
    };
    let points = |v: i64| {
        format!(
            "[[{},{v}],[{},{}],[{},{}]]",
            T0 * 1000,
            (T0 + 10) * 1000,
            v + 1,
            (T0 + 20) * 1000,
            v + 2
        )
    };
    let entry = |feedid: &str, v: i64| format!(r#"{{"feedid":"{feedid}","data":{}}}"#, points(v));

    // feed_controller.php (data): each readable feed's entry is stored at its position in the
    // list and an unreadable one is skipped, so json_encode writes an object keyed by
    // position once a gap comes before a shown entry…
    let r = get(&c, &data("ids=1,3,2")).await;
    let body = format!(r#"{{"0":{},"2":{}}}"#, entry("1", 10), entry("2", 20));
    assert_eq!(seen(&r), (200, JSON, body.as_str()));
    let r = get(&c, &data("ids=3,1")).await;
    let body = format!(r#"{{"1":{}}}"#, entry("1", 10));
    assert_eq!(seen(&r), (200, JSON, body.as_str()));
    // …and a list while the shown entries are 0, 1, … in order (gaps only at the end), or
    // none at all.
    let r = get(&c, &data("ids=1,3")).await;
    let body = format!("[{}]", entry("1", 10));
    assert_eq!(seen(&r), (200, JSON, body.as_str()));
    let r = get(&c, &data("ids=3")).await;
    assert_eq!(seen(&r), (200, JSON, "[]"));
    // The entry's feedid is the listed text as explode() split it, while the feed is found
    // by its (int) cast (Feed::exist).
    let r = get(&c, &data("ids=1,%202")).await;
    let body = format!("[{},{}]", entry("1", 10), entry(" 2", 20));
    assert_eq!(seen(&r), (200, JSON, body.as_str()));
    // An empty `ids=` (or `id=`) still explodes to one id, the empty text, which (int) makes
    // feed 0: it does not exist. Only neither parameter is "no ids given".
    let feed0 = r#"{"success":false,"message":"feed 0 does not exist","feeds":[0]}"#;
    for q in ["ids=", "id="] {
        let r = get(&c, &data(q)).await;
        assert_eq!(seen(&r), (200, JSON, feed0), "{q}");
    }
    let r = get(&c, &data("x=1")).await;
    assert_eq!(
        seen(&r),
        (200, JSON, r#"{"success":false,"message":"no ids given"}"#)
    );
    // `id` is read before `ids`; with `id`, the data alone is returned when exactly one
    // listed feed is readable, taken from position 0 of the result array.
    let r = get(&c, &data("id=1&ids=2")).await;
    assert_eq!(seen(&r), (200, JSON, points(10).as_str()));
    let r = get(&c, &data("id=1,3")).await;
    assert_eq!(seen(&r), (200, JSON, points(10).as_str()));
    // When that feed was listed later, position 0 is empty: PHP prints null (ynni leaves out
    // the warnings PHP prints first, DESIGN.md §4).
    let r = get(&c, &data("id=3,1")).await;
    assert_eq!(seen(&r), (200, JSON, "null"));
    let r = get(&c, &data("id=3")).await;
    assert_eq!(seen(&r), (200, JSON, "[]"));
}

#[tokio::test]
async fn trim_answers_false_to_a_start_time_that_is_no_integer() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bob", "secret1").await;
    let c = script();
    let fina = create(&server, &write, "fina", 5).await;
    let virt = create(&server, &write, "virt", 7).await;
    insert(&server, &write, fina, &[1, 2, 3]).await;
    let trim =
        |id: i64, q: &str, key: &str| keyed(&server, &format!("/feed/trim.json?id={id}{q}"), key);

    // feed_controller.php (trim): the reply is `false` unless filter_var(start_time,
    // FILTER_VALIDATE_INT) gives a truthy integer: missing, empty, text, zero (also `+0`),
    // a decimal, a leading zero, an exponent or trailing text all fail.
    let invalid = [
        String::new(),
        "&start_time=".into(),
        "&start_time=abc".into(),
        "&start_time=0".into(),
        "&start_time=%2B0".into(),
        "&start_time=1.5".into(),
        "&start_time=007".into(),
        "&start_time=1e9".into(),
        format!("&start_time={}abc", T0 + 10),
    ];
    for q in &invalid {
        let r = get(&c, &trim(fina, q, &write)).await;
        assert_eq!(seen(&r), (200, JSON, "false"), "{q}");
    }
    // The check comes after the feed's own: an unknown feed does not exist, and another
    // user's feed is the 406 of the write branch it never enters.
    let r = get(&c, &trim(99, "&start_time=abc", &write)).await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            r#"{"success":false,"message":"Feed does not exist"}"#
        )
    );
    let r = get(&c, &trim(fina, "&start_time=abc", &bob_write)).await;
    assert_eq!(seen(&r), (406, JSON, ROUTE_NOT_FOUND));
    // Nothing was trimmed.
    let r = get(
        &c,
        &keyed(&server, &format!("/feed/getmeta.json?id={fina}"), &read),
    )
    .await;
    assert_eq!(r.json()["start_time"], T0, "{}", r.body);
    // FILTER_VALIDATE_INT trims white space around the number; PHPFina::trim then keeps the
    // slots from the new start.
    let q = format!("&start_time=%20{}%20", T0 + 10);
    let r = get(&c, &trim(fina, &q, &write)).await;
    assert_eq!(
        seen(&r),
        (200, JSON, r#"{"success":true,"message":"8 bytes written"}"#)
    );
    // A virtual feed: the controller's check still comes first, then VirtualFeed::trim
    // refuses; VirtualFeed::clear likewise.
    let r = get(&c, &trim(virt, "&start_time=abc", &write)).await;
    assert_eq!(seen(&r), (200, JSON, "false"));
    let q = format!("&start_time={T0}");
    let r = get(&c, &trim(virt, &q, &write)).await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            r#"{"success":false,"message":"\"Trim\" not available for this storage engine"}"#
        )
    );
    let r = get(
        &c,
        &keyed(&server, &format!("/feed/clear.json?id={virt}"), &write),
    )
    .await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            r#"{"success":false,"message":"\"Clear\" not available for this storage engine"}"#
        )
    );
}

#[tokio::test]
async fn process_list_calls_need_a_virtual_feed() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let fina = create(&server, &write, "fina", 5).await;
    let ts = create(&server, &write, "ts", 2).await;
    let virt = create(&server, &write, "virt", 7).await;
    let process = |sub: &str, id: &str, key: &str| {
        keyed(&server, &format!("/feed/process/{sub}.json?id={id}"), key)
    };
    let not_virtual = r#"{"success":false,"message":"Feed is not Virtual"}"#;

    // feed_controller.php (process): in the write branch, a feed whose engine is not
    // VIRTUALFEED is refused before the subaction is looked at.
    for id in [fina, ts] {
        let r = get(&c, &process("get", &id.to_string(), &write)).await;
        assert_eq!(seen(&r), (200, JSON, not_virtual), "get {id}");
        let list = r#"[{"fn":"process__source_feed_data_time","args":["1"]}]"#;
        let r = post_form(
            &c,
            &process("set", &id.to_string(), &write),
            &[("processlist", list)],
        )
        .await;
        assert_eq!(seen(&r), (200, JSON, not_virtual), "set {id}");
        let r = get(&c, &process("reset", &id.to_string(), &write)).await;
        assert_eq!(seen(&r), (200, JSON, not_virtual), "reset {id}");
    }
    // A virtual feed's list (Feed::get_processlist): the stored text, empty until set.
    let r = get(&c, &process("get", &virt.to_string(), &write)).await;
    assert_eq!(seen(&r), (200, JSON, r#""""#));
    // The controller checks the feed exists first (any caller), then wants the owner's write
    // session: a read key ends in the 406, whatever the engine.
    for id in ["99", ""] {
        let r = get(&c, &process("get", id, &write)).await;
        assert_eq!(
            seen(&r),
            (
                200,
                JSON,
                r#"{"success":false,"message":"Feed does not exist"}"#
            ),
            "{id:?}"
        );
    }
    for id in [fina, virt] {
        let r = get(&c, &process("get", &id.to_string(), &read)).await;
        assert_eq!(seen(&r), (406, JSON, ROUTE_NOT_FOUND), "{id}");
    }
}

#[tokio::test]
async fn upload_without_its_parameters_is_an_unknown_route() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let fina = create(&server, &write, "fina", 5).await;
    let ts = create(&server, &write, "ts", 2).await;
    let virt = create(&server, &write, "virt", 7).await;
    let upload =
        |id: i64, q: &str| keyed(&server, &format!("/feed/upload.json?id={id}{q}"), &write);
    let slot: Vec<u8> = 1.5f32.to_le_bytes().to_vec();
    let record: Vec<u8> = (T0 as u32 + 10)
        .to_le_bytes()
        .into_iter()
        .chain(7.5f32.to_le_bytes())
        .collect();

    // feed_controller.php (upload): with neither start+interval+npoints nor npoints, no
    // branch returns, and the controller's empty answer is index.php's 406.
    let r = get(&c, &upload(fina, "")).await;
    assert_eq!(seen(&r), (406, JSON, ROUTE_NOT_FOUND));
    let q = format!("&start={T0}&interval=10");
    let r = send(c.post(upload(fina, &q)).body(slot.clone())).await;
    assert_eq!(seen(&r), (406, JSON, ROUTE_NOT_FOUND));
    // The same for a feed of any engine: the parameters are looked at before the engine.
    for id in [ts, virt] {
        let r = get(&c, &upload(id, "")).await;
        assert_eq!(seen(&r), (406, JSON, ROUTE_NOT_FOUND), "{id}");
    }
    // The feed is looked up before the action: an unknown feed does not exist.
    let r = get(&c, &upload(99, "")).await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            r#"{"success":false,"message":"Feed does not exist"}"#
        )
    );
    // Feed::upload_fixed_interval and Feed::upload_variable_interval take PHPFina feeds only.
    let refused = r#"{"success":false,"message":"Feed upload not supported for this engine"}"#;
    let r = send(c.post(upload(ts, "&npoints=1")).body(record.clone())).await;
    assert_eq!(seen(&r), (200, JSON, refused));
    let q = format!("&start={T0}&interval=10&npoints=1");
    let r = send(c.post(upload(virt, &q)).body(slot.clone())).await;
    assert_eq!(seen(&r), (200, JSON, refused));
    // `npoints` alone sends (time, value) records, which PHPFina::upload_variable_interval
    // writes to their slots.
    let r = send(c.post(upload(fina, "&npoints=1")).body(record.clone())).await;
    assert_eq!(seen(&r), (200, JSON, "true"));
    let path = format!(
        "/feed/data.json?id={fina}&start={T0}&end={}&interval=10",
        T0 + 20
    );
    let r = get(&c, &keyed(&server, &path, &read)).await;
    let body = format!(
        "[[{},null],[{},7.5],[{},null]]",
        T0 * 1000,
        (T0 + 10) * 1000,
        (T0 + 20) * 1000
    );
    assert_eq!(seen(&r), (200, JSON, body.as_str()));
}

/// `feed/data` of one feed over the five slots from T0, times in seconds.
fn five_slots(server: &Server, id: i64, read: &str) -> String {
    let path = format!(
        "/feed/data.json?id={id}&start={T0}&end={}&interval=10&timeformat=unix",
        T0 + 40
    );
    keyed(server, &path, read)
}

/// The expected `feed/data` body for the five slots from T0.
fn slots(values: [&str; 5]) -> String {
    let items: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(k, v)| format!("[{},{v}]", T0 + 10 * k as i64))
        .collect();
    format!("[{}]", items.join(","))
}

#[tokio::test]
async fn scalerange_rewrites_a_phpfina_range_and_survives_kill9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::builder().data_dir(dir.path()).start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bob", "secret1").await;
    let c = script();
    let fina = create(&server, &write, "fina", 5).await;
    let series = create(&server, &write, "series", 2).await;
    let virt = create(&server, &write, "virt", 7).await;
    insert(&server, &write, fina, &[1, 2, 3, 4, 5]).await;
    let scale = |id: i64, q: &str, key: &str| {
        keyed(&server, &format!("/feed/scalerange.json?id={id}{q}"), key)
    };
    let range =
        |start: i64, end: i64, value: &str| format!("&start={start}&end={end}&value={value}");

    // feed_controller.php: scalerange sits in the write section, entered only with a write
    // session on the caller's own feed; anyone else falls through to the unknown route, and
    // nothing changes.
    let all = range(T0, T0 + 40, "2");
    for key in [&bob_write, &read] {
        let r = get(&c, &scale(fina, &all, key)).await;
        assert_eq!(seen(&r), (406, JSON, ROUTE_NOT_FOUND));
    }
    // An unknown id is the controller's `Feed does not exist`.
    let r = get(&c, &scale(99, &all, &write)).await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            r#"{"success":false,"message":"Feed does not exist"}"#
        )
    );
    let r = get(&c, &five_slots(&server, fina, &read)).await;
    assert_eq!(
        seen(&r),
        (200, JSON, slots(["1", "2", "3", "4", "5"]).as_str())
    );

    // feed_controller.php: any engine but PHPFina gets this string (json_encoded by index.php).
    for id in [series, virt] {
        let r = get(&c, &scale(id, &all, &write)).await;
        assert_eq!(
            seen(&r),
            (
                200,
                JSON,
                r#""scalerange only supported by phpfina engine""#
            )
        );
    }

    // PHPFina::scalerange answers false for a value that is not NAN, a number (with `-`,
    // `1/` or `-1/`) or abs(x); for a start after the end (both floored to the interval);
    // and when nothing is written (start equal to end).
    for q in [
        range(T0, T0 + 40, "abc"),
        range(T0, T0 + 40, "2e3"),
        range(T0 + 20, T0 + 10, "2"),
        range(T0 + 10, T0 + 19, "2"),
    ] {
        let r = get(&c, &scale(fina, &q, &write)).await;
        assert_eq!(seen(&r), (200, JSON, "false"), "{q}");
    }
    let r = get(&c, &five_slots(&server, fina, &read)).await;
    assert_eq!(
        seen(&r),
        (200, JSON, slots(["1", "2", "3", "4", "5"]).as_str())
    );

    // PHPFina::scalerange writes (end - start) / interval slots from start: the end slot is
    // left out. The answer is fwrite's byte count, 4 per slot.
    let r = get(&c, &scale(fina, &range(T0 + 10, T0 + 40, "2"), &write)).await;
    assert_eq!(seen(&r), (200, JSON, "12"));
    let r = get(&c, &five_slots(&server, fina, &read)).await;
    assert_eq!(
        seen(&r),
        (200, JSON, slots(["1", "4", "6", "8", "5"]).as_str())
    );
    // The end is cut to the last slot's time (lastvalue), which is then left out too; `-1/`
    // divides.
    let q = range(T0, T0 + 1000, "-1%2F2");
    let r = get(&c, &scale(fina, &q, &write)).await;
    assert_eq!(seen(&r), (200, JSON, "16"));
    let r = get(&c, &five_slots(&server, fina, &read)).await;
    assert_eq!(
        seen(&r),
        (200, JSON, slots(["-0.5", "-2", "-3", "-4", "5"]).as_str())
    );
    // The start is raised to the feed's start_time; abs(x) takes absolute values.
    let q = range(1, T0 + 20, "abs%28x%29");
    let r = get(&c, &scale(fina, &q, &write)).await;
    assert_eq!(seen(&r), (200, JSON, "8"));
    let r = get(&c, &five_slots(&server, fina, &read)).await;
    assert_eq!(
        seen(&r),
        (200, JSON, slots(["0.5", "2", "-3", "-4", "5"]).as_str())
    );
    // NAN (any case) erases the range.
    let r = get(&c, &scale(fina, &range(T0 + 20, T0 + 30, "nan"), &write)).await;
    assert_eq!(seen(&r), (200, JSON, "4"));
    // A zero factor writes 0 in every slot of the range, a missing one included.
    let r = get(&c, &scale(fina, &range(T0 + 20, T0 + 40, "0"), &write)).await;
    assert_eq!(seen(&r), (200, JSON, "8"));
    let expected = slots(["0.5", "2", "0", "0", "5"]);
    let r = get(&c, &five_slots(&server, fina, &read)).await;
    assert_eq!(seen(&r), (200, JSON, expected.as_str()));

    // The rewritten slots went through the WAL like feed/insert: an answered scale survives
    // kill -9. The last value (never in the range) is untouched.
    server.kill9();
    let server = Server::builder().data_dir(dir.path()).start();
    let r = get(&c, &five_slots(&server, fina, &read)).await;
    assert_eq!(seen(&r), (200, JSON, expected.as_str()));
    let r = get(
        &c,
        &keyed(&server, &format!("/feed/value.json?id={fina}"), &read),
    )
    .await;
    assert_eq!(seen(&r), (200, JSON, "5"));
}

#[tokio::test]
async fn deletedatapoint_deletes_mysql_engine_rows_and_refuses_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::builder().data_dir(dir.path()).start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bob", "secret1").await;
    let c = script();
    let fina = create(&server, &write, "fina", 5).await;
    let series = create(&server, &write, "series", 2).await;
    let virt = create(&server, &write, "virt", 7).await;
    let mysql = create(&server, &write, "mysql", 0).await;
    insert(&server, &write, fina, &[1, 2, 3, 4, 5]).await;
    let delete = |id: i64, key: &str| {
        keyed(
            &server,
            &format!("/feed/deletedatapoint.json?id={id}&feedtime={}", T0 + 10),
            key,
        )
    };

    // feed_controller.php: deletedatapoint is in the write section (own feed, write
    // session); another user, or a read key, gets the unknown route and nothing changes.
    for key in [&bob_write, &read] {
        let r = get(&c, &delete(fina, key)).await;
        assert_eq!(seen(&r), (406, JSON, ROUTE_NOT_FOUND));
    }
    let r = get(&c, &delete(99, &write)).await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            r#"{"success":false,"message":"Feed does not exist"}"#
        )
    );
    // feed_controller.php: only the MySQL engines delete a row; every other engine gets this
    // string (json_encoded by index.php) and keeps its data.
    for id in [fina, series, virt] {
        let r = get(&c, &delete(id, &write)).await;
        assert_eq!(
            seen(&r),
            (
                200,
                JSON,
                r#""deletedatapoint only supported by mysqltimeseries engine""#
            )
        );
    }
    let r = get(&c, &five_slots(&server, fina, &read)).await;
    assert_eq!(
        seen(&r),
        (200, JSON, slots(["1", "2", "3", "4", "5"]).as_str())
    );
    // MysqlTimeSeries::delete_data_point removes the row at exactly `(int) feedtime` and
    // returns nothing: the reply is `null`, whether a row was there or not. Another user's
    // write key changes nothing.
    for t in [T0, T0 + 10, T0 + 20] {
        let path = format!("/feed/insert.json?id={mysql}&time={t}&value={}", t - T0);
        let r = get(&c, &keyed(&server, &path, &write)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let rows = |server: &Server| {
        keyed(
            server,
            &format!(
                "/feed/data.json?id={mysql}&start={}&end={}&interval=1&timeformat=unix",
                T0,
                T0 + 30
            ),
            &read,
        )
    };
    let r = get(&c, &delete(mysql, &bob_write)).await;
    assert_eq!(seen(&r), (406, JSON, ROUTE_NOT_FOUND));
    let r = get(&c, &delete(mysql, &write)).await;
    assert_eq!(seen(&r), (200, JSON, "null"));
    let after = get(&c, &rows(&server)).await;
    assert_eq!(after.status, 200);
    let times: Vec<i64> = after
        .json()
        .as_array()
        .expect("rows")
        .iter()
        .filter(|p| !p[1].is_null())
        .map(|p| p[0].as_i64().expect("time"))
        .collect();
    assert_eq!(times, [T0, T0 + 20], "{}", after.body);
    // Deleting again, or at a time with no row, is still `null` and changes nothing.
    let r = get(&c, &delete(mysql, &write)).await;
    assert_eq!(seen(&r), (200, JSON, "null"));
    // The delete was answered after a checkpoint: kill -9 cannot bring the row back.
    server.kill9();
    let server = Server::builder().data_dir(dir.path()).start();
    let again = get(&c, &rows(&server)).await;
    assert_eq!(seen(&again), (200, JSON, after.body.as_str()));
}

/// Midnight UTC of Wednesday 15 November 2023.
const DAY: i64 = 1_700_006_400;

/// Creates a PHPFina feed with a 30-minute interval holding `days` days of slots whose value is
/// the slot number (a meter read every half hour), written by one multiple-point
/// `feed/insert`; returns its id.
async fn half_hourly(server: &Server, write: &str, name: &str, days: i64) -> i64 {
    let path =
        format!("/feed/create.json?tag=t&name={name}&engine=5&options=%7B%22interval%22%3A1800%7D");
    let r = get(&script(), &keyed(server, &path, write)).await;
    assert_eq!(r.json()["success"], true, "create {name}: {}", r.body);
    let id = r.json()["feedid"].as_i64().expect("feedid");
    let points: Vec<String> = (0..days * 48)
        .map(|k| format!("[{},{k}]", DAY + k * 1800))
        .collect();
    let data = format!("[{}]", points.join(","));
    let r = post_form(
        &script(),
        &keyed(server, &format!("/feed/insert.json?id={id}"), write),
        &[("data", data.as_str())],
    )
    .await;
    assert_eq!(seen(&r), (200, JSON, r#"{"success":true}"#));
    id
}

#[tokio::test]
async fn data_split_reads_each_day_at_its_offsets() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, bob_read, bob_write) = register(&server, "bob", "secret1").await;
    let c = script();
    let meter = half_hourly(&server, &write, "meter", 3).await;
    let hidden = half_hourly(&server, &bob_write, "hidden", 1).await;
    let series = create(&server, &write, "series", 2).await;
    let data = |q: &str, key: &str| {
        keyed(
            &server,
            &format!(
                "/feed/data.json?start={}&end={}&{q}",
                DAY + 3600,
                DAY + 2 * 86_400
            ),
            key,
        )
    };
    // `[0,7,23.5]`, encoded.
    let split = "split=%5B0%2C7%2C23.5%5D";
    let days = |ms: i64| {
        format!(
            "[[{},[0,14,47]],[{},[48,62,95]],[{},[96,110,143]]]",
            DAY * ms,
            (DAY + 86_400) * ms,
            (DAY + 2 * 86_400) * ms
        )
    };

    // PHPFina::get_data_DMY_time_of_day: from the local midnight at or before `start` up to
    // and including `end`, each day's slots at the offsets (hours × 3600, cast to int), the
    // slot found by round(); feed_model.php's format_output_time gives milliseconds.
    let r = get(&c, &data(&format!("id={meter}&mode=daily&{split}"), &read)).await;
    assert_eq!(seen(&r), (200, JSON, days(1000).as_str()));
    // feed_controller.php lets `mode` replace `interval`; `unix` leaves the engine's seconds.
    let q = format!("id={meter}&interval=86400&mode=daily&timeformat=unix&{split}");
    let r = get(&c, &data(&q, &read)).await;
    assert_eq!(seen(&r), (200, JSON, days(1).as_str()));
    // Offsets between slots round to the nearest; past the data is null.
    let q = format!("id={meter}&mode=daily&timeformat=unix&split=%5B0.3%2C48%5D");
    let r = get(&c, &data(&q, &read)).await;
    let body = format!(
        "[[{DAY},[1,96]],[{},[49,null]],[{},[97,null]]]",
        DAY + 86_400,
        DAY + 2 * 86_400
    );
    assert_eq!(seen(&r), (200, JSON, body.as_str()));

    // The engine's false: an interval it does not split, a split that is not a list, or
    // more than 48 offsets.
    let many = format!("split=%5B{}%5D", vec!["1"; 49].join("%2C"));
    for q in [
        format!("mode=annual&{split}"),
        format!("interval=86400&{split}"),
        "mode=daily&split=%7B%22a%22%3A1%7D".to_string(),
        "mode=daily&split=7".to_string(),
        format!("mode=daily&{many}"),
    ] {
        let r = get(&c, &data(&format!("id={meter}&{q}"), &read)).await;
        assert_eq!(seen(&r), (200, JSON, "false"), "{q}");
    }
    // feed_model.php: the end must follow the start, and only PHPFina and MySQL split.
    let q = format!("/feed/data.json?id={meter}&start={DAY}&end={DAY}&mode=daily&{split}");
    let r = get(&c, &keyed(&server, &q, &read)).await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            r#"{"success":false,"message":"Request end time before start time"}"#
        )
    );
    let r = get(&c, &data(&format!("id={series}&mode=daily&{split}"), &read)).await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            r#"{"success":false,"message":"This request is only supported by PHPFina AND MySQLTimeseries"}"#
        )
    );

    // Another user's feed is left out as in any feed/data: alice's list shows only hers, and
    // bob's key gets nothing of alice's feed.
    let q = format!("ids={meter},{hidden}&mode=daily&{split}");
    let r = get(&c, &data(&q, &read)).await;
    let body = format!(r#"[{{"feedid":"{meter}","data":{}}}]"#, days(1000));
    assert_eq!(seen(&r), (200, JSON, body.as_str()));
    let r = get(
        &c,
        &data(&format!("id={meter}&mode=daily&{split}"), &bob_read),
    )
    .await;
    assert_eq!(seen(&r), (200, JSON, "[]"));
    let r = get(
        &c,
        &data(&format!("id={hidden}&mode=daily&{split}"), &bob_read),
    )
    .await;
    let body = format!(
        "[[{},[0,14,47]],[{},[null,null,null]],[{},[null,null,null]]]",
        DAY * 1000,
        (DAY + 86_400) * 1000,
        (DAY + 2 * 86_400) * 1000
    );
    assert_eq!(seen(&r), (200, JSON, body.as_str()), "bob reads his own");
}

#[tokio::test]
async fn multiple_point_insert_reads_back_at_a_coarser_interval() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let meter = half_hourly(&server, &write, "meter", 1).await;
    let data = |q: &str| {
        keyed(
            &server,
            &format!(
                "/feed/data.json?id={meter}&start={DAY}&end={}&timeformat=unix&{q}",
                DAY + 4 * 3600
            ),
            &read,
        )
    };
    // PHPFina without average: each hour's time reads slot floor((t - start) / 1800), the
    // even slots.
    let r = get(&c, &data("interval=3600")).await;
    let body: Vec<String> = (0..=4)
        .map(|h| format!("[{},{}]", DAY + h * 3600, 2 * h))
        .collect();
    assert_eq!(
        seen(&r),
        (200, JSON, format!("[{}]", body.join(",")).as_str())
    );
    // With average: the mean of the two slots in each hour.
    let r = get(&c, &data("interval=3600&average=1")).await;
    let v = r.json();
    let got: Vec<(i64, f64)> = v
        .as_array()
        .expect("list")
        .iter()
        .map(|p| (p[0].as_i64().expect("t"), p[1].as_f64().expect("v")))
        .collect();
    let want: Vec<(i64, f64)> = (0..=4)
        .map(|h| (DAY + h * 3600, 2.0 * h as f64 + 0.5))
        .collect();
    assert_eq!(got, want);
    // Daily: the day's first slot, and the day's mean with average.
    let q = format!(
        "/feed/data.json?id={meter}&start={DAY}&end={}&timeformat=unix&mode=daily",
        DAY + 3600
    );
    let r = get(&c, &keyed(&server, &q, &read)).await;
    assert_eq!(seen(&r), (200, JSON, format!("[[{DAY},0]]").as_str()));
    let r = get(&c, &keyed(&server, &format!("{q}&average=1"), &read)).await;
    assert_eq!(seen(&r), (200, JSON, format!("[[{DAY},23.5]]").as_str()));
}

/// A download of more lines than one piece holds comes whole and in order (it is written a
/// piece at a time, see `query::CsvExport`), and only to the feed's owner.
#[tokio::test]
async fn a_long_csv_download_arrives_whole_across_its_pieces() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, bob_read, _) = register(&server, "bob", "secret1").await;
    let c = script();
    let meter = half_hourly(&server, &write, "meter", 3).await;
    let lines: i64 = 250_001;
    let path = format!(
        "/feed/data.json?id={meter}&start={DAY}&end={}&interval=1&csv=1",
        DAY + lines - 1
    );
    let r = get(&c, &keyed(&server, &path, &read)).await;
    assert_eq!(r.status, 200);
    let got: Vec<&str> = r.body.lines().collect();
    assert_eq!(got.len() as i64, lines);
    for (j, line) in got.iter().enumerate() {
        let j = j as i64;
        // Each second reads its half-hour slot, which holds its index; 0 and the slots
        // after the third day are written null.
        let slot = j / 1800;
        let value = if slot == 0 || slot >= 3 * 48 {
            "null".to_string()
        } else {
            format!("{slot}.00")
        };
        assert_eq!(*line, format!("{},{value}", DAY + j), "line {j}");
    }
    // Another user's key gets the feed's refusal, not the file.
    let r = get(&c, &keyed(&server, &path, &bob_read)).await;
    assert!(
        !r.body.contains(&format!("{DAY},null")),
        "{}",
        &r.body[..r.body.len().min(200)]
    );
}

#[tokio::test]
async fn csv_with_delta_on_daily_intervals_is_written_as_emoncms_writes_it() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, bob_read, _) = register(&server, "bob", "secret1").await;
    let c = script();
    let meter = half_hourly(&server, &write, "meter", 3).await;
    let data = |q: &str, key: &str| {
        keyed(
            &server,
            &format!(
                "/feed/data.json?start={DAY}&end={}&mode=daily&delta=1&csv=1&{q}",
                DAY + 2 * 86_400
            ),
            key,
        )
    };
    let csv_of = |r: &Reply| {
        (
            r.status,
            r.content_type.clone(),
            r.headers
                .get("content-disposition")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            r.body.clone(),
        )
    };
    // One feed: feed_model.php hands `$csv` to the engine, which writes the file and exits,
    // so neither the delta step nor its extended end apply: each day's first reading, in
    // seconds whatever `unixms` says, and 0 written as null (shared_helper.php's csv_write
    // compares the value loosely with null).
    let days = format!(
        "{DAY},null\n{},48.00\n{},96.00\n",
        DAY + 86_400,
        DAY + 2 * 86_400
    );
    for q in [
        format!("id={meter}"),
        format!("ids={meter}&timeformat=unixms"),
    ] {
        let r = get(&c, &data(&q, &read)).await;
        let want = (
            200,
            "application/octet-stream".to_string(),
            format!("attachment; filename={meter}.csv"),
            days.clone(),
        );
        assert_eq!(csv_of(&r), want, "{q}");
    }
    let r = get(&c, &data(&format!("id={meter}&timeformat=iso8601"), &read)).await;
    assert_eq!(
        r.body,
        "2023-11-15T00:00:00+00:00,null\n2023-11-16T00:00:00+00:00,48.00\n2023-11-17T00:00:00+00:00,96.00\n"
    );
    // Several feeds: csv_export_multi writes the returned data, so delta applies: the end
    // moves to the next midnight, the last day is completed with the feed's last value, and
    // each day is the next reading minus its own; times as the data reply gives them.
    let r = get(&c, &data(&format!("ids={meter},{meter}"), &read)).await;
    let body = format!(
        "{},48.00,48.00\n{},48.00,48.00\n{},47.00,47.00\n",
        DAY * 1000,
        (DAY + 86_400) * 1000,
        (DAY + 2 * 86_400) * 1000
    );
    let want = (
        200,
        "application/octet-stream".to_string(),
        format!("attachment; filename={meter}-{meter}.csv"),
        body,
    );
    assert_eq!(csv_of(&r), want);
    // Another user's key gets no CSV of alice's feed: the reply is emoncms's empty result.
    let r = get(&c, &data(&format!("id={meter}"), &bob_read)).await;
    assert_eq!(seen(&r), (200, JSON, "[]"));
    let r = get(&c, &data(&format!("ids={meter},{meter}"), &bob_read)).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
}

/// A `feed/sync` body: the segments and the CRC-32 of them (flate2's, the zlib polynomial PHP's
/// `crc32` uses).
fn sync_body(segments: &[Vec<u8>]) -> Vec<u8> {
    let mut body = segments.concat();
    let mut crc = flate2::Crc::new();
    crc.update(&body);
    body.extend_from_slice(&crc.sum().to_le_bytes());
    body
}

/// A PHPFina segment as the sync module writes it.
fn fina_segment(feed: i64, start: i64, interval: u32, data_start: u32, values: &[f32]) -> Vec<u8> {
    let mut s = Vec::new();
    let len = 20 + 4 * values.len() as u32;
    for w in [len, feed as u32, start as u32, interval, data_start] {
        s.extend_from_slice(&w.to_le_bytes());
    }
    for v in values {
        s.extend_from_slice(&v.to_le_bytes());
    }
    s
}

/// A PHPTimeSeries segment as the sync module writes it.
fn series_segment(feed: i64, data_start: u32, records: &[(i64, f32)]) -> Vec<u8> {
    let mut s = Vec::new();
    let len = 12 + 9 * records.len() as u32;
    for w in [len, feed as u32, data_start] {
        s.extend_from_slice(&w.to_le_bytes());
    }
    for (t, v) in records {
        s.push(249);
        s.extend_from_slice(&(*t as u32).to_le_bytes());
        s.extend_from_slice(&v.to_le_bytes());
    }
    s
}

async fn post_sync(server: &Server, key: &str, body: Vec<u8>) -> Reply {
    send(
        script()
            .post(keyed(server, "/feed/sync.json", key))
            .header("content-type", "application/octet-stream")
            .body(body),
    )
    .await
}

/// A feed trimmed in emoncms starts inside a slot. Synced into an empty feed it keeps that
/// start exactly, its slots stay the slots they were (a later segment appends where the
/// first ended), and an upload to it lands where emoncms puts it.
#[tokio::test]
async fn a_feed_starting_inside_a_slot_syncs_and_uploads_slot_for_slot() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let fina = create(&server, &write, "trimmed", 5).await;
    let start = T0 + 5;
    let r = post_sync(
        &server,
        &write,
        sync_body(&[fina_segment(fina, start, 10, 0, &[1.0, 2.0, 3.0])]),
    )
    .await;
    assert_eq!(r.json()["success"], true, "{}", r.body);
    let meta = || {
        let c = c.clone();
        let url = keyed(&server, &format!("/feed/getmeta.json?id={fina}"), &read);
        async move { get(&c, &url).await.json() }
    };
    let m = meta().await;
    assert_eq!(
        (m["start_time"].as_i64(), m["npoints"].as_i64()),
        (Some(start), Some(3)),
        "{m}"
    );
    // The next segment, from the local end, is taken: it starts where the first ended.
    let r = post_sync(
        &server,
        &write,
        sync_body(&[fina_segment(fina, start, 10, 12, &[4.0])]),
    )
    .await;
    assert_eq!(r.json()["success"], true, "{}", r.body);
    assert_eq!(meta().await["npoints"].as_i64(), Some(4));
    // An upload of a block from the feed's start overwrites slots 0 and 1.
    let up = c.post(keyed(
        &server,
        &format!("/feed/upload.json?id={fina}&start={start}&interval=10&npoints=2"),
        &write,
    ));
    let body: Vec<u8> = [7.0f32, 8.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(send(up.body(body)).await.json(), serde_json::json!(true));
    let r = c
        .get(keyed(
            &server,
            &format!("/feed/export.json?id={fina}&start=0"),
            &read,
        ))
        .send()
        .await
        .expect("export");
    let bytes = r.bytes().await.expect("bytes");
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(values, [7.0, 8.0, 3.0, 4.0]);
}

#[tokio::test]
async fn sync_appends_uploaded_segments_and_survives_kill9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::builder().data_dir(dir.path()).start();
    let (alice, read, write) = register(&server, "alice", "secret1").await;
    let (_, bob_read, bob_write) = register(&server, "bob", "secret1").await;
    let c = script();
    let fina = create(&server, &write, "fina", 5).await;
    let series = create(&server, &write, "series", 2).await;
    let bobs = create(&server, &bob_write, "bobs", 5).await;
    let getmeta = |id: i64, key: &str| keyed(&server, &format!("/feed/getmeta.json?id={id}"), key);

    // feed_model.php's sync: each segment goes to its engine, and the reply lists the meta
    // data of every feed named, as feed/getmeta gives it.
    let body = sync_body(&[
        fina_segment(fina, T0, 10, 0, &[1.0, f32::NAN, 3.0]),
        series_segment(series, 0, &[(T0, 5.0), (T0 + 60, 6.5)]),
    ]);
    let r = post_sync(&server, &write, body).await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, JSON),
        "{}",
        r.body
    );
    let v = r.json();
    assert_eq!(v["success"], true, "{}", r.body);
    let fina_meta = get(&c, &getmeta(fina, &read)).await.json();
    let series_meta = get(&c, &getmeta(series, &read)).await.json();
    assert_eq!(
        v["updated_feed_meta"],
        serde_json::json!([fina_meta, series_meta])
    );
    assert_eq!(
        (
            fina_meta["start_time"].as_i64(),
            fina_meta["npoints"].as_i64()
        ),
        (Some(T0), Some(3))
    );
    assert_eq!(series_meta["npoints"].as_i64(), Some(2));
    let data = |id: i64| {
        keyed(
            &server,
            &format!(
                "/feed/data.json?id={id}&start={T0}&end={}&interval=10&timeformat=unix",
                T0 + 30
            ),
            &read,
        )
    };
    let want = format!(
        "[[{T0},1],[{},null],[{},3],[{},null]]",
        T0 + 10,
        T0 + 20,
        T0 + 30
    );
    assert_eq!(get(&c, &data(fina)).await.body, want);

    // The next upload continues where the copy ends; sending the same one again is refused
    // (its data_start no longer matches) and changes nothing.
    let next = sync_body(&[fina_segment(fina, T0, 10, 12, &[4.0])]);
    let r = post_sync(&server, &write, next.clone()).await;
    assert_eq!(r.json()["updated_feed_meta"][0]["npoints"], 4, "{}", r.body);
    let r = post_sync(&server, &write, next).await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            format!(
                r#"{{"success":false,"message":"Upload data_start 12 does not match local data_start 16 for feedid={fina}"}}"#
            )
            .as_str()
        )
    );
    let r = post_sync(
        &server,
        &write,
        sync_body(&[fina_segment(fina, T0 + 10, 10, 16, &[5.0])]),
    )
    .await;
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Upload start_time "),
        "{}",
        r.body
    );
    let r = post_sync(
        &server,
        &write,
        sync_body(&[fina_segment(fina, T0, 20, 16, &[5.0])]),
    )
    .await;
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Upload interval "),
        "{}",
        r.body
    );

    // A damaged body is refused whole.
    let mut damaged = sync_body(&[fina_segment(fina, T0, 10, 16, &[5.0])]);
    damaged[22] ^= 0x40;
    let r = post_sync(&server, &write, damaged).await;
    assert_eq!(
        seen(&r),
        (
            200,
            JSON,
            r#"{"success":false,"message":"Invalid checksum"}"#
        )
    );

    // Another user's feed: refused with emoncms's message, after the segments before it
    // were written (emoncms works through the body in order); bob's feed is untouched.
    let body = sync_body(&[
        fina_segment(fina, T0, 10, 16, &[5.0]),
        fina_segment(bobs, T0, 10, 0, &[9.0]),
    ]);
    let r = post_sync(&server, &write, body).await;
    let message = format!("Invalid feedid or access u={alice} f={bobs}");
    assert_eq!(r.json()["message"], message.as_str(), "{}", r.body);
    assert_eq!(
        get(&c, &getmeta(bobs, &bob_read)).await.json()["npoints"],
        0
    );
    assert_eq!(get(&c, &getmeta(fina, &read)).await.json()["npoints"], 5);
    // A read key, or no key, may not sync: nothing is written.
    let body = sync_body(&[fina_segment(fina, T0, 10, 20, &[6.0])]);
    for key in [read.as_str(), bob_read.as_str()] {
        let r = post_sync(&server, key, body.clone()).await;
        assert_eq!(r.json()["success"], false, "{key}: {}", r.body);
    }
    let r = post_sync(&server, "nokey", body.clone()).await;
    assert_eq!(r.body, "Invalid API key");
    let r = post_sync(&server, &bob_write, body).await;
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Invalid feedid or access"),
        "{}",
        r.body
    );
    assert_eq!(get(&c, &getmeta(fina, &read)).await.json()["npoints"], 5);

    // What sync acknowledged is on disk: kill -9 and read it back.
    server.kill9();
    let server = Server::builder().data_dir(dir.path()).start();
    let q = format!(
        "/feed/data.json?id={fina}&start={T0}&end={}&interval=10&timeformat=unix",
        T0 + 40
    );
    let r = get(&c, &keyed(&server, &q, &read)).await;
    let want = format!(
        "[[{T0},1],[{},null],[{},3],[{},4],[{},5]]",
        T0 + 10,
        T0 + 20,
        T0 + 30,
        T0 + 40
    );
    assert_eq!(r.body, want);
    let q = format!("/feed/getmeta.json?id={series}");
    assert_eq!(
        get(&c, &keyed(&server, &q, &read)).await.json()["npoints"],
        2
    );
}

/// A public virtual feed read by someone other than its owner is computed from the owner's
/// public feeds only: it must not show what a private feed holds (share links refuse virtual
/// feeds for the same reason). The owner sees it whole.
#[tokio::test]
async fn a_public_virtual_feed_shows_others_nothing_of_a_private_source() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, bob_read, _) = register(&server, "bob", "secret1").await;
    let c = script();
    let private = half_hourly(&server, &write, "private", 1).await;
    let public = half_hourly(&server, &write, "public", 1).await;
    let r = get(
        &c,
        &keyed(
            &server,
            &format!("/feed/set.json?id={public}&fields=%7B%22public%22%3A1%7D"),
            &write,
        ),
    )
    .await;
    assert!(r.body.contains("true"), "{}", r.body);
    let virtual_of = |source: i64| {
        let (server, c, write) = (&server, &c, &write);
        async move {
            let r = get(
                c,
                &keyed(
                    server,
                    &format!("/feed/create.json?name=v{source}&engine=7"),
                    write,
                ),
            )
            .await;
            let v = r.json()["feedid"].as_i64().expect("feedid");
            let list =
                format!(r#"[{{"fn":"process__source_feed_data_time","args":["{source}"]}}]"#);
            let r = post_form(
                c,
                &keyed(server, &format!("/feed/process/set.json?id={v}"), write),
                &[("processlist", list.as_str())],
            )
            .await;
            assert!(r.body.contains("true"), "{}", r.body);
            let r = get(
                c,
                &keyed(
                    server,
                    &format!("/feed/set.json?id={v}&fields=%7B%22public%22%3A1%7D"),
                    write,
                ),
            )
            .await;
            assert!(r.body.contains("true"), "{}", r.body);
            v
        }
    };
    let of_private = virtual_of(private).await;
    let of_public = virtual_of(public).await;
    let values = |v: i64, key: Option<&str>| {
        let path = format!(
            "/feed/data.json?id={v}&start={DAY}&end={}&interval=1800&timeformat=unix",
            DAY + 3 * 1800
        );
        let url = match key {
            Some(k) => keyed(&server, &path, k),
            None => server.url(&path),
        };
        let c = c.clone();
        async move {
            let r = get(&c, &url).await;
            r.json()
                .as_array()
                .unwrap_or_else(|| panic!("a list: {}", r.body))
                .iter()
                .map(|p| p[1].as_f64())
                .collect::<Vec<_>>()
        }
    };
    let whole = vec![Some(0.0), Some(1.0), Some(2.0), Some(3.0)];
    assert_eq!(values(of_private, Some(&read)).await, whole, "the owner");
    let nothing = vec![None; 4];
    assert_eq!(
        values(of_private, Some(&bob_read)).await,
        nothing,
        "another user"
    );
    assert_eq!(values(of_private, None).await, nothing, "no login");
    assert_eq!(values(of_public, None).await, whole, "from a public feed");
}

/// A sync body of more than 1,000 segments stops at the limit: the first 1,000 are stored
/// (each appends one record where the feed ends), the rest refused with the items message.
#[tokio::test]
async fn a_sync_request_carries_at_most_a_thousand_segments() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let series = create(&server, &write, "series", 2).await;
    let segments: Vec<Vec<u8>> = (0..1001u32)
        .map(|i| series_segment(series, i * 9, &[(T0 + i64::from(i) * 10, i as f32)]))
        .collect();
    let r = post_sync(&server, &write, sync_body(&segments)).await;
    assert_eq!(
        r.json(),
        serde_json::json!({"success": false, "message": "Too many items in one request: at most 1000"})
    );
    let meta = get(
        &script(),
        &keyed(&server, &format!("/feed/getmeta.json?id={series}"), &read),
    )
    .await
    .json();
    assert_eq!(meta["npoints"].as_i64(), Some(1000), "{meta}");
}

/// An account has at most 10,000 feeds, with or without a hosted plan (each costs a shard job
/// in every feed list); the limit is its own. The rows are put in the server's catalog file
/// directly: creating 10,000 feeds over HTTP would take most of a minute.
#[tokio::test]
async fn an_account_has_at_most_ten_thousand_feeds() {
    let server = Server::start();
    let (alice, _, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bob", "secret1").await;
    on_catalog(
        &server,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9999) \
         INSERT INTO feeds (userid, name, tag, engine, unit) \
         SELECT $1, 'f' || i, 'filled', 5, '' FROM n",
        alice,
    )
    .await;
    let create = |key: &str, name: &str| {
        keyed(
            &server,
            &format!(
                "/feed/create.json?tag=t&name={name}&engine=5&options=%7B%22interval%22%3A10%7D"
            ),
            key,
        )
    };
    let c = script();
    let last = get(&c, &create(&write, "last")).await;
    assert_eq!(last.json()["success"], true, "the 10,000th: {}", last.body);
    let over = get(&c, &create(&write, "over")).await;
    assert_eq!(
        over.json(),
        serde_json::json!({"success": false, "message": "Feed limit reached: at most 10000 feeds per account"})
    );
    let bobs = get(&c, &create(&bob_write, "first")).await;
    assert_eq!(bobs.json()["success"], true, "{}", bobs.body);
}

/// One `feed/scalerange` rewrites at most 10,000,000 slots (each read, logged and flushed);
/// a longer range is refused with a message and changes nothing, a shorter one is scaled.
#[tokio::test]
async fn scalerange_rewrites_at_most_ten_million_slots_per_request() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let fina = create(&server, &write, "long", 5).await;
    insert(&server, &write, fina, &[1]).await;
    // 11 million slots later (the padding limit allows 15.8 million per write).
    let far = T0 + 110_000_000;
    let r = get(
        &c,
        &keyed(
            &server,
            &format!("/feed/insert.json?id={fina}&time={far}&value=2"),
            &write,
        ),
    )
    .await;
    assert_eq!(seen(&r), (200, JSON, "2"));
    let scale = |start: i64, end: i64| {
        keyed(
            &server,
            &format!("/feed/scalerange.json?id={fina}&start={start}&end={end}&value=3"),
            &write,
        )
    };
    let r = get(&c, &scale(T0, far + 10)).await;
    assert_eq!(
        r.json(),
        serde_json::json!({"success": false, "message": "Range too long: at most 10000000 slots per request"})
    );
    let value_at = |t: i64| {
        keyed(
            &server,
            &format!("/feed/value.json?id={fina}&time={t}"),
            &read,
        )
    };
    assert_eq!(get(&c, &value_at(T0)).await.body, "1", "unchanged");
    let r = get(&c, &scale(T0, T0 + 10)).await;
    assert_eq!(r.body, "4", "one slot of 4 bytes");
    assert_eq!(get(&c, &value_at(T0)).await.body, "3", "scaled");
}

/// `start` and `end` as emoncms's API help gives them (`-1 week`, `now`, `01-12-2021`): read
/// as PHP's `DateTime::modify` reads them, in the user's time zone. Before, they were refused
/// as an end before the start.
#[tokio::test]
async fn data_reads_relative_and_day_first_times() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let feed = create(&server, &write, "recent", 5).await;
    let data = |start: &str, end: &str, interval: u32| {
        keyed(
            &server,
            &format!(
                "/feed/data.json?id={feed}&start={start}&end={end}&interval={interval}&timeformat=unix"
            ),
            &read,
        )
    };
    let before = chrono::Utc::now().timestamp();
    let r = get(&c, &data("-1%20hour", "now", 10)).await;
    let after = chrono::Utc::now().timestamp();
    let points = r.json();
    let points = points.as_array().unwrap_or_else(|| panic!("{}", r.body));
    assert!((360..=362).contains(&points.len()), "{}", r.body);
    let first = points[0][0].as_i64().expect("time");
    assert!(
        (before - 3_600..=after - 3_600).contains(&first),
        "an hour before now: {first}, {before}..{after}"
    );
    // A date alone keeps the time of day of now (the user's zone is UTC here).
    let before = chrono::Utc::now().timestamp();
    let r = get(&c, &data("01-12-2021", "02-12-2021", 60)).await;
    let after = chrono::Utc::now().timestamp();
    let points = r.json();
    assert_eq!(points.as_array().map(Vec::len), Some(1441), "{}", r.body);
    let first = points[0][0].as_i64().expect("time");
    let day = 1_638_316_800;
    assert!(
        (day + before % 86_400..=day + after % 86_400).contains(&first),
        "1 December 2021 at the time of day of now: {first}"
    );
}

/// Flags read as emoncms reads them: `skipmissing` and `limitinterval` by PHP's integer cast
/// (`true` is 0, off; `2` is on), `average` by PHP's truth of the text (`yes` is on, `0` off).
#[tokio::test]
async fn data_flags_are_read_as_php_reads_them() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let feed = create(&server, &write, "gappy", 5).await;
    // T0 and T0+30 hold values; T0+10 and T0+20 are missing.
    for (t, v) in [(T0, 1), (T0 + 30, 4)] {
        let path = format!("/feed/insert.json?id={feed}&time={t}&value={v}");
        assert_eq!(seen(&get(&c, &keyed(&server, &path, &write)).await).0, 200);
    }
    let data = |extra: &str| {
        keyed(
            &server,
            &format!(
                "/feed/data.json?id={feed}&start={T0}&end={}&interval=10&timeformat=unix{extra}",
                T0 + 30
            ),
            &read,
        )
    };
    let points = |extra: &str| {
        let url = data(extra);
        let c = c.clone();
        async move { get(&c, &url).await.json().as_array().map(Vec::len) }
    };
    assert_eq!(points("").await, Some(4));
    assert_eq!(points("&skipmissing=1").await, Some(2));
    assert_eq!(points("&skipmissing=2").await, Some(2));
    assert_eq!(
        points("&skipmissing=true").await,
        Some(4),
        "(int)\"true\" is 0"
    );
    assert_eq!(points("&skipmissing=0").await, Some(4));
    // Averaged over 20 s windows: (1) and (4), against the plain read's 1 and null.
    let averaged = |flag: &str| {
        let url = keyed(
            &server,
            &format!(
                "/feed/data.json?id={feed}&start={T0}&end={}&interval=20&timeformat=unix&average={flag}",
                T0 + 30
            ),
            &read,
        );
        let c = c.clone();
        async move { get(&c, &url).await.json() }
    };
    assert_eq!(averaged("yes").await, averaged("1").await);
    assert_ne!(averaged("0").await, averaged("1").await);
}

/// `feed/value` at a time on a fixed-interval feed that holds no point yet is `false`, as
/// emoncms's PHPFina answers; a variable-interval feed's is `null`, and once a point is
/// written the fixed feed's is `null` away from it.
#[tokio::test]
async fn value_at_a_time_of_an_empty_fixed_feed_is_false() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let fina = create(&server, &write, "fina", 5).await;
    let series = create(&server, &write, "series", 2).await;
    let value = |id: i64, t: i64| {
        keyed(
            &server,
            &format!("/feed/value.json?id={id}&time={t}"),
            &read,
        )
    };
    assert_eq!(seen(&get(&c, &value(fina, T0)).await), (200, JSON, "false"));
    assert_eq!(
        seen(&get(&c, &value(series, T0)).await),
        (200, JSON, "null")
    );
    insert(&server, &write, fina, &[7]).await;
    assert_eq!(seen(&get(&c, &value(fina, T0)).await), (200, JSON, "7"));
    assert_eq!(
        seen(&get(&c, &value(fina, T0 + 1000)).await),
        (200, JSON, "null")
    );
    // `time` as the feed model reads it: `0` asks for the last value, text is time 0.
    let value_text = |t: &str| {
        keyed(
            &server,
            &format!("/feed/value.json?id={fina}&time={t}"),
            &read,
        )
    };
    assert_eq!(seen(&get(&c, &value_text("0")).await), (200, JSON, "7"));
    assert_eq!(
        seen(&get(&c, &value_text("abc")).await),
        (200, JSON, "null")
    );
    assert_eq!(
        seen(&get(&c, &value_text(&format!("{T0}.9"))).await),
        (200, JSON, "7")
    );
}

/// `dp` as emoncms compares it with -1 under PHP 8: a numeric `-1` leaves values alone, an
/// empty or non-numeric one rounds to whole numbers, a negative one to tens or hundreds.
#[tokio::test]
async fn dp_is_read_as_php_reads_it() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let feed = create(&server, &write, "precise", 5).await;
    let path = format!("/feed/insert.json?id={feed}&time={T0}&value=1234.5");
    assert_eq!(seen(&get(&c, &keyed(&server, &path, &write)).await).0, 200);
    let value_with = |dp: &str| {
        let url = keyed(
            &server,
            &format!(
                "/feed/data.json?id={feed}&start={T0}&end={}&interval=10&timeformat=unix&dp={dp}",
                T0 + 10
            ),
            &read,
        );
        let c = c.clone();
        async move { get(&c, &url).await.json()[0][1].clone() }
    };
    assert_eq!(value_with("-1").await, serde_json::json!(1234.5));
    assert_eq!(value_with("1").await, serde_json::json!(1234.5));
    assert_eq!(value_with("").await, serde_json::json!(1235));
    assert_eq!(value_with("abc").await, serde_json::json!(1235));
    assert_eq!(value_with("-2").await, serde_json::json!(1200));
}
