//! The restaurant's local time (`site.timezone`): reservation times typed
//! by a host, "today", and how instants are shown back.
//!
//! Rules:
//! - Instants are what is stored and scheduled on (`SystemTime`, written
//!   as RFC 3339 UTC by [`crate::clock`]); local wall-clock time is only
//!   an input and a display format. Nothing fires on a local clock tick,
//!   so a DST change can neither double-fire nor skip anything.
//! - A local time that does not exist (the spring-forward gap) or exists
//!   twice (the fall-back fold) is resolved with jiff's *compatible*
//!   rule, the one RFC 5545 calendars use: in a gap the clock time is
//!   moved forward by the gap's length (02:30 on the last Sunday of March
//!   in Europe/Madrid is 03:30 CEST), in a fold the first (summer-time)
//!   occurrence is taken. A client that means the second one sends an
//!   RFC 3339 time with its offset (`2026-10-25T02:30:00+01:00`).
//! - The zone comes from the system tz database (`/usr/share/zoneinfo`)
//!   and, where that lacks it, from the copy bundled into the binary
//!   (jiff's `tzdb-bundle-always`), so a Pi image without tzdata still
//!   knows Europe/Madrid.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Unit};
use std::time::SystemTime;

/// The zone of a `site.timezone` value: an IANA name, or empty for the
/// system's zone (`/etc/localtime`, or `TZ`), which falls back to UTC
/// when the system has none.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(TimeZone::try_system().unwrap_or(TimeZone::UTC));
    }
    TimeZone::get(name).map_err(|e| format!("{name:?} is not a known IANA time zone ({e})"))
}

/// The name to show for a zone (`Europe/Madrid`; `UTC` or the offset when
/// it has no IANA name).
pub fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name()
        .map_or_else(|| "UTC".to_string(), str::to_string)
}

fn to_timestamp(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn to_system(ts: Timestamp) -> SystemTime {
    SystemTime::try_from(ts).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Parses a reservation time: RFC 3339 with an offset (`Z` or `+01:00`)
/// is that instant; a local time without one (`2026-12-24T20:00`,
/// seconds optional) is read in `tz` (gaps and folds: see the module doc).
pub fn parse_at(text: &str, tz: &TimeZone) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(to_system(ts));
    }
    let dt: DateTime = text.parse().map_err(|_| {
        format!("{text:?} is not a time; use local time such as 2026-12-24T20:00 or RFC 3339 with an offset")
    })?;
    let zoned = tz
        .to_zoned_datetime(dt)
        .map_err(|e| format!("{text:?} cannot be placed in the time zone: {e}"))?;
    Ok(to_system(zoned.timestamp()))
}

/// `t` as local RFC 3339 with its offset, to the second
/// (`2026-12-24T20:00:00+01:00`): what a host reads, and unambiguous.
pub fn format_local(t: SystemTime, tz: &TimeZone) -> String {
    let zoned = to_timestamp(t).to_zoned_datetime(tz.clone());
    let zoned = zoned.round(Unit::Second).unwrap_or(zoned);
    zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The local date of `t`.
pub fn date_of(t: SystemTime, tz: &TimeZone) -> Date {
    to_timestamp(t).to_zoned_datetime(tz.clone()).date()
}

/// Parses a `YYYY-MM-DD` date (a query parameter).
pub fn parse_date(text: &str) -> Result<Date, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)"))
}

/// The instants a local day runs over: `[start, end)`. A day with a DST
/// change is 23 or 25 hours long; a day whose midnight is in a gap starts
/// at the first instant after it.
pub fn day_range(date: Date, tz: &TimeZone) -> (SystemTime, SystemTime) {
    let start = |d: Date| {
        d.to_zoned_datetime(tz.clone())
            .map(|z| to_system(z.timestamp()))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    let next = date.tomorrow().unwrap_or(date);
    (start(date), start(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn madrid() -> TimeZone {
        zone("Europe/Madrid").expect("zone")
    }

    fn utc(text: &str) -> SystemTime {
        crate::clock::parse(text).expect("rfc3339")
    }

    #[test]
    fn local_times_are_read_in_the_site_zone_and_offsets_win() {
        let tz = madrid();
        assert_eq!(
            parse_at("2026-12-24T20:00", &tz),
            Ok(utc("2026-12-24T19:00:00Z"))
        );
        assert_eq!(
            parse_at("2026-07-01T20:00:00", &tz),
            Ok(utc("2026-07-01T18:00:00Z"))
        );
        assert_eq!(
            parse_at("2026-12-24T20:00:00-05:00", &tz),
            Ok(utc("2026-12-25T01:00:00Z"))
        );
        assert!(parse_at("tomorrow", &tz).is_err());
        assert!(zone("Mars/Olympus").is_err());
    }

    #[test]
    fn a_gap_moves_forward_and_a_fold_takes_the_first_occurrence() {
        let tz = madrid();
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        assert_eq!(
            parse_at("2026-03-29T02:30", &tz),
            Ok(utc("2026-03-29T01:30:00Z"))
        );
        assert_eq!(
            format_local(utc("2026-03-29T01:30:00Z"), &tz),
            "2026-03-29T03:30:00+02:00"
        );
        // 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        assert_eq!(
            parse_at("2026-10-25T02:30", &tz),
            Ok(utc("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            parse_at("2026-10-25T02:30+01:00", &tz),
            Ok(utc("2026-10-25T01:30:00Z"))
        );
    }

    #[test]
    fn a_dst_day_is_23_or_25_hours_long() {
        let tz = madrid();
        let hours = |d: &str| {
            let (a, b) = day_range(parse_date(d).expect("date"), &tz);
            b.duration_since(a).expect("ordered").as_secs() / 3600
        };
        assert_eq!(hours("2026-03-29"), 23);
        assert_eq!(hours("2026-10-25"), 25);
        assert_eq!(hours("2026-12-24"), 24);
        assert_eq!(
            date_of(utc("2026-12-24T23:30:00Z"), &tz).to_string(),
            "2026-12-25"
        );
    }
}
