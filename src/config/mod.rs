//! Configuration: one TOML file, read in two layers.
//!
//! 1. Raw structs mirror the file exactly (`deny_unknown_fields`, serde
//!    defaults), so a typo is an error naming the key.
//! 2. [`Config`] is the checked runtime form: addresses parsed, durations
//!    parsed, tokens reduced to their SHA-256, tables validated. Every error
//!    names the key it is about (`http.listen: ...`).
//!
//! Between the two, environment variables `MESERO_<SECTION>_<KEY>` override
//! scalar keys ([`env`]), so a systemd drop-in or a test can change one key
//! without editing the file.
//!
//! One file per section holds its raw struct with the defaults, its
//! checked struct and its checks: [`http`], [`storage`], [`occupancy`],
//! [`alerts`], [`mqtt`], [`auth`] (and the credential checker `[[mqtt.users]]` shares),
//! [`tables`], [`sensors`] (one raw struct per kind; [`wiring`] checks the
//! entries together); `[site]` and `[log]` are here. How a value is read
//! and bounded (durations, integer ranges, addresses) lives in [`value`],
//! how a raw struct is read with its key named in [`raw`], the error type
//! in [`error`]. A new key goes into its section's raw struct, default,
//! checked struct and check; its environment override follows by itself.
//!
//! Layering: `config` builds the types that [`crate::auth`] and
//! [`crate::sensors::spec`] own; nothing below it imports `config`. Inside,
//! the section files import only the helpers (`error`, `raw`, `value`) and
//! each other (`mqtt` uses `auth`'s credential checker, `sensors` the table
//! seeds and `wiring`), never this file.

use crate::auth::{AuthConfig, Credential, Role};
use crate::sensors::spec::SensorConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

mod alerts;
mod analytics;
mod auth;
mod env;
mod error;
mod http;
mod mqtt;
mod occupancy;
mod raw;
mod reservations;
mod sensors;
mod storage;
mod tables;
#[cfg(test)]
mod tests;
mod upstream;
mod value;
mod waitlist;
mod wiring;

pub use analytics::AnalyticsConfig;
pub use error::ConfigError;
pub use http::{HttpConfig, TlsFiles};
pub use mqtt::MqttConfig;
pub use occupancy::OccupancyConfig;
pub use reservations::ReservationsConfig;
pub use sensors::mqtt_default_health;
pub use storage::StorageConfig;
pub use tables::TableSeed;
pub use upstream::{BridgeConfig, MqttTarget, mqtt_target};
pub use value::{MAX_DURATION, parse_duration};
pub use waitlist::WaitlistConfig;

pub use error::key_error;
use raw::deserialize;

/// The documented dev default, also printed by `mesero config example`.
pub const EXAMPLE: &str = include_str!("../../config/mesero.toml");

/// A checked `[[mqtt.users]]` entry.
pub type MqttUser = Credential;

/// The whole file exactly as written: one raw struct per section.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    site: Site,
    http: http::Http,
    storage: storage::Storage,
    occupancy: occupancy::Occupancy,
    mqtt: mqtt::Mqtt,
    waitlist: waitlist::Waitlist,
    auth: auth::Auth,
    alerts: alerts::Alerts,
    log: Log,
    reservations: reservations::Reservations,
    tables: Vec<tables::Table>,
    /// Each entry is read by its kind's struct, see [`sensors`].
    sensors: Vec<toml::Table>,
    bridge: upstream::Bridge,
    analytics: analytics::Analytics,
}

/// `[site]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct Site {
    id: String,
    name: String,
    timezone: String,
    language: String,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            id: "local".into(),
            name: "mesero".into(),
            // Empty: the system's zone (UTC when it has none).
            timezone: String::new(),
            language: "es".into(),
        }
    }
}

/// `site.language`: the languages the tablet app has strings for
/// (`web/i18n.js`).
pub const LANGUAGES: &[&str] = &["es", "en"];

/// `[log]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct Log {
    level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
        }
    }
}

/// The checked runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub site: SiteConfig,
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub occupancy: OccupancyConfig,
    pub mqtt: MqttConfig,
    pub waitlist: WaitlistConfig,
    pub auth: AuthConfig,
    /// `[alerts]`: escalation and flood control.
    pub alerts: crate::alerts::AlertRules,
    pub log_level: String,
    pub reservations: ReservationsConfig,
    /// Seeds an empty database; afterwards the API owns the floor plan.
    pub tables: Vec<TableSeed>,
    pub sensors: Vec<SensorConfig>,
    /// `[bridge]`; `None` when `bridge.url` is empty (the default).
    pub bridge: Option<BridgeConfig>,
    /// `[analytics]`: how long visits are kept.
    pub analytics: AnalyticsConfig,
}

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub id: String,
    pub name: String,
    /// The zone's name (`Europe/Madrid`; the system's when none is set).
    pub timezone: String,
    /// `site.timezone`, loaded: what local times are read and shown in.
    pub zone: jiff::tz::TimeZone,
    pub language: String,
}

impl Config {
    /// Reads, overrides from the process environment, and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(path, &text, env::process_env()?)
    }

    /// Parses `text` (named `path` in errors) with the given environment.
    pub fn from_toml(
        path: &Path,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_owned(),
            message,
        };
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
        let overridden = env::apply(&mut doc, env, &env_keys()?)?;
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
        let raw: RawConfig = deserialize("", doc).map_err(blame)?;
        check(raw).map_err(blame)
    }
}

/// The keys an environment variable may override: every scalar key of the
/// raw structs, read from their serialised defaults.
fn env_keys() -> Result<Vec<env::EnvKey>, ConfigError> {
    let defaults = toml::Table::try_from(RawConfig::default())
        .map_err(|e| key_error("(built-in defaults)", format!("cannot be serialised: {e}")))?;
    Ok(env::keys(&defaults))
}

fn check(raw: RawConfig) -> Result<Config, ConfigError> {
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
    let zone =
        crate::localtime::zone(&raw.site.timezone).map_err(|m| key_error("site.timezone", m))?;
    if !LANGUAGES.contains(&raw.site.language.as_str()) {
        return Err(key_error(
            "site.language",
            format!(
                "{:?} is not a language of the tablet app; use one of {LANGUAGES:?}",
                raw.site.language
            ),
        ));
    }
    let bridge = upstream::check(raw.bridge, &raw.site.id)?;
    let site = SiteConfig {
        id: raw.site.id,
        name: raw.site.name,
        timezone: crate::localtime::zone_name(&zone),
        zone,
        language: raw.site.language,
    };
    let storage = storage::check(raw.storage)?;
    let http = http::check(raw.http, &storage.path)?;
    let occupancy = occupancy::check(raw.occupancy)?;
    let mqtt = mqtt::check(raw.mqtt, &site.id)?;
    let waitlist = waitlist::check(raw.waitlist)?;
    let analytics = analytics::check(raw.analytics)?;
    let auth = auth::check(raw.auth)?;
    let alerts = alerts::check(raw.alerts)?;
    let reservations = reservations::check(raw.reservations)?;
    let tables = tables::check(raw.tables)?;
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
        waitlist,
        auth,
        alerts,
        log_level: raw.log.level,
        reservations,
        tables,
        sensors,
        bridge,
        analytics,
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
            "site: {} ({}, {})\nhttp: {}\nstorage: {} (events kept {} days)\noccupancy: occupy after {:?}, release after {:?}, bussing {}\n{}\nauth: anonymous = {}, tokens: {} viewer, {} staff, {} admin\ntables (seed): {}\nsensors: {}\nbridge: {}\n",
            self.site.id,
            self.site.name,
            self.site.timezone,
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
            self.bridge.as_ref().map_or_else(
                || "off".to_string(),
                |b| format!("{} as {:?}, prefix {}", b.url, b.client_id, b.topic_prefix)
            ),
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
