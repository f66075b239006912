//! The occupancy engine task: the one owner, through its
//! [`dispatch::Dispatcher`], of the [`Engine`](crate::occupancy::Engine) in
//! the daemon.
//!
//! It takes sensor reports (from the sensor tasks of [`crate::sensors`]
//! and from outside through [`SensorInput`]), follows every table change
//! committed by anyone through the [`Hub`], wakes at the dispatcher's next
//! deadline (tokio time, so tests pause it), and commits what the
//! dispatcher decides through the store:
//! - a transition as `Change::SetState` with `Guard::Sensor { expected }`,
//!   so a racing staff change or a hold wins and the engine re-syncs;
//! - `sensor.fault` / `sensor.recovered` as recorded events;
//! - a call button's press as `Change::RaiseAlert` (kind `call`, a long
//!   press `bill`; target `floor`), which opens an alert or bumps the
//!   button's open one (flood control, [`crate::alerts`]).
//!
//! [`escalation`] is the other timer of this layer: it escalates alerts
//! nobody acked.
//!
//! Every event's actor is `sensor:<id>`. What a report means is decided
//! by the pure [`dispatch::Dispatcher`] (also used by `mesero sensors
//! watch`); this task only applies its [`Effect`]s: to the store, and to
//! the [`SensorBoard`] that `/api/v1/stats` shows.
//!
//! # Feeding readings from outside (`kind = "mqtt"`)
//! [`Daemon::sensor_input`](crate::daemon::Daemon::sensor_input) returns a
//! [`SensorInput`]: a cheap, cloneable handle whose methods never block
//! (a full queue is an error the caller counts, not a wait):
//! - [`SensorInput::reading`]`(sensor_id, Reading)` for
//!   `mesero/<site>/sensors/<sensor id>`;
//! - [`SensorInput::detection`]`(client, table, Reading)` for an entry of a
//!   detector's batch (`mqtt.detection_topics`): fed to every `mqtt` sensor
//!   of that table, or, if it has none, to the implicit sensor
//!   `detector:<client>:<table>` (see [`detector`]);
//! - [`SensorInput::table_reading`]`(table, Reading)`: the same, for
//!   declared sensors only;
//! - [`SensorInput::fault`]`(sensor_id, reason)` when the source knows the
//!   node is gone (e.g. its last will);
//! - [`SensorInput::button`]`(sensor_id, ButtonEvent)`: a press of a
//!   `kind = "button"` sensor wired somewhere else than this Pi's GPIO (a
//!   test, a bridge from a wireless button), taken as if its pin saw it.
//!
//! Only sensors declared with `kind = "mqtt"` (and implicit detector
//! sensors) accept these; such a sensor that sends nothing for its
//! `stale_after` is faulted here, and its next reading recovers it.

pub mod board;
pub mod detector;
pub mod dispatch;
pub mod escalation;

pub use board::{SensorBoard, SensorView};
pub use dispatch::HealthState;

use crate::config::Config;
use crate::domain::{Actor, AlertKind, Event, EventData, Priority, Table, TableId, Target};
use crate::hub::{ClientKind, Hub};
use crate::occupancy::Transition;
use crate::sensors::Reading;
use crate::sensors::report::{ButtonEvent, Report, Reporter};
use crate::sensors::spec::SensorKind;
use crate::store::{Change, Guard, Hold, NewAlert, Store, StoreError};
use crate::systemd::Heartbeat;
use dispatch::{Dispatcher, Effect};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Reports waiting for the engine task. Sensors report changes only, so
/// this is only reached if the store stalls; then hardware threads wait
/// and [`SensorInput`] callers get [`InputError::Busy`].
pub const REPORT_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("no sensor {0:?} of kind mqtt in the config")]
    UnknownSensor(String),
    #[error("no sensor {0:?} of kind button in the config")]
    UnknownButton(String),
    #[error("no sensor of kind mqtt is bound to table {0}")]
    UnknownTable(TableId),
    #[error("there is no table {0}")]
    NoSuchTable(TableId),
    #[error(
        "no room for another implicit detector sensor (at most {} of them, MAX_IMPLICIT_SENSORS); declare the sensor in the config or keep the detector's client id",
        detector::MAX_IMPLICIT_SENSORS
    )]
    TooManyImplicit,
    #[error("the occupancy engine is busy; reading dropped")]
    Busy,
    #[error("the occupancy engine has stopped")]
    Closed,
}

/// Injects readings and faults of `mqtt` sensors into the engine task.
/// Cheap to clone; every method returns at once.
#[derive(Clone)]
pub struct SensorInput {
    tx: mpsc::Sender<Report>,
    /// The `mqtt` sensors of the config: ids, and ids by table. Fixed at
    /// start (the config is not reloaded).
    external: Arc<External>,
    /// The committed tables, to refuse detections for tables that do not
    /// exist.
    hub: Hub,
    /// The implicit detector sensors handed out, bounded.
    implicit: Arc<detector::Implicit>,
}

#[derive(Default)]
struct External {
    ids: HashSet<String>,
    /// The `button` sensors' ids.
    buttons: HashSet<String>,
    by_table: HashMap<TableId, Vec<String>>,
}

impl SensorInput {
    /// A reading of the `mqtt` sensor `sensor`.
    pub fn reading(&self, sensor: &str, reading: Reading) -> Result<(), InputError> {
        if !self.external.ids.contains(sensor) {
            return Err(InputError::UnknownSensor(sensor.to_string()));
        }
        self.push(Report::Reading {
            sensor: sensor.to_string(),
            reading,
        })
    }

    /// A reading about a table (a detector's batch entry), given to every
    /// `mqtt` sensor bound to that table.
    pub fn table_reading(&self, table: TableId, reading: Reading) -> Result<(), InputError> {
        let ids = self
            .external
            .by_table
            .get(&table)
            .ok_or(InputError::UnknownTable(table))?;
        for sensor in ids {
            self.push(Report::Reading {
                sensor: sensor.clone(),
                reading,
            })?;
        }
        Ok(())
    }

    /// One entry of a detector's batch, from MQTT client `client`: a reading
    /// for the table's declared `mqtt` sensors, or else for the implicit
    /// sensor of this client and table (see [`detector`]).
    pub fn detection(
        &self,
        client: &str,
        table: TableId,
        reading: Reading,
    ) -> Result<(), InputError> {
        if self.external.by_table.contains_key(&table) {
            return self.table_reading(table, reading);
        }
        if !self.hub.tables().iter().any(|t| t.id == table) {
            return Err(InputError::NoSuchTable(table));
        }
        let sensor = detector::implicit_id(client, table);
        self.implicit.admit(&sensor)?;
        self.push(Report::Detection {
            sensor,
            table,
            reading,
        })
    }

    /// The source knows the sensor is gone; its next reading recovers it.
    pub fn fault(&self, sensor: &str, reason: &str) -> Result<(), InputError> {
        if !self.external.ids.contains(sensor) {
            return Err(InputError::UnknownSensor(sensor.to_string()));
        }
        self.push(Report::Fault {
            sensor: sensor.to_string(),
            reason: reason.to_string(),
        })
    }

    /// A press of the `button` sensor `sensor`.
    pub fn button(&self, sensor: &str, event: ButtonEvent) -> Result<(), InputError> {
        if !self.external.buttons.contains(sensor) {
            return Err(InputError::UnknownButton(sensor.to_string()));
        }
        self.push(Report::Button {
            sensor: sensor.to_string(),
            event,
        })
    }

    fn push(&self, report: Report) -> Result<(), InputError> {
        self.tx.try_send(report).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => InputError::Busy,
            mpsc::error::TrySendError::Closed(_) => InputError::Closed,
        })
    }
}

/// What the daemon keeps of the sensor side.
pub struct Sensors {
    pub input: SensorInput,
    pub board: SensorBoard,
}

/// Starts the engine task and every sensor task, all tracked by `tasks`
/// and ended by `shutdown`.
pub fn start(
    config: &Config,
    store: Store,
    hub: &Hub,
    heartbeat: Heartbeat,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Sensors {
    let (tx, rx) = mpsc::channel(REPORT_QUEUE);
    let board = SensorBoard::new(config);
    let mut external = External {
        buttons: config
            .sensors
            .iter()
            .filter(|s| matches!(s.kind, SensorKind::Button(_)))
            .map(|s| s.id.clone())
            .collect(),
        ..External::default()
    };
    for s in config
        .sensors
        .iter()
        .filter(|s| matches!(s.kind, SensorKind::Mqtt))
    {
        external.ids.insert(s.id.clone());
        if let Some(table) = s.table {
            external
                .by_table
                .entry(table)
                .or_default()
                .push(s.id.clone());
        }
    }
    // Subscribed before any sensor runs, so no table change is missed.
    let subscription = hub.subscribe(ClientKind::Internal, CancellationToken::new());
    let mut task = EngineTask {
        dispatcher: Dispatcher::new(config, Instant::now()),
        store,
        hub: hub.clone(),
        board: board.clone(),
        synced: HashMap::new(),
    };
    task.resync_all(subscription.head, &subscription.tables);
    tasks.spawn(task.run(rx, subscription.rx, heartbeat, shutdown.clone()));
    crate::sensors::tasks::spawn_all(&config.sensors, &Reporter::new(tx.clone()), shutdown, tasks);
    Sensors {
        input: SensorInput {
            tx,
            external: Arc::new(external),
            hub: hub.clone(),
            implicit: Arc::default(),
        },
        board,
    }
}

struct EngineTask {
    dispatcher: Dispatcher,
    store: Store,
    hub: Hub,
    board: SensorBoard,
    /// Per table, the seq of the newest event the engine has synced from;
    /// older events still queued on the hub are not re-applied.
    synced: HashMap<TableId, u64>,
}

impl EngineTask {
    async fn run(
        mut self,
        mut reports: mpsc::Receiver<Report>,
        mut events: broadcast::Receiver<Arc<crate::hub::Published>>,
        mut heartbeat: Heartbeat,
        shutdown: CancellationToken,
    ) {
        loop {
            let wake = self.dispatcher.next_wake();
            let timer = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                event = events.recv() => match event {
                    Ok(published) => self.on_event(&published.event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "occupancy engine fell behind the hub; re-syncing");
                        let (head, tables) = self.hub.snapshot();
                        self.resync_all(head, &tables);
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                report = reports.recv() => match report {
                    Some(report) => {
                        let effects = self.dispatcher.on_report(report, Instant::now());
                        self.apply(effects).await;
                    }
                    None => return,
                },
                _ = timer => {
                    let effects = self.dispatcher.on_timer(Instant::now());
                    self.apply(effects).await;
                }
                _ = heartbeat.tick() => heartbeat.beat(),
            }
        }
    }

    fn resync_all(&mut self, head: u64, tables: &[Table]) {
        let now = Instant::now();
        let known: HashSet<TableId> = tables.iter().map(|t| t.id).collect();
        for id in self.synced.keys().copied().collect::<Vec<_>>() {
            if !known.contains(&id) {
                self.dispatcher.remove_table(id);
                self.synced.remove(&id);
            }
        }
        for table in tables {
            self.sync(table, head, now);
        }
    }

    fn sync(&mut self, table: &Table, seq: u64, now: Instant) {
        let hold = table
            .hold_until
            .as_deref()
            .and_then(crate::clock::parse)
            .and_then(|until| until.duration_since(self.store.wall().now()).ok())
            // A stored time far ahead (written while the clock was wrong)
            // must not overflow the Instant: no hold lasts this long.
            .map(|left| now + left.min(crate::config::MAX_DURATION));
        self.dispatcher.sync_table(table.id, table.state, hold, now);
        self.synced.insert(table.id, seq);
    }

    fn on_event(&mut self, event: &Event) {
        let Some(id) = event.table else { return };
        if self.synced.get(&id).is_some_and(|seen| event.seq <= *seen) {
            return;
        }
        match &event.data {
            EventData::TableState { table, .. } | EventData::TableCreated { table } => {
                self.sync(table, event.seq, Instant::now())
            }
            EventData::TableDeleted { .. } => {
                self.dispatcher.remove_table(id);
                self.synced.remove(&id);
            }
            _ => {}
        }
    }

    /// Applies the dispatcher's effects in order: the board first, then
    /// what each one records or commits.
    async fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            self.board.apply(&effect);
            match effect {
                Effect::Reading { .. } | Effect::StillFaulted { .. } | Effect::Ready { .. } => {}
                Effect::Added { sensor, table, .. } => {
                    // The id carries a client id: Debug-escaped.
                    tracing::info!(sensor = ?sensor, table, "implicit detector sensor added");
                }
                Effect::Faulted {
                    sensor,
                    kind,
                    table,
                    reason,
                } => {
                    // The reason may come from the sensor node (MQTT): Debug-escaped.
                    tracing::warn!(sensor, kind, reason = ?reason, "sensor faulted");
                    let data = EventData::SensorFault {
                        sensor: sensor.clone(),
                        kind: kind.to_string(),
                        reason,
                    };
                    self.record(&sensor, table, data).await;
                }
                Effect::Recovered {
                    sensor,
                    kind,
                    table,
                } => {
                    tracing::info!(sensor, kind, "sensor recovered");
                    let data = EventData::SensorRecovered {
                        sensor: sensor.clone(),
                        kind: kind.to_string(),
                    };
                    self.record(&sensor, table, data).await;
                }
                Effect::Alert {
                    sensor,
                    table,
                    event,
                } => self.alert(&sensor, table, event).await,
                Effect::Transition(t) => self.commit(t).await,
            }
        }
    }

    async fn alert(&self, sensor: &str, table: Option<TableId>, event: ButtonEvent) {
        let kind = match event {
            ButtonEvent::Call => AlertKind::Call,
            ButtonEvent::Bill => AlertKind::Bill,
        };
        tracing::info!(sensor, table, kind = kind.as_str(), "call button");
        let change = Change::RaiseAlert(NewAlert {
            table,
            kind,
            priority: Priority::Normal,
            target: Target::Floor,
            message: None,
        });
        if let Err(e) = self
            .store
            .apply(change, Actor::Sensor(sensor.to_string()))
            .await
        {
            tracing::warn!(sensor, error = ?e.to_string(), "could not raise a call button's alert");
        }
    }

    async fn record(&self, sensor: &str, table: Option<TableId>, data: EventData) {
        let kind = data.kind().to_string();
        let change = Change::Record { table, data };
        if let Err(e) = self
            .store
            .apply(change, Actor::Sensor(sensor.to_string()))
            .await
        {
            tracing::error!(sensor, event = %kind, error = ?e, "could not record a sensor event");
        }
    }

    /// Commits one of the engine's transitions. A refused one (staff or a
    /// hold won the race) or a failed one re-syncs the table from the hub,
    /// which already holds every committed change.
    async fn commit(&mut self, t: Transition) {
        {
            let change = Change::SetState {
                id: t.table,
                state: t.to,
                hold: Hold::Clear,
                people: t.people,
                guard: Guard::Sensor { expected: t.from },
            };
            match self.store.apply(change, t.actor()).await {
                Ok(applied) => {
                    if let Some(event) = applied.event {
                        self.synced.insert(t.table, event.seq);
                    }
                    tracing::info!(table = t.table, from = %t.from, to = %t.to, sensor = ?t.sensor, "table state");
                }
                Err(StoreError::TableNotFound(id)) => {
                    self.dispatcher.remove_table(id);
                    self.synced.remove(&id);
                }
                Err(e) => {
                    if !matches!(e, StoreError::Refused(_)) {
                        tracing::warn!(table = t.table, to = %t.to, error = ?e, "sensor state change failed");
                    }
                    let (head, tables) = self.hub.snapshot();
                    match tables.iter().find(|x| x.id == t.table) {
                        Some(table) => self.sync(table, head, Instant::now()),
                        None => {
                            self.dispatcher.remove_table(t.table);
                            self.synced.remove(&t.table);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TableState;
    use crate::metrics::Metrics;
    use std::path::Path;
    use std::time::Duration;

    const CONFIG: &str = r#"
[[tables]]
id = 1
[[tables]]
id = 2

[[sensors]]
id = "call-1"
kind = "button"
table = 1
pin = 27
fault_after = 1000

[[sensors]]
id = "node-1"
kind = "mqtt"
table = 1
stale_after = "1s"
"#;

    /// Holds tokio's paused clock still: a running blocking task inhibits
    /// auto-advance, so time moves only by `tokio::time::advance` and the
    /// SQLite writer thread's real latency cannot leak into the engine's
    /// timers (nor fire a test's own).
    struct FrozenClock(Option<std::sync::mpsc::Sender<()>>);

    fn freeze_clock() -> FrozenClock {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = rx.recv();
        });
        FrozenClock(Some(tx))
    }

    impl Drop for FrozenClock {
        fn drop(&mut self) {
            self.0.take();
        }
    }

    /// With the clock frozen no tokio timeout can fire; this real-time
    /// watchdog ends a hung test instead.
    struct Watchdog(Option<std::sync::mpsc::Sender<()>>);

    fn watchdog(limit: Duration) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("engine test made no progress in {limit:?}; aborting");
                std::process::exit(1);
            }
        });
        Watchdog(Some(tx))
    }

    impl Drop for Watchdog {
        fn drop(&mut self) {
            self.0.take();
        }
    }

    struct Fixture {
        _watchdog: Watchdog,
        _clock: FrozenClock,
        _dir: tempfile::TempDir,
        store: Store,
        hub: Hub,
        shutdown: CancellationToken,
        tasks: TaskTracker,
        sensors: Sensors,
    }

    /// A real store on a temporary file and the engine task with its sensor
    /// tasks (off a Pi the button's GPIO thread only retries: its
    /// fault_after is out of reach of these tests), on a frozen paused
    /// clock.
    async fn fixture() -> Fixture {
        let watchdog = watchdog(Duration::from_secs(60));
        let clock = freeze_clock();
        let dir = tempfile::tempdir().expect("tempdir");
        let env = [(
            "MESERO_STORAGE_PATH".to_string(),
            dir.path().join("m.db").display().to_string(),
        )];
        let config = Config::from_toml(Path::new("t.toml"), CONFIG, env).expect("config");
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(64, Arc::clone(&metrics));
        let store = Store::open(&config, hub.clone(), metrics).expect("store");
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let heartbeat = crate::systemd::Liveness::new(Duration::from_secs(1)).register("sensors");
        let sensors = start(&config, store.clone(), &hub, heartbeat, &shutdown, &tasks);
        Fixture {
            _watchdog: watchdog,
            _clock: clock,
            _dir: dir,
            store,
            hub,
            shutdown,
            tasks,
            sensors,
        }
    }

    impl Fixture {
        async fn stop(self) {
            self.shutdown.cancel();
            self.tasks.close();
            self.tasks.wait().await;
            self.store.shutdown().await;
        }
    }

    /// The next committed event of type `kind` (others are skipped).
    async fn next_event(
        rx: &mut broadcast::Receiver<Arc<crate::hub::Published>>,
        kind: &str,
    ) -> Event {
        loop {
            let published = rx.recv().await.expect("hub open");
            if published.event.kind() == kind {
                return published.event.clone();
            }
        }
    }

    /// Lets the engine task run until `sensor` shows `health` on the board.
    async fn until_health(board: &SensorBoard, sensor: &str, health: HealthState) {
        while !board
            .snapshot()
            .iter()
            .any(|v| v.id == sensor && v.health == health)
        {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_press_is_stored_as_a_bill_alert() {
        let f = fixture().await;
        let mut sub = f
            .hub
            .subscribe(ClientKind::Internal, CancellationToken::new());
        let reporter = Reporter::new(f.sensors.input.tx.clone());
        assert!(
            reporter
                .send(Report::Button {
                    sensor: "call-1".into(),
                    event: ButtonEvent::Bill,
                })
                .await
        );
        let event = next_event(&mut sub.rx, "alert.raised").await;
        assert_eq!(event.actor, Actor::Sensor("call-1".into()));
        assert_eq!(event.table, Some(1));
        let EventData::AlertRaised {
            kind,
            priority,
            alert: Some(alert),
            ..
        } = event.data
        else {
            panic!("not a stored alert: {event:?}");
        };
        assert_eq!(kind, AlertKind::Bill);
        assert_eq!(priority, Priority::Normal);
        assert_eq!((alert.source.as_str(), alert.count), ("sensor:call-1", 1));
        let stored = f
            .store
            .events(crate::store::EventQuery {
                after: 0,
                limit: 100,
                types: vec!["alert".into()],
                ..Default::default()
            })
            .await
            .expect("events");
        assert_eq!(stored.events.len(), 1, "on disk");
        f.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn mqtt_input_is_checked_goes_stale_and_recovers() {
        let f = fixture().await;
        let input = f.sensors.input.clone();
        let present = Reading {
            present: true,
            people: Some(2),
        };
        assert_eq!(
            input.reading("call-1", present),
            Err(InputError::UnknownSensor("call-1".into())),
            "only mqtt sensors take readings from outside"
        );
        assert_eq!(
            input.reading("ghost", present),
            Err(InputError::UnknownSensor("ghost".into()))
        );
        assert_eq!(
            input.table_reading(2, present),
            Err(InputError::UnknownTable(2))
        );
        let mut sub = f
            .hub
            .subscribe(ClientKind::Internal, CancellationToken::new());
        input.table_reading(1, present).expect("accepted");
        until_health(&f.sensors.board, "node-1", HealthState::Ok).await;
        tokio::time::advance(Duration::from_secs(1)).await;
        // Silent for stale_after (1 s): faulted, and the table, whose only
        // presence sensor it is, becomes unknown.
        let fault = next_event(&mut sub.rx, "sensor.fault").await;
        assert_eq!(fault.actor, Actor::Sensor("node-1".into()));
        assert!(
            matches!(&fault.data, EventData::SensorFault { reason, .. } if reason.contains("no reading"))
        );
        let unknown = next_event(&mut sub.rx, "table.state").await;
        assert!(matches!(
            unknown.data,
            EventData::TableState {
                to: TableState::Unknown,
                ..
            }
        ));
        let board = f.sensors.board.snapshot();
        let node = board.iter().find(|v| v.id == "node-1").expect("node-1");
        assert_eq!((node.health, node.faults), (HealthState::Faulted, 1));
        // The next reading recovers it and restores the table's state.
        input.reading("node-1", present).expect("accepted");
        let recovered = next_event(&mut sub.rx, "sensor.recovered").await;
        assert_eq!(recovered.actor, Actor::Sensor("node-1".into()));
        let restored = next_event(&mut sub.rx, "table.state").await;
        assert!(matches!(
            restored.data,
            EventData::TableState {
                from: TableState::Unknown,
                to: TableState::Free,
                ..
            }
        ));
        f.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_fault_reported_by_the_source_is_recovered_by_the_next_reading() {
        let f = fixture().await;
        let input = f.sensors.input.clone();
        let mut sub = f
            .hub
            .subscribe(ClientKind::Internal, CancellationToken::new());
        input
            .reading("node-1", Reading::presence(false))
            .expect("accepted");
        input
            .fault("node-1", "the node reported offline")
            .expect("accepted");
        let fault = next_event(&mut sub.rx, "sensor.fault").await;
        assert!(
            matches!(&fault.data, EventData::SensorFault { reason, .. } if reason == "the node reported offline")
        );
        input
            .reading("node-1", Reading::presence(false))
            .expect("accepted");
        let recovered = next_event(&mut sub.rx, "sensor.recovered").await;
        assert_eq!(recovered.actor, Actor::Sensor("node-1".into()));
        f.stop().await;
    }
}
