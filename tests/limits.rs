//! The real binary against hostile HTTP peers: unfinished huge WebSocket
//! frames, never-reading streams past the stream cap, many connections
//! from several addresses under a small descriptor limit, and peer strings
//! with newlines that must not forge log lines.

mod common;

use common::mqtt::HOST;
use common::*;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How soon a healthy request must be answered while a cap is hit.
const PROMPT: Duration = Duration::from_secs(5);

/// Connects to `addr`, from `source` when given (another loopback address
/// stands for another device on the LAN).
fn connect_from(source: Option<IpAddr>, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    if let Some(ip) = source {
        sock.bind(&SocketAddr::new(ip, 0).into())?;
    }
    sock.connect(&addr.into())?;
    Ok(sock.into())
}

/// Reads until the end of the response head (or EOF, or `within`);
/// returns what arrived.
fn read_head(stream: &mut TcpStream, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads and discards until the peer closes; true if it did within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 64 * 1024];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// A stream request that is then never read past its response head: a
/// tablet whose Wi-Fi froze, or a guest's phone holding a slot.
fn stalled_stream(addr: SocketAddr, token: Option<&str>) -> (TcpStream, String) {
    let mut stream = connect_from(None, addr).expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET /api/v1/stream HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n"
    )
    .expect("request");
    let head = read_head(&mut stream, PATIENCE);
    (stream, head)
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The JSON body of a short, complete response (a 503 is sent whole).
fn body_json(stream: &mut TcpStream, head: &str) -> serde_json::Value {
    let mut text = head
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    let len: usize = header(head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut buf = [0u8; 1024];
    while text.len() < len {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// A refusal as the issue asks for: 503, `Retry-After`, the JSON error.
fn assert_refused(stream: &mut TcpStream, head: &str, what: &str) {
    assert_eq!(status_of(head), 503, "{what}: {head:?}");
    assert!(
        header(head, "retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 0)),
        "{what}: a Retry-After in seconds: {head:?}"
    );
    let body = body_json(stream, head);
    assert!(
        body["error"]["code"].is_string() && body["error"]["message"].is_string(),
        "{what}: JSON error body: {body}"
    );
}

/// Opens a WebSocket with a raw handshake; what follows is up to the test.
fn raw_websocket(addr: SocketAddr) -> TcpStream {
    let mut stream = connect_from(None, addr).expect("connect");
    write!(
        stream,
        "GET /api/v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("handshake");
    let head = read_head(&mut stream, PATIENCE);
    assert_eq!(status_of(&head), 101, "WebSocket handshake: {head:?}");
    stream
}

#[test]
fn unfinished_16_mib_websocket_frames_are_closed_at_their_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Process::start(dir.path(), &[]);
    // One socket through the whole path first, so the idle figure includes
    // what any first WebSocket allocates once.
    let mut warm = raw_websocket(daemon.addr);
    warm.write_all(&[0x88, 0x80, 0, 0, 0, 0])
        .expect("close frame");
    assert!(closed_within(&mut warm, PATIENCE), "a close frame closes");
    let idle = daemon.rss_kib();

    // A masked binary frame announcing 16 MiB, then 12 MiB of it.
    let announced: u64 = 16 << 20;
    let sent = 12 << 20;
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&announced.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let chunk = vec![0x55u8; 256 * 1024];
    let mut sockets = Vec::new();
    for _ in 0..10 {
        let mut ws = raw_websocket(daemon.addr);
        ws.set_write_timeout(Some(PATIENCE)).expect("write timeout");
        // Once the daemon refuses the frame, writes fail: that is the point.
        let _ = ws.write_all(&header);
        for _ in 0..sent / chunk.len() {
            if ws.write_all(&chunk).is_err() {
                break;
            }
        }
        sockets.push(ws);
    }
    let after = daemon.rss_kib();
    let deadline = Instant::now() + Duration::from_secs(5);
    let closed: Vec<bool> = sockets
        .iter_mut()
        .map(|ws| closed_within(ws, deadline.saturating_duration_since(Instant::now())))
        .collect();
    eprintln!(
        "VmRSS idle {idle} KiB, after ten unfinished 16 MiB frames {after} KiB (+{} KiB)",
        after.saturating_sub(idle)
    );
    assert!(
        after < idle + 16 * 1024,
        "RSS grew from {idle} KiB to {after} KiB: frame bodies are buffered"
    );
    assert!(
        closed.iter().all(|c| *c),
        "every socket with an oversized frame is closed quickly: {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_cap_get_503_while_staff_health_and_mqtt_still_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 8 streams: anonymous callers may take 6, the rest is kept for staff.
    let daemon = Process::start(dir.path(), &[("MESERO_HTTP_MAX_STREAMS", "8")]);
    let addr = daemon.addr;
    let opened = tokio::task::spawn_blocking(move || {
        (0..10)
            .map(|_| stalled_stream(addr, None))
            .collect::<Vec<_>>()
    })
    .await
    .expect("stalled streams");
    let statuses: Vec<u16> = opened.iter().map(|(_, head)| status_of(head)).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 503, 503, 503, 503],
        "anonymous streams past their share are refused"
    );
    let mut held = Vec::new();
    for (mut stream, head) in opened {
        if status_of(&head) == 503 {
            assert_refused(&mut stream, &head, "an over-cap stream");
        } else {
            held.push(stream);
        }
    }

    // While the anonymous streams hold their share: a staff stream, a
    // staff PUT, /healthz and an MQTT login all go through promptly.
    let started = Instant::now();
    let staff = tokio::task::spawn_blocking(move || stalled_stream(addr, Some(STAFF)))
        .await
        .expect("staff stream");
    assert_eq!(status_of(&staff.1), 200, "a staff stream: {:?}", staff.1);
    let (status, body) = tokio::time::timeout(
        PROMPT,
        put_state(&daemon.base, Some(STAFF), 1, r#"{"state":"occupied"}"#),
    )
    .await
    .expect("staff PUT answered promptly");
    assert_eq!(status, 200, "{body}");
    let health = tokio::time::timeout(
        PROMPT,
        http().get(format!("{}/healthz", daemon.base)).send(),
    )
    .await
    .expect("/healthz answered promptly")
    .expect("/healthz");
    assert_eq!(health.status(), 200);
    let mqtt = daemon.mqtt.expect("the broker's address is logged");
    let login = tokio::time::timeout(PROMPT, common::mqtt::connect(mqtt, "host-1", Some(HOST)))
        .await
        .expect("MQTT login answered promptly");
    assert!(login.is_ok(), "MQTT login while the stream cap is hit");
    assert!(started.elapsed() < PROMPT * 2);

    let s = stats(&daemon.base).await;
    assert_eq!(s["http"]["refused"]["streams"], 4, "{s}");
    assert_eq!(s["http"]["streams"], 7, "{s}");
    let metrics = http()
        .get(format!("{}/metrics", daemon.base))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("mesero_http_refused_total{reason=\"streams\"} 4"),
        "{metrics}"
    );
    assert!(daemon.log_lines("accept failed").len() <= 1);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_descriptor_limit_still_leaves_room_for_health_staff_and_mqtt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Process::start_via(&["prlimit", "--nofile=256:256", "--"], dir.path(), &[]);
    let addr = daemon.addr;
    // Ten devices on the LAN (127.0.0.2..=11), 40 silent connections each:
    // more sockets than the daemon has descriptors.
    let attackers = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        for device in 2..=11u8 {
            let ip = IpAddr::from([127, 0, 0, device]);
            for _ in 0..40 {
                if let Ok(s) = connect_from(Some(ip), addr) {
                    all.push((device, s));
                }
            }
        }
        all
    })
    .await
    .expect("attackers");

    let started = Instant::now();
    let health = tokio::time::timeout(
        PROMPT,
        http().get(format!("{}/healthz", daemon.base)).send(),
    )
    .await
    .expect("/healthz answered promptly under a connection flood")
    .expect("/healthz");
    assert_eq!(health.status(), 200);
    let (status, body) = tokio::time::timeout(
        PROMPT,
        put_state(&daemon.base, Some(STAFF), 2, r#"{"state":"occupied"}"#),
    )
    .await
    .expect("staff PUT answered promptly");
    assert_eq!(status, 200, "{body}");
    let mqtt = daemon.mqtt.expect("the broker's address is logged");
    let login = tokio::time::timeout(PROMPT, common::mqtt::connect(mqtt, "host-2", Some(HOST)))
        .await
        .expect("MQTT login answered promptly");
    assert!(login.is_ok(), "MQTT login under a connection flood");
    assert!(started.elapsed() < PROMPT * 2);

    // The 33rd connection of the first device is over the per-IP cap, the
    // last device's are over the total: both got a 503 and were closed.
    let mut attackers = attackers;
    let per_ip = attackers
        .iter()
        .position(|(d, _)| *d == 2)
        .map(|first| first + 32)
        .expect("device 2 connected");
    let (_, over_ip) = &mut attackers[per_ip];
    let head = read_head(over_ip, PATIENCE);
    assert_refused(over_ip, &head, "over the per-IP cap");
    let (_, over_total) = attackers.last_mut().expect("attackers");
    let head = read_head(over_total, PATIENCE);
    assert_refused(over_total, &head, "over the total cap");

    let s = stats(&daemon.base).await;
    assert!(s["http"]["refused"]["per_ip"].as_u64() >= Some(8), "{s}");
    assert!(
        s["http"]["refused"]["connections"].as_u64() > Some(0),
        "{s}"
    );
    let accept_failed = daemon.log_lines("accept failed");
    assert!(
        accept_failed.len() <= 1,
        "accept failures are logged at most once a minute: {accept_failed:?}"
    );
    drop(attackers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newlines_from_peers_never_forge_a_log_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Process::start(dir.path(), &[("RUST_LOG", "debug")]);
    let forged = "%0AFORGED%20INFO%20mesero%3A%20table%20state";
    let client = http();
    for path in [
        format!("/api/v1/events?type={forged}"),
        format!("/api/v1/events?since={forged}"),
        format!("/api/v1/stream?tables={forged}"),
        format!("/api/v1/snapshot?token={forged}"),
        format!("/api/v1/tables/{forged}"),
        format!("/nowhere{forged}"),
    ] {
        let res = client
            .get(format!("{}{path}", daemon.base))
            .send()
            .await
            .expect("request");
        assert!(res.status().is_client_error(), "{path}: {}", res.status());
    }
    let (status, _) = put_state(
        &daemon.base,
        Some(STAFF),
        1,
        "{\"state\":\"x\\nFORGED INFO mesero: table state\"}",
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = put_state(&daemon.base, Some("x%0AFORGED"), 1, r#"{"state":"free"}"#).await;
    assert_eq!(status, 401);
    let url = format!("{}/api/v1/ws", daemon.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    use futures_util::SinkExt as _;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "{\"op\":\"x\\nFORGED INFO mesero: table state\"}\n\nFORGED INFO x".into(),
    ))
    .await
    .expect("ws send");
    // A request after the WebSocket message, answered after it was read.
    let _ = stats(&daemon.base).await;
    drop(ws);
    let _ = stats(&daemon.base).await;
    let lines = daemon.log_lines("");
    let forged: Vec<&String> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("FORGED"))
        .collect();
    assert!(forged.is_empty(), "forged log lines: {forged:?}");
}
