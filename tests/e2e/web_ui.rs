//! The web UI's server side with plain HTTP clients: pages and assets with their security
//! headers, the cross-site checks on the login session, emoncms page addresses, and the live
//! update stream (each user sees only their own values).

use std::time::Duration;

use futures_util::StreamExt;

use crate::harness::{Server, browser, get, post_form, register, script};

async fn login(server: &Server, username: &str, password: &str) -> reqwest::Client {
    let client = browser();
    let r = post_form(
        &client,
        &server.url("/user/login.json"),
        &[("username", username), ("password", password)],
    )
    .await;
    assert_eq!(r.json()["success"], true, "{}", r.body);
    client
}

#[tokio::test]
async fn pages_and_assets_carry_a_content_security_policy() {
    let server = Server::start();
    let page = get(&script(), &server.url("/app/feeds")).await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"), "{page:?}");
    assert!(page.body.contains("/ui/js/app.js"));
    let csp = page.headers["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    let chart = get(&script(), &server.url("/ui/vendor/uPlot.esm.js")).await;
    assert_eq!(chart.status, 200);
    assert!(chart.content_type.starts_with("text/javascript"));
    assert!(
        chart.body.contains("export"),
        "the chart library is an ES module"
    );
    for bad in [
        "/ui/nothing.js",
        "/ui/..%2F..%2FCargo.toml",
        "/ui/js//app.js",
    ] {
        assert_eq!(get(&script(), &server.url(bad)).await.status, 404, "{bad}");
    }
    let root = script().get(server.url("/")).send().await.expect("GET /");
    assert!(root.url().path().starts_with("/app"), "{}", root.url());
    // emoncms's own page addresses lead to the matching view.
    let old = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = get(&old, &server.url("/input/view")).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.headers["location"], "/app/inputs");
    // …but the API under the same controller still answers JSON.
    let r = get(&old, &server.url("/input/list.json")).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "false"),
        "emoncms's reply without a key"
    );
    assert_eq!(
        r.headers["x-content-type-options"], "nosniff",
        "API replies too"
    );
}

#[tokio::test]
async fn the_session_refuses_cross_site_requests_and_apikeys_do_not_care() {
    let server = Server::start();
    let (_, _, write) = register(&server, "csrf", "password1").await;
    let client = login(&server, "csrf", "password1").await;
    let url =
        server.url("/feed/create.json?tag=t&name=n&engine=5&options=%7B%22interval%22%3A10%7D");
    let r = crate::harness::send(client.get(&url).header("sec-fetch-site", "cross-site")).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("Cross-site request refused"));
    let r = crate::harness::send(
        client
            .get(&url)
            .header("origin", "https://evil.example")
            .header("sec-fetch-site", "cross-site"),
    )
    .await;
    assert_eq!(r.status, 403);
    let list = get(&client, &server.url("/feed/list.json")).await;
    assert_eq!(list.json(), serde_json::json!([]), "nothing was created");
    let r = crate::harness::send(client.get(&url).header("sec-fetch-site", "same-origin")).await;
    assert_eq!(r.json()["success"], true, "{r:?}");
    // A link to a write, followed from one of this site's pages (a public dashboard's text),
    // from a mail (no site), or fetched as an image: the session reads, but does not write.
    let id = r.json()["feedid"].as_i64().expect("feed id");
    let publish = server.url(&format!(
        "/feed/set.json?id={id}&fields=%7B%22public%22%3A1%7D"
    ));
    let public =
        || async { get(&client, &server.url("/feed/list.json")).await.json()[0]["public"].clone() };
    let private = public().await;
    for (site, mode) in [
        ("same-origin", "navigate"),
        ("none", "navigate"),
        ("same-origin", "no-cors"),
    ] {
        let r = crate::harness::send(
            client
                .get(&publish)
                .header("sec-fetch-site", site)
                .header("sec-fetch-mode", mode),
        )
        .await;
        assert_ne!(r.json()["success"], true, "{site} {mode}: {r:?}");
        assert_eq!(public().await, private, "{site} {mode}: made public");
    }
    // Reading by following a link is fine.
    let r = crate::harness::send(
        client
            .get(server.url("/feed/list.json"))
            .header("sec-fetch-site", "none")
            .header("sec-fetch-mode", "navigate"),
    )
    .await;
    assert_eq!(r.json()[0]["id"], id.to_string(), "{r:?}");
    // Nor does an image or a followed link log the session out.
    for mode in ["no-cors", "navigate"] {
        let r = crate::harness::send(
            client
                .get(server.url("/user/logout.json"))
                .header("sec-fetch-site", "same-origin")
                .header("sec-fetch-mode", mode),
        )
        .await;
        assert_ne!(r.status, 500, "{r:?}");
        let me = get(&client, &server.url("/user/session.json")).await;
        assert_ne!(me.body, "false", "{mode}: logged out");
    }
    // The pages' own fetch writes.
    let r = crate::harness::send(
        client
            .get(&publish)
            .header("sec-fetch-site", "same-origin")
            .header("sec-fetch-mode", "cors"),
    )
    .await;
    assert_eq!(r.json()["success"], true, "{r:?}");
    assert_ne!(
        public().await,
        private,
        "made public by the page's own request"
    );
    // A key in the request is the caller's own intent, from anywhere (Node-RED, dashboards).
    let r = crate::harness::send(
        script()
            .get(server.url(&format!("/feed/list.json?apikey={write}")))
            .header("sec-fetch-site", "cross-site"),
    )
    .await;
    assert_eq!(r.status, 200);
    // Logging in from another site's form is refused too (login CSRF).
    let r = crate::harness::send(
        script()
            .post(server.url("/user/login.json"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", "https://evil.example")
            .header("host", "pi.local")
            .body("username=csrf&password=password1"),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
}

/// Reads the event stream until `want` shows up (or fails after 20 s).
async fn read_until<B: AsRef<[u8]>>(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<B>> + Unpin),
    seen: &mut String,
    want: &str,
) {
    let wait = async {
        while !seen.contains(want) {
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            seen.push_str(&String::from_utf8_lossy(chunk.as_ref()));
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no {want:?} in the live stream; got:\n{seen}"));
}

#[tokio::test]
async fn the_live_stream_carries_only_the_users_own_updates() {
    let server = Server::start();
    let (_, _, alice_key) = register(&server, "alice", "password1").await;
    let (_, _, bob_key) = register(&server, "bob", "password1").await;
    let alice = login(&server, "alice", "password1").await;
    let anonymous = get(&script(), &server.url("/ynni/live")).await;
    assert_eq!(anonymous.status, 401);
    let r = alice
        .get(server.url("/ynni/live"))
        .send()
        .await
        .expect("live stream");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/event-stream"))
    );
    let mut stream = r.bytes_stream();
    // The stream is open once the server has subscribed; keep posting until a value arrives.
    let mut seen = String::new();
    let post = |key: String, node: &'static str, v: u32| {
        let url = server.url(&format!(
            "/input/post?node={node}&fulljson=%7B%22power%22%3A{v}%7D&apikey={key}"
        ));
        async move { get(&script(), &url).await }
    };
    post(bob_key.clone(), "bobnode", 7).await;
    post(alice_key.clone(), "alicenode", 42).await;
    read_until(&mut stream, &mut seen, "\"value\":42").await;
    assert!(seen.contains("event: input"), "{seen}");
    assert!(seen.contains("\"nodeid\":\"alicenode\""), "{seen}");
    post(bob_key, "bobnode", 8).await;
    post(alice_key, "alicenode", 43).await;
    read_until(&mut stream, &mut seen, "\"value\":43").await;
    assert!(
        !seen.contains("bobnode"),
        "another user's values leaked: {seen}"
    );

    // One account holds at most 16 streams open (each holds a connection of the server's),
    // and one closed makes room; another account is not held back.
    let (_, alice_read, _) = register(&server, "alice2", "password1").await;
    let open = |key: String| {
        let url = server.url(&format!("/ynni/live?apikey={key}"));
        async move { script().get(url).send().await.expect("live stream") }
    };
    let mut streams = Vec::new();
    while streams.len() < 16 {
        let r = open(alice_read.clone()).await;
        assert_eq!(r.status(), 200, "stream {}", streams.len() + 1);
        streams.push(r);
    }
    let r = open(alice_read.clone()).await;
    assert_eq!(r.status(), 429, "a 17th stream");
    // Streams opened with the read key (which owners hand out) do not lock the owner's own
    // logged-in pages out: those are counted apart.
    let owner = login(&server, "alice2", "password1").await;
    let mine = owner
        .get(server.url("/ynni/live"))
        .send()
        .await
        .expect("live stream");
    assert_eq!(mine.status(), 200, "the owner's page beside 16 key streams");
    let (_, carol_read, _) = register(&server, "carol", "password1").await;
    assert_eq!(open(carol_read).await.status(), 200, "another account");
    // The server finds a closed stream at its next write (a keep-alive comment every 15 s).
    drop(streams.pop());
    let mut reopened = None;
    for _ in 0..300 {
        let r = open(alice_read.clone()).await;
        if r.status() == 200 {
            reopened = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "no room after a stream closed");
}

/// Whether `stream` ends (the server closed it) within a generous deadline.
async fn ends<S: futures_util::Stream + Unpin>(mut stream: S) -> bool {
    let ended = async { while stream.next().await.is_some() {} };
    tokio::time::timeout(Duration::from_secs(30), ended)
        .await
        .is_ok()
}

/// A live stream is checked only when it opens: logging out ends the account's login-opened
/// streams, and renewing a key its key-opened ones (a page whose login or key still holds
/// reconnects). Another account's stream stays open.
#[tokio::test]
async fn live_streams_end_when_what_opened_them_is_revoked() {
    let server = Server::start();
    let (_, alice_read, _) = register(&server, "alice", "password1").await;
    let (_, bob_read, _) = register(&server, "bob", "password1").await;
    let alice = login(&server, "alice", "password1").await;
    let open = |client: reqwest::Client, path: String| {
        let url = server.url(&path);
        async move {
            let r = client.get(url).send().await.expect("live stream");
            assert_eq!(r.status(), 200);
            r.bytes_stream()
        }
    };
    let by_login = Box::pin(open(alice.clone(), "/ynni/live".into()).await);
    let by_key = Box::pin(open(script(), format!("/ynni/live?apikey={alice_read}")).await);
    let bobs = Box::pin(open(script(), format!("/ynni/live?apikey={bob_read}")).await);

    let renewed = get(&alice, &server.url("/user/newapikeyread.json")).await;
    assert_eq!(renewed.json()["success"], true, "{}", renewed.body);
    // Replies holding a key are kept by no cache.
    let profile = get(&alice, &server.url("/user/get.json")).await;
    for r in [&renewed, &profile] {
        assert_eq!(
            r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{}",
            r.body
        );
    }
    assert!(ends(by_key).await, "the renewed key's stream ended");
    let out = get(&alice, &server.url("/user/logout.json")).await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(ends(by_login).await, "the logged-out page's stream ended");
    let mut bobs = bobs;
    // Still open: nothing, or a keep-alive, within a second.
    let still = tokio::time::timeout(Duration::from_secs(1), bobs.next()).await;
    assert!(
        still.is_err() || matches!(still, Ok(Some(Ok(_)))),
        "bob's stream is left open"
    );
}
