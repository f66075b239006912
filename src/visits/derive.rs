//! Visits from the event log: one pure state machine, [`Deriver`], fed
//! each committed event in seq order. The writer feeds it inside the
//! transaction that records the events (so a visit is committed with the
//! event that opens or closes it) and `mesero db rebuild-visits` feeds it
//! the whole log; both get the same rows because the rules below read only
//! the events.
//!
//! Rules (SPEC §1 Visit):
//! - A visit opens when a table goes `occupied` from `free`, `dirty`,
//!   `reserved` or `unknown` and has no open visit. A `table.state` from
//!   `occupied` to `occupied` (the people estimate or the reservation
//!   changed) or to `unknown` continues it: `unknown` ends no visit.
//! - It ends when its last table goes `free`, `dirty` or `reserved`, or is
//!   deleted; `left_at` is that event's time.
//! - Origin: a `reservation.checked_in` or `waitlist.seated` event declares
//!   a seating of its tables; the `table.state` events that follow it in
//!   the same batch (consecutive seqs, same time and actor) open one visit
//!   with all of those tables (`reservation` / `waitlist`). A seating
//!   declared on a table the sensors had already seen occupied takes over
//!   that visit (the host seated the party the sensors saw sit down).
//!   Otherwise a sensor actor opens a `sensor` visit, any other a `staff`
//!   one; two joinable tables seated by the same staff actor in
//!   consecutive events at the same instant are one combination visit.
//! - Party size, most trusted first: the reservation's or waitlist
//!   entry's `party_size`, a staff seating's people count (`PUT
//!   /tables/{id}/state` with `party_size`), else the largest people
//!   estimate the sensors gave during the visit.
//! - Each open visit is keyed by the seq of the event that opened it; that
//!   key is stored with the row, so the writer updates the same row and a
//!   rebuild reproduces it.

use crate::domain::{
    Actor, Event, EventData, PartySizeSource, TableId, TableState, Visit, VisitOrigin,
};
use std::collections::{BTreeMap, BTreeSet};

/// The seq of the event that opened a derived visit (its stored key).
pub type VisitKey = u64;

/// A visit as derived, with its key; `visit.id` is 0 (the row id is the
/// store's).
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub key: VisitKey,
    pub visit: Visit,
}

/// A seating declared by a reservation check-in or a waitlist seat,
/// waiting for the `table.state` events of its batch.
#[derive(Debug, Clone)]
struct Seating {
    tables: BTreeSet<TableId>,
    origin: VisitOrigin,
    party: (u32, PartySizeSource),
    /// The visit it opened or took over, once one of its tables did.
    key: Option<VisitKey>,
}

#[derive(Debug, Clone)]
struct Open {
    visit: Visit,
    /// The tables still occupied (or unknown); the visit ends when none is.
    live: BTreeSet<TableId>,
}

/// Where the previous event left off, for grouping a batch's events.
#[derive(Debug, Clone)]
struct Last {
    seq: u64,
    ts: String,
    actor: Actor,
    /// The visit this event opened, if it opened one.
    opened: Option<VisitKey>,
}

/// The state machine (see the module doc). Cheap to clone: it holds the
/// open visits only, at most one per table.
#[derive(Debug, Clone, Default)]
pub struct Deriver {
    open: BTreeMap<VisitKey, Open>,
    seating: Option<Seating>,
    last: Option<Last>,
}

fn rank(source: PartySizeSource) -> u8 {
    match source {
        PartySizeSource::Reservation | PartySizeSource::Waitlist | PartySizeSource::Import => 3,
        PartySizeSource::Staff => 2,
        PartySizeSource::Sensor => 1,
    }
}

/// Takes `size` from `source` if it is at least as trusted as what the
/// visit has (a sensor estimate only ever grows: the largest count seen).
fn offer_party(visit: &mut Visit, size: u32, source: PartySizeSource) {
    let better = match (visit.party_size, visit.party_size_source) {
        (Some(old), Some(PartySizeSource::Sensor)) if source == PartySizeSource::Sensor => {
            size > old
        }
        (Some(_), Some(old)) => rank(source) >= rank(old),
        _ => true,
    };
    if better {
        visit.party_size = Some(size);
        visit.party_size_source = Some(source);
    }
}

impl Deriver {
    /// A deriver that goes on from visits still open in the store (the
    /// writer, on open). `occupied` says which tables are occupied or
    /// unknown now: a combination's table freed before the restart is no
    /// longer part of the live set.
    pub fn resume(open: Vec<Derived>, occupied: impl Fn(TableId) -> bool) -> Deriver {
        let open = open
            .into_iter()
            .map(|d| {
                let live = d
                    .visit
                    .tables
                    .iter()
                    .copied()
                    .filter(|&t| occupied(t))
                    .collect();
                (
                    d.key,
                    Open {
                        visit: d.visit,
                        live,
                    },
                )
            })
            .collect();
        Deriver {
            open,
            ..Deriver::default()
        }
    }

    /// The visits still open.
    pub fn open(&self) -> impl Iterator<Item = Derived> + '_ {
        self.open.iter().map(|(&key, o)| Derived {
            key,
            visit: o.visit.clone(),
        })
    }

    /// Feeds one event; returns the visits it opened, changed or closed
    /// (each as it now is), at most a few.
    pub fn on_event(&mut self, event: &Event) -> Vec<Derived> {
        let same_batch = self.last.as_ref().is_some_and(|l| {
            l.seq.checked_add(1) == Some(event.seq) && l.ts == event.ts && l.actor == event.actor
        });
        if !same_batch {
            self.seating = None;
        }
        let previous = self.last.take().filter(|_| same_batch);
        let mut opened = None;
        let mut changed = Vec::new();
        match &event.data {
            EventData::ReservationCheckedIn { reservation } => {
                self.seating = Some(Seating {
                    tables: reservation.tables.iter().copied().collect(),
                    origin: VisitOrigin::Reservation,
                    party: (reservation.party_size, PartySizeSource::Reservation),
                    key: None,
                });
            }
            EventData::WaitlistSeated { party } => {
                self.seating = Some(Seating {
                    tables: party.tables.iter().copied().collect(),
                    origin: VisitOrigin::Waitlist,
                    party: (party.party_size, PartySizeSource::Waitlist),
                    key: None,
                });
            }
            EventData::TableState { from, to, table } => match to {
                TableState::Occupied => {
                    if let Some((key, new)) = self.occupied(event, *from, table, previous.as_ref())
                    {
                        opened = new.then_some(key);
                        changed.push(key);
                    }
                }
                TableState::Unknown => {}
                TableState::Free | TableState::Dirty | TableState::Reserved => {
                    changed.extend(self.release(table.id, &event.ts));
                }
            },
            // A check-in at a table the sensors had already seen occupied
            // only links the reservation: `table.updated`.
            EventData::TableUpdated { table }
                if table.state == TableState::Occupied
                    && self
                        .seating
                        .as_ref()
                        .is_some_and(|s| s.tables.contains(&table.id)) =>
            {
                changed.extend(
                    self.occupied(event, TableState::Occupied, table, previous.as_ref())
                        .map(|(key, _)| key),
                );
            }
            EventData::TableDeleted { table } => changed.extend(self.release(table.id, &event.ts)),
            _ => {}
        }
        self.last = Some(Last {
            seq: event.seq,
            ts: event.ts.clone(),
            actor: event.actor.clone(),
            opened,
        });
        changed.dedup();
        changed
            .into_iter()
            .filter_map(|key| self.snapshot(key))
            .collect()
    }

    /// The visit `key` as it now is: open, or just closed (then dropped).
    fn snapshot(&mut self, key: VisitKey) -> Option<Derived> {
        let open = self.open.get(&key)?;
        let derived = Derived {
            key,
            visit: open.visit.clone(),
        };
        if open.visit.left_at.is_some() {
            self.open.remove(&key);
        }
        Some(derived)
    }

    fn visit_of(&self, table: TableId) -> Option<VisitKey> {
        self.open
            .iter()
            .find(|(_, o)| o.live.contains(&table))
            .map(|(&k, _)| k)
    }

    /// A `table.state` to `occupied`: the visit it opened (`true`) or
    /// changed (`false`), if any.
    fn occupied(
        &mut self,
        event: &Event,
        from: TableState,
        table: &crate::domain::Table,
        previous: Option<&Last>,
    ) -> Option<(VisitKey, bool)> {
        let id = table.id;
        let seating = self.seating.clone().filter(|s| s.tables.contains(&id));
        if let Some(key) = self.visit_of(id) {
            let open = self.open.get_mut(&key)?;
            match seating {
                Some(s) => {
                    open.visit.origin = s.origin;
                    offer_party(&mut open.visit, s.party.0, s.party.1);
                    if let Some(seating) = &mut self.seating {
                        seating.key = Some(key);
                    }
                }
                None => {
                    if let Some(people) = table.people {
                        let source = match event.actor {
                            Actor::Sensor(_) => PartySizeSource::Sensor,
                            _ => PartySizeSource::Staff,
                        };
                        offer_party(&mut open.visit, people, source);
                    }
                }
            }
            return Some((key, false));
        }
        if from == TableState::Occupied {
            // Seated before the log begins (a rebuild after retention):
            // its start is unknown, so it is no visit of ours.
            return None;
        }
        // A seating's second table, or a staff combination's.
        let joins_with = |key: VisitKey, this: &Self| {
            this.open.get(&key).is_some_and(|o| {
                o.visit.left_at.is_none() && o.visit.tables.iter().any(|t| table.joins.contains(t))
            })
        };
        let join = match &seating {
            Some(s) => s.key.filter(|&k| self.open.contains_key(&k)),
            None => previous
                .filter(|p| !matches!(p.actor, Actor::Sensor(_)))
                .and_then(|p| p.opened)
                .filter(|&k| {
                    self.open
                        .get(&k)
                        .is_some_and(|o| o.visit.origin == VisitOrigin::Staff)
                        && joins_with(k, self)
                }),
        };
        if let Some(key) = join {
            let open = self.open.get_mut(&key)?;
            if !open.visit.tables.contains(&id) {
                open.visit.tables.push(id);
            }
            open.live.insert(id);
            if seating.is_none() {
                if let Some(people) = table.people {
                    offer_party(&mut open.visit, people, PartySizeSource::Staff);
                }
            }
            return Some((key, false));
        }
        let mut visit = Visit {
            id: 0,
            tables: vec![id],
            party_size: None,
            party_size_source: None,
            seated_at: event.ts.clone(),
            left_at: None,
            origin: match (&seating, &event.actor) {
                (Some(s), _) => s.origin,
                (None, Actor::Sensor(_)) => VisitOrigin::Sensor,
                (None, _) => VisitOrigin::Staff,
            },
        };
        match &seating {
            Some(s) => offer_party(&mut visit, s.party.0, s.party.1),
            None => {
                if let Some(people) = table.people {
                    let source = match event.actor {
                        Actor::Sensor(_) => PartySizeSource::Sensor,
                        _ => PartySizeSource::Staff,
                    };
                    offer_party(&mut visit, people, source);
                }
            }
        }
        let key = event.seq;
        if let Some(s) = &mut self.seating {
            if seating.is_some() {
                s.key = Some(key);
            }
        }
        self.open.insert(
            key,
            Open {
                visit,
                live: BTreeSet::from([id]),
            },
        );
        Some((key, true))
    }

    /// Table `id` left `occupied`: the visit it was part of ends once none
    /// of its tables is occupied.
    fn release(&mut self, id: TableId, ts: &str) -> Option<VisitKey> {
        let key = self.visit_of(id)?;
        let open = self.open.get_mut(&key)?;
        open.live.remove(&id);
        if open.live.is_empty() {
            open.visit.left_at = Some(ts.to_string());
        }
        Some(key)
    }
}

/// Every visit the events give, in the order they opened: the pure form of
/// what the writer derives as it goes (`mesero db rebuild-visits`).
pub fn derive<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<Derived> {
    let mut deriver = Deriver::default();
    let mut all: BTreeMap<VisitKey, Derived> = BTreeMap::new();
    for event in events {
        for d in deriver.on_event(event) {
            all.insert(d.key, d);
        }
    }
    all.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Layout, Table};

    fn table(id: TableId, state: TableState, people: Option<u32>, joins: &[TableId]) -> Table {
        Table {
            id,
            number: id.to_string(),
            zone: "salon".into(),
            seats: 4,
            layout: Layout::default(),
            state,
            people,
            since: String::new(),
            hold_until: None,
            reservation: None,
            joins: joins.to_vec(),
            combined_seats: None,
        }
    }

    fn state(seq: u64, ts: &str, actor: Actor, from: TableState, t: Table) -> Event {
        Event {
            seq,
            ts: ts.into(),
            table: Some(t.id),
            actor,
            data: EventData::TableState {
                from,
                to: t.state,
                table: t,
            },
        }
    }

    fn sensor() -> Actor {
        Actor::Sensor("pir".into())
    }

    fn staff() -> Actor {
        Actor::Staff("host".into())
    }

    use TableState::{Free, Occupied};

    #[test]
    fn two_joined_tables_seated_together_by_staff_are_one_visit() {
        let events = [
            state(1, "t1", staff(), Free, table(1, Occupied, Some(5), &[2])),
            state(2, "t1", staff(), Free, table(2, Occupied, None, &[1])),
            // Not joined to them: its own visit, though in the same instant.
            state(3, "t1", staff(), Free, table(3, Occupied, None, &[])),
            state(4, "t2", staff(), Occupied, table(1, Free, None, &[2])),
            state(5, "t3", staff(), Occupied, table(2, Free, None, &[1])),
        ];
        let visits = derive(&events);
        assert_eq!(visits.len(), 2);
        assert_eq!(visits[0].key, 1);
        assert_eq!(visits[0].visit.tables, [1, 2]);
        assert_eq!(visits[0].visit.party_size, Some(5));
        assert_eq!(
            visits[0].visit.party_size_source,
            Some(PartySizeSource::Staff)
        );
        assert_eq!(visits[0].visit.left_at.as_deref(), Some("t3"));
        assert_eq!(visits[1].visit.tables, [3]);
        assert_eq!(visits[1].visit.left_at, None);
    }

    #[test]
    fn sensor_estimates_grow_and_a_log_that_starts_mid_visit_opens_none() {
        let events = [
            state(
                7,
                "t0",
                sensor(),
                Occupied,
                table(4, Occupied, Some(3), &[]),
            ),
            state(8, "t0", sensor(), Occupied, table(4, Free, None, &[])),
            state(9, "t1", sensor(), Free, table(1, Occupied, Some(2), &[])),
            state(
                10,
                "t2",
                sensor(),
                Occupied,
                table(1, Occupied, Some(4), &[]),
            ),
            state(
                11,
                "t3",
                sensor(),
                Occupied,
                table(1, Occupied, Some(3), &[]),
            ),
            state(
                12,
                "t4",
                sensor(),
                Occupied,
                table(1, TableState::Unknown, None, &[]),
            ),
            state(
                13,
                "t5",
                sensor(),
                TableState::Unknown,
                table(1, TableState::Dirty, None, &[]),
            ),
        ];
        let visits = derive(&events);
        assert_eq!(visits.len(), 1, "{visits:?}");
        let v = &visits[0].visit;
        assert_eq!(
            (v.party_size, v.party_size_source),
            (Some(4), Some(PartySizeSource::Sensor))
        );
        assert_eq!(
            (v.seated_at.as_str(), v.left_at.as_deref()),
            ("t1", Some("t5"))
        );
        assert_eq!(v.origin, VisitOrigin::Sensor);
    }

    #[test]
    fn a_resumed_deriver_closes_what_the_store_had_open() {
        let open = derive(&[state(3, "t1", staff(), Free, table(2, Occupied, None, &[]))]);
        let mut deriver = Deriver::resume(open, |_| true);
        let closed = deriver.on_event(&state(
            9,
            "t2",
            sensor(),
            Occupied,
            table(2, Free, None, &[]),
        ));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].key, 3);
        assert_eq!(closed[0].visit.left_at.as_deref(), Some("t2"));
        assert_eq!(deriver.open().count(), 0);
    }
}
