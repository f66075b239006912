//! The bench configuration, and a daemon the tool runs itself (crash loop).

use anyhow::{Context as _, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The staff token and MQTT staff user of the bench config.
pub const TOKEN: &str = "bench-staff";
pub const MQTT_USER: (&str, &str) = ("bench-staff", "bench-staff");

#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArgs {
    /// HTTP port on 127.0.0.1.
    #[arg(long, default_value_t = 18080)]
    pub http: u16,
    /// MQTT port on 127.0.0.1.
    #[arg(long, default_value_t = 18830)]
    pub mqtt: u16,
    /// The SQLite file.
    #[arg(long, default_value = "/tmp/mesero-bench/mesero.db")]
    pub db: PathBuf,
    /// Tables 1..=N without sensors (HTTP and MQTT changes).
    #[arg(long, default_value_t = 50)]
    pub tables: usize,
    /// Sensor nodes node-1..node-N, kind mqtt, on tables 1001..
    #[arg(long, default_value_t = 200)]
    pub nodes: usize,
}

/// A config for load: loopback ports, the caps raised for thousands of
/// streams and MQTT clients, no occupancy delays (each flip of a node is
/// an event), one staff token and MQTT user, anonymous MQTT for nodes.
pub fn config(a: &ConfigArgs) -> String {
    let mut s = format!(
        r#"# Written by mesero-bench: a load configuration, not for a restaurant.
[site]
id = "bench"
timezone = "UTC"

[http]
listen = "127.0.0.1:{http}"
max_connections = 12000
max_connections_per_ip = 12000
max_streams = 11000

[storage]
path = "{db}"

[occupancy]
occupy_after = "0s"
release_after = "0s"

[mqtt]
listen = "127.0.0.1:{mqtt}"
allow_anonymous = true
max_connections = 5000
max_pending = 5000
max_pending_per_ip = 5000

[[mqtt.users]]
name = "{user}"
role = "staff"
password = "{password}"

[log]
level = "warn"

[auth]
anonymous = "viewer"

[[auth.tokens]]
name = "bench"
role = "staff"
token = "{TOKEN}"
"#,
        http = a.http,
        mqtt = a.mqtt,
        db = a.db.display(),
        user = MQTT_USER.0,
        password = MQTT_USER.1,
    );
    for id in 1..=a.tables {
        let _ = write!(s, "\n[[tables]]\nid = {id}\nzone = \"bench\"\n");
    }
    for n in 1..=a.nodes {
        let _ = write!(
            s,
            "\n[[tables]]\nid = {}\nzone = \"sensors\"\n\n[[sensors]]\nid = \"node-{n}\"\nkind = \"mqtt\"\ntable = {}\n",
            1000 + n,
            1000 + n
        );
    }
    s
}

/// A free loopback port (bound, then released for the daemon).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `mesero run` on a config file, its stderr appended to a log file.
pub struct Daemon {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    pub child: Option<Child>,
}

impl Daemon {
    pub fn new(bin: PathBuf, dir: &Path) -> Daemon {
        Daemon {
            bin,
            config: dir.join("mesero.toml"),
            log: dir.join("daemon.log"),
            child: None,
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("MESERO_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9`, and reaps it.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, and waits for the exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Waits until `/healthz` answers, or the daemon exits.
    pub async fn ready(&mut self, base: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client
                .get(format!("{base}/healthz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(started.elapsed());
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("the daemon exited ({status}); see {}", self.log.display());
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the daemon did not answer /healthz within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `PRAGMA integrity_check` on the file, with the daemon stopped.
pub fn integrity(db: &Path) -> anyhow::Result<String> {
    let conn = rusqlite::Connection::open(db)?;
    Ok(conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?)
}
