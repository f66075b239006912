//! The domain vocabulary of SPEC §1: tables, their states, and events.
//!
//! These types are what the store persists, the hub fans out and the HTTP
//! API serialises; their serde names are part of the public contract.
//!
//! An [`Event`]'s payload is an [`EventData`] variant, one per event type;
//! its wire form (SSE, WebSocket, `/api/v1/events`, MQTT `events/<type>`,
//! the `events` table) is pinned byte for byte by `tests/wire.rs`. A new
//! event type is one new variant (with its `rename`) and one arm in
//! [`EventData::event_type`]; the compiler points at every consumer that
//! matches on it.

use serde::de::Error as _;
use serde::ser::{Error as _, SerializeStruct as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Table id as stored and as sent to clients (SPEC: integer, stable).
pub type TableId = i64;

/// Monotonic event sequence number (SPEC: strictly increasing u64).
pub type Seq = u64;

/// Deserialized through [`FromStr`], so a wrong type or an unknown name
/// gets an error that says which states exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum TableState {
    Free,
    Occupied,
    Reserved,
    Dirty,
    Unknown,
}

impl TableState {
    pub const ALL: [TableState; 5] = [
        TableState::Free,
        TableState::Occupied,
        TableState::Reserved,
        TableState::Dirty,
        TableState::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TableState::Free => "free",
            TableState::Occupied => "occupied",
            TableState::Reserved => "reserved",
            TableState::Dirty => "dirty",
            TableState::Unknown => "unknown",
        }
    }

    /// The Spanish label used by the UI and the `/mesas` compatibility API.
    pub fn label_es(self) -> &'static str {
        match self {
            TableState::Free => "disponible",
            TableState::Occupied => "ocupada",
            TableState::Reserved => "reservada",
            TableState::Dirty => "por limpiar",
            TableState::Unknown => "sin datos",
        }
    }
}

impl TryFrom<String> for TableState {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for TableState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TableState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TableState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!("unknown table state {s:?} (free, occupied, reserved, dirty, unknown)")
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    #[default]
    Rect,
    Round,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Rect => "rect",
            Shape::Round => "round",
        }
    }
}

impl FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rect" => Ok(Shape::Rect),
            "round" => Ok(Shape::Round),
            other => Err(format!("unknown shape {other:?}")),
        }
    }
}

/// Where a table is drawn on the floor plan, in plan units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    #[serde(default)]
    pub shape: Shape,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            x: 0.0,
            y: 0.0,
            w: 1.0,
            h: 1.0,
            shape: Shape::Rect,
        }
    }
}

/// A table as clients see it. Times are RFC 3339 UTC strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub id: TableId,
    pub number: String,
    pub zone: String,
    pub seats: u32,
    #[serde(flatten)]
    pub layout: Layout,
    pub state: TableState,
    pub people: Option<u32>,
    pub since: String,
    pub hold_until: Option<String>,
    pub reservation: Option<i64>,
    /// Tables this one can be pushed together with (SPEC §1 Combinations),
    /// ascending; absent from the JSON when empty, so a floor plan without
    /// combinations looks as it always did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joins: Vec<TableId>,
    /// Seats this table gives a combination it is part of (a 4-top pushed
    /// against another may seat 3); absent: all its `seats`. See
    /// [`crate::tables::seats_of`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combined_seats: Option<u32>,
}

/// Who caused an event (SPEC §1: `sensor:<id>`, `staff:<token name>`,
/// `mqtt:<client id>` or `system`); serialised as that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Sensor(String),
    Staff(String),
    Mqtt(String),
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Sensor(id) => write!(f, "sensor:{id}"),
            Actor::Staff(name) => write!(f, "staff:{name}"),
            Actor::Mqtt(client) => write!(f, "mqtt:{client}"),
            Actor::System => f.write_str("system"),
        }
    }
}

impl FromStr for Actor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "system" {
            return Ok(Actor::System);
        }
        match s.split_once(':') {
            Some(("sensor", id)) => Ok(Actor::Sensor(id.to_string())),
            Some(("staff", name)) => Ok(Actor::Staff(name.to_string())),
            Some(("mqtt", client)) => Ok(Actor::Mqtt(client.to_string())),
            _ => Err(format!(
                "unknown actor {s:?} (sensor:<id>, staff:<name>, mqtt:<client>, system)"
            )),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// Event types of SPEC §1: the names `?types=` filters accept, including
/// those nothing produces yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    TableState,
    TableCreated,
    TableUpdated,
    TableDeleted,
    ReservationCreated,
    ReservationUpdated,
    ReservationCancelled,
    ReservationCheckedIn,
    ReservationNoShow,
    WaitlistAdded,
    WaitlistUpdated,
    WaitlistReady,
    WaitlistSeated,
    WaitlistLeft,
    AlertRaised,
    AlertAcked,
    SensorFault,
    SensorRecovered,
    SystemStarted,
}

impl EventType {
    pub const ALL: [EventType; 19] = [
        EventType::TableState,
        EventType::TableCreated,
        EventType::TableUpdated,
        EventType::TableDeleted,
        EventType::ReservationCreated,
        EventType::ReservationUpdated,
        EventType::ReservationCancelled,
        EventType::ReservationCheckedIn,
        EventType::ReservationNoShow,
        EventType::WaitlistAdded,
        EventType::WaitlistUpdated,
        EventType::WaitlistReady,
        EventType::WaitlistSeated,
        EventType::WaitlistLeft,
        EventType::AlertRaised,
        EventType::AlertAcked,
        EventType::SensorFault,
        EventType::SensorRecovered,
        EventType::SystemStarted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::TableState => "table.state",
            EventType::TableCreated => "table.created",
            EventType::TableUpdated => "table.updated",
            EventType::TableDeleted => "table.deleted",
            EventType::ReservationCreated => "reservation.created",
            EventType::ReservationUpdated => "reservation.updated",
            EventType::ReservationCancelled => "reservation.cancelled",
            EventType::ReservationCheckedIn => "reservation.checked_in",
            EventType::ReservationNoShow => "reservation.no_show",
            EventType::WaitlistAdded => "waitlist.added",
            EventType::WaitlistUpdated => "waitlist.updated",
            EventType::WaitlistReady => "waitlist.ready",
            EventType::WaitlistSeated => "waitlist.seated",
            EventType::WaitlistLeft => "waitlist.left",
            EventType::AlertRaised => "alert.raised",
            EventType::AlertAcked => "alert.acked",
            EventType::SensorFault => "sensor.fault",
            EventType::SensorRecovered => "sensor.recovered",
            EventType::SystemStarted => "system.started",
        }
    }

    /// Whether `prefix` names this type or a dotted prefix of it (`table`
    /// matches `table.state`, `tab` does not).
    pub fn matches_prefix(name: &str, prefix: &str) -> bool {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown event type {s:?}"))
    }
}

/// What a call button asks for (SPEC §1 Alert `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Call,
    Bill,
    Kitchen,
    Refill,
    Custom,
}

/// SPEC §1 Alert `priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Normal,
    High,
    Urgent,
}

/// A walk-in party's id on the waitlist.
pub type PartyId = i64;

/// Where a walk-in party is (SPEC §1 Waitlist party); rules in [`crate::waitlist`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyStatus {
    Waiting,
    Notified,
    Seated,
    Left,
}

impl PartyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyStatus::Waiting => "waiting",
            PartyStatus::Notified => "notified",
            PartyStatus::Seated => "seated",
            PartyStatus::Left => "left",
        }
    }

    /// Still in line (waiting or told a table is ready).
    pub fn in_line(self) -> bool {
        matches!(self, PartyStatus::Waiting | PartyStatus::Notified)
    }
}

/// A party as clients see it; times are RFC 3339 UTC strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    pub id: PartyId,
    pub name: String,
    pub party_size: u32,
    pub phone: Option<String>,
    pub notes: Option<String>,
    pub added_at: String,
    /// The daemon's estimate when the party was added (median and 80th
    /// percentile), from [`quote`].
    pub quote_p50_minutes: u32,
    pub quote_p80_minutes: u32,
    /// What the host told the guest, if typed.
    pub quoted_minutes: Option<u32>,
    pub status: PartyStatus,
    /// The tables offered when notified (empty otherwise).
    pub offered: Vec<TableId>,
    pub notified_at: Option<String>,
    /// The tables the party was seated at.
    pub tables: Vec<TableId>,
    pub seated_at: Option<String>,
    pub left_at: Option<String>,
    /// Minutes from `added_at` to `seated_at` (or `left_at`).
    pub waited_minutes: Option<u32>,
}

/// The `type` and `data` of an event: one variant per type produced
/// today. The serde `rename` of each variant is its wire name and must be
/// its [`EventType::as_str`] (the golden test checks both).
///
/// [`EventData::Other`] carries what this binary cannot type exactly (a
/// row written by another version: an unknown type, a missing or extra
/// field) and passes it through unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventData {
    /// A table's state changed; `table` is the table after the change.
    #[serde(rename = "table.state")]
    TableState {
        from: TableState,
        to: TableState,
        table: Table,
    },
    #[serde(rename = "table.created")]
    TableCreated { table: Table },
    /// `table` is the table after the edit.
    #[serde(rename = "table.updated")]
    TableUpdated { table: Table },
    /// `table` is the table as it was.
    #[serde(rename = "table.deleted")]
    TableDeleted { table: Table },
    /// A call button was pressed (`sensor` is the button's id).
    #[serde(rename = "alert.raised")]
    AlertRaised {
        table: Option<TableId>,
        kind: AlertKind,
        priority: Priority,
        message: String,
        sensor: String,
    },
    /// `kind` is the sensor's config kind (`gpio`, `mqtt`, ...).
    #[serde(rename = "sensor.fault")]
    SensorFault {
        sensor: String,
        kind: String,
        reason: String,
    },
    #[serde(rename = "sensor.recovered")]
    SensorRecovered { sensor: String, kind: String },
    #[serde(rename = "system.started")]
    SystemStarted { version: String, site: String },
    /// A walk-in party joined the waitlist; `party` is as added.
    #[serde(rename = "waitlist.added")]
    WaitlistAdded { party: Party },
    /// A party was edited, or its offer withdrawn (back to `waiting`).
    #[serde(rename = "waitlist.updated")]
    WaitlistUpdated { party: Party },
    /// A table is ready: `party.offered` are the tables held for it.
    #[serde(rename = "waitlist.ready")]
    WaitlistReady { party: Party },
    /// Seated at `party.tables`; their `table.state` events follow in the
    /// same batch.
    #[serde(rename = "waitlist.seated")]
    WaitlistSeated { party: Party },
    /// The host took the party off the list.
    #[serde(rename = "waitlist.left")]
    WaitlistLeft { party: Party },
    #[serde(skip)]
    Other {
        kind: String,
        data: serde_json::Value,
    },
}

impl EventData {
    /// The type, `None` for [`EventData::Other`].
    pub fn event_type(&self) -> Option<EventType> {
        Some(match self {
            EventData::TableState { .. } => EventType::TableState,
            EventData::TableCreated { .. } => EventType::TableCreated,
            EventData::TableUpdated { .. } => EventType::TableUpdated,
            EventData::TableDeleted { .. } => EventType::TableDeleted,
            EventData::AlertRaised { .. } => EventType::AlertRaised,
            EventData::SensorFault { .. } => EventType::SensorFault,
            EventData::SensorRecovered { .. } => EventType::SensorRecovered,
            EventData::SystemStarted { .. } => EventType::SystemStarted,
            EventData::WaitlistAdded { .. } => EventType::WaitlistAdded,
            EventData::WaitlistUpdated { .. } => EventType::WaitlistUpdated,
            EventData::WaitlistReady { .. } => EventType::WaitlistReady,
            EventData::WaitlistSeated { .. } => EventType::WaitlistSeated,
            EventData::WaitlistLeft { .. } => EventType::WaitlistLeft,
            EventData::Other { .. } => return None,
        })
    }

    /// The wire `type`.
    pub fn kind(&self) -> &str {
        match self {
            EventData::Other { kind, .. } => kind,
            typed => typed.event_type().map_or("", EventType::as_str),
        }
    }

    /// The party after the change, for the waitlist events.
    pub fn party(&self) -> Option<&Party> {
        match self {
            EventData::WaitlistAdded { party }
            | EventData::WaitlistUpdated { party }
            | EventData::WaitlistReady { party }
            | EventData::WaitlistSeated { party }
            | EventData::WaitlistLeft { party } => Some(party),
            _ => None,
        }
    }

    /// The table after the change, for the table events that carry one.
    pub fn table(&self) -> Option<&Table> {
        match self {
            EventData::TableState { table, .. }
            | EventData::TableCreated { table }
            | EventData::TableUpdated { table }
            | EventData::TableDeleted { table } => Some(table),
            _ => None,
        }
    }

    /// The wire `data` object. It goes through [`serde_json::Value`], whose
    /// objects keep their keys sorted: that is the byte order clients and
    /// stored rows have always had (the events were built with `json!`).
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            EventData::Other { data, .. } => Ok(data.clone()),
            typed => {
                let mut tagged = serde_json::to_value(typed)?;
                Ok(tagged
                    .get_mut("data")
                    .map(serde_json::Value::take)
                    .unwrap_or_default())
            }
        }
    }

    /// Reads a `type` and its `data` (a stored row, a received event). It is
    /// typed only if the variant gives back exactly `data`; anything else is
    /// kept as [`EventData::Other`], so it goes out again unchanged.
    pub fn from_parts(kind: &str, data: serde_json::Value) -> EventData {
        let mut tagged = serde_json::Value::Object(serde_json::Map::from_iter([
            ("type".to_string(), serde_json::Value::from(kind)),
            ("data".to_string(), data),
        ]));
        if let Ok(typed) = EventData::deserialize(&tagged) {
            if typed.to_json().ok().as_ref() == tagged.get("data") {
                return typed;
            }
        }
        EventData::Other {
            kind: kind.to_string(),
            data: tagged
                .get_mut("data")
                .map(serde_json::Value::take)
                .unwrap_or_default(),
        }
    }
}

/// One recorded change (SPEC §1 "Event — the spine"). On the wire:
/// `{"seq", "ts", "type", "table", "actor", "data"}` in that order.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: Seq,
    pub ts: String,
    pub table: Option<TableId>,
    pub actor: Actor,
    /// The type and its payload.
    pub data: EventData,
}

impl Event {
    /// The wire `type`.
    pub fn kind(&self) -> &str {
        self.data.kind()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let data = self.data.to_json().map_err(S::Error::custom)?;
        let mut s = serializer.serialize_struct("Event", 6)?;
        s.serialize_field("seq", &self.seq)?;
        s.serialize_field("ts", &self.ts)?;
        s.serialize_field("type", self.kind())?;
        s.serialize_field("table", &self.table)?;
        s.serialize_field("actor", &self.actor)?;
        s.serialize_field("data", &data)?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            seq: Seq,
            ts: String,
            #[serde(rename = "type")]
            kind: String,
            table: Option<TableId>,
            actor: Actor,
            data: serde_json::Value,
        }
        let w = Wire::deserialize(deserializer)?;
        Ok(Event {
            seq: w.seq,
            ts: w.ts,
            table: w.table,
            actor: w.actor,
            data: EventData::from_parts(&w.kind, w.data),
        })
    }
}
