//! Device keys: a key per device, bound to its node, over HTTP (`devicekey=`) and MQTT.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::json;

use crate::harness::*;

fn mqtt(
    server: &Server,
    id: &str,
    user: &str,
    pass: &str,
    will: Option<&str>,
) -> (AsyncClient, rumqttc::EventLoop) {
    let addr = server.mqtt.expect("broker");
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_credentials(user, pass);
    o.set_keep_alive(Duration::from_secs(60));
    if let Some(t) = will {
        o.set_last_will(LastWill::new(t, "offline", QoS::AtMostOnce, false));
    }
    AsyncClient::new(o, 16)
}

/// Polls until CONNACK (true) or a connection error (false).
async fn connects(ev: &mut rumqttc::EventLoop) -> bool {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// The sorted `node/name` of every input in a list.
fn input_nodes(list: &serde_json::Value) -> Vec<String> {
    let mut nodes: Vec<String> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["nodeid"].as_str().unwrap_or(""),
                i["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    nodes.sort();
    nodes
}

#[tokio::test]
async fn a_device_key_posts_its_own_node_only() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bobby", "secret1").await;
    let c = script();
    let url = |path: &str| server.url(&format!("{path}&apikey={write}"));
    let id = get(&c, &url("/device/create.json?nodeid=tx1&name=Garage"))
        .await
        .json();
    let id = id.as_i64().expect("device id");
    assert_eq!(
        get(&c, &url("/device/create.json?nodeid=tx1")).await.json(),
        json!({"success": false, "message": "Device already exists"})
    );
    let list = get(&c, &url("/device/list.json?x=1")).await.json();
    assert_eq!(list[0]["id"], id.to_string());
    assert_eq!(list[0]["name"], "Garage");
    let key = list[0]["devicekey"].as_str().expect("key").to_string();
    // Another user cannot see or touch it.
    let theirs = get(
        &c,
        &server.url(&format!("/device/get.json?id={id}&apikey={bob_write}")),
    )
    .await;
    assert_eq!(theirs.json(), json!(false));

    // HTTP: its node only, and nothing but posting.
    let post = |node: &str, key: &str| {
        server.url(&format!(
            "/input/post?node={node}&json=%7Bpower%3A5%7D&devicekey={key}"
        ))
    };
    assert_eq!(get(&c, &post("tx1", &key)).await.body, "ok");
    let r = get(&c, &post("tx2", &key)).await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Error: Node 'tx2' does not belong to device."})
    );
    // A bulk request stops at the first frame of another node, as emoncms's does: the frames
    // before it are stored, the rest not.
    let bulk = server.url(&format!(
        "/input/bulk?data=[[0,%22tx1%22,1,2],[0,%22tx2%22,3],[0,%22tx1%22,9,9]]&time=1700000000&devicekey={key}"
    ));
    let r = get(&c, &bulk).await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Error: Node 'tx2' does not belong to device."})
    );
    let inputs = get(&c, &server.url(&format!("/input/list.json?apikey={write}"))).await;
    let value = |name: &str| {
        inputs
            .json()
            .as_array()
            .expect("inputs")
            .iter()
            .find(|i| i["nodeid"] == "tx1" && i["name"] == name)
            .map(|i| i["value"].clone())
    };
    assert_eq!(
        value("1"),
        Some(json!(1)),
        "the frame before tx2 was stored"
    );
    assert_eq!(value("2"), Some(json!(2)));
    let r = get(&c, &server.url(&format!("/feed/list.json?devicekey={key}"))).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            401,
            "Unauthorized. Device key autentication only permits input post or bulk actions"
        )
    );

    // MQTT: the account's username with the device key; other nodes' topics go nowhere.
    let (watch, mut watch_ev) = mqtt(&server, "watcher", "alice", &write, None);
    assert!(connects(&mut watch_ev).await);
    watch
        .subscribe("emon/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    // The subscription must be in place before the device publishes.
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::Incoming(Packet::SubAck(_))) = watch_ev.poll().await {
                return;
            }
        }
    })
    .await;
    assert!(acked.is_ok(), "subscription acknowledged");
    let (dev, mut dev_ev) = mqtt(&server, "dev-tx1", "alice", &key, Some("emon/tx1/status"));
    assert!(connects(&mut dev_ev).await);
    dev.publish("emon/tx2/power", QoS::AtLeastOnce, false, "7")
        .await
        .expect("publish");
    dev.publish("emon/tx1/temp", QoS::AtLeastOnce, false, "21.5")
        .await
        .expect("publish");
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            tokio::select! {
                e = watch_ev.poll() => if let Ok(Event::Incoming(Packet::Publish(p))) = e { seen.push(p.topic.clone()); },
                e = dev_ev.poll() => { let _ = e; }
            }
            if seen.iter().any(|t| t == "emon/tx1/temp") {
                break;
            }
        }
    })
    .await;
    assert_eq!(seen, vec!["emon/tx1/temp".to_string()]);
    let list = input_list_soon(&server, &read, |l| {
        input_nodes(l).contains(&"tx1/temp".to_string())
    })
    .await;
    let nodes = input_nodes(&list);
    assert_eq!(
        nodes,
        ["tx1/1", "tx1/2", "tx1/power", "tx1/temp"].map(String::from),
        "nothing of tx2, by HTTP or MQTT"
    );

    // A will outside the node, or the key with another username, is refused.
    let (_d2, mut ev2) = mqtt(&server, "dev-will", "alice", &key, Some("emon/tx9/status"));
    assert!(!connects(&mut ev2).await);
    let (_d3, mut ev3) = mqtt(&server, "dev-bob", "bobby", &key, None);
    assert!(!connects(&mut ev3).await);

    // A new key replaces the old one at once; deleting the device ends it.
    let fresh = get(&c, &url(&format!("/device/newdevicekey.json?id={id}")))
        .await
        .json();
    assert_eq!(get(&c, &post("tx1", &key)).await.status, 401);
    let fresh = fresh.as_str().expect("key").to_string();
    assert_eq!(get(&c, &post("tx1", &fresh)).await.body, "ok");
    let r = get(&c, &url(&format!("/device/delete.json?id={id}"))).await;
    assert_eq!(r.json()["success"], true);
    assert_eq!(get(&c, &post("tx1", &fresh)).await.status, 401);
}

/// An account has at most 1,000 devices (emoncms has no limit; each is listed by
/// `device/list`); the limit is its own. The rows are put in the server's catalog directly.
#[tokio::test]
async fn an_account_has_at_most_a_thousand_devices() {
    let server = Server::start();
    let (alice, _, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bob", "secret1").await;
    on_catalog(
        &server,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
         INSERT INTO devices (userid, nodeid, devicekey) SELECT $1, 'n' || i, 'filled' || i FROM n",
        alice,
    )
    .await;
    let c = script();
    let create = |key: &str| server.url(&format!("/device/create.json?nodeid=extra&apikey={key}"));
    let over = get(&c, &create(&write)).await;
    assert_eq!(
        over.json(),
        serde_json::json!({"success": false, "message": "Too many devices: at most 1000"})
    );
    let bobs = get(&c, &create(&bob_write)).await;
    assert!(bobs.json().is_i64(), "{}", bobs.body);
}

/// The cap holds when one account sends its creations all at once: each request counted room
/// for one more before the others added theirs: 40 at once with 990 devices all succeeded.
#[tokio::test]
async fn creations_sent_at_once_do_not_pass_the_cap() {
    let server = Server::start();
    let (alice, _, write) = register(&server, "alice", "secret1").await;
    on_catalog(
        &server,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 990) \
         INSERT INTO devices (userid, nodeid, devicekey) SELECT $1, 'n' || i, 'filled' || i FROM n",
        alice,
    )
    .await;
    let c = script();
    let sent = (0..40).map(|k| {
        let url = server.url(&format!(
            "/device/create.json?nodeid=at-once-{k}&apikey={write}"
        ));
        let c = c.clone();
        async move { get(&c, &url).await }
    });
    let made = futures_util::future::join_all(sent)
        .await
        .iter()
        .filter(|r| r.json().is_i64())
        .count();
    assert_eq!(made, 10, "devices made past 990 with a cap of 1,000");
    let listed = get(
        &c,
        &server.url(&format!("/device/list.json?apikey={write}")),
    )
    .await;
    assert_eq!(listed.json().as_array().map(Vec::len), Some(1000));
}
