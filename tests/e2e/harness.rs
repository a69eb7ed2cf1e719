//! Starts the real `ynni` binary on a free port with a temporary data directory and talks to
//! it over HTTP. Every end-to-end test builds on this.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ynni");
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings for a server under test. Tests register many users from one address, so the
/// defaults open registration and raise the attempt limits; rate-limit tests lower them.
pub struct ServerBuilder {
    /// `None`: a fresh temporary directory. `Some(None)`: no `--data-dir` flag at all.
    data_dir: Option<Option<PathBuf>>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    http_listen: String,
    mqtt_listen: String,
}

impl ServerBuilder {
    /// Listens for HTTP on `addr` instead of an ephemeral port (a cluster node's advertised
    /// address must be known before it starts).
    pub fn http_listen(mut self, addr: &str) -> Self {
        self.http_listen = addr.to_string();
        self
    }

    /// The broker's address (default: a free port on 127.0.0.1).
    pub fn mqtt_listen(mut self, addr: &str) -> Self {
        self.mqtt_listen = addr.to_string();
        self
    }

    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(Some(dir.to_path_buf()));
        self
    }

    /// Passes no `--data-dir`, so the server uses its default under `cwd`.
    pub fn default_data_dir(mut self, cwd: &Path) -> Self {
        self.data_dir = Some(None);
        self.cwd = Some(cwd.to_path_buf());
        self
    }

    /// Sets `YNNI_<KEY>` (e.g. `env("USERS__REGISTRATION", "closed")`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((format!("YNNI_{key}"), value.to_string()));
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    /// Starts the server and waits until its HTTP listener is ready.
    pub fn start(self) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cwd = self.cwd.unwrap_or_else(|| tmp.path().to_path_buf());
        let data_dir = match self.data_dir {
            None => Some(tmp.path().join("data")),
            Some(d) => d,
        };
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        if let Some(d) = &data_dir {
            cmd.arg("--data-dir").arg(d);
        }
        clear_ynni_env(&mut cmd);
        cmd.arg("--http-listen")
            .arg(&self.http_listen)
            .arg("--mqtt-listen")
            .arg(&self.mqtt_listen)
            .args(&self.args)
            .env_remove("RUST_LOG")
            .env("YNNI_USERS__REGISTRATION", "open")
            .env("YNNI_LIMITS__LOGIN_ATTEMPTS", "1000")
            .env("YNNI_LIMITS__REGISTER_ATTEMPTS", "1000")
            .env("YNNI_LIMITS__PASSWORD_CHANGE_ATTEMPTS", "1000")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ynni");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let log_w = log.clone();
        let mqtt: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::default();
        let mqtt_w = mqtt.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("HTTP listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                if let Some(addr) = line.split("MQTT listening on ").nth(1) {
                    let mut m = mqtt_w.lock().unwrap_or_else(|p| p.into_inner());
                    *m = addr.trim().parse().ok();
                }
                let mut l = log_w.lock().unwrap_or_else(|p| p.into_inner());
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "ynni exited with {status} before listening:\n{}",
                    log.lock().expect("log")
                );
            }
            assert!(
                Instant::now() < deadline,
                "ynni did not start:\n{}",
                log.lock().expect("log")
            );
        };
        Server {
            child: Some(child),
            base: format!("http://{addr}"),
            data_dir: data_dir.unwrap_or_else(|| cwd.join("ynni-data")),
            mqtt: *mqtt.lock().unwrap_or_else(|p| p.into_inner()),
            log,
            reader: Some(reader),
            _tmp: tmp,
        }
    }
}

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    /// The broker's address (logged before the HTTP line, so known once the server is up).
    pub mqtt: Option<std::net::SocketAddr>,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    _tmp: tempfile::TempDir,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            data_dir: None,
            cwd: None,
            env: Vec::new(),
            args: Vec::new(),
            http_listen: "127.0.0.1:0".to_string(),
            mqtt_listen: "127.0.0.1:0".to_string(),
        }
    }

    pub fn start() -> Server {
        Self::builder().start()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the server with SIGKILL: nothing is flushed, as in a crash.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = wait_timeout(&mut child, Duration::from_secs(30));
        // The process has exited, so its stderr reaches end-of-file and the reader finishes.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (exit, self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port free on 127.0.0.1 now, for a server that must be told its port before it starts
/// (a cluster node advertises it; mosquitto, Redis). It is taken below the kernel's range of
/// ephemeral ports (32768 on, here): a port from that range, let go by the check, could be
/// handed out again before the server binds it, as the source port of any outgoing connection
/// or to a listener on port 0, and the server then failed to start now and then. Each test
/// process walks its own stretch of the range, so tests running at once rarely meet.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..SPAN {
        let port = LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = u16::try_from(port).expect("below 32768");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN);
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP client that keeps cookies, like a browser.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client")
}

/// A cookie-less client, like a script.
pub fn script() -> reqwest::Client {
    reqwest::Client::new()
}

/// A reply reduced to what tests compare.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Reply {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = r.text().await.expect("body");
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

/// POSTs an urlencoded form.
pub async fn post_form(client: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Reply {
    let body = form_body(form);
    send(
        client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body),
    )
    .await
}

pub async fn get(client: &reqwest::Client, url: &str) -> Reply {
    send(client.get(url)).await
}

fn form_body(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Registers a user and returns (userid, read key, write key).
pub async fn register(server: &Server, username: &str, password: &str) -> (i64, String, String) {
    let email = format!("{username}@example.com");
    let r = post_form(
        &script(),
        &server.url("/user/register.json"),
        &[
            ("username", username),
            ("password", password),
            ("email", &email),
            ("timezone", "UTC"),
        ],
    )
    .await;
    let v = r.json();
    assert_eq!(v["success"], true, "register {username}: {}", r.body);
    (
        v["userid"].as_i64().expect("userid"),
        v["apikey_read"].as_str().expect("read key").to_string(),
        v["apikey_write"].as_str().expect("write key").to_string(),
    )
}

/// Settings inherited from the environment running the tests must not leak into the server.
fn clear_ynni_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("YNNI_") {
            cmd.env_remove(k);
        }
    }
}

/// Runs `ynni` with `args` to completion: (exit status, stdout, stderr).
pub fn run_cli(
    args: &[&str],
    env: &[(&str, &str)],
    cwd: Option<&Path>,
) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(BIN);
    clear_ynni_env(&mut cmd);
    cmd.args(args).env_remove("RUST_LOG").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let out = cmd.output().expect("run ynni");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `input/get/<node>/<name>` until its value is `expected` (MQTT messages are stored
/// shortly after their PUBACK), for up to 5 s; returns the last reply.
pub async fn input_value_soon(
    server: &Server,
    read: &str,
    node: &str,
    name: &str,
    expected: &serde_json::Value,
) -> serde_json::Value {
    let c = script();
    let url = server.url(&format!("/input/get/{node}/{name}?apikey={read}"));
    let mut got = serde_json::Value::Null;
    for _ in 0..50 {
        got = get(&c, &url).await.json();
        if &got["value"] == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

/// Polls `input/list` until `done` accepts it (MQTT messages are stored shortly after their
/// PUBACK), for up to 5 s; returns the last list.
pub async fn input_list_soon(
    server: &Server,
    read: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let c = script();
    let url = server.url(&format!("/input/list.json?apikey={read}"));
    let mut got = serde_json::Value::Null;
    for _ in 0..50 {
        got = get(&c, &url).await.json();
        if done(&got) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

/// Runs one statement, with `$1` = `userid`, on the server's SQLite catalog from beside it (to
/// fill an account with rows faster than its API would).
pub async fn on_catalog(server: &Server, sql: &'static str, userid: i64) {
    let url = format!(
        "sqlite://{}",
        server.data_dir.join("catalog.sqlite").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.expect("catalog");
    sqlx::query(sql)
        .bind(userid)
        .execute(&pool)
        .await
        .expect("statement");
}
