//! SQLite storage: one writer actor, a few read connections.
//!
//! Invariants:
//! - Only the writer thread ([`writer`]) modifies the database. Every change
//!   goes to it as a [`Change`] and is answered only after its transaction
//!   has committed, so a 2xx always means "on disk".
//! - The writer commits whatever is queued in one transaction (group
//!   commit): one fsync per change when idle, many changes per fsync under
//!   load. With `synchronous = FULL` in WAL mode, a committed change
//!   survives `kill -9` and power loss.
//! - Events get strictly increasing, gap-free `seq` numbers and
//!   non-decreasing `ts` (stamped `max(now, previous ts)`, see [`writer`]).
//! - Retention removes only a prefix of seqs, and the highest removed seq
//!   is kept (`retention.pruned_through`, schema version 2): every seq
//!   above it up to the head is in the log. A reader that resumes below it
//!   is told the log is not continuous ([`EventPage::continuous`]), which
//!   the streams turn into a `reset` snapshot and `/events` into
//!   `complete: false`.
//! - Readers use their own connections (WAL lets them run beside the
//!   writer) on the blocking thread pool, never on the async runtime.

mod alerts;
mod analytics;
pub use analytics::HourRows;
mod backup;
mod bridged;
mod guests;
mod pairings;
mod reservations;
mod schema;
mod timeline;
mod visits;
mod writer;

use crate::clock::{self, Wall};
use crate::domain::{
    Actor, Event, EventData, Layout, Party, PartyId, Seq, Table, TableId, TableState, Visit,
};
use crate::hub::Hub;
use crate::metrics::Metrics;
use rusqlite::{Connection, OpenFlags, params_from_iter};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};

pub use crate::tables::Hold;
pub use backup::{BackupError, Restored, backup, restore};
pub use reservations::{NewReservation, ReservationChange, ReservationFilter, ReservationPatch};
/// The schema version this binary writes (`PRAGMA user_version`).
pub use schema::VERSION;
pub use writer::WriterConfig;

/// Most read connections kept open between queries.
const MAX_IDLE_READERS: usize = 4;

/// Commands waiting for the writer; beyond this, callers wait (HTTP
/// handlers are then slowed down instead of memory growing).
const WRITER_QUEUE: usize = 4096;

/// How long a reader waits for a lock before giving up (checkpoints can
/// briefly hold one).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("table {0} not found")]
    TableNotFound(TableId),
    /// Another thing the request names (a reservation, an alert) does not
    /// exist.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A value that is well-formed but not acceptable; names the field.
    #[error("{field}: {message}")]
    InvalidValue { field: String, message: String },
    /// A sensor-driven change lost a race with a staff change or a hold.
    #[error("change refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Invalid(String),
    /// Over a limit of what the daemon holds (open alerts): HTTP 429.
    #[error("{0}")]
    Limit(String),
    /// The file was written by a newer mesero (its schema version is above
    /// the one this binary writes). Refused before anything opens it for
    /// writing; restarting cannot fix it (see [`StoreError::is_permanent`]).
    #[error(
        "database schema version {found} is newer than this mesero supports ({supported}); \
         install the newer mesero or restore a backup"
    )]
    NewerSchema { found: usize, supported: usize },
    #[error("the store is shut down")]
    Closed,
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// The one rule for every caller: `true` when the request itself was
    /// wrong (HTTP answers 4xx, MQTT acknowledges: resending would fail
    /// again), `false` when the daemon failed it (HTTP 5xx/503, MQTT sends
    /// no acknowledgement, so the client resends).
    pub fn is_client_fault(&self) -> bool {
        match self {
            StoreError::TableNotFound(_)
            | StoreError::NotFound(_)
            | StoreError::Conflict(_)
            | StoreError::InvalidValue { .. }
            | StoreError::Refused(_)
            | StoreError::Limit(_) => true,
            StoreError::Invalid(_)
            | StoreError::NewerSchema { .. }
            | StoreError::Closed
            | StoreError::Sqlite(_)
            | StoreError::Io(_) => false,
        }
    }

    /// Whether the daemon cannot get past this by being restarted (the
    /// database is from a newer mesero): `mesero run` then exits with
    /// [`crate::cli::EX_CONFIG`], which systemd does not restart.
    pub fn is_permanent(&self) -> bool {
        matches!(self, StoreError::NewerSchema { .. })
    }
}

/// A new table from the API (`id` is chosen by the store when absent).
#[derive(Debug, Clone)]
pub struct NewTable {
    pub id: Option<TableId>,
    pub number: String,
    pub zone: String,
    pub seats: u32,
    pub layout: Layout,
    /// Tables it can be pushed together with (they must exist). The store
    /// keeps what each row is given: callers add the other side of a join
    /// in the same [`Change::All`] (the HTTP API and the seed do), and
    /// [`crate::tables::combinations`] reads joins as symmetric anyway.
    pub joins: Vec<TableId>,
    pub combined_seats: Option<u32>,
}

/// Fields of a table that may be edited; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct TablePatch {
    pub number: Option<String>,
    pub zone: Option<String>,
    pub seats: Option<u32>,
    pub x: Option<f64>,
    pub y: Option<f64>,
    pub w: Option<f64>,
    pub h: Option<f64>,
    pub shape: Option<crate::domain::Shape>,
    /// Replaces the table's joins (see [`NewTable::joins`]).
    pub joins: Option<Vec<TableId>>,
    /// `Some(None)` goes back to the table's own seats.
    pub combined_seats: Option<Option<u32>>,
}

/// A new alert from a button, the API or MQTT; `None` takes the default
/// (message: the kind's, see [`crate::alerts::message`]).
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub table: Option<TableId>,
    pub kind: crate::domain::AlertKind,
    pub priority: crate::domain::Priority,
    pub target: crate::domain::Target,
    pub message: Option<String>,
}

/// Who may overrule whom on a state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Staff win immediately.
    Staff,
    /// A sensor-driven change applies only if the table is still in
    /// `expected` and not held, so it never overwrites a racing staff change.
    Sensor { expected: TableState },
}

#[derive(Debug, Clone)]
pub enum Change {
    CreateTable(NewTable),
    UpdateTable {
        id: TableId,
        patch: TablePatch,
    },
    DeleteTable {
        id: TableId,
    },
    SetState {
        id: TableId,
        state: TableState,
        hold: Hold,
        people: Option<u32>,
        guard: Guard,
    },
    /// An event that changes no table row (sensor faults, alerts, start).
    Record {
        table: Option<TableId>,
        data: EventData,
    },
    /// Opens an alert, or merges a repeat into its source's latest one
    /// (see [`crate::alerts`]); the source is the actor.
    RaiseAlert(NewAlert),
    /// Staff answered an open alert (`acked_by` is the actor).
    AckAlert {
        id: crate::domain::AlertId,
    },
    /// The next escalation step of an open alert, if it is due by the
    /// writer's clock (else nothing happens).
    EscalateAlert {
        id: crate::domain::AlertId,
    },
    /// Deletes the longest prefix of the log (by seq) whose events were
    /// all recorded before the cutoff, and raises the watermark. With
    /// `unforwarded_before` (the upstream bridge is on), events above the
    /// bridge's watermark stay unless also recorded before that ([`bridged`]).
    Prune {
        before: SystemTime,
        unforwarded_before: Option<SystemTime>,
    },
    /// A reservation and the table changes it makes (see
    /// [`ReservationChange`]).
    Reservation(ReservationChange),
    /// Several changes as one: each sees the ones before it, all are
    /// committed or none (the first refusal is the answer), and their
    /// events get consecutive seqs and reach subscribers together. A
    /// combination of tables is seated, reserved and freed this way.
    All(Vec<Change>),
    /// The upstream broker acknowledged every event up to `through`: raises
    /// the bridge's watermark ([`bridged`]); no event.
    Forwarded {
        through: Seq,
    },
    /// The walk-in waitlist (`writer/waitlist.rs`).
    Waitlist(WaitlistChange),
    /// Stores finished visits from another system (their ids are
    /// ignored), all or none; no event.
    ImportVisits(Vec<Visit>),
    /// Derives the visits again from the event log (`store::visits::rebuild`:
    /// imported ones stay); no event.
    RebuildVisits,
    /// Deletes finished visits seated before the cutoff
    /// (`analytics.keep_days`); no event.
    PruneVisits {
        before: SystemTime,
    },
    /// Blanks what the host typed about guests (names, phones, notes) of
    /// reservations and waitlist parties that are over and dated before
    /// the cutoff, in their rows and in the stored events; no event
    /// (`store::guests`).
    PurgeGuests {
        before: SystemTime,
    },
    /// Tablet pairing (`writer/apply/pairing.rs`, [`crate::pairing`]).
    Pairing(PairingChange),
}

/// What a pairing change does; each records one `pairing.*` event. Codes
/// and tokens come as SHA-256 digests: the plain secrets never reach the
/// database.
#[derive(Debug, Clone)]
pub enum PairingChange {
    /// `pairing.created`: a code for a tablet named `name` with `role`,
    /// usable until `expires_at`; refused once `max` tablets are paired or
    /// being paired (`auth.max_paired`), or while another live pairing has
    /// the name.
    Create {
        name: String,
        role: crate::auth::Role,
        code_sha256: [u8; 32],
        expires_at: SystemTime,
        max: usize,
    },
    /// `pairing.completed`: the code (unexpired, unused, not revoked) is
    /// spent and the tablet's token is `token_sha256`; the actor is the
    /// tablet.
    Complete {
        code_sha256: [u8; 32],
        token_sha256: [u8; 32],
    },
    /// `pairing.revoked`: the tablet's token (or the unused code) stops
    /// working.
    Revoke { id: i64 },
}

/// What a waitlist change does; each records one `waitlist.*` event.
#[derive(Debug, Clone)]
pub enum WaitlistChange {
    /// `waitlist.added`; refused once [`crate::waitlist::MAX_WAITING`]
    /// parties are in line.
    Add(crate::waitlist::NewParty),
    /// `waitlist.updated`; only while the party is in line.
    Edit {
        id: PartyId,
        edit: crate::waitlist::PartyEdit,
    },
    /// `waitlist.ready`: a waiting party is offered `tables`, which must be
    /// free and not offered to anyone else.
    Offer { id: PartyId, tables: Vec<TableId> },
    /// `waitlist.updated`: a notified party's offer is withdrawn and it
    /// waits again (an offered table was taken).
    Withdraw { id: PartyId },
    /// `waitlist.seated` at `tables` (neither occupied nor reserved, with
    /// seats for the party). The tables' own changes go with it in a
    /// [`Change::All`].
    Seat { id: PartyId, tables: Vec<TableId> },
    /// `waitlist.left`.
    Leave { id: PartyId },
}

impl Change {
    /// Sets every table of a combination (or one table) to `state` as one
    /// [`Change::All`]: one batch of consecutive `table.state` events, all
    /// or none. `people` goes to the first table (a party is counted once).
    pub fn combination_state(
        tables: &[TableId],
        state: TableState,
        hold: Hold,
        people: Option<u32>,
        guard: Guard,
    ) -> Change {
        Change::All(
            tables
                .iter()
                .enumerate()
                .map(|(i, &id)| Change::SetState {
                    id,
                    state,
                    hold,
                    people: if i == 0 { people } else { None },
                    guard,
                })
                .collect(),
        )
    }
}

/// What a committed change produced.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The event, if the change changed anything.
    pub event: Option<Event>,
    /// The table after the change (or as it was, for a delete).
    pub table: Option<Table>,
    /// For [`Change::All`], what each of its changes produced, in order
    /// (`event` and `table` are then `None`).
    pub parts: Vec<Applied>,
    /// How many rows a bulk change (visits rebuilt, pruned or imported,
    /// guests purged) wrote; 0 for the others.
    pub rows: usize,
}

type Reply = oneshot::Sender<Result<Applied, StoreError>>;

enum Command {
    Apply {
        /// Boxed: a change carries a whole event payload, and the queue
        /// holds up to [`WRITER_QUEUE`] commands.
        change: Box<Change>,
        actor: Actor,
        reply: Option<Reply>,
    },
    /// Answered once everything queued before it is committed: proof that
    /// the writer thread is making progress (the watchdog's check-in); an
    /// error while its commits keep failing.
    Ping(oneshot::Sender<Result<(), StoreError>>),
    /// Commit what came before, then stop; answered when the thread is done.
    Shutdown(oneshot::Sender<()>),
}

/// Handle to the store: cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Owned by the writer thread's receiver; closed by `shutdown`.
    commands: mpsc::Sender<Command>,
    /// Idle read connections; a std mutex because it is only held to push
    /// or pop, never across an await.
    readers: Mutex<Vec<Connection>>,
    wall: Wall,
    /// `site.timezone`: what "today" is for reservations.
    zone: jiff::tz::TimeZone,
}

/// A page of the event log for replay and history.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events with a larger seq.
    pub after: Seq,
    /// Only events up to this seq (inclusive).
    pub upto: Option<Seq>,
    pub limit: usize,
    /// Type prefixes (`table` matches `table.state`); empty means all.
    pub types: Vec<String>,
    /// Table ids; empty means all.
    pub tables: Vec<TableId>,
    /// Only events by this actor (its text, e.g. `staff:dev-staff`).
    pub actor: Option<String>,
    /// Only events recorded at or after this time.
    pub from_time: Option<SystemTime>,
    /// Only events recorded at or before this time.
    pub until_time: Option<SystemTime>,
}

/// A page of events and whether the log still reaches back to the query's
/// start (false once retention deleted events after `after`, i.e. `after`
/// is below the `pruned_through` watermark).
#[derive(Debug)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub continuous: bool,
    /// The seq the page starts after, once time bounds are applied (what
    /// a client passes as `since` to page on when `events` is empty).
    pub after: Seq,
}

impl Store {
    /// Opens (creating if needed) and migrates the database, seeds an empty
    /// floor plan, and starts the writer thread, on the system clock.
    pub fn open(
        config: &crate::config::Config,
        hub: Hub,
        metrics: Arc<Metrics>,
    ) -> Result<Store, StoreError> {
        Store::open_at(config, hub, metrics, Wall::system())
    }

    /// [`Store::open`] with the clock events are stamped by; everyone who
    /// holds the store reads "now" from [`Store::wall`].
    pub fn open_at(
        config: &crate::config::Config,
        hub: Hub,
        metrics: Arc<Metrics>,
        wall: Wall,
    ) -> Result<Store, StoreError> {
        let path = config.storage.path.clone();
        schema::refuse_newer(&path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Invalid(format!(
                "{} cannot use WAL mode (got {mode}); is it on a network filesystem?",
                path.display()
            )));
        }
        // FULL: the WAL is fsynced at every commit, so an acknowledged change
        // survives a power cut (NORMAL would only survive a process crash).
        conn.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&mut conn)?;

        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let mut writer = writer::Writer::new(
            conn,
            WriterConfig {
                batch_max: config.storage.batch_max,
                alerts: config.alerts,
                zone: config.site.zone.clone(),
            },
            hub,
            metrics,
            wall.clone(),
        )?;
        let seeded = writer.seed(&config.tables)?;
        if seeded > 0 {
            tracing::info!(tables = seeded, "empty database seeded from the config");
        }
        std::thread::Builder::new()
            .name("mesero-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                commands: tx,
                readers: Mutex::new(Vec::new()),
                wall,
                zone: config.site.zone.clone(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The daemon's clock (the one the writer stamps events with).
    pub fn wall(&self) -> &Wall {
        &self.inner.wall
    }

    /// Commits `change` and returns what it produced; the event (if any) is
    /// published to live subscribers after the commit.
    pub async fn apply(&self, change: Change, actor: Actor) -> Result<Applied, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Apply {
                change: Box::new(change),
                actor,
                reply: Some(reply),
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Returns once the writer has worked through everything queued
    /// before this call; `Closed` if it has stopped, an error if its last
    /// [`writer::UNHEALTHY_AFTER_FAILED_BATCHES`] batches stored nothing
    /// because of storage errors. Never returns while the writer thread is
    /// stuck.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Ping(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Commits the remaining queue and stops the writer thread.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Shutdown(done))
            .await
            .is_ok()
        {
            // The writer answers after its final commit.
            let _ = finished.await;
        }
    }

    /// Runs `f` on a read connection on the blocking pool.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut idle| idle.pop());
            let mut conn = match pooled {
                Some(conn) => conn,
                None => open_reader(&inner.path)?,
            };
            let result = f(&mut conn);
            if let Ok(mut idle) = inner.readers.lock() {
                if idle.len() < MAX_IDLE_READERS {
                    idle.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("read task failed: {e}")))?
    }

    /// A page of the event log (see [`EventQuery`]).
    pub async fn events(&self, query: EventQuery) -> Result<EventPage, StoreError> {
        self.read(move |conn| query_events(conn, &query)).await
    }

    /// The upstream bridge's watermark: the highest seq acknowledged
    /// upstream, `None` before the bridge first ran.
    pub async fn bridged_through(&self) -> Result<Option<Seq>, StoreError> {
        self.read(|conn| bridged::watermark(conn)).await
    }

    /// The highest seq retention has deleted (0: none).
    pub async fn pruned_through(&self) -> Result<Seq, StoreError> {
        self.read(|conn| pruned_through(conn)).await
    }

    /// The tables as stored (the hub holds the same in memory).
    pub async fn tables(&self) -> Result<Vec<Table>, StoreError> {
        self.read(|conn| load_tables(conn)).await
    }

    /// Waitlist parties in the order they were added: those in line, or
    /// also the seated and gone ones added at or after `since` (an RFC
    /// 3339 time), at most `limit`.
    pub async fn waitlist(
        &self,
        since: Option<String>,
        limit: usize,
    ) -> Result<Vec<Party>, StoreError> {
        self.read(move |conn| load_parties(conn, since.as_deref(), limit))
            .await
    }

    /// Visits seated at or after `from` and before `to` (either bound
    /// optional), in the order they were seated.
    pub async fn visits(
        &self,
        from: Option<SystemTime>,
        to: Option<SystemTime>,
    ) -> Result<Vec<Visit>, StoreError> {
        let (from, to) = (from.map(clock::format), to.map(clock::format));
        self.read(move |conn| visits::load(conn, from.as_deref(), to.as_deref()))
            .await
    }
}

/// See [`Store::waitlist`]; a row that does not read back as a party (a
/// newer mesero's) is skipped with a warning rather than failing the list.
pub(crate) fn load_parties(
    conn: &Connection,
    since: Option<&str>,
    limit: usize,
) -> Result<Vec<Party>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT id, data FROM waitlist
          WHERE status IN ('waiting', 'notified') OR (?1 IS NOT NULL AND added_at >= ?1)
          ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![since, limit], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut parties = Vec::new();
    for row in rows {
        let (id, data) = row?;
        match serde_json::from_str::<Party>(&data) {
            Ok(party) => parties.push(party),
            Err(e) => {
                tracing::warn!(id, error = %e, "skipping a waitlist row this mesero cannot read")
            }
        }
    }
    Ok(parties)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

fn query_events(conn: &mut Connection, q: &EventQuery) -> Result<EventPage, StoreError> {
    use rusqlite::types::Value;
    // One read transaction, so "oldest kept" and the rows agree even if
    // retention runs meanwhile.
    let tx = conn.transaction()?;
    let pruned = pruned_through(&tx)?;
    let (mut after, mut upto) = (q.after, q.upto);
    // Time bounds become seq bounds (see `timeline`).
    let mut reaches_back = true;
    if let Some(t) = q.from_time {
        let first = timeline::first_seq_past(&tx, &crate::clock::format(t), timeline::Side::From)?;
        after = after.max(first.saturating_sub(1));
        // Everything kept is at or after the time: deleted events may have
        // been too.
        reaches_back = pruned == 0 || first > pruned + 1;
    }
    if let Some(t) = q.until_time {
        let past = timeline::first_seq_past(&tx, &crate::clock::format(t), timeline::Side::Until)?;
        let last = past.saturating_sub(1);
        upto = Some(upto.map_or(last, |u| u.min(last)));
    }
    // Every seq above the watermark (up to the head) is in the log; any
    // hole is at or below it.
    let continuous = after >= pruned && reaches_back;
    let start = after;
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let mut sql =
        String::from("SELECT seq, ts, type, table_id, actor, data FROM events WHERE seq > ?");
    let mut args: Vec<Value> = vec![Value::Integer(after)];
    if let Some(actor) = &q.actor {
        sql.push_str(" AND actor = ?");
        args.push(Value::Text(actor.clone()));
    }
    if let Some(upto) = upto {
        sql.push_str(" AND seq <= ?");
        args.push(Value::Integer(i64::try_from(upto).unwrap_or(i64::MAX)));
    }
    if !q.types.is_empty() {
        let alts: Vec<&str> = q
            .types
            .iter()
            .map(|_| "(type = ? OR type LIKE ?)")
            .collect();
        sql.push_str(&format!(" AND ({})", alts.join(" OR ")));
        for t in &q.types {
            args.push(Value::Text(t.clone()));
            args.push(Value::Text(format!("{t}.%")));
        }
    }
    if !q.tables.is_empty() {
        let marks = vec!["?"; q.tables.len()].join(",");
        sql.push_str(&format!(" AND table_id IN ({marks})"));
        args.extend(q.tables.iter().map(|&t| Value::Integer(t)));
    }
    sql.push_str(" ORDER BY seq LIMIT ?");
    args.push(Value::Integer(i64::try_from(q.limit).unwrap_or(i64::MAX)));
    let events = {
        let mut stmt = tx.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), event_from_row)?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    tx.commit()?;
    Ok(EventPage {
        events,
        continuous,
        after: start,
    })
}

/// An event from a row of `SELECT seq, ts, type, table_id, actor, data`.
pub(crate) fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let kind: String = row.get(2)?;
    let actor: String = row.get(4)?;
    let data: String = row.get(5)?;
    let data = serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
    Ok(Event {
        seq: row.get::<_, i64>(0)?.try_into().unwrap_or_default(),
        ts: row.get(1)?,
        table: row.get(3)?,
        // Only the writer fills this column, from an `Actor`; a row
        // it cannot read (edited by hand) is shown as the system's
        // rather than failing the whole page.
        actor: actor.parse().unwrap_or(Actor::System),
        // A type or shape this binary does not know (a newer mesero
        // wrote it) is passed through as it is stored.
        data: EventData::from_parts(&kind, data),
    })
}

/// The highest seq retention has deleted (0: none).
pub(crate) fn pruned_through(conn: &Connection) -> Result<Seq, StoreError> {
    let through: i64 = conn.query_row("SELECT pruned_through FROM retention", [], |r| r.get(0))?;
    Ok(Seq::try_from(through).unwrap_or_default())
}

pub(crate) fn load_tables(conn: &Connection) -> Result<Vec<Table>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, number, zone, seats, x, y, w, h, shape, state, people, since, hold_until, reservation,
                joins, combined_seats
         FROM tables ORDER BY id",
    )?;
    let rows = stmt.query_map([], |row| {
        let shape: String = row.get(8)?;
        let state: String = row.get(9)?;
        Ok(Table {
            id: row.get(0)?,
            number: row.get(1)?,
            zone: row.get(2)?,
            seats: row.get(3)?,
            layout: Layout {
                x: row.get(4)?,
                y: row.get(5)?,
                w: row.get(6)?,
                h: row.get(7)?,
                shape: shape.parse().unwrap_or_default(),
            },
            // A state this binary does not know (a newer mesero wrote it)
            // is shown as unknown rather than guessed.
            state: state.parse().unwrap_or(TableState::Unknown),
            people: row.get(10)?,
            since: row.get(11)?,
            hold_until: row.get(12)?,
            reservation: row.get(13)?,
            // Written by the writer from a checked list; anything else
            // (edited by hand) reads as no joins.
            joins: serde_json::from_str(&row.get::<_, String>(14)?).unwrap_or_default(),
            combined_seats: row.get(15)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
