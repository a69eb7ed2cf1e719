//! The `ynni` binary: command-line parsing and the wiring of roles.

mod backup_cmd;
mod backup_task;
mod billing_cmd;
mod billing_task;
mod cli;
mod cluster_cmd;
mod cluster_node;
mod discovery;
mod exit;
mod export_cmd;
mod import_cmd;
mod logging;
mod mqtt_link;
mod read_full;
mod serve;
mod simulate_cmd;
mod storage_probe;
mod tls_cmd;
mod user_cmd;

use std::process::ExitCode;

use clap::Parser;
use ynni_config::{Overrides, Settings};

use cli::{
    Cli, ClusterCommand, Command, ConfigArgs, ExportCommand, ImportCommand, TlsCommand, UserCommand,
};

/// jemalloc instead of glibc's malloc on x86-64: the HTTP and MQTT paths allocate many small,
/// short-lived buffers across threads, where it is faster and keeps less memory per idle MQTT
/// connection (docs/decisions.md has the figures).
#[cfg(target_arch = "x86_64")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    exit::block_on(run(Cli::parse()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = load(
                &args.config,
                Overrides {
                    http_listen: args.http_listen,
                    mqtt_listen: args.mqtt_listen,
                    ..Overrides::default()
                },
            )?;
            logging::init(&settings.log.level)?;
            serve::run(settings).await
        }
        Command::Cluster(ClusterCommand::Status(args)) => {
            let settings = load(&args.config, Overrides::default())?;
            logging::init("warn")?;
            cluster_cmd::status(&settings, args.vshards).await
        }
        Command::Cluster(ClusterCommand::Drain(args)) => {
            let settings = load(&args.config, Overrides::default())?;
            logging::init("warn")?;
            cluster_cmd::drain(&settings, &args.node, !args.undo).await
        }
        Command::User(UserCommand::Add(args)) => {
            let settings = load(&args.config, Overrides::default())?;
            logging::init("warn")?;
            user_cmd::add(&settings, &args).await
        }
        Command::Tls(TlsCommand::Selfsigned(args)) => {
            let settings = load(&args.config, Overrides::default())?;
            logging::init("warn")?;
            tls_cmd::selfsigned(&settings, &args)
        }
        Command::Import(ImportCommand::Emoncms(args)) => {
            let settings = load(&args.config, Overrides::default())?;
            logging::init("warn")?;
            import_cmd::emoncms(&settings, &args).await
        }
        Command::Export(ExportCommand::Emoncms(args)) => {
            let settings = load(&args.config, Overrides::default())?;
            logging::init("warn")?;
            export_cmd::emoncms(&settings, &args).await
        }
        Command::Backup(args) => {
            let settings = load(&args.config, Overrides::default())?;
            logging::init("warn")?;
            let manifest = backup_cmd::backup(&settings, &args.dir).await?;
            println!("{}", manifest.summary());
            Ok(())
        }
        Command::Restore(args) => {
            let settings = load(&args.config, Overrides::default())?;
            logging::init("warn")?;
            let manifest = backup_cmd::restore(&args.dir, &settings.data_dir).await?;
            println!("{}", manifest.summary());
            Ok(())
        }
        Command::Simulate(pass) => simulate_cmd::run(&pass.args),
        Command::Billing(cmd) => {
            let settings = load(billing_cmd::config_of(&cmd), Overrides::default())?;
            logging::init("warn")?;
            billing_cmd::run(&settings, cmd).await
        }
        Command::User(UserCommand::List(args)) => {
            let settings = load(&args.config, Overrides::default())?;
            logging::init("warn")?;
            user_cmd::list(&settings, args.with_keys).await
        }
    }
}

fn load(args: &ConfigArgs, mut overrides: Overrides) -> anyhow::Result<Settings> {
    overrides.data_dir = args.data_dir.clone();
    Ok(Settings::load(args.config.as_deref(), &overrides)?)
}
