//! Wiring: opens the store, starts the background tasks and the HTTP
//! server, and takes them down in order on stop.
//!
//! Start order: store (database open and migrated) → `system.started` →
//! HTTP listener bound → occupancy engine and sensors → MQTT broker (ports
//! bound, retained state published from the database) → serving →
//! `READY=1` to systemd, then status reports and watchdog pings. Stop
//! order: `STOPPING=1` → stop accepting and end streams, while the broker
//! publishes `offline` and closes its sessions → background tasks (engine,
//! sensors, the upstream bridge, which publishes its own `offline`) → writer flushes its queue and closes the database. A start-up
//! that fails (or whose future is dropped) half-way takes down what it had
//! started the same way; nothing it spawned outlives it.
//!
//! Every long-lived loop registers with one [`Liveness`] registry (one
//! line: `liveness.register("name")`); the watchdog is fed only while all
//! of them check in.

use crate::broker::Broker;
use crate::clock::Wall;
use crate::config::Config;
use crate::domain::{Actor, EventData};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::status::Sources;
use crate::store::{Change, Store};
use crate::systemd::{Heartbeat, Liveness, Notifier, Supervision};
use anyhow::Context as _;
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
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// How often the `STATUS=` line is recomputed (sent only when it changed).
const STATUS_EVERY: Duration = Duration::from_secs(2);

pub struct Daemon {
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    sensor_input: crate::engine::SensorInput,
    notifier: Notifier,
    parts: Parts,
}

/// What the daemon has brought up, in start order. `start` fills it in as
/// it goes and [`Parts::stop`] takes down whatever is there, so a start-up
/// that fails half-way and a normal stop share one ordered path.
struct Parts {
    /// Every task and the broker's thread end when this is cancelled.
    shutdown: CancellationToken,
    tasks: TaskTracker,
    store: Option<Store>,
    mqtt: Option<Broker>,
    http: Option<JoinHandle<()>>,
    /// The HTTPS listener's server (`http.tls_listen`).
    https: Option<JoinHandle<()>>,
}

impl Parts {
    /// Stops accepting, drains streams, publishes MQTT `offline`, flushes
    /// the writer.
    async fn stop(self) {
        self.shutdown.cancel();
        let broker = async {
            if let Some(broker) = self.mqtt {
                broker.stop().await;
            }
        };
        let http = async {
            let plain = match self.http {
                Some(http) => http.await,
                None => Ok(()),
            };
            let tls = match self.https {
                Some(https) => https.await,
                None => Ok(()),
            };
            plain.and(tls)
        };
        let (http, ()) = tokio::join!(http, broker);
        if let Err(e) = http {
            tracing::error!(error = %e, "HTTP server task failed");
        }
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(store) = self.store {
            store.shutdown().await;
        }
    }
}

impl Daemon {
    /// Starts the daemon. `listener` is used when given (tests bind port 0
    /// themselves), else `http.listen` is bound, failing loudly if taken.
    /// `supervision` says where `READY=1`, `STATUS=` and watchdog pings go
    /// ([`Supervision::none`] in tests that run the daemon in-process).
    ///
    /// Nothing outlives a start-up that does not finish: on an error,
    /// everything started so far is stopped in order before the error is
    /// returned; if the returned future is dropped half-way (a stop asked
    /// for during start-up), a drop guard cancels the shutdown token, so
    /// every task spawned with it and the broker's thread end, releasing
    /// the ports and the database (mini-redis's `DbDropGuard`).
    pub async fn start(
        config: Config,
        listener: Option<TcpListener>,
        supervision: Supervision,
    ) -> anyhow::Result<Daemon> {
        Daemon::start_at(config, listener, supervision, Wall::system()).await
    }

    /// [`Daemon::start`] on the clock `wall` (tests: [`Wall::manual`], to
    /// walk through an evening of reservations and alerts).
    pub async fn start_at(
        config: Config,
        listener: Option<TcpListener>,
        supervision: Supervision,
        wall: Wall,
    ) -> anyhow::Result<Daemon> {
        let mut parts = Parts {
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            store: None,
            mqtt: None,
            http: None,
            https: None,
        };
        let cancel_unless_started = parts.shutdown.clone().drop_guard();
        match bring_up(&mut parts, config, listener, supervision, wall).await {
            Ok(Running {
                http_addr,
                https_addr,
                sensor_input,
                notifier,
            }) => {
                cancel_unless_started.disarm();
                Ok(Daemon {
                    http_addr,
                    https_addr,
                    sensor_input,
                    notifier,
                    parts,
                })
            }
            Err(e) => {
                parts.stop().await;
                Err(e)
            }
        }
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The HTTPS listener's address, when `http.tls_listen` is set.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The MQTT listener's address, when the broker is enabled.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.parts.mqtt.as_ref().map(Broker::addr)
    }

    /// The MQTT-over-WebSocket listener's address, if configured.
    pub fn mqtt_ws_addr(&self) -> Option<SocketAddr> {
        self.parts.mqtt.as_ref().and_then(Broker::ws_addr)
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
        self.parts.stop().await;
        tracing::info!("stopped");
    }
}

/// What `start` hands over besides the [`Parts`].
struct Running {
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    sensor_input: crate::engine::SensorInput,
    notifier: Notifier,
}

/// Start order (module doc); each thing started goes into `parts` at once,
/// so an error at any later `?` stops it.
async fn bring_up(
    parts: &mut Parts,
    config: Config,
    listener: Option<TcpListener>,
    supervision: Supervision,
    wall: Wall,
) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(config.http.client_queue, Arc::clone(&metrics));
    let store = {
        let (cfg, hub, metrics) = (Arc::clone(&config), hub.clone(), Arc::clone(&metrics));
        tokio::task::spawn_blocking(move || Store::open_at(&cfg, hub, metrics, wall))
            .await
            .context("opening the database")?
            .with_context(|| format!("opening the database {}", config.storage.path.display()))?
    };
    parts.store = Some(store.clone());
    prune(&store, &config).await?;
    store
        .apply(
            Change::Record {
                table: None,
                data: EventData::SystemStarted {
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    site: config.site.id.clone(),
                },
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
    let https = match config.http.tls_listen {
        Some(addr) => Some(bind_tls(&config, addr, store.wall().now()).await?),
        None => None,
    };
    let https_addr = https.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
    let (shutdown, tasks) = (&parts.shutdown, &parts.tasks);
    let liveness = Liveness::new(supervision.beat_every());
    tasks.spawn(probe_writer(
        store.clone(),
        liveness.register("writer"),
        shutdown.clone(),
    ));
    tasks.spawn(hub.clone().reap_slow_clients(shutdown.clone()));
    tasks.spawn(crate::waitlist::task::run(
        store.clone(),
        hub.clone(),
        config.waitlist.turn_time,
        shutdown.clone(),
    ));
    tasks.spawn(crate::turns::task::run(
        store.clone(),
        hub.clone(),
        config.site.zone.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(retention_loop(
        store.clone(),
        Arc::clone(&config),
        shutdown.clone(),
    ));
    tasks.spawn(crate::engine::escalation::run(
        store.clone(),
        hub.clone(),
        config.alerts,
        liveness.register("alerts"),
        shutdown.clone(),
    ));
    crate::reservations::schedule::start(
        store.clone(),
        &hub,
        config.reservations.clone(),
        liveness.register("reservations"),
        shutdown.clone(),
        tasks,
    );
    let sensors = crate::engine::start(
        &config,
        store.clone(),
        &hub,
        liveness.register("sensors"),
        shutdown,
        tasks,
    );
    if config.mqtt.enabled {
        let deps = crate::broker::Deps {
            config: Arc::clone(&config),
            store: store.clone(),
            hub: hub.clone(),
            metrics: Arc::clone(&metrics),
            input: sensors.input.clone(),
            heartbeat: liveness.register("mqtt"),
        };
        // A child token: the broker also stops if start-up is abandoned
        // while it is still coming up.
        let broker = Broker::start(deps, shutdown.child_token())
            .await
            .context("starting the MQTT broker")?;
        parts.mqtt = Some(broker);
    }

    if let Some(bridge) = &config.bridge {
        let deps = crate::upstream::Deps {
            bridge: bridge.clone(),
            site: config.site.id.clone(),
            store: store.clone(),
            hub: hub.clone(),
            metrics: Arc::clone(&metrics),
        };
        parts.tasks.spawn(crate::upstream::run(
            deps,
            liveness.register("upstream"),
            parts.shutdown.clone(),
        ));
        if bridge.analytics {
            parts.tasks.spawn(crate::upstream::rollup::run(
                store.clone(),
                liveness.register("rollups"),
                parts.shutdown.clone(),
            ));
        }
    }

    let sources = Sources {
        http: http_addr,
        hub: hub.clone(),
        metrics: Arc::clone(&metrics),
        sensors: sensors.board.clone(),
        liveness: liveness.clone(),
    };
    let limits = crate::http::Limits::new(&config, Arc::clone(&metrics));
    let paired = crate::pairing::Paired::load(&store)
        .await
        .context("reading the paired tablets")?;
    let state = crate::http::AppState {
        config: Arc::clone(&config),
        store: store.clone(),
        hub,
        metrics,
        sensors: sensors.board,
        shutdown: parts.shutdown.clone(),
        limits: Arc::clone(&limits),
        paired,
        ports: crate::http::tls::Ports {
            http: http_addr.port(),
            https: https_addr.map(|a| a.port()),
        },
    };
    let router = crate::http::router(state);
    if let Some((tls_listener, tls)) = https {
        parts.https = Some(tokio::spawn(crate::http::serve_on(
            tls_listener,
            crate::http::Transport::Tls(tls.acceptor()),
            router.clone(),
            Arc::clone(&limits),
            parts.shutdown.clone(),
            HTTP_GRACE,
            liveness.register("https"),
        )));
        parts.tasks.spawn(crate::tls::check_daily(
            tls,
            store.wall().clone(),
            parts.shutdown.clone(),
        ));
    }
    parts.http = Some(tokio::spawn(crate::http::serve(
        listener,
        crate::http::plain_router(router, https_addr.map(|a| a.port())),
        limits,
        parts.shutdown.clone(),
        HTTP_GRACE,
        liveness.register("http"),
    )));
    let (shutdown, tasks) = (&parts.shutdown, &parts.tasks);
    crate::fault::arm(&liveness, tasks, shutdown.clone())
        .context("installing the fault-injection signal handler")?;
    tracing::info!(addr = %http_addr, tables = config.tables.len(), "http listening");
    if let Some(addr) = https_addr {
        tracing::info!(addr = %addr, "https listening");
    }

    // The database is open and every listener is bound: connections made
    // from now on are served.
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
    Ok(Running {
        http_addr,
        https_addr,
        sensor_input: sensors.input,
        notifier,
    })
}

/// The HTTPS listener: its certificate checked (renewed, or first made,
/// see [`crate::tls::Tls::start`]) and loaded, then `addr` bound. Errors
/// name the key.
async fn bind_tls(
    config: &Config,
    addr: SocketAddr,
    now: SystemTime,
) -> anyhow::Result<(TcpListener, Arc<crate::tls::Tls>)> {
    let files = config.http.tls.clone();
    let tls = tokio::task::spawn_blocking(move || crate::tls::Tls::start(&files, now))
        .await
        .context("loading the TLS certificate")??;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("http.tls_listen: cannot listen on {addr}"))?;
    Ok((listener, Arc::new(tls)))
}

async fn prune(store: &Store, config: &Config) -> anyhow::Result<()> {
    let now = store.wall().now();
    let before = now
        .checked_sub(config.storage.retention)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    // One round trip to the writer: events, then visits (kept
    // `analytics.keep_days`, independently).
    let visits_before = now
        .checked_sub(config.analytics.keep)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    store
        .apply(
            Change::All(vec![
                Change::Prune {
                    before,
                    unforwarded_before: config.bridge.as_ref().map(|b| {
                        now.checked_sub(b.max_backlog)
                            .unwrap_or(SystemTime::UNIX_EPOCH)
                    }),
                },
                Change::PruneVisits {
                    before: visits_before,
                },
            ]),
            Actor::System,
        )
        .await
        .context("applying storage.retention_days and analytics.keep_days")?;
    Ok(())
}

/// Deletes old events every [`RETENTION_EVERY`], the first time one period
/// after it starts (the daemon prunes once at start); public for the tests.
pub async fn retention_loop(store: Store, config: Arc<Config>, shutdown: CancellationToken) {
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
