//! MQTT identity and isolation, tried as an attacker would: two users (and a device key) with
//! the same client ids, renamed accounts, revoked keys, refused logins, oversized CONNECTs.
//! Each test failed on the broker before ynni took over connection handling.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

use crate::harness::*;

fn client(
    server: &Server,
    id: &str,
    user: &str,
    pass: &str,
    clean: bool,
) -> (AsyncClient, EventLoop) {
    let addr = server.mqtt.expect("broker address");
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_credentials(user, pass);
    opts.set_keep_alive(Duration::from_secs(60));
    opts.set_clean_session(clean);
    AsyncClient::new(opts, 64)
}

/// Drives the event loop until `f` accepts an event, or `limit` passes, or the connection
/// ends (then `None`).
pub(crate) async fn wait_for<T>(
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

/// The CONNACK's session-present flag, or `None` if the connection was refused or lost.
pub(crate) async fn connack(ev: &mut EventLoop) -> Option<bool> {
    wait_for(ev, Duration::from_secs(10), |e| match e {
        Event::Incoming(Packet::ConnAck(a)) => Some(a.session_present),
        _ => None,
    })
    .await
}

pub(crate) async fn subscribed(c: &AsyncClient, ev: &mut EventLoop, filter: &str) {
    c.subscribe(filter, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let ok = wait_for(ev, Duration::from_secs(10), |e| {
        matches!(e, Event::Incoming(Packet::SubAck(_))).then_some(())
    })
    .await;
    assert!(ok.is_some(), "subscribed to {filter}");
}

/// Messages received within `limit`, as `topic payload`.
pub(crate) async fn received(ev: &mut EventLoop, limit: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => got.push(format!(
                    "{} {}",
                    p.topic,
                    String::from_utf8_lossy(&p.payload)
                )),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    got
}

/// Whether the connection ends (or is refused) within `limit`.
async fn closed_within(ev: &mut EventLoop, limit: Duration) -> bool {
    tokio::time::timeout(limit, async {
        loop {
            if ev.poll().await.is_err() {
                return;
            }
        }
    })
    .await
    .is_ok()
}

pub(crate) async fn publish_acked(c: &AsyncClient, ev: &mut EventLoop, topic: &str, payload: &str) {
    c.publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .expect("publish");
    let acked = wait_for(ev, Duration::from_secs(10), |e| {
        matches!(e, Event::Incoming(Packet::PubAck(_))).then_some(())
    })
    .await;
    assert!(acked.is_some(), "{topic} acknowledged");
}

async fn inputs(server: &Server, read: &str) -> Vec<Value> {
    let r = get(
        &script(),
        &server.url(&format!("/input/list.json?apikey={read}")),
    )
    .await;
    r.json().as_array().cloned().unwrap_or_default()
}

async fn input_value(server: &Server, read: &str, node: &str, name: &str) -> Option<Value> {
    inputs(server, read)
        .await
        .into_iter()
        .find(|i| i["nodeid"] == node && i["name"] == name)
        .map(|i| i["value"].clone())
}

/// Raw MQTT 3.1.1 / 5 CONNECT with a username and password.
fn connect_packet(level: u8, client_id: &str, user: &str, pass: &str) -> Vec<u8> {
    let s = |t: &str| {
        let mut v = (t.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(t.as_bytes());
        v
    };
    let mut body = s("MQTT");
    body.push(level);
    body.push(0b1100_0010); // username, password, clean session
    body.extend_from_slice(&60u16.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend(s(client_id));
    body.extend(s(user));
    body.extend(s(pass));
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend(body);
    packet
}

/// Sends a CONNECT and returns what the server answered before closing.
fn raw_connect(server: &Server, packet: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server.mqtt.expect("broker")).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(packet).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// A browser session of alice's (password `secret1`).
async fn alice_session(server: &Server) -> reqwest::Client {
    let c = browser();
    let login = post_form(
        &c,
        &server.url("/user/login.json"),
        &[("username", "alice"), ("password", "secret1")],
    )
    .await;
    assert_eq!(login.json()["success"], true, "{}", login.body);
    c
}

/// Alice's session, and the id and key of a new device of hers on node `tx1`.
async fn alice_device(server: &Server) -> (reqwest::Client, Value, String) {
    let c = alice_session(server).await;
    let device_id = get(&c, &server.url("/device/create.json?nodeid=tx1&name=tx1"))
        .await
        .json();
    let device = get(&c, &server.url(&format!("/device/get.json?id={device_id}"))).await;
    let key = device.json()["devicekey"]
        .as_str()
        .expect("device key")
        .to_string();
    (c, device_id, key)
}

#[tokio::test]
async fn client_ids_sessions_and_takeovers_belong_to_one_user() {
    let server = Server::start();
    let (_, _, alice_key) = register(&server, "alice", "secret1").await;
    let (_, _, bob_key) = register(&server, "bobby", "secret1").await;

    // Alice leaves a persistent session subscribed to everything, then goes offline.
    let (a, mut a_ev) = client(&server, "shared", "alice", &alice_key, false);
    assert!(connack(&mut a_ev).await.is_some());
    subscribed(&a, &mut a_ev, "#").await;
    a.disconnect().await.expect("disconnect");
    let _ = closed_within(&mut a_ev, Duration::from_secs(5)).await;

    // Bob resumes "her" client id: a new session of his own, with none of her messages.
    let (b, mut b_ev) = client(&server, "shared", "bobby", &bob_key, false);
    assert_eq!(
        connack(&mut b_ev).await,
        Some(false),
        "no session of alice's resumed"
    );
    subscribed(&b, &mut b_ev, "x").await;
    let (p, mut p_ev) = client(&server, "alice-pub", "alice", &alice_key, true);
    assert!(connack(&mut p_ev).await.is_some());
    publish_acked(&p, &mut p_ev, "emon/private/secret", "42").await;
    assert_eq!(
        received(&mut b_ev, Duration::from_secs(1)).await,
        Vec::<String>::new()
    );

    // Alice comes back: her own session was kept, with the message queued for it.
    let (_a2, mut a2_ev) = client(&server, "shared", "alice", &alice_key, false);
    assert_eq!(
        connack(&mut a2_ev).await,
        Some(true),
        "alice's session resumed"
    );
    let got = received(&mut a2_ev, Duration::from_secs(2)).await;
    assert!(
        got.contains(&"emon/private/secret 42".to_string()),
        "{got:?}"
    );

    // Bob connecting with the id alice is using does not disconnect her.
    let (_b2, mut b2_ev) = client(&server, "shared", "bobby", &bob_key, true);
    assert!(connack(&mut b2_ev).await.is_some());
    let (live, mut live_ev) = client(&server, "alice-live", "alice", &alice_key, true);
    assert!(connack(&mut live_ev).await.is_some());
    subscribed(&live, &mut live_ev, "emon/#").await;
    publish_acked(&p, &mut p_ev, "emon/private/again", "1").await;
    let got = received(&mut a2_ev, Duration::from_secs(2)).await;
    assert!(
        got.contains(&"emon/private/again 1".to_string()),
        "still connected: {got:?}"
    );

    // The same user's second connection with one id takes the first one over.
    let (_a3, mut a3_ev) = client(&server, "shared", "alice", &alice_key, true);
    assert!(connack(&mut a3_ev).await.is_some());
    assert!(
        closed_within(&mut a2_ev, Duration::from_secs(5)).await,
        "taken over"
    );
}

#[tokio::test]
async fn a_renamed_account_keeps_its_connections_apart_from_the_new_owner_of_the_name() {
    let server = Server::start();
    let (_, old_read, old_key) = register(&server, "alice", "secret1").await;
    let (old, mut old_ev) = client(&server, "old-dev", "alice", &old_key, true);
    assert!(connack(&mut old_ev).await.is_some());
    subscribed(&old, &mut old_ev, "emon/#").await;

    let c = alice_session(&server).await;
    let renamed = get(&c, &server.url("/user/changeusername.json?username=alice2")).await;
    assert_eq!(renamed.json()["success"], true, "{}", renamed.body);
    // The connection that logged in as "alice" is closed: that name no longer opens it.
    assert!(closed_within(&mut old_ev, Duration::from_secs(5)).await);

    let (_, new_read, new_key) = register(&server, "alice", "secret2").await;
    let (new, mut new_ev) = client(&server, "new-dev", "alice", &new_key, true);
    assert!(connack(&mut new_ev).await.is_some());
    publish_acked(&new, &mut new_ev, "emon/fresh/power", "7").await;
    assert_eq!(
        input_value(&server, &new_read, "fresh", "power").await,
        Some(json!(7))
    );
    assert_eq!(
        input_value(&server, &old_read, "fresh", "power").await,
        None
    );

    // The renamed account logs in by its new name and stores in its own account.
    let (again, mut again_ev) = client(&server, "old-dev", "alice2", &old_key, true);
    assert!(connack(&mut again_ev).await.is_some());
    publish_acked(&again, &mut again_ev, "emon/old/power", "3").await;
    assert_eq!(
        input_value(&server, &old_read, "old", "power").await,
        Some(json!(3))
    );
    assert_eq!(input_value(&server, &new_read, "old", "power").await, None);
}

#[tokio::test]
async fn revoked_keys_close_the_connections_they_opened() {
    let server = Server::start();
    let (_, _, key) = register(&server, "alice", "secret1").await;
    let (c, device_id, device_key) = alice_device(&server).await;

    let (_acct, mut acct_ev) = client(&server, "acct", "alice", &key, true);
    assert!(connack(&mut acct_ev).await.is_some());
    let (_dev, mut dev_ev) = client(&server, "dev", "alice", &device_key, true);
    assert!(connack(&mut dev_ev).await.is_some());

    let deleted = get(
        &c,
        &server.url(&format!("/device/delete.json?id={device_id}")),
    )
    .await;
    assert_eq!(deleted.json()["success"], true, "{}", deleted.body);
    assert!(
        closed_within(&mut dev_ev, Duration::from_secs(5)).await,
        "device key revoked"
    );
    assert!(
        !closed_within(&mut acct_ev, Duration::from_millis(500)).await,
        "write key still valid"
    );

    let fresh = get(&c, &server.url("/user/newapikeywrite.json")).await;
    assert_eq!(fresh.json()["success"], true, "{}", fresh.body);
    assert!(
        closed_within(&mut acct_ev, Duration::from_secs(5)).await,
        "write key revoked"
    );
    let (_old, mut old_ev) = client(&server, "acct", "alice", &key, true);
    assert_eq!(
        connack(&mut old_ev).await,
        None,
        "the old key no longer connects"
    );
}

#[tokio::test]
async fn a_device_key_stays_on_its_node_whatever_another_connect_says() {
    let server = Server::start();
    let (_, read, _) = register(&server, "alice", "secret1").await;
    let (_session, _device_id, device_key) = alice_device(&server).await;

    let (d, mut d_ev) = client(&server, "dev", "alice", &device_key, true);
    assert!(connack(&mut d_ev).await.is_some());
    // A second CONNECT with the same client id and a wrong password is refused with a code...
    let refused = raw_connect(&server, &connect_packet(4, "dev", "alice", "wrong"));
    assert_eq!(refused, vec![0x20, 2, 0, 5]);
    // ...and changes nothing about the live connection: still only its own node.
    publish_acked(&d, &mut d_ev, "emon/tx2/power", "99").await;
    publish_acked(&d, &mut d_ev, "emon/tx1/power", "5").await;
    assert_eq!(
        input_value(&server, &read, "tx1", "power").await,
        Some(json!(5))
    );
    assert_eq!(input_value(&server, &read, "tx2", "power").await, None);
}

#[tokio::test]
async fn refused_logins_are_answered_with_the_codes_clients_expect() {
    let server = Server::start();
    let (_, _, key) = register(&server, "alice", "secret1").await;
    // 3.1.1: 0x05 not authorised; 5: 0x86 bad user name or password (Mosquitto's answers).
    assert_eq!(
        raw_connect(&server, &connect_packet(4, "c1", "alice", "wrong")),
        vec![0x20, 2, 0, 5]
    );
    let v5 = raw_connect(&server, &connect_packet(5, "c2", "alice", "wrong"));
    assert_eq!(&v5[..4], &[0x20, 3, 0, 0x86], "{v5:?}");
    assert_eq!(
        raw_connect(&server, &connect_packet(4, "c3", "nobody", &key)),
        vec![0x20, 2, 0, 5]
    );
    // A client id no device needs is refused as such (3.1.1: 0x02).
    assert_eq!(
        raw_connect(
            &server,
            &connect_packet(4, &"x".repeat(5000), "alice", &key)
        ),
        vec![0x20, 2, 0, 2]
    );
    // The right key is accepted.
    let ok = raw_connect_keep(&server, &connect_packet(4, "c4", "alice", &key));
    assert_eq!(ok, vec![0x20, 2, 0, 0]);
    // Nothing above is an error of the server's: a healthy log has no ERROR lines.
    let log = server.log();
    assert!(!log.contains("ERROR"), "{log}");
}

/// Sends a CONNECT and returns the first 4 bytes answered (the connection stays open).
fn raw_connect_keep(server: &Server, packet: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server.mqtt.expect("broker")).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(packet).expect("write");
    let mut out = vec![0; 4];
    s.read_exact(&mut out).expect("connack");
    out
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn failed_connects_leave_nothing_behind() {
    let server = Server::start();
    register(&server, "alice", "secret1").await;
    let big = "x".repeat(60_000);
    let send = |n: usize| {
        for i in 0..n {
            let id = format!("{i}{big}");
            let _ = raw_connect(&server, &connect_packet(4, &id, "alice", "wrong"));
            let _ = raw_connect(&server, &connect_packet(4, "ok-id", &big, "wrong"));
        }
    };
    send(100);
    let before = rss_kib(server.pid());
    send(500);
    let after = rss_kib(server.pid());
    // 1,000 refused 60 KB CONNECTs: what the broker kept of them would be ~60 MB.
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    let log = server.log();
    assert!(
        !log.contains(&"x".repeat(100)),
        "a log line quoted a whole client id"
    );
}

#[tokio::test]
async fn the_node_limit_applies_to_mqtt_too() {
    let server = Server::start();
    let (_, read, key) = register(&server, "alice", "secret1").await;
    let (c, mut ev) = client(&server, "dev", "alice", &key, true);
    assert!(connack(&mut ev).await.is_some());
    for k in 0..40 {
        publish_acked(&c, &mut ev, &format!("emon/m{k}/a"), "1").await;
    }
    let nodes: std::collections::HashSet<String> = inputs(&server, &read)
        .await
        .iter()
        .filter_map(|i| i["nodeid"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        nodes.len(),
        ynni_ingest::shard::DEFAULT_MAX_NODES,
        "{nodes:?}"
    );
}

#[tokio::test]
async fn mqtt_password_guessing_is_limited_per_address() {
    // One web login attempt per window makes six MQTT attempts (devices retry on their own).
    let server = Server::builder().env("LIMITS__LOGIN_ATTEMPTS", "1").start();
    let (_, _, key) = register(&server, "alice", "secret1").await;
    for i in 0..6 {
        let refused = raw_connect(
            &server,
            &connect_packet(4, &format!("g{i}"), "alice", "wrong"),
        );
        assert_eq!(refused, vec![0x20, 2, 0, 5], "guess {i}");
    }
    // Over the limit, even the right key is not checked from this address for a while.
    assert_eq!(
        raw_connect(&server, &connect_packet(4, "dev", "alice", &key)),
        vec![0x20, 2, 0, 5]
    );
    // The log is read from the server's stderr by another thread: give the line time to land.
    let mut logged = false;
    for _ in 0..50 {
        logged = server.log().contains("too many failed attempts");
        if logged {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(logged, "{}", server.log());
}

/// Messages of a user none of whose clients subscribed skip the broker's router
/// (`broker::audience`): what a subscriber sees must be what it would have seen had they not.
/// A retained status waits for the subscriber who comes later, a plain reading does not, the
/// next reading after the subscription arrives, and another user's subscription to all of his
/// topics neither sees alice's messages nor changes what alice's subscriber gets.
#[tokio::test]
async fn messages_sent_before_anyone_listens_keep_only_what_is_retained() {
    let server = Server::start();
    let (_, _, alice_key) = register(&server, "alice", "secret1").await;
    let (_, _, bob_key) = register(&server, "bobby", "secret1").await;
    let (_session, _device_id, device_key) = alice_device(&server).await;
    let (b, mut b_ev) = client(&server, "listener", "bobby", &bob_key, true);
    assert!(connack(&mut b_ev).await.is_some());
    subscribed(&b, &mut b_ev, "#").await;

    // Alice's device, on its device key, publishes before any client of alice listens.
    let (d, mut d_ev) = client(&server, "tx1", "alice", &device_key, true);
    assert!(connack(&mut d_ev).await.is_some());
    d.publish("emon/tx1/status", QoS::AtLeastOnce, true, "up")
        .await
        .expect("publish");
    let acked = wait_for(&mut d_ev, Duration::from_secs(10), |e| {
        matches!(e, Event::Incoming(Packet::PubAck(_))).then_some(())
    })
    .await;
    assert!(acked.is_some(), "retained status acknowledged");
    publish_acked(&d, &mut d_ev, "emon/tx1/power", "100").await;

    let (a, mut a_ev) = client(&server, "listener", "alice", &alice_key, true);
    assert!(connack(&mut a_ev).await.is_some());
    subscribed(&a, &mut a_ev, "emon/#").await;
    assert_eq!(
        received(&mut a_ev, Duration::from_secs(2)).await,
        vec!["emon/tx1/status up".to_string()],
        "only the retained message waited"
    );

    publish_acked(&d, &mut d_ev, "emon/tx1/power", "200").await;
    let got = wait_for(&mut a_ev, Duration::from_secs(10), |e| match e {
        Event::Incoming(Packet::Publish(p)) => Some(format!(
            "{} {}",
            p.topic,
            String::from_utf8_lossy(&p.payload)
        )),
        _ => None,
    })
    .await;
    assert_eq!(got.as_deref(), Some("emon/tx1/power 200"));
    assert_eq!(
        received(&mut b_ev, Duration::from_millis(500)).await,
        Vec::<String>::new(),
        "bob sees nothing of alice's"
    );
}

/// The SUBACK codes of the next SUBSCRIBE answered.
async fn suback(ev: &mut EventLoop) -> Vec<rumqttc::SubscribeReasonCode> {
    wait_for(ev, Duration::from_secs(10), |e| match e {
        Event::Incoming(Packet::SubAck(a)) => Some(a.return_codes.clone()),
        _ => None,
    })
    .await
    .expect("a SUBACK")
}

/// SUBSCRIBEs the broker refuses whole, with failure codes, leaving the connection usable: a
/// device key's (it only posts), a shared subscription in a session kept after the connection
/// (rumqttd's router stops, for every account, when such a session ends with a message to its
/// group unacknowledged), and more or longer filters than one SUBSCRIBE may carry.
#[tokio::test]
async fn subscriptions_past_what_the_broker_allows_are_refused_with_a_code() {
    use rumqttc::SubscribeReasonCode::{Failure, Success};
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_session, _device_id, device_key) = alice_device(&server).await;

    let (d, mut d_ev) = client(&server, "dev", "alice", &device_key, true);
    assert!(connack(&mut d_ev).await.is_some());
    d.subscribe("#", QoS::AtMostOnce).await.expect("subscribe");
    assert_eq!(suback(&mut d_ev).await, vec![Failure], "a device key");
    publish_acked(&d, &mut d_ev, "emon/tx1/power", "5").await;
    assert_eq!(
        input_value(&server, &read, "tx1", "power").await,
        Some(json!(5))
    );

    let (p, mut p_ev) = client(&server, "kept", "alice", &write, false);
    assert!(connack(&mut p_ev).await.is_some());
    p.subscribe("$share/g/emon/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    assert_eq!(
        suback(&mut p_ev).await,
        vec![Failure],
        "shared, kept session"
    );
    p.subscribe("emon/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    assert_eq!(suback(&mut p_ev).await, vec![Success(QoS::AtLeastOnce)]);

    let (c, mut ev) = client(&server, "many", "alice", &write, true);
    assert!(connack(&mut ev).await.is_some());
    let many: Vec<rumqttc::SubscribeFilter> = (0..257)
        .map(|i| rumqttc::SubscribeFilter::new(format!("n/{i}"), QoS::AtMostOnce))
        .collect();
    c.subscribe_many(many).await.expect("subscribe");
    assert_eq!(suback(&mut ev).await, vec![Failure; 257], "257 filters");
    c.subscribe("x".repeat(1025), QoS::AtMostOnce)
        .await
        .expect("subscribe");
    assert_eq!(suback(&mut ev).await, vec![Failure], "a 1,025-byte filter");
    c.subscribe("$share/g/emon/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    assert_eq!(
        suback(&mut ev).await,
        vec![Success(QoS::AtMostOnce)],
        "shared, clean session"
    );
}

/// The router keeps every filter it was ever given, so an account's clients may give it 512
/// distinct ones in all: past that a SUBSCRIBE with a new filter is refused while a known one
/// is still granted, another account has its own allowance, and a publish topic longer than
/// 1 KiB (the router keeps topics too) ends the connection.
#[tokio::test]
async fn an_accounts_filters_in_all_and_publish_topics_are_bounded() {
    use rumqttc::SubscribeReasonCode::{Failure, Success};
    let server = Server::start();
    let (_, _, write) = register(&server, "alice", "secret1").await;
    let (_, _, bob) = register(&server, "bob", "secret1").await;
    let (c, mut ev) = client(&server, "a1", "alice", &write, true);
    assert!(connack(&mut ev).await.is_some());
    for part in 0..2 {
        let filters: Vec<rumqttc::SubscribeFilter> = (0..256)
            .map(|i| {
                rumqttc::SubscribeFilter::new(format!("n/{}", part * 256 + i), QoS::AtMostOnce)
            })
            .collect();
        c.subscribe_many(filters).await.expect("subscribe");
        assert_eq!(
            suback(&mut ev).await,
            vec![Success(QoS::AtMostOnce); 256],
            "part {part}"
        );
    }
    let (c2, mut ev2) = client(&server, "a2", "alice", &write, true);
    assert!(connack(&mut ev2).await.is_some());
    c2.subscribe("n/512", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    assert_eq!(suback(&mut ev2).await, vec![Failure], "the 513th filter");
    c2.subscribe("n/7", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    assert_eq!(
        suback(&mut ev2).await,
        vec![Success(QoS::AtMostOnce)],
        "a filter the router has"
    );
    let (b, mut b_ev) = client(&server, "b1", "bob", &bob, true);
    assert!(connack(&mut b_ev).await.is_some());
    b.subscribe("n/512", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    assert_eq!(
        suback(&mut b_ev).await,
        vec![Success(QoS::AtMostOnce)],
        "bob's own"
    );

    c2.publish("x".repeat(1025), QoS::AtLeastOnce, false, "1")
        .await
        .expect("publish");
    assert!(
        closed_within(&mut ev2, Duration::from_secs(10)).await,
        "a 1,025-byte topic"
    );
    c.publish(
        format!("emon/{}", "x".repeat(1019)),
        QoS::AtMostOnce,
        false,
        "1",
    )
    .await
    .expect("publish");
    c.subscribe("n/0", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    assert_eq!(
        suback(&mut ev).await,
        vec![Success(QoS::AtMostOnce)],
        "a 1,024-byte topic keeps the connection"
    );
}

/// A device key connecting with the client id of one of its account's own clients neither
/// resumes that client's kept session (its subscriptions and queued messages) nor takes the
/// live one over nor ends it: a device key's sessions are its own, and clean.
#[tokio::test]
async fn a_device_key_cannot_resume_or_take_over_its_accounts_sessions() {
    let server = Server::start();
    let (_, _, key) = register(&server, "alice", "secret1").await;
    let (_session, _device_id, device_key) = alice_device(&server).await;

    // Home Assistant keeps a session subscribed to everything, then goes away.
    let (ha, mut ha_ev) = client(&server, "ha", "alice", &key, false);
    assert!(connack(&mut ha_ev).await.is_some());
    subscribed(&ha, &mut ha_ev, "#").await;
    ha.disconnect().await.expect("disconnect");
    let _ = closed_within(&mut ha_ev, Duration::from_secs(5)).await;
    let (p, mut p_ev) = client(&server, "alice-pub", "alice", &key, true);
    assert!(connack(&mut p_ev).await.is_some());
    publish_acked(&p, &mut p_ev, "emon/private/queued", "1").await;

    // The device key asks for the same client id and a kept session: nothing of Home
    // Assistant's comes to it.
    let (_d, mut d_ev) = client(&server, "ha", "alice", &device_key, false);
    assert_eq!(connack(&mut d_ev).await, Some(false), "no session resumed");
    assert_eq!(
        received(&mut d_ev, Duration::from_secs(1)).await,
        Vec::<String>::new()
    );
    // Home Assistant comes back to its own session, with the message queued for it, and the
    // device's connection on "its" id does not close it.
    let (_ha2, mut ha2_ev) = client(&server, "ha", "alice", &key, false);
    assert_eq!(
        connack(&mut ha2_ev).await,
        Some(true),
        "its session was kept"
    );
    let got = received(&mut ha2_ev, Duration::from_secs(2)).await;
    assert!(
        got.contains(&"emon/private/queued 1".to_string()),
        "{got:?}"
    );
    let (_d2, mut d2_ev) = client(&server, "ha", "alice", &device_key, true);
    assert!(connack(&mut d2_ev).await.is_some());
    publish_acked(&p, &mut p_ev, "emon/private/live", "2").await;
    let got = received(&mut ha2_ev, Duration::from_secs(2)).await;
    assert!(
        got.contains(&"emon/private/live 2".to_string()),
        "still connected: {got:?}"
    );
}

/// A device key's message is stored only for its node as the decoder reads the topic: a
/// device on node `emon` publishing `emon/emon/other/power` passes the broker's topic check
/// but would decode as node `other`.
#[tokio::test]
async fn a_device_key_cannot_reach_another_node_through_the_decoders_reading() {
    let server = Server::start();
    let (_, read, key) = register(&server, "alice", "secret1").await;
    let c = alice_session(&server).await;
    let device_id = get(&c, &server.url("/device/create.json?nodeid=emon&name=emon"))
        .await
        .json();
    let device = get(&c, &server.url(&format!("/device/get.json?id={device_id}"))).await;
    let device_key = device.json()["devicekey"]
        .as_str()
        .expect("device key")
        .to_string();
    let (d, mut d_ev) = client(&server, "dev", "alice", &device_key, true);
    assert!(connack(&mut d_ev).await.is_some());
    publish_acked(&d, &mut d_ev, "emon/emon/other/power", "7").await;
    // (emoncms's decoder removes every `emon/` from a topic, so no message reaches a node
    // named `emon` at all.)
    assert_eq!(inputs(&server, &read).await, Vec::<Value>::new());
    // A device whose node has a `:` (a MAC address) is stored as the decoder reads it.
    let mac = get(&c, &server.url("/device/create.json?nodeid=aa:bb&name=mac"))
        .await
        .json();
    let mac = get(&c, &server.url(&format!("/device/get.json?id={mac}"))).await;
    let mac_key = mac.json()["devicekey"].as_str().expect("key").to_string();
    let (m, mut m_ev) = client(&server, "mac", "alice", &mac_key, true);
    assert!(connack(&mut m_ev).await.is_some());
    publish_acked(&m, &mut m_ev, "emon/aa:bb/power", "4").await;
    assert_eq!(
        input_value(&server, &read, "aabb", "power").await,
        Some(json!(4))
    );
    // The account's own key may post there.
    let (a, mut a_ev) = client(&server, "acct", "alice", &key, true);
    assert!(connack(&mut a_ev).await.is_some());
    publish_acked(&a, &mut a_ev, "emon/other/power", "3").await;
    assert_eq!(
        input_value(&server, &read, "other", "power").await,
        Some(json!(3))
    );
}
