//! The whole path a user takes: post inputs, create feeds, attach a process list, read feeds.

use serde_json::json;

use crate::harness::*;

const T0: i64 = 1_699_999_200;

#[tokio::test]
async fn post_process_and_read_back() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, other_read, _) = register(&server, "bob", "secret1").await;
    let c = script();
    let url = |path: &str, key: &str| {
        server.url(&format!(
            "{path}{}apikey={key}",
            if path.contains('?') { "&" } else { "?" }
        ))
    };
    let post = |t: i64, p: f64| {
        url(
            &format!("/input/post?node=house&json=%7Bpower%3A{p}%7D&time={t}"),
            &write,
        )
    };

    assert_eq!(get(&c, &post(T0 - 10, 0.0)).await.body, "ok");
    let input_id = get(&c, &url("/input/list.json", &read)).await.json()[0]["id"]
        .as_str()
        .expect("id")
        .to_string();

    let create = |name: &str, engine: u8, interval: u32| {
        url(
            &format!(
                "/feed/create.json?tag=house&name={name}&engine={engine}&options=%7B%22interval%22%3A{interval}%7D&unit=W"
            ),
            &write,
        )
    };
    let r = get(&c, &create("power", 5, 10)).await.json();
    assert_eq!(r, json!({"success": true, "feedid": 1, "result": true}));
    let r = get(&c, &create("kwh", 5, 5)).await.json();
    assert_eq!(r["feedid"], 2);
    assert_eq!(
        get(&c, &create("x", 99, 10)).await.json(),
        json!({"success": false, "message": "ABORTED: Engine id 99 is not supported."})
    );
    // A read key cannot create.
    assert_eq!(
        get(&c, &url("/feed/create.json?name=y&engine=5", &read))
            .await
            .json(),
        json!({"success": false, "message": "Feed does not exist"})
    );

    let list = r#"[{"fn":"process__log_to_feed","args":["1"]},{"fn":"process__power_to_kwh","args":["2"]}]"#;
    let set = url(&format!("/input/process/set?inputid={input_id}"), &write);
    let r = post_form(&c, &set, &[("processlist", list)]).await;
    assert_eq!(
        r.json(),
        json!({"success": true, "message": "Input processlist updated", "encoded_processlist": "1:1,4:2"})
    );
    let r = post_form(
        &c,
        &set,
        &[(
            "processlist",
            r#"[{"fn":"process__log_to_feed","args":["9"]}]"#,
        )],
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Invalid feed"})
    );
    assert_eq!(
        get(
            &c,
            &url(&format!("/input/process/get?inputid={input_id}"), &write)
        )
        .await
        .json(),
        json!("1:1,4:2")
    );
    assert_eq!(
        get(&c, &url("/input/process/get?inputid=999", &write))
            .await
            .body,
        "false"
    );

    for (i, p) in [1800.0, 3600.0, 3600.0].into_iter().enumerate() {
        assert_eq!(get(&c, &post(T0 + 10 * i as i64, p)).await.body, "ok");
    }

    let data = get(
        &c,
        &url(
            &format!(
                "/feed/data.json?id=1&start={T0}&end={}&interval=10",
                T0 + 20
            ),
            &read,
        ),
    )
    .await;
    assert_eq!(data.content_type, "application/json");
    assert_eq!(
        data.json(),
        json!([
            [T0 * 1000, 1800],
            [(T0 + 10) * 1000, 3600],
            [(T0 + 20) * 1000, 3600]
        ])
    );
    // power_to_kwh: 10 s at 3600 W twice = 0.02 kWh (the interval was raised to the 10 s minimum).
    let kwh = get(&c, &url("/feed/value.json?id=2", &read)).await.json();
    assert!((kwh.as_f64().expect("number") - 0.02).abs() < 1e-6, "{kwh}");
    assert_eq!(
        get(&c, &url("/feed/timevalue.json?id=1", &read))
            .await
            .json(),
        json!({"time": T0 + 20, "value": 3600})
    );
    assert_eq!(
        get(&c, &url("/feed/getmeta.json?id=1", &read)).await.json(),
        json!({"id": 1, "interval": 10, "start_time": T0, "npoints": 3, "end_time": T0 + 20})
    );
    // fetch: one value per id, in order; false for an unknown feed (emoncms's capture shape).
    assert_eq!(
        get(&c, &url("/feed/fetch.json?ids=1%2C99%2Cx", &read))
            .await
            .body,
        "[3600,false,false]"
    );
    let feeds = get(&c, &url("/feed/list.json", &read)).await.json();
    assert_eq!(feeds[0]["id"], "1");
    assert_eq!(feeds[0]["engine"], "5");
    // Sizes are stored, as emoncms stores them: refreshed by feed/updatesize.
    assert_eq!(feeds[0]["size"], "0");
    let total = get(&c, &url("/feed/updatesize.json", &write)).await.json();
    let feeds = get(&c, &url("/feed/list.json", &read)).await.json();
    assert_eq!(feeds[0]["size"], "28");
    assert!(total.as_i64().is_some_and(|t| t >= 28), "{total}");
    assert_eq!(feeds[0]["value"], json!(3600));
    assert_eq!(feeds[1]["name"], "kwh");
    let r = get(
        &c,
        &url(
            &format!("/feed/data.json?id=1&start={T0}&end={T0}&interval=10"),
            &read,
        ),
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Request end time before start time"})
    );
    assert_eq!(
        get(&c, &url("/feed/data.json?id=1&end=5", &read))
            .await
            .body,
        "missing start parameter"
    );
    // Someone else's private feed is an unknown route; an unknown feed does not exist.
    let r = get(&c, &url("/feed/value.json?id=1", &other_read)).await;
    assert_eq!(r.status, 406);
    assert_eq!(
        get(&c, &url("/feed/value.json?id=99", &read)).await.json(),
        json!({"success": false, "message": "Feed does not exist"})
    );
    // feed/data's own answers (capture seq 205, 216, 217).
    let data = |q: &str, key: &str| {
        url(
            &format!("/feed/data.json?start={T0}&end={}&interval=10{q}", T0 + 20),
            key,
        )
    };
    assert_eq!(
        get(&c, &data("", &read)).await.json(),
        json!({"success": false, "message": "no ids given"})
    );
    assert_eq!(
        get(&c, &data("&id=999", &read)).await.json(),
        json!({"success": false, "message": "feed 999 does not exist", "feeds": [999]})
    );
    assert_eq!(get(&c, &data("&id=1", &other_read)).await.json(), json!([]));
}

#[tokio::test]
async fn virtual_feed_sums_two_feeds_on_the_query_grid() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let url = |path: &str| {
        server.url(&format!(
            "{path}{}apikey={write}",
            if path.contains('?') { "&" } else { "?" }
        ))
    };
    let create = |name: &str, engine: u8| {
        url(&format!(
            "/feed/create.json?name={name}&engine={engine}&options=%7B%22interval%22%3A10%7D"
        ))
    };
    let post = |t: i64, a: f64, b: f64| {
        url(&format!(
            "/input/post?node=h&json=%7Ba%3A{a}%2Cb%3A{b}%7D&time={t}"
        ))
    };
    assert_eq!(get(&c, &post(T0 - 10, 0.0, 0.0)).await.body, "ok");
    assert_eq!(get(&c, &create("a", 5)).await.json()["feedid"], 1);
    assert_eq!(get(&c, &create("b", 5)).await.json()["feedid"], 2);
    assert_eq!(get(&c, &create("sum", 7)).await.json()["feedid"], 3);
    let inputs = get(&c, &server.url(&format!("/input/list.json?apikey={read}")))
        .await
        .json();
    for (i, feed) in [(0, 1), (1, 2)] {
        let id = inputs[i]["id"].as_str().expect("id").to_string();
        let list = format!(r#"[{{"fn":"process__log_to_feed","args":["{feed}"]}}]"#);
        let r = post_form(
            &c,
            &url(&format!("/input/process/set?inputid={id}")),
            &[("processlist", &list)],
        )
        .await;
        assert_eq!(r.json()["success"], true, "{}", r.body);
    }
    for (k, (a, b)) in [(1.0, 10.0), (2.0, 20.0), (3.0, 30.0)]
        .into_iter()
        .enumerate()
    {
        assert_eq!(get(&c, &post(T0 + 10 * k as i64, a, b)).await.body, "ok");
    }
    let list = r#"[{"fn":"process__source_feed_data_time","args":["1"]},{"fn":"process__add_source_feed","args":["2"]}]"#;
    let r = post_form(&c, &url("/feed/process/set?id=3"), &[("processlist", list)]).await;
    assert_eq!(r.json()["encoded_processlist"], "53:1,55:2", "{}", r.body);
    // Writing processes are not allowed in a virtual feed.
    let bad = r#"[{"fn":"process__log_to_feed","args":["1"]}]"#;
    let r = post_form(&c, &url("/feed/process/set?id=3"), &[("processlist", bad)]).await;
    assert_eq!(
        r.json()["message"],
        "Invalid process process key:process__log_to_feed"
    );
    let data = get(
        &c,
        &server.url(&format!(
            "/feed/data.json?id=3&start={T0}&end={}&interval=10&timeformat=unix&apikey={read}",
            T0 + 30
        )),
    )
    .await;
    assert_eq!(
        data.json(),
        json!([[T0, 11], [T0 + 10, 22], [T0 + 20, 33], [T0 + 30, null]])
    );
    // A virtual feed costs its grid once for each source and step whatever it returns
    // (`skipmissing` drops every empty point), once however often it is listed: a list of
    // 100 steps over feeds 1 and 2 at 20,000 points is 20,000 x (1 + 2 + 100) = 2,060,000 of
    // a request's 4,000,000: it may be listed many times, but two such feeds are refused
    // before either is computed.
    let mut steps = vec![r#"{"fn":"process__source_feed_data_time","args":["1"]}"#.to_string()];
    steps.extend((0..99).map(|_| r#"{"fn":"process__add_source_feed","args":["2"]}"#.to_string()));
    let long = format!("[{}]", steps.join(","));
    for id in [4, 5] {
        assert_eq!(
            get(&c, &create(&format!("v{id}"), 7)).await.json()["feedid"],
            id
        );
        let r = post_form(
            &c,
            &url(&format!("/feed/process/set?id={id}")),
            &[("processlist", &long)],
        )
        .await;
        assert_eq!(r.json()["success"], true, "{}", r.body);
    }
    let grid = |ids: &str| {
        server.url(&format!(
            "/feed/data.json?ids={ids}&start=0&end=199990&interval=10&skipmissing=1&apikey={read}"
        ))
    };
    // 20,000 grid points (the most one feed may be asked for), each empty and skipped.
    let r = get(&c, &grid("4,4,4,4,4,4,4,4")).await;
    let listed = r.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(8), "{}", r.body);
    assert_eq!(listed[0]["data"], json!([]), "{}", r.body);
    let r = get(&c, &grid("4,5")).await;
    assert!(r.body.contains("virtual feed limit reached"), "{}", r.body);

    // A source read may scan a whole variable feed: a virtual feed reads at most 64 feeds,
    // and the virtual feeds of one request 256 together, however short the grid.
    for k in 0..65 {
        assert_eq!(
            get(&c, &create(&format!("s{k}"), 5)).await.json()["feedid"],
            6 + k
        );
    }
    let reading = |n: usize| {
        let mut steps = vec![r#"{"fn":"process__source_feed_data_time","args":["6"]}"#.to_string()];
        steps.extend(
            (7..6 + n).map(|f| format!(r#"{{"fn":"process__add_source_feed","args":["{f}"]}}"#)),
        );
        format!("[{}]", steps.join(","))
    };
    for (id, sources) in [(71, 65), (72, 64)] {
        assert_eq!(
            get(&c, &create(&format!("v{id}"), 7)).await.json()["feedid"],
            id
        );
        let r = post_form(
            &c,
            &url(&format!("/feed/process/set?id={id}")),
            &[("processlist", &reading(sources))],
        )
        .await;
        // A list no read would compute is refused when saved.
        assert_eq!(r.json()["success"], sources <= 64, "{}", r.body);
    }
    let r = get(&c, &url("/feed/process/get?id=71")).await;
    assert_eq!(r.json(), "", "the refused list was not stored: {}", r.body);
    let short = |ids: &str| {
        server.url(&format!(
            "/feed/data.json?ids={ids}&start={T0}&end={}&interval=10&timeformat=unix&apikey={read}",
            T0 + 30
        ))
    };
    let r = get(&c, &short("72,72,72,72,72")).await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(5), "{}", r.body);
    assert_eq!(r.json()[0]["data"][0][0], T0, "{}", r.body);
    let r = get(&c, &short("72,4,5,3,72")).await;
    assert!(r.json().is_array(), "{}", r.body);
    // Five distinct virtual feeds of 64 sources are 320 reads: refused.
    for id in 73..77 {
        assert_eq!(
            get(&c, &create(&format!("v{id}"), 7)).await.json()["feedid"],
            id
        );
        let r = post_form(
            &c,
            &url(&format!("/feed/process/set?id={id}")),
            &[("processlist", &reading(64))],
        )
        .await;
        assert_eq!(r.json()["success"], true, "{}", r.body);
    }
    let r = get(&c, &short("72,73,74,75")).await;
    assert!(r.json().is_array(), "256 reads pass: {}", r.body);
    let r = get(&c, &short("72,73,74,75,76")).await;
    assert!(r.body.contains("virtual feed limit reached"), "{}", r.body);
}

#[tokio::test]
async fn set_public_clear_and_delete() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, other_read, _) = register(&server, "bob", "secret1").await;
    let c = script();
    let url = |path: &str, key: &str| {
        server.url(&format!(
            "{path}{}apikey={key}",
            if path.contains('?') { "&" } else { "?" }
        ))
    };
    let create = |name: &str| {
        url(
            &format!(
                "/feed/create.json?tag=t&name={name}&engine=5&options=%7B%22interval%22%3A10%7D"
            ),
            &write,
        )
    };
    assert_eq!(get(&c, &create("a")).await.json()["feedid"], 1);
    assert_eq!(get(&c, &create("b")).await.json()["feedid"], 2);
    let set = |id: u32, fields: &str| {
        url(
            &format!("/feed/set.json?id={id}&fields={}", encode(fields)),
            &write,
        )
    };
    assert_eq!(
        get(&c, &set(1, r#"{"name":"renamed","unit":"kWh"}"#))
            .await
            .json(),
        json!({"success": true, "message": "Field updated", "feedid": 1, "fields": {"name": "renamed", "unit": "kWh"}})
    );
    assert_eq!(
        get(&c, &set(1, r#"{"nosuch":1}"#)).await.json(),
        json!({"success": false, "message": "Field could not be updated"})
    );
    assert_eq!(
        get(&c, &set(2, r#"{"name":"renamed"}"#)).await.json(),
        json!({"success": false, "message": "fields tag:name must be unique"})
    );
    // Private: another user gets 406; public: anyone reads it.
    assert_eq!(
        get(&c, &url("/feed/timevalue.json?id=1", &other_read))
            .await
            .status,
        406
    );
    let fetch = "/feed/fetch.json?ids=1";
    assert_eq!(get(&c, &url(fetch, &other_read)).await.body, "[false]");
    assert_eq!(
        get(&c, &set(1, r#"{"public":1}"#)).await.json()["success"],
        true
    );
    let mine = get(&c, &url(fetch, &write)).await.body;
    assert_ne!(mine, "[false]");
    assert_eq!(get(&c, &url(fetch, &other_read)).await.body, mine);
    assert_eq!(
        get(&c, &url("/feed/timevalue.json?id=1", &other_read))
            .await
            .status,
        200
    );
    assert_eq!(
        get(&c, &server.url("/feed/timevalue.json?id=1"))
            .await
            .status,
        200,
        "public feeds need no key"
    );

    assert_eq!(
        get(&c, &url("/feed/clear.json?id=2", &write)).await.json(),
        json!({"success": true, "message": "Feed cleared successfully"})
    );
    assert_eq!(
        get(&c, &url("/feed/delete.json?id=2", &read)).await.status,
        406
    );
    assert_eq!(
        get(&c, &url("/feed/delete.json?id=2", &write)).await.json(),
        json!({"success": true, "message": "Feed removed successfully."})
    );
    assert_eq!(
        get(&c, &url("/feed/delete.json?id=2", &write)).await.json(),
        json!({"success": false, "message": "Feed does not exist"})
    );
    let feeds = get(&c, &url("/feed/list.json", &read)).await.json();
    assert_eq!(feeds.as_array().map(Vec::len), Some(1));
    assert_eq!(feeds[0]["public"], "1");
    assert_eq!(feeds[0]["name"], "renamed");
}
