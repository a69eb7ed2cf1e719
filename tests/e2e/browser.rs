//! The web UI in a real browser: `tests/browser/ui.mjs` drives Debian's chromium (through
//! playwright-core, never a downloaded browser) against the real server: register, see an
//! input appear live, build a process list that creates a feed, post data, graph and zoom it,
//! download CSV, and draw a one-year 10 s feed. Screenshots of every page land in
//! `target/tmp/browser-screenshots/`; the one-year graph's timings are printed, not asserted.

use std::path::Path;
use std::process::Command;

use crate::harness::Server;

#[test]
fn the_web_ui_works_end_to_end_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let driver = root.join("tests/browser");
    assert!(
        driver.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci` in tests/browser (scripts/test.sh does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (scripts/test.sh does)"
    );
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let server = Server::start();
    let out = Command::new("node")
        .arg(driver.join("ui.mjs"))
        .arg(&server.base)
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .current_dir(&driver)
        .output()
        .expect("run node (Node.js is needed for the browser test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser run failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        server.log()
    );
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("the driver reports its measurements");
    let v: serde_json::Value = serde_json::from_str(result).expect("RESULT is JSON");
    assert!(v["csv_lines"].as_u64().is_some_and(|n| n > 10), "{v}");
    assert!(
        v["year_points_drawn"].as_u64().is_some_and(|n| n > 100),
        "{v}"
    );
    println!("browser: {v} (screenshots in {})", shots.display());
}
