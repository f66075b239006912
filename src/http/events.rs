//! `GET /api/v1/events`: history and audit (SPEC §2).
//!
//! Parameters, all optional and combinable (each narrows the others):
//! - `since`: an event seq (events after it, as the streams resume) or an
//!   RFC 3339 time (events at or after it);
//! - `until`: an event seq (events up to and including it) or an RFC 3339
//!   time (events at or before it);
//! - `type`: comma-separated types or dotted prefixes (`table` matches
//!   `table.state`, `table.created`, ...; `table.state` only itself);
//! - `table`: comma-separated table ids;
//! - `actor`: one actor exactly (`staff:<token name>`, `sensor:<id>`,
//!   `mqtt:<client id>`, `system`);
//! - `limit`: page size, default 100, at most 1000.
//!
//! Times take any offset (`2026-11-22T21:40:00+01:00`, `...Z`); a `+`
//! that arrived as a space (an unencoded `+` in a query string is one) is
//! read as `+`. They are turned into seq bounds by the store (see
//! `store::timeline`), so a time bound costs a few lookups, not a scan.
//! "Who freed table 7 at 21:40?" is
//! `?type=table.state&table=7&since=21:35&until=21:45` (with the date and
//! offset); the answer's events carry `actor` and `data.from`/`data.to`.
//!
//! The page is `{"events", "next_since", "complete"}`: pass `next_since`
//! as `since` (with the same other parameters) for the next page;
//! `complete` is false when retention already deleted events the query
//! asked for. A bad value is a 400 naming its parameter.

use super::AppState;
use super::error::{ApiError, AsViewer, Query};
use crate::domain::{Actor, Event, Seq};
use crate::feed::Filter;
use crate::store::EventQuery;
use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// Default and largest page of `/events`.
const EVENTS_DEFAULT_LIMIT: u64 = 100;
const EVENTS_MAX_LIMIT: u64 = 1000;

/// A `since` or `until` value: a seq or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Seq(Seq),
    Time(SystemTime),
}

impl Bound {
    fn parse(name: &str, value: &str) -> Result<Bound, ApiError> {
        let v = value.trim();
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            return v.parse().map(Bound::Seq).map_err(|_| {
                ApiError::bad_request(format!("{name}: {value:?} is too large for an event seq"))
            });
        }
        parse_time(v).map(Bound::Time).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{name}: {value:?} is neither an event seq nor an RFC 3339 time (e.g. 2026-11-22T21:40:00+01:00)"
            ))
        })
    }
}

/// An RFC 3339 time with `Z` or a `±HH:MM` offset.
fn parse_time(s: &str) -> Option<SystemTime> {
    if let Some(t) = crate::clock::parse(s) {
        return Some(t);
    }
    let split = s.len().checked_sub(6)?;
    let (local, offset) = (s.get(..split)?, s.get(split..)?.as_bytes());
    let ahead = match offset {
        [b'+' | b' ', ..] => true,
        [b'-', ..] => false,
        _ => return None,
    };
    let digits = |a: u8, b: u8| -> Option<u64> {
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| u64::from((a - b'0') * 10 + (b - b'0')))
    };
    let (hours, minutes) = match offset {
        [_, h1, h2, b':', m1, m2] => (digits(*h1, *h2)?, digits(*m1, *m2)?),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    let as_if_utc = crate::clock::parse(&format!("{local}Z"))?;
    let offset = Duration::from_secs(hours * 3600 + minutes * 60);
    if ahead {
        as_if_utc.checked_sub(offset)
    } else {
        as_if_utc.checked_add(offset)
    }
}

pub async fn list(
    State(app): State<AppState>,
    _: AsViewer,
    RawQuery(query): RawQuery,
) -> Result<Json<EventsPage>, ApiError> {
    let q = Query::parse(
        query.as_deref(),
        &["since", "until", "limit", "type", "table", "actor"],
    )?;
    let since = q
        .get("since")
        .map(|v| Bound::parse("since", v))
        .transpose()?;
    let until = q
        .get("until")
        .map(|v| Bound::parse("until", v))
        .transpose()?;
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
    let actor = q
        .get("actor")
        .map(|v| {
            v.trim()
                .parse::<Actor>()
                .map(|a| a.to_string())
                .map_err(|e| ApiError::bad_request(format!("actor: {e}")))
        })
        .transpose()?;
    let mut query = EventQuery {
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        types,
        tables,
        actor,
        ..Default::default()
    };
    match since {
        Some(Bound::Seq(s)) => query.after = s,
        Some(Bound::Time(t)) => query.from_time = Some(t),
        None => {}
    }
    match until {
        Some(Bound::Seq(s)) => query.upto = Some(s),
        Some(Bound::Time(t)) => query.until_time = Some(t),
        None => {}
    }
    let page = app.store.events(query).await?;
    let next_since = page.events.last().map_or(page.after, |e| e.seq);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_seqs_or_times_with_any_offset() {
        let at = |s: &str| crate::clock::parse(s).expect("utc");
        assert_eq!(Bound::parse("since", "42").ok(), Some(Bound::Seq(42)));
        for (text, utc) in [
            ("2026-11-22T21:40:00Z", "2026-11-22T21:40:00Z"),
            ("2026-11-22T21:40:00.250Z", "2026-11-22T21:40:00.250Z"),
            ("2026-11-22T21:40:00+01:00", "2026-11-22T20:40:00Z"),
            ("2026-11-22T21:40:00 01:00", "2026-11-22T20:40:00Z"),
            ("2026-11-22T21:40:00-03:30", "2026-11-23T01:10:00Z"),
        ] {
            assert_eq!(
                Bound::parse("until", text).ok(),
                Some(Bound::Time(at(utc))),
                "{text}"
            );
        }
        for bad in [
            "",
            "-1",
            "21:40",
            "2026-11-22",
            "2026-11-22T21:40:00+25:00",
            "2026-11-22T21:40:00+01",
            "99999999999999999999999",
            "2026-11-22T21:40:00+01:0ñ",
        ] {
            let e = Bound::parse("until", bad).expect_err(bad);
            assert!(e.message.starts_with("until:"), "{bad}: {}", e.message);
        }
    }
}
