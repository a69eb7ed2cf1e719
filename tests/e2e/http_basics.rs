//! Routing conventions shared by every emoncms endpoint.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn version_describe_and_unknown_routes() {
    let server = Server::start();
    let c = script();
    let r = get(&c, &server.url("/version")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "11.16.8"));
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

#[tokio::test]
async fn process_catalog_and_map() {
    let server = Server::start();
    let (_, read, _) = register(&server, "alice", "secret1").await;
    let c = script();
    assert_eq!(
        get(&c, &server.url("/process/list.json")).await.body,
        "false",
        "needs a session"
    );
    let list = get(
        &c,
        &server.url(&format!("/process/list.json?apikey={read}")),
    )
    .await;
    assert_eq!(list.content_type, "application/json");
    let list = list.json();
    let log = &list["process__log_to_feed"];
    assert_eq!(log["id_num"], 1);
    assert_eq!(log["function"], "log_to_feed");
    assert_eq!(log["args"][0]["type"], 2, "a feed argument");
    assert_eq!(log["nochange"], true);
    assert_eq!(list["process__scale"]["args"][0]["default"], "1");
    assert_eq!(
        list["process__power_to_kwh_custom"]["args"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert!(list.get("process__error_found").is_none(), "hidden");
    let input_only = get(
        &c,
        &server.url(&format!("/process/list.json?context=0&apikey={read}")),
    )
    .await
    .json();
    assert!(input_only.get("process__source_feed_data_time").is_none());
    let virtual_only = get(
        &c,
        &server.url(&format!("/process/list.json?context=1&apikey={read}")),
    )
    .await
    .json();
    assert!(virtual_only.get("process__source_feed_data_time").is_some());
    assert!(virtual_only.get("process__log_to_feed").is_none());
    let map = get(&c, &server.url(&format!("/process/map.json?apikey={read}")))
        .await
        .json();
    assert_eq!(map["1"], "process__log_to_feed");
    assert_eq!(map["64"], "process__kwh_accumulator");
    assert!(map.get("9").is_none(), "deleted ids are gone");
}

/// Behind a trusted reverse proxy the client is the address `X-Forwarded-For` names; from any
/// other peer the header is ignored, since a client could write it.
#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    for (trusted, expected) in [("[]", "127.0.0.1"), (r#"["127.0.0.1"]"#, "203.0.113.9")] {
        let server = Server::builder()
            .env("HTTP__TRUSTED_PROXIES", trusted)
            .start();
        let (_, _, write) = register(&server, "alice", "secret1").await;
        let c = script();
        let r = send(
            c.get(server.url(&format!("/myip/set.json?apikey={write}")))
                .header("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
        )
        .await;
        assert_eq!(r.body, "ok");
        let r = get(&c, &server.url(&format!("/myip/get.json?apikey={write}"))).await;
        assert_eq!(r.json()["ip"], expected, "trusted proxies {trusted}");
    }
}

/// emoncms's route.php takes the format from between the first and second dot of the last
/// segment, so a second suffix changes nothing.
#[tokio::test]
async fn a_second_suffix_is_ignored_as_emoncms_ignores_it() {
    let server = Server::start();
    let (_, read, _) = register(&server, "alice", "secret1").await;
    let c = script();
    let plain = get(&c, &server.url(&format!("/feed/list.json?apikey={read}"))).await;
    let twice = get(&c, &server.url(&format!("/feed/list.json.x?apikey={read}"))).await;
    assert_eq!(
        (twice.status, twice.content_type.as_str()),
        (200, "application/json")
    );
    assert_eq!(twice.body, plain.body);
}
