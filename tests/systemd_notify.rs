//! The real binary under a fake service manager: the test binds the unix
//! datagram socket that `$NOTIFY_SOCKET` names, as systemd does for a
//! `Type=notify` unit with `WatchdogSec=`, and reads what mesero sends.

mod common;

use common::*;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UnixDatagram;

/// `WatchdogSec=` for the tests: small, so pings come every 200 ms.
const WATCHDOG: Duration = Duration::from_millis(400);

/// SPEC §6: SIGTERM → exit 0 within this.
const STOP_BUDGET: Duration = Duration::from_secs(5);

/// `mesero run` with the fixture config, `$NOTIFY_SOCKET` and
/// `$WATCHDOG_USEC` set, and its stderr kept line by line.
struct Supervised {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    notify: UnixDatagram,
}

impl Supervised {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Supervised {
        let socket = dir.join("notify.sock");
        let notify = UnixDatagram::bind(&socket).expect("bind the notify socket");
        let socket = socket.display().to_string();
        let watchdog = WATCHDOG.as_micros().to_string();
        let mut env = env.to_vec();
        env.extend([
            ("NOTIFY_SOCKET", socket.as_str()),
            ("WATCHDOG_USEC", watchdog.as_str()),
        ]);
        let (child, log) = spawn_daemon(dir, &env);
        Supervised { child, log, notify }
    }

    /// The next datagram, or `None` if none comes within `within`.
    async fn next(&self, within: Duration) -> Option<String> {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(within, self.notify.recv(&mut buf))
            .await
            .ok()?
            .expect("recv on the notify socket");
        Some(String::from_utf8(buf[..n].to_vec()).expect("notify messages are UTF-8"))
    }

    /// Reads datagrams until one satisfies `wanted`; panics after PATIENCE.
    async fn wait_for(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(msg) if wanted(&msg) => return msg,
                Some(_) => {}
                None => panic!("no {what} within {PATIENCE:?}; log:\n{}", self.log()),
            }
        }
    }

    /// Receives `n` watchdog pings; returns when each arrived.
    async fn pings(&self, n: usize) -> Vec<Instant> {
        let mut at = Vec::new();
        while at.len() < n {
            self.wait_for("WATCHDOG=1", |m| m == "WATCHDOG=1").await;
            at.push(Instant::now());
        }
        at
    }

    fn log(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Waits until a log line contains every one of `parts`.
    async fn wait_for_log(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self
                .log
                .lock()
                .expect("log lock")
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, signal: &str) {
        send_signal(self.child.id(), signal);
    }

    /// Waits (bounded) for the process to exit.
    async fn exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon did not exit");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the first `STATUS=` (`STATUS=http 127.0.0.1:PORT · ...`).
fn status_addr(msg: &str) -> SocketAddr {
    msg.lines()
        .find_map(|l| l.strip_prefix("STATUS=http "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {msg:?}"))
}

/// One plain HTTP/1.1 request, no retry: did the port answer 200?
fn healthz_once(addr: SocketAddr) -> String {
    let mut conn = std::net::TcpStream::connect(addr).expect("connect: listener not bound yet");
    conn.set_read_timeout(Some(PATIENCE)).expect("timeout");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("read");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_when_serving_then_watchdog_status_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = Supervised::start(dir.path(), &[]);

    // READY=1 is the first thing sent, with a STATUS naming the port. The
    // port answers at once: no retry, so "bound after READY" would fail.
    let ready = d.wait_for("a first message", |_| true).await;
    assert!(ready.starts_with("READY=1\nSTATUS=http "), "{ready:?}");
    let addr = status_addr(&ready);
    let response = tokio::task::spawn_blocking(move || healthz_once(addr))
        .await
        .expect("healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(ready.contains("4 tables: 4 free"), "{ready:?}");
    d.wait_for_log(&["http listening", &format!("addr={addr}")])
        .await;

    // Periodic pings, at about WatchdogSec/2 (systemd would kill us if a
    // gap exceeded WatchdogSec).
    let at = d.pings(6).await;
    let mut gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    eprintln!("watchdog gaps: {gaps:?}");
    assert!(gaps[gaps.len() / 2] < WATCHDOG, "median gap {gaps:?}");

    // STATUS follows the floor plan.
    let (status, _) = put_state(
        &format!("http://{addr}"),
        Some(STAFF),
        3,
        r#"{"state":"occupied"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let line = d
        .wait_for("a STATUS with the occupied table", |m| {
            m.starts_with("STATUS=") && m.contains("3 free, 1 occupied")
        })
        .await;
    eprintln!("{line}");

    // SIGTERM: STOPPING=1, then exit 0 within 5 s.
    let asked = Instant::now();
    d.signal("TERM");
    d.wait_for("STOPPING=1", |m| m.starts_with("STOPPING=1\n"))
        .await;
    let exit = d.exit().await;
    let took = asked.elapsed();
    eprintln!("SIGTERM -> exit in {took:?}");
    assert!(exit.success(), "exit status {exit:?}; log:\n{}", d.log());
    assert!(took < STOP_BUDGET, "stopped in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the fault hook exists in debug builds only"
)]
async fn a_hung_loop_stops_the_watchdog_while_healthz_still_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Supervised::start(dir.path(), &[("MESERO_DEBUG_HANG", "writer")]);
    let ready = d.wait_for("READY=1", |m| m.starts_with("READY=1")).await;
    let addr = status_addr(&ready);
    d.pings(3).await;

    d.signal("USR1");
    d.wait_for_log(&["withholding the watchdog ping", "writer"])
        .await;
    // Pings decided before the hang may still be queued; then silence for
    // three times WatchdogSec (systemd would have killed us after one).
    while let Some(msg) = d.next(Duration::from_millis(50)).await {
        eprintln!("before the silence: {msg:?}");
    }
    let names_writer = |m: &str| m.starts_with("STATUS=") && m.contains("NOT RESPONDING: writer");
    let mut status_seen = false;
    let deadline = Instant::now() + 3 * WATCHDOG;
    while let Some(msg) = d
        .next(deadline.saturating_duration_since(Instant::now()))
        .await
    {
        assert_ne!(msg, "WATCHDOG=1", "pinged while the writer hangs");
        status_seen |= names_writer(&msg);
    }
    // `systemctl status` says which loop hangs.
    if !status_seen {
        d.wait_for("a STATUS naming the hung loop", names_writer)
            .await;
    }

    // The half-dead state the watchdog exists for: /healthz still says ok.
    let response = tokio::task::spawn_blocking(move || healthz_once(addr))
        .await
        .expect("healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the fault hook exists in debug builds only"
)]
async fn an_unreachable_upstream_keeps_the_watchdog_fed_but_a_hung_bridge_stops_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Port 1 on loopback refuses: the bridge backs off and retries.
    let d = Supervised::start(
        dir.path(),
        &[
            ("MESERO_BRIDGE_URL", "mqtt://127.0.0.1:1"),
            ("MESERO_DEBUG_HANG", "upstream"),
        ],
    );
    d.wait_for("READY=1", |m| m.starts_with("READY=1")).await;
    d.wait_for_log(&["upstream bridge down"]).await;
    // An upstream that is down is normal for a restaurant's link.
    d.pings(3).await;

    d.signal("USR1");
    d.wait_for_log(&["fault injection: loop hung", "matched=1"])
        .await;
    d.wait_for("a STATUS naming the bridge", |m| {
        m.starts_with("STATUS=") && m.contains("NOT RESPONDING: upstream")
    })
    .await;
}
