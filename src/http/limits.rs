//! Caps on what HTTP peers may hold, so that no client, and no crowd of
//! them, takes the descriptors the rest of the daemon needs.
//!
//! - Connections, in total (`http.max_connections`) and per client address
//!   (`http.max_connections_per_ip`). A connection over a cap is accepted,
//!   answered `503` with `Retry-After` and the JSON error, and closed: it
//!   neither waits in the kernel's backlog nor reaches hyper.
//! - Streams, SSE and WebSocket together (`http.max_streams`): a stream
//!   request over the cap gets the same 503 from its handler, with
//!   `Connection: close`.
//!
//! Who is not starved:
//! - Plain requests: streams may take at most three quarters of the
//!   connections, so a staff PUT or `/healthz` finds a connection while the
//!   stream cap is hit.
//! - Staff: a quarter of the streams is kept for callers with a staff or
//!   admin token; anonymous and viewer callers share the rest.
//! - The daemon's own host (`curl localhost:8080/healthz`, a reverse proxy
//!   on the Pi): its connections are not counted per address, and the last
//!   [`LOCAL_RESERVE`] connections are kept for it. "Own host" means the
//!   peer's address is the address it connected to, which a LAN device
//!   cannot fake over TCP.
//!
//! Descriptors: at start the soft `RLIMIT_NOFILE` is read from
//! `/proc/self/limits` (std has no API for it, and this keeps both
//! `unsafe` and a dependency out). HTTP connections are capped at
//! `nofile - FD_RESERVE - mqtt.max_connections - REJECT_SLOTS`, so the
//! store, the broker's clients and everything else keep their descriptors
//! however many HTTP clients come; a larger `http.max_connections` is
//! lowered to that, with a warning.

use super::error::ApiError;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::throttle::{LOG_EVERY, Throttle};
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Descriptors HTTP never takes, besides the MQTT clients': the store
/// (database, WAL, shared memory, up to a few read connections, a
/// backup), the broker's listeners and its not-yet-logged-in sockets,
/// sensor devices (I2C buses, GPIO chips), the journal and notify sockets,
/// stdio and the runtime's own (epoll, eventfd, signals). An idle daemon
/// uses about 20, 35 with its read connections open.
pub const FD_RESERVE: usize = 64;

/// Connections kept for the daemon's own host when the total cap is hit.
pub const LOCAL_RESERVE: usize = 8;

/// Refused connections that may linger at once to close cleanly (reply,
/// then read the request away so the close is not a reset that destroys
/// the reply). Past that, a refused socket gets its reply and is dropped.
pub const REJECT_SLOTS: usize = 32;

/// How long a refused connection may linger.
const REJECT_LINGER: Duration = Duration::from_secs(1);

/// The `Retry-After` of every 503 for a cap, in seconds.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Which cap a request or connection ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Connections,
    PerIp,
    Streams,
}

impl Refusal {
    fn kind(self) -> &'static str {
        match self {
            Refusal::Connections => "connections",
            Refusal::PerIp => "per_ip",
            Refusal::Streams => "streams",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::Connections => "the server has too many connections; retry later",
            Refusal::PerIp => "too many connections from this address; retry later",
            Refusal::Streams => "too many open streams; retry later",
        }
    }

    /// The whole HTTP/1.1 response for a refused connection.
    fn response(self) -> Vec<u8> {
        let body =
            json!({ "error": { "code": "overloaded", "message": self.message() } }).to_string();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {RETRY_AFTER_SECS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError::overloaded(r.message(), RETRY_AFTER_SECS)
    }
}

/// The caps in force, after the descriptor limit was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// The soft descriptor limit, if one was found.
    pub nofile: Option<u64>,
    pub max_connections: usize,
    /// Connections from other hosts: all but the local reserve.
    pub remote_connections: usize,
    pub per_ip: usize,
    pub max_streams: usize,
    /// Streams that callers below staff may hold.
    pub shared_streams: usize,
    /// Descriptors HTTP leaves to the rest: [`FD_RESERVE`], the MQTT
    /// clients and [`REJECT_SLOTS`].
    pub reserved: usize,
}

impl Caps {
    /// The caps for `config` under a soft descriptor limit of `nofile`.
    pub fn derive(config: &Config, nofile: Option<u64>) -> Caps {
        let mqtt = if config.mqtt.enabled {
            config.mqtt.max_connections
        } else {
            0
        };
        let reserved = FD_RESERVE + mqtt + REJECT_SLOTS;
        let budget = nofile.map(|n| {
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .saturating_sub(reserved)
        });
        // One connection even when the limit leaves none: a daemon that
        // serves nothing helps nobody (start-up warns).
        let max_connections = budget
            .map_or(config.http.max_connections, |b| {
                config.http.max_connections.min(b)
            })
            .max(1);
        let remote_connections = max_connections - LOCAL_RESERVE.min(max_connections / 4);
        let max_streams = config
            .http
            .max_streams
            .min(max_connections - max_connections / 4);
        Caps {
            nofile,
            max_connections,
            remote_connections,
            per_ip: config.http.max_connections_per_ip,
            max_streams,
            shared_streams: max_streams - max_streams / 4,
            reserved,
        }
    }
}

/// The soft `RLIMIT_NOFILE` ("Max open files") from `/proc/self/limits`;
/// `None` when unlimited or unreadable.
fn soft_nofile() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let rest = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Connection counts. A std mutex: held for a map update, never across
/// an await.
#[derive(Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// The HTTP server's caps and what is open against them; shared by the
/// accept loop and the stream handlers, one per daemon.
pub struct Limits {
    caps: Caps,
    open: Mutex<Open>,
    streams: AtomicUsize,
    /// Streams of callers below staff, counted in `streams` too.
    shared_streams: AtomicUsize,
    /// Refused connections lingering to close cleanly.
    rejecting: AtomicUsize,
    metrics: Arc<Metrics>,
    throttle: Throttle,
}

impl Limits {
    /// Reads the descriptor limit and derives the caps; logs them.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Arc<Limits> {
        let caps = Caps::derive(config, soft_nofile());
        if caps.max_connections < config.http.max_connections {
            tracing::warn!(
                configured = config.http.max_connections,
                max_connections = caps.max_connections,
                nofile = caps.nofile,
                reserved = caps.reserved,
                "http.max_connections lowered to keep descriptors for the store and the broker (raise LimitNOFILE to allow more)"
            );
        }
        tracing::info!(
            nofile = caps.nofile,
            max_connections = caps.max_connections,
            per_ip = caps.per_ip,
            max_streams = caps.max_streams,
            "http limits"
        );
        Arc::new(Limits::with_caps(caps, metrics))
    }

    pub fn with_caps(caps: Caps, metrics: Arc<Metrics>) -> Limits {
        Limits {
            caps,
            open: Mutex::new(Open::default()),
            streams: AtomicUsize::new(0),
            shared_streams: AtomicUsize::new(0),
            rejecting: AtomicUsize::new(0),
            metrics,
            throttle: Throttle::new(LOG_EVERY),
        }
    }

    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// The daemon's counters (the TLS listener counts its handshakes).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Admits a connection from `peer` (`local`: from the daemon's own
    /// host), or says which cap it is over.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, local: bool) -> Result<ConnSlot, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let cap = if local {
            self.caps.max_connections
        } else {
            self.caps.remote_connections
        };
        if open.total >= cap {
            return Err(Refusal::Connections);
        }
        let ip = if local {
            None
        } else {
            let n = open.by_ip.entry(peer).or_insert(0);
            if *n >= self.caps.per_ip {
                return Err(Refusal::PerIp);
            }
            *n += 1;
            Some(peer)
        };
        open.total += 1;
        self.metrics
            .http
            .connections
            .fetch_add(1, Ordering::Relaxed);
        Ok(ConnSlot {
            limits: Arc::clone(self),
            ip,
        })
    }

    /// A stream slot; `privileged` callers (staff, admin) may also use the
    /// quarter kept for them.
    pub fn open_stream(self: &Arc<Self>, privileged: bool) -> Result<StreamSlot, Refusal> {
        let take = |counter: &AtomicUsize, max: usize| {
            counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok()
        };
        let refused = |limits: &Limits| {
            limits.refused(Refusal::Streams, None);
            Err(Refusal::Streams)
        };
        if !take(&self.streams, self.caps.max_streams) {
            return refused(self);
        }
        if !privileged && !take(&self.shared_streams, self.caps.shared_streams) {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return refused(self);
        }
        self.metrics.http.streams.fetch_add(1, Ordering::Relaxed);
        Ok(StreamSlot {
            limits: Arc::clone(self),
            shared: !privileged,
        })
    }

    /// Counts and (rate-limited) logs a refusal.
    fn refused(&self, refusal: Refusal, peer: Option<IpAddr>) {
        let h = &self.metrics.http;
        let counter = match refusal {
            Refusal::Connections => &h.refused_connections,
            Refusal::PerIp => &h.refused_per_ip,
            Refusal::Streams => &h.refused_streams,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.throttle.allow(refusal.kind(), Instant::now()) {
            let c = &self.caps;
            tracing::warn!(
                cap = refusal.kind(),
                // An address, not peer text: nothing to escape.
                peer = peer.map(tracing::field::display),
                max_connections = c.max_connections,
                per_ip = c.per_ip,
                max_streams = c.max_streams,
                suppressed,
                "HTTP request refused with 503: a cap is reached"
            );
        }
    }

    /// Counts a failed accept and logs it, at most once per [`LOG_EVERY`].
    pub fn accept_failed(&self, error: &std::io::Error) {
        self.metrics
            .http
            .accept_errors
            .fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.throttle.allow("accept", Instant::now()) {
            tracing::warn!(error = %error, suppressed, "accept failed");
        }
    }

    /// Answers a connection that is over `refusal` with a 503 and closes
    /// it; a lingering close runs on `tasks` while slots are free.
    pub fn turn_away(
        self: &Arc<Self>,
        mut stream: TcpStream,
        peer: IpAddr,
        refusal: Refusal,
        tasks: &tokio_util::task::TaskTracker,
    ) {
        self.refused(refusal, Some(peer));
        let lingering = self
            .rejecting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < REJECT_SLOTS).then_some(n + 1)
            })
            .is_ok();
        if !lingering {
            // A fresh socket's send buffer takes these few hundred bytes.
            let _ = stream.try_write(&refusal.response());
            return;
        }
        let limits = Arc::clone(self);
        tasks.spawn(async move {
            let _ = tokio::time::timeout(REJECT_LINGER, async {
                stream.write_all(&refusal.response()).await?;
                stream.shutdown().await?;
                let mut sink = [0u8; 1024];
                while stream.read(&mut sink).await? > 0 {}
                Ok::<(), std::io::Error>(())
            })
            .await;
            limits.rejecting.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// One admitted connection, counted until dropped.
pub struct ConnSlot {
    limits: Arc<Limits>,
    /// The address it is counted under (`None`: the daemon's own host).
    ip: Option<IpAddr>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = open.by_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.by_ip.remove(&ip);
                }
            }
        }
        self.limits
            .metrics
            .http
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// One open stream, counted until dropped (with the stream's body or
/// WebSocket session).
pub struct StreamSlot {
    limits: Arc<Limits>,
    shared: bool,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.limits.streams.fetch_sub(1, Ordering::AcqRel);
        if self.shared {
            self.limits.shared_streams.fetch_sub(1, Ordering::AcqRel);
        }
        self.limits
            .metrics
            .http
            .streams
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(env: &[(&str, &str)]) -> Config {
        Config::from_toml(
            Path::new("test.toml"),
            "",
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .expect("config")
    }

    #[test]
    fn caps_leave_the_reserve_and_the_broker_their_descriptors() {
        let cfg = config(&[]);
        let roomy = Caps::derive(&cfg, Some(8192));
        assert_eq!(roomy.max_connections, 512, "the configured cap fits");
        assert_eq!(roomy.max_streams, 128);
        assert_eq!(roomy.shared_streams, 96, "a quarter is kept for staff");
        assert_eq!(roomy.remote_connections, 512 - LOCAL_RESERVE);
        assert_eq!(Caps::derive(&cfg, None).max_connections, 512);

        let tight = Caps::derive(&cfg, Some(256));
        assert_eq!(
            tight.max_connections,
            256 - FD_RESERVE - cfg.mqtt.max_connections - REJECT_SLOTS
        );
        assert!(tight.max_streams <= tight.max_connections * 3 / 4);

        let no_broker = Caps::derive(&config(&[("MESERO_MQTT_ENABLED", "false")]), Some(256));
        assert_eq!(no_broker.max_connections, 256 - FD_RESERVE - REJECT_SLOTS);
        assert_eq!(Caps::derive(&cfg, Some(10)).max_connections, 1);
    }

    #[test]
    fn soft_nofile_is_read() {
        assert!(soft_nofile().is_some_and(|n| n > 0));
    }

    #[test]
    fn connections_are_capped_per_address_except_from_the_own_host() {
        let caps = Caps::derive(
            &config(&[
                ("MESERO_HTTP_MAX_CONNECTIONS", "12"),
                ("MESERO_HTTP_MAX_CONNECTIONS_PER_IP", "2"),
            ]),
            None,
        );
        assert_eq!(caps.remote_connections, 9, "a quarter of 12 kept local");
        let limits = Arc::new(Limits::with_caps(caps, Arc::new(Metrics::default())));
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        let mut held = Vec::new();
        held.push(limits.admit(ip(1), false).expect("first"));
        held.push(limits.admit(ip(1), false).expect("second"));
        assert_eq!(limits.admit(ip(1), false).err(), Some(Refusal::PerIp));
        for n in 2..=8 {
            held.push(limits.admit(ip(n), false).expect("others"));
        }
        assert_eq!(limits.admit(ip(9), false).err(), Some(Refusal::Connections));
        let local = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..3 {
            held.push(limits.admit(local, true).expect("own host"));
        }
        assert_eq!(limits.admit(local, true).err(), Some(Refusal::Connections));
        held.truncate(9);
        assert_eq!(limits.admit(ip(9), false).err(), Some(Refusal::Connections));
        drop(held.remove(0));
        held.push(limits.admit(ip(1), false).expect("a closed slot is free"));
        assert_eq!(limits.metrics.http.connections.load(Ordering::Relaxed), 9);
    }

    #[test]
    fn a_quarter_of_the_streams_is_kept_for_staff() {
        let caps = Caps::derive(&config(&[("MESERO_HTTP_MAX_STREAMS", "8")]), None);
        let limits = Arc::new(Limits::with_caps(caps, Arc::new(Metrics::default())));
        let shared: Vec<_> = (0..6)
            .map(|_| limits.open_stream(false).expect("shared"))
            .collect();
        assert_eq!(limits.open_stream(false).err(), Some(Refusal::Streams));
        let staff: Vec<_> = (0..2)
            .map(|_| limits.open_stream(true).expect("staff"))
            .collect();
        assert_eq!(limits.open_stream(true).err(), Some(Refusal::Streams));
        assert_eq!(
            limits.metrics.http.refused_streams.load(Ordering::Relaxed),
            2
        );
        drop(staff);
        assert!(limits.open_stream(true).is_ok());
        drop(shared);
        assert_eq!(limits.metrics.http.streams.load(Ordering::Relaxed), 0);
    }
}
