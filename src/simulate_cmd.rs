//! `ynni simulate …` hands over to the `ynni-simulate` program beside this one, with the same
//! arguments: the simulator needs an HTTP client the server never uses, so it is a separate
//! binary, while the command users, tests and benchmarks know stays the same.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context as _;

/// The simulator's path: the directory of the running `ynni`, where both are built and
/// installed.
fn sibling() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding the ynni executable")?;
    Ok(me.with_file_name(format!("ynni-simulate{}", std::env::consts::EXE_SUFFIX)))
}

/// Replaces this process with the simulator (on Unix), so its exit status, output and signals
/// are the command's own.
pub fn run(args: &[OsString]) -> anyhow::Result<()> {
    let path = sibling()?;
    let mut cmd = std::process::Command::new(&path);
    cmd.args(args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        let e = cmd.exec();
        Err(e).with_context(|| {
            format!(
                "running {} (build it with `cargo build --release`, which builds both programs)",
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let status = cmd
            .status()
            .with_context(|| format!("running {}", path.display()))?;
        std::process::exit(status.code().unwrap_or(1))
    }
}
