//! The writer actor: the only owner of the write connection.
//!
//! It runs on its own OS thread (SQLite calls block), takes every command
//! that is already queued (up to `batch_max`), applies each inside a
//! savepoint so one bad command does not sink the others, commits once,
//! and only then publishes the events and answers the callers.
//!
//! Failure rules:
//! - The transaction and each savepoint are rusqlite guards that roll back
//!   when dropped, so every exit path (an early `?` included) leaves the
//!   connection outside any transaction: one failed batch never makes the
//!   next `BEGIN` fail.
//! - When the batch as a whole fails (`BEGIN`, a savepoint, `COMMIT`, or a
//!   change whose error made SQLite roll the whole transaction back, as a
//!   full disk or an I/O error does), nothing of it stands and every caller
//!   in it gets that storage error ([`StoreError::Sqlite`]), never `Closed`.
//! - After [`UNHEALTHY_AFTER_FAILED_BATCHES`] batches in a row wrote
//!   nothing because of storage errors, pings are answered with an error
//!   until a batch writes again: the watchdog probe stops beating and
//!   systemd restarts a writer that cannot store anything.
//!
//! Event time: each event is stamped `max(now, time of the previous
//! event)`. Seqs order the log, but `ts` is what retention and every
//! "since" reader compare, so it must not go backwards when the clock does
//! (NTP stepping back a fast clock, an operator fixing it by hand). The
//! cost: after the clock is set back, events keep the last stamp until the
//! wall clock catches up; a warning says so once per episode. The previous
//! time is the newest event's, read back on open (once retention has
//! deleted every event, stamping starts again from the clock). Clamping is
//! preferred to stamping the raw clock because a wrong-but-ordered time is
//! harmless to retention (a prefix of seqs, see [`Change::Prune`]) while a
//! time that goes backwards would make every range over `ts` lie.
//!
//! [`apply`](mod@apply) has what each change does to the rows and the
//! event log; this file has the batching, the transaction and its failure
//! rules.

mod apply;

use apply::apply;

use super::{Applied, Change, Command, Reply, StoreError, load_tables};
use crate::clock::{self, Wall};
use crate::config::TableSeed;
use crate::domain::{Actor, Alert, AlertId, Event, Seq, Table, TableId};
use crate::hub::Hub;
use crate::metrics::Metrics;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, ffi};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// Batches in a row that wrote nothing because of a storage error, after
/// which the writer fails its liveness probe. Three: one failure can be a
/// passing lock (each already waited `busy_timeout`), three in a row with
/// nothing written in between is a writer that cannot store.
pub const UNHEALTHY_AFTER_FAILED_BATCHES: u32 = 3;

/// At most one "commit failed" log line per this period (the rest are
/// counted in `mesero_failed_batches_total` and summed up in the next line).
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub batch_max: usize,
    /// `[alerts]`: flood control and the escalation schedule.
    pub alerts: crate::alerts::AlertRules,
    /// The site's zone: reservation events show their times in it.
    pub zone: jiff::tz::TimeZone,
}

pub(super) struct Writer {
    conn: Connection,
    config: WriterConfig,
    hub: Hub,
    metrics: Arc<Metrics>,
    /// Where event times come from.
    wall: Wall,
    /// What is committed (tables, head, watermark, last event time).
    state: Committed,
    /// Batches in a row that wrote nothing because of a storage error.
    failed_batches: u32,
    /// The storage error of the latest failed batch.
    last_failure: String,
    /// When a failure was last logged, and how many went unlogged since.
    failure_log: Option<Instant>,
    unlogged_failures: u64,
    /// Whether the clock is behind the last event's time (warned once).
    clock_behind: bool,
}

/// The committed state the writer validates against; a batch works on a
/// copy and it replaces this only once the batch committed.
#[derive(Clone)]
struct Committed {
    tables: BTreeMap<TableId, Table>,
    /// The open alerts (at most [`crate::alerts::MAX_OPEN`]).
    alerts: BTreeMap<AlertId, Alert>,
    /// Highest committed seq.
    head: Seq,
    /// Highest seq retention has deleted (every seq up to it is gone).
    pruned_through: Seq,
    /// Time stamped on the latest event.
    last_ts: SystemTime,
    /// The site's zone (fixed at open), for reservation events.
    zone: jiff::tz::TimeZone,
    /// The visits open now ([`crate::visits::derive`]): the events of
    /// each change go through it and the visits they open or close are
    /// written in the same savepoint.
    visits: crate::visits::Deriver,
}

/// The effect of one change, applied to memory only once the SQL ran.
#[derive(Default)]
struct Effect {
    upsert: Option<Table>,
    remove: Option<TableId>,
    /// An alert as written: kept among the open ones until it is acked.
    alert: Option<Alert>,
    /// The new retention watermark, when the change pruned events.
    pruned_through: Option<Seq>,
    /// The deriver's state after a rebuild of the visits.
    visits: Option<crate::visits::Deriver>,
    applied: Applied,
}

struct Pending {
    change: Change,
    actor: Actor,
    reply: Option<Reply>,
}

/// What a committed batch did.
struct Done {
    state: Committed,
    events: Vec<Event>,
    results: Vec<Result<Applied, StoreError>>,
    /// Whether any change wrote something (an event or a prune).
    wrote: bool,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        config: WriterConfig,
        hub: Hub,
        metrics: Arc<Metrics>,
        wall: Wall,
    ) -> Result<Writer, StoreError> {
        let tables: BTreeMap<_, _> = load_tables(&conn)?.into_iter().map(|t| (t.id, t)).collect();
        let head: i64 = conn.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
            [],
            |r| r.get(0),
        )?;
        let head = Seq::try_from(head).unwrap_or_default();
        let pruned_through = super::pruned_through(&conn)?;
        let last_ts = conn
            .query_row("SELECT ts FROM events ORDER BY seq DESC LIMIT 1", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .as_deref()
            .and_then(clock::parse)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let alerts: BTreeMap<_, _> = super::alerts::load_open(&conn)?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        hub.reset(head, Arc::new(tables.values().cloned().collect()));
        hub.reset_alerts(Arc::new(alerts.values().cloned().collect()));
        let zone = config.zone.clone();
        let visits =
            crate::visits::Deriver::resume(super::visits::load_open_derived(&conn, None)?, |id| {
                tables.get(&id).is_some_and(|t| {
                    matches!(
                        t.state,
                        crate::domain::TableState::Occupied | crate::domain::TableState::Unknown
                    )
                })
            });
        metrics.set_head(head);
        Ok(Writer {
            conn,
            config,
            hub,
            metrics,
            wall,
            state: Committed {
                tables,
                alerts,
                head,
                pruned_through,
                last_ts,
                zone,
                visits,
            },
            failed_batches: 0,
            last_failure: String::new(),
            failure_log: None,
            unlogged_failures: 0,
            clock_behind: false,
        })
    }

    /// Creates the configured tables when the database has none.
    pub(super) fn seed(&mut self, seeds: &[TableSeed]) -> Result<usize, StoreError> {
        if !self.state.tables.is_empty() || seeds.is_empty() {
            return Ok(0);
        }
        // Joins name other tables, so they are set once all exist.
        let creates = seeds.iter().map(|s| {
            Change::CreateTable(super::NewTable {
                id: Some(s.id),
                number: s.number.clone(),
                zone: s.zone.clone(),
                seats: s.seats,
                layout: s.layout,
                joins: Vec::new(),
                combined_seats: s.combined_seats,
            })
        });
        let joins = seeds
            .iter()
            .filter(|s| !s.joins.is_empty())
            .map(|s| Change::UpdateTable {
                id: s.id,
                patch: super::TablePatch {
                    joins: Some(s.joins.clone()),
                    ..super::TablePatch::default()
                },
            });
        let batch = creates
            .chain(joins)
            .map(|change| Pending {
                change,
                actor: Actor::System,
                reply: None,
            })
            .collect();
        self.commit_batch(batch)?;
        Ok(self.state.tables.len())
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
                        change: *change,
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
                // Failures are answered to each caller and logged inside.
                let _ = self.commit_batch(batch);
            }
            for reply in pings {
                let _ = reply.send(self.health());
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

    /// The watchdog probe's answer: an error while commits keep failing.
    fn health(&self) -> Result<(), StoreError> {
        if self.failed_batches >= UNHEALTHY_AFTER_FAILED_BATCHES {
            return Err(StoreError::Invalid(format!(
                "the writer is failing: the last {} batches stored nothing ({})",
                self.failed_batches, self.last_failure
            )));
        }
        Ok(())
    }

    /// Runs one batch and answers every caller in it, whatever happens.
    fn commit_batch(&mut self, batch: Vec<Pending>) -> Result<(), StoreError> {
        let started = Instant::now();
        let (changes, replies): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|p| ((p.change, p.actor), p.reply))
            .unzip();
        match self.transact(changes) {
            Ok(done) => {
                self.metrics
                    .record_commit(done.events.len(), started.elapsed());
                self.state = done.state;
                self.metrics.set_head(self.state.head);
                if !done.events.is_empty() {
                    self.hub.publish_with_alerts(
                        done.events,
                        Arc::new(self.state.tables.values().cloned().collect()),
                        Arc::new(self.state.alerts.values().cloned().collect()),
                    );
                }
                let refused = done
                    .results
                    .iter()
                    .filter(|r| matches!(r, Err(StoreError::Limit(_))))
                    .count();
                self.metrics.record_alerts_refused(refused);
                let fault = done.results.iter().find_map(|r| match r {
                    Err(e @ (StoreError::Sqlite(_) | StoreError::Io(_))) => Some(e.to_string()),
                    _ => None,
                });
                match fault {
                    Some(fault) if !done.wrote => self.failed(&fault),
                    _ if done.wrote => self.succeeded(),
                    _ => {}
                }
                for (reply, result) in replies.into_iter().zip(done.results) {
                    answer(reply, result);
                }
                Ok(())
            }
            Err(e) => {
                self.failed(&e.to_string());
                for reply in replies {
                    answer(reply, Err(StoreError::Sqlite(copy_error(&e))));
                }
                Err(e.into())
            }
        }
    }

    /// Applies the changes in one transaction. On `Err` nothing was
    /// committed: the guards roll the transaction back on every early return.
    fn transact(&mut self, changes: Vec<(Change, Actor)>) -> Result<Done, rusqlite::Error> {
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut work = self.state.clone();
        let mut events = Vec::new();
        let mut results = Vec::with_capacity(changes.len());
        let mut wrote = false;
        for (change, actor) in changes {
            let now = self.wall.now();
            if now < work.last_ts && !self.clock_behind {
                self.clock_behind = true;
                tracing::warn!(
                    behind_ms = work
                        .last_ts
                        .duration_since(now)
                        .unwrap_or_default()
                        .as_millis(),
                    "the system clock is behind the last event's time; events keep that time until the clock catches up"
                );
            } else if now >= work.last_ts {
                self.clock_behind = false;
            }
            let stamp = now.max(work.last_ts);
            let mut savepoint = tx.savepoint()?;
            let mut added = Vec::new();
            let mut next = work.clone();
            let applied = apply_to(
                &savepoint,
                &mut next,
                stamp,
                change,
                &actor,
                &self.config,
                &mut added,
            )
            .and_then(|applied| derive_visits(&savepoint, &mut next, &added).map(|()| applied));
            match applied {
                Ok(applied) => {
                    savepoint.commit()?;
                    wrote |= !added.is_empty() || next.pruned_through != work.pruned_through;
                    work = next;
                    events.append(&mut added);
                    results.push(Ok(applied));
                }
                Err(e) => {
                    if savepoint.is_autocommit() {
                        // SQLite rolled the whole transaction back (a full
                        // disk, an I/O error): nothing in this batch stands.
                        return Err(into_sqlite(e));
                    }
                    savepoint.rollback()?;
                    savepoint.commit()?;
                    results.push(Err(e));
                }
            }
        }
        tx.commit()?;
        Ok(Done {
            state: work,
            events,
            results,
            wrote,
        })
    }

    fn failed(&mut self, error: &str) {
        self.metrics.record_failed_batch();
        self.failed_batches = self.failed_batches.saturating_add(1);
        self.last_failure = error.to_string();
        let due = self
            .failure_log
            .is_none_or(|at| at.elapsed() >= FAILURE_LOG_EVERY);
        if due {
            tracing::error!(
                error = %error,
                in_a_row = self.failed_batches,
                unlogged = self.unlogged_failures,
                "commit failed; the batch was rolled back and its callers got the error"
            );
            self.failure_log = Some(Instant::now());
            self.unlogged_failures = 0;
        } else {
            self.unlogged_failures += 1;
        }
        if self.failed_batches == UNHEALTHY_AFTER_FAILED_BATCHES {
            tracing::error!(
                failed_batches = self.failed_batches,
                "the writer cannot store anything; failing the watchdog probe until a commit succeeds"
            );
        }
    }

    fn succeeded(&mut self) {
        if self.failed_batches >= UNHEALTHY_AFTER_FAILED_BATCHES {
            tracing::info!(
                failed_batches = self.failed_batches,
                "commits succeed again"
            );
        }
        self.failed_batches = 0;
    }
}

/// Applies `change` (each part of a [`Change::All`] in turn, each seeing
/// the ones before it) to `work` and the rows, appending its events.
fn apply_to(
    conn: &Connection,
    work: &mut Committed,
    stamp: SystemTime,
    change: Change,
    actor: &Actor,
    config: &WriterConfig,
    events: &mut Vec<Event>,
) -> Result<Applied, StoreError> {
    let change = match change {
        Change::All(changes) => {
            let mut parts = Vec::with_capacity(changes.len());
            for change in changes {
                parts.push(apply_to(conn, work, stamp, change, actor, config, events)?);
            }
            return Ok(Applied {
                parts,
                ..Applied::default()
            });
        }
        change => change,
    };
    let effect = apply(conn, work, stamp, change, actor, config)?;
    if let Some(t) = effect.upsert {
        work.tables.insert(t.id, t);
    }
    if let Some(id) = effect.remove {
        work.tables.remove(&id);
    }
    if let Some(alert) = effect.alert {
        if alert.is_open() {
            work.alerts.insert(alert.id, alert);
        } else {
            work.alerts.remove(&alert.id);
        }
    }
    if let Some(through) = effect.pruned_through {
        work.pruned_through = through;
    }
    if let Some(visits) = effect.visits {
        work.visits = visits;
    }
    if let Some(ev) = &effect.applied.event {
        work.head = ev.seq;
        work.last_ts = stamp;
        events.push(ev.clone());
    }
    Ok(effect.applied)
}

/// Feeds one change's events to the visit deriver and writes the visits
/// they opened, changed or closed, in the change's savepoint.
fn derive_visits(
    conn: &Connection,
    work: &mut Committed,
    events: &[Event],
) -> Result<(), StoreError> {
    for event in events {
        for derived in work.visits.on_event(event) {
            super::visits::upsert_derived(conn, &derived)?;
        }
    }
    Ok(())
}

/// A storage error for each caller of a failed batch (rusqlite's error is
/// not `Clone`; the SQLite code and message are what callers act on).
fn copy_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

fn into_sqlite(e: StoreError) -> rusqlite::Error {
    match e {
        StoreError::Sqlite(e) => e,
        other => rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ABORT),
            Some(other.to_string()),
        ),
    }
}

fn answer(reply: Option<Reply>, result: Result<Applied, StoreError>) {
    if let Some(reply) = reply {
        // The caller may have gone (client disconnected); the change stands.
        let _ = reply.send(result);
    }
}
