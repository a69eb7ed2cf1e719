//! `ynni backup` while values are being written (with flushes and log trims happening
//! during the copy), then `ynni restore` into an empty directory: every value acknowledged
//! before the backup began is there, and each account still sees only its own feeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::json;

use crate::harness::*;

const T0: u64 = 1_700_000_000;

/// `ynni COMMAND --data-dir DATA DIR`: (exit status, stdout, stderr).
fn cli(
    command: &str,
    data: &std::path::Path,
    dir: &std::path::Path,
) -> (std::process::ExitStatus, String, String) {
    let data = data.to_str().expect("utf-8");
    run_cli(
        &[command, "--data-dir", data, dir.to_str().expect("utf-8")],
        &[],
        None,
    )
}

async fn create(server: &Server, key: &str, engine: u32) -> i64 {
    let r = get(
        &script(),
        &server.url(&format!(
            "/feed/create.json?tag=t&name=e{engine}&engine={engine}&options=%7B%22interval%22%3A10%7D&apikey={key}"
        )),
    )
    .await;
    r.json()["feedid"].as_i64().expect("feed id")
}

#[tokio::test]
async fn a_backup_under_load_restores_every_value_acknowledged_before_it_began() {
    let keep = tempfile::tempdir().expect("tempdir");
    let data = keep.path().join("data");
    let server = Server::builder()
        .data_dir(&data)
        // Flushes (and so checkpoints and log trims) every second, during the copy too.
        .env("STORAGE__FLUSH_INTERVAL_S", "1")
        .start();
    let (_, read, write) = register(&server, "alice", "secret123").await;
    let (_, bob_read, _) = register(&server, "bob", "secret123").await;
    let fixed = create(&server, &write, 5).await;
    let variable = create(&server, &write, 2).await;

    // A writer inserting point i at T0 + 10 i into both feeds, counting acknowledgements.
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, base, write) = (
            acked.clone(),
            stop.clone(),
            server.base.clone(),
            write.clone(),
        );
        tokio::spawn(async move {
            let c = script();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for id in [fixed, variable] {
                    let url = format!(
                        "{base}/feed/insert.json?id={id}&time={}&value={i}&apikey={write}",
                        T0 + 10 * i
                    );
                    let r = get(&c, &url).await;
                    assert_eq!(r.body, i.to_string(), "insert {i}");
                }
                i += 1;
                acked.store(i, Ordering::Relaxed);
            }
        })
    };
    while acked.load(Ordering::Relaxed) < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = acked.load(Ordering::Relaxed);
    let dest = keep.path().join("backup");
    let data_s = data.to_str().expect("utf-8").to_string();
    let dest_s = dest.to_str().expect("utf-8").to_string();
    let (status, out, err) = tokio::task::spawn_blocking(move || {
        run_cli(&["backup", "--data-dir", &data_s, &dest_s], &[], None)
    })
    .await
    .expect("backup");
    assert!(status.success(), "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(summary["files"].as_u64().unwrap_or(0) >= 5, "{summary}");
    // Writes went on during the copy.
    let during = acked.load(Ordering::Relaxed);
    while acked.load(Ordering::Relaxed) < during + 50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    assert!(
        during > before,
        "ingest continued while the backup ran ({before} then {during})"
    );
    let (_, log) = server.stop();

    // A second backup into a non-empty directory is refused.
    let (status, _, err) = cli("backup", &data, &dest);
    assert!(!status.success() && err.contains("not empty"), "{err}");
    // One into an existing empty directory open to everyone: the directory is made private,
    // and the catalog copy in it (keys and password hashes) is its owner's alone.
    {
        use std::os::unix::fs::PermissionsExt;
        let open = keep.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let (status, out, err) = cli("backup", &data, &open);
        assert!(status.success(), "{out}{err}");
        let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode();
        assert_eq!(mode(&open) & 0o777, 0o700);
        assert_eq!(mode(&open.join("catalog.sqlite")) & 0o777, 0o600);
    }

    // Restore: refused over data, and from an unfinished backup.
    let (status, _, err) = cli("restore", &data, &dest);
    assert!(!status.success() && err.contains("not empty"), "{err}");
    let unfinished = keep.path().join("unfinished");
    std::fs::create_dir(&unfinished).expect("mkdir");
    let restored = keep.path().join("restored");
    let (status, _, err) = cli("restore", &restored, &unfinished);
    assert!(
        !status.success() && err.contains("not a finished ynni backup"),
        "{err}"
    );
    // A damaged backup (its last file cut short) fails after copying the files before it,
    // and leaves neither the target nor a half-filled directory beside it.
    let damaged = keep.path().join("damaged");
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&dest)
        .arg(&damaged)
        .status()
        .expect("cp");
    assert!(cp.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(damaged.join("backup.json")).expect("manifest"))
            .expect("manifest json");
    let files = manifest["files"].as_array().expect("files");
    assert!(files.len() > 2, "{manifest}");
    let last = files
        .iter()
        .rev()
        .find(|f| f["bytes"].as_u64() > Some(0))
        .expect("a non-empty file");
    let cut = damaged.join(last["path"].as_str().expect("path"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .and_then(|f| f.set_len(last["bytes"].as_u64().expect("bytes") - 1))
        .expect("truncate");
    let (status, _, err) = cli("restore", &restored, &damaged);
    assert!(!status.success() && err.contains("damaged"), "{err}");
    let left: Vec<_> = std::fs::read_dir(keep.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("restored"))
        .collect();
    assert!(left.is_empty(), "a failed restore left {left:?}");
    // A backup whose listed file is a symlink (to a file of the host's) is refused, not
    // followed into the restored data directory.
    let linked = keep.path().join("linked");
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&dest)
        .arg(&linked)
        .status()
        .expect("cp");
    assert!(cp.success());
    let planted = linked.join(last["path"].as_str().expect("path"));
    let outside = keep.path().join("outside");
    std::fs::copy(&planted, &outside).expect("copy");
    std::fs::remove_file(&planted).expect("rm");
    std::os::unix::fs::symlink(&outside, &planted).expect("symlink");
    let (status, _, err) = cli("restore", &restored, &linked);
    assert!(!status.success() && err.contains("symlink"), "{err}");

    let (status, out, err) = cli("restore", &restored, &dest);
    assert!(status.success(), "{out}{err}\n{log}");

    let server = Server::builder().data_dir(&restored).start();
    let c = script();
    let end = T0 + 10 * (before - 1);
    for id in [fixed, variable] {
        let d = get(
            &c,
            &server.url(&format!(
                "/feed/data.json?id={id}&start={T0}&end={end}&interval=10&apikey={read}"
            )),
        )
        .await
        .json();
        let points = d.as_array().expect("points");
        assert!(
            points.len() as u64 >= before,
            "feed {id}: {} points",
            points.len()
        );
        for i in 0..before {
            assert_eq!(
                points[i as usize],
                json!([(T0 + 10 * i) * 1000, i]),
                "feed {id}, point {i}"
            );
        }
    }
    // Keys survive, and bob's still opens nothing of alice's.
    let r = get(
        &c,
        &server.url(&format!(
            "/feed/data.json?id={fixed}&start={T0}&end={end}&interval=10&apikey={bob_read}"
        )),
    )
    .await;
    assert!(!r.body.starts_with("[["), "{}", r.body);
}

#[tokio::test]
async fn scheduled_backups_run_prune_and_are_reported_to_administrators_and_metrics() {
    let keep = tempfile::tempdir().expect("tempdir");
    let backups = keep.path().join("backups");
    // An older finished backup, due for its successor two seconds after the start.
    let old = backups.join("ynni-20000101T000000Z");
    std::fs::create_dir_all(&old).expect("mkdir");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    std::fs::write(
        old.join("backup.json"),
        json!({"format": 1, "version": "0", "began": now - 60, "finished": now - 58, "files": []})
            .to_string(),
    )
    .expect("manifest");
    let token = "scrape-token-0123456789";
    let server = Server::builder()
        .env("BACKUP__DIR", backups.to_str().expect("utf-8"))
        .env("BACKUP__INTERVAL_S", "60")
        .env("BACKUP__KEEP", "1")
        .env("HTTP__METRICS_TOKEN", token)
        .start();
    let (_, _, write) = register(&server, "admin", "secret123").await;
    register(&server, "someone", "secret123").await;
    let c = script();
    let fixed = create(&server, &write, 5).await;
    let r = get(
        &c,
        &server.url(&format!(
            "/feed/insert.json?id={fixed}&time={T0}&value=7&apikey={write}"
        )),
    )
    .await;
    assert_eq!(r.body, "7");

    let admin = browser();
    let login = post_form(
        &admin,
        &server.url("/user/login.json"),
        &[("username", "admin"), ("password", "secret123")],
    )
    .await;
    assert_eq!(login.json()["success"], true);
    let mut status = serde_json::Value::Null;
    for _ in 0..200 {
        status = get(&admin, &server.url("/admin/status.json")).await.json();
        if !status["backup"]["last"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let last = &status["backup"]["last"];
    assert!(last["bytes"].as_u64().unwrap_or(0) > 0, "{status}");
    assert!(status["backup"]["last_error"].is_null(), "{status}");
    let made = std::path::PathBuf::from(last["path"].as_str().expect("path"));
    assert!(made.join("backup.json").is_file());
    // keep = 1: the older one is gone.
    assert!(!old.exists());

    // Not for other accounts.
    let other = browser();
    post_form(
        &other,
        &server.url("/user/login.json"),
        &[("username", "someone"), ("password", "secret123")],
    )
    .await;
    let r = get(&other, &server.url("/admin/status.json")).await;
    assert_eq!(r.status, 403);

    let m = send(c.get(server.url("/metrics")).bearer_auth(token))
        .await
        .body;
    let finished = m
        .lines()
        .find_map(|l| l.strip_prefix("ynni_backup_last_success_timestamp_seconds "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("last success in the metrics");
    assert!(finished >= now as f64, "{m}");

    // The scheduled backup restores.
    let restored = keep.path().join("restored");
    let (status, out, err) = cli("restore", &restored, &made);
    assert!(status.success(), "{out}{err}");
    drop(server);
    let server = Server::builder().data_dir(&restored).start();
    let r = get(
        &c,
        &server.url(&format!("/feed/value.json?id={fixed}&apikey={write}")),
    )
    .await;
    assert_eq!(r.body, "7");
}
