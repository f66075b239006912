//! Process-wide counters for `/api/v1/stats` and `/metrics`.
//!
//! Plain atomics: every hot path only adds, readers take a relaxed view
//! (a scrape does not need a consistent cut across counters).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

mod upstream;
pub use upstream::{UpstreamMetrics, UpstreamSnapshot};

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
    /// Writer batches that committed nothing because of a storage error
    /// (their callers got the error).
    failed_batches: AtomicU64,
    /// HTTP requests answered with 4xx (bad input, auth).
    pub http_client_errors: AtomicU64,
    /// Alerts refused for `alerts::MAX_OPEN_PER_SOURCE` or `MAX_OPEN`
    /// (button, HTTP and MQTT alike).
    alerts_refused: AtomicU64,
    pub http: HttpMetrics,
    pub mqtt: MqttMetrics,
    pub upstream: UpstreamMetrics,
}

/// Counters of the HTTP server's caps (see `http::limits`).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Open HTTP connections (streams included).
    pub connections: AtomicI64,
    /// Open SSE and WebSocket streams.
    pub streams: AtomicI64,
    /// Connections answered 503 and closed: over `http.max_connections`.
    pub refused_connections: AtomicU64,
    /// Connections answered 503 and closed: over `http.max_connections_per_ip`.
    pub refused_per_ip: AtomicU64,
    /// Stream requests answered 503: over `http.max_streams`.
    pub refused_streams: AtomicU64,
    /// Failed accepts (out of descriptors, aborted handshakes).
    pub accept_errors: AtomicU64,
    /// TLS handshakes on `http.tls_listen` that failed or timed out.
    pub tls_handshake_failures: AtomicU64,
    /// `POST /api/v1/pair` calls refused: a wrong, used or expired code,
    /// or over `auth.pairing_attempts_per_minute`.
    pub pairing_refused: AtomicU64,
}

impl HttpMetrics {
    pub fn snapshot(&self) -> HttpSnapshot {
        HttpSnapshot {
            connections: self.connections.load(Relaxed),
            streams: self.streams.load(Relaxed),
            refused: RefusedSnapshot {
                connections: self.refused_connections.load(Relaxed),
                per_ip: self.refused_per_ip.load(Relaxed),
                streams: self.refused_streams.load(Relaxed),
            },
            accept_errors: self.accept_errors.load(Relaxed),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HttpSnapshot {
    pub connections: i64,
    pub streams: i64,
    pub refused: RefusedSnapshot,
    pub accept_errors: u64,
}

/// HTTP refusals by cap.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefusedSnapshot {
    pub connections: u64,
    pub per_ip: u64,
    pub streams: u64,
}

/// The kinds of MQTT payload the daemon reads (SPEC §3), for counting and
/// rate-limiting what is wrong with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    Sensors,
    Detections,
    Set,
    /// `alerts/raise`
    Alerts,
}

impl PayloadKind {
    pub const ALL: [PayloadKind; 4] = [
        PayloadKind::Sensors,
        PayloadKind::Detections,
        PayloadKind::Set,
        PayloadKind::Alerts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Sensors => "sensors",
            PayloadKind::Detections => "detections",
            PayloadKind::Set => "set",
            PayloadKind::Alerts => "alerts",
        }
    }

    fn index(self) -> usize {
        match self {
            PayloadKind::Sensors => 0,
            PayloadKind::Detections => 1,
            PayloadKind::Set => 2,
            PayloadKind::Alerts => 3,
        }
    }
}

/// Counters of the embedded broker.
#[derive(Debug, Default)]
pub struct MqttMetrics {
    /// Clients past CONNECT (the daemon's own link is not counted).
    pub clients: AtomicI64,
    /// PUBLISH packets received from clients.
    pub messages_in: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub messages_out: AtomicU64,
    /// Payloads on the daemon's topics that were not understood (bad
    /// syntax, wrong types, unknown table or sensor ids), per kind.
    malformed: [AtomicU64; 4],
    /// CONNECTs refused: bad credentials, anonymous when not allowed.
    pub connections_refused: AtomicU64,
    /// PUBLISHes refused by role (a non-staff `set`, a client writing a
    /// topic only the daemon may write).
    pub publishes_refused: AtomicU64,
    /// Connections closed for bytes that are not MQTT 3.1.1.
    pub protocol_errors: AtomicU64,
    /// Connections closed for a packet over `mqtt.max_payload`.
    pub too_large: AtomicU64,
    /// Topic names and filters refused by the broker's screen (PUBLISH,
    /// will, SUBSCRIBE, UNSUBSCRIBE), whatever followed.
    pub topics_refused: AtomicU64,
    /// Filters answered with SUBACK 0x80 for `mqtt.max_subscriptions` or
    /// `mqtt.max_filters`.
    pub subscriptions_refused: AtomicU64,
    /// Retained PUBLISHes (and wills) dropped for a retained limit or a
    /// role that may not retain there.
    pub retained_refused: AtomicU64,
    /// Sockets closed for sending no CONNECT within `mqtt.connect_timeout`.
    pub connect_timeouts: AtomicU64,
    /// Sockets without CONNECT closed to make room for a newer one
    /// (`mqtt.max_pending`, `mqtt.max_pending_per_ip`).
    pub pending_evicted: AtomicU64,
    /// `set` and `alerts/raise` commands left unacknowledged (connection
    /// closed) because the commit failed on the daemon's side.
    pub set_failed: AtomicU64,
    /// Detection entries dropped because no implicit detector sensor could
    /// be created for them (`MAX_IMPLICIT_SENSORS`).
    pub implicit_sensors_refused: AtomicU64,
    /// Client PUBLISHes that waited (their client's socket not read) for
    /// a subscriber to catch up (`broker::flow`).
    pub publishes_held: AtomicU64,
    /// Subscribers closed for holding a publisher back for
    /// `broker::flow::MAX_HOLD` without catching up.
    pub slow_subscribers_closed: AtomicU64,
}

impl MqttMetrics {
    pub fn malformed(&self, kind: PayloadKind) {
        self.malformed[kind.index()].fetch_add(1, Relaxed);
    }

    pub fn malformed_count(&self, kind: PayloadKind) -> u64 {
        self.malformed[kind.index()].load(Relaxed)
    }

    pub fn snapshot(&self) -> MqttSnapshot {
        MqttSnapshot {
            clients: self.clients.load(Relaxed),
            messages_in: self.messages_in.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
            malformed: MalformedSnapshot {
                sensors: self.malformed_count(PayloadKind::Sensors),
                detections: self.malformed_count(PayloadKind::Detections),
                set: self.malformed_count(PayloadKind::Set),
                alerts: self.malformed_count(PayloadKind::Alerts),
            },
            connections_refused: self.connections_refused.load(Relaxed),
            publishes_refused: self.publishes_refused.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
            topics_refused: self.topics_refused.load(Relaxed),
            subscriptions_refused: self.subscriptions_refused.load(Relaxed),
            retained_refused: self.retained_refused.load(Relaxed),
            connect_timeouts: self.connect_timeouts.load(Relaxed),
            pending_evicted: self.pending_evicted.load(Relaxed),
            set_failed: self.set_failed.load(Relaxed),
            implicit_sensors_refused: self.implicit_sensors_refused.load(Relaxed),
            publishes_held: self.publishes_held.load(Relaxed),
            slow_subscribers_closed: self.slow_subscribers_closed.load(Relaxed),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MqttSnapshot {
    pub clients: i64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub malformed: MalformedSnapshot,
    pub connections_refused: u64,
    pub publishes_refused: u64,
    pub protocol_errors: u64,
    pub too_large: u64,
    pub topics_refused: u64,
    pub subscriptions_refused: u64,
    pub retained_refused: u64,
    pub connect_timeouts: u64,
    pub pending_evicted: u64,
    pub set_failed: u64,
    pub implicit_sensors_refused: u64,
    pub publishes_held: u64,
    pub slow_subscribers_closed: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MalformedSnapshot {
    pub sensors: u64,
    pub detections: u64,
    pub set: u64,
    pub alerts: u64,
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
            failed_batches: AtomicU64::new(0),
            http_client_errors: AtomicU64::new(0),
            alerts_refused: AtomicU64::new(0),
            http: HttpMetrics::default(),
            mqtt: MqttMetrics::default(),
            upstream: UpstreamMetrics::default(),
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
    pub failed_batches: u64,
    pub http_client_errors: u64,
    pub alerts_refused: u64,
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

    pub fn record_alerts_refused(&self, refused: usize) {
        if refused > 0 {
            self.alerts_refused
                .fetch_add(u64::try_from(refused).unwrap_or(u64::MAX), Relaxed);
        }
    }

    pub fn record_failed_batch(&self) {
        self.failed_batches.fetch_add(1, Relaxed);
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
            failed_batches: self.failed_batches.load(Relaxed),
            http_client_errors: self.http_client_errors.load(Relaxed),
            alerts_refused: self.alerts_refused.load(Relaxed),
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
            "mesero_failed_batches_total",
            "counter",
            "Writer batches that failed with a storage error (nothing committed).",
            s.failed_batches.to_string(),
        );
        metric(
            "mesero_http_client_errors_total",
            "counter",
            "HTTP requests answered with a 4xx status.",
            s.http_client_errors.to_string(),
        );
        metric(
            "mesero_alerts_refused_total",
            "counter",
            "Alerts refused for the open-alert limits (per source, total).",
            s.alerts_refused.to_string(),
        );
        let h = self.http.snapshot();
        metric(
            "mesero_http_connections",
            "gauge",
            "Open HTTP connections, streams included.",
            h.connections.to_string(),
        );
        metric(
            "mesero_http_streams",
            "gauge",
            "Open SSE and WebSocket streams.",
            h.streams.to_string(),
        );
        metric(
            "mesero_http_accept_errors_total",
            "counter",
            "Failed accepts on the HTTP listener.",
            h.accept_errors.to_string(),
        );
        metric(
            "mesero_http_tls_handshake_failures_total",
            "counter",
            "TLS handshakes on http.tls_listen that failed or timed out.",
            self.http.tls_handshake_failures.load(Relaxed).to_string(),
        );
        metric(
            "mesero_pairing_refused_total",
            "counter",
            "Tablet pairing attempts refused (wrong or spent code, rate limit).",
            self.http.pairing_refused.load(Relaxed).to_string(),
        );
        let m = self.mqtt.snapshot();
        metric(
            "mesero_mqtt_clients",
            "gauge",
            "Connected MQTT clients.",
            m.clients.to_string(),
        );
        metric(
            "mesero_mqtt_messages_in_total",
            "counter",
            "MQTT PUBLISH packets received from clients.",
            m.messages_in.to_string(),
        );
        metric(
            "mesero_mqtt_messages_out_total",
            "counter",
            "MQTT PUBLISH packets sent to clients.",
            m.messages_out.to_string(),
        );
        metric(
            "mesero_mqtt_connections_refused_total",
            "counter",
            "MQTT connections refused (credentials, anonymous, limits).",
            m.connections_refused.to_string(),
        );
        metric(
            "mesero_mqtt_publishes_refused_total",
            "counter",
            "MQTT publishes refused by role.",
            m.publishes_refused.to_string(),
        );
        metric(
            "mesero_mqtt_protocol_errors_total",
            "counter",
            "MQTT connections closed for invalid packets.",
            m.protocol_errors.to_string(),
        );
        metric(
            "mesero_mqtt_too_large_total",
            "counter",
            "MQTT connections closed for a packet over mqtt.max_payload.",
            m.too_large.to_string(),
        );
        for (name, help, value) in [
            (
                "mesero_mqtt_topics_refused_total",
                "MQTT topic names and filters refused (publish, will, subscribe, unsubscribe).",
                m.topics_refused,
            ),
            (
                "mesero_mqtt_subscriptions_refused_total",
                "MQTT filters refused for mqtt.max_subscriptions or mqtt.max_filters.",
                m.subscriptions_refused,
            ),
            (
                "mesero_mqtt_retained_refused_total",
                "MQTT retained messages dropped for a retained limit or the client's role.",
                m.retained_refused,
            ),
            (
                "mesero_mqtt_connect_timeouts_total",
                "MQTT sockets closed for sending no CONNECT within mqtt.connect_timeout.",
                m.connect_timeouts,
            ),
            (
                "mesero_mqtt_pending_evicted_total",
                "MQTT sockets without CONNECT closed to make room (mqtt.max_pending, mqtt.max_pending_per_ip).",
                m.pending_evicted,
            ),
            (
                "mesero_mqtt_set_failed_total",
                "MQTT set commands not acknowledged because the commit failed.",
                m.set_failed,
            ),
            (
                "mesero_mqtt_implicit_sensors_refused_total",
                "Detection entries dropped: no room for another implicit detector sensor (MAX_IMPLICIT_SENSORS).",
                m.implicit_sensors_refused,
            ),
            (
                "mesero_mqtt_publishes_held_total",
                "MQTT publishes that waited for a slow subscriber to catch up (backpressure).",
                m.publishes_held,
            ),
            (
                "mesero_mqtt_slow_subscribers_closed_total",
                "MQTT subscribers closed for holding a publisher back too long (MAX_HOLD).",
                m.slow_subscribers_closed,
            ),
        ] {
            metric(name, "counter", help, value.to_string());
        }
        let _ = writeln!(
            out,
            "# HELP mesero_mqtt_malformed_total MQTT payloads not understood, by topic kind.\n# TYPE mesero_mqtt_malformed_total counter"
        );
        for kind in PayloadKind::ALL {
            let _ = writeln!(
                out,
                "mesero_mqtt_malformed_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                self.mqtt.malformed_count(kind)
            );
        }
        let _ = writeln!(
            out,
            "# HELP mesero_http_refused_total HTTP connections and streams refused with 503, by cap.\n# TYPE mesero_http_refused_total counter"
        );
        for (reason, count) in [
            ("connections", h.refused.connections),
            ("per_ip", h.refused.per_ip),
            ("streams", h.refused.streams),
        ] {
            let _ = writeln!(
                out,
                "mesero_http_refused_total{{reason=\"{reason}\"}} {count}"
            );
        }
        self.upstream_prometheus(&mut out);
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

impl Metrics {
    /// The upstream bridge's state; the backlog is measured against the head.
    pub fn upstream_snapshot(&self) -> UpstreamSnapshot {
        self.upstream.snapshot(self.head.load(Relaxed))
    }

    fn upstream_prometheus(&self, out: &mut String) {
        self.upstream_snapshot().prometheus(out);
    }
}
