//! `ynni simulate` against the real server: devices over HTTP and MQTT, every input logged to
//! a feed, and every value sent found stored afterwards.

use crate::harness::{Server, get, register, run_cli, script};

/// Runs `ynni simulate ARGS` on a blocking thread (it takes seconds): (success, stdout, stderr).
async fn simulate(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["simulate"];
        all.extend(args.iter().map(String::as_str));
        let (status, out, err) = run_cli(&all, &[], None);
        (status.success(), out, err)
    })
    .await
    .expect("simulate")
}

fn summary(stdout: &str) -> serde_json::Value {
    let line = stdout.lines().last().expect("a summary line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("summary is JSON ({e}): {line}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn simulated_http_devices_store_every_value() {
    let server = Server::start();
    let (_, _, key) = register(&server, "simhttp", "password1").await;
    let base = server.base.clone();
    let (ok, stdout, stderr) = simulate(&[
        "--http",
        &base,
        "--username",
        "simhttp",
        "--apikey",
        &key,
        "--devices-per-user",
        "2",
        "--profile",
        "solar",
        "--interval",
        "10",
        "--speed",
        "50",
        "--duration",
        "2",
        "--log-to-feeds",
    ])
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    let s = summary(&stdout);
    assert_eq!(s["transport"], "http");
    assert_eq!(s["devices"], 2);
    assert_eq!(s["inputs_per_device"], 6, "the solar profile's inputs");
    assert_eq!(s["errors"], 0, "{s}");
    let sent = s["values_sent"].as_u64().expect("values_sent");
    assert!(
        sent >= 60,
        "two devices × 6 inputs × at least 5 readings: {s}"
    );
    assert_eq!(s["values_acked"], sent);
    assert_eq!(s["stored"]["missing"], 0, "{s}");
    assert_eq!(s["stored"]["points"], sent);
    assert_eq!(s["stored"]["feeds"], 12);
    assert_eq!(
        s["stored_latency_ms"], s["ack_latency_ms"],
        "HTTP answers once stored"
    );
    let inputs = get(
        &script(),
        &server.url(&format!("/input/list.json?apikey={key}")),
    )
    .await;
    let nodes: Vec<String> = inputs
        .json()
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| i["nodeid"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(nodes.contains(&"solarpv_1".to_string()) && nodes.contains(&"solarpv_2".to_string()));
}

/// Two URLs, the second refusing connections (a node that is down): the device that starts
/// there sends its reading again through the other, nothing is lost, and every acknowledged
/// reading is in the `--acked` log.
#[tokio::test(flavor = "multi_thread")]
async fn simulated_http_devices_fail_over_and_log_what_was_acknowledged() {
    let server = Server::start();
    let (_, _, key) = register(&server, "simfail", "password1").await;
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("acked.jsonl");
    let urls = format!("{},{down}", server.base);
    let (ok, stdout, stderr) = simulate(&[
        "--http",
        &urls,
        "--username",
        "simfail",
        "--apikey",
        &key,
        "--devices-per-user",
        "2",
        "--profile",
        "solar",
        "--inputs",
        "2",
        "--interval",
        "10",
        "--speed",
        "50",
        "--duration",
        "2",
        "--log-to-feeds",
        "--acked",
        log.to_str().expect("path"),
    ])
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    let s = summary(&stdout);
    assert_eq!(s["errors"], 0, "{s}");
    assert!(s["retries"].as_u64().expect("retries") >= 1, "{s}");
    assert_eq!(s["stored"]["missing"], 0, "{s}");
    let acked = s["messages_acked"].as_u64().expect("acked");
    assert_eq!(s["messages_sent"], acked);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len() as u64, acked);
    assert!(lines.iter().all(|l| l["username"] == "simfail"
        && l["time"].as_i64().is_some_and(|t| t % 10 == 0)
        && l["values"].as_object().is_some_and(|v| v.len() == 2)));
    // Each device's readings once each.
    let mut seen = std::collections::HashSet::new();
    assert!(lines.iter().all(|l| seen.insert((
        l["node"].as_str().unwrap_or_default().to_string(),
        l["time"].as_i64()
    ))));
    // Over MQTT at QoS 0 nothing is ever acknowledged: refused, not ignored.
    let (ok, _, stderr) = simulate(&[
        "--mqtt",
        "127.0.0.1:1",
        "--username",
        "simfail",
        "--apikey",
        &key,
        "--qos",
        "0",
        "--acked",
        log.to_str().expect("path"),
    ])
    .await;
    assert!(!ok && stderr.contains("--qos 1 or 2"), "{stderr}");
}

/// A TCP proxy to `to` that passes a connection's first reply (the CONNACK) and then swallows
/// every byte the broker sends, closing the connection after `cut`: what the device published
/// through it reaches the broker, but no acknowledgement comes back.
async fn acknowledgement_eater(to: std::net::SocketAddr, cut: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(upstream) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = upstream.into_split();
                let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut uw).await });
                let mut connack = [0u8; 4];
                if ur.read_exact(&mut connack).await.is_ok() && cw.write_all(&connack).await.is_ok()
                {
                    let eat = async {
                        let mut sink = [0u8; 4096];
                        while matches!(ur.read(&mut sink).await, Ok(n) if n > 0) {}
                    };
                    let _ = tokio::time::timeout(cut, eat).await;
                }
                up.abort();
            });
        }
    });
    addr
}

/// Two broker addresses, the first one losing every acknowledgement and cutting the
/// connection: its device publishes again through the second what was not acknowledged, and
/// the `--acked` log holds every reading once, with its values, and nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn simulated_mqtt_devices_publish_again_through_the_next_address_and_log_what_was_acknowledged()
 {
    let server = Server::start();
    let (_, _, key) = register(&server, "simmqttfail", "password1").await;
    let mqtt = server.mqtt.expect("mqtt address");
    let eater = acknowledgement_eater(mqtt, std::time::Duration::from_millis(800)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("acked.jsonl");
    let addrs = format!("{eater},{mqtt}");
    let (ok, stdout, stderr) = simulate(&[
        "--mqtt",
        &addrs,
        "--api",
        &server.base,
        "--username",
        "simmqttfail",
        "--apikey",
        &key,
        "--devices-per-user",
        "2",
        "--profile",
        "solar",
        "--inputs",
        "2",
        "--interval",
        "10",
        "--speed",
        "50",
        "--duration",
        "3",
        "--qos",
        "1",
        "--log-to-feeds",
        "--acked",
        log.to_str().expect("path"),
    ])
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    let s = summary(&stdout);
    assert_eq!(s["errors"], 0, "{s}");
    assert!(s["retries"].as_u64().expect("retries") >= 1, "{s}");
    assert_eq!(s["stored"]["missing"], 0, "{s}");
    let acked = s["messages_acked"].as_u64().expect("acked");
    assert_eq!(s["messages_sent"], acked, "{s}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len() as u64, acked);
    // Each feed's points (a feed per node and input, tagged with the node).
    let c = script();
    let feeds = get(&c, &server.url(&format!("/feed/list.json?apikey={key}"))).await;
    let (first, last) = lines
        .iter()
        .filter_map(|l| l["time"].as_i64())
        .fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    let mut stored = std::collections::HashMap::new();
    for f in feeds.json().as_array().expect("feeds") {
        // emoncms lists ids as strings.
        let id = f["id"]
            .as_str()
            .map_or_else(|| f["id"].to_string(), String::from);
        let url = format!(
            "/feed/data.json?id={id}&start={}&end={}&interval=10&apikey={key}",
            first * 1000,
            (last + 10) * 1000
        );
        let points = get(&c, &server.url(&url)).await.json();
        assert!(points.is_array(), "{url}: {points}");
        for p in points.as_array().expect("points") {
            if let (Some(t), Some(v)) = (p[0].as_i64(), p[1].as_f64()) {
                let tag = f["tag"].as_str().unwrap_or_default().to_string();
                let name = f["name"].as_str().unwrap_or_default().to_string();
                stored.insert((tag, name, t / 1000), v);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for l in &lines {
        assert_eq!(l["username"], "simmqttfail");
        let (node, time) = (
            l["node"].as_str().expect("node"),
            l["time"].as_i64().expect("time"),
        );
        assert!(seen.insert((node.to_string(), time)), "logged twice: {l}");
        // The values logged are the values stored at that time.
        let values = l["values"].as_object().expect("values");
        assert_eq!(values.len(), 2, "{l}");
        for (name, v) in values {
            let logged = v.as_f64().expect("a number");
            let at = stored
                .get(&(node.to_string(), name.clone(), time))
                .unwrap_or_else(|| panic!("{node}:{name} at {time} not stored"));
            assert!(
                (at - logged).abs() <= 1e-3 * logged.abs().max(1.0),
                "{l}: stored {at}"
            );
        }
    }
    // Both devices' readings, the one behind the eater's included.
    let nodes: std::collections::HashSet<&str> =
        lines.iter().filter_map(|l| l["node"].as_str()).collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn simulated_mqtt_devices_are_all_stored_and_timed() {
    let server = Server::start();
    let (_, _, key) = register(&server, "simmqtt", "password1").await;
    let mqtt = server.mqtt.expect("mqtt address").to_string();
    let base = server.base.clone();
    let (ok, stdout, stderr) = simulate(&[
        "--mqtt",
        &mqtt,
        "--api",
        &base,
        "--username",
        "simmqtt",
        "--apikey",
        &key,
        "--devices-per-user",
        "3",
        "--interval",
        "10",
        "--speed",
        "40",
        "--duration",
        "2",
        "--qos",
        "1",
        "--log-to-feeds",
    ])
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    let s = summary(&stdout);
    assert_eq!(s["transport"], "mqtt");
    assert_eq!(s["inputs_per_device"], 18, "an emonTx4's inputs");
    let sent = s["values_sent"].as_u64().expect("values_sent");
    assert!(sent >= 3 * 18 * 4, "{s}");
    assert_eq!(s["values_acked"], sent, "QoS 1: every publish acknowledged");
    assert!(s["ack_latency_ms"]["p99"].as_f64().is_some(), "{s}");
    // Every device watched its first feed: each reading's publish → stored time.
    assert!(
        s["stored_latency_ms"]["samples"]
            .as_u64()
            .is_some_and(|n| n >= 3 * 4),
        "{s}"
    );
    assert_eq!(s["stored"]["missing"], 0, "{s}");
    assert_eq!(s["stored"]["points"], sent);

    // A wrong key is refused, and the run says so instead of hanging.
    let mqtt = server.mqtt.expect("mqtt address").to_string();
    let (ok, _, stderr) = simulate(&[
        "--mqtt",
        &mqtt,
        "--username",
        "simmqtt",
        "--apikey",
        "0123456789abcdef0123456789abcdef",
        "--interval",
        "1",
        "--duration",
        "2",
    ])
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("refused the connection or the login"),
        "{stderr}"
    );
}
