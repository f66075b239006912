//! `[http]`: the REST/SSE/WebSocket listener and its limits.

use super::error::ConfigError;
use super::value::{int_in, parse_addr, positive_duration, within};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// `[http]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: String,
    pub heartbeat: String,
    pub retry: String,
    pub ws_ping: String,
    pub max_body_bytes: u64,
    pub client_queue: u64,
    pub max_connections: u64,
    pub max_connections_per_ip: u64,
    pub max_streams: u64,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: "0.0.0.0:8080".into(),
            heartbeat: "15s".into(),
            retry: "2s".into(),
            ws_ping: "20s".into(),
            max_body_bytes: 64 * 1024,
            client_queue: 1024,
            max_connections: 512,
            max_connections_per_ip: 32,
            max_streams: 128,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// SSE comment sent when a stream has been idle this long.
    pub heartbeat: Duration,
    /// The `retry:` hint given to EventSource clients.
    pub retry: Duration,
    /// WebSocket ping interval; a peer silent for two of them is dropped.
    pub ws_ping: Duration,
    pub max_body_bytes: usize,
    /// How many events a stream client may fall behind before it is closed.
    pub client_queue: usize,
    /// Most HTTP connections open at once (streams included); lowered at
    /// start so HTTP never takes the descriptors the store and the broker
    /// need (see `http::limits`).
    pub max_connections: usize,
    /// Most connections from one client address; connections from the
    /// daemon's own host are not counted against it.
    pub max_connections_per_ip: usize,
    /// Most SSE and WebSocket streams open at once; a quarter is kept for
    /// callers with a staff or admin token.
    pub max_streams: usize,
}

/// Shortest period of a repeating HTTP timer (`http.heartbeat`,
/// `http.retry`, `http.ws_ping`): shorter ones only burn CPU.
const MIN_HTTP_PERIOD: Duration = Duration::from_millis(10);

/// Longest period of a repeating HTTP timer: a heartbeat or ping an hour
/// apart no longer keeps anything alive, and a retry hint longer than that
/// keeps screens stale.
const MAX_HTTP_PERIOD: Duration = Duration::from_secs(3600);

fn http_period(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = positive_duration(key, value)?;
    within(key, value, d, MIN_HTTP_PERIOD, MAX_HTTP_PERIOD)
}

pub(super) fn check(raw: Http) -> Result<HttpConfig, ConfigError> {
    Ok(HttpConfig {
        listen: parse_addr("http.listen", &raw.listen)?,
        heartbeat: http_period("http.heartbeat", &raw.heartbeat)?,
        retry: http_period("http.retry", &raw.retry)?,
        ws_ping: http_period("http.ws_ping", &raw.ws_ping)?,
        max_body_bytes: int_in("http.max_body_bytes", raw.max_body_bytes, 1024, 16 << 20)?,
        client_queue: int_in("http.client_queue", raw.client_queue, 16, 1 << 16)?,
        max_connections: int_in("http.max_connections", raw.max_connections, 8, 1 << 16)?,
        max_connections_per_ip: int_in(
            "http.max_connections_per_ip",
            raw.max_connections_per_ip,
            1,
            1 << 16,
        )?,
        max_streams: int_in("http.max_streams", raw.max_streams, 1, 1 << 16)?,
    })
}
