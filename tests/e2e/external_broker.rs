//! External broker mode against a real Mosquitto (Debian's `mosquitto`), started here.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

struct Mosquitto {
    child: Child,
    port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    crate::harness::free_port()
}

fn mosquitto() -> Mosquitto {
    let port = free_port();
    start_mosquitto(&["-p", &port.to_string()], port)
}

fn start_mosquitto(args: &[&str], port: u16) -> Mosquitto {
    let child = Command::new("mosquitto")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (Debian package `mosquitto`) must be installed");
    // Wait until it accepts connections.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Mosquitto { child, port }
}

/// Publishes `emon/house/power` = `value` on the external broker (again every second: ynni
/// may not have subscribed yet, and the message is not retained) until ynni has stored it.
async fn publish_until_stored(server: &Server, read: &str, pub_args: &[&str], value: i64) {
    let c = script();
    let mut got = json!(null);
    for attempt in 0..100 {
        if attempt % 10 == 0 {
            let ok = Command::new("mosquitto_pub")
                .args(pub_args)
                .args(["-t", "emon/house/power", "-m", &value.to_string()])
                .output()
                .expect("mosquitto_pub")
                .status
                .success();
            assert!(ok);
        }
        got = get(
            &c,
            &server.url(&format!("/input/get/house/power?apikey={read}")),
        )
        .await
        .json();
        if got.get("value") == Some(&json!(value)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got["value"], json!(value), "{}", server.log());
}

#[tokio::test]
async fn messages_on_an_external_mosquitto_are_stored_for_the_configured_account() {
    let broker = mosquitto();
    let server = Server::builder()
        .env("MQTT__EXTERNAL_HOST", "127.0.0.1")
        .env("MQTT__EXTERNAL_PORT", &broker.port.to_string())
        .env("MQTT__EXTERNAL_USER", "alice")
        .start();
    let (_, read, _) = register(&server, "alice", "secret1").await;
    // emonhub publishing to the house's existing broker, as it always has.
    let port = broker.port.to_string();
    publish_until_stored(&server, &read, &["-p", &port], 1234).await;
}

#[tokio::test]
async fn the_external_broker_can_be_reached_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let (status, out, err) = run_cli(
        &[
            "tls",
            "selfsigned",
            "--data-dir",
            certs.to_str().expect("path"),
        ],
        &[],
        None,
    );
    assert!(status.success(), "{out}{err}");
    let paths: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let (cert, key) = (
        paths["cert"].as_str().expect("cert").to_string(),
        paths["key"].as_str().expect("key").to_string(),
    );
    // Mosquitto started as root reads its files as the `mosquitto` user.
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&cert, &key] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        std::fs::set_permissions(&certs, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(certs.join("tls"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\nallow_anonymous true\n"
        ),
    )
    .expect("config");
    let broker = start_mosquitto(&["-c", conf.to_str().expect("path")], port);
    let server = Server::builder()
        .env("MQTT__EXTERNAL_HOST", "localhost")
        .env("MQTT__EXTERNAL_PORT", &broker.port.to_string())
        .env("MQTT__EXTERNAL_USER", "alice")
        .env("MQTT__EXTERNAL_TLS", "true")
        .env("MQTT__EXTERNAL_CA", &cert)
        .start();
    let (_, read, _) = register(&server, "alice", "secret1").await;
    let port = broker.port.to_string();
    publish_until_stored(
        &server,
        &read,
        &["-h", "localhost", "-p", &port, "--cafile", &cert],
        777,
    )
    .await;
}
