//! Owner analytics over HTTP (staff): `GET /api/v1/analytics?from=&to=`
//! (the JSON of [`crate::visits::analytics::Analytics`]), each of its
//! tables as CSV (`/api/v1/analytics/{utilization,turns_per_table,
//! turn_time_by_party_size,covers}.csv`) and the visits themselves
//! (`/api/v1/visits.csv`). `from`/`to` are local dates (`YYYY-MM-DD`,
//! inclusive, default the last 28 days); a bad one, `from` after `to`, or
//! a range over
//! [`crate::visits::analytics::MAX_RANGE_DAYS`] days is a 422 naming the field.

use super::AppState;
use super::error::{ApiError, AsStaff, Query};
use crate::visits::analytics::range;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;

fn dates(app: &AppState, query: Option<&str>) -> Result<(Date, Date), ApiError> {
    let q = Query::parse(query, &["from", "to"])?;
    let today = crate::localtime::date_of(app.store.wall().now(), app.store.zone());
    range(q.get("from"), q.get("to"), today)
        .map_err(|(field, message)| ApiError::invalid_value(format!("{field}: {message}")))
}

async fn compute(
    app: &AppState,
    query: Option<&str>,
) -> Result<crate::visits::analytics::Analytics, ApiError> {
    let (from, to) = dates(app, query)?;
    let sensors = app.config.sensors.iter().map(|s| s.id.clone()).collect();
    Ok(app.store.analytics(from, to, sensors).await?)
}

fn csv(name: &str, from: &str, to: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}-{from}-{to}.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn analytics(
    State(app): State<AppState>,
    _: AsStaff,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Ok(Json(compute(&app, query.as_deref()).await?).into_response())
}

async fn table_csv(app: &AppState, query: Option<&str>, name: &str) -> Result<Response, ApiError> {
    let a = compute(app, query).await?;
    let body = crate::visits::csv::table(&a, name)
        .ok_or_else(|| ApiError::not_found("no such analytics table"))?;
    Ok(csv(name, &a.from, &a.to, body))
}

pub async fn utilization_csv(
    State(app): State<AppState>,
    _: AsStaff,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    table_csv(&app, q.as_deref(), "utilization").await
}

pub async fn turns_per_table_csv(
    State(app): State<AppState>,
    _: AsStaff,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    table_csv(&app, q.as_deref(), "turns_per_table").await
}

pub async fn turn_time_by_party_size_csv(
    State(app): State<AppState>,
    _: AsStaff,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    table_csv(&app, q.as_deref(), "turn_time_by_party_size").await
}

pub async fn covers_csv(
    State(app): State<AppState>,
    _: AsStaff,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    table_csv(&app, q.as_deref(), "covers").await
}

/// The visits seated in the range, one per line (see [`crate::visits::csv`]).
pub async fn visits_csv(
    State(app): State<AppState>,
    _: AsStaff,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (from, to) = dates(&app, q.as_deref())?;
    let tz = app.store.zone().clone();
    let (start, _) = crate::localtime::day_range(from, &tz);
    let (_, end) = crate::localtime::day_range(to, &tz);
    let visits = app.store.visits(Some(start), Some(end)).await?;
    let body = crate::visits::csv::visits(&visits, &tz);
    Ok(csv("visits", &from.to_string(), &to.to_string(), body))
}
