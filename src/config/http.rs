//! `[http]`: the REST/SSE/WebSocket listener and its limits.

use super::error::{ConfigError, key_error};
use super::value::{int_in, parse_addr, positive_duration, within};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    pub cors_origins: Vec<String>,
    pub tls_listen: String,
    pub tls_cert: String,
    pub tls_key: String,
    pub tls_ca_cert: String,
    pub tls_ca_key: String,
    pub tls_names: Vec<String>,
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
            cors_origins: Vec::new(),
            // Empty: no HTTPS listener.
            tls_listen: String::new(),
            // Empty: files in `tls/` next to the database (`tls_files`).
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_ca_cert: String::new(),
            tls_ca_key: String::new(),
            tls_names: Vec::new(),
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
    /// Origins (`http://host:port`) whose pages may call the API from a
    /// browser (CORS); empty: none, only same-origin pages.
    pub cors_origins: Vec<String>,
    /// `http.tls_listen`: the HTTPS listener serving the same router;
    /// `None` (the default) for none.
    pub tls_listen: Option<SocketAddr>,
    /// Where `mesero tls init` writes and the HTTPS listener reads its
    /// certificates (see [`crate::tls`]).
    pub tls: TlsFiles,
}

/// The certificate files of the HTTPS listener and its local CA, with the
/// config key each comes from (errors about a file name the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `http.tls_cert`: the server certificate (PEM), then the CA's.
    pub cert: PathBuf,
    /// `http.tls_key`: the server certificate's private key (PEM, 0600).
    pub key: PathBuf,
    /// `http.tls_ca_cert`: the local CA's certificate (PEM), what tablets
    /// install (`GET /ca.crt`).
    pub ca_cert: PathBuf,
    /// `http.tls_ca_key`: the local CA's private key (PEM, 0600); never
    /// leaves the Pi.
    pub ca_key: PathBuf,
    /// `http.tls_names`: names and addresses the server certificate covers
    /// besides the ones found on the host.
    pub extra_names: Vec<String>,
}

/// Longest entry of `http.tls_names` (a DNS name is at most 253 bytes).
const MAX_TLS_NAME: usize = 253;

/// Most entries in `http.tls_names`.
const MAX_TLS_NAMES: usize = 32;

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

/// `value`, or `file` in the `tls/` directory next to the database.
fn tls_path(key: &str, value: &str, database: &Path, file: &str) -> Result<PathBuf, ConfigError> {
    if value.is_empty() {
        let dir = database.parent().unwrap_or(Path::new("."));
        return Ok(dir.join("tls").join(file));
    }
    if value.trim() != value {
        return Err(key_error(
            key,
            format!("{value:?} has spaces around the path"),
        ));
    }
    Ok(PathBuf::from(value))
}

/// One `http.tls_names` entry: an IP address or a DNS name (letters,
/// digits, `-` and `.`), lower case.
fn tls_name(key: &str, name: &str) -> Result<String, ConfigError> {
    let lower = name.to_ascii_lowercase();
    let ip = lower.parse::<std::net::IpAddr>().is_ok();
    let dns = !lower.is_empty()
        && lower.len() <= MAX_TLS_NAME
        && lower.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ip || dns {
        Ok(lower)
    } else {
        Err(key_error(
            key,
            format!("{name:?} is neither an IP address nor a host name (e.g. \"mesero.lan\")"),
        ))
    }
}

fn tls_files(raw: &Http, database: &Path) -> Result<TlsFiles, ConfigError> {
    if raw.tls_names.len() > MAX_TLS_NAMES {
        return Err(key_error(
            "http.tls_names",
            format!("at most {MAX_TLS_NAMES} names"),
        ));
    }
    Ok(TlsFiles {
        cert: tls_path("http.tls_cert", &raw.tls_cert, database, "server.crt")?,
        key: tls_path("http.tls_key", &raw.tls_key, database, "server.key")?,
        ca_cert: tls_path("http.tls_ca_cert", &raw.tls_ca_cert, database, "ca.crt")?,
        ca_key: tls_path("http.tls_ca_key", &raw.tls_ca_key, database, "ca.key")?,
        extra_names: raw
            .tls_names
            .iter()
            .enumerate()
            .map(|(i, n)| tls_name(&format!("http.tls_names[{i}]"), n))
            .collect::<Result<_, _>>()?,
    })
}

/// Checks `[http]`; the certificate files default to `tls/` next to the
/// `database` (`storage.path`).
pub(super) fn check(raw: Http, database: &Path) -> Result<HttpConfig, ConfigError> {
    let tls = tls_files(&raw, database)?;
    let listen = parse_addr("http.listen", &raw.listen)?;
    let tls_listen = match raw.tls_listen.as_str() {
        "" => None,
        other => {
            let addr = parse_addr("http.tls_listen", other)?;
            if addr == listen && addr.port() != 0 {
                return Err(key_error(
                    "http.tls_listen",
                    format!("{other:?} is http.listen too; give HTTPS its own port (e.g. 8443)"),
                ));
            }
            Some(addr)
        }
    };
    Ok(HttpConfig {
        tls_listen,
        tls,
        listen,
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
        cors_origins: raw
            .cors_origins
            .iter()
            .enumerate()
            .map(|(i, o)| cors_origin(&format!("http.cors_origins[{i}]"), o))
            .collect::<Result<_, _>>()?,
    })
}

/// An origin as a browser sends it in `Origin`: `http` or `https`, a host
/// (name, IPv4 or `[IPv6]`) and an optional port, nothing else (no path,
/// no trailing slash, no `*`), so it can only ever equal a real `Origin`
/// header. Returned as written, but lower case, as browsers send it.
fn cors_origin(key: &str, origin: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| {
        key_error(
            key,
            format!("{origin:?} is not an origin ({why}); write e.g. \"http://192.168.1.20:4321\""),
        )
    };
    let lower = origin.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| bad("it must start with http:// or https://"))?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, Some(p)),
        _ => (rest, None),
    };
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
    }
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    };
    if !host_ok {
        return Err(bad(
            "no path, query or `*`; only a scheme, a host and a port",
        ));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn origins(list: &str) -> Result<Vec<String>, String> {
        Config::from_toml(
            Path::new("t.toml"),
            &format!("[http]\ncors_origins = {list}\n"),
            std::iter::empty(),
        )
        .map(|c| c.http.cors_origins)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn cors_origins_are_origins_and_errors_name_the_entry() {
        assert_eq!(origins("[]"), Ok(vec![]));
        assert_eq!(
            origins(r#"["http://localhost:4321", "HTTPS://Tablet.local", "http://[::1]:8000"]"#),
            Ok(vec![
                "http://localhost:4321".into(),
                "https://tablet.local".into(),
                "http://[::1]:8000".into()
            ])
        );
        for bad in [
            "*",
            "localhost:4321",
            "http://localhost:4321/",
            "http://localhost:4321/admin",
            "http://",
            "http://host:0",
            "http://host:99999",
            "ftp://host",
            "http://ho st",
        ] {
            let err = origins(&format!("[\"http://ok:1\", {bad:?}]")).expect_err(bad);
            assert!(err.contains("http.cors_origins[1]"), "{bad}: {err}");
        }
    }
}
