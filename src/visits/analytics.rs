//! Owner analytics (`GET /api/v1/analytics`, its CSV tables and `mesero
//! report`): pure arithmetic over what the store loaded for a range of
//! local dates ([`Input`]). The JSON shape is [`Analytics`]; a number that
//! needs data the range does not have is `null`.
//!
//! Definitions:
//! - utilization: per local weekday × hour, the table-minutes occupied by
//!   visits (a combination counts each of its tables) over the
//!   table-minutes the range has in that cell (tables on the floor plan ×
//!   minutes); `null` for a cell the range does not reach.
//! - a turn is a finished visit at a table (a combination is a turn at
//!   each of its tables); turn time is `left_at - seated_at`.
//! - quantiles interpolate linearly between the closest ranks (the
//!   median of 40 and 50 is 45).
//! - covers: the party sizes of the visits seated that day (unknown
//!   sizes count 0 covers, 1 visit).
//! - no-shows: reservations due in the range whose outcome is known
//!   (`seated` or `no_show`); walk-aways: waitlist parties added in the
//!   range that were seated or left (`left` is a walk-away).
//! - alert acknowledgement: alerts opened in the range and acked, seconds
//!   from opened to acked.
//! - sensor uptime: the share of the range (up to now, from the oldest
//!   event still kept) in which a configured sensor was not faulted, from
//!   its `sensor.fault` / `sensor.recovered` events.

use crate::domain::{TableId, Visit};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The longest range one request covers, in days (a year and a day:
/// this month against the same month a year ago).
pub const MAX_RANGE_DAYS: i64 = 366;

/// The default range when `from`/`to` are not given: the last 28 days.
pub const DEFAULT_DAYS: i64 = 28;

pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// What the store loaded for one range.
#[derive(Debug, Clone)]
pub struct Input {
    pub from: Date,
    pub to: Date,
    pub tz: TimeZone,
    pub now: SystemTime,
    /// The floor plan's tables.
    pub tables: Vec<TableId>,
    /// Visits seated in the range.
    pub visits: Vec<Visit>,
    /// Status of each reservation due in the range (`booked`, `seated`, ...).
    pub reservations: Vec<String>,
    /// Status of each waitlist party added in the range.
    pub parties: Vec<String>,
    /// `(created_at, acked_at)` of alerts opened in the range.
    pub alerts: Vec<(SystemTime, Option<SystemTime>)>,
    /// The configured sensors.
    pub sensors: Vec<String>,
    /// `(time, sensor, faulted)` for every `sensor.fault` (true) and
    /// `sensor.recovered` (false) event before the range's end, in order.
    pub sensor_events: Vec<(SystemTime, String, bool)>,
    /// The oldest event still kept (sensor uptime cannot see before it).
    pub log_start: Option<SystemTime>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Analytics {
    pub from: String,
    pub to: String,
    pub timezone: String,
    pub utilization: Utilization,
    pub turns_per_table: Vec<TableTurns>,
    pub turn_time_by_party_size: Vec<PartyTurns>,
    pub covers: Covers,
    pub no_shows: NoShows,
    pub walk_aways: WalkAways,
    pub alert_ack_seconds: AlertAck,
    pub sensor_uptime: Vec<SensorUptime>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Utilization {
    pub weekdays: [&'static str; 7],
    pub hours: Vec<u8>,
    pub cells: Vec<Vec<Option<f64>>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableTurns {
    pub table: TableId,
    pub turns: usize,
    pub median_minutes: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartyTurns {
    pub party_size: u32,
    pub visits: usize,
    pub median_minutes: Option<f64>,
    pub p80_minutes: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Covers {
    pub total: u64,
    pub by_day: Vec<DayCovers>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DayCovers {
    pub date: String,
    pub covers: u64,
    pub visits: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NoShows {
    pub reservations: usize,
    pub no_shows: usize,
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WalkAways {
    pub parties: usize,
    pub left: usize,
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertAck {
    pub acked: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SensorUptime {
    pub sensor: String,
    pub uptime: Option<f64>,
}

/// The range of a request or a report: `from` and `to` are local dates
/// (`YYYY-MM-DD`, inclusive); without them the last [`DEFAULT_DAYS`] days
/// up to `today`. An error names its field: `(field, message)`.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    today: Date,
) -> Result<(Date, Date), (&'static str, String)> {
    let to = match to {
        Some(t) => crate::localtime::parse_date(t).map_err(|m| ("to", m))?,
        None => today,
    };
    let from = match from {
        Some(f) => crate::localtime::parse_date(f).map_err(|m| ("from", m))?,
        None => to
            .checked_sub(jiff::Span::new().days(DEFAULT_DAYS - 1))
            .map_err(|e| ("to", e.to_string()))?,
    };
    if from > to {
        return Err(("from", format!("{from} is after to ({to})")));
    }
    let days = from.until(to).map(|s| s.get_days()).unwrap_or(i32::MAX);
    if i64::from(days) >= MAX_RANGE_DAYS {
        return Err((
            "to",
            format!("the range {from} to {to} is longer than {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok((from, to))
}

/// The `q` quantile (0..=1) of `values`, linear between closest ranks.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn parse(t: &str) -> Option<SystemTime> {
    crate::clock::parse(t)
}

fn minutes(d: Duration) -> f64 {
    d.as_secs_f64() / 60.0
}

/// The visit's length in minutes, if it is over.
pub fn turn_minutes(v: &Visit) -> Option<f64> {
    let seated = parse(&v.seated_at)?;
    let left = parse(v.left_at.as_deref()?)?;
    left.duration_since(seated).ok().map(minutes)
}

/// `(weekday 0 = Monday, hour)` of `t` and the instant its local hour ends.
fn cell_of(t: SystemTime, tz: &TimeZone) -> Option<((usize, usize), SystemTime)> {
    let z = jiff::Timestamp::try_from(t)
        .ok()?
        .to_zoned_datetime(tz.clone());
    let day = usize::try_from(z.weekday().to_monday_zero_offset()).ok()?;
    let hour = usize::try_from(z.hour()).ok()?;
    let start = z
        .with()
        .minute(0)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .ok()?;
    let end = start
        .checked_add(jiff::SignedDuration::from_hours(1))
        .ok()?;
    let end = SystemTime::try_from(end.timestamp()).ok()?;
    Some(((day, hour), end))
}

/// Adds the minutes of `[start, end)` to the cells they fall in, each
/// weighted by `weight`.
fn spread(
    start: SystemTime,
    end: SystemTime,
    weight: f64,
    tz: &TimeZone,
    cells: &mut [[f64; 24]; 7],
) {
    let mut t = start;
    while t < end {
        let Some(((d, h), hour_end)) = cell_of(t, tz) else {
            return;
        };
        let until = hour_end.min(end);
        if until <= t {
            return;
        }
        cells[d][h] += minutes(until.duration_since(t).unwrap_or_default()) * weight;
        t = until;
    }
}

pub fn compute(input: &Input) -> Analytics {
    let tz = &input.tz;
    let (start, _) = crate::localtime::day_range(input.from, tz);
    let (_, end) = crate::localtime::day_range(input.to, tz);
    let until = end.min(input.now.max(start));

    // Utilization.
    let mut occupied = [[0.0f64; 24]; 7];
    let mut available = [[0.0f64; 24]; 7];
    spread(start, until, input.tables.len() as f64, tz, &mut available);
    for v in &input.visits {
        let Some(seated) = parse(&v.seated_at) else {
            continue;
        };
        let left = v.left_at.as_deref().and_then(parse).unwrap_or(input.now);
        let counted = v.tables.iter().filter(|t| input.tables.contains(t)).count();
        spread(
            seated.max(start),
            left.min(until),
            counted as f64,
            tz,
            &mut occupied,
        );
    }
    let cells = (0..7)
        .map(|d| {
            (0..24)
                .map(|h| {
                    (available[d][h] > 0.0).then(|| (occupied[d][h] / available[d][h]).min(1.0))
                })
                .collect()
        })
        .collect();

    // Turns per table and by party size.
    let mut per_table: BTreeMap<TableId, Vec<f64>> =
        input.tables.iter().map(|&t| (t, Vec::new())).collect();
    let mut per_size: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for v in &input.visits {
        let Some(m) = turn_minutes(v) else { continue };
        for t in &v.tables {
            per_table.entry(*t).or_default().push(m);
        }
        if let Some(size) = v.party_size {
            per_size.entry(size).or_default().push(m);
        }
    }
    let turns_per_table = per_table
        .into_iter()
        .map(|(table, m)| TableTurns {
            table,
            turns: m.len(),
            median_minutes: quantile(&m, 0.5),
        })
        .collect();
    let turn_time_by_party_size = per_size
        .into_iter()
        .map(|(party_size, m)| PartyTurns {
            party_size,
            visits: m.len(),
            median_minutes: quantile(&m, 0.5),
            p80_minutes: quantile(&m, 0.8),
        })
        .collect();

    // Covers per local day.
    let mut days: BTreeMap<Date, (u64, usize)> = BTreeMap::new();
    let mut day = input.from;
    while day <= input.to {
        days.insert(day, (0, 0));
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    for v in &input.visits {
        let Some(seated) = parse(&v.seated_at) else {
            continue;
        };
        if let Some(entry) = days.get_mut(&crate::localtime::date_of(seated, tz)) {
            entry.0 += u64::from(v.party_size.unwrap_or(0));
            entry.1 += 1;
        }
    }
    let covers = Covers {
        total: days.values().map(|d| d.0).sum(),
        by_day: days
            .into_iter()
            .map(|(date, (covers, visits))| DayCovers {
                date: date.to_string(),
                covers,
                visits,
            })
            .collect(),
    };

    let decided = input
        .reservations
        .iter()
        .filter(|s| matches!(s.as_str(), "seated" | "no_show"))
        .count();
    let no_show = input
        .reservations
        .iter()
        .filter(|s| *s == "no_show")
        .count();
    let over = input
        .parties
        .iter()
        .filter(|s| matches!(s.as_str(), "seated" | "left"))
        .count();
    let left = input.parties.iter().filter(|s| *s == "left").count();

    let acks: Vec<f64> = input
        .alerts
        .iter()
        .filter_map(|(created, acked)| acked.and_then(|a| a.duration_since(*created).ok()))
        .map(|d| d.as_secs_f64())
        .collect();

    Analytics {
        from: input.from.to_string(),
        to: input.to.to_string(),
        timezone: crate::localtime::zone_name(tz),
        utilization: Utilization {
            weekdays: WEEKDAYS,
            hours: (0..24).collect(),
            cells,
        },
        turns_per_table,
        turn_time_by_party_size,
        covers,
        no_shows: NoShows {
            reservations: decided,
            no_shows: no_show,
            rate: ratio(no_show, decided),
        },
        walk_aways: WalkAways {
            parties: over,
            left,
            rate: ratio(left, over),
        },
        alert_ack_seconds: AlertAck {
            acked: acks.len(),
            p50: quantile(&acks, 0.5),
            p90: quantile(&acks, 0.9),
        },
        sensor_uptime: uptime(input, start, until),
    }
}

fn uptime(input: &Input, start: SystemTime, until: SystemTime) -> Vec<SensorUptime> {
    let seen_from = input.log_start.map_or(until, |s| s.max(start));
    let span = until.duration_since(seen_from).unwrap_or_default();
    input
        .sensors
        .iter()
        .map(|sensor| {
            if span.is_zero() {
                return SensorUptime {
                    sensor: sensor.clone(),
                    uptime: None,
                };
            }
            let mut down = Duration::ZERO;
            let mut faulted_since: Option<SystemTime> = None;
            for (t, s, faulted) in &input.sensor_events {
                if s != sensor || *t >= until {
                    continue;
                }
                match (faulted, faulted_since) {
                    (true, None) => faulted_since = Some(*t),
                    (false, Some(since)) => {
                        down += t.duration_since(since.max(seen_from)).unwrap_or_default();
                        faulted_since = None;
                    }
                    _ => {}
                }
            }
            if let Some(since) = faulted_since {
                down += until
                    .duration_since(since.max(seen_from))
                    .unwrap_or_default();
            }
            SensorUptime {
                sensor: sensor.clone(),
                uptime: Some(1.0 - down.as_secs_f64() / span.as_secs_f64()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        assert_eq!(quantile(&[40.0, 50.0], 0.5), Some(45.0));
        assert_eq!(
            quantile(&[10.0, 20.0, 30.0, 40.0, 50.0, 60.0], 0.8),
            Some(50.0)
        );
        assert_eq!(quantile(&[], 0.5), None);
    }
}
