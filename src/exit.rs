//! How this package's programs end: the work runs on a multi-threaded runtime, and an error
//! is said once, on stderr, as `ynni: …`, with exit status 1.

use std::future::Future;
use std::process::ExitCode;

pub fn block_on(work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ynni: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Said once, on stderr, where the log lines go too: the log subscriber may not be
            // installed yet (a configuration error), and when it is, logging the error as
            // well printed it twice.
            eprintln!("ynni: {e:#}");
            ExitCode::FAILURE
        }
    }
}
