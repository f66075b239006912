//! Turn-time routes: `GET /api/v1/predictions` (viewer: when each
//! occupied table is expected to free, [`crate::turns`]) and
//! `GET /api/v1/analytics/quotes` (staff: how good the wait quotes were,
//! [`crate::waitlist::score`]).

use super::AppState;
use super::error::{ApiError, AsStaff, AsViewer, Query};
use crate::domain::TableState;
use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use serde_json::{Value, json};

/// Days a quote report covers when `from` is not given (with `to`, today
/// by default): four weeks, like the owner analytics.
pub const DEFAULT_DAYS: i32 = 28;
/// The longest `from..=to` a quote report may span, in days: the parties
/// of a longer one would not fit [`MAX_SCORED_PARTIES`] on a busy site.
pub const MAX_DAYS: i32 = 366;
/// Most parties one quote report reads (the earliest are kept).
pub const MAX_SCORED_PARTIES: usize = 100_000;

#[derive(Serialize)]
struct Row {
    table: crate::domain::TableId,
    occupied_since: String,
    expected_free_at: Option<String>,
    expected_free_p80: Option<String>,
    predicted_from: usize,
    group: Option<String>,
}

/// `{"at", "tables": [...]}`: every occupied table with its forecast as
/// of now (null fields with too little history).
pub async fn predictions(State(app): State<AppState>, _: AsViewer) -> Json<Value> {
    let now = app.store.wall().now();
    let predictor = app.hub.predictor();
    let model = predictor.model();
    let tables = app.hub.tables();
    let rows: Vec<Row> = tables
        .iter()
        .filter(|t| t.state == TableState::Occupied)
        .map(|t| {
            let forecast = predictor.forecast(model.as_deref(), t, now);
            let prediction = crate::turns::Prediction::from(forecast.as_ref());
            Row {
                table: t.id,
                occupied_since: t.since.clone(),
                expected_free_at: prediction.expected_free_at,
                expected_free_p80: prediction.expected_free_p80,
                predicted_from: prediction.predicted_from,
                group: forecast.map(|f| f.group),
            }
        })
        .collect();
    Json(json!({ "at": crate::clock::format(now), "tables": rows }))
}

fn date_param(query: &Query, name: &str) -> Result<Option<jiff::civil::Date>, ApiError> {
    query
        .get(name)
        .map(|s| {
            crate::localtime::parse_date(s)
                .map_err(|m| ApiError::bad_request(format!("{name}: {m}")))
        })
        .transpose()
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD` (local dates, inclusive; default the
/// last [`DEFAULT_DAYS`] days to today).
pub async fn quotes(
    State(app): State<AppState>,
    _: AsStaff,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = Query::parse(raw.as_deref(), &["from", "to"])?;
    let zone = &app.config.site.zone;
    let today = crate::localtime::date_of(app.store.wall().now(), zone);
    let to = date_param(&query, "to")?.unwrap_or(today);
    let from = match date_param(&query, "from")? {
        Some(from) => from,
        None => to
            .checked_sub(jiff::Span::new().days(DEFAULT_DAYS - 1))
            .unwrap_or(to),
    };
    if from > to {
        return Err(ApiError::invalid_value(format!(
            "from: {from} is after to ({to})"
        )));
    }
    let span = (to - from).get_days();
    if span >= MAX_DAYS {
        return Err(ApiError::invalid_value(format!(
            "to: at most {MAX_DAYS} days from `from` (got {})",
            span + 1
        )));
    }
    let (start, _) = crate::localtime::day_range(from, zone);
    let parties = app
        .store
        .waitlist(Some(crate::clock::format(start)), MAX_SCORED_PARTIES)
        .await?;
    let score = crate::waitlist::score::score(&parties, zone, from, to);
    Ok(Json(json!(score)))
}
