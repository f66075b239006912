//! The domain vocabulary of SPEC §1: tables, their states, and events.
//!
//! These types are what the store persists, the hub fans out and the HTTP
//! API serialises; their serde names are part of the public contract.

use serde::{Deserialize, Serialize};
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
}

/// Who caused an event (SPEC §1: `sensor:<id>`, `staff:<token name>`,
/// `mqtt:<client id>` or `system`).
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

/// Event types of SPEC §1.
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
    AlertRaised,
    AlertAcked,
    SensorFault,
    SensorRecovered,
    SystemStarted,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        EventType::TableState,
        EventType::TableCreated,
        EventType::TableUpdated,
        EventType::TableDeleted,
        EventType::ReservationCreated,
        EventType::ReservationUpdated,
        EventType::ReservationCancelled,
        EventType::ReservationCheckedIn,
        EventType::ReservationNoShow,
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
            EventType::AlertRaised => "alert.raised",
            EventType::AlertAcked => "alert.acked",
            EventType::SensorFault => "sensor.fault",
            EventType::SensorRecovered => "sensor.recovered",
            EventType::SystemStarted => "system.started",
        }
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

/// One recorded change (SPEC §1 "Event — the spine").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: Seq,
    pub ts: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub table: Option<TableId>,
    pub actor: String,
    pub data: serde_json::Value,
}

impl Event {
    /// The whole table an event carries in `data.table` (`table.state`,
    /// `table.created`, `table.updated`: the table after the change), read
    /// in place without copying the JSON.
    pub fn table_data(&self) -> Result<Table, serde_json::Error> {
        Table::deserialize(&self.data["table"])
    }
}
