//! `ynni serve` and `ynni cluster status` with a `[cluster]` section: bad settings stop
//! start-up with a message naming the setting, and the status report reads a real Postgres.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::BIN;
use crate::postgres::Postgres;

fn config(dir: &Path, postgres: &str, shared: &Path, node: &str) -> std::path::PathBuf {
    let text = format!(
        "data_dir = \"{data}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[mqtt]\nlisten = \"127.0.0.1:0\"\n\
         [cluster]\npostgres = \"{postgres}\"\nshared_dir = \"{shared}\"\nnode_id = \"{node}\"\n\
         advertise = \"127.0.0.1:9100\"\nsecret = \"0123456789abcdef0123\"\nlease_ms = 1000\n",
        data = dir.join("data").display(),
        shared = shared.display(),
    );
    let path = dir.join(format!("{node}.toml"));
    std::fs::write(&path, text).expect("config");
    path
}

fn ynni(args: &[&str], config: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run ynni")
}

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Keeps `m`'s heartbeat going (a running node, as the others see it) until aborted.
fn keep_beating(m: ynni_cluster::registry::Membership) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while m.heartbeat().await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[test]
fn bad_cluster_settings_stop_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The shared directory does not exist.
    let cfg = config(
        dir.path(),
        "postgres://ynni@127.0.0.1:1/ynni",
        &dir.path().join("not-mounted"),
        "n1",
    );
    let o = ynni(&["serve"], &cfg);
    assert!(!o.status.success());
    assert!(said(&o).contains("cluster.shared_dir"), "{}", said(&o));
    // Postgres cannot be reached (nothing listens on port 1).
    let cfg = config(
        dir.path(),
        "postgres://ynni@127.0.0.1:1/ynni",
        dir.path(),
        "n1",
    );
    let o = ynni(&["serve"], &cfg);
    assert!(!o.status.success());
    assert!(said(&o).contains("cluster.postgres"), "{}", said(&o));
    // A node id that cannot be.
    let bad = std::fs::read_to_string(&cfg)
        .expect("read")
        .replace("node_id = \"n1\"", "node_id = \"n/1\"");
    std::fs::write(&cfg, bad).expect("write");
    let o = ynni(&["serve"], &cfg);
    assert!(!o.status.success());
    assert!(said(&o).contains("cluster.node_id"), "{}", said(&o));
}

#[tokio::test]
async fn cluster_status_and_a_duplicate_node_id_against_postgres() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &pg.url(), dir.path(), "n1");

    // A fresh cluster: no nodes, every vshard free.
    let o = ynni(&["cluster", "status"], &cfg);
    assert!(o.status.success(), "{}", said(&o));
    let report = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(report.contains("nodes: 0"), "{report}");
    assert!(
        report.contains("vshards without a live lease: 256 (0-255)"),
        "{report}"
    );

    // A running node holds "n1": a second process with that id is refused, naming the setting.
    let pool = ynni_cluster::db::connect(&pg.url(), Duration::from_secs(10))
        .await
        .expect("connect");
    let lease = Duration::from_secs(1);
    let n1 = ynni_cluster::registry::Membership::join(pool, "n1", "127.0.0.1:9001", lease)
        .await
        .expect("join");
    let beating = keep_beating(n1.clone());
    let o = tokio::task::spawn_blocking(move || ynni(&["serve"], &cfg))
        .await
        .expect("serve");
    assert!(!o.status.success());
    assert!(
        said(&o).contains("`cluster.node_id` \"n1\" is in use"),
        "{}",
        said(&o)
    );
    let cfg = config(dir.path(), &pg.url(), dir.path(), "n1");
    let o = ynni(&["cluster", "status"], &cfg);
    let report = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(report.contains("nodes: 1"), "{report}");
    assert!(report.contains("n1 at 127.0.0.1:9001: alive"), "{report}");
    beating.abort();
}

/// A PostgreSQL, a temporary directory with an empty `shared` directory in it, and a pool on
/// the cluster's database (its tables made).
async fn fresh_cluster() -> (
    Postgres,
    tempfile::TempDir,
    std::path::PathBuf,
    sqlx::PgPool,
) {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    let pool = ynni_cluster::db::connect(&pg.url(), Duration::from_secs(10))
        .await
        .expect("connect");
    (pg, dir, shared, pool)
}

/// The running nodes' lease decides whether they are running: a node with a shorter one,
/// which would see them dead between their heartbeats (a third of their lease apart), is
/// refused instead of taking the cluster's settings over, whatever its id.
#[tokio::test]
async fn a_node_with_a_shorter_lease_still_sees_the_running_nodes() {
    let (_pg, _dir, shared, pool) = fresh_cluster().await;
    let secret = "0123456789abcdef0123";
    let lease = Duration::from_secs(10);
    ynni_cluster::identity::check(&pool, &shared, secret, lease, "n1")
        .await
        .expect("identity");
    let n1 = ynni_cluster::registry::Membership::join(pool.clone(), "n1", "127.0.0.1:9001", lease)
        .await
        .expect("join");
    // n1 last beat 2 s ago: within its lease, past the newcomer's.
    sqlx::query("UPDATE cluster_nodes SET heartbeat = clock_timestamp() - interval '2 seconds'")
        .execute(&pool)
        .await
        .expect("age");
    for id in ["n2", "n1"] {
        let e = ynni_cluster::identity::check(&pool, &shared, secret, Duration::from_secs(1), id)
            .await
            .expect_err("refused");
        assert!(e.to_string().contains("cluster.lease_ms"), "{e}");
    }
    let kept: i64 = sqlx::query_scalar("SELECT lease_ms FROM cluster_meta")
        .fetch_one(&pool)
        .await
        .expect("meta");
    assert_eq!(kept, 10_000);
    drop(n1);
}

/// A cluster from before identities (it has served, and has no identity yet): its first
/// upgraded node marks its shared directory only if the cluster's files are there, not an
/// empty mount point, and a start refused that way leaves no identity behind, so the next
/// start, on the right directory, makes it.
#[tokio::test]
async fn an_upgraded_cluster_marks_only_a_directory_with_its_files() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = ynni_cluster::db::connect(&pg.url(), Duration::from_secs(10))
        .await
        .expect("connect");
    sqlx::query(
        "INSERT INTO vshard_leases (vshard, owner, epoch, expires) \
         VALUES (0, 'n1', 3, clock_timestamp()) \
         ON CONFLICT (vshard) DO UPDATE SET owner = 'n1', epoch = 3",
    )
    .execute(&pool)
    .await
    .expect("lease");
    let secret = "0123456789abcdef0123";
    let lease = Duration::from_secs(1);
    let empty = dir.path().join("empty-mount");
    std::fs::create_dir(&empty).expect("mkdir");
    let e = ynni_cluster::identity::check(&pool, &empty, secret, lease, "n1")
        .await
        .expect_err("an empty directory is not the cluster's");
    assert!(e.to_string().contains("cluster.shared_dir"), "{e}");
    assert!(!empty.join(ynni_cluster::identity::MARKER).exists());
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(shared.join("vshards")).expect("mkdir");
    let id = ynni_cluster::identity::check(&pool, &shared, secret, lease, "n1")
        .await
        .expect("the cluster's directory");
    assert_eq!(
        std::fs::read_to_string(shared.join(ynni_cluster::identity::MARKER)).expect("marker"),
        id
    );
}

/// A node whose shared directory is not the others' (an empty mount point) or whose secret
/// differs from the running nodes' stops before it registers, naming the setting.
#[tokio::test]
async fn a_node_on_another_directory_or_with_another_secret_is_refused() {
    let (pg, dir, shared, pool) = fresh_cluster().await;
    // n1 made the cluster on `shared` and is running.
    let lease = Duration::from_secs(1);
    let id = ynni_cluster::identity::check(&pool, &shared, "0123456789abcdef0123", lease, "n1")
        .await
        .expect("identity");
    let marker =
        std::fs::read_to_string(shared.join(ynni_cluster::identity::MARKER)).expect("marker");
    assert_eq!(marker, id);
    // A cluster that never served gets a lost marker written again (its maker stopped
    // before writing it).
    std::fs::remove_file(shared.join(ynni_cluster::identity::MARKER)).expect("rm");
    let again = ynni_cluster::identity::check(&pool, &shared, "0123456789abcdef0123", lease, "n1")
        .await
        .expect("identity");
    assert_eq!(again, id);
    assert!(shared.join(ynni_cluster::identity::MARKER).exists());
    // An empty marker (an older build's write cut short by a crash) counts as missing.
    std::fs::write(shared.join(ynni_cluster::identity::MARKER), "").expect("empty");
    let again = ynni_cluster::identity::check(&pool, &shared, "0123456789abcdef0123", lease, "n1")
        .await
        .expect("identity");
    assert_eq!(again, id);
    assert_eq!(
        std::fs::read_to_string(shared.join(ynni_cluster::identity::MARKER)).expect("marker"),
        id
    );
    let left: Vec<_> = std::fs::read_dir(&shared)
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    // ... and has served: a vshard was taken.
    sqlx::query(
        "INSERT INTO vshard_leases (vshard, owner, epoch, expires) \
         VALUES (0, 'n1', 1, clock_timestamp() + interval '1 minute') \
         ON CONFLICT (vshard) DO UPDATE SET owner = 'n1', epoch = 1",
    )
    .execute(&pool)
    .await
    .expect("lease");
    let n1 = ynni_cluster::registry::Membership::join(pool, "n1", "127.0.0.1:9001", lease)
        .await
        .expect("join");
    let beating = keep_beating(n1.clone());
    // n2 on an empty directory.
    let empty = dir.path().join("empty-mount");
    std::fs::create_dir(&empty).expect("mkdir");
    let cfg = config(dir.path(), &pg.url(), &empty, "n2");
    let o = tokio::task::spawn_blocking(move || ynni(&["serve"], &cfg))
        .await
        .expect("serve");
    assert!(!o.status.success());
    assert!(said(&o).contains("cluster.shared_dir"), "{}", said(&o));
    assert!(!empty.join(ynni_cluster::identity::MARKER).exists());
    // n2 on the right directory with another secret.
    let cfg = config(dir.path(), &pg.url(), &shared, "n2");
    let other = std::fs::read_to_string(&cfg)
        .expect("read")
        .replace("0123456789abcdef0123", "another-secret-of-20c");
    std::fs::write(&cfg, other).expect("write");
    let o = tokio::task::spawn_blocking(move || ynni(&["serve"], &cfg))
        .await
        .expect("serve");
    assert!(!o.status.success());
    assert!(said(&o).contains("cluster.secret"), "{}", said(&o));
    // n2 with everything right but a setting that fails start-up later (an MQTT WebSocket
    // address that is none): it stops without having registered, so the others never count
    // it live and hand it vshards.
    let cfg = config(dir.path(), &pg.url(), &shared, "n2");
    let bad = std::fs::read_to_string(&cfg).expect("read").replace(
        "[mqtt]\nlisten = \"127.0.0.1:0\"\n",
        "[mqtt]\nlisten = \"127.0.0.1:0\"\nws_listen = \"nowhere\"\n",
    );
    assert!(bad.contains("nowhere"), "{bad}");
    std::fs::write(&cfg, bad).expect("write");
    let run = cfg.clone();
    let o = tokio::task::spawn_blocking(move || ynni(&["serve"], &run))
        .await
        .expect("serve");
    assert!(!o.status.success());
    assert!(said(&o).contains("mqtt.ws_listen"), "{}", said(&o));
    let o = ynni(&["cluster", "status"], &cfg);
    let report = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(report.contains("nodes: 1"), "{report}");
    assert!(!report.contains("n2"), "{report}");
    beating.abort();
}

#[tokio::test]
async fn user_add_and_list_use_the_clusters_postgres() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let n1 = config(dir.path(), &pg.url(), dir.path(), "n1");
    let n2 = config(dir.path(), &pg.url(), dir.path(), "n2");
    let add = |cfg: &Path, name: &str| {
        Command::new(BIN)
            .args(["user", "add", "--username", name, "--password", "secret12"])
            .args(["--email", &format!("{name}@example.com"), "--config"])
            .arg(cfg)
            .output()
            .expect("run ynni")
    };
    // Accounts added through either node's configuration land in the one catalog, with ids
    // unique across the cluster; the local data directory is not used for them.
    let o = add(&n1, "alice");
    assert!(o.status.success(), "{}", said(&o));
    let alice: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let o = add(&n2, "bob");
    assert!(o.status.success(), "{}", said(&o));
    let bob: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_ne!(alice["userid"], bob["userid"]);
    assert!(alice["userid"].is_i64(), "{alice}");
    let o = add(&n2, "ALICE");
    assert!(!o.status.success(), "a name is taken whatever its case");
    let o = ynni(&["user", "list"], &n1);
    assert!(o.status.success(), "{}", said(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(!dir.path().join("data").join("catalog.sqlite").exists());
}

#[tokio::test]
async fn drain_marks_a_registered_node() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &pg.url(), dir.path(), "n1");
    let o = ynni(&["cluster", "drain", "nosuch"], &cfg);
    assert!(!o.status.success());
    assert!(said(&o).contains("no node \"nosuch\""), "{}", said(&o));
    let pool = ynni_cluster::db::connect(&pg.url(), Duration::from_secs(10))
        .await
        .expect("connect");
    let lease = Duration::from_secs(30);
    let n1 = ynni_cluster::registry::Membership::join(pool.clone(), "n1", "127.0.0.1:9001", lease)
        .await
        .expect("join");
    // The only live node is not drained: nobody would take its vshards.
    let o = ynni(&["cluster", "drain", "n1"], &cfg);
    assert!(!o.status.success());
    assert!(said(&o).contains("last live node"), "{}", said(&o));
    let _n2 = ynni_cluster::registry::Membership::join(pool, "n2", "127.0.0.1:9002", lease)
        .await
        .expect("join");
    let o = ynni(&["cluster", "drain", "n1"], &cfg);
    assert!(o.status.success(), "{}", said(&o));
    assert!(
        n1.live()
            .await
            .expect("live")
            .iter()
            .all(|n| n.node_id != "n1"),
        "a draining node gets no vshards"
    );
    let report = said(&ynni(&["cluster", "status", "--vshards"], &cfg));
    assert!(
        report.contains("n1 at 127.0.0.1:9001: draining"),
        "{report}"
    );
    assert!(
        report.contains("vshard owner epoch expires_in_s\n0 - 0 "),
        "{report}"
    );
    let o = ynni(&["cluster", "drain", "n1", "--undo"], &cfg);
    assert!(o.status.success(), "{}", said(&o));
    assert_eq!(n1.live().await.expect("live").len(), 2);
}

/// The CONNACK return code a broker at `addr` answers an MQTT 3.1.1 CONNECT with `user` and
/// `pass`; `None` when it closes without one.
async fn connack_code(addr: std::net::SocketAddr, user: &str, pass: &str) -> Option<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let field = |s: &str| {
        let mut f = u16::try_from(s.len())
            .expect("short")
            .to_be_bytes()
            .to_vec();
        f.extend_from_slice(s.as_bytes());
        f
    };
    // Protocol name and level, flags (username, password, clean session), keep-alive 60 s.
    let mut body = field("MQTT");
    body.extend_from_slice(&[4, 0xC2, 0, 60]);
    for s in ["probe", user, pass] {
        body.extend(field(s));
    }
    // One byte of remaining length holds up to 127.
    let len = u8::try_from(body.len())
        .ok()
        .filter(|&n| n < 128)
        .expect("a short CONNECT");
    let mut packet = vec![0x10, len];
    packet.extend(body);
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(&packet).await.ok()?;
    let mut ack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(15), s.read_exact(&mut ack))
        .await
        .ok()?
        .ok()?;
    (ack[..3] == [0x20, 2, 0]).then_some(ack[3])
}

/// A device's login that the catalog cannot answer (PostgreSQL gone) is refused as "server
/// unavailable", which clients retry as after a restart, not as bad credentials.
#[tokio::test]
async fn an_mqtt_login_the_catalog_cannot_answer_is_refused_as_unavailable() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).expect("shared dir");
    let port = crate::harness::free_port();
    let cfg = crate::cluster_serving::node_config(dir.path(), &pg.url(), &shared, "n1", port, 2000);
    let node = crate::cluster_serving::start_node(&cfg, port);
    let mqtt = node.mqtt.expect("the broker's address");
    let key = "0123456789abcdef0123456789abcdef";
    // Asked with PostgreSQL up: no such account, "not authorised" (5).
    assert_eq!(connack_code(mqtt, "nobody", key).await, Some(5));
    drop(pg);
    assert_eq!(connack_code(mqtt, "nobody", key).await, Some(3));
}
