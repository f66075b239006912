//! Alert routes of SPEC §2 (staff): raise, list, ack.
//!
//! - `POST /api/v1/alerts` `{"kind", "priority"?, "target"?, "message"?,
//!   "table"?}` (defaults: `normal`, `floor`, the kind's message, no
//!   table). 201 with `{"alert", "seq"}` for a new alert; 200 when it was
//!   merged into an open (or just acked) one of the same caller (flood
//!   control, [`crate::alerts`]); 422 naming `table` or `message`; 429 over
//!   the open-alert limits.
//! - `GET /api/v1/alerts`: the open alerts, oldest first, with the `seq`
//!   they are current at (`{"seq", "alerts"}`); `?all=true` is the history
//!   instead (open and acked, newest first, `?limit=` default 100, at most
//!   1000); `?targets=kitchen,bar` keeps alerts for those targets (and
//!   `all`).
//! - `POST /api/v1/alerts/{id}/ack` (no body): 200 with `{"alert", "seq"}`,
//!   `acked_by` = `staff:<token name>`; 404 unknown id; 409 already acked.

use super::AppState;
use super::error::{ApiError, AsStaff, JsonBody, Need, Query};
use crate::domain::{AlertId, AlertKind, EventData, Priority, TableId, Target};
use crate::feed::Filter;
use crate::store::{Applied, Change, NewAlert};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// Default and largest page of `GET /alerts?all=true`.
const HISTORY_DEFAULT_LIMIT: u64 = 100;
const HISTORY_MAX_LIMIT: u64 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaiseBody {
    kind: AlertKind,
    #[serde(default = "normal")]
    priority: Priority,
    #[serde(default)]
    target: Target,
    message: Option<String>,
    table: Option<TableId>,
}

fn normal() -> Priority {
    Priority::Normal
}

/// `{"alert", "seq"}` of a committed alert change.
fn answer(status: StatusCode, applied: &Applied) -> Response {
    let event = applied.event.as_ref();
    (
        status,
        Json(json!({
            "alert": event.and_then(|e| e.data.alert()),
            "seq": event.map(|e| e.seq),
        })),
    )
        .into_response()
}

pub async fn raise(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    JsonBody(body): JsonBody<RaiseBody>,
) -> Result<Response, ApiError> {
    let applied = app
        .store
        .apply(
            Change::RaiseAlert(NewAlert {
                table: body.table,
                kind: body.kind,
                priority: body.priority,
                target: body.target,
                message: body.message,
            }),
            caller.actor(),
        )
        .await?;
    let opened = applied
        .event
        .as_ref()
        .is_some_and(|e| matches!(e.data, EventData::AlertRaised { .. }));
    let status = if opened {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(answer(status, &applied))
}

pub async fn list(
    State(app): State<AppState>,
    _: AsStaff,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(query.as_deref(), &["all", "limit", "targets"])?;
    let all = match q.get("all") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "all: {other:?} is not true or false"
            )));
        }
    };
    let limit = q.u64("limit")?.unwrap_or(HISTORY_DEFAULT_LIMIT);
    if !(1..=HISTORY_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: {limit} is out of range (1..={HISTORY_MAX_LIMIT})"
        )));
    }
    let targets = match q.get("targets") {
        Some(v) => Filter::parse_targets("targets", v.split(',')).map_err(ApiError::bad_request)?,
        None => Vec::new(),
    };
    let wanted =
        |target: Target| targets.is_empty() || target == Target::All || targets.contains(&target);
    if all {
        let history = app
            .store
            .alert_history(usize::try_from(limit).unwrap_or(usize::MAX))
            .await?;
        let alerts: Vec<_> = history.into_iter().filter(|a| wanted(a.target)).collect();
        return Ok(Json(json!({ "alerts": alerts })));
    }
    let (seq, _, open) = app.hub.view();
    let alerts: Vec<_> = open.iter().filter(|a| wanted(a.target)).collect();
    Ok(Json(json!({ "seq": seq, "alerts": alerts })))
}

pub async fn ack(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id
        .parse::<AlertId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("{id:?} is not an alert id")))?;
    let applied = app
        .store
        .apply(Change::AckAlert { id }, caller.actor())
        .await?;
    Ok(answer(StatusCode::OK, &applied))
}
