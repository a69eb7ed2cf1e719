//! `ynni simulate`: many emonhub-like devices publishing over MQTT or posting over HTTP, for
//! trying ynni without hardware and for the end-to-end benchmark (`benches/e2e.sh`).
//!
//! Each device reads its profile every `interval` simulated seconds. With `--speed 1` the
//! simulated clock is the real one; with `--speed N` a run of D seconds sends N·D seconds of
//! readings, timestamped in the recent past (like emonhub catching up after an outage), which
//! is how a benchmark reaches high rates with realistic per-device data.

mod acklog;
mod error;
mod feeds;
mod http;
mod mqtt;
mod payload;
pub mod profile;
mod stats;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

pub use error::SimulateError;
use profile::{Device, Profile};
use stats::Counters;

/// emonhub's two MQTT forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimFormat {
    /// One JSON object per reading on `<base>/<node>`, with its time (`node_JSON_enable`).
    Json,
    /// One plain number per input on `<base>/<node>/<input>` (`node_var_format`).
    NodeVar,
}

// The flags of `ynni simulate`. (A doc comment here would become the subcommand's help text.)
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Publish to this MQTT broker (ynni's embedded one, or any emoncms broker). Several
    /// addresses, comma-separated (the nodes of a cluster): devices are spread over them, a
    /// device whose connection fails reconnects through the next one, and the messages it had
    /// not had acknowledged are published again there.
    #[arg(
        long,
        value_name = "HOST:PORT[,HOST:PORT…]",
        required_unless_present = "http",
        conflicts_with = "http"
    )]
    pub mqtt: Option<String>,
    /// Post to this HTTP API with input/post, e.g. http://127.0.0.1:8080. Several URLs,
    /// comma-separated (the nodes of a cluster): devices are spread over them, and a post that
    /// fails (no connection, a timeout, a 5xx such as 503 while a shard moves) is sent again
    /// through the next one until it is acknowledged, as emonhub retries.
    #[arg(long, value_name = "URL[,URL…]")]
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
    /// MQTT quality of service (ynni acknowledges 1 and 2 once the message is in its WAL;
    /// --log-to-feeds checks what was stored and processed).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    #[arg(long, value_enum, default_value_t = Profile::Emontx4)]
    pub profile: Profile,
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
    /// Append one JSON line per acknowledged reading to FILE (`username`, `node`, `time`,
    /// `values`): what the server promised to keep, for checking against what it stored.
    /// Over MQTT: with --qos 1 or 2 and --format json (one message per reading).
    #[arg(long, value_name = "FILE")]
    pub acked: Option<std::path::PathBuf>,
    /// Report this process's CPU and memory (the server's pid) in the summary.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
}

/// One account devices publish as.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Account {
    pub username: String,
    #[serde(alias = "apikey")]
    pub apikey_write: String,
}

/// One simulated device and where it sends.
pub(crate) struct Plan {
    pub account: Account,
    pub node: String,
    pub names: Vec<String>,
    /// Its place among all devices, for the seed and to spread sends over the interval.
    pub index: usize,
}

/// The shared clock: reading `k` of a device is taken at simulated time `start + k·interval`
/// and sent `k·interval/speed` real seconds after `t0`.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    pub t0: Instant,
    pub start: f64,
    pub interval: f64,
    pub speed: f64,
    pub run_for: Option<Duration>,
    pub devices: usize,
}

impl Clock {
    /// When device `index` sends reading `k` (spread evenly over one period).
    pub fn send_at(&self, index: usize, k: u64) -> Instant {
        let period = self.interval / self.speed;
        let offset = period * index as f64 / self.devices.max(1) as f64;
        self.t0 + Duration::from_secs_f64(offset + k as f64 * period)
    }

    pub fn time_of(&self, k: u64) -> f64 {
        self.start + k as f64 * self.interval
    }

    /// Whether a send due at `at` is past the end of the run.
    pub fn over(&self, at: Instant) -> bool {
        self.run_for.is_some_and(|d| at >= self.t0 + d)
    }
}

/// One device's readings in time.
pub(crate) struct Ticker {
    clock: Clock,
    index: usize,
    k: u64,
}

impl Ticker {
    pub fn new(clock: Clock, index: usize) -> Self {
        Self { clock, index, k: 0 }
    }

    /// Waits until the next reading is due and returns its number and simulated time; `None`
    /// once the run is over.
    pub async fn next(&mut self) -> Option<(u64, f64)> {
        let at = self.clock.send_at(self.index, self.k);
        if self.clock.over(at) {
            return None;
        }
        tokio::time::sleep_until(at.into()).await;
        let k = self.k;
        self.k += 1;
        Some((k, self.clock.time_of(k)))
    }
}

pub(crate) fn new_device(profile: Profile, seed: u64, plan: &Plan) -> Device {
    Device::new(profile, seed, plan.index as u64, plan.names.clone())
}

/// Runs a simulation to its end (`--duration`, or Ctrl-C) and prints its JSON summary on
/// stdout; progress goes to stderr.
pub async fn run(args: SimulateArgs) -> Result<(), SimulateError> {
    check(&args)?;
    let plans = plan(&args)?;
    let inputs = plans.first().map_or(0, |p| p.names.len());
    let start = first_reading(&args);
    // Setting up and counting go through --api, or the first --http URL.
    let api = args
        .api
        .clone()
        .or_else(|| http_urls(args.http.as_deref()).into_iter().next());
    let feed_map = match (&api, args.log_to_feeds) {
        (Some(api), true) => {
            eprintln!("setting up {} feeds…", plans.len() * inputs);
            Some(feeds::setup(api, &plans, start - args.interval, args.interval as u32).await?)
        }
        _ => None,
    };
    let run = send(&args, plans, start, feed_map.as_ref()).await?;
    let stored = match (&feed_map, &api) {
        (Some(map), Some(api)) => Some(
            feeds::count_stored(api, map, &run.ticks, start, args.interval as u32)
                .await
                .map_err(|e| SimulateError::Counting(Box::new(e)))?,
        ),
        _ => None,
    };
    println!("{}", summary(&args, &run, inputs, stored.as_ref()));
    verdict(&run.counters, stored.as_ref())
}

/// The URLs of `--http`, without trailing slashes.
fn http_urls(http: Option<&str>) -> Vec<String> {
    list(http)
        .into_iter()
        .map(|u| u.trim_end_matches('/').to_string())
        .collect()
}

/// The items of a comma-separated option.
fn list(option: Option<&str>) -> Vec<String> {
    option
        .unwrap_or_default()
        .split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect()
}

/// Refuses arguments that cannot make a sensible run.
fn check(args: &SimulateArgs) -> Result<(), SimulateError> {
    if args.http.is_some() && http_urls(args.http.as_deref()).is_empty() {
        return Err(SimulateError::args("--http needs at least one URL"));
    }
    if args.mqtt.is_some() && list(args.mqtt.as_deref()).is_empty() {
        return Err(SimulateError::args("--mqtt needs at least one HOST:PORT"));
    }
    if args.acked.is_some() && args.mqtt.is_some() {
        if args.qos == 0 {
            return Err(SimulateError::args(
                "--acked over MQTT needs --qos 1 or 2 (QoS 0 is never acknowledged)",
            ));
        }
        if args.format != SimFormat::Json {
            return Err(SimulateError::args(
                "--acked over MQTT needs --format json (one message per reading)",
            ));
        }
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(args.interval) || !positive(args.speed) {
        return Err(SimulateError::args(
            "--interval and --speed must be above 0",
        ));
    }
    if args.duration.is_some_and(|d| !positive(d)) {
        return Err(SimulateError::args("--duration must be above 0"));
    }
    if args.speed > 1.0 && args.duration.is_none() {
        return Err(SimulateError::args(
            "--speed above 1 needs --duration (the readings end at the present)",
        ));
    }
    if args.users == 0 || args.devices_per_user == 0 {
        return Err(SimulateError::args(
            "--users and --devices-per-user must be at least 1",
        ));
    }
    if args.log_to_feeds {
        if args.http.is_none() && args.api.is_none() {
            return Err(SimulateError::args(
                "--log-to-feeds needs --api URL (the HTTP API) when sending over MQTT",
            ));
        }
        if args.mqtt.is_some() && args.format != SimFormat::Json {
            return Err(SimulateError::args(
                "--log-to-feeds over MQTT needs --format json (node-var messages carry no time)",
            ));
        }
        if args.interval.fract() != 0.0 || args.interval < 10.0 {
            return Err(SimulateError::args(
                "--log-to-feeds needs a whole-second --interval of at least 10 (emoncms's shortest feed interval); use --speed for higher rates",
            ));
        }
    }
    Ok(())
}

/// The devices: `--devices-per-user` for each of the first `--users` accounts.
fn plan(args: &SimulateArgs) -> Result<Vec<Plan>, SimulateError> {
    let accounts = accounts(args)?;
    if accounts.len() < args.users {
        return Err(SimulateError::args(format!(
            "--users {} needs as many accounts; {} given (use --accounts FILE from `ynni user list --with-keys`)",
            args.users,
            accounts.len()
        )));
    }
    let names = args.profile.inputs(args.inputs);
    let mut plans = Vec::new();
    for account in accounts.into_iter().take(args.users) {
        for d in 0..args.devices_per_user {
            plans.push(Plan {
                account: account.clone(),
                node: args.profile.node(d + 1),
                names: names.clone(),
                index: plans.len(),
            });
        }
    }
    Ok(plans)
}

/// The first reading's time, on the interval grid and never in the future: at --speed N the
/// run's N·D seconds of readings end now. --start fixes it (same seed + same start = same
/// data).
fn first_reading(args: &SimulateArgs) -> f64 {
    let span = args.duration.unwrap_or(0.0) * (args.speed - 1.0).max(0.0);
    let first = args.start.map_or_else(|| unix_now() - span, |s| s as f64);
    (first / args.interval).floor() * args.interval
}

/// A process's CPU seconds and RSS (KiB) before and after the run, where /proc had them.
type Usage = (Option<(f64, u64)>, Option<(f64, u64)>);

/// What a run sent, and what it cost.
struct Run {
    counters: Arc<Counters>,
    /// Readings sent per device.
    ticks: Arc<Vec<AtomicU64>>,
    elapsed: f64,
    server: Usage,
    own: Usage,
}

async fn send(
    args: &SimulateArgs,
    plans: Vec<Plan>,
    start: f64,
    feed_map: Option<&feeds::FeedMap>,
) -> Result<Run, SimulateError> {
    let counters = Arc::new(Counters::default());
    let ticks: Arc<Vec<AtomicU64>> = Arc::new(plans.iter().map(|_| AtomicU64::new(0)).collect());
    // Connections open before the first reading is due (2 ms each), so the measured window
    // holds steady sending, not the logins.
    let settle = Duration::from_millis(200 + 2 * plans.len() as u64);
    let clock = Clock {
        t0: Instant::now() + settle,
        start,
        interval: args.interval,
        speed: args.speed,
        run_for: args.duration.map(Duration::from_secs_f64),
        devices: plans.len(),
    };
    let pid = args.server_pid;
    let baseline = tokio::spawn(async move {
        tokio::time::sleep_until(clock.t0.into()).await;
        (
            pid.and_then(stats::process_usage),
            stats::process_usage(std::process::id()),
        )
    });
    let progress = tokio::spawn(progress(counters.clone(), clock.t0));
    let sending = async {
        if args.mqtt.is_some() {
            let addrs = list(args.mqtt.as_deref());
            let probes =
                feed_map.map(|m| m.iter().map(|(_, feeds)| feeds.first().copied()).collect());
            mqtt::run(
                &addrs,
                args,
                plans,
                clock,
                counters.clone(),
                ticks.clone(),
                probes,
            )
            .await
        } else if args.http.is_some() {
            let urls = http_urls(args.http.as_deref());
            http::run(&urls, args, plans, clock, counters.clone(), ticks.clone()).await
        } else {
            Err(SimulateError::args("give --mqtt HOST:PORT or --http URL"))
        }
    };
    tokio::select! {
        r = sending => r?,
        _ = tokio::signal::ctrl_c() => eprintln!("\ninterrupted"),
    }
    let elapsed = clock.t0.elapsed().as_secs_f64();
    progress.abort();
    let (server0, own0) = baseline.await.unwrap_or((None, None));
    Ok(Run {
        counters,
        ticks,
        elapsed,
        server: (server0, args.server_pid.and_then(stats::process_usage)),
        own: (own0, stats::process_usage(std::process::id())),
    })
}

/// The JSON summary printed at the end.
fn summary(
    args: &SimulateArgs,
    run: &Run,
    inputs: usize,
    stored: Option<&feeds::Stored>,
) -> serde_json::Value {
    let c = &run.counters;
    let elapsed = run.elapsed;
    let latency = c.latency_ms();
    // Over HTTP the answer comes once the values are durable and processed: the ack is the
    // stored latency. Over MQTT the acknowledgement comes once the message is in the WAL, before
    // its process list has run, so stored latency comes from watching sampled feeds' updates.
    let stored_latency = if args.mqtt.is_some() {
        c.stored_ms()
    } else {
        latency
    };
    let ms = |l: Option<(f64, f64, f64, usize)>| {
        l.map(|(p50, p99, max, n)| json!({"p50": p50, "p99": p99, "max": max, "samples": n}))
    };
    let usage = |(a, b): Usage| match (a, b) {
        (Some((cpu0, _)), Some((cpu1, rss))) => json!({
            "cpu_percent": round1(100.0 * (cpu1 - cpu0) / elapsed),
            "rss_mib": round1(rss as f64 / 1024.0),
        }),
        _ => serde_json::Value::Null,
    };
    json!({
        "transport": if args.mqtt.is_some() { "mqtt" } else { "http" },
        "profile": format!("{:?}", args.profile).to_lowercase(),
        "devices": run.ticks.len(),
        "inputs_per_device": inputs,
        "interval_s": args.interval,
        "speed": args.speed,
        "seconds": round1(elapsed),
        "messages_sent": c.get(&c.sent),
        "values_sent": c.get(&c.values),
        "messages_acked": c.get(&c.acked),
        "values_acked": c.get(&c.acked_values),
        "errors": c.get(&c.errors),
        "retries": c.get(&c.retries),
        "values_per_s": round1(c.get(&c.acked_values) as f64 / elapsed),
        "messages_per_s": round1(c.get(&c.acked) as f64 / elapsed),
        "ack_latency_ms": ms(latency),
        "stored_latency_ms": ms(stored_latency),
        "stored": stored.map(|s| json!({
            "feeds": s.feeds,
            "points": s.points,
            "expected": s.expected,
            "missing": s.missing,
        })),
        "server": usage(run.server),
        "simulator": usage(run.own),
    })
}

/// A run succeeded when something was sent, nothing failed and (when counted) all was stored.
fn verdict(c: &Counters, stored: Option<&feeds::Stored>) -> Result<(), SimulateError> {
    if c.refused.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(SimulateError::Refused);
    }
    if c.get(&c.sent) == 0 {
        return Err(SimulateError::NothingSent);
    }
    if c.get(&c.errors) > 0 {
        return Err(SimulateError::Errors(c.get(&c.errors)));
    }
    if let Some(s) = stored
        && s.missing > 0
    {
        return Err(SimulateError::NotStored {
            missing: s.missing,
            expected: s.expected,
        });
    }
    Ok(())
}

fn accounts(args: &SimulateArgs) -> Result<Vec<Account>, SimulateError> {
    if let Some(path) = &args.accounts {
        let text = std::fs::read_to_string(path).map_err(|source| SimulateError::ReadAccounts {
            path: path.clone(),
            source,
        })?;
        let list: Vec<Account> =
            serde_json::from_str(&text).map_err(|source| SimulateError::AccountsFormat {
                path: path.clone(),
                source,
            })?;
        return Ok(list);
    }
    match (&args.username, &args.apikey) {
        (Some(u), Some(k)) => Ok(vec![Account {
            username: u.clone(),
            apikey_write: k.clone(),
        }]),
        _ => Err(SimulateError::args(
            "give --username and --apikey (the write apikey), or --accounts FILE",
        )),
    }
}

async fn progress(c: Arc<Counters>, t0: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last = 0u64;
    loop {
        tick.tick().await;
        let values = c.get(&c.acked_values);
        eprint!(
            "\r[{:>5.0} s] sent {} msgs / {} values, acked {}, errors {}, retries {}, {} values/s   ",
            t0.elapsed().as_secs_f64().max(0.0),
            c.get(&c.sent),
            c.get(&c.values),
            c.get(&c.acked),
            c.get(&c.errors),
            c.get(&c.retries),
            values - last
        );
        last = values;
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
