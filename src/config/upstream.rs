//! `[bridge]`: the optional upstream MQTT bridge (SPEC §7, [`crate::upstream`]).
//!
//! Off unless `bridge.url` is set. Everything a connection needs is read
//! and checked here, at `mesero check` time: the URL, the password file,
//! the CA bundle and the client certificate are loaded into a ready rustls
//! client configuration, so a bad path or PEM names its key before the
//! daemon runs.

use super::error::{ConfigError, key_error};
use super::value::{duration_in, int_in};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Longest MQTT client id accepted (the embedded broker's own limit too).
const MAX_CLIENT_ID_BYTES: usize = 128;

/// Longest topic prefix accepted; topics under it stay well inside what
/// any broker takes.
const MAX_PREFIX_BYTES: usize = 256;

/// `[bridge]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bridge {
    /// Empty: the bridge is off.
    pub url: String,
    /// Empty: `mesero-<site.id>`.
    pub client_id: String,
    pub username: String,
    pub password: String,
    pub password_file: String,
    /// Refused with an explanation (a client must send the password itself).
    pub password_sha256: String,
    /// Empty: the system's CA store.
    pub ca_file: String,
    pub client_cert: String,
    pub client_key: String,
    /// Empty: `mesero/<site.id>`.
    pub topic_prefix: String,
    pub events: bool,
    /// Event type prefixes to forward (`table`, `alert.raised`); empty: all.
    pub event_types: Vec<String>,
    pub state: bool,
    /// Hourly analytics rollups (`analytics.hourly` events).
    pub analytics: bool,
    pub max_backlog_days: i64,
    pub backlog_rate: u64,
    pub max_inflight: u64,
    pub keep_alive: String,
    pub reconnect_min: String,
    pub reconnect_max: String,
}

impl Default for Bridge {
    fn default() -> Self {
        Bridge {
            url: String::new(),
            client_id: String::new(),
            username: String::new(),
            password: String::new(),
            password_file: String::new(),
            password_sha256: String::new(),
            ca_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
            topic_prefix: String::new(),
            events: true,
            event_types: Vec::new(),
            state: true,
            analytics: true,
            max_backlog_days: 7,
            backlog_rate: 100,
            max_inflight: 32,
            keep_alive: "30s".into(),
            reconnect_min: "1s".into(),
            reconnect_max: "2m".into(),
        }
    }
}

/// The checked `[bridge]`. Its `Debug` leaves the password out.
#[derive(Clone)]
pub struct BridgeConfig {
    /// As written, for logs and `mesero check`.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Set for `mqtts://`: the rustls configuration (ring provider, the
    /// CA roots, the optional client certificate).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub client_id: String,
    /// User name and password; `None` connects without credentials.
    pub credentials: Option<(String, String)>,
    /// No trailing `/`.
    pub topic_prefix: String,
    pub events: bool,
    pub event_types: Vec<String>,
    pub state: bool,
    /// Records an hourly rollup (`upstream::rollup`) and forwards it,
    /// whatever `events` and `event_types` say.
    pub analytics: bool,
    /// Retention keeps an event the upstream has not acknowledged for this
    /// long, even past `storage.retention_days`; older ones become a gap.
    pub max_backlog: Duration,
    pub max_backlog_days: u32,
    /// Most events per second sent while a backlog drains.
    pub backlog_rate: u32,
    /// Most publishes awaiting their PUBACK at once.
    pub max_inflight: u16,
    pub keep_alive: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl std::fmt::Debug for BridgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeConfig")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("username", &self.credentials.as_ref().map(|(user, _)| user))
            .field("topic_prefix", &self.topic_prefix)
            .field("max_backlog_days", &self.max_backlog_days)
            .finish_non_exhaustive()
    }
}

impl BridgeConfig {
    /// Whether events of type `kind` are forwarded.
    pub fn forwards(&self, kind: &str) -> bool {
        if kind == "analytics.hourly" {
            return self.analytics;
        }
        self.events
            && (self.event_types.is_empty()
                || self.event_types.iter().any(|t| {
                    kind == t
                        || kind
                            .strip_prefix(t.as_str())
                            .is_some_and(|rest| rest.starts_with('.'))
                }))
    }
}

/// `None` when `bridge.url` is empty.
pub(super) fn check(raw: Bridge, site: &str) -> Result<Option<BridgeConfig>, ConfigError> {
    if raw.url.trim().is_empty() {
        return match first_set_key(&raw) {
            Some(key) => Err(key_error(
                format!("bridge.{key}"),
                "is set but bridge.url is empty, so the bridge is off: \
                 set bridge.url, or remove this key",
            )),
            None => Ok(None),
        };
    }
    let (secure, host, port) = parse_url(raw.url.trim())?;
    if !raw.password_sha256.is_empty() {
        return Err(key_error(
            "bridge.password_sha256",
            "an MQTT client must send the password itself, so a hash cannot log in; \
             keep it out of the config file with bridge.password_file instead",
        ));
    }
    let password = match (raw.password.is_empty(), raw.password_file.is_empty()) {
        (false, false) => {
            return Err(key_error(
                "bridge.password",
                "set bridge.password or bridge.password_file, not both",
            ));
        }
        (true, false) => Some(read_password(&raw.password_file)?),
        (false, true) => Some(raw.password.clone()),
        (true, true) => None,
    };
    let credentials = match (raw.username.is_empty(), password) {
        (false, password) => Some((raw.username.clone(), password.unwrap_or_default())),
        (true, None) => None,
        (true, Some(_)) => {
            return Err(key_error(
                "bridge.username",
                "a password is set but no user name",
            ));
        }
    };
    let tls = if secure {
        Some(Arc::new(tls_config(&raw)?))
    } else {
        for (key, value) in [
            ("bridge.ca_file", &raw.ca_file),
            ("bridge.client_cert", &raw.client_cert),
            ("bridge.client_key", &raw.client_key),
        ] {
            if !value.is_empty() {
                return Err(key_error(key, "only used with an mqtts:// bridge.url"));
            }
        }
        None
    };
    let client_id = if raw.client_id.is_empty() {
        format!("mesero-{site}")
    } else {
        raw.client_id
    };
    if client_id.len() > MAX_CLIENT_ID_BYTES || client_id.chars().any(char::is_control) {
        return Err(key_error(
            "bridge.client_id",
            format!("must be at most {MAX_CLIENT_ID_BYTES} bytes without control characters"),
        ));
    }
    let topic_prefix = if raw.topic_prefix.is_empty() {
        format!("mesero/{site}")
    } else {
        raw.topic_prefix.trim_end_matches('/').to_string()
    };
    check_prefix(&topic_prefix)?;
    for (i, t) in raw.event_types.iter().enumerate() {
        if t.is_empty()
            || !t
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
        {
            return Err(key_error(
                format!("bridge.event_types[{i}]"),
                format!("{t:?} is not an event type prefix such as \"table\" or \"alert.raised\""),
            ));
        }
    }
    let max_backlog_days: u32 = int_in("bridge.max_backlog_days", raw.max_backlog_days, 1, 3650)?;
    let reconnect_min = duration_in(
        "bridge.reconnect_min",
        &raw.reconnect_min,
        Duration::from_millis(10),
        Duration::from_secs(3600),
    )?;
    let reconnect_max = duration_in(
        "bridge.reconnect_max",
        &raw.reconnect_max,
        reconnect_min,
        Duration::from_secs(3600),
    )?;
    Ok(Some(BridgeConfig {
        url: raw.url.trim().to_string(),
        host,
        port,
        tls,
        client_id,
        credentials,
        topic_prefix,
        events: raw.events,
        event_types: raw.event_types,
        state: raw.state,
        analytics: raw.analytics,
        max_backlog: Duration::from_secs(u64::from(max_backlog_days) * 86_400),
        max_backlog_days,
        backlog_rate: int_in("bridge.backlog_rate", raw.backlog_rate, 1, 10_000)?,
        max_inflight: int_in("bridge.max_inflight", raw.max_inflight, 1, 1000)?,
        keep_alive: duration_in(
            "bridge.keep_alive",
            &raw.keep_alive,
            Duration::from_secs(5),
            Duration::from_secs(3600),
        )?,
        reconnect_min,
        reconnect_max,
    }))
}

/// The first `[bridge]` key (in name order) that differs from its
/// default: what an owner meant to configure for a bridge that is off.
fn first_set_key(raw: &Bridge) -> Option<String> {
    let as_map = |b: &Bridge| match serde_json::to_value(b) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (set, default) = (as_map(raw), as_map(&Bridge::default()));
    set.into_iter()
        .find(|(key, value)| key != "url" && default.get(key) != Some(value))
        .map(|(key, _)| key)
}

/// Where an MQTT client connects to: host, port, and the rustls
/// configuration for `mqtts://`.
pub type MqttTarget = (String, u16, Option<Arc<rustls::ClientConfig>>);

/// `url` (as `bridge.url` takes it) and an optional CA file (empty: the
/// system store) checked the way `[bridge]` is, for `mesero watch --mqtt`;
/// errors name the option as `key`.
pub fn mqtt_target(url: &str, ca_file: &str) -> Result<MqttTarget, ConfigError> {
    let (secure, host, port) = parse_url(url.trim())?;
    let tls = if secure {
        let raw = Bridge {
            ca_file: ca_file.to_string(),
            ..Bridge::default()
        };
        Some(Arc::new(tls_config(&raw)?))
    } else {
        None
    };
    Ok((host, port, tls))
}

/// `mqtt://host[:port]` or `mqtts://host[:port]` (IPv6 in brackets);
/// returns (TLS?, host, port).
fn parse_url(url: &str) -> Result<(bool, String, u16), ConfigError> {
    let bad = |why: &str| {
        key_error(
            "bridge.url",
            format!("{url:?}: {why}; use mqtt://host[:port] or mqtts://host[:port]"),
        )
    };
    let (secure, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err(bad("the scheme must be mqtt:// or mqtts://"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '@', '?', '#']) {
        return Err(bad("no path, user or query may follow the host"));
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (host, after.strip_prefix(':'))
        }
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port must be 1..=65535"))?,
        None if secure => 8883,
        None => 1883,
    };
    Ok((secure, host.to_string(), port))
}

fn check_prefix(prefix: &str) -> Result<(), ConfigError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_BYTES
        && !prefix.starts_with(['/', '$'])
        && !prefix.contains("//")
        && prefix
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '+' && c != '#');
    if !ok {
        return Err(key_error(
            "bridge.topic_prefix",
            format!(
                "{prefix:?} must be printable ASCII without '+', '#', empty levels or a leading \
                 '/' or '$', at most {MAX_PREFIX_BYTES} bytes"
            ),
        ));
    }
    Ok(())
}

fn read_password(path: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| key_error("bridge.password_file", format!("cannot read {path:?}: {e}")))?;
    let password = text.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(key_error(
            "bridge.password_file",
            format!("{path:?} is empty"),
        ));
    }
    Ok(password)
}

/// The rustls client configuration of an `mqtts://` bridge: ring as the
/// crypto provider, the CA roots from `bridge.ca_file` (or the system
/// store), and the client certificate if one is set.
fn tls_config(raw: &Bridge) -> Result<rustls::ClientConfig, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    if raw.ca_file.is_empty() {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(key_error(
                "bridge.ca_file",
                "the system has no CA certificates (install ca-certificates) and none is set",
            ));
        }
    } else {
        for cert in read_certs("bridge.ca_file", &raw.ca_file)? {
            roots
                .add(cert)
                .map_err(|e| key_error("bridge.ca_file", format!("{:?}: {e}", raw.ca_file)))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| key_error("bridge.url", format!("TLS: {e}")))?
        .with_root_certificates(roots);
    match (raw.client_cert.is_empty(), raw.client_key.is_empty()) {
        (true, true) => Ok(builder.with_no_client_auth()),
        (false, false) => {
            let certs = read_certs("bridge.client_cert", &raw.client_cert)?;
            let key = PrivateKeyDer::from_pem_file(&raw.client_key).map_err(|e| {
                key_error(
                    "bridge.client_key",
                    format!("{:?}: no private key read: {e}", raw.client_key),
                )
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| key_error("bridge.client_cert", e.to_string()))
        }
        (false, true) => Err(key_error(
            "bridge.client_key",
            "bridge.client_cert needs it",
        )),
        (true, false) => Err(key_error(
            "bridge.client_cert",
            "bridge.client_key needs it",
        )),
    }
}

fn read_certs(key: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    std::fs::metadata(path).map_err(|e| key_error(key, format!("cannot read {path:?}: {e}")))?;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| key_error(key, format!("{path:?}: not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(key_error(key, format!("{path:?} holds no PEM certificate")));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(url: &str) -> Bridge {
        Bridge {
            url: url.into(),
            ..Bridge::default()
        }
    }

    #[test]
    fn urls_give_host_port_and_tls() {
        let (s, h, p) = parse_url("mqtt://hq.example.com").expect("plain");
        assert_eq!((s, h.as_str(), p), (false, "hq.example.com", 1883));
        let (s, h, p) = parse_url("mqtts://[::1]:9883").expect("v6");
        assert_eq!((s, h.as_str(), p), (true, "::1", 9883));
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://x:0",
            "mqtt://x:99999",
            "mqtt://u@x",
            "mqtt://x/y",
        ] {
            let e = check(bridge(bad), "s").expect_err(bad).to_string();
            assert!(e.starts_with("bridge.url: "), "{e}");
        }
    }

    #[test]
    fn defaults_follow_the_site_and_off_without_url() {
        assert!(check(Bridge::default(), "s").expect("off").is_none());
        let b = check(bridge("mqtt://127.0.0.1:1"), "cafe-2")
            .expect("ok")
            .expect("on");
        assert_eq!(b.topic_prefix, "mesero/cafe-2");
        assert_eq!(b.client_id, "mesero-cafe-2");
        assert!(b.tls.is_none() && b.credentials.is_none());
        assert!(b.forwards("table.state"));
    }

    #[test]
    fn a_bridge_key_without_a_url_names_the_key() {
        let raw = Bridge {
            username: "centro".into(),
            ..Bridge::default()
        };
        let e = check(raw, "s").expect_err("no url").to_string();
        assert!(
            e.starts_with("bridge.username: is set but bridge.url is empty"),
            "{e}"
        );
        let raw = Bridge {
            max_backlog_days: 30,
            ..bridge("  ")
        };
        let e = check(raw, "s").expect_err("blank url").to_string();
        assert!(e.starts_with("bridge.max_backlog_days: "), "{e}");
        assert!(check(bridge(" "), "s").expect("off").is_none());
    }

    #[test]
    fn event_type_prefixes_match_whole_parts() {
        let raw = Bridge {
            event_types: vec!["table".into(), "alert.raised".into()],
            ..bridge("mqtt://h")
        };
        let b = check(raw, "s").expect("ok").expect("on");
        assert!(b.forwards("table.state") && b.forwards("alert.raised"));
        assert!(!b.forwards("tables.x") && !b.forwards("alert.acked"));
        assert!(
            b.forwards("analytics.hourly"),
            "rollups go with bridge.analytics"
        );
        let raw = Bridge {
            events: false,
            analytics: false,
            ..bridge("mqtt://h")
        };
        let b = check(raw, "s").expect("ok").expect("on");
        assert!(!b.forwards("analytics.hourly") && !b.forwards("table.state"));
    }

    #[test]
    fn an_unreadable_ca_or_password_file_names_its_key() {
        let raw = Bridge {
            ca_file: "/nonexistent/ca.pem".into(),
            ..bridge("mqtts://h")
        };
        let e = check(raw, "s").expect_err("ca").to_string();
        assert!(e.starts_with("bridge.ca_file: "), "{e}");
        let raw = Bridge {
            username: "u".into(),
            password_file: "/nonexistent/pw".into(),
            ..bridge("mqtt://h")
        };
        let e = check(raw, "s").expect_err("pw").to_string();
        assert!(e.starts_with("bridge.password_file: "), "{e}");
        let raw = Bridge {
            password_sha256: "ab".into(),
            ..bridge("mqtt://h")
        };
        let e = check(raw, "s").expect_err("sha").to_string();
        assert!(e.starts_with("bridge.password_sha256: "), "{e}");
    }

    #[test]
    fn debug_output_leaves_the_password_out() {
        let raw = Bridge {
            username: "site".into(),
            password: "s3cret".into(),
            ..bridge("mqtt://h")
        };
        let b = check(raw, "s").expect("ok").expect("on");
        let shown = format!("{b:?}");
        assert!(
            shown.contains("site") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn a_prefix_with_wildcards_is_refused() {
        for bad in ["a/+/b", "#", "$SYS/x", "/x", "a//b"] {
            let raw = Bridge {
                topic_prefix: bad.into(),
                ..bridge("mqtt://h")
            };
            let e = check(raw, "s").expect_err(bad).to_string();
            assert!(e.starts_with("bridge.topic_prefix: "), "{e}");
        }
    }
}
