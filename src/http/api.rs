//! REST handlers of SPEC §2: snapshot, tables, table state, history, stats.

use super::AppState;
use super::error::{ApiError, AsAdmin, AsStaff, AsViewer, JsonBody, Need, Query};
use crate::domain::{Event, Layout, Seq, Shape, TableId, TableState};
use crate::feed::{Filter, snapshot_json};
use crate::store::{Change, EventQuery, Guard, Hold, NewTable, TablePatch};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Default and largest page of `/events`.
const EVENTS_DEFAULT_LIMIT: u64 = 100;
const EVENTS_MAX_LIMIT: u64 = 1000;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn snapshot(State(app): State<AppState>, _: AsViewer) -> Json<Value> {
    // One lock, so the tables and seq agree.
    let (head, tables) = app.hub.snapshot();
    Json(snapshot_json(head, &tables, false))
}

pub async fn list_tables(State(app): State<AppState>, _: AsViewer) -> Json<Value> {
    Json(json!(*app.hub.tables()))
}

fn parse_id(raw: &str) -> Result<TableId, ApiError> {
    raw.parse::<TableId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("{raw:?} is not a table id")))
}

pub async fn get_table(
    State(app): State<AppState>,
    _: AsViewer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    app.hub
        .tables()
        .iter()
        .find(|t| t.id == id)
        .map(|t| Json(t).into_response())
        .ok_or_else(|| ApiError::not_found(format!("table {id} not found")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTableBody {
    id: Option<TableId>,
    number: String,
    #[serde(default)]
    zone: String,
    #[serde(default = "default_seats")]
    seats: u32,
    #[serde(default)]
    x: f64,
    #[serde(default)]
    y: f64,
    #[serde(default = "one")]
    w: f64,
    #[serde(default = "one")]
    h: f64,
    #[serde(default)]
    shape: Shape,
}

fn default_seats() -> u32 {
    4
}
fn one() -> f64 {
    1.0
}

pub async fn create_table(
    State(app): State<AppState>,
    Need(caller): AsAdmin,
    JsonBody(body): JsonBody<NewTableBody>,
) -> Result<Response, ApiError> {
    let applied = app
        .store
        .apply(
            Change::CreateTable(NewTable {
                id: body.id,
                number: body.number,
                zone: body.zone,
                seats: body.seats,
                layout: Layout {
                    x: body.x,
                    y: body.y,
                    w: body.w,
                    h: body.h,
                    shape: body.shape,
                },
            }),
            caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(applied.table)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTableBody {
    number: Option<String>,
    zone: Option<String>,
    seats: Option<u32>,
    x: Option<f64>,
    y: Option<f64>,
    w: Option<f64>,
    h: Option<f64>,
    shape: Option<Shape>,
}

pub async fn patch_table(
    State(app): State<AppState>,
    Need(caller): AsAdmin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchTableBody>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let patch = TablePatch {
        number: body.number,
        zone: body.zone,
        seats: body.seats,
        x: body.x,
        y: body.y,
        w: body.w,
        h: body.h,
        shape: body.shape,
    };
    let applied = app
        .store
        .apply(Change::UpdateTable { id, patch }, caller.actor())
        .await?;
    Ok(Json(applied.table).into_response())
}

pub async fn delete_table(
    State(app): State<AppState>,
    Need(caller): AsAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    app.store
        .apply(Change::DeleteTable { id }, caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStateBody {
    state: TableState,
    hold_minutes: Option<i64>,
}

pub async fn set_state(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SetStateBody>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let hold = Hold::from_minutes(body.hold_minutes, app.store.wall().now())
        .map_err(ApiError::invalid_value)?;
    let applied = app
        .store
        .apply(
            Change::SetState {
                id,
                state: body.state,
                hold,
                people: None,
                guard: Guard::Staff,
            },
            caller.actor(),
        )
        .await?;
    Ok(Json(json!({
        "table": applied.table,
        "seq": applied.event.as_ref().map(|e| e.seq),
    }))
    .into_response())
}

pub async fn events(
    State(app): State<AppState>,
    _: AsViewer,
    RawQuery(query): RawQuery,
) -> Result<Json<EventsPage>, ApiError> {
    let q = Query::parse(query.as_deref(), &["since", "limit", "type", "table"])?;
    let since = q.u64("since")?.unwrap_or(0);
    let limit = q.u64("limit")?.unwrap_or(EVENTS_DEFAULT_LIMIT);
    if !(1..=EVENTS_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: {limit} is out of range (1..={EVENTS_MAX_LIMIT})"
        )));
    }
    let types = match q.get("type") {
        Some(v) => Filter::parse_types("type", v.split(',')).map_err(ApiError::bad_request)?,
        None => Vec::new(),
    };
    let tables = match q.get("table") {
        Some(v) => Filter::parse_tables("table", v).map_err(ApiError::bad_request)?,
        None => Vec::new(),
    };
    let page = app
        .store
        .events(EventQuery {
            after: since,
            upto: None,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            types,
            tables,
        })
        .await?;
    let next_since = page.events.last().map_or(since, |e| e.seq);
    Ok(Json(EventsPage {
        events: page.events,
        next_since,
        complete: page.continuous,
    }))
}

/// A page of history; a struct (not `json!`) so each event keeps the
/// field order it has on the streams.
#[derive(Serialize)]
pub struct EventsPage {
    events: Vec<Event>,
    next_since: Seq,
    complete: bool,
}

pub async fn stats(State(app): State<AppState>, _: AsViewer) -> Json<Value> {
    let m = app.metrics.snapshot();
    let mqtt = app.metrics.mqtt.snapshot();
    Json(json!({
        "uptime_s": m.uptime_s,
        "connections": { "sse": m.sse_clients, "ws": m.ws_clients, "mqtt": mqtt.clients },
        "events_total": m.events_total,
        "seq": app.hub.head(),
        "tables": app.hub.tables().len(),
        "sensors": app.sensors.snapshot(),
        "slow_clients_closed": m.slow_clients_closed,
        "http": app.metrics.http.snapshot(),
        "writer": {
            "commits": m.commits,
            "events": m.committed_events,
            "commit_ms_avg": m.commit_ms_avg,
            "commit_ms_max": m.commit_ms_max,
            "failed_batches": m.failed_batches,
        },
        "mqtt": mqtt,
        "bridge": app.metrics.upstream_snapshot(),
    }))
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let tables = app.hub.tables();
    let by_state: Vec<(&str, usize)> = TableState::ALL
        .iter()
        .map(|s| (s.as_str(), tables.iter().filter(|t| t.state == *s).count()))
        .collect();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.prometheus(&by_state),
    )
}
