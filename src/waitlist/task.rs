//! The task that makes and withdraws offers: whenever the tables or the
//! waitlist change, it compares them ([`super::offers`],
//! [`super::stale_offers`]) and asks the writer for the
//! `waitlist.ready` / withdrawals that follow. It decides from committed
//! state only, so a restart or a missed event just means the next look
//! catches up; the writer re-checks each offer (the table still free, not
//! offered to someone else), so a race with a host is refused, not doubled.
//!
//! A free table with a booked reservation due within `waitlist.turn_time`
//! is not offered (a walk-in seated there would still be eating when the
//! reservation arrives), and an offer of it is withdrawn once the
//! reservation comes that close.

use crate::domain::{Actor, EventData, Table, TableId, TableState};
use crate::hub::{ClientKind, Hub};
use crate::store::{Change, Store, WaitlistChange};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Most parties read per look (everything in line fits).
const LOOK_LIMIT: usize = super::MAX_WAITING;

/// How often the task looks again without a change, so a table whose
/// reservation comes within `turn` is taken back from the line in time.
const LOOK_EVERY: Duration = Duration::from_secs(60);

pub async fn run(store: Store, hub: Hub, turn: Duration, shutdown: CancellationToken) {
    let mut events = hub.subscribe(ClientKind::Internal, shutdown.child_token());
    look(&store, &hub, turn).await;
    loop {
        let next = store.wall().now() + LOOK_EVERY;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = store.wall().sleep_until(next) => look(&store, &hub, turn).await,
            received = events.rx.recv() => match received {
                Ok(published) if matters(&published.event.data) => look(&store, &hub, turn).await,
                Ok(_) => {}
                // Missed events: the state is what counts, look again.
                Err(RecvError::Lagged(_)) => look(&store, &hub, turn).await,
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// The tables as the line sees them: one held for a booked reservation
/// that starts within `turn` (or has started) counts as reserved.
async fn for_walk_ins(store: &Store, tables: &[Table], turn: Duration) -> Vec<Table> {
    walk_in_view(store, tables, turn).await.0
}

/// [`for_walk_ins`] and the booked reservations still to end (what a
/// quote simulates against).
pub async fn walk_in_view(
    store: &Store,
    tables: &[Table],
    turn: Duration,
) -> (Vec<Table>, Vec<super::Booked>) {
    let now = store.wall().now();
    let booked: Vec<super::Booked> = match store.booked().await {
        Ok(booked) => booked
            .into_iter()
            .filter_map(|b| {
                let end = b.at.checked_add(b.duration)?;
                (end > now).then_some(super::Booked {
                    tables: b.tables,
                    at: b.at,
                    end,
                })
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read reservations; offering tables as they are");
            Vec::new()
        }
    };
    let soon: Vec<TableId> = booked
        .iter()
        .filter(|b| b.at <= now + turn)
        .flat_map(|b| b.tables.iter().copied())
        .collect();
    let tables = tables
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if t.state == TableState::Free && soon.contains(&t.id) {
                t.state = TableState::Reserved;
            }
            t
        })
        .collect();
    (tables, booked)
}

/// Table changes, reservations, and parties joining or editing may make
/// or break an offer; the task's own `waitlist.ready` and withdrawals are answered by
/// the look that made them.
fn matters(data: &EventData) -> bool {
    data.table().is_some()
        || data.reservation().is_some()
        || matches!(
            data,
            EventData::WaitlistAdded { .. }
                | EventData::WaitlistUpdated { .. }
                | EventData::WaitlistSeated { .. }
                | EventData::WaitlistLeft { .. }
        )
}

async fn look(store: &Store, hub: &Hub, turn: Duration) {
    let parties = match store.waitlist(None, LOOK_LIMIT).await {
        Ok(parties) => parties,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the waitlist; offers wait for the next change");
            return;
        }
    };
    let tables = for_walk_ins(store, &hub.tables(), turn).await;
    let mut changes: Vec<WaitlistChange> = super::stale_offers(&tables, &parties)
        .into_iter()
        .map(|id| WaitlistChange::Withdraw { id })
        .collect();
    let withdrawn: Vec<_> = parties
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if changes
                .iter()
                .any(|c| matches!(c, WaitlistChange::Withdraw { id } if *id == p.id))
            {
                p.status = crate::domain::PartyStatus::Waiting;
                p.offered.clear();
            }
            p
        })
        .collect();
    changes.extend(
        super::offers(&tables, &withdrawn)
            .into_iter()
            .map(|(id, tables)| WaitlistChange::Offer { id, tables }),
    );
    for change in changes {
        // A refusal is a race lost to a host (the party was seated, the
        // table taken): the event that caused it brings another look.
        if let Err(e) = store.apply(Change::Waitlist(change), Actor::System).await {
            if e.is_client_fault() {
                tracing::debug!(error = %e, "waitlist offer refused");
            } else {
                tracing::warn!(error = %e, "cannot store a waitlist offer");
            }
        }
    }
}
