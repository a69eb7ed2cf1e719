//! Writing straight to feeds (`feed/insert|post|update`) and managing inputs: the answers
//! emoncms gives, ownership, and that an acknowledged insert survives kill -9.

use serde_json::json;

use crate::harness::*;

const T0: i64 = 1_699_999_200;

#[tokio::test]
async fn inserted_points_are_durable_once_acknowledged() {
    let keep = tempfile::tempdir().expect("tempdir");
    let data = keep.path().join("data");
    let server = Server::builder().data_dir(&data).start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, _, other_write) = register(&server, "bob", "secret1").await;
    let c = script();
    let url = |server: &Server, path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    let r = get(
        &c,
        &url(
            &server,
            "/feed/create.json?tag=t&name=fina&engine=5&options=%7B%22interval%22%3A10%7D",
            &write,
        ),
    )
    .await;
    let id = r.json()["feedid"].as_i64().expect("feed id");

    // One point answers the stored value; several answer success.
    let one = get(
        &c,
        &url(
            &server,
            &format!("/feed/insert.json?id={id}&time={T0}&value=42"),
            &write,
        ),
    )
    .await;
    assert_eq!((one.status, one.body.as_str()), (200, "42"));
    let many = post_form(
        &c,
        &url(&server, &format!("/feed/post.json?id={id}"), &write),
        &[("data", &format!("[[{},43],[{},44.5]]", T0 + 10, T0 + 20))],
    )
    .await;
    assert_eq!(many.json(), json!({"success": true}));
    let upd = get(
        &c,
        &url(
            &server,
            &format!("/feed/update.json?id={id}&time={}&value=abc", T0 + 30),
            &write,
        ),
    )
    .await;
    // PHP's float cast of "abc".
    assert_eq!(upd.body, "0");

    // Errors, in emoncms's words.
    let e = |path: String, key: &str| {
        let u = url(&server, &path, key);
        let c = c.clone();
        async move { get(&c, &u).await }
    };
    assert_eq!(
        e(
            format!("/feed/insert.json?id={id}&data=%5B%5B1%2C2"),
            &write
        )
        .await
        .json(),
        json!({"success": false, "message": "error decoding json"})
    );
    assert_eq!(
        e(format!("/feed/insert.json?id={id}&data=%5B%5D"), &write)
            .await
            .json(),
        json!({"success": false, "message": "error decoding json"})
    );
    assert_eq!(
        e(format!("/feed/insert.json?id={id}"), &write).await.json(),
        json!({"success": false, "message": "missing data parameter"})
    );
    assert_eq!(
        e("/feed/insert.json?id=999&value=1".into(), &write)
            .await
            .json(),
        json!({"success": false, "message": "Feed does not exist"})
    );
    assert_eq!(
        e(format!("/feed/insert.json?id={id}&value=1"), &read)
            .await
            .status,
        406
    );
    assert_eq!(
        e(
            format!("/feed/insert.json?id={id}&value=1&time={T0}"),
            &other_write
        )
        .await
        .status,
        406
    );

    drop(server); // SIGKILL: the points are only in the WAL.
    let server = Server::builder().data_dir(&data).start();
    let d = get(
        &c,
        &url(
            &server,
            &format!(
                "/feed/data.json?id={id}&start={T0}&end={}&interval=10",
                T0 + 30
            ),
            &read,
        ),
    )
    .await;
    assert_eq!(
        d.json(),
        json!([
            [T0 * 1000, 42],
            [(T0 + 10) * 1000, 43],
            [(T0 + 20) * 1000, 44.5],
            [(T0 + 30) * 1000, 0]
        ])
    );
    // The last value is the last single insert's, stamped with the time it was made.
    let tv = get(
        &c,
        &url(&server, &format!("/feed/timevalue.json?id={id}"), &read),
    )
    .await
    .json();
    assert_eq!(tv["value"], json!(0));
    let now = chrono::Utc::now().timestamp();
    assert!(
        (tv["time"].as_i64().expect("time") - now).abs() < 120,
        "{tv}"
    );
}

#[tokio::test]
async fn feed_descriptions_and_lookups() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let url = |path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    let create =
        "/feed/create.json?tag=house&name=power&engine=5&options=%7B%22interval%22%3A10%7D&unit=W";
    let id = get(&c, &url(create, &write)).await.json()["feedid"]
        .as_i64()
        .expect("id");
    assert_eq!(
        get(&c, &url(create, &write)).await.json(),
        json!({"success": false, "message": "feed already exists"})
    );
    assert_eq!(
        get(
            &c,
            &url("/feed/create.json?tag=t&name=a%2Fb&engine=5", &write)
        )
        .await
        .json(),
        json!({"success": false, "message": "invalid characters in feed name"})
    );
    let r = get(&c, &url("/feed/getid.json?tag=house&name=power", &read)).await;
    assert_eq!(
        (r.body.as_str(), r.content_type.starts_with("text/plain")),
        (id.to_string().as_str(), true)
    );
    assert_eq!(
        get(&c, &url("/feed/getid.json?name=nosuch", &read))
            .await
            .body,
        ""
    );
    assert_eq!(
        get(
            &c,
            &url(&format!("/feed/get.json?id={id}&field=unit"), &read)
        )
        .await
        .json(),
        json!("W")
    );
    assert_eq!(
        get(
            &c,
            &url(&format!("/feed/get.json?id={id}&field=nosuch"), &read)
        )
        .await
        .json(),
        json!(false)
    );
    let a = get(&c, &url(&format!("/feed/aget.json?id={id}"), &read))
        .await
        .json();
    assert_eq!(
        (a["id"].clone(), a["engine"].clone(), a["time"].clone()),
        (json!(id.to_string()), json!("5"), json!(null))
    );
    // Node-RED's "emoncms in" node hangs the query off the path with no `?`.
    let nr = get(
        &c,
        &server.url(&format!("/feed/aget.json&apikey={read}&id={id}")),
    )
    .await;
    assert_eq!(nr.json()["name"], "power", "{}", nr.body);
    let l = get(&c, &url("/feed/listwithmeta.json?x=1", &read))
        .await
        .json();
    assert_eq!(l[0]["interval"], json!(10));
    assert_eq!(l[0]["npoints"], json!(0));
    // Public feeds of a user, readable with no key at all.
    assert_eq!(
        get(&c, &server.url("/feed/list.json?userid=1"))
            .await
            .json(),
        json!([])
    );
    let _ = get(
        &c,
        &url(
            &format!("/feed/set.json?id={id}&fields=%7B%22public%22%3A1%7D"),
            &write,
        ),
    )
    .await;
    let public = get(&c, &server.url("/feed/list.json?userid=1"))
        .await
        .json();
    assert_eq!(public[0]["public"], json!("1"));
    // With their metas too (asked of the shard together, not one operation per feed).
    let public = get(&c, &server.url("/feed/list.json?userid=1&meta=1"))
        .await
        .json();
    assert_eq!(public.as_array().map(Vec::len), Some(1), "{public}");
    assert_eq!(public[0]["interval"], json!(10), "{public}");
    assert_eq!(public[0]["npoints"], json!(0), "{public}");
}

#[tokio::test]
async fn inputs_can_be_described_deleted_and_creation_switched_off() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let url = |path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    let post = |node: &str| {
        url(
            &format!("/input/post?node={node}&json=%7Ba%3A1%2Cb%3A2%7D"),
            &write,
        )
    };
    assert_eq!(get(&c, &post("n1")).await.body, "ok");
    let list = get(&c, &url("/input/list.json?x=1", &read)).await.json();
    let id = |name: &str| {
        list.as_array()
            .expect("list")
            .iter()
            .find(|i| i["name"] == name)
            .and_then(|i| i["id"].as_str())
            .expect("input")
            .to_string()
    };
    let (a, b) = (id("a"), id("b"));
    let r = get(
        &c,
        &url(
            &format!(
                "/input/set.json?inputid={a}&fields=%7B%22description%22%3A%22my%20desc%22%7D"
            ),
            &write,
        ),
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"success": true, "message": "Field updated", "inputid": a.parse::<i64>().expect("id"), "fields": {"description": "my desc"}})
    );
    assert_eq!(
        get(
            &c,
            &url(
                &format!("/input/set.json?inputid={a}&fields=%7B%22name%22%3A%22x.y%22%7D"),
                &write
            )
        )
        .await
        .json(),
        json!({"success": false, "message": "invalid characters in input name"})
    );
    // A read key changes nothing.
    assert_eq!(
        get(&c, &url(&format!("/input/delete.json?inputid={b}"), &read))
            .await
            .json(),
        json!(false)
    );
    let r = get(&c, &url(&format!("/input/delete.json?inputid={b}"), &write)).await;
    assert_eq!(r.json()["message"], "Input deleted");
    assert_eq!(
        get(&c, &url(&format!("/input/delete.json?inputid={b}"), &write))
            .await
            .json(),
        json!(false)
    );
    let list = get(&c, &url("/input/list.json?x=1", &read)).await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["description"], "my desc");

    // Descriptions for a whole node, in input-id order.
    let r = get(
        &c,
        &url(
            "/input/set-node-input-descriptions.json?node=n1&names=Power",
            &write,
        ),
    )
    .await;
    assert_eq!(r.json()["message"], "input descriptions updated");
    let list = get(&c, &url("/input/list.json?x=1", &read)).await.json();
    assert_eq!(list[0]["description"], "Power");
    // A process step on a feed that is gone is cleaned out.
    let feed = get(
        &c,
        &url("/feed/create.json?tag=t&name=gone&engine=2", &write),
    )
    .await
    .json()["feedid"]
        .as_i64()
        .expect("feed");
    let procs = format!(r#"[{{"fn":"process__log_to_feed","args":["{feed}"]}}]"#);
    let set = post_form(
        &c,
        &url(&format!("/input/process/set?inputid={a}"), &write),
        &[("processlist", &procs)],
    )
    .await;
    assert_eq!(set.json()["success"], true, "{}", set.body);
    let _ = get(&c, &url(&format!("/feed/delete.json?id={feed}"), &write)).await;
    // emoncms's report (input_model.php, clean_processlist_feeds): a line per changed input,
    // as text, and nothing once every list is clean.
    let r = get(&c, &url("/input/cleanprocesslistfeeds.json?x=1", &write)).await;
    let line = format!("processlist for input {a} changed from 1:{feed} to \n");
    assert_eq!((r.status, r.body.as_str()), (200, line.as_str()));
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    let r = get(&c, &url("/input/cleanprocesslistfeeds.json?x=1", &write)).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let left = get(&c, &url(&format!("/input/process/get?inputid={a}"), &write))
        .await
        .json();
    assert_eq!(left, json!(""));

    // Creation off: a new node is not created; existing inputs still update.
    let r = get(&c, &url("/input/disable.json?x=1", &write))
        .await
        .json();
    assert_eq!(r["message"], "Input creation disabled");
    assert_eq!(
        get(&c, &url("/input/isdisabled.json?x=1", &write))
            .await
            .json(),
        json!(true)
    );
    assert_eq!(get(&c, &post("n2")).await.body, "ok");
    let list = get(&c, &url("/input/list.json?x=1", &read)).await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let _ = get(&c, &url("/input/enable.json?x=1", &write)).await;
    assert_eq!(get(&c, &post("n2")).await.body, "ok");
    // clean removes every input with no process list.
    let r = get(&c, &url("/input/clean.json?x=1", &write)).await;
    assert_eq!(r.body, "Deleted 3 inputs");
    let list = get(&c, &url("/input/list.json?x=1", &read)).await.json();
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn upload_export_trim_set_multiple_and_myip() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let url = |path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    let create = "/feed/create.json?tag=t&name=up&engine=5&options=%7B%22interval%22%3A10%7D";
    let id = get(&c, &url(create, &write)).await.json()["feedid"]
        .as_i64()
        .expect("id");

    // Raw float32 slots; NaN is a gap.
    let body: Vec<u8> = [1.0f32, f32::NAN, 3.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let up = |q: String| {
        let req = c.post(url(&q, &write)).body(body.clone());
        async move { send(req).await }
    };
    let bad = up(format!(
        "/feed/upload.json?id={id}&start={T0}&interval=60&npoints=3"
    ))
    .await;
    assert_eq!(bad.json(), json!(false), "the interval must be the feed's");
    let ok = up(format!(
        "/feed/upload.json?id={id}&start={T0}&interval=10&npoints=3"
    ))
    .await;
    assert_eq!(ok.json(), json!(true));
    let data = |server: &Server| {
        server.url(&format!(
            "/feed/data.json?id={id}&start={T0}&end={}&interval=10&apikey={read}",
            T0 + 20
        ))
    };
    assert_eq!(
        get(&c, &data(&server)).await.json(),
        json!([
            [T0 * 1000, 1],
            [(T0 + 10) * 1000, null],
            [(T0 + 20) * 1000, 3.5]
        ])
    );

    // export: the .dat bytes from an offset (emoncms steps back one slot to resend the last).
    let r = c
        .get(url(&format!("/feed/export.json?id={id}&start=0"), &read))
        .send()
        .await
        .expect("export");
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE],
        "application/octet-stream"
    );
    let bytes = r.bytes().await.expect("bytes");
    assert_eq!(&bytes[..], &body[..]);

    // sha256sum of the data file, as coreutils computes it.
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), &body).expect("write");
    let expected = std::process::Command::new("sha256sum")
        .arg(file.path())
        .output()
        .expect("sha256sum");
    let expected = String::from_utf8_lossy(&expected.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let sum = get(&c, &url(&format!("/feed/sha256sum.json?id={id}"), &read))
        .await
        .json();
    assert_eq!(sum["sha256sum"], json!(expected));
    assert_eq!(sum["npoints"], json!(3));

    // trim keeps the data from start_time on.
    let r = get(
        &c,
        &url(
            &format!("/feed/trim.json?id={id}&start_time={}", T0 + 10),
            &write,
        ),
    )
    .await;
    assert_eq!(r.json()["success"], json!(true), "{}", r.body);
    let meta = get(&c, &url(&format!("/feed/getmeta.json?id={id}"), &read))
        .await
        .json();
    assert_eq!(meta["start_time"], json!(T0 + 10));

    // set-multiple: each feed's own answer.
    let r = post_form(
        &c,
        &url("/feed/set-multiple.json?x=1", &write),
        &[(
            "feeds",
            &format!(r#"[{{"id":{id},"name":"renamed"}},{{"id":999,"name":"x"}}]"#),
        )],
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"success": true, "results": {
            id.to_string(): {"success": true, "message": "Field updated"},
            "999": {"success": false, "message": "Feed does not exist"}
        }})
    );

    // emonhub's status ping.
    let r = get(&c, &url("/myip/set.json?x=1", &write)).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    let r = get(&c, &url("/myip/get.json?x=1", &read)).await.json();
    assert_eq!(r["ip"], "127.0.0.1");
}

/// Clearing an accumulating feed starts it again from nothing. The clear checkpoints first;
/// after a kill before the next flush, the posts since are processed again from that
/// checkpoint, and must count from nothing too, not from the total the feed had before.
#[tokio::test]
async fn a_cleared_kwh_feed_counts_from_nothing_after_a_kill() {
    let keep = tempfile::tempdir().expect("tempdir");
    let data = keep.path().join("data");
    let server = Server::builder().data_dir(&data).start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bob", "secret1").await;
    let c = script();
    let url = |server: &Server, path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    let post = |server: &Server, t: i64, p: f64| {
        url(
            server,
            &format!("/input/post?node=house&json=%7Bpower%3A{p}%7D&time={t}"),
            &write,
        )
    };
    assert_eq!(get(&c, &post(&server, T0, 3600.0)).await.body, "ok");
    let input = get(&c, &url(&server, "/input/list.json?x=1", &read))
        .await
        .json()[0]["id"]
        .as_str()
        .expect("input id")
        .to_string();
    let made = get(
        &c,
        &url(
            &server,
            "/feed/create.json?tag=t&name=kwh&engine=5&options=%7B%22interval%22%3A10%7D",
            &write,
        ),
    )
    .await
    .json();
    let feed = made["feedid"].as_i64().expect("feed id");
    let list = format!(r#"[{{"fn":"process__power_to_kwh","args":["{feed}"]}}]"#);
    let set = url(
        &server,
        &format!("/input/process/set?inputid={input}"),
        &write,
    );
    let r = post_form(&c, &set, &[("processlist", &list)]).await;
    assert_eq!(r.json()["success"], true, "{}", r.body);
    // 3,600 W for 10 s at a time: 0.01 kWh each after the first.
    for i in 1..=10 {
        assert_eq!(
            get(&c, &post(&server, T0 + 10 * i, 3600.0)).await.body,
            "ok"
        );
    }
    let value = |server: &Server| {
        let u = url(server, &format!("/feed/value.json?id={feed}"), &read);
        let c = c.clone();
        async move { get(&c, &u).await.json().as_f64().expect("a value") }
    };
    let before = value(&server).await;
    assert!(before > 0.05, "{before}");
    // Bob may not clear it.
    let clear = |key: &str| url(&server, &format!("/feed/clear.json?id={feed}"), key);
    get(&c, &clear(&bob_write)).await;
    assert_eq!(value(&server).await, before, "bob cleared it");
    let cleared = get(&c, &clear(&write)).await.json();
    assert_eq!(cleared["success"], true, "{cleared}");
    for i in 11..=13 {
        assert_eq!(
            get(&c, &post(&server, T0 + 10 * i, 3600.0)).await.body,
            "ok"
        );
    }
    let live = value(&server).await;
    assert!(live < 0.05, "counts from nothing after the clear: {live}");

    drop(server); // SIGKILL before the next flush: the posts since the clear are in the WAL.
    let server = Server::builder().data_dir(&data).start();
    let replayed = value(&server).await;
    assert!(
        (replayed - live).abs() < 1e-9,
        "after the kill {replayed}, before it {live}"
    );
}

/// An export larger than the pieces it is read and sent in arrives whole, from any offset,
/// and its checksum covers all of it.
#[tokio::test]
async fn a_large_export_arrives_whole_in_pieces() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let url = |path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    let create = "/feed/create.json?tag=t&name=big&engine=5&options=%7B%22interval%22%3A10%7D";
    let id = get(&c, &url(create, &write)).await.json()["feedid"]
        .as_i64()
        .expect("id");
    let n = 50_000usize;
    let body: Vec<u8> = (0..n).flat_map(|k| (k as f32).to_le_bytes()).collect();
    let up = c.post(url(
        &format!("/feed/upload.json?id={id}&start={T0}&interval=10&npoints={n}"),
        &write,
    ));
    assert_eq!(send(up.body(body.clone())).await.json(), json!(true));
    let export = |start: usize| {
        let u = url(&format!("/feed/export.json?id={id}&start={start}"), &read);
        let c = c.clone();
        async move {
            let r = c.get(u).send().await.expect("export");
            assert_eq!(
                r.headers()[reqwest::header::CONTENT_LENGTH],
                (body_len(start, n)).to_string()
            );
            r.bytes().await.expect("bytes").to_vec()
        }
    };
    fn body_len(start: usize, n: usize) -> usize {
        let off = (start / 4 * 4).saturating_sub(if start >= 4 { 4 } else { 0 });
        (n * 4).saturating_sub(off)
    }
    assert!(export(0).await == body, "the whole file");
    assert!(export(100_002).await == body[99_996..], "from an offset");
    assert!(export(n * 4 + 40).await.is_empty(), "past the end");
    let sum = get(&c, &url(&format!("/feed/sha256sum.json?id={id}"), &read))
        .await
        .json();
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), &body).expect("write");
    let out = std::process::Command::new("sha256sum")
        .arg(file.path())
        .output()
        .expect("sha256sum");
    let expected = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(sum["sha256sum"], json!(expected));
    assert_eq!(sum["npoints"], json!(n));
}

/// The value `feed/data` gives `feed` at `t`, read with `key`.
async fn value_at(
    c: &reqwest::Client,
    server: &Server,
    key: &str,
    feed: i64,
    t: i64,
) -> serde_json::Value {
    let path = format!(
        "/feed/data.json?id={feed}&start={t}&end={}&interval=10&apikey={key}",
        t + 10
    );
    get(c, &server.url(&path)).await.json()[0][1].clone()
}

/// A request that steps years ahead on several feeds at once pads them from one budget per
/// request (the feed past it keeps its value for the next request), the padding goes to the
/// files at once instead of waiting in memory for the flush, and everything acknowledged
/// survives kill -9. A multi-point insert keeps the points before one too far ahead.
#[tokio::test]
async fn far_steps_pad_within_a_budget_per_request_and_go_to_disk() {
    const MAX_PADDING: i64 = 15_768_000;
    let keep = tempfile::tempdir().expect("tempdir");
    let data = keep.path().join("data");
    let server = Server::builder().data_dir(&data).start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, bob_read, bob_write) = register(&server, "bob", "secret1").await;
    let c = script();
    let url = |server: &Server, path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    let mut feeds = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let path = format!(
            "/feed/create.json?tag=t&name={name}&engine=5&options=%7B%22interval%22%3A10%7D"
        );
        let r = get(&c, &url(&server, &path, &write)).await;
        feeds.push(r.json()["feedid"].as_i64().expect("feed id"));
    }
    // The inputs take their first value (no processing), then log to a feed each.
    let first = format!(
        "/input/post.json?node=1&time={}&fulljson=%7B%22a%22%3A0%2C%22b%22%3A0%2C%22c%22%3A0%7D",
        T0 - 10
    );
    assert_eq!(get(&c, &url(&server, &first, &write)).await.status, 200);
    let list = get(&c, &url(&server, "/input/list.json?x=1", &read))
        .await
        .json();
    for (name, feed) in ["a", "b", "c"].iter().zip(&feeds) {
        let input = list
            .as_array()
            .expect("inputs")
            .iter()
            .find(|i| i["name"] == *name)
            .expect("input")["id"]
            .as_str()
            .expect("id")
            .to_string();
        let r = post_form(
            &c,
            &url(
                &server,
                &format!("/input/process/set.json?inputid={input}"),
                &write,
            ),
            &[(
                "processlist",
                &format!(r#"[{{"fn":"process__log_to_feed","args":["{feed}"]}}]"#),
            )],
        )
        .await;
        assert_eq!(r.json()["success"], true, "{}", r.body);
    }
    // Two of the three feeds use the request's whole budget stepping half a limit each.
    let half = MAX_PADDING / 2;
    let far = 10 * (half + 1);
    let bulk = |rows: &str| format!("/input/bulk.json?time={T0}&data={}", encode(rows));
    let r = get(
        &c,
        &url(
            &server,
            &bulk(&format!(
                r#"[[0,1,{{"a":1,"b":1,"c":1}}],[{far},1,{{"a":2,"b":2,"c":2}}]]"#
            )),
            &write,
        ),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    let dat = |feed: i64| {
        std::fs::metadata(data.join(format!("phpfina/{feed}.dat")))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    // On disk already (a flush between records, past the points memory holds), not held until
    // the flush interval ends (60 s away).
    let slots = (half + 2) as u64;
    assert_eq!((dat(feeds[0]), dat(feeds[1])), (4 * slots, 4 * slots));
    let point = |feed: i64, t: i64| value_at(&c, &server, &read, feed, t);
    assert_eq!(point(feeds[0], T0 + far).await, json!(2));
    assert_eq!(point(feeds[1], T0 + far).await, json!(2));
    assert_eq!(
        point(feeds[2], T0 + far).await,
        json!(null),
        "past the budget"
    );
    assert_eq!(point(feeds[2], T0).await, json!(1), "the row before stays");
    // The next request has a budget of its own.
    let r = get(
        &c,
        &url(&server, &bulk(&format!(r#"[[{far},1,{{"c":4}}]]"#)), &write),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(point(feeds[2], T0 + far).await, json!(4));
    // Bob's posts meanwhile are his own, and his key reaches none of Alice's feeds.
    let bob_post = "/input/post.json?node=9&fulljson=%7B%22x%22%3A5%7D";
    assert_eq!(
        get(&c, &url(&server, bob_post, &bob_write)).await.status,
        200
    );
    let his = get(
        &c,
        &url(
            &server,
            &format!(
                "/feed/data.json?id={}&start={T0}&end={T0}&interval=10",
                feeds[0]
            ),
            &bob_read,
        ),
    )
    .await;
    assert!(
        his.json().as_array().is_none_or(|a| a.is_empty()),
        "{}",
        his.body
    );
    let step = get(
        &c,
        &url(
            &server,
            &bulk(&format!(
                r#"[[{},1,{{"a":3,"b":3,"c":3}}]]"#,
                far + 10 * (MAX_PADDING + 5)
            )),
            &bob_write,
        ),
    )
    .await;
    assert_eq!(step.status, 200, "{}", step.body);
    assert_eq!(
        point(feeds[0], T0 + far).await,
        json!(2),
        "bob's post is not alice's"
    );

    // A multi-point insert keeps the points before one too far ahead, and its last value is
    // the last point stored.
    let ins = post_form(
        &c,
        &url(
            &server,
            &format!("/feed/insert.json?id={}", feeds[3]),
            &write,
        ),
        &[(
            "data",
            &format!(
                "[[{T0},1],[{},2],[{},3]]",
                T0 + 10,
                T0 + 10 * (MAX_PADDING + 3)
            ),
        )],
    )
    .await;
    assert_eq!(ins.status, 200, "{}", ins.body);
    let tv = get(
        &c,
        &url(
            &server,
            &format!("/feed/timevalue.json?id={}", feeds[3]),
            &read,
        ),
    )
    .await
    .json();
    assert_eq!(
        (tv["time"].clone(), tv["value"].clone()),
        (json!(T0 + 10), json!(2))
    );

    drop(server); // SIGKILL: the last requests are only in the log.
    let server = Server::builder().data_dir(&data).start();
    let point = |feed: i64, t: i64| value_at(&c, &server, &read, feed, t);
    for (&feed, last) in feeds.iter().zip([2, 2, 4]) {
        assert_eq!(point(feed, T0).await, json!(1), "feed {feed}");
        assert_eq!(point(feed, T0 + 10).await, json!(null), "feed {feed}");
        assert_eq!(point(feed, T0 + far).await, json!(last), "feed {feed}");
    }
    assert_eq!(point(feeds[3], T0 + 10).await, json!(2));
    assert_eq!(dat(feeds[0]), 4 * slots);
}

/// A feed whose row feed/create added but whose files a kill kept from being made (the row
/// still says which files it waits for) gets them when the server starts again, with the
/// interval asked for, and then stores what its input's process list sends. Before, it was
/// listed but every point sent to it was dropped. Bob's key reaches none of it.
#[tokio::test]
async fn a_feed_a_kill_left_without_files_is_finished_at_restart() {
    let keep = tempfile::tempdir().expect("tempdir");
    let data = keep.path().join("data");
    let server = Server::builder().data_dir(&data).start();
    let (alice, read, write) = register(&server, "alice", "secret1").await;
    let (_, bob_read, bob_write) = register(&server, "bob", "secret1").await;
    let c = script();
    let url = |server: &Server, path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    let post = "/input/post?node=house&fulljson=%7B%22power%22%3A100%7D";
    assert_eq!(
        get(&c, &url(&server, post, &write)).await.body,
        "{\"success\": true}"
    );
    // What a kill between feed/create's two steps leaves: the row, waiting for 20 s files.
    on_catalog(
        &server,
        "INSERT INTO feeds (userid, name, tag, engine, unit, files_pending) \
         VALUES ($1, 'power', 'house', 5, 'W', 20)",
        alice,
    )
    .await;
    server.kill9();

    let server = Server::builder().data_dir(&data).start();
    let list = get(&c, &url(&server, "/feed/list.json?x=1", &read))
        .await
        .json();
    let feed = list[0]["id"]
        .as_str()
        .and_then(|id| id.parse::<i64>().ok())
        .or_else(|| list[0]["id"].as_i64())
        .expect("the feed is listed");
    assert!(
        data.join(format!("phpfina/{feed}.meta")).exists(),
        "files made"
    );
    let inputs = get(&c, &url(&server, "/input/list.json?x=1", &read))
        .await
        .json();
    let input = inputs[0]["id"].as_str().expect("input").to_string();
    let set_list = format!("/input/process/set?inputid={input}");
    let log_to_feed = format!(r#"[{{"fn":"process__log_to_feed","args":["{feed}"]}}]"#);
    let set = post_form(
        &c,
        &url(&server, &set_list, &write),
        &[("processlist", &log_to_feed)],
    )
    .await;
    assert_eq!(set.json()["success"], json!(true), "{}", set.body);
    let now = chrono::Utc::now().timestamp();
    let post_at = format!("/input/post?node=house&time={now}&fulljson=%7B%22power%22%3A250%7D");
    assert_eq!(
        get(&c, &url(&server, &post_at, &write)).await.body,
        "{\"success\": true}"
    );
    let meta = get(
        &c,
        &url(&server, &format!("/feed/getmeta.json?id={feed}"), &read),
    )
    .await
    .json();
    assert_eq!(meta["interval"], json!(20), "{meta}");
    let value = format!("/feed/value.json?id={feed}");
    assert_eq!(
        get(&c, &url(&server, &value, &read)).await.json(),
        json!(250)
    );

    // Bob neither reads nor writes it.
    let theirs = get(&c, &url(&server, &value, &bob_read)).await;
    assert_ne!(theirs.json(), json!(250), "{}", theirs.body);
    let insert = format!("/feed/insert.json?id={feed}&time={now}&value=1");
    let r = get(&c, &url(&server, &insert, &bob_write)).await;
    assert_ne!(r.json(), json!(1), "{}", r.body);
    assert_eq!(
        get(&c, &url(&server, &value, &read)).await.json(),
        json!(250)
    );
}

/// Files already at a new feed's id that no feed/create made (an import that stopped after
/// copying a feed's files but before its row) are not taken over by the next feed created:
/// the creation is refused and leaves no row, and the files are left as they were.
#[tokio::test]
async fn a_new_feed_does_not_take_over_files_it_did_not_make() {
    let keep = tempfile::tempdir().expect("tempdir");
    let data = keep.path().join("data");
    let server = Server::builder().data_dir(&data).start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let url = |path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    let create = |name: &str| {
        url(
            &format!(
                "/feed/create.json?tag=t&name={name}&engine=5&options=%7B%22interval%22%3A10%7D"
            ),
            &write,
        )
    };
    let first = get(&c, &create("first")).await.json()["feedid"]
        .as_i64()
        .expect("feed id");
    // The files an interrupted import left under the next id, holding someone's data.
    let next = first + 1;
    let meta = data.join(format!("phpfina/{next}.meta"));
    std::fs::copy(data.join(format!("phpfina/{first}.meta")), &meta).expect("meta");
    std::fs::write(data.join(format!("phpfina/{next}.dat")), [0u8, 0, 128, 63]).expect("dat");
    let refused = get(&c, &create("second")).await;
    assert_ne!(refused.json()["success"], json!(true), "{}", refused.body);
    let list = get(&c, &url("/feed/list.json?x=1", &read)).await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(
        std::fs::read(data.join(format!("phpfina/{next}.dat"))).expect("dat"),
        [0u8, 0, 128, 63]
    );
}

/// A feed whose files are gone while its catalog row stayed (a crash between the two steps of
/// a delete) can still be deleted; another user's feed cannot be, gone files or not.
#[tokio::test]
async fn a_feed_whose_files_are_gone_can_still_be_deleted() {
    let keep = tempfile::tempdir().expect("tempdir");
    let data = keep.path().join("data");
    let server = Server::builder().data_dir(&data).start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob) = register(&server, "bob", "secret1").await;
    let c = script();
    let url = |server: &Server, path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    let create = "/feed/create.json?tag=t&name=f&engine=5&options=%7B%22interval%22%3A10%7D";
    let id = get(&c, &url(&server, create, &write)).await.json()["feedid"]
        .as_i64()
        .expect("feed id");
    drop(server);
    for ext in ["dat", "meta"] {
        std::fs::remove_file(data.join(format!("phpfina/{id}.{ext}"))).expect("remove");
    }
    let server = Server::builder().data_dir(&data).start();
    let delete = format!("/feed/delete.json?id={id}");
    let refused = get(&c, &url(&server, &delete, &bob)).await;
    assert_ne!(refused.json()["success"], json!(true), "{}", refused.body);
    let done = get(&c, &url(&server, &delete, &write)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let list = get(&c, &url(&server, "/feed/list.json?x=1", &read))
        .await
        .json();
    assert_eq!(list, json!([]), "the row is gone too");
}
