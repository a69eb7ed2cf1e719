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
    /// Bring another system's data into ynni.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Write ynni's data for another system.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Simulate emonhub-like devices publishing to an MQTT broker or posting over HTTP.
    Simulate(SimulateArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Users (same ids and apikeys), inputs, feeds and data of an emoncms 11.x installation
    /// (stop ynni first).
    Emoncms(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// emoncms's database, e.g. mysql://emoncms:secret@localhost/emoncms.
    #[arg(long, value_name = "URL")]
    pub mysql: String,
    /// emoncms's PHPFina directory (e.g. /var/opt/emoncms/phpfina).
    #[arg(long, value_name = "DIR")]
    pub phpfina: Option<std::path::PathBuf>,
    /// emoncms's PHPTimeSeries directory (e.g. /var/opt/emoncms/phptimeseries).
    #[arg(long, value_name = "DIR")]
    pub phptimeseries: Option<std::path::PathBuf>,
    /// Which users: `all` (default) or usernames.
    #[arg(long, num_args = 1..)]
    pub users: Vec<String>,
    /// Hard-link the feed files instead of copying (same filesystem; emoncms must not write
    /// them afterwards).
    #[arg(long, conflicts_with = "copy")]
    pub link: bool,
    /// Copy the feed files (the default).
    #[arg(long)]
    pub copy: bool,
    /// Read everything, write nothing, and report what would be done.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Feed files and SQL rows an emoncms 11.x installation can load (stop ynni first).
    Emoncms(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// A new or empty directory to write into.
    pub dir: std::path::PathBuf,
}

/// emonhub's two MQTT forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimFormat {
    /// One JSON object per reading on `<base>/<node>`, with its time (`node_JSON_enable`).
    Json,
    /// One plain number per input on `<base>/<node>/<input>` (`node_var_format`).
    NodeVar,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Publish to this MQTT broker (ynni's embedded one, or any emoncms broker).
    #[arg(
        long,
        value_name = "HOST:PORT",
        required_unless_present = "http",
        conflicts_with = "http"
    )]
    pub mqtt: Option<String>,
    /// Post to this HTTP API with input/post, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub http: Option<String>,
    /// Accounts to use: the JSON of `ynni user list --with-keys` (username, apikey_write).
    #[arg(long, value_name = "FILE")]
    pub accounts: Option<std::path::PathBuf>,
    /// One account's username (with --apikey) instead of --accounts.
    #[arg(long)]
    pub username: Option<String>,
    /// That account's write apikey.
    #[arg(long)]
    pub apikey: Option<String>,
    /// How many accounts publish (the first N of --accounts).
    #[arg(long, default_value_t = 1)]
    pub users: usize,
    #[arg(long, default_value_t = 1)]
    pub devices_per_user: usize,
    /// Inputs per device (default: all of the profile's).
    #[arg(long)]
    pub inputs: Option<usize>,
    /// Seconds between a device's readings.
    #[arg(long, default_value_t = 10.0)]
    pub interval: f64,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Simulated seconds per real second: above 1, readings of the recent past are sent
    /// faster than real time (as emonhub catching up), for load tests.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// MQTT quality of service (rumqttd acknowledges 1 and 2 from its memory; --log-to-feeds
    /// checks what was stored).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    #[arg(long, value_enum, default_value_t = crate::simulate::profile::Profile::Emontx4)]
    pub profile: crate::simulate::profile::Profile,
    #[arg(long, value_enum, default_value_t = SimFormat::Json)]
    pub format: SimFormat,
    #[arg(long, default_value = "emon")]
    pub base_topic: String,
    /// Seed of the values (the same seed and --start send the same data).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Unix time of the first reading (default: now, or the recent past with --speed).
    #[arg(long, value_name = "UNIX_TIME")]
    pub start: Option<i64>,
    /// Give every input a feed and a "Log to feed" step first, and count the stored points
    /// at the end (fails if any value sent is missing).
    #[arg(long)]
    pub log_to_feeds: bool,
    /// The HTTP API for --log-to-feeds when sending over MQTT.
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// Report this process's CPU and memory (the server's pid) in the summary.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
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
