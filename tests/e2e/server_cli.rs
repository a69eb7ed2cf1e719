//! `ynni serve` start-up, configuration and shutdown, and the offline `ynni user` commands.

use std::net::TcpListener;

use serde_json::Value;

use crate::harness::*;

#[tokio::test]
async fn embedded_defaults_create_the_data_dir_in_the_working_directory() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let server = Server::builder().default_data_dir(cwd.path()).start();
    let log = server.log();
    assert!(log.contains("MQTT listening on 127.0.0.1:"), "{log}");
    assert!(cwd.path().join("ynni-data/catalog.sqlite").is_file());
    assert!(cwd.path().join("ynni-data/phpfina").is_dir());
    assert!(cwd.path().join("ynni-data/phptimeseries").is_dir());
    register(&server, "alice", "secret1").await;
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_data_survives_restart() {
    let keep = tempfile::tempdir().expect("tempdir");
    let data_dir = keep.path().join("data");
    let server = Server::builder().data_dir(&data_dir).start();
    let (id, read, write) = register(&server, "alice", "secret1").await;
    let (status, log) = server.stop();
    assert!(status.success(), "exit {status}\n{log}");
    assert!(
        log.contains("SIGTERM, shutting down") && log.contains("stopped"),
        "{log}"
    );

    let server = Server::builder().data_dir(&data_dir).start();
    let r = post_form(
        &script(),
        &server.url("/user/auth.json"),
        &[("username", "alice"), ("password", "secret1")],
    )
    .await;
    let v = r.json();
    assert_eq!(
        (
            v["userid"].as_i64(),
            v["apikey_read"].as_str(),
            v["apikey_write"].as_str()
        ),
        (Some(id), Some(read.as_str()), Some(write.as_str()))
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let server = Server::start();
    let dir = server.data_dir.to_str().expect("utf8").to_string();
    let (status, _, err) = run_cli(
        &["serve", "--data-dir", &dir, "--http-listen", "127.0.0.1:0"],
        &[],
        None,
    );
    assert!(!status.success());
    assert!(err.contains("in use by another ynni server"), "{err}");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    let (status, _, err) = run_cli(
        &[
            "serve",
            "--data-dir",
            data.to_str().expect("utf8"),
            "--http-listen",
            &addr,
        ],
        &[],
        None,
    );
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains(&format!("HTTP address {addr} is already in use")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    let data = data.to_str().expect("utf8");
    let file = dir.path().join("ynni.toml");

    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:0\"\nlistne = 1\n").expect("write");
    let (status, _, err) = run_cli(
        &[
            "serve",
            "--config",
            file.to_str().expect("utf8"),
            "--data-dir",
            data,
        ],
        &[],
        None,
    );
    assert!(!status.success());
    assert!(err.contains("listne"), "{err}");

    std::fs::write(&file, "[users]\nregistration = \"maybe\"\n").expect("write");
    let (status, _, err) = run_cli(
        &[
            "serve",
            "--config",
            file.to_str().expect("utf8"),
            "--data-dir",
            data,
        ],
        &[],
        None,
    );
    assert!(!status.success());
    assert!(err.contains("users.registration"), "{err}");

    let (status, _, err) = run_cli(
        &["serve", "--data-dir", data, "--http-listen", "127.0.0.1:0"],
        &[("YNNI_MQTT__LISTEN", "nowhere")],
        None,
    );
    assert!(!status.success());
    assert!(err.to_lowercase().contains("mqtt.listen"), "{err}");

    let (status, _, err) = run_cli(
        &["serve", "--data-dir", data, "--http-listen", "127.0.0.1:0"],
        &[("YNNI_LOG__LEVEL", "ynni=loud")],
        None,
    );
    assert!(!status.success());
    assert!(err.contains("log.level"), "{err}");

    let (status, _, err) = run_cli(&["serve", "--config", "/nonexistent/ynni.toml"], &[], None);
    assert!(!status.success());
    assert!(err.contains("/nonexistent/ynni.toml"), "{err}");
}

#[tokio::test]
async fn settings_file_env_and_flags_in_that_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ynni.toml");
    // The file closes registration; the environment opens it again.
    std::fs::write(
        &file,
        "[users]\nregistration = \"closed\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
    )
    .expect("write");
    let server = Server::builder()
        .arg("--config")
        .arg(file.to_str().expect("utf8"))
        .env("USERS__REGISTRATION", "open")
        .start();
    // The --http-listen flag (port 0) beat the file's port 1, or the server could not listen.
    register(&server, "alice", "secret1").await;
    register(&server, "bob", "secret1").await;
}

#[test]
fn user_add_and_list_work_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    let data = data.to_str().expect("utf8");
    let add = |name: &str, extra: &[&str]| {
        let email = format!("{name}@example.com");
        let mut args = vec![
            "user",
            "add",
            "--data-dir",
            data,
            "--username",
            name,
            "--password",
            "secret1",
            "--email",
            &email,
        ];
        args.extend_from_slice(extra);
        run_cli(&args, &[], None)
    };
    let (status, out, err) = add("alice", &[]);
    assert!(status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["userid"], 1);
    assert_eq!(v["admin"], true, "first account is admin");
    assert_eq!(v["apikey_write"].as_str().map(str::len), Some(32));

    let (status, out, _) = add("bob", &["--admin"]);
    assert!(status.success());
    let bob: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(bob["admin"], true);
    let (status, out, _) = add("carol", &[]);
    assert!(status.success());
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("json")["admin"],
        false
    );

    let (status, _, err) = add("alice", &[]);
    assert!(!status.success());
    assert!(err.contains("Username already exists"), "{err}");
    let (status, _, err) = add("x!", &[]);
    assert!(!status.success());
    assert!(
        err.contains("Username must only contain a-z and 0-9 characters"),
        "{err}"
    );
    let (status, _, err) = add("dave", &["--timezone", "Mars/Olympus"]);
    assert!(!status.success());
    assert!(err.contains("Mars/Olympus"), "{err}");

    let (status, out, _) = run_cli(
        &["user", "list", "--data-dir", data, "--with-keys"],
        &[],
        None,
    );
    assert!(status.success());
    let list: Value = serde_json::from_str(&out).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert_eq!(list[1]["apikey_write"], bob["apikey_write"]);
}

#[tokio::test]
async fn cli_accounts_work_on_a_running_server() {
    let server = Server::start();
    let data = server.data_dir.to_str().expect("utf8").to_string();
    let (status, out, err) = run_cli(
        &[
            "user",
            "add",
            "--data-dir",
            &data,
            "--username",
            "alice",
            "--password",
            "secret1",
            "--email",
            "a@example.com",
        ],
        &[],
        None,
    );
    assert!(status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    let read = v["apikey_read"].as_str().expect("key");
    let r = get(
        &script(),
        &server.url(&format!("/user/session.json?apikey={read}")),
    )
    .await;
    assert_eq!(r.json()["type"], "read");
}
