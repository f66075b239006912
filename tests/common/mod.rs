//! Helpers shared by the integration tests: a daemon on a real SQLite file
//! and a loopback port chosen by the OS, and real HTTP/SSE/WS clients.
#![allow(dead_code)] // each test binary uses a different subset

pub mod mosquitto;
pub mod mqtt;

use mesero::config::Config;
use mesero::daemon::Daemon;
use mesero::sse::{SseMessage, SseParser};
use mesero::systemd::Supervision;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

pub const VIEWER: &str = "viewer-token";
pub const STAFF: &str = "staff-token";
pub const ADMIN: &str = "admin-token";

/// Generous upper bound for anything to happen on a loaded CI machine; tests
/// wait on conditions and only fail when this runs out.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub const FIXTURE: &str = include_str!("../fixtures/test.toml");

/// The fixture config with `storage.path` in `dir` and extra overrides.
pub fn config(dir: &Path, overrides: &[(&str, &str)]) -> Config {
    let mut env: Vec<(String, String)> = vec![(
        "MESERO_STORAGE_PATH".into(),
        dir.join("mesero.db").display().to_string(),
    )];
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Config::from_toml(Path::new("tests/fixtures/test.toml"), FIXTURE, env).expect("fixture config")
}

/// [`config`] with keys added to the fixture's sections, for what the
/// environment cannot set (lists): `extra` pairs a section header such as
/// `"[http]"` with lines to put under it.
pub fn config_edited(dir: &Path, extra: &[(&str, &str)], overrides: &[(&str, &str)]) -> Config {
    let mut text = FIXTURE.to_string();
    for (section, lines) in extra {
        let header = format!("{section}\n");
        assert!(text.contains(&header), "the fixture has no {section}");
        text = text.replacen(&header, &format!("{header}{lines}\n"), 1);
    }
    let mut env: Vec<(String, String)> = vec![(
        "MESERO_STORAGE_PATH".into(),
        dir.join("mesero.db").display().to_string(),
    )];
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Config::from_toml(Path::new("tests/fixtures/test.toml"), &text, env).expect("fixture config")
}

/// A daemon running in this process on port 0.
pub struct TestDaemon {
    pub daemon: Daemon,
    pub base: String,
    /// The MQTT listener (the fixture binds port 0).
    pub mqtt: SocketAddr,
}

impl TestDaemon {
    pub async fn start(config: Config) -> TestDaemon {
        TestDaemon::start_at(config, mesero::clock::Wall::system()).await
    }

    /// On a clock the test moves ([`mesero::clock::Wall::manual`]).
    pub async fn start_at(config: Config, wall: mesero::clock::Wall) -> TestDaemon {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let daemon = Daemon::start_at(config, Some(listener), Supervision::none(), wall)
            .await
            .expect("daemon starts");
        let base = format!("http://{}", daemon.http_addr());
        let mqtt = daemon.mqtt_addr().expect("the fixture enables MQTT");
        TestDaemon { daemon, base, mqtt }
    }

    /// With HTTPS on too (`http.tls_listen` on port 0 of 127.0.0.1): the
    /// daemon makes its local CA and server certificate in `tls/` next to
    /// the database at start, as on a Pi's first start. Returns the daemon
    /// (its `base` is the plain-HTTP URL), the `https://127.0.0.1:<port>`
    /// URL and the CA certificate's path (PEM), for a client or a browser
    /// to trust.
    pub async fn start_tls(config: Config) -> (TestDaemon, String, PathBuf) {
        let ca = config.http.tls.ca_cert.clone();
        assert!(
            config.http.tls_listen.is_some(),
            "pass a config made with tls_config()"
        );
        let daemon = TestDaemon::start(config).await;
        let https = format!(
            "https://127.0.0.1:{}",
            daemon.daemon.https_addr().expect("https listening").port()
        );
        (daemon, https, ca)
    }

    pub fn addr(&self) -> SocketAddr {
        self.daemon.http_addr()
    }

    pub async fn stop(self) {
        self.daemon.stop().await;
    }
}

/// [`config`] with HTTPS on 127.0.0.1 port 0, for
/// [`TestDaemon::start_tls`].
pub fn tls_config(dir: &Path, overrides: &[(&str, &str)]) -> Config {
    let mut all = vec![("MESERO_HTTP_TLS_LISTEN", "127.0.0.1:0")];
    all.extend_from_slice(overrides);
    config(dir, &all)
}

/// An HTTPS client (rustls with ring) trusting only the CA at `ca_pem`;
/// it follows no redirects.
pub fn https_client(ca_pem: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca_pem).expect("read the CA");
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .expect("https client")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("http client")
}

/// PUT a table state as `token`; returns (status, body).
pub async fn put_state(
    base: &str,
    token: Option<&str>,
    table: i64,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut req = http()
        .put(format!("{base}/api/v1/tables/{table}/state"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("PUT");
    let status = res.status().as_u16();
    let json = res.json().await.unwrap_or(serde_json::Value::Null);
    (status, json)
}

pub async fn get_json(base: &str, path: &str) -> serde_json::Value {
    let res = http()
        .get(format!("{base}{path}"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("GET");
    assert!(res.status().is_success(), "GET {path}: {}", res.status());
    res.json().await.expect("json")
}

/// `/api/v1/stats` as a viewer.
pub async fn stats(base: &str) -> serde_json::Value {
    get_json(base, "/api/v1/stats").await
}

/// Polls `GET path` (as a viewer) until `done` holds for its JSON, and
/// returns that JSON; panics after [`PATIENCE`] naming `what`.
pub async fn get_json_until(
    base: &str,
    path: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s = get_json(base, path).await;
        if done(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never showed {what}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `/api/v1/stats` until `done` holds (counters such as connections
/// and MQTT messages change shortly after the client's side sees them).
pub async fn stats_until(
    base: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    get_json_until(base, "/api/v1/stats", what, done).await
}

/// All events after `since`, paging through `/events`.
pub async fn all_events(base: &str, mut since: u64) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    loop {
        let page = get_json(base, &format!("/api/v1/events?since={since}&limit=1000")).await;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            return out;
        }
        since = page["next_since"].as_u64().expect("next_since");
        out.extend(events);
    }
}

/// A live SSE connection; messages arrive on a channel.
pub struct Sse {
    pub rx: mpsc::UnboundedReceiver<SseMessage>,
    task: tokio::task::JoinHandle<()>,
    pub status: u16,
    /// The response's headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Drop for Sse {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sse {
    /// Connects to `path` (with query) sending `headers`.
    pub async fn connect(base: &str, path: &str, headers: &[(&str, &str)]) -> Sse {
        Sse::connect_with(&reqwest::Client::new(), base, path, headers).await
    }

    /// [`Sse::connect`] with `client` (e.g. [`https_client`]).
    pub async fn connect_with(
        client: &reqwest::Client,
        base: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Sse {
        let mut req = client.get(format!("{base}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut res = req.send().await.expect("SSE connect");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut parser = SseParser::default();
            while let Ok(Some(chunk)) = res.chunk().await {
                for msg in parser.push(&chunk) {
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
            }
        });
        Sse {
            rx,
            task,
            status,
            headers,
        }
    }

    /// The next message, or None if the stream ended; panics after PATIENCE.
    pub async fn next(&mut self) -> Option<SseMessage> {
        tokio::time::timeout(PATIENCE, self.rx.recv())
            .await
            .expect("timed out waiting for an SSE message")
    }

    pub async fn next_json(&mut self) -> (SseMessage, serde_json::Value) {
        let msg = self.next().await.expect("stream ended");
        let json = serde_json::from_str(&msg.data).expect("SSE data is JSON");
        (msg, json)
    }
}

/// The real binary, started as a child process.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    pub base: String,
    /// The MQTT listener, from the daemon's log.
    pub mqtt: Option<SocketAddr>,
    /// Every line the daemon wrote to stderr so far.
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `mesero run` with the fixture config and `env`, and waits for
    /// its "http listening" log line to learn the port.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Process {
        Process::start_via(&[], dir, env)
    }

    /// [`Process::start`] through a wrapper command that execs the daemon
    /// (e.g. `prlimit --nofile=256 --`), so the pid is still the daemon's.
    pub fn start_via(wrapper: &[&str], dir: &Path, env: &[(&str, &str)]) -> Process {
        Process::try_start_via(wrapper, dir, env).unwrap_or_else(|log| panic!("{log}"))
    }

    /// [`Process::start`], or the daemon's log if it exited before it
    /// listened (e.g. its port was taken).
    pub fn try_start(dir: &Path, env: &[(&str, &str)]) -> Result<Process, String> {
        Process::try_start_via(&[], dir, env)
    }

    fn try_start_via(
        wrapper: &[&str],
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Result<Process, String> {
        let (mut child, lines) = spawn_daemon_via(wrapper, dir, env);
        let deadline = std::time::Instant::now() + PATIENCE;
        let addr: SocketAddr = loop {
            let found = lines
                .lock()
                .expect("log lines")
                .iter()
                .find_map(|l| l.split("addr=").nth(1))
                .map(|a| a.split_whitespace().next().unwrap_or("").to_string());
            if let Some(addr) = found {
                break addr.parse().expect("address parses");
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                // The stderr thread holds the other reference to `lines`
                // until it has read the last line.
                while Arc::strong_count(&lines) > 1 {
                    assert!(std::time::Instant::now() < deadline, "stderr closed");
                    std::thread::sleep(Duration::from_millis(10));
                }
                let log = lines.lock().expect("log lines").join("\n");
                return Err(format!(
                    "daemon exited ({status}) before it listened:\n{log}"
                ));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "daemon printed its address"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        // The broker starts (and logs) before the HTTP server.
        let mqtt = lines
            .lock()
            .expect("log lines")
            .iter()
            .find_map(|l| l.split(" mqtt=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        Ok(Process {
            child,
            addr,
            base: format!("http://{addr}"),
            mqtt,
            lines,
        })
    }

    /// The daemon's stderr lines so far that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.lines
            .lock()
            .expect("log lines")
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the daemon, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// Waits for the process to exit; returns its exit status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "daemon did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `mesero run` on the fixture config written into `dir`, with its
/// database there, HTTP on a loopback port of the OS's choosing, none of
/// the runner's systemd or config variables, and `env` on top. A thread
/// drains stderr into the returned lines, so the child never blocks on a
/// full pipe.
pub fn spawn_daemon(dir: &Path, env: &[(&str, &str)]) -> (Child, Arc<Mutex<Vec<String>>>) {
    spawn_daemon_via(&[], dir, env)
}

/// [`spawn_daemon`] as the last argument of `wrapper` (empty: directly).
pub fn spawn_daemon_via(
    wrapper: &[&str],
    dir: &Path,
    env: &[(&str, &str)],
) -> (Child, Arc<Mutex<Vec<String>>>) {
    let config_path = dir.join("mesero.toml");
    std::fs::write(&config_path, FIXTURE).expect("write config");
    let bin = env!("CARGO_BIN_EXE_mesero");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut child = command
        .args(["run", "--config"])
        .arg(&config_path)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .env_remove("MESERO_CONFIG")
        .env("MESERO_STORAGE_PATH", db_path(dir))
        .env("MESERO_HTTP_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn mesero");
    let stderr = child.stderr.take().expect("stderr");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            kept.lock().expect("log lines").push(line);
        }
    });
    (child, lines)
}

/// `kill -<signal> <pid>`.
pub fn send_signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{signal} failed");
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("mesero.db")
}
