//! The posting examples in `firmware-examples/` used against the real server, as a user would
//! run them: the Python poster, the curl script and the mosquitto_pub script.

use std::path::Path;
use std::process::Command;

use crate::harness::{Server, input_list_soon, register};

fn example(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("firmware-examples")
        .join(path)
}

fn ok(out: std::process::Output) {
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_posting_examples_reach_the_server() {
    let server = Server::start();
    let (_, _, key) = register(&server, "examples", "password1").await;
    let host = server.base.trim_start_matches("http://").to_string();
    let mqtt = server.mqtt.expect("mqtt address");

    ok(Command::new("python3")
        .arg(example("python/ynni_post.py"))
        .args(["--base-url", &server.base, "--apikey", &key, "--node", "py"])
        .args(["power1=230.5", "temp=21"])
        .output()
        .expect("python3"));
    ok(Command::new("bash")
        .arg(example("shell/post-curl.sh"))
        .args(["power1=99"])
        .env("HOST", &host)
        .env("APIKEY", &key)
        .env("NODE", "curl")
        .output()
        .expect("bash"));
    ok(Command::new("bash")
        .arg(example("shell/post-mosquitto.sh"))
        .args(["--json", "power1=7"])
        .env("HOST", mqtt.ip().to_string())
        .env("PORT", mqtt.port().to_string())
        .env("USERNAME", "examples")
        .env("APIKEY", &key)
        .env("NODE", "mosq")
        .output()
        .expect("bash"));

    let list = input_list_soon(&server, &key, |l| {
        l.as_array().is_some_and(|a| a.len() >= 4)
    })
    .await;
    let list = list.as_array().cloned().unwrap_or_default();
    let value = |node: &str, name: &str| {
        list.iter()
            .find(|i| i["nodeid"] == node && i["name"] == name)
            .map(|i| i["value"].clone())
            .unwrap_or_else(|| panic!("{node}:{name} missing from {list:?}"))
    };
    assert_eq!(value("py", "power1"), 230.5);
    assert_eq!(value("py", "temp"), 21);
    assert_eq!(value("curl", "power1"), 99);
    assert_eq!(value("mosq", "power1"), 7);

    // A wrong key is reported as such (exit status 3), not retried for ever.
    let refused = Command::new("python3")
        .arg(example("python/ynni_post.py"))
        .args([
            "--base-url",
            &server.base,
            "--apikey",
            "0123456789abcdef0123456789abcdef",
        ])
        .args(["--node", "py", "power1=1"])
        .output()
        .expect("python3");
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
}

#[test]
fn the_examples_pass_their_checks() {
    ok(Command::new("bash")
        .arg(example("check.sh"))
        .output()
        .expect("bash"));
}
