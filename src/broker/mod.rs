//! The embedded MQTT broker (SPEC §3): sensor nodes in, table state out.
//!
//! rumqttd 0.20 provides the router (subscriptions, retained messages,
//! QoS, sessions) on its own thread; mesero provides the network side.
//! rumqttd's own listeners (its `Broker::start` with `v4`/`ws` servers)
//! are not used, for these reasons, found in its source
//! (`link/remote.rs`, `server/broker.rs`):
//! - Its login hook cannot carry a role. 0.20 has
//!   `ConnectionSettings::set_auth_handler`, an async
//!   `Fn(client_id, user, password) -> bool`, which would allow SHA-256
//!   users compared in constant time; but it answers only yes or no. What
//!   it found is not attached to the connection, `RemoteLink::start` then
//!   hands every packet to the router with no further hook, and the
//!   messages the router hands to a link do not say who published them.
//!   So "only staff may publish `tables/<id>/set`" (and applying a `set`
//!   as that client, acknowledged after the commit) cannot be enforced
//!   behind its listeners. Each session here knows its client's user and
//!   role and checks every PUBLISH before it reaches the router (see
//!   [`session`]).
//! - Its link passes peer topics and filters to the router unscreened,
//!   and some of them panic the router thread (see below).
//! - A refused login gets no CONNACK: `mqtt_connect` returns `InvalidAuth`
//!   before writing one and the socket is dropped, so a client cannot tell
//!   bad credentials from a network fault; and every refusal is an
//!   unthrottled `error!` line. Here the client gets return code 4 or 5,
//!   and refusals are counted and logged rate-limited.
//! - It refuses keep-alive 0 (`ZeroKeepAlive`, again without a CONNACK),
//!   which MQTT 3.1.1 allows.
//! - Before CONNECT a socket is bounded only by `connection_timeout_ms`:
//!   nothing caps how many sockets wait for their CONNECT, in all or per
//!   address ([`limits`]).
//! - A listener that cannot bind is only logged; here the ports are bound
//!   (and port 0 resolved) before start-up continues, so a taken port
//!   stops the daemon with an error naming the key.
//! - Its listener threads never stop; these stop with the daemon.
//!
//! The sessions use rumqttd's MQTT 3.1.1 codec and its local links into
//! the router, which hold each client's subscriptions and session state.
//!
//! Peer bytes never reach a panic in rumqttd: every topic name, filter and
//! client id passes [`screen`] before the router sees it (docs/MQTT.md
//! lists the rumqttd code each rule guards).
//!
//! Limits ([`limits`]): sockets that have not sent CONNECT by
//! `mqtt.max_pending`/`mqtt.max_pending_per_ip` (oldest closed first) and
//! `mqtt.connect_timeout`; logged-in clients by `mqtt.max_connections`;
//! packets by `mqtt.max_payload`; subscriptions by
//! `mqtt.max_subscriptions` per connection and `mqtt.max_filters` in all
//! (the router never frees a filter's log, each bounded by
//! `mqtt.segments` × `mqtt.segment_bytes`); retained messages by
//! `mqtt.max_retained*`, per user and in total; QoS 2 publishes awaiting
//! PUBREL by `session::MAX_QOS2_INFLIGHT` per connection; how far a
//! subscriber may fall behind before publishers to it wait, and for how
//! long ([`flow`]: the router itself would drop).
//!
//! Threads: the router runs on rumqttd's thread; the listeners, sessions
//! and the daemon's own publisher ([`bridge`]) run on one broker thread
//! with its own async runtime, because rumqttd's link calls block (opening
//! a link waits for the router, sending waits while its queue is full) and
//! must never block the daemon's runtime. rumqttd 0.20 cannot stop its
//! router thread: at stop every link is disconnected and the idle router
//! is left to end with the process.

mod bridge;
mod flow;
mod limits;
pub mod screen;
mod session;
pub mod topics;
mod transport;

#[doc(hidden)]
pub use screen::fuzz_session_bytes;

use crate::config::{Config, MqttConfig};
use crate::engine::SensorInput;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::systemd::Heartbeat;
pub use crate::throttle::{LOG_EVERY, Throttle};
use anyhow::Context as _;
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::{Notification, Router, RouterConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use topics::{Inbound, Topics};

/// Most messages the router queues for one client before pausing it.
const MAX_OUTGOING: u64 = 200;

/// How long stop waits for sessions to write their last messages.
const SESSIONS_GRACE: Duration = Duration::from_secs(1);

/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the broker needs from the daemon.
pub struct Deps {
    pub config: Arc<Config>,
    pub store: Store,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    /// Where readings of `mqtt` sensors and detections go.
    pub input: SensorInput,
    /// Beaten by the daemon's own link each time the router answers a
    /// ping, so the watchdog notices a stuck broker thread or router.
    pub heartbeat: Heartbeat,
}

/// A running broker.
pub struct Broker {
    addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    stop: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

impl Broker {
    /// Binds `mqtt.listen` (and `mqtt.ws_listen`), starts the router, and
    /// publishes the retained state; returns once clients can connect. It
    /// runs until [`Broker::stop`], or until its owner cancels `stop`
    /// (also while this is still coming up).
    pub async fn start(deps: Deps, stop: CancellationToken) -> anyhow::Result<Broker> {
        let mqtt = &deps.config.mqtt;
        let tcp = bind("mqtt.listen", mqtt.listen)?;
        let ws = mqtt
            .ws_listen
            .map(|addr| bind("mqtt.ws_listen", addr))
            .transpose()?;
        let addr = tcp.local_addr()?;
        let ws_addr = ws
            .as_ref()
            .map(std::net::TcpListener::local_addr)
            .transpose()?;
        let (ready_tx, ready) = oneshot::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("mesero-mqtt".into())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow::Error::new(e)));
                            return;
                        }
                    };
                    runtime.block_on(run(deps, tcp, ws, stop, ready_tx));
                })
                .context("starting the MQTT thread")?
        };
        let started = ready
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the MQTT thread ended during start-up")));
        if let Err(e) = started {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            return Err(e);
        }
        tracing::info!(mqtt = %addr, websocket = ?ws_addr, "MQTT broker listening");
        Ok(Broker {
            addr,
            ws_addr,
            stop,
            thread,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// Stops accepting, publishes `offline`, closes every session.
    pub async fn stop(self) {
        self.stop.cancel();
        let thread = self.thread;
        if tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_or(true, |joined| joined.is_err())
        {
            tracing::error!("the MQTT thread panicked");
        }
    }
}

fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("{key}: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn router_config(mqtt: &MqttConfig) -> RouterConfig {
    RouterConfig {
        // One more for the daemon's own link.
        max_connections: mqtt.max_connections + 1,
        max_outgoing_packet_count: MAX_OUTGOING,
        max_segment_size: mqtt.segment_bytes,
        max_segment_count: router_segments(mqtt),
        ..RouterConfig::default()
    }
}

/// Segments the router keeps per filter: `mqtt.segments`, but at least
/// two, so a full one is always kept while the next fills ([`flow`] holds
/// publishers back before a subscriber falls further behind).
fn router_segments(mqtt: &MqttConfig) -> usize {
    mqtt.segments.max(2)
}

/// The broker thread's main: everything until stop.
async fn run(
    deps: Deps,
    tcp: std::net::TcpListener,
    ws: Option<std::net::TcpListener>,
    stop: CancellationToken,
    ready: oneshot::Sender<anyhow::Result<()>>,
) {
    let (shared, heartbeat) = Shared::new(deps);
    let shared = Arc::new(shared);
    let listeners = (|| -> std::io::Result<_> {
        Ok((
            TcpListener::from_std(tcp)?,
            ws.map(TcpListener::from_std).transpose()?,
        ))
    })();
    let (tcp, ws) = match listeners {
        Ok(pair) => pair,
        Err(e) => {
            let _ = ready.send(Err(anyhow::Error::new(e).context("MQTT listeners")));
            return;
        }
    };
    // Retained state goes in before the first client can connect.
    let bridge = match bridge::Bridge::start(Arc::clone(&shared), heartbeat).await {
        Ok(bridge) => bridge,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let close_sessions = CancellationToken::new();
    let sessions = TaskTracker::new();
    let mut accept = vec![tokio::spawn(accept_loop(
        Arc::clone(&shared),
        tcp,
        false,
        stop.clone(),
        close_sessions.clone(),
        sessions.clone(),
    ))];
    if let Some(ws) = ws {
        accept.push(tokio::spawn(accept_loop(
            Arc::clone(&shared),
            ws,
            true,
            stop.clone(),
            close_sessions.clone(),
            sessions.clone(),
        )));
    }
    let _ = ready.send(Ok(()));

    // Runs until stop, then publishes `offline` while sessions still run.
    bridge.run(stop).await;
    for task in accept {
        let _ = task.await;
    }
    close_sessions.cancel();
    sessions.close();
    if tokio::time::timeout(SESSIONS_GRACE, sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!("some MQTT sessions did not close in time");
    }
    tracing::info!("MQTT broker stopped");
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    websocket: bool,
    stop: CancellationToken,
    close_sessions: CancellationToken,
    sessions: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    shared.noise("accept", |suppressed| {
                        tracing::warn!(error = %e, suppressed, "MQTT accept failed");
                    });
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Not logged in yet: it takes a pending slot, never a client's.
        let (pending, evicted) = shared.pending.admit(peer.ip());
        if evicted > 0 {
            shared
                .metrics
                .mqtt
                .pending_evicted
                .fetch_add(evicted, Ordering::Relaxed);
            shared.noise("pending", |suppressed| {
                tracing::warn!(%peer, suppressed, max = shared.mqtt.max_pending, per_ip = shared.mqtt.max_pending_per_ip, "MQTT socket without CONNECT closed to make room (mqtt.max_pending, mqtt.max_pending_per_ip)");
            });
        }
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let close = close_sessions.clone();
        sessions.spawn(async move {
            let deadline = tokio::time::Instant::now() + shared.mqtt.connect_timeout;
            let io = if websocket {
                let handshake = transport::accept_ws(stream, shared.mqtt.max_payload);
                let done = tokio::select! {
                    _ = pending.evicted() => return,
                    done = tokio::time::timeout_at(deadline, handshake) => done,
                };
                match done {
                    Ok(Ok(io)) => io,
                    Ok(Err(_)) => {
                        shared
                            .metrics
                            .mqtt
                            .protocol_errors
                            .fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(_) => {
                        shared
                            .metrics
                            .mqtt
                            .connect_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            } else {
                transport::Transport::Tcp(stream)
            };
            session::run(shared, io, peer, pending, deadline, close).await;
        });
    }
}

/// Opens a link into the router for one client; blocks until the router
/// answers, so it is called on the blocking pool.
type Connector = dyn Fn(&str, bool) -> Result<(LinkTx, LinkRx, Notification), String> + Send + Sync;

/// What every session and the publisher share; lives as long as the
/// broker thread.
pub(crate) struct Shared {
    topics: Topics,
    site_name: String,
    language: String,
    homeassistant: bool,
    mqtt: MqttConfig,
    store: Store,
    hub: Hub,
    metrics: Arc<Metrics>,
    input: SensorInput,
    connector: Arc<Connector>,
    /// Client id of the daemon's own link; refused for clients, or one
    /// could take the link over.
    daemon_client_id: String,
    /// Woken when Home Assistant announces itself (re-send discovery).
    ha_online: Notify,
    /// Clients past CONNECT, against `mqtt.max_connections`.
    connected: Arc<AtomicUsize>,
    /// Sockets that have not sent CONNECT yet.
    pending: limits::Pending,
    /// Filters given to the router (it never forgets one), against
    /// `mqtt.max_filters` in total and `mqtt.max_subscriptions` per user.
    filters: limits::Filters,
    /// Retained messages clients left, against `mqtt.max_retained*`.
    retained: limits::Retained,
    /// What each subscriber has yet to receive, holding publishers back
    /// before the router would drop.
    flows: flow::Flows,
    /// QoS 2 packet ids answered by sessions of persistent clients, kept
    /// across reconnects so a resend is not applied twice.
    qos2: limits::Qos2Sessions,
    /// For client ids assigned to clients that sent none.
    next_client: AtomicU64,
    throttle: Throttle,
}

impl Shared {
    /// The shared state, and the heartbeat for the daemon's own link.
    fn new(deps: Deps) -> (Shared, Heartbeat) {
        let config = &deps.config;
        let router_tx = Router::new(0, router_config(&config.mqtt)).spawn();
        // Wills are not given to the router: it only sends them when its
        // own listeners ask it to, so sessions publish them themselves.
        let connector = move |client_id: &str, clean: bool| {
            LinkBuilder::new(client_id, router_tx.clone())
                .clean_session(clean)
                .build()
                .map_err(|e| e.to_string())
        };
        let shared = Shared {
            topics: Topics::new(&config.site.id)
                .with_detections(config.mqtt.detection_topics.clone()),
            site_name: config.site.name.clone(),
            language: config.site.language.clone(),
            homeassistant: config.mqtt.homeassistant,
            mqtt: config.mqtt.clone(),
            daemon_client_id: format!("mesero-{}-daemon", config.site.id),
            store: deps.store,
            hub: deps.hub,
            metrics: deps.metrics,
            input: deps.input,
            connector: Arc::new(connector),
            ha_online: Notify::new(),
            connected: Arc::new(AtomicUsize::new(0)),
            pending: limits::Pending::new(config.mqtt.max_pending, config.mqtt.max_pending_per_ip),
            filters: limits::Filters::new(config.mqtt.max_filters, config.mqtt.max_subscriptions),
            retained: limits::Retained::new(&config.mqtt),
            flows: flow::Flows::new(router_segments(&config.mqtt), config.mqtt.segment_bytes),
            qos2: limits::Qos2Sessions::default(),
            next_client: AtomicU64::new(1),
            throttle: Throttle::new(LOG_EVERY),
        };
        (shared, deps.heartbeat)
    }

    /// Opens a router link on the blocking pool (the router's answer is
    /// awaited with a blocking receive).
    async fn open_link(
        &self,
        client_id: &str,
        clean: bool,
    ) -> anyhow::Result<(LinkTx, LinkRx, Notification)> {
        let connector = Arc::clone(&self.connector);
        let client_id = client_id.to_string();
        tokio::task::spawn_blocking(move || connector(&client_id, clean))
            .await?
            .map_err(anyhow::Error::msg)
    }

    /// The client id a session runs under, or why it is refused: what
    /// [`screen::client_id`] refuses, the daemon's own, and an empty id
    /// with a persistent session (MQTT §3.1.3.1).
    fn client_id(&self, requested: &str, clean_session: bool) -> Result<String, &'static str> {
        if requested.is_empty() {
            if !clean_session {
                return Err("empty client id with a persistent session");
            }
            let n = self.next_client.fetch_add(1, Ordering::Relaxed);
            return Ok(format!("mesero-auto-{n}"));
        }
        if requested == self.daemon_client_id {
            return Err("the daemon's own client id");
        }
        screen::client_id(requested)?;
        Ok(requested.to_string())
    }

    /// A connected-client slot, released on drop; `None` when full.
    fn connected_slot(&self) -> Option<Slot> {
        let max = self.mqtt.max_connections;
        self.connected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(&self.connected)))
    }

    /// A will is kept only if the client could publish it itself: one on a
    /// daemon topic, a set command or an alert would bypass the checks at
    /// disconnect.
    /// `topic` is the will's topic, already screened.
    fn will_allowed(&self, topic: &str, client_id: &str) -> bool {
        let allowed = !matches!(
            self.topics.inbound(topic),
            Inbound::DaemonOwned | Inbound::Set(_) | Inbound::AlertRaise
        );
        if !allowed {
            self.metrics
                .mqtt
                .publishes_refused
                .fetch_add(1, Ordering::Relaxed);
            self.noise("refused", |suppressed| {
                tracing::warn!(client = ?client_id, topic, suppressed, "MQTT will on a protected topic ignored");
            });
        }
        allowed
    }

    /// Runs `log` unless the same kind was logged less than [`LOG_EVERY`]
    /// ago; `log` gets how many were suppressed since the last one.
    fn noise(&self, kind: &'static str, log: impl FnOnce(u64)) {
        if let Some(suppressed) = self.throttle.allow(kind, Instant::now()) {
            log(suppressed);
        }
    }
}

/// One connected client, counted until dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
