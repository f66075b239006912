//! `GET /api/v1/stream`: Server-Sent Events (SPEC §2).
//!
//! The body is a stream polled by hyper only when the socket can take
//! more, so a client that stops reading stops costing work; the hub's
//! reaper closes it once it is a whole queue behind (see `hub`). Each
//! stream holds a slot of `http.max_streams` (see `limits`) until its body
//! is dropped; over the cap the request gets a 503.

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
use futures_util::stream;
use std::convert::Infallible;
use std::sync::atomic::Ordering;

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

struct SseState {
    feed: Feed,
    app: AppState,
    heartbeat: std::time::Duration,
    /// Freed when the body (and with it this state) is dropped.
    _slot: StreamSlot,
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
    let state = SseState {
        feed,
        heartbeat: app.config.http.heartbeat,
        app,
        _slot: slot,
    };
    let first = stream::once(async move { Ok::<_, Infallible>(retry) });
    let rest = stream::unfold(state, |mut st| async move {
        let frame = match tokio::time::timeout(st.heartbeat, st.feed.next()).await {
            Err(_) => Bytes::from_static(b": heartbeat\n\n"),
            Ok(Ok(Item::Event(p))) => p.sse.clone(),
            Ok(Ok(Item::Snapshot { seq, data })) => {
                Bytes::from(crate::sse::frame(seq, "snapshot", &data.to_string()))
            }
            Ok(Err(end)) => {
                if matches!(end, FeedEnd::Lagged) {
                    st.app
                        .metrics
                        .slow_clients_closed
                        .fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(reason = ?end.to_string(), "SSE stream ended");
                return None;
            }
        };
        Some((Ok::<_, Infallible>(frame), st))
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
