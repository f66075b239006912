//! What one change does: checks it against the committed state, writes
//! its table row and its event inside the savepoint the writer opened
//! for it, and returns the [`Effect`] the writer applies to its memory
//! once the SQL ran. Retention ([`Change::Prune`]) deletes a prefix of seqs.
//! What alert changes do is in [`alerts`](mod@alerts).

mod alerts;
mod pairing;
mod reservations;
mod waitlist;

use super::{Committed, Effect, WriterConfig};
use crate::clock;
use crate::domain::{Actor, Event, EventData, Seq, Table, TableId, TableState};
use crate::store::{Applied, Change, Guard, Hold, StoreError};
use rusqlite::{Connection, OptionalExtension as _, params};
use std::collections::BTreeMap;
use std::time::SystemTime;

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::InvalidValue {
        field: field.into(),
        message: message.into(),
    }
}

/// Applies one change as of `stamp` (the event time, see the
/// [writer's module doc](super)).
pub(super) fn apply(
    conn: &Connection,
    state: &Committed,
    stamp: SystemTime,
    change: Change,
    actor: &Actor,
    config: &WriterConfig,
) -> Result<Effect, StoreError> {
    let tables = &state.tables;
    let now = clock::format(stamp);
    let record = |table: Option<TableId>, data: EventData| {
        record_event(conn, state.head + 1, &now, table, actor, data)
    };
    match change {
        Change::CreateTable(new) => {
            crate::tables::check_number(&new.number).map_err(|m| invalid("number", m))?;
            crate::tables::check_seats(new.seats).map_err(|m| invalid("seats", m))?;
            crate::tables::check_layout(&new.layout).map_err(|(f, m)| invalid(f, m))?;
            let id = match new.id {
                Some(id) => {
                    crate::tables::check_id(id).map_err(|m| invalid("id", m))?;
                    if tables.contains_key(&id) {
                        return Err(StoreError::Conflict(format!("table {id} already exists")));
                    }
                    id
                }
                None => next_id(tables)?,
            };
            ensure_number_free(tables, &new.number, None)?;
            let joins = check_joins(tables, id, &new.joins)?;
            if let Some(seats) = new.combined_seats {
                crate::tables::check_combined_seats(seats)
                    .map_err(|m| invalid("combined_seats", m))?;
            }
            let table = Table {
                id,
                number: new.number,
                zone: new.zone,
                seats: new.seats,
                layout: new.layout,
                state: TableState::Free,
                people: None,
                since: now.clone(),
                hold_until: None,
                reservation: None,
                joins,
                combined_seats: new.combined_seats,
            };
            write_table(conn, &table)?;
            let event = record(
                Some(id),
                EventData::TableCreated {
                    table: table.clone(),
                },
            )?;
            Ok(written(table, event))
        }
        Change::UpdateTable { id, patch } => {
            let mut table = tables
                .get(&id)
                .cloned()
                .ok_or(StoreError::TableNotFound(id))?;
            if let Some(number) = patch.number {
                crate::tables::check_number(&number).map_err(|m| invalid("number", m))?;
                ensure_number_free(tables, &number, Some(id))?;
                table.number = number;
            }
            if let Some(zone) = patch.zone {
                table.zone = zone;
            }
            if let Some(seats) = patch.seats {
                crate::tables::check_seats(seats).map_err(|m| invalid("seats", m))?;
                table.seats = seats;
            }
            if let Some(joins) = patch.joins {
                table.joins = check_joins(tables, id, &joins)?;
            }
            if let Some(seats) = patch.combined_seats {
                if let Some(seats) = seats {
                    crate::tables::check_combined_seats(seats)
                        .map_err(|m| invalid("combined_seats", m))?;
                }
                table.combined_seats = seats;
            }
            let l = &mut table.layout;
            l.x = patch.x.unwrap_or(l.x);
            l.y = patch.y.unwrap_or(l.y);
            l.w = patch.w.unwrap_or(l.w);
            l.h = patch.h.unwrap_or(l.h);
            l.shape = patch.shape.unwrap_or(l.shape);
            crate::tables::check_layout(&table.layout).map_err(|(f, m)| invalid(f, m))?;
            if tables.get(&id) == Some(&table) {
                return Ok(unchanged(table));
            }
            write_table(conn, &table)?;
            let event = record(
                Some(id),
                EventData::TableUpdated {
                    table: table.clone(),
                },
            )?;
            Ok(written(table, event))
        }
        Change::DeleteTable { id } => {
            let table = tables
                .get(&id)
                .cloned()
                .ok_or(StoreError::TableNotFound(id))?;
            conn.execute("DELETE FROM tables WHERE id = ?1", params![id])?;
            let event = record(
                Some(id),
                EventData::TableDeleted {
                    table: table.clone(),
                },
            )?;
            Ok(Effect {
                remove: Some(id),
                applied: Applied {
                    event: Some(event),
                    table: Some(table),
                    ..Applied::default()
                },
                ..Effect::default()
            })
        }
        Change::SetState {
            id,
            state,
            hold,
            people,
            guard,
        } => {
            let current = tables.get(&id).ok_or(StoreError::TableNotFound(id))?;
            if let Guard::Sensor { expected } = guard {
                if current.state != expected {
                    return Err(StoreError::Refused(format!(
                        "table {id} is {} now, not {expected}",
                        current.state
                    )));
                }
                if let Some(until) = current.hold_until.as_deref().and_then(clock::parse) {
                    if until > stamp {
                        return Err(StoreError::Refused(format!(
                            "table {id} is held until {}",
                            clock::format(until)
                        )));
                    }
                }
            }
            let mut table = current.clone();
            table.state = state;
            // Only an occupied table has a people estimate.
            table.people = if state == TableState::Occupied {
                people.or(current.people)
            } else {
                None
            };
            table.hold_until = match (guard, hold) {
                (Guard::Staff, Hold::Clear) => None,
                (_, Hold::Until(t)) => Some(clock::format(t)),
                (Guard::Sensor { .. }, Hold::Clear) => None,
            };
            if table.state != current.state {
                table.since = now.clone();
            }
            // A table freed or bussed is no longer held for, or seated
            // by, a reservation (the scheduler holds it again if its
            // reservation is still due).
            if matches!(state, TableState::Free | TableState::Dirty) {
                table.reservation = None;
            }
            if &table == current {
                return Ok(unchanged(table));
            }
            write_table(conn, &table)?;
            let event = record(
                Some(id),
                EventData::TableState {
                    from: current.state,
                    to: state,
                    table: table.clone(),
                },
            )?;
            Ok(written(table, event))
        }
        Change::Record { table, data } => {
            let event = record(table, data)?;
            Ok(Effect {
                applied: Applied {
                    event: Some(event),
                    table: None,
                    ..Applied::default()
                },
                ..Effect::default()
            })
        }
        Change::Reservation(change) => reservations::apply(conn, state, stamp, change, actor),
        // The writer splits a combined change into its parts
        // (`writer::apply_to`), so none reaches here.
        Change::All(_) => Err(StoreError::Invalid(
            "a combined change is applied part by part".into(),
        )),
        Change::RaiseAlert(new) => alerts::raise(conn, state, stamp, new, actor, &config.alerts),
        Change::AckAlert { id } => alerts::ack(conn, state, stamp, id, actor),
        Change::EscalateAlert { id } => {
            alerts::escalate(conn, state, stamp, id, actor, &config.alerts)
        }
        Change::Waitlist(change) => waitlist::apply(conn, state, stamp, change, actor),
        Change::Pairing(change) => pairing::apply(conn, state, stamp, change, actor),
        Change::Forwarded { through } => {
            crate::store::bridged::advance(conn, through)?;
            Ok(Effect::default())
        }
        Change::ImportVisits(visits) => {
            for visit in &visits {
                crate::store::visits::insert(conn, visit)?;
            }
            Ok(rows(visits.len()))
        }
        Change::RebuildVisits => {
            let (deriver, written) = crate::store::visits::rebuild(conn)?;
            tracing::info!(visits = written, "visits derived again from the event log");
            Ok(Effect {
                visits: Some(deriver),
                ..rows(written)
            })
        }
        Change::PruneVisits { before } => {
            let pruned = crate::store::visits::prune(conn, &clock::format(before))?;
            if pruned > 0 {
                tracing::info!(pruned, "old visits deleted (analytics.keep_days)");
            }
            Ok(rows(pruned))
        }
        Change::PurgeGuests { before } => {
            let purged = crate::store::guests::purge(conn, &clock::format(before))?;
            tracing::info!(purged, "guest details purged");
            Ok(rows(purged))
        }
        Change::Prune {
            before,
            unforwarded_before,
        } => {
            // Acked alerts go with the events of their time; open ones
            // stay, however old.
            let pruned = crate::store::alerts::prune(conn, &clock::format(before))?;
            if pruned > 0 {
                tracing::info!(pruned, "old acked alerts deleted (retention)");
            }
            // Only a prefix of seqs goes: up to (not including) the first
            // event still inside the window, even if older-stamped events
            // follow it (written while the clock was wrong). The `+` keeps
            // SQLite on the seq order, so this reads only the prefix.
            let first_kept: Option<i64> = conn
                .query_row(
                    "SELECT seq FROM events WHERE +ts >= ?1 ORDER BY seq LIMIT 1",
                    params![clock::format(before)],
                    |r| r.get(0),
                )
                .optional()?;
            let through = match first_kept {
                Some(seq) => Seq::try_from(seq.saturating_sub(1)).unwrap_or_default(),
                None => state.head,
            };
            let through = match unforwarded_before {
                Some(cutoff) => crate::store::bridged::hold(conn, through, cutoff)?,
                None => through,
            };
            if through <= state.pruned_through {
                return Ok(Effect::default());
            }
            let through_sql = seq_sql(through)?;
            let removed =
                conn.execute("DELETE FROM events WHERE seq <= ?1", params![through_sql])?;
            conn.execute(
                "UPDATE retention SET pruned_through = ?1",
                params![through_sql],
            )?;
            tracing::info!(
                removed,
                pruned_through = through,
                "old events deleted (retention)"
            );
            Ok(Effect {
                pruned_through: Some(through),
                ..Effect::default()
            })
        }
    }
}

/// A bulk change that wrote `n` rows and no event.
fn rows(n: usize) -> Effect {
    Effect {
        applied: Applied {
            rows: n,
            ..Applied::default()
        },
        ..Effect::default()
    }
}

/// A table row written, with the event that says so.
fn written(table: Table, event: Event) -> Effect {
    Effect {
        upsert: Some(table.clone()),
        applied: Applied {
            event: Some(event),
            table: Some(table),
            ..Applied::default()
        },
        ..Effect::default()
    }
}

fn unchanged(table: Table) -> Effect {
    Effect {
        applied: Applied {
            event: None,
            table: Some(table),
            ..Applied::default()
        },
        ..Effect::default()
    }
}

fn seq_sql(seq: Seq) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Invalid("seq overflow".into()))
}

/// The id after the highest one; refused (naming `id`) once the highest
/// is [`crate::tables::MAX_TABLE_ID`], instead of wrapping to a negative.
fn next_id(tables: &BTreeMap<TableId, Table>) -> Result<TableId, StoreError> {
    let Some(&last) = tables.keys().next_back() else {
        return Ok(1);
    };
    last.checked_add(1)
        .filter(|id| crate::tables::check_id(*id).is_ok())
        .ok_or_else(|| {
            StoreError::Conflict(format!(
                "id: no id left after table {last} (ids go up to {}); give an unused id explicitly",
                crate::tables::MAX_TABLE_ID
            ))
        })
}

/// A table's joins, checked: [`crate::tables::check_joins`] and every id
/// an existing table.
fn check_joins(
    tables: &BTreeMap<TableId, Table>,
    id: TableId,
    joins: &[TableId],
) -> Result<Vec<TableId>, StoreError> {
    let joins = crate::tables::check_joins(id, joins).map_err(|m| invalid("joins", m))?;
    match joins.iter().find(|other| !tables.contains_key(other)) {
        Some(missing) => Err(invalid("joins", format!("table {missing} not found"))),
        None => Ok(joins),
    }
}

fn ensure_number_free(
    tables: &BTreeMap<TableId, Table>,
    number: &str,
    except: Option<TableId>,
) -> Result<(), StoreError> {
    match tables
        .values()
        .find(|t| t.number == number && Some(t.id) != except)
    {
        Some(other) => Err(StoreError::Conflict(format!(
            "number {number:?} is already used by table {}",
            other.id
        ))),
        None => Ok(()),
    }
}

fn write_table(conn: &Connection, t: &Table) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO tables (id, number, zone, seats, x, y, w, h, shape, state, people, since, hold_until, reservation,
           joins, combined_seats)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT(id) DO UPDATE SET number = excluded.number, zone = excluded.zone,
           seats = excluded.seats, x = excluded.x, y = excluded.y, w = excluded.w, h = excluded.h,
           shape = excluded.shape, state = excluded.state, people = excluded.people,
           since = excluded.since, hold_until = excluded.hold_until, reservation = excluded.reservation,
           joins = excluded.joins, combined_seats = excluded.combined_seats",
    )?
    .execute(params![
        t.id,
        t.number,
        t.zone,
        t.seats,
        t.layout.x,
        t.layout.y,
        t.layout.w,
        t.layout.h,
        t.layout.shape.as_str(),
        t.state.as_str(),
        t.people,
        t.since,
        t.hold_until,
        t.reservation,
        serde_json::to_string(&t.joins).map_err(|e| StoreError::Invalid(format!("joins: {e}")))?,
        t.combined_seats,
    ])?;
    Ok(())
}

fn record_event(
    conn: &Connection,
    seq: Seq,
    ts: &str,
    table: Option<TableId>,
    actor: &Actor,
    data: EventData,
) -> Result<Event, StoreError> {
    let event = Event {
        seq,
        ts: ts.to_string(),
        table,
        actor: actor.clone(),
        data,
    };
    let json = event
        .data
        .to_json()
        .map_err(|e| StoreError::Invalid(format!("event data: {e}")))?;
    let seq_sql = seq_sql(seq)?;
    conn.prepare_cached(
        "INSERT INTO events (seq, ts, type, table_id, actor, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        seq_sql,
        event.ts,
        event.kind(),
        event.table,
        event.actor.to_string(),
        json.to_string(),
    ])?;
    Ok(event)
}
