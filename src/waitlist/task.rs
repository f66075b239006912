//! The task that makes and withdraws offers: whenever the tables or the
//! waitlist change, it compares them ([`super::offers`],
//! [`super::stale_offers`]) and asks the writer for the
//! `waitlist.ready` / withdrawals that follow. It decides from committed
//! state only, so a restart or a missed event just means the next look
//! catches up; the writer re-checks each offer (the table still free, not
//! offered to someone else), so a race with a host is refused, not doubled.

use crate::domain::{Actor, EventData};
use crate::hub::{ClientKind, Hub};
use crate::store::{Change, Store, WaitlistChange};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Most parties read per look (everything in line fits).
const LOOK_LIMIT: usize = super::MAX_WAITING;

pub async fn run(store: Store, hub: Hub, shutdown: CancellationToken) {
    let mut events = hub.subscribe(ClientKind::Internal, shutdown.child_token());
    look(&store, &hub).await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            received = events.rx.recv() => match received {
                Ok(published) if matters(&published.event.data) => look(&store, &hub).await,
                Ok(_) => {}
                // Missed events: the state is what counts, look again.
                Err(RecvError::Lagged(_)) => look(&store, &hub).await,
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// Table changes and parties joining or editing may make or break an
/// offer; the task's own `waitlist.ready` and withdrawals are answered by
/// the look that made them.
fn matters(data: &EventData) -> bool {
    data.table().is_some()
        || matches!(
            data,
            EventData::WaitlistAdded { .. }
                | EventData::WaitlistUpdated { .. }
                | EventData::WaitlistSeated { .. }
                | EventData::WaitlistLeft { .. }
        )
}

async fn look(store: &Store, hub: &Hub) {
    let parties = match store.waitlist(None, LOOK_LIMIT).await {
        Ok(parties) => parties,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the waitlist; offers wait for the next change");
            return;
        }
    };
    let tables = hub.tables();
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
