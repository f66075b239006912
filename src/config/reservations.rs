//! `[reservations]`: when a reserved table is held, how late a guest may
//! be, and how long a booking lasts by party size.

use super::error::{ConfigError, key_error};
use super::value::duration_in;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `[reservations]` exactly as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reservations {
    pub hold_before: String,
    pub grace: String,
    pub early_checkin: String,
    pub duration: String,
    /// Party size up to which (inclusive) a duration applies, as a TOML key
    /// (`2 = "75m"`); larger parties get `duration`.
    pub duration_by_size: BTreeMap<String, String>,
}

impl Default for Reservations {
    fn default() -> Self {
        Reservations {
            hold_before: "15m".into(),
            grace: "15m".into(),
            early_checkin: "1h".into(),
            duration: "2h".into(),
            duration_by_size: BTreeMap::from([
                ("2".to_string(), "75m".to_string()),
                ("4".to_string(), "90m".to_string()),
            ]),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReservationsConfig {
    /// A booked table turns `reserved` this long before the reservation.
    pub hold_before: Duration,
    /// No check-in this long after the time: `reservation.no_show`.
    pub grace: Duration,
    /// Check-in is accepted from this long before the time.
    pub early_checkin: Duration,
    /// The default duration for parties larger than every
    /// `duration_by_size` key.
    pub duration: Duration,
    /// (largest party size, duration), ascending by size.
    pub duration_by_size: Vec<(u32, Duration)>,
}

impl ReservationsConfig {
    /// How long a party of `size` books a table when no duration is given.
    pub fn duration_for(&self, size: u32) -> Duration {
        self.duration_by_size
            .iter()
            .find(|(up_to, _)| size <= *up_to)
            .map_or(self.duration, |(_, d)| *d)
    }
}

impl Default for ReservationsConfig {
    fn default() -> Self {
        // The raw defaults are valid by construction (a test checks it).
        check(Reservations::default()).unwrap_or(ReservationsConfig {
            hold_before: Duration::from_secs(900),
            grace: Duration::from_secs(900),
            early_checkin: Duration::from_secs(3600),
            duration: Duration::from_secs(7200),
            duration_by_size: Vec::new(),
        })
    }
}

/// Longest hold, grace or early check-in: a table held or waited for half
/// a day is a typo, and would block the table for others.
const MAX_WINDOW: Duration = Duration::from_secs(12 * 3600);

use crate::reservations::{MAX_BOOKING, MIN_BOOKING};

pub(super) fn check(raw: Reservations) -> Result<ReservationsConfig, ConfigError> {
    let window = |key: &str, value: &str| duration_in(key, value, Duration::ZERO, MAX_WINDOW);
    let booking = |key: &str, value: &str| duration_in(key, value, MIN_BOOKING, MAX_BOOKING);
    let mut by_size = Vec::new();
    for (size, value) in &raw.duration_by_size {
        let key = format!("reservations.duration_by_size.{size}");
        let up_to: u32 = size
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=crate::reservations::MAX_PARTY).contains(n))
            .ok_or_else(|| {
                key_error(
                    &key,
                    format!(
                        "the key must be a party size (1..={}), the largest this duration applies to",
                        crate::reservations::MAX_PARTY
                    ),
                )
            })?;
        by_size.push((up_to, booking(&key, value)?));
    }
    by_size.sort_by_key(|(size, _)| *size);
    Ok(ReservationsConfig {
        hold_before: window("reservations.hold_before", &raw.hold_before)?,
        grace: window("reservations.grace", &raw.grace)?,
        early_checkin: window("reservations.early_checkin", &raw.early_checkin)?,
        duration: booking("reservations.duration", &raw.duration)?,
        duration_by_size: by_size,
    })
}
