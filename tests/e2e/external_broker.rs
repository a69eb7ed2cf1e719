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

fn mosquitto() -> Mosquitto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("mosquitto")
        .args(["-p", &port.to_string()])
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

#[tokio::test]
async fn messages_on_an_external_mosquitto_are_stored_for_the_configured_account() {
    let broker = mosquitto();
    let server = Server::builder()
        .env("MQTT__EXTERNAL_HOST", "127.0.0.1")
        .env("MQTT__EXTERNAL_PORT", &broker.port.to_string())
        .env("MQTT__EXTERNAL_USER", "alice")
        .start();
    let (_, read, _) = register(&server, "alice", "secret1").await;
    let c = script();
    let mut value = json!(null);
    // emonhub publishing to the house's existing broker, as it always has.
    for attempt in 0..100 {
        if attempt % 10 == 0 {
            let ok = Command::new("mosquitto_pub")
                .args([
                    "-p",
                    &broker.port.to_string(),
                    "-t",
                    "emon/house/power",
                    "-m",
                    "1234",
                ])
                .status()
                .expect("mosquitto_pub")
                .success();
            assert!(ok);
        }
        value = get(
            &c,
            &server.url(&format!("/input/get/house/power?apikey={read}")),
        )
        .await
        .json();
        if value.get("value") == Some(&json!(1234)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(value["value"], json!(1234), "{}", server.log());
}
