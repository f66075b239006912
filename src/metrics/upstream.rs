//! The upstream bridge's counters and state (`[bridge]`,
//! [`crate::upstream`] writes them), for `/api/v1/stats` `bridge`,
//! `/metrics` `mesero_bridge_*` and the STATUS line.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub struct UpstreamMetrics {
    pub enabled: AtomicBool,
    pub connected: AtomicBool,
    /// Unix milliseconds of the last change of `connected` (0: none yet).
    pub since_ms: AtomicU64,
    /// The watermark: every event up to it is acknowledged upstream.
    pub acked_seq: AtomicU64,
    /// Unix milliseconds of the oldest event above the watermark, when it
    /// is known (0: none, or not read yet).
    pub oldest_unacked_ms: AtomicU64,
    /// Connection attempts after the first.
    pub reconnects: AtomicU64,
    /// Attempts that failed (refused, unreachable, TLS) and sessions lost.
    pub failures: AtomicU64,
    /// Events acknowledged upstream.
    pub forwarded: AtomicU64,
    /// Events retention deleted before they were forwarded (sent as `gap`).
    pub gap_events: AtomicU64,
    /// Why the bridge is down, as last logged. A std mutex: set and read
    /// whole, never held across an await.
    last_error: Mutex<String>,
}

/// `/api/v1/stats` `bridge`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpstreamSnapshot {
    pub enabled: bool,
    pub connected: bool,
    /// RFC 3339: connected since, or down since (null: not yet tried).
    pub since: Option<String>,
    pub acked_seq: u64,
    pub backlog_events: u64,
    pub backlog_seconds: u64,
    pub reconnects: u64,
    pub failures: u64,
    pub forwarded: u64,
    pub gap_events: u64,
    pub last_error: Option<String>,
}

impl UpstreamMetrics {
    pub fn set_connected(&self, connected: bool, now: SystemTime) {
        self.connected.store(connected, Relaxed);
        self.since_ms.store(unix_ms(now), Relaxed);
        if connected {
            self.set_error(String::new());
        }
    }

    pub fn set_error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// The state, with the backlog measured against `head`.
    pub fn snapshot(&self, head: u64) -> UpstreamSnapshot {
        let enabled = self.enabled.load(Relaxed);
        let acked_seq = self.acked_seq.load(Relaxed);
        let backlog_events = if enabled {
            head.saturating_sub(acked_seq)
        } else {
            0
        };
        let oldest = self.oldest_unacked_ms.load(Relaxed);
        let backlog_seconds = if backlog_events > 0 && oldest > 0 {
            unix_ms(SystemTime::now()).saturating_sub(oldest) / 1000
        } else {
            0
        };
        let since = match self.since_ms.load(Relaxed) {
            0 => None,
            ms => Some(crate::clock::format(UNIX_EPOCH + Duration::from_millis(ms))),
        };
        let error = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        UpstreamSnapshot {
            enabled,
            connected: self.connected.load(Relaxed),
            since,
            acked_seq,
            backlog_events,
            backlog_seconds,
            reconnects: self.reconnects.load(Relaxed),
            failures: self.failures.load(Relaxed),
            forwarded: self.forwarded.load(Relaxed),
            gap_events: self.gap_events.load(Relaxed),
            last_error: (!error.is_empty()).then_some(error),
        }
    }
}

impl UpstreamSnapshot {
    /// The `mesero_bridge_*` lines (none while the bridge is off).
    pub fn prometheus(&self, out: &mut String) {
        if !self.enabled {
            return;
        }
        for (name, kind, help, value) in [
            (
                "mesero_bridge_connected",
                "gauge",
                "1 while the upstream bridge is connected.",
                u64::from(self.connected),
            ),
            (
                "mesero_bridge_acked_seq",
                "gauge",
                "Highest seq acknowledged by the upstream broker (the watermark).",
                self.acked_seq,
            ),
            (
                "mesero_bridge_backlog_events",
                "gauge",
                "Events not yet acknowledged upstream.",
                self.backlog_events,
            ),
            (
                "mesero_bridge_backlog_seconds",
                "gauge",
                "Age of the oldest event not yet acknowledged upstream.",
                self.backlog_seconds,
            ),
            (
                "mesero_bridge_reconnects_total",
                "counter",
                "Upstream connection attempts after the first.",
                self.reconnects,
            ),
            (
                "mesero_bridge_failures_total",
                "counter",
                "Upstream connections refused, failed or lost.",
                self.failures,
            ),
            (
                "mesero_bridge_forwarded_total",
                "counter",
                "Events acknowledged by the upstream broker.",
                self.forwarded,
            ),
            (
                "mesero_bridge_gap_events_total",
                "counter",
                "Events deleted by retention before they were forwarded.",
                self.gap_events,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
