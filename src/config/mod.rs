//! Configuration: one TOML file, read in two layers.
//!
//! 1. [`raw`] structs mirror the file exactly (`deny_unknown_fields`, serde
//!    defaults), so a typo is an error naming the key.
//! 2. [`Config`] is the checked runtime form: addresses parsed, durations
//!    parsed, tokens reduced to their SHA-256, tables validated. Every error
//!    names the key it is about (`http.listen: ...`).
//!
//! `[[sensors]]` entries are checked in [`sensors`].
//!
//! Between the two, environment variables `MESERO_<SECTION>_<KEY>` override
//! scalar keys (SPEC §5), so a systemd drop-in or a test can change one key
//! without editing the file.

use crate::auth::{AuthConfig, Credential, Role};
use crate::domain::{Layout, TableId};
use crate::sensors::spec::SensorConfig;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod sensors;

/// The documented dev default, also printed by `mesero config example`.
pub const EXAMPLE: &str = include_str!("../../config/mesero.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A key is unknown or its value is wrong; `key` is the dotted path.
    #[error("{key}: {message}")]
    Key { key: String, message: String },
}

/// A key error. Both parts may quote the file or the environment (an
/// unknown key, a variable's name), so they are made
/// [`printable`](crate::text::printable): the error stays one line.
fn key_error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    let (key, message) = (key.into(), message.into());
    ConfigError::Key {
        key: crate::text::printable(&key).into_owned(),
        message: crate::text::printable(&message).into_owned(),
    }
}

/// The raw layer: exactly what the TOML file may contain.
pub mod raw {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    pub struct RawConfig {
        pub site: Site,
        pub http: Http,
        pub storage: Storage,
        pub occupancy: Occupancy,
        pub mqtt: Mqtt,
        pub auth: Auth,
        pub log: Log,
        pub tables: Vec<Table>,
        pub sensors: Vec<super::sensors::RawSensor>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Site {
        pub id: String,
        pub name: String,
        pub timezone: String,
        pub language: String,
    }

    impl Default for Site {
        fn default() -> Self {
            Site {
                id: "local".into(),
                name: "mesero".into(),
                timezone: "UTC".into(),
                language: "es".into(),
            }
        }
    }

    #[derive(Debug, Deserialize)]
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

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Storage {
        pub path: String,
        pub retention_days: i64,
        pub batch_max: u64,
    }

    impl Default for Storage {
        fn default() -> Self {
            Storage {
                path: "/var/lib/mesero/mesero.db".into(),
                retention_days: 30,
                batch_max: 256,
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Occupancy {
        pub occupy_after: String,
        pub release_after: String,
        pub bussing: bool,
    }

    impl Default for Occupancy {
        fn default() -> Self {
            Occupancy {
                occupy_after: "10s".into(),
                release_after: "180s".into(),
                bussing: false,
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Mqtt {
        pub enabled: bool,
        pub listen: String,
        /// Empty: no WebSocket listener.
        pub ws_listen: String,
        pub allow_anonymous: bool,
        pub homeassistant: bool,
        pub max_payload: u64,
        pub max_connections: u64,
        pub segment_bytes: u64,
        pub segments: u64,
        pub connect_timeout: String,
        pub max_pending: u64,
        pub max_pending_per_ip: u64,
        pub max_subscriptions: u64,
        pub max_filters: u64,
        pub max_retained: u64,
        pub max_retained_bytes: u64,
        pub max_retained_per_user: u64,
        pub max_retained_bytes_per_user: u64,
        pub users: Vec<MqttUser>,
    }

    impl Default for Mqtt {
        fn default() -> Self {
            Mqtt {
                enabled: true,
                listen: "0.0.0.0:1883".into(),
                ws_listen: String::new(),
                allow_anonymous: false,
                homeassistant: false,
                max_payload: 64 * 1024,
                max_connections: 64,
                segment_bytes: 128 * 1024,
                segments: 4,
                connect_timeout: "5s".into(),
                max_pending: 64,
                max_pending_per_ip: 8,
                max_subscriptions: 100,
                max_filters: 256,
                max_retained: 1000,
                max_retained_bytes: 8 << 20,
                max_retained_per_user: 100,
                max_retained_bytes_per_user: 1 << 20,
                users: Vec::new(),
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct MqttUser {
        pub name: String,
        pub role: String,
        pub password: Option<String>,
        pub password_sha256: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Auth {
        pub anonymous: String,
        pub tokens: Vec<Token>,
    }

    impl Default for Auth {
        fn default() -> Self {
            Auth {
                anonymous: "viewer".into(),
                tokens: Vec::new(),
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Token {
        pub name: String,
        pub role: String,
        pub token: Option<String>,
        pub token_sha256: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Log {
        pub level: String,
    }

    impl Default for Log {
        fn default() -> Self {
            Log {
                level: "info".into(),
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Table {
        pub id: i64,
        pub number: Option<String>,
        #[serde(default)]
        pub zone: String,
        #[serde(default = "default_seats")]
        pub seats: u32,
        #[serde(default)]
        pub x: f64,
        #[serde(default)]
        pub y: f64,
        #[serde(default = "one")]
        pub w: f64,
        #[serde(default = "one")]
        pub h: f64,
        #[serde(default = "rect")]
        pub shape: String,
    }

    fn default_seats() -> u32 {
        4
    }
    fn one() -> f64 {
        1.0
    }
    fn rect() -> String {
        "rect".into()
    }
}

/// Kinds of scalar keys, for parsing `MESERO_<SECTION>_<KEY>` values.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
}

/// Every scalar key that an environment variable may override.
const ENV_KEYS: &[(&str, &str, Kind)] = &[
    ("site", "id", Kind::Str),
    ("site", "name", Kind::Str),
    ("site", "timezone", Kind::Str),
    ("site", "language", Kind::Str),
    ("http", "listen", Kind::Str),
    ("http", "heartbeat", Kind::Str),
    ("http", "retry", Kind::Str),
    ("http", "ws_ping", Kind::Str),
    ("http", "max_body_bytes", Kind::Int),
    ("http", "client_queue", Kind::Int),
    ("http", "max_connections", Kind::Int),
    ("http", "max_connections_per_ip", Kind::Int),
    ("http", "max_streams", Kind::Int),
    ("storage", "path", Kind::Str),
    ("storage", "retention_days", Kind::Int),
    ("storage", "batch_max", Kind::Int),
    ("occupancy", "occupy_after", Kind::Str),
    ("occupancy", "release_after", Kind::Str),
    ("occupancy", "bussing", Kind::Bool),
    ("mqtt", "enabled", Kind::Bool),
    ("mqtt", "listen", Kind::Str),
    ("mqtt", "ws_listen", Kind::Str),
    ("mqtt", "allow_anonymous", Kind::Bool),
    ("mqtt", "homeassistant", Kind::Bool),
    ("mqtt", "max_payload", Kind::Int),
    ("mqtt", "max_connections", Kind::Int),
    ("mqtt", "segment_bytes", Kind::Int),
    ("mqtt", "segments", Kind::Int),
    ("mqtt", "connect_timeout", Kind::Str),
    ("mqtt", "max_pending", Kind::Int),
    ("mqtt", "max_pending_per_ip", Kind::Int),
    ("mqtt", "max_subscriptions", Kind::Int),
    ("mqtt", "max_filters", Kind::Int),
    ("mqtt", "max_retained", Kind::Int),
    ("mqtt", "max_retained_bytes", Kind::Int),
    ("mqtt", "max_retained_per_user", Kind::Int),
    ("mqtt", "max_retained_bytes_per_user", Kind::Int),
    ("auth", "anonymous", Kind::Str),
    ("log", "level", Kind::Str),
];

/// The checked runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub site: SiteConfig,
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub occupancy: OccupancyConfig,
    pub mqtt: MqttConfig,
    pub auth: AuthConfig,
    pub log_level: String,
    /// Seeds an empty database; afterwards the API owns the floor plan.
    pub tables: Vec<TableSeed>,
    pub sensors: Vec<SensorConfig>,
}

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub id: String,
    pub name: String,
    pub timezone: String,
    pub language: String,
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

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub path: PathBuf,
    pub retention: Duration,
    pub retention_days: u32,
    /// Most commands the writer commits in one transaction.
    pub batch_max: usize,
}

#[derive(Debug, Clone)]
pub struct OccupancyConfig {
    pub occupy_after: Duration,
    pub release_after: Duration,
    pub bussing: bool,
}

/// The embedded MQTT broker (SPEC §3).
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// false: no broker at all (nothing listens, nothing is published).
    pub enabled: bool,
    pub listen: SocketAddr,
    /// MQTT over WebSocket (browsers, some integrations), if set.
    pub ws_listen: Option<SocketAddr>,
    /// Clients without a username connect with the viewer role.
    pub allow_anonymous: bool,
    /// Publish Home Assistant discovery configs.
    pub homeassistant: bool,
    /// Largest MQTT packet accepted (bytes after the fixed header).
    pub max_payload: usize,
    /// Most clients connected at once.
    pub max_connections: usize,
    /// Size of one segment of the broker's in-memory log per subscription
    /// filter, and how many segments are kept: together they bound the
    /// memory a subscription filter can hold.
    pub segment_bytes: usize,
    pub segments: usize,
    /// A socket must complete its CONNECT (and WebSocket handshake) within
    /// this time.
    pub connect_timeout: Duration,
    /// Sockets that have not sent their CONNECT yet, in total and per
    /// client IP. They do not count against `max_connections`; when full,
    /// the oldest pending socket is closed for the new one, so silent
    /// sockets can never lock out a client that logs in.
    pub max_pending: usize,
    pub max_pending_per_ip: usize,
    /// Subscription filters one connection may hold, and new filters one
    /// user (anonymous clients are one) may bring to the router (SUBACK
    /// 0x80 beyond).
    pub max_subscriptions: usize,
    /// Distinct filters the router may ever hold: it keeps a log for each
    /// until the daemon stops, so this times `segments` × `segment_bytes`
    /// bounds the memory subscriptions can take.
    pub max_filters: usize,
    /// Retained messages clients may leave (topics, and bytes of topic and
    /// payload), in total and per MQTT user (anonymous clients share one
    /// quota). The daemon's own retained state is not counted.
    pub max_retained: usize,
    pub max_retained_bytes: usize,
    pub max_retained_per_user: usize,
    pub max_retained_bytes_per_user: usize,
    pub users: Vec<MqttUser>,
}

/// An `[[mqtt.users]]` entry.
pub type MqttUser = Credential;

#[derive(Debug, Clone)]
pub struct TableSeed {
    pub id: TableId,
    pub number: String,
    pub zone: String,
    pub seats: u32,
    pub layout: Layout,
}

impl Config {
    /// Reads, overrides from the process environment, and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(path, &text, process_env()?)
    }

    /// Parses `text` (named `path` in errors) with the given environment.
    pub fn from_toml(
        path: &Path,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut doc: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
        let overridden = apply_env(&mut doc, env)?;
        // A bad value that came from the environment is reported with the
        // variable's name, or nobody would find it in the file.
        let blame = |e: ConfigError| match e {
            ConfigError::Key { key, message } => {
                let var = overridden.iter().find(|(dotted, _)| *dotted == key);
                match var {
                    Some((_, var)) => key_error(format!("{key} (from {var})"), message),
                    None => key_error(key, message),
                }
            }
            other => other,
        };
        let raw: raw::RawConfig = serde_path_to_error::deserialize(toml::Value::Table(doc))
            .map_err(|e| {
                let key = e.path().to_string();
                // toml appends "in `section`" on a second line; the key
                // already says where.
                let message = e.into_inner().to_string();
                blame(key_error(key, message.lines().next().unwrap_or_default()))
            })?;
        check(raw).map_err(blame)
    }
}

/// The process's `MESERO_*` variables. `std::env::vars` panics on a name
/// or value that is not UTF-8; such a variable of another program's is
/// skipped, and one of ours is an error naming it.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut ours = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with("MESERO_")) else {
            continue;
        };
        match value.into_string() {
            Ok(value) => ours.push((name.to_string(), value)),
            Err(_) => return Err(key_error(name, "the value is not valid UTF-8")),
        }
    }
    Ok(ours)
}

/// Applies `MESERO_<SECTION>_<KEY>` overrides to the parsed document;
/// returns the (dotted key, variable) pairs it applied.
fn apply_env(
    doc: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("MESERO_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let found = ENV_KEYS.iter().find(|(section, key, _)| {
            rest.strip_prefix(section)
                .and_then(|r| r.strip_prefix('_'))
                .is_some_and(|k| k == *key)
        });
        // Variables for other tools (e.g. MESERO_LOG in a shell) are not
        // ours to judge unless they name one of our sections.
        let Some(&(section, key, kind)) = found else {
            let ours = ENV_KEYS
                .iter()
                .any(|(section, _, _)| rest.starts_with(&format!("{section}_")));
            if ours {
                return Err(key_error(
                    name.clone(),
                    "unknown configuration key in environment override",
                ));
            }
            continue;
        };
        let dotted = format!("{section}.{key} (from {name})");
        let parsed =
            match kind {
                Kind::Str => toml::Value::String(value.clone()),
                Kind::Int => toml::Value::Integer(value.trim().parse().map_err(|_| {
                    key_error(&dotted, format!("expected an integer, got {value:?}"))
                })?),
                Kind::Bool => toml::Value::Boolean(match value.trim() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => {
                        return Err(key_error(
                            &dotted,
                            format!("expected true or false, got {value:?}"),
                        ));
                    }
                }),
            };
        let table = doc
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match table {
            toml::Value::Table(t) => {
                t.insert(key.to_string(), parsed);
            }
            _ => return Err(key_error(section, "must be a table")),
        }
        applied.push((format!("{section}.{key}"), name));
    }
    Ok(applied)
}

/// Longest value any duration key accepts (7 days). Every configured
/// duration ends up added to an `Instant` somewhere (a deadline, a timer),
/// so the one parser all duration keys go through bounds them: a value such
/// as `500000000000y` is an error naming the key, not an overflow panic in
/// `run`. Keys with a tighter meaning set a lower bound with
/// [`duration_in`].
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);

/// Shortest period of a repeating HTTP timer (`http.heartbeat`,
/// `http.retry`, `http.ws_ping`): shorter ones only burn CPU.
const MIN_HTTP_PERIOD: Duration = Duration::from_millis(10);

/// Longest period of a repeating HTTP timer: a heartbeat or ping an hour
/// apart no longer keeps anything alive, and a retry hint longer than that
/// keeps screens stale.
const MAX_HTTP_PERIOD: Duration = Duration::from_secs(3600);

/// Longest occupancy delay (`occupancy.occupy_after`, `release_after`): a
/// table that needs a day of evidence is never changed by its sensors.
const MAX_OCCUPANCY_DELAY: Duration = Duration::from_secs(86_400);

/// Parses a duration such as `"10s"`, `"3m"`, `"1h"` for `key`, at most
/// [`MAX_DURATION`].
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(value.trim()).map_err(|e| {
        key_error(
            key,
            format!("invalid duration {value:?} ({e}); use e.g. \"10s\", \"3m\", \"1h\""),
        )
    })?;
    within(key, value, d, Duration::ZERO, MAX_DURATION)
}

/// Parses `value` for `key` and checks it lies in `min..=max` (`max` is
/// itself capped by [`MAX_DURATION`]).
pub(crate) fn duration_in(
    key: &str,
    value: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let d = parse_duration(key, value)?;
    within(key, value, d, min, max)
}

fn within(
    key: &str,
    value: &str,
    d: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if d < min {
        return Err(key_error(
            key,
            format!("{value:?} is too short: must be at least {}", show(min)),
        ));
    }
    if d > max {
        return Err(key_error(
            key,
            format!("{value:?} is too long: must be at most {}", show(max)),
        ));
    }
    Ok(d)
}

/// A duration for which zero means nothing (a period, a timeout):
/// greater than zero and at most [`MAX_DURATION`].
fn positive_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(key, value)?;
    if d.is_zero() {
        return Err(key_error(key, "must be greater than zero"));
    }
    Ok(d)
}

fn in_range(key: &str, value: u64, min: u64, max: u64) -> Result<usize, ConfigError> {
    if value < min || value > max {
        return Err(key_error(
            key,
            format!("{value} is out of range ({min}..={max})"),
        ));
    }
    usize::try_from(value).map_err(|_| key_error(key, "too large"))
}

fn parse_role(key: &str, value: &str) -> Result<Role, ConfigError> {
    value.parse().map_err(|e: String| key_error(key, e))
}

/// The SHA-256 of a secret given either in plain (`plain.0` names the key)
/// or as its hex digest (`hashed.0`), never both.
/// Checks one token or MQTT user at `key`: a non-empty name unique among
/// `names` (`what` says which kind, for the error), a role, and a secret
/// given either in plain or as its SHA-256.
fn credential(
    key: &str,
    names: &mut HashSet<String>,
    what: &str,
    (name, role): (String, &str),
    plain: (&str, Option<String>),
    hashed: (&str, Option<String>),
) -> Result<Credential, ConfigError> {
    if name.is_empty() {
        return Err(key_error(format!("{key}.name"), "must not be empty"));
    }
    if !names.insert(name.clone()) {
        return Err(key_error(
            format!("{key}.name"),
            format!("duplicate {what} name {name:?}"),
        ));
    }
    let role = parse_role(&format!("{key}.role"), role)?;
    let sha256 = secret_digest(key, plain, hashed)?;
    Ok(Credential { name, role, sha256 })
}

fn secret_digest(
    key: &str,
    plain: (&str, Option<String>),
    hashed: (&str, Option<String>),
) -> Result<[u8; 32], ConfigError> {
    match (plain.1, hashed.1) {
        (Some(secret), None) if !secret.is_empty() => Ok(Sha256::digest(secret.as_bytes()).into()),
        (None, Some(hexed)) => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(hexed.trim(), &mut out).map_err(|_| {
                key_error(
                    format!("{key}.{}", hashed.0),
                    format!(
                        "must be 64 hexadecimal characters (printf %s '{}' | sha256sum)",
                        plain.0.to_uppercase()
                    ),
                )
            })?;
            Ok(out)
        }
        (Some(_), Some(_)) => Err(key_error(
            key,
            format!("give either {} or {}, not both", plain.0, hashed.0),
        )),
        _ => Err(key_error(
            key,
            format!("needs a non-empty {} or {}", plain.0, hashed.0),
        )),
    }
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|e| key_error(key, format!("invalid address {value:?}: {e}")))
}

/// Longest `mqtt.connect_timeout`: a silent socket holds a pending slot
/// this long.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Most memory the router's per-filter logs may take together
/// (`mqtt.max_filters` × `mqtt.segments` × `mqtt.segment_bytes`).
const MAX_FILTER_LOG_BYTES: u128 = 512 << 20;

fn check_mqtt(raw: raw::Mqtt) -> Result<MqttConfig, ConfigError> {
    let listen = parse_addr("mqtt.listen", &raw.listen)?;
    let ws_listen = match raw.ws_listen.trim() {
        "" => None,
        addr => Some(parse_addr("mqtt.ws_listen", addr)?),
    };
    if ws_listen.is_some_and(|ws| ws.port() != 0 && ws == listen) {
        return Err(key_error(
            "mqtt.ws_listen",
            "must differ from mqtt.listen (one port speaks one protocol)",
        ));
    }
    let mut names = HashSet::new();
    let users = raw
        .users
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            credential(
                &format!("mqtt.users[{i}]"),
                &mut names,
                "user",
                (u.name, &u.role),
                ("password", u.password),
                ("password_sha256", u.password_sha256),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let connect_timeout = positive_duration("mqtt.connect_timeout", &raw.connect_timeout)?;
    if connect_timeout > MAX_CONNECT_TIMEOUT {
        return Err(key_error(
            "mqtt.connect_timeout",
            format!("must be at most {}s", MAX_CONNECT_TIMEOUT.as_secs()),
        ));
    }
    let segment_bytes = in_range("mqtt.segment_bytes", raw.segment_bytes, 4096, 64 << 20)?;
    let segments = in_range("mqtt.segments", raw.segments, 1, 1024)?;
    let max_filters = in_range("mqtt.max_filters", raw.max_filters, 1, 100_000)?;
    let filter_log_bytes = (max_filters as u128) * (segments as u128) * (segment_bytes as u128);
    if filter_log_bytes > MAX_FILTER_LOG_BYTES {
        return Err(key_error(
            "mqtt.max_filters",
            format!(
                "mqtt.max_filters × mqtt.segments × mqtt.segment_bytes is {} MiB, more than the {} MiB the broker's logs may take",
                filter_log_bytes >> 20,
                MAX_FILTER_LOG_BYTES >> 20
            ),
        ));
    }
    Ok(MqttConfig {
        enabled: raw.enabled,
        listen,
        ws_listen,
        allow_anonymous: raw.allow_anonymous,
        homeassistant: raw.homeassistant,
        max_payload: in_range("mqtt.max_payload", raw.max_payload, 256, 1 << 20)?,
        max_connections: in_range("mqtt.max_connections", raw.max_connections, 1, 10_000)?,
        segment_bytes,
        segments,
        connect_timeout,
        max_pending: in_range("mqtt.max_pending", raw.max_pending, 1, 10_000)?,
        max_pending_per_ip: in_range("mqtt.max_pending_per_ip", raw.max_pending_per_ip, 1, 10_000)?,
        max_subscriptions: in_range("mqtt.max_subscriptions", raw.max_subscriptions, 1, 100_000)?,
        max_filters,
        max_retained: in_range("mqtt.max_retained", raw.max_retained, 0, 1_000_000)?,
        max_retained_bytes: in_range(
            "mqtt.max_retained_bytes",
            raw.max_retained_bytes,
            0,
            1 << 30,
        )?,
        max_retained_per_user: in_range(
            "mqtt.max_retained_per_user",
            raw.max_retained_per_user,
            0,
            1_000_000,
        )?,
        max_retained_bytes_per_user: in_range(
            "mqtt.max_retained_bytes_per_user",
            raw.max_retained_bytes_per_user,
            0,
            1 << 30,
        )?,
        users,
    })
}

fn http_period(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = positive_duration(key, value)?;
    within(key, value, d, MIN_HTTP_PERIOD, MAX_HTTP_PERIOD)
}

/// Zero is allowed: the change then follows the first reading.
fn occupancy_delay(key: &str, value: &str) -> Result<Duration, ConfigError> {
    duration_in(key, value, Duration::ZERO, MAX_OCCUPANCY_DELAY)
}

fn check(raw: raw::RawConfig) -> Result<Config, ConfigError> {
    if raw.site.id.is_empty()
        || !raw
            .site
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(key_error(
            "site.id",
            format!(
                "{:?} must be non-empty and use only letters, digits, '-' and '_' (it is part of MQTT topics)",
                raw.site.id
            ),
        ));
    }
    let site = SiteConfig {
        id: raw.site.id,
        name: raw.site.name,
        timezone: raw.site.timezone,
        language: raw.site.language,
    };

    let http = HttpConfig {
        listen: raw.http.listen.parse().map_err(|e| {
            key_error(
                "http.listen",
                format!("invalid address {:?}: {e}", raw.http.listen),
            )
        })?,
        heartbeat: http_period("http.heartbeat", &raw.http.heartbeat)?,
        retry: http_period("http.retry", &raw.http.retry)?,
        ws_ping: http_period("http.ws_ping", &raw.http.ws_ping)?,
        max_body_bytes: in_range(
            "http.max_body_bytes",
            raw.http.max_body_bytes,
            1024,
            16 << 20,
        )?,
        client_queue: in_range("http.client_queue", raw.http.client_queue, 16, 1 << 16)?,
        max_connections: in_range("http.max_connections", raw.http.max_connections, 8, 1 << 16)?,
        max_connections_per_ip: in_range(
            "http.max_connections_per_ip",
            raw.http.max_connections_per_ip,
            1,
            1 << 16,
        )?,
        max_streams: in_range("http.max_streams", raw.http.max_streams, 1, 1 << 16)?,
    };

    if raw.storage.path.trim().is_empty() {
        return Err(key_error("storage.path", "must not be empty"));
    }
    let retention_days = u32::try_from(raw.storage.retention_days)
        .ok()
        .filter(|d| (1..=3650).contains(d))
        .ok_or_else(|| {
            key_error(
                "storage.retention_days",
                format!("{} is out of range (1..=3650)", raw.storage.retention_days),
            )
        })?;
    let storage = StorageConfig {
        path: PathBuf::from(raw.storage.path),
        retention: Duration::from_secs(u64::from(retention_days) * 86_400),
        retention_days,
        batch_max: in_range("storage.batch_max", raw.storage.batch_max, 1, 10_000)?,
    };

    let occupancy = OccupancyConfig {
        occupy_after: occupancy_delay("occupancy.occupy_after", &raw.occupancy.occupy_after)?,
        release_after: occupancy_delay("occupancy.release_after", &raw.occupancy.release_after)?,
        bussing: raw.occupancy.bussing,
    };

    let mqtt = check_mqtt(raw.mqtt)?;

    let anonymous = match raw.auth.anonymous.as_str() {
        "none" => None,
        other => Some(parse_role("auth.anonymous", other).map_err(|_| {
            key_error(
                "auth.anonymous",
                format!("{other:?} is not one of none, viewer, staff, admin"),
            )
        })?),
    };
    let mut names = HashSet::new();
    let tokens = raw
        .auth
        .tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            credential(
                &format!("auth.tokens[{i}]"),
                &mut names,
                "token",
                (t.name, &t.role),
                ("token", t.token),
                ("token_sha256", t.token_sha256),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let auth = AuthConfig { anonymous, tokens };

    let mut ids = HashSet::new();
    let mut numbers = HashSet::new();
    let mut tables = Vec::with_capacity(raw.tables.len());
    for (i, t) in raw.tables.into_iter().enumerate() {
        let key = format!("tables[{i}]");
        if let Err(message) = crate::tables::check_id(t.id) {
            return Err(key_error(format!("{key}.id"), message));
        }
        if !ids.insert(t.id) {
            return Err(key_error(
                format!("{key}.id"),
                format!("duplicate id {}", t.id),
            ));
        }
        let number = t.number.unwrap_or_else(|| t.id.to_string());
        // The same rule the writer applies when it seeds the table: a
        // number it would refuse must not pass `mesero check`.
        crate::tables::check_number(&number).map_err(|m| key_error(format!("{key}.number"), m))?;
        if !numbers.insert(number.clone()) {
            return Err(key_error(
                format!("{key}.number"),
                format!("duplicate number {number:?}"),
            ));
        }
        let layout = Layout {
            x: t.x,
            y: t.y,
            w: t.w,
            h: t.h,
            shape: t
                .shape
                .parse()
                .map_err(|e: String| key_error(format!("{key}.shape"), e))?,
        };
        crate::tables::check_layout(&layout)
            .map_err(|(field, msg)| key_error(format!("{key}.{field}"), msg))?;
        crate::tables::check_seats(t.seats)
            .map_err(|msg| key_error(format!("{key}.seats"), msg))?;
        tables.push(TableSeed {
            id: t.id,
            number,
            zone: t.zone,
            seats: t.seats,
            layout,
        });
    }

    let sensors = sensors::check(raw.sensors, &tables)?;

    if raw.log.level.trim().is_empty() {
        return Err(key_error("log.level", "must not be empty"));
    }

    Ok(Config {
        site,
        http,
        storage,
        occupancy,
        mqtt,
        auth,
        log_level: raw.log.level,
        tables,
        sensors,
    })
}

impl Config {
    fn mqtt_summary(&self) -> String {
        let m = &self.mqtt;
        if !m.enabled {
            return "mqtt: off".into();
        }
        let ws = m
            .ws_listen
            .map(|ws| format!(", websocket {ws}"))
            .unwrap_or_default();
        format!(
            "mqtt: {}{ws}, anonymous {}, {} users, home assistant {}",
            m.listen,
            if m.allow_anonymous {
                "allowed"
            } else {
                "refused"
            },
            m.users.len(),
            if m.homeassistant { "on" } else { "off" },
        )
    }

    /// A short human summary, printed by `mesero check`.
    pub fn summary(&self) -> String {
        let by_role = |role: Role| self.auth.tokens.iter().filter(|t| t.role == role).count();
        format!(
            "site: {} ({})\nhttp: {}\nstorage: {} (events kept {} days)\noccupancy: occupy after {:?}, release after {:?}, bussing {}\n{}\nauth: anonymous = {}, tokens: {} viewer, {} staff, {} admin\ntables (seed): {}\nsensors: {}\n",
            self.site.id,
            self.site.name,
            self.http.listen,
            self.storage.path.display(),
            self.storage.retention_days,
            self.occupancy.occupy_after,
            self.occupancy.release_after,
            self.occupancy.bussing,
            self.mqtt_summary(),
            self.auth.anonymous.map_or("none", Role::as_str),
            by_role(Role::Viewer),
            by_role(Role::Staff),
            by_role(Role::Admin),
            self.tables.len(),
            self.sensors_summary(),
        )
    }

    /// `12 (gpio 8, amg8833 2, button 2)`, kinds in config order.
    fn sensors_summary(&self) -> String {
        let mut kinds: Vec<(&str, usize)> = Vec::new();
        for s in &self.sensors {
            let name = s.kind.name();
            match kinds.iter_mut().find(|(k, _)| *k == name) {
                Some((_, n)) => *n += 1,
                None => kinds.push((name, 1)),
            }
        }
        if kinds.is_empty() {
            return "none".into();
        }
        let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!("{} ({})", self.sensors.len(), parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensors::spec::SensorKind;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_toml(
            Path::new("test.toml"),
            text,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn the_example_config_is_valid() {
        let cfg = parse(EXAMPLE, &[]).expect("example config");
        assert_eq!(cfg.tables.len(), 12);
        assert_eq!(cfg.auth.tokens.len(), 3);
        assert_eq!(cfg.sensors.len(), 12, "a sim sensor on every demo table");
        assert!(
            cfg.sensors
                .iter()
                .all(|s| matches!(s.kind, SensorKind::Sim(_)) && s.table.is_some())
        );
        assert!(
            cfg.mqtt.allow_anonymous,
            "the dev config allows anonymous MQTT"
        );
        assert_eq!(cfg.mqtt.users.len(), 1);
    }

    #[test]
    fn the_pi_example_config_is_valid_and_locked_down() {
        let text = include_str!("../../config/pi.example.toml");
        let cfg = parse(text, &[]).expect("pi example config");
        assert_eq!(cfg.auth.anonymous, None, "no anonymous access");
        assert!(!text.contains("token ="), "tokens only as token_sha256");
        let kinds: Vec<&str> = cfg.sensors.iter().map(|s| s.kind.name()).collect();
        for kind in ["gpio", "amg8833", "vl53l1x", "button"] {
            assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
        }
        assert!(cfg.sensors.iter().all(|s| s.kind.is_hardware()));
        assert!(!cfg.mqtt.allow_anonymous, "no anonymous MQTT");
        assert!(!cfg.mqtt.users.is_empty(), "MQTT users are configured");
        assert!(
            !text.contains("password ="),
            "MQTT passwords only as password_sha256"
        );
    }

    #[test]
    fn mqtt_defaults_follow_the_spec() {
        let m = parse("", &[]).expect("defaults").mqtt;
        assert_eq!(m.connect_timeout, Duration::from_secs(5));
        assert_eq!((m.max_pending, m.max_pending_per_ip), (64, 8));
        assert_eq!((m.max_subscriptions, m.max_filters), (100, 256));
        assert_eq!((m.max_retained, m.max_retained_bytes), (1000, 8 << 20));
        assert_eq!(
            (m.max_retained_per_user, m.max_retained_bytes_per_user),
            (100, 1 << 20)
        );
        assert!(m.enabled);
        assert_eq!(m.listen, "0.0.0.0:1883".parse().expect("addr"));
        assert_eq!(m.ws_listen, None);
        assert!(
            !m.allow_anonymous,
            "anonymous MQTT is off outside the dev config"
        );
        assert!(!m.homeassistant);
        assert!(m.users.is_empty());
    }

    #[test]
    fn mqtt_users_and_overrides() {
        let digest = hex::encode(Sha256::digest(b"pw"));
        let cfg = parse(
            &format!(
                "[mqtt]\nws_listen = \"127.0.0.1:9001\"\n[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"\npassword = \"pw\"\n[[mqtt.users]]\nname = \"b\"\nrole = \"viewer\"\npassword_sha256 = \"{digest}\""
            ),
            &[
                ("MESERO_MQTT_LISTEN", "127.0.0.1:0"),
                ("MESERO_MQTT_ALLOW_ANONYMOUS", "true"),
                ("MESERO_MQTT_HOMEASSISTANT", "1"),
                ("MESERO_MQTT_MAX_CONNECTIONS", "8"),
            ],
        )
        .expect("mqtt config");
        let m = cfg.mqtt;
        assert_eq!(m.listen, "127.0.0.1:0".parse().expect("addr"));
        assert_eq!(m.ws_listen, Some("127.0.0.1:9001".parse().expect("addr")));
        assert!(m.allow_anonymous && m.homeassistant);
        assert_eq!(m.max_connections, 8);
        assert_eq!(m.users[0].role, Role::Staff);
        assert_eq!(m.users[0].sha256, m.users[1].sha256);
        let off = parse(
            "[mqtt]\nws_listen = \"127.0.0.1:9001\"",
            &[("MESERO_MQTT_WS_LISTEN", "")],
        )
        .expect("ws off");
        assert_eq!(off.mqtt.ws_listen, None);
    }

    #[test]
    fn empty_file_gives_the_spec_defaults() {
        let cfg = parse("", &[]).expect("defaults");
        assert_eq!(cfg.http.listen, "0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(cfg.occupancy.occupy_after, Duration::from_secs(10));
        assert_eq!(cfg.occupancy.release_after, Duration::from_secs(180));
        assert_eq!(cfg.http.heartbeat, Duration::from_secs(15));
        assert_eq!(cfg.http.max_connections, 512);
        assert_eq!(cfg.http.max_connections_per_ip, 32);
        assert_eq!(cfg.http.max_streams, 128);
        assert_eq!(cfg.storage.retention_days, 30);
        assert_eq!(cfg.auth.anonymous, Some(Role::Viewer));
        assert_eq!(cfg.site.id, "local");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse("[http]\nlistn = \"x\"\n", &[]).expect_err("unknown key");
        assert!(err.to_string().contains("listn"), "{err}");
        let err = parse("[htp]\n", &[]).expect_err("unknown section");
        assert!(err.to_string().contains("htp"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("[http]\nlisten = \"nowhere\"", "http.listen"),
            (
                "[occupancy]\noccupy_after = \"10 parsecs\"",
                "occupancy.occupy_after",
            ),
            ("[occupancy]\nbussing = \"yes\"", "occupancy.bussing"),
            ("[storage]\nretention_days = 0", "storage.retention_days"),
            ("[auth]\nanonymous = \"root\"", "auth.anonymous"),
            (
                "[[auth.tokens]]\nname = \"a\"\nrole = \"chef\"\ntoken = \"x\"",
                "auth.tokens[0].role",
            ),
            (
                "[[auth.tokens]]\nname = \"a\"\nrole = \"staff\"\ntoken_sha256 = \"zz\"",
                "auth.tokens[0].token_sha256",
            ),
            ("[[tables]]\nid = 1\nseats = 0", "tables[0].seats"),
            ("[[tables]]\nid = 1\nnumber = \" \"", "tables[0].number"),
            (
                "[[tables]]\nid = 1\nnumber = \"a label far too long\"",
                "tables[0].number",
            ),
            ("[http]\nmax_connections = 0", "http.max_connections"),
            (
                "[http]\nmax_connections_per_ip = 0",
                "http.max_connections_per_ip",
            ),
            ("[http]\nmax_streams = 0", "http.max_streams"),
            ("[mqtt]\nlisten = \"1883\"", "mqtt.listen"),
            ("[mqtt]\nws_listen = \"x\"", "mqtt.ws_listen"),
            ("[mqtt]\nmax_payload = 0", "mqtt.max_payload"),
            ("[mqtt]\nmax_connections = 0", "mqtt.max_connections"),
            ("[mqtt]\nsegments = 0", "mqtt.segments"),
            ("[mqtt]\nconnect_timeout = \"0s\"", "mqtt.connect_timeout"),
            ("[mqtt]\nconnect_timeout = \"2m\"", "mqtt.connect_timeout"),
            ("[mqtt]\nconnect_timeout = \"soon\"", "mqtt.connect_timeout"),
            ("[mqtt]\nmax_pending = 0", "mqtt.max_pending"),
            ("[mqtt]\nmax_pending_per_ip = 0", "mqtt.max_pending_per_ip"),
            ("[mqtt]\nmax_subscriptions = 0", "mqtt.max_subscriptions"),
            ("[mqtt]\nmax_filters = 0", "mqtt.max_filters"),
            ("[mqtt]\nmax_filters = 100000", "mqtt.max_filters"),
            ("[mqtt]\nmax_retained_bytes = -1", "mqtt"),
            (
                "[mqtt]\nmax_retained_bytes_per_user = 2000000000",
                "mqtt.max_retained_bytes_per_user",
            ),
            ("[mqtt]\nallow_anonymous = \"no\"", "mqtt.allow_anonymous"),
            ("[mqtt]\nlisen = \"x\"", "mqtt"),
            (
                "[[mqtt.users]]\nname = \"a\"\nrole = \"cook\"\npassword = \"x\"",
                "mqtt.users[0].role",
            ),
            (
                "[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"\npassword_sha256 = \"zz\"",
                "mqtt.users[0].password_sha256",
            ),
            (
                "[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"\npassword = \"x\"\npassword_sha256 = \"00\"",
                "mqtt.users[0]",
            ),
            (
                "[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"",
                "mqtt.users[0]",
            ),
            (
                "[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"\npassword = \"x\"\n[[mqtt.users]]\nname = \"a\"\nrole = \"staff\"\npassword = \"y\"",
                "mqtt.users[1].name",
            ),
            ("[[tables]]\nid = 1\n[[tables]]\nid = 1", "tables[1].id"),
            ("[[tables]]\nid = 9007199254740992", "tables[0].id"),
        ] {
            let err = parse(text, &[]).expect_err(text);
            assert!(err.to_string().starts_with(key), "{text}: {err}");
        }
    }

    #[test]
    fn environment_overrides_scalar_keys() {
        let cfg = parse(
            "[http]\nlisten = \"0.0.0.0:8080\"",
            &[
                ("MESERO_HTTP_LISTEN", "127.0.0.1:9000"),
                ("MESERO_STORAGE_RETENTION_DAYS", "7"),
                ("MESERO_OCCUPANCY_BUSSING", "true"),
                ("MESERO_SITE_ID", "12"),
                ("PATH", "/bin"),
            ],
        )
        .expect("overrides");
        assert_eq!(cfg.http.listen, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(cfg.storage.retention_days, 7);
        assert!(cfg.occupancy.bussing);
        assert_eq!(cfg.site.id, "12");
    }

    #[test]
    fn bad_environment_overrides_are_named() {
        let err = parse("", &[("MESERO_HTTP_LISTN", "x")]).expect_err("unknown");
        assert!(err.to_string().contains("MESERO_HTTP_LISTN"), "{err}");
        let err = parse("", &[("MESERO_HTTP_MAX_STREAMS", "0")]).expect_err("range");
        assert!(
            err.to_string()
                .starts_with("http.max_streams (from MESERO_HTTP_MAX_STREAMS)"),
            "{err}"
        );
        let err = parse("", &[("MESERO_STORAGE_RETENTION_DAYS", "many")]).expect_err("int");
        assert!(
            err.to_string().starts_with("storage.retention_days"),
            "{err}"
        );
    }

    /// Every duration key of the documented config, as (section, key).
    fn duration_keys() -> Vec<(String, String)> {
        let doc: toml::Table = EXAMPLE.parse().expect("example");
        let mut keys = Vec::new();
        for (section, value) in &doc {
            for (key, value) in value.as_table().into_iter().flatten() {
                if value
                    .as_str()
                    .is_some_and(|v| humantime::parse_duration(v).is_ok())
                {
                    keys.push((section.clone(), key.clone()));
                }
            }
        }
        keys
    }

    #[test]
    fn every_duration_key_is_bounded_in_the_file_and_the_environment() {
        let keys = duration_keys();
        assert!(keys.len() >= 5, "{keys:?}");
        for (section, key) in keys {
            let dotted = format!("{section}.{key}");
            let var = format!("MESERO_{section}_{key}").to_uppercase();
            for huge in ["500000000000y", "8days", "600000000000y"] {
                let err = parse(&format!("[{section}]\n{key} = \"{huge}\""), &[])
                    .expect_err(&dotted)
                    .to_string();
                assert!(err.starts_with(&format!("{dotted}: ")), "{err}");
                let err = parse("", &[(&var, huge)]).expect_err(&var).to_string();
                assert!(
                    err.starts_with(&format!("{dotted} (from {var}): ")),
                    "{err}"
                );
            }
        }
        let err = parse("[occupancy]\noccupy_after = \"2d\"", &[]).expect_err("2d");
        assert_eq!(
            err.to_string(),
            "occupancy.occupy_after: \"2d\" is too long: must be at most 1day"
        );
        for (text, key) in [
            (
                "[http]\nws_ping = \"0s\"",
                "http.ws_ping: must be greater than zero",
            ),
            (
                "[http]\nheartbeat = \"1ms\"",
                "http.heartbeat: \"1ms\" is too short",
            ),
            ("[http]\nretry = \"2h\"", "http.retry: \"2h\" is too long"),
        ] {
            let err = parse(text, &[]).expect_err(text).to_string();
            assert!(err.starts_with(key), "{err}");
        }
        let bounds = parse(
            "[http]\nheartbeat = \"1h\"\nws_ping = \"10ms\"\n[occupancy]\noccupy_after = \"0s\"\nrelease_after = \"1day\"",
            &[],
        )
        .expect("the bounds themselves are accepted");
        assert_eq!(bounds.occupancy.release_after, Duration::from_secs(86_400));
    }

    #[test]
    fn sensor_durations_are_bounded_too() {
        let sim = "[[tables]]\nid = 1\n[[sensors]]\nid = \"s\"\nkind = \"sim\"\ntable = 1\n";
        for (extra, key) in [
            (
                "script = [[\"500000000000y\", true]]",
                "sensors[0].script[0]",
            ),
            (
                "seed = 1\ngap = [\"1m\", \"500000000000y\"]",
                "sensors[0].gap",
            ),
            (
                "seed = 1\nstay = [\"500000000000y\", \"1m\"]",
                "sensors[0].stay",
            ),
        ] {
            let err = parse(&format!("{sim}{extra}"), &[])
                .expect_err(extra)
                .to_string();
            assert!(err.starts_with(&format!("{key}: ")), "{extra}: {err}");
            assert!(err.contains("at most"), "{extra}: {err}");
        }
        for (text, key) in [
            (
                "[[sensors]]\nid = \"b\"\nkind = \"button\"\npin = 4\nlong_press = \"500000000000y\"",
                "sensors[0].long_press",
            ),
            (
                "[[tables]]\nid = 1\n[[sensors]]\nid = \"m\"\nkind = \"mqtt\"\ntable = 1\nstale_after = \"500000000000y\"",
                "sensors[0].stale_after",
            ),
        ] {
            let err = parse(text, &[]).expect_err(key).to_string();
            assert!(err.starts_with(&format!("{key}: ")), "{err}");
        }
    }

    #[test]
    fn token_sha256_matches_plain_token() {
        let digest = hex::encode(Sha256::digest(b"s3cret"));
        let cfg = parse(
            &format!(
                "[[auth.tokens]]\nname = \"a\"\nrole = \"admin\"\ntoken_sha256 = \"{digest}\"\n[[auth.tokens]]\nname = \"b\"\nrole = \"admin\"\ntoken = \"s3cret\""
            ),
            &[],
        )
        .expect("tokens");
        assert_eq!(cfg.auth.tokens[0].sha256, cfg.auth.tokens[1].sha256);
    }
}
