//! REST handlers of SPEC §2: snapshot, tables, table state, stats (history
//! is `events`, the mesas compatibility API `mesas`).

use super::AppState;
use super::error::{ApiError, AsAdmin, AsStaff, AsViewer, JsonBody, Need};
use crate::domain::{Layout, Shape, TableId, TableState};
use crate::feed::snapshot_json;
use crate::store::{Change, Guard, Hold, NewTable, TablePatch};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn snapshot(State(app): State<AppState>, _: AsViewer) -> Result<Json<Value>, ApiError> {
    // One lock, so the tables, the open alerts and seq agree.
    let (head, tables, alerts) = app.hub.view();
    let now = app.store.wall().now();
    let predicted = app.hub.predictor().tables(&tables, now);
    let mut data = snapshot_json(head, &predicted, &alerts, false);
    data["reservations"] = json!(app.store.reservations_today().await?);
    Ok(Json(data))
}

pub async fn list_tables(State(app): State<AppState>, _: AsViewer) -> Json<Value> {
    let tables = app.hub.tables();
    Json(json!(
        app.hub.predictor().tables(&tables, app.store.wall().now())
    ))
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
        .map(|t| Json(app.hub.predictor().table(t, app.store.wall().now())).into_response())
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
    #[serde(default)]
    joins: Vec<TableId>,
    combined_seats: Option<u32>,
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
    let create = Change::CreateTable(NewTable {
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
        joins: body.joins.clone(),
        combined_seats: body.combined_seats,
    });
    let table = if body.joins.is_empty() {
        app.store.apply(create, caller.actor()).await?.table
    } else {
        // The new table's id (when the store picks it) is only known once
        // it is created, so the peers' side follows in a second change.
        let created = app.store.apply(create, caller.actor()).await?.table;
        if let Some(t) = &created {
            let peers = super::joins::peer_changes(&app.hub.tables(), t.id, &t.joins);
            app.store.apply(Change::All(peers), caller.actor()).await?;
        }
        created
    };
    Ok((StatusCode::CREATED, Json(table)).into_response())
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
    joins: Option<Vec<TableId>>,
    #[serde(default, deserialize_with = "super::joins::explicit_null")]
    combined_seats: Option<Option<u32>>,
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
        joins: body.joins.clone(),
        combined_seats: body.combined_seats,
    };
    let mut changes = vec![Change::UpdateTable { id, patch }];
    if let Some(new) = &body.joins {
        changes.extend(super::joins::peer_changes(&app.hub.tables(), id, new));
    }
    let applied = app
        .store
        .apply(Change::All(changes), caller.actor())
        .await?;
    let table = applied.parts.into_iter().next().and_then(|p| p.table);
    Ok(Json(table).into_response())
}

pub async fn delete_table(
    State(app): State<AppState>,
    Need(caller): AsAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    // Its peers forget the join in the same batch.
    let mut changes = super::joins::peer_changes(&app.hub.tables(), id, &[]);
    changes.push(Change::DeleteTable { id });
    app.store
        .apply(Change::All(changes), caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStateBody {
    state: TableState,
    hold_minutes: Option<i64>,
    /// The party seated (`occupied` only): the visit's party size, and the
    /// table's people count.
    party_size: Option<i64>,
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
    let people = match body.party_size {
        None => None,
        Some(_) if body.state != TableState::Occupied => {
            return Err(ApiError::invalid_value(
                "party_size: only for a table set to occupied",
            ));
        }
        Some(n) => Some(
            u32::try_from(n)
                .ok()
                .filter(|n| (1..=crate::visits::import::MAX_PARTY_SIZE).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_value(format!(
                        "party_size: {n} is not from 1 to {}",
                        crate::visits::import::MAX_PARTY_SIZE
                    ))
                })?,
        ),
    };
    let applied = app
        .store
        .apply(
            Change::SetState {
                id,
                state: body.state,
                hold,
                people,
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
        "alerts": { "open": app.hub.alerts().len(), "refused": m.alerts_refused },
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
