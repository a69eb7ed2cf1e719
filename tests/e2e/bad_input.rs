//! Hostile and broken requests get a clear answer, never a 500 or a crash, and lose nothing
//! that was already accepted.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn broken_requests_get_clear_answers_and_lose_nothing() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let url = |path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    assert_eq!(
        get(
            &c,
            &url(
                "/input/post?node=keep&json=%7Ba%3A1%7D&time=1700000000",
                &write
            )
        )
        .await
        .body,
        "ok"
    );

    let nested = format!("{}1{}", "%7B%22a%22%3A".repeat(300), "%7D".repeat(300));
    let cases: Vec<(String, &str)> = vec![
        (
            format!("/input/post?node=n&fulljson={nested}"),
            "Input in not a valid JSON object",
        ),
        (
            format!("/input/bulk?data=%5B{}%5D", "%5B".repeat(300)),
            "Format error, json string supplied is not valid",
        ),
        (
            "/input/post?node=n&json=%7Ba%3A%FF%FE%7D".into(),
            "Format error, json value is not numeric",
        ),
        (
            "/input/bulk?data=%5B%5B0%2C1%2C%FF%5D%5D".into(),
            "Format error, json string supplied is not valid",
        ),
    ];
    for (path, message) in cases {
        let r = get(&c, &url(&path, &write)).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.json(),
            json!({"success": false, "message": message}),
            "{path}"
        );
    }
    // Invalid UTF-8 in a form body.
    let r = send(
        c.post(url("/input/post?node=n", &write))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(vec![0xffu8, 0xfe, 0, b'x']),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["success"], false);

    // Reads that would be huge are refused with emoncms's message.
    let r = get(
        &c,
        &url(
            "/feed/create.json?tag=t&name=f&engine=5&options=%7B%22interval%22%3A10%7D",
            &write,
        ),
    )
    .await;
    let id = r.json()["feedid"].as_i64().expect("id");
    let r = get(
        &c,
        &url(
            &format!("/feed/data.json?id={id}&start=0&end=4000000000&interval=1"),
            &read,
        ),
    )
    .await;
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("request datapoint limit reached (20000)")),
        "{}",
        r.body
    );
    // Absurd times and many ids: an answer, not an error status.
    let r = get(
        &c,
        &url(
            &format!(
                "/feed/data.json?id={id}&start=-99999999999999&end=99999999999999&interval=abc"
            ),
            &read,
        ),
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Invalid interval"})
    );
    let ids: Vec<String> = (1..=2000).map(|i| i.to_string()).collect();
    let r = get(
        &c,
        &url(&format!("/feed/fetch.json?ids={}", ids.join("%2C")), &read),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "too many feeds requested (2000), at most 64 per request"})
    );

    // What was accepted before is still there.
    let keep = get(&c, &url("/input/get/keep/a?x=1", &read)).await.json();
    assert_eq!(
        (keep["time"].clone(), keep["value"].clone()),
        (json!(1700000000), json!(1))
    );
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// Requests that name many feeds or carry many points are refused whole, with a message, and
/// a forged size cannot overflow: each request's work has a bound.
#[tokio::test]
async fn feed_requests_are_bounded() {
    let server = Server::start();
    let (_, _, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let url = |path: &str| server.url(&format!("{path}&apikey={write}"));
    let r = get(
        &c,
        &url("/feed/create.json?name=p&engine=5&options=%7B%22interval%22%3A10%7D"),
    )
    .await;
    let id = r.json()["feedid"].as_i64().expect("feed id");

    let ids = vec![id.to_string(); 65].join(",");
    assert_eq!(
        get(&c, &url(&format!("/feed/fetch.json?ids={ids}")))
            .await
            .json(),
        json!({"success": false, "message": "too many feeds requested (65), at most 64 per request"})
    );
    let ids = vec![id.to_string(); 64].join(",");
    let r = get(&c, &url(&format!("/feed/fetch.json?ids={ids}")))
        .await
        .json();
    assert_eq!(r.as_array().map(Vec::len), Some(64), "{r}");

    let rows = |n: usize| format!("[{}]", vec!["[1700000000,1]"; n].join(","));
    let insert = url(&format!("/feed/insert.json?id={id}"));
    let r = post_form(&c, &insert, &[("data", &rows(50_001))]).await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "too many points in one request, at most 50000"})
    );
    let r = post_form(&c, &insert, &[("data", &rows(50_000))]).await;
    assert_eq!(r.json(), json!({"success": true}));

    // npoints × 4 wraps to 4 in 64 bits: the body of one point must not pass for it.
    let forged = (1u64 << 62) + 1;
    let r = send(
        c.post(url(&format!(
            "/feed/upload.json?id={id}&start=1700000000&interval=10&npoints={forged}"
        )))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(vec![0u8, 0, 128, 63]),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "false"));
    let r = get(&c, &url(&format!("/feed/value.json?id={id}"))).await;
    assert_eq!(r.body, "1", "the feed holds what the bounded insert wrote");
}
