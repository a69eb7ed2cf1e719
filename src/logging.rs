//! Log output: human-readable lines on stderr (stdout is kept for command output such as
//! JSON), colour only on a terminal, filter from `RUST_LOG` or the configured level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. A `level` that is not a valid filter is an error naming
/// the `log.level` setting; a bad `RUST_LOG` is reported and ignored.
pub fn init(level: &str) -> anyhow::Result<()> {
    let mut configured = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("invalid configuration: `log.level` {level:?}: {e}"))?;
    // The MQTT router's own lines (one per connection at info) are for debugging it, which
    // `RUST_LOG=rumqttd=…` still allows.
    if !level.contains("rumqttd")
        && let Ok(quiet) = "rumqttd=warn".parse()
    {
        configured = configured.add_directive(quiet);
    }
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(&v).unwrap_or_else(|e| {
            eprintln!("ynni: ignoring RUST_LOG={v:?}: {e}");
            configured
        }),
        _ => configured,
    };
    // A second init (never expected) is ignored rather than fatal.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    Ok(())
}
