//! Wall-clock timestamps as they appear in events and tables: RFC 3339,
//! UTC, millisecond precision, fixed width (so text order is time order,
//! which the retention query relies on).

use std::time::{Duration, SystemTime};

pub fn format(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn now() -> String {
    format(SystemTime::now())
}

pub fn parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

/// Seconds since the Unix epoch (the `/mesas` API's `timestamp`).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
