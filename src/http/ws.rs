//! `GET /api/v1/ws`: the same events over WebSocket (SPEC §2).
//!
//! Client → server: `{"op": "subscribe", "tables", "types", "targets", "since"}`
//! replaces the feed (with `since`: replay then live; without: a fresh
//! snapshot under the new filter), `{"op": "ping"}` → `{"type": "pong"}`.
//! The server pings every `http.ws_ping` and drops a peer that has sent
//! nothing for two intervals. A client that falls too far behind is closed
//! with code 4008 "slow consumer" and resumes with `since`. Events already
//! queued for a client go out together, in one flush. A client frame
//! or message over 16 KiB closes the socket at its header: no peer can make
//! the daemon buffer more than that per socket. Each socket holds a slot
//! of `http.max_streams` (see `limits`); over the cap the upgrade gets a 503.

use super::error::{ApiError, AsViewer, Need};
use super::limits::StreamSlot;
use super::sse::StreamParams;
use super::{AppState, ConnKill};
use crate::auth::Role;
use crate::feed::{Feed, FeedEnd, Filter, Item};
use crate::hub::{ClientKind, Published};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::SinkExt as _;
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Close code for a client that fell too far behind (SPEC §2).
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
const CLOSE_GOING_AWAY: u16 = 1001;

/// Largest accepted client message; ops are tiny.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// Largest accepted frame: a message limit alone does not help, because
/// tungstenite buffers a whole frame (16 MiB by default) before it counts
/// the message. With this a frame that announces more is refused at its
/// header and the socket closed, before any of its body is read.
const MAX_CLIENT_FRAME: usize = MAX_CLIENT_MESSAGE;

/// Read buffer, allocated up front for every socket: client ops are a few
/// dozen bytes, so 1 KiB instead of tungstenite's 128 KiB (a larger
/// message, up to `MAX_CLIENT_MESSAGE`, is read in several pieces).
const READ_BUFFER: usize = 1024;

/// Bytes of frames gathered before a write goes to the socket. Every
/// event already queued for a client is fed in and then flushed, so a
/// client that fell behind catches up in writes of about this size
/// instead of one write per event; an event that finds the client waiting
/// is flushed at once (events never wait for company).
const WRITE_BUFFER: usize = 16 * 1024;

/// Most bytes waiting in one socket's write buffer, beyond which a send
/// fails. Each batch is flushed before the next, so this holds one batch
/// (`WRITE_BUFFER` and one message): large enough for the snapshot of a
/// big floor plan (hundreds of tables are tens of KiB), small enough that
/// no socket can pin much memory.
const MAX_WRITE_BUFFER: usize = 4 << 20;

// tungstenite panics on a config whose write bound is not above the
// write buffer; checked here at compile time instead.
const _: () = assert!(MAX_WRITE_BUFFER > WRITE_BUFFER);

/// How long a close frame may take to send before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum ClientOp {
    Subscribe {
        #[serde(default)]
        tables: Vec<i64>,
        #[serde(default)]
        types: Vec<String>,
        /// Alert targets (see [`crate::feed`]).
        #[serde(default)]
        targets: Vec<String>,
        since: Option<u64>,
    },
    Ping,
}

pub async fn upgrade(
    State(app): State<AppState>,
    Need(caller): AsViewer,
    kill: Option<axum::Extension<ConnKill>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let params = StreamParams::parse(query.as_deref(), &headers)?;
    let ws = ws.map_err(|r| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("not a WebSocket upgrade: {}", r.body_text()),
        )
    })?;
    let slot = app.limits.open_stream(caller.role >= Role::Staff)?;
    let kill = kill.map(|k| k.0.0).unwrap_or_default();
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_FRAME)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| session(app, socket, params, kill, slot)))
}

/// One WebSocket; `_slot` holds its place under `http.max_streams` until
/// the session ends.
async fn session(
    app: AppState,
    mut socket: WebSocket,
    params: StreamParams,
    kill: CancellationToken,
    _slot: StreamSlot,
) {
    let new_feed = |filter: Filter, since: Option<u64>| {
        Feed::new(
            &app.hub,
            app.store.clone(),
            filter,
            since,
            ClientKind::Ws,
            kill.clone(),
            app.shutdown.clone(),
        )
    };
    let mut feed = new_feed(params.filter, params.since);
    let ping_every = app.config.http.ws_ping;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();

    let close = loop {
        tokio::select! {
            _ = kill.cancelled() => break Some((CLOSE_SLOW_CONSUMER, "slow consumer")),
            item = feed.next() => {
                let text = match item {
                    Ok(Item::Event(p)) => {
                        if !send_events(&mut socket, &p, &mut feed, &kill).await {
                            break None;
                        }
                        continue;
                    }
                    Ok(Item::Snapshot { seq, data }) => Utf8Bytes::from(
                        json!({ "type": "snapshot", "seq": seq, "data": data }).to_string(),
                    ),
                    Err(FeedEnd::Lagged) => {
                        app.metrics.slow_clients_closed.fetch_add(1, Ordering::Relaxed);
                        break Some((CLOSE_SLOW_CONSUMER, "slow consumer"));
                    }
                    Err(FeedEnd::Shutdown) => break Some((CLOSE_GOING_AWAY, "server shutting down")),
                    Err(e) => {
                        tracing::warn!(error = ?e.to_string(), "WebSocket feed failed");
                        break Some((1011, "internal error"));
                    }
                };
                if !send(&mut socket, Message::Text(text), &kill).await {
                    break None;
                }
            }
            incoming = socket.recv() => {
                last_heard = Instant::now();
                let reply = match incoming {
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<ClientOp>(&text) {
                        Ok(ClientOp::Ping) => Some(json!({ "type": "pong" })),
                        Ok(ClientOp::Subscribe { tables, types, targets, since }) => {
                            match subscribe_filter(tables, types, targets) {
                                Ok(filter) => {
                                    feed = new_feed(filter, since);
                                    None
                                }
                                Err(message) => Some(error_frame(&message)),
                            }
                        }
                        Err(e) => Some(error_frame(&format!("bad message: {e}"))),
                    },
                    Some(Ok(Message::Binary(_))) => Some(error_frame("binary frames are not accepted; send JSON text")),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                };
                if let Some(reply) = reply {
                    if !send(&mut socket, Message::Text(Utf8Bytes::from(reply.to_string())), &kill).await {
                        break None;
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 2 {
                    tracing::debug!("dropping a WebSocket peer that stopped answering");
                    break None;
                }
                if !send(&mut socket, Message::Ping(Default::default()), &kill).await {
                    break None;
                }
            }
        }
    };
    if let Some((code, reason)) = close {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        // A stalled peer cannot take the close frame either; don't wait on it.
        let _ = tokio::time::timeout(CLOSE_GRACE, socket.send(frame)).await;
    }
}

/// Sends `first` and every event ready after it (up to about
/// `WRITE_BUFFER` bytes) in one flush, unless the connection is killed
/// meanwhile; false when the session should end.
async fn send_events(
    socket: &mut WebSocket,
    first: &Published,
    feed: &mut Feed,
    kill: &CancellationToken,
) -> bool {
    let batch = async {
        socket.feed(Message::Text(first.text.clone())).await?;
        let mut fed = first.text.len();
        while fed < WRITE_BUFFER {
            let Some(next) = feed.ready() else { break };
            fed += next.text.len();
            socket.feed(Message::Text(next.text.clone())).await?;
        }
        socket.flush().await
    };
    tokio::select! {
        sent = batch => sent.is_ok(),
        _ = kill.cancelled() => false,
    }
}

/// Sends one frame unless the connection is killed meanwhile; false when
/// the session should end.
async fn send(socket: &mut WebSocket, message: Message, kill: &CancellationToken) -> bool {
    tokio::select! {
        sent = socket.send(message) => sent.is_ok(),
        _ = kill.cancelled() => false,
    }
}

fn subscribe_filter(
    tables: Vec<i64>,
    types: Vec<String>,
    targets: Vec<String>,
) -> Result<Filter, String> {
    if let Some(bad) = tables.iter().find(|t| **t <= 0) {
        return Err(format!("tables: {bad} is not a table id"));
    }
    let types = Filter::parse_types("types", types.iter().map(String::as_str))?;
    let targets = Filter::parse_targets("targets", targets.iter().map(String::as_str))?;
    Ok(Filter {
        tables,
        types,
        targets,
    })
}

fn error_frame(message: &str) -> serde_json::Value {
    json!({ "type": "error", "error": { "code": "bad_request", "message": message } })
}
