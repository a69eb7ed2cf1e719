//! Routing conventions shared by every emoncms endpoint.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn version_describe_and_unknown_routes() {
    let server = Server::start();
    let c = script();
    let r = get(&c, &server.url("/version")).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, env!("CARGO_PKG_VERSION"))
    );
    assert!(r.content_type.starts_with("text/plain"));

    let r = get(&c, &server.url("/describe")).await;
    assert_eq!(r.body, "emoncms");
    assert_eq!(
        r.headers
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"*"[..])
    );

    let r = get(&c, &server.url("/nosuchcontroller/foo.json")).await;
    assert_eq!(r.status, 406);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "406 Not Acceptable. Route not found"})
    );

    let r = get(&c, &server.url("/user/login.xml")).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (406, "URI not acceptable. Unknown format 'xml'.")
    );

    let r = send(c.request(reqwest::Method::OPTIONS, server.url("/feed/list.json"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers
            .get("access-control-allow-headers")
            .map(|v| v.as_bytes()),
        Some(&b"Authorization"[..])
    );
}

#[tokio::test]
async fn emoncms_prefix_q_parameter_and_missing_suffix_route_the_same() {
    let server = Server::start();
    let (id, read, _) = register(&server, "alice", "secret1").await;
    let c = script();
    let expected = json!({"userid": id, "type": "read"});
    for path in [
        format!("/emoncms/user/session.json?apikey={read}"),
        format!("/user/session?apikey={read}"),
        format!("/?q=user/session.json&apikey={read}"),
    ] {
        assert_eq!(get(&c, &server.url(&path)).await.json(), expected, "{path}");
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused_and_nothing_breaks() {
    let server = Server::builder()
        .env("HTTP__MAX_BODY_BYTES", "4096")
        .start();
    let big = format!(
        "username=alice&password=secret1&email=a%40example.com&pad={}",
        "x".repeat(10_000)
    );
    let r = send(
        script()
            .post(server.url("/user/register.json"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big),
    )
    .await;
    assert_eq!(r.status, 413);
    assert!(r.body.contains("too large"), "{}", r.body);
    // Nothing was registered, and the server still answers.
    let (id, _, _) = register(&server, "alice", "secret1").await;
    assert_eq!(id, 1);
}

#[tokio::test]
async fn oversized_chunked_bodies_are_refused_too() {
    let server = Server::builder()
        .env("HTTP__MAX_BODY_BYTES", "4096")
        .start();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b'x'; 1000])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = send(
        script()
            .post(server.url("/user/register.json"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await;
    assert_eq!(r.status, 413);
    register(&server, "alice", "secret1").await;
}
