//! What a [`ReservationChange`] does: the reservation rows and their
//! events, and the table parts (hold, seat, release) that go beside them
//! in one `Change::All`. The rules are those of [`crate::reservations`];
//! here they are checked against what is committed, inside the writer's
//! transaction, so two hosts booking the same table at once cannot both
//! win.

use super::{invalid, record_event, unchanged, write_table, written};
use crate::clock;
use crate::domain::{
    Actor, EventData, ReservationId, ReservationStatus, Table, TableId, TableState,
};
use crate::reservations::{self as rules, Booking};
use crate::store::reservations::{self as rows, NewReservation, ReservationPatch};
use crate::store::writer::{Committed, Effect};
use crate::store::{Applied, ReservationChange, StoreError};
use rusqlite::Connection;
use std::time::SystemTime;

/// Draws of a fresh code before giving up (each collides with odds below
/// 10^-5, see [`rules::CODE_LEN`]).
const CODE_DRAWS: u64 = 16;

pub(super) fn apply(
    conn: &Connection,
    state: &Committed,
    stamp: SystemTime,
    change: ReservationChange,
    actor: &Actor,
) -> Result<Effect, StoreError> {
    let now = clock::format(stamp);
    let event = |table: Option<TableId>, data: EventData| {
        record_event(conn, state.head + 1, &now, table, actor, data)
    };
    let recorded = |booking: &Booking, data: fn(crate::domain::Reservation) -> EventData| {
        rows::write(conn, booking)?;
        let event = event(
            booking.tables.first().copied(),
            data(booking.view(&state.zone)),
        )?;
        Ok(Effect {
            applied: Applied {
                event: Some(event),
                ..Applied::default()
            },
            ..Effect::default()
        })
    };
    match change {
        ReservationChange::Create(new) => {
            let booking = create(conn, state, stamp, new)?;
            recorded(&booking, |reservation| EventData::ReservationCreated {
                reservation,
            })
        }
        ReservationChange::Update { id, patch } => {
            let booking = update(conn, state, stamp, id, patch)?;
            recorded(&booking, |reservation| EventData::ReservationUpdated {
                reservation,
            })
        }
        ReservationChange::Cancel { id } => {
            let mut booking = booked(conn, id)?;
            booking.status = ReservationStatus::Cancelled;
            recorded(&booking, |reservation| EventData::ReservationCancelled {
                reservation,
            })
        }
        ReservationChange::CheckIn { id, opens } => {
            let mut booking = booked(conn, id)?;
            if stamp < opens {
                return Err(StoreError::Conflict(format!(
                    "code: too early; check-in for the reservation at {} opens at {}",
                    crate::localtime::format_local(booking.at, &state.zone),
                    crate::localtime::format_local(opens, &state.zone),
                )));
            }
            booking.status = ReservationStatus::Seated;
            booking.seated_at = Some(stamp);
            recorded(&booking, |reservation| EventData::ReservationCheckedIn {
                reservation,
            })
        }
        ReservationChange::NoShow { id } => {
            let mut booking = booked(conn, id)?;
            booking.status = ReservationStatus::NoShow;
            recorded(&booking, |reservation| EventData::ReservationNoShow {
                reservation,
            })
        }
        ReservationChange::HoldTable { table, reservation } => {
            let Some(current) = state.tables.get(&table) else {
                return Ok(Effect::default());
            };
            let mine = current.reservation.is_none_or(|r| r == reservation);
            if current.state != TableState::Free || !mine {
                return Ok(Effect::default());
            }
            table_to(
                conn,
                state,
                &now,
                actor,
                current,
                TableState::Reserved,
                Some(reservation),
            )
        }
        ReservationChange::SeatTable { table, reservation } => {
            let Some(current) = state.tables.get(&table) else {
                return Ok(Effect::default());
            };
            table_to(
                conn,
                state,
                &now,
                actor,
                current,
                TableState::Occupied,
                Some(reservation),
            )
        }
        ReservationChange::ReleaseTable { table, reservation } => {
            let Some(current) = state.tables.get(&table) else {
                return Ok(Effect::default());
            };
            if current.reservation != Some(reservation) {
                return Ok(Effect::default());
            }
            let to = match current.state {
                TableState::Reserved => TableState::Free,
                other => other,
            };
            table_to(conn, state, &now, actor, current, to, None)
        }
    }
}

/// The table in `to`, linked to `reservation`: a `table.state` event when
/// the state changes, `table.updated` when only the link does.
fn table_to(
    conn: &Connection,
    state: &Committed,
    now: &str,
    actor: &Actor,
    current: &Table,
    to: TableState,
    reservation: Option<ReservationId>,
) -> Result<Effect, StoreError> {
    let mut table = current.clone();
    table.state = to;
    table.reservation = reservation;
    if to != current.state {
        table.since = now.to_string();
        table.hold_until = None;
        if to != TableState::Occupied {
            table.people = None;
        }
    }
    if &table == current {
        return Ok(unchanged(table));
    }
    write_table(conn, &table)?;
    let data = if to == current.state {
        EventData::TableUpdated {
            table: table.clone(),
        }
    } else {
        EventData::TableState {
            from: current.state,
            to,
            table: table.clone(),
        }
    };
    let event = record_event(conn, state.head + 1, now, Some(table.id), actor, data)?;
    Ok(written(table, event))
}

/// The reservation, which must be booked (a seated, cancelled or no-show
/// one cannot be changed or checked in again: 409).
fn booked(conn: &Connection, id: ReservationId) -> Result<Booking, StoreError> {
    let booking = rows::by_id(conn, id)?
        .ok_or_else(|| StoreError::NotFound(format!("reservation {id} not found")))?;
    if booking.status != ReservationStatus::Booked {
        return Err(StoreError::Conflict(format!(
            "status: reservation {id} is {}, not booked",
            booking.status.as_str()
        )));
    }
    Ok(booking)
}

fn create(
    conn: &Connection,
    state: &Committed,
    stamp: SystemTime,
    new: NewReservation,
) -> Result<Booking, StoreError> {
    let live = rows::with_status(conn, &[ReservationStatus::Booked])?;
    if live.len() >= rules::MAX_LIVE_RESERVATIONS {
        return Err(StoreError::Conflict(format!(
            "reservations: {} are booked already, the most this daemon keeps",
            rules::MAX_LIVE_RESERVATIONS
        )));
    }
    let id: ReservationId = conn.query_row(
        "SELECT COALESCE(MAX(id), 0) + 1 FROM reservations",
        [],
        |r| r.get(0),
    )?;
    let mut code = None;
    for draw in 0..CODE_DRAWS {
        let candidate = rules::new_code(state.head.wrapping_add(draw));
        if !live.iter().any(|b| b.code == candidate) {
            code = Some(candidate);
            break;
        }
    }
    let code = code.ok_or_else(|| StoreError::Invalid("no free check-in code was drawn".into()))?;
    let booking = Booking {
        id,
        code,
        name: new.name,
        party_size: new.party_size,
        tables: new.tables,
        at: new.at,
        duration: new.duration,
        status: ReservationStatus::Booked,
        phone: new.phone,
        notes: new.notes,
        created_at: stamp,
        seated_at: None,
    };
    check(conn, state, stamp, &booking, true)?;
    Ok(booking)
}

fn update(
    conn: &Connection,
    state: &Committed,
    stamp: SystemTime,
    id: ReservationId,
    patch: ReservationPatch,
) -> Result<Booking, StoreError> {
    let mut b = booked(conn, id)?;
    let moved = patch.at.is_some_and(|at| at != b.at);
    b.name = patch.name.unwrap_or(b.name);
    b.party_size = patch.party_size.unwrap_or(b.party_size);
    b.tables = patch.tables.unwrap_or(b.tables);
    b.at = patch.at.unwrap_or(b.at);
    b.duration = patch.duration.unwrap_or(b.duration);
    b.phone = patch.phone.unwrap_or(b.phone);
    b.notes = patch.notes.unwrap_or(b.notes);
    check(conn, state, stamp, &b, moved)?;
    Ok(b)
}

/// The checks of a new or edited booking against what is committed; `at`
/// is checked against the clock only when it was given (an edit of the
/// notes of a reservation that has started is fine).
fn check(
    conn: &Connection,
    state: &Committed,
    stamp: SystemTime,
    b: &Booking,
    at_given: bool,
) -> Result<(), StoreError> {
    rules::check_text(&b.name, rules::MAX_NAME_LEN).map_err(|m| invalid("name", m))?;
    rules::check_party(b.party_size).map_err(|m| invalid("party_size", m))?;
    if let Some(phone) = &b.phone {
        rules::check_text(phone, rules::MAX_PHONE_LEN).map_err(|m| invalid("phone", m))?;
    }
    if let Some(notes) = &b.notes {
        rules::check_text(notes, rules::MAX_NOTES_LEN).map_err(|m| invalid("notes", m))?;
    }
    let (min, max) = (rules::MIN_BOOKING, rules::MAX_BOOKING);
    if b.duration < min || b.duration > max {
        return Err(invalid(
            "duration",
            format!(
                "{}m is out of range ({}m..={}m)",
                b.duration.as_secs() / 60,
                min.as_secs() / 60,
                max.as_secs() / 60
            ),
        ));
    }
    if at_given {
        if b.at < stamp {
            return Err(invalid(
                "at",
                format!(
                    "{} is in the past (it is {} now)",
                    crate::localtime::format_local(b.at, &state.zone),
                    crate::localtime::format_local(stamp, &state.zone)
                ),
            ));
        }
        if b.at > stamp + rules::MAX_AHEAD {
            return Err(invalid("at", "is more than a year ahead"));
        }
    }
    let tables: Vec<Table> = state.tables.values().cloned().collect();
    let seats = crate::tables::seats_of(&tables, &b.tables).map_err(|m| invalid("tables", m))?;
    if b.party_size > seats {
        return Err(invalid(
            "party_size",
            format!(
                "a party of {} does not fit: table(s) {} seat {seats}",
                b.party_size,
                list(&b.tables)
            ),
        ));
    }
    let live = rows::with_status(
        conn,
        &[ReservationStatus::Booked, ReservationStatus::Seated],
    )?;
    let clash = live.iter().find(|other| {
        other.id != b.id
            && other.tables.iter().any(|t| b.tables.contains(t))
            && rules::overlaps(b.at, b.duration, other.at, other.duration)
    });
    if let Some(other) = clash {
        return Err(StoreError::Conflict(format!(
            "tables: table(s) {} are booked from {} for {}m (reservation {})",
            list(&other.tables),
            crate::localtime::format_local(other.at, &state.zone),
            other.duration.as_secs() / 60,
            other.id
        )));
    }
    Ok(())
}

fn list(ids: &[TableId]) -> String {
    ids.iter()
        .map(TableId::to_string)
        .collect::<Vec<_>>()
        .join("+")
}
