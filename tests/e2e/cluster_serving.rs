//! Two nodes serving one set of users (issue 17): any node answers any user, a request for
//! an account owned by the other node is forwarded and answered with the owner's reply, users
//! cannot reach each other's data through either node, and when a node is killed the other
//! takes its vshards over with every acknowledged value in place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::{Server, get, register, script};
use crate::mqtt_tenancy::{connack, publish_acked, received, subscribed};
use crate::postgres::Postgres;

const T: i64 = 1_700_000_000;
/// Tests that start a cluster run one at a time: each starts two or three nodes and a
/// PostgreSQL, and together they would starve the rest of the suite on two cores.
pub(crate) static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// emoncms's answer to an `input/post` with `fulljson`.
const POSTED: &str = "{\"success\": true}";
pub(crate) const SECRET: &str = "cluster-secret-0123456789";

pub(crate) fn free_port() -> u16 {
    crate::harness::free_port()
}

pub(crate) fn node_config(
    dir: &Path,
    pg: &str,
    shared: &Path,
    node: &str,
    port: u16,
    lease_ms: u64,
) -> PathBuf {
    let text = format!(
        "[cluster]\npostgres = \"{pg}\"\nshared_dir = \"{shared}\"\nnode_id = \"{node}\"\n\
         advertise = \"127.0.0.1:{port}\"\nsecret = \"{SECRET}\"\nlease_ms = {lease_ms}\n",
        shared = shared.display(),
    );
    let path = dir.join(format!("{node}.toml"));
    std::fs::write(&path, text).expect("config");
    path
}

pub(crate) fn start_node(config: &Path, port: u16) -> Server {
    start_node_at(config, port, 0)
}

/// [`start_node`] with the broker on `mqtt_port` (0: any free port), so that a node
/// restarted there is found where devices knew it.
pub(crate) fn start_node_at(config: &Path, port: u16, mqtt_port: u16) -> Server {
    Server::builder()
        .http_listen(&format!("127.0.0.1:{port}"))
        .mqtt_listen(&format!("127.0.0.1:{mqtt_port}"))
        .arg("--config")
        .arg(config.to_str().expect("utf-8 path"))
        .start()
}

/// Waits until every vshard has a live owner and each of `nodes` owns some; returns the owners.
async fn settled(pool: &sqlx::PgPool, nodes: &[&str]) -> HashMap<u16, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = ynni_cluster::status::owners(pool).await.expect("owners");
        let owners: HashMap<u16, String> =
            rows.into_iter().map(|o| (o.vshard, o.node_id)).collect();
        // Settled: every vshard with the node placement gives it (not merely some for each).
        let placed = nodes.iter().all(|n| {
            ynni_cluster::placement::vshards_of(n, nodes)
                .iter()
                .all(|v| owners.get(v).is_some_and(|o| o == n))
        });
        if owners.len() == 256 && placed {
            return owners;
        }
        assert!(
            Instant::now() < deadline,
            "vshards never settled: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GETs `url` until the answer is not a 503 (a vshard changing hands says so, and clients
/// retry); returns the final body.
pub(crate) async fn retrying(url: &str) -> (u16, String) {
    let c = script();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = get(&c, url).await;
        if r.status != 503 {
            return (r.status, r.body);
        }
        assert!(Instant::now() < deadline, "still 503 after 60 s: {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An MQTT client of `acct` connected through `server`, retrying while the account's shard
/// is changing hands (the broker refuses with "server unavailable" then).
async fn mqtt_client(
    server: &Server,
    id: &str,
    acct: &Account,
) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let addr = server.mqtt.expect("broker address");
    for _ in 0..100 {
        let mut opts = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_credentials(acct.name.clone(), acct.write.clone());
        opts.set_keep_alive(Duration::from_secs(60));
        let (c, mut ev) = rumqttc::AsyncClient::new(opts, 64);
        if connack(&mut ev).await.is_some() {
            return (c, ev);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} could not connect through {}", server.base);
}

pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) read: String,
    pub(crate) write: String,
}

/// Two nodes over one Postgres and one shared directory, settled, with an account whose
/// vshard each owns (`a` on n1, `b` on n2).
pub(crate) struct TwoNodes {
    pub(crate) pg: Postgres,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) pool: sqlx::PgPool,
    pub(crate) n1: Server,
    pub(crate) n2: Server,
    pub(crate) c1: PathBuf,
    pub(crate) c2: PathBuf,
    pub(crate) p1: u16,
    pub(crate) p2: u16,
    pub(crate) a: Account,
    pub(crate) b: Account,
}

pub(crate) async fn two_nodes() -> TwoNodes {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).expect("shared dir");
    let (p1, p2) = (free_port(), free_port());
    let c1 = node_config(dir.path(), &pg.url(), &shared, "n1", p1, 2000);
    let c2 = node_config(dir.path(), &pg.url(), &shared, "n2", p2, 2000);
    let pool = ynni_cluster::db::connect(&pg.url(), Duration::from_secs(10))
        .await
        .expect("connect");
    let n1 = start_node(&c1, p1);
    let n2 = start_node(&c2, p2);
    let owners = settled(&pool, &["n1", "n2"]).await;
    // Accounts are registered through one node into the shared catalog; pick one whose
    // vshard n1 owns and one on n2.
    let mut on = HashMap::new();
    for i in 0..64 {
        if on.len() == 2 {
            break;
        }
        let name = format!("user{i}");
        let (id, read, write) = register(&n1, &name, "password123").await;
        let owner = &owners[&(ynni_core::vshard::of(id, 256) as u16)];
        on.entry(owner.clone())
            .or_insert(Account { name, read, write });
    }
    let (a, b) = (on.remove("n1").expect("a"), on.remove("n2").expect("b"));
    TwoNodes {
        pg,
        dir,
        pool,
        n1,
        n2,
        c1,
        c2,
        p1,
        p2,
        a,
        b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_serve_every_user_forward_keep_users_apart_and_take_over_a_killed_node() {
    let _one = ONE_CLUSTER.lock().await;
    let TwoNodes {
        pool,
        n1,
        n2,
        c2,
        p2,
        a,
        b,
        pg: _pg,
        dir: _dir,
        ..
    } = two_nodes().await;
    let mut n2 = Some(n2);
    let (a, b) = (&a, &b);
    let nodes = |n2: &Option<Server>| -> Vec<String> {
        let mut v = vec![n1.base.clone()];
        v.extend(n2.iter().map(|s| s.base.clone()));
        v
    };

    // Each account posts through both nodes and reads through both: the owner answers.
    for (k, acct) in [a, b].into_iter().enumerate() {
        for (i, base) in nodes(&n2).iter().enumerate() {
            let value = 100 * (k + 1) + i;
            let url = format!(
                "{base}/input/post?node=house&fulljson=%7B%22power%22%3A{value}%7D&time={}&apikey={}",
                T + 10 * i as i64,
                acct.write
            );
            assert_eq!(retrying(&url).await, (200, POSTED.to_string()));
        }
        for base in nodes(&n2) {
            let (_, body) = retrying(&format!(
                "{base}/input/get/house/power?apikey={}",
                acct.read
            ))
            .await;
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            assert_eq!(v["value"], 100 * (k + 1) + 1, "{body} via {base}");
            assert_eq!(v["time"], T + 10, "{body} via {base}");
        }
    }

    // b's feed, created and written through n1, which forwards both to n2.
    let (_, body) = retrying(&format!(
        "{}/feed/create.json?name=p&engine=5&options=%7B%22interval%22%3A10%7D&apikey={}",
        n1.base, b.write
    ))
    .await;
    let created: serde_json::Value = serde_json::from_str(&body).expect("json");
    let feed = created["feedid"].as_i64().expect(&body);
    for (i, base) in nodes(&n2).iter().enumerate() {
        let (_, body) = retrying(&format!(
            "{base}/feed/insert.json?id={feed}&time={}&value={}&apikey={}",
            T + 10 * i as i64,
            7 + i,
            b.write
        ))
        .await;
        assert!(!body.contains("false"), "{body}");
    }
    let data_url = |base: &str, key: &str| {
        format!(
            "{base}/feed/data.json?id={feed}&start={}&end={}&interval=10&apikey={key}",
            T * 1000,
            (T + 10) * 1000
        )
    };
    let expected = format!("[[{},7],[{},8]]", T * 1000, (T + 10) * 1000);
    for base in nodes(&n2) {
        assert_eq!(retrying(&data_url(&base, &b.read)).await.1, expected);
        // a cannot read b's feed through either node, with either key.
        for key in [&a.read, &a.write] {
            let (_, body) = retrying(&data_url(&base, key)).await;
            assert!(!body.contains("[["), "a read b's feed via {base}: {body}");
        }
        let (_, body) = retrying(&format!("{base}/input/get/house/power?apikey={}", a.read)).await;
        assert!(body.contains("101"), "a sees only its own input: {body}");
    }

    // Once b makes the feed public, anybody reads it through either node: a visitor without
    // a key, and a (whose own requests n1 answers), are both answered by b's owner.
    let (_, body) = retrying(&format!(
        "{}/feed/set.json?id={feed}&fields=%7B%22public%22%3A1%7D&apikey={}",
        n1.base, b.write
    ))
    .await;
    assert!(body.contains("true"), "{body}");
    for base in nodes(&n2) {
        for key in ["", a.read.as_str()] {
            let r = get(&script(), &data_url(&base, key)).await;
            assert_eq!(
                r.status, 200,
                "public feed via {base} with {key:?}: {}",
                r.body
            );
            assert_eq!(r.body, expected, "public feed via {base} with {key:?}");
            assert_eq!(r.headers["x-ynni-node"], "n2", "answered by b's owner");
        }
    }
    // A request a node sent on for b's data is not sent on again by a node that lacks it.
    let r = crate::harness::send(
        script()
            .get(data_url(&n1.base, ""))
            .header("x-ynni-forwarded", SECRET)
            .header("x-ynni-for", "1"),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.headers["retry-after"], "1");

    // Only the cluster's secret marks a request as forwarded: a guessed one is forwarded as
    // usual; the real one on a request for an account the node does not own is refused with
    // 503 rather than sent on again.
    let c = script();
    let url = format!("{}/input/get/house/power?apikey={}", n1.base, b.read);
    let r = crate::harness::send(c.get(&url).header("x-ynni-forwarded", "guess")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["x-ynni-node"], "n2", "answered by b's owner");
    // `Connection: close` keeps the request on n1: the client's pool may open a new
    // connection for it, and n1, which now knows the key, would hand that one to n2 whole.
    let r = crate::harness::send(
        c.get(&url)
            .header("x-ynni-forwarded", SECRET)
            .header("connection", "close"),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        r.headers["retry-after"], "1",
        "clients are told when to retry"
    );

    // Many writes for b at once through n1 travel to n2 in batches: each is answered by
    // n2, and each value lands on its own input.
    let burst: Vec<_> = (0..100)
        .map(|i| {
            let url = format!(
                "{}/input/post?node=burst&fulljson=%7B%22p{i}%22%3A{i}%7D&time={}&apikey={}",
                n1.base,
                T + 10,
                b.write
            );
            tokio::spawn(async move {
                let c = script();
                loop {
                    let r = get(&c, &url).await;
                    if r.status != 503 {
                        return r;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    for r in burst {
        let r = r.await.expect("burst task");
        assert_eq!((r.status, r.body.as_str()), (200, POSTED), "burst write");
        assert_eq!(r.headers["x-ynni-node"], "n2", "answered by b's owner");
    }
    let (_, body) = retrying(&format!("{}/input/list.json?apikey={}", n1.base, b.read)).await;
    let inputs: serde_json::Value = serde_json::from_str(&body).expect("json");
    let mut burst_seen: Vec<i64> = inputs
        .as_array()
        .expect("inputs")
        .iter()
        .filter(|i| i["nodeid"] == "burst")
        .map(|i| {
            assert_eq!(i["name"], format!("p{}", i["value"]), "{i}");
            i["value"].as_i64().expect("value")
        })
        .collect();
    burst_seen.sort_unstable();
    assert_eq!(burst_seen, (0..100).collect::<Vec<_>>());

    // The batch endpoint is the cluster's own: without the secret, or with a guessed one,
    // nothing in a batch is done; with it (as a node sends it), the owner answers each.
    let forged = ynni_web::forward::wire::encode_requests(&[ynni_web::forward::SubRequest {
        method: reqwest::Method::GET,
        target: format!(
            "/input/post?node=forged&fulljson=%7B%22power%22%3A1%7D&apikey={}",
            b.write
        ),
        client: "192.0.2.9".parse().expect("ip"),
        headers: Default::default(),
        body: Default::default(),
    }]);
    let owner = n2.as_ref().expect("n2");
    for secret in [None, Some("guess")] {
        let mut req = c.post(owner.url("/ynni/batch")).body(forged.clone());
        if let Some(s) = secret {
            req = req.header("x-ynni-forwarded", s);
        }
        let r = crate::harness::send(req).await;
        assert_ne!(r.status, 200, "batch accepted with {secret:?}: {}", r.body);
    }
    let (_, body) = retrying(&format!("{}/input/list.json?apikey={}", n1.base, b.read)).await;
    assert!(!body.contains("forged"), "{body}");
    let r = c
        .post(owner.url("/ynni/batch"))
        .header("x-ynni-forwarded", SECRET)
        .body(forged)
        .send()
        .await
        .expect("batch");
    assert_eq!(r.status(), 200);
    let replies =
        ynni_web::forward::wire::decode_replies(r.bytes().await.expect("body")).expect("replies");
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].body, POSTED.as_bytes());
    let (_, body) = retrying(&format!("{}/input/list.json?apikey={}", n1.base, b.read)).await;
    assert!(body.contains("forged"), "{body}");
    // A batch runs its requests all at once: more than a node ever sends in one is refused
    // whole, none of it done.
    let many: Vec<_> = (0..257)
        .map(|k| ynni_web::forward::SubRequest {
            method: reqwest::Method::GET,
            target: format!(
                "/input/post?node=toomany&fulljson=%7B%22p{k}%22%3A1%7D&apikey={}",
                b.write
            ),
            client: "192.0.2.9".parse().expect("ip"),
            headers: Default::default(),
            body: Default::default(),
        })
        .collect();
    let r = c
        .post(owner.url("/ynni/batch"))
        .header("x-ynni-forwarded", SECRET)
        .body(ynni_web::forward::wire::encode_requests(&many))
        .send()
        .await
        .expect("batch");
    assert_eq!(r.status(), 413);
    let (_, body) = retrying(&format!("{}/input/list.json?apikey={}", n1.base, b.read)).await;
    assert!(!body.contains("toomany"), "{body}");

    // b's device key through the wrong node: it posts its own node's inputs, to b's owner,
    // and nothing else (no reads, no other node's inputs), as on one node.
    let (_, body) = retrying(&format!(
        "{}/device/create.json?nodeid=tx1&name=Garage&apikey={}",
        n1.base, b.write
    ))
    .await;
    assert!(body.parse::<i64>().is_ok(), "device created: {body}");
    let (_, body) = retrying(&format!("{}/device/list.json?apikey={}", n1.base, b.write)).await;
    let devices: serde_json::Value = serde_json::from_str(&body).expect("json");
    let device_key = devices[0]["devicekey"]
        .as_str()
        .expect("devicekey")
        .to_string();
    let device_post = |node: &str, value: u32| {
        format!(
            "{}/input/post?node={node}&fulljson=%7B%22power%22%3A{value}%7D&devicekey={device_key}",
            n1.base
        )
    };
    let r = retrying(&device_post("tx1", 31)).await;
    assert_eq!(r, (200, POSTED.to_string()));
    let (status, body) = retrying(&device_post("tx2", 32)).await;
    assert!(
        body.contains("does not belong to device"),
        "{status} {body}"
    );
    let (status, body) = retrying(&format!(
        "{}/feed/list.json?devicekey={device_key}",
        n1.base
    ))
    .await;
    assert_eq!(status, 401, "{body}");
    for acct in [a, b] {
        let (_, body) =
            retrying(&format!("{}/input/list.json?apikey={}", n1.base, acct.read)).await;
        let has_tx1 = body.contains("\"tx1\"");
        assert_eq!(has_tx1, acct.name == b.name, "{}: {body}", acct.name);
        assert!(!body.contains("\"tx2\""), "{}: {body}", acct.name);
    }

    // b's live page through n1: the stream comes from n2, where b's values are processed.
    let mut live = script()
        .get(format!("{}/ynni/live?apikey={}", n1.base, b.read))
        .send()
        .await
        .expect("live stream");
    assert_eq!(live.status(), 200);
    let url = format!(
        "{}/input/post?node=house&fulljson=%7B%22power%22%3A123%7D&time={}&apikey={}",
        n1.base,
        T + 20,
        b.write
    );
    assert_eq!(retrying(&url).await, (200, POSTED.to_string()));
    let mut seen = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = live.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("\"value\":123") {
                break;
            }
        }
    })
    .await;
    assert!(seen.contains("event: input"), "{seen}");
    assert!(seen.contains("\"value\":123"), "{seen}");
    drop(live);

    // A browser session through the wrong node: the owner checks the page's Origin against
    // the host the browser named (the entry node), as on one node.
    let browser = crate::harness::browser();
    let r = crate::harness::post_form(
        &browser,
        &n1.url("/user/login.json"),
        &[("username", &b.name), ("password", "password123")],
    )
    .await;
    assert!(r.body.contains("true"), "{}", r.body);
    let r = crate::harness::send(
        browser
            .post(n1.url("/input/list.json"))
            .header("origin", &n1.base),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("power"), "{}", r.body);
    assert_eq!(r.headers["x-ynni-node"], "n2");

    // The administrator's page (user0 registered first: the administrator) lists both nodes'
    // shards, whichever node it is asked through; the node-to-node call needs the secret.
    let admin = crate::harness::browser();
    let r = crate::harness::post_form(
        &admin,
        &n2.as_ref().expect("n2").url("/user/login.json"),
        &[("username", "user0"), ("password", "password123")],
    )
    .await;
    assert!(r.body.contains("true"), "{}", r.body);
    let status = crate::harness::get(&admin, &n2.as_ref().expect("n2").url("/admin/status.json"))
        .await
        .json();
    let listed = status["nodes"].as_array().expect("nodes");
    let mut names: Vec<&str> = listed.iter().filter_map(|n| n["node"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["n1", "n2"], "{status}");
    assert!(
        listed
            .iter()
            .all(|n| n["shards"].as_array().is_some_and(|s| !s.is_empty())),
        "{status}"
    );
    let r = crate::harness::get(&script(), &n1.url("/ynni/nodestatus.json")).await;
    assert_ne!(r.status, 200, "{}", r.body);

    // MQTT through the "wrong" node: b's connection to n1 is passed to n2, so b's subscriber
    // on n1 and b's publisher on n2 meet at one broker, the publish is stored for b only, and
    // a (on n1, connected through n2) sees none of it.
    let b_sub = mqtt_client(&n1, "b-sub", b).await;
    let (b_sub, mut b_sub_ev) = b_sub;
    subscribed(&b_sub, &mut b_sub_ev, "emon/#").await;
    let (a_sub, mut a_sub_ev) = mqtt_client(n2.as_ref().expect("n2"), "a-sub", a).await;
    subscribed(&a_sub, &mut a_sub_ev, "emon/#").await;
    let (b_pub, mut b_pub_ev) = mqtt_client(n2.as_ref().expect("n2"), "b-pub", b).await;
    publish_acked(&b_pub, &mut b_pub_ev, "emon/mqtt/power", "42").await;
    let (a_pub, mut a_pub_ev) = mqtt_client(&n1, "a-pub", a).await;
    publish_acked(&a_pub, &mut a_pub_ev, "emon/mqtt/power", "17").await;
    let got = received(&mut b_sub_ev, Duration::from_secs(2)).await;
    assert_eq!(got, ["emon/mqtt/power 42"], "b's subscriber through n1");
    let got = received(&mut a_sub_ev, Duration::from_secs(1)).await;
    assert_eq!(got, ["emon/mqtt/power 17"], "a's subscriber through n2");
    for base in nodes(&n2) {
        for (acct, value) in [(a, 17), (b, 42)] {
            let (_, body) =
                retrying(&format!("{base}/input/get/mqtt/power?apikey={}", acct.read)).await;
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            assert_eq!(v["value"], value, "{body} via {base}");
        }
    }
    // b's device key over MQTT through n1: spliced to n2, its node's topic is b's input.
    let device = Account {
        name: b.name.clone(),
        read: String::new(),
        write: device_key.clone(),
    };
    let (d_pub, mut d_pub_ev) = mqtt_client(&n1, "tx1-device", &device).await;
    publish_acked(&d_pub, &mut d_pub_ev, "emon/tx1/power", "33").await;
    let got = received(&mut b_sub_ev, Duration::from_secs(2)).await;
    assert_eq!(got, ["emon/tx1/power 33"], "b's subscriber sees b's device");
    assert!(
        received(&mut a_sub_ev, Duration::from_millis(500))
            .await
            .is_empty()
    );
    let (_, body) = retrying(&format!(
        "{}/input/get/tx1/power?apikey={}",
        n1.base, b.read
    ))
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["value"], 33, "{body}");
    drop((d_pub, d_pub_ev));
    drop((
        b_sub, b_sub_ev, a_sub, a_sub_ev, b_pub, b_pub_ev, a_pub, a_pub_ev,
    ));

    // n2 is killed: n1 takes its vshards over once the leases end and replays their logs.
    n2.take().expect("n2").kill9();
    let killed = Instant::now();
    let url = format!(
        "{}/input/post?node=house&fulljson=%7B%22power%22%3A250%7D&time={}&apikey={}",
        n1.base,
        T + 30,
        b.write
    );
    assert_eq!(retrying(&url).await, (200, POSTED.to_string()));
    eprintln!(
        "takeover: b's vshard served by n1 {:.1} s after n2 was killed (lease 2 s)",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(retrying(&data_url(&n1.base, &b.read)).await.1, expected);

    // n2 comes back: it takes its share again (handed over by n1, flushed), nothing is lost
    // or doubled, and it serves both accounts.
    let n2 = start_node(&c2, p2);
    settled(&pool, &["n1", "n2"]).await;
    for base in [&n1.base, &n2.base] {
        assert_eq!(retrying(&data_url(base, &b.read)).await.1, expected);
        let (_, body) = retrying(&format!("{base}/input/get/house/power?apikey={}", b.read)).await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["value"], 250, "{body} via {base}");
    }
    let (status, log) = n2.stop();
    assert!(status.success(), "n2 stops cleanly:\n{log}");
    assert!(log.contains("left the cluster"), "{log}");
    let (status, log) = n1.stop();
    assert!(status.success(), "n1 stops cleanly:\n{log}");
}

fn signal(server: &Server, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &server.pid().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig}");
}

/// Waits until the vshard of every account in `accounts` is owned by `node` (by the lease
/// table) and `node` answers for it.
async fn owned_by(pool: &sqlx::PgPool, node: &str, server: &Server, read: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = ynni_cluster::status::owners(pool).await.expect("owners");
        if rows.iter().all(|o| o.node_id == node) && rows.len() == 256 {
            break;
        }
        assert!(Instant::now() < deadline, "{node} never took every vshard");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    retrying(&server.url(&format!("/input/list.json?apikey={read}"))).await;
}

/// A node paused (SIGSTOP) past its lease loses its vshards to the other node; resumed, it
/// must acknowledge and write nothing for them: a request that reached it during the pause is
/// answered 503, and nothing it held then appears in the data, even after a restart replays
/// every log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_past_its_lease_acknowledges_and_writes_nothing_after_it_resumes() {
    let _one = ONE_CLUSTER.lock().await;
    let TwoNodes {
        pool,
        n1,
        n2,
        c1,
        p1,
        b,
        pg: _pg,
        dir: _dir,
        ..
    } = two_nodes().await;
    let (_, body) = retrying(&format!(
        "{}/feed/create.json?name=p&engine=5&options=%7B%22interval%22%3A10%7D&apikey={}",
        n2.base, b.write
    ))
    .await;
    let feed = serde_json::from_str::<serde_json::Value>(&body).expect("json")["feedid"]
        .as_i64()
        .expect(&body);
    let insert = |base: &str, t: i64, v: i64| {
        format!(
            "{base}/feed/insert.json?id={feed}&time={}&value={v}&apikey={}",
            T + t,
            b.write
        )
    };
    let post = |base: &str, t: i64, v: i64| {
        format!(
            "{base}/input/post?node=house&fulljson=%7B%22power%22%3A{v}%7D&time={}&apikey={}",
            T + t,
            b.write
        )
    };
    assert_eq!(retrying(&insert(&n2.base, 0, 1)).await.0, 200);
    assert_eq!(retrying(&post(&n2.base, 0, 1)).await.0, 200);

    signal(&n2, "-STOP");
    // Two requests reach the paused node and wait in its socket.
    let stalled: Vec<_> = [insert(&n2.base, 10, 666), post(&n2.base, 10, 666)]
        .into_iter()
        .map(|url| {
            tokio::spawn(async move {
                let r = script()
                    .get(&url)
                    .timeout(Duration::from_secs(120))
                    .send()
                    .await
                    .expect("an answer once resumed");
                let node = r
                    .headers()
                    .get("x-ynni-node")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                (
                    r.status().as_u16(),
                    node,
                    r.text().await.unwrap_or_default(),
                )
            })
        })
        .collect();
    // n1 takes everything over once n2's leases end, and acknowledges new data.
    owned_by(&pool, "n1", &n1, &b.read).await;
    assert_eq!(retrying(&insert(&n1.base, 20, 777)).await.0, 200);
    assert_eq!(retrying(&post(&n1.base, 20, 777)).await.0, 200);

    // Resumed, n2 either refuses them itself (its fence has passed) or, once it has noticed
    // the loss, forwards them to n1, the owner now, which stores and acknowledges them. It
    // never acknowledges them itself.
    signal(&n2, "-CONT");
    let mut stored_by_n1 = Vec::new();
    for task in stalled {
        let (status, node, body) = task.await.expect("join");
        match status {
            503 => stored_by_n1.push(false),
            200 => {
                assert_eq!(node, "n1", "acknowledged by the new owner only: {body}");
                stored_by_n1.push(true);
            }
            other => panic!("{other}: {body}"),
        }
    }
    let (insert_stored, post_stored) = (stored_by_n1[0], stored_by_n1[1]);
    // Give the resumed node time to do anything it still would, then stop both and let n1
    // alone replay every log from the shared directory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, log) = n2.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("lease lost"), "n2 noticed: {log}");
    let (status, log) = n1.stop();
    assert!(status.success(), "{log}");
    let n1 = start_node(&c1, p1);
    owned_by(&pool, "n1", &n1, &b.read).await;
    let (_, data) = retrying(&format!(
        "{}/feed/data.json?id={feed}&start={}&end={}&interval=10&apikey={}",
        n1.base,
        T * 1000,
        (T + 20) * 1000,
        b.read
    ))
    .await;
    assert_eq!(
        data,
        format!(
            "[[{},1],[{},{}],[{},777]]",
            T * 1000,
            (T + 10) * 1000,
            if insert_stored { "666" } else { "null" },
            (T + 20) * 1000
        )
    );
    let (_, input) = retrying(&format!(
        "{}/input/get/house/power?apikey={}",
        n1.base, b.read
    ))
    .await;
    let v: serde_json::Value = serde_json::from_str(&input).expect("json");
    // An input's last value is the last to arrive (emoncms's rule).
    let last: (i64, i64) = if post_stored {
        (T + 10, 666)
    } else {
        (T + 20, 777)
    };
    assert_eq!((&v["time"], &v["value"]), (&last.0.into(), &last.1.into()));
    let (status, _) = n1.stop();
    assert!(status.success());
}

/// Stops each node and checks it shut down cleanly.
pub(crate) fn stop_cleanly(nodes: impl IntoIterator<Item = Server>) {
    for node in nodes {
        let (status, log) = node.stop();
        assert!(status.success(), "{log}");
    }
}

/// `input/post` of 3600 W at `T + t` for `acct` through `base`.
fn post_3600w(base: &str, t: i64, acct: &Account) -> String {
    format!(
        "{base}/input/post?node=house&fulljson=%7B%22power%22%3A3600%7D&time={}&apikey={}",
        T + t,
        acct.write
    )
}

/// Creates `acct`'s input `house/power` and a kWh feed it accumulates into with
/// `power_to_kwh`; returns the feed id.
async fn kwh_feed(base: &str, acct: &Account) -> i64 {
    assert_eq!(retrying(&post_3600w(base, 0, acct)).await.0, 200);
    let (_, body) = retrying(&format!(
        "{base}/feed/create.json?name=kwh&engine=5&options=%7B%22interval%22%3A10%7D&apikey={}",
        acct.write
    ))
    .await;
    let feed = serde_json::from_str::<serde_json::Value>(&body).expect("json")["feedid"]
        .as_i64()
        .expect(&body);
    let (_, inputs) = retrying(&format!("{base}/input/list.json?apikey={}", acct.read)).await;
    let inputs: serde_json::Value = serde_json::from_str(&inputs).expect("json");
    // emoncms lists input ids as strings.
    let input = inputs[0]["id"].as_str().expect("input id").to_string();
    let list = format!(r#"[{{"fn":"process__power_to_kwh","args":["{feed}"]}}]"#);
    let r = crate::harness::post_form(
        &script(),
        &format!(
            "{base}/input/process/set.json?inputid={input}&apikey={}",
            acct.write
        ),
        &[("processlist", &list)],
    )
    .await;
    assert!(r.body.contains("true"), "{}", r.body);
    feed
}

async fn feed_value(base: &str, feed: i64, acct: &Account) -> f64 {
    let (_, v) = retrying(&format!(
        "{base}/feed/value.json?id={feed}&apikey={}",
        acct.read
    ))
    .await;
    v.trim_matches('"').parse().expect(&v)
}

/// How many vshards each node holds now.
pub(crate) async fn shares(pool: &sqlx::PgPool) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for o in ynni_cluster::status::owners(pool).await.expect("owners") {
        *out.entry(o.node_id).or_default() += 1;
    }
    out
}

/// Draining a node, a new node joining and the drained node coming back each move vshards
/// while an account keeps posting, with nothing lost and nothing counted twice: an
/// accumulating process list gives the same kWh as on one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vshards_move_on_drain_join_and_return_with_accumulators_exact() {
    let _one = ONE_CLUSTER.lock().await;
    let TwoNodes {
        pool,
        n1,
        n2,
        c1,
        b,
        pg,
        dir,
        ..
    } = two_nodes().await;
    let feed = kwh_feed(&n1.base, &b).await;
    let cli = |args: &[&str]| {
        let mut all = vec!["cluster"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", c1.to_str().expect("path")]);
        let (status, out, err) = crate::harness::run_cli(&all, &[], None);
        assert!(status.success(), "{args:?}: {out}{err}");
    };
    // Each move is started, then b posts through every node, one interval after another,
    // until the move has finished (and at least three times): the posts meet the move under
    // way (a 503 while b's vshard changes hands, retried as a device would).
    let mut n3: Option<Server> = None;
    let mut posts = 0i64;
    let mut retried = Vec::new();
    for phase in ["drain", "join", "return"] {
        match phase {
            "drain" => cli(&["drain", "n2"]),
            "join" => {
                let p3 = free_port();
                let shared = dir.path().join("shared");
                let c3 = node_config(dir.path(), &pg.url(), &shared, "n3", p3, 2000);
                n3 = Some(start_node(&c3, p3));
            }
            _ => cli(&["drain", "n2", "--undo"]),
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut in_phase = 0;
        loop {
            let held = shares(&pool).await;
            let total: usize = held.values().sum();
            let done = total == 256
                && match phase {
                    "drain" => held.get("n1") == Some(&256),
                    "join" => held.contains_key("n3") && !held.contains_key("n2"),
                    _ => ["n1", "n2", "n3"].iter().all(|n| held.contains_key(*n)),
                };
            if done && in_phase >= 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{phase} never finished: {held:?}"
            );
            posts += 1;
            in_phase += 1;
            let mut bases = vec![&n1.base, &n2.base];
            bases.extend(n3.as_ref().map(|n| &n.base));
            let base = bases[posts as usize % bases.len()];
            let url = post_3600w(base, 10 * posts, &b);
            let mut r = get(&script(), &url).await;
            if r.status == 503 {
                retried.push(posts);
                r.status = retrying(&url).await.0;
            }
            assert_eq!(r.status, 200, "post {posts} via {base}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("{posts} posts; those that met a move (503, retried): {retried:?}");
    // Every node answers b's kWh as the owner has it.
    let mut bases = vec![&n1.base, &n2.base];
    bases.extend(n3.as_ref().map(|n| &n.base));
    let mut kwh = Vec::new();
    for base in bases {
        kwh.push(feed_value(base, feed, &b).await);
    }

    // One node given the same posts: the reference.
    let single = Server::start();
    let (_, read, write) = register(&single, "solo", "password123").await;
    let solo = Account {
        name: "solo".into(),
        read,
        write,
    };
    let solo_feed = kwh_feed(&single.base, &solo).await;
    for i in 1..=posts {
        let r = retrying(&post_3600w(&single.base, 10 * i, &solo)).await;
        assert_eq!(r.0, 200);
    }
    let expected = feed_value(&single.base, solo_feed, &solo).await;
    // The first processed post only starts the count: every later one adds 3600 W for 10 s.
    let hours = (posts - 1) as f64 * 10.0 / 3600.0;
    assert!(
        (expected - 3.6 * hours).abs() < 1e-9,
        "{expected} kWh on one node for {posts} posts"
    );
    assert!(
        kwh.iter().all(|k| *k == expected),
        "kWh {kwh:?} through each node, {expected} on one node"
    );
    stop_cleanly([n3.expect("n3"), n2, n1]);
}

/// What only an account's owner publishes, retained (Home Assistant discovery and the feeds'
/// last values), is published again by the node that takes the account over, where the
/// account's MQTT connections then land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_discovery_follows_an_account_to_its_new_owner() {
    let _one = ONE_CLUSTER.lock().await;
    let TwoNodes {
        pool,
        n1,
        n2,
        c1,
        b,
        pg: _pg,
        dir: _dir,
        ..
    } = two_nodes().await;
    // Set up through n1; n2 (b's owner) does it.
    let (_, body) = retrying(&format!(
        "{}/feed/create.json?name=import&engine=5&unit=kWh&options=%7B%22interval%22%3A10%7D&apikey={}",
        n1.base, b.write
    ))
    .await;
    let feed = serde_json::from_str::<serde_json::Value>(&body).expect("json")["feedid"]
        .as_i64()
        .expect(&body);
    let (_, body) = retrying(&format!(
        "{}/feed/insert.json?id={feed}&time={T}&value=12.5&apikey={}",
        n1.base, b.write
    ))
    .await;
    assert!(!body.contains("false"), "{body}");
    let (_, body) = retrying(&format!(
        "{}/ynni/homeassistant.json?enabled=1&apikey={}",
        n1.base, b.write
    ))
    .await;
    assert!(body.contains("true"), "{body}");
    let (_, uuid) = retrying(&format!("{}/user/getuuid.json?apikey={}", n1.base, b.read)).await;
    let uuid: serde_json::Value = serde_json::from_str(&uuid).expect("json");
    let uuid = uuid["message"].as_str().expect("uuid").to_string();

    // b moves to n1, whose broker never held b's retained messages.
    let (status, out, err) = crate::harness::run_cli(
        &[
            "cluster",
            "drain",
            "n2",
            "--config",
            c1.to_str().expect("path"),
        ],
        &[],
        None,
    );
    assert!(status.success(), "{out}{err}");
    owned_by(&pool, "n1", &n1, &b.read).await;

    let (ha, mut ev) = mqtt_client(&n1, "home-assistant", &b).await;
    subscribed(&ha, &mut ev, "#").await;
    let config = format!("homeassistant/sensor/ynni_{uuid}_{feed}/config ");
    let value = format!("ynni/feed/{feed} ");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let has = |got: &[String], prefix: &str, text: &str| {
        got.iter()
            .any(|m| m.starts_with(prefix) && m.contains(text))
    };
    while !(has(&got, &config, "kWh") && has(&got, &value, "\"value\":12.5")) {
        assert!(
            Instant::now() < deadline,
            "retained on the new owner: {got:?}"
        );
        got.extend(received(&mut ev, Duration::from_millis(500)).await);
    }
    stop_cleanly([n2, n1]);
}

/// The authorization sweep of one node (every action, every credential, bob against alice's
/// objects) holds on two nodes, with alice and bob on different nodes and bob's requests sent
/// through the node that does not serve him.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_sweep_holds_across_nodes() {
    let _one = ONE_CLUSTER.lock().await;
    let TwoNodes {
        pool,
        n1,
        n2,
        pg: _pg,
        dir: _dir,
        ..
    } = two_nodes().await;
    let owners = settled(&pool, &["n1", "n2"]).await;
    let owner_of = |id: i64| owners[&(ynni_core::vshard::of(id, 256) as u16)].clone();
    // The sweep counts any 5xx as a failure: it starts once both nodes serve what they hold
    // and know who holds the rest (the owner map is read once a round, a third of a lease).
    for node in [&n1, &n2] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&script(), &node.url("/ready")).await.status != 200 {
            assert!(Instant::now() < deadline, "{} never ready", node.base);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (alice, bob, carol) = crate::authz::setup_apart(&n1, &owner_of).await;
    let entry = if owner_of(bob.id) == "n1" { &n2 } else { &n1 };
    let failures = crate::authz::sweep(entry, &alice, &bob, &carol).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    stop_cleanly([n2, n1]);
}

/// A regenerated write key is refused at once by the node that changed it and, through the
/// catalog's change notices, by every other node within a second; the new key works on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regenerated_key_is_refused_through_every_node_within_a_second() {
    let _one = ONE_CLUSTER.lock().await;
    let TwoNodes {
        n1,
        n2,
        b,
        pg: _pg,
        dir: _dir,
        ..
    } = two_nodes().await;
    let post = |base: &str, key: &str| {
        format!("{base}/input/post?node=k&fulljson=%7B%22p%22%3A1%7D&apikey={key}")
    };
    // Both nodes have the key in their caches.
    for node in [&n1, &n2] {
        assert_eq!(retrying(&post(&node.base, &b.write)).await.0, 200);
    }
    // Changed on n2, b's owner, in a login session (an apikey may not change keys).
    let session = crate::harness::browser();
    let r = crate::harness::post_form(
        &session,
        &n2.url("/user/login.json"),
        &[("username", b.name.as_str()), ("password", "password123")],
    )
    .await;
    assert!(r.body.contains("true"), "{}", r.body);
    let r = get(&session, &n2.url("/user/newapikeywrite.json")).await;
    let changed = Instant::now();
    let body = r.body;
    let reply: serde_json::Value = serde_json::from_str(&body).expect(&body);
    let new_key = reply["write_apikey"].as_str().expect(&body).to_string();
    let r = get(&script(), &post(&n2.base, &b.write)).await;
    assert_eq!(
        r.status, 401,
        "at once on the node that changed it: {}",
        r.body
    );
    let refused_on_n1 = loop {
        let r = get(&script(), &post(&n1.base, &b.write)).await;
        if r.status == 401 {
            break changed.elapsed();
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "n1 still takes the old key: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("old key refused on the other node after {refused_on_n1:?}");
    for node in [&n1, &n2] {
        assert_eq!(retrying(&post(&node.base, &new_key)).await.0, 200);
    }
    stop_cleanly([n2, n1]);
}

/// With `cluster.redis`, login attempts and registrations count once for all nodes: a client
/// alternating between two nodes gets the limit, not twice it. A Redis that cannot be reached stops
/// start-up naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limits_hold_across_nodes_with_redis() {
    let _one = ONE_CLUSTER.lock().await;
    let pg = Postgres::start();
    let redis = crate::redis::Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).expect("shared dir");
    let with_redis = |node: &str, port: u16, url: &str| {
        let cfg = node_config(dir.path(), &pg.url(), &shared, node, port, 2000);
        let mut text = std::fs::read_to_string(&cfg).expect("config");
        text.push_str(&format!("redis = \"{url}\"\n"));
        std::fs::write(&cfg, text).expect("config");
        cfg
    };

    let bad = with_redis("n3", free_port(), "redis://127.0.0.1:1/");
    let (status, _, err) = crate::harness::run_cli(
        &["serve", "--config", bad.to_str().expect("path")],
        &[],
        Some(dir.path()),
    );
    assert!(!status.success());
    assert!(err.contains("cluster.redis"), "{err}");

    let (p1, p2) = (free_port(), free_port());
    let start = |cfg: &Path, port: u16| {
        Server::builder()
            .http_listen(&format!("127.0.0.1:{port}"))
            .env("LIMITS__LOGIN_ATTEMPTS", "3")
            .env("LIMITS__REGISTER_ATTEMPTS", "2")
            .arg("--config")
            .arg(cfg.to_str().expect("utf-8 path"))
            .start()
    };
    let n1 = start(&with_redis("n1", p1, &redis.url()), p1);
    let n2 = start(&with_redis("n2", p2, &redis.url()), p2);
    let pool = ynni_cluster::db::connect(&pg.url(), Duration::from_secs(10))
        .await
        .expect("connect");
    settled(&pool, &["n1", "n2"]).await;
    register(&n1, "victim", "password123").await;
    // Registrations from one address count once for all nodes too: the limit is two.
    register(&n2, "second", "password123").await;
    let r = crate::harness::post_form(
        &script(),
        &n1.url("/user/register.json"),
        &[
            ("username", "third"),
            ("password", "password123"),
            ("email", "third@example.com"),
        ],
    )
    .await;
    assert!(r.body.contains("Too many attempts"), "{}", r.body);
    let login = |base: String, password: &'static str| async move {
        crate::harness::post_form(
            &script(),
            &format!("{base}/user/login.json"),
            &[("username", "victim"), ("password", password)],
        )
        .await
        .body
    };
    // The victim's own network logs in once (the cluster remembers it for the account).
    let home = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .cookie_store(true)
        .build()
        .expect("client");
    let from_home = |base: String| {
        let home = home.clone();
        async move {
            crate::harness::post_form(
                &home,
                &format!("{base}/user/login.json"),
                &[("username", "victim"), ("password", "password123")],
            )
            .await
            .body
        }
    };
    let body = from_home(n1.base.clone()).await;
    assert!(body.contains("\"success\":true"), "{body}");
    // Three wrong passwords, alternating nodes: each node alone has seen at most two.
    for (i, base) in [&n1.base, &n2.base, &n1.base].into_iter().enumerate() {
        let body = login(base.clone(), "wrong-guess").await;
        assert!(body.contains("Incorrect"), "attempt {i}: {body}");
    }
    // The fourth is refused on either node, even with the right password.
    let body = login(n2.base.clone(), "wrong-guess").await;
    assert!(body.contains("Too many attempts"), "{body}");
    let body = login(n1.base.clone(), "password123").await;
    assert!(body.contains("Too many attempts"), "{body}");
    // The guesses did not lock the owner out of the network they log in from, on any node.
    let body = from_home(n2.base.clone()).await;
    assert!(!body.contains("Too many attempts"), "{body}");
    let (status, log) = n2.stop();
    assert!(status.success(), "{log}");
    let (status, log) = n1.stop();
    assert!(status.success(), "{log}");
}

/// A node paused long enough for another process to start with its id stops when it resumes:
/// it can act for nothing of the cluster's, and would otherwise answer 503 for the new
/// process's vshards for ever.
#[tokio::test]
async fn a_node_whose_id_another_process_took_stops_when_it_resumes() {
    let _one = ONE_CLUSTER.lock().await;
    let TwoNodes {
        pool,
        n1: _n1,
        n2,
        pg,
        dir,
        ..
    } = two_nodes().await;
    signal(&n2, "-STOP");
    // Its heartbeat goes stale (a lease of 2 s), so a new process may take the id.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let shared = dir.path().join("shared");
    let p3 = free_port();
    let again = node_config(dir.path(), &pg.url(), &shared, "n2", p3, 2000);
    let _n2_new = start_node(&again, p3);
    settled(&pool, &["n1", "n2"]).await;
    signal(&n2, "-CONT");
    let pid = n2.pid();
    let exited = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !exited(pid) {
        assert!(
            Instant::now() < deadline,
            "the replaced node kept running:\n{}",
            n2.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = n2.log();
    assert!(log.contains("another process took this node's id"), "{log}");
}

/// A node whose shared directory stops taking writes (a hung or failing mount) could renew
/// its leases through PostgreSQL for as long as it lasts while its users wait: it stops
/// heartbeating and renewing, the other node takes its vshards and serves its users, and it
/// takes its share again once the directory answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_shared_directory_stops_answering_gives_its_vshards_up() {
    let _one = ONE_CLUSTER.lock().await;
    let TwoNodes {
        pg: _pg,
        pool,
        n1,
        n2,
        dir,
        b,
        ..
    } = two_nodes().await;
    // n2's probe file taken by a directory: every write of it fails from now on.
    let probe = dir.path().join("shared").join(".ynni-alive-n2");
    let failing = Instant::now();
    loop {
        let _ = std::fs::remove_file(&probe);
        if std::fs::create_dir(&probe).is_ok() {
            break;
        }
    }
    owned_by(&pool, "n1", &n1, &b.read).await;
    eprintln!(
        "n2's vshards owned by n1 {:.1} s after its directory stopped answering (lease 2 s)",
        failing.elapsed().as_secs_f64()
    );
    // b's writes through either node are answered by n1 (after a 503 or two while a node
    // still learns the new owner: clients retry those).
    for server in [&n1, &n2] {
        let url = server.url(&format!(
            "/input/post?node=house&fulljson=%7B%22power%22%3A7%7D&apikey={}",
            b.write
        ));
        let deadline = Instant::now() + Duration::from_secs(30);
        let r = loop {
            let r = get(&script(), &url).await;
            if r.status != 503 || Instant::now() > deadline {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.headers["x-ynni-node"], "n1", "{}", r.body);
    }
    let log = n2.log();
    assert!(
        log.contains("the shared directory has not taken a write"),
        "{log}"
    );
    // The directory answers again: n2 takes its share back.
    std::fs::remove_dir(&probe).expect("rmdir");
    settled(&pool, &["n1", "n2"]).await;
    stop_cleanly([n2, n1]);
}
