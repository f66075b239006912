//! One client's ordered view of the event log, shared by SSE and WebSocket.
//!
//! A feed starts in one of three ways:
//! - no `since`: a snapshot, then live events;
//! - `since` within the kept log: the events after it, replayed from SQLite
//!   (so it works across restarts), then live events;
//! - `since` below retention's `pruned_through` watermark, i.e. some event
//!   after it was deleted (or newer than anything recorded): a snapshot
//!   with `reset: true`, then live events. The store decides this per page
//!   ([`crate::store::EventPage::continuous`]), so retention running during
//!   a replay also ends in a reset, never in a silent gap.
//!
//! No gap, no duplicate: the feed subscribes to the hub before anything
//! else, so the snapshot/replay ends exactly at the subscription's `head`,
//! and live events at or below the feed's position are skipped.
//!
//! Filters: `tables` keeps events (and snapshot tables and alerts) of
//! those tables; `types` keeps events whose type has one of the prefixes;
//! `targets` keeps alert events (and snapshot alerts) for one of those
//! targets, an alert for `all` matching every target filter, and does not
//! touch other events (combine it with `types=alert` for alerts only).

use crate::domain::{Alert, Event, EventType, Seq, Table, TableId, Target};
use crate::hub::{ClientKind, Hub, Published, Subscription};
use crate::store::{EventQuery, Store, StoreError};
use serde_json::json;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

/// Events fetched from SQLite per replay query.
const REPLAY_PAGE: usize = 500;

/// Which events a client wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Table ids; empty means all.
    pub tables: Vec<TableId>,
    /// Type prefixes (`table` matches `table.state`); empty means all.
    pub types: Vec<String>,
    /// Alert targets; empty means all (see the module doc).
    pub targets: Vec<Target>,
}

impl Filter {
    /// Parses `?tables=1,4,7`; `param` names the parameter in errors.
    pub fn parse_tables(param: &str, value: &str) -> Result<Vec<TableId>, String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<TableId>()
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| format!("{param}: {s:?} is not a table id"))
            })
            .collect()
    }

    /// Parses `?types=table,alert`: each entry must be an event type or a
    /// prefix of one ending at a dot (`table`, `reservation`).
    pub fn parse_types<'a>(
        param: &str,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<String>, String> {
        values
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let known = EventType::ALL
                    .iter()
                    .any(|t| EventType::matches_prefix(t.as_str(), s));
                if known {
                    Ok(s.to_string())
                } else {
                    Err(format!(
                        "{param}: {s:?} is not an event type or type prefix (e.g. table, alert, table.state)"
                    ))
                }
            })
            .collect()
    }

    /// Parses `?targets=kitchen,bar` (alert targets).
    pub fn parse_targets<'a>(
        param: &str,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Target>, String> {
        values
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|e| format!("{param}: {e}")))
            .collect()
    }

    fn target_ok(&self, target: Target) -> bool {
        self.targets.is_empty() || target == Target::All || self.targets.contains(&target)
    }

    pub fn matches(&self, event: &Event) -> bool {
        let table_ok =
            self.tables.is_empty() || event.table.is_some_and(|t| self.tables.contains(&t));
        let type_ok = self.types.is_empty()
            || self
                .types
                .iter()
                .any(|p| EventType::matches_prefix(event.kind(), p));
        let target_ok = event
            .data
            .alert_target()
            .is_none_or(|target| self.target_ok(target));
        table_ok && type_ok && target_ok
    }

    fn alerts_of(&self, alerts: &[Alert]) -> Vec<Alert> {
        alerts
            .iter()
            .filter(|a| self.tables.is_empty() || a.table.is_some_and(|t| self.tables.contains(&t)))
            .filter(|a| self.target_ok(a.target))
            .cloned()
            .collect()
    }

    fn tables_of(&self, tables: &[Table]) -> Vec<Table> {
        tables
            .iter()
            .filter(|t| self.tables.is_empty() || self.tables.contains(&t.id))
            .cloned()
            .collect()
    }
}

/// What a feed yields.
#[derive(Debug)]
pub enum Item {
    /// The state at `seq`; `data` is the snapshot object of SPEC §2.
    Snapshot {
        seq: Seq,
        data: serde_json::Value,
    },
    Event(Arc<Published>),
}

/// Why a feed ended.
#[derive(Debug, thiserror::Error)]
pub enum FeedEnd {
    #[error("client fell too far behind")]
    Lagged,
    #[error("daemon shutting down")]
    Shutdown,
    #[error("event bus closed")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Mode {
    Start(Option<Seq>),
    Replay { upto: Seq },
    Live,
}

pub struct Feed {
    store: Store,
    sub: Subscription,
    filter: Filter,
    /// Highest seq delivered (or deliberately skipped) so far.
    pos: Seq,
    mode: Mode,
    pending: VecDeque<Arc<Published>>,
    /// [`Feed::ready`] met a lag: the next [`Feed::next`] reports it, so
    /// the client is closed rather than silently skipped.
    lagged: bool,
    shutdown: CancellationToken,
    /// Predicts the tables of the snapshot and of replayed events.
    predictor: crate::turns::Predictor,
}

impl Feed {
    /// Subscribes at once; nothing published after this call is missed.
    pub fn new(
        hub: &Hub,
        store: Store,
        filter: Filter,
        since: Option<Seq>,
        kind: ClientKind,
        kill: CancellationToken,
        shutdown: CancellationToken,
    ) -> Feed {
        let sub = hub.subscribe(kind, kill);
        Feed {
            store,
            pos: sub.head,
            sub,
            filter,
            mode: Mode::Start(since),
            pending: VecDeque::new(),
            lagged: false,
            shutdown,
            predictor: hub.predictor().clone(),
        }
    }

    /// The snapshot object of SPEC §2 at the subscription's head. Today's
    /// reservations are read when it is sent, so they may already show a
    /// change whose event follows (a client applies reservation events by
    /// id, so seeing one twice is harmless).
    async fn snapshot(&mut self, reset: bool) -> Result<Item, FeedEnd> {
        let tables = self.filter.tables_of(&self.sub.tables);
        let mut data = snapshot_json(
            self.sub.head,
            &self.predictor.tables(&tables, self.store.wall().now()),
            &self.filter.alerts_of(&self.sub.alerts),
            reset,
        );
        data["reservations"] = json!(self.store.reservations_today().await?);
        self.pos = self.sub.head;
        self.mode = Mode::Live;
        self.release_start();
        Ok(Item::Snapshot {
            seq: self.sub.head,
            data,
        })
    }

    /// Lets go of the tables and alerts the subscription started from,
    /// once no snapshot will be built from them: a client connected for
    /// hours must not keep the floor plan of its connect time alive.
    fn release_start(&mut self) {
        self.sub.tables = Arc::default();
        self.sub.alerts = Arc::default();
    }

    /// The next item. Cancel-safe: state changes only after each await.
    pub async fn next(&mut self) -> Result<Item, FeedEnd> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Ok(Item::Event(p));
            }
            if self.lagged {
                return Err(FeedEnd::Lagged);
            }
            match self.mode {
                Mode::Start(None) => return self.snapshot(false).await,
                Mode::Start(Some(since)) => {
                    let head = self.sub.head;
                    if since > head {
                        // An id from the future: the database was replaced
                        // or restored; the client's view is unusable.
                        return self.snapshot(true).await;
                    }
                    self.pos = since;
                    self.mode = Mode::Replay { upto: head };
                }
                Mode::Replay { upto } => {
                    if self.pos >= upto {
                        self.mode = Mode::Live;
                        self.release_start();
                        continue;
                    }
                    let page = self
                        .store
                        .events(EventQuery {
                            after: self.pos,
                            upto: Some(upto),
                            limit: REPLAY_PAGE,
                            types: self.filter.types.clone(),
                            tables: self.filter.tables.clone(),
                            ..Default::default()
                        })
                        .await?;
                    if !page.continuous {
                        return self.snapshot(true).await;
                    }
                    self.pos = match page.events.last() {
                        Some(last) if page.events.len() == REPLAY_PAGE => last.seq,
                        _ => upto,
                    };
                    // The store filtered by table and type; targets are
                    // read from each event's alert.
                    let (filter, predictor) = (&self.filter, &self.predictor);
                    self.pending.extend(
                        page.events
                            .into_iter()
                            .filter(|e| filter.matches(e))
                            .map(|e| Arc::new(Published::predicted(e, predictor))),
                    );
                }
                Mode::Live => {
                    let received = tokio::select! {
                        _ = self.shutdown.cancelled() => return Err(FeedEnd::Shutdown),
                        received = self.sub.rx.recv() => received,
                    };
                    match received {
                        Ok(p) => {
                            if let Some(p) = self.take_live(p) {
                                return Ok(Item::Event(p));
                            }
                        }
                        Err(RecvError::Lagged(_)) => return Err(FeedEnd::Lagged),
                        Err(RecvError::Closed) => return Err(FeedEnd::Closed),
                    }
                }
            }
        }
    }

    /// The next event if one is ready now, without waiting: what a stream
    /// writes together with the item [`Feed::next`] gave it, so a client
    /// that fell behind catches up in a few large writes instead of one
    /// write per event. `None` when nothing is ready (and before the feed
    /// is live, and at a lag or a close, which the next `next` reports).
    pub fn ready(&mut self) -> Option<Arc<Published>> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Some(p);
            }
            if !matches!(self.mode, Mode::Live) || self.lagged {
                return None;
            }
            match self.sub.rx.try_recv() {
                Ok(p) => {
                    if let Some(p) = self.take_live(p) {
                        return Some(p);
                    }
                }
                // `try_recv` reports a lag once and moves past it; the
                // flag keeps it for `next`, which ends the feed.
                Err(TryRecvError::Lagged(_)) => {
                    self.lagged = true;
                    return None;
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }

    /// A live event taken off the receiver: `None` if it is at or below
    /// the feed's position (already replayed) or filtered out.
    fn take_live(&mut self, p: Arc<Published>) -> Option<Arc<Published>> {
        let seq = p.event.seq;
        self.sub.seen(seq);
        if seq <= self.pos {
            return None;
        }
        self.pos = seq;
        self.filter.matches(&p.event).then_some(p)
    }
}

/// `{"seq", "tables", "alerts", "reservations", "reset"}`: `alerts` are
/// the open ones, oldest first; reservations are filled in by the caller
/// (today's, from the store).
pub fn snapshot_json<T: serde::Serialize>(
    seq: Seq,
    tables: &[T],
    alerts: &[Alert],
    reset: bool,
) -> serde_json::Value {
    json!({
        "seq": seq,
        "tables": tables,
        "alerts": alerts,
        "reservations": [],
        "reset": reset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, table: Option<TableId>) -> Event {
        Event {
            seq: 1,
            ts: String::new(),
            table,
            actor: crate::domain::Actor::System,
            data: crate::domain::EventData::Other {
                kind: kind.into(),
                data: serde_json::Value::Null,
            },
        }
    }

    #[test]
    fn type_filters_match_by_dotted_prefix() {
        let f = Filter {
            tables: vec![],
            types: vec!["table".into(), "alert.raised".into()],
            targets: vec![],
        };
        assert!(f.matches(&event("table.state", Some(1))));
        assert!(f.matches(&event("alert.raised", None)));
        assert!(!f.matches(&event("alert.acked", None)));
        assert!(!f.matches(&event("system.started", None)));
    }

    #[test]
    fn table_filters_drop_events_of_other_tables() {
        let f = Filter {
            tables: vec![1, 4],
            types: vec![],
            targets: vec![],
        };
        assert!(f.matches(&event("table.state", Some(4))));
        assert!(!f.matches(&event("table.state", Some(2))));
        assert!(!f.matches(&event("system.started", None)));
    }

    fn alert_event(target: Target) -> Event {
        let alert = Alert {
            id: 1,
            table: None,
            kind: crate::domain::AlertKind::Kitchen,
            priority: crate::domain::Priority::Normal,
            target,
            message: "m".into(),
            count: 1,
            created_at: String::new(),
            last_at: String::new(),
            escalations: 0,
            acked_by: None,
            acked_at: None,
            source: "staff:cook".into(),
        };
        Event {
            data: crate::domain::EventData::AlertUpdated { alert },
            ..event("alert.updated", None)
        }
    }

    #[test]
    fn target_filters_keep_alerts_for_that_target_or_all_and_other_events() {
        let f = Filter {
            targets: vec![Target::Kitchen],
            ..Filter::default()
        };
        assert!(f.matches(&alert_event(Target::Kitchen)));
        assert!(f.matches(&alert_event(Target::All)));
        assert!(!f.matches(&alert_event(Target::Floor)));
        assert!(f.matches(&event("table.state", Some(1))));
        assert_eq!(
            Filter::parse_targets("targets", ["kitchen", " bar"]),
            Ok(vec![Target::Kitchen, Target::Bar])
        );
        assert!(Filter::parse_targets("targets", ["moon"]).is_err());
    }

    #[test]
    fn filter_parsing_rejects_garbage() {
        assert_eq!(Filter::parse_tables("tables", "1, 4,7"), Ok(vec![1, 4, 7]));
        assert!(Filter::parse_tables("tables", "1,x").is_err());
        assert!(Filter::parse_tables("tables", "-3").is_err());
        assert!(Filter::parse_types("types", ["table", "sensor.fault"]).is_ok());
        assert!(Filter::parse_types("types", ["tab"]).is_err());
        assert!(Filter::parse_types("types", ["bogus"]).is_err());
    }

    fn live_event(seq: Seq) -> Event {
        Event {
            seq,
            ..event("table.state", Some(1))
        }
    }

    /// A feed on a real store (in a tempdir) that has sent its snapshot.
    async fn live_feed(ring: usize) -> (Feed, Hub, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = [(
            "MESERO_STORAGE_PATH".to_string(),
            dir.path().join("m.db").display().to_string(),
        )];
        let config = crate::config::Config::from_toml(
            std::path::Path::new("t.toml"),
            "[[tables]]\nid = 1\n",
            env,
        )
        .expect("config");
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let hub = Hub::new(ring, Arc::clone(&metrics));
        let store = Store::open(&config, hub.clone(), metrics).expect("store");
        let mut feed = Feed::new(
            &hub,
            store.clone(),
            Filter::default(),
            None,
            ClientKind::Sse,
            CancellationToken::new(),
            CancellationToken::new(),
        );
        assert!(matches!(feed.next().await, Ok(Item::Snapshot { .. })));
        (feed, hub, store, dir)
    }

    fn seq_of(item: Result<Item, FeedEnd>) -> Seq {
        match item {
            Ok(Item::Event(p)) => p.event.seq,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn ready_hands_out_every_queued_event_in_order_then_waits() {
        let (mut feed, hub, store, _dir) = live_feed(64).await;
        let head = hub.head();
        assert!(feed.ready().is_none(), "nothing queued yet");
        hub.publish(
            (head + 1..=head + 5).map(live_event).collect(),
            Arc::new(Vec::new()),
        );
        let mut got = vec![seq_of(feed.next().await)];
        while let Some(p) = feed.ready() {
            got.push(p.event.seq);
        }
        assert_eq!(got, (head + 1..=head + 5).collect::<Vec<_>>());
        // An event already delivered (a replay's last one, say) is not
        // handed out again.
        hub.publish(vec![live_event(head + 5)], Arc::new(Vec::new()));
        assert!(feed.ready().is_none(), "no duplicate");
        store.shutdown().await;
    }

    #[tokio::test]
    async fn a_lag_met_by_ready_ends_the_feed_instead_of_skipping() {
        let (mut feed, hub, store, _dir) = live_feed(16).await;
        let head = hub.head();
        hub.publish(
            (head + 1..=head + 40).map(live_event).collect(),
            Arc::new(Vec::new()),
        );
        assert!(feed.ready().is_none(), "a lag is not an event");
        assert!(feed.ready().is_none(), "and stays one");
        assert!(
            matches!(feed.next().await, Err(FeedEnd::Lagged)),
            "the client is closed (and resumes by seq), never silently skipped"
        );
        store.shutdown().await;
    }
}
