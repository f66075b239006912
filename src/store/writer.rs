//! The writer actor: the only owner of the write connection.
//!
//! It runs on its own OS thread (SQLite calls block), takes every command
//! that is already queued (up to `batch_max`), applies each inside a
//! savepoint so one bad command does not sink the others, commits once,
//! and only then publishes the events and answers the callers.

use super::{Applied, Change, Command, Guard, Hold, Reply, StoreError, load_tables};
use crate::clock;
use crate::config::TableSeed;
use crate::domain::{Actor, Event, EventType, Seq, Table, TableId, TableState};
use crate::hub::Hub;
use crate::metrics::Metrics;
use rusqlite::{Connection, params};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub batch_max: usize,
}

pub(super) struct Writer {
    conn: Connection,
    config: WriterConfig,
    hub: Hub,
    metrics: Arc<Metrics>,
    /// The committed tables; the source of truth for validation.
    tables: BTreeMap<TableId, Table>,
    /// Highest committed seq.
    head: Seq,
}

/// The effect of one change, applied to memory only once the SQL ran.
#[derive(Default)]
struct Effect {
    upsert: Option<Table>,
    remove: Option<TableId>,
    applied: Applied,
}

struct Pending {
    change: Change,
    actor: Actor,
    reply: Option<Reply>,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        config: WriterConfig,
        hub: Hub,
        metrics: Arc<Metrics>,
    ) -> Result<Writer, StoreError> {
        let tables: BTreeMap<_, _> = load_tables(&conn)?.into_iter().map(|t| (t.id, t)).collect();
        let head: i64 = conn.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
            [],
            |r| r.get(0),
        )?;
        let head = Seq::try_from(head).unwrap_or_default();
        hub.reset(head, Arc::new(tables.values().cloned().collect()));
        metrics.set_head(head);
        Ok(Writer {
            conn,
            config,
            hub,
            metrics,
            tables,
            head,
        })
    }

    /// Creates the configured tables when the database has none.
    pub(super) fn seed(&mut self, seeds: &[TableSeed]) -> Result<usize, StoreError> {
        if !self.tables.is_empty() || seeds.is_empty() {
            return Ok(0);
        }
        let batch = seeds
            .iter()
            .map(|s| Pending {
                change: Change::CreateTable(super::NewTable {
                    id: Some(s.id),
                    number: s.number.clone(),
                    zone: s.zone.clone(),
                    seats: s.seats,
                    layout: s.layout,
                }),
                actor: Actor::System,
                reply: None,
            })
            .collect();
        self.commit_batch(batch)?;
        Ok(self.tables.len())
    }

    pub(super) fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(first) = commands.blocking_recv() {
            let mut batch = Vec::new();
            let mut pings = Vec::new();
            let mut stop = None;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Apply {
                        change,
                        actor,
                        reply,
                    } => batch.push(Pending {
                        change,
                        actor,
                        reply,
                    }),
                    Command::Ping(reply) => pings.push(reply),
                    Command::Shutdown(done) => {
                        stop = Some(done);
                        break;
                    }
                }
                if batch.len() < self.config.batch_max {
                    next = commands.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                if let Err(e) = self.commit_batch(batch) {
                    tracing::error!(error = %e, "commit failed; the batch was rolled back");
                }
            }
            for reply in pings {
                let _ = reply.send(());
            }
            if let Some(done) = stop {
                // Later commands are dropped unanswered: their callers get
                // `Closed` (503), never a false acknowledgement.
                commands.close();
                drop(self);
                let _ = done.send(());
                tracing::info!("writer stopped");
                return;
            }
        }
    }

    fn commit_batch(&mut self, batch: Vec<Pending>) -> Result<(), StoreError> {
        let started = Instant::now();
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            let message = e.to_string();
            for p in batch {
                answer(p.reply, Err(StoreError::Invalid(message.clone())));
            }
            return Err(e.into());
        }
        let mut work = self.tables.clone();
        let mut head = self.head;
        let mut events = Vec::new();
        let mut answers = Vec::with_capacity(batch.len());
        for p in batch {
            self.conn.execute_batch("SAVEPOINT change")?;
            match apply(&self.conn, &work, head, p.change, &p.actor) {
                Ok(effect) => {
                    self.conn.execute_batch("RELEASE change")?;
                    if let Some(t) = effect.upsert {
                        work.insert(t.id, t);
                    }
                    if let Some(id) = effect.remove {
                        work.remove(&id);
                    }
                    if let Some(ev) = &effect.applied.event {
                        head = ev.seq;
                        events.push(ev.clone());
                    }
                    answers.push((p.reply, Ok(effect.applied)));
                }
                Err(e) => {
                    self.conn
                        .execute_batch("ROLLBACK TO change; RELEASE change")?;
                    answer(p.reply, Err(e));
                }
            }
        }
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            let message = e.to_string();
            for (reply, _) in answers {
                answer(reply, Err(StoreError::Invalid(message.clone())));
            }
            return Err(e.into());
        }
        self.metrics.record_commit(events.len(), started.elapsed());
        self.tables = work;
        self.head = head;
        self.metrics.set_head(head);
        if !events.is_empty() {
            self.hub
                .publish(events, Arc::new(self.tables.values().cloned().collect()));
        }
        for (reply, result) in answers {
            answer(reply, result);
        }
        Ok(())
    }
}

fn answer(reply: Option<Reply>, result: Result<Applied, StoreError>) {
    if let Some(reply) = reply {
        // The caller may have gone (client disconnected); the change stands.
        let _ = reply.send(result);
    }
}

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::InvalidValue {
        field: field.into(),
        message: message.into(),
    }
}

fn apply(
    conn: &Connection,
    tables: &BTreeMap<TableId, Table>,
    head: Seq,
    change: Change,
    actor: &Actor,
) -> Result<Effect, StoreError> {
    let record = |kind: EventType, table: Option<TableId>, data: serde_json::Value| {
        record_event(conn, head + 1, kind, table, actor, data)
    };
    match change {
        Change::CreateTable(new) => {
            crate::tables::check_number(&new.number).map_err(|m| invalid("number", m))?;
            crate::tables::check_seats(new.seats).map_err(|m| invalid("seats", m))?;
            crate::tables::check_layout(&new.layout).map_err(|(f, m)| invalid(f, m))?;
            let id = match new.id {
                Some(id) if id <= 0 => return Err(invalid("id", "must be a positive integer")),
                Some(id) if tables.contains_key(&id) => {
                    return Err(StoreError::Conflict(format!("table {id} already exists")));
                }
                Some(id) => id,
                None => tables.keys().next_back().map_or(1, |last| last + 1),
            };
            ensure_number_free(tables, &new.number, None)?;
            let table = Table {
                id,
                number: new.number,
                zone: new.zone,
                seats: new.seats,
                layout: new.layout,
                state: TableState::Free,
                people: None,
                since: clock::now(),
                hold_until: None,
                reservation: None,
            };
            write_table(conn, &table)?;
            let event = record(EventType::TableCreated, Some(id), json!({ "table": table }))?;
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
            let event = record(EventType::TableUpdated, Some(id), json!({ "table": table }))?;
            Ok(written(table, event))
        }
        Change::DeleteTable { id } => {
            let table = tables
                .get(&id)
                .cloned()
                .ok_or(StoreError::TableNotFound(id))?;
            conn.execute("DELETE FROM tables WHERE id = ?1", params![id])?;
            let event = record(EventType::TableDeleted, Some(id), json!({ "table": table }))?;
            Ok(Effect {
                upsert: None,
                remove: Some(id),
                applied: Applied {
                    event: Some(event),
                    table: Some(table),
                },
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
                    if until > std::time::SystemTime::now() {
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
                table.since = clock::now();
            }
            if &table == current {
                return Ok(unchanged(table));
            }
            write_table(conn, &table)?;
            let event = record(
                EventType::TableState,
                Some(id),
                json!({ "from": current.state, "to": state, "table": table }),
            )?;
            Ok(written(table, event))
        }
        Change::Record { kind, table, data } => {
            let event = record(kind, table, data)?;
            Ok(Effect {
                applied: Applied {
                    event: Some(event),
                    table: None,
                },
                ..Effect::default()
            })
        }
        Change::Prune { before } => {
            let removed = conn.execute(
                "DELETE FROM events WHERE ts < ?1",
                params![clock::format(before)],
            )?;
            if removed > 0 {
                tracing::info!(removed, "old events deleted (retention)");
            }
            Ok(Effect::default())
        }
    }
}

/// A table row written, with the event that says so.
fn written(table: Table, event: Event) -> Effect {
    Effect {
        upsert: Some(table.clone()),
        remove: None,
        applied: Applied {
            event: Some(event),
            table: Some(table),
        },
    }
}

fn unchanged(table: Table) -> Effect {
    Effect {
        applied: Applied {
            event: None,
            table: Some(table),
        },
        ..Effect::default()
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
        "INSERT INTO tables (id, number, zone, seats, x, y, w, h, shape, state, people, since, hold_until, reservation)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT(id) DO UPDATE SET number = excluded.number, zone = excluded.zone,
           seats = excluded.seats, x = excluded.x, y = excluded.y, w = excluded.w, h = excluded.h,
           shape = excluded.shape, state = excluded.state, people = excluded.people,
           since = excluded.since, hold_until = excluded.hold_until, reservation = excluded.reservation",
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
    ])?;
    Ok(())
}

fn record_event(
    conn: &Connection,
    seq: Seq,
    kind: EventType,
    table: Option<TableId>,
    actor: &Actor,
    data: serde_json::Value,
) -> Result<Event, StoreError> {
    let event = Event {
        seq,
        ts: clock::now(),
        kind: kind.as_str().to_string(),
        table,
        actor: actor.to_string(),
        data,
    };
    let seq_sql = i64::try_from(seq).map_err(|_| StoreError::Invalid("seq overflow".into()))?;
    conn.prepare_cached(
        "INSERT INTO events (seq, ts, type, table_id, actor, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        seq_sql,
        event.ts,
        event.kind,
        event.table,
        event.actor,
        event.data.to_string(),
    ])?;
    Ok(event)
}
