//! Wiring: opens the store, starts the background tasks and the HTTP
//! server, and takes them down in order on stop.
//!
//! Start order: store (database open and migrated) → `system.started` →
//! HTTP listener bound → occupancy engine and sensors → MQTT broker (ports
//! bound, retained state published from the database) → serving →
//! `READY=1` to systemd, then status reports and watchdog pings. Stop
//! order: `STOPPING=1` → stop accepting and end streams, while the broker
//! publishes `offline` and closes its sessions → background tasks (engine,
//! sensors) → writer flushes its queue and closes the database.
//!
//! Every long-lived loop registers with one [`Liveness`] registry (one
//! line: `liveness.register("name")`); the watchdog is fed only while all
//! of them check in.

use crate::broker::Broker;
use crate::config::Config;
use crate::domain::{Actor, EventType};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::status::Sources;
use crate::store::{Change, Store};
use crate::systemd::{Heartbeat, Liveness, Notifier, Supervision};
use anyhow::Context as _;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long open HTTP requests may take to finish after a stop; with the
/// writer's flush this keeps a SIGTERM well inside 5 s.
pub const HTTP_GRACE: Duration = Duration::from_secs(3);

/// How often old events are deleted (also once at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// How often the `STATUS=` line is recomputed (sent only when it changed).
const STATUS_EVERY: Duration = Duration::from_secs(2);

pub struct Daemon {
    http_addr: SocketAddr,
    mqtt: Option<Broker>,
    sensor_input: crate::engine::SensorInput,
    shutdown: CancellationToken,
    store: Store,
    http: JoinHandle<()>,
    tasks: TaskTracker,
    notifier: Notifier,
}

impl Daemon {
    /// Starts the daemon. `listener` is used when given (tests bind port 0
    /// themselves), else `http.listen` is bound, failing loudly if taken.
    /// `supervision` says where `READY=1`, `STATUS=` and watchdog pings go
    /// ([`Supervision::none`] in tests that run the daemon in-process).
    pub async fn start(
        config: Config,
        listener: Option<TcpListener>,
        supervision: Supervision,
    ) -> anyhow::Result<Daemon> {
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(config.http.client_queue, Arc::clone(&metrics));
        let store = {
            let (cfg, hub, metrics) = (Arc::clone(&config), hub.clone(), Arc::clone(&metrics));
            tokio::task::spawn_blocking(move || Store::open(&cfg, hub, metrics))
                .await
                .context("opening the database")?
                .with_context(|| {
                    format!("opening the database {}", config.storage.path.display())
                })?
        };
        prune(&store, &config).await?;
        store
            .apply(
                Change::Record {
                    kind: EventType::SystemStarted,
                    table: None,
                    data: json!({ "version": env!("CARGO_PKG_VERSION"), "site": config.site.id }),
                },
                Actor::System,
            )
            .await
            .context("recording system.started")?;

        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(config.http.listen)
                .await
                .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen))?,
        };
        let http_addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let liveness = Liveness::new(supervision.beat_every());
        tasks.spawn(probe_writer(
            store.clone(),
            liveness.register("writer"),
            shutdown.clone(),
        ));
        tasks.spawn(hub.clone().reap_slow_clients(shutdown.clone()));
        tasks.spawn(retention_loop(
            store.clone(),
            Arc::clone(&config),
            shutdown.clone(),
        ));
        let sensors = crate::engine::start(
            &config,
            store.clone(),
            &hub,
            liveness.register("sensors"),
            &shutdown,
            &tasks,
        );
        let mqtt = if config.mqtt.enabled {
            let deps = crate::broker::Deps {
                config: Arc::clone(&config),
                store: store.clone(),
                hub: hub.clone(),
                metrics: Arc::clone(&metrics),
                input: sensors.input.clone(),
                heartbeat: liveness.register("mqtt"),
            };
            match Broker::start(deps).await {
                Ok(broker) => Some(broker),
                Err(e) => {
                    shutdown.cancel();
                    tasks.close();
                    tasks.wait().await;
                    store.shutdown().await;
                    return Err(e.context("starting the MQTT broker"));
                }
            }
        } else {
            None
        };

        let sources = Sources {
            http: http_addr,
            hub: hub.clone(),
            metrics: Arc::clone(&metrics),
            sensors: sensors.board.clone(),
            liveness: liveness.clone(),
        };
        let limits = crate::http::Limits::new(&config, Arc::clone(&metrics));
        let state = crate::http::AppState {
            config: Arc::clone(&config),
            store: store.clone(),
            hub,
            metrics,
            sensors: sensors.board,
            shutdown: shutdown.clone(),
            limits: Arc::clone(&limits),
        };
        let http = tokio::spawn(crate::http::serve(
            listener,
            crate::http::router(state),
            limits,
            shutdown.clone(),
            HTTP_GRACE,
            liveness.register("http"),
        ));
        crate::fault::arm(&liveness, &tasks, shutdown.clone())
            .context("installing the fault-injection signal handler")?;
        tracing::info!(addr = %http_addr, tables = config.tables.len(), "http listening");

        // The database is open and every listener is bound: connections
        // made from now on are served.
        let Supervision { notifier, watchdog } = supervision;
        if let Err(e) = notifier.ready(&sources.read().to_string()) {
            tracing::warn!(error = %e, "could not send READY=1 to systemd");
        }
        if notifier.is_enabled() {
            tasks.spawn(report_status(notifier.clone(), sources, shutdown.clone()));
        }
        if let Some(timeout) = watchdog {
            tracing::info!(timeout_ms = timeout.as_millis(), "systemd watchdog on");
            tasks.spawn(crate::systemd::run_watchdog(
                notifier.clone(),
                liveness,
                timeout,
                shutdown.clone(),
            ));
        }
        Ok(Daemon {
            http_addr,
            mqtt,
            sensor_input: sensors.input,
            shutdown,
            store,
            http,
            tasks,
            notifier,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The MQTT listener's address, when the broker is enabled.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.mqtt.as_ref().map(Broker::addr)
    }

    /// The MQTT-over-WebSocket listener's address, if configured.
    pub fn mqtt_ws_addr(&self) -> Option<SocketAddr> {
        self.mqtt.as_ref().and_then(Broker::ws_addr)
    }

    /// Feeds readings of `mqtt` sensors to the occupancy engine (see
    /// [`crate::engine`]).
    pub fn sensor_input(&self) -> crate::engine::SensorInput {
        self.sensor_input.clone()
    }

    /// Stops accepting, drains streams, publishes MQTT `offline`, flushes
    /// the writer.
    pub async fn stop(self) {
        if let Err(e) = self
            .notifier
            .stopping("stopping: draining clients, flushing the database")
        {
            tracing::warn!(error = %e, "could not send STOPPING=1 to systemd");
        }
        self.shutdown.cancel();
        let broker = async {
            if let Some(broker) = self.mqtt {
                broker.stop().await;
            }
        };
        let (http, ()) = tokio::join!(self.http, broker);
        if let Err(e) = http {
            tracing::error!(error = %e, "HTTP server task failed");
        }
        self.tasks.close();
        self.tasks.wait().await;
        self.store.shutdown().await;
        tracing::info!("stopped");
    }
}

async fn prune(store: &Store, config: &Config) -> anyhow::Result<()> {
    let before = SystemTime::now()
        .checked_sub(config.storage.retention)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    store
        .apply(Change::Prune { before }, Actor::System)
        .await
        .context("applying storage.retention_days")?;
    Ok(())
}

async fn retention_loop(store: Store, config: Arc<Config>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(RETENTION_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = prune(&store, &config).await {
                    tracing::warn!(error = %e, "retention failed; will retry");
                }
            }
        }
    }
}

/// Checks in for the writer thread, which blocks on its queue and cannot
/// keep time itself: beats only once the writer has answered a ping sent
/// through that queue, so a stuck writer (a hung fsync, a lock) stops the
/// watchdog. The writer answers with an error while its commits keep
/// failing ([`Store::ping`]), so a writer that cannot store stops it too.
async fn probe_writer(store: Store, mut heartbeat: Heartbeat, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = heartbeat.tick() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            answered = store.ping() => {
                if answered.is_ok() {
                    heartbeat.beat();
                }
            }
        }
    }
}

/// Sends `STATUS=` whenever the line changes.
async fn report_status(notifier: Notifier, sources: Sources, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(STATUS_EVERY);
    let mut last = String::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let line = sources.read().to_string();
        if line != last {
            if let Err(e) = notifier.status(&line) {
                tracing::warn!(error = %e, "could not send STATUS= to systemd");
            }
            last = line;
        }
    }
}
