//! The `mesero` command as a user runs it: the daemon's shutdown on
//! SIGTERM, `db backup`, `watch`, `config example`, `--version`.

mod common;

use common::*;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mesero() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mesero"));
    cmd.env_remove("MESERO_CONFIG");
    cmd
}

/// How an SSE response ended.
#[derive(Debug, PartialEq)]
enum SseEnd {
    /// The server finished the body (the last chunk of a chunked body).
    Clean,
    /// The connection broke first (a reset, a close mid-body).
    Broken(String),
}

/// Reads an SSE response to its end in a task: messages on the channel,
/// then how it ended.
fn sse_reader(
    mut res: reqwest::Response,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<mesero::sse::SseMessage>,
    tokio::task::JoinHandle<SseEnd>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut parser = mesero::sse::SseParser::default();
        loop {
            match res.chunk().await {
                Ok(Some(chunk)) => {
                    for msg in parser.push(&chunk) {
                        let _ = tx.send(msg);
                    }
                }
                Ok(None) => return SseEnd::Clean,
                Err(e) => return SseEnd::Broken(format!("{e:#}")),
            }
        }
    });
    (rx, task)
}

async fn next_sse(
    sse: &mut tokio::sync::mpsc::UnboundedReceiver<mesero::sse::SseMessage>,
) -> Option<mesero::sse::SseMessage> {
    tokio::time::timeout(PATIENCE, sse.recv())
        .await
        .expect("an SSE message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_streams_and_exits_0_within_5s() {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = Process::start(dir.path(), &[]);
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/stream", daemon.base))
        .send()
        .await
        .expect("SSE connect");
    assert_eq!(res.status(), 200);
    let (mut sse, sse_end) = sse_reader(res);
    let snapshot = next_sse(&mut sse).await;
    assert_eq!(
        snapshot.expect("snapshot").event.as_deref(),
        Some("snapshot")
    );
    let ws_url = format!("ws://{}/api/v1/ws", daemon.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
    let mut next_ws = async || {
        tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a WebSocket frame")
    };
    let (status, body) = put_state(&daemon.base, Some(STAFF), 3, r#"{"state":"occupied"}"#).await;
    assert_eq!(status, 200);
    let seq = body["seq"].as_u64().expect("seq");

    // The change reaches both streams before the daemon is asked to stop.
    loop {
        let msg = next_sse(&mut sse).await.expect("SSE open");
        if msg.id == Some(seq.to_string()) {
            break;
        }
    }
    loop {
        match next_ws().await {
            Some(Ok(Message::Text(text))) => {
                let event: serde_json::Value = serde_json::from_str(&text).expect("json");
                if event["seq"] == seq {
                    break;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("the WebSocket ended before seq {seq}: {other:?}"),
        }
    }

    let asked = Instant::now();
    daemon.signal("TERM");

    // The WebSocket gets a Close with 1001 (going away): nothing else but
    // pings may come first.
    let close = loop {
        match next_ws().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => break other,
        }
    };
    match close {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
        }
        other => panic!("expected Close(1001), got {other:?}"),
    }
    // The SSE response is finished by the server, not cut off.
    let end = tokio::time::timeout(PATIENCE, sse_end)
        .await
        .expect("the SSE stream ended")
        .expect("reader");
    assert_eq!(end, SseEnd::Clean);
    while let Ok(msg) = sse.try_recv() {
        assert_ne!(msg.event.as_deref(), Some("snapshot"));
    }

    let exit = daemon.wait();
    let took = asked.elapsed();
    eprintln!("SIGTERM -> exit in {took:?}");
    assert!(exit.success(), "exit status {exit:?}");
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");

    // The daemon said it stopped, which it does only once the writer has
    // answered its shutdown after the final commit and closed the database:
    // a `kill -9` would leave the change on disk too, but not this line.
    // (The writer's own "writer stopped" comes after that answer, so the
    // process may exit before printing it.)
    let deadline = Instant::now() + PATIENCE;
    while daemon.log_lines("mesero::daemon: stopped").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the daemon logged that it stopped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The acknowledged change is on disk.
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

/// A loopback port that was free when asked.
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("probe port")
        .local_addr()
        .expect("addr")
}

/// Whether the daemon's log says its port was taken.
fn port_taken(log: &str) -> bool {
    log.contains("in use")
}

/// The daemon on a port of its own that a restart can bind again. The port
/// is free when chosen, but anything may take it before the daemon binds
/// it: then another one is chosen.
fn start_on_a_fixed_port(dir: &std::path::Path) -> (Process, SocketAddr) {
    for _attempt in 0..10 {
        let listen = free_port();
        match Process::try_start(dir, &[("MESERO_HTTP_LISTEN", &listen.to_string())]) {
            Ok(daemon) => return (daemon, listen),
            Err(log) if port_taken(&log) => eprintln!("{listen} was taken; another"),
            Err(log) => panic!("{log}"),
        }
    }
    panic!("no free port in 10 attempts");
}

/// The daemon again on `listen`, retrying while something else briefly
/// holds the port (an outgoing connection's ephemeral port).
fn restart_on(dir: &std::path::Path, listen: SocketAddr) -> Process {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match Process::try_start(dir, &[("MESERO_HTTP_LISTEN", &listen.to_string())]) {
            Ok(daemon) => return daemon,
            Err(log) if port_taken(&log) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(log) => panic!("{log}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_live_events_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (daemon, listen) = start_on_a_fixed_port(dir.path());
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
    // Every line up to and including the first that contains `want`.
    let lines_until = |want: &str| {
        let mut lines = Vec::new();
        loop {
            let line = rx.recv_timeout(PATIENCE).expect("watch printed a line");
            let done = line.contains(want);
            lines.push(line);
            if done {
                return lines;
            }
        }
    };
    lines_until("snapshot");
    put_state(&daemon.base, Some(STAFF), 4, r#"{"state":"occupied"}"#).await;
    let lines = lines_until("table.state");
    let line = lines.last().expect("a line");
    assert!(line.contains("table 4 free -> occupied"), "{line}");

    // The daemon restarts on the same port; watch reconnects and resumes
    // by seq: the restart's own event and a change made while it was down
    // show up, and no new snapshot is printed (it would mean watch started
    // over instead of resuming).
    drop(daemon);
    let daemon = restart_on(dir.path(), listen);
    put_state(&daemon.base, Some(STAFF), 4, r#"{"state":"free"}"#).await;
    let lines = lines_until("table 4 occupied -> free");
    assert!(
        lines.iter().all(|l| !l.contains("snapshot")),
        "no snapshot after the restart: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("system.started")),
        "the restart's system.started: {lines:?}"
    );
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
    // pipe): a quiet exit 0, not a panic. The pipe's read end belongs to
    // a `true` that has exited before mesero starts, so mesero's very
    // first write meets a closed pipe (closing our own read end after the
    // spawn could come after mesero had written everything).
    let mut reader = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn true");
    let write_end = reader.stdin.take().expect("pipe");
    assert!(reader.wait().expect("true exits").success());
    let out = mesero()
        .args(["check", "config/mesero.toml"])
        .stdout(Stdio::from(write_end))
        .output()
        .expect("run mesero");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
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

/// Every string key of the documented config whose default is a duration,
/// as (section, key): whatever a later change adds is covered too.
fn duration_keys() -> Vec<(String, String)> {
    let example: toml::Table = std::fs::read_to_string("config/mesero.toml")
        .expect("dev config")
        .parse()
        .expect("dev config parses");
    let mut keys = Vec::new();
    for (section, value) in &example {
        let Some(table) = value.as_table() else {
            continue;
        };
        for (key, value) in table {
            if value
                .as_str()
                .is_some_and(|v| humantime::parse_duration(v).is_ok())
            {
                keys.push((section.clone(), key.clone()));
            }
        }
    }
    assert!(keys.len() >= 5, "found the duration keys: {keys:?}");
    keys
}

/// Runs `cmd` to its end (killing it after PATIENCE) and returns its output.
fn finish(mut cmd: Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mesero");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "mesero kept running: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("wait")
}

/// A refused config: exit 78 and one line on stderr that starts with `key`.
fn assert_refused(out: &std::process::Output, key: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{what}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{what}: {stderr}");
    assert!(
        stderr.starts_with(&format!("mesero: {key}")),
        "{what}: names {key}: {stderr}"
    );
    assert!(
        stderr.contains("at most"),
        "{what}: says the bound: {stderr}"
    );
}

#[test]
fn an_over_large_duration_is_refused_naming_the_key_by_check_and_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let huge = "500000000000y";
    for (section, key) in duration_keys() {
        let dotted = format!("{section}.{key}");
        let var = format!("MESERO_{}_{}", section, key).to_uppercase();

        let mut doc: toml::Table = FIXTURE.parse().expect("fixture");
        doc.entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("a section")
            .insert(key.clone(), toml::Value::String(huge.into()));
        let file = dir.path().join(format!("{section}-{key}.toml"));
        std::fs::write(&file, toml::to_string(&doc).expect("toml")).expect("write");
        let mut cmd = mesero();
        cmd.arg("check").arg(&file);
        assert_refused(&finish(cmd), &dotted, &format!("{dotted} in the file"));

        let good = dir.path().join("good.toml");
        std::fs::write(&good, FIXTURE).expect("write");
        let mut cmd = mesero();
        cmd.arg("check").arg(&good).env(&var, huge);
        assert_refused(&finish(cmd), &format!("{dotted} (from {var})"), &var);
    }

    // `run` refuses the same values before it starts anything (it used to
    // abort on the first reading: "overflow when adding duration to
    // instant").
    for var in ["MESERO_OCCUPANCY_OCCUPY_AFTER", "MESERO_HTTP_WS_PING"] {
        let mut cmd = mesero();
        cmd.args(["run", "--config"])
            .arg(dir.path().join("good.toml"))
            .env("MESERO_STORAGE_PATH", dir.path().join("run.db"))
            .env("MESERO_HTTP_LISTEN", "127.0.0.1:0")
            .env(var, huge);
        let out = finish(cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{var}: {stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
}

#[test]
fn an_environment_variable_that_is_not_utf8_is_named_or_ignored() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, FIXTURE).expect("write");
    let bad = std::ffi::OsStr::from_bytes(b"127.0.0.1:\xff");

    // Another program's variable: none of ours, so `check` passes.
    let mut cmd = mesero();
    cmd.arg("check").arg(&good).env("OTHER_TOOL", bad);
    let out = finish(cmd);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // One of ours: one line naming it, exit 78 (it used to panic in
    // `std::env::vars`).
    let mut cmd = mesero();
    cmd.arg("check").arg(&good).env("MESERO_HTTP_LISTEN", bad);
    let out = finish(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("mesero: MESERO_HTTP_LISTEN"), "{stderr}");
}

/// A tiny SSE server of another make: CRLF line ends, a CR and its LF in
/// different chunks, and multi-byte characters cut between chunks (each
/// piece is one HTTP chunk, so the client sees these cuts).
async fn odd_sse_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stream: Vec<u8> = [
        "retry: 50\r\n\r\n",
        "id: 1\r\nevent: note\r\ndata: señal ✓\r\n\r\n",
        "id: 2\r\nevent: table.state\r\ndata: ",
        r#"{"seq":2,"ts":"T","type":"table.state","table":4,"actor":"staff:María","data":{"from":"free","to":"occupied"}}"#,
        "\r\n\r\n",
        "id: 3\r\nevent: table.state\r\ndata: ",
        r#"{"seq":3,"ts":"T","type":"table.state","table":4,"actor":"x\n#99 forged","data":{"from":"a","to":"b"}}"#,
        "\r\n\r\n",
    ]
    .concat()
    .into_bytes();
    // Cut right after the first byte of each multi-byte character and
    // between every CR and LF.
    let mut pieces = Vec::new();
    let mut from = 0;
    for i in 1..stream.len() {
        let lead = stream[i - 1] >= 0xC0;
        let crlf = stream[i - 1] == b'\r' && stream[i] == b'\n';
        if lead || crlf {
            pieces.push(stream[from..i].to_vec());
            from = i;
        }
    }
    pieces.push(stream[from..].to_vec());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            if socket.read(&mut byte).await.expect("read") == 0 {
                return;
            }
            request.push(byte[0]);
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.expect("write");
        for piece in pieces {
            let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
            chunk.extend_from_slice(&piece);
            chunk.extend_from_slice(b"\r\n");
            socket.write_all(&chunk).await.expect("write");
            socket.flush().await.expect("flush");
        }
        // Keep the stream open: the test ends it.
        std::future::pending::<()>().await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reads_crlf_framing_and_characters_split_across_chunks() {
    let addr = odd_sse_server().await;
    let mut watch = mesero()
        .args(["watch", "--url", &format!("http://{addr}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mesero watch");
    let stdout = watch.stdout.take().expect("stdout");
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let last = line.starts_with("#3 ");
            lines.push(line);
            if last {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(PATIENCE, lines).await;
    // Killed first, so that a failure does not leave the reader blocked.
    let _ = watch.kill();
    let _ = watch.wait();
    let lines = lines
        .expect("watch printed the three events")
        .expect("reader");
    assert_eq!(
        lines,
        vec![
            "#1 note señal ✓".to_string(),
            "#2 T table.state table 4 free -> occupied by staff:María".into(),
            // A newline a peer put in a string cannot start a line of its own.
            r"#3 T table.state table 4 a -> b by x\n#99 forged".into(),
        ]
    );
}

/// Names of this process's threads.
fn threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

/// Whether a TCP socket of this process is bound to `port`: the socket
/// inodes among /proc/self/fd matched against /proc/self/net/tcp{,6}.
/// Binding the port again would not tell: once freed, any other test or
/// program binding port 0 may be given it.
fn bound_here(port: u16) -> bool {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_str()?;
            Some(
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .any(|table| {
            table.lines().skip(1).any(|row| {
                let fields: Vec<&str> = row.split_whitespace().collect();
                let local = fields
                    .get(1)
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| u16::from_str_radix(p, 16).ok());
                local == Some(port) && fields.get(9).is_some_and(|i| inodes.contains(*i))
            })
        })
}

/// What a start-up that did not finish must leave behind: nothing.
async fn assert_nothing_left(dir: &std::path::Path, ports: &[std::net::SocketAddr]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left: Vec<String> = threads()
            .into_iter()
            .filter(|t| t.starts_with("mesero-"))
            .collect();
        let wal = dir.join("mesero.db-wal").exists();
        let held: Vec<u16> = ports
            .iter()
            .map(|p| p.port())
            .filter(|&p| bound_here(p))
            .collect();
        if left.is_empty() && !wal && held.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running: {left:?}; database still open: {wal}; ports still held: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let conn = rusqlite::Connection::open(db_path(dir)).expect("open db");
    conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
        .expect("the database is not locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_up_that_fails_or_is_abandoned_half_way_leaves_nothing_running() {
    use mesero::daemon::Daemon;
    use mesero::systemd::Supervision;

    // Late error: the writer, engine and sensors run and HTTP is bound
    // when the MQTT port turns out to be taken.
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mqtt = taken.local_addr().expect("addr").to_string();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http_addr = http.local_addr().expect("addr");
    assert!(bound_here(http_addr.port()), "the check sees a held port");
    let cfg = config(dir.path(), &[("MESERO_MQTT_LISTEN", &mqtt)]);
    let err = Daemon::start(cfg, Some(http), Supervision::none())
        .await
        .err()
        .expect("start-up fails");
    assert!(format!("{err:#}").contains("mqtt.listen"), "{err:#}");
    assert_nothing_left(dir.path(), &[http_addr]).await;
    drop(taken);

    // Abandoned: the caller drops the start future (a stop requested
    // during start-up) while it waits for the broker's thread.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut abandoned = false;
    for _attempt in 0..5 {
        // Chosen afresh each time: anything may take a freed port.
        let mqtt_addr = free_port();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let http_addr = http.local_addr().expect("addr");
        let cfg = config(
            dir.path(),
            &[("MESERO_MQTT_LISTEN", &mqtt_addr.to_string())],
        );
        // Boxed, so that dropping it drops the start-up itself.
        let mut start = Box::pin(Daemon::start(cfg, Some(http), Supervision::none()));
        let deadline = Instant::now() + PATIENCE;
        let finished = loop {
            tokio::select! {
                biased;
                daemon = &mut start => break Some(daemon),
                () = tokio::task::yield_now() => {}
            }
            // `start` is pending: if the broker's thread runs, start-up is
            // past the writer, engine and sensors.
            if threads().iter().any(|t| t == "mesero-mqtt") {
                break None;
            }
            assert!(Instant::now() < deadline, "start-up made progress");
        };
        match finished {
            // Start-up outran the check; try again.
            Some(Ok(daemon)) => daemon.stop().await,
            // The freed MQTT port was taken meanwhile; try again.
            Some(Err(e)) if port_taken(&format!("{e:#}")) => {}
            Some(Err(e)) => panic!("daemon starts: {e:#}"),
            None => {
                drop(start);
                assert_nothing_left(dir.path(), &[http_addr, mqtt_addr]).await;
                abandoned = true;
                break;
            }
        }
    }
    assert!(abandoned, "caught start-up waiting for the broker");
}

#[test]
fn a_newline_in_a_config_key_or_variable_name_cannot_forge_an_output_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let forged = dir.path().join("forged.toml");
    std::fs::write(&forged, "[http]\n\"listen\\nmesero: all ok\" = 1\n").expect("write");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, FIXTURE).expect("write");
    let mut from_env = mesero();
    from_env
        .arg("check")
        .arg(&good)
        .env("MESERO_HTTP_X\nmesero: all ok", "1");
    let mut from_file = mesero();
    from_file.arg("check").arg(&forged);
    for (what, mut cmd) in [("file", from_file), ("environment", from_env)] {
        let out = cmd.output().expect("run mesero");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{what}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{what}: {stderr}");
        assert!(stderr.contains(r"\nmesero: all ok"), "{what}: {stderr}");
    }
}
