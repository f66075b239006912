//! The escalation task: wakes at the next escalation step of any open
//! alert (on the daemon's [`Wall`] clock, so tests move it by hand) and
//! asks the writer for it with `Change::EscalateAlert` (actor `system`).
//!
//! When a step is due is [`crate::alerts::next_escalation`], from stored
//! times only; the writer checks again against its own clock and does
//! nothing for a step that is not due or was taken already, so this task
//! may wake early, late or twice. It follows the open alerts through the
//! hub (their list is replaced with every committed batch), so a new,
//! acked or escalated alert moves its next wake-up.

use crate::alerts::{AlertRules, next_escalation};
use crate::clock::Wall;
use crate::domain::{Actor, AlertId};
use crate::hub::{ClientKind, Hub};
use crate::store::{Change, Store, StoreError};
use crate::systemd::Heartbeat;
use std::time::{Duration, SystemTime};

/// Pause before asking again after the writer failed a step (a storage
/// error), so a failing disk is not asked in a busy loop.
const RETRY_AFTER: Duration = Duration::from_secs(5);
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Runs until `shutdown`.
pub async fn run(
    store: Store,
    hub: Hub,
    rules: AlertRules,
    mut heartbeat: Heartbeat,
    shutdown: CancellationToken,
) {
    let wall: Wall = store.wall().clone();
    let mut sub = hub.subscribe(ClientKind::Internal, CancellationToken::new());
    let mut alerts = std::sync::Arc::clone(&sub.alerts);
    loop {
        let now = wall.now();
        let due: Vec<AlertId> = alerts
            .iter()
            .filter(|a| next_escalation(a, &rules).is_some_and(|at| at <= now))
            .map(|a| a.id)
            .collect();
        let mut failed = false;
        for id in due {
            match store
                .apply(Change::EscalateAlert { id }, Actor::System)
                .await
            {
                Ok(_) => {}
                Err(StoreError::Closed) => return,
                Err(e) => {
                    failed = true;
                    tracing::warn!(alert = id, error = ?e.to_string(), "could not escalate an alert; will retry");
                }
            }
        }
        // What the writer just committed is on the hub now.
        alerts = hub.alerts();
        let next: Option<SystemTime> = alerts
            .iter()
            .filter_map(|a| next_escalation(a, &rules))
            .min();
        let wake = async {
            match next {
                _ if failed => tokio::time::sleep(RETRY_AFTER).await,
                Some(at) => wall.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = heartbeat.tick() => heartbeat.beat(),
            _ = wake => {}
            received = sub.rx.recv() => match received {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
        alerts = hub.alerts();
    }
}
