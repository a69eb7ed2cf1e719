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
    assert_eq!(r.json().as_array().map(Vec::len), Some(2000));

    // What was accepted before is still there.
    let keep = get(&c, &url("/input/get/keep/a?x=1", &read)).await.json();
    assert_eq!(
        (keep["time"].clone(), keep["value"].clone()),
        (json!(1700000000), json!(1))
    );
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
