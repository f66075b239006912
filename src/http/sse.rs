//! `GET /api/v1/stream`: Server-Sent Events (SPEC §2).
//!
//! The body is a stream polled by hyper only when the socket can take
//! more, so a client that stops reading stops costing work; the hub's
//! reaper closes it once it is a whole queue behind (see `hub`). When it
//! is polled, every event already queued for it goes out in one chunk (up
//! to [`COALESCE_BYTES`]), so a client that fell behind catches up in a
//! few writes; an event that finds the client waiting goes out alone, at
//! once (events never wait for company). Each stream holds a slot of
//! `http.max_streams` (see `limits`) until its body is dropped; over the
//! cap the request gets a 503.

use super::error::{ApiError, AsViewer, Need, Query};
use super::limits::StreamSlot;
use super::{AppState, ConnKill};
use crate::auth::Role;
use crate::feed::{Feed, FeedEnd, Filter, Item};
use crate::hub::ClientKind;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::BytesMut;
use futures_util::stream;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The stream's parameters, shared with the WebSocket's query string.
pub struct StreamParams {
    pub since: Option<u64>,
    pub filter: Filter,
}

impl StreamParams {
    pub fn parse(query: Option<&str>, headers: &HeaderMap) -> Result<StreamParams, ApiError> {
        let q = Query::parse(query, &["since", "tables", "types", "targets"])?;
        // The header wins: EventSource resends the original URL (with its
        // old `since`) plus the newer Last-Event-ID when it reconnects.
        let since = match headers.get("last-event-id") {
            Some(v) => {
                let text = v.to_str().unwrap_or("").trim();
                if text.is_empty() {
                    q.u64("since")?
                } else {
                    Some(text.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!(
                            "Last-Event-ID: {text:?} is not an event seq"
                        ))
                    })?)
                }
            }
            None => q.u64("since")?,
        };
        let tables = match q.get("tables") {
            Some(v) => Filter::parse_tables("tables", v).map_err(ApiError::bad_request)?,
            None => Vec::new(),
        };
        let types = match q.get("types") {
            Some(v) => Filter::parse_types("types", v.split(',')).map_err(ApiError::bad_request)?,
            None => Vec::new(),
        };
        let targets = match q.get("targets") {
            Some(v) => {
                Filter::parse_targets("targets", v.split(',')).map_err(ApiError::bad_request)?
            }
            None => Vec::new(),
        };
        Ok(StreamParams {
            since,
            filter: Filter {
                tables,
                types,
                targets,
            },
        })
    }
}

/// Most bytes of ready events joined into one chunk. A client that fell
/// behind catches up in chunks of this size (one write each) instead of
/// one write per event; with hyper's own buffer (`http::CONN_BUFFER`) it
/// bounds what a stalled client's connection holds beyond the shared ring.
pub const COALESCE_BYTES: usize = 16 * 1024;

struct SseState {
    feed: Feed,
    app: AppState,
    heartbeat: Duration,
    /// Fires at most once per `heartbeat`: it is moved only when it fires
    /// (to `last_write + heartbeat`), never per event, so a busy stream
    /// costs the timer wheel nothing.
    beat: Pin<Box<Sleep>>,
    /// When the stream last wrote anything.
    last_write: Instant,
    /// Freed when the body (and with it this state) is dropped.
    _slot: StreamSlot,
}

impl SseState {
    /// The next chunk: an event and whatever else is ready (up to
    /// [`COALESCE_BYTES`]), a snapshot, or a heartbeat; `None` ends it.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            let item = tokio::select! {
                item = self.feed.next() => item,
                () = &mut self.beat => {
                    let due = self.last_write + self.heartbeat;
                    let now = Instant::now();
                    if now < due {
                        self.beat.as_mut().reset(due);
                        continue;
                    }
                    self.last_write = now;
                    self.beat.as_mut().reset(now + self.heartbeat);
                    return Some(Bytes::from_static(b": heartbeat\n\n"));
                }
            };
            self.last_write = Instant::now();
            return match item {
                Ok(Item::Event(p)) => Some(coalesce(&p.sse, &mut self.feed)),
                Ok(Item::Snapshot { seq, data }) => Some(Bytes::from(crate::sse::frame(
                    seq,
                    "snapshot",
                    &data.to_string(),
                ))),
                Err(end) => {
                    if matches!(end, FeedEnd::Lagged) {
                        self.app
                            .metrics
                            .slow_clients_closed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(reason = ?end.to_string(), "SSE stream ended");
                    None
                }
            };
        }
    }
}

/// `first` and the frames of the events ready after it, in order, up to
/// [`COALESCE_BYTES`]; a lone frame is the hub's shared bytes, uncopied.
fn coalesce(first: &Bytes, feed: &mut Feed) -> Bytes {
    let mut joined: Option<BytesMut> = None;
    while joined.as_ref().map_or(first.len(), BytesMut::len) < COALESCE_BYTES {
        let Some(next) = feed.ready() else { break };
        let buf = joined.get_or_insert_with(|| {
            let mut buf = BytesMut::with_capacity(COALESCE_BYTES + next.sse.len());
            buf.extend_from_slice(first);
            buf
        });
        buf.extend_from_slice(&next.sse);
    }
    joined.map_or_else(|| first.clone(), BytesMut::freeze)
}

pub async fn stream(
    State(app): State<AppState>,
    Need(caller): AsViewer,
    kill: Option<axum::Extension<ConnKill>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = StreamParams::parse(query.as_deref(), &headers)?;
    let slot = app.limits.open_stream(caller.role >= Role::Staff)?;
    let kill = kill.map(|k| k.0.0).unwrap_or_default();
    let feed = Feed::new(
        &app.hub,
        app.store.clone(),
        params.filter,
        params.since,
        ClientKind::Sse,
        kill,
        app.shutdown.clone(),
    );
    let retry = Bytes::from(format!("retry: {}\n\n", app.config.http.retry.as_millis()));
    let heartbeat = app.config.http.heartbeat;
    let state = SseState {
        feed,
        heartbeat,
        beat: Box::pin(tokio::time::sleep(heartbeat)),
        last_write: Instant::now(),
        app,
        _slot: slot,
    };
    let first = stream::once(async move { Ok::<_, Infallible>(retry) });
    let rest = stream::unfold(state, |mut st| async move {
        let chunk = st.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), st))
    });
    use futures_util::StreamExt as _;
    let body = Body::from_stream(first.chain(rest));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells a reverse proxy (nginx) not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
