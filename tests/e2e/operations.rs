//! What operators' tools read: `/health`, `/ready` (detail for administrators and the metrics
//! token only) and `/metrics` in Prometheus's text format, whose counters move with traffic.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::harness::*;

const TOKEN: &str = "scrape-token-0123456789";

/// The value of the series `name{labels}` (labels exactly as rendered), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().ok()).flatten()
    })
}

async fn scrape(server: &Server) -> String {
    let r = send(script().get(server.url("/metrics")).bearer_auth(TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type.starts_with("text/plain; version=0.0.4"));
    r.body
}

#[tokio::test]
async fn health_and_readiness_answer_everyone_and_detail_only_administrators() {
    let server = Server::start();
    let c = script();
    let r = get(&c, &server.url("/health")).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));

    let r = get(&c, &server.url("/ready")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({"status": "ready"}));

    // The first account is the administrator; the second is not, and neither is an apikey.
    let (_, _, admin_write) = register(&server, "operator", "secret123").await;
    let (_, _, user_write) = register(&server, "neighbour", "secret123").await;
    for key in [&admin_write, &user_write] {
        let r = get(&c, &server.url(&format!("/ready?apikey={key}"))).await;
        assert!(r.json().get("checks").is_none(), "{}", r.body);
    }
    let neighbour = browser();
    let login = post_form(
        &neighbour,
        &server.url("/user/login.json"),
        &[("username", "neighbour"), ("password", "secret123")],
    )
    .await;
    assert_eq!(login.json()["success"], true);
    let r = get(&neighbour, &server.url("/ready")).await;
    assert!(r.json().get("checks").is_none(), "{}", r.body);

    let admin = browser();
    let login = post_form(
        &admin,
        &server.url("/user/login.json"),
        &[("username", "operator"), ("password", "secret123")],
    )
    .await;
    assert_eq!(login.json()["success"], true);
    let r = get(&admin, &server.url("/ready")).await;
    let checks = &r.json()["checks"];
    for name in ["catalog", "shards", "broker"] {
        assert_eq!(checks[name]["ok"], true, "{name}: {}", r.body);
    }
    assert!(
        checks["broker"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&server.mqtt.expect("broker").port().to_string())),
        "{}",
        r.body
    );

    // Without a token set, metrics are off and say how to turn them on.
    let r = send(c.get(server.url("/metrics")).bearer_auth(TOKEN)).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("metrics_token"), "{}", r.body);
}

#[tokio::test]
async fn metrics_need_the_token_and_count_http_and_mqtt_traffic() {
    let server = Server::builder().env("HTTP__METRICS_TOKEN", TOKEN).start();
    let c = script();
    for auth in [None, Some("wrong-token-0123456789"), Some("")] {
        let mut req = c.get(server.url("/metrics"));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        let r = send(req).await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(!r.body.contains("ynni_"), "{}", r.body);
    }
    // The token also opens readiness detail.
    let r = send(c.get(server.url("/ready")).bearer_auth(TOKEN)).await;
    assert_eq!(r.json()["checks"]["shards"]["ok"], true, "{}", r.body);

    let (_, _, write) = register(&server, "alice", "secret123").await;
    let before = scrape(&server).await;
    assert!(
        before.contains("# TYPE ynni_http_requests_total counter"),
        "{before}"
    );
    assert!(
        before.contains("ynni_build_info{version=\""),
        "build information: {before}"
    );
    let posts = |m: &str| {
        sample(
            m,
            "ynni_http_requests_total{group=\"input\",status=\"200\"}",
        )
        .unwrap_or(0.0)
    };
    let http_values =
        |m: &str| sample(m, "ynni_values_ingested_total{source=\"http\"}").unwrap_or(0.0);
    for i in 0..5 {
        let r = get(
            &c,
            &server.url(&format!(
                "/input/post?node=house&json={{power:{i},temp:20}}&apikey={write}"
            )),
        )
        .await;
        assert_eq!(r.body, "ok");
    }
    // Posts to more nodes than the limit (32, "house" among them): the last are refused,
    // with emoncms's message and status 200, and counted as refusals.
    let mut accepted = 0.0;
    for n in 0..33 {
        let r = get(
            &c,
            &server.url(&format!(
                "/input/post?node=n{n}&json={{a:1}}&apikey={write}"
            )),
        )
        .await;
        if r.body == "ok" {
            accepted += 1.0;
        }
    }
    assert_eq!(accepted, 31.0);
    let after = scrape(&server).await;
    assert_eq!(posts(&after) - posts(&before), 5.0 + 33.0, "{after}");
    assert_eq!(http_values(&after) - http_values(&before), 10.0 + accepted);
    assert!(
        sample(&after, "ynni_ingest_refused_total{reason=\"node_limit\"}").unwrap_or(0.0) >= 1.0,
        "{after}"
    );
    assert!(
        after.contains("ynni_http_request_duration_seconds_bucket{group=\"input\",le=\"0.01\"}")
    );
    assert!(sample(&after, "ynni_wal_sync_duration_seconds_count").unwrap_or(0.0) >= 1.0);
    assert!(sample(&after, "ynni_wal_written_bytes_total").unwrap_or(0.0) > 0.0);
    // Paths a client invents share one series.
    get(&c, &server.url("/made-up-path-1")).await;
    get(&c, &server.url("/made-up-path-2")).await;
    let m = scrape(&server).await;
    assert!(!m.contains("made-up"), "{m}");
    assert!(m.contains("group=\"other\""));

    // MQTT: a device's messages and its connection.
    let addr = server.mqtt.expect("broker address");
    let mut opts = MqttOptions::new("meter", addr.ip().to_string(), addr.port());
    opts.set_credentials("alice", write.as_str());
    opts.set_keep_alive(Duration::from_secs(60));
    let (client, mut ev) = AsyncClient::new(opts, 16);
    let mqtt_values =
        |m: &str| sample(m, "ynni_values_ingested_total{source=\"mqtt\"}").unwrap_or(0.0);
    let base = mqtt_values(&m);
    for i in 0..3 {
        client
            .publish("emon/house/power", QoS::AtLeastOnce, false, i.to_string())
            .await
            .expect("publish");
    }
    let mut acks = 0;
    tokio::time::timeout(Duration::from_secs(10), async {
        while acks < 3 {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = ev.poll().await {
                acks += 1;
            }
        }
    })
    .await
    .expect("three PUBACKs");
    // Stored within moments of the PUBACK; poll the scrape rather than sleep a fixed time.
    let mut m = String::new();
    for _ in 0..100 {
        m = scrape(&server).await;
        if mqtt_values(&m) - base >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mqtt_values(&m) - base, 3.0, "{m}");
    assert!(sample(&m, "ynni_mqtt_messages_received_total").unwrap_or(0.0) >= 3.0);
    assert_eq!(sample(&m, "ynni_mqtt_connections"), Some(1.0), "{m}");
    drop(client);
}
