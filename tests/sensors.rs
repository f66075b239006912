//! The daemon with sensors, on a real SQLite file and real HTTP clients:
//! scripted `sim` sensors drive `table.state` events onto the SSE stream
//! in order and with the configured delays (tokio time paused and moved by
//! the test), hardware sensors configured off a Pi only fault,
//! `mesero sensors scan` off a Pi says why it cannot run, and `mesero
//! sensors watch` off a Pi prints a sim sensor's changes, stops on SIGTERM
//! and refuses a GPIO config.

mod common;

use common::*;
use mesero::config::Config;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// Two scripted tables, occupy after 10 s, release after 60 s:
/// - table 1: somebody from 5 s to 20 s → occupied at 15 s, free at 80 s;
/// - table 2: presence flickers (3–8 s, 9–16 s: each shorter than
///   occupy_after) and then holds from 17 s to 40 s → occupied at 27 s,
///   free at 100 s.
const SCRIPTED: &str = r#"
[[sensors]]
id = "sim-1"
kind = "sim"
table = 1
script = [["0s", false], ["5s", true, 2], ["20s", false, 0]]

[[sensors]]
id = "sim-2"
kind = "sim"
table = 2
script = [
  ["0s", false], ["3s", true, 1], ["8s", false, 0], ["9s", true, 1],
  ["16s", false, 0], ["17s", true, 3], ["40s", false, 0],
]
"#;

fn config_with(dir: &Path, sensors: &str) -> Config {
    let env = [
        ("MESERO_STORAGE_PATH", db_path(dir).display().to_string()),
        ("MESERO_OCCUPANCY_OCCUPY_AFTER", "10s".into()),
        ("MESERO_OCCUPANCY_RELEASE_AFTER", "60s".into()),
        // The clock is moved by hand: no heartbeat needed.
        ("MESERO_HTTP_HEARTBEAT", "1h".into()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    Config::from_toml(
        Path::new("tests/fixtures/test.toml"),
        &format!("{FIXTURE}\n{sensors}"),
        env,
    )
    .expect("config with sensors")
}

/// Keeps tokio's paused clock from auto-advancing while it lives (a
/// running blocking task inhibits auto-advance), so time moves only by
/// `tokio::time::advance`: the SQLite writer thread's real latency cannot
/// leak into the daemon's timers.
struct FrozenClock(Option<std::sync::mpsc::Sender<()>>);

fn freeze_clock() -> FrozenClock {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    FrozenClock(Some(tx))
}

impl Drop for FrozenClock {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// With the clock frozen no tokio timeout can fire; this real-time
/// watchdog ends a hung test instead.
struct Watchdog(Option<std::sync::mpsc::Sender<()>>);

fn watchdog(limit: Duration) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            eprintln!("sensors test made no progress in {limit:?}; aborting");
            std::process::exit(1);
        }
    });
    Watchdog(Some(tx))
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// Returns once every change queued before it has been committed (the
/// writer takes changes in order; an unchanged PATCH commits nothing).
async fn barrier(base: &str) {
    let res = http()
        .patch(format!("{base}/api/v1/tables/4"))
        .bearer_auth(ADMIN)
        .json(&json!({ "zone": "terrace" }))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(res.status(), 200, "barrier PATCH");
}

fn state_of(tables: &Value, id: i64) -> String {
    tables
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["id"] == id))
        .and_then(|t| t["state"].as_str())
        .unwrap_or("missing")
        .to_string()
}

#[tokio::test(start_paused = true)]
async fn scripted_presence_reaches_the_stream_with_the_configured_delays() {
    let _watchdog = watchdog(Duration::from_secs(120));
    let _frozen = freeze_clock();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config_with(dir.path(), SCRIPTED)).await;
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream?types=table.state",
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    assert_eq!(sse.status, 200);
    let (msg, _) = sse.next_json().await;
    assert_eq!(msg.event.as_deref(), Some("snapshot"));

    // Walk the clock one second at a time and note when each table's
    // committed state changes.
    let mut states = [("1", "free".to_string()), ("2", "free".to_string())];
    let mut changes = Vec::new();
    for second in 0..=110u64 {
        if second > 0 {
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        barrier(&d.base).await;
        let tables = get_json(&d.base, "/api/v1/tables").await;
        for (id, state) in &mut states {
            let now = state_of(&tables, id.parse().expect("id"));
            if now != *state {
                changes.push((second, id.to_string(), now.clone()));
                *state = now;
            }
        }
    }
    let expected = [
        (15, "1", "occupied"),
        (27, "2", "occupied"),
        (80, "1", "free"),
        (100, "2", "free"),
    ];
    assert_eq!(
        changes,
        expected.map(|(s, t, st)| (s, t.to_string(), st.to_string())),
        "(second, table, state) as committed"
    );

    // The stream carried exactly these, in order, credited to the sensors.
    for (table, from, to, sensor, people) in [
        (1, "free", "occupied", "sim-1", json!(2)),
        (2, "free", "occupied", "sim-2", json!(3)),
        (1, "occupied", "free", "sim-1", Value::Null),
        (2, "occupied", "free", "sim-2", Value::Null),
    ] {
        let (msg, event) = sse.next_json().await;
        assert_eq!(msg.event.as_deref(), Some("table.state"), "{event}");
        assert_eq!(event["table"], table, "{event}");
        assert_eq!(event["data"]["from"], from, "{event}");
        assert_eq!(event["data"]["to"], to, "{event}");
        assert_eq!(event["actor"], format!("sensor:{sensor}"), "{event}");
        assert_eq!(event["data"]["table"]["people"], people, "{event}");
    }
    assert!(
        sse.rx.try_recv().is_err(),
        "no other table.state event (flicker on table 2 produced none)"
    );

    // Per-sensor health in the stats.
    let stats = get_json(&d.base, "/api/v1/stats").await;
    let sensors = stats["sensors"].as_array().expect("sensors");
    assert_eq!(sensors.len(), 2);
    assert_eq!(sensors[0]["id"], "sim-1");
    assert_eq!(sensors[0]["health"], "ok");
    assert_eq!(sensors[0]["kind"], "sim");
    d.stop().await;
}

/// A staff change wins over the sensor at once; the sensor takes the
/// table back only after a full `occupy_after` of presence from then.
#[tokio::test(start_paused = true)]
async fn a_staff_change_wins_and_restarts_the_hysteresis() {
    let _watchdog = watchdog(Duration::from_secs(120));
    let _frozen = freeze_clock();
    let dir = tempfile::tempdir().expect("tempdir");
    let sensors =
        "[[sensors]]\nid = \"sim-1\"\nkind = \"sim\"\ntable = 1\nscript = [[\"0s\", true, 2]]\n";
    let d = TestDaemon::start(config_with(dir.path(), sensors)).await;
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream?types=table.state",
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    let _ = sse.next_json().await;
    let mut state = "free".to_string();
    let mut changes = Vec::new();
    for second in 0..=40u64 {
        if second > 0 {
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        if second == 20 {
            let (status, body) = put_state(&d.base, Some(STAFF), 1, r#"{"state": "free"}"#).await;
            assert_eq!(status, 200, "{body}");
        }
        barrier(&d.base).await;
        let now = state_of(&get_json(&d.base, "/api/v1/tables").await, 1);
        if now != state {
            changes.push((second, now.clone()));
            state = now;
        }
    }
    assert_eq!(
        changes,
        [(10, "occupied"), (20, "free"), (30, "occupied")].map(|(s, st)| (s, st.to_string()))
    );
    for actor in ["sensor:sim-1", "staff:staff", "sensor:sim-1"] {
        let (_, event) = sse.next_json().await;
        assert_eq!(event["actor"], actor, "{event}");
    }
    d.stop().await;
}

#[test]
fn sensors_scan_off_a_pi_fails_with_one_clear_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesero"))
        .args(["sensors", "scan"])
        .env_remove("MESERO_CONFIG")
        .output()
        .expect("run mesero sensors scan");
    assert!(!out.status.success(), "must fail off a Pi");
    assert_eq!(out.status.code(), Some(1), "an error exit, not a panic");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    assert!(
        lines[0].starts_with("mesero: ") && lines[0].contains("Raspberry Pi"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

/// GPIO and I2C sensors configured on a machine that is not a Pi: each
/// faults once (`sensor.fault`, actor `sensor:<id>`), the tables they watch
/// become unknown, and the daemon keeps serving.
const HARDWARE: &str = r#"
[[sensors]]
id = "pir-1"
kind = "gpio"
table = 1
pin = 17
fault_after = 1

[[sensors]]
id = "call-1"
kind = "button"
table = 1
pin = 27
fault_after = 1

[[sensors]]
id = "thermal"
kind = "amg8833"
table = 2
fault_after = 1

[[sensors]]
id = "tof-3"
kind = "vl53l0x"
table = 3
fault_after = 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardware_sensors_off_a_pi_fault_without_taking_the_daemon_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config_with(dir.path(), HARDWARE)).await;
    let mut sse = Sse::connect(
        &d.base,
        "/api/v1/stream?since=0&types=sensor,table.state",
        &[("authorization", "Bearer viewer-token")],
    )
    .await;
    let mut faulted = std::collections::BTreeMap::new();
    let mut unknown = std::collections::BTreeSet::new();
    while faulted.len() < 4 || unknown.len() < 3 {
        let (msg, event) = sse.next_json().await;
        match msg.event.as_deref() {
            Some("sensor.fault") => {
                let id = event["data"]["sensor"]
                    .as_str()
                    .expect("sensor")
                    .to_string();
                assert_eq!(event["actor"], format!("sensor:{id}"));
                let reason = event["data"]["reason"].as_str().unwrap_or("").to_string();
                assert!(faulted.insert(id, reason).is_none(), "one fault per sensor");
            }
            Some("table.state") => {
                assert_eq!(event["data"]["to"], "unknown", "{event}");
                unknown.insert(event["table"].as_i64().expect("table"));
            }
            other => panic!("unexpected {other:?}: {event}"),
        }
    }
    assert!(
        faulted["pir-1"].contains("not a Raspberry Pi"),
        "{faulted:?}"
    );
    assert!(faulted["thermal"].contains("/dev/i2c-1"), "{faulted:?}");
    assert_eq!(unknown, [1, 2, 3].into());

    let stats = get_json(&d.base, "/api/v1/stats").await;
    for s in stats["sensors"].as_array().expect("sensors") {
        assert_eq!(s["health"], "faulted", "{s}");
        assert_eq!(s["faults"], 1, "{s}");
    }
    let health = http()
        .get(format!("{}/healthz", d.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    d.stop().await;
}

/// `mesero sensors watch` as the real binary, with `config` (the fixture
/// plus `sensors`) written into `dir`: stdout piped, stderr kept.
fn sensors_watch(dir: &Path, sensors: &str) -> std::process::Child {
    let config = dir.join("mesero.toml");
    std::fs::write(&config, format!("{FIXTURE}\n{sensors}")).expect("write config");
    std::process::Command::new(env!("CARGO_BIN_EXE_mesero"))
        .args(["sensors", "watch", "--config"])
        .arg(&config)
        .env_remove("MESERO_CONFIG")
        .env("MESERO_STORAGE_PATH", db_path(dir))
        .env("MESERO_OCCUPANCY_OCCUPY_AFTER", "0s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mesero sensors watch")
}

#[test]
fn sensors_watch_off_a_pi_prints_a_scripted_sim_s_transition_and_exits_0_on_sigterm() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = "[[sensors]]\nid = \"sim-3\"\nkind = \"sim\"\ntable = 3\nscript = [[\"0s\", false], [\"0s\", true, 2]]\n";
    let mut watch = sensors_watch(dir.path(), sim);
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let transition = "table 3: free → occupied (sensor:sim-3, 2 people)";
    while !seen.iter().any(|l: &String| l.ends_with(transition)) {
        match lines.recv_timeout(PATIENCE) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("no {transition:?} ({e}); printed so far: {seen:#?}"),
        }
    }
    assert_eq!(
        seen[0], "watching 1 sensor(s); tables start free; Ctrl-C to stop",
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l.ends_with("sim-3: present, 2 people")),
        "the reading is printed before the change: {seen:#?}"
    );
    send_signal(watch.id(), "TERM");
    let out = watch.wait_with_output().expect("sensors watch exits");
    assert_eq!(
        out.status.code(),
        Some(0),
        "SIGTERM stops it cleanly: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sensors_watch_of_a_gpio_config_off_a_pi_exits_1_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gpio = "[[sensors]]\nid = \"pir-1\"\nkind = \"gpio\"\ntable = 1\npin = 17\n";
    let out = sensors_watch(dir.path(), gpio)
        .wait_with_output()
        .expect("sensors watch exits");
    assert_eq!(out.status.code(), Some(1), "an error exit, not a panic");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    assert!(
        lines[0].starts_with("mesero: sensors watch needs a Raspberry Pi"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing printed before the refusal");
}
