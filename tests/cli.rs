//! The `mesero` command as a user runs it: the daemon's shutdown on
//! SIGTERM, `db backup`, `watch`, `config example`, `--version`.

mod common;

use common::*;
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mesero() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mesero"));
    cmd.env_remove("MESERO_CONFIG");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_streams_and_exits_0_within_5s() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = Process::start(dir.path(), &[]);
    let mut sse = Sse::connect(&daemon.base, "/api/v1/stream", &[]).await;
    sse.next_json().await;
    let ws_url = format!("ws://{}/api/v1/ws", daemon.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
    let (status, body) = put_state(&daemon.base, Some(STAFF), 3, r#"{"state":"occupied"}"#).await;
    assert_eq!(status, 200);
    let seq = body["seq"].as_u64().expect("seq");

    let asked = Instant::now();
    daemon.signal("TERM");
    let exit = daemon.wait();
    let took = asked.elapsed();
    eprintln!("SIGTERM -> exit in {took:?}");
    assert!(exit.success(), "exit status {exit:?}");
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");

    // Both streams were ended by the daemon, not left hanging.
    while let Some(msg) = sse.next().await {
        assert_ne!(msg.event.as_deref(), Some("snapshot"));
    }
    use futures_util::StreamExt as _;
    while let Some(Ok(frame)) = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("ws ends")
    {
        if frame.is_close() {
            break;
        }
    }

    // The acknowledged change is on disk and the log says the daemon stopped
    // cleanly (the writer flushed).
    let conn = rusqlite::Connection::open(db_path(dir.path())).expect("open db");
    let kind: String = conn
        .query_row(
            "SELECT type FROM events WHERE seq = ?1",
            [seq as i64],
            |r| r.get(0),
        )
        .expect("acked event is stored");
    assert_eq!(kind, "table.state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_backup_copies_the_live_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Process::start(dir.path(), &[]);
    let (status, _) = put_state(&daemon.base, Some(STAFF), 2, r#"{"state":"dirty"}"#).await;
    assert_eq!(status, 200);

    let copy = dir.path().join("copy.db");
    let out = mesero()
        .args(["db", "backup"])
        .arg(&copy)
        .arg("--config")
        .arg(dir.path().join("mesero.toml"))
        .env("MESERO_STORAGE_PATH", db_path(dir.path()))
        .output()
        .expect("mesero db backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let conn = rusqlite::Connection::open(&copy).expect("open copy");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(check, "ok");
    let state: String = conn
        .query_row("SELECT state FROM tables WHERE id = 2", [], |r| r.get(0))
        .expect("table 2 in the copy");
    assert_eq!(state, "dirty");
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_live_events_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe port");
        probe.local_addr().expect("addr")
    };
    let daemon = Process::start(dir.path(), &[("MESERO_HTTP_LISTEN", &listen.to_string())]);
    let mut watch = mesero()
        .args(["watch", "--url", &daemon.base])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mesero watch");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().expect("stdout");
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
    let next_line = |want: &str| loop {
        let line = rx.recv_timeout(PATIENCE).expect("watch printed a line");
        if line.contains(want) {
            return line;
        }
    };
    next_line("snapshot");
    put_state(&daemon.base, Some(STAFF), 4, r#"{"state":"occupied"}"#).await;
    let line = next_line("table.state");
    assert!(line.contains("table 4 free -> occupied"), "{line}");

    // The daemon restarts on the same port; watch reconnects and resumes,
    // so a change made while it was down still shows up.
    drop(daemon);
    let daemon = Process::start(dir.path(), &[("MESERO_HTTP_LISTEN", &listen.to_string())]);
    put_state(&daemon.base, Some(STAFF), 4, r#"{"state":"free"}"#).await;
    let line = next_line("table 4 occupied -> free");
    assert!(!line.contains("snapshot"));
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn version_and_config_example() {
    let out = mesero().arg("--version").output().expect("--version");
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        version.trim(),
        format!("mesero {}", env!("CARGO_PKG_VERSION"))
    );

    let out = mesero()
        .args(["config", "example"])
        .output()
        .expect("config example");
    assert!(out.status.success());
    let example = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        example,
        std::fs::read_to_string("config/mesero.toml").expect("dev config")
    );
    let config =
        mesero::config::Config::from_toml(std::path::Path::new("example"), &example, Vec::new())
            .expect("the example is valid");
    assert_eq!(config.tables.len(), 12);
}

#[test]
fn check_takes_the_file_either_way_and_a_bad_config_exits_78() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (good, bad, missing) = (path("good.toml"), path("bad.toml"), path("missing.toml"));
    std::fs::write(&good, FIXTURE).expect("write");
    std::fs::write(&bad, "[http]\nlisen = \"0.0.0.0:80\"\n").expect("write");
    let run = |args: &[&str]| mesero().args(args).output().expect("run mesero");

    for args in [["check", &good].as_slice(), &["check", "--config", &good]] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("tables (seed): 4"));
    }

    // EX_CONFIG, so that systemd (RestartPreventExitStatus=78) does not
    // restart a daemon that cannot start; for `check` and `run` alike.
    for args in [
        ["check", &bad].as_slice(),
        &["check", &missing],
        &["run", "--config", &bad],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {out:?}");
    }

    // Anything else (here: the port is taken) is an ordinary failure that
    // a restart may fix.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let out = mesero()
        .args(["run", "--config", &good])
        .env("MESERO_STORAGE_PATH", path("mesero.db"))
        .env(
            "MESERO_HTTP_LISTEN",
            taken.local_addr().expect("addr").to_string(),
        )
        .output()
        .expect("run mesero");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn output_to_a_closed_pipe_or_full_disk_is_not_a_crash() {
    // The reader goes away first (`mesero check | head -1` on a slow
    // pipe): a quiet exit 0, not a panic.
    let mut child = mesero()
        .args(["check", "config/mesero.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Other write errors are one line and a non-zero exit.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = mesero()
        .args(["config", "example"])
        .stdout(full)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("No space left"), "{stderr}");
}
