//! Stream clients (SSE and WebSocket) that check every event they get:
//! each expects the seq right after the one before (the daemon's seqs are
//! consecutive), so a gap is a lost event and a repeat a duplicate. They
//! reconnect when the stream ends (a slow-consumer close, a daemon
//! restart): SSE with `Last-Event-ID`, so the checks run across the
//! reconnect; WebSocket from a fresh snapshot, counted as a reset.
//! Stalled clients connect and never read.

use crate::stats::Histogram;
use futures_util::StreamExt as _;
use mesero::sse::SseParser;
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Wait before a client reconnects after its stream ended.
const RECONNECT_WAIT: Duration = Duration::from_millis(50);

/// What every client shares: where the daemon is, when each change was
/// sent (by seq), the latency histograms, the stop signal.
pub struct Shared {
    /// `http://host:port`; replaced when a restarted daemon moved.
    pub base: RwLock<String>,
    pub token: String,
    pub origin: Instant,
    /// Send time (µs since `origin`, 0 = not known yet) of the change that
    /// made seq `seq0 + i`, written once the change's response named its seq.
    send_us: Vec<AtomicU64>,
    pub seq0: AtomicU64,
    /// Only changes sent inside this window (µs) count for latency.
    pub window: (AtomicU64, AtomicU64),
    pub sse: Histogram,
    pub ws: Histogram,
    pub stop: CancellationToken,
    /// Set when the stop is for good: a client that loses its stream
    /// then ends instead of reconnecting.
    pub ending: AtomicBool,
}

impl Shared {
    pub fn new(base: String, token: String, capacity: usize) -> Arc<Shared> {
        Arc::new(Shared {
            base: RwLock::new(base),
            token,
            origin: Instant::now(),
            send_us: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            seq0: AtomicU64::new(0),
            window: (AtomicU64::new(0), AtomicU64::new(u64::MAX)),
            sse: Histogram::default(),
            ws: Histogram::default(),
            stop: CancellationToken::new(),
            ending: AtomicBool::new(false),
        })
    }

    pub fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    pub fn base(&self) -> String {
        self.base.read().map(|b| b.clone()).unwrap_or_default()
    }

    /// Records that the change committed as `seq` was sent at `sent_us`.
    pub fn sent(&self, seq: u64, sent_us: u64) {
        let Some(i) = seq.checked_sub(self.seq0.load(Relaxed)) else {
            return;
        };
        if let Some(slot) = self.send_us.get(i as usize) {
            slot.store(sent_us.max(1), Relaxed);
        }
    }

    fn sent_at(&self, seq: u64) -> Option<u64> {
        let i = seq.checked_sub(self.seq0.load(Relaxed))?;
        let v = self.send_us.get(i as usize)?.load(Relaxed);
        (v != 0).then_some(v)
    }

    fn in_window(&self, sent_us: u64) -> bool {
        sent_us >= self.window.0.load(Relaxed) && sent_us < self.window.1.load(Relaxed)
    }
}

/// One client's counters, read by the run at the end.
#[derive(Default)]
pub struct Tally {
    /// The last seq seen (0 before the first snapshot).
    pub last: AtomicU64,
    pub events: AtomicU64,
    pub lost: AtomicU64,
    pub duplicated: AtomicU64,
    /// Fresh snapshots after the first (WebSocket reconnects, `reset`).
    pub resets: AtomicU64,
    pub reconnects: AtomicU64,
    /// Streams the daemon closed as a slow consumer (WS 4008).
    pub slow_closed: AtomicU64,
    /// Set once the first snapshot arrived.
    pub connected: AtomicBool,
}

/// The per-client checking state.
struct Checker {
    tally: Arc<Tally>,
    shared: Arc<Shared>,
    ws: bool,
    /// Events that arrived before their change's response: (seq, µs).
    pending: Vec<(u64, u64)>,
    seen: u64,
}

impl Checker {
    fn snapshot(&mut self, seq: u64) {
        if self.tally.connected.swap(true, Relaxed) {
            self.tally.resets.fetch_add(1, Relaxed);
        }
        self.tally.last.store(seq, Relaxed);
    }

    fn event(&mut self, seq: u64) {
        let now = self.shared.now_us();
        let last = self.tally.last.load(Relaxed);
        self.tally.events.fetch_add(1, Relaxed);
        if seq <= last {
            self.tally.duplicated.fetch_add(1, Relaxed);
            return;
        }
        if seq > last + 1 {
            self.tally.lost.fetch_add(seq - last - 1, Relaxed);
        }
        self.tally.last.store(seq, Relaxed);
        let shared = &self.shared;
        let hist = if self.ws { &shared.ws } else { &shared.sse };
        match shared.sent_at(seq) {
            Some(sent) => {
                if shared.in_window(sent) {
                    hist.record(now.saturating_sub(sent));
                }
            }
            None => self.pending.push((seq, now)),
        }
        // Now and then, match the events that beat their change's
        // response; an event of no measured change (a sensor's, the
        // daemon's own) is dropped once it clearly will not be matched.
        self.seen += 1;
        if self.seen % 32 == 0 {
            self.pending.retain(|(seq, at)| match shared.sent_at(*seq) {
                Some(sent) => {
                    if shared.in_window(sent) {
                        hist.record(at.saturating_sub(sent));
                    }
                    false
                }
                None => now.saturating_sub(*at) < 2_000_000,
            });
        }
    }
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(rename = "type")]
    kind: String,
}

/// Starts one SSE (`ws = false`) or WebSocket client.
pub fn spawn(shared: Arc<Shared>, ws: bool) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let mut checker = Checker {
        tally: Arc::clone(&tally),
        shared,
        ws,
        pending: Vec::new(),
        seen: 0,
    };
    tokio::spawn(async move {
        loop {
            let stop = checker.shared.stop.clone();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = async {
                    if ws {
                        run_ws(&mut checker).await
                    } else {
                        run_sse(&mut checker).await
                    }
                } => {}
            }
            if checker.shared.ending.load(Relaxed) {
                return;
            }
            checker.tally.reconnects.fetch_add(1, Relaxed);
            tokio::time::sleep(RECONNECT_WAIT).await;
        }
    });
    tally
}

async fn run_sse(c: &mut Checker) {
    let base = c.shared.base();
    let mut req = http_client()
        .get(format!("{base}/api/v1/stream"))
        .bearer_auth(&c.shared.token);
    let last = c.tally.last.load(Relaxed);
    if c.tally.connected.load(Relaxed) {
        req = req.header("last-event-id", last.to_string());
    }
    let Ok(mut res) = req.send().await else {
        return;
    };
    if !res.status().is_success() {
        return;
    }
    let mut parser = SseParser::default();
    while let Ok(Some(chunk)) = res.chunk().await {
        for msg in parser.push(&chunk) {
            let Some(seq) = msg.id.as_deref().and_then(|id| id.parse::<u64>().ok()) else {
                continue;
            };
            if msg.event.as_deref() == Some("snapshot") {
                c.snapshot(seq);
            } else {
                c.event(seq);
            }
        }
    }
}

async fn run_ws(c: &mut Checker) {
    let base = c.shared.base();
    let Some(host) = base.strip_prefix("http://") else {
        return;
    };
    let Ok(tcp) = TcpStream::connect(host).await else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let url = format!("ws://{host}/api/v1/ws?token={}", c.shared.token);
    let Ok((mut socket, _)) = tokio_tungstenite::client_async(url, tcp).await else {
        return;
    };
    while let Some(Ok(msg)) = socket.next().await {
        match msg {
            Message::Text(text) => {
                let Ok(head) = serde_json::from_str::<Head>(text.as_str()) else {
                    continue;
                };
                match (head.kind.as_str(), head.seq) {
                    ("snapshot", Some(seq)) => c.snapshot(seq),
                    ("pong", _) => {}
                    (_, Some(seq)) => c.event(seq),
                    _ => {}
                }
            }
            Message::Close(Some(frame)) if u16::from(frame.code) == 4008 => {
                c.tally.slow_closed.fetch_add(1, Relaxed);
                return;
            }
            Message::Close(_) => return,
            _ => {}
        }
    }
}

fn http_client() -> reqwest::Client {
    // One client per stream: each holds its own connection anyway, and a
    // shared pool would only add a lock to every connect.
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default()
}

/// A client that opens a stream and never reads it; held until `stop`.
pub fn spawn_stalled(shared: Arc<Shared>, ws: bool) -> Arc<AtomicBool> {
    let opened = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&opened);
    tokio::spawn(async move {
        let base = shared.base();
        let Some(host) = base.strip_prefix("http://").map(str::to_string) else {
            return;
        };
        let Ok(mut tcp) = TcpStream::connect(&host).await else {
            return;
        };
        let token = &shared.token;
        let request = if ws {
            format!(
                "GET /api/v1/ws?token={token} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
        } else {
            format!(
                "GET /api/v1/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
            )
        };
        if tcp.write_all(request.as_bytes()).await.is_ok() {
            flag.store(true, Relaxed);
            shared.stop.cancelled().await;
        }
        drop(tcp);
    });
    opened
}
