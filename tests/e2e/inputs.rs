//! Posting inputs over HTTP (`input/post`, `input/bulk`) into the shard workers, and reading them
//! back (`input/list`), including across a kill -9.

use std::io::Write;

use serde_json::json;

use crate::harness::*;

const T0: i64 = 1_699_999_200;

async fn list(server: &Server, key: &str) -> serde_json::Value {
    get(
        &script(),
        &server.url(&format!("/input/list.json?apikey={key}")),
    )
    .await
    .json()
}

fn find<'a>(list: &'a serde_json::Value, node: &str, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .and_then(|a| a.iter().find(|i| i["nodeid"] == node && i["name"] == name))
        .unwrap_or_else(|| panic!("no input {node}/{name} in {list}"))
}

#[tokio::test]
async fn input_post_forms_and_replies() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let post = |q: &str| server.url(&format!("/input/post{q}"));
    let r = get(
        &c,
        &post(&format!(
            "?node=emontx&fulljson=%7B%22power1%22%3A100%2C%22temp%22%3A-3.25%7D&apikey={write}"
        )),
    )
    .await;
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.as_str()),
        (200, "text/plain;charset=UTF-8", "{\"success\": true}")
    );
    let r = get(
        &c,
        &post(&format!(
            ".json?node=emontx&json=%7Bpower2%3A201%7D&time={T0}&apikey={write}"
        )),
    )
    .await;
    assert_eq!(r.body, "ok");
    assert_eq!(
        get(&c, &post(&format!("/11?csv=4.5,5e2&apikey={write}")))
            .await
            .body,
        "ok"
    );
    let r = post_form(
        &c,
        &post(""),
        &[("node", "posted"), ("csv", "9,8"), ("apikey", &write)],
    )
    .await;
    assert_eq!(r.body, "ok");
    let r = send(
        c.get(post("?node=bearer&json={a:5}"))
            .header("Authorization", format!("Bearer {write}")),
    )
    .await;
    assert_eq!(r.body, "ok");
    let r = get(
        &c,
        &post(&format!(
            "?node=nested&fulljson=%7B%22a%22%3A%7B%22b%22%3A1%7D%7D&apikey={write}"
        )),
    )
    .await;
    assert_eq!(
        r.body,
        "{\"success\": false, \"message\": \"Input in not a valid JSON object\"}"
    );
    let r = get(&c, &post(&format!("?node=x&apikey={write}"))).await;
    assert_eq!(
        r.body,
        "{\"success\": false, \"message\": \"Request contains no data via csv, json or data tag\"}"
    );
    // No key, or a read key: refused, never "ok" (DESIGN §4).
    assert_eq!(get(&c, &post("?node=x&csv=1")).await.status, 401);
    assert_eq!(
        get(&c, &post(&format!("?node=x&csv=1&apikey={read}")))
            .await
            .status,
        401
    );

    let l = list(&server, &read).await;
    let p1 = find(&l, "emontx", "power1");
    assert_eq!(
        (p1["value"].clone(), p1["processList"].clone()),
        (json!(100), json!(""))
    );
    assert!(
        p1["id"].is_string(),
        "ids are strings, as emoncms sends them"
    );
    assert_eq!(find(&l, "emontx", "temp")["value"], json!(-3.25));
    assert_eq!(find(&l, "emontx", "power2")["time"], json!(T0));
    assert_eq!(find(&l, "11", "2")["value"], json!(500));
    assert_eq!(find(&l, "posted", "1")["value"], json!(9));
    assert_eq!(find(&l, "bearer", "a")["value"], json!(5));
    assert!(
        l.as_array()
            .expect("array")
            .iter()
            .all(|i| i["nodeid"] != "nested" && i["nodeid"] != "x")
    );
    // input/list ignores the format suffix, as emoncms's input controller does.
    let r = get(&c, &server.url(&format!("/input/list.xml?apikey={read}"))).await;
    assert_eq!(r.json(), l);
    assert_eq!(get(&c, &server.url("/input/list.json")).await.body, "false");
}

#[tokio::test]
async fn input_bulk_like_emonhub() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    // What emonhub 2.7 sends: absolute times with `sentat`, form-encoded (tests/fixtures/emoncms/emonhub-capture.txt).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let data = format!(
        "[[{},10,100,200,3.5],[{},\"emonTx4\",{{\"P1\":1501,\"T1\":21.56}}]]",
        now - 5,
        now
    );
    let r = send(
        c.post(server.url(&format!("/input/bulk.json?sentat={now}")))
            .header("Authorization", format!("Bearer {write}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("data={}", encode(&data))),
    )
    .await;
    assert_eq!(r.body, "ok");
    // cb=1: a zlib body with no content type.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(format!("[[{now},\"zipped\",7]]").as_bytes())
        .expect("compress");
    let body = z.finish().expect("finish");
    let r = send(
        c.post(server.url(&format!("/input/bulk.json?sentat={now}&cb=1")))
            .header("Authorization", format!("Bearer {write}"))
            .body(body),
    )
    .await;
    assert_eq!(r.body, "ok");
    let r = get(
        &c,
        &server.url(&format!("/input/bulk?data=%5B%5B1%2C2&apikey={write}")),
    )
    .await;
    assert_eq!(
        r.body,
        "{\"success\": false, \"message\": \"Format error, json string supplied is not valid\"}"
    );
    let l = list(&server, &read).await;
    assert_eq!(find(&l, "10", "3")["value"], json!(3.5));
    assert_eq!(find(&l, "emonTx4", "T1")["value"], json!(21.56));
    assert_eq!(find(&l, "zipped", "1")["value"], json!(7));
    // Times are kept within a second of what was sent (the server clock moved on meanwhile).
    let t = find(&l, "10", "1")["time"].as_i64().expect("time");
    assert!((t - (now - 5)).abs() <= 2, "{t}");
}

#[tokio::test]
async fn acknowledged_inputs_and_accumulator_state_survive_kill_9() {
    let keep = tempfile::tempdir().expect("tempdir");
    let data = keep.path().join("data");
    let server = Server::builder().data_dir(&data).start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let post = |t: i64, v: f64| {
        format!("/input/post?node=meter&json=%7Be%3A{v}%7D&time={t}&apikey={write}")
    };
    assert_eq!(get(&c, &server.url(&post(T0, 1000.0))).await.body, "ok");
    // A Wh accumulator into a new feed, whose memory of the previous reading must survive a
    // crash.
    let r = get(
        &c,
        &server.url(&format!(
            "/feed/create.json?name=wh&engine=5&options=%7B%22interval%22%3A10%7D&apikey={write}"
        )),
    )
    .await;
    let feed = r.json()["feedid"].as_i64().expect("feed id");
    let input = list(&server, &read).await[0]["id"]
        .as_str()
        .expect("input id")
        .to_string();
    let set = server.url(&format!(
        "/input/process/set?inputid={input}&apikey={write}"
    ));
    let procs = format!(r#"[{{"fn":"process__wh_accumulator","args":["{feed}"]}}]"#);
    assert_eq!(
        post_form(&c, &set, &[("processlist", &procs)]).await.json()["success"],
        true
    );
    assert_eq!(
        get(&c, &server.url(&post(T0 + 10, 1010.0))).await.body,
        "ok"
    );
    assert_eq!(
        get(&c, &server.url(&post(T0 + 20, 1020.0))).await.body,
        "ok"
    );
    drop(server); // SIGKILL: nothing was flushed, only the WAL holds these.

    let server = Server::builder().data_dir(&data).start();
    let l = list(&server, &read).await;
    assert_eq!(find(&l, "meter", "e")["value"], json!(1020));
    assert_eq!(find(&l, "meter", "e")["time"], json!(T0 + 20));
    // The accumulator remembers 1020 as the previous reading: +5 Wh.
    assert_eq!(
        get(&c, &server.url(&post(T0 + 30, 1025.0))).await.body,
        "ok"
    );
    // The same packet again (a client retry) must not count twice.
    assert_eq!(
        get(&c, &server.url(&post(T0 + 30, 1025.0))).await.body,
        "ok"
    );
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    let feed =
        ynni_storage::fixed::FixedFeed::open(&data.join("phpfina"), feed as u32).expect("feed");
    let values = feed.read_slots(0, feed.npoints()).expect("read");
    // 1010 is the first reading the list saw (state only), then +10 and +5.
    assert_eq!(values, vec![10.0, 15.0], "feed 2 slots from T0+20");
    assert_eq!(i64::from(feed.meta().start_time), T0 + 20);
}

#[tokio::test]
async fn a_resent_bulk_buffer_does_not_count_twice() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let bulk = |rows: &[(i64, f64)]| {
        let data: Vec<String> = rows
            .iter()
            .map(|(t, v)| format!("[{t},\"pulse\",{v}]"))
            .collect();
        server.url(&format!(
            "/input/bulk.json?time=0&data={}&apikey={write}",
            encode(&format!("[{}]", data.join(",")))
        ))
    };
    assert_eq!(get(&c, &bulk(&[(T0, 1.0)])).await.body, "ok");
    let r = get(
        &c,
        &server.url(&format!(
            "/feed/create.json?name=total&engine=5&options=%7B%22interval%22%3A10%7D&apikey={write}"
        )),
    )
    .await;
    let feed = r.json()["feedid"].as_i64().expect("feed");
    let input = list(&server, &read).await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let procs = format!(r#"[{{"fn":"process__accumulator","args":["{feed}"]}}]"#);
    let set = server.url(&format!(
        "/input/process/set?inputid={input}&apikey={write}"
    ));
    assert_eq!(
        post_form(&c, &set, &[("processlist", &procs)]).await.json()["success"],
        true
    );
    // Two rows, then the client resends its whole buffer with one new row (emonhub's retry).
    assert_eq!(
        get(&c, &bulk(&[(T0 + 10, 1.0), (T0 + 20, 1.0)])).await.body,
        "ok"
    );
    assert_eq!(
        get(&c, &bulk(&[(T0 + 10, 1.0), (T0 + 20, 1.0), (T0 + 30, 1.0)]))
            .await
            .body,
        "ok"
    );
    let v = get(
        &c,
        &server.url(&format!("/feed/value.json?id={feed}&apikey={read}")),
    )
    .await
    .json();
    assert_eq!(v, json!(3), "three pulses counted once each");
    // The input keeps its newest value.
    assert_eq!(
        find(&list(&server, &read).await, "pulse", "1")["time"],
        json!(T0 + 30)
    );
}

#[tokio::test]
async fn input_get_forms() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let post = |q: &str| server.url(&format!("/input/post{q}&apikey={write}"));
    assert_eq!(
        get(
            &c,
            &post(&format!("?node=emontx&json=%7Bpower1%3A102%7D&time={T0}"))
        )
        .await
        .body,
        "ok"
    );
    assert_eq!(
        get(&c, &post(&format!("/10?csv=1,2&time={T0}"))).await.body,
        "ok"
    );
    let g = |path: &str| {
        server.url(&format!(
            "/input/get{path}{}apikey={read}",
            if path.contains('?') { "&" } else { "?" }
        ))
    };
    let all = get(&c, &g("")).await.json();
    assert_eq!(
        all["emontx"]["power1"],
        json!({"time": T0, "value": 102, "processList": ""})
    );
    assert_eq!(all["10"]["2"]["value"], json!(2));
    let node = json!({"power1": {"time": T0, "value": 102, "processList": ""}});
    assert_eq!(get(&c, &g("/emontx")).await.json(), node);
    assert_eq!(get(&c, &g("?node=emontx")).await.json(), node);
    assert_eq!(get(&c, &g("/emontx/power1")).await.json(), node["power1"]);
    assert_eq!(
        get(&c, &g("?node=emontx&name=power1")).await.json(),
        node["power1"]
    );
    assert_eq!(
        get(&c, &g("/nosuchnode")).await.json(),
        json!("Node does not exist")
    );
    assert_eq!(
        get(&c, &g("/emontx/nosuch")).await.json(),
        json!("Node variable does not exist")
    );
    let ids = get(
        &c,
        &server.url(&format!("/input/getinputs.json?apikey={read}")),
    )
    .await
    .json();
    assert!(ids["emontx"]["power1"]["id"].is_string());
    // A node whose inputs are named 0,1,... is a JSON list, as PHP encodes it (MQTT CSV).
    assert_eq!(
        get(
            &c,
            &post(&format!("?node=listy&fulljson=%5B5%2C6%5D&time={T0}"))
        )
        .await
        .body,
        "{\"success\": true}"
    );
    let listy = get(&c, &g("/listy")).await.json();
    assert_eq!(listy[1]["value"], json!(6), "{listy}");

    // An emoncms action ynni has not built says so; an unknown one is the input controller's
    // `false`, as emoncms's falls through to it.
    let r = get(
        &c,
        &server.url(&format!(
            "/feed/create.json?tag=t&name=mysql&engine=0&apikey={write}"
        )),
    )
    .await;
    let mysql = r.json()["feedid"].as_i64().expect("feedid");
    let r = get(
        &c,
        &server.url(&format!(
            "/feed/data.json?id={mysql}&start={T0}&end={}&mode=daily&split=%5B0%5D&apikey={write}",
            T0 + 86_400
        )),
    )
    .await;
    assert_eq!(r.status, 501);
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Not implemented in ynni yet: feed/data with split on a MySQL-engine feed"})
    );
    let r = get(
        &c,
        &server.url(&format!("/input/nosuch.json?apikey={write}")),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "false"));
    // The refused action touched nothing.
    assert_eq!(get(&c, &g("/emontx/power1")).await.json(), node["power1"]);
}
