//! What the owner analytics read (`GET /api/v1/analytics`, `mesero
//! report`): one read transaction over visits, reservations, the waitlist,
//! alerts and the sensors' fault events of a range, handed to the pure
//! [`crate::visits::analytics::compute`].

use super::{Store, StoreError};
use crate::visits::analytics::{Analytics, Input, compute};
use jiff::civil::Date;
use rusqlite::{Connection, OptionalExtension as _, params};
use std::time::SystemTime;

/// What one hour's rollup is made from ([`Store::hour`]).
#[derive(Debug, Clone)]
pub struct HourRows {
    pub tables: usize,
    pub visits: Vec<crate::domain::Visit>,
    /// `(event type, count)` of the events recorded in the hour.
    pub counts: Vec<(String, u64)>,
}

/// What the range's rows hold beyond the visits.
struct Rows {
    reservations: Vec<String>,
    parties: Vec<String>,
    alerts: Vec<(SystemTime, Option<SystemTime>)>,
    sensor_events: Vec<(SystemTime, String, bool)>,
    log_start: Option<SystemTime>,
}

fn strings(conn: &Connection, sql: &str, from: &str, to: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params![from, to], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn load(conn: &Connection, from: &str, to: &str) -> Result<Rows, StoreError> {
    let reservations = strings(
        conn,
        "SELECT status FROM reservations WHERE at >= ?1 AND at < ?2",
        from,
        to,
    )?;
    let parties = strings(
        conn,
        "SELECT status FROM waitlist WHERE added_at >= ?1 AND added_at < ?2",
        from,
        to,
    )?;
    let mut stmt = conn.prepare(
        "SELECT created_at, acked_at FROM alerts WHERE created_at >= ?1 AND created_at < ?2",
    )?;
    let alerts = stmt
        .query_map(params![from, to], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?
        .filter_map(Result::ok)
        .filter_map(|(c, a)| {
            Some((
                crate::clock::parse(&c)?,
                a.as_deref().and_then(crate::clock::parse),
            ))
        })
        .collect();
    let mut stmt = conn.prepare(
        "SELECT ts, type, json_extract(data, '$.sensor') FROM events
          WHERE type IN ('sensor.fault', 'sensor.recovered') AND ts < ?1 AND json_valid(data)
          ORDER BY seq",
    )?;
    let sensor_events = stmt
        .query_map(params![to], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?
        .filter_map(Result::ok)
        .filter_map(|(ts, kind, sensor)| {
            Some((crate::clock::parse(&ts)?, sensor?, kind == "sensor.fault"))
        })
        .collect();
    let log_start = conn
        .query_row("SELECT ts FROM events ORDER BY seq LIMIT 1", [], |r| {
            r.get::<_, String>(0)
        })
        .ok()
        .and_then(|t| crate::clock::parse(&t));
    Ok(Rows {
        reservations,
        parties,
        alerts,
        sensor_events,
        log_start,
    })
}

impl Store {
    /// The owner analytics for the local dates `from..=to` (the site's
    /// zone), as of the store's clock; `sensors` are the configured ones.
    pub async fn analytics(
        &self,
        from: Date,
        to: Date,
        sensors: Vec<String>,
    ) -> Result<Analytics, StoreError> {
        let tz = self.inner.zone.clone();
        let now = self.wall().now();
        let (start, _) = crate::localtime::day_range(from, &tz);
        let (_, end) = crate::localtime::day_range(to, &tz);
        let (start_s, end_s) = (crate::clock::format(start), crate::clock::format(end));
        self.read(move |conn| {
            let tx = conn.transaction()?;
            let tables = super::load_tables(&tx)?.into_iter().map(|t| t.id).collect();
            let visits = super::visits::load(&tx, Some(&start_s), Some(&end_s))?;
            let rows = load(&tx, &start_s, &end_s)?;
            tx.commit()?;
            Ok(compute(&Input {
                from,
                to,
                tz,
                now,
                tables,
                visits,
                reservations: rows.reservations,
                parties: rows.parties,
                alerts: rows.alerts,
                sensors,
                sensor_events: rows.sensor_events,
                log_start: rows.log_start,
            }))
        })
        .await
    }

    /// What one hour's rollup reads (`upstream::rollup`): the tables, the
    /// visits that overlap `[start, end)` (seated up to a day before it),
    /// and how many events of each type were recorded in it.
    pub async fn hour(&self, start: SystemTime, end: SystemTime) -> Result<HourRows, StoreError> {
        let from = crate::clock::format(start - std::time::Duration::from_secs(86_400));
        let (start_s, end_s) = (crate::clock::format(start), crate::clock::format(end));
        self.read(move |conn| {
            let tx = conn.transaction()?;
            let tables = super::load_tables(&tx)?.len();
            let visits = super::visits::load(&tx, Some(&from), Some(&end_s))?
                .into_iter()
                .filter(|v| v.left_at.as_ref().is_none_or(|left| *left > start_s))
                .collect();
            let mut stmt = tx.prepare(
                "SELECT type, COUNT(*) FROM events WHERE ts >= ?1 AND ts < ?2 GROUP BY type",
            )?;
            let counts = stmt
                .query_map(params![start_s, end_s], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
                })?
                .collect::<Result<_, _>>()?;
            drop(stmt);
            tx.commit()?;
            Ok(HourRows {
                tables,
                visits,
                counts,
            })
        })
        .await
    }

    /// The `hour` of the newest `analytics.hourly` event still kept.
    pub async fn last_rollup_hour(&self) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            let hour = conn
                .query_row(
                    "SELECT json_extract(data, '$.rollup.hour') FROM events
                      WHERE type = 'analytics.hourly' AND json_valid(data)
                      ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| r.get::<_, Option<String>>(0),
                )
                .optional()?;
            Ok(hour.flatten())
        })
        .await
    }

    /// The site's zone (`site.timezone`).
    pub fn zone(&self) -> &jiff::tz::TimeZone {
        &self.inner.zone
    }
}
