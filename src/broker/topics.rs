//! The MQTT vocabulary of SPEC §3: which topic is what, what the daemon
//! accepts on its input topics, and what it publishes.
//!
//! Pure functions, no I/O: every accepted and refused payload form is
//! covered by the unit tests at the bottom.
//!
//! Choices where the spec leaves room:
//! - Sensor payloads: the bare forms are case-insensitive (`ON`, `on`,
//!   `True`); JSON objects may carry extra fields (nodes add timestamps or
//!   RSSI), but `present` and `people` must have the right types. `people`
//!   alone means `present = people > 0`; `present: false` with people
//!   counted is a contradiction and refused. A bare `offline` is the node
//!   saying it is gone (typically its last will): the sensor is faulted
//!   until its next reading.
//! - Detection batches: each entry is one table's head count. Tables a
//!   batch does not mention are left alone (a camera may cover part of the
//!   room), so a detector reports `0` for empty tables it watches. An entry
//!   may use `table`/`mesa` and `people`/`personas` in any combination;
//!   extra fields (`confidence`, boxes) are ignored. A table listed twice
//!   keeps its largest count, as a table's people estimate is the largest
//!   among its sensors (SPEC §1).
//! - `set` commands and `alerts/raise` are strict like the HTTP API:
//!   unknown fields refused.

use crate::domain::{AlertKind, Priority, Seq, Table, TableId, TableState, Target};
use crate::sensors::Reading;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Largest head count accepted for one table; anything above is a broken
/// detector, not a banquet.
pub const MAX_PEOPLE: u32 = 1000;

/// Most entries in one detections batch.
pub const MAX_DETECTIONS: usize = 1000;

/// Home Assistant's discovery prefix (its default) and birth topic.
pub const HA_PREFIX: &str = "homeassistant";
pub const HA_STATUS: &str = "homeassistant/status";

/// The topics of one site.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `mesero/<site>`
    prefix: String,
    site: String,
    /// `mqtt.detection_topics` (default: `mesero/<site>/detections`).
    detections: Vec<String>,
}

/// What an incoming PUBLISH topic is, for the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// `mesero/<site>/sensors/<rest>`: a reading for sensor `rest`.
    Sensor(&'a str),
    /// One of `mqtt.detection_topics` (default `mesero/<site>/detections`).
    Detections,
    /// `mesero/<site>/tables/<raw id>/set`
    Set(&'a str),
    /// `mesero/<site>/alerts/raise`
    AlertRaise,
    /// `homeassistant/status`: Home Assistant's birth and will.
    HomeAssistantStatus,
    /// A topic only the daemon publishes (status, table state, events, its
    /// discovery configs): clients may not write there.
    DaemonOwned,
    /// Anything else: the broker just routes it.
    Other,
}

impl Topics {
    pub fn new(site: &str) -> Topics {
        Topics {
            prefix: format!("mesero/{site}"),
            site: site.to_string(),
            detections: vec![format!("mesero/{site}/detections")],
        }
    }

    /// The same topics with `topics` (checked by the config: no wildcard,
    /// none of the daemon's own) as the detection topics instead of the
    /// default.
    pub fn with_detections(mut self, topics: Vec<String>) -> Topics {
        self.detections = topics;
        self
    }

    pub fn status(&self) -> String {
        format!("{}/status", self.prefix)
    }

    pub fn table_state(&self, table: TableId) -> String {
        format!("{}/tables/{table}/state", self.prefix)
    }

    pub fn event(&self, kind: &str) -> String {
        format!("{}/events/{kind}", self.prefix)
    }

    /// `mesero/<site>/waitlist/ready`: one message per `waitlist.ready`.
    pub fn waitlist_ready(&self) -> String {
        format!("{}/waitlist/ready", self.prefix)
    }

    /// `homeassistant/binary_sensor/mesero_<site>_table_<id>/occupancy/config`
    pub fn ha_config(&self, table: TableId) -> String {
        format!(
            "{HA_PREFIX}/binary_sensor/{}/occupancy/config",
            self.ha_node(table)
        )
    }

    fn ha_node(&self, table: TableId) -> String {
        format!("mesero_{}_table_{table}", self.site)
    }

    /// Classifies a topic a client published to.
    pub fn inbound<'a>(&self, topic: &'a str) -> Inbound<'a> {
        if topic == HA_STATUS {
            return Inbound::HomeAssistantStatus;
        }
        if self.detections.iter().any(|d| d == topic) {
            return Inbound::Detections;
        }
        let ha_ours = format!("{HA_PREFIX}/binary_sensor/mesero_{}_", self.site);
        if topic.starts_with(&ha_ours) {
            return Inbound::DaemonOwned;
        }
        let Some(rest) = topic
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return Inbound::Other;
        };
        if rest == "alerts/raise" {
            return Inbound::AlertRaise;
        }
        if rest == "status" || rest == "events" || rest.starts_with("events/") {
            return Inbound::DaemonOwned;
        }
        if let Some(sensor) = rest.strip_prefix("sensors/") {
            return Inbound::Sensor(sensor);
        }
        if let Some(table) = rest.strip_prefix("tables/") {
            if let Some(id) = table.strip_suffix("/set") {
                return Inbound::Set(id);
            }
            if table.ends_with("/state") {
                return Inbound::DaemonOwned;
            }
        }
        Inbound::Other
    }

    /// The retained discovery config of one table's occupancy sensor
    /// (Home Assistant's MQTT `binary_sensor`, `device_class: occupancy`).
    ///
    /// The entity is on while the table is occupied, and unavailable both
    /// when the daemon is offline and while the table's state is
    /// `unknown` (all its sensors are faulted: HA must not guess either).
    /// All tables are grouped under one device, the restaurant.
    pub fn ha_discovery(&self, table: &Table, site_name: &str, language: &str) -> Value {
        let state = self.table_state(table.id);
        let name = match language {
            "es" => format!("Mesa {}", table.number),
            _ => format!("Table {}", table.number),
        };
        json!({
            "name": name,
            "unique_id": format!("{}_occupancy", self.ha_node(table.id)),
            "device_class": "occupancy",
            "state_topic": state,
            "value_template": "{{ 'ON' if value_json.state == 'occupied' else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "json_attributes_topic": state,
            "availability": [
                {
                    "topic": self.status(),
                    "payload_available": "online",
                    "payload_not_available": "offline",
                },
                {
                    "topic": state,
                    "value_template":
                        "{{ 'offline' if value_json.state == 'unknown' else 'online' }}",
                    "payload_available": "online",
                    "payload_not_available": "offline",
                },
            ],
            "availability_mode": "all",
            "qos": 1,
            "device": {
                "identifiers": [format!("mesero_{}", self.site)],
                "name": site_name,
                "manufacturer": "mesero",
                "model": "mesero table occupancy",
                "sw_version": env!("CARGO_PKG_VERSION"),
            },
            "origin": {
                "name": "mesero",
                "sw_version": env!("CARGO_PKG_VERSION"),
            },
        })
    }
}

/// The retained state payload: `{"state", "people", "since", "seq"}`.
///
/// `seq` is the event seq at which this state was current: the seq of the
/// change itself, or the head seq when states are re-published at start.
pub fn state_payload(table: &Table, seq: Seq) -> String {
    // A struct, so the fields come in the spec's order.
    #[derive(serde::Serialize)]
    struct State<'a> {
        state: TableState,
        people: Option<u32>,
        since: &'a str,
        seq: Seq,
    }
    serde_json::to_string(&State {
        state: table.state,
        people: table.people,
        since: &table.since,
        seq,
    })
    .unwrap_or_default()
}

/// What is wrong with a payload; becomes the rate-limited log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn malformed(message: impl Into<String>) -> Malformed {
    Malformed(message.into())
}

fn utf8(payload: &[u8]) -> Result<&str, Malformed> {
    std::str::from_utf8(payload).map_err(|_| malformed("payload is not UTF-8"))
}

/// What a node says on its sensor topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorMessage {
    Reading(Reading),
    /// The node is gone: fault the sensor.
    Offline,
}

/// `{"present": true, "people": 2}`, bare `1`/`0`/`ON`/`OFF`/`true`/`false`,
/// or `offline`.
pub fn parse_sensor(payload: &[u8]) -> Result<SensorMessage, Malformed> {
    let text = utf8(payload)?.trim();
    let bare = |present| SensorMessage::Reading(Reading::presence(present));
    match text.to_ascii_lowercase().as_str() {
        "1" | "on" | "true" => return Ok(bare(true)),
        "0" | "off" | "false" => return Ok(bare(false)),
        "offline" => return Ok(SensorMessage::Offline),
        _ => {}
    }
    let value: Value = serde_json::from_str(text).map_err(|_| {
        malformed("expected {\"present\": bool, \"people\": n} or 1/0/ON/OFF/true/false")
    })?;
    let Value::Object(fields) = value else {
        return Err(malformed("expected a JSON object or 1/0/ON/OFF/true/false"));
    };
    let present = match fields.get("present") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(malformed(format!("present: expected a bool, got {other}"))),
    };
    let people = match fields.get("people") {
        None | Some(Value::Null) => None,
        Some(v) => Some(people_count("people", v)?),
    };
    let reading = match (present, people) {
        (None, None) => return Err(malformed("needs present (bool) or people (count)")),
        (Some(false), Some(n)) if n > 0 => {
            return Err(malformed(format!("present is false but people is {n}")));
        }
        (Some(present), people) => Reading { present, people },
        (None, Some(n)) => Reading {
            present: n > 0,
            people: Some(n),
        },
    };
    Ok(SensorMessage::Reading(reading))
}

fn people_count(key: &str, value: &Value) -> Result<u32, Malformed> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n <= MAX_PEOPLE)
        .ok_or_else(|| {
            malformed(format!(
                "{key}: expected a whole number 0..={MAX_PEOPLE}, got {value}"
            ))
        })
}

fn table_id(key: &str, value: &Value) -> Result<TableId, Malformed> {
    value
        .as_i64()
        .filter(|id| *id > 0)
        .ok_or_else(|| malformed(format!("{key}: expected a table id, got {value}")))
}

/// A detections batch: `[{"table": 1, "people": 2}, ...]` (or `mesa` /
/// `personas`), bare or as `{"detections": [...]}`. Returns each table's
/// count, in table order.
pub fn parse_detections(payload: &[u8]) -> Result<Vec<(TableId, u32)>, Malformed> {
    let value: Value = serde_json::from_str(utf8(payload)?.trim())
        .map_err(|_| malformed("expected a JSON list of {\"table\", \"people\"}"))?;
    let entries = match value {
        Value::Array(entries) => entries,
        Value::Object(mut fields) => match fields.remove("detections") {
            Some(Value::Array(entries)) => entries,
            _ => return Err(malformed("expected {\"detections\": [...]}")),
        },
        _ => return Err(malformed("expected a JSON list of {\"table\", \"people\"}")),
    };
    if entries.len() > MAX_DETECTIONS {
        return Err(malformed(format!(
            "{} entries; at most {MAX_DETECTIONS} per batch",
            entries.len()
        )));
    }
    let mut counts = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(fields) = entry else {
            return Err(malformed(format!("[{i}]: expected an object")));
        };
        let one_of = |a: &str, b: &str| match (fields.get(a), fields.get(b)) {
            (Some(v), None) => Ok((a.to_string(), v.clone())),
            (None, Some(v)) => Ok((b.to_string(), v.clone())),
            (Some(_), Some(_)) => Err(malformed(format!("[{i}]: give {a} or {b}, not both"))),
            (None, None) => Err(malformed(format!("[{i}]: missing {a} (or {b})"))),
        };
        let (key, table) = one_of("table", "mesa")?;
        let table = table_id(&format!("[{i}].{key}"), &table)?;
        let (key, people) = one_of("people", "personas")?;
        let people = people_count(&format!("[{i}].{key}"), &people)?;
        let slot = counts.entry(table).or_insert(people);
        *slot = (*slot).max(people);
    }
    Ok(counts.into_iter().collect())
}

/// A staff command on `tables/<id>/set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetCommand {
    pub state: TableState,
    pub hold_minutes: Option<i64>,
}

/// `{"state": "free", "hold_minutes"?: n}` for the table named in the
/// topic (`raw_id`).
pub fn parse_set(raw_id: &str, payload: &[u8]) -> Result<(TableId, SetCommand), Malformed> {
    let id = raw_id
        .parse::<TableId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| malformed(format!("{raw_id:?} is not a table id")))?;
    let command: SetCommand = serde_json::from_str(utf8(payload)?.trim())
        .map_err(|e| malformed(format!("expected {{\"state\", \"hold_minutes\"?}}: {e}")))?;
    if let Some(m) = command.hold_minutes {
        crate::tables::check_hold_minutes(m).map_err(malformed)?;
    }
    Ok((id, command))
}

/// A staff alert on `alerts/raise` (the body of `POST /api/v1/alerts`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaiseCommand {
    pub kind: AlertKind,
    pub priority: Option<Priority>,
    pub target: Option<Target>,
    pub message: Option<String>,
    pub table: Option<TableId>,
}

/// `{"kind", "priority"?, "target"?, "message"?, "table"?}`; the message
/// and table are checked by the store (as for HTTP).
pub fn parse_raise(payload: &[u8]) -> Result<RaiseCommand, Malformed> {
    serde_json::from_str(utf8(payload)?.trim()).map_err(|e| {
        malformed(format!(
            "expected {{\"kind\", \"priority\"?, \"target\"?, \"message\"?, \"table\"?}}: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(p: &str) -> Result<SensorMessage, Malformed> {
        parse_sensor(p.as_bytes())
    }

    fn reading(present: bool, people: Option<u32>) -> SensorMessage {
        SensorMessage::Reading(Reading { present, people })
    }

    #[test]
    fn topics_are_classified() {
        let t = Topics::new("bar-1");
        for (topic, want) in [
            ("mesero/bar-1/sensors/pir-3", Inbound::Sensor("pir-3")),
            ("mesero/bar-1/sensors/a/b", Inbound::Sensor("a/b")),
            ("mesero/bar-1/detections", Inbound::Detections),
            ("mesero/bar-1/alerts/raise", Inbound::AlertRaise),
            ("mesero/bar-1/alerts/raise/x", Inbound::Other),
            ("mesero/bar-1/tables/12/set", Inbound::Set("12")),
            ("mesero/bar-1/tables/x/set", Inbound::Set("x")),
            ("homeassistant/status", Inbound::HomeAssistantStatus),
            ("mesero/bar-1/status", Inbound::DaemonOwned),
            ("mesero/bar-1/tables/12/state", Inbound::DaemonOwned),
            ("mesero/bar-1/events/table.state", Inbound::DaemonOwned),
            (
                "homeassistant/binary_sensor/mesero_bar-1_table_4/occupancy/config",
                Inbound::DaemonOwned,
            ),
            ("homeassistant/binary_sensor/other/config", Inbound::Other),
            ("mesero/other/sensors/pir-3", Inbound::Other),
            ("mesero/bar-1", Inbound::Other),
            ("mesero/bar-1/detections/x", Inbound::Other),
            ("mesero/bar-1/tables/12/note", Inbound::Other),
            ("kitchen/oven", Inbound::Other),
        ] {
            assert_eq!(t.inbound(topic), want, "{topic}");
        }
        assert_eq!(t.table_state(3), "mesero/bar-1/tables/3/state");
        assert_eq!(t.status(), "mesero/bar-1/status");
        assert_eq!(t.event("table.state"), "mesero/bar-1/events/table.state");
        assert_eq!(
            t.ha_config(3),
            "homeassistant/binary_sensor/mesero_bar-1_table_3/occupancy/config"
        );
    }

    #[test]
    fn configured_detection_topics_replace_the_default() {
        let t = Topics::new("bar-1").with_detections(vec!["restaurant/ocupacion".into()]);
        assert_eq!(t.inbound("restaurant/ocupacion"), Inbound::Detections);
        assert_eq!(t.inbound("restaurant/ocupacion/x"), Inbound::Other);
        assert_eq!(
            t.inbound("mesero/bar-1/detections"),
            Inbound::Other,
            "only the configured topics are detections"
        );
        assert_eq!(t.inbound("mesero/bar-1/status"), Inbound::DaemonOwned);
    }

    #[test]
    fn sensor_bare_forms() {
        for p in ["1", "ON", "on", "true", "True", " 1\n"] {
            assert_eq!(sensor(p), Ok(reading(true, None)), "{p:?}");
        }
        for p in ["0", "OFF", "off", "false", "FALSE"] {
            assert_eq!(sensor(p), Ok(reading(false, None)), "{p:?}");
        }
        for p in ["offline", "Offline\n"] {
            assert_eq!(sensor(p), Ok(SensorMessage::Offline), "{p:?}");
        }
    }

    #[test]
    fn sensor_json_forms() {
        assert_eq!(
            sensor(r#"{"present": true, "people": 2}"#),
            Ok(reading(true, Some(2)))
        );
        assert_eq!(sensor(r#"{"present": false}"#), Ok(reading(false, None)));
        assert_eq!(
            sensor(r#"{"present": false, "people": 0}"#),
            Ok(reading(false, Some(0)))
        );
        assert_eq!(sensor(r#"{"people": 3}"#), Ok(reading(true, Some(3))));
        assert_eq!(sensor(r#"{"people": 0}"#), Ok(reading(false, Some(0))));
        assert_eq!(
            sensor(r#"{"present": true, "rssi": -60, "Time": "x"}"#),
            Ok(reading(true, None))
        );
    }

    #[test]
    fn sensor_garbage_is_refused() {
        for p in [
            "",
            "2",
            "yes",
            "null",
            "[true]",
            "\"ON\"",
            "{}",
            r#"{"present": "yes"}"#,
            r#"{"present": 1}"#,
            r#"{"people": -1}"#,
            r#"{"people": 2.5}"#,
            r#"{"people": "2"}"#,
            r#"{"people": 100000}"#,
            r#"{"present": false, "people": 2}"#,
            r#"{"present": true"#,
        ] {
            assert!(sensor(p).is_err(), "{p:?} accepted");
        }
        assert!(parse_sensor(&[0xff, 0xfe, 0x31]).is_err());
    }

    #[test]
    fn detections_in_every_accepted_form() {
        let want = vec![(1, 2), (3, 0)];
        for p in [
            r#"[{"table": 1, "people": 2}, {"table": 3, "people": 0}]"#,
            r#"[{"mesa": 1, "personas": 2}, {"mesa": 3, "personas": 0}]"#,
            r#"[{"table": 1, "personas": 2}, {"mesa": 3, "people": 0}]"#,
            r#"{"detections": [{"table": 1, "people": 2}, {"mesa": 3, "personas": 0}]}"#,
            r#"[{"table": 3, "people": 0, "confidence": 0.9}, {"table": 1, "people": 2}]"#,
            r#"[{"table": 1, "people": 1}, {"table": 3, "people": 0}, {"table": 1, "people": 2}]"#,
        ] {
            assert_eq!(parse_detections(p.as_bytes()), Ok(want.clone()), "{p}");
        }
        assert_eq!(parse_detections(b"[]"), Ok(vec![]));
        assert_eq!(parse_detections(br#"{"detections": []}"#), Ok(vec![]));
    }

    #[test]
    fn detections_garbage_is_refused() {
        for p in [
            "",
            "1",
            "{}",
            r#"{"detections": 1}"#,
            r#"[1]"#,
            r#"[{"table": 1}]"#,
            r#"[{"people": 1}]"#,
            r#"[{"table": 1, "mesa": 1, "people": 1}]"#,
            r#"[{"table": 1, "people": 1, "personas": 1}]"#,
            r#"[{"table": "1", "people": 1}]"#,
            r#"[{"table": 0, "people": 1}]"#,
            r#"[{"table": -4, "people": 1}]"#,
            r#"[{"table": 1.5, "people": 1}]"#,
            r#"[{"table": 1, "people": -1}]"#,
            r#"[{"table": 1, "people": true}]"#,
            r#"[{"table": 1, "people": 1}"#,
        ] {
            assert!(parse_detections(p.as_bytes()).is_err(), "{p:?} accepted");
        }
        assert!(parse_detections(&[b'[', 0xc3, 0x28, b']']).is_err());
        let huge = format!(
            "[{}]",
            vec![r#"{"table": 1, "people": 1}"#; MAX_DETECTIONS + 1].join(",")
        );
        assert!(parse_detections(huge.as_bytes()).is_err());
    }

    #[test]
    fn set_commands() {
        assert_eq!(
            parse_set("4", br#"{"state": "free"}"#),
            Ok((
                4,
                SetCommand {
                    state: TableState::Free,
                    hold_minutes: None
                }
            ))
        );
        assert_eq!(
            parse_set("4", br#"{"state": "occupied", "hold_minutes": 20}"#).map(|(_, c)| c),
            Ok(SetCommand {
                state: TableState::Occupied,
                hold_minutes: Some(20)
            })
        );
        for (id, p) in [
            ("x", r#"{"state": "free"}"#),
            ("0", r#"{"state": "free"}"#),
            ("4", r#"{"state": "gone"}"#),
            ("4", r#"{"state": 1}"#),
            ("4", r#"{"state": "free", "extra": 1}"#),
            ("4", r#"{"state": "free", "hold_minutes": -1}"#),
            ("4", r#"{"state": "free", "hold_minutes": 100000}"#),
            ("4", r#"{"state": "free", "hold_minutes": "5"}"#),
            ("4", "free"),
            ("4", ""),
        ] {
            assert!(parse_set(id, p.as_bytes()).is_err(), "{id} {p:?} accepted");
        }
    }

    #[test]
    fn raise_commands() {
        assert_eq!(
            parse_raise(
                br#"{"kind": "kitchen", "target": "floor", "table": 3, "message": "ready"}"#
            ),
            Ok(RaiseCommand {
                kind: AlertKind::Kitchen,
                priority: None,
                target: Some(Target::Floor),
                message: Some("ready".into()),
                table: Some(3),
            })
        );
        assert!(parse_raise(br#"{"kind": "call", "priority": "urgent"}"#).is_ok());
        for p in [
            "",
            "call",
            "{}",
            r#"{"kind": "fire"}"#,
            r#"{"kind": "call", "priority": "low"}"#,
            r#"{"kind": "call", "target": "moon"}"#,
            r#"{"kind": "call", "table": "3"}"#,
            r#"{"kind": "call", "extra": 1}"#,
        ] {
            assert!(parse_raise(p.as_bytes()).is_err(), "{p:?} accepted");
        }
    }

    #[test]
    fn state_payload_has_exactly_the_spec_fields() {
        let table = Table {
            id: 2,
            number: "2".into(),
            zone: "salon".into(),
            seats: 4,
            layout: Default::default(),
            state: TableState::Occupied,
            people: Some(3),
            since: "2026-11-22T20:13:05.123Z".into(),
            hold_until: None,
            reservation: None,
            joins: Vec::new(),
            combined_seats: None,
        };
        let text = state_payload(&table, 42);
        assert!(
            text.starts_with(r#"{"state":"occupied","people":3,"since""#),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            v,
            json!({"state": "occupied", "people": 3, "since": "2026-11-22T20:13:05.123Z", "seq": 42})
        );
    }
}
