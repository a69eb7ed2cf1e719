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
    /// Run the server: the HTTP API and web UI, and the MQTT broker.
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
    /// Several servers sharing Postgres and a directory (the `[cluster]` section).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// A hosted service's billing (the `[billing]` section): balances, top-ups, vouchers,
    /// refunds, plans, the daily accrual, statements and usage exports.
    #[command(subcommand)]
    Billing(BillingCommand),
    /// Copy the data directory to DIR while the server runs (or not): the catalog, the logs
    /// and the feed files, restorable with `ynni restore`.
    Backup(BackupArgs),
    /// Restore a backup made by `ynni backup` into an empty data directory.
    Restore(BackupArgs),
    /// Simulate emonhub-like devices publishing to an MQTT broker or posting over HTTP
    /// (`ynni simulate --help` lists its flags).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Simulate(PassThrough),
}

/// Arguments handed unread to another program.
#[derive(Debug, Args)]
pub struct PassThrough {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<std::ffi::OsString>,
}

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// Every account: plan, feeds, balance, runway and standing.
    Accounts(ConfigArgs),
    /// Credit a payment to a user's balance (once per reference).
    Topup(MoneyArgs),
    /// Pay part of a user's balance back (once per reference).
    Refund(MoneyArgs),
    /// Issue a voucher code worth an amount (e.g. hardware credit).
    Voucher(VoucherArgs),
    /// Credit a voucher code to a user (once, to one user).
    Redeem(RedeemArgs),
    /// Undo a transaction by posting its opposite.
    Reverse(ReverseArgs),
    /// Put a user on a plan.
    Plan(PlanArgs),
    /// Charge every user for the finished days not yet charged (also runs hourly in the server).
    Accrue(ConfigArgs),
    /// A user's statement for a month, as JSON or CSV.
    Statement(StatementArgs),
    /// Every transaction of a user (or of everyone), oldest first, one JSON object a line.
    Ledger(LedgerArgs),
    /// The days' charges as Stripe meter events or Lago events (JSON lines).
    Export(BillingExportArgs),
}

#[derive(Debug, Args)]
pub struct MoneyArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Username, numeric user id, or #<user id> (refused when a username and an id name
    /// different accounts).
    pub user: String,
    /// Amount in pence.
    pub pence: i64,
    /// The payment's reference (letters, digits, - _ .): the same reference counts once.
    #[arg(long)]
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct VoucherArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    pub code: String,
    pub pence: i64,
    #[arg(long, default_value = "")]
    pub memo: String,
}

#[derive(Debug, Args)]
pub struct RedeemArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Username, numeric user id, or #<user id>.
    pub user: String,
    pub code: String,
}

#[derive(Debug, Args)]
pub struct ReverseArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The transaction's key, e.g. `topup:pay-1234`.
    pub key: String,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Username, numeric user id, or #<user id>.
    pub user: String,
    pub plan: String,
}

#[derive(Debug, Args)]
pub struct StatementArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Username, numeric user id, or #<user id>.
    pub user: String,
    /// `YYYY-MM`
    pub month: String,
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct LedgerArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Username or id; every user's transactions when left out.
    pub user: Option<String>,
}

#[derive(Debug, Args)]
pub struct BillingExportArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// `stripe` or `lago`
    #[arg(long, default_value = "stripe")]
    pub format: String,
    /// First day, `YYYY-MM-DD`.
    #[arg(long)]
    pub start: String,
    /// The day after the last, `YYYY-MM-DD`.
    #[arg(long)]
    pub end: String,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Nodes with their heartbeats, and which node holds which vshards under which epoch.
    Status(StatusArgs),
    /// Move a node's vshards to the others (for maintenance); `--undo` gives it a share again.
    Drain(DrainArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Also list every vshard with its owner, lease epoch and time to expiry.
    #[arg(long)]
    pub vshards: bool,
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The node's `cluster.node_id`.
    pub node: String,
    /// Let the node take vshards again.
    #[arg(long)]
    pub undo: bool,
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
    /// them afterwards, and ynni's writes and clears change emoncms's files too).
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

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The backup's directory (created by `backup`, which refuses one that is not empty).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
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
