//! The hub: committed events fan out to live subscribers.
//!
//! Invariants:
//! - The writer calls [`Hub::publish`] only after the commit; the hub never
//!   sees an event that is not on disk.
//! - Publishing and subscribing take the same short lock, so a subscriber
//!   gets a snapshot (`head`, tables, open alerts) that is exactly consistent with the
//!   position of its receiver: every event after `head` reaches it, none
//!   before.
//! - Each event is rendered once (SSE frame and JSON text, the text
//!   checked as UTF-8 once for the WebSocket), then shared by every client
//!   as reference-counted bytes.
//! - Each client's queue is its position in one shared ring of
//!   `client_queue` events (a tokio broadcast channel): publishing never
//!   waits for a client, a stalled client costs no memory beyond the ring,
//!   and the reaper closes any client that falls a whole ring behind, so it
//!   reconnects and resumes by seq instead of being silently skipped.

use crate::domain::{Alert, Event, Seq, Table};
use crate::metrics::Metrics;
use crate::turns::Predictor;
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How often the reaper looks for clients that fell a ring behind.
const REAP_EVERY: Duration = Duration::from_millis(500);

/// An event as it goes out: rendered once, shared by all clients.
#[derive(Debug)]
pub struct Published {
    pub event: Event,
    /// `id: <seq>\nevent: <type>\ndata: <json>\n\n` ([`crate::sse::frame`]).
    pub sse: Bytes,
    /// The event JSON, UTF-8 (an MQTT payload).
    pub json: Bytes,
    /// The same bytes as a WebSocket text payload: built here from the
    /// `String` (no copy, no second UTF-8 check), so each WebSocket client
    /// sends a clone instead of checking the event again.
    pub text: Utf8Bytes,
}

impl Published {
    pub fn new(event: Event) -> Published {
        let json = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
        Published::rendered(event, json)
    }

    /// [`Published::new`] with the tables it carries predicted
    /// ([`Predictor::event_json`]): what stream clients get.
    pub fn predicted(event: Event, predictor: &Predictor) -> Published {
        let json = predictor.event_json(&event);
        Published::rendered(event, json)
    }

    fn rendered(event: Event, json: String) -> Published {
        let sse = Bytes::from(crate::sse::frame(event.seq, event.kind(), &json));
        let text = Utf8Bytes::from(json);
        Published {
            event,
            sse,
            json: Bytes::from(text.clone()),
            text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Sse,
    Ws,
    /// In-process consumers (occupancy engine, MQTT bridge): not counted
    /// as connections, never reaped.
    Internal,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    /// Held only for the few instructions of publish/subscribe (std mutex:
    /// never across an await).
    state: Mutex<State>,
    /// Connected stream clients, for the reaper. Same locking rule.
    clients: Mutex<HashMap<u64, Arc<ClientEntry>>>,
    next_client: AtomicU64,
    capacity: usize,
    metrics: Arc<Metrics>,
    /// The turn-time model tables are predicted with when rendered
    /// (`turns::task` refits it).
    predictor: Predictor,
}

struct State {
    head: Seq,
    tables: Arc<Vec<Table>>,
    /// The open alerts at `head`, oldest first.
    alerts: Arc<Vec<Alert>>,
    sender: broadcast::Sender<Arc<Published>>,
}

struct ClientEntry {
    kind: ClientKind,
    /// Highest seq this client has taken off its receiver.
    seen: AtomicU64,
    /// Cancelling it closes the client's connection.
    kill: CancellationToken,
}

/// A live subscription: a receiver and the snapshot it starts from.
pub struct Subscription {
    pub rx: broadcast::Receiver<Arc<Published>>,
    pub head: Seq,
    pub tables: Arc<Vec<Table>>,
    /// The open alerts at `head`.
    pub alerts: Arc<Vec<Alert>>,
    guard: ClientGuard,
}

impl Subscription {
    /// Records that the client has taken `seq` off its receiver.
    pub fn seen(&self, seq: Seq) {
        if let Some(entry) = &self.guard.entry {
            entry.seen.store(seq, Ordering::Relaxed);
        }
    }
}

/// Unregisters a client (and fixes the connection gauges) on drop.
struct ClientGuard {
    hub: Arc<Inner>,
    id: u64,
    entry: Option<Arc<ClientEntry>>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            if let Ok(mut clients) = self.hub.clients.lock() {
                clients.remove(&self.id);
            }
            gauge(&self.hub.metrics, entry.kind, -1);
        }
    }
}

fn gauge(metrics: &Metrics, kind: ClientKind, delta: i64) {
    match kind {
        ClientKind::Sse => metrics.sse_clients.fetch_add(delta, Ordering::Relaxed),
        ClientKind::Ws => metrics.ws_clients.fetch_add(delta, Ordering::Relaxed),
        ClientKind::Internal => 0,
    };
}

impl Hub {
    /// `capacity`: how many events a client may fall behind.
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> Hub {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Hub {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    head: 0,
                    tables: Arc::new(Vec::new()),
                    alerts: Arc::new(Vec::new()),
                    sender,
                }),
                clients: Mutex::new(HashMap::new()),
                next_client: AtomicU64::new(1),
                capacity,
                metrics,
                predictor: Predictor::default(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State half-written
        // (every write is a plain assignment), so a poisoned lock is usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the starting point (the writer, on open).
    pub fn reset(&self, head: Seq, tables: Arc<Vec<Table>>) {
        let mut state = self.state();
        state.head = head;
        state.tables = tables;
    }

    /// Sets the open alerts at the starting point (the writer, on open).
    pub fn reset_alerts(&self, alerts: Arc<Vec<Alert>>) {
        self.state().alerts = alerts;
    }

    /// [`Hub::publish`], and the open alerts after the events, under the
    /// same lock (the writer).
    pub fn publish_with_alerts(
        &self,
        events: Vec<Event>,
        tables: Arc<Vec<Table>>,
        alerts: Arc<Vec<Alert>>,
    ) {
        self.publish_inner(events, tables, Some(alerts));
    }

    /// Publishes committed events (in seq order) and the tables after them.
    pub fn publish(&self, events: Vec<Event>, tables: Arc<Vec<Table>>) {
        self.publish_inner(events, tables, None);
    }

    fn publish_inner(
        &self,
        events: Vec<Event>,
        tables: Arc<Vec<Table>>,
        alerts: Option<Arc<Vec<Alert>>>,
    ) {
        let rendered: Vec<_> = events
            .into_iter()
            .map(|e| Arc::new(Published::predicted(e, &self.inner.predictor)))
            .collect();
        let mut state = self.state();
        for p in rendered {
            state.head = p.event.seq;
            // An error only means nobody is subscribed right now.
            let _ = state.sender.send(p);
        }
        state.tables = tables;
        if let Some(alerts) = alerts {
            state.alerts = alerts;
        }
    }

    /// The head seq and the tables at it, read together.
    pub fn snapshot(&self) -> (Seq, Arc<Vec<Table>>) {
        let state = self.state();
        (state.head, Arc::clone(&state.tables))
    }

    /// The head seq, the tables and the open alerts at it, read together.
    pub fn view(&self) -> (Seq, Arc<Vec<Table>>, Arc<Vec<Alert>>) {
        let state = self.state();
        (
            state.head,
            Arc::clone(&state.tables),
            Arc::clone(&state.alerts),
        )
    }

    /// The open alerts at the head.
    pub fn alerts(&self) -> Arc<Vec<Alert>> {
        Arc::clone(&self.state().alerts)
    }

    /// The turn-time model shared by everything that shows a table.
    pub fn predictor(&self) -> &Predictor {
        &self.inner.predictor
    }

    pub fn head(&self) -> Seq {
        self.state().head
    }

    pub fn tables(&self) -> Arc<Vec<Table>> {
        Arc::clone(&self.state().tables)
    }

    /// Subscribes; `kill` is cancelled if the client falls a ring behind.
    pub fn subscribe(&self, kind: ClientKind, kill: CancellationToken) -> Subscription {
        let (rx, head, tables, alerts) = {
            let state = self.state();
            (
                state.sender.subscribe(),
                state.head,
                Arc::clone(&state.tables),
                Arc::clone(&state.alerts),
            )
        };
        let id = self.inner.next_client.fetch_add(1, Ordering::Relaxed);
        let entry = (kind != ClientKind::Internal).then(|| {
            let entry = Arc::new(ClientEntry {
                kind,
                seen: AtomicU64::new(head),
                kill,
            });
            if let Ok(mut clients) = self.inner.clients.lock() {
                clients.insert(id, Arc::clone(&entry));
            }
            gauge(&self.inner.metrics, kind, 1);
            entry
        });
        Subscription {
            rx,
            head,
            tables,
            alerts,
            guard: ClientGuard {
                hub: Arc::clone(&self.inner),
                id,
                entry,
            },
        }
    }

    /// Closes clients that fell a whole ring behind, until `shutdown`.
    ///
    /// A stalled client's task is not polled (its socket is full), so it
    /// cannot notice its own lag; this task notices for it.
    pub async fn reap_slow_clients(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(REAP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let head = self.head();
            let limit = u64::try_from(self.inner.capacity).unwrap_or(u64::MAX);
            let slow: Vec<Arc<ClientEntry>> = match self.inner.clients.lock() {
                Ok(clients) => clients
                    .values()
                    .filter(|c| head.saturating_sub(c.seen.load(Ordering::Relaxed)) >= limit)
                    .filter(|c| !c.kill.is_cancelled())
                    .cloned()
                    .collect(),
                Err(_) => continue,
            };
            for client in slow {
                self.inner
                    .metrics
                    .slow_clients_closed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    kind = ?client.kind,
                    behind = head.saturating_sub(client.seen.load(Ordering::Relaxed)),
                    "closing a stream client that fell too far behind (it will resume by seq)"
                );
                client.kill.cancel();
            }
        }
    }
}
