//! Reservation routes (SPEC §2, staff): list, create, edit, cancel,
//! check-in by code, and the check-in QR code. The rules are those of
//! [`crate::reservations`]; each request becomes one `Change::All` (the
//! reservation and its tables), so a combination changes as one batch
//! and a refusal changes nothing.
//!
//! Statuses: 201 created; 404 unknown reservation or check-in code; 409 an
//! overlap, a reservation that is not booked any more, a check-in before
//! its window; 422 a value that is not acceptable (party larger than the
//! seats, time in the past, unknown table, malformed code), naming the
//! field.

use super::AppState;
use super::error::{ApiError, AsStaff, JsonBody, Need, Query};
use crate::domain::{ReservationStatus, TableId};
use crate::reservations::{self as rules, Booking};
use crate::store::{
    Applied, Change, NewReservation, ReservationChange, ReservationFilter, ReservationPatch,
};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Most reservations one list returns.
const MAX_LIST: usize = 1000;

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("{raw:?} is not a reservation id")))
}

/// `?date=YYYY-MM-DD` (a local day) and `?status=booked,seated`; without
/// a date: from the start of today (local) on.
pub async fn list(
    State(app): State<AppState>,
    _: AsStaff,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(query.as_deref(), &["date", "status"])?;
    let zone = &app.config.site.zone;
    let (from, to) = match q.get("date") {
        Some(d) => {
            let date = crate::localtime::parse_date(d)
                .map_err(|m| ApiError::bad_request(format!("date: {m}")))?;
            let (a, b) = crate::localtime::day_range(date, zone);
            (a, Some(b))
        }
        None => {
            let today = crate::localtime::date_of(app.store.wall().now(), zone);
            (crate::localtime::day_range(today, zone).0, None)
        }
    };
    let statuses = match q.get("status") {
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|m| ApiError::bad_request(format!("status: {m}")))
            })
            .collect::<Result<Vec<ReservationStatus>, _>>()?,
        None => Vec::new(),
    };
    let list = app
        .store
        .reservations(ReservationFilter {
            from: Some(from),
            to,
            statuses,
            limit: MAX_LIST,
        })
        .await?;
    let views: Vec<_> = list.iter().map(|b| b.view(zone)).collect();
    Ok(Json(json!(views)))
}

async fn find(app: &AppState, raw: &str) -> Result<Booking, ApiError> {
    let id = parse_id(raw)?;
    app.store
        .reservation(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("reservation {id} not found")))
}

pub async fn get(
    State(app): State<AppState>,
    _: AsStaff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let b = find(&app, &id).await?;
    Ok(Json(json!(b.view(&app.config.site.zone))))
}

/// `table` or `tables` (not both): the table(s) of a reservation.
fn tables_of(
    table: Option<TableId>,
    tables: Option<Vec<TableId>>,
) -> Result<Option<Vec<TableId>>, ApiError> {
    match (table, tables) {
        (Some(_), Some(_)) => Err(ApiError::invalid_value(
            "tables: give either table or tables, not both",
        )),
        (Some(t), None) => Ok(Some(vec![t])),
        (None, t) => Ok(t),
    }
}

fn duration(text: &str) -> Result<Duration, ApiError> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        ApiError::invalid_value(format!(
            "duration: {text:?} is not a duration ({e}); e.g. \"90m\""
        ))
    })
}

fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    rules::check_text(value, max).map_err(|m| ApiError::invalid_value(format!("{field}: {m}")))
}

fn optional(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    rules::check_optional(value, max).map_err(|m| ApiError::invalid_value(format!("{field}: {m}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBody {
    name: String,
    party_size: u32,
    at: String,
    duration: Option<String>,
    table: Option<TableId>,
    tables: Option<Vec<TableId>>,
    phone: Option<String>,
    notes: Option<String>,
}

pub async fn create(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    JsonBody(body): JsonBody<NewBody>,
) -> Result<Response, ApiError> {
    let zone = &app.config.site.zone;
    let tables = tables_of(body.table, body.tables)?
        .ok_or_else(|| ApiError::invalid_value("tables: a table or tables is needed"))?;
    let new = NewReservation {
        name: text("name", &body.name, rules::MAX_NAME_LEN)?,
        party_size: body.party_size,
        tables,
        at: crate::localtime::parse_at(&body.at, zone)
            .map_err(|m| ApiError::invalid_value(format!("at: {m}")))?,
        duration: match &body.duration {
            Some(d) => duration(d)?,
            None => app.config.reservations.duration_for(body.party_size),
        },
        phone: optional("phone", body.phone.as_deref(), rules::MAX_PHONE_LEN)?,
        notes: optional("notes", body.notes.as_deref(), rules::MAX_NOTES_LEN)?,
    };
    let applied = app
        .store
        .apply(
            Change::Reservation(ReservationChange::Create(new)),
            caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(reservation_of(&applied))).into_response())
}

/// The reservation an applied change's (first) reservation event carries.
fn reservation_of(applied: &Applied) -> Value {
    std::iter::once(applied)
        .chain(&applied.parts)
        .filter_map(|a| a.event.as_ref())
        .find_map(|e| e.data.reservation())
        .map_or(Value::Null, |r| json!(r))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    name: Option<String>,
    party_size: Option<u32>,
    at: Option<String>,
    duration: Option<String>,
    table: Option<TableId>,
    tables: Option<Vec<TableId>>,
    #[serde(default, deserialize_with = "super::joins::explicit_null")]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::joins::explicit_null")]
    notes: Option<Option<String>>,
}

/// Edits a booked reservation; a new time or new tables release the
/// tables reserved for the old ones (the scheduler holds the new ones
/// when they are due).
pub async fn patch(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Response, ApiError> {
    let old = find(&app, &id).await?;
    let zone = &app.config.site.zone;
    let patch = ReservationPatch {
        name: body
            .name
            .as_deref()
            .map(|n| text("name", n, rules::MAX_NAME_LEN))
            .transpose()?,
        party_size: body.party_size,
        tables: tables_of(body.table, body.tables)?,
        at: body
            .at
            .as_deref()
            .map(|a| {
                crate::localtime::parse_at(a, zone)
                    .map_err(|m| ApiError::invalid_value(format!("at: {m}")))
            })
            .transpose()?,
        duration: body.duration.as_deref().map(duration).transpose()?,
        phone: body
            .phone
            .map(|p| optional("phone", p.as_deref(), rules::MAX_PHONE_LEN))
            .transpose()?,
        notes: body
            .notes
            .map(|n| optional("notes", n.as_deref(), rules::MAX_NOTES_LEN))
            .transpose()?,
    };
    let moved = patch.at.is_some_and(|at| at != old.at)
        || patch.tables.as_ref().is_some_and(|t| *t != old.tables);
    let mut parts = vec![Change::Reservation(ReservationChange::Update {
        id: old.id,
        patch,
    })];
    if moved {
        parts.extend(rules::schedule::release(&old));
    }
    let applied = app.store.apply(Change::All(parts), caller.actor()).await?;
    Ok(Json(reservation_of(&applied)).into_response())
}

/// Cancels (the row is kept, status `cancelled`) and releases its tables.
pub async fn cancel(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let b = find(&app, &id).await?;
    let mut parts = vec![Change::Reservation(ReservationChange::Cancel { id: b.id })];
    parts.extend(rules::schedule::release(&b));
    let applied = app.store.apply(Change::All(parts), caller.actor()).await?;
    Ok(Json(reservation_of(&applied)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInBody {
    code: String,
}

/// Check-in by code: the reservation `seated` and its tables `occupied`,
/// one batch. A code that is not of the code's form is a 422; one no
/// booked reservation has, a 404.
pub async fn check_in(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    JsonBody(body): JsonBody<CheckInBody>,
) -> Result<Response, ApiError> {
    let code = rules::normalize_code(&body.code).ok_or_else(|| {
        ApiError::invalid_value(format!(
            "code: a check-in code is {} letters and digits",
            rules::CODE_LEN
        ))
    })?;
    let b = app
        .store
        .booked_by_code(code)
        .await?
        .ok_or_else(|| ApiError::not_found("code: no booked reservation has this code"))?;
    let opens =
        b.at.checked_sub(app.config.reservations.early_checkin)
            .unwrap_or(b.at);
    let mut parts = vec![Change::Reservation(ReservationChange::CheckIn {
        id: b.id,
        opens,
    })];
    parts.extend(b.tables.iter().map(|&table| {
        Change::Reservation(ReservationChange::SeatTable {
            table,
            reservation: b.id,
        })
    }));
    let applied = app.store.apply(Change::All(parts), caller.actor()).await?;
    let tables: Vec<_> = applied
        .parts
        .iter()
        .filter_map(|p| p.table.as_ref())
        .collect();
    let seqs: Vec<_> = applied
        .parts
        .iter()
        .filter_map(|p| p.event.as_ref().map(|e| e.seq))
        .collect();
    Ok(Json(json!({
        "reservation": reservation_of(&applied),
        "tables": tables,
        "seqs": seqs,
    }))
    .into_response())
}

/// The check-in QR code: an SVG that encodes the code itself, which a
/// scanner at the host stand types into the check-in.
pub async fn qr(
    State(app): State<AppState>,
    _: AsStaff,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let b = find(&app, &id).await?;
    let code = qrcode::QrCode::new(b.code.as_bytes()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("qr: {e}"),
        )
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
