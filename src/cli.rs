//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ynni",
    version,
    about = "MQTT-first, emoncms-compatible energy monitoring server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTP API; MQTT broker when built).
    Serve(ServeArgs),
    /// Manage accounts offline, on the same data as the server.
    #[command(subcommand)]
    User(UserCommand),
    /// TLS for the MQTT broker.
    #[command(subcommand)]
    Tls(TlsCommand),
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Write a self-signed certificate and key for MQTTS on a LAN into <data_dir>/tls/.
    Selfsigned(SelfSignedArgs),
}

#[derive(Debug, Args)]
pub struct SelfSignedArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Host names and IP addresses the certificate is for (default: localhost and this
    /// machine's host name).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// Replace an existing pair.
    #[arg(long)]
    pub force: bool,
}

/// Where the settings come from; shared by every subcommand.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// TOML settings file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (catalog database and feed files).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// HTTP listen address, e.g. 0.0.0.0:8080 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// MQTT listen address, e.g. 0.0.0.0:1883.
    #[arg(long, value_name = "ADDR")]
    pub mqtt_listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account and print its id and apikeys as JSON.
    Add(UserAddArgs),
    /// Print every account as JSON.
    List(UserListArgs),
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub password: String,
    #[arg(long)]
    pub email: String,
    /// IANA time zone, e.g. Europe/London.
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// Make the account an administrator (the first account always is).
    #[arg(long)]
    pub admin: bool,
}

#[derive(Debug, Args)]
pub struct UserListArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Include each account's read and write apikeys.
    #[arg(long)]
    pub with_keys: bool,
}
