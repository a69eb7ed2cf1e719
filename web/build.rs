// A build script reports failure by panicking: cargo prints the message and stops the build.
#![allow(clippy::expect_used, clippy::panic)]

//! Embeds the web UI in the binary. The UI's own files live in `ui/src`; the chart library is
//! fetched from npm (`npm ci` against the committed `ui/package-lock.json`) and never copied
//! into the repository. The result is `$OUT_DIR/ui_assets.rs`: a table of (path, bytes).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Third-party files served under `/ui/vendor/`, relative to `ui/node_modules`.
const VENDOR: &[(&str, &str)] = &[
    ("vendor/uPlot.esm.js", "uplot/dist/uPlot.esm.js"),
    ("vendor/uPlot.min.css", "uplot/dist/uPlot.min.css"),
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let ui = manifest.join("ui");
    println!("cargo:rerun-if-changed=ui/src");
    println!("cargo:rerun-if-changed=ui/package-lock.json");
    let modules = ui.join("node_modules");
    if VENDOR.iter().any(|(_, p)| !modules.join(p).is_file()) {
        fetch_vendor(&ui);
    }
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    collect(&ui.join("src"), &ui.join("src"), &mut entries);
    for (served, from) in VENDOR {
        entries.push(((*served).to_string(), modules.join(from)));
    }
    entries.sort();
    let mut out = String::from("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (served, path) in &entries {
        out.push_str(&format!(
            "    ({served:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    // The same table for `http.ui_dir` (development), which serves the files from disk.
    out.push_str("pub static VENDOR: &[(&str, &str)] = &[\n");
    for (served, from) in VENDOR {
        out.push_str(&format!("    ({served:?}, {from:?}),\n"));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("ui_assets.rs");
    fs::write(dest, out).expect("write ui_assets.rs");
}

fn fetch_vendor(ui: &Path) {
    let status = Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(ui)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`npm ci` in {} failed ({s}): the web UI's chart library (uPlot) comes from the npm \
             registry at build time",
            ui.display()
        ),
        Err(e) => panic!(
            "cannot run npm ({e}): building ynni needs Node.js and npm once, to fetch the web \
             UI's chart library (Debian: apt-get install npm)"
        ),
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(read) = fs::read_dir(dir) else { return };
    for entry in read.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let served = rel.to_string_lossy().replace('\\', "/");
            out.push((served, path));
        }
    }
}
