//! `[mqtt]`: the embedded broker, its listeners, users and limits.

use super::auth::credential;
use super::error::{ConfigError, key_error};
use super::value::{int_in, parse_addr, positive_duration, within};
use crate::auth::Credential;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

/// `[mqtt]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
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
    pub detection_topics: Vec<String>,
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
            detection_topics: vec![DEFAULT_DETECTION_TOPIC.into()],
            users: Vec::new(),
        }
    }
}

/// One `[[mqtt.users]]` entry exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttUser {
    pub name: String,
    pub role: String,
    pub password: Option<String>,
    pub password_sha256: Option<String>,
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
    /// memory a subscription filter can hold (the broker keeps at least
    /// two segments, see `broker::router_segments`).
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
    /// Topics a detector publishes its batches to, `<site>` filled in
    /// (default `mesero/<site>/detections`; an existing detector's own
    /// topic such as `restaurant/ocupacion`).
    pub detection_topics: Vec<String>,
    pub users: Vec<Credential>,
}

/// `mqtt.detection_topics` by default; `<site>` stands for `site.id`.
const DEFAULT_DETECTION_TOPIC: &str = "mesero/<site>/detections";

/// Most entries in `mqtt.detection_topics` (each incoming topic is
/// compared against them).
const MAX_DETECTION_TOPICS: usize = 16;

/// `mqtt.detection_topics`: `<site>` replaced, each a topic name the
/// broker's screen routes (no wildcards, no `$`, ASCII first character,
/// no control characters, at most `MAX_TOPIC_BYTES`), none inside the
/// daemon's own namespace (`mesero/<site>/...` other than
/// `mesero/<site>/detections`, or `homeassistant/...`), no duplicates.
fn detection_topics(raw: &[String], site: &str) -> Result<Vec<String>, ConfigError> {
    if raw.len() > MAX_DETECTION_TOPICS {
        return Err(key_error(
            "mqtt.detection_topics",
            format!("{} topics; at most {MAX_DETECTION_TOPICS}", raw.len()),
        ));
    }
    let own = format!("mesero/{site}/");
    let mut seen = HashSet::new();
    raw.iter()
        .enumerate()
        .map(|(i, t)| {
            let key = format!("mqtt.detection_topics[{i}]");
            let topic = t.replace("<site>", site);
            crate::broker::screen::topic_name(topic.as_bytes())
                .map_err(|r| key_error(&key, format!("{t:?}: {}", r.reason())))?;
            let daemon_owned = (topic.starts_with(&own) && topic != format!("{own}detections"))
                || topic.starts_with(&format!("{}/", crate::broker::topics::HA_PREFIX));
            if daemon_owned {
                return Err(key_error(
                    &key,
                    format!("{t:?} is one of the daemon's own topics; use {DEFAULT_DETECTION_TOPIC:?} or a topic outside mesero/<site>/"),
                ));
            }
            if !seen.insert(topic.clone()) {
                return Err(key_error(&key, format!("{t:?} is listed twice")));
            }
            Ok(topic)
        })
        .collect()
}

/// Longest `mqtt.connect_timeout`: a silent socket holds a pending slot
/// this long.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Most memory the router's per-filter logs may take together
/// (`mqtt.max_filters` × `mqtt.segments` × `mqtt.segment_bytes`).
const MAX_FILTER_LOG_BYTES: u128 = 512 << 20;

pub(super) fn check(raw: Mqtt, site: &str) -> Result<MqttConfig, ConfigError> {
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
    let key = "mqtt.connect_timeout";
    let connect_timeout = positive_duration(key, &raw.connect_timeout)?;
    let connect_timeout = within(
        key,
        &raw.connect_timeout,
        connect_timeout,
        Duration::ZERO,
        MAX_CONNECT_TIMEOUT,
    )?;
    let segment_bytes: usize = int_in("mqtt.segment_bytes", raw.segment_bytes, 4096, 64 << 20)?;
    let segments: usize = int_in("mqtt.segments", raw.segments, 1, 1024)?;
    let max_filters: usize = int_in("mqtt.max_filters", raw.max_filters, 1, 100_000)?;
    let filter_log_bytes =
        (max_filters as u128) * (segments.max(2) as u128) * (segment_bytes as u128);
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
        max_payload: int_in("mqtt.max_payload", raw.max_payload, 256, 1 << 20)?,
        max_connections: int_in("mqtt.max_connections", raw.max_connections, 1, 10_000)?,
        segment_bytes,
        segments,
        connect_timeout,
        max_pending: int_in("mqtt.max_pending", raw.max_pending, 1, 10_000)?,
        max_pending_per_ip: int_in("mqtt.max_pending_per_ip", raw.max_pending_per_ip, 1, 10_000)?,
        max_subscriptions: int_in("mqtt.max_subscriptions", raw.max_subscriptions, 1, 100_000)?,
        max_filters,
        max_retained: int_in("mqtt.max_retained", raw.max_retained, 0, 1_000_000)?,
        max_retained_bytes: int_in(
            "mqtt.max_retained_bytes",
            raw.max_retained_bytes,
            0,
            1 << 30,
        )?,
        max_retained_per_user: int_in(
            "mqtt.max_retained_per_user",
            raw.max_retained_per_user,
            0,
            1_000_000,
        )?,
        max_retained_bytes_per_user: int_in(
            "mqtt.max_retained_bytes_per_user",
            raw.max_retained_bytes_per_user,
            0,
            1 << 30,
        )?,
        detection_topics: detection_topics(&raw.detection_topics, site)?,
        users,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn topics(list: &str) -> Result<Vec<String>, String> {
        Config::from_toml(
            Path::new("t.toml"),
            &format!("[site]\nid = \"bar\"\n[mqtt]\ndetection_topics = {list}\n"),
            std::iter::empty(),
        )
        .map(|c| c.mqtt.detection_topics)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn detection_topics_default_to_the_site_s_and_are_screened() {
        let default = Config::from_toml(Path::new("t.toml"), "", std::iter::empty())
            .expect("defaults")
            .mqtt
            .detection_topics;
        assert_eq!(default, vec!["mesero/local/detections".to_string()]);
        assert_eq!(
            topics(r#"["restaurant/ocupacion", "mesero/<site>/detections"]"#),
            Ok(vec![
                "restaurant/ocupacion".into(),
                "mesero/bar/detections".into()
            ])
        );
        assert_eq!(topics("[]"), Ok(vec![]), "detections off");
        for bad in [
            "restaurant/+",
            "restaurant/#",
            "$SYS/x",
            "",
            "ñ/x",
            "mesero/<site>/tables/1/set",
            "mesero/bar/status",
            "homeassistant/status",
            "restaurant/ocupacion",
        ] {
            let err = topics(&format!("[\"restaurant/ocupacion\", {bad:?}]")).expect_err(bad);
            assert!(err.contains("mqtt.detection_topics[1]"), "{bad}: {err}");
        }
    }
}
