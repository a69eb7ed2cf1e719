//! `ynni export emoncms`: feed files and SQL an emoncms installation can load, complete even
//! when the server was killed before flushing (the export replays the logs first).

use crate::harness::{Server, get, register, run_cli, script};

/// `ynni export emoncms OUT --data-dir DATA`: (success, stdout, stderr).
fn export(out: &std::path::Path, data: &std::path::Path) -> (bool, String, String) {
    let (status, stdout, stderr) = run_cli(
        &[
            "export",
            "emoncms",
            out.to_str().expect("utf-8"),
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
        &[],
        None,
    );
    (status.success(), stdout, stderr)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn export_writes_what_emoncms_loads_even_after_a_crash() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let server = Server::builder().data_dir(&data).start();
    let (_, _, key) = register(&server, "leaver", "password1").await;
    let c = script();
    let create = |engine: u32, name: &str| {
        server.url(&format!(
            "/feed/create.json?tag=t&name={name}&engine={engine}&options=%7B%22interval%22%3A10%7D&apikey={key}"
        ))
    };
    let id = |r: crate::harness::Reply| r.json()["feedid"].as_u64().expect("feedid");
    let fixed = id(get(&c, &create(5, "fixed")).await);
    let variable = id(get(&c, &create(2, "variable")).await);
    let mysql = id(get(&c, &create(0, "mysql")).await);
    let t0: u64 = 1_700_000_000;
    for (feed, points) in [
        (fixed, format!("[[{t0},1],[{},2],[{},3]]", t0 + 10, t0 + 20)),
        (variable, format!("[[{t0},5],[{},6]]", t0 + 7)),
        (mysql, format!("[[{t0},7],[{},8.5]]", t0 + 3)),
    ] {
        let r = get(
            &c,
            &server.url(&format!(
                "/feed/insert.json?id={feed}&data={points}&apikey={key}"
            )),
        )
        .await;
        assert_eq!(r.json()["success"], true, "{}", r.body);
    }
    get(
        &c,
        &server.url(&format!(
            "/input/post?node=house&fulljson=%7B%22power%22%3A42%7D&apikey={key}"
        )),
    )
    .await;

    // The export refuses to run beside the server.
    let out = tmp.path().join("out");
    let (ok, _, stderr) = export(&out, &data);
    assert!(
        !ok && stderr.contains("stop `ynni serve` first"),
        "{stderr}"
    );

    drop(server); // SIGKILL: the points are in the logs, not yet in the feed files
    let (ok, stdout, stderr) = export(&out, &data);
    assert!(ok, "{stdout}\n{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("summary JSON");
    assert_eq!(
        (summary["feeds"].as_u64(), summary["inputs"].as_u64()),
        (Some(3), Some(1))
    );

    let meta = std::fs::read(out.join(format!("phpfina/{fixed}.meta"))).expect("meta");
    let words: Vec<u32> = meta
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(words, [0, 0, 10, t0 as u32], "emoncms's PHPFina meta");
    let slots = f32s(&std::fs::read(out.join(format!("phpfina/{fixed}.dat"))).expect("dat"));
    assert_eq!(slots, [1.0, 2.0, 3.0]);
    let myd = std::fs::read(out.join(format!("phptimeseries/feed_{variable}.MYD"))).expect("MYD");
    assert_eq!(myd.len(), 18);
    assert_eq!(myd[0], 0xF9);
    assert_eq!(
        u32::from_le_bytes([myd[10], myd[11], myd[12], myd[13]]),
        t0 as u32 + 7
    );

    let sql = std::fs::read_to_string(out.join("emoncms.sql")).expect("sql");
    assert!(
        sql.contains(&format!(
            "INSERT INTO feed_{mysql} (time,data) VALUES ({t0},7),({},8.5)",
            t0 + 3
        )),
        "{sql}"
    );
    assert!(
        sql.contains(&format!("VALUES ({fixed},1,'fixed','t',{},3,1,0,", t0 + 20)),
        "{sql}"
    );
    assert!(sql.contains("'house','power','',''"), "{sql}");
    assert!(sql.contains(",42);"), "the input's last value: {sql}");

    // Exporting again into the same directory is refused rather than mixing two exports.
    let (ok, _, stderr) = export(&out, &data);
    assert!(!ok && stderr.contains("not empty"), "{stderr}");
}
