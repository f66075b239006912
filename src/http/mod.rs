//! HTTP: routes, the accept loop, and graceful shutdown.
//!
//! The accept loop is ours (not `axum::serve`) for four reasons: each
//! connection is admitted against the caps of [`limits`] (over a cap it
//! gets a 503 and is closed), gets `TCP_NODELAY` (small event frames must
//! not wait for Nagle), a header-read timeout (which also ends idle
//! keep-alive connections), and a per-connection kill token that the hub's
//! reaper cancels to close a stalled stream client even though nothing
//! polls its response any more. The same loop serves `http.tls_listen`
//! ([`Transport::Tls`], `crate::tls`): a connection is admitted against
//! the same caps first, then its TLS handshake runs in its own task.
//!
//! Nothing a peer sends is logged with `%` (Display): paths, headers,
//! tokens and WebSocket messages are not logged at all, and what is (a
//! storage error, a peer address) goes through `?` (Debug), which escapes
//! control characters, so a `\n` cannot forge a log line.

mod alerts;
mod analytics;
mod api;
pub mod error;
mod events;
mod joins;
pub mod limits;
mod mesas;
mod pairing;
mod reservations;
mod sse;
pub mod tls;
mod turns;
mod ui;
mod waitlist;
pub mod ws;

use crate::config::Config;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::systemd::Heartbeat;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, patch, post, put};
use error::ApiError;
use hyper_util::rt::{TokioIo, TokioTimer};
pub use limits::Limits;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// A client must send its request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes hyper buffers per connection, each way: a request head
/// larger than this is refused, and a stream response that its client
/// does not read holds at most this (plus one chunk of at most the SSE
/// stream's `COALESCE_BYTES`) beyond the socket's own buffer. hyper's
/// default (about 400 KiB) would let each stalled stream client pin that
/// much; 8 KiB is hyper's minimum.
pub const CONN_BUFFER: usize = 16 * 1024;

/// Pause after a failed accept (e.g. out of file descriptors), so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    /// Per-sensor health for `/api/v1/stats`.
    pub sensors: crate::engine::SensorBoard,
    /// Cancelled when the daemon stops; streams end on it.
    pub shutdown: CancellationToken,
    /// Connection and stream caps, shared with the accept loop.
    pub limits: Arc<Limits>,
    /// The paired tablets' tokens ([`crate::pairing`]).
    pub paired: Arc<crate::pairing::Paired>,
    /// The bound ports, for the URLs of QR codes and redirects.
    pub ports: tls::Ports,
}

/// The connection's kill switch, put in every request's extensions.
#[derive(Clone)]
pub struct ConnKill(pub CancellationToken);

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/snapshot", get(api::snapshot))
        .route("/tables", get(api::list_tables).post(api::create_table))
        .route(
            "/tables/{id}",
            get(api::get_table)
                .patch(api::patch_table)
                .delete(api::delete_table),
        )
        .route("/tables/{id}/state", put(api::set_state))
        .route("/alerts", get(alerts::list).post(alerts::raise))
        .route("/alerts/{id}/ack", post(alerts::ack))
        .route(
            "/reservations",
            get(reservations::list).post(reservations::create),
        )
        .route("/reservations/check-in", post(reservations::check_in))
        .route(
            "/reservations/{id}",
            get(reservations::get)
                .patch(reservations::patch)
                .delete(reservations::cancel),
        )
        .route("/reservations/{id}/qr.svg", get(reservations::qr))
        .route("/events", get(events::list))
        .route("/stats", get(api::stats))
        .route("/waitlist", get(waitlist::list).post(waitlist::add))
        .route(
            "/waitlist/{id}",
            patch(waitlist::edit).delete(waitlist::remove),
        )
        .route("/waitlist/{id}/seat", post(waitlist::seat))
        .route("/predictions", get(turns::predictions))
        .route("/analytics/quotes", get(turns::quotes))
        .route("/stream", get(sse::stream))
        .route("/ws", get(ws::upgrade))
        .route("/mesas", get(mesas::list))
        .route("/mesas/stream", get(mesas::stream))
        .route("/mesas/{id}", get(mesas::get_one).put(mesas::put))
        .route("/ui", get(ui::info))
        .route("/analytics", get(analytics::analytics))
        .route(
            "/analytics/utilization.csv",
            get(analytics::utilization_csv),
        )
        .route(
            "/analytics/turns_per_table.csv",
            get(analytics::turns_per_table_csv),
        )
        .route(
            "/analytics/turn_time_by_party_size.csv",
            get(analytics::turn_time_by_party_size_csv),
        )
        .route("/analytics/covers.csv", get(analytics::covers_csv))
        .route("/visits.csv", get(analytics::visits_csv))
        .route("/tls", get(tls::summary))
        .route("/tls/ca-qr.svg", get(tls::ca_qr))
        .route("/pairings", get(pairing::list).post(pairing::create))
        .route("/pairings/qr.svg", get(pairing::qr))
        .route("/pairings/{id}", axum::routing::delete(pairing::revoke))
        .route("/pair", post(pairing::exchange));
    // Its own fallbacks before the CORS layer, so that a preflight reaches
    // the layer on every API path, whatever methods the path has.
    let api = api
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let api = match cors(&state.config.http.cors_origins) {
        Some(layer) => api.layer(layer),
        None => api,
    };
    Router::new()
        .route("/", get(ui::index))
        .route("/kitchen", get(ui::kitchen))
        .route("/pair", get(ui::pair))
        .route("/sw.js", get(ui::service_worker))
        .route("/manifest.webmanifest", get(ui::manifest))
        .route("/app/{name}", get(ui::asset))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route("/ca.crt", get(tls::ca_crt))
        .nest_service("/api/v1", api.with_state(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.http.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_client_errors,
        ))
        .with_state(state)
}

/// The plain listener's router: [`router`], and with TLS on (its port
/// `https`) browsers' page requests redirected there ([`tls`]).
pub fn plain_router(router: Router, https: Option<u16>) -> Router {
    match https {
        Some(port) => router.layer(middleware::from_fn_with_state(port, tls::redirect_browsers)),
        None => router,
    }
}

/// Cross-origin access to the API for the pages served from
/// `http.cors_origins` (e.g. a front end's dev server on another port):
/// every API method, with `Authorization`, `Content-Type` and
/// `Last-Event-ID`, preflights cached 10 minutes; no cookies (tokens go in
/// a header or `?token=`). `None` without origins: browsers then refuse
/// cross-origin reads, the default.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    // The config checked each is an origin, which is a valid header value.
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

async fn count_client_errors(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if response.status().is_client_error() {
        app.metrics
            .http_client_errors
            .fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// What the accept loop speaks on its listener.
#[derive(Clone)]
pub enum Transport {
    /// Plain HTTP (`http.listen`).
    Plain,
    /// HTTPS (`http.tls_listen`): the TLS handshake runs in the
    /// connection's task, within [`HEADER_READ_TIMEOUT`], after the
    /// connection was admitted against the same caps as a plain one.
    Tls(tokio_rustls::TlsAcceptor),
}

/// A number for each connection, unique in the process (extensions: the
/// connection a paired token authenticated, `crate::pairing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnId(pub u64);

static NEXT_CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Serves `router` on an already bound listener until `shutdown`, then
/// lets open requests finish for up to `grace`. Connections are admitted
/// against `limits`. The accept loop checks in with `heartbeat` while it
/// runs.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
    grace: Duration,
    heartbeat: Heartbeat,
) {
    serve_on(
        listener,
        Transport::Plain,
        router,
        limits,
        shutdown,
        grace,
        heartbeat,
    )
    .await
}

/// [`serve`] speaking `transport`. The plain and the TLS listener share
/// one [`Limits`]: their connections count against the same caps.
pub async fn serve_on(
    listener: TcpListener,
    transport: Transport,
    router: Router,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
    grace: Duration,
    mut heartbeat: Heartbeat,
) {
    let connections = TaskTracker::new();
    // Cancelled when the grace period is over: drops whatever is left.
    let force = CancellationToken::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = heartbeat.tick() => {
                heartbeat.beat();
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    limits.accept_failed(&e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let peer = peer.ip().to_canonical();
        // From the daemon's own host: the peer is the address it dialled.
        let local = stream
            .local_addr()
            .is_ok_and(|l| l.ip().to_canonical() == peer);
        let slot = match limits.admit(peer, local) {
            Ok(slot) => slot,
            Err(refusal) => {
                limits.turn_away(stream, peer, refusal, &connections);
                continue;
            }
        };
        // Latency matters more than packet count for event frames.
        let _ = stream.set_nodelay(true);
        let kill = force.child_token();
        let conn_kill = ConnKill(kill.clone());
        let conn_id = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(conn_kill.clone());
            req.extensions_mut().insert(conn_id);
            router.clone().oneshot(req)
        });
        let shutdown = shutdown.clone();
        let transport = transport.clone();
        let limits = Arc::clone(&limits);
        connections.spawn(async move {
            // Counted against the caps until the connection is gone.
            let _slot = slot;
            match transport {
                Transport::Plain => drive(stream, service, &kill, &shutdown).await,
                Transport::Tls(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream));
                    let tls = tokio::select! {
                        done = handshake => done,
                        _ = kill.cancelled() => return,
                        _ = shutdown.cancelled() => return,
                    };
                    match tls {
                        Ok(Ok(tls)) => drive(tls, service, &kill, &shutdown).await,
                        // A scanner, a client that does not trust the CA
                        // yet, a stalled handshake: counted, not logged.
                        _ => {
                            limits
                                .metrics()
                                .http
                                .tls_handshake_failures
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not close in time; dropping them");
        force.cancel();
        connections.wait().await;
    }
}

/// Serves one connection until it closes, its `kill` switch is cancelled,
/// or `shutdown` (then the request in flight finishes first).
async fn drive<I, S>(io: I, service: S, kill: &CancellationToken, shutdown: &CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<hyper::body::Incoming>, Response = Response>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(CONN_BUFFER)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    // Dropping the connection (on kill) closes the socket.
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = kill.cancelled() => return,
        _ = shutdown.cancelled() => {}
    }
    // Finish the request in flight (streams end on shutdown), then
    // close instead of waiting for the next keep-alive request.
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn => {}
        _ = kill.cancelled() => {}
    }
}
