//! Keeps the hub's [`super::Predictor`] fitted: at start, after a table
//! stops being occupied (a visit ended: one more turn time), and every
//! [`REFIT_EVERY`] on the daemon's wall clock (imported history, open
//! visits getting older). The fit reads the last [`HISTORY`] of visits
//! from SQLite and runs on the blocking pool, never on the async runtime;
//! table changes that arrive during a fit are answered by one more fit.

use super::model::Model;
use crate::domain::{EventData, TableState};
use crate::hub::{ClientKind, Hub};
use crate::store::Store;
use jiff::tz::TimeZone;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

/// How often the model is refitted without a visit ending.
pub const REFIT_EVERY: Duration = Duration::from_secs(5 * 60);
/// How far back visits are learned from (older habits fade out).
pub const HISTORY: Duration = Duration::from_secs(120 * 24 * 3600);

pub async fn run(store: Store, hub: Hub, zone: TimeZone, shutdown: CancellationToken) {
    let mut events = hub.subscribe(ClientKind::Internal, shutdown.child_token());
    refit(&store, &hub, &zone).await;
    loop {
        let next = store.wall().now() + REFIT_EVERY;
        let again = tokio::select! {
            _ = shutdown.cancelled() => return,
            () = store.wall().sleep_until(next) => true,
            received = events.rx.recv() => match received {
                Ok(published) => ended_a_visit(&published.event.data),
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            },
        };
        if again {
            // What queued up meanwhile is covered by this fit.
            while let Ok(_) | Err(TryRecvError::Lagged(_)) = events.rx.try_recv() {}
            refit(&store, &hub, &zone).await;
        }
    }
}

/// A table that was occupied is not any more.
fn ended_a_visit(data: &EventData) -> bool {
    matches!(data, EventData::TableState { from: TableState::Occupied, to, .. } if *to != TableState::Occupied)
}

async fn refit(store: &Store, hub: &Hub, zone: &TimeZone) {
    let now = store.wall().now();
    let since = now.checked_sub(HISTORY);
    let visits = match store.visits(since, None).await {
        Ok(visits) => visits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read visits; the turn-time model stays as it was");
            return;
        }
    };
    let zone = zone.clone();
    let started = Instant::now();
    let fitted = tokio::task::spawn_blocking(move || {
        let n = visits.len();
        (Model::fit(&visits, &zone, now), n)
    })
    .await;
    match fitted {
        Ok((model, n)) => {
            tracing::debug!(
                visits = n,
                fitted = model.is_some(),
                took_ms = started.elapsed().as_millis() as u64,
                "turn-time model refitted"
            );
            hub.predictor().replace(model);
        }
        Err(e) => tracing::warn!(error = %e, "the turn-time fit failed; the model stays as it was"),
    }
}
