//! The reservation scheduler: one task that holds tables before a
//! reservation and records no-shows after its grace time.
//!
//! It keeps no timers of its own: every pass reads the booked
//! reservations from SQLite and the tables from the hub, does what is due
//! as of `store.wall().now()`, and sleeps until the next instant anything
//! becomes due (on [`crate::clock::Wall::sleep_until`], so a manual clock
//! in tests and an NTP step on the Pi are both followed), or until a
//! reservation changes or a table frees. Because the deadlines are
//! recomputed from the database, a restart (even between the hold and the
//! reservation) resumes exactly where it was, and a daemon that was down
//! past a deadline does what is due at once instead of skipping it.
//!
//! What a pass does, per booked reservation (instants, never local clock
//! times, so a DST change neither repeats nor skips anything):
//! - from `at - hold_before` to `at + grace`: each of its tables that is
//!   free (and not held for another reservation) becomes reserved for it;
//! - at `at + grace`: `reservation.no_show` and its tables still reserved
//!   for it become free, in one batch.
//!
//! Each is a state change (status, table state) that the writer checks,
//! so nothing fires twice: a second pass finds the status changed or the
//! table already reserved.

use crate::config::ReservationsConfig;
use crate::domain::{Actor, Event, EventData, Table, TableState};
use crate::hub::{ClientKind, Hub};
use crate::reservations::Booking;
use crate::store::{Change, ReservationChange, Store, StoreError};
use crate::systemd::Heartbeat;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// After a failed pass (storage error), the next one is tried this much
/// later.
const RETRY: Duration = Duration::from_secs(5);

/// Starts the scheduler, tracked by `tasks` and ended by `shutdown`.
pub fn start(
    store: Store,
    hub: &Hub,
    config: ReservationsConfig,
    heartbeat: Heartbeat,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) {
    // Subscribed before the first pass, so no change after it is missed.
    let sub = hub.subscribe(ClientKind::Internal, CancellationToken::new());
    tasks.spawn(run(store, hub.clone(), config, sub.rx, heartbeat, shutdown));
}

async fn run(
    store: Store,
    hub: Hub,
    config: ReservationsConfig,
    mut events: tokio::sync::broadcast::Receiver<Arc<crate::hub::Published>>,
    mut heartbeat: Heartbeat,
    shutdown: CancellationToken,
) {
    let wall = store.wall().clone();
    loop {
        let next = match pass(&store, &hub, &config).await {
            Ok(next) => next,
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = ?e, "reservation pass failed; retrying");
                Some(wall.now() + RETRY)
            }
        };
        let sleep = async {
            match next {
                Some(at) => wall.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = &mut sleep => break,
                _ = heartbeat.tick() => heartbeat.beat(),
                received = events.recv() => match received {
                    Ok(p) if wakes(&p.event) => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

/// Whether an event can make something due: a reservation changed, or a
/// table became free (a reservation in its window may take it).
fn wakes(event: &Event) -> bool {
    match &event.data {
        EventData::TableState { to, .. } => *to == TableState::Free,
        EventData::TableCreated { .. } | EventData::TableUpdated { .. } => false,
        data => data.reservation().is_some(),
    }
}

/// Does what is due now; returns when the next thing becomes due.
async fn pass(
    store: &Store,
    hub: &Hub,
    config: &ReservationsConfig,
) -> Result<Option<SystemTime>, StoreError> {
    let now = store.wall().now();
    let booked = store.booked().await?;
    let tables = hub.tables();
    let mut next: Option<SystemTime> = None;
    let mut due = |t: SystemTime| next = Some(next.map_or(t, |n| n.min(t)));
    for b in &booked {
        let hold_from = b.at.checked_sub(config.hold_before).unwrap_or(b.at);
        let ends = b.at + config.grace;
        if now >= ends {
            commit(store, no_show(b), b, "no-show").await?;
            continue;
        }
        due(ends);
        if now < hold_from {
            due(hold_from);
            continue;
        }
        let holds = holds(b, &tables);
        if !holds.is_empty() {
            commit(store, Change::All(holds), b, "hold").await?;
        }
    }
    Ok(next)
}

/// The no-show and the release of its tables, as one batch.
pub fn no_show(b: &Booking) -> Change {
    let mut parts = vec![Change::Reservation(ReservationChange::NoShow { id: b.id })];
    parts.extend(release(b));
    Change::All(parts)
}

/// Releases of each table of `b` (each a no-op unless the table is held
/// for or linked to it).
pub fn release(b: &Booking) -> Vec<Change> {
    b.tables
        .iter()
        .map(|&table| {
            Change::Reservation(ReservationChange::ReleaseTable {
                table,
                reservation: b.id,
            })
        })
        .collect()
}

/// Holds for the tables of `b` that are free and not held for another.
fn holds(b: &Booking, tables: &[Table]) -> Vec<Change> {
    tables
        .iter()
        .filter(|t| b.tables.contains(&t.id))
        .filter(|t| t.state == TableState::Free && t.reservation.is_none_or(|r| r == b.id))
        .map(|t| {
            Change::Reservation(ReservationChange::HoldTable {
                table: t.id,
                reservation: b.id,
            })
        })
        .collect()
}

/// Commits one scheduled change; a refusal (a host changed the
/// reservation meanwhile) is logged and the next pass re-reads.
async fn commit(store: &Store, change: Change, b: &Booking, what: &str) -> Result<(), StoreError> {
    match store.apply(change, Actor::System).await {
        Ok(_) => {
            tracing::info!(reservation = b.id, tables = ?b.tables, what, "reservation");
            Ok(())
        }
        Err(e) if e.is_client_fault() => {
            tracing::info!(reservation = b.id, what, error = ?e.to_string(), "scheduled reservation change refused");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
