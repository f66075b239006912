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
    AlertUpdated,
    AlertEscalated,
    PairingCreated,
    PairingCompleted,
    PairingRevoked,
    AnalyticsHourly,
}

impl EventType {
    pub const ALL: [EventType; 25] = [
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
        EventType::AlertUpdated,
        EventType::AlertEscalated,
        EventType::PairingCreated,
        EventType::PairingCompleted,
        EventType::PairingRevoked,
        EventType::AnalyticsHourly,
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
            EventType::AlertUpdated => "alert.updated",
            EventType::AlertEscalated => "alert.escalated",
            EventType::PairingCreated => "pairing.created",
            EventType::PairingCompleted => "pairing.completed",
            EventType::PairingRevoked => "pairing.revoked",
            EventType::AnalyticsHourly => "analytics.hourly",
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

/// A reservation's id as stored and sent to clients.
pub type ReservationId = i64;

/// SPEC §1 Reservation `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum ReservationStatus {
    /// Expected; its tables turn reserved `hold_before` its time.
    Booked,
    /// Checked in: its tables were occupied for it.
    Seated,
    /// Nobody checked in within the grace time.
    NoShow,
    Cancelled,
}

impl ReservationStatus {
    pub const ALL: [ReservationStatus; 4] = [
        ReservationStatus::Booked,
        ReservationStatus::Seated,
        ReservationStatus::NoShow,
        ReservationStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Booked => "booked",
            ReservationStatus::Seated => "seated",
            ReservationStatus::NoShow => "no_show",
            ReservationStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for ReservationStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReservationStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("unknown reservation status {s:?} (booked, seated, no_show, cancelled)")
            })
    }
}

impl TryFrom<String> for ReservationStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A reservation as clients see it (SPEC §1). `at` is local time with its
/// offset (`2026-12-24T20:00:00+01:00`, in `site.timezone`); other times
/// are RFC 3339 UTC. `table` is the one table when there is one, `tables`
/// always lists them (a combination has several).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: ReservationId,
    pub code: String,
    pub name: String,
    pub party_size: u32,
    pub table: Option<TableId>,
    pub tables: Vec<TableId>,
    pub at: String,
    /// Whole minutes, e.g. `"90m"`.
    pub duration: String,
    pub status: ReservationStatus,
    pub phone: Option<String>,
    pub notes: Option<String>,
    pub created_at: String,
    pub seated_at: Option<String>,
}

/// An alert's id as stored and sent to clients.
pub type AlertId = i64;

/// What an alert is about (SPEC §1 Alert `kind`): a call button's
/// `call` (short press) or `bill` (long press), or one raised by staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Call,
    Bill,
    Kitchen,
    Refill,
    Custom,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Call => "call",
            AlertKind::Bill => "bill",
            AlertKind::Kitchen => "kitchen",
            AlertKind::Refill => "refill",
            AlertKind::Custom => "custom",
        }
    }
}

impl FromStr for AlertKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            AlertKind::Call,
            AlertKind::Bill,
            AlertKind::Kitchen,
            AlertKind::Refill,
            AlertKind::Custom,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("unknown alert kind {s:?} (call, bill, kitchen, refill, custom)"))
    }
}

/// SPEC §1 Alert `priority`, in escalation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// One step up; `urgent` is the top and stays `urgent`.
    pub fn raised(self) -> Priority {
        match self {
            Priority::Normal => Priority::High,
            Priority::High | Priority::Urgent => Priority::Urgent,
        }
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Priority::Normal, Priority::High, Priority::Urgent]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown priority {s:?} (normal, high, urgent)"))
    }
}

/// Who must answer an alert (SPEC §1 Alert `target`); `all` is everyone's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    #[default]
    Floor,
    Kitchen,
    Bar,
    All,
}

impl Target {
    pub const ALL: [Target; 4] = [Target::Floor, Target::Kitchen, Target::Bar, Target::All];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Floor => "floor",
            Target::Kitchen => "kitchen",
            Target::Bar => "bar",
            Target::All => "all",
        }
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown target {s:?} (floor, kitchen, bar, all)"))
    }
}

/// An alert as clients see it (SPEC §1 Alert). Times are RFC 3339 UTC
/// strings; `acked_at` is null while it is open. `source` is who raised it
/// (`sensor:<button>`, `staff:<name>`, `mqtt:<client>`): repeats are merged
/// per source (see [`crate::alerts`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: AlertId,
    pub table: Option<TableId>,
    pub kind: AlertKind,
    pub priority: Priority,
    pub target: Target,
    pub message: String,
    pub count: u32,
    pub created_at: String,
    pub last_at: String,
    pub escalations: u32,
    pub acked_by: Option<String>,
    pub acked_at: Option<String>,
    pub source: String,
}

impl Alert {
    pub fn is_open(&self) -> bool {
        self.acked_at.is_none()
    }
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

/// A tablet pairing as clients see it (`GET /api/v1/pairings`, the
/// `pairing.*` events; see `crate::pairing`); never its code or token.
/// Times are RFC 3339 UTC strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    pub id: i64,
    /// The tablet's name: its token's name, the actor of what it does.
    pub name: String,
    /// `viewer`, `staff` or `admin` (a string here: roles belong to
    /// `crate::auth`, which imports this module).
    pub role: String,
    /// `pending` (code not used yet), `paired`, `revoked` or `expired`.
    pub status: String,
    pub created_at: String,
    /// Until when the code can be exchanged.
    pub expires_at: String,
    pub paired_at: Option<String>,
    pub revoked_at: Option<String>,
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
    /// Where the wait the guest was told came from: `host` while
    /// `quoted_minutes` is typed, else what `quote_p50_minutes` came from.
    /// The three fields below are absent for parties stored before they
    /// existed (so their stored events still read back typed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_source: Option<QuoteSource>,
    /// Visits behind the daemon's quote (0: the fixed turn-time rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_predicted_from: Option<usize>,
    /// What the fixed turn-time rule (`waitlist.turn_time`) quoted when the
    /// party was added, so the quote analytics compare the model with it
    /// on the same parties (for older parties `quote_p50_minutes` was that
    /// rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_minutes: Option<u32>,
}

/// Where a waitlist quote came from (CONTRACT: `quote_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuoteSource {
    /// The turn-time model (`crate::turns`).
    Model,
    /// The fixed turn time: too little history for the model.
    Baseline,
    /// The host typed what the guest was told.
    Host,
}

/// A visit's row id (`visits.id`, never reused).
pub type VisitId = i64;

/// One seating (SPEC §1 Visit): the table(s), the party and when it sat
/// and left. Derived from the event log, or imported from another system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Visit {
    pub id: VisitId,
    pub tables: Vec<TableId>,
    pub party_size: Option<u32>,
    /// Where `party_size` came from (`None` when it is unknown).
    pub party_size_source: Option<PartySizeSource>,
    /// RFC 3339 (UTC), like event times.
    pub seated_at: String,
    /// `None` while the party is still seated.
    pub left_at: Option<String>,
    pub origin: VisitOrigin,
}

/// How a visit started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitOrigin {
    Sensor,
    Staff,
    Reservation,
    Waitlist,
    Import,
}

impl VisitOrigin {
    pub const ALL: [VisitOrigin; 5] = [
        VisitOrigin::Sensor,
        VisitOrigin::Staff,
        VisitOrigin::Reservation,
        VisitOrigin::Waitlist,
        VisitOrigin::Import,
    ];

    /// The wire (and column) name.
    pub fn as_str(self) -> &'static str {
        match self {
            VisitOrigin::Sensor => "sensor",
            VisitOrigin::Staff => "staff",
            VisitOrigin::Reservation => "reservation",
            VisitOrigin::Waitlist => "waitlist",
            VisitOrigin::Import => "import",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Where a visit's party size came from, most trusted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartySizeSource {
    Reservation,
    Waitlist,
    Staff,
    Sensor,
    Import,
}

impl PartySizeSource {
    pub const ALL: [PartySizeSource; 5] = [
        PartySizeSource::Reservation,
        PartySizeSource::Waitlist,
        PartySizeSource::Staff,
        PartySizeSource::Sensor,
        PartySizeSource::Import,
    ];

    /// The wire (and column) name.
    pub fn as_str(self) -> &'static str {
        match self {
            PartySizeSource::Reservation => "reservation",
            PartySizeSource::Waitlist => "waitlist",
            PartySizeSource::Staff => "staff",
            PartySizeSource::Sensor => "sensor",
            PartySizeSource::Import => "import",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// One hour of a site (`analytics.hourly`, docs/MULTI-SITE.md): what HQ
/// sums across sites without reading every table event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HourlyRollup {
    /// The hour's start, RFC 3339 UTC (the hour is `[hour, hour + 1 h)`).
    pub hour: String,
    /// Tables on the floor plan when it was recorded.
    pub tables: usize,
    /// Visits seated in the hour, and their known party sizes summed.
    pub seated: usize,
    pub covers: u64,
    /// Visits that ended in the hour, and their median length.
    pub ended: usize,
    pub median_turn_minutes: Option<f64>,
    /// Occupied table-minutes in the hour over `tables` × 60 (0..1).
    pub utilization: f64,
    pub no_shows: u64,
    pub waitlist_seated: u64,
    pub walk_aways: u64,
    pub alerts_raised: u64,
    pub alerts_acked: u64,
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
    /// A new alert was opened. `alert` is the alert as opened; rows
    /// written before alerts were stored (call buttons only) have no
    /// `alert` and name the button in `sensor`. A button's alert still
    /// names it in `sensor`, for clients that read it there.
    #[serde(rename = "alert.raised")]
    AlertRaised {
        table: Option<TableId>,
        kind: AlertKind,
        priority: Priority,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sensor: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alert: Option<Alert>,
    },
    /// A repeat was merged into an alert: `count` and `last_at` bumped.
    #[serde(rename = "alert.updated")]
    AlertUpdated { alert: Alert },
    /// An unacked alert's escalation step: `from` and `to` are its priority
    /// before and after (both `urgent` once it is at the top).
    #[serde(rename = "alert.escalated")]
    AlertEscalated {
        from: Priority,
        to: Priority,
        alert: Alert,
    },
    /// Staff answered it: `acked_by` and `acked_at` are set.
    #[serde(rename = "alert.acked")]
    AlertAcked { alert: Alert },
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
    /// `reservation` is the reservation after the change (also for the
    /// other reservation types below).
    #[serde(rename = "reservation.created")]
    ReservationCreated { reservation: Reservation },
    #[serde(rename = "reservation.updated")]
    ReservationUpdated { reservation: Reservation },
    #[serde(rename = "reservation.cancelled")]
    ReservationCancelled { reservation: Reservation },
    #[serde(rename = "reservation.checked_in")]
    ReservationCheckedIn { reservation: Reservation },
    #[serde(rename = "reservation.no_show")]
    ReservationNoShow { reservation: Reservation },
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
    /// An admin created a pairing code for a tablet (never the code).
    #[serde(rename = "pairing.created")]
    PairingCreated { pairing: Pairing },
    /// A tablet exchanged its code for a token (never the token); the
    /// actor is the tablet (`staff:<its name>`).
    #[serde(rename = "pairing.completed")]
    PairingCompleted { pairing: Pairing },
    /// An admin revoked a paired tablet, or withdrew an unused code.
    #[serde(rename = "pairing.revoked")]
    PairingRevoked { pairing: Pairing },
    /// One hour of the room in numbers, recorded on the hour for the
    /// upstream bridge (`upstream::rollup`).
    #[serde(rename = "analytics.hourly")]
    AnalyticsHourly { rollup: HourlyRollup },
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
            EventData::AlertUpdated { .. } => EventType::AlertUpdated,
            EventData::AlertEscalated { .. } => EventType::AlertEscalated,
            EventData::AlertAcked { .. } => EventType::AlertAcked,
            EventData::SensorFault { .. } => EventType::SensorFault,
            EventData::SensorRecovered { .. } => EventType::SensorRecovered,
            EventData::SystemStarted { .. } => EventType::SystemStarted,
            EventData::ReservationCreated { .. } => EventType::ReservationCreated,
            EventData::ReservationUpdated { .. } => EventType::ReservationUpdated,
            EventData::ReservationCancelled { .. } => EventType::ReservationCancelled,
            EventData::ReservationCheckedIn { .. } => EventType::ReservationCheckedIn,
            EventData::ReservationNoShow { .. } => EventType::ReservationNoShow,
            EventData::WaitlistAdded { .. } => EventType::WaitlistAdded,
            EventData::WaitlistUpdated { .. } => EventType::WaitlistUpdated,
            EventData::WaitlistReady { .. } => EventType::WaitlistReady,
            EventData::WaitlistSeated { .. } => EventType::WaitlistSeated,
            EventData::WaitlistLeft { .. } => EventType::WaitlistLeft,
            EventData::PairingCreated { .. } => EventType::PairingCreated,
            EventData::PairingCompleted { .. } => EventType::PairingCompleted,
            EventData::PairingRevoked { .. } => EventType::PairingRevoked,
            EventData::AnalyticsHourly { .. } => EventType::AnalyticsHourly,
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

    /// The alert after the change, for the alert events that carry one
    /// (not `alert.raised` rows from before alerts were stored).
    pub fn alert(&self) -> Option<&Alert> {
        match self {
            EventData::AlertRaised { alert, .. } => alert.as_ref(),
            EventData::AlertUpdated { alert }
            | EventData::AlertEscalated { alert, .. }
            | EventData::AlertAcked { alert } => Some(alert),
            _ => None,
        }
    }

    /// The reservation after the change, for the reservation events.
    pub fn reservation(&self) -> Option<&Reservation> {
        match self {
            EventData::ReservationCreated { reservation }
            | EventData::ReservationUpdated { reservation }
            | EventData::ReservationCancelled { reservation }
            | EventData::ReservationCheckedIn { reservation }
            | EventData::ReservationNoShow { reservation } => Some(reservation),
            _ => None,
        }
    }

    /// Who must answer the alert this event is about: its `target`, or
    /// `floor` for a call button's `alert.raised` from before alerts were
    /// stored; `None` for other events.
    pub fn alert_target(&self) -> Option<Target> {
        match self {
            EventData::AlertRaised { alert: None, .. } => Some(Target::Floor),
            other => other.alert().map(|a| a.target),
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
