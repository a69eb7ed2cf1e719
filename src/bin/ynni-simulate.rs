//! `ynni-simulate`: the device simulator as a program of its own. `ynni simulate …` runs it
//! (it is installed beside `ynni`), so the server binary does not link the simulator's HTTP
//! client.

#[path = "../exit.rs"]
mod exit;
#[path = "../logging.rs"]
mod logging;

use std::process::ExitCode;

use clap::Parser;

/// Simulate emonhub-like devices publishing to an MQTT broker or posting over HTTP.
#[derive(Debug, Parser)]
#[command(name = "ynni simulate", bin_name = "ynni simulate", version)]
struct Cli {
    #[command(flatten)]
    args: ynni_simulate::SimulateArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::block_on(async {
        logging::init("warn")?;
        ynni_simulate::run(cli.args).await?;
        Ok(())
    })
}
