//! The occupancy engine: turns sensor readings, faults and the passage of
//! time into table state transitions.
//!
//! Pure logic: no I/O, no async, time is injected. The caller feeds it
//! readings and health changes, calls [`Engine::tick`] when
//! [`Engine::next_deadline`] comes, applies each returned [`Transition`] to
//! its store and reports the store's truth back with [`Engine::sync_table`].
//!
//! Rules (SPEC) and the choices made where the spec leaves room:
//! - A table's presence is the OR of its healthy sensors' latest readings;
//!   its people estimate is the largest count among them. A sensor counts
//!   only once it has reported since it was added or recovered.
//! - Presence seen continuously for `occupy_after` turns free, reserved or
//!   dirty into occupied; absence seen continuously for `release_after`
//!   turns occupied into dirty (bussing on) or free. Absence never releases
//!   a reserved or dirty table. Presence toggling faster than that resets
//!   the clock, so flicker emits nothing.
//! - A state change made by anyone else (staff, reservations, or a refused
//!   transition, as reported by `sync_table`) restarts the hysteresis: the
//!   sensors must then see presence or absence for the full time from that
//!   moment before they override it. This is what keeps a staff change from
//!   being undone by readings taken before it.
//! - A hold pins the state: nothing sensor-driven happens until it expires.
//!   Expiry counts as a change by someone else, so the state is re-derived
//!   with the full hysteresis measured from the expiry instant. If all the
//!   table's sensors are faulted at expiry, the table becomes unknown.
//! - When the last healthy sensor of a table faults, the table becomes
//!   unknown at once (held tables at hold expiry). A staff change made while
//!   all sensors are down is left alone: there is nothing to derive from.
//! - Recovery: the table stays unknown until the first fresh reading of a
//!   recovered sensor. That reading restores the state the table had before
//!   it became unknown, and the normal hysteresis then runs from that
//!   instant. Restoring rather than deriving keeps the restroom rule (a
//!   sensor that hiccups while a guest is away must not free the table) and
//!   keeps reserved/dirty tables from being lost to an outage. When no
//!   earlier state is known (the table was unknown when the engine learned
//!   about it, or staff set it unknown), the reading decides directly:
//!   present → occupied, absent → free.
//! - A table with no sensors bound is never touched.
//! - The actor of a transition is `sensor:<id>` of the sensor whose reading
//!   or fault caused it. For timer-driven transitions it is the sensor that
//!   reported last among those whose latest reading agrees with the table's
//!   presence (so an occupy is credited to a sensor that saw somebody, not
//!   to one that just reported an empty view), else the last one that
//!   reported; for an unknown at hold expiry, the last one that faulted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use crate::domain::{Actor, TableId, TableState};
use crate::sensors::Reading;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    pub occupy_after: Duration,
    pub release_after: Duration,
    pub bussing: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            occupy_after: Duration::from_secs(10),
            release_after: Duration::from_secs(180),
            bussing: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub table: TableId,
    pub from: TableState,
    pub to: TableState,
    pub people: Option<u32>,
    /// Sensor id; the event's actor is `sensor:<id>`.
    pub sensor: String,
}

impl Transition {
    pub fn actor(&self) -> Actor {
        Actor::Sensor(self.sensor.clone())
    }
}

#[derive(Debug, Clone)]
struct SensorEntry {
    table: Option<TableId>,
    healthy: bool,
    /// Latest reading since the sensor was added or last faulted.
    last: Option<Reading>,
    /// Order of the latest reading among all readings (for actors).
    seq: u64,
}

#[derive(Debug, Clone, Default)]
struct TableEntry {
    /// `None` until `sync_table` has told the engine the table's state.
    state: Option<TableState>,
    hold_until: Option<Instant>,
    /// Current combined presence and since when it has held; `None` while
    /// no healthy sensor of the table has reported.
    presence: Option<(bool, Instant)>,
    /// Hysteresis is measured from no earlier than this (the last change
    /// made by someone else, or a hold expiry, or a recovery).
    evidence_from: Option<Instant>,
    /// The state before the engine made the table unknown.
    before_unknown: Option<TableState>,
    last_reporter: Option<String>,
    last_fault: Option<String>,
}

/// Why a table is being evaluated, which decides the transition's actor.
enum Cause<'a> {
    Reading(&'a str),
    Fault(&'a str),
    Timer,
}

#[derive(Debug, Clone)]
pub struct Engine {
    cfg: EngineConfig,
    sensors: BTreeMap<String, SensorEntry>,
    tables: BTreeMap<TableId, TableEntry>,
    readings: u64,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            cfg,
            sensors: BTreeMap::new(),
            tables: BTreeMap::new(),
            readings: 0,
        }
    }

    /// Declares a sensor bound to a table (or `None` for unbound inputs such
    /// as call buttons). Idempotent. Moving a sensor to another table drops
    /// its reading and forgets both tables' presence until their sensors
    /// report again (there is no instant here to restart a clock from).
    pub fn add_sensor(&mut self, sensor: &str, table: Option<TableId>) {
        match self.sensors.get_mut(sensor) {
            Some(entry) if entry.table == table => return,
            Some(entry) => {
                let old = std::mem::replace(&mut entry.table, table);
                entry.last = None;
                for id in old.into_iter().chain(table) {
                    if let Some(t) = self.tables.get_mut(&id) {
                        t.presence = None;
                    }
                }
            }
            None => {
                self.sensors.insert(
                    sensor.to_string(),
                    SensorEntry {
                        table,
                        healthy: true,
                        last: None,
                        seq: 0,
                    },
                );
            }
        }
        if let Some(id) = table {
            self.tables.entry(id).or_default();
        }
    }

    /// The authoritative state of a table: from the database at start, and
    /// after every change by anyone, including the engine's own committed
    /// transitions. `hold_until` is `Some` while a staff hold is active.
    pub fn sync_table(
        &mut self,
        table: TableId,
        state: TableState,
        hold_until: Option<Instant>,
        now: Instant,
    ) {
        let entry = self.tables.entry(table).or_default();
        if entry.state != Some(state) {
            entry.state = Some(state);
            entry.evidence_from = Some(now);
            entry.before_unknown = None;
        }
        entry.hold_until = hold_until;
    }

    pub fn remove_table(&mut self, table: TableId) {
        self.tables.remove(&table);
    }

    /// A reading from a sensor. A reading from a faulted sensor counts as
    /// its recovery (the caller's health tracker would report it anyway).
    pub fn reading(&mut self, sensor: &str, reading: Reading, now: Instant) -> Vec<Transition> {
        let Some(entry) = self.sensors.get_mut(sensor) else {
            tracing::debug!(sensor, "reading from an undeclared sensor ignored");
            return Vec::new();
        };
        self.readings += 1;
        entry.healthy = true;
        entry.last = Some(reading);
        entry.seq = self.readings;
        let Some(table) = entry.table else {
            return Vec::new();
        };
        let entry = self.tables.entry(table).or_default();
        entry.last_reporter = Some(sensor.to_string());
        self.refresh_presence(table, now);
        self.evaluate(table, now, Cause::Reading(sensor))
            .into_iter()
            .collect()
    }

    pub fn sensor_faulted(&mut self, sensor: &str, now: Instant) -> Vec<Transition> {
        let Some(entry) = self.sensors.get_mut(sensor) else {
            return Vec::new();
        };
        if !entry.healthy {
            return Vec::new();
        }
        entry.healthy = false;
        entry.last = None;
        let Some(table) = entry.table else {
            return Vec::new();
        };
        if let Some(t) = self.tables.get_mut(&table) {
            t.last_fault = Some(sensor.to_string());
        }
        self.refresh_presence(table, now);
        self.evaluate(table, now, Cause::Fault(sensor))
            .into_iter()
            .collect()
    }

    /// The sensor answers again. Nothing changes until it actually reports:
    /// see the module docs on recovery.
    pub fn sensor_recovered(&mut self, sensor: &str, now: Instant) -> Vec<Transition> {
        let Some(entry) = self.sensors.get_mut(sensor) else {
            return Vec::new();
        };
        entry.healthy = true;
        let Some(table) = entry.table else {
            return Vec::new();
        };
        self.evaluate(table, now, Cause::Timer)
            .into_iter()
            .collect()
    }

    /// Advances timers: occupy/release hysteresis and hold expiry.
    pub fn tick(&mut self, now: Instant) -> Vec<Transition> {
        let ids: Vec<TableId> = self.tables.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.evaluate(id, now, Cause::Timer))
            .collect()
    }

    /// The earliest instant at which [`Engine::tick`] could produce a
    /// transition. It may be early (a hold that expires without a change),
    /// never late; it may be in the past, meaning "tick now".
    pub fn next_deadline(&self) -> Option<Instant> {
        self.tables
            .iter()
            .filter(|(id, _)| self.has_sensors(**id))
            .filter_map(|(_, t)| {
                let state = t.state?;
                if let Some(hold) = t.hold_until {
                    return Some(hold);
                }
                let (present, since) = t.presence?;
                let start = t.evidence_from.map_or(since, |e| e.max(since));
                match (state, present) {
                    (TableState::Unknown, _) => Some(start),
                    // Checked: a delay too long for the clock has no deadline.
                    (TableState::Free | TableState::Reserved | TableState::Dirty, true) => {
                        start.checked_add(self.cfg.occupy_after)
                    }
                    (TableState::Occupied, false) => start.checked_add(self.cfg.release_after),
                    _ => None,
                }
            })
            .min()
    }

    /// The people estimate: the largest count among the table's healthy
    /// sensors, `None` if none of them counts.
    pub fn people(&self, table: TableId) -> Option<u32> {
        self.bound(table)
            .filter(|s| s.healthy)
            .filter_map(|s| s.last.and_then(|r| r.people))
            .max()
    }

    /// The engine's current belief about a table, for diagnostics.
    pub fn state(&self, table: TableId) -> Option<TableState> {
        self.tables.get(&table).and_then(|t| t.state)
    }

    fn bound(&self, table: TableId) -> impl Iterator<Item = &SensorEntry> {
        self.sensors
            .values()
            .filter(move |s| s.table == Some(table))
    }

    fn has_sensors(&self, table: TableId) -> bool {
        self.bound(table).next().is_some()
    }

    /// The healthy sensor that reported last among those whose latest
    /// reading matches the table's current presence.
    fn latest_agreeing(&self, table: TableId) -> Option<String> {
        let (present, _) = self.tables.get(&table)?.presence?;
        self.sensors
            .iter()
            .filter(|(_, s)| s.table == Some(table) && s.healthy)
            .filter(|(_, s)| s.last.is_some_and(|r| r.present == present))
            .max_by_key(|(_, s)| s.seq)
            .map(|(id, _)| id.clone())
    }

    fn refresh_presence(&mut self, table: TableId, now: Instant) {
        let observed = self
            .bound(table)
            .filter(|s| s.healthy)
            .filter_map(|s| s.last)
            .map(|r| r.present)
            .reduce(|a, b| a || b);
        if let Some(entry) = self.tables.get_mut(&table) {
            if entry.presence.map(|(p, _)| p) != observed {
                entry.presence = observed.map(|p| (p, now));
            }
        }
    }

    fn evaluate(&mut self, table: TableId, now: Instant, cause: Cause<'_>) -> Option<Transition> {
        if !self.has_sensors(table) {
            return None;
        }
        let all_faulted = self.bound(table).all(|s| !s.healthy);
        let first_sensor = self
            .sensors
            .iter()
            .find(|(_, s)| s.table == Some(table))
            .map(|(id, _)| id.clone());
        let agreeing = self.latest_agreeing(table);
        let people = self.people(table);
        let cfg = self.cfg;
        let entry = self.tables.get_mut(&table)?;
        let state = entry.state?;

        let mut hold_expired = false;
        if let Some(hold) = entry.hold_until {
            if now < hold {
                return None;
            }
            entry.hold_until = None;
            entry.evidence_from = Some(entry.evidence_from.map_or(hold, |e| e.max(hold)));
            hold_expired = true;
        }

        let fault_driven = matches!(cause, Cause::Fault(_)) || hold_expired;
        let to = if all_faulted {
            if !fault_driven || state == TableState::Unknown {
                return None;
            }
            entry.before_unknown = Some(state);
            TableState::Unknown
        } else {
            let (present, since) = entry.presence?;
            let start = entry.evidence_from.map_or(since, |e| e.max(since));
            match (state, present) {
                (TableState::Unknown, _) => {
                    entry.evidence_from = Some(now);
                    match entry.before_unknown.take() {
                        Some(before) if before != TableState::Unknown => before,
                        _ if present => TableState::Occupied,
                        _ => TableState::Free,
                    }
                }
                (TableState::Free | TableState::Reserved | TableState::Dirty, true)
                    if start
                        .checked_add(cfg.occupy_after)
                        .is_some_and(|at| now >= at) =>
                {
                    TableState::Occupied
                }
                (TableState::Occupied, false)
                    if start
                        .checked_add(cfg.release_after)
                        .is_some_and(|at| now >= at) =>
                {
                    if cfg.bussing {
                        TableState::Dirty
                    } else {
                        TableState::Free
                    }
                }
                _ => return None,
            }
        };

        let sensor = match cause {
            Cause::Reading(id) | Cause::Fault(id) => Some(id.to_string()),
            Cause::Timer if to == TableState::Unknown => {
                entry.last_fault.clone().or(entry.last_reporter.clone())
            }
            Cause::Timer => agreeing
                .or(entry.last_reporter.clone())
                .or(entry.last_fault.clone()),
        }
        .or(first_sensor)?;
        entry.state = Some(to);
        tracing::debug!(table, from = %state, to = %to, sensor, "occupancy transition");
        Some(Transition {
            table,
            from: state,
            to,
            people,
            sensor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TableState::*;

    #[derive(Clone, Copy)]
    enum Op {
        Read(&'static str, bool, Option<u32>),
        Fault(&'static str),
        Recover(&'static str),
        /// A change by someone else: state and hold length in seconds.
        Staff(TableId, TableState, Option<u64>),
    }
    use Op::*;

    struct Case {
        name: &'static str,
        bussing: bool,
        sensors: &'static [(&'static str, Option<TableId>)],
        tables: &'static [(TableId, TableState)],
        /// (milliseconds since start, operation)
        script: &'static [(u64, Op)],
        until_ms: u64,
        /// (milliseconds, table, from, to, sensor)
        expect: &'static [(u64, TableId, TableState, TableState, &'static str)],
    }

    type Log = Vec<(u64, TableId, TableState, TableState, String)>;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn engine_for(case: &Case, t0: Instant) -> Engine {
        let mut engine = Engine::new(EngineConfig {
            bussing: case.bussing,
            ..EngineConfig::default()
        });
        for (sensor, table) in case.sensors {
            engine.add_sensor(sensor, *table);
        }
        for (table, state) in case.tables {
            engine.sync_table(*table, *state, None, t0);
        }
        engine
    }

    /// Acts like the daemon: applies transitions to a "store" and syncs the
    /// result back.
    fn commit(engine: &mut Engine, ts: Vec<Transition>, t0: Instant, now: Instant, log: &mut Log) {
        for t in ts {
            engine.sync_table(t.table, t.to, None, now);
            let at = u64::try_from((now - t0).as_millis()).unwrap();
            log.push((at, t.table, t.from, t.to, t.sensor));
        }
    }

    fn apply(engine: &mut Engine, op: Op, t0: Instant, now: Instant, log: &mut Log) {
        let ts = match op {
            Read(s, present, people) => engine.reading(s, Reading { present, people }, now),
            Fault(s) => engine.sensor_faulted(s, now),
            Recover(s) => engine.sensor_recovered(s, now),
            Staff(table, state, hold) => {
                engine.sync_table(
                    table,
                    state,
                    hold.map(|h| now + Duration::from_secs(h)),
                    now,
                );
                Vec::new()
            }
        };
        commit(engine, ts, t0, now, log);
    }

    /// Ticks every 100 ms, like a naive caller.
    fn run_polling(case: &Case) -> Log {
        let t0 = Instant::now();
        let mut engine = engine_for(case, t0);
        let mut log = Vec::new();
        for step in 0..=case.until_ms / 100 {
            let at = step * 100;
            let now = t0 + ms(at);
            for (_, op) in case.script.iter().filter(|(t, _)| *t == at) {
                apply(&mut engine, *op, t0, now, &mut log);
            }
            let ts = engine.tick(now);
            commit(&mut engine, ts, t0, now, &mut log);
        }
        log
    }

    /// Wakes only for script steps and at `next_deadline`, like the daemon.
    fn run_deadlines(case: &Case) -> Log {
        let t0 = Instant::now();
        let mut engine = engine_for(case, t0);
        let mut log = Vec::new();
        let mut script = case.script.iter().peekable();
        let mut now = t0;
        for _ in 0..10_000 {
            let next_op = script.peek().map(|(t, _)| t0 + ms(*t));
            let next = match (next_op, engine.next_deadline()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(x) => x,
                    None => return log,
                },
            }
            .max(now);
            if next > t0 + ms(case.until_ms) {
                return log;
            }
            now = next;
            while let Some((t, op)) = script.peek() {
                if t0 + ms(*t) != now {
                    break;
                }
                apply(&mut engine, *op, t0, now, &mut log);
                script.next();
            }
            let ts = engine.tick(now);
            commit(&mut engine, ts, t0, now, &mut log);
        }
        panic!("{}: deadline loop did not settle", case.name);
    }

    const A: &str = "a";
    const B: &str = "b";
    const ONE: &[(&str, Option<TableId>)] = &[(A, Some(1))];
    const TWO: &[(&str, Option<TableId>)] = &[(A, Some(1)), (B, Some(1))];

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "free → occupied after occupy_after",
                bussing: false,
                sensors: ONE,
                tables: &[(1, Free)],
                script: &[(1000, Read(A, true, None)), (5000, Read(A, true, None))],
                until_ms: 60_000,
                expect: &[(11_000, 1, Free, Occupied, A)],
            },
            Case {
                name: "presence shorter than occupy_after does nothing",
                bussing: false,
                sensors: ONE,
                tables: &[(1, Free)],
                script: &[(1000, Read(A, true, None)), (10_900, Read(A, false, None))],
                until_ms: 60_000,
                expect: &[],
            },
            Case {
                name: "flicker produces nothing",
                bussing: false,
                sensors: ONE,
                tables: &[(1, Free), (2, Occupied)],
                script: &[
                    (0, Read(A, true, None)),
                    (6000, Read(A, false, None)),
                    (8000, Read(A, true, None)),
                    (17_000, Read(A, false, None)),
                    (17_500, Read(A, true, None)),
                    (26_000, Read(A, false, None)),
                ],
                until_ms: 30_000,
                expect: &[],
            },
            Case {
                name: "occupied → free after release_after, restroom trip does not free",
                bussing: false,
                sensors: ONE,
                tables: &[(1, Occupied)],
                script: &[
                    (0, Read(A, true, Some(2))),
                    (60_000, Read(A, false, Some(0))),
                    (200_000, Read(A, true, Some(1))),
                    (300_000, Read(A, false, Some(0))),
                ],
                until_ms: 600_000,
                expect: &[(480_000, 1, Occupied, Free, A)],
            },
            Case {
                name: "occupied → dirty with bussing, dirty stays dirty on absence, dirty → occupied",
                bussing: true,
                sensors: ONE,
                tables: &[(1, Occupied)],
                script: &[(0, Read(A, false, None)), (400_000, Read(A, true, None))],
                until_ms: 500_000,
                expect: &[
                    (180_000, 1, Occupied, Dirty, A),
                    (410_000, 1, Dirty, Occupied, A),
                ],
            },
            Case {
                name: "reserved → occupied on presence, reserved stays reserved on absence",
                bussing: false,
                sensors: &[(A, Some(1)), (B, Some(2))],
                tables: &[(1, Reserved), (2, Reserved)],
                script: &[(0, Read(A, true, None)), (0, Read(B, false, None))],
                until_ms: 3_600_000,
                expect: &[(10_000, 1, Reserved, Occupied, A)],
            },
            Case {
                name: "hold pins the state; re-derived with full hysteresis after expiry",
                bussing: false,
                sensors: ONE,
                tables: &[(1, Occupied)],
                script: &[
                    (0, Read(A, true, None)),
                    // Staff frees the table for 5 min while guests linger.
                    (1000, Staff(1, Free, Some(300))),
                    (2000, Read(A, false, None)),
                    (100_000, Read(A, true, None)),
                    (200_000, Read(A, true, None)),
                ],
                until_ms: 400_000,
                expect: &[(311_000, 1, Free, Occupied, A)],
            },
            Case {
                name: "staff change without hold restarts the hysteresis",
                bussing: false,
                sensors: ONE,
                tables: &[(1, Occupied)],
                script: &[(0, Read(A, true, None)), (100_000, Staff(1, Free, None))],
                until_ms: 200_000,
                expect: &[(110_000, 1, Free, Occupied, A)],
            },
            Case {
                name: "hold expiry with absence keeps a reserved table",
                bussing: false,
                sensors: ONE,
                tables: &[(1, Free)],
                script: &[
                    (0, Read(A, false, None)),
                    (1000, Staff(1, Reserved, Some(60))),
                ],
                until_ms: 600_000,
                expect: &[],
            },
            Case {
                name: "two sensors are OR'ed",
                bussing: false,
                sensors: TWO,
                tables: &[(1, Free)],
                script: &[
                    (0, Read(A, false, None)),
                    (0, Read(B, false, None)),
                    (1000, Read(A, true, None)),
                    // B takes over before A loses sight: no gap in the OR.
                    (6000, Read(B, true, None)),
                    (6000, Read(A, false, None)),
                    (20_000, Read(B, false, None)),
                ],
                until_ms: 400_000,
                expect: &[
                    (11_000, 1, Free, Occupied, B),
                    (200_000, 1, Occupied, Free, B),
                ],
            },
            Case {
                name: "one of two sensors faulted still works",
                bussing: false,
                sensors: TWO,
                tables: &[(1, Free)],
                script: &[
                    (0, Read(A, true, None)),
                    (0, Read(B, false, None)),
                    (2000, Fault(A)),
                    (5000, Read(B, true, None)),
                ],
                until_ms: 60_000,
                expect: &[(15_000, 1, Free, Occupied, B)],
            },
            Case {
                name: "fault of the sensor seeing presence starts the release clock",
                bussing: false,
                sensors: TWO,
                tables: &[(1, Occupied)],
                script: &[
                    (0, Read(A, true, None)),
                    (0, Read(B, false, None)),
                    (10_000, Fault(A)),
                ],
                until_ms: 400_000,
                expect: &[(190_000, 1, Occupied, Free, B)],
            },
            Case {
                name: "all faulted → unknown; recovery restores, then hysteresis",
                bussing: false,
                sensors: TWO,
                tables: &[(1, Occupied)],
                script: &[
                    (0, Read(A, true, None)),
                    (0, Read(B, true, None)),
                    (10_000, Fault(A)),
                    (20_000, Fault(B)),
                    (30_000, Recover(B)),
                    // Guest in the restroom when the sensor comes back.
                    (31_000, Read(B, false, None)),
                ],
                until_ms: 400_000,
                expect: &[
                    (20_000, 1, Occupied, Unknown, B),
                    (31_000, 1, Unknown, Occupied, B),
                    (211_000, 1, Occupied, Free, B),
                ],
            },
            Case {
                name: "recovery with presence restores free then occupies after occupy_after",
                bussing: false,
                sensors: ONE,
                tables: &[(1, Free)],
                script: &[
                    (0, Read(A, false, None)),
                    (5000, Fault(A)),
                    (50_000, Recover(A)),
                    (50_000, Read(A, true, None)),
                ],
                until_ms: 100_000,
                expect: &[
                    (5000, 1, Free, Unknown, A),
                    (50_000, 1, Unknown, Free, A),
                    (60_000, 1, Free, Occupied, A),
                ],
            },
            Case {
                name: "unknown from the database is derived directly",
                bussing: false,
                sensors: &[(A, Some(1)), (B, Some(2))],
                tables: &[(1, Unknown), (2, Unknown)],
                script: &[(2000, Read(A, true, None)), (3000, Read(B, false, None))],
                until_ms: 30_000,
                expect: &[(2000, 1, Unknown, Occupied, A), (3000, 2, Unknown, Free, B)],
            },
            Case {
                name: "reserved survives an outage",
                bussing: false,
                sensors: ONE,
                tables: &[(1, Reserved)],
                script: &[
                    (0, Read(A, false, None)),
                    (1000, Fault(A)),
                    (9000, Read(A, false, None)),
                ],
                until_ms: 600_000,
                expect: &[
                    (1000, 1, Reserved, Unknown, A),
                    (9000, 1, Unknown, Reserved, A),
                ],
            },
            Case {
                name: "fault during a hold → unknown at expiry, actor is the faulted sensor",
                bussing: false,
                sensors: TWO,
                tables: &[(1, Free)],
                script: &[
                    (0, Read(A, false, None)),
                    (0, Read(B, false, None)),
                    (1000, Staff(1, Occupied, Some(60))),
                    (2000, Fault(B)),
                    (3000, Fault(A)),
                ],
                until_ms: 120_000,
                expect: &[(61_000, 1, Occupied, Unknown, A)],
            },
            Case {
                name: "staff change while all sensors are down is left alone",
                bussing: false,
                sensors: ONE,
                tables: &[(1, Occupied)],
                script: &[
                    (0, Read(A, true, None)),
                    (1000, Fault(A)),
                    (5000, Staff(1, Free, None)),
                ],
                until_ms: 400_000,
                expect: &[(1000, 1, Occupied, Unknown, A)],
            },
            Case {
                name: "table without sensors untouched; unbound sensor ignored",
                bussing: false,
                sensors: &[(A, Some(1)), (B, None)],
                tables: &[(1, Free), (9, Unknown)],
                script: &[
                    (0, Staff(9, Occupied, Some(5))),
                    (0, Read(B, true, None)),
                    (1000, Fault(B)),
                    (2000, Read("ghost", true, None)),
                ],
                until_ms: 400_000,
                expect: &[],
            },
        ]
    }

    #[test]
    fn transitions_table() {
        for case in cases() {
            let expected: Log = case
                .expect
                .iter()
                .map(|(at, table, from, to, s)| (*at, *table, *from, *to, s.to_string()))
                .collect();
            assert_eq!(run_polling(&case), expected, "{} (polling)", case.name);
            assert_eq!(run_deadlines(&case), expected, "{} (deadlines)", case.name);
        }
    }

    #[test]
    fn people_is_the_largest_healthy_count() {
        let t0 = Instant::now();
        let mut e = Engine::new(EngineConfig::default());
        e.add_sensor("thermal", Some(1));
        e.add_sensor("thermal2", Some(1));
        e.add_sensor("tof", Some(1));
        e.sync_table(1, Free, None, t0);
        assert_eq!(e.people(1), None);
        e.reading("tof", Reading::presence(true), t0);
        assert_eq!(e.people(1), None, "presence-only sensors give no count");
        e.reading(
            "thermal",
            Reading {
                present: true,
                people: Some(2),
            },
            t0,
        );
        e.reading(
            "thermal2",
            Reading {
                present: true,
                people: Some(3),
            },
            t0,
        );
        assert_eq!(e.people(1), Some(3));
        e.sensor_faulted("thermal2", t0);
        assert_eq!(e.people(1), Some(2));
        let ts = e.tick(t0 + Duration::from_secs(10));
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0].people, Some(2));
        assert_eq!(ts[0].actor().to_string(), "sensor:thermal");
    }

    #[test]
    fn emitted_transition_is_not_repeated_before_sync() {
        let t0 = Instant::now();
        let mut e = Engine::new(EngineConfig::default());
        e.add_sensor(A, Some(1));
        e.sync_table(1, Free, None, t0);
        e.reading(A, Reading::presence(true), t0);
        let later = t0 + Duration::from_secs(11);
        assert_eq!(e.tick(later).len(), 1);
        assert_eq!(e.state(1), Some(Occupied));
        assert!(e.tick(later).is_empty());
        assert!(e.reading(A, Reading::presence(true), later).is_empty());
        assert_eq!(e.next_deadline(), None);
    }

    #[test]
    fn a_delay_too_long_for_the_clock_never_fires_and_never_panics() {
        let t0 = Instant::now();
        let mut e = Engine::new(EngineConfig {
            occupy_after: Duration::MAX,
            release_after: Duration::MAX,
            bussing: false,
        });
        e.add_sensor(A, Some(1));
        e.sync_table(1, Free, None, t0);
        assert!(e.reading(A, Reading::presence(true), t0).is_empty());
        assert_eq!(e.next_deadline(), None);
        assert!(e.tick(t0 + Duration::from_secs(86_400)).is_empty());
        e.sync_table(1, Occupied, None, t0);
        assert!(e.reading(A, Reading::presence(false), t0).is_empty());
        assert_eq!(e.next_deadline(), None);
    }

    #[test]
    fn refused_transition_is_corrected_by_sync() {
        let t0 = Instant::now();
        let mut e = Engine::new(EngineConfig::default());
        e.add_sensor(A, Some(1));
        e.sync_table(1, Free, None, t0);
        e.reading(A, Reading::presence(true), t0);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(e.tick(t1).len(), 1);
        // The store refused it: a reservation had just been set.
        e.sync_table(1, Reserved, None, t1);
        assert_eq!(e.state(1), Some(Reserved));
        assert_eq!(e.next_deadline(), Some(t1 + Duration::from_secs(10)));
        let ts = e.tick(t1 + Duration::from_secs(10));
        assert_eq!((ts[0].from, ts[0].to), (Reserved, Occupied));
    }

    #[test]
    fn next_deadline_tracks_the_pending_timer() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut e = Engine::new(EngineConfig::default());
        e.add_sensor(A, Some(1));
        e.add_sensor(B, Some(2));
        e.sync_table(1, Free, None, t0);
        e.sync_table(2, Occupied, None, t0);
        assert_eq!(e.next_deadline(), None, "no readings yet");
        e.reading(A, Reading::presence(true), t0 + s(1));
        assert_eq!(e.next_deadline(), Some(t0 + s(11)));
        e.reading(B, Reading::presence(false), t0 + s(2));
        assert_eq!(e.next_deadline(), Some(t0 + s(11)));
        assert!(e.tick(t0 + s(11) - ms(1)).is_empty());
        assert_eq!(e.tick(t0 + s(11)).len(), 1);
        assert_eq!(e.next_deadline(), Some(t0 + s(182)));
        e.sync_table(2, Occupied, Some(t0 + s(500)), t0 + s(20));
        assert_eq!(e.next_deadline(), Some(t0 + s(500)), "hold expiry");
        assert!(e.tick(t0 + s(500)).is_empty());
        assert_eq!(
            e.next_deadline(),
            Some(t0 + s(680)),
            "hysteresis from expiry"
        );
        e.remove_table(2);
        assert_eq!(e.next_deadline(), None);
    }

    #[test]
    fn rebinding_a_sensor_moves_its_presence() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut e = Engine::new(EngineConfig::default());
        e.add_sensor(A, Some(1));
        e.add_sensor(A, Some(1));
        e.sync_table(1, Free, None, t0);
        e.sync_table(2, Free, None, t0);
        e.reading(A, Reading::presence(true), t0);
        e.add_sensor(A, Some(2));
        assert!(e.tick(t0 + s(60)).is_empty(), "old reading dropped");
        e.reading(A, Reading::presence(true), t0 + s(60));
        let ts = e.tick(t0 + s(70));
        assert_eq!((ts[0].table, ts[0].to), (2, Occupied));
    }
}
