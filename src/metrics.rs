//! Process-wide counters for `/api/v1/stats` and `/metrics`.
//!
//! Plain atomics: every hot path only adds, readers take a relaxed view
//! (a scrape does not need a consistent cut across counters).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// Highest committed seq (= events ever recorded).
    head: AtomicU64,
    pub sse_clients: AtomicI64,
    pub ws_clients: AtomicI64,
    /// Stream clients closed because they fell `client_queue` behind.
    pub slow_clients_closed: AtomicU64,
    commits: AtomicU64,
    committed_events: AtomicU64,
    commit_micros_total: AtomicU64,
    commit_micros_max: AtomicU64,
    /// HTTP requests answered with 4xx (bad input, auth).
    pub http_client_errors: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            head: AtomicU64::new(0),
            sse_clients: AtomicI64::new(0),
            ws_clients: AtomicI64::new(0),
            slow_clients_closed: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            committed_events: AtomicU64::new(0),
            commit_micros_total: AtomicU64::new(0),
            commit_micros_max: AtomicU64::new(0),
            http_client_errors: AtomicU64::new(0),
        }
    }
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    pub uptime_s: u64,
    pub events_total: u64,
    pub sse_clients: i64,
    pub ws_clients: i64,
    pub slow_clients_closed: u64,
    pub commits: u64,
    pub committed_events: u64,
    pub commit_ms_avg: f64,
    pub commit_ms_max: f64,
    pub http_client_errors: u64,
}

impl Metrics {
    pub fn set_head(&self, head: u64) {
        self.head.store(head, Relaxed);
    }

    pub fn record_commit(&self, events: usize, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.commits.fetch_add(1, Relaxed);
        self.committed_events
            .fetch_add(u64::try_from(events).unwrap_or(u64::MAX), Relaxed);
        self.commit_micros_total.fetch_add(micros, Relaxed);
        self.commit_micros_max.fetch_max(micros, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let commits = self.commits.load(Relaxed);
        let total = self.commit_micros_total.load(Relaxed);
        Snapshot {
            uptime_s: self.started.elapsed().as_secs(),
            events_total: self.head.load(Relaxed),
            sse_clients: self.sse_clients.load(Relaxed),
            ws_clients: self.ws_clients.load(Relaxed),
            slow_clients_closed: self.slow_clients_closed.load(Relaxed),
            commits,
            committed_events: self.committed_events.load(Relaxed),
            commit_ms_avg: if commits == 0 {
                0.0
            } else {
                total as f64 / commits as f64 / 1000.0
            },
            commit_ms_max: self.commit_micros_max.load(Relaxed) as f64 / 1000.0,
            http_client_errors: self.http_client_errors.load(Relaxed),
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self, tables_by_state: &[(&str, usize)]) -> String {
        let s = self.snapshot();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "mesero_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
            s.uptime_s.to_string(),
        );
        metric(
            "mesero_events_total",
            "counter",
            "Events recorded (highest seq).",
            s.events_total.to_string(),
        );
        metric(
            "mesero_sse_clients",
            "gauge",
            "Connected SSE clients.",
            s.sse_clients.to_string(),
        );
        metric(
            "mesero_ws_clients",
            "gauge",
            "Connected WebSocket clients.",
            s.ws_clients.to_string(),
        );
        metric(
            "mesero_slow_clients_closed_total",
            "counter",
            "Stream clients closed for falling too far behind.",
            s.slow_clients_closed.to_string(),
        );
        metric(
            "mesero_commits_total",
            "counter",
            "SQLite transactions committed by the writer.",
            s.commits.to_string(),
        );
        metric(
            "mesero_commit_seconds_sum",
            "counter",
            "Time spent committing, in seconds.",
            format!("{}", self.commit_micros_total.load(Relaxed) as f64 / 1e6),
        );
        metric(
            "mesero_commit_seconds_max",
            "gauge",
            "Longest commit since start, in seconds.",
            format!("{}", s.commit_ms_max / 1000.0),
        );
        metric(
            "mesero_http_client_errors_total",
            "counter",
            "HTTP requests answered with a 4xx status.",
            s.http_client_errors.to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP mesero_tables Tables by state.\n# TYPE mesero_tables gauge"
        );
        for (state, count) in tables_by_state {
            let _ = writeln!(out, "mesero_tables{{state=\"{state}\"}} {count}");
        }
        out
    }
}
