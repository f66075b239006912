//! What the alert changes do (SPEC §1 Alert): raise (or merge a repeat),
//! ack, escalate. The rules are [`crate::alerts`]'; this applies them to
//! the committed open alerts and the `alerts` table, and records the
//! event with the alert as it is after the change.

use super::super::{Committed, Effect};
use super::{invalid, record_event};
use crate::alerts::{self, AlertRules, MAX_OPEN, MAX_OPEN_PER_SOURCE};
use crate::clock;
use crate::domain::{Actor, Alert, AlertId, EventData};
use crate::store::alerts as rows;
use crate::store::{Applied, NewAlert, StoreError};
use rusqlite::Connection;
use std::time::SystemTime;

/// The effect of a written alert and its event.
fn written(alert: Alert, event: crate::domain::Event) -> Effect {
    Effect {
        alert: Some(alert),
        applied: Applied {
            event: Some(event),
            table: None,
            ..Applied::default()
        },
        ..Effect::default()
    }
}

pub(super) fn raise(
    conn: &Connection,
    state: &Committed,
    stamp: SystemTime,
    new: NewAlert,
    actor: &Actor,
    rules: &AlertRules,
) -> Result<Effect, StoreError> {
    if let Some(table) = new.table {
        if !state.tables.contains_key(&table) {
            return Err(invalid("table", format!("no table {table}")));
        }
    }
    let message =
        alerts::message(new.kind, new.message.as_deref()).map_err(|m| invalid("message", m))?;
    let now = clock::format(stamp);
    let source = actor.to_string();
    let fresh = Alert {
        id: 0,
        table: new.table,
        kind: new.kind,
        priority: new.priority,
        target: new.target,
        message,
        count: 1,
        created_at: now.clone(),
        last_at: now.clone(),
        escalations: 0,
        acked_by: None,
        acked_at: None,
        source: source.clone(),
    };
    let record = |data| record_event(conn, state.head + 1, &now, new.table, actor, data);
    if let Some(latest) = rows::latest_like(conn, &fresh)? {
        if alerts::merges(&latest, stamp, rules) {
            let merged = Alert {
                count: latest.count.saturating_add(1),
                last_at: now.clone(),
                priority: latest.priority.max(new.priority),
                ..latest
            };
            rows::update(conn, &merged)?;
            let event = record(EventData::AlertUpdated {
                alert: merged.clone(),
            })?;
            return Ok(written(merged, event));
        }
    }
    let open_here = state.alerts.values().filter(|a| a.source == source).count();
    if open_here >= MAX_OPEN_PER_SOURCE {
        return Err(StoreError::Limit(format!(
            "{source} has {open_here} open alerts (at most {MAX_OPEN_PER_SOURCE}); ack some first"
        )));
    }
    if state.alerts.len() >= MAX_OPEN {
        return Err(StoreError::Limit(format!(
            "{} alerts are open (at most {MAX_OPEN}); ack some first",
            state.alerts.len()
        )));
    }
    let id = rows::insert(conn, &fresh)?;
    let alert = Alert { id, ..fresh };
    let sensor = match actor {
        Actor::Sensor(id) => Some(id.clone()),
        _ => None,
    };
    let event = record(EventData::AlertRaised {
        table: alert.table,
        kind: alert.kind,
        priority: alert.priority,
        message: alert.message.clone(),
        sensor,
        alert: Some(alert.clone()),
    })?;
    Ok(written(alert, event))
}

pub(super) fn ack(
    conn: &Connection,
    state: &Committed,
    stamp: SystemTime,
    id: AlertId,
    actor: &Actor,
) -> Result<Effect, StoreError> {
    let Some(open) = state.alerts.get(&id) else {
        return Err(match rows::load(conn, id)? {
            Some(done) => StoreError::Conflict(format!(
                "alert {id} was already acked by {} at {}",
                done.acked_by.as_deref().unwrap_or("?"),
                done.acked_at.as_deref().unwrap_or("?"),
            )),
            None => StoreError::NotFound(format!("alert {id} not found")),
        });
    };
    let now = clock::format(stamp);
    let acked = Alert {
        acked_by: Some(actor.to_string()),
        acked_at: Some(now.clone()),
        ..open.clone()
    };
    rows::update(conn, &acked)?;
    let event = record_event(
        conn,
        state.head + 1,
        &now,
        acked.table,
        actor,
        EventData::AlertAcked {
            alert: acked.clone(),
        },
    )?;
    Ok(written(acked, event))
}

/// Nothing happens (no event) unless the alert is open and its next step
/// is due by `stamp`: the escalation task may ask early or twice.
pub(super) fn escalate(
    conn: &Connection,
    state: &Committed,
    stamp: SystemTime,
    id: AlertId,
    actor: &Actor,
    rules: &AlertRules,
) -> Result<Effect, StoreError> {
    let Some(open) = state.alerts.get(&id) else {
        return Ok(Effect::default());
    };
    if alerts::next_escalation(open, rules).is_none_or(|due| due > stamp) {
        return Ok(Effect::default());
    }
    let up = alerts::escalated(open);
    rows::update(conn, &up)?;
    let event = record_event(
        conn,
        state.head + 1,
        &clock::format(stamp),
        up.table,
        actor,
        EventData::AlertEscalated {
            from: open.priority,
            to: up.priority,
            alert: up.clone(),
        },
    )?;
    Ok(written(up, event))
}
