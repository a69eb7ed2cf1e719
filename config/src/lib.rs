//! Typed settings for every ynni role, with defaults, TOML and environment loading, and
//! validation.
//!
//! Precedence, lowest to highest: built-in defaults, the TOML file, `YNNI_<SECTION>__<KEY>`
//! environment variables, then command-line flags (applied by the binary through
//! [`Overrides`]). Unknown keys are errors, so a typo in a config file never silently falls
//! back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Environment variable prefix; nested keys are separated by a double underscore.
pub const ENV_PREFIX: &str = "YNNI_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// Figment's message names the offending key and where it came from.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid configuration: `{key}` {reason}")]
    BadValue { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Catalog database and feed files live here.
    pub data_dir: PathBuf,
    pub http: HttpSettings,
    pub mqtt: MqttSettings,
    pub users: UserSettings,
    pub limits: LimitSettings,
    pub storage: StorageSettings,
    pub log: LogSettings,
    /// Several servers sharing Postgres and a directory (DESIGN §5). Absent (the default):
    /// one process, SQLite and local files, nothing to install.
    pub cluster: Option<ClusterSettings>,
    /// Running a hosted service: plans, a prepaid balance, quotas (issue 18). Absent (the
    /// default): nothing is metered against a balance, and self-hosters see none of it.
    pub billing: Option<BillingSettings>,
    /// Scheduled backups of the data directory (`ynni backup` run by the server). Absent
    /// (the default): none.
    pub backup: Option<BackupSettings>,
}

/// The `[backup]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// Where backups go, each in its own `ynni-<UTC time>` directory.
    pub dir: String,
    /// Seconds between two backups (counted from the newest one there).
    pub interval_s: u64,
    /// How many finished backups to keep; older ones are removed.
    pub keep: usize,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            dir: String::new(),
            interval_s: 86_400,
            keep: 7,
        }
    }
}

/// The `[billing]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BillingSettings {
    /// The plan of users the operator has not placed on another.
    pub default_plan: String,
    /// Fewer days of runway than this and the user is warned.
    pub warn_days: u32,
    /// Days after the balance reaches zero during which writes are still accepted.
    pub grace_days: u32,
    /// How often (seconds) each node re-reads who is past their grace period.
    pub refresh_s: u64,
    /// `[billing.plans.<name>]`
    pub plans: std::collections::BTreeMap<String, PlanSettings>,
}

/// One plan. Prices in pence; a limit of 0 means none.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PlanSettings {
    /// Per feed per year, charged day by day (emoncms.org's: 100, £1).
    pub feed_year_pence: i64,
    /// Charged on the first day of each month.
    pub monthly_fee_pence: i64,
    pub max_feeds: u32,
    pub max_inputs: u32,
    /// Values per minute a user may post over HTTP; more answer 429 with `Retry-After`.
    pub values_per_minute: u32,
    /// Seconds between two HTTP posts of one node; sooner answers 429 with `Retry-After`.
    pub min_post_interval_s: u32,
    /// Values received a month (HTTP and MQTT) included in the price.
    pub included_values_per_month: i64,
    /// Per 1,000 values received past the allowance.
    pub pence_per_1000_values: i64,
    /// Storage included in the price (MB, 10^6 bytes, averaged over the month).
    pub included_storage_mb: i64,
    /// Per GB (10^9 bytes) a month stored past the allowance.
    pub pence_per_gb_month: i64,
}

impl Default for PlanSettings {
    fn default() -> Self {
        Self {
            feed_year_pence: 100,
            monthly_fee_pence: 0,
            max_feeds: 0,
            max_inputs: 0,
            values_per_minute: 0,
            min_post_interval_s: 0,
            included_values_per_month: 0,
            pence_per_1000_values: 0,
            included_storage_mb: 0,
            pence_per_gb_month: 0,
        }
    }
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            default_plan: "standard".into(),
            warn_days: 30,
            grace_days: 14,
            refresh_s: 10,
            plans: std::collections::BTreeMap::from([(
                "standard".to_string(),
                PlanSettings::default(),
            )]),
        }
    }
}

impl BillingSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, reason: &str| {
            Err(ConfigError::BadValue {
                key,
                reason: reason.to_string(),
            })
        };
        if !self.plans.contains_key(&self.default_plan) {
            return bad(
                "billing.default_plan",
                "must name a plan in [billing.plans]",
            );
        }
        if self.refresh_s == 0 {
            return bad("billing.refresh_s", "must be at least 1");
        }
        for p in self.plans.values() {
            if p.feed_year_pence < 0
                || p.monthly_fee_pence < 0
                || p.pence_per_1000_values < 0
                || p.pence_per_gb_month < 0
                || p.included_values_per_month < 0
                || p.included_storage_mb < 0
            {
                return bad("billing.plans", "prices must not be negative");
            }
        }
        Ok(())
    }
}

/// The `[cluster]` section: what every node of one cluster shares, and who this node is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// The cluster's Postgres (node registry and vshard leases), `postgres://…`.
    pub postgres: String,
    /// The directory every node mounts (NFS, CephFS, EFS): feed files and shard logs.
    pub shared_dir: PathBuf,
    /// This node's name, unique in the cluster: letters, digits, `-`, `_` and `.`.
    pub node_id: String,
    /// `host:port` where the other nodes reach this one.
    pub advertise: String,
    /// Authenticates calls between nodes; the same on every node, at least 16 characters of
    /// printable ASCII (spaces only inside).
    pub secret: String,
    /// Optional Redis (`redis://…`): web logins and registrations counted once for every node.
    #[serde(default)]
    pub redis: Option<String>,
    /// How long a vshard lease lasts without renewal (milliseconds). A node stops
    /// acknowledging for a shard a fifth of this before its lease can expire; another node
    /// takes the shard over once it has.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
}

fn default_lease_ms() -> u64 {
    10_000
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            commit_window_ms: 0,
            flush_interval_s: 60,
            levels_memory_mb: 1024,
        }
    }
}

/// How data reaches the disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// How long (milliseconds) a shard's log waits for more values before the `fdatasync`
    /// that makes them durable (and lets them be acknowledged). 0: no fixed wait (the shard
    /// worker waits up to 2 ms for devices arriving close together); a few ms shares each
    /// sync among more devices, saving CPU and SD-card writes at a small cost in
    /// acknowledgement latency.
    pub commit_window_ms: u64,
    /// Seconds between flushes of buffered points to the feed files (each flush writes every
    /// changed feed's files and a checkpoint). Longer means fewer SD-card writes and a longer
    /// log to replay after a crash; nothing acknowledged is lost either way.
    pub flush_interval_s: u64,
    /// MiB of averaged levels (the sums that make year-long graphs fast) kept in memory for
    /// all feeds together; past it, those of the feeds graphed longest ago are dropped (and
    /// read again from their files when next graphed).
    pub levels_memory_mb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Request bodies above this size are refused with 413.
    pub max_body_bytes: usize,
    /// Mark the session cookie `Secure` (for ynni reached over HTTPS, e.g. behind a TLS
    /// reverse proxy).
    pub secure_cookie: bool,
    /// Serve the web UI from this directory (`web/ui` of a checkout) instead of the copy built
    /// into the binary, so UI changes show without a rebuild. Empty (the default): built in.
    pub ui_dir: String,
    /// Seconds a client gets to send a request's line and headers; an idle keep-alive
    /// connection is closed after as long. Slow or silent clients cannot hold connections.
    pub header_timeout_s: u64,
    /// Open HTTP connections at most, lowered at start to fit under the process's open-file
    /// limit; beyond it new clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Addresses of reverse proxies (nginx, Caddy) in front of ynni. A request from one of
    /// them is taken to come from the address its `X-Forwarded-For` names (the last one not
    /// itself a trusted proxy), so per-address login limits and `myip` see the real client.
    /// Empty (the default): the header is ignored, as any client could forge it.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The bearer token `GET /metrics` requires (Prometheus's `authorization` setting).
    /// Empty (the default): metrics are not collected and `/metrics` answers 404.
    pub metrics_token: String,
    /// HTTPS listener address, beside `listen`. Empty (the default): no HTTPS.
    pub tls_listen: String,
    /// PEM certificate chain and private key for `tls_listen`, read again on SIGHUP; empty:
    /// the pair that `ynni tls selfsigned` writes under `<data_dir>/tls/`.
    pub tls_cert: String,
    pub tls_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    pub listen: SocketAddr,
    /// The first topic level of device messages (emoncms's `basetopic`).
    pub base_topic: String,
    /// emonSD's fixed broker login (`emonpi` / `emonpimqtt2016`) for existing emonPi images,
    /// mapped to this ynni account. Empty (the default): off.
    pub legacy_user: String,
    pub legacy_username: String,
    pub legacy_password: String,
    /// External broker mode: ynni also subscribes to `<base_topic>/#` on this broker (e.g. an
    /// existing Mosquitto) and stores the messages for `external_user`. Empty (default): off.
    pub external_host: String,
    pub external_port: u16,
    pub external_username: String,
    pub external_password: String,
    pub external_user: String,
    /// Connect to the external broker over TLS, trusting the CA certificate in
    /// `external_ca` (PEM).
    pub external_tls: bool,
    pub external_ca: String,
    /// Every input update (HTTP or MQTT) is published, inside its user's namespace, on
    /// `<input_topic>/<node>/<input>` (e.g. `ynni/input`). Empty (default): off.
    pub input_topic: String,
    /// MQTT over websockets (subprotocol `mqtt`) listen address, e.g. `0.0.0.0:8083`. Empty: off.
    pub ws_listen: String,
    /// MQTT over TLS (MQTTS) listen address, e.g. `0.0.0.0:8883`. Empty (default): off.
    pub tls_listen: String,
    /// PEM certificate chain and private key for `tls_listen`; empty: the pair that
    /// `ynni tls selfsigned` writes under `<data_dir>/tls/`.
    pub tls_cert: String,
    pub tls_key: String,
    /// Open MQTT connections at most, over all listeners (lowered at start to fit under the
    /// process's open-file limit).
    pub max_connections: usize,
    /// Open MQTT connections of one user at most (devices, Home Assistant, Node-RED, …).
    pub max_connections_per_user: usize,
    /// Connections from one address (an IPv6 /64) still in their handshake (before their
    /// login is checked) at most; loopback is not counted. 0: no limit.
    pub max_pending_per_address: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Registration {
    /// Anyone may register.
    Open,
    /// Registration is open only while the catalog holds no user (emoncms's single-user default).
    FirstUser,
    /// Accounts are created only with `ynni user add`.
    Closed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UserSettings {
    pub registration: Registration,
    /// Lifetime of a browser login session.
    pub session_days: u32,
}

/// Attempt limits, counted in memory in fixed windows that start at the first attempt: login
/// failures and `user/auth` calls per client IP and per username, registrations and password
/// changes per client IP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    pub login_attempts: u32,
    pub login_window_s: u64,
    pub register_attempts: u32,
    pub register_window_s: u64,
    pub password_change_attempts: u32,
    pub password_change_window_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A `tracing` filter directive such as `info` or `ynni_web=debug,info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("ynni-data"),
            http: HttpSettings::default(),
            mqtt: MqttSettings::default(),
            users: UserSettings::default(),
            limits: LimitSettings::default(),
            storage: StorageSettings::default(),
            log: LogSettings::default(),
            cluster: None,
            billing: None,
            backup: None,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_body_bytes: 4 << 20,
            secure_cookie: false,
            ui_dir: String::new(),
            header_timeout_s: 20,
            max_connections: 4096,
            trusted_proxies: Vec::new(),
            metrics_token: String::new(),
            tls_listen: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            base_topic: "emon".into(),
            legacy_user: String::new(),
            legacy_username: "emonpi".into(),
            legacy_password: "emonpimqtt2016".into(),
            external_host: String::new(),
            external_port: 1883,
            external_username: String::new(),
            external_password: String::new(),
            external_user: String::new(),
            external_tls: false,
            external_ca: String::new(),
            input_topic: String::new(),
            ws_listen: String::new(),
            tls_listen: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            max_connections: 10_000,
            max_connections_per_user: 100,
            max_pending_per_address: 64,
        }
    }
}

impl Default for UserSettings {
    fn default() -> Self {
        Self {
            registration: Registration::FirstUser,
            session_days: 30,
        }
    }
}

impl Default for LimitSettings {
    // emoncms's figures: login and auth 10 per 15 min, register 5 per 10 min,
    // changepassword 5 per 15 min.
    fn default() -> Self {
        Self {
            login_attempts: 10,
            login_window_s: 900,
            register_attempts: 5,
            register_window_s: 600,
            password_change_attempts: 5,
            password_change_window_s: 900,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            // rumqttd reports every connection and subscription at info.
            level: "info,rumqttd=warn".into(),
        }
    }
}

/// Values given on the command line; `None` leaves the loaded value alone.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub http_listen: Option<SocketAddr>,
    pub mqtt_listen: Option<SocketAddr>,
}

impl Settings {
    /// Loads defaults, then `file` (which must exist if given), then the process environment,
    /// then `overrides`, and validates the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed(ENV_PREFIX).split("__"), overrides)
    }

    fn load_from(
        file: Option<&Path>,
        env: Env,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_path_buf()));
            }
            figment = figment.merge(Toml::file(path));
        }
        let mut settings: Settings = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        if let Some(d) = &overrides.data_dir {
            settings.data_dir = d.clone();
        }
        if let Some(a) = overrides.http_listen {
            settings.http.listen = a;
        }
        if let Some(a) = overrides.mqtt_listen {
            settings.mqtt.listen = a;
        }
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, reason: &str| {
            Err(ConfigError::BadValue {
                key,
                reason: reason.to_string(),
            })
        };
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir", "must not be empty");
        }
        if self.http.max_body_bytes < 1024 {
            return bad("http.max_body_bytes", "must be at least 1024");
        }
        if self.http.header_timeout_s == 0 {
            return bad("http.header_timeout_s", "must be at least 1");
        }
        if self.http.max_connections == 0 {
            return bad("http.max_connections", "must be at least 1");
        }
        if self.users.session_days == 0 {
            return bad("users.session_days", "must be at least 1");
        }
        let l = &self.limits;
        for (key, attempts, window) in [
            ("limits.login_attempts", l.login_attempts, l.login_window_s),
            (
                "limits.register_attempts",
                l.register_attempts,
                l.register_window_s,
            ),
            (
                "limits.password_change_attempts",
                l.password_change_attempts,
                l.password_change_window_s,
            ),
        ] {
            if attempts == 0 || window == 0 {
                return bad(key, "and its window must be at least 1");
            }
        }
        if let Some(b) = &self.billing {
            b.validate()?;
        }
        if self.mqtt.base_topic.is_empty() || self.mqtt.base_topic.contains(['/', '+', '#']) {
            return bad("mqtt.base_topic", "must be one topic level without / + #");
        }
        if !self.mqtt.legacy_user.is_empty()
            && (self.mqtt.legacy_username.is_empty()
                || self.mqtt.legacy_username.contains(['/', '+', '#'])
                || self.mqtt.legacy_password.is_empty())
        {
            return bad(
                "mqtt.legacy_username",
                "and mqtt.legacy_password must be set (a username without / + #)",
            );
        }
        if self.mqtt.external_tls && self.mqtt.external_ca.is_empty() {
            return bad(
                "mqtt.external_ca",
                "must name the PEM CA certificate when mqtt.external_tls is on",
            );
        }
        if !self.mqtt.external_host.is_empty() && self.mqtt.external_user.is_empty() {
            return bad(
                "mqtt.external_user",
                "must name the account that external broker messages belong to",
            );
        }
        let it = &self.mqtt.input_topic;
        if !it.is_empty()
            && (it.contains(['+', '#'])
                || it.starts_with('/')
                || it.ends_with('/')
                || it.split('/').next() == Some(self.mqtt.base_topic.as_str()))
        {
            // Under the base topic the republished values would be ingested again.
            return bad(
                "mqtt.input_topic",
                "must be a topic outside mqtt.base_topic, without + # or a leading or trailing /",
            );
        }
        if !self.mqtt.tls_listen.is_empty() && self.mqtt.tls_listen.parse::<SocketAddr>().is_err() {
            return bad("mqtt.tls_listen", "must be an address such as 0.0.0.0:8883");
        }
        if !self.http.tls_listen.is_empty() && self.http.tls_listen.parse::<SocketAddr>().is_err() {
            return bad("http.tls_listen", "must be an address such as 0.0.0.0:443");
        }
        if !self.http.metrics_token.is_empty() && self.http.metrics_token.len() < 16 {
            // A short token is guessable; the metrics show every account's activity.
            return bad("http.metrics_token", "must be at least 16 characters");
        }
        if !(1..=86_400).contains(&self.storage.flush_interval_s) {
            return bad(
                "storage.flush_interval_s",
                "must be between 1 and 86400 seconds",
            );
        }
        if !(1..=1 << 20).contains(&self.storage.levels_memory_mb) {
            return bad(
                "storage.levels_memory_mb",
                "must be between 1 and 1048576 MiB",
            );
        }
        if self.log.level.trim().is_empty() {
            return bad("log.level", "must not be empty");
        }
        if let Some(b) = &self.backup {
            if b.dir.trim().is_empty() {
                return bad("backup.dir", "must name the directory backups go to");
            }
            if b.interval_s < 60 {
                return bad("backup.interval_s", "must be at least 60 seconds");
            }
            if b.keep == 0 {
                return bad("backup.keep", "must keep at least one backup");
            }
            if self.cluster.is_some() {
                return bad(
                    "backup",
                    "is not implemented for a cluster: back up its PostgreSQL catalog and shared_dir",
                );
            }
        }
        if let Some(c) = &self.cluster {
            c.validate()?;
        }
        Ok(())
    }
}

impl ClusterSettings {
    /// Checks what can be checked without reaching Postgres or the shared directory (the
    /// cluster crate checks those at start, naming the same keys).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, reason: &str| {
            Err(ConfigError::BadValue {
                key,
                reason: reason.to_string(),
            })
        };
        if !(self.postgres.starts_with("postgres://") || self.postgres.starts_with("postgresql://"))
        {
            return bad("cluster.postgres", "must be a postgres:// URL");
        }
        if self.shared_dir.as_os_str().is_empty() {
            return bad(
                "cluster.shared_dir",
                "must name the directory every node shares",
            );
        }
        let id_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.node_id.is_empty() || self.node_id.len() > 64 || !self.node_id.chars().all(id_char)
        {
            return bad(
                "cluster.node_id",
                "must be 1 to 64 letters, digits, - _ or .",
            );
        }
        let port = self
            .advertise
            .rsplit_once(':')
            .and_then(|(host, port)| (!host.is_empty()).then_some(port))
            .and_then(|p| p.parse::<u16>().ok());
        if port.is_none_or(|p| p == 0) {
            return bad(
                "cluster.advertise",
                "must be host:port, as the other nodes reach this one",
            );
        }
        if self.secret.chars().count() < 16 {
            return bad("cluster.secret", "must be at least 16 characters");
        }
        // Nodes send it in a header: other characters could not be sent, and a header's value
        // loses the spaces around it on the way, so no node would recognise another's calls.
        if !self
            .secret
            .chars()
            .all(|c| c == ' ' || c.is_ascii_graphic())
            || self.secret.trim() != self.secret
        {
            return bad(
                "cluster.secret",
                "must be printable ASCII, without spaces at either end",
            );
        }
        if let Some(r) = &self.redis
            && !(r.starts_with("redis://") || r.starts_with("rediss://"))
        {
            return bad("cluster.redis", "must be a redis:// URL");
        }
        if self.lease_ms < 1_000 {
            return bad("cluster.lease_ms", "must be at least 1000");
        }
        Ok(())
    }
}

/// Figment's error lists every problem; join them so the operator sees all at once.
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|one| one.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_env() -> Env {
        Env::prefixed("YNNI_TEST_UNSET_PREFIX_").split("__")
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn defaults_match_the_documented_contract() {
        let s = Settings::load_from(None, no_env(), &Overrides::default()).expect("load");
        assert_eq!(s.data_dir, PathBuf::from("ynni-data"));
        assert_eq!(s.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(s.mqtt.listen.to_string(), "0.0.0.0:1883");
        assert_eq!(s.users.registration, Registration::FirstUser);
    }

    #[test]
    fn file_values_are_read() {
        let f = file(
            "data_dir = \"/tmp/x\"\n[http]\nlisten = \"127.0.0.1:9000\"\n[users]\nregistration = \"open\"\n",
        );
        let s = Settings::load_from(Some(f.path()), no_env(), &Overrides::default()).expect("load");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(s.users.registration, Registration::Open);
    }

    #[test]
    fn unknown_key_is_named() {
        let f = file("[http]\nlisten = \"127.0.0.1:9000\"\nlisen = 3\n");
        let e = Settings::load_from(Some(f.path()), no_env(), &Overrides::default())
            .expect_err("must fail");
        assert!(e.to_string().contains("lisen"), "{e}");
    }

    #[test]
    fn bad_value_is_named() {
        let f = file("[http]\nlisten = \"not an address\"\n");
        let e = Settings::load_from(Some(f.path()), no_env(), &Overrides::default())
            .expect_err("must fail");
        assert!(e.to_string().contains("http.listen"), "{e}");
        let f = file("[users]\nregistration = \"sometimes\"\n");
        let e = Settings::load_from(Some(f.path()), no_env(), &Overrides::default())
            .expect_err("must fail");
        assert!(e.to_string().contains("users.registration"), "{e}");
    }

    const CLUSTER: &str = "[cluster]\npostgres = \"postgres://ynni@db/ynni\"\nshared_dir = \"/srv/ynni\"\nnode_id = \"n1\"\nadvertise = \"10.0.0.1:8090\"\nsecret = \"0123456789abcdef\"\n";

    #[test]
    fn the_cluster_section_is_read_with_its_defaults() {
        let s = Settings::load_from(None, no_env(), &Overrides::default()).expect("load");
        assert_eq!(s.cluster, None);
        let f = file(CLUSTER);
        let s = Settings::load_from(Some(f.path()), no_env(), &Overrides::default()).expect("load");
        let c = s.cluster.expect("cluster");
        assert_eq!(
            (c.node_id.as_str(), c.lease_ms, c.redis),
            ("n1", 10_000, None)
        );
    }

    #[test]
    fn bad_cluster_settings_are_named() {
        for (from, to, key) in [
            (
                "postgres://ynni@db/ynni",
                "mysql://db/ynni",
                "cluster.postgres",
            ),
            (
                "shared_dir = \"/srv/ynni\"",
                "shared_dir = \"\"",
                "cluster.shared_dir",
            ),
            ("node_id = \"n1\"", "node_id = \"n 1\"", "cluster.node_id"),
            ("10.0.0.1:8090", "10.0.0.1", "cluster.advertise"),
            ("0123456789abcdef", "short", "cluster.secret"),
            ("0123456789abcdef", " 0123456789abcdef", "cluster.secret"),
            ("0123456789abcdef", "0123456789abcdef\\t", "cluster.secret"),
            ("0123456789abcdef", "0123456789abcdéf", "cluster.secret"),
            ("secret", "lease_ms = 10\nsecret", "cluster.lease_ms"),
            ("secret", "redis = \"http://r\"\nsecret", "cluster.redis"),
        ] {
            let f = file(&CLUSTER.replace(from, to));
            let e = Settings::load_from(Some(f.path()), no_env(), &Overrides::default())
                .expect_err(key);
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
        // A missing key is named too.
        let f = file(&CLUSTER.replace("node_id = \"n1\"\n", ""));
        let e = Settings::load_from(Some(f.path()), no_env(), &Overrides::default())
            .expect_err("missing");
        assert!(e.to_string().contains("node_id"), "{e}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = Settings::load_from(
            Some(Path::new("/nonexistent/ynni.toml")),
            no_env(),
            &Overrides::default(),
        )
        .expect_err("must fail");
        assert!(matches!(e, ConfigError::MissingFile(_)));
    }

    #[test]
    // figment's Jail closure signature is fixed by the crate.
    #[allow(clippy::result_large_err)]
    fn flags_beat_env_beat_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("y.toml", "[http]\nlisten = \"127.0.0.1:1000\"\n[mqtt]\nlisten = \"127.0.0.1:1001\"\ndata_dir = \"a\"\n")?;
            jail.set_env("YNNI_HTTP__LISTEN", "127.0.0.1:2000");
            jail.set_env("YNNI_MQTT__LISTEN", "127.0.0.1:2001");
            let over = Overrides {
                mqtt_listen: Some("127.0.0.1:3001".parse().expect("addr")),
                ..Default::default()
            };
            let e = Settings::load(Some(Path::new("y.toml")), &over).expect_err("misplaced key");
            // `data_dir` in the [mqtt] table above is a misplaced key and must be refused.
            assert!(e.to_string().contains("data_dir"), "{e}");
            jail.create_file("y.toml", "data_dir = \"a\"\n[http]\nlisten = \"127.0.0.1:1000\"\n[mqtt]\nlisten = \"127.0.0.1:1001\"\n")?;
            let s = Settings::load(Some(Path::new("y.toml")), &over).expect("load");
            assert_eq!(s.data_dir, PathBuf::from("a"));
            assert_eq!(s.http.listen.to_string(), "127.0.0.1:2000");
            assert_eq!(s.mqtt.listen.to_string(), "127.0.0.1:3001");
            Ok(())
        });
    }

    #[test]
    fn zero_limits_are_refused() {
        let f = file("[limits]\nlogin_attempts = 0\n");
        let e = Settings::load_from(Some(f.path()), no_env(), &Overrides::default())
            .expect_err("must fail");
        assert!(e.to_string().contains("limits.login_attempts"), "{e}");
    }
}
