//! The wire format of events, pinned byte for byte (issue 10: typed
//! events must go out exactly as the `json!`-built ones did).
//!
//! The literal strings below were captured from the code before the
//! payload was typed: the JSON every client gets (SSE `data`, WebSocket
//! text, `/api/v1/events` items, MQTT `events/<type>` payloads, all the
//! same text) and the rows of the `events` table. Key order is part of it:
//! `seq, ts, type, table, actor, data`, and inside `data` sorted keys.

mod common;

use common::*;
use mesero::domain::{
    Actor, Alert, AlertKind, Event, EventData, EventType, Layout, Party, PartyStatus, Priority,
    QuoteSource, Reservation, ReservationStatus, Shape, Table, TableState, Target,
};
use mesero::hub::{Hub, Published};
use mesero::metrics::Metrics;
use mesero::store::{Change, EventQuery, Guard, Hold, NewAlert, NewTable, Store, TablePatch};
use std::sync::Arc;

/// The JSON of events 5 to 14 as the code before typed events sent them.
const WIRE: [&str; 10] = [
    r#"{"seq":5,"ts":"2026-12-01T22:06:24.091Z","type":"table.created","table":7,"actor":"staff:ana","data":{"table":{"h":0.75,"hold_until":null,"id":7,"number":"7","people":null,"reservation":null,"seats":4,"shape":"round","since":"2026-12-01T22:06:24.091Z","state":"free","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"}}}"#,
    r#"{"seq":6,"ts":"2026-12-01T22:06:24.103Z","type":"table.updated","table":7,"actor":"staff:ana","data":{"table":{"h":0.75,"hold_until":null,"id":7,"number":"7","people":null,"reservation":null,"seats":6,"shape":"round","since":"2026-12-01T22:06:24.091Z","state":"free","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"}}}"#,
    r#"{"seq":7,"ts":"2026-12-01T22:06:24.123Z","type":"table.state","table":7,"actor":"mqtt:host-tablet","data":{"from":"free","table":{"h":0.75,"hold_until":"2096-10-02T07:06:40.000Z","id":7,"number":"7","people":3,"reservation":null,"seats":6,"shape":"round","since":"2026-12-01T22:06:24.123Z","state":"occupied","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"},"to":"occupied"}}"#,
    r#"{"seq":8,"ts":"2026-12-01T22:06:24.129Z","type":"table.state","table":7,"actor":"sensor:pir-7","data":{"from":"occupied","table":{"h":0.75,"hold_until":null,"id":7,"number":"7","people":null,"reservation":null,"seats":6,"shape":"round","since":"2026-12-01T22:06:24.129Z","state":"free","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"},"to":"free"}}"#,
    r#"{"seq":9,"ts":"2026-12-01T22:06:24.134Z","type":"alert.raised","table":7,"actor":"sensor:call-7","data":{"kind":"bill","message":"bill requested (long press)","priority":"normal","sensor":"call-7","table":7}}"#,
    r#"{"seq":10,"ts":"2026-12-01T22:06:24.146Z","type":"alert.raised","table":null,"actor":"sensor:call-x","data":{"kind":"call","message":"call button pressed","priority":"normal","sensor":"call-x","table":null}}"#,
    r#"{"seq":11,"ts":"2026-12-01T22:06:24.158Z","type":"sensor.fault","table":7,"actor":"sensor:node-1","data":{"kind":"mqtt","reason":"no reading for 1s \"x\"\n","sensor":"node-1"}}"#,
    r#"{"seq":12,"ts":"2026-12-01T22:06:24.167Z","type":"sensor.recovered","table":null,"actor":"sensor:node-1","data":{"kind":"mqtt","sensor":"node-1"}}"#,
    r#"{"seq":13,"ts":"2026-12-01T22:06:24.170Z","type":"system.started","table":null,"actor":"system","data":{"site":"test","version":"0.1.0"}}"#,
    r#"{"seq":14,"ts":"2026-12-01T22:06:24.174Z","type":"table.deleted","table":7,"actor":"staff:anonymous","data":{"table":{"h":0.75,"hold_until":null,"id":7,"number":"7","people":null,"reservation":null,"seats":6,"shape":"round","since":"2026-12-01T22:06:24.129Z","state":"free","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"}}}"#,
];

/// The JSON of the alert events since alerts are stored (schema version
/// 3): `alert.raised` keeps the fields it had and adds the `alert`.
const ALERT_WIRE: [&str; 4] = [
    r#"{"seq":20,"ts":"2026-12-01T22:06:24.200Z","type":"alert.raised","table":7,"actor":"sensor:call-7","data":{"alert":{"acked_at":null,"acked_by":null,"count":1,"created_at":"2026-12-01T22:06:24.200Z","escalations":0,"id":3,"kind":"call","last_at":"2026-12-01T22:06:24.200Z","message":"call button pressed","priority":"normal","source":"sensor:call-7","table":7,"target":"floor"},"kind":"call","message":"call button pressed","priority":"normal","sensor":"call-7","table":7}}"#,
    r#"{"seq":21,"ts":"2026-12-01T22:06:26.200Z","type":"alert.updated","table":7,"actor":"sensor:call-7","data":{"alert":{"acked_at":null,"acked_by":null,"count":2,"created_at":"2026-12-01T22:06:24.200Z","escalations":0,"id":3,"kind":"call","last_at":"2026-12-01T22:06:26.200Z","message":"call button pressed","priority":"normal","source":"sensor:call-7","table":7,"target":"floor"}}}"#,
    r#"{"seq":22,"ts":"2026-12-01T22:08:24.200Z","type":"alert.escalated","table":7,"actor":"system","data":{"alert":{"acked_at":null,"acked_by":null,"count":2,"created_at":"2026-12-01T22:06:24.200Z","escalations":1,"id":3,"kind":"call","last_at":"2026-12-01T22:06:26.200Z","message":"call button pressed","priority":"high","source":"sensor:call-7","table":7,"target":"floor"},"from":"normal","to":"high"}}"#,
    r#"{"seq":23,"ts":"2026-12-01T22:10:24.200Z","type":"alert.acked","table":7,"actor":"staff:ana","data":{"alert":{"acked_at":"2026-12-01T22:10:24.200Z","acked_by":"staff:ana","count":2,"created_at":"2026-12-01T22:06:24.200Z","escalations":1,"id":3,"kind":"call","last_at":"2026-12-01T22:06:26.200Z","message":"call button pressed","priority":"high","source":"sensor:call-7","table":7,"target":"floor"}}}"#,
];

/// A row of the `events` table: `(seq, ts, type, table_id, actor, data)`.
type Row<'a> = (i64, &'a str, &'a str, Option<i64>, &'a str, &'a str);

/// The same events' rows in SQLite.
const ROWS: [Row<'static>; 10] = [
    (
        5,
        "2026-12-01T22:06:24.091Z",
        "table.created",
        Some(7),
        "staff:ana",
        r#"{"table":{"h":0.75,"hold_until":null,"id":7,"number":"7","people":null,"reservation":null,"seats":4,"shape":"round","since":"2026-12-01T22:06:24.091Z","state":"free","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"}}"#,
    ),
    (
        6,
        "2026-12-01T22:06:24.103Z",
        "table.updated",
        Some(7),
        "staff:ana",
        r#"{"table":{"h":0.75,"hold_until":null,"id":7,"number":"7","people":null,"reservation":null,"seats":6,"shape":"round","since":"2026-12-01T22:06:24.091Z","state":"free","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"}}"#,
    ),
    (
        7,
        "2026-12-01T22:06:24.123Z",
        "table.state",
        Some(7),
        "mqtt:host-tablet",
        r#"{"from":"free","table":{"h":0.75,"hold_until":"2096-10-02T07:06:40.000Z","id":7,"number":"7","people":3,"reservation":null,"seats":6,"shape":"round","since":"2026-12-01T22:06:24.123Z","state":"occupied","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"},"to":"occupied"}"#,
    ),
    (
        8,
        "2026-12-01T22:06:24.129Z",
        "table.state",
        Some(7),
        "sensor:pir-7",
        r#"{"from":"occupied","table":{"h":0.75,"hold_until":null,"id":7,"number":"7","people":null,"reservation":null,"seats":6,"shape":"round","since":"2026-12-01T22:06:24.129Z","state":"free","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"},"to":"free"}"#,
    ),
    (
        9,
        "2026-12-01T22:06:24.134Z",
        "alert.raised",
        Some(7),
        "sensor:call-7",
        r#"{"kind":"bill","message":"bill requested (long press)","priority":"normal","sensor":"call-7","table":7}"#,
    ),
    (
        10,
        "2026-12-01T22:06:24.146Z",
        "alert.raised",
        None,
        "sensor:call-x",
        r#"{"kind":"call","message":"call button pressed","priority":"normal","sensor":"call-x","table":null}"#,
    ),
    (
        11,
        "2026-12-01T22:06:24.158Z",
        "sensor.fault",
        Some(7),
        "sensor:node-1",
        r#"{"kind":"mqtt","reason":"no reading for 1s \"x\"\n","sensor":"node-1"}"#,
    ),
    (
        12,
        "2026-12-01T22:06:24.167Z",
        "sensor.recovered",
        None,
        "sensor:node-1",
        r#"{"kind":"mqtt","sensor":"node-1"}"#,
    ),
    (
        13,
        "2026-12-01T22:06:24.170Z",
        "system.started",
        None,
        "system",
        r#"{"site":"test","version":"0.1.0"}"#,
    ),
    (
        14,
        "2026-12-01T22:06:24.174Z",
        "table.deleted",
        Some(7),
        "staff:anonymous",
        r#"{"table":{"h":0.75,"hold_until":null,"id":7,"number":"7","people":null,"reservation":null,"seats":6,"shape":"round","since":"2026-12-01T22:06:24.129Z","state":"free","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"}}"#,
    ),
];

fn table(state: TableState, seats: u32, since: &str) -> Table {
    Table {
        id: 7,
        number: "7".into(),
        zone: "terrace".into(),
        seats,
        layout: Layout {
            x: 1.5,
            y: 2.0,
            w: 1.0,
            h: 0.75,
            shape: Shape::Round,
        },
        state,
        people: None,
        since: since.into(),
        hold_until: None,
        reservation: None,
        joins: Vec::new(),
        combined_seats: None,
    }
}

/// Events 5 to 14, built the typed way.
fn typed() -> Vec<Event> {
    let event = |seq: u64, ts: &str, table: Option<i64>, actor: Actor, data: EventData| Event {
        seq,
        ts: ts.into(),
        table,
        actor,
        data,
    };
    let created = "2026-12-01T22:06:24.091Z";
    let seated = Table {
        people: Some(3),
        hold_until: Some("2096-10-02T07:06:40.000Z".into()),
        ..table(TableState::Occupied, 6, "2026-12-01T22:06:24.123Z")
    };
    let freed = table(TableState::Free, 6, "2026-12-01T22:06:24.129Z");
    vec![
        event(
            5,
            created,
            Some(7),
            Actor::Staff("ana".into()),
            EventData::TableCreated {
                table: table(TableState::Free, 4, created),
            },
        ),
        event(
            6,
            "2026-12-01T22:06:24.103Z",
            Some(7),
            Actor::Staff("ana".into()),
            EventData::TableUpdated {
                table: table(TableState::Free, 6, created),
            },
        ),
        event(
            7,
            "2026-12-01T22:06:24.123Z",
            Some(7),
            Actor::Mqtt("host-tablet".into()),
            EventData::TableState {
                from: TableState::Free,
                to: TableState::Occupied,
                table: seated,
            },
        ),
        event(
            8,
            "2026-12-01T22:06:24.129Z",
            Some(7),
            Actor::Sensor("pir-7".into()),
            EventData::TableState {
                from: TableState::Occupied,
                to: TableState::Free,
                table: freed.clone(),
            },
        ),
        event(
            9,
            "2026-12-01T22:06:24.134Z",
            Some(7),
            Actor::Sensor("call-7".into()),
            EventData::AlertRaised {
                table: Some(7),
                kind: AlertKind::Bill,
                priority: Priority::Normal,
                message: "bill requested (long press)".into(),
                sensor: Some("call-7".into()),
                alert: None,
            },
        ),
        event(
            10,
            "2026-12-01T22:06:24.146Z",
            None,
            Actor::Sensor("call-x".into()),
            EventData::AlertRaised {
                table: None,
                kind: AlertKind::Call,
                priority: Priority::Normal,
                message: "call button pressed".into(),
                sensor: Some("call-x".into()),
                alert: None,
            },
        ),
        event(
            11,
            "2026-12-01T22:06:24.158Z",
            Some(7),
            Actor::Sensor("node-1".into()),
            EventData::SensorFault {
                sensor: "node-1".into(),
                kind: "mqtt".into(),
                reason: "no reading for 1s \"x\"\n".into(),
            },
        ),
        event(
            12,
            "2026-12-01T22:06:24.167Z",
            None,
            Actor::Sensor("node-1".into()),
            EventData::SensorRecovered {
                sensor: "node-1".into(),
                kind: "mqtt".into(),
            },
        ),
        event(
            13,
            "2026-12-01T22:06:24.170Z",
            None,
            Actor::System,
            EventData::SystemStarted {
                version: "0.1.0".into(),
                site: "test".into(),
            },
        ),
        event(
            14,
            "2026-12-01T22:06:24.174Z",
            Some(7),
            Actor::Staff("anonymous".into()),
            EventData::TableDeleted { table: freed },
        ),
    ]
}

/// Which variant an event is; exhaustive on purpose, so that a new
/// variant does not compile until it has a golden case here.
fn variant(data: &EventData) -> usize {
    match data {
        EventData::TableState { .. } => 0,
        EventData::TableCreated { .. } => 1,
        EventData::TableUpdated { .. } => 2,
        EventData::TableDeleted { .. } => 3,
        EventData::AlertRaised { .. } => 4,
        EventData::SensorFault { .. } => 5,
        EventData::SensorRecovered { .. } => 6,
        EventData::SystemStarted { .. } => 7,
        EventData::AlertUpdated { .. } => 8,
        EventData::AlertEscalated { .. } => 9,
        EventData::AlertAcked { .. } => 10,
        EventData::Other { .. } => 11,
        EventData::ReservationCreated { .. } => 12,
        EventData::ReservationUpdated { .. } => 13,
        EventData::ReservationCancelled { .. } => 14,
        EventData::ReservationCheckedIn { .. } => 15,
        EventData::ReservationNoShow { .. } => 16,
        EventData::WaitlistAdded { .. }
        | EventData::WaitlistUpdated { .. }
        | EventData::WaitlistReady { .. }
        | EventData::WaitlistSeated { .. }
        | EventData::WaitlistLeft { .. } => 17,
        EventData::PairingCreated { .. }
        | EventData::PairingCompleted { .. }
        | EventData::PairingRevoked { .. } => 18,
        EventData::AnalyticsHourly { .. } => 19,
    }
}

/// The reservation events (issue 11), and a table with joins: pinned as
/// first sent.
const RESERVATION_WIRE: [&str; 6] = [
    r#"{"seq":30,"ts":"2026-12-24T18:58:00.000Z","type":"reservation.created","table":9,"actor":"staff:host","data":{"reservation":{"at":"2026-12-24T20:00:00+01:00","code":"K7WQ2M","created_at":"2026-12-01T22:06:24.091Z","duration":"120m","id":3,"name":"Ana","notes":null,"party_size":8,"phone":"+34 600 000 000","seated_at":null,"status":"booked","table":null,"tables":[9,10]}}}"#,
    r#"{"seq":31,"ts":"2026-12-24T18:58:00.000Z","type":"reservation.updated","table":9,"actor":"staff:host","data":{"reservation":{"at":"2026-12-24T20:00:00+01:00","code":"K7WQ2M","created_at":"2026-12-01T22:06:24.091Z","duration":"120m","id":3,"name":"Ana","notes":null,"party_size":8,"phone":"+34 600 000 000","seated_at":null,"status":"booked","table":null,"tables":[9,10]}}}"#,
    r#"{"seq":32,"ts":"2026-12-24T18:58:00.000Z","type":"reservation.cancelled","table":9,"actor":"staff:host","data":{"reservation":{"at":"2026-12-24T20:00:00+01:00","code":"K7WQ2M","created_at":"2026-12-01T22:06:24.091Z","duration":"120m","id":3,"name":"Ana","notes":null,"party_size":8,"phone":"+34 600 000 000","seated_at":null,"status":"cancelled","table":null,"tables":[9,10]}}}"#,
    r#"{"seq":33,"ts":"2026-12-24T18:58:00.000Z","type":"reservation.checked_in","table":9,"actor":"staff:host","data":{"reservation":{"at":"2026-12-24T20:00:00+01:00","code":"K7WQ2M","created_at":"2026-12-01T22:06:24.091Z","duration":"120m","id":3,"name":"Ana","notes":null,"party_size":8,"phone":"+34 600 000 000","seated_at":"2026-12-24T18:58:00.000Z","status":"seated","table":null,"tables":[9,10]}}}"#,
    r#"{"seq":34,"ts":"2026-12-24T18:58:00.000Z","type":"reservation.no_show","table":9,"actor":"system","data":{"reservation":{"at":"2026-12-24T20:00:00+01:00","code":"K7WQ2M","created_at":"2026-12-01T22:06:24.091Z","duration":"120m","id":3,"name":"Ana","notes":null,"party_size":8,"phone":"+34 600 000 000","seated_at":null,"status":"no_show","table":null,"tables":[9,10]}}}"#,
    r#"{"seq":35,"ts":"2026-12-24T18:58:00.000Z","type":"table.state","table":9,"actor":"system","data":{"from":"free","table":{"combined_seats":4,"h":0.75,"hold_until":null,"id":7,"joins":[10],"number":"7","people":null,"reservation":null,"seats":6,"shape":"round","since":"2026-12-24T18:45:00.000Z","state":"reserved","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"},"to":"reserved"}}"#,
];

fn reservation(status: ReservationStatus, seated_at: Option<&str>) -> Reservation {
    Reservation {
        id: 3,
        code: "K7WQ2M".into(),
        name: "Ana".into(),
        party_size: 8,
        table: None,
        tables: vec![9, 10],
        at: "2026-12-24T20:00:00+01:00".into(),
        duration: "120m".into(),
        status,
        phone: Some("+34 600 000 000".into()),
        notes: None,
        created_at: "2026-12-01T22:06:24.091Z".into(),
        seated_at: seated_at.map(str::to_string),
    }
}

#[test]
fn reservation_events_and_joined_tables_go_out_byte_for_byte() {
    let seated = Some("2026-12-24T18:58:00.000Z");
    let event = |seq: u64, actor: Actor, data: EventData| Event {
        seq,
        ts: "2026-12-24T18:58:00.000Z".into(),
        table: Some(9),
        actor,
        data,
    };
    let staff = || Actor::Staff("host".into());
    let joined = Table {
        joins: vec![10],
        combined_seats: Some(4),
        ..table(TableState::Reserved, 6, "2026-12-24T18:45:00.000Z")
    };
    let events = [
        event(
            30,
            staff(),
            EventData::ReservationCreated {
                reservation: reservation(ReservationStatus::Booked, None),
            },
        ),
        event(
            31,
            staff(),
            EventData::ReservationUpdated {
                reservation: reservation(ReservationStatus::Booked, None),
            },
        ),
        event(
            32,
            staff(),
            EventData::ReservationCancelled {
                reservation: reservation(ReservationStatus::Cancelled, None),
            },
        ),
        event(
            33,
            staff(),
            EventData::ReservationCheckedIn {
                reservation: reservation(ReservationStatus::Seated, seated),
            },
        ),
        event(
            34,
            Actor::System,
            EventData::ReservationNoShow {
                reservation: reservation(ReservationStatus::NoShow, None),
            },
        ),
        event(
            35,
            Actor::System,
            EventData::TableState {
                from: TableState::Free,
                to: TableState::Reserved,
                table: joined,
            },
        ),
    ];
    for (event, wire) in events.into_iter().zip(RESERVATION_WIRE) {
        let text = serde_json::to_string(&event).expect("serialise");
        assert_eq!(text, wire);
        assert_eq!(
            event.data.event_type().map(EventType::as_str),
            Some(event.kind())
        );
        let back: Event = serde_json::from_str(wire).expect("deserialise");
        assert_eq!(back, event, "{wire}");
    }
}

#[test]
fn every_event_type_goes_out_byte_for_byte_as_before() {
    let events = typed().into_iter().zip(WIRE);
    let alerts = alert_events().into_iter().zip(ALERT_WIRE);
    let mut seen = [false; 11];
    for (event, wire) in events.chain(alerts) {
        seen[variant(&event.data)] = true;
        assert_eq!(serde_json::to_string(&event).expect("serialise"), wire);
        let kind = event.kind().to_string();
        assert_eq!(
            event.data.event_type().map(EventType::as_str),
            Some(kind.as_str())
        );
        // Read back (a client, `mesero watch`): the same typed event.
        let back: Event = serde_json::from_str(wire).expect("deserialise");
        assert_eq!(back, event, "{wire}");
        let published = Published::new(event);
        assert_eq!(
            published.sse,
            format!("id: {}\nevent: {kind}\ndata: {wire}\n\n", back.seq).as_bytes()
        );
        assert_eq!(published.json, wire.as_bytes());
    }
    assert_eq!(seen, [true; 11], "a golden case for every variant");
}

#[test]
fn what_this_binary_cannot_type_passes_through_unchanged() {
    for wire in [
        // A type it does not know (a newer mesero wrote it).
        r#"{"seq":20,"ts":"T","type":"visit.closed","table":null,"actor":"staff:ana","data":{"name":"Ana","party_size":2}}"#,
        // A known type whose data is not what this binary writes.
        r#"{"seq":25,"ts":"T","type":"waitlist.added","table":null,"actor":"staff:ana","data":{"name":"Ana","party_size":2}}"#,
        // A known type with a field it does not know.
        r#"{"seq":21,"ts":"T","type":"sensor.recovered","table":null,"actor":"sensor:n","data":{"kind":"mqtt","sensor":"n","x":1}}"#,
        // A known type missing a field, or with a value it does not know.
        r#"{"seq":22,"ts":"T","type":"table.state","table":4,"actor":"staff:x","data":{"from":"free","to":"occupied"}}"#,
        r#"{"seq":23,"ts":"T","type":"alert.raised","table":null,"actor":"system","data":{"kind":"fire","message":"m","priority":"normal","sensor":"s","table":null}}"#,
        r#"{"seq":24,"ts":"T","type":"system.started","table":null,"actor":"system","data":null}"#,
    ] {
        let event: Event = serde_json::from_str(wire).expect("deserialise");
        assert!(
            matches!(event.data, EventData::Other { .. }),
            "{wire}: {event:?}"
        );
        assert_eq!(serde_json::to_string(&event).expect("serialise"), wire);
    }
}

fn open(dir: &std::path::Path) -> Store {
    let config = config(dir, &[]);
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(config.http.client_queue, Arc::clone(&metrics));
    Store::open(&config, hub, metrics).expect("open store")
}

fn raw_rows(
    dir: &std::path::Path,
    after: i64,
) -> Vec<(i64, String, String, Option<i64>, String, String)> {
    let conn = rusqlite::Connection::open(dir.join("mesero.db")).expect("open db");
    let mut stmt = conn
        .prepare(
            "SELECT seq, ts, type, table_id, actor, data FROM events WHERE seq > ?1 ORDER BY seq",
        )
        .expect("prepare");
    stmt.query_map([after], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_before_typed_events_are_read_and_sent_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The fixture's four tables are seeded as events 1 to 4.
    open(dir.path()).shutdown().await;
    {
        let conn = rusqlite::Connection::open(dir.path().join("mesero.db")).expect("open db");
        for (seq, ts, kind, table, actor, data) in ROWS {
            conn.execute(
                "INSERT INTO events (seq, ts, type, table_id, actor, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![seq, ts, kind, table, actor, data],
            )
            .expect("insert");
        }
        conn.execute(
            "INSERT INTO events (seq, ts, type, table_id, actor, data) VALUES (15, 'T', 'waitlist.added', NULL, 'staff:ana', '{\"b\":1,\"a\":2}')",
            [],
        )
        .expect("insert");
    }
    let store = open(dir.path());
    let page = store
        .events(EventQuery {
            after: 4,
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("events");
    let expected = typed();
    assert_eq!(page.events.len(), 11);
    for ((event, wire), typed) in page.events.iter().zip(WIRE).zip(&expected) {
        assert_eq!(event, typed, "read as the typed event");
        assert_eq!(serde_json::to_string(event).expect("serialise"), wire);
    }
    // A row this binary does not know goes out as it is stored (the
    // stored text's key order included: it is sorted on the way out, as
    // it always was).
    assert_eq!(
        serde_json::to_string(&page.events[10]).expect("serialise"),
        r#"{"seq":15,"ts":"T","type":"waitlist.added","table":null,"actor":"staff:ana","data":{"a":2,"b":1}}"#
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_in_the_same_rows_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let staff = Actor::Staff("ana".into());
    store
        .apply(
            Change::CreateTable(NewTable {
                id: Some(7),
                number: "7".into(),
                zone: "terrace".into(),
                seats: 4,
                layout: Layout {
                    x: 1.5,
                    y: 2.0,
                    w: 1.0,
                    h: 0.75,
                    shape: Shape::Round,
                },
                joins: Vec::new(),
                combined_seats: None,
            }),
            staff.clone(),
        )
        .await
        .expect("create");
    store
        .apply(
            Change::UpdateTable {
                id: 7,
                patch: TablePatch {
                    seats: Some(6),
                    ..Default::default()
                },
            },
            staff,
        )
        .await
        .expect("update");
    let until = std::time::UNIX_EPOCH + std::time::Duration::from_secs(4_000_000_000);
    store
        .apply(
            Change::SetState {
                id: 7,
                state: TableState::Occupied,
                hold: Hold::Until(until),
                people: Some(3),
                guard: Guard::Staff,
            },
            Actor::Mqtt("host-tablet".into()),
        )
        .await
        .expect("set");
    store
        .apply(
            Change::SetState {
                id: 7,
                state: TableState::Free,
                hold: Hold::Clear,
                people: None,
                guard: Guard::Staff,
            },
            Actor::Sensor("pir-7".into()),
        )
        .await
        .expect("set");
    for event in typed().into_iter().skip(4).take(5) {
        store
            .apply(
                Change::Record {
                    table: event.table,
                    data: event.data,
                },
                event.actor,
            )
            .await
            .expect("record");
    }
    store
        .apply(
            Change::DeleteTable { id: 7 },
            Actor::Staff("anonymous".into()),
        )
        .await
        .expect("delete");
    store.shutdown().await;
    let rows = raw_rows(dir.path(), 4);
    assert_eq!(rows.len(), ROWS.len());
    for (row, (seq, _, kind, table, actor, data)) in rows.iter().zip(ROWS) {
        assert_eq!(
            (row.0, row.2.as_str(), row.3, row.4.as_str()),
            (seq, kind, table, actor)
        );
        // The times are this run's: put them where the captured ones were
        // (through placeholders, so one replacement cannot hit another).
        let mut data = data.to_string();
        for (i, then) in ROWS.iter().map(|r| r.1).enumerate() {
            data = data.replace(then, &format!("<{i}>"));
        }
        for (i, now) in rows.iter().map(|r| r.1.as_str()).enumerate() {
            data = data.replace(&format!("<{i}>"), now);
        }
        assert_eq!(row.5, data, "seq {seq}");
    }
}

/// An alert of table 7 as the store writes it, at each step.
fn alert(priority: Priority, count: u32, escalations: u32, acked: bool) -> Alert {
    Alert {
        id: 3,
        table: Some(7),
        kind: AlertKind::Call,
        priority,
        target: Target::Floor,
        message: "call button pressed".into(),
        count,
        created_at: "2026-12-01T22:06:24.200Z".into(),
        last_at: if count > 1 {
            "2026-12-01T22:06:26.200Z".into()
        } else {
            "2026-12-01T22:06:24.200Z".into()
        },
        escalations,
        acked_by: acked.then(|| "staff:ana".into()),
        acked_at: acked.then(|| "2026-12-01T22:10:24.200Z".into()),
        source: "sensor:call-7".into(),
    }
}

/// The alert events since alerts are stored (schema version 3).
fn alert_events() -> Vec<Event> {
    let event = |seq: u64, ts: &str, table: Option<i64>, actor: Actor, data: EventData| Event {
        seq,
        ts: ts.into(),
        table,
        actor,
        data,
    };
    let sensor = Actor::Sensor("call-7".into());
    vec![
        event(
            20,
            "2026-12-01T22:06:24.200Z",
            Some(7),
            sensor.clone(),
            EventData::AlertRaised {
                table: Some(7),
                kind: AlertKind::Call,
                priority: Priority::Normal,
                message: "call button pressed".into(),
                sensor: Some("call-7".into()),
                alert: Some(alert(Priority::Normal, 1, 0, false)),
            },
        ),
        event(
            21,
            "2026-12-01T22:06:26.200Z",
            Some(7),
            sensor,
            EventData::AlertUpdated {
                alert: alert(Priority::Normal, 2, 0, false),
            },
        ),
        event(
            22,
            "2026-12-01T22:08:24.200Z",
            Some(7),
            Actor::System,
            EventData::AlertEscalated {
                from: Priority::Normal,
                to: Priority::High,
                alert: alert(Priority::High, 2, 1, false),
            },
        ),
        event(
            23,
            "2026-12-01T22:10:24.200Z",
            Some(7),
            Actor::Staff("ana".into()),
            EventData::AlertAcked {
                alert: alert(Priority::High, 2, 1, true),
            },
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_events_are_stored_and_read_back_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let button = Actor::Sensor("call-7".into());
    let raise = || {
        Change::RaiseAlert(NewAlert {
            table: Some(1),
            kind: AlertKind::Call,
            priority: Priority::Normal,
            target: Target::Floor,
            message: None,
        })
    };
    let first = store.apply(raise(), button.clone()).await.expect("raise");
    let id = first
        .event
        .as_ref()
        .and_then(|e| e.data.alert())
        .expect("an alert")
        .id;
    store.apply(raise(), button).await.expect("repeat");
    store
        .apply(Change::AckAlert { id }, Actor::Staff("ana".into()))
        .await
        .expect("ack");
    let page = store
        .events(EventQuery {
            after: 4,
            limit: 100,
            types: vec!["alert".into()],
            ..Default::default()
        })
        .await
        .expect("events");
    let kinds: Vec<&str> = page.events.iter().map(Event::kind).collect();
    assert_eq!(kinds, ["alert.raised", "alert.updated", "alert.acked"]);
    for event in &page.events {
        assert!(
            !matches!(event.data, EventData::Other { .. }),
            "read back typed: {event:?}"
        );
    }
    let acked = page.events[2].data.alert().expect("alert");
    assert_eq!(acked.count, 2);
    assert_eq!(acked.acked_by.as_deref(), Some("staff:ana"));
    store.shutdown().await;
}

/// The waitlist events (new in issue 11): a party of two seated at table
/// 3 after 25 minutes, as every client gets it.
const WAITLIST_WIRE: &str = r#"{"seq":30,"ts":"2026-12-04T20:25:00.000Z","type":"waitlist.seated","table":null,"actor":"staff:ana","data":{"party":{"added_at":"2026-12-04T20:00:00.000Z","baseline_minutes":30,"id":4,"left_at":null,"name":"Bea","notes":null,"notified_at":"2026-12-04T20:20:00.000Z","offered":[],"party_size":2,"phone":"+34 600","quote_p50_minutes":20,"quote_p80_minutes":30,"quote_predicted_from":41,"quote_source":"host","quoted_minutes":25,"seated_at":"2026-12-04T20:25:00.000Z","status":"seated","tables":[3],"waited_minutes":25}}}"#;

#[test]
fn waitlist_events_go_out_as_documented() {
    let party = Party {
        id: 4,
        name: "Bea".into(),
        party_size: 2,
        phone: Some("+34 600".into()),
        notes: None,
        added_at: "2026-12-04T20:00:00.000Z".into(),
        quote_p50_minutes: 20,
        quote_p80_minutes: 30,
        quoted_minutes: Some(25),
        status: PartyStatus::Seated,
        offered: Vec::new(),
        notified_at: Some("2026-12-04T20:20:00.000Z".into()),
        tables: vec![3],
        seated_at: Some("2026-12-04T20:25:00.000Z".into()),
        left_at: None,
        waited_minutes: Some(25),
        quote_source: Some(QuoteSource::Host),
        quote_predicted_from: Some(41),
        baseline_minutes: Some(30),
    };
    let event = Event {
        seq: 30,
        ts: "2026-12-04T20:25:00.000Z".into(),
        table: None,
        actor: Actor::Staff("ana".into()),
        data: EventData::WaitlistSeated {
            party: party.clone(),
        },
    };
    assert_eq!(variant(&event.data), 17);
    assert_eq!(
        serde_json::to_string(&event).expect("serialise"),
        WAITLIST_WIRE
    );
    let back: Event = serde_json::from_str(WAITLIST_WIRE).expect("deserialise");
    assert_eq!(back, event);
    // Every waitlist type carries the same party object, named by its type.
    for (kind, data) in [
        (
            "waitlist.added",
            EventData::WaitlistAdded {
                party: party.clone(),
            },
        ),
        (
            "waitlist.updated",
            EventData::WaitlistUpdated {
                party: party.clone(),
            },
        ),
        (
            "waitlist.ready",
            EventData::WaitlistReady {
                party: party.clone(),
            },
        ),
        (
            "waitlist.left",
            EventData::WaitlistLeft {
                party: party.clone(),
            },
        ),
    ] {
        let wire = WAITLIST_WIRE.replace("waitlist.seated", kind);
        let back: Event = serde_json::from_str(&wire).expect("deserialise");
        assert_eq!(back.data, data, "{kind}");
        assert_eq!(data.event_type().map(EventType::as_str), Some(kind));
        assert_eq!(data.party(), Some(&party));
    }
}

/// A table inside an event, as stream clients get it (issue 13): the
/// stored event plus the prediction fields, as of the event's `ts`;
/// without a fitted model they are null and 0. Other events go out as
/// stored.
const PREDICTED_WIRE: &str = r#"{"seq":5,"ts":"2026-12-01T22:06:24.129Z","type":"table.state","table":7,"actor":"staff:anonymous","data":{"from":"free","table":{"expected_free_at":null,"expected_free_p80":null,"h":0.75,"hold_until":null,"id":7,"number":"7","people":null,"predicted_from":0,"reservation":null,"seats":6,"shape":"round","since":"2026-12-01T22:06:24.129Z","state":"occupied","w":1.0,"x":1.5,"y":2.0,"zone":"terrace"},"to":"occupied"}}"#;

#[test]
fn tables_in_stream_events_carry_their_prediction_fields() {
    let event = Event {
        seq: 5,
        ts: "2026-12-01T22:06:24.129Z".into(),
        table: Some(7),
        actor: Actor::Staff("anonymous".into()),
        data: EventData::TableState {
            from: TableState::Free,
            to: TableState::Occupied,
            table: table(TableState::Occupied, 6, "2026-12-01T22:06:24.129Z"),
        },
    };
    let predictor = mesero::turns::Predictor::default();
    let published = Published::predicted(event.clone(), &predictor);
    assert_eq!(published.json, PREDICTED_WIRE.as_bytes());
    assert_eq!(
        published.sse,
        format!("id: 5\nevent: table.state\ndata: {PREDICTED_WIRE}\n\n").as_bytes()
    );
    // A client reading it back keeps it whole (the fields are not part of
    // the stored event, so it is not typed: `mesero watch` reads `from` and
    // `to` of such a `table.state` itself).
    let back: Event = serde_json::from_str(PREDICTED_WIRE).expect("deserialise");
    assert_eq!(back.kind(), "table.state");
    assert_eq!(
        serde_json::to_string(&back).expect("serialise"),
        PREDICTED_WIRE
    );
    let other = alert_events().remove(0);
    let plain = serde_json::to_string(&other).expect("serialise");
    assert_eq!(
        Published::predicted(other, &predictor).json,
        plain.as_bytes()
    );
}

#[test]
fn waitlist_parties_stored_before_quote_sources_still_read_back_typed() {
    let old = WAITLIST_WIRE
        .replace(r#""baseline_minutes":30,"#, "")
        .replace(r#""quote_predicted_from":41,"quote_source":"host","#, "");
    let back: Event = serde_json::from_str(&old).expect("deserialise");
    let party = back.data.party().expect("a party").clone();
    assert_eq!(party.quote_source, None);
    assert_eq!(
        (party.quote_predicted_from, party.baseline_minutes),
        (None, None)
    );
    assert!(matches!(back.data, EventData::WaitlistSeated { .. }));
    assert_eq!(serde_json::to_string(&back).expect("serialise"), old);
}

/// The pairing events (issue 14), as every client gets them: the tablet's
/// name and role, never its code or token.
const PAIRING_WIRE: [&str; 3] = [
    r#"{"seq":40,"ts":"2026-12-02T10:00:00.000Z","type":"pairing.created","table":null,"actor":"staff:admin","data":{"pairing":{"created_at":"2026-12-02T10:00:00.000Z","expires_at":"2026-12-02T10:15:00.000Z","id":2,"name":"bar tablet","paired_at":null,"revoked_at":null,"role":"staff","status":"pending"}}}"#,
    r#"{"seq":41,"ts":"2026-12-02T10:03:00.000Z","type":"pairing.completed","table":null,"actor":"staff:bar tablet","data":{"pairing":{"created_at":"2026-12-02T10:00:00.000Z","expires_at":"2026-12-02T10:15:00.000Z","id":2,"name":"bar tablet","paired_at":"2026-12-02T10:03:00.000Z","revoked_at":null,"role":"staff","status":"paired"}}}"#,
    r#"{"seq":42,"ts":"2026-12-09T09:00:00.000Z","type":"pairing.revoked","table":null,"actor":"staff:admin","data":{"pairing":{"created_at":"2026-12-02T10:00:00.000Z","expires_at":"2026-12-02T10:15:00.000Z","id":2,"name":"bar tablet","paired_at":"2026-12-02T10:03:00.000Z","revoked_at":"2026-12-09T09:00:00.000Z","role":"staff","status":"revoked"}}}"#,
];

#[test]
fn pairing_events_go_out_as_documented() {
    let pairing =
        |status: &str, paired_at: Option<&str>, revoked_at: Option<&str>| mesero::domain::Pairing {
            id: 2,
            name: "bar tablet".into(),
            role: "staff".into(),
            status: status.into(),
            created_at: "2026-12-02T10:00:00.000Z".into(),
            expires_at: "2026-12-02T10:15:00.000Z".into(),
            paired_at: paired_at.map(String::from),
            revoked_at: revoked_at.map(String::from),
        };
    let paired = Some("2026-12-02T10:03:00.000Z");
    let events = [
        (
            40,
            "2026-12-02T10:00:00.000Z",
            Actor::Staff("admin".into()),
            EventData::PairingCreated {
                pairing: pairing("pending", None, None),
            },
        ),
        (
            41,
            "2026-12-02T10:03:00.000Z",
            Actor::Staff("bar tablet".into()),
            EventData::PairingCompleted {
                pairing: pairing("paired", paired, None),
            },
        ),
        (
            42,
            "2026-12-09T09:00:00.000Z",
            Actor::Staff("admin".into()),
            EventData::PairingRevoked {
                pairing: pairing("revoked", paired, Some("2026-12-09T09:00:00.000Z")),
            },
        ),
    ];
    for ((seq, ts, actor, data), wire) in events.into_iter().zip(PAIRING_WIRE) {
        let event = Event {
            seq,
            ts: ts.into(),
            table: None,
            actor,
            data,
        };
        assert_eq!(variant(&event.data), 18);
        assert_eq!(serde_json::to_string(&event).expect("serialise"), wire);
        assert_eq!(
            event.data.event_type().map(EventType::as_str),
            Some(event.kind())
        );
        let back: Event = serde_json::from_str(wire).expect("deserialise");
        assert_eq!(back, event, "{wire}");
        let published = Published::new(event);
        assert_eq!(published.json, wire.as_bytes());
    }
}

/// The hourly rollup for HQ (issue 15, docs/MULTI-SITE.md).
const ROLLUP_WIRE: &str = r#"{"seq":77,"ts":"2026-12-02T20:00:00.004Z","type":"analytics.hourly","table":null,"actor":"system","data":{"rollup":{"alerts_acked":4,"alerts_raised":4,"covers":14,"ended":3,"hour":"2026-12-02T19:00:00.000Z","median_turn_minutes":52.5,"no_shows":0,"seated":5,"tables":12,"utilization":0.41,"waitlist_seated":2,"walk_aways":1}}}"#;

#[test]
fn the_hourly_rollup_goes_out_as_documented() {
    let event = Event {
        seq: 77,
        ts: "2026-12-02T20:00:00.004Z".into(),
        table: None,
        actor: Actor::System,
        data: EventData::AnalyticsHourly {
            rollup: mesero::domain::HourlyRollup {
                hour: "2026-12-02T19:00:00.000Z".into(),
                tables: 12,
                seated: 5,
                covers: 14,
                ended: 3,
                median_turn_minutes: Some(52.5),
                utilization: 0.41,
                no_shows: 0,
                waitlist_seated: 2,
                walk_aways: 1,
                alerts_raised: 4,
                alerts_acked: 4,
            },
        },
    };
    assert_eq!(variant(&event.data), 19);
    assert_eq!(
        serde_json::to_string(&event).expect("serialise"),
        ROLLUP_WIRE
    );
    assert_eq!(
        event.data.event_type().map(EventType::as_str),
        Some("analytics.hourly")
    );
    let back: Event = serde_json::from_str(ROLLUP_WIRE).expect("deserialise");
    assert_eq!(back, event);
}
