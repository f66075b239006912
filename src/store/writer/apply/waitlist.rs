//! What a waitlist change does to its row and the log: one `waitlist.*`
//! event each, checked against the committed tables and the party's row.
//! The rules for offers and quotes are in [`crate::waitlist`].

use super::{Committed, Effect, invalid, record_event};
use crate::clock;
use crate::domain::{
    Actor, EventData, Party, PartyId, PartyStatus, QuoteSource, TableId, TableState,
};
use crate::store::{Applied, StoreError, WaitlistChange};
use crate::waitlist::{self, MAX_WAITING};
use rusqlite::{Connection, OptionalExtension as _, params};
use std::time::SystemTime;

pub(super) fn apply(
    conn: &Connection,
    state: &Committed,
    stamp: SystemTime,
    change: WaitlistChange,
    actor: &Actor,
) -> Result<Effect, StoreError> {
    let now = clock::format(stamp);
    let (party, data) = match change {
        WaitlistChange::Add(new) => {
            waitlist::check_new(&new).map_err(|(f, m)| invalid(f, m))?;
            let in_line: i64 = conn.query_row(
                "SELECT COUNT(*) FROM waitlist WHERE status IN ('waiting', 'notified')",
                [],
                |r| r.get(0),
            )?;
            if usize::try_from(in_line).unwrap_or(usize::MAX) >= MAX_WAITING {
                return Err(StoreError::Conflict(format!(
                    "the waitlist is full ({MAX_WAITING} parties in line)"
                )));
            }
            conn.prepare_cached(
                "INSERT INTO waitlist (status, added_at, data) VALUES ('waiting', ?1, '{}')",
            )?
            .execute(params![now])?;
            let party = Party {
                id: conn.last_insert_rowid(),
                name: new.name,
                party_size: new.party_size,
                phone: new.phone,
                notes: new.notes,
                added_at: now.clone(),
                quote_p50_minutes: new.quote.quote.p50,
                quote_p80_minutes: new.quote.quote.p80,
                quoted_minutes: new.quoted_minutes,
                status: PartyStatus::Waiting,
                offered: Vec::new(),
                notified_at: None,
                tables: Vec::new(),
                seated_at: None,
                left_at: None,
                waited_minutes: None,
                quote_source: Some(if new.quoted_minutes.is_some() {
                    QuoteSource::Host
                } else {
                    new.quote.source
                }),
                quote_predicted_from: Some(new.quote.predicted_from),
                baseline_minutes: Some(new.quote.baseline),
            };
            (party.clone(), EventData::WaitlistAdded { party })
        }
        WaitlistChange::Edit { id, edit } => {
            waitlist::check_edit(&edit).map_err(|(f, m)| invalid(f, m))?;
            let mut party = in_line(conn, id)?;
            if let Some(name) = edit.name {
                party.name = name;
            }
            if let Some(size) = edit.party_size {
                party.party_size = size;
            }
            if let Some(phone) = edit.phone {
                party.phone = phone;
            }
            if let Some(notes) = edit.notes {
                party.notes = notes;
            }
            if let Some(q) = edit.quote {
                party.quote_p50_minutes = q.quote.p50;
                party.quote_p80_minutes = q.quote.p80;
                party.quote_predicted_from = Some(q.predicted_from);
                party.baseline_minutes = Some(q.baseline);
                if party.quoted_minutes.is_none() {
                    party.quote_source = Some(q.source);
                }
            }
            if let Some(quoted) = edit.quoted_minutes {
                party.quoted_minutes = quoted;
                party.quote_source = Some(match (quoted, party.quote_predicted_from) {
                    (Some(_), _) => QuoteSource::Host,
                    (None, Some(0) | None) => QuoteSource::Baseline,
                    (None, Some(_)) => QuoteSource::Model,
                });
            }
            (party.clone(), EventData::WaitlistUpdated { party })
        }
        WaitlistChange::Offer { id, tables } => {
            let mut party = in_line(conn, id)?;
            if party.status != PartyStatus::Waiting {
                return Err(StoreError::Refused(format!(
                    "party {id} is already notified"
                )));
            }
            check_tables(state, &tables, party.party_size, &[TableState::Free])?;
            let offered: i64 = conn.query_row(
                "SELECT COUNT(*) FROM waitlist, json_each(waitlist.data, '$.offered') AS t
                  WHERE status = 'notified' AND t.value IN (SELECT value FROM json_each(?1))",
                params![serde_json::json!(tables).to_string()],
                |r| r.get(0),
            )?;
            if offered > 0 {
                return Err(StoreError::Refused(format!(
                    "a table of {tables:?} is offered to another party"
                )));
            }
            party.status = PartyStatus::Notified;
            party.offered = tables;
            party.notified_at = Some(now.clone());
            (party.clone(), EventData::WaitlistReady { party })
        }
        WaitlistChange::Withdraw { id } => {
            let mut party = in_line(conn, id)?;
            if party.status != PartyStatus::Notified {
                return Err(StoreError::Refused(format!("party {id} has no offer")));
            }
            party.status = PartyStatus::Waiting;
            party.offered.clear();
            party.notified_at = None;
            (party.clone(), EventData::WaitlistUpdated { party })
        }
        WaitlistChange::Seat { id, tables } => {
            let mut party = in_line(conn, id)?;
            let allowed = [TableState::Free, TableState::Dirty, TableState::Unknown];
            check_tables(state, &tables, party.party_size, &allowed)?;
            party.status = PartyStatus::Seated;
            party.offered.clear();
            party.tables = tables;
            party.seated_at = Some(now.clone());
            party.waited_minutes = Some(minutes_since(&party.added_at, stamp));
            (party.clone(), EventData::WaitlistSeated { party })
        }
        WaitlistChange::Leave { id } => {
            let mut party = in_line(conn, id)?;
            party.status = PartyStatus::Left;
            party.offered.clear();
            party.left_at = Some(now.clone());
            party.waited_minutes = Some(minutes_since(&party.added_at, stamp));
            (party.clone(), EventData::WaitlistLeft { party })
        }
    };
    write_party(conn, &party)?;
    let event = record_event(conn, state.head + 1, &now, None, actor, data)?;
    Ok(Effect {
        applied: Applied {
            event: Some(event),
            ..Applied::default()
        },
        ..Effect::default()
    })
}

/// The party `id` while it is waiting or notified; `NotFound` if there is
/// no such party, a conflict once it is seated or gone.
fn in_line(conn: &Connection, id: PartyId) -> Result<Party, StoreError> {
    let data: Option<String> = conn
        .query_row(
            "SELECT data FROM waitlist WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    let data =
        data.ok_or_else(|| StoreError::NotFound(format!("waitlist party {id} not found")))?;
    let party: Party = serde_json::from_str(&data)
        .map_err(|e| StoreError::Invalid(format!("waitlist party {id}: {e}")))?;
    if !party.status.in_line() {
        return Err(StoreError::Conflict(format!(
            "party {id} is {} already",
            party.status.as_str()
        )));
    }
    Ok(party)
}

/// The tables exist, are one table or one combination of the floor plan,
/// each in one of `states`, and seat `size` between them.
fn check_tables(
    state: &Committed,
    ids: &[TableId],
    size: u32,
    states: &[TableState],
) -> Result<(), StoreError> {
    for id in ids {
        let table = state.tables.get(id).ok_or(StoreError::TableNotFound(*id))?;
        if !states.contains(&table.state) {
            return Err(StoreError::Conflict(format!(
                "tables: table {id} is {}",
                table.state
            )));
        }
    }
    let tables: Vec<_> = state.tables.values().cloned().collect();
    let seats = crate::tables::seats_of(&tables, ids).map_err(|m| invalid("tables", m))?;
    if seats < size {
        return Err(invalid(
            "tables",
            format!("{seats} seats for a party of {size}"),
        ));
    }
    Ok(())
}

fn minutes_since(from: &str, to: SystemTime) -> u32 {
    let waited = clock::parse(from)
        .and_then(|from| to.duration_since(from).ok())
        .unwrap_or_default();
    u32::try_from(waited.as_secs() / 60).unwrap_or(u32::MAX)
}

fn write_party(conn: &Connection, party: &Party) -> Result<(), StoreError> {
    let data = serde_json::to_string(party)
        .map_err(|e| StoreError::Invalid(format!("waitlist party: {e}")))?;
    conn.prepare_cached("UPDATE waitlist SET status = ?2, data = ?3 WHERE id = ?1")?
        .execute(params![party.id, party.status.as_str(), data])?;
    Ok(())
}
