//! The embedded broker: devices log in with username and write apikey, publish emoncms topics,
//! and never see another user's topics.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::json;

use crate::harness::*;

fn client(server: &Server, id: &str, user: &str, pass: &str) -> (AsyncClient, EventLoop) {
    client_with_will(server, id, user, pass, None)
}

fn client_with_will(
    server: &Server,
    id: &str,
    user: &str,
    pass: &str,
    will: Option<rumqttc::LastWill>,
) -> (AsyncClient, EventLoop) {
    let addr = server.mqtt.expect("broker address");
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_credentials(user, pass);
    opts.set_keep_alive(Duration::from_secs(60));
    if let Some(will) = will {
        opts.set_last_will(will);
    }
    AsyncClient::new(opts, 16)
}

/// Drives the event loop until `f` accepts an event, or `limit` passes (then `None`).
async fn wait_for<T>(
    ev: &mut EventLoop,
    limit: Duration,
    mut f: impl FnMut(&Event) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(limit, async {
        loop {
            match ev.poll().await {
                Ok(e) => {
                    if let Some(t) = f(&e) {
                        return Some(t);
                    }
                }
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// The next message delivered within `limit`: its topic, retain flag and payload.
async fn next_publish(ev: &mut EventLoop, limit: Duration) -> Option<(String, bool, Vec<u8>)> {
    wait_for(ev, limit, |e| match e {
        Event::Incoming(Packet::Publish(p)) => {
            Some((p.topic.clone(), p.retain, p.payload.to_vec()))
        }
        _ => None,
    })
    .await
}

/// A connected client subscribed to `filter`.
async fn listening(
    server: &Server,
    id: &str,
    user: &str,
    key: &str,
    filter: &str,
) -> (AsyncClient, EventLoop) {
    let (c, mut ev) = client(server, id, user, key);
    assert!(connected(&mut ev).await);
    subscribe(&c, &mut ev, filter).await;
    (c, ev)
}

/// Subscribes and waits for the broker's acknowledgement.
async fn subscribe(client: &AsyncClient, ev: &mut EventLoop, filter: &str) {
    client
        .subscribe(filter, QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let acked = wait_for(ev, Duration::from_secs(10), |e| {
        matches!(e, Event::Incoming(Packet::SubAck(_))).then_some(())
    })
    .await;
    assert!(acked.is_some(), "subscription to {filter} acknowledged");
}

async fn connected(ev: &mut EventLoop) -> bool {
    wait_for(ev, Duration::from_secs(10), |e| match e {
        Event::Incoming(Packet::ConnAck(_)) => Some(()),
        _ => None,
    })
    .await
    .is_some()
}

#[tokio::test]
async fn devices_publish_inputs_and_users_are_isolated() {
    let server = Server::start();
    let (_, alice_read, alice_write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bob", "secret1").await;

    // A wrong password is refused.
    let (_, mut bad) = client(&server, "bad", "alice", &bob_write);
    assert!(!connected(&mut bad).await, "a wrong key must not connect");

    let (bob, mut bob_ev) = client(&server, "bob-sub", "bob", &bob_write);
    assert!(connected(&mut bob_ev).await);
    subscribe(&bob, &mut bob_ev, "#").await;

    let (alice_sub, mut alice_sub_ev) = client(&server, "alice-sub", "alice", &alice_write);
    assert!(connected(&mut alice_sub_ev).await);
    subscribe(&alice_sub, &mut alice_sub_ev, "emon/#").await;

    let (alice, mut alice_ev) = client(&server, "alice-pub", "alice", &alice_write);
    assert!(connected(&mut alice_ev).await);
    alice
        .publish("emon/emontx/power1", QoS::AtLeastOnce, false, "123.5")
        .await
        .expect("publish");
    alice
        .publish("emon/emonpi", QoS::AtLeastOnce, false, r#"{"temp":21.5}"#)
        .await
        .expect("publish");
    let acks = wait_for(&mut alice_ev, Duration::from_secs(10), {
        let mut n = 0;
        move |e| {
            if matches!(e, Event::Incoming(Packet::PubAck(_))) {
                n += 1;
            }
            (n == 2).then_some(())
        }
    })
    .await;
    assert!(acks.is_some(), "both publishes acknowledged");

    // Alice's own subscriber sees her topic without any namespace prefix.
    let seen = wait_for(&mut alice_sub_ev, Duration::from_secs(10), |e| match e {
        Event::Incoming(Packet::Publish(p)) => Some(p.topic.clone()),
        _ => None,
    })
    .await;
    assert_eq!(seen.as_deref(), Some("emon/emontx/power1"));
    // Bob, subscribed to everything, sees nothing of Alice's.
    let leaked = wait_for(&mut bob_ev, Duration::from_millis(800), |e| match e {
        Event::Incoming(Packet::Publish(p)) => Some(p.topic.clone()),
        _ => None,
    })
    .await;
    assert_eq!(leaked, None);

    // The values became Alice's inputs.
    let inputs = input_list_soon(&server, &alice_read, |l| {
        l.as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    let find = |node: &str, name: &str| {
        inputs
            .as_array()
            .and_then(|a| a.iter().find(|i| i["nodeid"] == node && i["name"] == name))
            .cloned()
    };
    assert_eq!(
        find("emontx", "power1").map(|i| i["value"].clone()),
        Some(json!(123.5)),
        "{inputs}"
    );
    assert_eq!(
        find("emonpi", "temp").map(|i| i["value"].clone()),
        Some(json!(21.5)),
        "{inputs}"
    );

    // publish_to_mqtt: a process list's value comes back on the user's own topic.
    let input = find("emontx", "power1")
        .and_then(|i| i["id"].as_str().map(str::to_string))
        .expect("input id");
    let set = server.url(&format!(
        "/input/process/set?inputid={input}&apikey={alice_write}"
    ));
    let procs = r#"[{"fn":"process__scale","args":["2"]},{"fn":"process__publish_to_mqtt","args":["house/power"]}]"#;
    assert_eq!(
        post_form(&script(), &set, &[("processlist", procs)])
            .await
            .json()["success"],
        true
    );
    subscribe(&alice_sub, &mut alice_sub_ev, "house/#").await;
    alice
        .publish("emon/emontx/power1", QoS::AtLeastOnce, false, "200")
        .await
        .expect("publish");
    // The client sends only while its event loop is driven.
    assert!(
        wait_for(&mut alice_ev, Duration::from_secs(10), |e| matches!(
            e,
            Event::Incoming(Packet::PubAck(_))
        )
        .then_some(()))
        .await
        .is_some()
    );
    let published = wait_for(&mut alice_sub_ev, Duration::from_secs(10), |e| match e {
        Event::Incoming(Packet::Publish(p)) if p.topic == "house/power" => Some(p.payload.to_vec()),
        _ => None,
    })
    .await;
    assert_eq!(published.as_deref(), Some(&b"400"[..]));
    let leaked = wait_for(&mut bob_ev, Duration::from_millis(500), |e| match e {
        Event::Incoming(Packet::Publish(p)) => Some(p.topic.clone()),
        _ => None,
    })
    .await;
    assert_eq!(leaked, None);
}

/// Runs `mosquitto_pub` (Debian's mosquitto-clients, installed by scripts/test.sh).
fn mosquitto_pub(server: &Server, user: &str, pass: &str, extra: &[&str]) -> bool {
    let addr = server.mqtt.expect("broker address");
    let port = addr.port().to_string();
    let mut args = vec![
        "-h",
        "127.0.0.1",
        "-p",
        port.as_str(),
        "-u",
        user,
        "-P",
        pass,
    ];
    args.extend_from_slice(extra);
    std::process::Command::new("mosquitto_pub")
        .args(&args)
        .output()
        .expect("mosquitto_pub (install mosquitto-clients, as scripts/test.sh does)")
        .status
        .success()
}

#[tokio::test]
async fn mosquitto_clients_publish_with_every_protocol_and_qos() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    for (version, qos, node) in [
        ("mqttv311", "0", "a"),
        ("mqttv311", "1", "b"),
        ("mqttv5", "2", "c"),
    ] {
        let topic = format!("emon/{node}/power");
        assert!(
            mosquitto_pub(
                &server,
                "alice",
                &write,
                &["-V", version, "-q", qos, "-t", &topic, "-m", "42"]
            ),
            "{version} QoS {qos}"
        );
    }
    assert!(
        !mosquitto_pub(&server, "alice", &read, &["-t", "emon/x/y", "-m", "1"]),
        "the read key must not log in"
    );
    let inputs = input_list_soon(&server, &read, |l| {
        l.as_array().is_some_and(|a| a.len() == 3)
    })
    .await;
    let nodes: Vec<&str> = inputs
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["nodeid"].as_str())
        .collect();
    assert_eq!(nodes, ["a", "b", "c"], "{inputs}");
    assert!(
        inputs
            .as_array()
            .expect("array")
            .iter()
            .all(|i| i["value"] == json!(42))
    );
}

#[tokio::test]
async fn feed_updates_are_retained_on_the_owners_topics() {
    let server = Server::start();
    let (_, _, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bobby", "secret1").await;
    let c = script();
    let url = |path: &str| server.url(&format!("{path}&apikey={write}"));
    assert_eq!(
        get(&c, &url("/input/post?node=house&json=%7Bpower%3A1%7D"))
            .await
            .body,
        "ok"
    );
    let feed = get(
        &c,
        &url("/feed/create.json?tag=h&name=p&engine=5&options=%7B%22interval%22%3A10%7D"),
    )
    .await
    .json()["feedid"]
        .as_i64()
        .expect("feed");
    let procs = format!(r#"[{{"fn":"process__log_to_feed","args":["{feed}"]}}]"#);
    let r = post_form(
        &c,
        &url("/input/process/set?inputid=1"),
        &[("processlist", &procs)],
    )
    .await;
    assert_eq!(r.json()["success"], true);

    let (bob, mut bob_ev) = client(&server, "bob-all", "bobby", &bob_write);
    assert!(connected(&mut bob_ev).await);
    subscribe(&bob, &mut bob_ev, "#").await;
    for (value, time) in [(240, 1699999990), (250, 1700000000)] {
        let post = format!("/input/post?node=house&json=%7Bpower%3A{value}%7D&time={time}");
        assert_eq!(get(&c, &url(&post)).await.body, "ok");
    }
    // A subscriber that arrives afterwards gets the latest retained value at once (ynni
    // held Alice's values while none of her clients had subscribed: `broker::audience`),
    // and only that one.
    let (alice, mut ev) = client(&server, "ha", "alice", &write);
    assert!(connected(&mut ev).await);
    alice
        .subscribe("ynni/feed/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let got = next_publish(&mut ev, Duration::from_secs(10))
        .await
        .expect("the retained feed value");
    assert_eq!(got.0, format!("ynni/feed/{feed}"));
    assert!(got.1, "retained");
    let v: serde_json::Value = serde_json::from_slice(&got.2).expect("JSON");
    assert_eq!(v, json!({"time": 1700000000, "value": 250}));
    let older = next_publish(&mut ev, Duration::from_millis(500)).await;
    assert_eq!(older, None);
    // Bob, subscribed to everything, saw nothing of Alice's.
    let leak = wait_for(&mut bob_ev, Duration::from_millis(500), |e| match e {
        Event::Incoming(Packet::Publish(p)) => Some(p.topic.clone()),
        _ => None,
    })
    .await;
    assert_eq!(leak, None);
}

#[tokio::test]
async fn a_lost_devices_retained_will_reaches_its_users_subscribers_only() {
    let server = Server::start();
    let (_, _, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bobby", "secret1").await;
    let (bob, mut bob_ev) = client(&server, "bob-all", "bobby", &bob_write);
    assert!(connected(&mut bob_ev).await);
    subscribe(&bob, &mut bob_ev, "#").await;

    // Nobody of Alice's listens when the device goes: the will is kept all the same.
    let will = rumqttc::LastWill::new("emon/tx3/status", "offline", QoS::AtLeastOnce, true);
    let (device, mut device_ev) = client_with_will(&server, "tx-will", "alice", &write, Some(will));
    assert!(connected(&mut device_ev).await);
    // Dropped without a DISCONNECT: the broker sees the connection lost.
    drop(device);
    drop(device_ev);

    let (alice, mut ev) = client(&server, "ha", "alice", &write);
    assert!(connected(&mut ev).await);
    alice
        .subscribe("emon/tx3/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let got = next_publish(&mut ev, Duration::from_secs(10))
        .await
        .expect("the will, retained");
    assert_eq!(got, ("emon/tx3/status".into(), true, b"offline".to_vec()));
    let leak = next_publish(&mut bob_ev, Duration::from_millis(500)).await;
    assert_eq!(leak, None);
}

/// Collects publishes for `limit`, or until `want` of them arrived.
async fn collect(ev: &mut EventLoop, limit: Duration, want: usize) -> Vec<(String, Vec<u8>)> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        while got.len() < want {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    got.push((p.topic.clone(), p.payload.to_vec()))
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await;
    got
}

#[tokio::test]
async fn home_assistant_discovery_is_opt_in_and_follows_the_feeds() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let url = |path: &str, key: &str| server.url(&format!("{path}&apikey={key}"));
    let kwh = get(
        &c,
        &url("/feed/create.json?tag=meter&name=import&engine=5&unit=kWh&options=%7B%22interval%22%3A10%7D", &write),
    )
    .await
    .json()["feedid"]
        .as_i64()
        .expect("feed");
    let uuid = get(&c, &url("/user/getuuid.json?x=1", &read)).await.json();
    let uuid = uuid["message"].as_str().expect("uuid").to_string();
    let config_topic = format!("homeassistant/sensor/ynni_{uuid}_{kwh}/config");

    let (ha, mut ev) = client(&server, "home-assistant", "alice", &write);
    assert!(connected(&mut ev).await);
    subscribe(&ha, &mut ev, "homeassistant/#").await;
    // Off by default: nothing.
    assert!(
        collect(&mut ev, Duration::from_millis(500), 1)
            .await
            .is_empty()
    );
    assert_eq!(
        get(&c, &url("/ynni/homeassistant.json?x=1", &read))
            .await
            .json(),
        json!({"enabled": false})
    );
    let r = get(&c, &url("/ynni/homeassistant.json?enabled=1", &write)).await;
    assert_eq!(r.json(), json!({"success": true, "enabled": true}));
    let got = collect(&mut ev, Duration::from_secs(10), 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, config_topic);
    let cfg: serde_json::Value = serde_json::from_slice(&got[0].1).expect("JSON config");
    assert_eq!(cfg["device_class"], "energy");
    assert_eq!(cfg["state_class"], "total_increasing");
    assert_eq!(cfg["unit_of_measurement"], "kWh");
    assert_eq!(cfg["state_topic"], format!("ynni/feed/{kwh}"));
    assert_eq!(cfg["unique_id"], format!("ynni_{uuid}_{kwh}"));
    assert_eq!(cfg["availability_topic"], "ynni/status");

    // Home Assistant's birth message brings the configs again.
    ha.publish("homeassistant/status", QoS::AtMostOnce, false, "online")
        .await
        .expect("publish");
    let again = collect(&mut ev, Duration::from_secs(10), 2).await;
    assert!(again.iter().any(|(t, _)| *t == config_topic), "{again:?}");

    // A deleted feed's entity is withdrawn with an empty retained config.
    let _ = get(&c, &url(&format!("/feed/delete.json?id={kwh}"), &write)).await;
    let gone = collect(&mut ev, Duration::from_secs(10), 1).await;
    assert_eq!(gone, vec![(config_topic, Vec::new())]);
}

#[tokio::test]
async fn the_emonsd_legacy_login_publishes_as_its_account_when_switched_on() {
    // Off by default: emonSD's login is refused.
    let server = Server::start();
    register(&server, "alice", "secret1").await;
    let (_, mut ev) = client(&server, "emonhub", "emonpi", "emonpimqtt2016");
    assert!(!connected(&mut ev).await);
    drop(server);

    let server = Server::builder().env("MQTT__LEGACY_USER", "alice").start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, mut wrong) = client(&server, "emonhub-bad", "emonpi", "nope");
    assert!(!connected(&mut wrong).await);
    let (alice, mut alice_ev) = client(&server, "alice-sub", "alice", &write);
    assert!(connected(&mut alice_ev).await);
    subscribe(&alice, &mut alice_ev, "emon/#").await;
    let (hub, mut hub_ev) = client(&server, "emonhub", "emonpi", "emonpimqtt2016");
    assert!(connected(&mut hub_ev).await);
    hub.publish("emon/emonpi/power1", QoS::AtLeastOnce, false, "321")
        .await
        .expect("publish");
    let seen = wait_for(&mut alice_ev, Duration::from_secs(10), |e| match e {
        Event::Incoming(Packet::Publish(p)) => Some(p.topic.clone()),
        _ => None,
    });
    let (seen, _) = tokio::join!(seen, async {
        let _ = tokio::time::timeout(Duration::from_secs(2), hub_ev.poll()).await;
    });
    assert_eq!(seen.as_deref(), Some("emon/emonpi/power1"));
    let value = input_value_soon(&server, &read, "emonpi", "power1", &json!(321)).await;
    assert_eq!(value["value"], json!(321));

    // The account cannot be renamed while the emonSD login names it: another account could
    // then take the name, and with it the devices (after a restart, or on another node).
    let session = browser();
    let login = post_form(
        &session,
        &server.url("/user/login.json"),
        &[("username", "alice"), ("password", "secret1")],
    )
    .await;
    assert_eq!(login.json()["success"], true, "{}", login.body);
    let renamed = get(
        &session,
        &server.url("/user/changeusername.json?username=alys"),
    )
    .await;
    assert_eq!(renamed.json()["success"], false, "{}", renamed.body);
    assert!(
        renamed.body.contains("mqtt.legacy_user"),
        "{}",
        renamed.body
    );
    let taken = post_form(
        &script(),
        &server.url("/user/register.json"),
        &[
            ("username", "alice"),
            ("password", "secret2"),
            ("email", "other@example.com"),
        ],
    )
    .await;
    assert_ne!(taken.json()["success"], true, "{}", taken.body);
    drop(server);
    // Another account's name change is not refused.
    let server = Server::builder().env("MQTT__LEGACY_USER", "alice").start();
    register(&server, "bob", "secret3").await;
    let session = browser();
    let login = post_form(
        &session,
        &server.url("/user/login.json"),
        &[("username", "bob"), ("password", "secret3")],
    )
    .await;
    assert_eq!(login.json()["success"], true, "{}", login.body);
    let renamed = get(
        &session,
        &server.url("/user/changeusername.json?username=robert"),
    )
    .await;
    assert_eq!(renamed.json()["success"], true, "{}", renamed.body);
}

#[tokio::test]
async fn devices_can_publish_over_tls_with_a_self_signed_certificate() {
    let keep = tempfile::tempdir().expect("tempdir");
    let data = keep.path().join("data");
    let data_s = data.to_str().expect("utf-8 path");
    let (status, out, err) = run_cli(&["tls", "selfsigned", "--data-dir", data_s], &[], None);
    assert!(status.success(), "{out}{err}");
    let paths: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let cert = paths["cert"].as_str().expect("cert path").to_string();
    // A second run does not silently replace the pair.
    let (again, _, _) = run_cli(&["tls", "selfsigned", "--data-dir", data_s], &[], None);
    assert!(!again.success());

    let server = Server::builder()
        .data_dir(&data)
        .env("MQTT__TLS_LISTEN", "127.0.0.1:0")
        .start();
    let log = server.log();
    let port = log
        .split("MQTT TLS listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .expect("the TLS listener's address in the log")
        .port();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let publish = |extra: &[&str]| {
        let mut args = vec![
            "-h".to_string(),
            "localhost".into(),
            "-p".into(),
            port.to_string(),
            "-u".into(),
            "alice".into(),
            "-P".into(),
            write.clone(),
            "-t".into(),
            "emon/secure/power".into(),
            "-m".into(),
            "77".into(),
            "-q".into(),
            "1".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        std::process::Command::new("mosquitto_pub")
            .args(&args)
            .output()
            .expect("mosquitto_pub")
            .status
            .success()
    };
    // Without trusting the certificate the handshake fails; with it, the value arrives.
    assert!(!publish(&[
        "--cafile",
        "/etc/ssl/certs/ca-certificates.crt"
    ]));
    assert!(publish(&["--cafile", &cert]));
    let v = input_value_soon(&server, &read, "secure", "power", &json!(77)).await;
    assert_eq!(v["value"], json!(77));
}

#[tokio::test]
async fn input_updates_are_republished_when_an_input_topic_is_set() {
    let server = Server::builder()
        .env("MQTT__INPUT_TOPIC", "ynni/input")
        .start();
    let (_, _, write) = register(&server, "alice", "secret1").await;
    let (sub, mut ev) = client(&server, "node-red", "alice", &write);
    assert!(connected(&mut ev).await);
    subscribe(&sub, &mut ev, "ynni/input/#").await;
    // An HTTP post, which MQTT subscribers would otherwise never see.
    let r = get(
        &script(),
        &server.url(&format!(
            "/input/post?node=house&json=%7Bpower%3A5.5%7D&apikey={write}"
        )),
    )
    .await;
    assert_eq!(r.body, "ok");
    let got = collect(&mut ev, Duration::from_secs(10), 1).await;
    assert_eq!(
        got,
        vec![("ynni/input/house/power".to_string(), b"5.5".to_vec())]
    );
}

/// Publishes `messages` at QoS 2 as emonhub does and waits for every PUBCOMP.
async fn publish_qos2(
    server: &Server,
    id: &str,
    user: &str,
    key: &str,
    messages: &[(&str, String)],
) {
    let (c, mut ev) = client(server, id, user, key);
    assert!(connected(&mut ev).await);
    for (topic, payload) in messages {
        c.publish(*topic, QoS::ExactlyOnce, false, payload.clone())
            .await
            .expect("publish");
    }
    let mut done = 0;
    let all = wait_for(&mut ev, Duration::from_secs(10), |e| {
        if matches!(e, Event::Incoming(Packet::PubComp(_))) {
            done += 1;
        }
        (done == messages.len()).then_some(())
    })
    .await;
    assert!(all.is_some(), "every QoS 2 publish completed");
}

#[tokio::test]
async fn emonhub_traffic_from_two_users_lands_in_their_own_inputs_and_feeds() {
    let server = Server::start();
    let c = script();
    let mut users = Vec::new();
    for (name, p1) in [("alice", 1501), ("bobby", 2602)] {
        let (_, read, write) = register(&server, name, "secret1").await;
        // emonhub's per-input topics (QoS 2) and a JSON node topic, as in the emonhub capture.
        let frame = |p1: i64| {
            vec![
                ("emon/emonTx4/Vrms", "241.35".to_string()),
                ("emon/emonTx4/P1", p1.to_string()),
                ("emon/emonTx4/E1", "123457".to_string()),
                ("emon/emonpi2", format!(r#"{{"T1": 21.56, "P2": {p1}}}"#)),
            ]
        };
        publish_qos2(&server, &format!("{name}-hub-1"), name, &write, &frame(0)).await;
        // Log P1 to a feed, then send the real frame.
        let feed = get(
            &c,
            &server.url(&format!(
                "/feed/create.json?tag=emonTx4&name=P1&engine=2&apikey={write}"
            )),
        )
        .await
        .json()["feedid"]
            .as_i64()
            .expect("feed");
        let is_p1 = |i: &serde_json::Value| i["nodeid"] == "emonTx4" && i["name"] == "P1";
        let list = input_list_soon(&server, &read, |l| {
            l.as_array().is_some_and(|a| a.iter().any(is_p1))
        })
        .await;
        let input = list
            .as_array()
            .and_then(|a| a.iter().find(|i| is_p1(i)))
            .and_then(|i| i["id"].as_str())
            .expect("the P1 input")
            .to_string();
        let procs = format!(r#"[{{"fn":"process__log_to_feed","args":["{feed}"]}}]"#);
        let set = post_form(
            &c,
            &server.url(&format!(
                "/input/process/set?inputid={input}&apikey={write}"
            )),
            &[("processlist", &procs)],
        )
        .await;
        assert_eq!(set.json()["success"], true);
        publish_qos2(&server, &format!("{name}-hub-2"), name, &write, &frame(p1)).await;
        users.push((name, read, feed, p1));
    }
    for (name, read, feed, p1) in &users {
        let mut got = json!(null);
        for _ in 0..50 {
            got = get(&c, &server.url(&format!("/input/get?apikey={read}")))
                .await
                .json();
            if got["emonTx4"]["P1"]["value"] == json!(p1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Only the user's own nodes, with the user's own values.
        let nodes: Vec<&String> = got.as_object().expect("nodes").keys().collect();
        assert_eq!(nodes, vec!["emonTx4", "emonpi2"], "{name}: {got}");
        assert_eq!(got["emonTx4"]["P1"]["value"], json!(p1), "{name}");
        assert_eq!(got["emonpi2"]["P2"]["value"], json!(p1), "{name}");
        let v = get(
            &c,
            &server.url(&format!("/feed/value.json?id={feed}&apikey={read}")),
        )
        .await
        .json();
        assert_eq!(v, json!(p1), "{name}'s feed");
    }
}

/// MQTT 3.1.1 packets for the websocket test (a string with its 2-byte length).
fn mqtt_str(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

fn mqtt_packet(first: u8, body: Vec<u8>) -> Vec<u8> {
    assert!(body.len() < 128, "short packets only");
    let mut p = vec![first, body.len() as u8];
    p.extend(body);
    p
}

/// One client-to-server websocket binary frame (masked, as clients must).
fn ws_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut f = vec![0x82, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[tokio::test]
async fn devices_can_publish_over_websockets() {
    use std::io::{Read, Write};
    let server = Server::builder()
        .env("MQTT__WS_LISTEN", "127.0.0.1:0")
        .start();
    let addr: std::net::SocketAddr = server
        .log()
        .split("MQTT websocket listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("the websocket listener's address in the log");
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let key = write.clone();
    let connack = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "GET /mqtt HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: mqtt\r\n\r\n"
        )
        .expect("upgrade request");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).expect("upgrade reply");
            head.push(byte[0]);
        }
        assert!(
            String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let mut connect = mqtt_str("MQTT");
        connect.extend([4, 0xC2, 0, 60]);
        connect.extend(mqtt_str("ws-device"));
        connect.extend(mqtt_str("alice"));
        connect.extend(mqtt_str(&key));
        s.write_all(&ws_frame(&mqtt_packet(0x10, connect)))
            .expect("CONNECT");
        let mut reply = [0u8; 6];
        s.read_exact(&mut reply).expect("CONNACK frame");
        let mut publish = mqtt_str("emon/browser/power");
        publish.extend_from_slice(b"42");
        s.write_all(&ws_frame(&mqtt_packet(0x30, publish)))
            .expect("PUBLISH");
        std::thread::sleep(Duration::from_millis(300));
        reply
    })
    .await
    .expect("websocket client");
    // A binary frame holding CONNACK with return code 0.
    assert_eq!(connack, [0x82, 4, 0x20, 2, 0, 0]);
    let v = input_value_soon(&server, &read, "browser", "power", &json!(42)).await;
    assert_eq!(v["value"], json!(42));
}

#[tokio::test]
async fn emonhub_downlink_reaches_only_the_same_users_subscribers() {
    let server = Server::start();
    let (_, _, alice_write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bobby", "secret1").await;
    // emonhub subscribes to its downlink topic; the user's dashboard publishes a command.
    let (_hub, mut hub_ev) =
        listening(&server, "alice-hub", "alice", &alice_write, "emonhub/tx/#").await;
    let (_bob_hub, mut bob_ev) =
        listening(&server, "bob-hub", "bobby", &bob_write, "emonhub/tx/#").await;
    let ok = std::process::Command::new("mosquitto_pub")
        .args([
            "-p",
            &server.mqtt.expect("broker").port().to_string(),
            "-u",
            "alice",
            "-P",
            &alice_write,
            "-t",
            "emonhub/tx/17/values",
            "-m",
            "1,2,3",
        ])
        .output()
        .expect("mosquitto_pub")
        .status
        .success();
    assert!(ok);
    let got = collect(&mut hub_ev, Duration::from_secs(10), 1).await;
    assert_eq!(
        got,
        vec![("emonhub/tx/17/values".to_string(), b"1,2,3".to_vec())]
    );
    assert!(
        collect(&mut bob_ev, Duration::from_millis(500), 1)
            .await
            .is_empty()
    );
}

/// Runs `mosquitto_sub` for `secs` seconds and returns the `topic payload` lines it printed.
fn mosquitto_sub(
    server: &Server,
    user: &str,
    pass: &str,
    filter: &str,
    secs: u32,
) -> std::process::Child {
    std::process::Command::new("mosquitto_sub")
        .args([
            "-p",
            &server.mqtt.expect("broker").port().to_string(),
            "-u",
            user,
            "-P",
            pass,
            "-t",
            filter,
            "-v",
            "-W",
            &secs.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto_sub")
}

fn lines(child: std::process::Child) -> Vec<String> {
    let out = child.wait_with_output().expect("mosquitto_sub output");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn shared_subscriptions_and_retained_messages_stay_inside_the_namespace() {
    let server = Server::start();
    let (_, _, alice_write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bobby", "secret1").await;
    // Two workers share alice's stream; bob's group of the same name is another namespace.
    let w1 = mosquitto_sub(&server, "alice", &alice_write, "$share/g/emon/#", 8);
    let w2 = mosquitto_sub(&server, "alice", &alice_write, "$share/g/emon/#", 8);
    let b = mosquitto_sub(&server, "bobby", &bob_write, "$share/g/emon/#", 8);
    // mosquitto_sub cannot say when it has subscribed: give it ample time on a loaded machine.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut publish = std::process::Command::new("mosquitto_pub")
        .args([
            "-p",
            &server.mqtt.expect("broker").port().to_string(),
            "-u",
            "alice",
            "-P",
            &alice_write,
            "-t",
            "emon/n/v",
            "-l",
            "-q",
            "1",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub");
    {
        use std::io::Write;
        let mut stdin = publish.stdin.take().expect("stdin");
        stdin.write_all(b"1\n2\n3\n4\n5\n6\n").expect("lines");
    }
    assert!(publish.wait().expect("mosquitto_pub").success());
    let (w1, w2, b) = tokio::task::spawn_blocking(move || (lines(w1), lines(w2), lines(b)))
        .await
        .expect("subscribers");
    assert!(!w1.is_empty() && !w2.is_empty(), "{w1:?} {w2:?}");
    let mut all: Vec<String> = w1.into_iter().chain(w2).collect();
    all.sort();
    assert_eq!(
        all,
        (1..=6).map(|i| format!("emon/n/v {i}")).collect::<Vec<_>>()
    );
    assert!(b.is_empty(), "{b:?}");

    // A retained message reaches a later subscriber of alice, not of bob.
    let (alice, mut alice_ev) = client(&server, "alice-dev", "alice", &alice_write);
    assert!(connected(&mut alice_ev).await);
    alice
        .publish("emon/n/status", QoS::AtLeastOnce, true, "up")
        .await
        .expect("publish");
    let _ = wait_for(&mut alice_ev, Duration::from_secs(5), |e| {
        matches!(e, Event::Incoming(Packet::PubAck(_))).then_some(())
    })
    .await;
    let (late, mut late_ev) = client(&server, "alice-late", "alice", &alice_write);
    assert!(connected(&mut late_ev).await);
    late.subscribe("emon/n/status", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let got = collect(&mut late_ev, Duration::from_secs(5), 1).await;
    assert_eq!(got, vec![("emon/n/status".to_string(), b"up".to_vec())]);
    let (bob_late, mut bob_late_ev) = client(&server, "bob-late", "bobby", &bob_write);
    assert!(connected(&mut bob_late_ev).await);
    bob_late
        .subscribe("emon/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    assert!(
        collect(&mut bob_late_ev, Duration::from_millis(500), 1)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn guessing_an_mqtt_password_is_slowed_but_the_right_key_still_gets_in() {
    let server = Server::start();
    let (_, _, write) = register(&server, "alice", "secret1").await;
    for i in 0..7 {
        let (_, mut ev) = client(
            &server,
            &format!("guess-{i}"),
            "alice",
            "0123456789abcdef0123456789abcdef",
        );
        assert!(!connected(&mut ev).await, "a wrong key never connects");
    }
    let (_, mut ev) = client(&server, "device", "alice", &write);
    assert!(
        connected(&mut ev).await,
        "the right key connects after the guesses"
    );
}

/// An MQTT 5 client, id `id`, with `will` on `emon/<node>/status` sent after `delay` seconds;
/// returns once connected, with its event loop to drop (a lost connection).
async fn v5_with_delayed_will(
    server: &Server,
    id: &str,
    user: &str,
    key: &str,
    node: &str,
    delay: u32,
) -> (rumqttc::v5::AsyncClient, rumqttc::v5::EventLoop) {
    use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties, Packet as P5};
    use rumqttc::v5::{AsyncClient as C5, Event as E5, MqttOptions as O5, mqttbytes::QoS as Q5};
    let addr = server.mqtt.expect("broker");
    let mut opts = O5::new(id, addr.ip().to_string(), addr.port());
    opts.set_credentials(user, key);
    let props = LastWillProperties {
        delay_interval: Some(delay),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    };
    opts.set_last_will(LastWill::new(
        format!("emon/{node}/status"),
        "offline",
        Q5::AtMostOnce,
        false,
        Some(props),
    ));
    let (c, mut ev) = C5::new(opts, 16);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(E5::Incoming(P5::ConnAck(_)))) => return (c, ev),
            Ok(Ok(_)) => {}
            other => panic!("no CONNACK for {id}: {other:?}"),
        }
    }
}

/// MQTT 5's will delay: a lost client's will goes out after its delay, to its own account's
/// subscribers only, and not at all when the client is back in time.
#[tokio::test]
async fn a_delayed_will_waits_its_delay_and_a_return_in_time_cancels_it() {
    let server = Server::start();
    let (_, _, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bobby", "secret1").await;
    let (_bob, mut bob_ev) = listening(&server, "bob-all", "bobby", &bob_write, "#").await;
    let (_alice, mut ev) = listening(&server, "ha", "alice", &write, "emon/+/status").await;

    // Lost, and back within its delay: no will.
    let back = v5_with_delayed_will(&server, "tx-back", "alice", &write, "back", 3).await;
    drop(back);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _again = v5_with_delayed_will(&server, "tx-back", "alice", &write, "back", 3).await;
    // Lost for good: its will after about 2 s, not at once.
    let gone = v5_with_delayed_will(&server, "tx-gone", "alice", &write, "gone", 2).await;
    drop(gone);
    assert_eq!(
        next_publish(&mut ev, Duration::from_millis(1200)).await,
        None,
        "sent before its delay"
    );
    let got = next_publish(&mut ev, Duration::from_secs(10))
        .await
        .expect("the will after its delay");
    assert_eq!(got, ("emon/gone/status".into(), false, b"offline".to_vec()));
    // The returned client's delay has passed by now: still nothing, for anyone.
    assert_eq!(next_publish(&mut ev, Duration::from_secs(2)).await, None);
    assert_eq!(
        next_publish(&mut bob_ev, Duration::from_millis(300)).await,
        None
    );
}
